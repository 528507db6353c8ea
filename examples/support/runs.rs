//! loadbench's parent: the children it runs (loads, the cached loader's
//! check, lookups, strace), in order, then the report. A submodule of
//! `loadbench.rs`.

use super::*;

/// Reads a file once so that its pages are in the page cache.
fn warm(path: &Path) {
    if let Ok(mut f) = std::fs::File::open(path) {
        let mut buf = vec![0u8; 1 << 20];
        while matches!(f.read(&mut buf), Ok(n) if n > 0) {}
    }
}

/// A child of `exe` (or of strace) with the loaders' variables scrubbed and
/// `CACHE_ENV` naming the cache directory.
pub(super) fn scrubbed(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    for v in SCRUBBED_ENV {
        c.env_remove(v);
    }
    if let Some(dir) = CACHE_DIR.get() {
        c.env(CACHE_ENV, dir);
    }
    c.stdin(Stdio::null());
    c
}

/// A child of the benchmark itself (see `scrubbed`).
fn child_command(exe: &Path) -> Command {
    scrubbed(exe)
}

/// The untimed check that the cached loader's record for `path` is proven:
/// one more load, under `MINLD_DEBUG=libs`, whose stderr must say
/// `link cache: …: proven`.
fn check_proven(exe: &Path, mode: Mode, path: &Path) -> Result<(), String> {
    let mut cmd = child_command(exe);
    cmd.args(load_args(Which::Cached, mode, path))
        .env("MINLD_DEBUG", "libs");
    let out = cmd
        .output()
        .map_err(|e| format!("spawning the child: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("link cache:"))
        .collect();
    if out.status.success() && said.iter().any(|l| l.contains("proven")) {
        return Ok(());
    }
    Err(format!(
        "the link record was not proven ({}): {}",
        out.status,
        one_line(&said.join("; "))
    ))
}

/// Makes the private cache directory (mode 0700) of this run of loadbench.
pub(super) fn make_cache_dir() -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt as _;
    let dir = std::env::temp_dir().join(format!("loadbench-{}-cache", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// Runs a child; its stdout's `key=value` lines, or its error.
pub(super) fn run_child(mut cmd: Command) -> Result<Vec<(String, String)>, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("spawning the child: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut kv = Vec::new();
    for line in stdout.lines() {
        if let Some(e) = line.strip_prefix("error=") {
            return Err(e.to_string());
        }
        if line.starts_with("ns=") {
            for tok in line.split_whitespace() {
                if let Some((k, v)) = tok.split_once('=') {
                    kv.push((k.to_string(), v.to_string()));
                }
            }
        } else if let Some((k, v)) = line.split_once('=') {
            kv.push((k.to_string(), v.to_string()));
        }
    }
    if !out.status.success() {
        return Err(format!(
            "child {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(kv)
}

/// The value of `key` in a child's output, parsed.
fn field<T: std::str::FromStr>(kv: &[(String, String)], key: &str) -> Option<T> {
    kv.iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.parse().ok())
}

/// Each loader's lookup timings: key (`hit`, `miss`, and minld's
/// `find_hit`, `find_miss`) to ns per call of each batch.
pub(super) type Lookup = Result<BTreeMap<String, Vec<f64>>, String>;

/// Step 1: reads each library once (page cache), counts its relocations.
fn read_libs(opts: &Opts) -> Vec<LibResult> {
    let mut libs: Vec<LibResult> = Vec::new();
    for path in &opts.libs {
        eprintln!("reading {}", path.display());
        let (relocations, needed, parse_error) = match std::fs::read(path) {
            Ok(bytes) => match count_relocations(&bytes) {
                Ok((r, n)) => (Some(r), Some(n), None),
                Err(e) => (None, None, Some(format!("{}: {e}", path.display()))),
            },
            Err(e) => (None, None, Some(format!("{}: {e}", path.display()))),
        };
        libs.push(LibResult {
            name: file_name(path),
            path: path.clone(),
            relocations,
            needed,
            minld_deps: None,
            parse_error,
            modes: vec![Default::default(); opts.modes.len()],
            syscalls: [None, None, None],
        });
    }
    libs
}

/// The untimed load of each loader: lists the objects, warms their pages;
/// the cached loader's fills its link record, then a check run confirms
/// the record is proven.
fn untimed_loads(exe: &Path, mi: usize, mode: Mode, lib: &mut LibResult) {
    for w in LOADERS {
        let mut args = load_args(w, mode, &lib.path);
        args.push("info".into());
        let mut cmd = child_command(exe);
        cmd.args(&args);
        let s = &mut lib.modes[mi][loader_index(w)];
        let r = run_child(cmd).and_then(|kv| {
            if w == Which::Cached {
                check_proven(exe, mode, &lib.path)?;
            }
            Ok(kv)
        });
        match r {
            Ok(kv) => {
                s.objects = kv
                    .iter()
                    .filter(|(k, _)| k == "object")
                    .map(|(_, v)| v.clone())
                    .collect();
                for o in &s.objects {
                    warm(Path::new(o));
                }
                if w == Which::Minld {
                    lib.minld_deps = field(&kv, "deps");
                }
            }
            Err(e) => {
                eprintln!("{} {} {}: {e}", lib.name, mode.name(), w.name());
                s.error = Some(e);
            }
        }
    }
}

/// Step 2, one library in one mode: the untimed loads, then the timed
/// runs, alternating loaders. A timed cached run that did not use the
/// record is refused (the child says so): the loader's samples stop there
/// and its cell says why.
fn time_loads(opts: &Opts, exe: &Path, mi: usize, mode: Mode, lib: &mut LibResult) {
    untimed_loads(exe, mi, mode, lib);
    for i in 0..opts.runs {
        for w in LOADERS {
            let s = &mut lib.modes[mi][loader_index(w)];
            if s.error.is_some() {
                continue;
            }
            let mut cmd = child_command(exe);
            cmd.args(load_args(w, mode, &lib.path));
            if opts.smaps {
                cmd.arg("smaps");
            }
            match run_child(cmd) {
                Ok(kv) => match (field(&kv, "ns"), field(&kv, "rss_kb")) {
                    (Some(ns), Some(rss)) => {
                        s.ns.push(ns);
                        s.rss_kb.push(rss);
                        smaps::collect(&mut s.smaps, &kv);
                    }
                    _ => s.error = Some(format!("unreadable child output {kv:?}")),
                },
                Err(e) => {
                    eprintln!("{} {} {} run {i}: {e}", lib.name, mode.name(), w.name());
                    s.error = Some(e);
                }
            }
        }
    }
    let [m, g, c] = &lib.modes[mi];
    eprintln!(
        "{} {}: glibc {} µs, minld {} µs, minld cached {} µs ({} runs)",
        lib.name,
        mode.name(),
        us(median_u(&g.ns)),
        us(median_u(&m.ns)),
        us(median_u(&c.ns)),
        m.ns.len().min(g.ns.len()).min(c.ns.len())
    );
}

/// Step 3: one lookup child per loader.
fn run_lookup(exe: &Path) -> Vec<(Which, Lookup)> {
    let lookup_path = Path::new(LIB_DIR).join(LOOKUP_LIB);
    LOOKUP_LOADERS
        .iter()
        .map(|&w| {
            eprintln!("lookup, {}", w.name());
            let mut cmd = child_command(exe);
            cmd.args(["--child-lookup", w.name()]).arg(&lookup_path);
            let r = run_child(cmd).and_then(|kv| {
                let mut got = BTreeMap::new();
                for (k, v) in kv {
                    if ["hit", "miss", "find_hit", "find_miss"].contains(&k.as_str()) {
                        let xs = v
                            .split(',')
                            .map(|x| x.parse::<f64>().map_err(|e| format!("{k}: {e}")))
                            .collect::<Result<Vec<f64>, String>>()?;
                        got.insert(k, xs);
                    }
                }
                for k in ["hit", "miss"] {
                    if !got.contains_key(k) {
                        return Err(format!("no {k}= in the child's output"));
                    }
                }
                Ok(got)
            });
            (w, r)
        })
        .collect()
}

/// Everything after the command line: loads, lookups, system calls, the
/// tables and the JSON.
pub(super) fn run(opts: &Opts, exe: &Path, host: &str) -> ExitCode {
    let mut libs = read_libs(opts);
    for (mi, &mode) in opts.modes.iter().enumerate() {
        for lib in &mut libs {
            time_loads(opts, exe, mi, mode, lib);
        }
    }
    let lookup = run_lookup(exe);

    // 4. System calls.
    let strace_mode = opts.modes[0];
    let strace_skipped: Option<String> = if !opts.strace {
        Some("skipped: --no-strace".into())
    } else {
        strace_available().err()
    };
    if strace_skipped.is_none() {
        for (n, lib) in libs.iter_mut().enumerate() {
            for w in LOADERS {
                eprintln!("strace {} {}", lib.name, w.name());
                lib.syscalls[loader_index(w)] = Some(run_strace(exe, w, strace_mode, &lib.path, n));
            }
        }
    }

    // 5. Tables.
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# minld vs glibc dlopen: {} runs per loader, each in a fresh process\n\n{host}\n",
        opts.runs
    );
    let mut footnotes: Vec<String> = Vec::new();
    for (mi, &mode) in opts.modes.iter().enumerate() {
        report::load_table(&mut out, &mut footnotes, opts, mi, mode, &libs);
    }
    report::notes(&mut out, &libs);
    report::lookup_table(&mut out, &lookup);
    report::syscall_table(
        &mut out,
        &mut footnotes,
        strace_mode,
        strace_skipped.as_deref(),
        &libs,
    );
    if !footnotes.is_empty() {
        let _ = writeln!(out, "Failures:\n");
        for (n, f) in footnotes.iter().enumerate() {
            let _ = writeln!(out, "[{}] {f}", n + 1);
        }
        out.push('\n');
    }
    print!("{out}");

    // 6. JSON.
    if let Some(path) = &opts.json {
        let text = report::json(opts, host, &libs, &lookup, strace_mode, strace_skipped);
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("loadbench: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
