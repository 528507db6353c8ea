//! Level 3 of plugin loading: a plugin in a process of its own, loaded by
//! minld there, under seccomp-bpf, Landlock and resource limits, called
//! through a byte-buffer ABI over shared memory:
//! `extern "C" fn(in: *const u8, in_len: usize, out: *mut u8, out_cap: usize) -> isize`
//! (the length written, or a negative error of the plugin's own).
//!
//! ```no_run
//! use minld::sandbox::Sandbox;
//! let mut sb = Sandbox::builder("/opt/plugins/libecho.so").function("upper").spawn()?;
//! assert_eq!(sb.call("upper", b"abc")?, b"ABC");
//! # Ok::<(), minld::sandbox::SandboxError>(())
//! ```
//!
//! A crash, a timeout or a forbidden system call comes back as an error
//! naming the signal or the system call; the host keeps running and can
//! [`Sandbox::restart`] the plugin. The runner's lock-down, in order: no new
//! privileges, no capabilities, no core files, RLIMIT_AS and RLIMIT_CPU;
//! then, while the plugin loads (its constructors run here), Landlock read
//! access only to the plugin's and the libraries' directories and a first
//! seccomp filter; then Landlock with no access at all and the serving
//! filter: a small allow-list (futex, exit, brk, mmap and mprotect without
//! PROT_EXEC, munmap, mremap, a few madvise advices, clock reads,
//! getrandom, write to fd 2; see [`SECCOMP_ALLOWED`]), the i386 and x32
//! ABIs killed. Everything else, `open`, `socket`, `execve`, `ptrace`
//! included, kills the runner with SIGSYS, and the host reports the call.
//!
//! **The runner is the host's own executable.** `spawn` re-executes
//! `/proc/self/exe` with `MINLD_SANDBOX=<fd>,<host pid>` in the
//! environment; a constructor of this crate (an `.init_array` entry, run
//! before the program's `main`, in tests and examples too) sees the variable
//! and becomes the runner. Nothing to ship, no path to find, the same
//! build of the protocol on both sides. [`run_if_child`] is the same hook
//! for a `main` that wants it explicit, and [`Builder::runner`] names
//! another executable (one whose `main` calls `run_if_child`) for hosts
//! that are not the process's executable (a Python extension module).
//!
//! The host side spawns with `std::process::Command`: fork (or vfork) and
//! exec at once, only async-signal-safe work in between (clearing
//! FD_CLOEXEC on the memfd), so a multithreaded host is fine.

mod landlock;
mod runner;
mod seccomp;
mod shm;
mod sysnames;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use shm::Region;

pub use landlock::abi as landlock_abi;
pub use seccomp::ALLOWED as SECCOMP_ALLOWED;

/// The environment variable that makes a process the runner.
pub const ENV: &str = "MINLD_SANDBOX";

/// Becomes the runner if this process was started as one (never returns
/// then); otherwise does nothing. Runs automatically before `main` (see
/// the module documentation); calling it again is harmless.
pub fn run_if_child() {
    if let Some(spec) = std::env::var_os(ENV) {
        runner::enter(&spec.to_string_lossy());
    }
}

// The automatic hook: an .init_array entry. rustc keeps #[used] statics of
// an rlib in the final link (its synthetic symbols object), so every binary
// that links this crate has it. Unprioritised .init_array entries run after
// std's own (priority 99), so std::env works here.
#[used]
#[link_section = ".init_array"]
static RUNNER_HOOK: extern "C" fn() = {
    extern "C" fn hook() {
        run_if_child();
    }
    hook
};

