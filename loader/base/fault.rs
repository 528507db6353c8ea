//! What exactly was wrong, per stage of a load: the typed detail of
//! [`crate::Error`]'s variants, each rendered into the variant's message (never
//! stored as text).

use std::fmt;
use std::path::PathBuf;

/// Why a file is taken for an executable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExecutableKind {
    /// e_type is ET_EXEC.
    EtExec,
    /// DT_FLAGS_1 has DF_1_PIE: a position-independent executable.
    Pie,
}

impl fmt::Display for ExecutableKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExecutableKind::EtExec => "e_type ET_EXEC",
            ExecutableKind::Pie => "DF_1_PIE: a position-independent executable",
        })
    }
}

/// What was wrong with a field of the ELF header (`field` and `found` are
/// the variant's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderFault {
    /// The file is shorter (`found` bytes) than what must be read; `needed`
    /// when the ELF header itself is cut.
    TooShort {
        /// The bytes needed, if known.
        needed: Option<u64>,
    },
    /// The first four bytes (`found`, big-endian) are not `\x7fELF`.
    Magic,
    /// EI_CLASS is not ELFCLASS64.
    Class,
    /// EI_DATA is not ELFDATA2LSB.
    Endianness,
    /// The field must hold `expected`.
    Expected {
        /// The only value accepted.
        expected: u64,
    },
    /// EI_OSABI is neither SYSV nor GNU.
    OsAbi,
    /// EI_ABIVERSION is too high for the OS ABI.
    AbiVersion {
        /// The EI_OSABI of the file.
        osabi: u8,
    },
    /// A padding byte of e_ident is not zero.
    Padding {
        /// Its index in e_ident.
        byte: usize,
    },
    /// e_machine is not EM_X86_64.
    Machine,
    /// e_type is not ET_DYN (ET_EXEC has its own error).
    Type,
    /// The value lies outside `min..=max`.
    OutOfRange {
        /// The smallest value accepted.
        min: u64,
        /// The largest value accepted.
        max: u64,
    },
    /// The program headers at e_phoff (`found`), `size` bytes, run past the
    /// end of the file.
    PastEnd {
        /// The size of the program header table.
        size: u64,
    },
    /// The value plus the size of what it locates overflows 64 bits.
    Overflows,
    /// st_mode (`found`) is not a regular file's.
    NotRegular,
    /// The path has a NUL byte (at `found`).
    NulInPath,
}

impl HeaderFault {
    /// The message for `field` holding `found`.
    pub(crate) fn render(&self, field: &str, found: u64) -> String {
        match *self {
            HeaderFault::TooShort { needed: None } => format!("file too short: {found} bytes"),
            HeaderFault::TooShort { needed: Some(n) } => {
                format!("file too short: {found} bytes, an ELF header needs {n}")
            }
            HeaderFault::Magic => format!(
                "bad magic {:02x?} (expected 7f 45 4c 46)",
                (found as u32).to_be_bytes()
            ),
            HeaderFault::Class => format!(
                "wrong ELF class {found} ({}): not a 64-bit object",
                if found == 1 { "ELFCLASS32" } else { "invalid" }
            ),
            HeaderFault::Endianness => {
                format!("{field} {found}: not little-endian (ELFDATA2LSB)")
            }
            HeaderFault::Expected { expected } => format!("{field} {found} (expected {expected})"),
            HeaderFault::OsAbi => format!("OS ABI {found} (expected 0, SYSV, or 3, GNU)"),
            HeaderFault::AbiVersion { osabi } => format!("ABI version {found} for OS ABI {osabi}"),
            HeaderFault::Padding { byte } => {
                format!("nonzero padding in e_ident at byte {byte}: {found:#x}")
            }
            HeaderFault::Machine => format!(
                "{field} {found} ({}): not x86-64 (62)",
                goblin::elf::header::machine_to_str(found as u16)
            ),
            HeaderFault::Type => format!(
                "{field} {found} ({}): only ET_DYN objects can be loaded",
                goblin::elf::header::et_to_str(found as u16)
            ),
            HeaderFault::OutOfRange { min, max } => {
                format!("{field} {found} (must be {min} to {max})")
            }
            HeaderFault::PastEnd { size } => format!(
                "program headers at {field} {found:#x} ({size} bytes) extend past the end of the file"
            ),
            HeaderFault::Overflows => format!("{field} {found:#x} overflows"),
            HeaderFault::NotRegular => format!("not a regular file (st_mode {found:#o})"),
            HeaderFault::NulInPath => format!("path contains a NUL byte (at byte {found})"),
        }
    }
}

