//! The `file_io` example (read() against mmap on regular files), run on a
//! small generated file and on libz with `--json`: its JSON holds one run
//! per method, pattern and cache state, and its numbers agree with each
//! other and with what the method must have done (the bytes read are the
//! file's size, read() made at least size/buffer read calls, the mmap ways
//! one mmap and no read, every way of a pattern summed the same bytes).
//! Nothing here depends on a time.

use std::path::Path;
use std::process::Command;

mod common;

use common::examples::example;

const LIBZ: &str = "/lib/x86_64-linux-gnu/libz.so.1";

// ---------------------------------------------------------------------------
// Just enough JSON (numbers kept as their text: a checksum is a u64)
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Json {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, key: &str) -> &Json {
        match self {
            Json::Obj(fields) => fields
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
                .unwrap_or_else(|| panic!("no field {key} in {self:?}")),
            _ => panic!("not an object: {self:?}"),
        }
    }
    fn u64(&self, key: &str) -> u64 {
        match self.get(key) {
            Json::Num(n) => n
                .parse()
                .unwrap_or_else(|_| panic!("{key} = {n}: not a u64")),
            v => panic!("{key} is not a number: {v:?}"),
        }
    }
    fn f64(&self, key: &str) -> Option<f64> {
        match self.get(key) {
            Json::Num(n) => Some(n.parse().expect("a number")),
            Json::Null => None,
            v => panic!("{key} is not a number: {v:?}"),
        }
    }
    fn str(&self, key: &str) -> &str {
        match self.get(key) {
            Json::Str(s) => s,
            v => panic!("{key} is not a string: {v:?}"),
        }
    }
    fn bool(&self, key: &str) -> bool {
        match self.get(key) {
            Json::Bool(b) => *b,
            v => panic!("{key} is not a boolean: {v:?}"),
        }
    }
    fn arr(&self, key: &str) -> &[Json] {
        match self.get(key) {
            Json::Arr(a) => a,
            v => panic!("{key} is not an array: {v:?}"),
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) {
        self.ws();
        assert_eq!(
            self.s.get(self.i),
            Some(&c),
            "JSON: expected {} at {}",
            c as char,
            self.i
        );
        self.i += 1;
    }
    fn string(&mut self) -> String {
        self.eat(b'"');
        let mut out = String::new();
        loop {
            let c = self.s[self.i];
            self.i += 1;
            match c {
                b'"' => return out,
                b'\\' => {
                    let e = self.s[self.i];
                    self.i += 1;
                    match e {
                        b'u' => {
                            let hex =
                                std::str::from_utf8(&self.s[self.i..self.i + 4]).expect("hex");
                            let code = u32::from_str_radix(hex, 16).expect("\\u");
                            out.push(char::from_u32(code).expect("a char"));
                            self.i += 4;
                        }
                        other => out.push(other as char),
                    }
                }
                _ => {
                    // Copy a whole UTF-8 sequence.
                    let start = self.i - 1;
                    while self.s.get(self.i).is_some_and(|b| b & 0xc0 == 0x80) {
                        self.i += 1;
                    }
                    out.push_str(std::str::from_utf8(&self.s[start..self.i]).expect("UTF-8"));
                }
            }
        }
    }
    fn value(&mut self) -> Json {
        self.ws();
        match self.s[self.i] {
            b'{' => {
                self.i += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.s[self.i] == b'}' {
                    self.i += 1;
                    return Json::Obj(fields);
                }
                loop {
                    let k = self.string();
                    self.eat(b':');
                    fields.push((k, self.value()));
                    self.ws();
                    self.i += 1;
                    if self.s[self.i - 1] == b'}' {
                        return Json::Obj(fields);
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s[self.i] == b']' {
                    self.i += 1;
                    return Json::Arr(items);
                }
                loop {
                    items.push(self.value());
                    self.ws();
                    self.i += 1;
                    if self.s[self.i - 1] == b']' {
                        return Json::Arr(items);
                    }
                }
            }
            b'"' => Json::Str(self.string()),
            b't' => {
                self.i += 4;
                Json::Bool(true)
            }
            b'f' => {
                self.i += 5;
                Json::Bool(false)
            }
            b'n' => {
                self.i += 4;
                Json::Null
            }
            _ => {
                let start = self.i;
                while self
                    .s
                    .get(self.i)
                    .is_some_and(|b| b.is_ascii_digit() || b"-+.eE".contains(b))
                {
                    self.i += 1;
                }
                Json::Num(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
            }
        }
    }
}

fn parse(text: &str) -> Json {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value();
    p.ws();
    assert_eq!(p.i, text.len(), "JSON: trailing text");
    v
}

// ---------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------

fn run(args: &[&str]) -> Json {
    let out = Command::new(example("file_io"))
        .args(args)
        .arg("--json")
        .output()
        .expect("run file_io");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "file_io {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    parse(stdout.trim())
}

/// The run of `method`/`pattern` with `cache`.
fn find<'a>(runs: &'a [Json], cache: &str, method: &str, pattern: &str) -> &'a Json {
    runs.iter()
        .find(|r| {
            r.str("cache") == cache && r.str("method") == method && r.str("pattern") == pattern
        })
        .unwrap_or_else(|| panic!("no {cache} {method} {pattern} run"))
}

/// What every method of one file and cache state must show.
fn check_runs(runs: &[Json], cache: &str, size: u64, buffer: u64, accesses: u64, repeat: u64) {
    let calls = |r: &Json, k: &str| r.get("syscalls").u64(k);
    for r in runs.iter().filter(|r| r.str("cache") == cache) {
        let s = r.get("syscalls");
        let sum: u64 = ["open", "fstat", "read", "pread", "mmap", "munmap", "close"]
            .iter()
            .map(|k| s.u64(k))
            .sum();
        assert_eq!(s.u64("total"), sum, "the total is the sum: {r:?}");
        assert_eq!(
            (s.u64("open"), s.u64("close")),
            (1, 1),
            "one open, one close: {r:?}"
        );
        assert_eq!(r.u64("size"), size);
        let pct = r.f64("cached_pct_before").expect("a non-empty file");
        assert!((0.0..=100.0).contains(&pct), "{pct}");
    }
    let read = find(runs, cache, "read", "sequential");
    assert_eq!(read.u64("bytes"), size, "read() got the whole file");
    assert!(calls(read, "read") > size / buffer, "read calls: {read:?}");
    assert_eq!(
        calls(read, "read"),
        size.div_ceil(buffer) + 1,
        "full reads, then 0"
    );
    assert_eq!((calls(read, "mmap"), calls(read, "pread")), (0, 0));
    let map = find(runs, cache, "mmap", "sequential");
    assert_eq!(map.u64("bytes"), size, "every byte of the mapping");
    assert_eq!(
        (
            calls(map, "mmap"),
            calls(map, "munmap"),
            calls(map, "fstat")
        ),
        (1, 1, 1)
    );
    assert_eq!((calls(map, "read"), calls(map, "pread")), (0, 0));
    assert_eq!(map.u64("checksum"), read.u64("checksum"), "the same bytes");
    let pread = find(runs, cache, "pread", "random");
    let n = accesses * repeat;
    assert_eq!(calls(pread, "pread"), n, "one pread per access");
    assert_eq!(
        pread.u64("bytes"),
        n * 4096,
        "4 KiB each (the size is whole pages)"
    );
    assert_eq!((calls(pread, "mmap"), calls(pread, "read")), (0, 0));
    let rmap = find(runs, cache, "mmap", "random");
    assert_eq!((calls(rmap, "mmap"), calls(rmap, "munmap")), (1, 1));
    assert_eq!((calls(rmap, "read"), calls(rmap, "pread")), (0, 0));
    assert_eq!(rmap.u64("bytes"), pread.u64("bytes"));
    assert_eq!(
        rmap.u64("checksum"),
        pread.u64("checksum"),
        "the same pages"
    );
}

#[test]
fn a_generated_file_cold_and_warm() {
    let dir = std::env::temp_dir();
    let dir = dir.to_str().expect("UTF-8 temp dir");
    let j = run(&[
        "--size",
        "300K",
        "--accesses",
        "50",
        "--repeat",
        "2",
        "--buffer",
        "64K",
        "--samples",
        "1",
        "--dir",
        dir,
    ]);
    assert_eq!(
        (j.u64("buffer"), j.u64("accesses"), j.u64("repeat")),
        (65536, 50, 2)
    );
    let runs = j.arr("runs");
    assert_eq!(runs.len(), 8, "4 ways, cold and warm");
    assert!(runs.iter().all(|r| r.bool("generated")));
    let size = 300 * 1024;
    check_runs(runs, "cold", size, 65536, 50, 2);
    check_runs(runs, "warm", size, 65536, 50, 2);
    for r in runs {
        if r.str("cache") == "warm" {
            assert_eq!(r.f64("cached_pct_before"), Some(100.0), "warmed: {r:?}");
            assert_eq!(r.str("prepared"), "warm-up read");
        } else {
            assert_eq!(r.str("prepared"), "posix_fadvise", "{r:?}");
        }
    }
    // The same file (same size, same generator) in both cache states.
    let sums = |c| find(runs, c, "read", "sequential").u64("checksum");
    assert_eq!(sums("cold"), sums("warm"));
    // The generated file is gone.
    let name = Path::new(find(runs, "cold", "read", "sequential").str("file"));
    assert!(!name.exists(), "{} left behind", name.display());
}

#[test]
fn a_named_file_warm() {
    let j = run(&[
        LIBZ,
        "--warm-only",
        "--accesses",
        "20",
        "--repeat",
        "3",
        "--samples",
        "1",
    ]);
    let runs = j.arr("runs");
    assert_eq!(runs.len(), 4, "4 ways, warm only");
    let size = std::fs::metadata(LIBZ).expect("stat libz").len();
    assert!(runs
        .iter()
        .all(|r| !r.bool("generated") && r.str("file") == LIBZ));
    let read = find(runs, "warm", "read", "sequential");
    let map = find(runs, "warm", "mmap", "sequential");
    assert_eq!(read.u64("bytes"), size);
    assert_eq!(map.u64("bytes"), size);
    assert_eq!(map.u64("checksum"), read.u64("checksum"));
    // libz's size is not whole pages: the last page's access is shorter,
    // the same for pread and the mapping.
    let pread = find(runs, "warm", "pread", "random");
    let rmap = find(runs, "warm", "mmap", "random");
    assert_eq!(pread.get("syscalls").u64("pread"), 60);
    assert_eq!(rmap.u64("bytes"), pread.u64("bytes"));
    assert_eq!(rmap.u64("checksum"), pread.u64("checksum"));
}

/// A size past 2^64 bytes is refused with a message naming it, not a
/// panic; an empty file (named or generated) is skipped with a message,
/// with no time reported for a mapping that was never made.
#[test]
fn an_impossible_size_and_an_empty_file_are_refused_with_a_message() {
    let out = Command::new(example("file_io"))
        .args(["--size", "99999999999999G"])
        .output()
        .expect("run file_io");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("size 99999999999999G"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let empty = std::env::temp_dir().join(format!("file_io-empty-{}", std::process::id()));
    std::fs::write(&empty, b"").expect("create an empty file");
    let named = empty.to_str().expect("utf-8 path");
    for args in [
        vec![named, "--warm-only"],
        vec!["--size", "0", "--warm-only"],
    ] {
        let out = Command::new(example("file_io"))
            .args(&args)
            .arg("--json")
            .output()
            .expect("run file_io");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains("empty, nothing to read or map: skipped"),
            "{stderr}"
        );
        let j = parse(String::from_utf8_lossy(&out.stdout).trim());
        assert!(j.arr("runs").is_empty(), "{args:?}: no run reported");
    }
    let _ = std::fs::remove_file(&empty);
}
