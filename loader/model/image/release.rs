//! Giving back the resident pages of an object's relocation tables once
//! they are applied.
//!
//! Relocation reads DT_RELA, DT_RELR and (binding now) DT_JMPREL once,
//! front to back; afterwards nothing reads them again, but their pages stay
//! in the process's RSS: clean pages of the file, a quarter of a big
//! library's read-only data (libcrypto: 500 kB of its 850 kB read at load).
//! `madvise(MADV_DONTNEED)` drops them; they are pages of a private file
//! mapping that were never written, so a later read (a debugger, a second
//! look) gets them back from the file unchanged. glibc keeps them.
//!
//! Only whole pages that hold nothing but relocation entries go: a page
//! shared with the symbol table, the strings, the hash or version tables
//! (which lookups and lazy binding read) stays, and so does any page when
//! the object has text relocations (its read-only pages may have been
//! written). A run of fewer than [`RELEASE_MIN_PAGES`] pages is not worth
//! the system call, so a small library's load makes none.

use goblin::elf::program_header as ph;

use crate::base::error::Error;
use crate::elf::dynamic::Dynamic;
use crate::model::image::MappedImage;
use crate::os::sys::page_size;

/// Runs of fewer whole pages than this are kept: the `madvise` costs about
/// as much as faulting a few pages in again, and a small library (libz: 80
/// relocations, under one page) should make no extra system call.
pub(crate) const RELEASE_MIN_PAGES: usize = 16;

/// Bytes of one `Elf64_Rela`.
const RELA_SIZE: usize = 24;
/// Bytes of one `Elf64_Sym`.
const SYM_SIZE: usize = 24;

impl MappedImage {
    /// After the object's relocation: gives back the pages of its applied
    /// relocation tables (DT_RELA and DT_RELR; DT_JMPREL too when
    /// `jmprel_done`, that is when no PLT slot was left for lazy binding,
    /// which reads its entry at the first call). `nsyms` is the number of
    /// dynamic symbols. Returns the bytes given back (0 when no run of
    /// [`RELEASE_MIN_PAGES`] pages was found, without a system call).
    pub(crate) fn release_relocations(
        &self,
        d: &Dynamic,
        nsyms: usize,
        jmprel_done: bool,
    ) -> Result<usize, Error> {
        // Pages copied from bytes have no file to come back from: dropped,
        // they would read as zeros.
        if d.textrel() || !self.source.file_backed() {
            return Ok(0);
        }
        let jmprel = if jmprel_done {
            (d.jmprel.addr(), d.jmprel.len() * RELA_SIZE)
        } else {
            (0, 0)
        };
        let tables = [
            (d.rela.addr(), d.rela.len() * RELA_SIZE),
            (d.relr.addr(), d.relr.len() * 8),
            jmprel,
        ];
        // What lookups read, by its start (and its size where known): a
        // page holding any of it is kept.
        let at = |a: Option<usize>| (a.unwrap_or(0), usize::from(a.is_some()));
        let keep = [
            (d.symtab_addr, nsyms * SYM_SIZE),
            (d.strtab.addr(), d.strtab.len()),
            (d.versym.unwrap_or(0), d.versym.map_or(0, |_| nsyms * 2)),
            at(d.verdef.map(|v| v.0)),
            at(d.verneed.map(|v| v.0)),
            at(d.gnu_hash),
            at(d.sysv_hash),
        ];
        let page = page_size();
        let mut released = 0;
        for (start, end) in whole_pages(&tables, &keep, page) {
            if (end - start) / page < RELEASE_MIN_PAGES || !self.never_written(start, end - start) {
                continue;
            }
            let note = || {
                format!(
                    "{}: relocation tables applied, their pages {:#x}..{:#x} given back",
                    self.name(),
                    start.wrapping_sub(self.bias.0),
                    end.wrapping_sub(self.bias.0)
                )
            };
            // A failure (a seccomp filter refusing madvise) only loses
            // the saving: the load itself is done.
            // SAFETY: whole pages of this object's own mapping, in a
            // segment without write permission, outside RELRO, of an object
            // without text relocations: nothing ever wrote them, so the
            // file gives back the same bytes should anything read them.
            match unsafe { self.sys.dontneed(start, end - start, note) } {
                Ok(()) => released += end - start,
                Err(e) => log::debug!(
                    "{}: madvise(MADV_DONTNEED) of applied relocation tables: {e}",
                    self.path.display()
                ),
            }
        }
        Ok(released)
    }

