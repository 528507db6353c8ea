//! The leading run of R_X86_64_RELATIVE relocations is checked as a whole
//! (`pipeline/reloc/relative.rs`: one compare per entry against the one
//! writable range, or the run's lowest and highest target against it),
//! never entry by entry through the general path: a bad entry anywhere in
//! the run must still give the typed error naming it, and write nothing
//! outside the writable segment. libcrypto's run (16,922 entries, one
//! writable segment) has both parts: the first 4,096 entries, checked one
//! compare each, and the rest, checked by its span.

use std::path::{Path, PathBuf};

use goblin::elf::Elf;
use minld::{Error, Loader, RelocFault};

/// A real library with a long leading RELATIVE run.
const LIB: &str = "/usr/lib/x86_64-linux-gnu/libcrypto.so.3";

/// The file offset of DT_RELA's entry `i` (r_offset first), and the
/// number of entries of the leading RELATIVE run.
fn rela_entry(file: &[u8], i: usize) -> (usize, usize) {
    let elf = Elf::parse(file).expect("libcrypto parses");
    let rela = elf
        .section_headers
        .iter()
        .find(|sh| elf.shdr_strtab.get_at(sh.sh_name) == Some(".rela.dyn"))
        .expect(".rela.dyn");
    let run = elf
        .dynrelas
        .iter()
        .take_while(|r| r.r_type == goblin::elf::reloc::R_X86_64_RELATIVE)
        .count();
    (rela.sh_offset as usize + i * 24, run)
}

/// libcrypto with entry `i`'s r_offset set to `offset`, written to a
/// file of its own.
fn patched(case: &str, i: usize, offset: u64) -> PathBuf {
    let mut file = std::fs::read(LIB).expect("read libcrypto");
    let (at, run) = rela_entry(&file, i);
    assert!(i < run, "entry {i} is in the leading run of {run}");
    assert!(run > 4096 + 100, "libcrypto's run ({run}) passes 4096");
    file[at..at + 8].copy_from_slice(&offset.to_le_bytes());
    let dir = scratch();
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let path = dir.join(format!("{case}.so"));
    std::fs::write(&path, file).expect("write the patched library");
    path
}

/// This process's scratch directory.
fn scratch() -> PathBuf {
    std::env::temp_dir().join(format!("minld-relative-run-{}", std::process::id()))
}

/// Removes the scratch directory once the last test's files are gone (a
/// test still running keeps it: removing a non-empty directory fails).
fn tidy() {
    let _ = std::fs::remove_dir(scratch());
}

/// Links `path` (no code runs) and returns the error it must give.
fn link_error(path: &Path) -> Error {
    let result = Loader::new().without_cache().link(path);
    let _ = std::fs::remove_file(path);
    match result {
        Ok(_) => panic!(
            "{} linked, but a RELATIVE target is outside",
            path.display()
        ),
        Err(e) => e,
    }
}

/// The error must be the RELATIVE relocation's, naming `offset`.
fn expect_outside(err: &Error, path: &Path, offset: u64) {
    eprintln!("refused as expected: {err}");
    match err {
        Error::Relocation {
            path: p,
            kind,
            offset: o,
            fault,
        } => {
            assert_eq!(p, path);
            assert_eq!(kind.0, goblin::elf::reloc::R_X86_64_RELATIVE);
            assert_eq!(*o, offset);
            assert_eq!(*fault, RelocFault::TargetOutside { size: 8 });
        }
        other => panic!("expected the RELATIVE relocation's error, got {other:?}"),
    }
}

/// Targets outside the writable segment: the ELF header (read-only), past
/// the end of the address space (wrapping when the bias is added), and the
/// last word of the segment straddling its end.
fn bad_offsets(file: &[u8]) -> Vec<u64> {
    let elf = Elf::parse(file).expect("libcrypto parses");
    let rw = elf
        .program_headers
        .iter()
        .find(|p| p.p_type == goblin::elf::program_header::PT_LOAD && p.is_write())
        .expect("a writable PT_LOAD");
    let end = rw.p_vaddr + rw.p_memsz;
    vec![0, u64::MAX - 3, end - 4, rw.p_vaddr - 8]
}

#[test]
fn a_bad_target_in_the_first_4096_is_its_typed_error() {
    let offsets = bad_offsets(&std::fs::read(LIB).expect("read libcrypto"));
    for (k, &offset) in offsets.iter().enumerate() {
        for i in [0, 1, 2000, 4095] {
            let path = patched(&format!("head-{k}-{i}"), i, offset);
            expect_outside(&link_error(&path), &path, offset);
        }
    }
    tidy();
}

#[test]
fn a_bad_target_past_the_first_4096_is_its_typed_error() {
    let file = std::fs::read(LIB).expect("read libcrypto");
    let (_, run) = rela_entry(&file, 0);
    for (k, &offset) in bad_offsets(&file).iter().enumerate() {
        for i in [4096, 4097, 10_000, run - 1] {
            let path = patched(&format!("tail-{k}-{i}"), i, offset);
            expect_outside(&link_error(&path), &path, offset);
        }
    }
    tidy();
}

#[test]
fn the_unpatched_run_links_and_is_applied() {
    let file = std::fs::read(LIB).expect("read libcrypto");
    let (_, run) = rela_entry(&file, 0);
    // The same file, one entry rewritten with its own value: it links.
    let (at, _) = rela_entry(&file, run - 1);
    let own = u64::from_le_bytes(file[at..at + 8].try_into().expect("8 bytes"));
    let path = patched("unchanged", run - 1, own);
    let lib = Loader::new()
        .without_cache()
        .link(&path)
        .expect("libcrypto links");
    // The run's last entry wrote the bias plus its addend at its target.
    let elf = Elf::parse(&file).expect("libcrypto parses");
    let last = &elf
        .dynrelas
        .iter()
        .nth(run - 1)
        .expect("the run's last entry");
    let base = lib.base();
    // SAFETY: the target lies in libcrypto's writable segment (it linked),
    // mapped while `lib` lives.
    let word = unsafe { ((base + last.r_offset as usize) as *const u64).read_unaligned() };
    assert_eq!(word, base as u64 + last.r_addend.unwrap_or(0) as u64);
    // The file goes only once its library is unloaded: minld knows a
    // loaded file by device and inode, which a new file may reuse.
    drop(lib);
    let _ = std::fs::remove_file(&path);
    tidy();
}
