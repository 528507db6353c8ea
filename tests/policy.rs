//! Level 1 of plugin hygiene: a policy checked before loading, with no
//! code run, reporting every finding by library, kind and value.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use goblin::elf::program_header::{PF_X, PT_GNU_RELRO, PT_GNU_STACK, PT_LOAD, PT_NULL};
use minld::policy::{check, FindingKind, InitEntry};
use minld::{Error, Loader, Policy};

use common::libs::test_lib as lib;

fn kinds(path: &Path, policy: &Policy) -> Vec<FindingKind> {
    check(path, policy)
        .unwrap_or_else(|e| panic!("{e}"))
        .findings
        .into_iter()
        .filter(|f| f.path == path)
        .map(|f| f.kind)
        .collect()
}

/// A copy of `name` in a scratch directory with its program headers
/// patched by `patch(p_type, p_flags) -> (p_type, p_flags)`.
fn patched(name: &str, tag: &str, patch: impl Fn(u32, u32) -> (u32, u32)) -> PathBuf {
    let mut bytes = fs::read(lib(name)).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).unwrap();
    let phoff = elf.header.e_phoff as usize;
    let n = elf.program_headers.len();
    drop(elf);
    for i in 0..n {
        let at = phoff + i * 56;
        let t = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let f = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap());
        let (t2, f2) = patch(t, f);
        bytes[at..at + 4].copy_from_slice(&t2.to_le_bytes());
        bytes[at + 4..at + 8].copy_from_slice(&f2.to_le_bytes());
    }
    let dir = std::env::temp_dir().join(format!("minld-policy-{}-{tag}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let out = dir.join(name);
    fs::write(&out, bytes).unwrap();
    out
}

#[test]
fn each_finding_by_name() {
    let strict = Policy::strict();
    assert_eq!(
        kinds(
            &lib("libtextrel.so"),
            &strict.clone().require_bind_now(false)
        ),
        [FindingKind::TextRelocations]
    );
    assert_eq!(
        kinds(
            &lib("libexecstack.so"),
            &strict.clone().require_bind_now(false)
        ),
        [FindingKind::ExecutableStack]
    );
    assert_eq!(
        kinds(&lib("libbasic.so"), &strict),
        [FindingKind::NotBindNow],
        "gcc links lazily by default"
    );
    assert_eq!(
        kinds(&lib("libbasic.so"), &strict.clone().require_bind_now(false)),
        []
    );

    let rwx = patched("libbasic.so", "rwx", |t, f| {
        if t == PT_LOAD && f & 2 != 0 {
            (t, f | PF_X)
        } else {
            (t, f)
        }
    });
    assert_eq!(
        kinds(&rwx, &strict.clone().require_bind_now(false)),
        [FindingKind::WritableAndExecutable]
    );
    let norelro = patched("libbasic.so", "norelro", |t, f| {
        if t == PT_GNU_RELRO {
            (PT_NULL, f)
        } else {
            (t, f)
        }
    });
    assert_eq!(
        kinds(&norelro, &strict.clone().require_bind_now(false)),
        [FindingKind::NoRelro]
    );
}

#[test]
fn one_report_lists_every_finding_with_the_value() {
    let bad = patched("libbasic.so", "many", |t, f| match t {
        PT_GNU_RELRO => (PT_NULL, f),
        PT_GNU_STACK => (t, f | PF_X),
        PT_LOAD if f & 2 != 0 => (t, f | PF_X),
        _ => (t, f),
    });
    let report = check(&bad, &Policy::strict()).unwrap();
    let mut got: Vec<FindingKind> = report.findings.iter().map(|f| f.kind.clone()).collect();
    got.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(
        got,
        [
            FindingKind::ExecutableStack,
            FindingKind::NoRelro,
            FindingKind::NotBindNow,
            FindingKind::WritableAndExecutable
        ]
    );
    let text: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
    assert!(text.iter().all(|t| t.contains("libbasic.so")), "{text:?}");
    assert!(text.iter().any(|t| t.contains("is RWX")), "{text:?}");
    assert!(
        text.iter().any(|t| t.contains("PT_GNU_STACK p_flags 0x7")),
        "{text:?}"
    );

    // Loader::policy refuses with all of them, and runs nothing.
    // SAFETY: refused before any code runs.
    let e = match unsafe { Loader::new().policy(Policy::strict()).open(&bad) } {
        Ok(_) => panic!("loaded"),
        Err(e) => e,
    };
    match &e {
        Error::Policy { report, .. } => assert_eq!(report.findings.len(), 4, "{e}"),
        other => panic!("expected Error::Policy, got {other:?}"),
    }
    assert!(e.to_string().contains("4 finding(s)"), "{e}");
}

#[test]
fn dependencies_and_search_paths_only_in_permitted_directories() {
    let libs = PathBuf::from(env!("MINLD_TEST_LIBS"));
    let p = Policy::strict().require_bind_now(false);
    // chain_a -> chain/chain_b -> chain/chain_c: all inside test-libs.
    let r = check(lib("libchain_a.so"), &p.clone().permit_dir(&libs)).unwrap();
    assert!(r.findings.is_empty(), "{r}");
    assert_eq!(r.checked.len(), 3, "{:?}", r.checked);
    // Only chain/ permitted: the root is outside; its RUNPATH ($ORIGIN/chain)
    // and its dependencies are inside.
    let r = check(
        lib("libchain_a.so"),
        &p.clone().permit_dir(libs.join("chain")),
    )
    .unwrap();
    let got: Vec<&FindingKind> = r.findings.iter().map(|f| &f.kind).collect();
    assert_eq!(got, [&FindingKind::DependencyOutsidePermitted], "{r}");
    // A system library: /lib is /usr/lib here, compared after resolving.
    let r = check(
        "libsqlite3.so.0",
        &p.clone()
            .permit_dir("/usr/lib/x86_64-linux-gnu")
            .require_relro(true),
    )
    .unwrap();
    assert!(r.findings.is_empty(), "{r}");
    let r = check("libsqlite3.so.0", &p.permit_dir("/opt/nothing-here")).unwrap();
    assert!(
        r.findings
            .iter()
            .any(|f| f.kind == FindingKind::DependencyOutsidePermitted
                && f.detail.contains("the library itself")),
        "{r}"
    );
    // glibc's own libraries (libm here) are the host's: not checked.
    assert!(!r.checked.iter().any(|c| c.ends_with("libm.so.6")), "{r:?}");
}

#[test]
fn code_that_would_run_at_load_is_listed() {
    let r = check(
        lib("libctor_top.so"),
        &Policy::strict().require_bind_now(false),
    )
    .unwrap();
    let top = r
        .code_at_load
        .iter()
        .find(|c| c.path.ends_with("libctor_top.so"))
        .unwrap();
    assert!(top.init_functions >= 2, "{top:?}");
    let r = check(
        lib("libifunc.so"),
        &Policy::strict().require_bind_now(false),
    )
    .unwrap();
    assert!(r.code_at_load[0].ifunc_resolvers >= 1, "{r:?}");
}

#[test]
fn a_policy_that_passes_loads() {
    let p = Policy::strict().require_bind_now(false);
    // SAFETY: test-libs/basic.c: int basic_add(int, int).
    let l = unsafe { Loader::new().policy(p).open(lib("libbasic.so")) }.unwrap();
    assert_eq!(
        // SAFETY: the signature named above; the library is loaded.
        unsafe {
            l.get::<extern "C" fn(i32, i32) -> i32>("basic_add")
                .unwrap()(2, 3)
        },
        5
    );
}

#[test]
fn a_search_path_outside_the_permitted_directories() {
    // libfault_a's RUNPATH is "$ORIGIN/fault:$ORIGIN": with only fault/
    // permitted, the "$ORIGIN" entry (test-libs itself) is outside.
    let libs = PathBuf::from(env!("MINLD_TEST_LIBS"));
    let p = Policy::strict()
        .require_bind_now(false)
        .permit_dir(libs.join("fault"));
    let r = check(lib("libfault_a.so"), &p).unwrap();
    let f = r
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::SearchPathOutsidePermitted)
        .unwrap_or_else(|| panic!("{r}"));
    assert!(
        f.path.ends_with("libfault_a.so") && f.detail.contains("DT_RUNPATH entry $ORIGIN"),
        "{f}"
    );
}

