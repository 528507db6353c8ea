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
//! **No plugin code runs before the lock-down.** The runner links the
//! plugin with [`crate::Loader::prepare`] (map, dependencies, relocation;
//! none of their code runs) under a first, looser stage, then installs the
//! serving stage, and only then runs the plugin's ifunc resolvers and init
//! functions. The serving stage: Landlock with only what the host granted
//! ([`Builder::read_only`], [`Builder::read_write`]), and a seccomp
//! allow-list (memory, futexes, time, randomness, calls on the
//! descriptors the runner holds; see [`SECCOMP_ALLOWED`]). Every other
//! system call stops in the kernel and is handed to the host (a seccomp
//! user notification): it lets calls on granted paths and new threads
//! (up to [`Builder::max_threads`]) go on and kills the runner for
//! anything else, naming the call as the kernel reported it; an open of
//! a public system file ([`SYSTEM_FILES`]) the host does itself; a path
//! no grant covers can get EACCES instead ([`Builder::refuse_forbidden_paths`]). Landlock
//! is required unless the host opts out ([`Builder::allow_without_landlock`]).
//!
//! What the host reports is what it observed: the signal from `waitid`,
//! the system call from the notification, CPU time from its clocks, the
//! lock-down from `/proc/<pid>/status`. What the runner writes in shared
//! memory once plugin code runs is the plugin's to forge; the errors say
//! when a detail is the runner's claim ([`SandboxError`]).
//!
//! **The runner is the host's own executable.** `spawn` re-executes
//! `/proc/self/exe` with `MINLD_SANDBOX=<host pid>` in the environment; a
//! constructor of this crate (an `.init_array` entry, run before the
//! program's `main`, in tests and examples too) sees the variable and
//! becomes the runner. [`run_if_child`] is the same hook for a `main` that
//! wants it explicit, and [`Builder::runner`] names another executable
//! (one whose `main` calls `run_if_child`) for hosts that are not the
//! process's executable (a Python extension module).
//!
//! Each runner has a watcher thread in the host (`watch`), which starts
//! it (so the runner dies with the sandbox: PR_SET_PDEATHSIG), holds the
//! seccomp listener, drains the plugin's stdout and stderr (pipes; what it
//! printed is [`Sandbox::take_output`], and logged under the target
//! `minld::sandbox::plugin`), charges its CPU time, and reaps it.

mod buffer;
mod config;
mod control;
mod error;
mod fail;
mod forks;
mod landlock;
mod refuse;
mod runner;
mod seccomp;
mod shm;
mod spawn;
mod sysnames;
mod watch;
mod zygote;

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use buffer::Buffer;
pub use error::SandboxError;
pub use landlock::abi as landlock_abi;
pub use seccomp::ALLOWED as SECCOMP_ALLOWED;
pub use watch::{Output, Refusal, Refusals, SyscallAbi, SYSTEM_FILES};
pub use zygote::Zygote;

use config::Config;
use error::printable;

/// The environment variable that makes a process the runner.
pub const ENV: &str = "MINLD_SANDBOX";

/// Becomes the runner if this process was started as one (never returns
/// then); otherwise does nothing. Runs automatically before `main` (see
/// the module documentation); calling it again is harmless.
pub fn run_if_child() {
    if let Some(spec) = std::env::var_os(ENV) {
        let l = runner::enter(&spec.to_string_lossy());
        if l.region.header().zygote != 0 {
            forks::serve_forks(l.region, l.prepared, l.abi, l.host)
        }
        runner::become_instance(l.region, l.prepared, l.cfg, l.abi, l.host)
    }
}

