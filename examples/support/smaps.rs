//! Where a load's resident memory goes: `/proc/self/smaps` read before and
//! after the loading call, each mapping's `Rss` put in one kind (the loaded
//! objects' segments, the host program's own code and data, glibc's
//! objects, the heap, other anonymous memory, the stack), and the growth of
//! each kind printed as `smaps.<kind>=<kB>` lines.
//!
//! Used by `loadbench --smaps` (see there) and by `examples/memsmaps.rs`.

// Each example that includes this file uses a part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

/// The kinds of resident memory a load can grow, in the order they are
/// printed. The first seven are the objects the load mapped.
pub const KINDS: &[(&str, &str)] = &[
    ("lib_text", "library code (r-x)"),
    (
        "lib_ro_clean",
        "library read-only, clean (headers, symbols, relocations, rodata)",
    ),
    ("lib_ro_dirty", "library read-only, written (RELRO)"),
    ("lib_data", "library data (rw-, from the file)"),
    ("lib_bss", "library .bss (anonymous, inside its image)"),
    ("exe_text", "host program code (minld's own code)"),
    ("exe_data", "host program data, RELRO, .bss"),
    ("ldso", "ld-linux-x86-64.so.2"),
    ("libc", "libc.so.6"),
    ("host_other", "other objects the process had"),
    ("files_other", "other files mapped by the load"),
    ("heap", "[heap] (brk)"),
    (
        "anon",
        "anonymous mappings outside any object (mmap'd malloc, arenas)",
    ),
    ("stack", "[stack]"),
    ("other", "anything else ([vdso], [vvar], ...)"),
];

/// A buffer for one read of smaps, allocated and touched before the first
/// read so that neither read grows what it measures.
pub struct Buffer {
    /// The bytes, all written once at creation.
    bytes: Vec<u8>,
    /// How many of them the last read filled.
    len: usize,
}

impl Buffer {
    /// A buffer of `cap` bytes, every page already resident.
    pub fn new(cap: usize) -> Buffer {
        Buffer {
            bytes: vec![0x20; cap],
            len: 0,
        }
    }

    /// Reads `/proc/self/smaps` into the buffer (truncated at its size;
    /// `full()` says whether it fitted). Allocates nothing.
    pub fn read(&mut self) {
        self.len = 0;
        let Ok(mut f) = std::fs::File::open("/proc/self/smaps") else {
            return;
        };
        while self.len < self.bytes.len() {
            match f.read(&mut self.bytes[self.len..]) {
                Ok(0) | Err(_) => break,
                Ok(k) => self.len += k,
            }
        }
    }

    /// Whether the last read filled the whole buffer (then smaps may have
    /// been cut short).
    pub fn full(&self) -> bool {
        self.len == self.bytes.len()
    }

    /// The mappings of the last read.
    pub fn mappings(&self) -> Vec<Mapping> {
        parse(&String::from_utf8_lossy(&self.bytes[..self.len]))
    }
}

/// One mapping of smaps, with the fields used here.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// `r-xp` and the like.
    pub perms: String,
    /// File offset of `start`.
    pub offset: u64,
    /// The path, `[heap]`-style name, or empty for anonymous memory.
    pub path: String,
    /// Resident kB.
    pub rss: u64,
    /// Resident and written kB (private).
    pub private_dirty: u64,
}

/// Parses smaps text.
pub fn parse(text: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { continue };
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                let perms = words.next().unwrap_or("").to_string();
                let offset = words.next().and_then(|o| u64::from_str_radix(o, 16).ok());
                // device, inode, then the path (which may hold spaces)
                let path = words.skip(2).collect::<Vec<_>>().join(" ");
                out.push(Mapping {
                    start,
                    end,
                    perms,
                    offset: offset.unwrap_or(0),
                    path,
                    ..Mapping::default()
                });
                continue;
            }
        }
        let value = || -> u64 {
            words
                .clone()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        if let Some(m) = out.last_mut() {
            match first {
                "Rss:" => m.rss = value(),
                "Private_Dirty:" => m.private_dirty = value(),
                _ => {}
            }
        }
    }
    out
}

/// The address span of each path's mappings: anonymous mappings inside a
/// span are that object's (.bss, alignment padding).
fn spans(maps: &[Mapping]) -> Vec<(u64, u64, String)> {
    let mut by_path: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for m in maps.iter().filter(|m| m.path.starts_with('/')) {
        let e = by_path.entry(&m.path).or_insert((m.start, m.end));
        e.0 = e.0.min(m.start);
        e.1 = e.1.max(m.end);
    }
    by_path
        .into_iter()
        .map(|(p, (a, b))| (a, b, p.to_string()))
        .collect()
}

