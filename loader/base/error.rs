//! Every way a load, a lookup or an unload can fail.
//!
//! Each variant carries the file it concerns and, as typed fields, the
//! field that was wrong and the value found, so the message alone tells the
//! user what to look at (bionic's linker is the model: `"libfoo.so" has
//! invalid e_phnum: 0`) and a program can match on the fields:
//!
//! ```
//! # fn check(e: minld::Error) -> bool {
//! matches!(e, minld::Error::BadHeader { field: "e_phnum", found: 0, .. })
//! # }
//! ```
//!
//! What exactly was wrong with the field is a small enum per stage
//! ([`HeaderFault`], [`SegmentFault`], [`DynamicFault`], [`ScriptFault`],
//! [`RelocFault`]); the message is rendered from it, never stored as text.
//! Underlying errors (the kernel's [`Errno`], goblin's parse error) are
//! reachable through [`std::error::Error::source`].

use std::fmt;
use std::path::{Path, PathBuf};

use crate::base::relocs::RelocKind;

pub use crate::base::fault::{
    DynamicFault, ExecutableKind, Feature, HeaderFault, RelocFault, ScriptFault, SegmentFault,
    SegmentName,
};
pub use crate::base::transfer::TransferFault;

use nix::errno::Errno;

/// A failure of minld, naming the file and the offending value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call on the file failed (open, read, fstat, mmap, mprotect).
    #[error("{path}: {call}{} failed: {errno}", segment_suffix(.segment), path = .path.display())]
    Io {
        /// The file being loaded.
        path: PathBuf,
        /// The system call and what it was for, e.g. `mmap of segment`.
        call: &'static str,
        /// The PT_LOAD segment (its program header index) the call was for.
        segment: Option<usize>,
        /// The error the kernel returned.
        #[source]
        errno: Errno,
    },

    /// Moving the file's bytes did not complete though no system call
    /// failed (a read ended early, a stream was too long): minld's own
    /// finding, with the sizes involved.
    #[error("{path}: {what}{}: {fault}", segment_suffix(.segment), path = .path.display())]
    Transfer {
        /// The file being loaded (or read).
        path: PathBuf,
        /// What was being moved, e.g. `read of a stream`.
        what: &'static str,
        /// The PT_LOAD segment (its program header index) it was for.
        segment: Option<usize>,
        /// What went wrong, with the sizes.
        fault: TransferFault,
    },

    /// A range given to minld (an object's span, a segment's address and
    /// size) runs past the end of the address space.
    #[error("{}: {what}{}: {start:#x} + {len:#x} runs past the end of the address space", .path.display(), segment_suffix(.segment))]
    BadRange {
        /// The object the range is of.
        path: PathBuf,
        /// Which range (`span`, `segment`).
        what: &'static str,
        /// The segment (its index among the PT_LOAD ones) it was for.
        segment: Option<usize>,
        /// The range's start.
        start: u64,
        /// Its length.
        len: u64,
    },

    /// The file is not an ELF object minld can load: a header field is wrong.
    #[error("{}: invalid ELF header: {}", .path.display(), fault.render(field, *found))]
    BadHeader {
        /// The file being loaded.
        path: PathBuf,
        /// The field that was wrong (`e_phnum`, `EI_CLASS`, `file size`...).
        field: &'static str,
        /// The value found in it.
        found: u64,
        /// What was wrong with the value.
        fault: HeaderFault,
    },

    /// goblin could not parse a header minld had already checked.
    #[error("{}: invalid ELF header: {what}: {source}", .path.display())]
    Unparsable {
        /// The file being loaded.
        path: PathBuf,
        /// What was being parsed (`ELF header`, `program headers`).
        what: &'static str,
        /// goblin's error.
        #[source]
        source: goblin::error::Error,
    },

    /// The program headers describe an image that cannot be mapped.
    #[error("{}: {}", .path.display(), fault.render(*segment, field, *found))]
    BadSegments {
        /// The file being loaded.
        path: PathBuf,
        /// The program header concerned.
        segment: SegmentName,
        /// Its field that was wrong (`p_filesz`, `p_align`...).
        field: &'static str,
        /// The value found in it.
        found: u64,
        /// What was wrong with the value.
        fault: SegmentFault,
    },

    /// The file is an executable (ET_EXEC, or a PIE: DF_1_PIE in DT_FLAGS_1).
    #[error("{}: cannot dynamically load executable ({reason})", .path.display())]
    Executable {
        /// The file being loaded.
        path: PathBuf,
        /// Why it is considered an executable.
        reason: ExecutableKind,
    },

    /// A PT_LOAD's p_align is below the page size (0 and 1 included): the
    /// linker was free to pack segments into shared pages, where one
    /// segment's mapping replaces another's protections.
    #[error(
        "{}: PT_LOAD segment {index}: p_align {align:#x} is below the page size {page_size:#x}",
        .path.display()
    )]
    AlignBelowPage {
        /// The file being loaded.
        path: PathBuf,
        /// The segment's index in the program header table.
        index: usize,
        /// The p_align found.
        align: u64,
        /// The page size of this machine.
        page_size: u64,
    },

    /// Two PT_LOAD segments share a page once rounded to pages: mapping the
    /// second would replace the first one's protections in that page (code
    /// made read-write, or data made r-x).
    #[error(
        "{}: PT_LOAD segments {first} (ends at {first_end:#x}) and {second} \
         (p_vaddr {second_vaddr:#x}) share the page at {page:#x}: mapping one would \
         change the other's protections there",
        .path.display()
    )]
    SegmentsSharePage {
        /// The file being loaded.
        path: PathBuf,
        /// The index of the first segment in the program header table.
        first: usize,
        /// Where its memory ends: p_vaddr + p_memsz.
        first_end: u64,
        /// The index of the second segment.
        second: usize,
        /// Where the second starts: its p_vaddr.
        second_vaddr: u64,
        /// The virtual address of the page both map.
        page: u64,
    },

    /// The object asks for an executable stack (PT_GNU_STACK with PF_X).
    #[error(
        "{}: cannot enable executable stack as shared object requires it \
         (PT_GNU_STACK flags {flags:#x}); refused, as glibc 2.41 does",
        .path.display()
    )]
    ExecutableStack {
        /// The file being loaded.
        path: PathBuf,
        /// The PT_GNU_STACK p_flags found.
        flags: u32,
    },

    /// The dynamic section (or a table it points to) is malformed.
    #[error("{}: bad dynamic section: {}", .path.display(), fault.render(field, *found))]
    BadDynamic {
        /// The file being loaded.
        path: PathBuf,
        /// The tag or table that was wrong (`DT_STRTAB`, `DT_GNU_HASH buckets`...).
        field: &'static str,
        /// The value found: an address, an offset, a size or a count.
        found: u64,
        /// What was wrong with the value.
        fault: DynamicFault,
    },

    /// A library could not be found; `tried` lists every path attempted.
    #[error(
        "{name}: cannot open shared object file: not found (needed by {needed_by}{}); tried: {}",
        if *.confined { " (in a namespace: only its permitted directories are searched)" } else { "" },
        tried_list(.tried)
    )]
    NotFound {
        /// The name asked for (a DT_NEEDED entry or the user's argument).
        name: String,
        /// Who asked for it.
        needed_by: Requester,
        /// Whether the search was a namespace's, confined to its directories.
        confined: bool,
        /// Every path that was tried, in order.
        tried: Vec<PathBuf>,
    },

    /// A GNU ld script could not be followed.
    #[error("{}: bad linker script: {fault}", .path.display())]
    BadScript {
        /// The script file.
        path: PathBuf,
        /// What was wrong.
        fault: ScriptFault,
    },

    /// A symbol could not be found.
    #[error("undefined symbol: {name}{} (needed by {needed_by})", version_suffix(.version))]
    UndefinedSymbol {
        /// The symbol name.
        name: String,
        /// The version asked for, if any.
        version: Option<String>,
        /// Who needs it: the library whose relocation refers to it, or a
        /// lookup through `Library::get`.
        needed_by: Requester,
    },

    /// A version the object requires is not provided by the library it names.
    #[error("{}: version `{version}' not found (required by {})", .path.display(), .needed_by.display())]
    MissingVersion {
        /// The library expected to provide the version.
        path: PathBuf,
        /// The version name.
        version: String,
        /// The object that needs it.
        needed_by: PathBuf,
    },

    /// A relocation minld cannot or will not apply.
    #[error("{}: relocation {kind} at offset {offset:#x}: {fault}", .path.display())]
    Relocation {
        /// The object being relocated.
        path: PathBuf,
        /// The relocation type, by name where known, else its number.
        kind: RelocKind,
        /// r_offset of the relocation.
        offset: u64,
        /// Why it cannot be applied.
        fault: RelocFault,
    },

    /// The object has text relocations and the loader does not allow them.
    #[error(
        "{}: has text relocations (DT_TEXTREL): its code pages would have to be made \
         writable; refused (Loader::allow_text_relocations(true) permits it)",
        .path.display()
    )]
    TextRelocations {
        /// The object.
        path: PathBuf,
    },

    /// The object uses a feature minld does not implement yet.
    #[error("{}: unsupported: {feature}", .path.display())]
    Unsupported {
        /// The object.
        path: PathBuf,
        /// The feature and the value that needs it.
        feature: Feature,
    },

    /// A call into minld from code minld is running that it cannot serve
    /// there (see [`Reentry`]); nested opens, closes and lookups from init
    /// functions and ifunc resolvers are otherwise served.
    #[error("{what}: refused, called from code minld runs: {reason}")]
    Reentrant {
        /// What was attempted (`open libfoo.so`).
        what: String,
        /// Why it cannot be served there.
        reason: Reentry,
    },

    /// A library of a namespace imports host symbols the namespace does not
    /// allow; every one is listed.
    #[error("{}: imports not allowed in its namespace: {}", .path.display(), imports.join(", "))]
    DisallowedImports {
        /// The library.
        path: PathBuf,
        /// Each import, `name@version (from library)`.
        imports: Vec<String>,
    },

    /// A namespace's plugin lacks its ABI version symbol or has another
    /// version.
    #[error("{}: ABI version symbol {symbol}: expected {expected}, found {}", .path.display(), found.map_or("no such symbol".to_string(), |v| v.to_string()))]
    Abi {
        /// The plugin.
        path: PathBuf,
        /// The symbol the namespace checks.
        symbol: String,
        /// The version the namespace wants.
        expected: u32,
        /// What the plugin has (None: not exported).
        found: Option<u32>,
    },

    /// The library or a dependency breaks the loader's [`crate::Policy`];
    /// the report lists every finding.
    #[error("{}: refused by policy: {report}", .path.display())]
    Policy {
        /// The library asked for.
        path: PathBuf,
        /// Every finding, for it and its dependencies.
        report: crate::base::findings::Report,
    },
}

