//! [`Source`]: where the pages of a mapped image came from.

use std::os::fd::RawFd;
use std::path::PathBuf;

/// Where the pages of a loaded object came from
/// ([`Library::source`](crate::Library::source),
/// [`MappedObject::source`](crate::MappedObject::source)).
///
/// An object mapped from a file ([`Source::File`], [`Source::Fd`]) has the
/// page cache's pages: brought in when first touched, shared with every
/// process that maps the same file, private only once written (RELRO,
/// .data). An object copied from bytes ([`Source::Bytes`]) has anonymous
/// memory filled by copying: every page holding file data resident and
/// private to this process from the start (the `.bss` pages past a
/// segment's file data are not: they come in when first touched, as in a
/// file's mapping).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// Mapped from the file minld opened at this path.
    File(PathBuf),
    /// Mapped from a descriptor the caller lent
    /// ([`Loader::open_fd`](crate::Loader::open_fd)), by its number at
    /// the time (minld did not keep or close it).
    Fd(RawFd),
    /// Copied from bytes in memory
    /// ([`Loader::open_bytes`](crate::Loader::open_bytes)), or read from a
    /// stream ([`Loader::open_fd`](crate::Loader::open_fd) on a pipe or a
    /// socket), into anonymous memory.
    Bytes,
}

impl Source {
    /// Whether the pages are a file's (mapped from the page cache), so
    /// that a page never written can be dropped and read back from it.
    pub(crate) fn file_backed(&self) -> bool {
        !matches!(self, Source::Bytes)
    }

    /// Whether the object was opened by a path minld can open again and
    /// find the same file at (the link cache's identity of an object).
    pub(crate) fn by_path(&self) -> bool {
        matches!(self, Source::File(_))
    }
}
