//! Stage 6 of a load: apply an object's relocations (x86-64 psABI, table
//! 4.10 in version 1.0), binding its symbol references in a lookup scope.
//!
//! Order within one object, as glibc does it: RELR, then DT_RELA, then
//! DT_JMPREL (bound now), and last the IRELATIVE relocations and references
//! to the object's own ifuncs, whose resolvers may read anything the other
//! relocations wrote (libm's read `_rtld_global_ro` through a GLOB_DAT).
//!
//! (See `docs/design.md`, "The order in which ifunc resolvers run" and "RELR".)
//!
//! The files: this one drives a pass ([`relocate`], [`Context`], the
//! statistics, the deferred ifunc slots, the checked writer [`Slot`]);
//! `apply` is the one switch over the relocation classes of
//! `base::relocs`; `resolve` is the one symbol resolution, which
//! relocation, lazy binding (`lazy`) and `Library::get` share; `relative`
//! holds RELR and the RELATIVE fast path; `interpose` the host functions
//! minld replaces; `static_tls` places initial-exec TLS blocks in glibc's
//! static TLS.

mod apply;
pub(crate) mod interpose;
pub(crate) mod lazy;
mod recorded;
pub(crate) mod relative;
pub(crate) mod resolve;
mod static_tls;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::base::error::{Error, RelocFault};
use crate::base::relocs::{split_info, RelocKind};
use crate::elf::symbols::Symbols;
use crate::model::object::{Object, ScopeRef};
use crate::model::registry::Uniques;
use crate::pipeline::cache::format::ObjectEntry;
use resolve::{call_resolver, Def};
use static_tls::{place_held, waits_for_held};
pub(crate) use static_tls::{HeldImage, HeldTls, Resolvers, TlsWaiting};

/// What relocating one object did, for `MINLD_DEBUG=statistics`.
#[derive(Debug, Default, Clone)]
pub(crate) struct RelocStats {
    /// RELATIVE relocations (RELR included).
    pub(crate) relative: usize,
    /// Relocations naming a symbol.
    pub(crate) symbolic: usize,
    /// Symbol lookups made (one per symbol, not per relocation).
    pub(crate) lookups: usize,
    /// Slots left for ifunc resolvers.
    pub(crate) irelative: usize,
    /// Why the link record's entry for the object did not fit it (the
    /// object was relocated the normal way).
    pub(crate) misfit: Option<String>,
}

/// Everything a relocation pass needs besides the object.
pub(crate) struct Context<'a> {
    /// The lookup scope, in order.
    pub(crate) scope: &'a [ScopeRef<'a>],
    /// Each member's symbols, beside `scope` (filled by [`relocate`] and
    /// [`check_imports`]; built empty): the scope walk reads these, not
    /// the members (see `resolve::Scope::Refs`).
    pub(crate) tables: Vec<&'a Symbols>,
    /// The load's copy of its namespace's unique definitions.
    pub(crate) uniques: &'a mut Uniques,
    /// DT_TEXTREL allowed.
    pub(crate) allow_textrel: bool,
    /// Lazy binding requested: an undefined function reached only through
    /// the PLT does not fail the load (it aborts with a message if called).
    pub(crate) lazy: bool,
    /// The namespace's rules: host symbols bound only if allowed, host
    /// exports first.
    pub(crate) rules: Option<&'a crate::base::rules::Rules>,
    /// Host symbols bound against the rules, `name@version (from file)`.
    pub(crate) denied: Vec<String>,
    /// Relocation stays on the calling thread (the sandbox's runner, whose
    /// seccomp filter has no clone).
    pub(crate) single_threaded: bool,
    /// The load is traced (the static-TLS reservation's system calls).
    pub(crate) trace: bool,
    /// The load's objects relocated after this one (dependencies first):
    /// their TLS images are not relocated yet.
    pub(crate) later: &'a [std::sync::Arc<Object>],
    /// Initial-exec references to the blocks of `later` objects, held
    /// back until those are relocated (`static_tls::place_held`).
    pub(crate) held: &'a mut Vec<HeldTls>,
    /// When the objects' ifunc resolvers run.
    pub(crate) resolvers: Resolvers,
    /// TLS images of the load holding ifunc slots not filled yet
    /// ([`Resolvers::AtRun`]): references to their blocks wait too.
    pub(crate) images: &'a mut Vec<HeldImage>,
}