// The automatic hook: an .init_array entry. rustc keeps #[used] statics of
// an rlib in the final link (its synthetic symbols object), so every binary
// that links this crate has it. Unprioritised .init_array entries run after
// std's own (priority 99), so std::env works here.
/// The `.init_array` entry that makes a re-executed host the runner
/// (see [`run_if_child`]).
#[used]
#[link_section = ".init_array"]
static RUNNER_HOOK: extern "C" fn() = {
    extern "C" fn hook() {
        run_if_child();
    }
    hook
};

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
    /// The plugin's path.
    path: String,
    /// The functions to look up, in call-index order.
    names: Vec<String>,
    /// Another executable to run as the runner ([`Builder::runner`]).
    runner: Option<PathBuf>,
    /// How long a call may take.
    timeout: Duration,
    /// How long the start (linking, init functions) may take.
    start_timeout: Duration,
    /// RLIMIT_AS in bytes (0: none).
    mem_limit: u64,
    /// RLIMIT_CPU in seconds (0: none).
    cpu_limit: u64,
    /// RLIMIT_FSIZE in bytes.
    fsize_limit: u64,
    /// CPU time a call may use (None: as long as the timeout).
    call_cpu: Option<Duration>,
    /// CPU time per second the runner may use between calls.
    idle_cpu: Duration,
    /// The request buffer's capacity.
    req_cap: usize,
    /// The response buffer's capacity.
    resp_cap: usize,
    /// The sizes of the shared buffers.
    shared: Vec<usize>,
    /// How long the host busy-waits for an answer before sleeping.
    host_spin: Duration,
    /// How long the runner busy-waits for a request before sleeping.
    runner_spin: Duration,
    /// The paths granted and how.
    grants: Vec<(PathBuf, landlock::Access)>,
    /// The descriptors passed, at 5 and up in the runner.
    fds: Vec<Arc<OwnedFd>>,
    /// Whether to run without Landlock where the kernel has none.
    allow_no_landlock: bool,
    /// Output kept per call, in bytes.
    output_per_call: usize,
    /// Output allowed per second before the runner is killed.
    output_per_sec: u64,
    /// Threads the runner may have.
    max_threads: usize,
    /// Whether the public system files are readable ([`SYSTEM_FILES`]).
    system_files: bool,
    /// Whether a path no grant covers gets EACCES rather than a kill.
    refuse_paths: bool,
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
    /// Wall-clock limit of the start: linking, the plugin's init
    /// functions, the lock-down (default 10 s).
    pub fn start_timeout(mut self, t: Duration) -> Self {
        self.start_timeout = t;
        self
    }
    /// RLIMIT_AS of the runner: its whole address space (the executable,
    /// libraries, the shared region, heap, stack). Default 1 GiB; 0 none.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.mem_limit = bytes;
        self
    }
    /// RLIMIT_CPU of the runner, in seconds of CPU time over its whole life:
    /// the kernel's backstop (SIGXCPU at the limit, SIGKILL a second
    /// later). Default 0: none. The host's own budget is [`Self::cpu_budget`].
    pub fn cpu_limit(mut self, secs: u64) -> Self {
        self.cpu_limit = secs;
        self
    }
    /// The CPU time (every thread's) the host allows the runner: `per_call`
    /// during one call and during the start (default: the call timeout),
    /// `idle_per_sec` in each second between calls (default 100 ms: a
    /// plugin that answers and keeps running is killed within about a
    /// second). Read from the runner's CPU clock at each call's ends and
    /// every 100 ms.
    pub fn cpu_budget(mut self, per_call: Duration, idle_per_sec: Duration) -> Self {
        self.call_cpu = Some(per_call);
        self.idle_cpu = idle_per_sec;
        self
    }
    /// RLIMIT_FSIZE of the runner: the largest file it may write (SIGXFSZ
    /// past it). Default 0 (it writes none) unless a path is granted for
    /// writing, then 1 GiB.
    pub fn file_size_limit(mut self, bytes: u64) -> Self {
        self.fsize_limit = bytes;
        self
    }
    /// Capacity of the request and response buffers (default 1 MiB each).
    pub fn buffers(mut self, req: usize, resp: usize) -> Self {
        self.req_cap = req;
        self.resp_cap = resp;
        self
    }
    /// Adds a buffer of `len` bytes that host and plugin both map, for
    /// bulk data worked on in place ([`Sandbox::buffer`],
    /// [`Sandbox::call_in`]). Its index is the number of buffers added
    /// before it.
    pub fn shared_buffer(mut self, len: usize) -> Self {
        self.shared.push(len);
        self
    }
    /// How long to busy-wait before sleeping on the futex: the host for the
    /// answer, the runner for the next request (default 50 µs each). A
    /// sleep and wake-up costs 5–60 µs (a VM's idle CPU is slow to wake);
    /// the runner's spinning is CPU time charged to its budgets.
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
    /// Lets the plugin read files beneath `path` (a Landlock rule, and the
    /// host's check of every open). The path is made absolute and its
    /// symbolic links resolved when the sandbox starts.
    pub fn read_only(mut self, path: impl Into<PathBuf>) -> Self {
        self.grants.push((path.into(), landlock::Access::Read));
        self
    }
    /// Lets the plugin read, write, create and remove files beneath `path`.
    pub fn read_write(mut self, path: impl Into<PathBuf>) -> Self {
        self.grants.push((path.into(), landlock::Access::ReadWrite));
        self
    }
    /// Passes an open descriptor: the plugin finds it at 5 and up, in the
    /// order given. (Landlock does not restrict what an open descriptor
    /// allows: the grant is the descriptor itself.)
    pub fn pass_fd(mut self, fd: OwnedFd) -> Self {
        self.fds.push(Arc::new(fd));
        self
    }
    /// Starts even when the kernel has no Landlock: the plugin can then
    /// open any file the host can, subject only to the host's judging of
    /// the path (its walk beneath a grant), which a plugin thread can race
    /// before the kernel's own walk: flipping the path's text, making a
    /// directory in it (read-write grant), dup2 over its dirfd.
    /// [`Sandbox::landlock_abi`] tells which it got.
    pub fn allow_without_landlock(mut self) -> Self {
        self.allow_no_landlock = true;
        self
    }
    /// Output kept until [`Sandbox::take_output`] (default 64 KiB; the rest
    /// is counted and dropped), and the most the plugin may write per
    /// second before it is killed (default 4 MiB).
    pub fn output_limits(mut self, kept: usize, per_sec: u64) -> Self {
        self.output_per_call = kept;
        self.output_per_sec = per_sec;
        self
    }
    /// How many threads the runner may have, its main thread included
    /// (default 256). Each thread the plugin starts stops in the kernel
    /// until the host counts the runner's threads: under the limit it goes
    /// on, at it `pthread_create` fails with EAGAIN. Threads starting at
    /// the same moment can pass before the count shows each other: never
    /// more than twice the limit. (Memory limits do not bound threads: a
    /// thread's kernel stack is not in the runner's address space, and
    /// without this a plugin could take every process id of the machine.)
    pub fn max_threads(mut self, n: usize) -> Self {
        self.max_threads = n;
        self
    }
    /// Starts the runner and waits until the plugin is loaded, locked down
    /// and initialised.
    pub fn spawn(self) -> Result<Sandbox, SandboxError> {
        let mut sb = Sandbox {
            opts: self,
            running: None,
            zygote: None,
        };
        sb.restart()?;
        Ok(sb)
    }
}