/// A copy of `name` in a scratch directory with the p_memsz (and p_filesz)
/// of its PT_GNU_RELRO set to `memsz`.
fn relro_resized(name: &str, tag: &str, memsz: u64) -> PathBuf {
    let out = patched(name, tag, |t, f| (t, f));
    let mut bytes = fs::read(&out).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).unwrap();
    let phoff = elf.header.e_phoff as usize;
    let i = elf
        .program_headers
        .iter()
        .position(|p| p.p_type == PT_GNU_RELRO)
        .expect("a PT_GNU_RELRO");
    drop(elf);
    let at = phoff + i * 56;
    bytes[at + 32..at + 40].copy_from_slice(&memsz.to_le_bytes());
    bytes[at + 40..at + 48].copy_from_slice(&memsz.to_le_bytes());
    fs::write(&out, bytes).unwrap();
    out
}

/// The .symtab value of a symbol of a test library (static ones included).
fn symbol_value(path: &Path, name: &str) -> u64 {
    let bytes = fs::read(path).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).unwrap();
    elf.syms
        .iter()
        .find(|s| elf.strtab.get_at(s.st_name) == Some(name))
        .unwrap_or_else(|| panic!("{name} not in {}", path.display()))
        .st_value
}

/// The p_flags of the mapping holding `addr`, from /proc/self/maps.
fn perms_at(addr: usize) -> String {
    fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .find_map(|l| {
            let (range, rest) = l.split_once(' ')?;
            let (s, e) = range.split_once('-')?;
            let (s, e) = (
                usize::from_str_radix(s, 16).ok()?,
                usize::from_str_radix(e, 16).ok()?,
            );
            (s <= addr && addr < e).then(|| rest[..4].to_string())
        })
        .unwrap_or_else(|| panic!("{addr:#x} not mapped"))
}

