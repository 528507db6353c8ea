//! Faults of the ELF header and of the file as a whole: [`HeaderFault`],
//! and [`ExecutableKind`] for a file taken for an executable.

use std::fmt;

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
