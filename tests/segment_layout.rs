//! Segment layouts that used to crash the host (issue 11, hole 6): PT_LOADs
//! that share a page, where the mapping made last sets the protections of
//! the whole page for all of them.
//!
//! - `libpacked.so`, linked with `-z max-page-size=16`: every PT_LOAD has
//!   p_align 0x10 and lies in the first page, which ends up read-write;
//!   `Loader::open` faulted in its constructor.
//! - libbasic.so with an extra R-X PT_LOAD in the last page of its data
//!   segment (p_align 0x1000 everywhere): the page ends up r-x, and
//!   `Loader::link`, which promises to be safe for any file, faulted
//!   writing a relocation there.
//!
//! Each load runs in a re-executed copy of this test binary, so that a
//! crash fails the test instead of killing the binary; the child asserts
//! the typed error and that nothing was left behind (no descriptor, no
//! mapping of the file), the parent that the child passed.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use goblin::elf::program_header::{PF_R, PF_X, PT_LOAD, PT_NOTE};
use minld::{Error, Loader};

use common::libs::test_lib as lib;
use common::process::{fd_count, rerun};

const PAGE: u64 = 4096;

/// Set in the child: which loader call to make (`open`, `link`, `map`).
const CHILD_CALL: &str = "MINLD_LAYOUT_CHILD_CALL";
/// Set in the child: the file to load.
const CHILD_FILE: &str = "MINLD_LAYOUT_CHILD_FILE";

/// Lines of /proc/self/maps naming `path` (by its real path).
fn mapped(path: &Path) -> Vec<String> {
    let real = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let p = real.display().to_string();
    fs::read_to_string("/proc/self/maps")
        .expect("/proc/self/maps")
        .lines()
        .filter(|l| l.ends_with(&p) || l.ends_with(&format!("{p} (deleted)")))
        .map(str::to_string)
        .collect()
}

/// A scratch directory for one test, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("minld-layout-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// In the child: makes the call named by `CHILD_CALL` on `CHILD_FILE`,
/// which must fail without leaving a descriptor or a mapping; returns the
/// error. None in the parent.
fn child_load() -> Option<(PathBuf, Error)> {
    let call = std::env::var(CHILD_CALL).ok()?;
    let path = PathBuf::from(std::env::var_os(CHILD_FILE).expect(CHILD_FILE));
    // Warm up what minld keeps for the life of the process.
    drop(
        Loader::new()
            .link(lib("libbasic.so"))
            .expect("warm-up link"),
    );
    let fds = fd_count();
    let result = match call.as_str() {
        // SAFETY: the file is refused before any of its code runs (after
        // the fix; before it, this child is what crashes).
        "open" => unsafe { Loader::new().open(&path) }.map(drop),
        "link" => Loader::new().link(&path).map(drop),
        "map" => Loader::new().map(&path).map(drop),
        other => panic!("unknown call {other}"),
    };
    let err = match result {
        Ok(()) => panic!("{call} of {} succeeded", path.display()),
        Err(e) => e,
    };
    println!("{call}: refused: {err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "the message does not name the file: {err}"
    );
    assert_eq!(fd_count(), fds, "{call}: a descriptor leaked");
    let left = mapped(&path);
    assert!(left.is_empty(), "{call}: mappings left: {left:#?}");
    Some((path, err))
}

/// Re-runs `test` in a child process making `call` on `file`; the child
/// must pass. Returns what it printed.
fn run_child(test: &str, call: &str, file: &Path) -> String {
    let out = rerun(test)
        .env(CHILD_CALL, call)
        .env(CHILD_FILE, file)
        .output()
        .expect("re-executing the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{call} of {} in a child: {} (a signal means the host crashed)\n{text}",
        file.display(),
        out.status
    );
    assert!(text.contains(&format!("{call}: refused")), "{text}");
    text
}

fn phdrs(path: &Path) -> Vec<goblin::elf::ProgramHeader> {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    goblin::elf::Elf::parse(&bytes)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .program_headers
}

#[test]
fn packed_segments_with_p_align_16_are_refused() {
    if let Some((path, err)) = child_load() {
        match err {
            Error::AlignBelowPage {
                path: p,
                index,
                align,
                page_size,
            } => {
                assert_eq!(p, path);
                assert_eq!((index, align, page_size), (0, 0x10, PAGE), "{p:?}");
            }
            other => panic!("expected Error::AlignBelowPage, got {other:?}"),
        }
        return;
    }
    // The file really is packed: p_align 0x10, every PT_LOAD in page 0.
    let path = lib("libpacked.so");
    let loads: Vec<_> = phdrs(&path)
        .into_iter()
        .filter(|p| p.p_type == PT_LOAD)
        .collect();
    assert!(loads.len() >= 3, "{loads:#?}");
    assert!(loads.iter().all(|p| p.p_align == 0x10), "{loads:#?}");
    assert!(
        loads.iter().all(|p| p.p_vaddr + p.p_memsz <= PAGE),
        "{loads:#?}"
    );
    assert!(loads.iter().any(|p| p.p_flags & PF_X != 0), "{loads:#?}");
    for call in ["map", "link", "open"] {
        let text = run_child("packed_segments_with_p_align_16_are_refused", call, &path);
        assert!(
            text.contains("PT_LOAD segment 0: p_align 0x10 is below the page size 0x1000"),
            "{text}"
        );
    }
    // The policy check gets the same error instead of a clean report.
    match minld::policy::check(&path, &minld::Policy::strict()) {
        Err(Error::AlignBelowPage { align: 0x10, .. }) => {}
        other => panic!("expected Error::AlignBelowPage, got {other:?}"),
    }
}

