//! Starting a runner: the shared region, the pipes, the exec (from the
//! watcher thread), then the host's checks of the lock-down before any
//! plugin code may run: the control pipe's record (sent before any), the
//! kernel's view in `/proc/<pid>/status`, and taking the seccomp listener.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::config;
use super::control;
use super::landlock::{self, Access};
use super::shm::{self, Region, FD_CONTROL, FD_GRANTED, FD_REGION};
use super::watch::{self, Ended, Kill, Limits, Pipes, Shared};
use super::{Builder, SandboxError, ENV};

/// A runner that started, as the sandbox holds it.
pub(super) struct Running {
    /// The runner's pid.
    pub(super) pid: i32,
    /// A pidfd of it (signals reach it, never a reused pid).
    pidfd: OwnedFd,
    /// The shared region.
    pub(super) region: Arc<Region>,
    /// What the sandbox and the watcher share.
    pub(super) shared: Arc<Shared>,
    /// The watcher thread, until joined.
    watcher: Option<std::thread::JoinHandle<()>>,
    /// The Landlock ABI the runner reported (0: none).
    pub(super) landlock_abi: u32,
    /// (offset, length) of each shared buffer.
    pub(super) shared_buffers: Vec<(usize, usize)>,
    /// When the start began.
    pub(super) started: Instant,
}

impl Running {
    /// Ends the runner: lets it end by itself for up to `grace`, then
    /// kills it; joins the watcher (which reaps it). Returns why the host
    /// killed it, if it did, and how it ended.
    pub(super) fn finish(mut self, grace: Duration) -> (Option<Kill>, Option<Ended>) {
        let end = Instant::now() + grace;
        while self.shared.observed().ended.is_none() && Instant::now() < end {
            std::thread::sleep(Duration::from_micros(200));
        }
        self.kill_and_join();
        let mut o = self.shared.observed();
        (o.killed.take(), o.ended)
    }

    /// Kills the runner and waits for the watcher, which reaps it.
    fn kill_and_join(&mut self) {
        if let Some(w) = self.watcher.take() {
            // SAFETY: a signal through our pidfd to our child (harmless if
            // it is already dead: the pidfd still names it, not a reuse).
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    self.pidfd.as_raw_fd(),
                    libc::SIGKILL,
                    0,
                    0,
                )
            };
            let _ = w.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill_and_join();
    }
}

/// A pipe, both ends close-on-exec.
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 into a local array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: two fresh descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A sealed memfd of `size` bytes (it can neither grow nor shrink).
fn make_memfd(size: usize) -> std::io::Result<OwnedFd> {
    // SAFETY: plain system calls on a descriptor we own.
    unsafe {
        let fd = libc::memfd_create(
            c"minld-sandbox".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        );
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(fd);
        if libc::ftruncate(fd.as_raw_fd(), size as libc::off_t) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // The runner must not shrink the file under the host's mapping
        // (the host would take SIGBUS on its next access).
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        if libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(fd)
    }
}

/// A [`SandboxError::BadOption`].
fn bad(option: &'static str, value: usize, why: &'static str) -> SandboxError {
    SandboxError::BadOption {
        option,
        value: value as u128,
        why,
    }
}

/// What one runner is given: its shared region (written with the
/// configuration), its pipes, and the host's side of its watching.
pub(super) struct Parts {
    /// The region's memfd (the runner's descriptor 3).
    pub(super) memfd: OwnedFd,
    /// The region, mapped in the host.
    pub(super) region: Arc<Region>,
    /// The stdout pipe (read end, write end).
    pub(super) stdout: (OwnedFd, OwnedFd),
    /// The stderr pipe (read end, write end).
    pub(super) stderr: (OwnedFd, OwnedFd),
    /// The control pipe (read end, write end).
    pub(super) control: (OwnedFd, OwnedFd),
    /// What the sandbox and the watcher share.
    pub(super) shared: Arc<Shared>,
    /// What the watcher enforces.
    pub(super) limits: Limits,
    /// (offset, length) of each shared buffer.
    pub(super) shared_buffers: Vec<(usize, usize)>,
    /// When the start began (the start timeout counts from here).
    pub(super) started: Instant,
}

