//! The host's watcher: one thread per runner, which started it (so the
//! runner's PR_SET_PDEATHSIG, tied to the thread that forked it, fires
//! exactly when the sandbox goes away), and which from then on is the
//! host's eyes on it:
//!
//! - it holds the seccomp listener: every call the serving filter does
//!   not allow stops in the kernel and comes here, with its number, ABI
//!   and arguments. A granted `openat` goes on; an `fstat`-like
//!   `newfstatat` is answered here; anything else kills the runner, and
//!   the call is recorded as the host saw it;
//! - it drains the runner's stdout and stderr (pipes), keeping at most a
//!   cap per call and killing a runner that floods;
//! - it charges the runner's CPU time (all threads, from `/proc`) against
//!   a budget per call and a budget per second while idle, so a plugin
//!   that answers early and keeps running is stopped;
//! - it reaps the runner (`waitid` on a pidfd) and records how it ended.
//!
//! What it records is the host's observation; the shared region's words
//! are the runner's (the plugin's) and are never taken as facts here.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::landlock::Access;
use super::shm::Region;

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
    Syscall { nr: i64, abi: SyscallAbi },
    /// An open of a path no grant covers (the path as read by the host).
    Open { path: PathBuf, flags: i32 },
    /// CPU time over the budget.
    Cpu {
        used: Duration,
        budget: Duration,
        idle: bool,
    },
    /// More output per second than allowed.
    Flood { bytes: u64, limit: u64 },
}

/// How the runner ended, from `waitid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    Exited(i32),
    Signaled(i32),
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
    pub(super) killed: Option<Kill>,
    pub(super) ended: Option<Ended>,
    pub(super) output: Output,
}

/// Limits the watcher enforces.
#[derive(Debug, Clone)]
pub(super) struct Limits {
    pub(super) call_cpu: Duration,
    pub(super) idle_cpu_per_sec: Duration,
    pub(super) output_per_call: usize,
    pub(super) output_per_sec: u64,
    pub(super) grants: Vec<(PathBuf, Access)>,
}

/// Between the sandbox and its watcher.
pub(super) struct Shared {
    pub(super) observed: Mutex<Observed>,
    /// A call is in progress (set and cleared by the sandbox).
    pub(super) in_call: AtomicBool,
    /// Counts calls, so the watcher sees a new one start.
    pub(super) calls: AtomicU64,
    /// The seccomp listener, once the host took it (-1 before).
    pub(super) listener: AtomicI32,
    /// eventfd that wakes the watcher from poll.
    pub(super) wake: OwnedFd,
    pub(super) region: Arc<Region>,
}

impl Shared {
    pub(super) fn new(region: Arc<Region>) -> std::io::Result<Shared> {
        // SAFETY: plain system call; the descriptor is ours.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Shared {
            observed: Mutex::default(),
            in_call: AtomicBool::new(false),
            calls: AtomicU64::new(0),
            listener: AtomicI32::new(-1),
            // SAFETY: a fresh descriptor nobody else owns.
            wake: unsafe { OwnedFd::from_raw_fd(fd) },
            region,
        })
    }

    pub(super) fn observed(&self) -> std::sync::MutexGuard<'_, Observed> {
        self.observed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the watcher's poll.
    pub(super) fn poke(&self) {
        let one: u64 = 1;
        // SAFETY: an 8-byte write to our eventfd.
        unsafe { libc::write(self.wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
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
    pub(super) pidfd: OwnedFd,
    pub(super) stdout: OwnedFd,
    pub(super) stderr: OwnedFd,
}

/// The watcher's loop, until the runner is reaped.
pub(super) fn run(shared: &Shared, pipes: Pipes, pid: i32, limits: &Limits) {
    let mut out = OutputMeter::new(limits);
    let mut cpu = CpuMeter::new(pid);
    let mut listener: Option<OwnedFd> = None;
    let mut open = [true, true]; // stdout, stderr not at EOF
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
            let ended = reap(pipes.pidfd.as_raw_fd());
            shared.observed().ended = Some(ended);
            super::shm::futex_wake(&shared.region.header().state);
            return;
        }
        // Until the runner is locked down (the host holds its listener),
        // only minld's loader runs there: its time is the start's, bounded
        // by the start timeout, not the plugin's idleness.
        if listener.is_none() {
            cpu.rebase();
        } else if let Some(why) = cpu.check(shared, limits) {
            shared.kill(pipes.pidfd.as_raw_fd(), why);
        }
    }
}

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// How the child ended (it has: its pidfd was readable).
fn reap(pidfd: RawFd) -> Ended {
    // SAFETY: waitid into a local siginfo.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
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
    per_call: usize,
    per_sec: u64,
    window: Instant,
    window_bytes: u64,
}