/// The program header a [`SegmentFault`] concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SegmentName {
    /// The PT_LOAD at this index of the program header table.
    Load(usize),
    /// The PT_LOAD segments as a whole.
    Loads,
    /// PT_DYNAMIC.
    Dynamic,
    /// PT_GNU_RELRO.
    Relro,
    /// PT_TLS.
    Tls,
}

impl fmt::Display for SegmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SegmentName::Load(i) => write!(f, "PT_LOAD segment {i}"),
            SegmentName::Loads => f.write_str("PT_LOAD"),
            SegmentName::Dynamic => f.write_str("PT_DYNAMIC"),
            SegmentName::Relro => f.write_str("PT_GNU_RELRO"),
            SegmentName::Tls => f.write_str("PT_TLS"),
        }
    }
}

/// What was wrong with a program header's field (`field` and `found` are
/// the variant's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SegmentFault {
    /// `found` + the field `plus` (`size`) overflows 64 bits.
    Overflows {
        /// The field added to `found`.
        plus: &'static str,
        /// Its value.
        size: u64,
    },
    /// `found` + `plus` (`size`) ends past the end of the file.
    PastEndOfFile {
        /// The field added to `found`.
        plus: &'static str,
        /// Its value.
        size: u64,
        /// The size of the file.
        file_size: u64,
    },
    /// The value is larger than the field `than` (`limit`).
    Larger {
        /// The field it must not exceed.
        than: &'static str,
        /// Its value.
        limit: u64,
    },
    /// `found` + `plus` (`size`) is beyond the 47-bit address space.
    BeyondAddressSpace {
        /// The field added to `found`.
        plus: &'static str,
        /// Its value.
        size: u64,
    },
    /// An alignment that is not a power of two.
    NotPowerOfTwo,
    /// The value is above minld's limit for it.
    AboveLimit {
        /// The limit.
        limit: u64,
    },
    /// p_vaddr (`found`) and p_offset differ modulo the page size.
    NotCongruent {
        /// The p_offset.
        offset: u64,
        /// The page size.
        page: u64,
    },
    /// p_vaddr (`found`) is below the end of the PT_LOAD before it.
    Overlaps {
        /// That segment's index.
        previous: usize,
        /// Its end: p_vaddr + p_memsz.
        end: u64,
    },
    /// The file has no such segment (`found` is its p_type).
    Missing,
    /// The segment at p_vaddr `found` is not inside the PT_LOAD memory it
    /// must lie in.
    NotInside {
        /// The size field checked (`p_memsz`, or `p_filesz` for file data).
        size_field: &'static str,
        /// Its value.
        size: u64,
        /// What the PT_LOAD must be: `writable`, `readable`, or a
        /// segment's `file data`.
        within: &'static str,
    },
    /// PT_TLS (p_vaddr `found`) cannot be given a TLS block.
    BadTls {
        /// Its p_filesz.
        filesz: u64,
        /// Its p_memsz.
        memsz: u64,
        /// Its p_align.
        align: u64,
    },
}

