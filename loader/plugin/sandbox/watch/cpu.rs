//! The runner's CPU time, charged to calls and to idleness.
//!
//! The host reads the runner's CPU clock (the kernel's process CPU-time
//! clock: every thread's time, in nanoseconds, one `clock_gettime` and no
//! descriptor) exactly at each call's boundaries: just before it posts a
//! request and just after it sees the answer. What the runner used
//! between those two reads is the call's; everything else is idle time,
//! however often the host calls. Between boundaries the watcher reads the
//! same clock about every 100 ms, so a runner spinning through a long
//! call or a long idle stretch is stopped without waiting for a call.
//!
//! The watcher thread's own CPU time, all spent on the runner's behalf
//! (deciding its stopped system calls, draining its output, watching it),
//! is charged to it too (`Ledger::charge_host`), read on the watcher
//! thread's CPU clock.
//!
//! The kernel brings the time of a thread running on another CPU up to
//! date at its scheduler ticks (and when it sleeps), so a read can miss
//! the current tick's part of a running thread; the next read counts it.
//! Nothing is lost or counted twice (each interval is charged from the
//! last read), but a tick's worth can land on the wrong side of a
//! boundary.
//!
//! After each answer the runner's own loop spins for the next request
//! (`Builder::spin`, the host's setting, never a word the plugin can
//! write), then goes to sleep on the futex. So each call end adds that
//! spin plus [`LOOP_COST`] to a credit of forgiven idle time, which holds
//! at most one call's worth plus [`STALE`] (a late tick landing in a
//! gap). A host calling fast does not get its runner killed for minld's
//! own loop; a plugin that spins between calls gets at most that
//! allowance per call (what the runner's loop may use anyway) and
//! [`STALE`] once, never more than the host's calls pay for.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Kill, Limits};

/// The runner's own work per gap besides spinning: going to sleep on the
/// futex and waking (8-22 µs per gap measured with a debug-built runner
/// on a loaded machine; generous here).
const LOOP_COST: Duration = Duration::from_micros(50);

/// How late the kernel may be with a running thread's time: one
/// scheduler tick at 100 Hz, the slowest common setting.
const STALE: Duration = Duration::from_millis(10);

/// The CPU-time clock of process `pid` (all its threads); None if the
/// kernel gives none (the process is gone).
fn process_clock(pid: i32) -> Option<libc::clockid_t> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: writes one clockid_t into our local.
    let rc = unsafe { libc::clock_getcpuclockid(pid, &mut clock) };
    (rc == 0).then_some(clock)
}

/// The calling thread's CPU time.
pub(super) fn thread_time() -> Duration {
    read(libc::CLOCK_THREAD_CPUTIME_ID).unwrap_or_default()
}

/// The time on `clock` (a CPU-time clock); None if it fails.
fn read(clock: libc::clockid_t) -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes one timespec into our local.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// The account: what was charged where, and the first budget exceeded.
#[derive(Debug)]
pub(super) struct Ledger {
    /// The runner's clock; None until the host arms the ledger (the
    /// runner is locked down) and nothing is charged.
    clock: Option<libc::clockid_t>,
    /// The runner's CPU time at the last read (everything before it is
    /// charged).
    charged: Duration,
    /// A call is in progress (between the host's two reads).
    in_call: bool,
    /// CPU time charged to the call in progress (or the last one).
    call_used: Duration,
    /// Idle CPU time still forgiven (the runner's own loop, paid for by
    /// the calls).
    credit: Duration,
    /// When the current one-second idle window began.
    window: Instant,
    /// Idle CPU time charged in it.
    idle_used: Duration,
    /// CPU time a call may use.
    call_budget: Duration,
    /// Idle CPU time a second may hold.
    idle_budget: Duration,
    /// The first budget exceeded, for the watcher to kill for.
    over: Option<Kill>,
}

impl Ledger {
    /// An account against `limits`, not armed yet.
    pub(super) fn new(limits: &Limits) -> Self {
        Ledger {
            clock: None,
            charged: Duration::ZERO,
            in_call: false,
            call_used: Duration::ZERO,
            credit: Duration::ZERO,
            window: Instant::now(),
            idle_used: Duration::ZERO,
            call_budget: limits.call_cpu,
            idle_budget: limits.idle_cpu_per_sec,
            over: None,
        }
    }

    /// Starts charging runner `pid`'s time from now. The start (the
    /// plugin's ifunc resolvers and init functions, until READY) is
    /// charged like a call, against the call budget: a constructor that
    /// computes is not a plugin running between calls. Nothing is charged
    /// if its clock cannot be had (it is gone: the watcher sees that on
    /// its pidfd).
    pub(super) fn arm(&mut self, pid: i32) {
        let Some(clock) = process_clock(pid) else {
            return;
        };
        self.clock = Some(clock);
        self.in_call = true;
        self.call_used = Duration::ZERO;
        self.window = Instant::now();
        self.charged = read(clock).unwrap_or(self.charged);
    }

    /// Charges the time since the last read to the call in progress or to
    /// idleness; `gone` is checked after the read (a reaped runner's pid
    /// may name another process). The first budget exceeded is recorded.
    pub(super) fn charge(&mut self, gone: &AtomicBool) {
        let Some(now) = self.clock.and_then(read) else {
            return;
        };
        if gone.load(Ordering::SeqCst) {
            return;
        }
        let delta = now.saturating_sub(self.charged);
        self.charged = self.charged.max(now);
        self.account(delta);
    }

    /// CPU time the host's watcher spent on the runner's behalf (deciding
    /// its stopped system calls, draining its output): charged as the
    /// runner's own, where it falls (a plugin that makes the host answer
    /// a flood of calls pays for the answers). Nothing before the ledger
    /// is armed.
    pub(super) fn charge_host(&mut self, spent: Duration) {
        if self.clock.is_some() {
            self.account(spent);
        }
    }

    /// Adds `delta` to the call in progress or to idleness, recording the
    /// first budget exceeded.
    fn account(&mut self, mut delta: Duration) {
        if self.in_call {
            self.call_used += delta;
            if self.call_used > self.call_budget {
                self.over.get_or_insert(Kill::Cpu {
                    used: self.call_used,
                    budget: self.call_budget,
                    idle: false,
                });
            }
            return;
        }
        let forgiven = delta.min(self.credit);
        self.credit -= forgiven;
        delta -= forgiven;
        if self.window.elapsed() >= Duration::from_secs(1) {
            self.window = Instant::now();
            self.idle_used = Duration::ZERO;
        }
        self.idle_used += delta;
        if self.idle_used > self.idle_budget {
            self.over.get_or_insert(Kill::Cpu {
                used: self.idle_used,
                budget: self.idle_budget,
                idle: true,
            });
        }
    }

    /// A call starts: what came before is idle time.
    pub(super) fn begin(&mut self, gone: &AtomicBool) {
        self.charge(gone);
        self.in_call = true;
        self.call_used = Duration::ZERO;
    }

    /// The call's answer is seen: what came before is the call's; the
    /// runner's loop until the next request (its spin, `spin`, and going
    /// to sleep) is forgiven.
    pub(super) fn end(&mut self, gone: &AtomicBool, spin: Duration) {
        self.charge(gone);
        self.in_call = false;
        let per_call = spin.saturating_add(LOOP_COST);
        self.credit = self
            .credit
            .saturating_add(per_call)
            .min(per_call.saturating_add(STALE));
    }

    /// The first budget exceeded, if one was.
    pub(super) fn over(&self) -> Option<Kill> {
        self.over.clone()
    }
}
