//! Stage 6 of a load: apply an object's relocations (x86-64 psABI, table
//! 4.10 in version 1.0), binding its symbol references in a lookup scope.
//!
//! Order within one object, as glibc does it: RELR, then DT_RELA, then
//! DT_JMPREL (bound now), and last the IRELATIVE relocations and references
//! to the object's own ifuncs, whose resolvers may read anything the other
//! relocations wrote (libm's read `_rtld_global_ro` through a GLOB_DAT).
//!
//! (See `docs/design.md`, "The order in which ifunc resolvers run" and "RELR".)

pub(crate) mod interpose;
pub(crate) mod lazy;

use std::sync::atomic::Ordering;

use goblin::elf::dynamic::DF_STATIC_TLS;
use goblin::elf::sym as st;
use goblin::elf64::reloc::Rela;

use crate::base::error::Error;
use crate::base::mem::Table;
use crate::base::relocs::RelocKind;
use crate::base::relocs::{r, reloc_name};
use crate::elf::symbols::{NameHash, Want};
use crate::model::object::{Dep, Object, ScopeRef};
use crate::model::registry::Uniques;
use crate::os::debug::{self, Category};
use crate::process::tls;

/// What relocating one object did, for `MINLD_DEBUG=statistics`.
#[derive(Debug, Default, Clone)]
pub(crate) struct RelocStats {
    pub(crate) relative: usize,
    pub(crate) symbolic: usize,
    pub(crate) lookups: usize,
    pub(crate) irelative: usize,
}

/// A resolved symbol: where it is and who defines it.
#[derive(Clone, Copy)]
struct Def {
    /// Real address (for TLS symbols: st_value, the offset in the block).
    value: usize,
    size: u64,
    kind: u8,
    /// TLS placement of the definer.
    tls: Tls,
    /// Defined by one of minld's objects: an ifunc's resolver is then that
    /// object's code, run only after relocation (`apply_deferred`), never
    /// by `Loader::link`. (The host's resolvers are glibc's objects' code,
    /// which already runs.)
    own: bool,
}

#[derive(Clone, Copy)]
enum Tls {
    None,
    /// A host module: glibc's module id and static offset from %fs.
    Host {
        modid: usize,
        offset: Option<isize>,
    },
    /// A module of minld's, with its module id (None: it has no PT_TLS).
    Minld {
        modid: Option<usize>,
    },
}

/// Everything a relocation pass needs besides the object.
pub(crate) struct Context<'a> {
    pub(crate) scope: &'a [ScopeRef<'a>],
    pub(crate) uniques: &'a mut Uniques,
    pub(crate) allow_textrel: bool,
    /// Lazy binding requested: an undefined function reached only through
    /// the PLT does not fail the load (it aborts with a message if called).
    pub(crate) lazy: bool,
    /// The namespace's rules: host symbols bound only if allowed, host
    /// exports first.
    pub(crate) rules: Option<&'a crate::base::rules::Rules>,
    /// Host symbols bound against the rules, `name@version (from file)`.
    pub(crate) denied: Vec<String>,
}

/// In a namespace, before anything is relocated: resolves every symbol the
/// object's relocations name and collects, in `cx.denied`, the host symbols
/// its rules do not allow. Nothing is written and no code runs (host ifunc
/// resolvers included), so a refused plugin never runs.
pub(crate) fn check_imports(obj: &Object, cx: &mut Context<'_>) -> Result<(), Error> {
    let mut pass = Pass {
        obj,
        writable: Vec::new(),
        bias: obj.image.bias.0,
        cache: vec![0; obj.symbols.len()],
        defs: Vec::new(),
        deferred: Vec::new(),
        lazy_used: false,
        in_jmprel: false,
    };
    let mut stats = RelocStats::default();
    for rela in obj.dynamic.rela.iter().chain(obj.dynamic.jmprel.iter()) {
        let symi = (rela.r_info >> 32) as usize;
        if symi != 0 {
            let t = (rela.r_info & 0xffff_ffff) as u32;
            pass.resolve(symi, t, rela.r_offset, cx, &mut stats)?;
        }
    }
    Ok(())
}