impl OutputMeter {
    fn new(limits: &Limits) -> Self {
        OutputMeter {
            per_call: limits.output_per_call,
            per_sec: limits.output_per_sec,
            window: Instant::now(),
            window_bytes: 0,
        }
    }

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

/// CPU accounting from `/proc/<pid>/stat` (every thread's time).
struct CpuMeter {
    stat: PathBuf,
    last: Option<Duration>,
    calls_seen: u64,
    call_used: Duration,
    idle_window: Instant,
    idle_used: Duration,
}

impl CpuMeter {
    fn new(pid: i32) -> Self {
        CpuMeter {
            stat: PathBuf::from(format!("/proc/{pid}/stat")),
            last: None,
            calls_seen: 0,
            call_used: Duration::ZERO,
            idle_window: Instant::now(),
            idle_used: Duration::ZERO,
        }
    }

    /// utime + stime of the whole process.
    fn read(&self) -> Option<Duration> {
        let s = std::fs::read_to_string(&self.stat).ok()?;
        // The command name is in parentheses and may hold spaces.
        let rest = &s[s.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        // Fields 14 and 15 overall; 3 is the first after the name.
        let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        // SAFETY: plain sysconf.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Some(Duration::from_nanos(ticks * 1_000_000_000 / hz))
    }

    /// Starts the next check's interval now, charging nothing.
    fn rebase(&mut self) {
        self.last = self.read().or(self.last);
    }

    /// Charges the time since the last check to the call in progress or to
    /// idleness; the reason to kill, if a budget is exceeded.
    fn check(&mut self, shared: &Shared, limits: &Limits) -> Option<Kill> {
        let now = self.read()?;
        let delta = now.saturating_sub(self.last.unwrap_or(now));
        self.last = Some(now);
        // A sample in which a call started (or that ends inside one) is
        // the calls' time: a host calling back to back leaves gaps shorter
        // than a sample, whose work is not idleness.
        let calls = shared.calls.load(Ordering::Acquire);
        let started = calls != self.calls_seen;
        if started {
            self.calls_seen = calls;
            self.call_used = Duration::ZERO;
        }
        if shared.in_call.load(Ordering::Acquire) || started {
            self.call_used += delta;
            if self.call_used > limits.call_cpu {
                return Some(Kill::Cpu {
                    used: self.call_used,
                    budget: limits.call_cpu,
                    idle: false,
                });
            }
            return None;
        }
        if self.idle_window.elapsed() >= Duration::from_secs(1) {
            self.idle_window = Instant::now();
            self.idle_used = Duration::ZERO;
        }
        self.idle_used += delta;
        (self.idle_used > limits.idle_cpu_per_sec).then_some(Kill::Cpu {
            used: self.idle_used,
            budget: limits.idle_cpu_per_sec,
            idle: true,
        })
    }
}

// The seccomp user-notification interface (linux/seccomp.h).
#[repr(C)]
#[derive(Default)]
struct SeccompData {
    nr: i32,
    arch: u32,
    ip: u64,
    args: [u64; 6],
}
#[repr(C)]
#[derive(Default)]
struct Notif {
    id: u64,
    pid: u32,
    flags: u32,
    data: SeccompData,
}
#[repr(C)]
struct NotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}
const NOTIF_RECV: libc::c_ulong = 0xc050_2100;
const NOTIF_SEND: libc::c_ulong = 0xc018_2101;
const NOTIF_ID_VALID: libc::c_ulong = 0x4008_2102;
const FLAG_CONTINUE: u32 = 1;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

/// Answers a stopped system call.
fn respond(listener: RawFd, id: u64, val: i64, error: i32, flags: u32) {
    let r = NotifResp {
        id,
        val,
        error,
        flags,
    };
    // SAFETY: the documented ioctl with a valid response struct. It fails
    // harmlessly if the thread is gone.
    unsafe { libc::ioctl(listener, NOTIF_SEND, &r as *const NotifResp) };
}

/// Receives one notification and decides it.
fn notification(shared: &Shared, listener: RawFd, pidfd: RawFd, limits: &Limits) {
    let mut n = Notif::default();
    // SAFETY: the documented ioctl into a zeroed struct of the right size.
    if unsafe { libc::ioctl(listener, NOTIF_RECV, &mut n as *mut Notif) } != 0 {
        return;
    }
    let d = &n.data;
    let nr = i64::from(d.nr);
    if d.arch != AUDIT_ARCH_X86_64 {
        return shared.kill(
            pidfd,
            Kill::Syscall {
                nr,
                abi: SyscallAbi::I386,
            },
        );
    }
    if nr & 0x4000_0000 != 0 {
        return shared.kill(
            pidfd,
            Kill::Syscall {
                nr: nr & !0x4000_0000,
                abi: SyscallAbi::X32,
            },
        );
    }
    let tid = n.pid as i32;
    let (dirfd, path_at, flags) = match nr {
        libc::SYS_openat => (d.args[0] as i32, d.args[1], d.args[2] as i32),
        libc::SYS_open => (libc::AT_FDCWD, d.args[0], d.args[1] as i32),
        libc::SYS_newfstatat => {
            return stat(shared, listener, &n, pidfd, limits);
        }
        libc::SYS_statx => return respond(listener, n.id, 0, -libc::ENOSYS, 0),
        _ => {
            return shared.kill(
                pidfd,
                Kill::Syscall {
                    nr,
                    abi: SyscallAbi::X86_64,
                },
            )
        }
    };
    let Some(path) = read_path(tid, dirfd, path_at) else {
        return respond(listener, n.id, 0, -libc::EFAULT, 0);
    };
    if !still_valid(listener, n.id) {
        return;
    }
    let writes = flags & (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC) != 0;
    if granted(&limits.grants, &path, writes) {
        // Landlock decides for real, on the path the kernel resolves.
        respond(listener, n.id, 0, 0, FLAG_CONTINUE);
    } else {
        shared.kill(pidfd, Kill::Open { path, flags });
    }
}

/// `newfstatat`: glibc's fstat (an empty path with AT_EMPTY_PATH) is
/// answered from the descriptor the host copies out of the runner; a
/// path beneath a grant from the host's own stat of the path it read
/// (never letting the kernel re-read a path a racing thread could swap);
/// anything else gets EACCES.
fn stat(shared: &Shared, listener: RawFd, n: &Notif, pidfd: RawFd, limits: &Limits) {
    let d = &n.data;
    let tid = n.pid as i32;
    let (dirfd, path_at, buf, flags) = (d.args[0] as i32, d.args[1], d.args[2], d.args[3] as i32);
    let raw = read_cstr(tid, path_at);
    let st = match raw.as_deref() {
        Some(b"") if flags & libc::AT_EMPTY_PATH != 0 => fstat_of(pidfd, dirfd),
        Some(_) => match read_path(tid, dirfd, path_at) {
            Some(p) if granted(&limits.grants, &p, false) => lstat_or_stat(&p, flags),
            Some(_) => Err(libc::EACCES),
            None => Err(libc::EFAULT),
        },
        None => Err(libc::EFAULT),
    };
    if !still_valid(listener, n.id) {
        return;
    }
    let _ = shared;
    match st {
        Ok(st) => {
            let bytes = (&st as *const libc::stat).cast::<u8>();
            let len = std::mem::size_of::<libc::stat>();
            if write_mem(tid, buf, bytes, len) {
                respond(listener, n.id, 0, 0, 0);
            } else {
                respond(listener, n.id, 0, -libc::EFAULT, 0);
            }
        }
        Err(e) => respond(listener, n.id, 0, -e, 0),
    }
}

fn fstat_of(pidfd: RawFd, fd: i32) -> Result<libc::stat, i32> {
    // SAFETY: copies the runner's descriptor into ours (we own the result).
    let mine = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) };
    if mine < 0 {
        return Err(libc::EBADF);
    }
    // SAFETY: a fresh descriptor of ours.
    let mine = unsafe { OwnedFd::from_raw_fd(mine as i32) };
    // SAFETY: fstat into a local.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(mine.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    Ok(st)
}

