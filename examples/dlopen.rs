//! `dlopen [--trace] [--maps] [--map-only] [--from-bytes] [--pages [--json]
//! [--svg FILE] [--sections] [--share N]] LIB [SYMBOL[:SIG] [X...]]`
//!
//! Loads LIB with minld. With no SYMBOL it calls the loaded `cos` at a few
//! points beside Rust's own `f64::cos`. With `SYMBOL:SIG` it calls SYMBOL
//! with that C signature and the arguments X (`sqlite3_libversion:str()`,
//! `abs:int(int) -5`, `pow:f64(f64,f64) 2 10`; types void int long uint
//! ulong f64 f32 str ptr); with SYMBOL alone it prints what the symbol
//! table says of it (type, binding, size, version, defining object).
//! `--trace` prints each system call of the load as strace would, with a
//! note on why; `--maps` prints the library's lines of /proc/self/maps;
//! `--map-only` maps the file without linking it (nothing of it runs).
//! `--pages` prints the object's pages, mapping by mapping, right after
//! mapping, after the load (relocation and init) and after the call:
//! present, written, shared, in the page cache, Rss and Pss, as the kernel
//! reports them; `--json` prints them as JSON instead, `--svg FILE` draws
//! them, `--sections` counts them by ELF section too; `--share N` then starts N processes holding the same library
//! (loaded by minld, then by glibc) and reads the pages again.
//! (`--hold minld|glibc LIB` is such a process: it loads LIB, prints
//! `ready` and keeps it loaded until its standard input closes.)
//! `--from-bytes` reads LIB into memory (`std::fs::read`) and loads it
//! with `Loader::open_bytes`: its segments copied into anonymous memory
//! (the trace shows no file mapping of it; `--pages` shows every page
//! present and private). `RUST_LOG=debug` shows minld's log.

#[path = "support/call.rs"]
mod call;
#[path = "support/json.rs"]
mod json;
#[path = "support/pages_view.rs"]
mod pages_view;
#[path = "support/share.rs"]
mod share;

use std::path::PathBuf;
use std::process::ExitCode;

use pages_view::Stage;

/// The usage line.
const USAGE: &str = "usage: dlopen [--trace] [--maps] [--map-only] [--from-bytes] \
[--pages [--json] [--svg FILE] [--sections] [--share N]] LIB [SYMBOL[:SIG] [X...]]";

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}

/// The command line, parsed in this one place.
#[derive(Default)]
struct Args {
    /// `--trace`.
    trace: bool,
    /// `--maps`.
    maps: bool,
    /// `--map-only`.
    map_only: bool,
    /// `--from-bytes`: load a copy of the file's bytes (`open_bytes`).
    from_bytes: bool,
    /// `--pages`.
    pages: bool,
    /// `--json` (with `--pages`).
    json: bool,
    /// `--svg FILE` (with `--pages`).
    svg: Option<PathBuf>,
    /// `--sections` (with `--pages`): the pages by ELF section too.
    sections: bool,
    /// `--share N` (with `--pages`).
    share: usize,
    /// `--hold LOADER LIB`: a child of `--share`.
    hold: Option<(String, String)>,
    /// LIB, then SYMBOL and its arguments.
    rest: Vec<String>,
}