/// Applies all relocations of `obj`.
pub(crate) fn relocate(
    obj: &Object,
    cx: &mut Context<'_>,
) -> Result<(RelocStats, Vec<Deferred>), Error> {
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
    let mut pass = Pass {
        obj,
        writable: crate::model::image::layout::writable_ranges(&obj.image.segments, d.textrel()),
        bias: obj.image.bias.0,
        cache: vec![0; obj.symbols.len()],
        defs: Vec::new(),
        deferred: Vec::new(),
        lazy_used: false,
        in_jmprel: false,
    };
    pass.relr(&mut stats)?;
    // The leading run of RELATIVE relocations (DT_RELACOUNT's, and where
    // most of a big library's relocations are) takes a fast path.
    let run = relative_run(&d.rela);
    pass.relative(&d.rela, run, &mut stats)?;
    for rela in d.rela.iter().skip(run) {
        pass.apply(&rela, cx, &mut stats)?;
    }
    pass.in_jmprel = true;
    for rela in d.jmprel.iter() {
        pass.apply(&rela, cx, &mut stats)?;
    }
    // IRELATIVE and the ifuncs of minld's objects are left to the caller
    // (`apply_deferred`): their resolvers are the objects' own code.
    stats.irelative = pass.deferred.len();
    Ok((stats, std::mem::take(&mut pass.deferred)))
}

/// A slot whose value an ifunc resolver of one of minld's objects decides:
/// written after relocation, by [`apply_deferred`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deferred {
    /// The slot, checked by `Pass::target` to lie in a writable part of
    /// its object (RELRO included, which stays writable until then).
    addr: usize,
    /// The resolver, checked to lie in its object's code.
    resolver: usize,
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
            // SAFETY: `d.addr..+8` was checked to lie in a writable part of
            // `obj` when the relocation was read, and stays writable until
            // `protect_relro` (RELRO).
            unsafe { (d.addr as *mut u64).write_unaligned(value(d) as u64) };
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
        // SAFETY: as above; the text segments are writable again until the
        // reprotection below.
        unsafe { (d.addr as *mut u64).write_unaligned(v as u64) };
    }
    obj.image.reprotect_for_textrel(0)
}

struct Pass<'o> {
    obj: &'o Object,
    /// Real address ranges relocations may write: the writable segments
    /// (RELRO included until relocation ends), every segment with
    /// DT_TEXTREL (made writable meanwhile), less the pages a mapping
    /// without write permission covers (`layout::writable_ranges`).
    writable: Vec<(usize, usize)>,
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
    /// Some JUMP_SLOT was left for lazy binding (GOT[1] and GOT[2] set).
    lazy_used: bool,
    /// Applying DT_JMPREL (whose indices the PLT pushes), not DT_RELA.
    in_jmprel: bool,
}

/// How many relocations at the start of `rela` are plain RELATIVE ones.
fn relative_run(rela: &Table<Rela>) -> usize {
    rela.iter()
        .take_while(|r| r.r_info == u64::from(r::RELATIVE))
        .count()
}

/// Above this many RELATIVE relocations an object's pages are faulted in
/// with one system call first, and the relocations are split over threads.
const BIG_RELATIVE_RUN: usize = 32 * 1024;

/// The cores relocation may use (at most 8), asked once: the answer reads
/// cgroup files.
fn parallelism() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |t| t.get())
            .min(8)
    })
}

/// Set where starting threads is not allowed (the sandbox's runner, whose
/// seccomp filter has no clone): relocation then stays on one thread.
pub(crate) static SINGLE_THREADED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Calls an ifunc resolver and returns the implementation it chose.
pub(crate) fn call_resolver(resolver: usize) -> usize {
    // SAFETY: `resolver` is the address of an STT_GNU_IFUNC symbol (or an
    // IRELATIVE addend) inside an object that has been relocated up to its
    // ifuncs; on x86-64 glibc calls resolvers with no arguments, and they
    // return the address of the implementation.
    let f: extern "C" fn() -> usize =
        unsafe { std::mem::transmute::<usize, extern "C" fn() -> usize>(resolver) };
    f()
}

