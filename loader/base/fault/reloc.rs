//! Faults of a relocation: [`RelocFault`].

use std::path::PathBuf;

/// Why a relocation cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelocFault {
    /// The target (`size` bytes) is not inside the writable segments.
    #[error("target outside the object's writable segments ({size} bytes)")]
    TargetOutside {
        /// The bytes the relocation writes.
        size: u64,
    },
    /// R_X86_64_COPY in a shared object.
    #[error("copy relocations belong in executables; a shared object with one is broken")]
    Copy,
    /// A type minld does not apply in a shared object.
    #[error("unsupported relocation type in a shared object")]
    UnsupportedType,
    /// A 32-bit field cannot hold the value.
    #[error("value {value:#x} does not fit 32 bits")]
    Overflow32 {
        /// The value computed.
        value: i64,
    },
    /// The host module defining the TLS symbol has no static TLS block.
    #[error("the defining host module has no static TLS block")]
    NoStaticTlsBlock,
    /// Initial-exec TLS against a block minld cannot place in static TLS
    /// (a symbol of an object without PT_TLS, or one outside the scope).
    #[error(
        "initial-exec thread-local storage ({symbol}{}): the block cannot be placed in \
         glibc's static TLS (DF_STATIC_TLS{})",
        .defined_by.as_ref().map(|p| format!(", defined by {}", p.display())).unwrap_or_default(),
        if *.static_tls { " is set" } else { "" }
    )]
    InitialExec {
        /// The symbol referred to.
        symbol: String,
        /// The library that defines it, where known.
        defined_by: Option<PathBuf>,
        /// Whether the referencing object has DF_STATIC_TLS.
        static_tls: bool,
    },
    /// glibc's static TLS has no room left for the library's
    /// initial-exec block, or the block's alignment is above the static
    /// TLS area's (glibc's "cannot allocate memory in static TLS block";
    /// `glibc.rtld.optional_static_tls` sets the surplus).
    #[error(
        "cannot allocate memory in static TLS block: initial-exec TLS needs {size} bytes \
         aligned to {align}, and glibc's surplus static TLS has no room left for it (or the \
         alignment is above its own) (GLIBC_TUNABLES=glibc.rtld.optional_static_tls=N \
         enlarges it; glibc said: {glibc})"
    )]
    StaticTlsFull {
        /// The block's size (PT_TLS p_memsz).
        size: u64,
        /// Its alignment (PT_TLS p_align).
        align: u64,
        /// glibc's message.
        glibc: String,
    },
    /// Reserving a block in glibc's static TLS failed for another reason.
    #[error("initial-exec TLS ({size} bytes aligned to {align}): reserving it in glibc's static TLS failed: {what}")]
    StaticTls {
        /// The block's size (PT_TLS p_memsz).
        size: u64,
        /// Its alignment (PT_TLS p_align).
        align: u64,
        /// What failed.
        what: String,
    },
    /// Initial-exec TLS in the sandbox's runner (`StaticTlsError::Sandboxed`).
    #[error("initial-exec TLS needs glibc's dlopen of a memfd, which the sandbox's loading stage does not allow (seccomp: no memfd_create; Landlock: no /proc/self/fd)")]
    StaticTlsSandboxed,
    /// A TLS relocation against a symbol outside any TLS block.
    #[error("TLS relocation against {symbol}, which is not in a TLS block (no PT_TLS)")]
    NotTls {
        /// The symbol.
        symbol: String,
    },
    /// An IRELATIVE resolver outside the object's code.
    #[error("resolver address {addr:#x} is outside the object's code")]
    ResolverOutside {
        /// The resolver's address.
        addr: u64,
    },
    /// r_info names a symbol past the end of the symbol table.
    #[error("symbol index {index} outside the symbol table ({count} symbols)")]
    SymbolIndex {
        /// The index.
        index: u64,
        /// The table's length.
        count: u64,
    },
    /// Lazy binding was asked for a PLT entry past the end of DT_JMPREL.
    #[error("lazy binding of PLT entry {index}, beyond DT_JMPREL ({count} entries)")]
    BeyondJmprel {
        /// The entry asked for.
        index: u64,
        /// The entries DT_JMPREL has.
        count: u64,
    },
    /// A link record's RELR words name a different number of addresses
    /// than the RELATIVE run they replace.
    #[error("link record's RELATIVE run names {found} addresses, recorded as {recorded}")]
    RecordedRun {
        /// The run's length in the record.
        recorded: u64,
        /// The addresses its RELR words named.
        found: u64,
    },
    /// Lazy binding was asked for a relocation that is not a JUMP_SLOT.
    #[error("lazy binding of a relocation that is not a JUMP_SLOT")]
    NotJumpSlot,
    /// The symbol's st_name lies outside DT_STRTAB.
    #[error("symbol {index}: name offset {offset:#x} outside DT_STRTAB")]
    SymbolName {
        /// The symbol index.
        index: u64,
        /// Its st_name.
        offset: u64,
    },
}
