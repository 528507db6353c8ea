//! A plugin host: the plugins of test-libs, each as the README's levels
//! describe. `cargo run --example plugin_host`
//!
//! 1. a plugin that behaves, in a namespace that exports `host_log` to it;
//! 2. a plugin that imports what its namespace forbids: refused, every
//!    import named;
//! 3. a plugin that crashes, in a sandbox: the host survives and says so,
//!    then restarts it;
//! 4. a plugin that opens /etc/passwd, in a sandbox: killed, the path
//!    named;
//! 5. a plugin that loops forever, in a sandbox: killed at the time limit;
//! 6. a plugin that runs a pool of four threads, in a sandbox;
//! 7. a plugin that prints, in a sandbox: the host gets what it printed;
//! 8. a plugin whose constructor reads a file, in a sandbox: with the
//!    file's directory granted read-only, then without the grant (killed
//!    in its constructor, the path named).

use std::ffi::{c_char, c_int, CStr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use minld::sandbox::{Output, Sandbox, SandboxError};
use minld::{Namespace, Policy};

/// The directory `libreal.so`'s constructor reads `config.txt` from.
const GRANT_DIR: &str = "/tmp/minld-sandbox-grant";

/// Exported to the plugins of the namespace: prints their message.
extern "C" fn host_log(msg: *const c_char) {
    // SAFETY: the plugins of this example pass NUL-terminated strings.
    let msg = unsafe { CStr::from_ptr(msg) };
    println!("   host_log: {}", msg.to_string_lossy());
}

/// The test libraries built by build.rs.
fn libs() -> PathBuf {
    PathBuf::from(env!("MINLD_TEST_LIBS"))
}

/// A plugin of test-libs/sandbox, by file name.
fn sandboxed(name: &str) -> String {
    libs().join("sandbox").join(name).display().to_string()
}

/// `msg` with the (long) build directory of the test libraries shortened.
fn short(msg: impl std::fmt::Display) -> String {
    msg.to_string()
        .replace(&libs().display().to_string(), "$MINLD_TEST_LIBS")
}

/// Open flags as the C names of the access mode and the usual extras.
fn open_flags(flags: i32) -> String {
    let mut names = vec![match flags & libc::O_ACCMODE {
        libc::O_RDONLY => "O_RDONLY",
        libc::O_WRONLY => "O_WRONLY",
        _ => "O_RDWR",
    }];
    for (bit, name) in [
        (libc::O_CREAT, "O_CREAT"),
        (libc::O_TRUNC, "O_TRUNC"),
        (libc::O_APPEND, "O_APPEND"),
        (libc::O_CLOEXEC, "O_CLOEXEC"),
        (libc::O_DIRECTORY, "O_DIRECTORY"),
    ] {
        if flags & bit != 0 {
            names.push(name);
        }
    }
    names.join("|")
}

/// How a sandbox error reads in this host's report: a forbidden open with
/// its path and flags spelled out, anything else as the error says.
fn describe(e: &SandboxError) -> String {
    match e {
        SandboxError::ForbiddenOpen { path, flags } => format!(
            "it opened {} ({}), which no grant covers: the host killed it",
            path.display(),
            open_flags(*flags)
        ),
        e => short(e),
    }
}

/// Takes what the plugin printed: the watcher thread drains its pipes as
/// the bytes come, so wait (up to a second) for both streams to end a line.
fn collect_output(sb: &mut Sandbox) -> Output {
    let mut out = Output::default();
    for _ in 0..100 {
        let o = sb.take_output();
        out.stdout.extend(o.stdout);
        out.stderr.extend(o.stderr);
        out.dropped += o.dropped;
        if out.stdout.ends_with(b"\n") && out.stderr.ends_with(b"\n") {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    out
}

/// Prints each line of a stream of the plugin's, marked as the plugin's.
fn show_stream(name: &str, bytes: &[u8]) {
    if bytes.is_empty() {
        println!("   [plugin {name}] (nothing)");
    }
    for line in String::from_utf8_lossy(bytes).lines() {
        println!("   [plugin {name}] {}", line.escape_debug());
    }
}

/// The runner's pid, for the report.
fn pid(sb: &Sandbox) -> String {
    sb.pid().map_or("none".into(), |p| p.to_string())
}

/// Writes the file `libreal.so`'s constructor reads; returns its directory.
fn make_config(text: &str) -> std::io::Result<&'static Path> {
    let dir = Path::new(GRANT_DIR);
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("config.txt"), text)?;
    Ok(dir)
}

/// A sandbox for `libreal.so` with the given functions.
fn real(funcs: &[&str]) -> minld::sandbox::Builder {
    funcs
        .iter()
        .fold(Sandbox::builder(sandboxed("libreal.so")), |b, f| {
            b.function(f)
        })
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
    println!("(test libraries: $MINLD_TEST_LIBS = {})", libs().display());

    println!("\n1. libplugin_good.so in a namespace:");
    // SAFETY: a plugin of ours; its constructors run in this process.
    match unsafe { ns.open("libplugin_good.so") } {
        Ok(p) => {
            // SAFETY: int plugin_run(int).
            let run = unsafe {
                *p.get::<extern "C" fn(c_int) -> c_int>("plugin_run")
                    .unwrap()
            };
            println!("   plugin_run(21) = {}", run(21));
        }
        Err(e) => println!("   refused: {}", short(e)),
    }

    println!("\n2. libplugin_forbidden.so in the same namespace:");
    // SAFETY: refused before any of its code runs.
    match unsafe { ns.open("libplugin_forbidden.so") } {
        Ok(_) => println!("   loaded (it should not have been)"),
        Err(e) => println!("   refused: {}", short(e)),
    }

    println!("\n3. libsegv.so in a sandbox:");
    match Sandbox::builder(sandboxed("libsegv.so"))
        .function("run")
        .spawn()
    {
        Ok(mut sb) => {
            println!("   started (runner pid {})", pid(&sb));
            match sb.call("run", b"") {
                Ok(v) => println!("   returned {v:?} (it should have crashed)"),
                Err(e) => println!("   the call failed: {}; the host goes on", describe(&e)),
            }
            match sb.restart() {
                Ok(()) => println!("   restarted (runner pid {})", pid(&sb)),
                Err(e) => println!("   restart failed: {}", describe(&e)),
            }
        }
        Err(e) => println!("   could not start: {}", describe(&e)),
    }

    println!("\n4. libpasswd.so in a sandbox (no path granted):");
    match Sandbox::builder(sandboxed("libpasswd.so"))
        .function("run")
        .spawn()
    {
        Ok(mut sb) => match sb.call("run", b"") {
            Ok(v) => println!("   read {} bytes (it should not have)", v.len()),
            Err(e @ SandboxError::ForbiddenOpen { .. }) => {
                println!("   refused: {}", describe(&e))
            }
            Err(e) => println!("   failed otherwise: {}", describe(&e)),
        },
        Err(e) => println!("   could not start: {}", describe(&e)),
    }

    println!("\n5. libloop.so in a sandbox, 500 ms limit:");
    match Sandbox::builder(sandboxed("libloop.so"))
        .function("run")
        .timeout(Duration::from_millis(500))
        .spawn()
    {
        Ok(mut sb) => {
            let t = Instant::now();
            match sb.call("run", b"") {
                Ok(_) => println!("   returned (it should not have)"),
                Err(e) => println!(
                    "   stopped after {} ms: {}",
                    t.elapsed().as_millis(),
                    describe(&e)
                ),
            }
        }
        Err(e) => println!("   could not start: {}", describe(&e)),
    }

    // libreal.so's constructor reads the config file: every scene with
    // it grants the directory, and scene 8 shows what happens without.
    let grant = match make_config("answer=42\n") {
        Ok(dir) => dir,
        Err(e) => {
            println!("\ncannot write {GRANT_DIR}/config.txt ({e}): scenes 6-8 skipped");
            return;
        }
    };

    println!("\n6. libreal.so's pool in a sandbox: four threads sum 1..=1000000");
    match real(&["pool"]).read_only(grant).spawn() {
        Ok(mut sb) => match sb.call("pool", b"") {
            Ok(v) => {
                let text = String::from_utf8_lossy(&v);
                match text.split_once(' ') {
                    Some((sum, threads)) => {
                        println!("   sum {sum}, computed by {threads} threads of the plugin")
                    }
                    None => println!("   answered {text:?}"),
                }
            }
            Err(e) => println!("   failed: {}", describe(&e)),
        },
        Err(e) => println!("   could not start: {}", describe(&e)),
    }

    println!("\n7. libreal.so's print in a sandbox: its stdout and stderr are the host's pipes");
    match real(&["print"]).read_only(grant).spawn() {
        Ok(mut sb) => match sb.call("print", b"hello from the plugin") {
            Ok(_) => {
                let out = collect_output(&mut sb);
                println!("   take_output() returned:");
                show_stream("stdout", &out.stdout);
                show_stream("stderr", &out.stderr);
                if out.dropped > 0 {
                    println!("   ({} bytes past the cap were dropped)", out.dropped);
                }
            }
            Err(e) => println!("   failed: {}", describe(&e)),
        },
        Err(e) => println!("   could not start: {}", describe(&e)),
    }

    println!("\n8. libreal.so, whose constructor reads {GRANT_DIR}/config.txt:");
    println!("   a) with {GRANT_DIR} granted read-only:");
    match real(&["config_text"]).read_only(grant).spawn() {
        Ok(mut sb) => match sb.call("config_text", b"") {
            Ok(v) => println!(
                "      config_text() = {:?} (what the constructor read)",
                String::from_utf8_lossy(&v)
            ),
            Err(e) => println!("      failed: {}", describe(&e)),
        },
        Err(e) => println!("      could not start: {}", describe(&e)),
    }
    println!("   b) without the grant:");
    match real(&["config_text"]).spawn() {
        Ok(mut sb) => match sb.call("config_text", b"") {
            Ok(v) => println!(
                "      started, and read {:?} (it should not have)",
                String::from_utf8_lossy(&v)
            ),
            Err(e) => println!("      failed: {}", describe(&e)),
        },
        Err(e) => println!("      refused at its start: {}", describe(&e)),
    }
}
