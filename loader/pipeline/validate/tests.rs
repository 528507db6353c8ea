//! Unit tests of the program header checks.

use super::*;

fn load(vaddr: u64, offset: u64, filesz: u64, memsz: u64) -> ProgramHeader {
    ProgramHeader {
        p_type: ph::PT_LOAD,
        p_flags: ph::PF_R,
        p_offset: offset,
        p_vaddr: vaddr,
        p_paddr: vaddr,
        p_filesz: filesz,
        p_memsz: memsz,
        p_align: 0x1000,
    }
}

fn dynamic(vaddr: u64) -> ProgramHeader {
    ProgramHeader {
        p_type: ph::PT_DYNAMIC,
        p_vaddr: vaddr,
        p_offset: vaddr,
        p_filesz: 0x100,
        p_memsz: 0x100,
        ..load(0, 0, 0, 0)
    }
}

fn check(phdrs: &[ProgramHeader]) -> String {
    match check_program_headers(Path::new("t.so"), phdrs, 0x10000, false) {
        Ok(()) => "ok".to_string(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn accepts_a_plain_layout() {
    assert_eq!(
        check(&[
            load(0, 0, 0x2000, 0x2000),
            load(0x3000, 0x3000, 0x1000, 0x4000),
            dynamic(0x3000)
        ]),
        "ok"
    );
}

#[test]
fn rejects_overlap_and_disorder() {
    let e = check(&[
        load(0x3000, 0x3000, 0x1000, 0x1000),
        load(0, 0, 0x1000, 0x1000),
        dynamic(0),
    ]);
    assert!(e.contains("segment 1") && e.contains("out of order"), "{e}");
}

#[test]
fn rejects_filesz_overflow() {
    let e = check(&[load(0, u64::MAX - 4, 0x10, 0x10), dynamic(0)]);
    assert!(e.contains("overflows"), "{e}");
}

#[test]
fn rejects_dynamic_outside_loads() {
    let e = check(&[load(0, 0, 0x1000, 0x1000), dynamic(0x8000)]);
    assert!(e.contains("PT_DYNAMIC at p_vaddr 0x8000"), "{e}");
}
