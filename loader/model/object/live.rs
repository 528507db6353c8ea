//! The objects minld has mapped, by address: what `addr_info`, the
//! unwinder's `_dl_find_object` and `__cxa_thread_atexit_impl` ask ("which
//! library is this address in?").
//!
//! It has its own lock, separate from the loader's, because those questions
//! come from code running inside a load (an init function registering a
//! `thread_local` destructor) and from any thread at any time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, Weak};

use crate::model::object::Object;

struct Entry {
    start: usize,
    end: usize,
    /// Real address of PT_GNU_EH_FRAME (.eh_frame_hdr), 0 without one.
    eh_frame_hdr: usize,
    /// The namespace it was loaded in (0: the default one).
    namespace: u64,
    object: Weak<Object>,
}

static LIVE: RwLock<Vec<Entry>> = RwLock::new(Vec::new());

/// How many objects have ever been added to the index (`dlpi_adds`).
static ADDS: AtomicU64 = AtomicU64::new(0);
/// How many have ever been removed from it (`dlpi_subs`).
static SUBS: AtomicU64 = AtomicU64::new(0);

/// How many objects have been added to the index and removed from it since
/// the process started (what `dl_iterate_phdr` reports as `dlpi_adds` and
/// `dlpi_subs`, so that a cache keyed on them notices every change).
pub(crate) fn counts() -> (u64, u64) {
    (ADDS.load(Ordering::Acquire), SUBS.load(Ordering::Acquire))
}

fn read() -> RwLockReadGuard<'static, Vec<Entry>> {
    LIVE.read().unwrap_or_else(|p| p.into_inner())
}

/// The index's lock, held across a fork (see `fork`).
pub(crate) fn lock_for_fork() -> Box<dyn std::any::Any> {
    Box::new(LIVE.write().unwrap_or_else(|p| p.into_inner()))
}

/// Adds a newly mapped object spanning `start..end`, of `namespace`.
pub(crate) fn insert(
    start: usize,
    end: usize,
    eh_frame_hdr: usize,
    namespace: u64,
    object: Weak<Object>,
) {
    let mut v = LIVE.write().unwrap_or_else(|p| p.into_inner());
    v.push(Entry {
        start,
        end,
        eh_frame_hdr,
        namespace,
        object,
    });
    ADDS.fetch_add(1, Ordering::Release);
}

/// Removes the object mapped at `start` (called as it is unmapped).
pub(crate) fn remove(start: usize) {
    let mut v = LIVE.write().unwrap_or_else(|p| p.into_inner());
    let before = v.len();
    v.retain(|e| e.start != start);
    if v.len() != before {
        SUBS.fetch_add(1, Ordering::Release);
    }
}

/// Every live object, each with a reference taken.
pub(crate) fn all() -> Vec<Arc<Object>> {
    read().iter().filter_map(|e| e.object.upgrade()).collect()
}

/// Every live object, each with a reference taken, and [`counts`] as they
/// were at that moment (read under the same lock).
pub(crate) fn snapshot() -> (Vec<Arc<Object>>, (u64, u64)) {
    let v = read();
    let objects = v.iter().filter_map(|e| e.object.upgrade()).collect();
    (objects, counts())
}

/// The live object whose mapping contains `addr`.
pub(crate) fn object_at(addr: usize) -> Option<Arc<Object>> {
    read()
        .iter()
        .find(|e| addr >= e.start && addr < e.end)
        .and_then(|e| e.object.upgrade())
}

/// [`object_at`] without waiting: None also when the index is being
/// changed at this moment (by another thread, or by this one, interrupted
/// by the signal handler asking), so that a handler never blocks on it.
pub(crate) fn try_object_at(addr: usize) -> Option<Arc<Object>> {
    let v = match LIVE.try_read() {
        Ok(v) => v,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return None,
    };
    v.iter()
        .find(|e| addr >= e.start && addr < e.end)
        .and_then(|e| e.object.upgrade())
}

/// The mapping (start, end) and .eh_frame_hdr of the object containing
/// `addr`, without taking a reference to it (for the unwinder, which must
/// not be the one to drop the last reference).
pub(crate) fn frames_at(addr: usize) -> Option<(usize, usize, usize)> {
    read()
        .iter()
        .find(|e| addr >= e.start && addr < e.end)
        .map(|e| (e.start, e.end, e.eh_frame_hdr))
}

/// The namespace of the object whose mapping contains `addr`, also while
/// the object runs its fini functions (no reference is taken).
pub(crate) fn namespace_at(addr: usize) -> Option<u64> {
    read()
        .iter()
        .find(|e| addr >= e.start && addr < e.end)
        .map(|e| e.namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signal handler interrupting this thread while it changes the
    /// index gets None at once instead of waiting for itself forever.
    #[test]
    fn asking_while_the_index_changes_does_not_wait() {
        let addr = asking_while_the_index_changes_does_not_wait as fn() as usize;
        let held = LIVE.write().unwrap_or_else(|p| p.into_inner());
        assert!(try_object_at(addr).is_none());
        drop(held);
        // Unheld, it answers (the test's own code is no object of minld's).
        assert!(try_object_at(addr).is_none());
        assert!(LIVE.try_read().is_ok());
    }
}
