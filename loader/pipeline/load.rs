//! The load pipeline end to end: search, validate, map, read the dynamic
//! section, gather dependencies breadth-first, check versions, relocate
//! dependencies before dependents, protect RELRO, run init functions.
//!
//! Everything a failed load took is released by dropping what it made:
//! objects it mapped are unmapped (no fini: their init never ran) and
//! objects it reused lose the reference it took.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use goblin::elf::program_header as ph;

use crate::base::error::Error;
use crate::elf::dynamic::DF_1_PIE;
use crate::elf::symbols::{Symbols, Version};
use crate::model::object::live;
use crate::model::object::{Dep, Object, ScopeRef};
use crate::model::registry::{Registry, Uniques};
use crate::os::debug::{self, Category};
use crate::os::sys::Sys;
use crate::pipeline::init;
use crate::pipeline::map;
use crate::pipeline::reloc;
use crate::pipeline::search::{self, Found, Opened, Requester};
use crate::pipeline::validate;
use crate::process::host::{self, GLIBC_FAMILY};
use crate::{process::gdb, process::tls, process::unwind};

/// The options of one load (from [`crate::Loader`]).
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) trace: bool,
    pub(crate) search_paths: Vec<PathBuf>,
    pub(crate) bind_now: bool,
    pub(crate) reuse_host: bool,
    pub(crate) allow_textrel: bool,
    /// Run the objects' code (init functions, ifunc resolvers). Without it
    /// a load links only: for inspection and fuzzing (`Loader::link`).
    pub(crate) run_code: bool,
    /// With `run_code`: stop once linked, before any of the objects' code
    /// runs, and leave the rest to [`finish`] (`Loader::prepare`).
    pub(crate) defer_init: bool,
    /// Checked before loading; any finding refuses the load.
    pub(crate) policy: Option<crate::pipeline::policy::Policy>,
    /// The namespace loaded into (None: the default one).
    pub(crate) namespace: Option<Arc<crate::base::rules::Rules>>,
    /// Relocation stays on the calling thread (`Loader::single_threaded`).
    pub(crate) single_threaded: bool,
}

/// The result of a load: the root and its breadth-first lookup scope
/// (root first), plus AS_NEEDED members of a linker script.
pub(crate) struct LoadSet {
    pub(crate) scope: Vec<Dep>,
    pub(crate) as_needed: Vec<String>,
}

