//! The pages of a loaded object at one moment, as the kernel reports them:
//! for each mapping (a segment's file part, its anonymous `.bss` part, a
//! hole between segments), how many pages this process has present
//! (`/proc/self/pagemap`), how many of those it wrote (private copies),
//! how many other processes map too, how many the page cache holds
//! (`mincore`), and the `/proc/self/smaps` numbers of the kernel's VMA.
//!
//! Nothing here is estimated: every number is read from the kernel when
//! [`snapshot`] (or [`Library::pages`](crate::Library::pages),
//! [`MappedObject::pages`](crate::MappedObject::pages)) runs, through
//! minld's system-call layer (traced when the load was).
//!
//! Per page, `pagemap` gives: bit 63 present, bit 62 swapped, bit 61 a
//! file page (clear for an anonymous page: a private copy made by a write,
//! the zero page, or `.bss`), bit 56 mapped exactly once (clear for a
//! page mapped twice in this process too, and for the zero page). Those
//! bits need no privilege (unlike the frame number, which is not used).

use nix::errno::Errno;
use std::path::PathBuf;

use crate::api::smaps::parse_smaps;
pub use crate::api::smaps::Vma;
use crate::base::error::Error;
use crate::base::transfer::Failed;
use crate::model::image::{MappedImage, Segment};
use crate::os::sys::page_size;

/// `pagemap`: the page is present in this process's page table.
const PRESENT: u64 = 1 << 63;
/// `pagemap`: the page is swapped out.
const SWAPPED: u64 = 1 << 62;
/// `pagemap`: a file page (or shared anonymous memory).
const FILE: u64 = 1 << 61;
/// `pagemap`: the page is mapped exactly once (here).
const EXCLUSIVE: u64 = 1 << 56;

/// What part of an object a [`Mapping`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The pages of a segment that come from the file.
    File,
    /// The pages of a segment past its file data (`.bss`): anonymous memory.
    Bss,
    /// Between segments: reserved, never accessible.
    Hole,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Part::File => "file",
            Part::Bss => "bss",
            Part::Hole => "hole",
        })
    }
}

/// The state of one page at the moment of the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageState {
    /// Not in this process's page table, and not in memory at all
    /// (`mincore` bit 0 clear).
    Absent,
    /// Not in this process's page table, but in memory: for a file
    /// mapping, the page cache holds it; touching it costs a minor fault.
    Cached,
    /// Present and not written: a file page mapped by this process only,
    /// or the zero page (under `.bss` read but never written).
    Clean,
    /// Present, not written: a file page mapped more than once (by other
    /// processes, or twice in this one).
    Shared,
    /// Present, written, and this process's own: an anonymous page mapped
    /// here only (a copy made when it wrote a private file page, copied-in
    /// data, written `.bss`).
    Private,
    /// Present, written, and mapped by another process too: an anonymous
    /// page written before a fork, shared copy on write with the child
    /// until one of them writes it again.
    SharedCopy,
    /// Present, anonymous, mapped more than once, in an anonymous VMA that
    /// holds both the zero page and written pages shared with another
    /// process: without privilege the kernel does not say per page which
    /// this is ([`PageState::Clean`] or [`PageState::SharedCopy`]).
    SharedAnon,
}

/// One mapping of an object: a run of pages of one part of one segment
/// (or of a hole) inside one VMA.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// The PT_LOAD segment (its index among them, as in
    /// [`Library::segments`](crate::Library::segments)); None for a hole.
    pub segment: Option<usize>,
    /// Which part of it.
    pub part: Part,
    /// The protections of the VMA as `/proc/self/maps` prints them
    /// (`r-xp`), or `----` where nothing is mapped.
    pub prot: String,
    /// Its first address (page-aligned).
    pub start: usize,
    /// Its length in pages.
    pub pages: usize,
    /// Pages present in this process's page table.
    pub present: usize,
    /// Pages swapped out.
    pub swapped: usize,
    /// Present pages in state [`PageState::Private`].
    pub private: usize,
    /// Present pages in state [`PageState::Shared`].
    pub shared: usize,
    /// Present pages in state [`PageState::SharedCopy`] (written, shared
    /// with another process since a fork).
    pub shared_copy: usize,
    /// Pages in memory by `mincore` (present here, or in the page cache).
    pub cached: usize,
    /// The smaps numbers of the VMA this mapping lies in (which may be
    /// larger: compare `vma.start`/`vma.end` with the mapping's range).
    pub vma: Option<Vma>,
    /// The state of each page; empty where nothing is mapped (`vma` is
    /// None: the kernel has no pages there to report).
    pub states: Vec<PageState>,
}