/// Resident kB per kind, for one snapshot. `new` are the paths the load
/// mapped; `exe` is the host program's path.
pub fn kinds(maps: &[Mapping], new: &BTreeSet<String>, exe: &str) -> BTreeMap<&'static str, u64> {
    let spans = spans(maps);
    let mut out: BTreeMap<&'static str, u64> = KINDS.iter().map(|(k, _)| (*k, 0)).collect();
    for m in maps {
        let owner: Option<&str> = if m.path.is_empty() {
            spans
                .iter()
                .find(|(a, b, _)| m.start >= *a && m.end <= *b)
                .map(|(_, _, p)| p.as_str())
        } else {
            None
        };
        let kind = if let Some(p) = owner {
            if new.contains(p) && p.contains(".so") {
                "lib_bss"
            } else if p == exe {
                "exe_data"
            } else {
                object_kind(p, new, exe, "rw-p")
            }
        } else if m.path.starts_with('/') {
            if new.contains(&m.path) && m.path.contains(".so") {
                match m.perms.get(..3).unwrap_or("") {
                    "r-x" => "lib_text",
                    "rw-" => "lib_data",
                    _ if m.private_dirty > 0 => {
                        // RELRO: split the clean pages out.
                        *out.entry("lib_ro_clean").or_default() += m.rss - m.private_dirty;
                        *out.entry("lib_ro_dirty").or_default() += m.private_dirty;
                        continue;
                    }
                    _ => "lib_ro_clean",
                }
            } else {
                object_kind(&m.path, new, exe, &m.perms)
            }
        } else {
            match m.path.as_str() {
                "" => "anon",
                "[heap]" => "heap",
                "[stack]" => "stack",
                _ => "other",
            }
        };
        *out.entry(kind).or_default() += m.rss;
    }
    out
}

/// The kind of a mapping of an object that is not one the load mapped (or
/// a file that is not a shared object).
fn object_kind(path: &str, new: &BTreeSet<String>, exe: &str, perms: &str) -> &'static str {
    if path == exe {
        if perms.starts_with("r-x") {
            "exe_text"
        } else {
            "exe_data"
        }
    } else if path.contains("/ld-linux") {
        "ldso"
    } else if path.contains("/libc.so") {
        "libc"
    } else if new.contains(path) {
        "files_other"
    } else {
        "host_other"
    }
}

/// The paths of `after` that `before` did not have.
pub fn new_paths(before: &[Mapping], after: &[Mapping]) -> BTreeSet<String> {
    let old: BTreeSet<&str> = before.iter().map(|m| m.path.as_str()).collect();
    after
        .iter()
        .filter(|m| m.path.starts_with('/') && !old.contains(m.path.as_str()))
        .map(|m| m.path.clone())
        .collect()
}

/// The growth of each kind from `before` to `after`, in kB (may be
/// negative), in `KINDS` order.
pub fn growth(before: &Buffer, after: &Buffer) -> Vec<(&'static str, i64)> {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| std::fs::canonicalize(p).ok())
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let (b, a) = (before.mappings(), after.mappings());
    let new = new_paths(&b, &a);
    let (kb, ka) = (kinds(&b, &new, &exe), kinds(&a, &new, &exe));
    KINDS
        .iter()
        .map(|(k, _)| (*k, ka[k] as i64 - kb[k] as i64))
        .collect()
}

/// Per kind, the growth of every run (kB), as the parent collects them.
pub type Runs = BTreeMap<String, Vec<i64>>;

/// Adds a child's `smaps.<kind>=<kB>` fields to `runs`.
pub fn collect(runs: &mut Runs, kv: &[(String, String)]) {
    for (k, v) in kv {
        if let (Some(kind), Ok(kb)) = (k.strip_prefix("smaps."), v.parse::<i64>()) {
            runs.entry(kind.to_string()).or_default().push(kb);
        }
    }
}

/// The median of a list of kB (0 for none).
fn median(v: &[i64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m] as f64
    } else {
        (s[m - 1] + s[m]) as f64 / 2.0
    }
}

/// A markdown table: one row per kind that grew in any load, a column per
/// library and loader (glibc, then minld, then minld cached), medians in
/// kB; then the sum of the medians and the median VmRSS growth (`rss`).
/// `runs` and `rss` are by loader in loadbench's order: minld, glibc,
/// minld cached.
pub fn table(libs: &[(String, [&Runs; 3], [f64; 3])]) -> String {
    use std::fmt::Write as _;
    /// Display order of the loaders (glibc, minld, cached).
    const SHOWN: [usize; 3] = [1, 0, 2];
    let mut out = String::from("| kind |");
    let mut rule = String::from("|---|");
    for (name, _, _) in libs {
        let short = name.split(".so").next().unwrap_or(name);
        let _ = write!(out, " {short} glibc | {short} minld | {short} cached |");
        rule.push_str("---:|---:|---:|");
    }
    out.push('\n');
    out.push_str(&rule);
    out.push('\n');
    let mut sums = vec![0.0; libs.len() * 3];
    for (kind, what) in KINDS {
        let cells: Vec<f64> = libs
            .iter()
            .flat_map(|(_, runs, _)| SHOWN.map(|i| runs[i].get(*kind).map_or(0.0, |v| median(v))))
            .collect();
        if cells.iter().all(|&c| c == 0.0) {
            continue;
        }
        let _ = write!(out, "| {what} |");
        for (i, c) in cells.iter().enumerate() {
            sums[i] += c;
            let _ = write!(out, " {c} |");
        }
        out.push('\n');
    }
    out.push_str("| sum of the medians |");
    for s in &sums {
        let _ = write!(out, " {s} |");
    }
    out.push_str("\n| VmRSS growth (median) |");
    for (_, _, rss) in libs {
        for i in SHOWN {
            let _ = write!(out, " {} |", rss[i]);
        }
    }
    out.push('\n');
    out
}
