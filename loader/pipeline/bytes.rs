//! The root of a load given instead of found (`Loader::open_bytes`,
//! `Loader::open_fd`): an object held in memory, copied into anonymous
//! memory (the read() way), or a descriptor the caller lent, mapped like a
//! file it opened (the mmap way) or, for a stream that cannot be mapped
//! (a pipe, a socket), read to its end and copied; anything else (a
//! terminal, an eventfd, a device) is refused unread. Either goes through
//! the same checks as a file found by name, with the same errors, naming it by the name given.
//! Its dependencies are searched, opened and mapped from files as usual.

use std::os::fd::RawFd;
use std::path::Path;
use std::sync::Arc;

use crate::base::error::{Error, TransferFault};
use crate::model::object::Object;
use crate::model::registry::Registry;
use crate::os::phases::{self, Phase};
use crate::os::sys::{Fd, Sys};
use crate::pipeline::gather;
use crate::pipeline::map;
use crate::pipeline::options::Options;
use crate::pipeline::search::Opened;
use crate::pipeline::validate::{self, FIRST_READ};

/// Where a given root's pages come from.
#[derive(Clone, Copy)]
pub(crate) enum Given<'a> {
    /// The object's bytes (the whole file's contents).
    Bytes(&'a [u8]),
    /// An open descriptor of the caller's, on the object's file; minld
    /// neither moves its offset nor closes it.
    Fd(RawFd),
}

/// The root object for `given`, named `name`: a new one, or (for a
/// descriptor on a file minld has loaded already, by device and inode)
/// that one, as for a file found by name.
pub(crate) fn root_object(
    sys: &Sys,
    reg: &mut Registry,
    opts: &Options,
    given: Given<'_>,
    name: &Path,
) -> Result<(Arc<Object>, bool), Error> {
    match given {
        Given::Bytes(bytes) => from_bytes(sys, opts, bytes, name),
        Given::Fd(raw) => match opened_fd(sys, raw, name)? {
            FromFd::Opened(opened) => gather::object_for(sys, reg, opened, opts),
            FromFd::Stream(bytes) => from_bytes(sys, opts, &bytes, name),
        },
    }
}

/// What a lent descriptor gave.
pub(crate) enum FromFd {
    /// A file, to map: its first bytes read.
    Opened(Opened),
    /// A stream (a pipe, a socket: no `pread64`, no `mmap`), read to its
    /// end: the object's bytes, to copy.
    Stream(Vec<u8>),
}

/// The most minld reads from a stream (a pipe, a socket) for one object.
const MAX_STREAM: usize = 1 << 31;

/// A stream's whole contents, with `read` calls (traced) until it ends;
/// more than [`MAX_STREAM`] bytes is refused
/// ([`TransferFault::StreamTooLong`]).
fn read_stream(sys: &Sys, fd: &Fd, name: &Path) -> Result<Vec<u8>, Error> {
    read_stream_upto(sys, fd, name, MAX_STREAM)
}

/// [`read_stream`] with the limit `limit`.
fn read_stream_upto(sys: &Sys, fd: &Fd, name: &Path, limit: usize) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = match sys.read(fd, &mut chunk, "the object from a stream, to copy") {
            Ok(0) => return Ok(bytes),
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::io(name, "read", e)),
        };
        if bytes.len() + n > limit {
            return Err(Error::Transfer {
                path: name.to_path_buf(),
                what: "read of a stream",
                segment: None,
                fault: TransferFault::StreamTooLong {
                    limit: limit as u64,
                    read: (bytes.len() + n) as u64,
                },
            });
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
}

/// Validated from the bytes and copied into anonymous memory: always a
/// new object (bytes have no identity to find a loaded copy by).
fn from_bytes(
    sys: &Sys,
    opts: &Options,
    bytes: &[u8],
    name: &Path,
) -> Result<(Arc<Object>, bool), Error> {
    let headers = {
        let _phase = phases::enter(Phase::Validate);
        validate::headers_from_bytes(name, bytes, opts.policy.is_some())?
    };
    let mapped = {
        let _phase = phases::enter(Phase::Map);
        map::copy_and_read_dynamic(sys, bytes, &headers, name)?
    };
    gather::object_from(mapped, name.to_path_buf(), headers.stat, opts)
}

/// The caller's descriptor, by its `fstat` (made once: validation reuses
/// it for the file's size and identity): a pipe or a socket is a stream,
/// read to its end, to be copied as bytes; a regular file has its first
/// bytes read with `pread64` at offset 0 (the descriptor's own offset is
/// the caller's and stays where it is), to be checked and mapped as a file
/// minld opened. A directory gets the kernel's EISDIR from that `pread64`,
/// as a path naming one gets it from its first read. Anything else (a
/// terminal, an eventfd, a device: reading one may block forever) is
/// refused unread, with the error of a path naming a device (`st_mode`,
/// not a regular file). The descriptor is lent, never closed by minld.
pub(crate) fn opened_fd(sys: &Sys, raw: RawFd, name: &Path) -> Result<FromFd, Error> {
    let fd = Fd::borrowed(raw, *sys);
    let stat = sys
        .fstat(&fd, "kind, size and identity of the caller's descriptor")
        .map_err(|e| Error::io(name, "fstat", e))?;
    match stat.mode & libc::S_IFMT {
        libc::S_IFIFO | libc::S_IFSOCK => return read_stream(sys, &fd, name).map(FromFd::Stream),
        libc::S_IFREG | libc::S_IFDIR => {}
        _ => {
            validate::check_regular(name, stat)?;
        }
    }
    let mut first = vec![0u8; FIRST_READ];
    let n = sys
        .pread(
            &fd,
            &mut first,
            0,
            "ELF header and program headers, from the caller's descriptor",
        )
        .map_err(|e| Error::io(name, "pread", e))?;
    first.truncate(n);
    Ok(FromFd::Opened(Opened {
        fd,
        path: name.to_path_buf(),
        first,
        stat: Some(stat),
    }))
}

/// Validates and maps (or, for bytes, copies) an object given instead of
/// found, without linking it (`Loader::map_bytes`, `Loader::map_fd`).
pub(crate) fn map_only(
    sys: &Sys,
    given: Given<'_>,
    name: &Path,
) -> Result<crate::model::image::MappedImage, Error> {
    match given {
        Given::Bytes(bytes) => {
            let headers = validate::headers_from_bytes(name, bytes, false)?;
            map::copy_segments(sys, bytes, &headers)
        }
        Given::Fd(raw) => match opened_fd(sys, raw, name)? {
            FromFd::Opened(o) => {
                let headers = validate::read_headers(sys, &o.fd, &o.path, &o.first, o.stat, false)?;
                map::map_segments(sys, &o.fd, &headers)
            }
            FromFd::Stream(bytes) => map_only(sys, Given::Bytes(&bytes), name),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    /// A stream past the limit is refused with the limit and the count
    /// read, not an errno no call returned.
    #[test]
    fn a_stream_past_the_limit_is_refused_with_the_sizes() {
        let (r, w) = std::io::pipe().expect("pipe");
        let mut w = w;
        w.write_all(&[7u8; 3000]).expect("write");
        drop(w);
        let sys = Sys { trace: false };
        let fd = Fd::borrowed(r.as_raw_fd(), sys);
        let e = read_stream_upto(&sys, &fd, Path::new("piped"), 1000).expect_err("too long");
        match e {
            Error::Transfer {
                what: "read of a stream",
                fault: TransferFault::StreamTooLong { limit: 1000, read },
                ..
            } => assert!(read > 1000, "{read}"),
            other => panic!("expected StreamTooLong, got {other:?}"),
        }
    }
}