impl Mapping {
    /// The address after its last page.
    pub fn end(&self) -> usize {
        self.start + self.pages * page_size()
    }
    /// Whether its VMA is exactly this mapping (its smaps numbers are then
    /// this mapping's own).
    pub fn vma_is_exact(&self) -> bool {
        self.vma
            .is_some_and(|v| v.start == self.start && v.end == self.end())
    }
}

/// An object's pages at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The object's file.
    pub path: PathBuf,
    /// Its mappings, in address order.
    pub mappings: Vec<Mapping>,
}

/// The pages of the object mapped at `start..start + len` from the file
/// `path`, with `segments` (as [`Library::segments`](crate::Library::segments)
/// gives them), read from the kernel now. `trace` prints the reads.
///
/// A range that runs past the end of the address space (the span, or a
/// segment's `addr` plus its size) is refused with [`Error::BadRange`],
/// naming it. Stretches where nothing is mapped are reported as mappings
/// without a VMA and without per-page states; the kernel is asked about
/// the mapped pages only, so the work is bounded by what is mapped.
///
/// Other threads may map and unmap while the snapshot is read. When a
/// stretch that `/proc/self/smaps` listed is gone by the time `mincore`
/// asks about it (`ENOMEM`), the snapshot is read again from the start,
/// up to [`ATTEMPTS`] times, so that every mapping it reports comes from
/// one reading of the VMAs; after that the `ENOMEM` is returned.
pub fn snapshot(
    path: &std::path::Path,
    start: usize,
    len: usize,
    segments: &[Segment],
    trace: bool,
) -> Result<Snapshot, Error> {
    let mut tries = 1;
    loop {
        match attempt(path, start, len, segments, trace) {
            Err(Error::Io {
                call: "mincore",
                errno: Errno::ENOMEM,
                ..
            }) if tries < ATTEMPTS => tries += 1,
            done => return done,
        }
    }
}

/// How many times [`snapshot`] reads the VMAs again when a mapping it
/// listed went away before its pages were read.
pub const ATTEMPTS: usize = 8;

/// One reading of the VMAs and of their pages (see [`snapshot`]).
fn attempt(
    path: &std::path::Path,
    start: usize,
    len: usize,
    segments: &[Segment],
    trace: bool,
) -> Result<Snapshot, Error> {
    let sys = crate::os::sys::Sys { trace };
    let io = |call: &'static str| {
        let path = path.to_path_buf();
        move |errno| Error::Io {
            path,
            call,
            segment: None,
            errno,
        }
    };
    let parts = parts(path, start, len, segments)?;
    let hi = parts.iter().map(|p| p.3).max().unwrap_or(start);
    let smaps = sys
        .read_whole(c"/proc/self/smaps", "pages: the VMAs' Rss, Pss")
        .map_err(io("read of /proc/self/smaps"))?;
    let vmas = parse_smaps(&String::from_utf8_lossy(&smaps), start, hi);
    let page = page_size();
    let pieces: Vec<(Option<usize>, Part, Piece)> = parts
        .into_iter()
        .flat_map(|(segment, part, lo, hi)| {
            split_by_vmas(lo, hi, &vmas)
                .into_iter()
                .map(move |piece| (segment, part, piece))
        })
        .collect();
    // Only the pieces inside a VMA are read: their lengths are bounded by
    // the mappings that exist.
    let mapped: Vec<(usize, usize)> = pieces
        .iter()
        .filter(|p| p.2 .2.is_some())
        .map(|p| (p.2 .0, (p.2 .1 - p.2 .0) / page))
        .collect();
    let mut entries = sys
        .pagemap(&mapped, "pages: present, written, shared")
        .map_err(|f| match f {
            Failed::Kernel(e) => io("pread64 of /proc/self/pagemap")(e),
            Failed::Short(fault) => Error::Transfer {
                path: path.to_path_buf(),
                what: "pread64 of /proc/self/pagemap",
                segment: None,
                fault,
            },
        })?
        .into_iter();
    let mut mappings = Vec::new();
    for (segment, part, (a, b, vma)) in pieces {
        let (words, cached) = match vma {
            Some(_) => (
                entries.next().unwrap_or_default(),
                sys.mincore(a, b - a, "pages: in memory")
                    .map_err(io("mincore"))?,
            ),
            None => (Vec::new(), Vec::new()),
        };
        mappings.push(mapping(segment, part, (a, b), vma, &words, &cached));
    }
    Ok(Snapshot {
        path: path.to_path_buf(),
        mappings,
    })
}

/// The pages of a mapped image, read now.
pub(crate) fn of_image(image: &MappedImage) -> Result<Snapshot, Error> {
    snapshot(
        &image.path,
        image.start,
        image.len,
        &image.segments,
        image.sys.trace,
    )
}