/// Checks the options and makes a runner's region and pipes.
pub(super) fn parts(o: &Builder, zygote: bool) -> Result<Parts, SandboxError> {
    let started = Instant::now();
    let layout = shm::layout(o.req_cap, o.resp_cap, &o.shared).ok_or_else(|| {
        bad(
            "buffers",
            o.req_cap.saturating_add(o.resp_cap),
            "the shared region's size overflows",
        )
    })?;
    if landlock::abi() == 0 && !o.allow_no_landlock {
        return Err(SandboxError::LandlockUnavailable);
    }
    // Grants as real paths: the rule and the host's check see the same.
    let mut grants = Vec::new();
    for (p, a) in &o.grants {
        let real = std::fs::canonicalize(p).map_err(|e| {
            SandboxError::Spawn(std::io::Error::new(
                e.kind(),
                format!("granted path {}: {e}", p.display()),
            ))
        })?;
        grants.push((real, *a));
    }
    let cfg = {
        let mut b = o.clone();
        b.grants = grants.clone();
        super::Config::for_builder(&b)
    };
    if cfg.len() > o.req_cap {
        return Err(SandboxError::InputTooLarge {
            len: cfg.len(),
            cap: o.req_cap,
        });
    }

    let memfd = make_memfd(layout.size).map_err(SandboxError::Spawn)?;
    let mut region = Region::map(memfd.as_raw_fd(), layout.size).map_err(SandboxError::Spawn)?;
    // SAFETY: cfg fits the request buffer (checked above).
    unsafe { std::ptr::copy_nonoverlapping(cfg.as_ptr(), region.req(), cfg.len()) };
    let writes = grants.iter().any(|(_, a)| *a == Access::ReadWrite);
    let h = region.header_mut();
    h.magic = shm::MAGIC;
    h.req_cap = o.req_cap as u64;
    h.resp_cap = o.resp_cap as u64;
    h.mem_limit = o.mem_limit;
    h.cpu_limit = o.cpu_limit;
    h.fsize_limit = match o.fsize_limit {
        u64::MAX if writes => 1 << 30,
        u64::MAX => 0,
        n => n,
    };
    h.spin_ns = o.runner_spin.as_nanos().min(u32::MAX as u128) as u32;
    h.nfuncs = o.names.len() as u32;
    h.ngrants = grants.len() as u32;
    h.nfds = o.fds.len() as u32;
    h.shared_off = layout.shared_off as u64;
    h.shared_len = (layout.size - layout.shared_off) as u64;
    h.allow_no_landlock = u32::from(o.allow_no_landlock);
    h.zygote = u32::from(zygote);
    h.buffer.store(u32::MAX, Ordering::Relaxed);
    h.req_len.store(cfg.len() as u64, Ordering::Relaxed);
    h.state.store(shm::BOOT, Ordering::Release);
    let region = Arc::new(region);
    let mut shared_buffers = Vec::new();
    let mut off = layout.shared_off;
    for &len in &o.shared {
        shared_buffers.push((off, len));
        off += len.next_multiple_of(4096);
    }
    let stdout = pipe().map_err(SandboxError::Spawn)?;
    let stderr = pipe().map_err(SandboxError::Spawn)?;
    let control = pipe().map_err(SandboxError::Spawn)?;
    for fd in [&stdout.0, &stderr.0] {
        // SAFETY: setting O_NONBLOCK on our own descriptor.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    }
    let limits = Limits {
        call_cpu: o.call_cpu.unwrap_or(o.timeout),
        // A zygote's CPU is its forks' (it runs no plugin code).
        idle_cpu_per_sec: if zygote { Duration::MAX } else { o.idle_cpu },
        output_per_call: o.output_per_call,
        output_per_sec: o.output_per_sec,
        grants,
        max_threads: o.max_threads,
        system_files: o.system_files,
        refuse_paths: o.refuse_paths,
    };
    let shared = Arc::new(Shared::new(region.clone(), &limits).map_err(SandboxError::Spawn)?);
    Ok(Parts {
        memfd,
        region,
        stdout,
        stderr,
        control,
        shared,
        limits,
        shared_buffers,
        started,
    })
}

/// Starts a runner for `o` and takes it as far as its lock-down; the
/// sandbox then waits for READY.
pub(super) fn start(o: &Builder) -> Result<Running, SandboxError> {
    let parts = parts(o, false)?;
    let (mut running, ctl) = exec(o, parts, None)?;
    let deadline = running.started.checked_add(o.start_timeout);
    match lock_down(&mut running, ctl, deadline, o.start_timeout) {
        Ok(()) => Ok(running),
        Err(e) => Err(running.failed(e)),
    }
}

impl Running {
    /// The error for a start that went wrong: `Some` as given, `None`
    /// (the runner died first) from how it died.
    pub(super) fn failed(self, e: Option<SandboxError>) -> SandboxError {
        match e {
            Some(e) => e,
            None => {
                let (killed, ended) = self.finish(Duration::from_secs(1));
                super::error::death_error(killed, ended, (0, u64::MAX))
            }
        }
    }

    /// A runner the host did not exec itself (a zygote's fork, whose
    /// parent is this process all the same): its watcher only watches.
    pub(super) fn adopt(pid: i32, parts: Parts) -> Result<(Running, OwnedFd), SandboxError> {
        // SAFETY: pidfd_open of a process; that it is our child is
        // checked below (only a child can be waited for).
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if pidfd < 0 {
            let e = std::io::Error::last_os_error();
            // SAFETY: kill and reap our child by pid (the zygote forks
            // with CLONE_PARENT; unreaped, its pid cannot be reused).
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            return Err(SandboxError::Spawn(e));
        }
        // SAFETY: a fresh descriptor we own.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if status_field(&status, "PPid:") != std::process::id().to_string() {
            return Err(SandboxError::Spawn(std::io::Error::other(format!(
                "process {pid} is not a child of the host"
            ))));
        }
        // From here on, a failure kills and reaps the fork (no leak).
        let fail = |e: std::io::Error| {
            // SAFETY: a signal through our pidfd, then reaping our child.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    pidfd.as_raw_fd(),
                    libc::SIGKILL,
                    0,
                    0,
                );
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            SandboxError::Spawn(e)
        };
        let theirs = pidfd.try_clone().map_err(fail)?;
        let Parts {
            region,
            stdout,
            stderr,
            control,
            shared,
            limits,
            shared_buffers,
            started,
            ..
        } = parts;
        let watcher_shared = shared.clone();
        let watcher = std::thread::Builder::new()
            .name("minld-sandbox-watch".into())
            .spawn(move || {
                let pipes = Pipes {
                    pidfd: theirs,
                    stdout: stdout.0,
                    stderr: stderr.0,
                };
                watch::run(&watcher_shared, pipes, &limits);
            })
            .map_err(fail)?;
        Ok((
            Running {
                pid,
                pidfd,
                region,
                shared,
                watcher: Some(watcher),
                landlock_abi: 0,
                shared_buffers,
                started,
            },
            control.0,
        ))
    }
}

