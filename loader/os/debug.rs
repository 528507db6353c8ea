//! `MINLD_DEBUG`: what glibc's `LD_DEBUG` prints, for minld's loads.
//!
//! `MINLD_DEBUG=libs,bindings,reloc,versions,statistics` (or `all`) prints,
//! to stderr and prefixed with the process id as ld.so does, the search
//! paths tried, each symbol binding with its version and the object it bound
//! to, relocation progress per object, and counts and times.

use std::io::Write as _;
use std::sync::OnceLock;

/// One `MINLD_DEBUG` category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Category {
    Libs = 1,
    Bindings = 2,
    Reloc = 4,
    Versions = 8,
    Statistics = 16,
}

fn mask() -> u32 {
    static MASK: OnceLock<u32> = OnceLock::new();
    *MASK.get_or_init(|| {
        let Ok(v) = std::env::var("MINLD_DEBUG") else {
            return 0;
        };
        v.split([',', ' ', ':'])
            .map(|w| match w {
                "libs" => Category::Libs as u32,
                "bindings" => Category::Bindings as u32,
                "reloc" => Category::Reloc as u32,
                "versions" => Category::Versions as u32,
                "statistics" => Category::Statistics as u32,
                "all" => 31,
                _ => 0,
            })
            .fold(0, |a, b| a | b)
    })
}

/// Whether a category is on.
#[inline]
pub(crate) fn enabled(c: Category) -> bool {
    mask() & c as u32 != 0
}

/// Prints one line, ld.so style: `  PID:\tmessage`.
pub(crate) fn print(args: std::fmt::Arguments<'_>) {
    let line = format!("{:>10}:\t{}\n", std::process::id(), args);
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Prints a line built by `f` when the category is on.
pub(crate) fn print_if(c: Category, f: impl FnOnce() -> String) {
    if enabled(c) {
        print(format_args!("{}", f()));
    }
}
