//! What minld knows across loads, under one lock: the host's objects,
//! minld's own objects by file identity, the objects never to unload, and
//! each namespace's unique symbols.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use crate::base::error::Error;
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
}

static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();

thread_local! {
    static HELD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The loader lock, like glibc's `dl_load_lock`; refuses re-entry from the
/// same thread (an init function calling minld) instead of deadlocking.
pub(crate) struct Locked {
    guard: MutexGuard<'static, Registry>,
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
impl Drop for Locked {
    fn drop(&mut self) {
        HELD.with(|h| h.set(false));
    }
}

/// The loader lock, held across a fork (see `fork`); None when this thread
/// holds it already (a fork from an init function).
pub(crate) fn lock_for_fork() -> Option<Box<dyn std::any::Any>> {
    if HELD.with(|h| h.get()) {
        return None;
    }
    let m = REGISTRY.get_or_init(Default::default);
    Some(Box::new(m.lock().unwrap_or_else(|p| p.into_inner())))
}

pub(crate) fn lock(what: &str) -> Result<Locked, Error> {
    if HELD.with(|h| h.get()) {
        return Err(Error::Reentrant {
            what: what.to_string(),
        });
    }
    let m = REGISTRY.get_or_init(Default::default);
    // A panic while holding the lock leaves nothing half-updated that
    // matters more than refusing every later load: take it anyway.
    let guard = m.lock().unwrap_or_else(|p| p.into_inner());
    HELD.with(|h| h.set(true));
    Ok(Locked { guard })
}
