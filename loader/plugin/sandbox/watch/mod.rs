//! The host's watcher: one thread per runner, which started it (so the
//! runner's PR_SET_PDEATHSIG, tied to the thread that forked it, fires
//! exactly when the sandbox goes away), and which from then on is the
//! host's eyes on it:
//!
//! - it holds the seccomp listener: every call the serving filter does
//!   not allow stops in the kernel and comes here, with its number, ABI
//!   and arguments. A granted `openat` (and access, readlink, mkdir,
//!   unlink, rmdir, rename) goes on; an open or stat of a public system
//!   file (`public`) is done by the host itself; one of a path no grant
//!   covers kills the runner, or gets EACCES and is recorded where the
//!   host asked for that; a thread's `clone` goes on under the
//!   thread limit; an `fstat`-like `newfstatat` is answered here;
//!   anything else kills the runner, and the call is recorded as the host
//!   saw it;
//! - it drains the runner's stdout and stderr (pipes), keeping at most a
//!   cap per call and killing a runner that floods;
//! - it charges the runner's CPU time (all threads, its process CPU
//!   clock) against a budget per call and a budget per second while idle,
//!   so a plugin that answers early and keeps running is stopped; the
//!   host reads the same clock at each call's start and end (`cpu`), so
//!   what runs between calls is idle time however often the host calls;
//!   and this thread's own CPU time, all of it work for the runner, is
//!   charged to it as well;
//! - it reaps the runner (`waitid` on a pidfd) and records how it ended.
//!
//! What it records is the host's observation; the shared region's words
//! are the runner's (the plugin's) and are never taken as facts here.
//!
//! The seccomp notifications themselves are decided in `notify`.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::landlock::Access;
use super::shm::Region;

mod cpu;
mod notify;
mod paths;
mod public;

use cpu::Ledger;
use notify::notification;
pub use public::SYSTEM_FILES;

/// The ABI a refused system call came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyscallAbi {
    /// x86-64, the runner's own.
    X86_64,
    /// x32: x86-64's numbers with bit 30 set.
    X32,
    /// i386 (`int 0x80`): other numbers altogether.
    I386,
}

/// Why the host killed the runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kill {
    /// A system call outside the allow-list (from the notification).
    Syscall {
        /// The number (without the x32 bit).
        nr: i64,
        /// The ABI it was made in.
        abi: SyscallAbi,
    },
    /// An open of a path no grant covers (the path as read by the host).
    Open {
        /// The path, made absolute (`..` kept: never folded by its text).
        path: PathBuf,
        /// The open flags.
        flags: i32,
    },
    /// Another call on a path no grant covers (access, readlink, mkdir,
    /// unlink, rmdir, rename; the path as read by the host).
    Path {
        /// The call's number.
        nr: i64,
        /// The path, made absolute (`..` kept: never folded by its text).
        path: PathBuf,
    },
    /// CPU time over the budget.
    Cpu {
        /// The time used.
        used: Duration,
        /// The budget it went over.
        budget: Duration,
        /// Whether it was the idle budget (else the call's).
        idle: bool,
    },
    /// More output per second than allowed.
    Flood {
        /// Bytes in the last second.
        bytes: u64,
        /// The limit per second.
        limit: u64,
    },
}

/// How the runner ended, from `waitid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// It exited with this status.
    Exited(i32),
    /// A signal ended it.
    Signaled(i32),
}

/// A call on a path no grant covers that the host answered with EACCES
/// instead of killing the runner (`Builder::refuse_forbidden_paths`), as
/// the host read it from the stopped call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The system call's number (x86-64): `open`, `openat`, `access`...
    pub nr: i64,
    /// The path, made absolute, `..` kept (the first one no grant covers).
    pub path: PathBuf,
    /// The open flags (0 for the calls that are not opens).
    pub flags: i32,
}

/// The calls refused with EACCES since the host last took them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Refusals {
    /// The first [`Refusals::KEPT`] of them, in order.
    pub calls: Vec<Refusal>,
    /// How many more there were (counted, not kept).
    pub dropped: u64,
}

impl Refusals {
    /// How many refusals are kept until the host takes them.
    pub const KEPT: usize = 64;

