//! Loading a library given instead of found: from bytes in memory
//! ([`Loader::open_bytes`]: a plugin embedded with `include_bytes!`, a
//! library received over a socket) or from a descriptor the caller holds
//! ([`Loader::open_fd`]: a memfd, a file opened elsewhere), and where a
//! library's pages came from ([`Library::source`]).

use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;

use crate::api::library::{lock, Library};
use crate::api::loader::Loader;
use crate::api::mapped::MappedObject;
use crate::base::error::Error;
use crate::model::image::Source;
use crate::model::object::Dep;
use crate::os::sys::Sys;
use crate::pipeline::bytes::{self, Given};
use crate::pipeline::load;

/// The name of an object given as bytes when [`Loader::name`] gave none.
pub(crate) const BYTES_NAME: &str = "<bytes>";

impl Loader {
    /// The name [`Loader::open_bytes`], [`Loader::open_fd`] and their
    /// `map_` forms give the object: its path in errors (the same errors,
    /// field for field, as for a file at that path holding the same
    /// bytes), in the trace, in [`Library::path`] and in the debugger's
    /// list of objects. By default `<bytes>` for bytes and
    /// `/proc/self/fd/N` for a descriptor. A name with a directory gives
    /// the object that `$ORIGIN` for its DT_RPATH and DT_RUNPATH; one
    /// without (the default for bytes) gives it none, and path elements
    /// using `$ORIGIN` are dropped. Opens by path ignore it.
    pub fn name(mut self, name: impl Into<PathBuf>) -> Self {
        self.opts.given_name = Some(name.into());
        self
    }

    /// The name of an object given as `given`.
    fn given_name(&self, given: Given<'_>) -> PathBuf {
        match (&self.opts.given_name, given) {
            (Some(n), _) => n.clone(),
            (None, Given::Bytes(_)) => PathBuf::from(BYTES_NAME),
            (None, Given::Fd(fd)) => PathBuf::from(format!("/proc/self/fd/{fd}")),
        }
    }

    /// Loads a library from its bytes (a whole ELF file's contents), as
    /// [`Loader::open`] loads a file: the same validation with the same
    /// errors (every header and table bounds-checked against the slice, as
    /// against the file's size), then each segment copied into anonymous
    /// memory, the read() way (the trace shows the anonymous mmaps and
    /// mprotects, and no file mapping). Unlike a file's mapping, every page
    /// holding file data is then resident and private to this process; a
    /// segment's `.bss` pages past its file data are anonymous zero pages,
    /// not present until touched, as in a file's mapping.
    /// `bytes` is not used after the call; they must be an ELF object (a
    /// GNU ld script is not followed, as it is when a file is opened by
    /// name: it is refused by the ELF header checks). Its dependencies are searched
    /// and mapped from files as usual. The link cache is not used for the
    /// load (bytes have no identity a record could be proven against), nor
    /// [`Loader::reuse_loaded`]; each call maps a new copy.
    ///
    /// # Safety
    /// As [`Loader::open`]: the library's init functions and ifunc
    /// resolvers run.
    pub unsafe fn open_bytes(&self, bytes: &[u8]) -> Result<Library, Error> {
        // SAFETY: the caller's promise, passed on.
        unsafe { self.open_given(Given::Bytes(bytes)) }
    }

    /// Loads a library from a descriptor the caller holds on its file (a
    /// memfd, a file opened elsewhere), as [`Loader::open`] loads a file
    /// it opened: read with `pread64` from offset 0 (the descriptor's own
    /// offset does not move), validated, and its segments mapped from the
    /// descriptor; identified by its device and inode (a file minld has
    /// loaded already is that library again). minld does not close the
    /// descriptor, which the caller may close once this returns (the
    /// mappings keep the file). Its kind comes first, from `fstat` (the
    /// same call gives the size and identity): a pipe or a socket (a
    /// library received from another process) is read to its end instead,
    /// with `read` calls, and loaded as [`Loader::open_bytes`] loads bytes
    /// ([`Source::Bytes`]); one on a directory is refused as a path naming
    /// one is (EISDIR), and anything else that is not a regular file (a
    /// terminal, an eventfd, a device) unread, with the error of a path
    /// naming a device ([`Error::BadHeader`] on `st_mode`); a file holding
    /// a linker script is refused by the ELF header checks. The link
    /// cache is not used for the load, nor [`Loader::reuse_loaded`].
    ///
    /// # Safety
    /// As [`Loader::open`]: the library's init functions and ifunc
    /// resolvers run.
    pub unsafe fn open_fd(&self, fd: impl AsFd) -> Result<Library, Error> {
        let raw = fd.as_fd().as_raw_fd();
        // SAFETY: the caller's promise, passed on; `fd` is borrowed for
        // the whole call, so the descriptor stays open while it is used.
        unsafe { self.open_given(Given::Fd(raw)) }
    }

    /// [`Loader::open_bytes`] and [`Loader::open_fd`].
    ///
    /// # Safety
    /// The library's code runs.
    unsafe fn open_given(&self, given: Given<'_>) -> Result<Library, Error> {
        let name = self.given_name(given);
        let held = lock();
        let pending = load::link_given(&self.opts, &held, &name, given)?;
        let set = load::finish(&held, pending)?;
        Ok(self.handle(set))
    }

    /// [`Loader::map`] for bytes: validated as `open_bytes` validates
    /// them and copied into anonymous memory, not linked.
    pub fn map_bytes(&self, bytes: &[u8]) -> Result<MappedObject, Error> {
        let given = Given::Bytes(bytes);
        let sys = Sys {
            trace: self.opts.trace,
        };
        let image = bytes::map_only(&sys, given, &self.given_name(given))?;
        Ok(MappedObject::new(image))
    }

    /// [`Loader::map`] for a descriptor the caller holds (not closed; a
    /// stream read to its end and copied, as by [`Loader::open_fd`]).
    pub fn map_fd(&self, fd: impl AsFd) -> Result<MappedObject, Error> {
        let given = Given::Fd(fd.as_fd().as_raw_fd());
        let sys = Sys {
            trace: self.opts.trace,
        };
        let image = bytes::map_only(&sys, given, &self.given_name(given))?;
        Ok(MappedObject::new(image))
    }
}

impl Library {
    /// Where the library's pages came from: a file minld opened by
    /// [`Source::File`] path, a descriptor the caller lent
    /// ([`Source::Fd`], [`Loader::open_fd`]), or bytes copied into
    /// anonymous memory ([`Source::Bytes`], [`Loader::open_bytes`]).
    /// glibc's own libraries, which glibc mapped from their files, are
    /// [`Source::File`].
    pub fn source(&self) -> Source {
        match self.root() {
            Dep::Minld(o) => o.image.source.clone(),
            other => Source::File(other.path()),
        }
    }
}
