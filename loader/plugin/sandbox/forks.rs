//! The zygote's own side (see `zygote.rs` for the host's): after linking,
//! it forks on each request; each fork becomes an ordinary runner from the
//! lock-down on.

use std::os::fd::RawFd;

use super::fail::RunnerError;
use super::runner;
use super::shm::{Region, FD_GRANTED};
use super::Config;

/// The descriptors each fork gets, in order: its stdin, stdout, stderr,
/// region and control pipe (0 to 4 in the fork).
const PASSED: usize = super::zygote::PASSED;

/// The zygote's side: announce itself, then fork on each request until
/// the host closes the socket. Runs under the linking stage; no plugin
/// code runs here, only in the forks, after their own lock-down.
///
/// The zygote's own region is unmapped first: a fork inherits every
/// mapping, and that one is MAP_SHARED with the zygote and so with every
/// other fork, a channel between instances the host would never see.
pub(super) fn serve_forks(region: Region, prepared: crate::Prepared, abi: u32, host: i32) -> ! {
    runner::control(b"ZYGO", &abi.to_le_bytes());
    // SAFETY: closing our own control pipe: the zygote says nothing more.
    unsafe { libc::close(super::shm::FD_CONTROL) };
    runner::unmap_region(region);
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
        Err(e) => runner::fail_early(&RunnerError::ForkRegion(e)),
    };
    let cfg = match Config::read(&region) {
        Ok(c) => c,
        Err(e) => runner::fail_early(&e.into()),
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