/// A copy of libctors4.so with every .init_array word 0, as linkers that
/// do not write RELA addends into the section (lld by default) leave them;
/// GNU ld writes the RELATIVE ones, and leaves 0 only where a symbol
/// relocation (R_X86_64_64) fills the word.
fn ctors4_zeroed() -> PathBuf {
    let out = patched("libctors4.so", "zeroed", |t, f| (t, f));
    let mut bytes = fs::read(&out).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).unwrap();
    let sh = elf
        .section_headers
        .iter()
        .find(|sh| elf.shdr_strtab.get_at(sh.sh_name) == Some(".init_array"))
        .expect(".init_array")
        .clone();
    drop(elf);
    let words = sh.sh_offset as usize..(sh.sh_offset + sh.sh_size) as usize;
    assert!(bytes[words.clone()].iter().any(|&b| b != 0));
    bytes[words].fill(0);
    fs::write(&out, bytes).unwrap();
    out
}

/// PIC code leaves .init_array words 0 in the file (relocations fill
/// them): every DT_INIT_ARRAYSZ / 8 entry is counted and resolved, with
/// RELA (RELATIVE, R_X86_64_64 against a symbol; words as GNU ld leaves
/// them and all 0) and with DT_RELR.
#[test]
fn every_init_array_entry_is_counted_and_resolved() {
    for path in [
        lib("libctors4.so"),
        ctors4_zeroed(),
        lib("libctors4_relr.so"),
    ] {
        let name = path.display();
        let bytes = fs::read(&path).unwrap();
        let elf = goblin::elf::Elf::parse(&bytes).unwrap();
        let dynamic = elf.dynamic.as_ref().expect("a dynamic section");
        let arraysz = dynamic
            .dyns
            .iter()
            .find(|d| d.d_tag == goblin::elf::dynamic::DT_INIT_ARRAYSZ)
            .expect("DT_INIT_ARRAYSZ")
            .d_val as usize;
        assert_eq!(arraysz, 40, "{name}: frame_dummy and four constructors");
        let r = check(&path, &Policy::strict()).unwrap();
        assert!(r.findings.is_empty(), "{name}: {r}");
        let c = &r.code_at_load[0];
        assert_eq!(c.init_array.len(), arraysz / 8, "{name}: {c:?}");
        assert_eq!(
            c.init_functions,
            1 + arraysz / 8,
            "{name}: DT_INIT too: {c:?}"
        );
        for f in ["frame_dummy", "ctors4_a", "ctors4_b"] {
            let want = InitEntry::Function(symbol_value(&path, f));
            assert!(c.init_array.contains(&want), "{name}: {f}: {c:?}");
        }
        for f in ["ctors4_c", "ctors4_d"] {
            let want = InitEntry::Symbol {
                name: f.to_string(),
                addend: 0,
            };
            assert!(c.init_array.contains(&want), "{name}: {f}: {c:?}");
        }
        // And that is what runs: the four constructors.
        // SAFETY: test-libs/ctors4.c: its constructors add to ctors4_sum.
        let l = unsafe { Loader::new().open(&path) }.unwrap();
        // SAFETY: int ctors4_get(void).
        let sum = unsafe { l.get::<extern "C" fn() -> i32>("ctors4_get").unwrap()() };
        assert_eq!(sum, 15, "{name}");
    }
}

