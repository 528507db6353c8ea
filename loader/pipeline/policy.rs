//! Checks on a library and everything it would bring in, made before any
//! of it is loaded for use and without running any of its code: the first
//! level of hygiene for plugins a host did not write.
//!
//! This is hygiene, not isolation: a library that passes can still do
//! anything native code can once it runs.

use std::path::{Path, PathBuf};

use goblin::elf::program_header::{self as ph, ProgramHeader};
use goblin::elf::sym as st;
use goblin::elf64::reloc::Rela;

use crate::base::error::Error;
pub use crate::base::findings::{CodeAtLoad, Finding, FindingKind, InitEntry, Report};
use crate::elf::dynamic::Dynamic;
use crate::elf::symbols::Symbols;
use crate::os::sys::Sys;
use crate::pipeline::search::{self, Found, Requester};
use crate::pipeline::validate;
use crate::process::host;

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
    )
}

/// The object that needs a name, as the search asks for it.
struct Needer {
    /// Its path.
    path: PathBuf,
    /// Its DT_RPATH.
    rpath: Option<String>,
    /// Its DT_RUNPATH.
    runpath: Option<String>,
    /// The DT_RPATHs it inherits from the objects that brought it in.
    inherited: Vec<(PathBuf, String)>,
    /// Its DF_1_NODEFLIB.
    nodeflib: bool,
}

