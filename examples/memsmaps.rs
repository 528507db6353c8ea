//! `memsmaps`: one load in this process, by minld (`bytes`: minld's
//! `open_bytes` of the file read into memory first) or by glibc's `dlopen`,
//! and every mapping whose resident size it changed, from
//! `/proc/self/smaps` before and after; then the growth by kind (the
//! kinds of `loadbench --smaps`).
//!
//! ```text
//! cargo run --release --example memsmaps -- minld now /usr/lib/x86_64-linux-gnu/libz.so.1
//! cargo run --release --example memsmaps -- glibc lazy /usr/lib/x86_64-linux-gnu/libsqlite3.so.0
//! ```
//!
//! With `--pages SUBSTRING` last, it also prints, for each mapping whose
//! path contains SUBSTRING, the file offsets of the pages the load made
//! present (from `/proc/self/pagemap`), to find which code or data of an
//! object the load touched.
//!
//! Run it directly (not through `cargo run`, which may itself have warmed
//! nothing but adds its own noise to the time): the process is fresh, as
//! in `loadbench`'s children.

#[path = "support/smaps.rs"]
mod smaps;

use std::ffi::CString;
use std::process::ExitCode;

/// Bytes of each smaps buffer.
const BUFFER: usize = 4 << 20;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(which), Some(mode), Some(path)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: memsmaps <minld|bytes|glibc> <now|lazy> <path>");
        return ExitCode::from(2);
    };
    let now = mode == "now";
    let Ok(cpath) = CString::new(path.as_str()) else {
        eprintln!("memsmaps: a path with a NUL");
        return ExitCode::from(2);
    };
    let pages_of = match (args.get(4).map(String::as_str), args.get(5)) {
        (Some("--pages"), Some(s)) => Some(s.clone()),
        _ => None,
    };
    let loader = minld::Loader::new().bind_now(now);
    // `bytes`: the file read into memory before the first look, then
    // loaded with `open_bytes` (named by its path, for $ORIGIN).
    let bytes = (which == "bytes")
        .then(|| std::fs::read(path).ok())
        .flatten();
    let (mut before, mut after) = (smaps::Buffer::new(BUFFER), smaps::Buffer::new(BUFFER));
    before.read();
    let present0 = pages_of.as_deref().map(|s| present(&before.mappings(), s));
    let ok = match which.as_str() {
        // SAFETY: a library the user named, trusted to run its init
        // functions in this process.
        "minld" => unsafe { loader.open(path) }.map(std::mem::forget).is_ok(),
        "bytes" => bytes.as_deref().is_some_and(|b| {
            // SAFETY: as above.
            unsafe { loader.clone().name(path).open_bytes(b) }
                .map(std::mem::forget)
                .is_ok()
        }),
        "glibc" => {
            let flags = libc::RTLD_LOCAL | if now { libc::RTLD_NOW } else { libc::RTLD_LAZY };
            // SAFETY: `cpath` is NUL-terminated and outlives the call.
            !unsafe { libc::dlopen(cpath.as_ptr(), flags) }.is_null()
        }
        _ => {
            eprintln!("memsmaps: the loader is minld, bytes or glibc");
            return ExitCode::from(2);
        }
    };
    after.read();
    let present1 = pages_of.as_deref().map(|s| present(&after.mappings(), s));
    if !ok {
        eprintln!("memsmaps: the load failed");
        return ExitCode::FAILURE;
    }
    let (b, a) = (before.mappings(), after.mappings());
    println!(
        "{:>12} {:>12} {:4} {:>7} {:>7} {:>6}  path",
        "start", "end", "perm", "rss0", "rss1", "dirty1"
    );
    for m in &a {
        let old = b
            .iter()
            .find(|o| o.start == m.start && o.end == m.end && o.perms == m.perms);
        let rss0 = old.map_or(0, |o| o.rss);
        if old.is_some() && rss0 == m.rss {
            continue;
        }
        println!(
            "{:>12x} {:>12x} {:4} {:>7} {:>7} {:>6}  {}{}",
            m.start,
            m.end,
            m.perms,
            rss0,
            m.rss,
            m.private_dirty,
            m.path,
            if old.is_none() {
                " (new or changed)"
            } else {
                ""
            }
        );
    }
    println!();
    let mut sum = 0;
    for ((kind, kb), (_, what)) in smaps::growth(&before, &after).into_iter().zip(smaps::KINDS) {
        sum += kb;
        if kb != 0 {
            println!("{kb:>7} kB  {kind:12} {what}");
        }
    }
    println!("{sum:>7} kB  in all");
    if let (Some(p0), Some(p1)) = (present0, present1) {
        for (m, b) in &p1 {
            let a = p0
                .iter()
                .find(|(o, _)| o.start == m.start && o.end == m.end)
                .map(|(_, a)| a.clone())
                .unwrap_or_else(|| vec![false; b.len()]);
            let new: Vec<String> = a
                .iter()
                .zip(b)
                .enumerate()
                .filter(|(_, (x, y))| !**x && **y)
                .map(|(i, _)| format!("{:#x}", m.offset + i as u64 * 4096))
                .collect();
            if !new.is_empty() {
                println!(
                    "\n{} {} {} pages newly present at file offsets:",
                    m.path,
                    m.perms,
                    new.len()
                );
                println!("{}", new.join(" "));
            }
        }
    }
    ExitCode::SUCCESS
}

/// For each mapping whose path contains `sub`: which of its pages are
/// present (pagemap bit 63).
fn present(maps: &[smaps::Mapping], sub: &str) -> Vec<(smaps::Mapping, Vec<bool>)> {
    use std::os::unix::fs::FileExt;
    let Ok(f) = std::fs::File::open("/proc/self/pagemap") else {
        return Vec::new();
    };
    maps.iter()
        .filter(|m| m.path.contains(sub))
        .map(|m| {
            let n = ((m.end - m.start) / 4096) as usize;
            let mut buf = vec![0u8; n * 8];
            let _ = f.read_exact_at(&mut buf, m.start / 4096 * 8);
            let bits = buf.chunks_exact(8).map(|w| w[7] & 0x80 != 0).collect();
            (m.clone(), bits)
        })
        .collect()
}