    /// Records one (kept while there is room, else counted).
    pub(super) fn record(&mut self, r: Refusal) {
        if self.calls.len() < Self::KEPT {
            self.calls.push(r);
        } else {
            self.dropped += 1;
        }
    }
}

/// What the plugin wrote to its stdout and stderr.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Output {
    /// Bytes written to stdout (at most the cap per call).
    pub stdout: Vec<u8>,
    /// Bytes written to stderr (at most the cap per call).
    pub stderr: Vec<u8>,
    /// Bytes dropped past the cap.
    pub dropped: u64,
}

/// The watcher's record, read by the sandbox.
#[derive(Debug, Default)]
pub(super) struct Observed {
    /// Why the host killed it, if it did (the first reason).
    pub(super) killed: Option<Kill>,
    /// How it ended, once reaped.
    pub(super) ended: Option<Ended>,
    /// What it printed, until the host takes it.
    pub(super) output: Output,
    /// Calls on paths refused with EACCES, until the host takes them.
    pub(super) refused: Refusals,
}

/// Limits the watcher enforces.
#[derive(Debug, Clone)]
pub(super) struct Limits {
    /// CPU time a call may use.
    pub(super) call_cpu: Duration,
    /// CPU time per second it may use between calls.
    pub(super) idle_cpu_per_sec: Duration,
    /// Output kept per call.
    pub(super) output_per_call: usize,
    /// Output allowed per second.
    pub(super) output_per_sec: u64,
    /// The paths granted, for deciding opens.
    pub(super) grants: Vec<(PathBuf, Access)>,
    /// Threads the runner may have (a clone beyond gets EAGAIN).
    pub(super) max_threads: usize,
    /// Whether the runner may read the public system files
    /// ([`SYSTEM_FILES`]), opened for it by the host.
    pub(super) system_files: bool,
    /// Whether a call on a path no grant covers gets EACCES (recorded)
    /// rather than killing the runner.
    pub(super) refuse_paths: bool,
}

/// Between the sandbox and its watcher.
pub(super) struct Shared {
    /// What the watcher saw.
    pub(super) observed: Mutex<Observed>,
    /// The runner's CPU time, charged by the sandbox at each call's start
    /// and end and by the watcher in between.
    cpu: Mutex<Ledger>,
    /// Set by the watcher just before it reaps the runner (its pid may
    /// then name another process: no more reads of its clock).
    gone: AtomicBool,
    /// The seccomp listener, once the host took it (-1 before).
    pub(super) listener: AtomicI32,
    /// eventfd that wakes the watcher from poll.
    pub(super) wake: OwnedFd,
    /// The shared region (the watcher wakes sleepers on it).
    pub(super) region: Arc<Region>,
}

