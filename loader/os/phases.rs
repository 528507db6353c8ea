//! `MINLD_DEBUG=statistics`: where a load's time goes, phase by phase, as
//! glibc's `LD_DEBUG=statistics` splits its startup time.
//!
//! A load's thread keeps one clock. Entering a phase charges the time since
//! the last switch to the phase that was running, so every phase's time is
//! its own (a symbol lookup inside relocation is not relocation's), and the
//! phases add up to the load. Page faults are counted the same way, from
//! `getrusage(RUSAGE_THREAD)` at each switch, except around symbol lookups,
//! which switch thousands of times per load: their faults stay with the
//! relocation that asked. With statistics off nothing is measured: not a
//! clock read, not a system call.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use crate::os::debug::{self, Category};

/// A phase of a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Reading the host's objects (glibc's link map) for the scope.
    Host,
    /// Finding the file: search paths, ld.so.cache, linker scripts.
    Search,
    /// Opening, reading and checking the headers.
    Validate,
    /// Mapping the segments and reading the dynamic section.
    Map,
    /// Reading the symbol and version tables, registering TLS.
    Tables,
    /// Looking symbols up in the scope.
    Lookup,
    /// Applying relocations (and the RELRO protection after them).
    Relocate,
    /// Running ifunc resolvers and init functions.
    Init,
    /// The link cache: finding and proving a record, or writing one.
    Cache,
    /// Everything else: the DT_NEEDED walk, version checks, ordering,
    /// registering with the debugger and the unwinder.
    Other,
}

/// The phases in the order they are printed.
const PHASES: [Phase; 10] = [
    Phase::Host,
    Phase::Search,
    Phase::Validate,
    Phase::Map,
    Phase::Tables,
    Phase::Lookup,
    Phase::Relocate,
    Phase::Init,
    Phase::Cache,
    Phase::Other,
];

impl Phase {
    /// Its name in the statistics.
    fn name(self) -> &'static str {
        match self {
            Phase::Host => "host objects",
            Phase::Search => "search",
            Phase::Validate => "read and validate",
            Phase::Map => "map",
            Phase::Tables => "symbol tables",
            Phase::Lookup => "symbol lookup",
            Phase::Relocate => "relocation",
            Phase::Init => "ifuncs and init",
            Phase::Cache => "link cache",
            Phase::Other => "other",
        }
    }

    /// Whether switching to or from it counts page faults.
    fn counts_faults(self) -> bool {
        self != Phase::Lookup
    }
}

/// The clock of one load.
struct Clock {
    /// The phase running (None while paused, between `Loader::prepare` and
    /// `Prepared::run`).
    current: Option<Phase>,
    /// When `current` started.
    since: Instant,
    /// This thread's page faults when the last fault-counting switch was
    /// made.
    faults_at: u64,
    /// Time per phase, indexed as `PHASES`.
    time: [Duration; PHASES.len()],
    /// Page faults per phase.
    faults: [u64; PHASES.len()],
}

thread_local! {
    /// The clock of the load this thread is making, if statistics are on.
    static CLOCK: RefCell<Option<Clock>> = const { RefCell::new(None) };
}

/// This thread's minor and major page faults so far.
fn thread_faults() -> u64 {
    // SAFETY: getrusage writes one rusage into the zeroed value we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_THREAD is this thread's own counters.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) } != 0 {
        return 0;
    }
    (u.ru_minflt + u.ru_majflt) as u64
}

fn index(p: Phase) -> usize {
    PHASES
        .iter()
        .position(|&q| q == p)
        .unwrap_or(PHASES.len() - 1)
}

impl Clock {
    /// Charges what ran since the last switch to the running phase and
    /// makes `next` the running one; returns the phase it replaced.
    fn switch(&mut self, next: Option<Phase>) -> Option<Phase> {
        let now = Instant::now();
        let count =
            self.current.is_none_or(Phase::counts_faults) && next.is_none_or(Phase::counts_faults);
        let faults = if count {
            thread_faults()
        } else {
            self.faults_at
        };
        if let Some(p) = self.current {
            self.time[index(p)] += now - self.since;
            if count {
                self.faults[index(p)] += faults.saturating_sub(self.faults_at);
            }
        }
        if count {
            self.faults_at = faults;
        }
        self.since = now;
        std::mem::replace(&mut self.current, next)
    }
}

/// Starts this thread's clock for a load, in phase `Other`, if statistics
/// are on and no load of this thread is being measured (an open from an
/// init function is part of the outer load's).
pub(crate) fn start() {
    if !debug::enabled(Category::Statistics) {
        return;
    }
    let _ = CLOCK.try_with(|c| {
        let mut c = c.borrow_mut();
        // A paused clock is a prepared load never run: this is a new one.
        if c.as_ref().is_none_or(|c| c.current.is_none()) {
            *c = Some(Clock {
                current: Some(Phase::Other),
                since: Instant::now(),
                faults_at: thread_faults(),
                time: [Duration::ZERO; PHASES.len()],
                faults: [0; PHASES.len()],
            });
        }
    });
}

/// Switches this thread's clock, if it runs, to `next`; the phase it
/// replaced, to switch back to.
fn switch(next: Option<Phase>) -> Option<Option<Phase>> {
    if !debug::enabled(Category::Statistics) {
        return None;
    }
    CLOCK
        .try_with(|c| c.borrow_mut().as_mut().map(|c| c.switch(next)))
        .ok()
        .flatten()
}

/// A phase entered; dropping it returns to the phase that ran before.
pub(crate) struct Entered(Option<Option<Phase>>);

impl Drop for Entered {
    fn drop(&mut self) {
        if let Some(prev) = self.0 {
            switch(prev);
        }
    }
}

/// Enters phase `p` until the returned guard is dropped.
#[inline]
pub(crate) fn enter(p: Phase) -> Entered {
    Entered(switch(Some(p)))
}

/// Pauses the clock: what runs until [`resume`] is not the load's.
pub(crate) fn pause() {
    switch(None);
}

/// Resumes a paused clock, in phase `Other`.
pub(crate) fn resume() {
    switch(Some(Phase::Other));
}

/// Stops this thread's clock without printing (a failed load, or one the
/// host's glibc answered).
pub(crate) fn discard() {
    let _ = CLOCK.try_with(|c| c.borrow_mut().take());
}

/// Stops this thread's clock and prints, for the load of `name`, each
/// phase's time and page faults and the total.
pub(crate) fn report(name: &str, objects: usize) {
    if !debug::enabled(Category::Statistics) {
        return;
    }
    let Ok(Some(mut clock)) = CLOCK.try_with(|c| c.borrow_mut().take()) else {
        return;
    };
    clock.switch(None);
    let total: Duration = clock.time.iter().sum();
    let faults: u64 = clock.faults.iter().sum();
    debug::print(format_args!(
        "{name}: {objects} new object(s), {:.1} µs in all, {faults} page faults:",
        total.as_secs_f64() * 1e6
    ));
    for (i, p) in PHASES.iter().enumerate() {
        let t = clock.time[i].as_secs_f64() * 1e6;
        let share = if total.is_zero() {
            0.0
        } else {
            100.0 * clock.time[i].as_secs_f64() / total.as_secs_f64()
        };
        let f = if p.counts_faults() {
            format!("{:>6} page faults", clock.faults[i])
        } else {
            "     (faults counted with relocation)".to_string()
        };
        debug::print(format_args!(
            "  {:<18} {t:>10.1} µs {share:>5.1} % {f}",
            p.name()
        ));
    }
}
