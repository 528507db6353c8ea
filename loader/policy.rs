//! Checks on a library and everything it would bring in, made before any
//! of it is loaded for use and without running any of its code: the first
//! level of hygiene for plugins a host did not write.
//!
//! This is hygiene, not isolation: a library that passes can still do
//! anything native code can once it runs.

use std::fmt;
use std::path::{Path, PathBuf};

use goblin::elf::program_header as ph;
use goblin::elf::sym as st;

use crate::error::Error;
use crate::host;
use crate::search::{self, Found, Requester};
use crate::symbols::Symbols;
use crate::sys::Sys;
use crate::validate;

/// What a library and its dependencies must satisfy.
///
/// ```no_run
/// let policy = minld::Policy::strict().permit_dir("/opt/plugins").permit_dir("/usr/lib/x86_64-linux-gnu");
/// let report = minld::policy::check("/opt/plugins/libfoo.so", &policy)?;
/// for f in &report.findings {
///     println!("{f}");
/// }
/// # Ok::<(), minld::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Policy {
    permitted_dirs: Vec<PathBuf>,
    allow_writable_code: bool,
    allow_text_relocations: bool,
    allow_executable_stack: bool,
    require_relro: bool,
    require_bind_now: bool,
}

impl Policy {
    /// Every check on: no segment both writable and executable, no
    /// DT_TEXTREL, no executable stack, PT_GNU_RELRO present, BIND_NOW, and
    /// (once a directory is permitted) dependencies and RUNPATH entries only
    /// inside permitted directories. [`Loader::policy`](crate::Loader::policy)
    /// refuses a load on any finding.
    pub fn strict() -> Self {
        Policy {
            permitted_dirs: Vec::new(),
            allow_writable_code: false,
            allow_text_relocations: false,
            allow_executable_stack: false,
            require_relro: true,
            require_bind_now: true,
        }
    }

    /// Permits loading from `dir` (and its subdirectories). With no
    /// directory permitted, locations are not checked.
    pub fn permit_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.permitted_dirs.push(dir.into());
        self
    }

    /// Whether lazy binding (no BIND_NOW) is a finding (true in `strict`).
    pub fn require_bind_now(mut self, on: bool) -> Self {
        self.require_bind_now = on;
        self
    }

    /// Whether a missing PT_GNU_RELRO is a finding (true in `strict`).
    pub fn require_relro(mut self, on: bool) -> Self {
        self.require_relro = on;
        self
    }

    /// Inside a permitted directory, comparing the real paths (symbolic
    /// links resolved: /lib is /usr/lib on Debian).
    fn permitted(&self, path: &Path) -> bool {
        if self.permitted_dirs.is_empty() {
            return true;
        }
        let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let path = real(path);
        self.permitted_dirs
            .iter()
            .any(|d| path.starts_with(real(d)))
    }
}

/// One way a library breaks a [`Policy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FindingKind {
    /// A PT_LOAD segment both writable and executable.
    WritableAndExecutable,
    /// DT_TEXTREL: relocations inside read-only (code) segments.
    TextRelocations,
    /// PT_GNU_STACK asks for an executable stack.
    ExecutableStack,
    /// No PT_GNU_RELRO: its GOT stays writable after loading.
    NoRelro,
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
    /// DT_INIT (0 or 1) plus the DT_INIT_ARRAY entries.
    pub init_functions: usize,
    /// IRELATIVE relocations and STT_GNU_IFUNC symbols it defines.
    pub ifunc_resolvers: usize,
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

/// Checks `name` (found as `Loader::open` would find it) and every
/// dependency it would bring in, against `policy`. Nothing is linked and
/// none of their code runs: each file is validated and mapped read-only
/// for reading its dynamic section, then unmapped.
pub fn check(name: impl AsRef<Path>, policy: &Policy) -> Result<Report, Error> {
    check_with(
        &Sys { trace: false },
        &name.as_ref().to_string_lossy(),
        policy,
        &[],
        None,
    )
}

/// The object that needs a name: its path, DT_RPATH and DT_RUNPATH.
type Needer = (PathBuf, Option<String>, Option<String>);

