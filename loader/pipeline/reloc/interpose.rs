//! glibc functions whose answers depend on knowing every loaded object.
//! glibc's versions know only its own objects, so when code minld loads
//! binds one of these names to the host's definition, minld binds it to
//! its own version instead, which answers for minld's objects and hands
//! everything else to glibc's:
//!
//! | name | why |
//! |---|---|
//! | `__tls_get_addr` | minld's TLS modules (see `tls`) |
//! | `__cxa_thread_atexit_impl` | a C++ `thread_local` destructor must keep its library mapped until it has run |
//! | `_dl_find_object` | a libgcc_s minld loaded finds unwind tables of minld's objects |
//!
//! And for the objects of a namespace only (see [`in_namespace`]):
//!
//! | name | why |
//! |---|---|
//! | `__cxa_finalize` | `__cxa_finalize(NULL)` runs every atexit handler of the process, the host's too; a namespace's objects may finalize only their own |

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::model::object::live;
use crate::model::object::Object;
use crate::process::tls;

/// glibc's `__cxa_thread_atexit_impl`, once some object bound it.
static NEXT_THREAD_ATEXIT: AtomicUsize = AtomicUsize::new(0);
/// The host libstdc++'s `__cxa_thread_atexit`, once some object bound it.
static NEXT_CXA_THREAD_ATEXIT: AtomicUsize = AtomicUsize::new(0);
/// glibc's `_dl_find_object`, once some object bound it.
static NEXT_FIND_OBJECT: AtomicUsize = AtomicUsize::new(0);
/// glibc's `__cxa_finalize`, once some namespace's object bound it.
static NEXT_CXA_FINALIZE: AtomicUsize = AtomicUsize::new(0);

/// minld's replacement for the host's definition `host_value` of `name`
/// when an object of a namespace binds it (before [`replacement`]).
pub(crate) fn in_namespace(name: &[u8], host_value: usize) -> Option<usize> {
    match name {
        b"__cxa_finalize" => {
            NEXT_CXA_FINALIZE.store(host_value, Ordering::Release);
            Some(__minld_cxa_finalize as *const () as usize)
        }
        _ => None,
    }
}

extern "C" {
    /// `void __cxa_finalize(void *dso)` for a namespace's objects: passes
    /// `dso` and its caller's return address to [`cxa_finalize_checked`].
    fn __minld_cxa_finalize(dso: *mut c_void);
}

// Entry: 0(%rsp) = the caller's return address, %rdi = dso; %rsi, unused
// by a one-argument function, carries the return address on.
std::arch::global_asm!(
    r#"
    .text
    .p2align 4
    .globl __minld_cxa_finalize
    .hidden __minld_cxa_finalize
    .type __minld_cxa_finalize,@function
__minld_cxa_finalize:
    .cfi_startproc
    movq (%rsp), %rsi
    jmp {checked}
    .cfi_endproc
    .size __minld_cxa_finalize, .-__minld_cxa_finalize
"#,
    checked = sym cxa_finalize_checked,
    options(att_syntax)
);

/// glibc's `__cxa_finalize(dso)`, run only when `dso` lies in an object of
/// the caller's own namespace (what an object's `__do_global_dtors_aux`
/// passes at unload: its `__dso_handle`). Anything else (NULL, which would
/// run every handler of the process, the host's handle, another
/// namespace's) does nothing.
unsafe extern "C" fn cxa_finalize_checked(dso: *mut c_void, caller: usize) {
    let caller_ns = live::namespace_at(caller);
    if caller_ns.is_some_and(|n| n != 0) && live::namespace_at(dso as usize) == caller_ns {
        let next = NEXT_CXA_FINALIZE.load(Ordering::Acquire);
        // SAFETY: set from glibc's definition before any object could bind
        // (and so call) the function that leads here.
        let next: unsafe extern "C" fn(*mut c_void) = unsafe { std::mem::transmute(next) };
        // SAFETY: glibc's function with the caller's own argument, a handle
        // inside an object of its namespace (glibc only compares it with
        // the handles registered; the handlers it runs are that object's).
        unsafe { next(dso) };
    } else {
        log::warn!(
            "__cxa_finalize({dso:p}) called from {caller:#x}: not a handle of an object in the \
             caller's namespace; ignored"
        );
    }
}

/// minld's replacement for the host's definition `host_value` of `name`,
/// if minld has one.
pub(crate) fn replacement(name: &[u8], host_value: usize) -> Option<usize> {
    match name {
        b"__tls_get_addr" => Some(tls::tls_get_addr()),
        b"__cxa_thread_atexit_impl" => {
            NEXT_THREAD_ATEXIT.store(host_value, Ordering::Release);
            Some(thread_atexit as *const () as usize)
        }
        b"__cxa_thread_atexit" => {
            NEXT_CXA_THREAD_ATEXIT.store(host_value, Ordering::Release);
            Some(cxa_thread_atexit as *const () as usize)
        }
        b"_dl_find_object" => {
            NEXT_FIND_OBJECT.store(host_value, Ordering::Release);
            Some(find_object as *const () as usize)
        }
        _ => None,
    }
}

