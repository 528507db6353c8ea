//! Helpers for the sandbox tests: the test plugins, a re-executed "inner"
//! host process, and watching a runner process from the outside.
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
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

impl Inner {
    /// Starts `test` of this binary as an inner host in `mode` under
    /// [`no_landlock_filter`]: where Landlock fails with `errno`.
    pub fn without_landlock(test: &str, mode: &str, errno: i32) -> Inner {
        let prog = no_landlock_filter(errno);
        Inner::start(test, mode, move |cmd| {
            // SAFETY: between fork and exec only prctl and seccomp, both
            // async-signal-safe; `prog` was built before the fork and the
            // kernel copies it.
            unsafe {
                cmd.pre_exec(move || {
                    let fprog = libc::sock_fprog {
                        len: prog.len() as u16,
                        filter: prog.as_ptr() as *mut libc::sock_filter,
                    };
                    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                        || libc::syscall(
                            libc::SYS_seccomp,
                            libc::SECCOMP_SET_MODE_FILTER,
                            0,
                            &fprog as *const libc::sock_fprog,
                        ) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        })
    }

    /// The text after the first `tag` the inner host prints (waiting at
    /// most 30 s), once it has ended; panics with its status and stderr
    /// when it printed none.
    pub fn report(self, tag: &str) -> String {
        let outcome = self.line(tag, Duration::from_secs(30));
        let (status, stderr) = self.finish(Duration::from_secs(30));
        outcome.unwrap_or_else(|| panic!("no report ({status}): {stderr}"))
    }
}

/// A seccomp filter for an inner host: landlock_create_ruleset fails with
/// `errno` (ENOSYS: a kernel without Landlock; EPERM: what a container's
/// seccomp profile answers), everything else is allowed. (x86-64 numbers
/// only; an inner host makes no other-ABI calls.)
fn no_landlock_filter(errno: i32) -> Vec<libc::sock_filter> {
    let op = |code: u32, k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    vec![
        op(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, 0), // nr
        op(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            libc::SYS_landlock_create_ruleset as u32,
            0,
            1,
        ),
        op(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | errno as u32,
            0,
            0,
        ),
        op(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW, 0, 0),
    ]
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