/// The command line, or a message for a wrong one.
fn parse_args(argv: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = argv.into_iter();
    let value = |flag: &str, it: &mut dyn Iterator<Item = String>| {
        it.next().ok_or_else(|| format!("{flag} needs a value"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--trace" => a.trace = true,
            "--maps" => a.maps = true,
            "--map-only" => a.map_only = true,
            "--from-bytes" => a.from_bytes = true,
            "--pages" => a.pages = true,
            "--json" => a.json = true,
            "--sections" => a.sections = true,
            "--svg" => a.svg = Some(value("--svg", &mut it)?.into()),
            "--share" => {
                let n = value("--share", &mut it)?;
                a.share = n.parse().map_err(|e| format!("--share {n}: {e}"))?;
            }
            "--hold" => {
                let loader = value("--hold", &mut it)?;
                a.hold = Some((loader, value("--hold", &mut it)?));
            }
            "-h" | "--help" => return Err(String::new()),
            _ => a.rest.push(arg),
        }
    }
    if (a.json || a.svg.is_some() || a.share > 0 || a.sections) && !a.pages {
        return Err("--json, --svg, --sections and --share go with --pages".into());
    }
    Ok(a)
}

fn print_maps(base: usize, len: usize) {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    println!("/proc/self/maps of the loaded object:");
    for line in maps.lines() {
        let Some((range, _)) = line.split_once(' ') else {
            continue;
        };
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(s), Ok(e)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        if s < base + len && e > base {
            println!("  {line}");
        }
    }
}

/// `--from-bytes`: the path of LIB (a bare name found as a load would
/// find it, by an untraced `map`) and the file's bytes, which are loaded
/// under that path as their name (errors name it, `$ORIGIN` is its
/// directory).
fn file_bytes(name: &str) -> Result<(PathBuf, Vec<u8>), String> {
    let path = if name.contains('/') {
        PathBuf::from(name)
    } else {
        let found = minld::Loader::new().trace(false).map(name);
        found.map_err(|e| e.to_string())?.path().to_path_buf()
    };
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((path, bytes))
}

/// Prints an error and fails.
fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("dlopen: {e}");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    env_logger::init();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("dlopen: {e}");
            }
            return usage();
        }
    };
    if let Some((loader, lib)) = &args.hold {
        return share::hold(loader, lib);
    }
    let lib_name = args
        .rest
        .first()
        .cloned()
        .unwrap_or_else(|| "libm.so".to_string());
    // Loader::new() already honours MINLD_TRACE; --trace turns it on too.
    let loader = if args.trace {
        minld::Loader::new().trace(true)
    } else {
        minld::Loader::new()
    };
    if args.map_only {
        return map_only(&loader, &lib_name, args.maps);
    }
    let bytes = if args.from_bytes {
        match file_bytes(&lib_name) {
            Ok((path, bytes)) => {
                if !args.json {
                    println!("read {} bytes of {}", bytes.len(), path.display());
                }
                Some((loader.clone().name(path), bytes))
            }
            Err(e) => return fail(e),
        }
    } else {
        None
    };
    let mut stages = Vec::new();
    if args.pages {
        let mapped = match &bytes {
            Some((named, b)) => named.map_bytes(b),
            None => loader.map(&lib_name),
        };
        match mapped.and_then(|o| Ok((o.pages()?, o.base()))) {
            Ok((snap, base)) => stages.push(Stage {
                name: "mapped".into(),
                what: if bytes.is_some() {
                    "Loader::map_bytes: each segment copied, nothing relocated (then unmapped)"
                } else {
                    "Loader::map: each segment mmap'd, nothing relocated (then unmapped)"
                }
                .into(),
                snap,
                base,
            }),
            Err(e) => return fail(e),
        }
    }
    let opened = match &bytes {
        // SAFETY: the user asked to load this library and run its code.
        Some((named, b)) => unsafe { named.open_bytes(b) },
        // SAFETY: as above.
        None => unsafe { loader.open(&lib_name) },
    };
    let lib = match opened {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    if !args.json {
        println!("loaded {} at {:#x}", lib.path().display(), lib.base());
    }
    if args.maps {
        let segs = lib.segments();
        if let (Some(first), Some(last)) = (segs.first(), segs.last()) {
            let start = first.addr & !0xfff;
            print_maps(start, last.addr + last.mem_size as usize - start);
        }
    }
    if args.pages {
        match lib.pages() {
            Ok(snap) => stages.push(Stage {
                name: "loaded".into(),
                what: "Loader::open returned: relocated, RELRO protected, init run".into(),
                snap,
                base: lib.base(),
            }),
            Err(e) => return fail(e),
        }
    }
    let called = run_symbol(&lib, &args);
    if called == ExitCode::FAILURE {
        return called;
    }
    if args.pages {
        return pages_report(&lib, &args, stages);
    }
    called
}

/// `--map-only`: map without linking.
fn map_only(loader: &minld::Loader, lib_name: &str, maps: bool) -> ExitCode {
    let obj = match loader.map(lib_name) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    println!(
        "mapped {} at {:#x} (not linked)",
        obj.path().display(),
        obj.base()
    );
    if maps {
        let (start, len) = obj.span();
        print_maps(start, len);
    }
    ExitCode::SUCCESS
}