/// Execs a runner from a new watcher thread (PR_SET_PDEATHSIG ties the
/// runner's life to the thread that forked it, and the watcher lives as
/// long as the runner). `stdin`: its descriptor 0 (default /dev/null).
/// Returns the runner and the host's end of its control pipe.
pub(super) fn exec(
    o: &Builder,
    parts: Parts,
    stdin: Option<OwnedFd>,
) -> Result<(Running, OwnedFd), SandboxError> {
    let Parts {
        memfd,
        region,
        stdout: (out_r, out_w),
        stderr: (err_r, err_w),
        control: (ctl_r, ctl_w),
        shared,
        limits,
        shared_buffers,
        started,
    } = parts;
    let exe = o.runner.clone().unwrap_or_else(|| "/proc/self/exe".into());
    let mut sources: Vec<RawFd> = vec![memfd.as_raw_fd(), ctl_w.as_raw_fd()];
    sources.extend(o.fds.iter().map(|f| f.as_raw_fd()));
    let keep = (memfd, ctl_w, out_w, err_w, o.fds.clone(), stdin);
    let (tx, rx) = mpsc::channel::<std::io::Result<(i32, OwnedFd)>>();
    let watcher_shared = shared.clone();
    let watcher = std::thread::Builder::new()
        .name("minld-sandbox-watch".into())
        .spawn(move || {
            let (memfd, ctl_w, out_w, err_w, fds, stdin) = keep;
            let mut cmd = Command::new(exe);
            cmd.arg0("minld-sandbox")
                .env_clear()
                .envs(std::env::vars_os().filter(|(k, _)| config::kept_env(k)))
                .env(ENV, std::process::id().to_string())
                .stdin(stdin.map_or_else(Stdio::null, Stdio::from))
                .stdout(Stdio::from(out_w))
                .stderr(Stdio::from(err_w));
            // SAFETY: between fork and exec, only async-signal-safe calls
            // (prctl, fcntl, dup2) on descriptors that exist.
            unsafe { cmd.pre_exec(move || place_descriptors(&sources)) };
            let spawned = cmd.spawn();
            drop((memfd, ctl_w, fds, cmd)); // the child has its copies
            let child = match spawned {
                Ok(c) => c,
                Err(e) => return drop(tx.send(Err(e))),
            };
            let pid = child.id() as i32;
            drop(child); // reaped through the pidfd, never through Child
                         // SAFETY: pidfd_open on our own unreaped child.
            let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
            if pidfd < 0 {
                let e = std::io::Error::last_os_error();
                // SAFETY: kill and reap our child by pid (no pidfd to use).
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
                return drop(tx.send(Err(e)));
            }
            // SAFETY: a fresh descriptor we own; a duplicate for the host.
            let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
            let theirs = match pidfd.try_clone() {
                Ok(d) => d,
                Err(e) => return drop(tx.send(Err(e))),
            };
            let _ = tx.send(Ok((pid, theirs)));
            let pipes = Pipes {
                pidfd,
                stdout: out_r,
                stderr: err_r,
            };
            watch::run(&watcher_shared, pipes, &limits);
        })
        .map_err(SandboxError::Spawn)?;
    let (pid, pidfd) = match rx.recv() {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            let _ = watcher.join();
            return Err(SandboxError::Spawn(e));
        }
        Err(_) => {
            let _ = watcher.join();
            return Err(SandboxError::Spawn(std::io::Error::other(
                "the watcher thread ended",
            )));
        }
    };
    Ok((
        Running {
            pid,
            pidfd,
            region,
            shared,
            watcher: Some(watcher),
            landlock_abi: 0,
            shared_buffers,
            started,
        },
        ctl_r,
    ))
}