/// A PT_GNU_RELRO with p_memsz 0 passes the "has RELRO" check but makes
/// nothing read-only: the GOT stays rw-p, and the report says so with the
/// addresses.
#[test]
fn an_empty_relro_is_reported_with_the_got_it_leaves_writable() {
    let empty = relro_resized("libctors4.so", "emptyrelro", 0);
    let bytes = fs::read(&empty).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).unwrap();
    let glob_dat = elf
        .dynrelas
        .iter()
        .find(|r| r.r_type == goblin::elf::reloc::R_X86_64_GLOB_DAT)
        .expect("a GLOB_DAT relocation")
        .r_offset;
    drop(elf);

    assert_eq!(
        kinds(&empty, &Policy::strict()),
        [FindingKind::GotOutsideRelro]
    );
    let r = check(&empty, &Policy::strict()).unwrap();
    let f = &r.findings[0];
    assert!(
        f.detail.contains("p_memsz 0x0") && f.detail.contains(&format!("GLOB_DAT {glob_dat:#x}")),
        "{f}"
    );
    assert!(f.detail.contains("DT_PLTGOT"), "BIND_NOW: {f}");
    // Without the policy requiring RELRO, nothing is reported.
    assert_eq!(kinds(&empty, &Policy::strict().require_relro(false)), []);
    // The finding is real: linked, the GOT is writable; the intact file's
    // is read-only.
    let l = Loader::new().link(&empty).unwrap();
    assert_eq!(perms_at(l.base() + glob_dat as usize), "rw-p");
    drop(l);
    let l = Loader::new().link(lib("libctors4.so")).unwrap();
    assert_eq!(perms_at(l.base() + glob_dat as usize), "r--p");
    drop(l);
    // Loader::policy refuses it.
    // SAFETY: refused before any code runs.
    match unsafe { Loader::new().policy(Policy::strict()).open(&empty) } {
        Err(Error::Policy { report, .. }) => {
            assert_eq!(report.findings[0].kind, FindingKind::GotOutsideRelro)
        }
        Err(e) => panic!("expected Error::Policy, got {e}"),
        Ok(_) => panic!("loaded"),
    }
}

