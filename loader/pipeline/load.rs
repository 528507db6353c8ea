//! The load pipeline end to end: search, validate, map, read the dynamic
//! section, gather dependencies breadth-first, check versions, relocate
//! dependencies before dependents, protect RELRO, run init functions.
//!
//! Everything a failed load took is released by dropping what it made:
//! objects it mapped are unmapped (no fini: their init never ran) and
//! objects it reused lose the reference it took.
//!
//! A load holds the loader lock throughout (recursive for its thread) but
//! borrows the registry only around its updates, never across the
//! objects' own code (ifunc resolvers, init functions), which may open,
//! close and look up libraries through minld themselves: such a nested
//! load sees the registry as the outer one left it, and reuses the outer
//! load's objects once they are registered (relocated, and in the order
//! of initialisation, before their init functions run).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use goblin::elf::program_header as ph;

use crate::base::error::Error;
use crate::model::object::{Dep, Object, ScopeRef};
use crate::model::registry::{Borrowed, Held, Registry, Uniques};
use crate::os::debug::{self, Category};
use crate::os::phases::{self, Measure, Phase};
use crate::os::sys::Sys;
use crate::pipeline::bytes::{self, Given};
use crate::pipeline::cache::{Cache, Proven};
use crate::pipeline::gather::{self, Gathered};
use crate::pipeline::init;
use crate::pipeline::options::Options;
use crate::pipeline::order;
use crate::pipeline::reloc;
use crate::pipeline::scope::{global_scope, lookup_scope, members, weak_scope};
use crate::process::host::{self};
use crate::{process::gdb, process::unwind};

/// The result of a load: the root and its breadth-first lookup scope
/// (root first), plus AS_NEEDED members of a linker script.
pub(crate) struct LoadSet {
    pub(crate) scope: Vec<Dep>,
    pub(crate) as_needed: Vec<String>,
}

/// Loads `name` and everything it needs and relocates them; none of their
/// code runs (see [`finish`]) unless the load runs ifunc resolvers as it
/// relocates (not deferred).
pub(crate) fn link(opts: &Options, held: &Held, name: &str) -> Result<Pending, Error> {
    link_timed(opts, |measure| link_stages(opts, held, name, measure))
}

/// [`link`] for a root that is not found by name but given
/// (`Loader::open_bytes`, `Loader::open_fd`), named `name` in messages,
/// the trace and the debugger's list; its dependencies are found as usual.
pub(crate) fn link_given(
    opts: &Options,
    held: &Held,
    name: &Path,
    given: Given<'_>,
) -> Result<Pending, Error> {
    link_timed(opts, |measure| {
        let sys = Sys { trace: opts.trace };
        let label = name.to_string_lossy();
        let mut reg = borrow(held, &label)?;
        {
            let _phase = phases::enter(Phase::Host);
            reg.host.refresh();
        }
        let first = bytes::root_object(&sys, &mut reg, opts, given, name)?;
        let g = gather::walk(&sys, &mut reg, opts, first, Vec::new(), Vec::new())?;
        link_gathered(opts, held, reg, &label, g, measure)
    })
}

/// Runs `stages` between the load's phase measurements.
fn link_timed(
    opts: &Options,
    stages: impl FnOnce(&mut Measure) -> Result<Pending, Error>,
) -> Result<Pending, Error> {
    // Dropped on an error: the measurement is discarded.
    let mut measure = phases::start();
    let mut pending = stages(&mut measure)?;
    if opts.run_code && opts.defer_init {
        // The rest is measured when the prepared load runs.
        measure.pause();
    }
    pending.measure = measure;
    Ok(pending)
}

/// The registry borrowed for the load of `name`.
fn borrow<'h>(held: &'h Held, name: &str) -> Result<Borrowed<'h>, Error> {
    held.registry(|| format!("open {name}"))
}

/// [`link`], stage by stage.
fn link_stages(
    opts: &Options,
    held: &Held,
    name: &str,
    measure: &mut Measure,
) -> Result<Pending, Error> {
    let sys = Sys { trace: opts.trace };
    let mut reg = borrow(held, name)?;
    {
        let _phase = phases::enter(Phase::Host);
        reg.host.refresh();
    }
    if let Some(glibc) = gather::host_glibc(&reg, name)? {
        return Ok(Pending::host(glibc));
    }
    let asked = match gather::loaded_by_glibc(&sys, &mut reg, opts, name)? {
        Ok(glibcs) => return Ok(Pending::host(glibcs)),
        Err(asked) => asked,
    };
    let root = gather::open_root(&sys, &reg, opts, name, asked)?;
    let g = gather::gather(&sys, &mut reg, opts, root)?;
    link_gathered(opts, held, reg, name, g, measure)
}