    /// Whether `addr..+len` lies in one segment without write permission
    /// and outside PT_GNU_RELRO: pages nothing of a load writes.
    fn never_written(&self, addr: usize, len: usize) -> bool {
        let Some(end) = addr.checked_add(len) else {
            return false;
        };
        let in_readonly = self
            .segments
            .iter()
            .any(|s| !s.prot.write() && addr >= s.addr && end <= s.addr + s.mem_size as usize);
        let in_relro = self.phdr(ph::PT_GNU_RELRO).is_some_and(|r| {
            let lo = self.bias.at(r.p_vaddr);
            let hi = lo.saturating_add(r.p_memsz as usize);
            addr < hi && end > lo
        });
        in_readonly && !in_relro
    }
}

/// The runs of whole pages (start, end) inside the tables, tables closer
/// than 8 bytes apart (alignment padding) taken as one, with every page
/// that holds a byte of a `keep` range taken out. Empty ranges are ignored.
fn whole_pages(
    tables: &[(usize, usize)],
    keep: &[(usize, usize)],
    page: usize,
) -> Vec<(usize, usize)> {
    let mut spans: Vec<(usize, usize)> = tables
        .iter()
        .filter(|t| t.1 > 0)
        .filter_map(|&(a, n)| Some((a, a.checked_add(n)?)))
        .collect();
    spans.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    for (a, b) in spans {
        match merged.last_mut() {
            Some(last) if a <= last.1.saturating_add(7) => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    let mut runs: Vec<(usize, usize)> = merged
        .into_iter()
        .map(|(a, b)| (a.next_multiple_of(page), b & !(page - 1)))
        .filter(|(a, b)| a < b)
        .collect();
    for &(a, n) in keep.iter().filter(|k| k.1 > 0) {
        let lo = a & !(page - 1);
        let hi = a.saturating_add(n).next_multiple_of(page);
        runs = runs
            .into_iter()
            .flat_map(|(s, e)| [(s, e.min(lo)), (s.max(hi), e)])
            .filter(|(s, e)| s < e)
            .collect();
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::whole_pages;

    const P: usize = 0x1000;

    #[test]
    fn only_whole_pages_inside_the_tables() {
        // .rela.dyn 0x13c80..0x1de38 and .rela.plt right after, to 0x25248.
        let runs = whole_pages(&[(0x13c80, 0xa1b8), (0x1de38, 0x7410)], &[], P);
        assert_eq!(runs, vec![(0x14000, 0x25000)]);
    }

    #[test]
    fn tables_apart_are_not_joined() {
        let runs = whole_pages(&[(0x1000, 0x3000), (0x5000, 0x2000)], &[], P);
        assert_eq!(runs, vec![(0x1000, 0x4000), (0x5000, 0x7000)]);
    }

    #[test]
    fn a_page_holding_a_kept_table_stays() {
        // A version table starting in a gap of the tables' pages.
        let runs = whole_pages(&[(0x1000, 0x8000)], &[(0x4010, 2)], P);
        assert_eq!(runs, vec![(0x1000, 0x4000), (0x5000, 0x9000)]);
        // The symbol table in the first page and beyond.
        let runs = whole_pages(&[(0x1800, 0x8000)], &[(0x0, 0x2100)], P);
        assert_eq!(runs, vec![(0x3000, 0x9000)]);
    }

    #[test]
    fn small_or_empty_tables_give_nothing() {
        assert!(whole_pages(&[(0x1100, 0x600), (0, 0)], &[], P).is_empty());
        assert!(whole_pages(&[(usize::MAX - 8, 0x100)], &[], P).is_empty());
    }
}
