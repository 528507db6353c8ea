//! Many instances of one plugin, cheaply: a zygote is a runner that links
//! the plugin (step 4 of `runner.rs`: mapped, relocated, none of its code
//! run) and then, instead of locking down and running it, forks on the
//! host's request. Each fork is an ordinary runner from step 5 on: its own
//! region and pipes (passed over a socket), its own serving lock-down,
//! listener, init functions, watcher. It skips the exec, the dynamic
//! linking of the runner itself and the plugin's relocation, and shares
//! the zygote's relocated pages until it writes them.
//!
//! The zygote never runs plugin code, so what it says (the fork's pid) is
//! minld's word; the host still checks the pid is its own child (the fork
//! is made with CLONE_PARENT, so the host reaps it and sees how it died).
//! A fork dies with the zygote's watcher thread (PR_SET_PDEATHSIG), which
//! lives as long as the last instance: each holds the zygote.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::runner::{self, FD_GRANTED};
use super::spawn::{self, Running};
use super::{Builder, Config, Sandbox, SandboxError};

/// The descriptors each fork gets, in order: its stdin, stdout, stderr,
/// region and control pipe (0 to 4 in the fork).
const PASSED: usize = 5;

/// A zygote of one plugin ([`Builder::zygote`]): [`Zygote::instance`]
/// forks a sandbox from it.
#[derive(Clone)]
pub struct Zygote {
    inner: Arc<Inner>,
}

pub(super) struct Inner {
    opts: Builder,
    /// The host's end of the request socket (the zygote's stdin).
    sock: OwnedFd,
    /// One request at a time.
    lock: Mutex<()>,
    /// The zygote process (kept, and killed at the end, like a runner).
    _process: Running,
}

impl Builder {
    /// Starts a zygote of the plugin with these options, to fork
    /// instances from ([`Zygote::instance`]).
    pub fn zygote(self) -> Result<Zygote, SandboxError> {
        let parts = spawn::parts(&self, true)?;
        let mut pair = [0; 2];
        // SAFETY: socketpair into a local array.
        if unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                pair.as_mut_ptr(),
            )
        } != 0
        {
            return Err(SandboxError::Spawn(std::io::Error::last_os_error()));
        }
        // SAFETY: two fresh descriptors we own.
        let (ours, theirs) =
            unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
        let (process, ctl) = spawn::exec(&self, parts, Some(theirs))?;
        let deadline = process.started.checked_add(self.start_timeout);
        let mut ctl = std::fs::File::from(ctl);
        match spawn::read_record(&mut ctl, deadline) {
            Ok((tag, _)) if &tag == b"ZYGO" => {}
            Ok((tag, msg)) if &tag == b"FAIL" => {
                return Err(process.failed(Some(SandboxError::Load(
                    String::from_utf8_lossy(&msg).into_owned(),
                ))))
            }
            Ok(_) => {
                return Err(process.failed(Some(SandboxError::Load(
                    "the zygote sent a malformed control record".into(),
                ))))
            }
            Err(Some(())) => {
                return Err(process.failed(Some(SandboxError::StartTimeout(self.start_timeout))))
            }
            Err(None) => return Err(process.failed(None)),
        }
        Ok(Zygote {
            inner: Arc::new(Inner {
                opts: self,
                sock: ours,
                lock: Mutex::new(()),
                _process: process,
            }),
        })
    }
}

impl Zygote {
    /// A new instance: a fork of the zygote, locked down and initialised
    /// as [`Builder::spawn`] would have started it. Its
    /// [`Sandbox::restart`] forks again.
    pub fn instance(&self) -> Result<Sandbox, SandboxError> {
        let mut sb = Sandbox {
            opts: self.inner.opts.clone(),
            running: None,
            zygote: Some(self.inner.clone()),
        };
        sb.restart()?;
        Ok(sb)
    }

    /// The zygote process's id.
    pub fn pid(&self) -> u32 {
        self.inner._process.pid as u32
    }
}

/// Asks the zygote for a fork and takes it as far as its lock-down.
pub(super) fn fork(z: &Inner, o: &Builder) -> Result<Running, SandboxError> {
    let parts = spawn::parts(o, false)?;
    let devnull = std::fs::File::open("/dev/null").map_err(SandboxError::Spawn)?;
    let fds: [RawFd; PASSED] = [
        devnull.as_raw_fd(),
        parts.stdout.1.as_raw_fd(),
        parts.stderr.1.as_raw_fd(),
        parts.memfd.as_raw_fd(),
        parts.control.1.as_raw_fd(),
    ];
    let pid = {
        let _one = z.lock.lock().unwrap_or_else(|p| p.into_inner());
        send_fds(z.sock.as_raw_fd(), &fds).map_err(SandboxError::Spawn)?;
        let deadline = parts.started.checked_add(o.start_timeout);
        read_pid(z.sock.as_raw_fd(), deadline)?
    };
    drop(devnull);
    // Our copies of what the fork holds go with `parts`.
    let (mut running, ctl) = Running::adopt(pid, parts)?;
    let deadline = running.started.checked_add(o.start_timeout);
    match spawn::lock_down(&mut running, ctl, deadline, o.start_timeout) {
        Ok(()) => Ok(running),
        Err(e) => Err(running.failed(e)),
    }
}

