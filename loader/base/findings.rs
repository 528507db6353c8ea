//! What a policy check finds: the findings and the report, in the base
//! layer so that an error can carry a report without knowing the checks.

use std::fmt;
use std::path::PathBuf;

/// One way a library breaks a [`Policy`](crate::Policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FindingKind {
    /// A PT_LOAD segment both writable and executable.
    WritableAndExecutable,
    /// DT_TEXTREL: relocations inside read-only (code) segments.
    TextRelocations,
    /// PT_GNU_STACK asks for an executable stack, or there is no
    /// PT_GNU_STACK at all: on x86-64 glibc then gives the process an
    /// executable stack (its default stack flags have PF_X). The detail
    /// says which.
    ExecutableStack,
    /// No PT_GNU_RELRO: its GOT stays writable after loading.
    NoRelro,
    /// A PT_GNU_RELRO that leaves GOT words out of the pages it makes
    /// read-only (an empty one, p_memsz 0, protects nothing): GLOB_DAT
    /// targets, and with BIND_NOW the JUMP_SLOT targets and the word at
    /// DT_PLTGOT, stay writable after loading. The detail lists them.
    GotOutsideRelro,
    /// Not linked with BIND_NOW: its PLT is bound lazily.
    NotBindNow,
    /// A dependency would come from outside the permitted directories.
    DependencyOutsidePermitted,
    /// A DT_RUNPATH / DT_RPATH entry points outside them.
    SearchPathOutsidePermitted,
}

/// A finding: which library, what, and the value found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The library it concerns.
    pub path: PathBuf,
    /// What is wrong.
    pub kind: FindingKind,
    /// The value found (segment, path, flags).
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {:?}: {}",
            self.path.display(),
            self.kind,
            self.detail
        )
    }
}

/// Code a load would run before returning: init functions and ifunc
/// resolvers (not findings: nearly every library has them; listed so a
/// host knows what runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeAtLoad {
    /// The library.
    pub path: PathBuf,
    /// DT_INIT (0 or 1) plus the DT_INIT_ARRAY entries that run (all but
    /// those that stay 0 or -1, [`InitEntry::Skipped`]).
    pub init_functions: usize,
    /// Every DT_INIT_ARRAY entry (DT_INIT_ARRAYSZ / 8 of them), in order,
    /// as relocation will fill it.
    pub init_array: Vec<InitEntry>,
    /// IRELATIVE relocations and STT_GNU_IFUNC symbols it defines.
    pub ifunc_resolvers: usize,
}

/// One DT_INIT_ARRAY entry as the load fills it. In PIC code a relocation
/// at the word's address gives the value, and the word in the file may be
/// 0: always under a symbol relocation, and under RELATIVE ones when the
/// linker writes no addends into the section (lld's default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitEntry {
    /// A function of the library at this virtual address: the addend of
    /// the RELATIVE relocation of the word, or the word itself when DT_RELR
    /// relocates it.
    Function(u64),
    /// The address of a symbol plus an addend (R_X86_64_64 or GLOB_DAT
    /// against it), found at load: possibly in another library.
    Symbol {
        /// The symbol's name.
        name: String,
        /// The relocation's addend.
        addend: i64,
    },
    /// Filled by a relocation of another type (an IRELATIVE: what a
    /// resolver returns).
    Other(crate::base::relocs::RelocKind),
    /// A word no relocation touches, used as it is (an absolute address,
    /// which minld refuses unless it lies in the library's code).
    Absolute(u64),
    /// 0 or -1, which no relocation touches: skipped, nothing runs.
    Skipped,
}

/// Everything a check found, for the library and each dependency minld
/// would map (glibc's own libraries are the host's and are not checked).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The libraries checked, the root first.
    pub checked: Vec<PathBuf>,
    /// Every finding, not only the first.
    pub findings: Vec<Finding>,
    /// What would run at load.
    pub code_at_load: Vec<CodeAtLoad>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} finding(s)", self.findings.len())?;
        for x in &self.findings {
            write!(f, "; {x}")?;
        }
        Ok(())
    }
}