/// Loads `name` and everything it needs and relocates them; none of their
/// code runs (see [`finish`]).
pub(crate) fn link(opts: &Options, reg: &mut Registry, name: &str) -> Result<Pending, Error> {
    let started = Instant::now();
    let sys = Sys { trace: opts.trace };
    reg.host.refresh();

    // glibc's own libraries: a handle onto the host's copy.
    if let Some(target) = host::glibc_target(name) {
        let h = reg
            .host
            .by_soname(target)
            .ok_or_else(|| Error::NotFound {
                name: name.to_string(),
                needed_by: "the caller".to_string(),
                tried: vec![],
            })?
            .clone();
        return Ok(Pending::done(LoadSet {
            scope: vec![Dep::Host(h, None)],
            as_needed: Vec::new(),
        }));
    }

    let (opened, extra, as_needed) = match find(&sys, opts, name, None)? {
        Found::Elf(o) => (o, Vec::new(), Vec::new()),
        Found::Script { path, members } => {
            let mut plain = members
                .iter()
                .filter(|m| !m.as_needed)
                .map(|m| m.name.clone());
            let first = plain.next().unwrap_or_default();
            let extra: Vec<String> = plain.collect();
            let as_needed = members
                .iter()
                .filter(|m| m.as_needed)
                .map(|m| m.name.clone())
                .collect();
            debug::print_if(Category::Libs, || {
                format!("{}: linker script, following it to {first}", path.display())
            });
            let requester = Requester {
                path: &path,
                rpath: None,
                runpath: None,
            };
            match find(&sys, opts, &first, Some(&requester))? {
                Found::Elf(o) => (o, extra, as_needed),
                Found::Script { path: inner, .. } => {
                    return Err(Error::BadScript {
                        path,
                        what: format!("member {} is itself a linker script", inner.display()),
                    })
                }
            }
        }
    };

    let mut list: Vec<(Arc<Object>, bool)> = Vec::new(); // (object, new in this load)
    let root = object_for(&sys, reg, opened, opts)?;
    list.push(root);
    let mut scope: Vec<Dep> = vec![Dep::Minld(list[0].0.clone())];
    // Beside `list`: the index of the object whose DT_NEEDED entry brought
    // each in, and the entry (for the policy's report).
    let mut needed_by: Vec<Option<(usize, String)>> = vec![None];

    // Breadth-first over DT_NEEDED.
    let mut i = 0;
    while i < list.len() {
        let (obj, new) = (list[i].0.clone(), list[i].1);
        if !new {
            // Loaded before: its dependencies are known; they join the scope.
            for d in obj.deps() {
                if !scope.iter().any(|s| s.path() == d.path()) {
                    scope.push(d.clone());
                }
                if let Dep::Minld(o) = d {
                    if !list.iter().any(|(l, _)| Arc::ptr_eq(l, o)) {
                        list.push((o.clone(), false));
                        needed_by.push(Some((i, o.soname.clone())));
                    }
                }
            }
            i += 1;
            continue;
        }
        let mut names: Vec<String> = obj.dynamic.needed.clone();
        if i == 0 {
            names.extend(extra.iter().cloned());
        }
        let mut deps: Vec<Dep> = Vec::new();
        for n in names {
            let dep = dependency(&sys, reg, opts, &obj, &n, &mut list, i)?;
            let script_member = i == 0 && extra.contains(&n);
            needed_by.resize(list.len(), (!script_member).then(|| (i, n.clone())));
            let same = |d: &Dep| d.path() == dep.path();
            if !deps.iter().any(same) {
                if !scope.iter().any(same) {
                    scope.push(dep.clone());
                }
                deps.push(dep);
            }
        }
        let _ = obj.deps.set(deps);
        i += 1;
    }
    // Checked on the objects mapped, not on files opened again by name.
    if let Some(policy) = &opts.policy {
        let objects: Vec<_> = list
            .iter()
            .zip(&needed_by)
            .map(|((o, _), by)| {
                let by = by.as_ref();
                (
                    &**o,
                    by.map(|(p, n)| (list[*p].0.path.as_path(), n.as_str())),
                )
            })
            .collect();
        crate::pipeline::policy::check_loaded(policy, &objects)?;
    }

    let new: Vec<Arc<Object>> = list
        .iter()
        .filter(|(_, n)| *n)
        .map(|(o, _)| o.clone())
        .collect();
    for o in &new {
        check_versions(o)?;
    }

    // Relocate dependencies before dependents.
    let order = topological(&list[0].0, &new);
    let members: Vec<ScopeRef<'_>> = {
        let mut m: Vec<ScopeRef<'_>> = reg
            .host
            .objects
            .iter()
            .filter(|h| !h.replaced_by(list.iter().map(|(o, _)| (o.soname.as_str(), o.dev_ino))))
            .map(|h| ScopeRef::Host(h))
            .collect();
        for d in &scope {
            match d {
                Dep::Minld(o) => m.push(ScopeRef::Minld(o)),
                Dep::Host(h, _) => m.push(ScopeRef::Host(h)),
                Dep::Back(_) => {}
            }
        }
        // A namespace's own objects come first: its plugins bind their own
        // definitions before the host's (which they may not import).
        if opts.namespace.is_some() {
            m.sort_by_key(|s| matches!(s, ScopeRef::Host(_)));
        }
        m
    };
    // The same scope, owned, for functions bound at their first call.
    let lazy = !opts.bind_now;
    let lazy_scope = || -> Vec<Dep> {
        let mut m: Vec<Dep> = reg
            .host
            .objects
            .iter()
            .filter(|h| !h.replaced_by(list.iter().map(|(o, _)| (o.soname.as_str(), o.dev_ino))))
            .map(|h| Dep::Host(h.clone(), None))
            .collect();
        for d in &scope {
            match d {
                Dep::Minld(o) => m.push(Dep::Back(Arc::downgrade(o))),
                Dep::Host(h, _) => m.push(Dep::Host(h.clone(), None)),
                Dep::Back(_) => {}
            }
        }
        m
    };
    if lazy {
        for o in &new {
            let _ = o.lazy_scope.set(lazy_scope());
        }
    }
    // Unique definitions are committed only if the whole load succeeds:
    // a failed load unmaps its objects, and their addresses must not stay.
    let ns = namespace_id(opts);
    let mut uniques = reg.uniques.get(&ns).cloned().unwrap_or_default();
    if opts.defer_init {
        if let Some(o) = new.iter().find(|o| o.dynamic.textrel()) {
            // Finishing would make the text executable again: not allowed
            // under a lock-down that refuses new executable mappings.
            return Err(Error::TextRelocations {
                path: o.path.clone(),
            });
        }
    }
    let deferred = relocate_all(opts, &order, &members, &mut uniques)?;

    // Every init function is checked before any runs.
    let inits: Vec<(Arc<Object>, Vec<usize>)> = order
        .iter()
        .map(|o| init::init_functions(o).map(|f| (o.clone(), f)))
        .collect::<Result<_, _>>()?;
    if !opts.run_code {
        // Linked only: nothing ran, nothing is shared. These objects stay
        // out of the registry (a later open maps its own copy), their
        // unique symbols are not the process's, and neither the unwinder
        // nor the debugger hears of them (their tables are not trusted).
        return Ok(Pending::done(LoadSet { scope, as_needed }));
    }
    let uniques = uniques
        .into_iter()
        .filter(|(k, _)| !reg.uniques.get(&ns).is_some_and(|t| t.contains_key(k)))
        .collect();
    Ok(Pending {
        set: LoadSet { scope, as_needed },
        new,
        deferred,
        inits,
        uniques,
        namespace: ns,
        name: name.to_string(),
        started,
    })
}

