//! `dlopen [--trace] [--maps] [--map-only] [--from-bytes] LIB [SYMBOL [X...]]`
//!
//! Loads LIB with minld. With no SYMBOL it calls the loaded `cos` at a few
//! points beside Rust's own `f64::cos`; with SYMBOL and up to three numbers
//! it calls `SYMBOL(X...)` as an `extern "C" fn(f64, ...) -> f64`.
//! `--trace` prints each system call of the load as strace would, with a
//! note on why; `--maps` prints the library's lines of /proc/self/maps;
//! `--map-only` maps the file without linking it (nothing of it runs).
//! `--from-bytes` reads LIB into memory (`std::fs::read`) and loads it
//! with `Loader::open_bytes`: its segments copied into anonymous memory
//! (the trace shows no file mapping of it). `RUST_LOG=debug` shows minld's
//! log.

use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: dlopen [--trace] [--maps] [--map-only] [--from-bytes] LIB [SYMBOL [X...]]");
    ExitCode::from(2)
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

/// `--from-bytes`: the file's bytes (a bare name found as a load would
/// find it, by an untraced `map`), loaded with `open_bytes` under the
/// file's path as its name (errors name it, `$ORIGIN` is its directory).
fn open_from_bytes(loader: &minld::Loader, name: &str) -> Result<minld::Library, String> {
    let path = if name.contains('/') {
        std::path::PathBuf::from(name)
    } else {
        let found = minld::Loader::new().trace(false).map(name);
        found.map_err(|e| e.to_string())?.path().to_path_buf()
    };
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("read {} bytes of {}", bytes.len(), path.display());
    // SAFETY: the user asked to load this library and run its code.
    unsafe { loader.clone().name(&path).open_bytes(&bytes) }.map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    env_logger::init();
    let mut trace = false;
    let mut maps = false;
    let mut map_only = false;
    let mut from_bytes = false;
    let mut rest = Vec::new();
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--trace" => trace = true,
            "--maps" => maps = true,
            "--map-only" => map_only = true,
            "--from-bytes" => from_bytes = true,
            "-h" | "--help" => return usage(),
            _ => rest.push(a),
        }
    }
    let lib_name = rest
        .first()
        .cloned()
        .unwrap_or_else(|| "libm.so".to_string());
    // Loader::new() already honours MINLD_TRACE; --trace turns it on too.
    let loader = if trace {
        minld::Loader::new().trace(true)
    } else {
        minld::Loader::new()
    };

    if map_only {
        let obj = match loader.map(&lib_name) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("dlopen: {e}");
                return ExitCode::FAILURE;
            }
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
        return ExitCode::SUCCESS;
    }

    let opened = if from_bytes {
        open_from_bytes(&loader, &lib_name)
    } else {
        // SAFETY: the user asked to load this library and run its code.
        unsafe { loader.open(&lib_name) }.map_err(|e| e.to_string())
    };
    let lib = match opened {
        Ok(l) => l,
        Err(e) => {
            eprintln!("dlopen: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("loaded {} at {:#x}", lib.path().display(), lib.base());
    if maps {
        let segs = lib.segments();
        if let (Some(first), Some(last)) = (segs.first(), segs.last()) {
            let start = first.addr & !0xfff;
            print_maps(start, last.addr + last.mem_size as usize - start);
        }
    }

    let symbol = rest.get(1).cloned();
    let args: Vec<f64> = match rest.iter().skip(2).map(|s| s.parse::<f64>()).collect() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("dlopen: bad number: {e}");
            return usage();
        }
    };
    match symbol {
        None => {
            // SAFETY: libm's cos is `double cos(double)`.
            let cos = match unsafe { lib.get::<extern "C" fn(f64) -> f64>("cos") } {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("dlopen: {e}");
                    return ExitCode::FAILURE;
                }
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
        }
        Some(name) => {
            // SAFETY: the user states SYMBOL takes that many doubles and
            // returns a double.
            let result = unsafe {
                match args.len() {
                    0 => lib.get::<extern "C" fn() -> f64>(&name).map(|f| f()),
                    1 => lib
                        .get::<extern "C" fn(f64) -> f64>(&name)
                        .map(|f| f(args[0])),
                    2 => lib
                        .get::<extern "C" fn(f64, f64) -> f64>(&name)
                        .map(|f| f(args[0], args[1])),
                    3 => lib
                        .get::<extern "C" fn(f64, f64, f64) -> f64>(&name)
                        .map(|f| f(args[0], args[1], args[2])),
                    _ => return usage(),
                }
            };
            match result {
                Ok(v) => println!("{name}({}) = {v}", rest[2..].join(", ")),
                Err(e) => {
                    eprintln!("dlopen: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    ExitCode::SUCCESS
}