type Dtor = unsafe extern "C" fn(*mut c_void);
type ThreadAtexit = unsafe extern "C" fn(Dtor, *mut c_void, *mut c_void) -> c_int;

/// A `thread_local` destructor of one of minld's objects, holding the
/// object (and so its dependencies) mapped until it has run.
struct ThreadDtor {
    func: Dtor,
    arg: *mut c_void,
    _keep: Arc<Object>,
}

/// `int __cxa_thread_atexit_impl(void (*)(void *), void *, void *dso)`:
/// called (through libstdc++'s `__cxa_thread_atexit`) when a thread first
/// constructs a `thread_local` object. glibc keeps the object's library
/// loaded until the destructor has run; for one of minld's libraries minld
/// does the same by registering a trampoline that holds a reference.
unsafe extern "C" fn thread_atexit(func: Dtor, arg: *mut c_void, dso: *mut c_void) -> c_int {
    // SAFETY: passed on unchanged from loaded code's own call.
    unsafe { keep_until_run(&NEXT_THREAD_ATEXIT, func, arg, dso) }
}

/// The same for a host libstdc++'s `__cxa_thread_atexit`, which code minld
/// loads calls directly when the process already has libstdc++ (it then
/// reaches glibc's `__cxa_thread_atexit_impl` without passing through
/// minld).
unsafe extern "C" fn cxa_thread_atexit(func: Dtor, arg: *mut c_void, dso: *mut c_void) -> c_int {
    // SAFETY: passed on unchanged from loaded code's own call.
    unsafe { keep_until_run(&NEXT_CXA_THREAD_ATEXIT, func, arg, dso) }
}

/// Registers `func(arg)` with the host function in `next`, wrapped so that
/// the object containing `dso` stays loaded until it has run.
///
/// # Safety
/// The arguments of a `__cxa_thread_atexit(_impl)` call; `next` was set.
unsafe fn keep_until_run(
    next: &AtomicUsize,
    func: Dtor,
    arg: *mut c_void,
    dso: *mut c_void,
) -> c_int {
    let next = next.load(Ordering::Acquire);
    // SAFETY: set from the host's definition before any object could bind
    // (and so call) the function that calls this.
    let next: ThreadAtexit = unsafe { std::mem::transmute(next) };
    match live::object_at(dso as usize) {
        Some(object) => {
            let rec = Box::into_raw(Box::new(ThreadDtor {
                func,
                arg,
                _keep: object,
            }));
            // glibc attributes the trampoline to the object containing the
            // address given last: minld's own, which is never unloaded.
            // SAFETY: glibc's function, called as its own callers do.
            let rc = unsafe {
                next(
                    run_thread_dtor,
                    rec as *mut c_void,
                    run_thread_dtor as *mut c_void,
                )
            };
            if rc != 0 {
                // SAFETY: not registered, so still ours alone.
                drop(unsafe { Box::from_raw(rec) });
            }
            rc
        }
        // SAFETY: not one of minld's objects: glibc's business.
        None => unsafe { next(func, arg, dso) },
    }
}

unsafe extern "C" fn run_thread_dtor(rec: *mut c_void) {
    // SAFETY: `rec` is the box registered above, passed back exactly once.
    let rec = unsafe { Box::from_raw(rec as *mut ThreadDtor) };
    // SAFETY: the destructor and argument the library registered; its code
    // is still mapped because `rec` holds the object.
    unsafe { (rec.func)(rec.arg) };
    // Dropping `rec` may unload the object now, if its Library is gone.
}

/// glibc's `struct dl_find_object` (glibc 2.35, x86-64).
#[repr(C)]
struct DlFindObject {
    flags: u64,
    map_start: *mut c_void,
    map_end: *mut c_void,
    link_map: *mut c_void,
    eh_frame: *mut c_void,
    reserved: [u64; 7],
}

/// `int _dl_find_object(void *pc, struct dl_find_object *result)`.
unsafe extern "C" fn find_object(pc: *mut c_void, result: *mut DlFindObject) -> c_int {
    if let Some((start, end, eh)) = live::frames_at(pc as usize) {
        // SAFETY: the caller passes a result buffer of glibc's layout.
        unsafe {
            (*result).flags = 0;
            (*result).map_start = start as *mut c_void;
            (*result).map_end = end as *mut c_void;
            (*result).link_map = std::ptr::null_mut();
            (*result).eh_frame = eh as *mut c_void;
        }
        return 0;
    }
    let next = NEXT_FIND_OBJECT.load(Ordering::Acquire);
    // SAFETY: set from the host's definition before this could be bound.
    let next: unsafe extern "C" fn(*mut c_void, *mut DlFindObject) -> c_int =
        unsafe { std::mem::transmute(next) };
    // SAFETY: glibc's function with the caller's own arguments.
    unsafe { next(pc, result) }
}
