//! What can go wrong with a sandbox, told apart by who says so: what the
//! host observed itself (a signal from `waitid`, a system call from the
//! seccomp notification, CPU time from its clocks), what minld reported
//! before any plugin code ran, and what the runner claims after it did
//! (which the plugin can forge, and the messages label as a claim). Text
//! that comes from the plugin is shown with its control characters
//! escaped.

use std::path::PathBuf;
use std::time::Duration;

use super::sysnames;
use super::watch::{Ended, Kill, SyscallAbi};

/// What went wrong with a call (or a start).
#[derive(Debug)]
pub enum SandboxError {
    /// The runner could not be started.
    Spawn(std::io::Error),
    /// An option the kernel cannot give (sizes that overflow, a mapping
    /// larger than the address space).
    BadOption {
        /// The builder method.
        option: &'static str,
        /// The value given.
        value: u128,
        /// Why it cannot be.
        why: &'static str,
    },
    /// The kernel has no Landlock (or a seccomp profile around the host
    /// refuses it) and the host did not opt in to running without it
    /// ([`super::Builder::allow_without_landlock`]).
    LandlockUnavailable,
    /// minld could not load the plugin, or the runner could not lock
    /// itself down: the runner's message, sent before any plugin code ran.
    Load(String),
    /// The runner said it was locked down, but `/proc/<pid>/status` says
    /// otherwise: the field and what it held.
    NotLockedDown {
        /// The field of `/proc/<pid>/status`.
        field: &'static str,
        /// Its value.
        found: String,
    },
    /// After the plugin's code started, the runner reported that its
    /// initialisation or a function lookup failed. Its claim: the plugin
    /// could have written it.
    Init {
        /// The message, as the runner wrote it.
        claimed: String,
    },
    /// The plugin did not finish its start (linking, init functions)
    /// within the start timeout; the runner was killed.
    StartTimeout(Duration),
    /// The shared header held a state the protocol does not have at that
    /// point: the plugin wrote it. The runner was killed.
    Protocol {
        /// The state word found.
        state: u32,
    },
    /// `call` named a function not given to the builder.
    NoSuchFunction(String),
    /// The input does not fit the request (or shared) buffer.
    InputTooLarge {
        /// The input's length.
        len: usize,
        /// The buffer's size.
        cap: usize,
    },
    /// The plugin returned a negative value: its own error code.
    Plugin(isize),
    /// The plugin claimed to write more than the response buffer holds.
    BadResponse(isize),
    /// The call took longer than the timeout; the runner was killed
    /// (SIGKILL). `restart` to go on.
    Timeout(Duration),
    /// The plugin made a system call outside the allow-list; the host saw
    /// it stop in the kernel (seccomp notification) and killed the runner.
    ForbiddenSyscall {
        /// The system call's number in its ABI.
        nr: i64,
        /// The ABI it came through.
        abi: SyscallAbi,
    },
    /// The plugin opened a path no grant covers; the host read the path
    /// from the stopped call and killed the runner.
    ForbiddenOpen {
        /// The path, made absolute.
        path: PathBuf,
        /// The open flags.
        flags: i32,
    },
    /// The plugin named a path no grant covers (for a call that changes
    /// it, no read-write grant) in a call on paths other than open and
    /// stat (access, readlink, mkdir, unlink, rmdir, rename); the host
    /// read the path from the stopped call and killed the runner.
    ForbiddenPath {
        /// The system call's number (x86-64).
        nr: i64,
        /// The path, made absolute.
        path: PathBuf,
    },
    /// The runner used more CPU time than its budget: during a call, or
    /// per second while no call was in progress (a plugin that answered
    /// and went on running). It was killed.
    CpuBudget {
        /// The CPU time used.
        used: Duration,
        /// The budget.
        budget: Duration,
        /// While idle (per second), or during a call.
        idle: bool,
    },
    /// The plugin wrote more to stdout and stderr in one second than
    /// allowed. It was killed.
    OutputFlood {
        /// Bytes written in that second.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// The runner died of a signal (from `waitid`): SIGSEGV, SIGBUS,
    /// SIGABRT, SIGXCPU (RLIMIT_CPU), SIGKILL... `claimed_addr` is the
    /// faulting address the runner's handler reported: its claim.
    Crashed {
        /// The signal.
        signal: i32,
        /// The faulting address the runner reported, if any.
        claimed_addr: Option<u64>,
    },
    /// The runner exited (from `waitid`).
    Exited(i32),
    /// The runner is not running: it died in an earlier call.
    Dead,
}

/// `s` with control characters escaped (plugin text on a terminal).
pub(super) fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\n' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

impl std::fmt::Display for SandboxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Spawn(e) => write!(f, "cannot start the sandbox: {e}"),
            Self::BadOption { option, value, why } => {
                write!(f, "sandbox option {option}({value}): {why}")
            }
            Self::LandlockUnavailable => write!(
                f,
                "Landlock is unavailable on this kernel (or refused by a seccomp profile): \
                 the plugin could open any file the host can; refusing to start \
                 (Builder::allow_without_landlock to accept that)"
            ),
            Self::Load(m) => write!(f, "the sandbox could not load the plugin: {}", printable(m)),
            Self::NotLockedDown { field, found } => write!(
                f,
                "the runner is not locked down: /proc status field {field} is {}",
                printable(found)
            ),
            Self::Init { claimed } => write!(
                f,
                "the plugin's start failed, the runner claims (after plugin code ran): {}",
                printable(claimed)
            ),
            Self::StartTimeout(d) => write!(
                f,
                "the plugin did not finish starting within {d:?}: it was killed (SIGKILL)"
            ),
            Self::Protocol { state } => write!(
                f,
                "protocol violation: state {state} in the shared header; the runner was killed"
            ),
            Self::NoSuchFunction(n) => write!(f, "no function {} was declared", printable(n)),
            Self::InputTooLarge { len, cap } => {
                write!(f, "input of {len} bytes is larger than the buffer ({cap})")
            }
            Self::Plugin(c) => write!(f, "the plugin returned error {c}"),
            Self::BadResponse(n) => write!(f, "the plugin returned {n}, past its output buffer"),
            Self::Timeout(d) => write!(f, "no answer after {d:?}: the plugin was killed (SIGKILL)"),
            Self::ForbiddenSyscall { nr, abi } => {
                let name = match abi {
                    SyscallAbi::X86_64 => sysnames::name(*nr).unwrap_or("unknown"),
                    SyscallAbi::X32 => "x32 ABI",
                    SyscallAbi::I386 => "i386 ABI",
                };
                write!(
                    f,
                    "the plugin made a forbidden system call: {name} ({nr}); it was killed"
                )
            }
            Self::ForbiddenOpen { path, flags } => write!(
                f,
                "the plugin opened {} (flags {flags:#o}), which no grant covers; it was killed",
                printable(&path.display().to_string())
            ),
            Self::ForbiddenPath { nr, path } => write!(
                f,
                "the plugin called {} ({nr}) on {}, which no grant covers; it was killed",
                sysnames::name(*nr).unwrap_or("unknown"),
                printable(&path.display().to_string())
            ),
            Self::CpuBudget { used, budget, idle } => write!(
                f,
                "the plugin used {used:?} of CPU {}, over its budget of {budget:?}; it was killed",
                if *idle {
                    "in one second between calls"
                } else {
                    "in one call"
                }
            ),
            Self::OutputFlood { bytes, limit } => write!(
                f,
                "the plugin wrote {bytes} bytes of output in one second (limit {limit}); it was killed"
            ),
            Self::Crashed {
                signal,
                claimed_addr,
            } => {
                write!(f, "the plugin died of {}", signal_name(*signal))?;
                if *signal == libc::SIGXCPU {
                    write!(f, " (CPU time limit)")?;
                }
                if let Some(a) = claimed_addr {
                    write!(f, " (at address {a:#x}: the runner's claim, not observed by the host)")?;
                }
                Ok(())
            }
            Self::Exited(c) => write!(f, "the sandbox exited with status {c}"),
            Self::Dead => write!(f, "the sandbox is not running (restart it)"),
        }
    }
}