/// The check behind [`check`]: searches as an unconfined load would, opens
/// and maps each file once, and checks that mapping. (A load checks the
/// objects it maps instead, see [`check_loaded`].)
fn check_with(sys: &Sys, name: &str, policy: &Policy, extra: &[PathBuf]) -> Result<Report, Error> {
    let mut report = Report::default();
    let mut queue: Vec<(String, Option<Needer>)> = vec![(name.to_string(), None)];
    while let Some((n, req)) = queue.pop() {
        // glibc's own libraries are glibc, not the plugin's.
        if host::glibc_target(&n).is_some() {
            continue;
        }
        let r = req.as_ref().map(|q| Requester {
            path: &q.path,
            rpath: q.rpath.as_deref(),
            runpath: q.runpath.as_deref(),
            inherited: &q.inherited,
            nodeflib: q.nodeflib,
        });
        let opened = match search::find(sys, &n, r.as_ref(), extra)? {
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
        let path = opened.path.clone();
        let headers =
            validate::read_headers(sys, &opened.fd, &path, &opened.first, opened.stat, true)?;
        // libm and libmvec beside the host's libc, known by the file found
        // (never by the name asked for).
        if host::is_glibc_family(headers.stat.dev, headers.stat.ino) {
            continue;
        }
        let needed = req.as_ref().map(|q| (q.path.as_path(), n.as_str()));
        check_location(policy, &mut report, &path, needed);
        // The dynamic section, read from a mapping of the file.
        let mut mapped =
            crate::pipeline::map::map_and_read_dynamic(sys, &opened.fd, &headers, &path)?;
        drop(opened);
        mapped.read_symbols()?;
        let (d, image) = (mapped.dynamic(), mapped.image());
        if let Some(symbols) = mapped.symbols() {
            check_image(
                policy,
                &mut report,
                &path,
                &headers.phdrs,
                (d, symbols, image.bias.0),
            );
        }
        // What this object inherits: the RPATH of the one that needed it
        // (none with a RUNPATH), then what that one inherits.
        let inherited: Vec<(PathBuf, String)> = req
            .iter()
            .flat_map(|q| {
                let own = q
                    .rpath
                    .as_ref()
                    .filter(|_| q.runpath.is_none())
                    .map(|rp| (q.path.clone(), rp.clone()));
                own.into_iter().chain(q.inherited.iter().cloned())
            })
            .collect();
        for n in d.needed.iter().rev() {
            let needer = Needer {
                path: path.clone(),
                rpath: d.rpath.clone(),
                runpath: d.runpath.clone(),
                inherited: inherited.clone(),
                nodeflib: d.nodeflib(),
            };
            queue.push((n.clone(), Some(needer)));
        }
        drop(mapped);
    }
    Ok(report)
}

use crate::base::relocs::{self, r::GLOB_DAT as R_GLOB_DAT, r::JUMP_SLOT as R_JUMP_SLOT};
use crate::base::relocs::{r::R64 as R_64, r::RELATIVE as R_RELATIVE};

/// Calls `f` with each virtual address DT_RELR relocates: an even word is
/// an address, an odd one a bitmap of the 63 words after the last address.
fn relr_each(d: &Dynamic, mut f: impl FnMut(u64)) {
    let mut next = 0u64;
    for entry in d.relr.iter() {
        if entry & 1 == 0 {
            f(entry);
            next = entry.wrapping_add(8);
        } else {
            for i in (0..63).filter(|i| (entry >> 1) >> i & 1 != 0) {
                f(next.wrapping_add(8 * i));
            }
            next = next.wrapping_add(63 * 8);
        }
    }
}

/// Each DT_INIT_ARRAY entry, resolved through the relocation that fills
/// it: the last one in DT_RELA at the word's address (applied after
/// DT_RELR), else DT_RELR, else the word as it is in the file. One pass
/// over each table.
fn init_entries(d: &Dynamic, symbols: &Symbols, bias: usize) -> Vec<InitEntry> {
    let n = d.init_array.len();
    let start = d.init_array.addr().wrapping_sub(bias) as u64;
    let slot = |at: u64| {
        at.checked_sub(start)
            .filter(|o| o % 8 == 0 && o / 8 < n as u64)
            .map(|o| (o / 8) as usize)
    };
    let mut rela: Vec<Option<Rela>> = vec![None; n];
    for r in d.rela.iter() {
        if let Some(i) = slot(r.r_offset) {
            rela[i] = Some(r);
        }
    }
    let mut relr = vec![false; n];
    relr_each(d, |at| {
        if let Some(i) = slot(at) {
            relr[i] = true;
        }
    });
    let name = |symi: usize| {
        let s = symbols.sym(symi)?;
        Some(String::from_utf8_lossy(symbols.name(&s)?).into_owned())
    };
    (0..n)
        .map(|i| {
            let word = d.init_array.get(i).unwrap_or(0) as u64;
            match rela[i] {
                Some(r) => {
                    let (symi, t) = relocs::split_info(r.r_info);
                    match (t, name(symi).filter(|_| symi != 0)) {
                        (R_RELATIVE, _) => InitEntry::Function(r.r_addend as u64),
                        (R_64 | R_GLOB_DAT, Some(name)) => InitEntry::Symbol {
                            name,
                            addend: r.r_addend,
                        },
                        (R_64, None) => InitEntry::Absolute(r.r_addend as u64),
                        _ => InitEntry::Other(crate::RelocKind(t)),
                    }
                }
                None if relr[i] => InitEntry::Function(word),
                None if word == 0 || word == u64::MAX => InitEntry::Skipped,
                None => InitEntry::Absolute(word),
            }
        })
        .collect()
}

/// The GOT words a PT_GNU_RELRO leaves writable: GLOB_DAT targets, and
/// with BIND_NOW the JUMP_SLOT targets and the word at DT_PLTGOT, outside
/// the pages `MappedImage::protect_relro` makes read-only (both ends
/// rounded down to a page). None when it covers them all.
fn got_outside_relro(relro: &ProgramHeader, d: &Dynamic, bias: usize) -> Option<String> {
    let page = crate::os::sys::page_size() as u64;
    let lo = relro.p_vaddr & !(page - 1);
    let hi = relro.p_vaddr.saturating_add(relro.p_memsz) & !(page - 1);
    let now = d.bind_now();
    let mut outside: Vec<String> = Vec::new();
    let mut count = 0usize;
    let mut note = |what: &str, at: u64| {
        if at < lo || at.saturating_add(8) > hi {
            count += 1;
            if outside.len() < 8 {
                outside.push(format!("{what} {at:#x}"));
            }
        }
    };
    for table in [&d.rela, &d.jmprel] {
        for r in table.iter() {
            match relocs::split_info(r.r_info).1 {
                R_GLOB_DAT => note("GLOB_DAT", r.r_offset),
                R_JUMP_SLOT if now => note("JUMP_SLOT", r.r_offset),
                _ => {}
            }
        }
    }
    if let Some(got) = d.pltgot.filter(|_| now) {
        note("DT_PLTGOT", got.wrapping_sub(bias) as u64);
    }
    (count > 0).then(|| {
        format!(
            "PT_GNU_RELRO at p_vaddr {:#x} (p_memsz {:#x}) makes {lo:#x}..{hi:#x} read-only; \
             {count} GOT word(s) outside it stay writable: {}{}",
            relro.p_vaddr,
            relro.p_memsz,
            outside.join(", "),
            if count > outside.len() { ", ..." } else { "" }
        )
    })
}

/// Checks the objects a load mapped or reused, each on its own mapping:
/// what is checked is what will run, whatever another process did at its
/// path meanwhile. Each comes with the object and DT_NEEDED entry that
/// brought it in (None: the library asked for, first). glibc's libm and
/// libmvec (known by the file) are not checked, nor the host's objects
/// (not mapped by the load). An executable stack the policy allowed is
/// still refused, as by a load without a policy.
pub(crate) fn check_loaded(
    policy: &Policy,
    objects: &[(&crate::model::object::Object, Option<(&Path, &str)>)],
) -> Result<(), Error> {
    let mut report = Report::default();
    for &(o, needed) in objects {
        if host::is_glibc_family(o.dev_ino.0, o.dev_ino.1) || report.checked.contains(&o.path) {
            continue;
        }
        check_location(policy, &mut report, &o.path, needed);
        check_image(
            policy,
            &mut report,
            &o.path,
            &o.image.phdrs,
            (&o.dynamic, &o.symbols, o.image.bias.0),
        );
    }
    if let Some((root, _)) = objects.first().filter(|_| !report.findings.is_empty()) {
        return Err(Error::Policy {
            path: root.path.clone(),
            report,
        });
    }
    for (o, _) in objects {
        if let Some(p) = o.image.phdr(ph::PT_GNU_STACK) {
            if p.p_flags & ph::PF_X != 0 {
                return Err(Error::ExecutableStack {
                    path: o.path.clone(),
                    flags: p.p_flags,
                });
            }
        }
    }
    Ok(())
}

/// Where a library was found: inside the permitted directories, and is
/// checked (added to `report.checked`).
fn check_location(
    policy: &Policy,
    report: &mut Report,
    path: &Path,
    needed: Option<(&Path, &str)>,
) {
    if let Some((parent, n)) = needed {
        if !policy.permitted(path) {
            report.findings.push(Finding {
                path: parent.to_path_buf(),
                kind: FindingKind::DependencyOutsidePermitted,
                detail: format!("DT_NEEDED {n} found at {}", path.display()),
            });
        }
    } else if !policy.permitted(path) {
        report.findings.push(Finding {
            path: path.to_path_buf(),
            kind: FindingKind::DependencyOutsidePermitted,
            detail: "the library itself is outside the permitted directories".to_string(),
        });
    }
    report.checked.push(path.to_path_buf());
}

/// One library's own findings and the code it would run at load, from its
/// program headers, dynamic section and symbols.
fn check_image(
    policy: &Policy,
    report: &mut Report,
    path: &Path,
    phdrs: &[ProgramHeader],
    (d, symbols, bias): (&Dynamic, &Symbols, usize),
) {
    let path = path.to_path_buf();
    if !phdrs.iter().any(|p| p.p_type == ph::PT_GNU_STACK) && !policy.allow_executable_stack {
        report.findings.push(Finding {
            path: path.clone(),
            kind: FindingKind::ExecutableStack,
            detail: "no PT_GNU_STACK: on x86-64 that means an executable stack".to_string(),
        });
    }
    for (i, p) in phdrs.iter().enumerate() {
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
    let relro = phdrs.iter().find(|p| p.p_type == ph::PT_GNU_RELRO);
    match relro {
        None if policy.require_relro => report.findings.push(Finding {
            path: path.clone(),
            kind: FindingKind::NoRelro,
            detail: "no PT_GNU_RELRO segment".to_string(),
        }),
        Some(relro) if policy.require_relro => {
            if let Some(detail) = got_outside_relro(relro, d, bias) {
                report.findings.push(Finding {
                    path: path.clone(),
                    kind: FindingKind::GotOutsideRelro,
                    detail,
                });
            }
        }
        _ => {}
    }
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
    let ifunc_symbols = (1..symbols.len())
        .filter_map(|i| symbols.sym(i))
        .filter(|s| s.st_info & 0xf == st::STT_GNU_IFUNC && s.st_shndx != 0)
        .count();
    let irelative = d
        .rela
        .iter()
        .chain(d.jmprel.iter())
        .filter(|r| relocs::class(relocs::split_info(r.r_info).1) == Some(relocs::Class::IRelative))
        .count();
    let init_array = init_entries(d, symbols, bias);
    report.code_at_load.push(CodeAtLoad {
        path,
        init_functions: usize::from(d.init.is_some())
            + init_array
                .iter()
                .filter(|e| **e != InitEntry::Skipped)
                .count(),
        init_array,
        ifunc_resolvers: ifunc_symbols + irelative,
    });
}