/// What went wrong with a call (or a start).
#[derive(Debug)]
pub enum SandboxError {
    /// The runner could not be started.
    Spawn(std::io::Error),
    /// The runner started but could not load the plugin or a function
    /// (minld's message), or could not lock itself down.
    Load(String),
    /// `call` named a function not given to the builder.
    NoSuchFunction(String),
    /// The input does not fit the request buffer.
    InputTooLarge {
        /// The input's length.
        len: usize,
        /// The request buffer's size.
        cap: usize,
    },
    /// The plugin returned a negative value: its own error code.
    Plugin(isize),
    /// The plugin claimed to write more than the response buffer holds.
    BadResponse(isize),
    /// The call took longer than the timeout; the runner was killed
    /// (SIGKILL). `restart` to go on.
    Timeout(Duration),
    /// The plugin made a system call outside the allow-list: the runner
    /// died of SIGSYS. `nr` is the call's number on x86-64 (None if the
    /// runner could not report it: an i386 or x32 call, killed outright).
    ForbiddenSyscall {
        /// The system call's number (x86-64), if reported.
        nr: Option<i64>,
    },
    /// The runner died of a signal: SIGSEGV, SIGBUS, SIGABRT, SIGXCPU (CPU
    /// time limit), SIGKILL (hard CPU limit, or someone else's kill)...
    /// `addr` is the faulting address the runner reported, if any.
    Crashed {
        /// The signal.
        signal: i32,
        /// The faulting address, if any.
        addr: Option<u64>,
    },
    /// The runner exited (it exits 0 when its parent is gone).
    Exited(i32),
    /// The runner is not running: it died in an earlier call.
    Dead,
}

impl std::fmt::Display for SandboxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Spawn(e) => write!(f, "cannot start the sandbox: {e}"),
            Self::Load(m) => write!(f, "the sandbox could not load the plugin: {m}"),
            Self::NoSuchFunction(n) => write!(f, "no function {n} was declared"),
            Self::InputTooLarge { len, cap } => {
                write!(
                    f,
                    "input of {len} bytes is larger than the request buffer ({cap})"
                )
            }
            Self::Plugin(c) => write!(f, "the plugin returned error {c}"),
            Self::BadResponse(n) => write!(f, "the plugin returned {n}, past its output buffer"),
            Self::Timeout(d) => write!(f, "no answer after {d:?}: the plugin was killed (SIGKILL)"),
            Self::ForbiddenSyscall { nr: Some(nr) } => write!(
                f,
                "the plugin made a forbidden system call: {} ({nr}); killed by SIGSYS",
                sysnames::name(*nr).unwrap_or("unknown")
            ),
            Self::ForbiddenSyscall { nr: None } => {
                write!(
                    f,
                    "the plugin made a forbidden system call (foreign ABI); killed by SIGSYS"
                )
            }
            Self::Crashed { signal, addr } => {
                write!(f, "the plugin died of {}", signal_name(*signal))?;
                if *signal == libc::SIGXCPU {
                    write!(f, " (CPU time limit)")?;
                }
                if let Some(a) = addr {
                    write!(f, " at address {a:#x}")?;
                }
                Ok(())
            }
            Self::Exited(c) => write!(f, "the sandbox exited with status {c}"),
            Self::Dead => write!(f, "the sandbox is not running (restart it)"),
        }
    }
}

impl std::error::Error for SandboxError {}

fn signal_name(sig: i32) -> String {
    extern "C" {
        // glibc 2.32+: "SEGV" for SIGSEGV; NULL for an unknown number.
        fn sigabbrev_np(sig: libc::c_int) -> *const libc::c_char;
    }
    // SAFETY: returns a static string or NULL.
    let p = unsafe { sigabbrev_np(sig) };
    if p.is_null() {
        format!("signal {sig}")
    } else {
        // SAFETY: a NUL-terminated static string.
        format!(
            "SIG{}",
            unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy()
        )
    }
}

/// A function of the plugin: by name or by its index in the builder's list.
pub trait Func: std::fmt::Debug {
    /// Its index in `names` (the builder's functions), if there.
    fn index(&self, names: &[String]) -> Option<usize>;
}
impl Func for &str {
    fn index(&self, names: &[String]) -> Option<usize> {
        names.iter().position(|n| n == self)
    }
}
impl Func for usize {
    fn index(&self, names: &[String]) -> Option<usize> {
        (*self < names.len()).then_some(*self)
    }
}