/// In a namespace, before anything is relocated: resolves every symbol the
/// object's relocations name and collects, in `cx.denied`, the host symbols
/// its rules do not allow. Nothing is written and no code runs (host ifunc
/// resolvers included), so a refused plugin never runs.
pub(crate) fn check_imports(obj: &Object, cx: &mut Context<'_>) -> Result<(), Error> {
    cx.fill_tables();
    let mut pass = Pass::new(obj, Vec::new());
    let mut stats = RelocStats::default();
    for rela in obj.dynamic.rela.iter().chain(obj.dynamic.jmprel.iter()) {
        let (symi, t) = split_info(rela.r_info);
        if symi != 0 {
            pass.resolve(symi, t, rela.r_offset, cx, &mut stats)?;
        }
    }
    Ok(())
}

impl Context<'_> {
    /// Reads each scope member's symbols once, into `tables`.
    fn fill_tables(&mut self) {
        if self.tables.len() != self.scope.len() {
            self.tables = self.scope.iter().map(ScopeRef::symbols).collect();
        }
    }
}

/// What a pass resolved, per symbol index (as `Pass` keeps it): what the
/// link cache records.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    /// Per symbol index: 1 + its definition's index in `defs`, 0 if not
    /// looked up.
    pub(crate) cache: Vec<u32>,
    /// The definitions (None: a weak reference nobody defines).
    pub(crate) defs: Vec<Option<Def>>,
}

/// What relocating an object left: its statistics, the slots its ifunc
/// resolvers fill, what it resolved.
pub(crate) type Relocated = (RelocStats, Vec<Deferred>, Resolved);

/// Applies all relocations of `obj`; with `recorded` (a proven link
/// record's entry for it), its bindings and DT_RELA's RELATIVE run come
/// from the record.
pub(crate) fn relocate(
    obj: &Object,
    cx: &mut Context<'_>,
    recorded: Option<&ObjectEntry<'_>>,
) -> Result<Relocated, Error> {
    cx.fill_tables();
    let d = &obj.dynamic;
    if d.textrel() {
        if !cx.allow_textrel {
            return Err(Error::TextRelocations {
                path: obj.path.clone(),
            });
        }
        obj.image.reprotect_for_textrel(libc::PROT_WRITE)?;
    }
    let mut stats = RelocStats::default();
    let writable = crate::model::image::layout::writable_ranges(&obj.image.segments, d.textrel());
    let mut pass = Pass::new(obj, writable);
    pass.relr(&mut stats)?;
    let recorded = recorded.filter(|e| match pass.fits(e) {
        Ok(()) => true,
        Err(why) => {
            stats.misfit = Some(why);
            false
        }
    });
    let run = match recorded {
        Some(e) => {
            pass.prefill(e, cx);
            pass.recorded_run(e, &mut stats)?;
            e.run() as usize
        }
        None => {
            // The leading run of RELATIVE relocations (DT_RELACOUNT's, and
            // where most of a big library's relocations are) takes a fast
            // path.
            pass.leading_relative(&d.rela, cx.single_threaded, &mut stats)?
        }
    };
    // The rest, without reading the run's entries again.
    let rest = d.rela.slice(run, d.rela.len().saturating_sub(run));
    for rela in rest.iter().flat_map(|t| t.iter()) {
        pass.bind(&rela, cx, &mut stats)?;
    }
    pass.in_jmprel = true;
    for rela in d.jmprel.iter() {
        // A lazily bound JUMP_SLOT is the switch's.
        if cx.lazy {
            pass.apply(&rela, cx, &mut stats)?;
        } else {
            pass.bind(&rela, cx, &mut stats)?;
        }
    }
    // The object's own TLS references, once its image is relocated, and
    // those of the objects before it, held back until then (unless the
    // image waits for its ifunc slots: `TlsWaiting::after_ifuncs`).
    pass.finish_tls(cx)?;
    if !cx.images.iter().any(|i| i.is(obj)) && static_tls::held_for(obj, cx.held) {
        place_held(obj, cx.held, &(static_tls::glibc_dl(cx.scope), cx.trace))?;
    }
    // IRELATIVE and the ifuncs of minld's objects are left to the caller
    // (`apply_deferred`): their resolvers are the objects' own code.
    stats.irelative = pass.deferred.len();
    let resolved = Resolved {
        cache: std::mem::take(&mut pass.cache),
        defs: std::mem::take(&mut pass.defs),
    };
    Ok((stats, std::mem::take(&mut pass.deferred), resolved))
}

