//! Every way a load, a lookup or an unload can fail.
//!
//! Each variant carries the file it concerns and the value that was wrong,
//! so the message alone tells the user what to look at (bionic's linker is
//! the model: `"libfoo.so" has invalid e_phnum: 0`).

use std::path::PathBuf;

use crate::base::relocs::RelocKind;

use nix::errno::Errno;

/// A failure of minld, naming the file and the offending value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call on the file failed (open, read, fstat, mmap, mprotect).
    #[error("{path}: {call} failed: {errno}")]
    Io {
        /// The file being loaded.
        path: PathBuf,
        /// The system call and what it was for, e.g. `mmap of segment 2`.
        call: String,
        /// The error the kernel returned.
        errno: Errno,
    },

    /// The file is not an ELF object minld can load: a header field is wrong.
    #[error("{path}: invalid ELF header: {what}")]
    BadHeader {
        /// The file being loaded.
        path: PathBuf,
        /// Which field was wrong and the value found.
        what: String,
    },

    /// The program headers describe an image that cannot be mapped.
    #[error("{path}: {what}")]
    BadSegments {
        /// The file being loaded.
        path: PathBuf,
        /// The segment, the field and the value found.
        what: String,
    },

    /// The file is an executable (ET_EXEC, or a PIE: DF_1_PIE in DT_FLAGS_1).
    #[error("{path}: cannot dynamically load executable ({what})")]
    Executable {
        /// The file being loaded.
        path: PathBuf,
        /// Why it is considered an executable.
        what: String,
    },

    /// A PT_LOAD's p_align is below the page size (0 and 1 included): the
    /// linker was free to pack segments into shared pages, where one
    /// segment's mapping replaces another's protections.
    #[error(
        "{path}: PT_LOAD segment {index}: p_align {align:#x} is below the page size {page_size:#x}"
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
        "{path}: PT_LOAD segments {first} (ends at {first_end:#x}) and {second} \
         (p_vaddr {second_vaddr:#x}) share the page at {page:#x}: mapping one would \
         change the other's protections there"
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
        "{path}: cannot enable executable stack as shared object requires it \
         (PT_GNU_STACK flags {flags:#x}); refused, as glibc 2.41 does"
    )]
    ExecutableStack {
        /// The file being loaded.
        path: PathBuf,
        /// The PT_GNU_STACK p_flags found.
        flags: u32,
    },

    /// The dynamic section (or a table it points to) is malformed.
    #[error("{path}: bad dynamic section: {what}")]
    BadDynamic {
        /// The file being loaded.
        path: PathBuf,
        /// The tag or table and the value found.
        what: String,
    },

    /// A library could not be found; `tried` lists every path attempted.
    #[error("{name}: cannot open shared object file: not found (needed by {needed_by}); tried: {}", tried_list(.tried))]
    NotFound {
        /// The name asked for (a DT_NEEDED entry or the user's argument).
        name: String,
        /// Who asked for it: a library path, or `the caller`.
        needed_by: String,
        /// Every path that was tried, in order.
        tried: Vec<PathBuf>,
    },

    /// A GNU ld script could not be followed.
    #[error("{path}: bad linker script: {what}")]
    BadScript {
        /// The script file.
        path: PathBuf,
        /// What was wrong.
        what: String,
    },

    /// A symbol could not be found.
    #[error("undefined symbol: {name}{} (needed by {needed_by})", version_suffix(.version))]
    UndefinedSymbol {
        /// The symbol name.
        name: String,
        /// The version asked for, if any.
        version: Option<String>,
        /// The object that needs it (a library path, or `Library::get`).
        needed_by: String,
    },

    /// A version the object requires is not provided by the library it names.
    #[error("{path}: version `{version}' not found (required by {needed_by})")]
    MissingVersion {
        /// The library expected to provide the version.
        path: PathBuf,
        /// The version name.
        version: String,
        /// The object that needs it.
        needed_by: String,
    },

    /// A relocation minld cannot or will not apply.
    #[error("{path}: relocation {kind} at offset {offset:#x}: {what}")]
    Relocation {
        /// The object being relocated.
        path: PathBuf,
        /// The relocation type, by name where known, else its number.
        kind: RelocKind,
        /// r_offset of the relocation.
        offset: u64,
        /// Why it cannot be applied.
        what: String,
    },

    /// The object has text relocations and the loader does not allow them.
    #[error(
        "{path}: has text relocations (DT_TEXTREL): its code pages would have to be made \
         writable; refused (Loader::allow_text_relocations(true) permits it)"
    )]
    TextRelocations {
        /// The object.
        path: PathBuf,
    },

    /// The object uses a feature minld does not implement yet.
    #[error("{path}: unsupported: {what}")]
    Unsupported {
        /// The object.
        path: PathBuf,
        /// The feature and the value that needs it.
        what: String,
    },

    /// minld was called from code it is running (an init or fini function).
    #[error("minld called re-entrantly from an init or fini function of a library it is loading or unloading: {what}")]
    Reentrant {
        /// What was attempted.
        what: String,
    },

    /// A library of a namespace imports host symbols the namespace does not
    /// allow; every one is listed.
    #[error("{path}: imports not allowed in its namespace: {}", imports.join(", "))]
    DisallowedImports {
        /// The library.
        path: PathBuf,
        /// Each import, `name@version (from library)`.
        imports: Vec<String>,
    },

    /// A namespace's plugin lacks its ABI version symbol or has another
    /// version.
    #[error("{path}: ABI version symbol {symbol}: expected {expected}, found {}", found.map_or("no such symbol".to_string(), |v| v.to_string()))]
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
    #[error("{path}: refused by policy: {report}")]
    Policy {
        /// The library asked for.
        path: PathBuf,
        /// Every finding, for it and its dependencies.
        report: crate::base::findings::Report,
    },
}

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

fn version_suffix(version: &Option<String>) -> String {
    match version {
        Some(v) => format!(", version {v}"),
        None => String::new(),
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, call: impl Into<String>, errno: Errno) -> Self {
        Error::Io {
            path: path.into(),
            call: call.into(),
            errno,
        }
    }
    pub(crate) fn header(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Error::BadHeader {
            path: path.into(),
            what: what.into(),
        }
    }
    pub(crate) fn segments(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Error::BadSegments {
            path: path.into(),
            what: what.into(),
        }
    }
    pub(crate) fn dynamic(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Error::BadDynamic {
            path: path.into(),
            what: what.into(),
        }
    }
}