/// [`link`] once the load's objects are gathered, with the registry
/// borrowed (given back while code of the load may run).
fn link_gathered(
    opts: &Options,
    held: &Held,
    mut reg: Borrowed<'_>,
    name: &str,
    g: Gathered,
    measure: &mut Measure,
) -> Result<Pending, Error> {
    refuse_unfinished(&reg, &g, name)?;
    // Checked on the objects mapped, not on files opened again by name.
    if let Some(policy) = &opts.policy {
        crate::pipeline::policy::check_loaded(policy, &g.with_requesters())?;
    }
    let new = g.new_objects();
    let order = order::topological(&g.list[0].0, &new);
    let globals = global_scope(&reg, &g, opts);
    let scope = lookup_scope(&reg, &g, opts, &globals);
    if !opts.bind_now {
        // The same scope, for functions bound at their first call.
        for o in &new {
            let _ = o.lazy_scope.set(weak_scope(&scope));
        }
    }
    refuse_deferred_textrel(opts, &new)?;
    // Unique definitions are committed only if the whole load succeeds:
    // a failed load unmaps its objects, and their addresses must not stay.
    let ns = opts.namespace_id();
    let mut uniques = reg.uniques.get(&ns).cloned().unwrap_or_default();
    let init_order = init_order(&reg, &g, &new);
    if opts.run_code && !opts.defer_init {
        // Their ifunc resolvers run as they are relocated, with the
        // registry given back: an open nested in one must not take them.
        reg.unfinished.retain(|w| w.strong_count() > 0);
        reg.unfinished.extend(new.iter().map(Arc::downgrade));
    }
    drop(reg);
    let members = members(&scope);
    // A load that maps nothing new has nothing to record or bind.
    let cache = Cache::of(opts).filter(|_| !order.is_empty());
    let proven = cache.as_ref().and_then(|c| {
        let _phase = phases::enter(Phase::Cache);
        c.find(&g.list[0].0, &members, &order, opts.bind_now)
    });
    // A proven record's files are the files whose versions were checked
    // when it was written: the check would find the same.
    if proven.is_none() {
        for o in &new {
            order::check_versions(o)?;
        }
    }
    let record = cache.is_some() && proven.is_none();
    let (deferred, resolved, tls_waiting) = relocate_all(
        opts,
        &order,
        &members,
        &mut uniques,
        proven.as_ref(),
        record,
    )?;
    if let (Some(c), true) = (&cache, record) {
        let _phase = phases::enter(Phase::Cache);
        c.save(&g.list[0].0, &members, &resolved, opts.bind_now);
    }
    drop(proven);
    if !globals.is_empty() {
        for o in &new {
            let _ = o.global_deps.set(globals.clone());
        }
    }
    // Every init function is checked before any runs.
    let inits: Vec<(Arc<Object>, Vec<usize>)> = init_order
        .iter()
        .map(|o| init::init_functions(o).map(|f| (o.clone(), f)))
        .collect::<Result<_, _>>()?;
    let set = LoadSet {
        scope: g.scope,
        as_needed: g.as_needed,
    };
    if !opts.run_code {
        // Linked only: nothing ran, nothing is shared. These objects stay
        // out of the registry (a later open maps its own copy), their
        // unique symbols are not the process's, and neither the unwinder
        // nor the debugger hears of them (their tables are not trusted).
        measure.report(name, new.len());
        return Ok(Pending::done(set));
    }
    let reg = borrow(held, name)?;
    let uniques = uniques
        .into_iter()
        .filter(|(k, _)| !reg.uniques.get(&ns).is_some_and(|t| t.contains_key(k)))
        .collect();
    Ok(Pending {
        set,
        new,
        deferred,
        tls_waiting,
        inits,
        uniques,
        namespace: ns,
        name: name.to_string(),
        global: opts.global && opts.namespace.is_none(),
        measure: Measure::default(),
    })
}

/// Refuses a load nested in an ifunc resolver of another that needs one of
/// the outer load's objects, not yet finished (see `Registry::unfinished`):
/// this load mapped a second copy of it.
fn refuse_unfinished(reg: &Registry, g: &Gathered, name: &str) -> Result<(), Error> {
    match g.list.iter().find_map(|(o, _)| reg.unfinished_like(o)) {
        Some(outer) => Err(Error::Reentrant {
            what: format!("open {name}"),
            reason: crate::base::error::Reentry::Unfinished {
                path: outer.path.clone(),
            },
        }),
        None => Ok(()),
    }
}