impl std::error::Error for SandboxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Spawn(e) => Some(e),
            _ => None,
        }
    }
}

/// The error for a runner that ended: why the host killed it if it did,
/// else how it ended (`claimed`: the signal and address its handler
/// wrote, used only for an address it reports with the same signal).
pub(super) fn death_error(
    killed: Option<Kill>,
    ended: Option<Ended>,
    claimed: (i32, u64),
) -> SandboxError {
    match killed {
        Some(Kill::Syscall { nr, abi }) => return SandboxError::ForbiddenSyscall { nr, abi },
        Some(Kill::Open { path, flags }) => return SandboxError::ForbiddenOpen { path, flags },
        Some(Kill::Path { nr, path }) => return SandboxError::ForbiddenPath { nr, path },
        Some(Kill::Cpu { used, budget, idle }) => {
            return SandboxError::CpuBudget { used, budget, idle }
        }
        Some(Kill::Flood { bytes, limit }) => return SandboxError::OutputFlood { bytes, limit },
        None => {}
    }
    match ended {
        Some(Ended::Exited(c)) => SandboxError::Exited(c),
        Some(Ended::Signaled(signal)) => SandboxError::Crashed {
            signal,
            claimed_addr: (claimed.0 == signal && claimed.1 != u64::MAX).then_some(claimed.1),
        },
        None => SandboxError::Crashed {
            signal: libc::SIGKILL,
            claimed_addr: None,
        },
    }
}

/// `SIGSEGV` for 11: glibc's abbreviation, or "signal N" for a number it
/// does not name.
fn signal_name(sig: i32) -> String {
    extern "C" {
        // glibc 2.32+: "SEGV" for SIGSEGV; NULL for an unknown number.
        fn sigabbrev_np(sig: libc::c_int) -> *const libc::c_char;
    }
    // SAFETY: returns a static string or NULL.
    let p = unsafe { sigabbrev_np(sig) };
    if p.is_null() {
        format!("signal {sig}")
    } else {
        // SAFETY: `p` is not null, and sigabbrev_np returns a pointer to a
        // NUL-terminated string in glibc's static table, valid for ever.
        let name = unsafe { std::ffi::CStr::from_ptr(p) };
        format!("SIG{}", name.to_string_lossy())
    }
}
