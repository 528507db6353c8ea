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

use super::control;
use super::spawn::{self, Running};
use super::{Builder, Sandbox, SandboxError};

/// The descriptors each fork gets, in order: its stdin, stdout, stderr,
/// region and control pipe (0 to 4 in the fork).
pub(super) const PASSED: usize = 5;

/// A zygote of one plugin ([`Builder::zygote`]): [`Zygote::instance`]
/// forks a sandbox from it.
#[derive(Clone)]
pub struct Zygote {
    /// Shared by the clones of this handle.
    inner: Arc<Inner>,
}

/// A zygote's state.
pub(super) struct Inner {
    /// The options every instance is made with.
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
        match control::read_record(&mut ctl, deadline) {
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

/// Sends one request to the zygote: a byte, with the descriptors of the
/// fork to make (SCM_RIGHTS).
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
    if !control::readable_by(sock, deadline) {
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