/// The rest of `--pages`: the `called` stage (when a symbol was called),
/// the `--share` stages, and the output.
fn pages_report(lib: &minld::Library, args: &Args, mut stages: Vec<Stage>) -> ExitCode {
    if let Some(spec) = args.rest.get(1).filter(|s| s.contains(':')) {
        match lib.pages() {
            Ok(snap) => stages.push(Stage {
                name: "called".into(),
                what: format!("after {spec}"),
                snap,
                base: lib.base(),
            }),
            Err(e) => return fail(e),
        }
    }
    if args.share > 0 {
        let lib_path = lib.path().display().to_string();
        for loader in share::LOADERS {
            let children = match share::start(loader, &lib_path, args.share) {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            match lib.pages() {
                Ok(snap) => stages.push(Stage {
                    name: format!("shared-{loader}"),
                    what: format!("{} other processes hold it, loaded by {loader}", args.share),
                    snap,
                    base: lib.base(),
                }),
                Err(e) => return fail(e),
            }
            drop(children);
        }
    }
    let name = lib.path().display().to_string();
    if args.json {
        print!("{}", pages_view::json(&name, &stages));
    } else {
        for s in &stages {
            pages_view::print_text(s);
            if args.sections {
                if let Err(e) = pages_view::print_sections(s) {
                    return fail(e);
                }
            }
        }
    }
    if let Some(file) = &args.svg {
        if let Err(e) = std::fs::write(file, pages_view::svg(&name, &stages)) {
            return fail(format_args!("{}: {e}", file.display()));
        }
    }
    ExitCode::SUCCESS
}

/// With no SYMBOL, the loaded `cos` beside Rust's; with `SYMBOL:SIG`, the
/// call; with SYMBOL alone, what its symbol table entry says.
/// With `--json` every other line goes to stderr.
fn run_symbol(lib: &minld::Library, args: &Args) -> ExitCode {
    let rest = &args.rest;
    let say = |line: String| {
        if args.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    let Some(spec) = rest.get(1) else {
        return if args.pages {
            ExitCode::SUCCESS
        } else {
            cos_table(lib)
        };
    };
    let (name, sig) = match call::parse(spec) {
        Ok(p) => p,
        Err(e) => return fail(format_args!("cannot call {spec}: {e}")),
    };
    // SAFETY: only the address is taken; nothing is called through it yet.
    let Some(addr) = (unsafe { lib.find::<usize>(&name) }).map(|s| *s) else {
        return fail(format_args!(
            "{name}: not defined in {} or its dependencies",
            lib.path().display()
        ));
    };
    let info = match call::describe(&name, addr) {
        Ok(i) => i,
        Err(e) => return fail(e),
    };
    let Some(sig) = sig else {
        say(format!(
            "{name}: {} {}, size {}, version {}, defined in {}, at {:#x}",
            info.binding,
            info.kind,
            info.size,
            info.version.as_deref().unwrap_or("(none)"),
            info.object,
            info.addr
        ));
        match call::refusal(&info) {
            None => say(format!(
                "  to call it, give its C signature, e.g. {name}:f64(f64) or {name}:int(int,str)"
            )),
            Some(why) => say(format!("  it cannot be called: {why}")),
        }
        return ExitCode::SUCCESS;
    };
    if let Some(why) = call::refusal(&info) {
        return fail(format_args!("cannot call {name}: {why}"));
    }
    // SAFETY: the user states the function's signature.
    match unsafe { call::invoke(addr, &sig, &rest[2..]) } {
        Ok(v) => {
            say(format!("{name}({}) = {v}", rest[2..].join(", ")));
            ExitCode::SUCCESS
        }
        Err(e) => fail(format_args!("cannot call {name}: {e}")),
    }
}

/// The loaded `cos` beside `f64::cos`.
fn cos_table(lib: &minld::Library) -> ExitCode {
    // SAFETY: libm's cos is `double cos(double)`.
    let cos = match unsafe { lib.get::<extern "C" fn(f64) -> f64>("cos") } {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    println!("{:>8}  {:>22}  {:>22}", "x", "cos (loaded)", "f64::cos");
    for x in [
        0.0,
        0.5,
        1.0,
        std::f64::consts::FRAC_PI_3,
        2.0,
        std::f64::consts::PI,
        10.0,
    ] {
        println!("{x:>8.4}  {:>22.17}  {:>22.17}", cos(x), x.cos());
    }
    ExitCode::SUCCESS
}