impl crate::Library {
    /// Its pages now (see [`crate::pages`]): each segment's file and
    /// `.bss` parts and the holes between them, with what the kernel
    /// reports of each. A library minld did not map (glibc's own, or one
    /// returned as glibc's copy) has no mappings of minld's to report: the
    /// snapshot is then empty.
    pub fn pages(&self) -> Result<Snapshot, Error> {
        match self.root() {
            crate::model::object::Dep::Minld(o) => of_image(&o.image),
            _ => Ok(Snapshot {
                path: self.path(),
                mappings: Vec::new(),
            }),
        }
    }
}

impl crate::MappedObject {
    /// Its pages now, as [`Library::pages`](crate::Library::pages) reads
    /// them.
    pub fn pages(&self) -> Result<Snapshot, Error> {
        of_image(self.image())
    }
}

/// One mapping of `range` from its pagemap words and mincore bytes (none
/// where nothing is mapped).
fn mapping(
    segment: Option<usize>,
    part: Part,
    (start, end): (usize, usize),
    vma: Option<(Vma, String)>,
    words: &[u64],
    cached: &[u8],
) -> Mapping {
    let anon = vma.as_ref().map_or(PageState::SharedAnon, |v| {
        shared_anon(words, start, end, &v.0)
    });
    let states: Vec<PageState> = words
        .iter()
        .zip(cached)
        .map(|(&w, &c)| state(w, c, anon))
        .collect();
    let count = |s: PageState| states.iter().filter(|&&x| x == s).count();
    Mapping {
        segment,
        part,
        prot: vma.as_ref().map_or("----".to_string(), |v| v.1.clone()),
        start,
        pages: (end - start) / page_size(),
        present: words.iter().filter(|&&w| w & PRESENT != 0).count(),
        swapped: words.iter().filter(|&&w| w & SWAPPED != 0).count(),
        private: count(PageState::Private),
        shared: count(PageState::Shared),
        shared_copy: count(PageState::SharedCopy),
        cached: cached.iter().filter(|&&c| c & 1 != 0).count(),
        vma: vma.map(|v| v.0),
        states,
    }
}

/// A page's state from its pagemap word and mincore byte; `anon` is the
/// state of a present anonymous page mapped more than once there.
fn state(word: u64, cached: u8, anon: PageState) -> PageState {
    match (word & PRESENT != 0, word & FILE != 0, word & EXCLUSIVE != 0) {
        (false, _, _) if cached & 1 != 0 => PageState::Cached,
        (false, _, _) => PageState::Absent,
        (true, true, true) => PageState::Clean,
        (true, true, false) => PageState::Shared,
        (true, false, true) => PageState::Private,
        (true, false, false) => anon,
    }
}

/// What a present anonymous page without the "mapped once" bit is in the
/// piece `a..b` of VMA `v`: the zero page or a written page shared with
/// another process (pagemap says the same of both). A file VMA never maps
/// the zero page; in an anonymous one, smaps counts the written pages
/// (`Anonymous`, the zero page not counted), which settles it when no
/// written page, or every such page, is shared.
fn shared_anon(words: &[u64], a: usize, b: usize, v: &Vma) -> PageState {
    if v.inode != 0 {
        return PageState::SharedCopy;
    }
    let written = v.anonymous_kb / (page_size() as u64 / 1024);
    let count = |bits: u64| {
        let mask = PRESENT | FILE | EXCLUSIVE;
        words.iter().filter(|&&w| w & mask == bits).count() as u64
    };
    let (own, shared) = (count(PRESENT | EXCLUSIVE), count(PRESENT));
    let whole = v.start == a && v.end == b;
    if written == 0 || whole && written == own {
        PageState::Clean
    } else if whole && written.checked_sub(own) == Some(shared) {
        PageState::SharedCopy
    } else {
        PageState::SharedAnon
    }
}

/// A part of an object: (segment, part, start, end).
type PartRange = (Option<usize>, Part, usize, usize);