/// Options of a sandbox. Limits are per runner process.
#[derive(Clone, Debug)]
pub struct Builder {
    path: String,
    names: Vec<String>,
    runner: Option<PathBuf>,
    timeout: Duration,
    start_timeout: Duration,
    mem_limit: u64,
    cpu_limit: u64,
    req_cap: usize,
    resp_cap: usize,
    host_spin: Duration,
    runner_spin: Duration,
}

impl Builder {
    /// A function to call later (by name, or by index in the order given).
    pub fn function(mut self, name: &str) -> Self {
        self.names.push(name.to_string());
        self
    }
    /// Wall-clock limit of one call (default 5 s).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
    /// RLIMIT_AS of the runner: its whole address space (the executable,
    /// libraries, the shared region, heap, stack). Default 1 GiB; 0 none.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.mem_limit = bytes;
        self
    }
    /// RLIMIT_CPU of the runner, in seconds of CPU time over its whole life
    /// (not per call: the per-call limit is the timeout). SIGXCPU at the
    /// limit, SIGKILL a second later. Default 0: none.
    pub fn cpu_limit(mut self, secs: u64) -> Self {
        self.cpu_limit = secs;
        self
    }
    /// Capacity of the request and response buffers (default 1 MiB each).
    pub fn buffers(mut self, req: usize, resp: usize) -> Self {
        self.req_cap = req;
        self.resp_cap = resp;
        self
    }
    /// How long to busy-wait before sleeping on the futex: the host for the
    /// answer, the runner for the next request (default 50 µs each). A
    /// sleep and wake-up costs 5–60 µs (a VM's idle CPU is slow to wake);
    /// the runner's spinning is CPU time charged to its RLIMIT_CPU.
    pub fn spin(mut self, host: Duration, runner: Duration) -> Self {
        self.host_spin = host;
        self.runner_spin = runner;
        self
    }
    /// Run this executable as the runner instead of `/proc/self/exe`.
    pub fn runner(mut self, exe: impl Into<PathBuf>) -> Self {
        self.runner = Some(exe.into());
        self
    }
    /// Starts the runner and waits until the plugin is loaded and the
    /// runner locked down.
    pub fn spawn(self) -> Result<Sandbox, SandboxError> {
        let mut sb = Sandbox {
            opts: self,
            running: None,
        };
        sb.restart()?;
        Ok(sb)
    }
}

/// A plugin loaded in a runner process.
pub struct Sandbox {
    opts: Builder,
    running: Option<Running>,
}

struct Running {
    child: Child,
    region: Region,
}

impl Sandbox {
    /// Options for the plugin at `path` (as for `minld::Loader::open`).
    pub fn builder(path: impl Into<String>) -> Builder {
        Builder {
            path: path.into(),
            names: Vec::new(),
            runner: None,
            timeout: Duration::from_secs(5),
            start_timeout: Duration::from_secs(10),
            mem_limit: 1 << 30,
            cpu_limit: 0,
            req_cap: 1 << 20,
            resp_cap: 1 << 20,
            host_spin: Duration::from_micros(50),
            runner_spin: Duration::from_micros(50),
        }
    }