/// A slot whose value an ifunc resolver of one of minld's objects decides:
/// written after relocation, by [`apply_deferred`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deferred {
    /// The slot, checked by `Pass::target` to lie in a writable part of
    /// its object (RELRO included, which stays writable until then).
    slot: Slot,
    /// The resolver, checked to lie in its object's code.
    resolver: usize,
    /// Added to what the resolver returns.
    addend: i64,
}

/// Fills the slots relocation left for ifunc resolvers, then puts text
/// segments back to their protections (DT_TEXTREL). With `run` false no
/// resolver runs: the slots point at a function that aborts with a message
/// (`Loader::link`). Must come before `protect_relro`.
pub(crate) fn apply_deferred(obj: &Object, deferred: &[Deferred], run: bool) -> Result<(), Error> {
    let value = |d: &Deferred| {
        if run {
            call_resolver(d.resolver).wrapping_add(d.addend as usize)
        } else {
            unresolved_ifunc as *const () as usize
        }
    };
    if !obj.dynamic.textrel() {
        for d in deferred {
            // The slot stays writable until `protect_relro` (RELRO).
            d.slot.write64(value(d) as u64);
        }
        return Ok(());
    }
    // W^X: text-relocated segments are read-write without exec while
    // relocating; they get their protections back before any resolver
    // (whose code may lie in them) runs, and are made writable again only
    // to store the values.
    obj.image.reprotect_for_textrel(0)?;
    if deferred.is_empty() {
        return Ok(());
    }
    let values: Vec<usize> = deferred.iter().map(value).collect();
    obj.image.reprotect_for_textrel(libc::PROT_WRITE)?;
    for (d, v) in deferred.iter().zip(values) {
        // Writable again until the reprotection below.
        d.slot.write64(v as u64);
    }
    obj.image.reprotect_for_textrel(0)
}

/// Fills the ifunc slots of the relocated objects and protects their
/// RELRO, in order, up to the first one still waiting for initial-exec
/// references held back (`static_tls::waits_for_held`). An object's ifunc
/// resolvers then run after the pass of the definer it waits for, still in
/// the objects' order and before any init function.
pub(crate) fn finish_ready(
    waiting: &mut std::collections::VecDeque<(std::sync::Arc<Object>, Vec<Deferred>)>,
    held: &[HeldTls],
    run_code: bool,
) -> Result<(), Error> {
    while let Some((o, slots)) = waiting.front() {
        if waits_for_held(o, held) {
            break;
        }
        {
            let _phase = crate::os::phases::enter(crate::os::phases::Phase::Init);
            apply_deferred(o, slots, run_code)?;
        }
        let _phase = crate::os::phases::enter(crate::os::phases::Phase::Relocate);
        o.image.protect_relro()?;
        waiting.pop_front();
    }
    Ok(())
}

/// A place a relocation writes, checked (when it was made) to lie with its
/// `len` bytes inside a writable part of its object: the only way minld
/// writes into an object it relocates. Made by `Pass::target`,
/// [`Slot::within`] and [`Slot::in_object`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    /// The real address.
    addr: usize,
    /// The bytes checked.
    len: usize,
}

impl Slot {
    /// `addr..+len` if it lies inside the real address range `lo..hi`.
    #[inline]
    fn within((lo, hi): (usize, usize), addr: usize, len: usize) -> Option<Slot> {
        let end = addr.checked_add(len)?;
        (addr >= lo && end <= hi).then_some(Slot { addr, len })
    }

    /// `addr..+len` if it lies in a writable segment of `obj`.
    fn in_object(obj: &Object, addr: usize, len: usize) -> Option<Slot> {
        obj.image.writable(addr, len).then_some(Slot { addr, len })
    }

    /// The real address.
    fn addr(self) -> usize {
        self.addr
    }

    /// Reads the word (the addend a RELR entry or a lazy PLT slot holds).
    fn read64(self) -> u64 {
        debug_assert!(self.len >= 8);
        // SAFETY: `addr..+8` was checked to lie in a writable (so mapped and
        // readable) segment of the object, which is alive while relocated.
        unsafe { (self.addr as *const u64).read_unaligned() }
    }