/// In the child, between fork and exec: the region at 3, the control
/// pipe at 4, granted descriptors from 5 (moved out of the way first, so
/// no source is overwritten by another's target), and death with the
/// watcher thread.
fn place_descriptors(sources: &[RawFd]) -> std::io::Result<()> {
    let above = FD_GRANTED + sources.len() as i32;
    let mut moved = [0i32; 64];
    if sources.len() > moved.len() {
        return Err(std::io::Error::from_raw_os_error(libc::EMFILE));
    }
    // SAFETY: async-signal-safe calls on descriptors this process has.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        for (i, &fd) in sources.iter().enumerate() {
            moved[i] = libc::fcntl(fd, libc::F_DUPFD, above);
            if moved[i] < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        let targets = [FD_REGION, FD_CONTROL]
            .into_iter()
            .chain((0..).map(|i| FD_GRANTED + i));
        for (i, target) in targets.take(sources.len()).enumerate() {
            if libc::dup2(moved[i], target) < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Reads the runner's record from the control pipe and checks the
/// lock-down; takes the seccomp listener and lets the runner go on.
/// `Err(None)`: the runner died first.
pub(super) fn lock_down(
    r: &mut Running,
    ctl: OwnedFd,
    deadline: Option<Instant>,
    timeout: Duration,
) -> Result<(), Option<SandboxError>> {
    let mut ctl = std::fs::File::from(ctl);
    let (tag, payload) = control::read_record(&mut ctl, deadline)
        .map_err(|e| e.map(|()| SandboxError::StartTimeout(timeout)))?;
    match &tag {
        b"FAIL" => {
            return Err(Some(SandboxError::Load(
                String::from_utf8_lossy(&payload).into_owned(),
            )))
        }
        b"LOCK" if payload.len() == 8 => {}
        _ => {
            return Err(Some(SandboxError::Load(
                "the runner sent a malformed control record".into(),
            )))
        }
    }
    r.landlock_abi = u32::from_le_bytes(payload[..4].try_into().unwrap_or_default());
    let listener = i32::from_le_bytes(payload[4..].try_into().unwrap_or_default());
    verify_status(r.pid).map_err(Some)?;
    // SAFETY: copies the runner's listener into a descriptor of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, r.pidfd.as_raw_fd(), listener, 0) };
    if fd < 0 {
        return Err(Some(SandboxError::Spawn(std::io::Error::last_os_error())));
    }
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default();
    if link.as_os_str() != "anon_inode:seccomp notify" {
        return Err(Some(SandboxError::NotLockedDown {
            field: "seccomp listener",
            found: link.display().to_string(),
        }));
    }
    r.shared
        .listener
        .store(std::os::fd::IntoRawFd::into_raw_fd(fd), Ordering::Release);
    r.shared.poke();
    // Charging starts here, on this thread, before the runner may go on:
    // everything it uses after LISTENING is the plugin's (a watcher that
    // armed the account only when it next woke up let the first plugin
    // code run uncharged until then).
    r.shared.arm(r.pid);
    shm::post(r.region.header(), shm::LISTENING);
    Ok(())
}

/// A field of a `/proc/<pid>/status` text.
fn status_field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
        .unwrap_or_default()
}

/// The kernel's word on the runner's lock-down: no_new_privs, seccomp in
/// filter mode with exactly the runner's two filters on top of any the
/// host has itself, no capabilities.
fn verify_status(pid: i32) -> Result<(), SandboxError> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(SandboxError::Spawn)?;
    let ours = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let host_filters: u32 = status_field(&ours, "Seccomp_filters:").parse().unwrap_or(0);
    let filters = (host_filters + 2).to_string();
    let field = |name: &str| status_field(&status, name);
    for (name, want) in [
        ("NoNewPrivs:", "1"),
        ("Seccomp:", "2"),
        ("Seccomp_filters:", filters.as_str()),
        ("CapEff:", "0000000000000000"),
        ("CapPrm:", "0000000000000000"),
    ] {
        let found = field(name);
        if found != want {
            return Err(SandboxError::NotLockedDown {
                field: match name {
                    "NoNewPrivs:" => "NoNewPrivs",
                    "Seccomp:" => "Seccomp",
                    "Seccomp_filters:" => "Seccomp_filters",
                    "CapEff:" => "CapEff",
                    _ => "CapPrm",
                },
                found,
            });
        }
    }
    Ok(())
}
