//! The relocations that add the load bias and name no symbol: DT_RELR, and
//! the leading run of R_X86_64_RELATIVE in DT_RELA, where most of a big
//! library's relocations are (libLLVM's 382,145 relocations are nearly all
//! RELATIVE). A big run is faulted in with one system call and split over
//! threads.

use goblin::elf64::reloc::Rela;

use super::{Pass, RelocStats, Slot};
use crate::base::error::Error;
use crate::base::mem::Table;
use crate::base::relocs::r;

/// The addresses RELR words name, in order: an even word is an address,
/// an odd one a bitmap of the 63 words after the last address (its bit 1
/// the first of them), after which a further bitmap covers the 63 words
/// after those. Shared by DT_RELR and the link cache's records.
pub(crate) fn relr_addresses<I: Iterator<Item = u64>>(words: I) -> RelrAddresses<I> {
    RelrAddresses {
        words,
        next: 0,
        bits: 0,
        base: 0,
    }
}

/// The iterator of [`relr_addresses`].
pub(crate) struct RelrAddresses<I> {
    /// The words not yet read.
    words: I,
    /// The address a bitmap word after the last one read starts at.
    next: u64,
    /// What is left of the bitmap being read.
    bits: u64,
    /// The address its lowest bit stands for.
    base: u64,
}

impl<I: Iterator<Item = u64>> Iterator for RelrAddresses<I> {
    type Item = u64;

    #[inline]
    fn next(&mut self) -> Option<u64> {
        loop {
            if self.bits != 0 {
                let at = self
                    .base
                    .wrapping_add(8 * u64::from(self.bits.trailing_zeros()));
                self.bits &= self.bits - 1;
                return Some(at);
            }
            let word = self.words.next()?;
            if word & 1 == 0 {
                self.next = word.wrapping_add(8);
                return Some(word);
            }
            self.bits = word >> 1;
            self.base = self.next;
            self.next = self.next.wrapping_add(63 * 8);
        }
    }
}

/// A run of plain RELATIVE relocations at the start of a table, read in
/// one pass before any is applied: its length, and the span of its
/// targets (virtual addresses).
struct Run {
    /// How many entries.
    n: usize,
    /// The lowest `r_offset`.
    lo: u64,
    /// The highest `r_offset`.
    hi: u64,
    /// Every `r_offset` ORed together: its low bits say whether all are
    /// 8-byte aligned.
    bits: u64,
}

/// The leading run of plain RELATIVE relocations of `rela`.
fn scan_run(rela: &Table<Rela>) -> Run {
    let mut run = Run {
        n: 0,
        lo: u64::MAX,
        hi: 0,
        bits: 0,
    };
    for r in rela.iter() {
        if r.r_info != u64::from(r::RELATIVE) {
            break;
        }
        run.n += 1;
        run.lo = run.lo.min(r.r_offset);
        run.hi = run.hi.max(r.r_offset);
        run.bits |= r.r_offset;
    }
    run
}

/// The one writable range of an object that has one, as the RELATIVE
/// loops check a target against it: `bias + r_offset` lies with its 8
/// bytes in `lo..hi` exactly when `r_offset - (lo - bias)`, wrapping, is
/// at most `hi - lo - 8` (one subtraction and one compare per entry, the
/// same answer as [`Slot::within`]).
#[derive(Clone, Copy)]
struct OneRange {
    /// `lo - bias`, wrapping: the range's start as an `r_offset`.
    start: u64,
    /// `hi - lo - 8`: the last 8-byte slot's distance from the start.
    span: u64,
    /// The load bias.
    bias: u64,
}

impl OneRange {
    /// `ranges` as one range, if it is one and at least 8 bytes long.
    fn of(ranges: &[(usize, usize)], bias: usize) -> Option<OneRange> {
        let &[(lo, hi)] = ranges else {
            return None;
        };
        let span = hi.checked_sub(lo)?.checked_sub(8)?;
        Some(OneRange {
            start: lo.wrapping_sub(bias) as u64,
            span: span as u64,
            bias: bias as u64,
        })
    }