    /// Writes the word: a relaxed atomic store when aligned (the same
    /// instruction as a plain one, and sound even if two threads of the
    /// RELATIVE fast path or of lazy binding write the same word), else
    /// an unaligned write.
    #[inline]
    fn write64(self, value: u64) {
        self.store64(value, Ordering::Relaxed);
    }

    /// [`Slot::write64`] with release ordering (lazy binding publishes a
    /// GOT word other threads' calls read).
    #[inline]
    fn store64(self, value: u64, order: Ordering) {
        debug_assert!(self.len >= 8);
        if self.addr % 8 == 0 {
            // SAFETY: `addr..+8` lies in a writable segment of the object
            // (checked when the slot was made) and is aligned; every
            // concurrent access minld makes to it is atomic.
            unsafe { AtomicU64::from_ptr(self.addr as *mut u64) }.store(value, order);
        } else {
            // SAFETY: as above, unaligned: only one thread relocates it.
            unsafe { (self.addr as *mut u64).write_unaligned(value) }
        }
    }

    /// A 16-byte slot as its two words.
    fn words(self) -> (Slot, Slot) {
        debug_assert!(self.len >= 16);
        let first = Slot {
            addr: self.addr,
            len: 8,
        };
        let second = Slot {
            addr: self.addr + 8,
            len: 8,
        };
        (first, second)
    }

    /// Writes a 32-bit field.
    fn write32(self, value: u32) {
        debug_assert!(self.len >= 4);
        // SAFETY: `addr..+4` was checked to lie in a writable segment of
        // the object; nothing else runs in the object yet.
        unsafe { (self.addr as *mut u32).write_unaligned(value) }
    }
}

/// One relocation pass over one object.
struct Pass<'o> {
    /// The object relocated.
    obj: &'o Object,
    /// Real address ranges relocations may write: the writable segments
    /// (RELRO included until relocation ends), every segment with
    /// DT_TEXTREL (made writable meanwhile), less the pages a mapping
    /// without write permission covers (`layout::writable_ranges`).
    writable: Vec<(usize, usize)>,
    /// The range of `writable` the last target lay in.
    hot: std::cell::Cell<(usize, usize)>,
    /// The load bias.
    bias: usize,
    /// Per symbol index: 1 + the index of its definition in `defs` once
    /// looked up, 0 before.
    cache: Vec<u32>,
    /// The definitions found, which `cache` indexes (a 4-byte slot per
    /// symbol: a big object's table stays small enough for the heap,
    /// instead of a mapping of its own).
    defs: Vec<Option<Def>>,
    /// Slots for ifunc resolvers, filled after everything else.
    deferred: Vec<Deferred>,
    /// Some JUMP_SLOT was left for lazy binding (`GOT[1]` and `GOT[2]` set).
    lazy_used: bool,
    /// Applying DT_JMPREL (whose indices the PLT pushes), not DT_RELA.
    in_jmprel: bool,
    /// References to the object's own TLS block, applied at the end of the
    /// pass (`Pass::finish_tls`), when its place is known.
    pending_tls: Vec<(apply::Reloc, Slot, Def)>,
}

impl<'o> Pass<'o> {
    /// A pass over `obj` that may write `writable`.
    fn new(obj: &'o Object, writable: Vec<(usize, usize)>) -> Self {
        Pass {
            obj,
            writable,
            hot: std::cell::Cell::new((0, 0)),
            bias: obj.image.bias.0,
            cache: vec![0; obj.symbols.len()],
            defs: Vec::new(),
            deferred: Vec::new(),
            lazy_used: false,
            in_jmprel: false,
            pending_tls: Vec::new(),
        }
    }

    /// A relocation error of this object.
    fn err(&self, t: u32, offset: u64, fault: RelocFault) -> Error {
        Error::Relocation {
            path: self.obj.path.clone(),
            kind: RelocKind(t),
            offset,
            fault,
        }
    }

    /// The place a relocation writes, checked to be inside a writable
    /// part of the object (RELRO is still writable during relocation).
    /// The range that took the last target is tried first.
    #[inline]
    fn target(&self, t: u32, offset: u64, size: usize) -> Result<Slot, Error> {
        let addr = self.bias.wrapping_add(offset as usize);
        match Slot::within(self.hot.get(), addr, size) {
            Some(slot) => Ok(slot),
            None => self.target_cold(t, offset, size),
        }
    }

