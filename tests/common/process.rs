//! What the test threads of one binary share, and a way out of it: the
//! process's mappings and descriptors (read from `/proc/self`), one lock
//! for the tests that compare them before and after, and a test run alone
//! in a fresh copy of its binary.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

/// Takes the binary's one test lock: tests that load the same libraries,
/// count descriptors or mappings, or check that an unload really unmapped
/// a library run one at a time. A test that panicked does not keep the
/// others out.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// How many descriptors the process has open.
pub fn fd_count() -> usize {
    fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// `/proc/self/maps` as text.
pub fn maps_text() -> String {
    fs::read_to_string("/proc/self/maps").expect("/proc/self/maps")
}

/// One line of `/proc/self/maps`.
#[derive(Debug, Clone)]
pub struct MapLine {
    /// Its first address.
    pub start: usize,
    /// The address after its last.
    pub end: usize,
    /// Its protections as the kernel shows them (`r-xp`).
    pub perms: String,
    /// The file mapped, a `[name]`, or empty for anonymous memory.
    pub path: String,
}

/// The lines of `/proc/self/maps`. Read into a buffer allocated up front,
/// so that reading does not make a mapping of its own in a range just
/// given back.
pub fn maps() -> Vec<MapLine> {
    let mut buf = Vec::with_capacity(1 << 20);
    let mut f = fs::File::open("/proc/self/maps").expect("/proc/self/maps");
    std::io::Read::read_to_end(&mut f, &mut buf).expect("read /proc/self/maps");
    String::from_utf8_lossy(&buf)
        .lines()
        .map(|line| {
            let mut f = line.splitn(6, ' ');
            let range = f.next().unwrap_or_default();
            let perms = f.next().unwrap_or_default().to_string();
            let path = f.nth(3).unwrap_or_default().trim().to_string();
            let (s, e) = range.split_once('-').expect("address range");
            MapLine {
                start: usize::from_str_radix(s, 16).expect("start"),
                end: usize::from_str_radix(e, 16).expect("end"),
                perms,
                path,
            }
        })
        .collect()
}

/// The lines whose file is `path` (by its real path, as the kernel shows
/// it; deleted or not).
pub fn naming(lines: &[MapLine], path: &Path) -> Vec<MapLine> {
    let p = path.display().to_string();
    lines
        .iter()
        .filter(|l| l.path == p || l.path == format!("{p} (deleted)"))
        .cloned()
        .collect()
}

/// The variable that tells a test it runs in the fresh process it asked
/// for (its value is the test's name).
const FRESH_CHILD: &str = "MINLD_TEST_FRESH_CHILD";

/// For a test that needs a process of its own. In the test process: runs
/// the test `name` alone in a new process of this test binary, expects it
/// to pass (passing its stderr on), and returns false (the caller
/// returns). In that new process: returns true (the caller runs its body).
pub fn in_fresh_process(name: &str) -> bool {
    if std::env::var_os(FRESH_CHILD).is_some_and(|v| v == name) {
        return true;
    }
    let out = rerun(name)
        .env(FRESH_CHILD, name)
        .output()
        .unwrap_or_else(|e| panic!("running {name} in a child: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} in its own process: {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    eprintln!("{stderr}");
    false
}

/// How many more anonymous mappings the process may have after a test than
/// before without it counting as a leak (malloc arenas, test threads' stacks):
/// far fewer than the rounds a leak test runs, one leaked mapping each.
pub const ANON_SLACK: isize = 6;

/// How many of `lines` are anonymous (no path).
pub fn anon_count(lines: &[MapLine]) -> isize {
    lines.iter().filter(|l| l.path.is_empty()).count() as isize
}

/// The lines of `lines` over `start..start+len`.
pub fn overlapping(lines: &[MapLine], start: usize, len: usize) -> Vec<MapLine> {
    lines
        .iter()
        .filter(|l| l.start < start + len && l.end > start)
        .cloned()
        .collect()
}

/// The descriptors and anonymous mappings of this process before a test,
/// to compare with after it.
pub struct Before {
    fds: usize,
    anon: isize,
}

impl Before {
    /// Counts them now.
    pub fn take() -> Before {
        Before {
            fds: fd_count(),
            anon: anon_count(&maps()),
        }
    }

    /// Descriptors are as they were, and anonymous mappings at most
    /// [`ANON_SLACK`] more.
    pub fn check(&self, what: &str) {
        assert_eq!(fd_count(), self.fds, "{what}: a descriptor leaked");
        let now = anon_count(&maps());
        assert!(
            now - self.anon <= ANON_SLACK,
            "{what}: {} anonymous mappings before, {now} after",
            self.anon
        );
    }
}

/// A command that runs test `name` of this test binary alone, in a new
/// process (`--exact --nocapture --test-threads=1`); the caller adds the
/// environment that tells the child what to do.
pub fn rerun(name: &str) -> Command {
    let exe = std::env::current_exe().expect("current_exe");
    let mut c = Command::new(exe);
    c.args([name, "--exact", "--nocapture", "--test-threads=1"]);
    c
}