    /// The 8-byte slot a relocation with `r_offset` `off` writes, if it
    /// lies in the range.
    #[inline(always)]
    fn slot(self, off: u64) -> Option<Slot> {
        (off.wrapping_sub(self.start) <= self.span).then_some(Slot {
            addr: self.bias.wrapping_add(off) as usize,
            len: 8,
        })
    }
}

/// The range of `ranges` holding every target of `run` (load bias
/// `bias`), if one holds them all: its entries are then written with no
/// check of their own, every `r_offset` lying between the run's lowest
/// and highest.
fn range_of(run: &Run, bias: usize, ranges: &[(usize, usize)]) -> Option<(usize, usize)> {
    let lo = usize::try_from(run.lo).ok()?.checked_add(bias)?;
    let end = usize::try_from(run.hi)
        .ok()?
        .checked_add(bias)?
        .checked_add(8)?;
    ranges
        .iter()
        .copied()
        .find(|&(rlo, rhi)| lo >= rlo && end <= rhi)
}

/// Writes entries `from..to` of `rela`, a run whose every target was
/// checked, by [`range_of`], to lie in a writable range.
fn write_run(rela: &Table<Rela>, bias: usize, from: usize, to: usize) {
    let Some(part) = rela.slice(from, to.saturating_sub(from)) else {
        return;
    };
    for r in part.iter() {
        // The run's targets lie between its lowest and highest, both in
        // the range (`range_of`, which also ruled out any wrapping).
        let slot = Slot {
            addr: bias.wrapping_add(r.r_offset as usize),
            len: 8,
        };
        // Aligned targets are written with atomic stores: sound even if a
        // malformed table names the same word in two threads' chunks.
        slot.write64(bias.wrapping_add(r.r_addend as usize) as u64);
    }
}

/// Above this many RELATIVE relocations they are split over threads.
const BIG_RELATIVE_RUN: usize = 32 * 1024;

/// A run of at least this many RELATIVE relocations, at least
/// [`DENSE_PER_PAGE`] to a page on average, has its pages faulted in with
/// one system call first: cheaper than a write fault per page (libpython's
/// 26,134 over 330 pages, bound from a link record: 943 → 736 µs a load).
pub(super) const POPULATE_RUN: usize = 4096;

/// See [`POPULATE_RUN`]: a sparser run would fault in pages nothing writes.
pub(super) const DENSE_PER_PAGE: usize = 16;

/// Whether `n` relocations writing `lo..hi` (virtual addresses) are worth
/// faulting in at once.
pub(super) fn worth_populating(n: usize, lo: u64, hi: u64) -> bool {
    let pages = hi.saturating_sub(lo) as usize / crate::os::sys::page_size() + 1;
    n >= POPULATE_RUN && n >= pages.saturating_mul(DENSE_PER_PAGE)
}

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

/// Checks and applies entries `from..to` of a run of RELATIVE relocations
/// (`rela`, load bias `bias`, writable ranges `ranges`); returns the first
/// whose target is outside them. The range that took the last target is
/// tried first.
fn apply_run(
    rela: &Table<Rela>,
    bias: usize,
    ranges: &[(usize, usize)],
    from: usize,
    to: usize,
) -> Option<Rela> {
    let mut hot = ranges.first().copied().unwrap_or((0, 0));
    for i in from..to {
        let r = rela.get(i)?;
        let Some(slot) = word_at(&mut hot, ranges, bias.wrapping_add(r.r_offset as usize)) else {
            return Some(r);
        };
        // Aligned targets are written with atomic stores: sound even if a
        // malformed table names the same word in two threads' chunks.
        slot.write64(bias.wrapping_add(r.r_addend as usize) as u64);
    }
    None
}

