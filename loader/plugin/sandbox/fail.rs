//! Why a runner stops before any plugin code has run. The runner tells the
//! host over the control pipe as text (a `FAIL` record, shown to the
//! caller as [`SandboxError::Load`](super::SandboxError::Load)); inside the
//! crate the failure is typed, and turned into that text only where it is
//! written to the pipe ([`runner::fail_early`](super::runner::fail_early)).

use super::config::ConfigError;

/// A failure of the runner's steps 1–5 (see `runner`).
#[derive(Debug, thiserror::Error)]
pub(super) enum RunnerError {
    /// A zygote's fork could not map its own shared region.
    #[error("the fork's region: {0}")]
    ForkRegion(#[source] std::io::Error),
    /// The configuration the host wrote does not fit the region.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The fatal-signal handlers could not be installed.
    #[error("signal handlers: {0}")]
    SignalHandlers(#[source] std::io::Error),
    /// `PR_SET_NO_NEW_PRIVS` was refused.
    #[error("PR_SET_NO_NEW_PRIVS: {0}")]
    NoNewPrivs(#[source] std::io::Error),
    /// The capabilities could not be cleared.
    #[error("capset: {0}")]
    Capset(#[source] std::io::Error),
    /// A resource limit could not be set.
    #[error("setrlimit({resource}): {source}")]
    Rlimit {
        /// The `RLIMIT_*` number.
        resource: libc::__rlimit_resource_t,
        /// What `setrlimit` said.
        #[source]
        source: std::io::Error,
    },
    /// A Landlock layer could not be installed.
    #[error("Landlock ({layer} layer): {source}")]
    Landlock {
        /// `"linking"` or `"serving"`.
        layer: &'static str,
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },
    /// A seccomp filter could not be installed.
    #[error("seccomp ({stage}): {source}")]
    Seccomp {
        /// `"linking"` or `"serving"`.
        stage: &'static str,
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },
    /// minld could not link the plugin.
    #[error(transparent)]
    Link(#[from] crate::Error),
    /// The host did not take the serving filter's listener in time.
    #[error("the host never took the seccomp listener")]
    ListenerNotTaken,
}