    /// [`Pass::target`] outside the last range: the others, or the error.
    #[inline(never)]
    fn target_cold(&self, t: u32, offset: u64, size: usize) -> Result<Slot, Error> {
        let addr = self.bias.wrapping_add(offset as usize);
        let found = self
            .writable
            .iter()
            .find_map(|&range| Slot::within(range, addr, size).map(|s| (range, s)));
        match found {
            Some((range, slot)) => {
                self.hot.set(range);
                Ok(slot)
            }
            None => Err(self.err(t, offset, RelocFault::TargetOutside { size: size as u64 })),
        }
    }

    /// An ifunc resolver or init function must lie in the object's code.
    fn check_code(&self, t: u32, off: u64, addr: usize) -> Result<(), Error> {
        if self.obj.in_code(addr) {
            Ok(())
        } else {
            Err(self.err(t, off, RelocFault::ResolverOutside { addr: addr as u64 }))
        }
    }

    /// Relocation's caller of the one resolution (`resolve`), with a cache
    /// per symbol index: what symbol `symi` of the object binds to. None:
    /// a weak reference nobody defines (its value is 0).
    #[inline]
    fn resolve(
        &mut self,
        symi: usize,
        t: u32,
        off: u64,
        cx: &mut Context<'_>,
        stats: &mut RelocStats,
    ) -> Result<Option<Def>, Error> {
        if symi == 0 {
            let tls = crate::base::relocs::class(t).is_some_and(is_tls_class);
            return Ok(Some(Def::this_module(self.obj, tls)));
        }
        if let Some(&i) = self.cache.get(symi).filter(|&&i| i != 0) {
            return Ok(self.defs[i as usize - 1]);
        }
        self.resolve_first(symi, t, off, cx, stats)
    }

    /// [`Pass::resolve`] for a symbol not looked up yet: the walk of the
    /// scope, its result cached.
    fn resolve_first(
        &mut self,
        symi: usize,
        t: u32,
        off: u64,
        cx: &mut Context<'_>,
        stats: &mut RelocStats,
    ) -> Result<Option<Def>, Error> {
        let at = self.look_up(symi, t, off, cx, stats)?;
        Ok(self.defs.get(at).copied().flatten())
    }

    /// The walk of the scope for symbol `symi`, not looked up yet: its
    /// definition's position in `defs`, where it is kept (and `cache`
    /// points).
    #[inline(never)]
    fn look_up(
        &mut self,
        symi: usize,
        t: u32,
        off: u64,
        cx: &mut Context<'_>,
        stats: &mut RelocStats,
    ) -> Result<usize, Error> {
        let r = resolve::Reference::of(self.obj, symi, |what| self.err(t, off, what))?;
        let mut resolver = resolve::Resolver {
            scope: resolve::Scope::Refs {
                members: cx.scope,
                tables: &cx.tables,
            },
            uniques: resolve::UniqueTable::Load(cx.uniques),
            rules: cx.rules,
            in_namespace: cx.rules.is_some(),
            denied: Some(&mut cx.denied),
            lookups: 0,
        };
        let found = {
            let _phase = crate::os::phases::enter(crate::os::phases::Phase::Lookup);
            resolver.resolve(&r)
        };
        stats.lookups += resolver.lookups;
        let def = match found {
            Some(d) => Some(d),
            None => r.undefined(cx.lazy && t == crate::base::relocs::r::JUMP_SLOT)?,
        };
        self.defs.push(def);
        if let Some(slot) = self.cache.get_mut(symi) {
            *slot = u32::try_from(self.defs.len()).unwrap_or(0);
        }
        Ok(self.defs.len() - 1)
    }
}

/// The classes whose symbol index 0 means "this module's TLS block".
fn is_tls_class(c: crate::base::relocs::Class) -> bool {
    use crate::base::relocs::Class;
    matches!(
        c,
        Class::TlsModule | Class::TlsOffset | Class::TlsTpOffset | Class::TlsDesc
    )
}

/// Where an ifunc of an object linked without running its code points.
extern "C" fn unresolved_ifunc() -> ! {
    eprintln!("minld: called an ifunc of a library linked without running its code (Loader::link)");
    std::process::abort()
}