/// libbasic.so with its PT_NOTE header turned into an R-X PT_LOAD that
/// starts where the data segment ends, in the same page, mapped from the
/// same file page: the page holding .data (and a RELATIVE relocation's
/// target, __dso_handle) ends up r-x. Returns the file and the
/// (data segment, new segment) indices.
fn data_page_made_executable(dir: &Path) -> (PathBuf, usize, usize) {
    let src = lib("libbasic.so");
    let mut bytes = fs::read(&src).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).unwrap();
    let phoff = elf.header.e_phoff as usize;
    let ph = elf.program_headers.clone();
    drop(elf);
    let data = ph
        .iter()
        .rposition(|p| p.p_type == PT_LOAD)
        .expect("a PT_LOAD");
    let note = ph
        .iter()
        .position(|p| p.p_type == PT_NOTE)
        .expect("a PT_NOTE");
    assert!(note > data, "the PT_NOTE header must follow the PT_LOADs");
    let d = &ph[data];
    let end = d.p_vaddr + d.p_memsz;
    assert!(end % PAGE != 0, "the data segment ends on a page boundary");
    let offset = d.p_offset + (end - d.p_vaddr);
    assert!(offset + 8 <= bytes.len() as u64);
    let at = phoff + note * 56;
    let mut put =
        |field: usize, v: &[u8]| bytes[at + field..at + field + v.len()].copy_from_slice(v);
    put(0, &PT_LOAD.to_le_bytes());
    put(4, &(PF_R | PF_X).to_le_bytes());
    put(8, &offset.to_le_bytes());
    put(16, &end.to_le_bytes());
    put(24, &end.to_le_bytes());
    put(32, &8u64.to_le_bytes());
    put(40, &8u64.to_le_bytes());
    put(48, &PAGE.to_le_bytes());
    let out = dir.join("libsharedpage.so");
    fs::write(&out, bytes).unwrap();
    (out, data, note)
}

#[test]
fn a_data_page_shared_with_code_is_refused() {
    if let Some((path, err)) = child_load() {
        let ph = phdrs(&path);
        let data = ph
            .iter()
            .position(|p| p.p_type == PT_LOAD && p.p_flags & 2 != 0);
        let data = data.expect("a writable PT_LOAD");
        let end = ph[data].p_vaddr + ph[data].p_memsz;
        match err {
            Error::SegmentsSharePage {
                path: p,
                first,
                first_end,
                second,
                second_vaddr,
                page,
            } => {
                assert_eq!(p, path);
                assert_eq!((first, first_end), (data, end));
                assert!(second > first, "{second}");
                assert_eq!(second_vaddr, end);
                assert_eq!(page, end & !(PAGE - 1));
            }
            other => panic!("expected Error::SegmentsSharePage, got {other:?}"),
        }
        return;
    }
    let scratch = Scratch::new("a_data_page_shared_with_code_is_refused");
    let (path, data, code) = data_page_made_executable(&scratch.0);
    let ph = phdrs(&path);
    assert!(ph.iter().all(|p| p.p_type != PT_LOAD || p.p_align == PAGE));
    for call in ["map", "link", "open"] {
        let text = run_child("a_data_page_shared_with_code_is_refused", call, &path);
        assert!(
            text.contains(&format!("PT_LOAD segments {data} (ends at"))
                && text.contains(&format!("and {code} (p_vaddr"))
                && text.contains("share the page at"),
            "{text}"
        );
    }
}

/// The libraries of the system keep their segments in pages of their own:
/// the refusal does not catch real files (a sample that every test run
/// has).
#[test]
fn real_libraries_are_not_refused() {
    for path in [
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/x86_64-linux-gnu/libsqlite3.so.0",
        "/lib/x86_64-linux-gnu/libstdc++.so.6",
    ] {
        drop(
            Loader::new()
                .map(path)
                .unwrap_or_else(|e| panic!("{path}: {e}")),
        );
    }
    for name in ["libhole.so", "libbigalign.so", "libbss.so", "libctors4.so"] {
        drop(
            Loader::new()
                .map(lib(name))
                .unwrap_or_else(|e| panic!("{name}: {e}")),
        );
    }
}
