//! What minld knows across loads, under one lock: the host's objects,
//! minld's own objects by file identity, the objects never to unload, and
//! each namespace's unique symbols.
//!
//! The lock is two-level. The loader lock ([`hold`]) is recursive for the
//! thread holding it, as glibc's `dl_load_lock` is: an init function or an
//! ifunc resolver that opens a library through minld takes it again, while
//! every other thread waits. The registry itself is borrowed under it
//! ([`Held::registry`]) only for short updates, never across code of the
//! loaded objects, so a nested load finds it free; a nested call that does
//! come while it is borrowed (code run in the middle of an update, such as
//! a `log` logger) is refused with [`Error::Reentrant`] instead of
//! deadlocking.
//!
//! minld is not async-signal-safe (nor is glibc's `dlopen`): a signal
//! handler that calls into minld is refused as above only if it interrupts
//! its thread while the registry is borrowed. If it interrupts the thread
//! while that thread takes or gives back the loader lock (inside
//! `owner_when_mine` or `Held`'s drop, which hold the lock's own state
//! mutex, `OWNER`), the handler deadlocks on that mutex; if another thread
//! holds the loader lock, it waits for it inside the handler.
//!
//! (See `docs/design.md`, "Nested opens: the recursive loader lock".)

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, TryLockError, Weak};

use crate::base::error::{Error, Reentry};
use crate::model::object::Object;
use crate::process::host::HostObjects;

/// One namespace's definitions of STB_GNU_UNIQUE symbols (one per name).
/// (A fixed-key hasher: the default one asks the kernel for random keys,
/// one more system call per process than glibc makes; these keys come from
/// files whose code the process runs anyway.)
pub(crate) type Uniques = HashMap<Vec<u8>, usize, FixedState>;

/// SipHash with fixed keys.
pub(crate) type FixedState =
    std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>;

/// What minld knows across loads: the host's objects, its own objects by
/// file identity, objects never to unload, unique symbols per namespace.
#[derive(Default)]
pub(crate) struct Registry {
    pub(crate) host: HostObjects,
    /// By (namespace, device, inode): a file is one object per namespace.
    pub(crate) by_file: HashMap<(u64, u64, u64), Weak<Object>, FixedState>,
    pub(crate) pinned: Vec<Arc<Object>>,
    /// By namespace (0: the default one): one table each, as glibc keeps
    /// one per link-map list, so no namespace binds another's definition.
    pub(crate) uniques: HashMap<u64, Uniques, FixedState>,
    /// minld's objects in the default namespace's global scope (RTLD_GLOBAL),
    /// in the order they joined it: searched by every later load after the
    /// host's startup objects, as glibc searches its global scope. Held
    /// weakly: an object leaves when it is unloaded (which its dependents'
    /// `Object::global_deps` prevent while they live).
    pub(crate) global: Vec<Weak<Object>>,
    /// Objects of a load under way on the lock's thread whose code may run
    /// (its ifunc resolvers) before the load registers them: a nested open
    /// from that code must not map them again, nor use them half done.
    pub(crate) unfinished: Vec<Weak<Object>>,
    /// Objects registered (in `by_file`) whose init functions have not run
    /// yet: an open nested in the init function of an object before them
    /// runs theirs first if it needs them, as glibc does, and the outer
    /// load then skips them.
    pub(crate) uninitialized: Vec<Weak<Object>>,
}

impl Registry {
    /// The unfinished object (see `unfinished`) that is the same file as
    /// `o` in the same namespace, if any.
    pub(crate) fn unfinished_like(&self, o: &Object) -> Option<Arc<Object>> {
        self.unfinished
            .iter()
            .filter_map(Weak::upgrade)
            .find(|u| u.dev_ino == o.dev_ino && u.namespace == o.namespace)
    }

    /// Takes `o` out of `uninitialized`: true if it was there (its init
    /// functions are now the caller's to run).
    pub(crate) fn claim_init(&mut self, o: &Arc<Object>) -> bool {
        let mine = |w: &Weak<Object>| std::ptr::eq(w.as_ptr(), Arc::as_ptr(o));
        let claimed = self.uninitialized.iter().any(mine);
        self.uninitialized
            .retain(|w| w.strong_count() > 0 && !mine(w));
        claimed
    }

    /// Whether `o` is registered and waits for its init functions.
    pub(crate) fn awaits_init(&self, o: &Arc<Object>) -> bool {
        self.uninitialized
            .iter()
            .any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(o)))
    }
}

/// The registry; its mutex is only ever taken by the loader lock's holder
/// (see [`Held::registry`]).
static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();

/// Who holds the loader lock, and how many times.
struct Owner {
    /// The holding thread (`pthread_self`, which is the same for the
    /// forking thread in a child of `fork`); meaningless at depth 0.
    thread: libc::pthread_t,
    /// How many times it holds it (nested opens hold it again).
    depth: usize,
    /// How many other threads wait for it (none: giving it back wakes
    /// nobody, and makes no system call).
    waiting: usize,
}

/// The loader lock's state.
static OWNER: Mutex<Owner> = Mutex::new(Owner {
    thread: 0,
    depth: 0,
    waiting: 0,
});
/// Signalled when the loader lock is given back for good (depth 0) while
/// other threads wait for it.
static FREED: Condvar = Condvar::new();

/// The calling thread, as the lock knows it.
fn me() -> libc::pthread_t {
    // SAFETY: pthread_self has no preconditions and makes no system call.
    unsafe { libc::pthread_self() }
}