    /// The runner's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.running.as_ref().map(|r| r.child.id())
    }

    /// Kills the runner if it runs, and starts a fresh one.
    pub fn restart(&mut self) -> Result<(), SandboxError> {
        self.stop();
        let o = &self.opts;
        let size = shm::region_size(o.req_cap, o.resp_cap);
        let fd = make_memfd(size).map_err(SandboxError::Spawn)?;
        let mut region = Region::map(fd.as_raw_fd(), size).map_err(SandboxError::Spawn)?;

        // The configuration: limits in the header, the path and the names
        // NUL-separated in the request buffer.
        let mut cfg = o.path.as_bytes().to_vec();
        for n in &o.names {
            cfg.push(0);
            cfg.extend_from_slice(n.as_bytes());
        }
        if cfg.len() > o.req_cap {
            return Err(SandboxError::InputTooLarge {
                len: cfg.len(),
                cap: o.req_cap,
            });
        }
        // SAFETY: cfg fits the request buffer (checked above).
        unsafe { std::ptr::copy_nonoverlapping(cfg.as_ptr(), region.req(), cfg.len()) };
        let h = region.header_mut();
        h.magic = shm::MAGIC;
        h.req_cap = o.req_cap as u64;
        h.resp_cap = o.resp_cap as u64;
        h.mem_limit = o.mem_limit;
        h.cpu_limit = o.cpu_limit;
        h.spin_ns = o.runner_spin.as_nanos().min(u32::MAX as u128) as u32;
        h.nfuncs = o.names.len() as u32;
        h.req_len.store(cfg.len() as u64, Ordering::Relaxed);
        h.state.store(shm::BOOT, Ordering::Release);

        let raw = fd.as_raw_fd();
        let exe = o.runner.clone().unwrap_or_else(|| "/proc/self/exe".into());
        let mut cmd = Command::new(exe);
        cmd.arg0("minld-sandbox")
            .env(ENV, format!("{raw},{}", std::process::id()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        // SAFETY: between fork and exec: one fcntl, async-signal-safe. The
        // memfd is O_CLOEXEC in the host (no other child inherits it, even
        // one spawned meanwhile by another thread); only this one keeps it.
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(raw, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(SandboxError::Spawn)?;
        drop(fd); // the child has its copy (spawn returns after the exec)
        self.running = Some(Running { child, region });

        let deadline = Instant::now() + self.opts.start_timeout;
        match self.wait_while(shm::BOOT, deadline)? {
            shm::READY => Ok(()),
            shm::LOAD_FAILED => {
                let r = self.running.as_ref().unwrap();
                let n = (r.region.header().resp_len.load(Ordering::Relaxed).max(0) as usize)
                    .min(self.opts.resp_cap);
                // SAFETY: n bytes inside the response buffer.
                let msg =
                    unsafe { std::slice::from_raw_parts(r.region.resp(self.opts.req_cap), n) };
                let msg = String::from_utf8_lossy(msg).into_owned();
                self.stop();
                Err(SandboxError::Load(msg))
            }
            s => Err(self.protocol_error(s)),
        }
    }

    /// Calls `func` with `input`; returns what the plugin wrote.
    pub fn call(&mut self, func: impl Func, input: &[u8]) -> Result<Vec<u8>, SandboxError> {
        let o = &self.opts;
        let idx = func
            .index(&o.names)
            .ok_or_else(|| SandboxError::NoSuchFunction(format!("{func:?}")))?;
        if input.len() > o.req_cap {
            return Err(SandboxError::InputTooLarge {
                len: input.len(),
                cap: o.req_cap,
            });
        }
        let (req_cap, resp_cap) = (o.req_cap, o.resp_cap);
        let r = self.running.as_ref().ok_or(SandboxError::Dead)?;
        let h = r.region.header();
        // SAFETY: input fits the request buffer.
        unsafe { std::ptr::copy_nonoverlapping(input.as_ptr(), r.region.req(), input.len()) };
        h.req_len.store(input.len() as u64, Ordering::Relaxed);
        h.func.store(idx as u32, Ordering::Relaxed);
        shm::post(h, shm::REQUEST);

        let deadline = Instant::now() + self.opts.timeout;
        match self.wait_while(shm::REQUEST, deadline)? {
            shm::RESPONSE => {}
            s => return Err(self.protocol_error(s)),
        }
        let r = self.running.as_ref().unwrap();
        // Read the length once and check it against our own capacity: the
        // region is writable by the plugin.
        let ret = r.region.header().resp_len.load(Ordering::Relaxed) as isize;
        if ret < 0 {
            return Err(SandboxError::Plugin(ret));
        }
        if ret as usize > resp_cap {
            return Err(SandboxError::BadResponse(ret));
        }
        // SAFETY: ret bytes inside the response buffer.
        Ok(unsafe { std::slice::from_raw_parts(r.region.resp(req_cap), ret as usize) }.to_vec())
    }

    /// Waits while the state word is `busy`; returns the next state. On the
    /// runner's death or at the deadline (the runner is then killed) an
    /// error, and the sandbox is stopped.
    fn wait_while(&mut self, busy: u32, deadline: Instant) -> Result<u32, SandboxError> {
        let r = self.running.as_mut().ok_or(SandboxError::Dead)?;
        let mut spin = self.opts.host_spin;
        loop {
            let s = shm::spin_while(&r.region.header().state, busy, spin);
            spin = Duration::ZERO; // once per call, then sleep in slices
            if s == shm::FAULT {
                // The runner's handler reported a fatal signal and is
                // dying of it; collect the status (kill it if it lingers).
                let status = reap(&mut r.child, Duration::from_secs(1));
                let err = death_error(status, &r.region);
                self.running = None;
                return Err(err);
            }
            if s != busy {
                return Ok(s);
            }
            let now = Instant::now();
            if now >= deadline {
                let _ = r.child.kill();
                let _ = r.child.wait();
                self.running = None;
                return Err(SandboxError::Timeout(self.opts.timeout));
            }
            // Sleep in slices of at most 10 ms: a runner killed without
            // running its handler (SIGKILL, the hard CPU limit) never
            // wakes us, so look at it between slices.
            let slice = (deadline - now).min(Duration::from_millis(10));
            shm::sleep(r.region.header(), busy, slice);
            if let Ok(Some(status)) = r.child.try_wait() {
                if r.region.header().state.load(Ordering::Acquire) == busy {
                    let err = death_error(status, &r.region);
                    self.running = None;
                    return Err(err);
                }
            }
        }
    }

    fn protocol_error(&mut self, state: u32) -> SandboxError {
        self.stop();
        SandboxError::Load(format!("unexpected state {state} in the shared header"))
    }

    fn stop(&mut self) {
        if let Some(mut r) = self.running.take() {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop();
    }
}

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

/// The child's exit status, waiting at most `grace` before a SIGKILL.
fn reap(child: &mut Child, grace: Duration) -> ExitStatus {
    let end = Instant::now() + grace;
    while Instant::now() < end {
        if let Ok(Some(st)) = child.try_wait() {
            return st;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let _ = child.kill();
    // If the host ignores SIGCHLD the kernel reaps the child itself and
    // wait fails (ECHILD): report it as killed.
    child
        .wait()
        .unwrap_or_else(|_| ExitStatus::from_raw(libc::SIGKILL))
}

/// Turns a wait status into an error, with what the runner's handler
/// recorded. The status is the truth (the kernel's); the header is the
/// runner's word, used only to add the system call number or address.
fn death_error(status: ExitStatus, region: &Region) -> SandboxError {
    let h = region.header();
    let reported = h.fault_signal.load(Ordering::Relaxed) as i32;
    match status.signal() {
        Some(libc::SIGSYS) => {
            let nr = h.fault_syscall.load(Ordering::Relaxed);
            SandboxError::ForbiddenSyscall {
                nr: (reported == libc::SIGSYS && nr >= 0).then_some(nr),
            }
        }
        Some(sig) => {
            let addr = h.fault_addr.load(Ordering::Relaxed);
            SandboxError::Crashed {
                signal: sig,
                addr: (reported == sig && addr != u64::MAX).then_some(addr),
            }
        }
        None => SandboxError::Exited(status.code().unwrap_or(-1)),
    }
}
