//! A plugin host: the five plugins of test-libs, each as the README's
//! levels describe. `cargo run --example plugin_host`
//!
//! 1. a plugin that behaves, in a namespace that exports `host_log` to it;
//! 2. a plugin that imports what its namespace forbids: refused, every
//!    import named;
//! 3. a plugin that crashes, in a sandbox: the host survives and says so,
//!    then restarts it;
//! 4. a plugin that opens /etc/passwd, in a sandbox: refused, the system
//!    call named;
//! 5. a plugin that loops forever, in a sandbox: killed at the time limit.

use std::ffi::{c_char, c_int, CStr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use minld::sandbox::Sandbox;
use minld::{Namespace, Policy};

extern "C" fn host_log(msg: *const c_char) {
    // SAFETY: plugins pass NUL-terminated strings.
    println!(
        "  host_log: {}",
        unsafe { CStr::from_ptr(msg) }.to_string_lossy()
    );
}

fn libs() -> PathBuf {
    PathBuf::from(env!("MINLD_TEST_LIBS"))
}

fn sandboxed(name: &str) -> String {
    libs().join("sandbox").join(name).display().to_string()
}

fn main() {
    let plugins: PathBuf = libs().join("plugins");
    let ns = Namespace::builder()
        .permit_dir(&plugins)
        .allow_import("malloc")
        .allow_import("free")
        .allow_import("snprintf")
        .export(
            "host_log",
            host_log as extern "C" fn(*const c_char) as usize,
        )
        .policy(Policy::strict().permit_dir(&plugins))
        .abi_version("plugin_abi_version", 1)
        .build();

    println!("1. libplugin_good.so in a namespace:");
    // SAFETY: a plugin of ours; its constructors run in this process.
    match unsafe { ns.open("libplugin_good.so") } {
        Ok(p) => {
            // SAFETY: int plugin_run(int).
            let run = unsafe {
                *p.get::<extern "C" fn(c_int) -> c_int>("plugin_run")
                    .unwrap()
            };
            println!("  plugin_run(21) = {}", run(21));
        }
        Err(e) => println!("  refused: {e}"),
    }

    println!("2. libplugin_forbidden.so in the same namespace:");
    // SAFETY: refused before any of its code runs.
    match unsafe { ns.open("libplugin_forbidden.so") } {
        Ok(_) => println!("  loaded (it should not have been)"),
        Err(e) => println!("  refused: {e}"),
    }

    println!("3. libsegv.so in a sandbox:");
    match Sandbox::builder(sandboxed("libsegv.so"))
        .function("run")
        .spawn()
    {
        Ok(mut sb) => {
            match sb.call("run", b"") {
                Ok(v) => println!("  returned {v:?}"),
                Err(e) => println!("  the plugin failed: {e}; the host goes on"),
            }
            match sb.restart() {
                Ok(()) => println!("  restarted (runner pid {:?})", sb.pid()),
                Err(e) => println!("  restart failed: {e}"),
            }
        }
        Err(e) => println!("  could not start: {e}"),
    }

    println!("4. libpasswd.so in a sandbox:");
    match Sandbox::builder(sandboxed("libpasswd.so"))
        .function("run")
        .spawn()
    {
        Ok(mut sb) => match sb.call("run", b"") {
            Ok(v) => println!("  read {} bytes (it should not have)", v.len()),
            Err(e) => println!("  refused: {e}"),
        },
        Err(e) => println!("  could not start: {e}"),
    }

    println!("5. libloop.so in a sandbox, 500 ms limit:");
    match Sandbox::builder(sandboxed("libloop.so"))
        .function("run")
        .timeout(Duration::from_millis(500))
        .spawn()
    {
        Ok(mut sb) => {
            let t = Instant::now();
            match sb.call("run", b"") {
                Ok(_) => println!("  returned (it should not have)"),
                Err(e) => println!("  stopped after {:?}: {e}", t.elapsed()),
            }
        }
        Err(e) => println!("  could not start: {e}"),
    }
}