/// The 8-byte slot at `p` if it lies in one of `ranges`, `hot` (the range
/// the last one lay in) tried first and updated; None outside them all.
#[inline]
fn word_at(hot: &mut (usize, usize), ranges: &[(usize, usize)], p: usize) -> Option<Slot> {
    if let Some(s) = Slot::within(*hot, p, 8) {
        return Some(s);
    }
    let (range, s) = ranges
        .iter()
        .find_map(|&range| Slot::within(range, p, 8).map(|s| (range, s)))?;
    *hot = range;
    Some(s)
}

/// [`apply_run`] over the first `limit` entries of `rela` that stops at
/// the first that is not a plain RELATIVE relocation: returns how many it
/// applied, and the entry whose target is outside `ranges` if that is
/// what stopped it.
fn apply_leading(
    rela: &Table<Rela>,
    bias: usize,
    ranges: &[(usize, usize)],
    limit: usize,
) -> (usize, Option<Rela>) {
    if let Some(one) = OneRange::of(ranges, bias) {
        let value = |r: &Rela| bias.wrapping_add(r.r_addend as usize) as u64;
        let part = rela.slice(0, limit.min(rela.len())).unwrap_or(*rela);
        for (i, r) in part.iter().enumerate() {
            if r.r_info != u64::from(r::RELATIVE) {
                return (i, None);
            }
            let Some(slot) = one.slot(r.r_offset) else {
                return (i, Some(r));
            };
            slot.write64(value(&r));
        }
        return (part.len(), None);
    }
    let mut hot = ranges.first().copied().unwrap_or((0, 0));
    for i in 0..limit {
        let Some(r) = rela.get(i).filter(|r| r.r_info == u64::from(r::RELATIVE)) else {
            return (i, None);
        };
        let Some(slot) = word_at(&mut hot, ranges, bias.wrapping_add(r.r_offset as usize)) else {
            return (i, Some(r));
        };
        slot.write64(bias.wrapping_add(r.r_addend as usize) as u64);
    }
    (limit, None)
}