/// A plugin loaded in a runner process.
pub struct Sandbox {
    /// The options it was made with (kept for a restart).
    opts: Builder,
    /// The runner, while there is one.
    running: Option<spawn::Running>,
    /// The zygote it was forked from, if any (kept alive by it).
    zygote: Option<Arc<zygote::Inner>>,
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
            fsize_limit: u64::MAX,
            call_cpu: None,
            idle_cpu: Duration::from_millis(100),
            req_cap: 1 << 20,
            resp_cap: 1 << 20,
            shared: Vec::new(),
            host_spin: Duration::from_micros(50),
            runner_spin: Duration::from_micros(50),
            grants: Vec::new(),
            fds: Vec::new(),
            allow_no_landlock: false,
            output_per_call: 64 << 10,
            output_per_sec: 4 << 20,
            max_threads: 256,
            system_files: true,
            refuse_paths: false,
        }
    }

    /// The runner's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.running.as_ref().map(|r| r.pid as u32)
    }

    /// The Landlock ABI the runner's lock-down uses (0: none, only with
    /// [`Builder::allow_without_landlock`]).
    pub fn landlock_abi(&self) -> Option<u32> {
        self.running.as_ref().map(|r| r.landlock_abi)
    }

    /// What the plugin printed since the last call of this (at most the
    /// cap of [`Builder::output_limits`]), and how much was dropped.
    pub fn take_output(&mut self) -> Output {
        match &self.running {
            Some(r) => std::mem::take(&mut r.shared.observed().output),
            None => Output::default(),
        }
    }

    /// Kills the runner if it runs, and starts a fresh one.
    pub fn restart(&mut self) -> Result<(), SandboxError> {
        self.stop();
        let running = match &self.zygote {
            Some(z) => zygote::fork(z, &self.opts)?,
            None => spawn::start(&self.opts)?,
        };
        let start_deadline = running.started.checked_add(self.opts.start_timeout);
        self.running = Some(running);
        match self.wait_while(shm::LISTENING, start_deadline, true)? {
            shm::READY => {
                // The start was charged like a call; it ends here.
                let r = self.running.as_ref().ok_or(SandboxError::Dead)?;
                r.shared.call_ends(self.opts.runner_spin);
                Ok(())
            }
            shm::LOAD_FAILED => {
                let r = self.running.as_ref().ok_or(SandboxError::Dead)?;
                let n = (r.region.header().resp_len.load(Ordering::Relaxed).max(0) as usize)
                    .min(self.opts.resp_cap);
                // SAFETY: n bytes inside the response buffer.
                let msg =
                    unsafe { std::slice::from_raw_parts(r.region.resp(self.opts.req_cap), n) };
                let claimed = String::from_utf8_lossy(msg).into_owned();
                Err(self.fail(SandboxError::Init { claimed }))
            }
            s => Err(self.fail(SandboxError::Protocol { state: s })),
        }
    }

    /// Calls `func` with `input`; returns what the plugin wrote.
    pub fn call(&mut self, func: impl Func, input: &[u8]) -> Result<Vec<u8>, SandboxError> {
        let idx = self.index(func)?;
        let (req_cap, resp_cap) = (self.opts.req_cap, self.opts.resp_cap);
        if input.len() > req_cap {
            return Err(SandboxError::InputTooLarge {
                len: input.len(),
                cap: req_cap,
            });
        }
        let r = self.running.as_ref().ok_or(SandboxError::Dead)?;
        // SAFETY: input fits the request buffer (checked above).
        unsafe { std::ptr::copy_nonoverlapping(input.as_ptr(), r.region.req(), input.len()) };
        let ret = self.exchange(idx, u32::MAX, input.len(), resp_cap)?;
        let r = self.running.as_ref().ok_or(SandboxError::Dead)?;
        // SAFETY: `ret` bytes inside the response buffer (checked against
        // our own capacity by `exchange`).
        Ok(unsafe { std::slice::from_raw_parts(r.region.resp(req_cap), ret) }.to_vec())
    }

    /// The shared buffer `index` ([`Builder::shared_buffer`]), for the host
    /// to fill and read in place.
    pub fn buffer(&self, index: usize) -> Option<Buffer<'_>> {
        let r = self.running.as_ref()?;
        let &(off, len) = r.shared_buffers.get(index)?;
        Some(Buffer {
            region: &r.region,
            off,
            len,
        })
    }

    /// Calls `func` on shared buffer `index`, in place: the plugin gets the
    /// buffer as both its input (`len` bytes) and its output (the whole
    /// buffer). Returns the length the plugin says it wrote.
    pub fn call_in(
        &mut self,
        func: impl Func,
        index: usize,
        len: usize,
    ) -> Result<usize, SandboxError> {
        let idx = self.index(func)?;
        let r = self.running.as_ref().ok_or(SandboxError::Dead)?;
        let &(_, cap) = r
            .shared_buffers
            .get(index)
            .ok_or_else(|| SandboxError::NoSuchFunction(format!("shared buffer {index}")))?;
        if len > cap {
            return Err(SandboxError::InputTooLarge { len, cap });
        }
        self.exchange(idx, index as u32, len, cap)
    }

    /// The call index of `func`.
    fn index(&self, func: impl Func) -> Result<usize, SandboxError> {
        func.index(&self.opts.names)
            .ok_or_else(|| SandboxError::NoSuchFunction(format!("{func:?}")))
    }

    /// Posts a request and waits for the answer: the length the plugin
    /// returned, checked against `cap`.
    fn exchange(
        &mut self,
        func: usize,
        buffer: u32,
        len: usize,
        cap: usize,
    ) -> Result<usize, SandboxError> {
        let r = self.running.as_ref().ok_or(SandboxError::Dead)?;
        let h = r.region.header();
        h.req_len.store(len as u64, Ordering::Relaxed);
        h.func.store(func as u32, Ordering::Relaxed);
        h.buffer.store(buffer, Ordering::Relaxed);
        // The runner's CPU time is read right before the post and right
        // after the answer: what lies between is the call's, the rest idle.
        if r.shared.call_begins() {
            // Over a budget already (it spun between calls): the watcher
            // kills it; the call is not posted.
            return Err(self.death());
        }
        shm::post(h, shm::REQUEST);
        let deadline = deadline(self.opts.timeout);
        let got = self.wait_while(shm::REQUEST, deadline, false);
        if let Some(r) = &self.running {
            r.shared.call_ends(self.opts.runner_spin);
        }
        match got? {
            shm::RESPONSE => {}
            s => return Err(self.fail(SandboxError::Protocol { state: s })),
        }
        let r = self.running.as_ref().ok_or(SandboxError::Dead)?;
        // Read the length once and check it against our own capacity: the
        // region is writable by the plugin.
        let ret = r.region.header().resp_len.load(Ordering::Relaxed) as isize;
        if ret < 0 {
            return Err(SandboxError::Plugin(ret));
        }
        if ret as usize > cap {
            return Err(SandboxError::BadResponse(ret));
        }
        Ok(ret as usize)
    }

    /// Waits while the state word is `busy`; returns the next state. On the
    /// runner's death or at the deadline (the runner is then killed) an
    /// error, and the sandbox is stopped.
    fn wait_while(
        &mut self,
        busy: u32,
        deadline: Option<Instant>,
        starting: bool,
    ) -> Result<u32, SandboxError> {
        let r = self.running.as_ref().ok_or(SandboxError::Dead)?;
        let (region, shared) = (r.region.clone(), r.shared.clone());
        let h = region.header();
        // Never spin past the deadline.
        let mut spin = deadline.map_or(self.opts.host_spin, |d| {
            self.opts
                .host_spin
                .min(d.saturating_duration_since(Instant::now()))
        });
        loop {
            let s = shm::spin_while(&h.state, busy, spin);
            spin = Duration::ZERO; // once per call, then sleep in slices
                                   // A state posted before the runner ended counts (LOAD_FAILED
                                   // is posted just before it exits).
            if s != busy && s != shm::FAULT {
                return Ok(s);
            }
            let observed = shared.observed().ended.is_some() || shared.observed().killed.is_some();
            if observed || s == shm::FAULT {
                // Dead or dying (the runner's handler says so: wait for
                // the watcher to see the death itself).
                return Err(self.death());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                let err = if starting {
                    SandboxError::StartTimeout(self.opts.start_timeout)
                } else {
                    SandboxError::Timeout(self.opts.timeout)
                };
                return Err(self.fail(err));
            }
            // Sleep in slices of at most 10 ms; the watcher wakes us when
            // the runner dies.
            let left = deadline.map_or(Duration::from_millis(10), |d| {
                d.saturating_duration_since(Instant::now())
            });
            shm::sleep(h, busy, left.min(Duration::from_millis(10)));
        }
    }

    /// The runner died or is dying: the error from what the host observed
    /// (waiting up to a second for the watcher to reap it).
    fn death(&mut self) -> SandboxError {
        let Some(r) = self.running.take() else {
            return SandboxError::Dead;
        };
        let claimed = (
            r.region.header().fault_signal.load(Ordering::Relaxed) as i32,
            r.region.header().fault_addr.load(Ordering::Relaxed),
        );
        let (killed, ended) = r.finish(Duration::from_secs(1));
        error::death_error(killed, ended, claimed)
    }

    /// Kills the runner for `err` and returns it.
    fn fail(&mut self, err: SandboxError) -> SandboxError {
        self.stop();
        err
    }

    /// Ends the runner, if there is one, without waiting.
    fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.finish(Duration::ZERO);
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A deadline `d` from now; None when it lies past what `Instant` holds.
fn deadline(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}