/// An object and the slots its ifunc resolvers fill.
type DeferredSlots = (Arc<Object>, Vec<reloc::Deferred>);

/// A load linked but not yet run: what is left is the objects' own code
/// (ifunc resolvers, init functions), and making them the process's
/// (registry, unique symbols, unwinder, debugger). [`finish`] does it;
/// dropping it instead unmaps everything without running anything.
pub(crate) struct Pending {
    set: LoadSet,
    /// The objects this load mapped.
    new: Vec<Arc<Object>>,
    /// Per object, dependencies first: the slots its ifunc resolvers fill.
    /// RELRO is still writable until they are filled.
    deferred: Vec<DeferredSlots>,
    /// Per object, dependencies first: its init functions (checked).
    inits: Vec<(Arc<Object>, Vec<usize>)>,
    /// Unique definitions this load adds, to its namespace's table.
    uniques: Uniques,
    namespace: u64,
    name: String,
    started: Instant,
}

impl Pending {
    fn done(set: LoadSet) -> Pending {
        Pending {
            set,
            new: Vec::new(),
            deferred: Vec::new(),
            inits: Vec::new(),
            uniques: Uniques::default(),
            namespace: 0,
            name: String::new(),
            started: Instant::now(),
        }
    }

    /// The root object's path, if this load mapped it.
    pub(crate) fn root_path(&self) -> Option<&Path> {
        self.new.first().map(|o| o.path.as_path())
    }
}

/// Loads `name` and everything it needs, and runs their code.
pub(crate) fn load(opts: &Options, reg: &mut Registry, name: &str) -> Result<LoadSet, Error> {
    let pending = link(opts, reg, name)?;
    finish(reg, pending)
}

/// Runs what a [`Pending`] load left: ifunc resolvers and RELRO, then
/// registers the objects and runs their init functions, dependencies
/// first.
pub(crate) fn finish(reg: &mut Registry, p: Pending) -> Result<LoadSet, Error> {
    for (o, slots) in &p.deferred {
        reloc::apply_deferred(o, slots, true)?;
        o.image.protect_relro()?;
    }
    let ns = p.namespace;
    let table = reg.uniques.entry(ns).or_default();
    for (k, v) in p.uniques {
        table.entry(k).or_insert(v);
    }
    for o in &p.new {
        reg.by_file
            .insert((o.namespace, o.dev_ino.0, o.dev_ino.1), Arc::downgrade(o));
        // As glibc does, an object whose STB_GNU_UNIQUE definition became
        // the process's one is never unloaded: others may be bound to it.
        let defines_unique = reg.uniques[&ns].values().any(|&a| o.image.contains(a, 1));
        if o.nodelete() || defines_unique {
            reg.pinned.push(o.clone());
        }
    }
    reg.by_file.retain(|_, w| w.strong_count() > 0);
    // Unwind tables are findable, and debuggers know the objects, before
    // any of their code runs: a constructor may throw and catch, and a
    // breakpoint may be waiting in one.
    for o in &p.new {
        if let Some(d) = o.image.phdr(ph::PT_DYNAMIC) {
            if let Some(e) = gdb::add(&o.path, o.image.bias.0, o.image.bias.at(d.p_vaddr)) {
                let _ = o.debugger.set(e);
            }
        }
        if o.eh_frame_hdr != 0 {
            if let Some(start) =
                unwind::eh_frame_start(|a, n| o.image.readable(a, n), o.eh_frame_hdr)
            {
                if let Some(r) = unwind::register(&reg.host, start) {
                    let _ = o.unwind.set(r);
                }
            }
        }
    }
    for (o, fns) in &p.inits {
        o.initialized.store(true, Ordering::Release);
        init::run_init(o, fns);
    }
    if !p.new.is_empty() {
        debug::print_if(Category::Statistics, || {
            format!(
                "{}: loaded {} new object(s) in {:.1} µs",
                p.name,
                p.new.len(),
                p.started.elapsed().as_secs_f64() * 1e6
            )
        });
    }
    Ok(p.set)
}