impl Pass<'_> {
    fn err(&self, t: u32, offset: u64, fault: crate::base::error::RelocFault) -> Error {
        Error::Relocation {
            path: self.obj.path.clone(),
            kind: RelocKind(t),
            offset,
            fault,
        }
    }

    /// The real address a relocation writes, checked to be inside a writable
    /// part of the object (RELRO is still writable during relocation).
    fn target(&self, t: u32, offset: u64, size: usize) -> Result<usize, Error> {
        let addr = self.bias.wrapping_add(offset as usize);
        let ok = addr.checked_add(size).is_some_and(|end| {
            self.writable
                .iter()
                .any(|&(lo, hi)| addr >= lo && end <= hi)
        });
        if ok {
            Ok(addr)
        } else {
            Err(self.err(
                t,
                offset,
                crate::base::error::RelocFault::TargetOutside { size: size as u64 },
            ))
        }
    }

    fn write64(&self, addr: usize, value: u64) {
        // SAFETY: `addr` was checked by `target` to lie, with 8 bytes, in a
        // writable segment of this object (made writable for text
        // relocations); nothing else runs in the object yet.
        unsafe { (addr as *mut u64).write_unaligned(value) }
    }

    fn write32(&self, addr: usize, value: u32) {
        // SAFETY: as in write64, with 4 bytes checked.
        unsafe { (addr as *mut u32).write_unaligned(value) }
    }

    /// DT_RELR: an even word is an address to relocate, an odd word a bitmap
    /// of the 63 words after the last address.
    fn relr(&mut self, stats: &mut RelocStats) -> Result<(), Error> {
        let table = self.obj.dynamic.relr;
        let mut next: u64 = 0;
        for entry in table.iter() {
            if entry & 1 == 0 {
                let addr = self.target(r::RELATIVE, entry, 8)?;
                self.add_bias(addr);
                stats.relative += 1;
                next = entry + 8;
            } else {
                let mut bits = entry >> 1;
                let mut at = next;
                while bits != 0 {
                    if bits & 1 != 0 {
                        let addr = self.target(r::RELATIVE, at, 8)?;
                        self.add_bias(addr);
                        stats.relative += 1;
                    }
                    bits >>= 1;
                    at += 8;
                }
                next += 63 * 8;
            }
        }
        Ok(())
    }

    /// The first `n` entries of `rela`, all RELATIVE: each target checked
    /// against the object's writable ranges and written. A big run is
    /// faulted in first (MADV_POPULATE_WRITE over the pages it writes: one
    /// system call instead of a page fault per page) and split over the
    /// machine's cores.
    fn relative(&self, rela: &Table<Rela>, n: usize, stats: &mut RelocStats) -> Result<(), Error> {
        if n == 0 {
            return Ok(());
        }
        let ranges = &self.writable;
        let bias = self.bias;
        // Checks and applies entries [from, to); returns the first bad one.
        let run = |from: usize, to: usize| -> Option<Rela> {
            let mut hot = ranges.first().copied().unwrap_or((0, 0));
            for i in from..to {
                let r = rela.get(i)?;
                let p = bias.wrapping_add(r.r_offset as usize);
                if p < hot.0 || p.wrapping_add(8) > hot.1 || p.wrapping_add(8) < p {
                    match ranges.iter().find(|&&(lo, hi)| {
                        p >= lo && p.wrapping_add(8) <= hi && p.wrapping_add(8) > p
                    }) {
                        Some(&r) => hot = r,
                        None => return Some(r),
                    }
                }
                // SAFETY: `p..p+8` lies inside one of this object's writable
                // segments (checked just above); nothing else runs in the
                // object yet, and a relaxed atomic store is a plain store
                // that stays sound even if a malformed table names the same
                // word twice in two threads' chunks (aligned: checked below).
                unsafe {
                    let v = bias.wrapping_add(r.r_addend as usize) as u64;
                    if p % 8 == 0 {
                        std::sync::atomic::AtomicU64::from_ptr(p as *mut u64)
                            .store(v, Ordering::Relaxed);
                    } else {
                        (p as *mut u64).write_unaligned(v);
                    }
                }
            }
            None
        };
        let bad = if n < BIG_RELATIVE_RUN {
            run(0, n)
        } else {
            // One pass over the run: the span of pages it writes, whether
            // every target is aligned.
            let (mut lo, mut hi, mut aligned) = (u64::MAX, 0u64, true);
            for r in rela.iter().take(n) {
                lo = lo.min(r.r_offset);
                hi = hi.max(r.r_offset.saturating_add(8));
                aligned &= (bias as u64).wrapping_add(r.r_offset) % 8 == 0;
            }
            self.populate(lo, hi, n, ranges);
            // Threads only where they cannot race: aligned targets (atomic
            // stores) and a table that no relocation can write.
            let table = (rela.addr(), rela.addr() + n * std::mem::size_of::<Rela>());
            let table_safe = ranges.iter().all(|&(l, h)| table.1 <= l || table.0 >= h);
            let threads = if SINGLE_THREADED.load(Ordering::Relaxed) || !aligned || !table_safe {
                1
            } else {
                parallelism()
            };
            let chunk = n.div_ceil(threads);
            std::thread::scope(|s| {
                // A thread that cannot be started leaves its chunk to this
                // one (RLIMIT_NPROC, a pids limit, a seccomp filter).
                let mut inline = Vec::new();
                let mut handles = Vec::new();
                for t in 1..threads {
                    let (from, to) = (t * chunk, ((t + 1) * chunk).min(n));
                    let run = &run;
                    match std::thread::Builder::new().spawn_scoped(s, move || run(from, to)) {
                        Ok(h) => handles.push(h),
                        Err(_) => inline.push((from, to)),
                    }
                }
                let mut bad = run(0, chunk.min(n));
                for (from, to) in inline {
                    bad = bad.or_else(|| run(from, to));
                }
                for h in handles {
                    let r = h.join().unwrap_or(None);
                    bad = bad.or(r);
                }
                bad
            })
        };
        if let Some(r) = bad {
            return Err(self.err(
                r::RELATIVE,
                r.r_offset,
                crate::base::error::RelocFault::TargetOutside { size: 8 },
            ));
        }
        stats.relative += n;
        Ok(())
    }

    /// Faults in, writable, the pages from `lo` to `hi` (virtual
    /// addresses: the span `n` RELATIVE relocations write), clipped to the
    /// writable ranges. A failure (a kernel before 5.14) only loses the
    /// speed-up.
    fn populate(&self, lo: u64, hi: u64, n: usize, ranges: &[(usize, usize)]) {
        let page = crate::os::sys::page_size();
        let (lo, hi) = (
            self.bias.wrapping_add(lo as usize),
            self.bias.wrapping_add(hi as usize),
        );
        for &(rlo, rhi) in ranges {
            let start = lo.max(rlo) & !(page - 1);
            let end = (hi.min(rhi) + page - 1) & !(page - 1);
            if end > start {
                let note = || {
                    format!(
                        "{}: fault in the {} pages {n} RELATIVE relocations write",
                        self.obj.image.name(),
                        (end - start) / page
                    )
                };
                // SAFETY: the range lies in this object's writable segment
                // (page-rounded ends stay in its mapping); populating changes
                // no contents.
                let _ = unsafe { self.obj.image.sys.populate_write(start, end - start, note) };
            }
        }
    }

    fn add_bias(&self, addr: usize) {
        // SAFETY: checked by `target` as in write64.
        let v = unsafe { (addr as *const u64).read_unaligned() };
        self.write64(addr, v.wrapping_add(self.bias as u64));
    }

    fn apply(
        &mut self,
        rela: &Rela,
        cx: &mut Context<'_>,
        stats: &mut RelocStats,
    ) -> Result<(), Error> {
        let t = (rela.r_info & 0xffff_ffff) as u32;
        let symi = (rela.r_info >> 32) as usize;
        let a = rela.r_addend;
        let off = rela.r_offset;
        match t {
            r::NONE => return Ok(()),
            r::RELATIVE | r::RELATIVE64 => {
                let p = self.target(t, off, 8)?;
                self.write64(p, (self.bias as u64).wrapping_add(a as u64));
                stats.relative += 1;
                return Ok(());
            }
            r::IRELATIVE => {
                let p = self.target(t, off, 8)?;
                let resolver = self.bias.wrapping_add(a as usize);
                self.check_code(t, off, resolver)?;
                self.deferred.push(Deferred {
                    addr: p,
                    resolver,
                    addend: 0,
                });
                return Ok(());
            }
            r::COPY => return Err(self.err(t, off, crate::base::error::RelocFault::Copy)),
            _ => {}
        }
        if reloc_name(t).is_none() || matches!(t, 3 | 4 | 9 | 12..=15 | 19..=23 | 25 | 26 | 34 | 35)
        {
            return Err(self.err(t, off, crate::base::error::RelocFault::UnsupportedType));
        }
        if t == r::JUMP_SLOT && self.in_jmprel && self.lazy_slot(off, cx)? {
            return Ok(());
        }
        stats.symbolic += 1;
        let def = self.resolve(symi, t, off, cx, stats)?;
        let (s, size, kind, tls, own) = match def {
            Some(d) => (d.value, d.size, d.kind, d.tls, d.own),
            None => (0, 0, st::STT_NOTYPE, Tls::None, false), // weak undefined: 0
        };
        match t {
            r::R64 | r::GLOB_DAT | r::JUMP_SLOT => {
                let p = self.target(t, off, 8)?;
                if kind == st::STT_GNU_IFUNC && def.is_some() {
                    if own {
                        self.deferred.push(Deferred {
                            addr: p,
                            resolver: s,
                            addend: a,
                        });
                    } else {
                        self.write64(p, call_resolver(s).wrapping_add(a as usize) as u64);
                    }
                } else {
                    self.write64(p, (s as u64).wrapping_add(a as u64));
                }
            }
            r::PC64 => {
                let p = self.target(t, off, 8)?;
                self.write64(p, (s as u64).wrapping_add(a as u64).wrapping_sub(p as u64));
            }
            r::PC32 => {
                let p = self.target(t, off, 4)?;
                let v = (s as i64).wrapping_add(a).wrapping_sub(p as i64);
                let v = i32::try_from(v).map_err(|_| {
                    self.err(
                        t,
                        off,
                        crate::base::error::RelocFault::Overflow32 { value: v },
                    )
                })?;
                self.write32(p, v as u32);
            }
            r::R32 => {
                let p = self.target(t, off, 4)?;
                let v = (s as u64).wrapping_add(a as u64);
                let v = u32::try_from(v).map_err(|_| {
                    self.err(
                        t,
                        off,
                        crate::base::error::RelocFault::Overflow32 { value: v as i64 },
                    )
                })?;
                self.write32(p, v);
            }
            r::R32S => {
                let p = self.target(t, off, 4)?;
                let v = (s as i64).wrapping_add(a);
                let v = i32::try_from(v).map_err(|_| {
                    self.err(
                        t,
                        off,
                        crate::base::error::RelocFault::Overflow32 { value: v },
                    )
                })?;
                self.write32(p, v as u32);
            }
            r::SIZE64 => {
                let p = self.target(t, off, 8)?;
                self.write64(p, size.wrapping_add(a as u64));
            }
            r::SIZE32 => {
                let p = self.target(t, off, 4)?;
                self.write32(p, size.wrapping_add(a as u64) as u32);
            }
            r::TPOFF64 => {
                let p = self.target(t, off, 8)?;
                match tls {
                    Tls::Host {
                        offset: Some(o), ..
                    } => self.write64(p, (o as i64).wrapping_add(s as i64).wrapping_add(a) as u64),
                    Tls::Host { offset: None, .. } => {
                        return Err(self.err(
                            t,
                            off,
                            crate::base::error::RelocFault::NoStaticTlsBlock,
                        ))
                    }
                    Tls::Minld { .. } => return Err(self.initial_exec(t, off, symi)),
                    Tls::None => return Err(self.not_tls(t, off, symi)),
                }
            }
            r::DTPMOD64 => {
                let p = self.target(t, off, 8)?;
                match tls {
                    Tls::Host { modid, .. } => self.write64(p, modid as u64),
                    Tls::Minld { modid: Some(m) } => self.write64(p, m as u64),
                    _ => return Err(self.not_tls(t, off, symi)),
                }
            }
            r::DTPOFF64 => {
                let p = self.target(t, off, 8)?;
                match tls {
                    Tls::Host { .. } | Tls::Minld { modid: Some(_) } => {
                        self.write64(p, (s as u64).wrapping_add(a as u64))
                    }
                    _ => return Err(self.not_tls(t, off, symi)),
                }
            }
            r::TLSDESC => {
                // A descriptor is two words: the resolver the code calls,
                // and its argument.
                let p = self.target(t, off, 16)?;
                let offset = (s as u64).wrapping_add(a as u64) as usize;
                let (resolver, arg) = match tls {
                    Tls::Host {
                        offset: Some(o), ..
                    } => (tls::tlsdesc_static(), (o as usize).wrapping_add(offset)),
                    Tls::Host { modid, .. } | Tls::Minld { modid: Some(modid) } => {
                        let index = Box::new(tls::TlsIndex {
                            module: modid,
                            offset,
                        });
                        let at = &*index as *const tls::TlsIndex as usize;
                        self.obj
                            .tlsdesc
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(index);
                        (tls::tlsdesc_dynamic(), at)
                    }
                    _ => return Err(self.not_tls(t, off, symi)),
                };
                self.write64(p, resolver as u64);
                self.write64(p + 8, arg as u64);
            }
            _ => return Err(self.err(t, off, crate::base::error::RelocFault::UnsupportedType)),
        }
        Ok(())
    }

    fn symbol_name(&self, symi: usize) -> String {
        self.obj
            .symbols
            .sym(symi)
            .and_then(|s| {
                self.obj
                    .symbols
                    .name(&s)
                    .map(|n| String::from_utf8_lossy(n).into_owned())
            })
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "the object's own TLS block".to_string())
    }

    /// Initial-exec TLS of a library minld loads: it would need a place in
    /// glibc's static TLS block, which only glibc can give.
    fn initial_exec(&self, t: u32, off: u64, symi: usize) -> Error {
        self.err(
            t,
            off,
            crate::base::error::RelocFault::InitialExec {
                symbol: self.symbol_name(symi),
                defined_by: None,
                static_tls: self.obj.dynamic.flags & DF_STATIC_TLS != 0,
            },
        )
    }

    fn not_tls(&self, t: u32, off: u64, symi: usize) -> Error {
        self.err(
            t,
            off,
            crate::base::error::RelocFault::NotTls {
                symbol: self.symbol_name(symi),
            },
        )
    }

    /// Lazy binding of a JUMP_SLOT (see `lazy`): the word points at its PLT
    /// code (its value in the file, plus the bias) until the first call.
    /// Returns false where the slot must be bound now: not lazy, no
    /// DT_PLTGOT, or the slot inside RELRO (made read-only after loading).
    fn lazy_slot(&mut self, off: u64, cx: &Context<'_>) -> Result<bool, Error> {
        let Some(got) = self.obj.dynamic.pltgot.filter(|_| cx.lazy) else {
            return Ok(false);
        };
        let p = self.target(r::JUMP_SLOT, off, 8)?;
        // GOT[1] and GOT[2] are usually in RELRO (written now, before it
        // is made read-only); the slots themselves must stay writable.
        if self.in_relro(p) || !self.obj.image.writable(got + 8, 16) {
            return Ok(false);
        }
        // SAFETY: checked by `target` as in write64.
        let stub = unsafe { (p as *const u64).read_unaligned() } as usize;
        let stub = self.bias.wrapping_add(stub);
        self.check_code(r::JUMP_SLOT, off, stub)?;
        self.write64(p, stub as u64);
        if !self.lazy_used {
            self.lazy_used = true;
            self.write64(got + 8, self.obj as *const Object as u64);
            self.write64(got + 16, crate::pipeline::reloc::lazy::trampoline() as u64);
        }
        Ok(true)
    }

    fn in_relro(&self, addr: usize) -> bool {
        self.obj
            .image
            .phdr(goblin::elf::program_header::PT_GNU_RELRO)
            .is_some_and(|r| {
                // The pages protect_relro makes read-only.
                let page = crate::os::sys::page_size();
                let lo = self.bias.wrapping_add(r.p_vaddr as usize) & !(page - 1);
                let hi = self.bias.wrapping_add((r.p_vaddr + r.p_memsz) as usize) & !(page - 1);
                addr >= lo && addr < hi
            })
    }

    /// An ifunc resolver or init function must lie in the object's code.
    fn check_code(&self, t: u32, off: u64, addr: usize) -> Result<(), Error> {
        let ok = self
            .obj
            .image
            .segments
            .iter()
            .any(|s| s.prot.exec() && addr >= s.addr && addr < s.addr + s.mem_size as usize);
        if ok {
            Ok(())
        } else {
            Err(self.err(
                t,
                off,
                crate::base::error::RelocFault::ResolverOutside { addr: addr as u64 },
            ))
        }
    }

    fn resolve(
        &mut self,
        symi: usize,
        t: u32,
        off: u64,
        cx: &mut Context<'_>,
        stats: &mut RelocStats,
    ) -> Result<Option<Def>, Error> {
        if symi == 0 {
            // No symbol: S is 0 (TLS relocations then mean "this module").
            return Ok(Some(Def {
                value: 0,
                size: 0,
                kind: if matches!(t, r::DTPMOD64 | r::DTPOFF64 | r::TPOFF64 | r::TLSDESC) {
                    st::STT_TLS
                } else {
                    st::STT_NOTYPE
                },
                tls: Tls::Minld {
                    modid: self.obj.tls.as_ref().map(tls::Module::id),
                },
                own: true,
            }));
        }
        if let Some(&i) = self.cache.get(symi).filter(|&&i| i != 0) {
            return Ok(self.defs[i as usize - 1]);
        }
        let obj = self.obj;
        if let Some(rules) = cx.rules {
            if let Some(addr) = obj
                .symbols
                .sym(symi)
                .and_then(|s| obj.symbols.name(&s))
                .and_then(|n| rules.export(n))
            {
                return Ok(Some(Def {
                    value: addr,
                    size: 0,
                    kind: st::STT_FUNC,
                    tls: Tls::None,
                    own: false,
                }));
            }
        }
        let sym = obj.symbols.sym(symi).ok_or_else(|| {
            self.err(
                t,
                off,
                crate::base::error::RelocFault::SymbolIndex {
                    index: symi as u64,
                    count: obj.symbols.len() as u64,
                },
            )
        })?;
        let name = obj.symbols.name(&sym).ok_or_else(|| {
            self.err(
                t,
                off,
                crate::base::error::RelocFault::SymbolName {
                    index: symi as u64,
                    offset: u64::from(sym.st_name),
                },
            )
        })?;
        let bind = sym.st_info >> 4;
        let visibility = sym.st_other & 0x3;
        let defined = sym.st_shndx != goblin::elf::section_header::SHN_UNDEF as u16;
        let found = if defined && (bind == st::STB_LOCAL || visibility != st::STV_DEFAULT) {
            // Bound to itself: local, or protected/hidden visibility.
            Some((ScopeRef::Minld(obj), symi, sym))
        } else {
            let need = obj.wanted_version(symi);
            let want = match need {
                Some(v) => Want::Version(v),
                None => Want::Default,
            };
            let hash = NameHash::new(name);
            stats.lookups += 1;
            cx.scope.iter().find_map(|s| {
                s.symbols()
                    .lookup(name, hash, want)
                    .map(|(i, d)| (*s, i, d))
            })
        };
        if let (Some(rules), Some((definer @ ScopeRef::Host(_), index, _))) = (cx.rules, &found) {
            let version = definer
                .symbols()
                .version_def(definer.symbols().versym(*index))
                .map(|v| v.name.clone());
            if !rules.allows(name, version.as_deref()) {
                let entry = format!(
                    "{}{} (from {})",
                    String::from_utf8_lossy(name),
                    version.map(|v| format!("@{v}")).unwrap_or_default(),
                    definer.soname()
                );
                if !cx.denied.contains(&entry) {
                    cx.denied.push(entry);
                }
            }
        }
        let def = match found {
            Some((definer, index, dsym)) => {
                let dkind = dsym.st_info & 0xf;
                let dbind = dsym.st_info >> 4;
                let mut value = if dkind == st::STT_TLS {
                    dsym.st_value as usize
                } else {
                    definer.bias().wrapping_add(dsym.st_value as usize)
                };
                if dbind == st::STB_GNU_UNIQUE && dkind != st::STT_TLS {
                    value = *cx.uniques.entry(name.to_vec()).or_insert(value);
                }
                if matches!(definer, ScopeRef::Host(_)) && dkind != st::STT_TLS {
                    let confined = cx.rules.and_then(|_| interpose::in_namespace(name, value));
                    if let Some(ours) = confined.or_else(|| interpose::replacement(name, value)) {
                        value = ours;
                    }
                }
                let tls = match definer {
                    ScopeRef::Host(h) => Tls::Host {
                        modid: h.tls_modid,
                        offset: h.tls_offset,
                    },
                    ScopeRef::Minld(o) if dkind == st::STT_TLS => Tls::Minld {
                        modid: o.tls.as_ref().map(tls::Module::id),
                    },
                    ScopeRef::Minld(_) => Tls::None,
                };
                if debug::enabled(Category::Bindings) {
                    let version = definer
                        .symbols()
                        .version_def(definer.symbols().versym(index))
                        .map(|v| format!(" [{}]", v.name))
                        .unwrap_or_default();
                    debug::print(format_args!(
                        "binding file {} to {}: normal symbol `{}'{}",
                        obj.path.display(),
                        if definer.path().as_os_str().is_empty() {
                            "the main program".into()
                        } else {
                            definer.path().display().to_string()
                        },
                        String::from_utf8_lossy(name),
                        version
                    ));
                }
                Some(Def {
                    value,
                    size: dsym.st_size,
                    kind: dkind,
                    tls,
                    own: matches!(definer, ScopeRef::Minld(_)),
                })
            }
            None if bind == st::STB_WEAK => None,
            None if cx.lazy && t == r::JUMP_SLOT => Some(Def {
                value: unresolved_function as *const () as usize,
                size: 0,
                kind: st::STT_FUNC,
                tls: Tls::None,
                own: false,
            }),
            None => {
                let versym = obj.symbols.versym(symi) & 0x7fff;
                let version = obj
                    .need_by_index
                    .get(usize::from(versym))
                    .and_then(|v| v.as_ref())
                    .map(|v| v.name.clone());
                return Err(Error::UndefinedSymbol {
                    name: String::from_utf8_lossy(name).into_owned(),
                    version,
                    needed_by: crate::base::error::Requester::Library(obj.path.clone()),
                });
            }
        };
        if let Some(slot) = self.cache.get_mut(symi) {
            self.defs.push(def);
            *slot = u32::try_from(self.defs.len()).unwrap_or(0);
        }
        Ok(def)
    }
}