/// Why a nested call into minld ([`Error::Reentrant`]) is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reentry {
    /// The call came while minld was updating its registry, on the same
    /// thread: no library's code runs there, but a `log` logger or a
    /// signal handler may call in. Only that case is detected: minld is
    /// not async-signal-safe, and a signal handler that interrupts its
    /// thread while it takes or gives back the loader lock deadlocks
    /// instead of getting this error.
    RegistryBusy,
    /// The nested open needs this object, which the load it is nested in
    /// has mapped but not finished (the call came from one of that load's
    /// ifunc resolvers, before its objects are registered).
    Unfinished {
        /// The object of the outer load.
        path: PathBuf,
    },
}

impl fmt::Display for Reentry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reentry::RegistryBusy => f.write_str(
                "minld is in the middle of updating its registry on this thread (a call from a \
                 signal handler or a logger?)",
            ),
            Reentry::Unfinished { path } => write!(
                f,
                "it needs {}, which the load this open is nested in has mapped but not \
                 finished (an open from an ifunc resolver may only use objects loaded before)",
                path.display()
            ),
        }
    }
}

/// Who asked for a library or a symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Requester {
    /// The program, through `Loader::open` or `Loader::map`.
    Caller,
    /// A library: its DT_NEEDED entry or one of its relocations.
    Library(PathBuf),
    /// A lookup through `Library::get` on this library.
    Lookup(PathBuf),
}

