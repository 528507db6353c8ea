//! Pages, not bytes: the kernel maps and protects whole pages, so two
//! PT_LOAD segments that share a page cannot both keep their protections
//! there. Whichever is mapped last wins: a code page remapped read-write
//! by the data segment after it faults in the first init function, a data
//! page remapped r-x by a code segment after it faults in the first
//! relocation written there.
//!
//! So a file is refused before the first mmap when a PT_LOAD's p_align is
//! below the page size (the linker was free to pack segments into shared
//! pages: `-z max-page-size=16`) or when two PT_LOADs share a page once
//! rounded to pages; and relocation targets are checked against the
//! protections each page has once every mapping is made, not against the
//! segments' own flags.
//!
//! glibc up to 2.34 refused a p_align that is not a multiple of the page
//! size too; 2.35 dropped that check. glibc 2.36 catches part of the rest
//! while mapping: with holes between the segments, a last segment that
//! starts below the end of the first one's file pages is refused (so it
//! refuses `libpacked.so`), but a data page that a later code segment
//! remaps r-x passes, and its dlopen faults relocating it.

use std::path::Path;

use goblin::elf::program_header::ProgramHeader;

use crate::base::error::Error;
use crate::model::image::Segment;

/// Checks PT_LOAD `index` against the page size and against the PT_LOAD
/// before it (`prev`: its index and the end of its memory, p_vaddr +
/// p_memsz). Both are validated already: p_align is 0 or a power of two,
/// the addresses are below 2^47 and ascending.
///
/// p_align 0 and 1 (which the ELF specification reads as "no alignment")
/// are refused with the rest: they promise nothing about pages either.
pub(crate) fn check_load(
    path: &Path,
    index: usize,
    p: &ProgramHeader,
    prev: Option<(usize, u64)>,
) -> Result<(), Error> {
    let page = crate::os::sys::page_size() as u64;
    if p.p_align < page {
        return Err(Error::AlignBelowPage {
            path: path.to_path_buf(),
            index,
            align: p.p_align,
            page_size: page,
        });
    }
    if let Some((first, first_end)) = prev {
        let start = p.p_vaddr & !(page - 1);
        if first_end.div_ceil(page) * page > start {
            return Err(Error::SegmentsSharePage {
                path: path.to_path_buf(),
                first,
                first_end,
                second: index,
                second_vaddr: p.p_vaddr,
                page: start,
            });
        }
    }
    Ok(())
}

/// The pages a segment's mappings cover: its first page to the end of the
/// page holding its last byte of memory (.bss included).
fn pages(s: &Segment, page: usize) -> (usize, usize) {
    (
        s.addr & !(page - 1),
        (s.addr + s.mem_size as usize).div_ceil(page) * page,
    )
}

/// The real address ranges relocations may write once every mapping is
/// made: the bytes of each writable segment (of every segment with `all`:
/// text relocations make them all writable meanwhile), less any page that
/// a segment without write permission also maps. RELRO lies inside a
/// writable segment (checked by `validate`), so it is included: it stays
/// writable until relocation ends.
pub(crate) fn writable_ranges(segments: &[Segment], all: bool) -> Vec<(usize, usize)> {
    let page = crate::os::sys::page_size();
    let writes = |s: &Segment| all || s.prot.write();
    let mut out: Vec<(usize, usize)> = segments
        .iter()
        .filter(|s| writes(s))
        .map(|s| (s.addr, s.addr + s.mem_size as usize))
        .collect();
    for (lo, hi) in segments
        .iter()
        .filter(|s| !writes(s))
        .map(|s| pages(s, page))
    {
        out = out
            .into_iter()
            .flat_map(|(a, b)| [(a, b.min(lo)), (a.max(hi), b)])
            .filter(|&(a, b)| a < b)
            .collect();
    }
    out
}