impl SegmentFault {
    /// The message for `field` of `seg` holding `found`.
    pub(crate) fn render(&self, seg: SegmentName, field: &str, found: u64) -> String {
        match *self {
            SegmentFault::Overflows { plus, size } => {
                format!("{seg}: {field} {found:#x} + {plus} {size:#x} overflows")
            }
            SegmentFault::PastEndOfFile {
                plus,
                size,
                file_size,
            } => format!(
                "{seg}: {field} {found:#x} + {plus} {size:#x} = {:#x} is past the end of the file ({file_size:#x} bytes)",
                found.wrapping_add(size)
            ),
            SegmentFault::Larger { than, limit } => {
                format!("{seg}: {field} {found:#x} is larger than {than} {limit:#x}")
            }
            SegmentFault::BeyondAddressSpace { plus, size } => {
                format!("{seg}: {field} {found:#x} + {plus} {size:#x} is beyond the address space")
            }
            SegmentFault::NotPowerOfTwo => format!("{seg}: {field} {found:#x} is not a power of two"),
            SegmentFault::AboveLimit { limit } if seg == SegmentName::Tls => format!(
                "{seg}: {field} {found:#x} is larger than minld's limit for a TLS block ({limit:#x})"
            ),
            SegmentFault::AboveLimit { limit } => format!(
                "{seg}: {field} {found:#x} is larger than minld's limit ({limit:#x}): \
                 the reservation would be p_align bytes larger than the image"
            ),
            SegmentFault::NotCongruent { offset, page } => format!(
                "{seg}: {field} {found:#x} and p_offset {offset:#x} are not congruent modulo the page size ({page:#x})"
            ),
            SegmentFault::Overlaps { previous, end } => format!(
                "{seg}: {field} {found:#x} is below the end {end:#x} of PT_LOAD segment {previous}: \
                 segments out of order or overlapping"
            ),
            SegmentFault::Missing if seg == SegmentName::Dynamic => {
                format!("no {seg} segment: not a dynamic object")
            }
            SegmentFault::Missing => format!("no {seg} segment"),
            SegmentFault::NotInside {
                size_field,
                size,
                within,
            } => {
                let what = if seg == SegmentName::Tls {
                    "PT_TLS (its initialisation image)"
                } else {
                    ""
                };
                let what = if what.is_empty() { seg.to_string() } else { what.to_string() };
                if within == "file data" {
                    format!("{what} at {field} {found:#x} ({size_field} {size:#x}) lies outside every PT_LOAD segment's file data")
                } else {
                    format!("{what} at {field} {found:#x} ({size_field} {size:#x}) is not inside a {within} PT_LOAD segment")
                }
            }
            SegmentFault::BadTls {
                filesz,
                memsz,
                align,
            } => format!(
                "{seg}: bad TLS segment (vaddr {found:#x}, filesz {filesz:#x}, memsz {memsz:#x}, align {align:#x})"
            ),
        }
    }
}

/// What was wrong with a tag of the dynamic section or a table it locates
/// (`field` and `found` are the variant's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DynamicFault {
    /// The tag is absent.
    Missing,
    /// The table at `found` does not lie inside the object's readable
    /// memory; `count` of `unit` is its size, where known.
    Outside {
        /// Its size, where known.
        count: Option<u64>,
        /// What `count` counts (`bytes`, `entries`, `symbols`).
        unit: &'static str,
    },
    /// The field must hold `expected`.
    Expected {
        /// The only value accepted.
        expected: u64,
    },
    /// A string offset (`found`) outside DT_STRTAB.
    StringOutside {
        /// DT_STRSZ.
        strsz: u64,
    },
    /// A table size (`found`) given without the table's address.
    SizeWithoutAddress,
    /// A table size (`found`) that is not a multiple of its entry size.
    NotMultiple {
        /// The entry size.
        entry: u64,
    },
    /// An offset (`found`) that overflows the address space.
    Overflows,
    /// The DT_GNU_HASH header (at `found`) is inconsistent.
    GnuHashHeader {
        /// Its nbuckets.
        nbuckets: u64,
        /// Its Bloom filter size, in words.
        bloom_size: u64,
        /// Its Bloom shift.
        shift: u64,
    },
    /// A DT_GNU_HASH bucket (`found`) names no symbol of the table.
    BucketOutside {
        /// The first hashed symbol.
        symoffset: u64,
        /// The symbol count.
        nsyms: u64,
    },
    /// No DT_NULL before the end of the segment (`found` entries read).
    Unterminated,
    /// An init function's address (`found`) is outside the object's code.
    NotInCode,
    /// A TLS symbol (value `found`) in an object without a PT_TLS segment.
    NoTlsSegment,
}

