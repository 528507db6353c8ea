//! # minld-preload
//!
//! minld as a drop-in `<dlfcn.h>`: `LD_PRELOAD=…/libminld_preload.so
//! program` makes every `dlopen` of the program (and of every library in
//! it) load through minld, with minld's trace (`MINLD_TRACE=1`), debug
//! output (`MINLD_DEBUG`), link cache (`MINLD_CACHE`) and policy
//! (`MINLD_POLICY`).
//!
//! It exports `dlopen`, `dlmopen`, `dlsym`, `dlvsym`, `dlclose`,
//! `dlerror`, `dladdr`, `dladdr1`, `dlinfo` and `dl_iterate_phdr`, and
//! `backtrace_symbols` and `backtrace_symbols_fd` (glibc's call its
//! internal `_dl_addr`, which knows only glibc's objects). What goes
//! where:
//! - to glibc's own functions (found in libc.so.6 itself, `real`):
//!   `dlopen(NULL)`; glibc's own libraries (`open::GLIBC_OWN`); opens with
//!   `RTLD_DEEPBIND`; handles glibc made; every call made from this
//!   library itself (minld and Rust's std call `dlsym`, `dl_iterate_phdr`,
//!   `dlopen`, `dlinfo` for their own needs: they must see glibc's answer);
//! - to minld: every other open, with the process's own copy returned when
//!   glibc has the file already (`Loader::reuse_loaded`), searched on
//!   behalf of the caller (its RUNPATH, `$ORIGIN`); lookups in minld's
//!   handles; `RTLD_DEFAULT` after glibc; addresses in minld's objects.
//!
//! No panic crosses the C interface: each entry point runs its body under
//! `catch_unwind` and answers as glibc does on failure (the release
//! profile of this workspace aborts on panic instead, and no path of the
//! code panics on bad input: failures are `dlerror` strings).

#![deny(missing_docs)]
// No function over 100 lines (clippy.toml sets the limit), as in minld.
#![warn(clippy::too_many_lines)]

mod backtrace;
mod entry;
mod error;
mod info;
mod open;
mod real;
mod sym;

/// Runs `f`, turning a panic into `fail` and a `dlerror` message.
fn guard<T>(fail: T, f: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(_) => {
            error::set("minld-preload: internal error (a panic was caught)".into());
            fail
        }
    }
}