/// The lock's state, once this thread may hold it: free or held by this
/// thread already (other threads are waited for).
fn owner_when_mine() -> MutexGuard<'static, Owner> {
    // A panic while holding the state's mutex leaves nothing half
    // updated (its updates are single stores): take it anyway.
    let mut o = OWNER.lock().unwrap_or_else(|p| p.into_inner());
    let me = me();
    while o.depth > 0 && o.thread != me {
        o.waiting += 1;
        o = FREED.wait(o).unwrap_or_else(|p| p.into_inner());
        o.waiting -= 1;
    }
    o.thread = me;
    o
}

/// Gives back one level of the lock held through `o`.
fn release(o: &mut Owner) {
    o.depth -= 1;
    if o.depth == 0 && o.waiting > 0 {
        FREED.notify_one();
    }
}

/// One level of the loader lock, held by this thread (not `Send`: it is
/// given back by the thread that took it). Dropping it gives it back.
pub(crate) struct Held {
    /// Makes it neither `Send` nor `Sync`.
    _this_thread: PhantomData<*const ()>,
}

/// Takes the loader lock: at once if this thread holds it already (a
/// nested open from code minld runs), else once no other thread does.
pub(crate) fn hold() -> Held {
    owner_when_mine().depth += 1;
    Held {
        _this_thread: PhantomData,
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        release(&mut OWNER.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// The registry, borrowed under the loader lock.
pub(crate) struct Borrowed<'a> {
    /// The registry's mutex, taken.
    guard: MutexGuard<'static, Registry>,
    /// Ties the borrow to the level of the lock it was made under.
    _held: PhantomData<&'a Held>,
}

impl std::ops::Deref for Borrowed<'_> {
    type Target = Registry;
    fn deref(&self) -> &Registry {
        &self.guard
    }
}
impl std::ops::DerefMut for Borrowed<'_> {
    fn deref_mut(&mut self) -> &mut Registry {
        &mut self.guard
    }
}

impl Held {
    /// Borrows the registry; `what` names the attempt for the error of a
    /// call made while this thread has it borrowed already (from code run
    /// in the middle of an update: no library's code runs there, but a
    /// `log` logger, or a signal handler, may): refused, not deadlocked.
    /// (A signal handler is safe only there: see the module's docs for
    /// where one deadlocks instead.)
    pub(crate) fn registry(&self, what: impl FnOnce() -> String) -> Result<Borrowed<'_>, Error> {
        let m = REGISTRY.get_or_init(Default::default);
        // Only the lock's holder (this thread) ever takes this mutex, so
        // finding it taken means this thread has it borrowed. A panic
        // while it was borrowed leaves nothing half-updated that matters
        // more than refusing every later load: take it anyway.
        let guard = match m.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Reentrant {
                    what: what(),
                    reason: Reentry::RegistryBusy,
                })
            }
        };
        Ok(Borrowed {
            guard,
            _held: PhantomData,
        })
    }
}

/// The loader lock and the registry borrowed under it, for a short look.
pub(crate) struct Locked {
    /// Declared first: given back before the lock.
    guard: MutexGuard<'static, Registry>,
    /// The level of the loader lock it was borrowed under.
    _held: Held,
}

impl std::ops::Deref for Locked {
    type Target = Registry;
    fn deref(&self) -> &Registry {
        &self.guard
    }
}
impl std::ops::DerefMut for Locked {
    fn deref_mut(&mut self) -> &mut Registry {
        &mut self.guard
    }
}

/// Takes the loader lock and borrows the registry (see [`Held::registry`]).
pub(crate) fn lock(what: &str) -> Result<Locked, Error> {
    let held = hold();
    let guard = held.registry(|| what.to_string())?.guard;
    Ok(Locked { guard, _held: held })
}

/// The loader lock held across a fork, with its state's mutex, so no
/// thread is half-way through taking it when the child is made. Taken
/// recursively when the forking thread holds it already (a fork from an
/// init function); in the child that thread is the same `pthread_self`.
struct ForkHold(MutexGuard<'static, Owner>);

impl Drop for ForkHold {
    fn drop(&mut self) {
        release(&mut self.0);
    }
}

/// The loader lock, held across a fork (see `fork`).
pub(crate) fn lock_for_fork() -> Box<dyn std::any::Any> {
    let mut o = owner_when_mine();
    o.depth += 1;
    Box::new(ForkHold(o))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// The lock is recursive for its thread, and a borrow of the registry
    /// while this thread has it borrowed is refused, not deadlocked.
    #[test]
    fn recursive_for_its_thread_and_a_second_borrow_is_refused() {
        let outer = hold();
        let inner = hold();
        let borrowed = inner.registry(|| "first".into()).unwrap();
        match outer.registry(|| "second".into()) {
            Err(Error::Reentrant { what, reason }) => {
                assert_eq!(what, "second");
                assert_eq!(reason, Reentry::RegistryBusy);
            }
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("the registry borrowed twice"),
        }
        drop(borrowed);
        assert!(outer.registry(|| "third".into()).is_ok());
    }

    /// Another thread waits until every level is given back.
    #[test]
    fn other_threads_wait_for_the_last_level() {
        static TAKEN: AtomicBool = AtomicBool::new(false);
        let outer = hold();
        let inner = hold();
        let other = std::thread::spawn(|| {
            let _held = hold();
            TAKEN.store(true, Ordering::SeqCst);
        });
        drop(inner);
        // Still held (one level): the other thread cannot have it.
        assert!(!TAKEN.load(Ordering::SeqCst));
        drop(outer);
        other.join().unwrap();
        assert!(TAKEN.load(Ordering::SeqCst));
    }
}