/// The objects whose init functions this load runs, dependencies first:
/// the ones it mapped, and the ones it reuses that are registered but not
/// yet initialised (an outer load on this thread, in whose init function
/// this open is nested, has not reached them): theirs run first, as with
/// glibc, and the outer load then skips them.
fn init_order(reg: &Registry, g: &Gathered, new: &[Arc<Object>]) -> Vec<Arc<Object>> {
    let mut set = new.to_vec();
    set.extend(
        g.list
            .iter()
            .filter(|(o, mapped)| !mapped && reg.awaits_init(o))
            .map(|(o, _)| o.clone()),
    );
    order::topological(&g.list[0].0, &set)
}

/// A load that defers its code (`Loader::prepare`) runs under a lock-down
/// that refuses new executable mappings: finishing a text-relocated object
/// would need one.
fn refuse_deferred_textrel(opts: &Options, new: &[Arc<Object>]) -> Result<(), Error> {
    match new.iter().find(|o| o.dynamic.textrel()) {
        Some(o) if opts.defer_init => Err(Error::TextRelocations {
            path: o.path.clone(),
        }),
        _ => Ok(()),
    }
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
    /// Static TLS waiting for ifunc slots in TLS images (`Loader::prepare`).
    tls_waiting: Option<reloc::TlsWaiting>,
    /// Per object, dependencies first: its init functions (checked).
    inits: Vec<(Arc<Object>, Vec<usize>)>,
    /// Unique definitions this load adds, to its namespace's table.
    uniques: Uniques,
    namespace: u64,
    name: String,
    /// The load's objects join the global scope once it is finished.
    global: bool,
    /// Its statistics.
    measure: Measure,
}

impl Pending {
    /// A load answered by one of glibc's objects: nothing to do.
    fn host(dep: Dep) -> Pending {
        let as_needed = Vec::new();
        Pending::done(LoadSet {
            scope: vec![dep],
            as_needed,
        })
    }

    /// A load with nothing left to do.
    fn done(set: LoadSet) -> Pending {
        Pending {
            set,
            new: Vec::new(),
            deferred: Vec::new(),
            tls_waiting: None,
            inits: Vec::new(),
            uniques: Uniques::default(),
            namespace: 0,
            name: String::new(),
            global: false,
            measure: Measure::default(),
        }
    }

    /// The root object's path, if this load mapped it.
    pub(crate) fn root_path(&self) -> Option<&Path> {
        self.new.first().map(|o| o.path.as_path())
    }
}

/// Loads `name` and everything it needs, and runs their code.
pub(crate) fn load(opts: &Options, held: &Held, name: &str) -> Result<LoadSet, Error> {
    let pending = link(opts, held, name)?;
    finish(held, pending)
}

/// Runs what a [`Pending`] load left: ifunc resolvers and RELRO, then
/// registers the objects and runs their init functions, dependencies
/// first, with the registry given back (they may open libraries too).
pub(crate) fn finish(held: &Held, mut p: Pending) -> Result<LoadSet, Error> {
    p.measure.resume();
    let name = p.name.clone();
    if !p.deferred.is_empty() {
        // As in `link_stages`: resolvers are about to run.
        borrow(held, &name)?
            .unfinished
            .extend(p.new.iter().map(Arc::downgrade));
    }
    for (o, slots) in &p.deferred {
        {
            let _phase = phases::enter(Phase::Init);
            reloc::apply_deferred(o, slots, true)?;
        }
        if let Some(w) = p.tls_waiting.as_mut() {
            // A TLS image its resolvers completed goes to static TLS now;
            // the references held back for it lie in objects before it,
            // whose RELRO is protected below, once all are written.
            let _phase = phases::enter(Phase::Relocate);
            w.after_ifuncs(o)?;
        }
    }
    for (o, _) in &p.deferred {
        let _phase = phases::enter(Phase::Relocate);
        o.image.protect_relro()?;
    }
    register(&mut *borrow(held, &name)?, &p);
    {
        let _phase = phases::enter(Phase::Init);
        init::run_all(held, &name, &p.inits)?;
    }
    if !p.new.is_empty() {
        p.measure.report(&p.name, p.new.len());
    }
    Ok(p.set)
}

