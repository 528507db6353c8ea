//! The host's side of the control pipe: the records a runner sends
//! before any plugin code runs (`FAIL`, `LOCK`, `ZYGO`), read against the
//! start's deadline, and the one wait-for-input-with-a-deadline that the
//! spawn and the zygote share.

use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

/// One record: a 4-byte tag, a 4-byte length, the payload (64 KiB at most).
/// `Err(Some(()))`: the deadline passed; `Err(None)`: end of file (the
/// runner died).
pub(super) fn read_record(
    ctl: &mut std::fs::File,
    deadline: Option<Instant>,
) -> Result<([u8; 4], Vec<u8>), Option<()>> {
    let mut head = [0u8; 8];
    read_exact(ctl, &mut head, deadline)?;
    let len = (u32::from_le_bytes(head[4..].try_into().unwrap_or_default()) as usize).min(64 << 10);
    let mut payload = vec![0u8; len];
    read_exact(ctl, &mut payload, deadline)?;
    Ok((head[..4].try_into().unwrap_or_default(), payload))
}

/// Fills `buf` from the control pipe: `Err(Some(()))` when the deadline
/// passed, `Err(None)` at its end or on an error.
fn read_exact(
    ctl: &mut std::fs::File,
    buf: &mut [u8],
    deadline: Option<Instant>,
) -> Result<(), Option<()>> {
    let mut done = 0;
    while done < buf.len() {
        if !readable_by(ctl.as_raw_fd(), deadline) {
            return Err(Some(()));
        }
        match ctl.read(&mut buf[done..]) {
            Ok(0) => return Err(None),
            Ok(k) => done += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(None),
        }
    }
    Ok(())
}

/// Waits until `fd` is readable (or at its end, or in error: the read that
/// follows tells which) or `deadline` passes (`None`: no deadline). False
/// only when the deadline passed first. A signal does not cut the wait
/// short.
pub(super) fn readable_by(fd: RawFd, deadline: Option<Instant>) -> bool {
    loop {
        let wait = deadline.map_or(-1, |d| {
            d.saturating_duration_since(Instant::now())
                .as_millis()
                .min(i32::MAX as u128) as i32
        });
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, on the stack for the call's duration.
        let n = unsafe { libc::poll(&mut p, 1, wait) };
        if n >= 0 {
            return n > 0;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return true;
        }
    }
}
