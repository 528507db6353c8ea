//! Deterministic mutation testing: thousands of byte-level mutations of
//! test-libs and of a real library, each linked through the real loader
//! (`Loader::link`: mapped, relocated and bound, none of its code run) from
//! a memfd. Every one must either link or return an error: a crash, a
//! panic or a hang fails the test (a watchdog aborts a load that takes more
//! than 20 s, printing the mutation). Nothing may stay mapped or open.
//!
//! The mutations aim where a loader trusts the file: the ELF header and
//! program headers, and the tables the dynamic section points at (dynamic
//! entries, symbols, strings, hash tables, versions, relocations, init
//! arrays), with values chosen to break arithmetic (0, all ones, sign bits,
//! the file size, small shifts of the original value).

mod common;

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use goblin::elf::Elf;
use minld::Loader;

use common::libs::lib as test_lib;
use common::process::fd_count as count_fds;

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Byte ranges of a file worth mutating: the headers and the dynamic
/// linking tables, found through the section headers (`(start, len)`).
fn targets(file: &[u8]) -> Vec<(usize, usize)> {
    let elf = Elf::parse(file).expect("the unmutated file parses");
    let phdrs = elf.header.e_phoff as usize;
    let phlen = elf.header.e_phnum as usize * elf.header.e_phentsize as usize;
    let mut t = vec![(0, 64), (phdrs, phlen)];
    for sh in &elf.section_headers {
        let name = elf.shdr_strtab.get_at(sh.sh_name).unwrap_or("");
        let interesting = matches!(
            name,
            ".dynamic"
                | ".dynsym"
                | ".dynstr"
                | ".gnu.hash"
                | ".hash"
                | ".gnu.version"
                | ".gnu.version_d"
                | ".gnu.version_r"
                | ".rela.dyn"
                | ".rela.plt"
                | ".relr.dyn"
                | ".init_array"
                | ".fini_array"
                | ".eh_frame_hdr"
                | ".tdata"
        );
        if interesting && sh.sh_type != goblin::elf::section_header::SHT_NOBITS && sh.sh_size > 0 {
            t.push((sh.sh_offset as usize, sh.sh_size as usize));
        }
    }
    t.retain(|&(s, l)| l > 0 && s + l <= file.len());
    t
}

/// One mutation: where, how, and the bytes before, for the report.
#[derive(Debug, Clone)]
struct Mutation {
    offset: usize,
    width: usize,
    value: u64,
}

fn mutate(rng: &mut Rng, file: &[u8], targets: &[(usize, usize)]) -> Mutation {
    // Mostly the targeted tables, sometimes anywhere.
    let (start, len) = if rng.below(10) < 9 {
        targets[rng.below(targets.len())]
    } else {
        (0, file.len())
    };
    let width = [1, 2, 4, 8][rng.below(4)];
    // Aligned to the width most of the time: fields are.
    let mut offset = start + rng.below(len);
    if rng.below(4) != 0 {
        offset &= !(width - 1);
    }
    let offset = offset.min(file.len() - width);
    let mut old = [0u8; 8];
    old[..width].copy_from_slice(&file[offset..offset + width]);
    let old = u64::from_le_bytes(old);
    let mask = if width == 8 {
        u64::MAX
    } else {
        (1u64 << (width * 8)) - 1
    };
    let value = match rng.below(9) {
        0 => 0,
        1 => u64::MAX,
        2 => 1u64 << (width * 8 - 1),
        3 => (1u64 << (width * 8 - 1)).wrapping_sub(1),
        4 => file.len() as u64,
        5 => old.wrapping_add(1 + rng.below(16) as u64),
        6 => old.wrapping_sub(1 + rng.below(16) as u64),
        7 => old ^ (1 << rng.below(width * 8)),
        _ => rng.next(),
    } & mask;
    Mutation {
        offset,
        width,
        value,
    }
}

fn apply(file: &mut [u8], m: &Mutation) {
    file[m.offset..m.offset + m.width].copy_from_slice(&m.value.to_le_bytes()[..m.width]);
}

/// A memfd holding `bytes`, and the path that opens it.
fn memfd(bytes: &[u8]) -> (OwnedFd, String) {
    let name = CString::new("minld-mutant").unwrap();
    // SAFETY: memfd_create with a valid name; the fd is owned below.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut f = fs::File::from(fd.try_clone().unwrap());
    f.write_all(bytes).unwrap();
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    (fd, path)
}

/// The file-backed lines of /proc/self/maps: what minld maps from files
/// (the mutants' memfds, their dependencies). Anonymous lines are left out:
/// malloc arenas grow and appear as threads come and go; minld's anonymous
/// mappings (.bss, reservations) are checked around failing loads in
/// tests/leaks.rs.
fn maps() -> Vec<String> {
    fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(5)
                .is_some_and(|p| !p.starts_with('['))
        })
        .map(String::from)
        .collect()
}

