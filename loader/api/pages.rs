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
//! the zero page, or `.bss`), bit 56 mapped by this process only. Those
//! bits need no privilege (unlike the frame number, which is not used).

use std::path::PathBuf;

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
    /// Present, not written here, and mapped by this process only (a file
    /// page, or the zero page under `.bss`).
    Clean,
    /// Present, a file page that other processes map too.
    Shared,
    /// Present, an anonymous page of this process's own: a copy made when
    /// it wrote a private file page (copy on write), or written `.bss`.
    Private,
}

/// The `/proc/self/smaps` numbers of one VMA (in kB, as the kernel gives
/// them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Vma {
    /// Its first address.
    pub start: usize,
    /// The address after its last.
    pub end: usize,
    /// Resident: present in this process's page table.
    pub rss_kb: u64,
    /// Proportional: each resident page divided by the number of
    /// processes mapping it.
    pub pss_kb: u64,
    /// Resident, mapped by other processes too, not written.
    pub shared_clean_kb: u64,
    /// Resident, mapped by other processes too, written.
    pub shared_dirty_kb: u64,
    /// Resident, mapped here only, not written.
    pub private_clean_kb: u64,
    /// Resident, mapped here only, written (copies on write, `.bss`).
    pub private_dirty_kb: u64,
    /// Swapped out.
    pub swap_kb: u64,
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
pub fn snapshot(
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
    let states: Vec<PageState> = words
        .iter()
        .zip(cached)
        .map(|(&w, &c)| state(w, c))
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
        cached: cached.iter().filter(|&&c| c & 1 != 0).count(),
        vma: vma.map(|v| v.0),
        states,
    }
}

/// A page's state from its pagemap word and mincore byte.
fn state(word: u64, cached: u8) -> PageState {
    if word & PRESENT == 0 {
        if cached & 1 != 0 {
            PageState::Cached
        } else {
            PageState::Absent
        }
    } else if word & FILE == 0 && word & EXCLUSIVE != 0 {
        PageState::Private
    } else if word & FILE != 0 && word & EXCLUSIVE == 0 {
        PageState::Shared
    } else {
        PageState::Clean
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

/// The VMAs of `/proc/self/smaps` that overlap `lo..hi`, with their
/// protections.
fn parse_smaps(text: &str, lo: usize, hi: usize) -> Vec<(Vma, String)> {
    let mut out: Vec<(Vma, String)> = Vec::new();
    let mut current: Option<(Vma, String)> = None;
    for line in text.lines() {
        if let Some((vma, perms)) = header(line) {
            if let Some(c) = current.take() {
                out.push(c);
            }
            if vma.start < hi && vma.end > lo {
                current = Some((vma, perms));
            }
            continue;
        }
        let Some((v, _)) = current.as_mut() else {
            continue;
        };
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let Some(kb) = rest
            .trim()
            .strip_suffix("kB")
            .and_then(|n| n.trim().parse::<u64>().ok())
        else {
            continue;
        };
        match key {
            "Rss" => v.rss_kb = kb,
            "Pss" => v.pss_kb = kb,
            "Shared_Clean" => v.shared_clean_kb = kb,
            "Shared_Dirty" => v.shared_dirty_kb = kb,
            "Private_Clean" => v.private_clean_kb = kb,
            "Private_Dirty" => v.private_dirty_kb = kb,
            "Swap" => v.swap_kb = kb,
            _ => {}
        }
    }
    if let Some(c) = current {
        out.push(c);
    }
    out
}

/// A VMA's header line of smaps (`start-end perms offset dev inode path`),
/// or None for a field line.
fn header(line: &str) -> Option<(Vma, String)> {
    let mut f = line.split_ascii_whitespace();
    let (s, e) = f.next()?.split_once('-')?;
    let perms = f.next()?;
    if perms.len() != 4 || !perms.bytes().all(|b| b"rwxps-".contains(&b)) {
        return None;
    }
    let vma = Vma {
        start: usize::from_str_radix(s, 16).ok()?,
        end: usize::from_str_radix(e, 16).ok()?,
        ..Vma::default()
    };
    Some((vma, perms.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn smaps_fields_of_overlapping_vmas_only() {
        let text = "\
1000-3000 r-xp 00000000 fe:00 12 /lib/x.so
Rss:                   8 kB
Pss:                   4 kB
Private_Dirty:         0 kB
VmFlags: rd ex
3000-4000 rw-p 00002000 fe:00 12 /lib/x.so
Rss:                   4 kB
Private_Dirty:         4 kB
9000-a000 rw-p 00000000 00:00 0
Rss:                   4 kB
";
        let v = parse_smaps(text, 0x2000, 0x4000);
        assert_eq!(v.len(), 2);
        assert_eq!((v[0].0.start, v[0].0.rss_kb, v[0].0.pss_kb), (0x1000, 8, 4));
        assert_eq!(v[0].1, "r-xp");
        assert_eq!((v[1].0.private_dirty_kb, v[1].1.as_str()), (4, "rw-p"));
    }

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
        assert_eq!(state(0, 0), PageState::Absent);
        assert_eq!(state(0, 1), PageState::Cached);
        assert_eq!(state(PRESENT | FILE | EXCLUSIVE, 1), PageState::Clean);
        assert_eq!(state(PRESENT | FILE, 1), PageState::Shared);
        assert_eq!(state(PRESENT | EXCLUSIVE, 1), PageState::Private);
        assert_eq!(state(PRESENT, 1), PageState::Clean);
    }
}