impl Shared {
    /// With a fresh eventfd for waking the watcher; CPU is charged
    /// against `limits` once armed ([`Shared::arm`]).
    pub(super) fn new(region: Arc<Region>, limits: &Limits) -> std::io::Result<Shared> {
        // SAFETY: plain system call; the descriptor is ours.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Shared {
            observed: Mutex::default(),
            cpu: Mutex::new(Ledger::new(limits)),
            gone: AtomicBool::new(false),
            listener: AtomicI32::new(-1),
            // SAFETY: a fresh descriptor nobody else owns.
            wake: unsafe { OwnedFd::from_raw_fd(fd) },
            region,
        })
    }

    /// Locks the record; a panic while it was held does not poison it.
    pub(super) fn observed(&self) -> std::sync::MutexGuard<'_, Observed> {
        self.observed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Locks the CPU account; a panic while it was held does not poison it.
    fn cpu(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.cpu.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The runner `pid` is locked down and about to run plugin code:
    /// its CPU time is charged from now on (the host calls this before
    /// it lets the runner go on; until then only minld's loader ran
    /// there, bounded by the start timeout).
    pub(super) fn arm(&self, pid: i32) {
        self.cpu().arm(pid);
    }

    /// A call starts (the host is about to post it): the runner's time
    /// since the last read is idle time. True if a budget is exceeded:
    /// the watcher, woken, kills the runner.
    pub(super) fn call_begins(&self) -> bool {
        let over = {
            let mut l = self.cpu();
            l.begin(&self.gone);
            l.over().is_some()
        };
        if over {
            self.poke();
        }
        over
    }

    /// The call's answer is seen (or the wait for it ended): the runner's
    /// time since the call began is the call's. `spin` is how long the
    /// runner spins for the next request, forgiven as idle time.
    pub(super) fn call_ends(&self, spin: Duration) {
        let over = {
            let mut l = self.cpu();
            l.end(&self.gone, spin);
            l.over().is_some()
        };
        if over {
            self.poke();
        }
    }

    /// Wakes the watcher's poll.
    pub(super) fn poke(&self) {
        let one: u64 = 1;
        // SAFETY: an 8-byte write to our eventfd.
        unsafe { libc::write(self.wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// The call `nr` on a path no grant covers, `why` as a kill would name
    /// it: with `refuse_paths` recorded, to be answered EACCES (true), else
    /// the runner is killed (false).
    pub(super) fn forbidden(&self, pidfd: RawFd, nr: i64, why: Kill, refuse_paths: bool) -> bool {
        let refusal = match (&why, refuse_paths) {
            (Kill::Open { path, flags }, true) => Refusal {
                nr,
                path: path.clone(),
                flags: *flags,
            },
            (Kill::Path { path, .. }, true) => Refusal {
                nr,
                path: path.clone(),
                flags: 0,
            },
            _ => {
                self.kill(pidfd, why);
                return false;
            }
        };
        self.observed().refused.record(refusal);
        true
    }

    /// Records why the host kills the runner (the first reason stays),
    /// and kills it.
    pub(super) fn kill(&self, pidfd: RawFd, why: Kill) {
        self.observed().killed.get_or_insert(why);
        // SAFETY: a signal through our pidfd to our child.
        unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd, libc::SIGKILL, 0, 0) };
    }
}

/// The descriptors the watcher drains and watches.
pub(super) struct Pipes {
    /// A pidfd of the runner (readable when it ended).
    pub(super) pidfd: OwnedFd,
    /// The read end of its stdout.
    pub(super) stdout: OwnedFd,
    /// The read end of its stderr.
    pub(super) stderr: OwnedFd,
}

/// The watcher's loop, until the runner is reaped.
pub(super) fn run(shared: &Shared, pipes: Pipes, limits: &Limits) {
    let mut out = OutputMeter::new(limits);
    let mut listener: Option<OwnedFd> = None;
    let mut open = [true, true]; // stdout, stderr not at EOF
    let mut worked = cpu::thread_time(); // this thread's CPU time charged
    loop {
        if listener.is_none() {
            let fd = shared.listener.swap(-1, Ordering::AcqRel);
            if fd >= 0 {
                // SAFETY: the sandbox handed this descriptor over to us.
                listener = Some(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
        let mut fds = vec![
            pollfd(pipes.pidfd.as_raw_fd()),
            pollfd(shared.wake.as_raw_fd()),
            pollfd(if open[0] {
                pipes.stdout.as_raw_fd()
            } else {
                -1
            }),
            pollfd(if open[1] {
                pipes.stderr.as_raw_fd()
            } else {
                -1
            }),
            pollfd(listener.as_ref().map_or(-1, |l| l.as_raw_fd())),
        ];
        // SAFETY: a valid array of pollfds for the call's duration.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
        if n < 0 {
            continue; // EINTR
        }
        if fds[1].revents != 0 {
            let mut v: u64 = 0;
            // SAFETY: an 8-byte read from our eventfd.
            unsafe { libc::read(shared.wake.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        }
        if fds[4].revents & libc::POLLIN != 0 {
            if let Some(l) = &listener {
                notification(shared, l.as_raw_fd(), pipes.pidfd.as_raw_fd(), limits);
            }
        }
        for (i, fd) in [&pipes.stdout, &pipes.stderr].into_iter().enumerate() {
            if fds[2 + i].revents != 0 && !out.drain(shared, fd.as_raw_fd(), i) {
                open[i] = false;
            }
        }

        if out.flooded() {
            shared.kill(
                pipes.pidfd.as_raw_fd(),
                Kill::Flood {
                    bytes: out.window_bytes,
                    limit: limits.output_per_sec,
                },
            );
        }
        if fds[0].revents != 0 {
            // Exited: take what is left in the pipes, then reap.
            for (i, fd) in [&pipes.stdout, &pipes.stderr].into_iter().enumerate() {
                while open[i] && out.drain(shared, fd.as_raw_fd(), i) {}
            }
            shared.gone.store(true, Ordering::SeqCst);
            let ended = reap(pipes.pidfd.as_raw_fd());
            shared.observed().ended = Some(ended);
            super::shm::futex_wake(&shared.region.header().state);
            return;
        }
        // This thread's work is all for the runner (its stopped calls,
        // its output): charged to it.
        let now = cpu::thread_time();
        let over = {
            let mut l = shared.cpu();
            l.charge_host(now.saturating_sub(worked));
            l.charge(&shared.gone);
            l.over()
        };
        worked = now;
        if let Some(why) = over {
            shared.kill(pipes.pidfd.as_raw_fd(), why);
        }
    }
}

/// A pollfd waiting for input on `fd` (-1: ignored).
fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// How the child ended (it has: its pidfd was readable).
fn reap(pidfd: RawFd) -> Ended {
    // SAFETY: `siginfo_t` is plain integers and unions of them, for which
    // all zeroes is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid writes at most one `siginfo_t` into the local it is
    // given; a pidfd that is not ours only makes it fail.
    let rc = unsafe { libc::waitid(libc::P_PIDFD, pidfd as libc::id_t, &mut info, libc::WEXITED) };
    if rc != 0 {
        // ECHILD: the host ignores SIGCHLD and the kernel reaped it.
        return Ended::Signaled(libc::SIGKILL);
    }
    // SAFETY: filled by waitid for a child that exited.
    let status = unsafe { info.si_status() };
    if info.si_code == libc::CLD_EXITED {
        Ended::Exited(status)
    } else {
        Ended::Signaled(status)
    }
}

/// Output accounting: at most a cap kept until the host takes it, a rate
/// per second allowed.
struct OutputMeter {
    /// Output kept per call.
    per_call: usize,
    /// Output allowed per second.
    per_sec: u64,
    /// When the current one-second window began.
    window: Instant,
    /// Bytes seen in it.
    window_bytes: u64,
}

impl OutputMeter {
    /// A meter for these limits, its window starting now.
    fn new(limits: &Limits) -> Self {
        OutputMeter {
            per_call: limits.output_per_call,
            per_sec: limits.output_per_sec,
            window: Instant::now(),
            window_bytes: 0,
        }
    }

    /// More output in this window than a second allows.
    fn flooded(&self) -> bool {
        self.window_bytes > self.per_sec
    }

    /// Reads what `fd` has; false at EOF. Stream 0 is stdout, 1 stderr.
    fn drain(&mut self, shared: &Shared, fd: RawFd, stream: usize) -> bool {
        let mut buf = [0u8; 16 * 1024];
        // SAFETY: reading into a local buffer from our pipe (non-blocking).
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n == 0 {
            return false;
        }
        if n < 0 {
            return std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
                || std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted;
        }
        let got = &buf[..n as usize];
        if self.window.elapsed() >= Duration::from_secs(1) {
            self.window = Instant::now();
            self.window_bytes = 0;
        }
        self.window_bytes += got.len() as u64;
        // Kept until the host takes it (`Sandbox::take_output`), at most
        // the cap; the rest is counted and dropped.
        let mut o = shared.observed();
        let out = &mut o.output;
        let kept = out.stdout.len() + out.stderr.len();
        let room = self.per_call.saturating_sub(kept).min(got.len());
        let target = if stream == 0 {
            &mut out.stdout
        } else {
            &mut out.stderr
        };
        target.extend_from_slice(&got[..room]);
        out.dropped += (got.len() - room) as u64;
        if log::log_enabled!(target: "minld::sandbox::plugin", log::Level::Info) {
            let name = if stream == 0 { "stdout" } else { "stderr" };
            log::info!(
                target: "minld::sandbox::plugin",
                "plugin {name}: {}",
                super::printable(&String::from_utf8_lossy(&got[..room]))
            );
        }
        true
    }
}