pub(crate) fn check_with(
    sys: &Sys,
    name: &str,
    policy: &Policy,
    extra: &[PathBuf],
    confined: Option<&[PathBuf]>,
) -> Result<Report, Error> {
    let mut report = Report::default();
    let mut queue: Vec<(String, Option<Needer>)> = vec![(name.to_string(), None)];
    while let Some((n, req)) = queue.pop() {
        // glibc's own libraries are glibc, not the plugin's.
        let base = n.rsplit('/').next().unwrap_or(&n);
        if host::glibc_target(&n).is_some() || matches!(base, "libm.so.6" | "libmvec.so.1") {
            continue;
        }
        let r = req.as_ref().map(|(p, rpath, runpath)| Requester {
            path: p,
            rpath: rpath.as_deref(),
            runpath: runpath.as_deref(),
        });
        // The file the load would open: a namespace searches only its
        // permitted directories.
        let found = match confined {
            Some(dirs) => search::find_confined(sys, &n, r.as_ref(), dirs)?,
            None => search::find(sys, &n, r.as_ref(), extra)?,
        };
        let opened = match found {
            Found::Elf(o) => o,
            Found::Script { members, .. } => {
                for m in members.iter().filter(|m| !m.as_needed) {
                    queue.push((m.name.clone(), None));
                }
                continue;
            }
        };
        if report.checked.contains(&opened.path) {
            continue;
        }
        if let Some((parent, _, _)) = &req {
            if !policy.permitted(&opened.path) {
                report.findings.push(Finding {
                    path: parent.clone(),
                    kind: FindingKind::DependencyOutsidePermitted,
                    detail: format!("DT_NEEDED {n} found at {}", opened.path.display()),
                });
            }
        } else if !policy.permitted(&opened.path) {
            report.findings.push(Finding {
                path: opened.path.clone(),
                kind: FindingKind::DependencyOutsidePermitted,
                detail: "the library itself is outside the permitted directories".to_string(),
            });
        }
        let path = opened.path.clone();
        report.checked.push(path.clone());
        let headers = validate::read_headers(sys, &opened.fd, &path, &opened.first, true)?;
        for (i, p) in headers.phdrs.iter().enumerate() {
            if p.p_type == ph::PT_LOAD
                && p.p_flags & ph::PF_W != 0
                && p.p_flags & ph::PF_X != 0
                && !policy.allow_writable_code
            {
                report.findings.push(Finding {
                    path: path.clone(),
                    kind: FindingKind::WritableAndExecutable,
                    detail: format!("PT_LOAD segment {i} at p_vaddr {:#x} is RWX", p.p_vaddr),
                });
            }
            if p.p_type == ph::PT_GNU_STACK
                && p.p_flags & ph::PF_X != 0
                && !policy.allow_executable_stack
            {
                report.findings.push(Finding {
                    path: path.clone(),
                    kind: FindingKind::ExecutableStack,
                    detail: format!("PT_GNU_STACK p_flags {:#x}", p.p_flags),
                });
            }
        }
        if policy.require_relro && !headers.phdrs.iter().any(|p| p.p_type == ph::PT_GNU_RELRO) {
            report.findings.push(Finding {
                path: path.clone(),
                kind: FindingKind::NoRelro,
                detail: "no PT_GNU_RELRO segment".to_string(),
            });
        }
        // The dynamic section, read from a read-only mapping of the file.
        let (image, mem, d) = crate::load::map_and_read_dynamic(sys, &opened.fd, &headers, &path)?;
        drop(opened);
        if d.textrel() && !policy.allow_text_relocations {
            report.findings.push(Finding {
                path: path.clone(),
                kind: FindingKind::TextRelocations,
                detail: "DT_TEXTREL".to_string(),
            });
        }
        if policy.require_bind_now && !d.bind_now() {
            report.findings.push(Finding {
                path: path.clone(),
                kind: FindingKind::NotBindNow,
                detail: format!("DT_FLAGS {:#x}, DT_FLAGS_1 {:#x}", d.flags, d.flags_1),
            });
        }
        let origin = path.parent().map(Path::to_path_buf);
        for (tag, list) in [("DT_RUNPATH", &d.runpath), ("DT_RPATH", &d.rpath)] {
            for entry in list.iter().flat_map(|l| l.split(':')) {
                let expanded =
                    search::expand(entry, origin.as_deref()).unwrap_or_else(|| entry.to_string());
                if !policy.permitted(Path::new(&expanded)) {
                    report.findings.push(Finding {
                        path: path.clone(),
                        kind: FindingKind::SearchPathOutsidePermitted,
                        detail: format!("{tag} entry {entry} ({expanded})"),
                    });
                }
            }
        }
        let symbols = Symbols::new(&path, &mem, &d)?;
        let ifunc_symbols = (1..symbols.len())
            .filter_map(|i| symbols.sym(i))
            .filter(|s| s.st_info & 0xf == st::STT_GNU_IFUNC && s.st_shndx != 0)
            .count();
        let irelative = d
            .rela
            .iter()
            .chain(d.jmprel.iter())
            .filter(|r| r.r_info & 0xffff_ffff == 37)
            .count();
        report.code_at_load.push(CodeAtLoad {
            path: path.clone(),
            init_functions: usize::from(d.init.is_some())
                + d.init_array
                    .iter()
                    .filter(|&a| a != 0 && a != usize::MAX)
                    .count(),
            ifunc_resolvers: ifunc_symbols + irelative,
        });
        for n in d.needed.iter().rev() {
            queue.push((
                n.clone(),
                Some((path.clone(), d.rpath.clone(), d.runpath.clone())),
            ));
        }
        drop(image);
    }
    Ok(report)
}