/// Without PT_GNU_STACK, glibc on x86-64 gives the process an executable
/// stack: reported as ExecutableStack, saying the header is missing.
#[test]
fn a_missing_pt_gnu_stack_is_an_executable_stack() {
    let nostack = patched("libbasic.so", "nostack", |t, f| {
        if t == PT_GNU_STACK {
            (PT_NULL, f)
        } else {
            (t, f)
        }
    });
    let p = Policy::strict().require_bind_now(false);
    assert_eq!(kinds(&nostack, &p), [FindingKind::ExecutableStack]);
    let r = check(&nostack, &p).unwrap();
    assert!(r.findings[0].detail.contains("no PT_GNU_STACK"), "{r}");
    // The intact file has a non-executable PT_GNU_STACK: no finding.
    assert_eq!(kinds(&lib("libbasic.so"), &p), []);
}

/// Loads `root` (in a scratch directory `tag`, beside `swapped`) 2,000
/// times under a strict policy while another thread exchanges the file at
/// `swapped` (a copy of librace_good.so) with librace_bad.so (renameat2
/// RENAME_EXCHANGE): every load that succeeds has the good file (`marker`
/// says which), every refusal names the bad one's finding at that path.
fn swap_while_loading(tag: &str, root: &str, swapped: &str, marker: &str) {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let dir = std::env::temp_dir().join(format!("minld-policy-{}-{tag}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let race = Path::new(env!("MINLD_TEST_LIBS")).join("race");
    let (at, other) = (dir.join(swapped), dir.join("librace_other.so"));
    fs::copy(race.join("librace_good.so"), &at).unwrap();
    fs::copy(race.join("librace_bad.so"), &other).unwrap();
    if root != swapped {
        fs::copy(race.join(root), dir.join(root)).unwrap();
    }
    let (c_at, c_other) = (
        CString::new(at.as_os_str().as_bytes()).unwrap(),
        CString::new(other.as_os_str().as_bytes()).unwrap(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: two NUL-terminated paths; no memory is shared.
                let rc = unsafe {
                    libc::renameat2(
                        libc::AT_FDCWD,
                        c_at.as_ptr(),
                        libc::AT_FDCWD,
                        c_other.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                assert_eq!(rc, 0, "renameat2: {}", std::io::Error::last_os_error());
                swaps += 1;
            }
            swaps
        })
    };
    let loader = Loader::new().policy(Policy::strict());
    let (mut good, mut refused, mut bad) = (0, 0, Vec::new());
    for i in 0..2000 {
        // SAFETY: test-libs/race.c and race_root.c: int (void) markers, no
        // constructors.
        match unsafe { loader.open(dir.join(root)) } {
            Ok(l) => {
                // SAFETY: as above.
                let which = unsafe { l.get::<extern "C" fn() -> i32>(marker) }.unwrap()();
                if which == 1 {
                    good += 1;
                } else {
                    bad.push(i);
                }
            }
            Err(Error::Policy { path, report }) => {
                assert_eq!(path, dir.join(root), "{report}");
                assert!(
                    report
                        .findings
                        .iter()
                        .all(|f| f.kind == FindingKind::NotBindNow && f.path == at),
                    "a refusal for something the bad file does not have: {report}"
                );
                assert!(!report.findings.is_empty());
                refused += 1;
            }
            Err(e) => panic!("load {i}: {e}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    let _ = fs::remove_dir_all(&dir);
    eprintln!("{good} good, {refused} refused, {swaps} swaps");
    assert!(
        bad.is_empty(),
        "{} of 2000 loads got the file the policy refuses ({good} good, {refused} refused, {swaps} swaps)",
        bad.len()
    );
}

#[test]
fn the_file_checked_is_the_file_loaded_even_when_swapped_meanwhile() {
    swap_while_loading("race", "librace.so", "librace.so", "race_which");
}

#[test]
fn a_dependency_checked_is_the_dependency_loaded_even_when_swapped_meanwhile() {
    swap_while_loading(
        "race-dep",
        "librace_root.so",
        "librace_good.so",
        "race_root_which",
    );
}