/// Relocates every object, dependencies first. Ifunc slots are filled and
/// RELRO protected object by object, unless the load defers its code
/// (`Options::defer_init`): then the slots are returned, and RELRO stays
/// writable until [`finish`] fills them.
fn relocate_all(
    opts: &Options,
    order: &[Arc<Object>],
    members: &[ScopeRef<'_>],
    uniques: &mut Uniques,
) -> Result<Vec<DeferredSlots>, Error> {
    // glibc's own libraries mapped in a namespace (libm without the host's)
    // are glibc: the namespace's import rules are not theirs. Which they
    // are is decided by the file, never by the DT_SONAME it chose.
    let rules_for = |o: &Object| {
        opts.namespace
            .as_deref()
            .filter(|_| !host::is_glibc_family(o.dev_ino.0, o.dev_ino.1))
    };
    // A namespace's imports are checked for every object before any is
    // relocated: nothing of a refused load runs.
    for o in order {
        let Some(rules) = rules_for(o) else { continue };
        let mut cx = reloc::Context {
            scope: members,
            uniques,
            allow_textrel: opts.allow_textrel,
            lazy: false,
            rules: Some(rules),
            denied: Vec::new(),
            single_threaded: opts.single_threaded,
        };
        reloc::check_imports(o, &mut cx)?;
        if !cx.denied.is_empty() {
            return Err(Error::DisallowedImports {
                path: o.path.clone(),
                imports: cx.denied,
            });
        }
    }
    let mut deferred = Vec::new();
    for o in order {
        let started = Instant::now();
        debug::print_if(Category::Reloc, || {
            format!("relocation processing: {}", o.path.display())
        });
        let mut cx = reloc::Context {
            scope: members,
            uniques,
            allow_textrel: opts.allow_textrel,
            lazy: !opts.bind_now && !o.dynamic.bind_now(),
            rules: rules_for(o),
            denied: Vec::new(),
            single_threaded: opts.single_threaded,
        };
        let (stats, slots) = reloc::relocate(o, &mut cx)?;
        if opts.run_code && opts.defer_init {
            deferred.push((o.clone(), slots));
        } else {
            reloc::apply_deferred(o, &slots, opts.run_code)?;
            o.image.protect_relro()?;
        }
        debug::print_if(Category::Statistics, || {
            format!(
                "{}: {} relative, {} symbolic ({} lookups), {} irelative relocations in {:.1} µs",
                o.path.display(),
                stats.relative,
                stats.symbolic,
                stats.lookups,
                stats.irelative,
                started.elapsed().as_secs_f64() * 1e6
            )
        });
    }
    Ok(deferred)
}

/// The namespace's id; 0 for the default one.
fn namespace_id(opts: &Options) -> u64 {
    opts.namespace.as_ref().map_or(0, |n| n.id)
}

/// Finds a name: in a namespace only in its permitted directories (glibc's
/// libm and libmvec excepted), else by the full search.
fn find(
    sys: &Sys,
    opts: &Options,
    name: &str,
    requester: Option<&Requester<'_>>,
) -> Result<Found, Error> {
    match &opts.namespace {
        // Only beside the host's libc: never a file the plugin points at.
        Some(_) if GLIBC_FAMILY.contains(&name) => {
            search::find_confined(sys, name, None, &[host::glibc_family_dir()])
        }
        Some(ns) => search::find_confined(sys, name, requester, &ns.permitted),
        None => search::find(sys, name, requester, &opts.search_paths),
    }
}

/// Resolves one DT_NEEDED entry of `obj` (at `index` in `list`).
fn dependency(
    sys: &Sys,
    reg: &mut Registry,
    opts: &Options,
    obj: &Arc<Object>,
    n: &str,
    list: &mut Vec<(Arc<Object>, bool)>,
    index: usize,
) -> Result<Dep, Error> {
    if let Some(target) = host::glibc_target(n) {
        if let Some(h) = reg.host.by_soname(target) {
            return Ok(Dep::Host(h.clone(), None));
        }
    }
    let base = n.rsplit('/').next().unwrap_or(n);
    // glibc's libm and libmvec are the host's in a namespace too, and an
    // object of the load stands for them only if it is the real file.
    let glibc_family = opts.namespace.is_some() && GLIBC_FAMILY.contains(&base);
    let named = |o: &Object| {
        o.soname == base && (!glibc_family || host::is_glibc_family(o.dev_ino.0, o.dev_ino.1))
    };
    if let Some(pos) = list.iter().position(|(o, _)| named(o)) {
        let o = &list[pos].0;
        return Ok(if pos > index {
            Dep::Minld(o.clone())
        } else {
            Dep::Back(Arc::downgrade(o))
        });
    }
    if opts.reuse_host || glibc_family {
        if let Some(h) = reg.host.by_soname(base) {
            return Ok(Dep::Host(h.clone(), None));
        }
        if let Some((h, pin)) = reg.host.dependency(base) {
            return Ok(Dep::Host(h, Some(Arc::new(pin))));
        }
    }
    if let Some(o) = reg
        .by_file
        .values()
        .filter_map(Weak::upgrade)
        .find(|o| named(o) && o.namespace == namespace_id(opts))
    {
        list.push((o.clone(), false));
        return Ok(Dep::Minld(o));
    }
    let requester = Requester {
        path: &obj.path,
        rpath: obj.dynamic.rpath.as_deref(),
        runpath: obj.dynamic.runpath.as_deref(),
    };
    let opened = match find(sys, opts, n, Some(&requester))? {
        Found::Elf(o) => o,
        Found::Script { path, .. } => {
            return Err(Error::BadScript {
                path,
                what: format!(
                    "a linker script cannot be a dependency (DT_NEEDED {n} of {})",
                    obj.path.display()
                ),
            })
        }
    };
    let entry = object_for(sys, reg, opened, opts)?;
    // The same file under another name, already in this load.
    if let Some(pos) = list.iter().position(|(o, _)| Arc::ptr_eq(o, &entry.0)) {
        let o = &list[pos].0;
        return Ok(if pos > index {
            Dep::Minld(o.clone())
        } else {
            Dep::Back(Arc::downgrade(o))
        });
    }
    let dep = Dep::Minld(entry.0.clone());
    list.push(entry);
    Ok(dep)
}

/// The object for an open file: one minld already has (same device and
/// inode), or a new mapping. Its code may run unless `Loader::link`; only
/// then are its unwind tables handed to the unwinder. Under a policy an
/// executable stack is left to the policy's report (see `check_policy`).
fn object_for(
    sys: &Sys,
    reg: &Registry,
    opened: Opened,
    opts: &Options,
) -> Result<(Arc<Object>, bool), Error> {
    let (trusted, namespace) = (opts.run_code, namespace_id(opts));
    let Opened { fd, path, first } = opened;
    let headers = validate::read_headers(sys, &fd, &path, &first, opts.policy.is_some())?;
    let key = (headers.stat.dev, headers.stat.ino);
    if let Some(o) = reg
        .by_file
        .get(&(namespace, key.0, key.1))
        .and_then(Weak::upgrade)
    {
        debug::print_if(Category::Libs, || {
            format!("{}: already loaded by minld, reused", path.display())
        });
        return Ok((o, false));
    }
    let (image, mem, d) = map::map_and_read_dynamic(sys, &fd, &headers, &path)?;
    drop(fd);
    if d.flags_1 & DF_1_PIE != 0 {
        return Err(Error::Executable {
            path,
            what: "DF_1_PIE: a position-independent executable".to_string(),
        });
    }
    let symbols = Symbols::new(&path, &mem, &d)?;
    let needs = symbols.read_verneeds(&path, &mem, &d)?;
    let mut need_by_index: Vec<Option<Version>> = Vec::new();
    for n in &needs {
        for (v, idx, _) in &n.versions {
            let i = usize::from(*idx);
            if need_by_index.len() <= i {
                need_by_index.resize(i + 1, None);
            }
            need_by_index[i] = Some(v.clone());
        }
    }
    let tls = match image.phdr(ph::PT_TLS) {
        None => None,
        Some(t) => {
            let image_at = image.bias.at(t.p_vaddr);
            let ok = t.p_filesz <= t.p_memsz
                && (t.p_filesz == 0 || mem.contains(image_at, t.p_filesz as usize));
            let module = ok
                .then(|| {
                    tls::Module::register(
                        image_at,
                        t.p_filesz as usize,
                        t.p_memsz as usize,
                        t.p_align as usize,
                    )
                })
                .flatten();
            Some(module.ok_or_else(|| {
                Error::segments(
                    &path,
                    format!(
                        "PT_TLS: bad TLS segment (vaddr {:#x}, filesz {:#x}, memsz {:#x}, align {:#x})",
                        t.p_vaddr, t.p_filesz, t.p_memsz, t.p_align
                    ),
                )
            })?)
        }
    };
    let eh_frame_hdr = image
        .phdr(ph::PT_GNU_EH_FRAME)
        .map(|e| image.bias.at(e.p_vaddr))
        .filter(|&a| trusted && image.readable(a, 12))
        .unwrap_or(0);
    let soname = d.soname.clone().unwrap_or_else(|| {
        path.file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    debug::print_if(Category::Libs, || {
        format!(
            "{}: mapped at {:#x} (soname {soname})",
            path.display(),
            image.bias.0
        )
    });
    let (start, end) = (image.start, image.start + image.len);
    let object = Arc::new(Object {
        path,
        soname,
        dev_ino: key,
        namespace,
        image: std::mem::ManuallyDrop::new(image),
        dynamic: d,
        symbols,
        needs,
        need_by_index,
        deps: OnceLock::new(),
        initialized: Default::default(),
        tls,
        tlsdesc: Default::default(),
        eh_frame_hdr,
        unwind: OnceLock::new(),
        debugger: OnceLock::new(),
        lazy_scope: OnceLock::new(),
    });
    live::insert(start, end, eh_frame_hdr, namespace, Arc::downgrade(&object));
    Ok((object, true))
}

/// DT_VERNEED: every required version must be defined by the dependency
/// that provides it (glibc's `_dl_check_map_versions`).
fn check_versions(o: &Object) -> Result<(), Error> {
    for need in &o.needs {
        let dep = o
            .deps()
            .iter()
            .find(|d| d.with(|s| s.soname() == need.file).unwrap_or(false));
        let Some(dep) = dep else { continue };
        for (v, _, weak) in &need.versions {
            let ok = dep.with(|s| s.symbols().defines_version(v)).unwrap_or(true);
            debug::print_if(Category::Versions, || {
                format!(
                    "checking for version `{}' in file {} [0] required by file {} [0]{}",
                    v.name,
                    dep.path().display(),
                    o.path.display(),
                    if ok { "" } else { ": NOT FOUND" }
                )
            });
            if !ok && !weak {
                return Err(Error::MissingVersion {
                    path: dep.path(),
                    version: v.name.clone(),
                    needed_by: o.path.display().to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Dependencies before dependents: post-order DFS from the root over the
/// objects new in this load.
fn topological(root: &Arc<Object>, new: &[Arc<Object>]) -> Vec<Arc<Object>> {
    fn visit(
        o: &Arc<Object>,
        new: &[Arc<Object>],
        seen: &mut Vec<*const Object>,
        out: &mut Vec<Arc<Object>>,
    ) {
        if seen.contains(&Arc::as_ptr(o)) {
            return;
        }
        seen.push(Arc::as_ptr(o));
        for d in o.deps() {
            let child = match d {
                Dep::Minld(c) => Some(c.clone()),
                Dep::Back(w) => w.upgrade(),
                Dep::Host(..) => None,
            };
            if let Some(c) = child {
                visit(&c, new, seen, out);
            }
        }
        if new.iter().any(|n| Arc::ptr_eq(n, o)) {
            out.push(o.clone());
        }
    }
    let mut out = Vec::new();
    let mut seen = Vec::new();
    visit(root, new, &mut seen, &mut out);
    // Objects reachable only through script members come last.
    for n in new {
        if !out.iter().any(|o| Arc::ptr_eq(o, n)) {
            out.push(n.clone());
        }
    }
    out
}