impl Requester {
    /// The library concerned, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Requester::Caller => None,
            Requester::Library(p) | Requester::Lookup(p) => Some(p),
        }
    }
}

impl fmt::Display for Requester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requester::Caller => f.write_str("the caller"),
            Requester::Library(p) => write!(f, "{}", p.display()),
            Requester::Lookup(p) => write!(f, "Library::get on {}", p.display()),
        }
    }
}

/// ` {index}` for a system call made for one segment.
fn segment_suffix(segment: &Option<usize>) -> String {
    segment.map(|i| format!(" {i}")).unwrap_or_default()
}

/// The paths tried, for [`Error::NotFound`].
fn tried_list(tried: &[PathBuf]) -> String {
    if tried.is_empty() {
        return "nothing".to_string();
    }
    tried
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `, version V` when a version was asked for.
fn version_suffix(version: &Option<String>) -> String {
    match version {
        Some(v) => format!(", version {v}"),
        None => String::new(),
    }
}

impl Error {
    /// [`Error::Io`] for a call not tied to one segment.
    pub(crate) fn io(path: impl Into<PathBuf>, call: &'static str, errno: Errno) -> Self {
        Error::Io {
            path: path.into(),
            call,
            segment: None,
            errno,
        }
    }
    /// [`Error::Io`] for a call made for PT_LOAD `segment`.
    pub(crate) fn io_segment(
        path: impl Into<PathBuf>,
        call: &'static str,
        segment: usize,
        errno: Errno,
    ) -> Self {
        Error::Io {
            path: path.into(),
            call,
            segment: Some(segment),
            errno,
        }
    }
    /// [`Error::BadHeader`].
    pub(crate) fn header(
        path: impl Into<PathBuf>,
        field: &'static str,
        found: u64,
        fault: HeaderFault,
    ) -> Self {
        Error::BadHeader {
            path: path.into(),
            field,
            found,
            fault,
        }
    }
    /// No program header of type `p_type` (the segment `segment`).
    pub(crate) fn missing_segment(
        path: impl Into<PathBuf>,
        segment: SegmentName,
        p_type: u32,
    ) -> Self {
        Error::segments(
            path,
            segment,
            "p_type",
            u64::from(p_type),
            SegmentFault::Missing,
        )
    }

    /// [`Error::BadSegments`].
    pub(crate) fn segments(
        path: impl Into<PathBuf>,
        segment: SegmentName,
        field: &'static str,
        found: u64,
        fault: SegmentFault,
    ) -> Self {
        Error::BadSegments {
            path: path.into(),
            segment,
            field,
            found,
            fault,
        }
    }
    /// [`Error::BadDynamic`].
    pub(crate) fn dynamic(
        path: impl Into<PathBuf>,
        field: &'static str,
        found: u64,
        fault: DynamicFault,
    ) -> Self {
        Error::BadDynamic {
            path: path.into(),
            field,
            found,
            fault,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// Errors cross threads (the sandbox, loads on several threads).
    #[test]
    fn errors_are_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<Error>();
    }

    #[test]
    fn the_kernels_error_is_the_source() {
        let e = Error::io_segment("libz.so.1", "mmap of segment", 2, Errno::ENOMEM);
        assert_eq!(
            e.to_string(),
            format!("libz.so.1: mmap of segment 2 failed: {}", Errno::ENOMEM)
        );
        let source = e.source().and_then(|s| s.downcast_ref::<Errno>());
        assert_eq!(source, Some(&Errno::ENOMEM));
    }

    #[test]
    fn header_messages_name_the_file_the_field_and_the_value() {
        let e = Error::header(
            "libfoo.so",
            "e_phnum",
            0,
            HeaderFault::OutOfRange { min: 1, max: 1170 },
        );
        assert!(matches!(
            e,
            Error::BadHeader {
                field: "e_phnum",
                found: 0,
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "libfoo.so: invalid ELF header: e_phnum 0 (must be 1 to 1170)"
        );
        assert!(e.source().is_none());
    }

    #[test]
    fn requesters_read_as_before() {
        let lib = Requester::Library("/opt/libx.so".into());
        assert_eq!(lib.to_string(), "/opt/libx.so");
        assert_eq!(Requester::Caller.to_string(), "the caller");
        assert_eq!(
            Requester::Lookup("/opt/libx.so".into()).to_string(),
            "Library::get on /opt/libx.so"
        );
        let e = Error::NotFound {
            name: "liby.so".into(),
            needed_by: lib,
            confined: true,
            tried: vec![],
        };
        assert_eq!(
            e.to_string(),
            "liby.so: cannot open shared object file: not found (needed by /opt/libx.so \
             (in a namespace: only its permitted directories are searched)); tried: nothing"
        );
    }
}
