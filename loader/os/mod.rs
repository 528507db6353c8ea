//! The system-call boundary: every call minld makes to the kernel for a
//! load goes through `sys`, which prints it in strace's format when traced
//! (`trace`), the link cache's file calls through `files`; `debug` prints `MINLD_DEBUG` diagnostics.

pub(crate) mod debug;
pub(crate) mod files;
pub(crate) mod memfd;
pub(crate) mod phases;
pub(crate) mod sys;
pub(crate) mod trace;
