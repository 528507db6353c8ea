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
//!
//! Loads nest: an init function or an ifunc resolver may open a library
//! (same thread, under the recursive loader lock). Each load's
//! [`Measure`] owns one clock on the thread's stack; phases are charged to
//! the innermost, and the outer load's running phase (its init or ifunc
//! phase) keeps its clock running through the nested load.

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
    /// `Prepared::run`, and once stopped).
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
    /// The clocks of the loads this thread is making, if statistics are on:
    /// the last is the innermost (an open nested in an init function of
    /// another load has a clock of its own on top of the outer one's).
    static CLOCKS: RefCell<Vec<Clock>> = const { RefCell::new(Vec::new()) };
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

/// The measurement of one load: its clock on this thread's stack while
/// it runs, kept aside while it is paused (between `Loader::prepare` and
/// `Prepared::run`). Dropping it without [`Measure::report`] discards it
/// (a failed load, or one the host's glibc answered).
pub(crate) struct Measure(State);

/// Where a [`Measure`]'s clock is.
enum State {
    /// Statistics are off, or it ended.
    Off,
    /// Running, at this index of the thread's stack.
    Running(usize),
    /// Paused: taken off the stack.
    Paused(Box<Clock>),
}

/// Starts a clock for a load, in phase `Other`, if statistics are on. A
/// load nested in an init function of another (same thread) gets a clock
/// of its own on top; the outer one keeps running, so the outer load's
/// "ifuncs and init" includes the nested load, which is also reported
/// on its own.
pub(crate) fn start() -> Measure {
    if !debug::enabled(Category::Statistics) {
        return Measure(State::Off);
    }
    let clock = Clock {
        current: Some(Phase::Other),
        since: Instant::now(),
        faults_at: thread_faults(),
        time: [Duration::ZERO; PHASES.len()],
        faults: [0; PHASES.len()],
    };
    Measure(push(Box::new(clock)))
}

/// Puts `clock` on top of this thread's stack.
fn push(clock: Box<Clock>) -> State {
    CLOCKS
        .try_with(|c| {
            let mut c = c.borrow_mut();
            c.push(*clock);
            State::Running(c.len() - 1)
        })
        .unwrap_or(State::Off)
}

/// Switches this thread's innermost clock, if one runs, to `next`; the
/// phase it replaced, to switch back to.
fn switch(next: Option<Phase>) -> Option<Option<Phase>> {
    if !debug::enabled(Category::Statistics) {
        return None;
    }
    CLOCKS
        .try_with(|c| c.borrow_mut().last_mut().map(|c| c.switch(next)))
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

impl Measure {
    /// Takes this load's clock off the stack (with the clocks of loads
    /// nested in it, should one have been left there).
    fn take(&mut self) -> Option<Clock> {
        let State::Running(at) = std::mem::replace(&mut self.0, State::Off) else {
            return None;
        };
        CLOCKS
            .try_with(|c| {
                let mut c = c.borrow_mut();
                c.truncate(at + 1);
                (c.len() == at + 1).then(|| c.pop()).flatten()
            })
            .ok()
            .flatten()
    }

    /// Pauses the clock: what runs until [`Measure::resume`] is not the
    /// load's.
    pub(crate) fn pause(&mut self) {
        if let Some(mut clock) = self.take() {
            clock.switch(None);
            self.0 = State::Paused(Box::new(clock));
        }
    }

    /// Resumes a paused clock, in phase `Other`, on top of this thread's
    /// stack (the thread that runs the prepared load).
    pub(crate) fn resume(&mut self) {
        if !matches!(self.0, State::Paused(_)) {
            return;
        }
        if let State::Paused(clock) = std::mem::replace(&mut self.0, State::Off) {
            self.0 = push(clock);
            switch(Some(Phase::Other));
        }
    }

    /// Stops the clock and prints, for the load of `name`, each phase's
    /// time and page faults and the total.
    pub(crate) fn report(&mut self, name: &str, objects: usize) {
        if let Some(clock) = self.take() {
            print(clock, name, objects);
        }
    }
}

impl Default for Measure {
    /// A measurement that measures nothing.
    fn default() -> Self {
        Measure(State::Off)
    }
}

impl Drop for Measure {
    fn drop(&mut self) {
        self.take();
    }
}

/// Prints a stopped clock's report.
fn print(mut clock: Clock, name: &str, objects: usize) {
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
