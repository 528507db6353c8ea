//! Anonymous in-memory files (`memfd_create`), traced like every other
//! call minld makes: the static-TLS reservation (`process::tls::surplus`)
//! writes the small object glibc opens into one.

use std::ffi::CStr;

use nix::errno::Errno;

use crate::os::sys::{Fd, Note, Sys};
use crate::os::trace;

impl Sys {
    /// `memfd_create(name, MFD_CLOEXEC)`: a new empty file in memory,
    /// closed (traced) when the returned [`Fd`] is dropped.
    pub(crate) fn memfd_create(&self, name: &CStr, note: impl Note) -> Result<Fd, Errno> {
        // SAFETY: `name` is NUL-terminated; memfd_create only reads it.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        let ret = if fd < 0 { Err(Errno::last()) } else { Ok(fd) };
        if self.trace {
            let call = format!(
                "memfd_create({}, MFD_CLOEXEC)",
                trace::quote_path(name.to_bytes())
            );
            self.emit(call, &Self::result_of(ret.map(|fd| fd.to_string())), note);
        }
        ret.map(|raw| Fd::new(raw, *self))
    }
}