/// Links `rounds` mutants of `path` (one to three mutations each), under a
/// watchdog. Returns how many linked and how many were refused.
fn run(path: &str, rounds: usize, seed: u64) -> (usize, usize) {
    let original = fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let targets = targets(&original);
    let mut rng = Rng(seed);
    let started = Arc::new(AtomicU64::new(0));
    let epoch = Instant::now();
    let current = Arc::new(std::sync::Mutex::new(String::new()));
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = {
        let started = started.clone();
        let current = current.clone();
        std::thread::spawn(move || loop {
            if stop_rx.recv_timeout(Duration::from_millis(500)).is_ok() {
                return;
            }
            let s = started.load(Ordering::Acquire);
            if s != 0 && (epoch.elapsed().as_millis() as u64).saturating_sub(s) > 20_000 {
                eprintln!(
                    "mutation test: a load has run for over 20 s (a hang): {}",
                    current.lock().unwrap()
                );
                std::process::abort();
            }
        })
    };
    // MINLD_MUTATION_VERBOSE=1 prints each mutant before it is linked, to
    // find the one that crashes the process.
    let verbose = std::env::var_os("MINLD_MUTATION_VERBOSE").is_some();
    let (mut linked, mut refused) = (0, 0);
    for round in 0..rounds {
        let mut bytes = original.clone();
        let n = 1 + rng.below(3);
        let muts: Vec<Mutation> = (0..n).map(|_| mutate(&mut rng, &bytes, &targets)).collect();
        for m in &muts {
            apply(&mut bytes, m);
        }
        let what = format!("{path}, seed {seed:#x}, round {round}: {muts:x?}");
        if verbose {
            eprintln!("{what}");
        }
        *current.lock().unwrap() = what.clone();
        let (fd, fdpath) = memfd(&bytes);
        started.store(epoch.elapsed().as_millis() as u64 + 1, Ordering::Release);
        let result = std::panic::catch_unwind(|| Loader::new().link(&fdpath));
        started.store(0, Ordering::Release);
        drop(fd);
        match result {
            Ok(Ok(lib)) => {
                linked += 1;
                drop(lib);
            }
            Ok(Err(e)) => {
                refused += 1;
                let msg = e.to_string();
                assert!(!msg.is_empty(), "{what}: an empty error");
            }
            Err(panic) => {
                eprintln!("mutation test: minld panicked on {what}");
                std::panic::resume_unwind(panic);
            }
        }
    }
    stop_tx.send(()).unwrap();
    watchdog.join().unwrap();
    (linked, refused)
}

fn check(path: &str, rounds: usize, seed: u64) {
    // Warm up (host objects, ld.so.cache, a cached thread stack for the
    // watchdog), then count.
    let _ = Loader::new()
        .link(path)
        .expect("the unmutated library links");
    // A search by soname maps /etc/ld.so.cache, which minld keeps.
    let _ = Loader::new().link("libz.so.1").expect("libz links");
    std::thread::spawn(|| drop(std::hint::black_box(vec![0u8; 64])))
        .join()
        .unwrap();
    let (before, fds) = (maps(), count_fds());
    let t = Instant::now();
    let (linked, refused) = run(path, rounds, seed);
    eprintln!(
        "{path}: {rounds} mutants, {linked} linked, {refused} refused, in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(linked + refused, rounds);
    assert!(
        refused > 0,
        "no mutant of {path} was refused: the mutations miss"
    );
    assert_eq!(
        count_fds(),
        fds,
        "descriptors left open by {path}'s mutants"
    );
    let after = maps();
    let new: Vec<&String> = after.iter().filter(|l| !before.contains(l)).collect();
    assert!(
        after.len() <= before.len() && new.is_empty(),
        "mappings left by {path}'s mutants: {new:#?}"
    );
}

// One test per library, each serial within itself; the mapping counts are
// per process, so the tests share a lock.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn mutants_of_libbasic() {
    let _l = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    check(&test_lib("libbasic.so"), 1500, 0x6d69_6e6c_6401);
}

#[test]
fn mutants_of_a_versioned_library_with_ifuncs_and_tls() {
    let _l = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    check(&test_lib("libversioned.so"), 1000, 0x6d69_6e6c_6402);
    check(&test_lib("libifunc.so"), 1000, 0x6d69_6e6c_6403);
    check(&test_lib("libtls_models.so"), 1000, 0x6d69_6e6c_6404);
    check(&test_lib("libtls_desc.so"), 1000, 0x6d69_6e6c_6405);
}

#[test]
fn mutants_of_a_cxx_library() {
    let _l = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    check(&test_lib("libcxx_basic.so"), 1000, 0x6d69_6e6c_6406);
}

#[test]
fn mutants_of_libz() {
    let _l = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    check("/lib/x86_64-linux-gnu/libz.so.1", 2000, 0x6d69_6e6c_6407);
}