impl Pass<'_> {
    /// DT_RELR: an even word is an address to relocate, an odd word a bitmap
    /// of the 63 words after the last address ([`relr_addresses`]).
    pub(super) fn relr(&mut self, stats: &mut RelocStats) -> Result<(), Error> {
        for at in relr_addresses(self.obj.dynamic.relr.iter()) {
            self.add_bias(at)?;
            stats.relative += 1;
        }
        Ok(())
    }

    /// Adds the load bias to the word at virtual address `at`.
    fn add_bias(&self, at: u64) -> Result<(), Error> {
        let slot = self.target(r::RELATIVE, at, 8)?;
        slot.write64(slot.read64().wrapping_add(self.bias as u64));
        Ok(())
    }

    /// The leading run of plain RELATIVE relocations of `rela` (where most
    /// of a big library's relocations are), applied; returns its length.
    /// Up to [`POPULATE_RUN`] entries are found and applied in one pass
    /// over the table, each entry read once; a longer run's remainder is
    /// scanned first, then applied by [`Pass::relative`] (faulted in at
    /// once, split over threads).
    pub(super) fn leading_relative(
        &self,
        rela: &Table<Rela>,
        single_threaded: bool,
        stats: &mut RelocStats,
    ) -> Result<usize, Error> {
        let limit = rela.len().min(POPULATE_RUN);
        let (n, bad) = apply_leading(rela, self.bias, &self.writable, limit);
        self.finish_run(bad, n, stats)?;
        if n < POPULATE_RUN {
            return Ok(n);
        }
        let Some(rest) = rela.slice(n, rela.len() - n) else {
            return Ok(n);
        };
        let run = scan_run(&rest);
        self.relative(&rest, &run, single_threaded, stats)?;
        Ok(n + run.n)
    }

    /// `run`, the first entries of `rela`: each target checked against
    /// the object's writable ranges and written. When one range holds the
    /// run's lowest and highest target, that one check covers every entry
    /// ([`range_of`]); else each is checked as it is written, up to the
    /// first bad one. A big run is faulted in first (MADV_POPULATE_WRITE
    /// over the pages it writes: one system call instead of a page fault
    /// per page) and split over the machine's cores, unless
    /// `single_threaded`.
    fn relative(
        &self,
        rela: &Table<Rela>,
        run: &Run,
        single_threaded: bool,
        stats: &mut RelocStats,
    ) -> Result<(), Error> {
        let n = run.n;
        if n == 0 {
            return Ok(());
        }
        let (ranges, bias) = (&self.writable[..], self.bias);
        let Some(range) = range_of(run, bias, ranges) else {
            // Some target outside, or the run spread over two ranges.
            return self.finish_run(apply_run(rela, bias, ranges, 0, n), n, stats);
        };
        if worth_populating(n, run.lo, run.hi.saturating_add(8)) {
            self.populate(run.lo, run.hi.saturating_add(8), n, ranges);
        }
        // Threads only where they cannot race: aligned targets (atomic
        // stores) and a table that no relocation can write.
        let aligned = (run.bits | bias as u64) % 8 == 0;
        let table = (rela.addr(), rela.addr() + n * std::mem::size_of::<Rela>());
        let table_safe = table.1 <= range.0 || table.0 >= range.1;
        let threads = if n < BIG_RELATIVE_RUN || single_threaded || !aligned || !table_safe {
            1
        } else {
            parallelism()
        };
        split(n, threads, |from, to| {
            write_run(rela, bias, from, to);
            None::<()>
        });
        self.finish_run(None, n, stats)
    }

    /// The end of a run of `n`: its first bad relocation's error, or the
    /// count.
    fn finish_run(&self, bad: Option<Rela>, n: usize, stats: &mut RelocStats) -> Result<(), Error> {
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
    pub(super) fn populate(&self, lo: u64, hi: u64, n: usize, ranges: &[(usize, usize)]) {
        let page = crate::os::sys::page_size();
        let (lo, hi) = (self.obj.image.bias.at(lo), self.obj.image.bias.at(hi));
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
}

/// Runs `run` over `0..n` in `threads` chunks, the first on this thread;
/// a thread that cannot be started (RLIMIT_NPROC, a pids limit, a seccomp
/// filter) leaves its chunk to this one. Returns the first failure found.
fn split<R: Send>(
    n: usize,
    threads: usize,
    run: impl Fn(usize, usize) -> Option<R> + Sync,
) -> Option<R> {
    let chunk = n.div_ceil(threads.max(1));
    std::thread::scope(|s| {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_covers_every_index_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        for (n, threads) in [(1, 1), (10, 3), (100, 8), (7, 8)] {
            let seen: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            let bad: Option<()> = split(n, threads, |from, to| {
                for s in &seen[from.min(n)..to.min(n)] {
                    s.fetch_add(1, Ordering::Relaxed);
                }
                None
            });
            assert!(bad.is_none());
            assert!(
                seen.iter().all(|s| s.load(Ordering::Relaxed) == 1),
                "{n}/{threads}"
            );
        }
    }

    #[test]
    fn a_split_reports_a_failure() {
        assert_eq!(
            split(100, 4, |from, _| (from >= 50).then_some(from)),
            Some(50)
        );
    }

    #[test]
    fn a_slot_must_fit_its_range() {
        assert!(Slot::within((0x1000, 0x2000), 0x1ff8, 8).is_some());
        assert!(Slot::within((0x1000, 0x2000), 0x1ffc, 8).is_none());
        assert!(Slot::within((0x1000, 0x2000), 0xff8, 8).is_none());
        assert!(Slot::within((0, usize::MAX), usize::MAX - 3, 8).is_none());
    }
}