/// Binds JUMP_SLOT `index` of `obj` at its first call (see `lazy`): looks
/// the symbol up in the scope the object was loaded with, writes the GOT
/// word and returns the function's address. An error is the message for
/// the user (the caller ends the process).
pub(crate) fn bind_lazily(obj: &Object, index: usize) -> Result<usize, String> {
    let rela = obj
        .dynamic
        .jmprel
        .get(index)
        .ok_or_else(|| format!("lazy binding of PLT entry {index}, beyond DT_JMPREL"))?;
    let t = (rela.r_info & 0xffff_ffff) as u32;
    let symi = (rela.r_info >> 32) as usize;
    if t != r::JUMP_SLOT {
        return Err(format!("lazy binding of a {} relocation", RelocKind(t)));
    }
    let bias = obj.image.bias.0;
    let p = bias.wrapping_add(rela.r_offset as usize);
    if !obj.image.writable(p, 8) {
        return Err(format!(
            "PLT slot {:#x} outside the writable segments",
            rela.r_offset
        ));
    }
    let sym = obj
        .symbols
        .sym(symi)
        .ok_or("a symbol index outside the table")?;
    let name = obj
        .symbols
        .name(&sym)
        .ok_or("a symbol name outside DT_STRTAB")?;
    let shown = || String::from_utf8_lossy(name).into_owned();
    let bind = sym.st_info >> 4;
    let defined = sym.st_shndx != goblin::elf::section_header::SHN_UNDEF as u16;
    let found: Option<(usize, u8, bool)> =
        if defined && (bind == st::STB_LOCAL || sym.st_other & 3 != 0) {
            Some((
                bias.wrapping_add(sym.st_value as usize),
                sym.st_info & 0xf,
                false,
            ))
        } else {
            let need = obj.wanted_version(symi);
            let want = need.map_or(Want::Default, Want::Version);
            let hash = NameHash::new(name);
            let scope = obj.lazy_scope.get().map(Vec::as_slice).unwrap_or(&[]);
            scope.iter().find_map(|m| match m {
                Dep::Host(h, _) => h.symbols.lookup(name, hash, want).map(|(_, d)| {
                    (
                        h.bias.wrapping_add(d.st_value as usize),
                        d.st_info & 0xf,
                        true,
                    )
                }),
                // The object itself is in its scope; while it is being
                // dropped (a fini function calling its own function for
                // the first time) its Weak no longer upgrades.
                Dep::Back(w) if std::ptr::eq(w.as_ptr(), obj) => {
                    obj.symbols.lookup(name, hash, want).map(|(_, d)| {
                        (
                            bias.wrapping_add(d.st_value as usize),
                            d.st_info & 0xf,
                            false,
                        )
                    })
                }
                Dep::Minld(_) | Dep::Back(_) => m.upgrade().and_then(|o| {
                    o.symbols.lookup(name, hash, want).map(|(_, d)| {
                        (
                            o.image.bias.0.wrapping_add(d.st_value as usize),
                            d.st_info & 0xf,
                            false,
                        )
                    })
                }),
            })
        };
    let value = match found {
        Some((v, kind, host)) => {
            let v = if host && kind != st::STT_TLS {
                interpose::replacement(name, v).unwrap_or(v)
            } else {
                v
            };
            if kind == st::STT_GNU_IFUNC {
                call_resolver(v)
            } else {
                v
            }
        }
        None if bind == st::STB_WEAK => {
            return Err(format!("undefined weak function {} called", shown()))
        }
        None => return Err(format!("undefined symbol: {}", shown())),
    };
    let value = value.wrapping_add(rela.r_addend as usize);
    // SAFETY: `p..p+8` is in a writable segment of the object (checked);
    // another thread binding the same (aligned) slot writes the same value.
    unsafe {
        if p % 8 == 0 {
            std::sync::atomic::AtomicU64::from_ptr(p as *mut u64)
                .store(value as u64, Ordering::Release);
        } else {
            (p as *mut u64).write_unaligned(value as u64);
        }
    }
    Ok(value)
}

/// Where an ifunc of an object linked without running its code points.
extern "C" fn unresolved_ifunc() -> ! {
    eprintln!("minld: called an ifunc of a library linked without running its code (Loader::link)");
    std::process::abort()
}

/// Where a lazily bound function that does not exist points: calling it is a
/// fatal error, as with glibc's lazy binding.
extern "C" fn unresolved_function() -> ! {
    eprintln!(
        "minld: a library called a function that could not be resolved at load time (lazy binding)"
    );
    std::process::abort()
}