/// Makes a finished load's objects the process's: unique symbols, the
/// registry (as waiting for their init functions), the global scope, the
/// unwinder and the debugger.
fn register(reg: &mut Registry, p: &Pending) {
    let ns = p.namespace;
    let table = reg.uniques.entry(ns).or_default();
    for (k, v) in &p.uniques {
        table.entry(k.clone()).or_insert(*v);
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
    let mine = |w: &std::sync::Weak<Object>| {
        p.new
            .iter()
            .any(|o| std::ptr::eq(w.as_ptr(), Arc::as_ptr(o)))
    };
    reg.unfinished.retain(|w| w.strong_count() > 0 && !mine(w));
    reg.uninitialized.retain(|w| w.strong_count() > 0);
    reg.uninitialized.extend(p.new.iter().map(Arc::downgrade));
    if p.global {
        join_global(reg, &p.set.scope);
    }
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
}

/// RTLD_GLOBAL: the objects of a load's scope (the library and what it
/// needs) join the process's global scope, each once, in load order.
fn join_global(reg: &mut Registry, scope: &[Dep]) {
    reg.global.retain(|w| w.strong_count() > 0);
    for d in scope {
        let o = match d {
            Dep::Minld(o) => Some(o.clone()),
            Dep::Back(w) => w.upgrade(),
            Dep::Host(..) => None,
        };
        if let Some(o) = o {
            if !reg
                .global
                .iter()
                .any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(&o)))
            {
                reg.global.push(Arc::downgrade(&o));
            }
        }
    }
}

/// What each object's pass resolved, for the link cache.
type ResolvedAll = Vec<(Arc<Object>, reloc::Resolved)>;

/// Relocates every object, dependencies first. Ifunc slots are filled and
/// RELRO protected in order (`reloc::finish_ready`), or if the load defers
/// its code (`Options::defer_init`) returned, RELRO writable until
/// [`finish`] fills them, with the static TLS that waits for them
/// (`reloc::TlsWaiting`). `proven`: bindings and RELATIVE runs from the
/// link record; `record`: what each pass resolved is returned for one.
fn relocate_all(
    opts: &Options,
    order: &[Arc<Object>],
    members: &[ScopeRef<'_>],
    uniques: &mut Uniques,
    proven: Option<&Proven>,
    record: bool,
) -> Result<(Vec<DeferredSlots>, ResolvedAll, Option<reloc::TlsWaiting>), Error> {
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
            tables: Vec::new(),
            uniques,
            allow_textrel: opts.allow_textrel,
            lazy: false,
            rules: Some(rules),
            denied: Vec::new(),
            single_threaded: opts.single_threaded,
            trace: opts.trace,
            later: &[],
            held: &mut Vec::new(),
            resolvers: reloc::Resolvers::Never,
            images: &mut Vec::new(),
        };
        reloc::check_imports(o, &mut cx)?;
        if !cx.denied.is_empty() {
            return Err(Error::DisallowedImports {
                path: o.path.clone(),
                imports: cx.denied,
            });
        }
    }
    let (mut deferred, mut resolved_all, mut held) = (Vec::new(), Vec::new(), Vec::new());
    let mut images = Vec::new();
    let resolvers = match (opts.run_code, opts.defer_init) {
        (false, _) => reloc::Resolvers::Never,
        (true, true) => reloc::Resolvers::AtRun,
        (true, false) => reloc::Resolvers::AfterPass,
    };
    let mut waiting = std::collections::VecDeque::new();
    for (i, o) in order.iter().enumerate() {
        let started = Instant::now();
        debug::print_if(Category::Reloc, || {
            format!("relocation processing: {}", o.path.display())
        });
        let mut cx = reloc::Context {
            scope: members,
            tables: Vec::new(),
            uniques,
            allow_textrel: opts.allow_textrel,
            lazy: !opts.bind_now && !o.dynamic.bind_now(),
            rules: rules_for(o),
            denied: Vec::new(),
            single_threaded: opts.single_threaded,
            trace: opts.trace,
            later: &order[i + 1..],
            held: &mut held,
            resolvers,
            images: &mut images,
        };
        let (stats, slots, resolved) = {
            let _phase = phases::enter(Phase::Relocate);
            let relocated = reloc::relocate(o, &mut cx, proven.map(|p| p.object(i)).as_ref())?;
            // The tables just applied are clean file pages nothing reads
            // again (lazy binding reads DT_JMPREL: kept then).
            o.image
                .release_relocations(&o.dynamic, o.symbols.len(), !cx.lazy)?;
            relocated
        };
        if let (Some(p), Some(why)) = (proven, &stats.misfit) {
            p.misfit(&o.path, why);
        }
        if record {
            resolved_all.push((o.clone(), resolved));
        }
        if opts.run_code && opts.defer_init {
            deferred.push((o.clone(), slots));
        } else {
            waiting.push_back((o.clone(), slots));
            reloc::finish_ready(&mut waiting, &held, opts.run_code)?;
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
    let waiting = reloc::TlsWaiting::new(held, images, members, opts.trace);
    Ok((deferred, resolved_all, waiting))
}
