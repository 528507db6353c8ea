//! `dlopen --pages --share N`: N other processes (this example again, as
//! `dlopen --hold minld|glibc LIB`) that load the same library and keep it
//! loaded until told to go, so that this process can read its pages while
//! they share them. A submodule of `dlopen.rs`.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};

/// The loaders a child can load with.
pub const LOADERS: [&str; 2] = ["minld", "glibc"];

/// The child's side: load `lib` with `loader`, say `ready`, and keep it
/// loaded until standard input closes.
pub fn hold(loader: &str, lib: &str) -> ExitCode {
    let loaded = match loader {
        // SAFETY: the library the parent was asked to load, trusted there.
        "minld" => unsafe { minld::Loader::new().open(lib) }
            .map(std::mem::forget)
            .map_err(|e| e.to_string()),
        "glibc" => match std::ffi::CString::new(lib) {
            Ok(c) => {
                // SAFETY: `c` is NUL-terminated and outlives the call; the
                // handle is kept for the process's life.
                let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
                if h.is_null() {
                    Err("glibc's dlopen failed".to_string())
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(e.to_string()),
        },
        other => Err(format!("unknown loader {other} (minld or glibc)")),
    };
    if let Err(e) = loaded {
        eprintln!("dlopen --hold: {e}");
        return ExitCode::FAILURE;
    }
    println!("ready");
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    ExitCode::SUCCESS
}

/// The children, each holding the library; dropping this closes their
/// standard input and waits for them.
pub struct Children {
    /// Each child with the write end of its standard input.
    children: Vec<(Child, Option<ChildStdin>)>,
}

impl Drop for Children {
    fn drop(&mut self) {
        for (c, stdin) in &mut self.children {
            drop(stdin.take());
            let _ = c.wait();
        }
    }
}

/// Starts `n` children loading `lib` with `loader`, and waits until each
/// has it loaded.
pub fn start(loader: &str, lib: &str, n: usize) -> Result<Children, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut all = Children {
        children: Vec::new(),
    };
    for _ in 0..n {
        let mut c = Command::new(&exe)
            .args(["--hold", loader, lib])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", exe.display()))?;
        let stdin = c.stdin.take();
        let out = c.stdout.take();
        all.children.push((c, stdin));
        let mut line = String::new();
        if let Some(out) = out {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        if line.trim() != "ready" {
            return Err(format!(
                "a child loading {lib} with {loader} did not get it loaded"
            ));
        }
    }
    Ok(all)
}