/// The object's span cut into segment parts and holes, page-aligned, in
/// address order. `start` is page-aligned (a mapping's start). A range
/// whose page-rounded end is past the address space is a
/// [`Error::BadRange`].
fn parts(
    path: &std::path::Path,
    start: usize,
    len: usize,
    segments: &[Segment],
) -> Result<Vec<PartRange>, Error> {
    let page = page_size();
    let down = |a: usize| a & !(page - 1);
    let end_of = |what, segment, a: usize, n: u64| {
        usize::try_from(n)
            .ok()
            .and_then(|n| a.checked_add(n)?.checked_add(page - 1))
            .map(|e| e & !(page - 1))
            .ok_or_else(|| Error::BadRange {
                path: path.to_path_buf(),
                what,
                segment,
                start: a as u64,
                len: n,
            })
    };
    let span_end = end_of("span", None, start, len as u64)?;
    let mut out = Vec::new();
    let mut at = start;
    for (i, s) in segments.iter().enumerate() {
        let lo = down(s.addr).max(at);
        let file_end = end_of("segment file data", Some(i), s.addr, s.file_size)?.max(lo);
        let end = end_of("segment", Some(i), s.addr, s.mem_size)?.max(file_end);
        if lo > at {
            out.push((None, Part::Hole, at, lo));
        }
        if file_end > lo {
            out.push((Some(i), Part::File, lo, file_end));
        }
        if end > file_end {
            out.push((Some(i), Part::Bss, file_end, end));
        }
        at = at.max(end);
    }
    if span_end > at {
        out.push((None, Part::Hole, at, span_end));
    }
    Ok(out)
}

/// A VMA of smaps with its protections as `/proc` prints them.
type VmaLine = (Vma, String);

/// A piece of a mapping: start, end, and the VMA covering it.
type Piece = (usize, usize, Option<VmaLine>);

/// `lo..hi` cut at the VMAs' boundaries: each piece with the VMA covering
/// it (and its protections), or None where nothing is mapped.
fn split_by_vmas(lo: usize, hi: usize, vmas: &[VmaLine]) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut at = lo;
    while at < hi {
        match vmas.iter().find(|(v, _)| v.start <= at && at < v.end) {
            Some(v) => {
                let end = v.0.end.min(hi);
                out.push((at, end, Some(v.clone())));
                at = end;
            }
            None => {
                let next = vmas
                    .iter()
                    .map(|(v, _)| v.start)
                    .filter(|&s| s > at)
                    .min()
                    .unwrap_or(hi)
                    .min(hi);
                out.push((at, next, None));
                at = next;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn parts_cover_the_span_in_whole_pages() {
        let page = page_size();
        let seg = |off: usize, file: u64, mem: u64| Segment {
            vaddr: off as u64,
            mem_size: mem,
            file_offset: off as u64,
            file_size: file,
            addr: 0x10_0000 + off,
            prot: crate::model::image::Protection(libc::PROT_READ),
        };
        let segs = [
            seg(0, 0x2280, 0x2280),
            seg(5 * page, 0x1200, 0x1200),
            seg(8 * page + 0xc70, 0x518, 2 * page as u64),
        ];
        // The reservation's length need not be a whole number of pages.
        let p = parts(Path::new("x"), 0x10_0000, 10 * page + 0xc70, &segs).expect("parts");
        let got: Vec<_> = p
            .iter()
            .map(|&(s, part, lo, hi)| (s, part, (lo - 0x10_0000) / page, (hi - 0x10_0000) / page))
            .collect();
        assert_eq!(
            got,
            [
                (Some(0), Part::File, 0, 3),
                (None, Part::Hole, 3, 5),
                (Some(1), Part::File, 5, 7),
                (None, Part::Hole, 7, 8),
                (Some(2), Part::File, 8, 10),
                (Some(2), Part::Bss, 10, 11),
            ]
        );
    }

    #[test]
    fn page_states_from_pagemap_bits() {
        let anon = PageState::SharedCopy;
        assert_eq!(state(0, 0, anon), PageState::Absent);
        assert_eq!(state(0, 1, anon), PageState::Cached);
        assert_eq!(state(PRESENT | FILE | EXCLUSIVE, 1, anon), PageState::Clean);
        assert_eq!(state(PRESENT | FILE, 1, anon), PageState::Shared);
        assert_eq!(state(PRESENT | EXCLUSIVE, 1, anon), PageState::Private);
        assert_eq!(state(PRESENT, 1, anon), PageState::SharedCopy);
        // A file VMA: a written copy; an anonymous one by its smaps count.
        let page = page_size();
        let kb = page as u64 / 1024;
        let vma = |inode, pages| Vma {
            start: 0,
            end: 2 * page,
            anonymous_kb: pages * kb,
            inode,
            ..Vma::default()
        };
        let w = [PRESENT, PRESENT | EXCLUSIVE];
        assert_eq!(
            shared_anon(&w, 0, 2 * page, &vma(7, 0)),
            PageState::SharedCopy
        );
        assert_eq!(shared_anon(&w, 0, 2 * page, &vma(0, 0)), PageState::Clean);
        assert_eq!(shared_anon(&w, 0, 2 * page, &vma(0, 1)), PageState::Clean);
        assert_eq!(
            shared_anon(&w, 0, 2 * page, &vma(0, 2)),
            PageState::SharedCopy
        );
        assert_eq!(shared_anon(&w, 0, page, &vma(0, 2)), PageState::SharedAnon);
    }
}
