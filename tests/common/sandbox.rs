//! Helpers for the sandbox tests: the test plugins, a re-executed "inner"
//! host process, and watching a runner process from the outside.
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// A plugin of test-libs/sandbox/ by stem: `plugin("echo")` is libecho.so.
pub fn plugin(name: &str) -> String {
    format!("{}/sandbox/lib{name}.so", env!("MINLD_TEST_LIBS"))
}

/// The environment variable that makes a re-executed test binary an inner
/// host: its value names what the inner host does.
pub const INNER_ENV: &str = "MINLD_TEST_INNER_HOST";

/// An inner host: this test binary re-executed to run only the test named
/// `test` (which does nothing unless [`INNER_ENV`] is set), with stdout
/// read line by line and stderr collected.
pub struct Inner {
    pub child: Child,
    lines: Receiver<String>,
    /// What it wrote to stderr, when the pipe closes (a runner that
    /// inherited it may keep it open).
    stderr: Option<Receiver<String>>,
}

impl Inner {
    /// Starts `test` of this binary as an inner host in `mode`; `setup`
    /// adjusts the command first (stderr, pre_exec...). Stderr is
    /// collected unless `setup` redirects it.
    pub fn start(test: &str, mode: &str, setup: impl FnOnce(&mut Command)) -> Inner {
        let mut cmd = super::process::rerun(test);
        cmd.env(INNER_ENV, mode)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        setup(&mut cmd);
        let mut child = cmd.spawn().expect("re-executing the test binary");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = child.stderr.take().map(|mut e| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = e.read_to_string(&mut s);
                let _ = tx.send(s);
            });
            rx
        });
        Inner {
            child,
            lines,
            stderr,
        }
    }

    /// The text after the first `tag` the inner host prints on stdout
    /// (libtest may print other text on the same line), waiting at most
    /// `within`.
    pub fn line(&self, tag: &str, within: Duration) -> Option<String> {
        let end = Instant::now() + within;
        loop {
            let left = end.checked_duration_since(Instant::now())?;
            let line = self.lines.recv_timeout(left).ok()?;
            if let Some(i) = line.find(tag) {
                return Some(line[i + tag.len()..].trim().to_string());
            }
        }
    }

    /// Waits at most `within` for the inner host to end (SIGKILL after
    /// that); its status and what it wrote to stderr (waited for at most
    /// a second more).
    pub fn finish(mut self, within: Duration) -> (ExitStatus, String) {
        let end = Instant::now() + within;
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() >= end {
                let _ = self.child.kill();
                break self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = self
            .stderr
            .take()
            .and_then(|rx| rx.recv_timeout(Duration::from_secs(1)).ok())
            .unwrap_or_default();
        (status, stderr)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The state letter of process `pid` (R, S, Z...), None if there is none.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ...": comm may hold spaces and parentheses.
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// The CPU time process `pid` has used, every thread's (utime + stime of
/// `/proc/<pid>/stat`, in clock ticks of 10 ms); None once it is gone.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After "pid (comm) ": state is the first field, utime the 12th.
    let f: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf reads a constant; no memory involved.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

/// Waits at most `within` for process `pid` to be gone (no such process,
/// or a zombie nobody reaps yet); true if it went.
pub fn gone_within(pid: u32, within: Duration) -> bool {
    let end = Instant::now() + within;
    loop {
        if matches!(proc_state(pid), None | Some('Z') | Some('X')) {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills a runner on drop if it is still running: a test that proves a
/// runner outlives its host must not leave it behind. Only a process
/// named minld-sandbox (the runner's name) is killed, by its pid.
pub struct RunnerGuard(pub u32);

impl Drop for RunnerGuard {
    fn drop(&mut self) {
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", self.0)).unwrap_or_default();
        if comm.trim() == "minld-sandbox" && !gone_within(self.0, Duration::ZERO) {
            // SAFETY: a signal to one process by id; no memory involved.
            unsafe { libc::kill(self.0 as i32, libc::SIGKILL) };
        }
    }
}
