//! `fork()` while another thread holds one of minld's locks: the child
//! would inherit the lock held by a thread it does not have, and hang at
//! its next load or first TLS access. As glibc does for its own loader
//! locks, minld takes every lock of its own before the fork (in a fixed
//! order: the loader, the address index, TLS, the debugger's list) and
//! releases them after it, in the parent and in the child.
//!
//! (See `docs/design.md`, "Fork safety of minld's locks".)

use std::any::Any;
use std::cell::RefCell;
use std::sync::Once;

use crate::{model::object::live, model::registry, process::gdb, process::tls};

thread_local! {
    /// The guards taken before a fork, held by the forking thread (and by
    /// its copy in the child).
    static HELD: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

/// Installs the handlers, once per process.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: the handlers are plain functions that live forever.
        let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(release), Some(release)) };
        if rc != 0 {
            log::warn!("pthread_atfork failed ({rc}): a fork during a load may hang the child");
        }
    });
}

extern "C" fn prepare() {
    // The loader lock is recursive: a fork from an init function (whose
    // thread holds it) takes it again.
    let guards: Vec<Box<dyn Any>> = vec![
        registry::lock_for_fork(),
        live::lock_for_fork(),
        tls::lock_for_fork(),
        gdb::lock_for_fork(),
    ];
    HELD.with(|h| *h.borrow_mut() = guards);
}

extern "C" fn release() {
    let guards = HELD.with(|h| std::mem::take(&mut *h.borrow_mut()));
    for g in guards.into_iter().rev() {
        drop(g);
    }
}