/// Whether `len` bytes at `addr` lie in one writable segment and in no
/// page a segment without write permission maps: the test of
/// [`writable_ranges`] for one range, without allocating (lazy binding
/// asks it at run time).
pub(crate) fn writable_at(segments: &[Segment], addr: usize, len: usize) -> bool {
    let Some(end) = addr.checked_add(len) else {
        return false;
    };
    let page = crate::os::sys::page_size();
    segments
        .iter()
        .any(|s| s.prot.write() && addr >= s.addr && end <= s.addr + s.mem_size as usize)
        && !segments.iter().filter(|s| !s.prot.write()).any(|s| {
            let (lo, hi) = pages(s, page);
            addr < hi && end > lo
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::image::Protection;
    use goblin::elf::program_header as ph;

    const PAGE: usize = 0x1000;

    fn seg(addr: usize, mem_size: u64, prot: i32) -> Segment {
        Segment {
            vaddr: addr as u64,
            mem_size,
            file_offset: addr as u64,
            file_size: mem_size,
            addr,
            prot: Protection(prot),
        }
    }

    fn load(vaddr: u64, memsz: u64, align: u64) -> ProgramHeader {
        ProgramHeader {
            p_type: ph::PT_LOAD,
            p_vaddr: vaddr,
            p_offset: vaddr,
            p_memsz: memsz,
            p_filesz: memsz,
            p_align: align,
            ..Default::default()
        }
    }

    fn check(p: &ProgramHeader, prev: Option<(usize, u64)>) -> String {
        match check_load(Path::new("t.so"), 3, p, prev) {
            Ok(()) => "ok".to_string(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn align_below_the_page_is_refused() {
        for align in [0, 1, 0x10, 0x800] {
            let e = check(&load(0x1000, 0x10, align), None);
            assert_eq!(
                e,
                format!(
                    "t.so: PT_LOAD segment 3: p_align {align:#x} is below the page size 0x1000"
                )
            );
        }
        assert_eq!(check(&load(0x1000, 0x10, 0x1000), None), "ok");
        assert_eq!(check(&load(0x1000, 0x10, 0x200000), None), "ok");
    }

    #[test]
    fn a_shared_page_is_refused() {
        // The previous segment ends at 0x4020; this one starts in that page.
        let e = check(&load(0x4020, 0x10, 0x1000), Some((2, 0x4020)));
        assert!(
            e.contains("PT_LOAD segments 2 (ends at 0x4020) and 3 (p_vaddr 0x4020)")
                && e.contains("share the page at 0x4000"),
            "{e}"
        );
        assert_eq!(check(&load(0x5000, 0x10, 0x1000), Some((2, 0x4020))), "ok");
        assert_eq!(check(&load(0x4000, 0x10, 0x1000), Some((2, 0x4000))), "ok");
    }

    #[test]
    fn writable_ranges_leave_out_pages_mapped_without_write() {
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let rx = libc::PROT_READ | libc::PROT_EXEC;
        // .data at 0x3e10..0x4020, then code mapped over the page at 0x4000.
        let segs = [
            seg(0x1000, 0x100, rx),
            seg(0x3e10, 0x210, rw),
            seg(0x4020, 8, rx),
        ];
        assert_eq!(writable_ranges(&segs, false), [(0x3e10, 0x4000)]);
        assert!(writable_at(&segs, 0x3ff8, 8));
        assert!(!writable_at(&segs, 0x4000, 8));
        assert!(!writable_at(&segs, 0x3ffc, 8));
        // Text relocations: every segment writable meanwhile.
        assert_eq!(
            writable_ranges(&segs, true),
            [(0x1000, 0x1100), (0x3e10, 0x4020), (0x4020, 0x4028)]
        );
        // Separate pages: each writable segment whole.
        let segs = [seg(0x1000, 0x100, rx), seg(0x3e10, 0x210, rw)];
        assert_eq!(writable_ranges(&segs, false), [(0x3e10, 0x4020)]);
        assert!(writable_at(&segs, 0x4018, 8));
        assert!(!writable_at(&segs, 0x4019, 8));
        assert_eq!(PAGE, crate::os::sys::page_size());
    }
}
