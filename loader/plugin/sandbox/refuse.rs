//! The host's other answer to a call on a path no grant covers: EACCES,
//! recorded for the host to read, instead of killing the runner
//! ([`Builder::refuse_forbidden_paths`]).

use super::watch::Refusals;
use super::{Builder, Sandbox};

impl Builder {
    /// An open, access, readlink, mkdir, unlink, rmdir or rename of a path
    /// no grant covers (nor the public system files) fails with EACCES, as
    /// the host read the path from the stopped call, and is recorded
    /// ([`Sandbox::take_refused`]), instead of killing the runner (the
    /// default). The host answers without looking at the path: the plugin
    /// learns nothing of what is there. Other forbidden system calls still
    /// kill the runner.
    pub fn refuse_forbidden_paths(mut self) -> Self {
        self.refuse_paths = true;
        self
    }
}

impl Sandbox {
    /// The calls refused with EACCES since the last call of this
    /// ([`Builder::refuse_forbidden_paths`]; at most [`Refusals::KEPT`],
    /// the rest counted), as the host observed them. Empty when no runner
    /// is running (a runner that died takes its record with it).
    pub fn take_refused(&mut self) -> Refusals {
        match &self.running {
            Some(r) => std::mem::take(&mut r.shared.observed().refused),
            None => Refusals::default(),
        }
    }
}