impl DynamicFault {
    /// The message for `field` holding `found`.
    pub(crate) fn render(&self, field: &str, found: u64) -> String {
        match *self {
            DynamicFault::Missing => format!("no {field}"),
            DynamicFault::Outside { count: None, .. } => {
                format!("{field} at {found:#x} outside the image")
            }
            DynamicFault::Outside {
                count: Some(n),
                unit,
            } => format!("{field} at {found:#x} ({n} {unit}) outside the image"),
            DynamicFault::Expected { expected } => format!("{field} {found} (expected {expected})"),
            DynamicFault::StringOutside { strsz } => {
                format!("{field} string offset {found:#x} outside DT_STRTAB (size {strsz})")
            }
            DynamicFault::SizeWithoutAddress => {
                format!("{field} size {found} without an address")
            }
            DynamicFault::NotMultiple { entry } => {
                format!("{field} size {found} is not a multiple of its entry size {entry}")
            }
            DynamicFault::Overflows => format!("{field} {found:#x} overflows"),
            DynamicFault::GnuHashHeader {
                nbuckets,
                bloom_size,
                shift,
            } => format!(
                "{field} header at {found:#x}: nbuckets {nbuckets}, bloom size {bloom_size}, shift {shift}"
            ),
            DynamicFault::BucketOutside { symoffset, nsyms } => {
                format!("{field} {found} outside symbols {symoffset}..{nsyms}")
            }
            DynamicFault::Unterminated => {
                format!("no {field} before the end of the segment ({found} entries)")
            }
            DynamicFault::NotInCode => {
                format!("{field} {found:#x} is outside the object's code")
            }
            DynamicFault::NoTlsSegment => format!(
                "a TLS symbol ({field} {found:#x}) in an object without a PT_TLS segment"
            ),
        }
    }
}

/// What was wrong with a linker script.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScriptFault {
    /// A `/*` without its `*/`.
    #[error("unterminated comment at byte {at}")]
    UnterminatedComment {
        /// Where the comment opens.
        at: usize,
    },
    /// A command not followed by `(`.
    #[error("expected `(' after `{command}'")]
    ExpectedParen {
        /// The command.
        command: String,
    },
    /// A command whose parentheses do not close.
    #[error("unbalanced parentheses in `{command}'")]
    Unbalanced {
        /// The command.
        command: String,
    },
    /// Every member is AS_NEEDED: there is no library to open.
    #[error("names no library outside AS_NEEDED")]
    NoLibrary,
    /// A member is itself a linker script.
    #[error("member {} is itself a linker script", .member.display())]
    NestedScript {
        /// The member.
        member: PathBuf,
    },
    /// A DT_NEEDED entry led to a script.
    #[error("a linker script cannot be a dependency (DT_NEEDED {needed} of {})", .of.display())]
    Dependency {
        /// The DT_NEEDED entry.
        needed: String,
        /// The library that has it.
        of: PathBuf,
    },
    /// `Loader::map` was given a script.
    #[error("a linker script cannot be mapped; open it with Loader::open")]
    NotMappable,
}

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

/// A feature minld does not implement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Feature {
    /// DT_REL or DT_RELSZ (x86-64 uses DT_RELA).
    #[error("DT_REL relocations (x86-64 uses DT_RELA)")]
    Rel,
    /// `Library::get::<T>` with a T that is not pointer-sized.
    #[error("Library::get::<T> with a {bytes}-byte T: symbols are pointer-sized")]
    SymbolSize {
        /// The size of T.
        bytes: usize,
    },
    /// An ifunc looked up in a library linked without running code.
    #[error("{symbol} is an ifunc, whose resolver would run; the library was linked without running code (Loader::link)")]
    IfuncWithoutCode {
        /// The symbol.
        symbol: String,
    },
}