fn send_fds(sock: RawFd, fds: &[RawFd; PASSED]) -> std::io::Result<()> {
    let byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_ptr() as *mut libc::c_void,
        iov_len: 1,
    };
    let payload = std::mem::size_of_val(fds) as u32;
    // SAFETY: CMSG_SPACE is a size computation.
    let space = unsafe { libc::CMSG_SPACE(payload) } as usize;
    let mut cmsg = vec![0u8; space];
    // SAFETY: a zeroed msghdr pointing at our iovec and control buffer.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: the control buffer has room for one header with `payload`
    // bytes (CMSG_SPACE); the macros stay inside it.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(payload) as usize;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c).cast(), PASSED);
        if libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) != 1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The zygote's answer: the fork's pid, or a negative errno.
fn read_pid(sock: RawFd, deadline: Option<Instant>) -> Result<i32, SandboxError> {
    let wait = deadline.map_or(-1, |d| {
        d.saturating_duration_since(Instant::now())
            .as_millis()
            .min(i32::MAX as u128) as i32
    });
    let mut p = libc::pollfd {
        fd: sock,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    if unsafe { libc::poll(&mut p, 1, wait) } != 1 {
        return Err(SandboxError::StartTimeout(
            deadline.map_or(Duration::ZERO, |d| {
                d.saturating_duration_since(Instant::now())
            }),
        ));
    }
    let mut buf = [0u8; 4];
    // SAFETY: reading into a local buffer.
    let n = unsafe { libc::read(sock, buf.as_mut_ptr().cast(), 4) };
    if n != 4 {
        return Err(SandboxError::Spawn(std::io::Error::other(
            "the zygote is gone",
        )));
    }
    let pid = i32::from_le_bytes(buf);
    if pid <= 0 {
        return Err(SandboxError::Spawn(std::io::Error::from_raw_os_error(-pid)));
    }
    Ok(pid)
}

/// The zygote's side: announce itself, then fork on each request until
/// the host closes the socket. Runs under the linking stage; no plugin
/// code runs here, only in the forks, after their own lock-down.
pub(super) fn serve_forks(prepared: crate::Prepared, abi: u32, host: i32) -> ! {
    runner::control(b"ZYGO", &abi.to_le_bytes());
    // SAFETY: closing our own control pipe: the zygote says nothing more.
    unsafe { libc::close(runner::FD_CONTROL) };
    let mut prepared = Some(prepared);
    loop {
        let Some(fds) = recv_fds(0) else {
            // SAFETY: the host is gone; leave at once.
            unsafe { libc::_exit(0) }
        };
        // SAFETY: a fork (no CLONE_VM) whose parent is the host's, so the
        // host reaps it; SIGCHLD tells the host when it ends.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong,
                0,
                0,
                0,
                0,
            )
        };
        if pid == 0 {
            become_fork(&fds, prepared.take(), abi, host);
        }
        for fd in fds {
            // SAFETY: our copies of what the fork got.
            unsafe { libc::close(fd) };
        }
        let answer = if pid < 0 {
            -std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EAGAIN)
        } else {
            pid as i32
        };
        // SAFETY: four bytes of ours to the host's socket.
        unsafe { libc::write(0, answer.to_le_bytes().as_ptr().cast(), 4) };
    }
}

/// In the fork: its descriptors in place, then an ordinary runner from
/// the lock-down on.
fn become_fork(fds: &[RawFd], prepared: Option<crate::Prepared>, abi: u32, host: i32) -> ! {
    let Some(prepared) = prepared else {
        // SAFETY: cannot happen (each fork takes the zygote's one copy,
        // in its own memory); leave.
        unsafe { libc::_exit(113) }
    };
    // SAFETY: our own descriptors; the granted ones (5 and up) stay.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 || libc::getppid() != host {
            libc::_exit(111);
        }
        // Out of the way first (the lowest free numbers from 5 up: never a
        // granted one, which are open), so no target overwrites a source.
        let mut moved = [0; PASSED];
        for (i, &fd) in fds.iter().enumerate() {
            moved[i] = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, FD_GRANTED);
        }
        for (target, &fd) in moved.iter().enumerate() {
            if fd < 0 || libc::dup2(fd, target as i32) < 0 {
                libc::_exit(112);
            }
        }
    }
    let region = match runner::map_region() {
        Ok(r) => r,
        Err(e) => runner::fail_early(&format!("the fork's region: {e}")),
    };
    let cfg = match Config::read(&region) {
        Ok(c) => c,
        Err(e) => runner::fail_early(&e),
    };
    runner::become_instance(region, prepared, cfg, abi, host)
}

/// One request: a byte with PASSED descriptors. None at end of file.
fn recv_fds(sock: RawFd) -> Option<Vec<RawFd>> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let payload = (PASSED * std::mem::size_of::<RawFd>()) as u32;
    // SAFETY: CMSG_SPACE is a size computation.
    let space = unsafe { libc::CMSG_SPACE(payload) } as usize;
    let mut cmsg = vec![0u8; space];
    // SAFETY: a zeroed msghdr pointing at our iovec and control buffer.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = space;
    loop {
        // SAFETY: recvmsg into the buffers above.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            return None;
        }
        break;
    }
    // SAFETY: the kernel filled the control buffer; the macros stay in it.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null()
            || (*c).cmsg_type != libc::SCM_RIGHTS
            || (*c).cmsg_len != libc::CMSG_LEN(payload) as usize
        {
            return None;
        }
        let mut fds = vec![0 as RawFd; PASSED];
        std::ptr::copy_nonoverlapping(libc::CMSG_DATA(c).cast::<RawFd>(), fds.as_mut_ptr(), PASSED);
        Some(fds)
    }
}