fn lstat_or_stat(path: &Path, flags: i32) -> Result<libc::stat, i32> {
    let c =
        std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| libc::EINVAL)?;
    // SAFETY: stat into a local, on a NUL-terminated path.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let nofollow = flags & libc::AT_SYMLINK_NOFOLLOW;
    if unsafe { libc::fstatat(libc::AT_FDCWD, c.as_ptr(), &mut st, nofollow) } != 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    Ok(st)
}

/// The notification still stands for the same thread (not a recycled id).
fn still_valid(listener: RawFd, id: u64) -> bool {
    // SAFETY: the documented ioctl with a pointer to the id.
    unsafe { libc::ioctl(listener, NOTIF_ID_VALID, &id as *const u64) == 0 }
}

/// Reads a NUL-terminated string of the runner's (at most 4 KiB).
fn read_cstr(tid: i32, at: u64) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut addr = at;
    while out.len() < 4096 {
        // Never across a page boundary in one read: the next may be
        // unmapped while the string ends before it.
        let chunk = (4096 - (addr % 4096)) as usize;
        let mut buf = vec![0u8; chunk];
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: chunk,
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: chunk,
        };
        // SAFETY: reads into our own buffer; the remote side is checked by
        // the kernel.
        let n = unsafe { libc::process_vm_readv(tid, &local, 1, &remote, 1, 0) };
        if n <= 0 {
            return None;
        }
        let got = &buf[..n as usize];
        if let Some(end) = got.iter().position(|&b| b == 0) {
            out.extend_from_slice(&got[..end]);
            return Some(out);
        }
        out.extend_from_slice(got);
        addr += n as u64;
    }
    None
}

/// Writes `len` bytes at `at` in the runner.
fn write_mem(tid: i32, at: u64, bytes: *const u8, len: usize) -> bool {
    let local = libc::iovec {
        iov_base: bytes as *mut libc::c_void,
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: at as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: reads `len` bytes of ours; the remote side is checked by the
    // kernel.
    unsafe { libc::process_vm_writev(tid, &local, 1, &remote, 1, 0) == len as isize }
}

/// The path a call names, made absolute against the runner's working
/// directory or `dirfd`, with `.` and `..` folded (no symlink is
/// followed: Landlock judges the path the kernel really resolves).
fn read_path(tid: i32, dirfd: i32, at: u64) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let raw = read_cstr(tid, at)?;
    let path = Path::new(std::ffi::OsStr::from_bytes(&raw));
    let full = if path.is_absolute() {
        path.to_path_buf()
    } else {
        let base = if dirfd == libc::AT_FDCWD {
            format!("/proc/{tid}/cwd")
        } else {
            format!("/proc/{tid}/fd/{dirfd}")
        };
        std::fs::read_link(base).ok()?.join(path)
    };
    let mut out = PathBuf::from("/");
    for c in full.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Some(out)
}

/// Whether a grant covers `path` (for writing, a read-write one).
fn granted(grants: &[(PathBuf, Access)], path: &Path, writes: bool) -> bool {
    grants
        .iter()
        .any(|(g, a)| path.starts_with(g) && (!writes || *a == Access::ReadWrite))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_cover_paths_beneath() {
        let g = vec![
            (PathBuf::from("/data/in"), Access::Read),
            (PathBuf::from("/data/out"), Access::ReadWrite),
        ];
        assert!(granted(&g, Path::new("/data/in/a.txt"), false));
        assert!(!granted(&g, Path::new("/data/in/a.txt"), true));
        assert!(granted(&g, Path::new("/data/out/b"), true));
        assert!(!granted(&g, Path::new("/data/inside"), false));
        assert!(!granted(&g, Path::new("/etc/passwd"), false));
    }
}
