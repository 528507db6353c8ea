//! Telling debuggers about minld's objects, through the interface glibc
//! uses (the SVR4 `r_debug` protocol).
//!
//! A debugger finds glibc's `struct r_debug` through the program's
//! DT_DEBUG entry, reads the `link_map` list hanging from it, and puts a
//! breakpoint on `r_brk` (`_dl_debug_state`), which glibc calls around every
//! change. glibc walks its own list through private fields, so minld must
//! not add nodes to it. Since glibc 2.35 the structure is an
//! `r_debug_extended` with `r_next`, a chain of one `r_debug` per link
//! namespace (dlmopen's); gdb 13 follows the chain when `r_version` is 2.
//! minld appends one namespace of its own to that chain, keeps its objects'
//! `link_map` nodes there, and calls `r_brk` around each change, so gdb's
//! `info sharedlibrary` lists them and breakpoints in them resolve.
//!
//! glibc only ever reads `r_next` while walking to the tail to append a
//! namespace, so a foreign node is safe there as long as it lives forever
//! (it is leaked). gdb builds that watch ld.so's SystemTap probes instead of
//! `_dl_debug_state` (not Debian's) only notice minld's namespace at their
//! next full reload.
//!
//! (See `docs/design.md`, "The r_debug chain that gdb reads".)

use std::ffi::{c_char, c_int, CString};
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Mutex;

use goblin::elf::dynamic as dt;
use goblin::elf::program_header as ph;
use goblin::elf64::dynamic::Dyn;

/// `r_state`: the list is stable.
const RT_CONSISTENT: c_int = 0;
/// `r_state`: an object is being added.
const RT_ADD: c_int = 1;
/// `r_state`: an object is being removed.
const RT_DELETE: c_int = 2;

/// The public part of glibc's `struct link_map` (`<link.h>`).
#[repr(C)]
struct LinkMap {
    /// The object's load bias.
    l_addr: usize,
    /// Its path (NUL-terminated).
    l_name: *const c_char,
    /// The real address of its dynamic section.
    l_ld: usize,
    /// The next node, or null.
    l_next: *mut LinkMap,
    /// The previous node, or null.
    l_prev: *mut LinkMap,
}

/// `struct r_debug_extended` (`<link.h>`, glibc 2.35).
#[repr(C)]
struct RDebug {
    /// The protocol version; 2 when `r_next` is there.
    r_version: c_int,
    /// The first object of the namespace.
    r_map: *mut LinkMap,
    /// The function the loader calls around each change.
    r_brk: usize,
    /// `RT_CONSISTENT`, `RT_ADD` or `RT_DELETE`.
    r_state: c_int,
    /// The base of the dynamic loader.
    r_ldbase: usize,
    /// The next namespace's `r_debug`, or null.
    r_next: *mut RDebug,
}

/// minld's namespace, once it is chained after glibc's.
struct Namespace {
    /// glibc's `r_debug`, the head of the chain.
    glibc: *mut RDebug,
    /// minld's own (leaked), somewhere after it in the chain.
    ours: *mut RDebug,
}

// SAFETY: both pointers are to structures that live for the whole process;
// ours is only changed under NAMESPACE's lock.
unsafe impl Send for Namespace {}

/// minld's namespace, made on first use; its lock also orders changes
/// to the `link_map` list.
static NAMESPACE: Mutex<Option<Namespace>> = Mutex::new(None);

/// The namespace's lock, held across a fork (see `fork`).
pub(crate) fn lock_for_fork() -> Box<dyn std::any::Any> {
    Box::new(NAMESPACE.lock().unwrap_or_else(|p| p.into_inner()))
}

/// An object's entry in minld's namespace; dropping it removes it.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The object's node in our list, freed when the entry is dropped.
    node: *mut LinkMap,
    /// The path the node's `l_name` points into.
    _name: CString,
}

// SAFETY: the node is only touched under NAMESPACE's lock.
unsafe impl Send for Entry {}
// SAFETY: as above; &Entry gives no access to the node.
unsafe impl Sync for Entry {}

/// glibc's `r_debug`, from the program's DT_DEBUG entry (where debuggers
/// look too; the exported `_r_debug` symbol may be a copy).
fn glibc_r_debug() -> Option<*mut RDebug> {
    let (phdrs, bias) = super::program::headers()?;
    let dynamic = phdrs.iter().find(|p| p.p_type == ph::PT_DYNAMIC)?;
    let mut d = bias.wrapping_add(dynamic.p_vaddr as usize) as *const Dyn;
    loop {
        // SAFETY: the program's dynamic section, terminated by DT_NULL.
        let e = unsafe { &*d };
        match e.d_tag {
            dt::DT_NULL => return None,
            dt::DT_DEBUG => {
                return (e.d_val != 0).then_some(e.d_val as *mut RDebug);
            }
            // SAFETY: not yet at DT_NULL, so the next entry exists.
            _ => d = unsafe { d.add(1) },
        }
    }
}

/// minld's namespace in `slot`, made and chained after glibc's on first
/// use; None if the program has no `r_debug` (no DT_DEBUG).
fn namespace(slot: &mut Option<Namespace>) -> Option<&Namespace> {
    if slot.is_none() {
        let glibc = glibc_r_debug()?;
        // SAFETY: glibc's r_debug is live; reading its fields races only
        // with glibc's own first dlmopen, which writes them once.
        let ours = unsafe {
            Box::into_raw(Box::new(RDebug {
                r_version: 2,
                r_map: ptr::null_mut(),
                r_brk: (*glibc).r_brk,
                r_state: RT_CONSISTENT,
                r_ldbase: (*glibc).r_ldbase,
                r_next: ptr::null_mut(),
            }))
        };
        *slot = Some(Namespace { glibc, ours });
    }
    let ns = slot.as_ref()?;
    // (Re)chain ours at the tail if it is not reachable: glibc appends its
    // namespaces with plain stores, and a dlmopen racing with us could have
    // overwritten our link.
    // SAFETY: every node of the chain is a live r_debug_extended (glibc's
    // namespaces are never freed, ours is leaked).
    // glibc appends under its own lock, which minld cannot take: ours goes
    // in with a compare-and-swap on the tail's null, so a namespace glibc
    // appended meanwhile is never overwritten (we walk on and retry).
    unsafe {
        let mut at = ptr::addr_of_mut!((*ns.glibc).r_next);
        loop {
            // SAFETY (of the cast): r_next is a pointer-sized, aligned word.
            let slot = &*(at as *const AtomicPtr<RDebug>);
            let next = slot.load(Ordering::Acquire);
            if next == ns.ours {
                break;
            }
            if next.is_null() {
                if slot
                    .compare_exchange(
                        ptr::null_mut(),
                        ns.ours,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_ok()
                {
                    break;
                }
                continue;
            }
            at = ptr::addr_of_mut!((*next).r_next);
        }
        if (*ns.glibc).r_version < 2 {
            (*ns.glibc).r_version = 2;
        }
    }
    Some(ns)
}

/// Sets our `r_state` to `state` and calls `r_brk`, where a debugger
/// watching the chain stops to read it.
fn notify(ns: &Namespace, state: c_int) {
    // SAFETY: ours is live; r_brk is glibc's `_dl_debug_state`, an empty
    // function that exists for debuggers to break on.
    unsafe {
        (*ns.ours).r_state = state;
        let brk: extern "C" fn() = std::mem::transmute((*ns.ours).r_brk);
        brk();
    }
}

/// Adds an object to minld's namespace: `bias` is its load bias, `dynamic`
/// the real address of its dynamic section (gdb checks the bias against it).
pub(crate) fn add(path: &Path, bias: usize, dynamic: usize) -> Option<Entry> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    let name = CString::new(abs.into_os_string().into_encoded_bytes()).ok()?;
    let mut slot = NAMESPACE.lock().unwrap_or_else(|p| p.into_inner());
    let ns = namespace(&mut slot)?;
    notify(ns, RT_ADD);
    // SAFETY: ours is live and only changed under the lock held; the new
    // node is complete before the one store that links it in.
    let node = unsafe {
        let mut tail = (*ns.ours).r_map;
        while !tail.is_null() && !(*tail).l_next.is_null() {
            tail = (*tail).l_next;
        }
        let node = Box::into_raw(Box::new(LinkMap {
            l_addr: bias,
            l_name: name.as_ptr(),
            l_ld: dynamic,
            l_next: ptr::null_mut(),
            l_prev: tail,
        }));
        if tail.is_null() {
            (*ns.ours).r_map = node;
        } else {
            (*tail).l_next = node;
        }
        node
    };
    notify(ns, RT_CONSISTENT);
    Some(Entry { node, _name: name })
}

impl Entry {
    /// The object's `link_map` node (what `dlinfo(RTLD_DI_LINKMAP)`
    /// answers); it lives as long as the entry.
    pub(crate) fn node(&self) -> usize {
        self.node as usize
    }

    /// The absolute path the node's `l_name` points at.
    pub(crate) fn name(&self) -> &std::ffi::CStr {
        &self._name
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut slot = NAMESPACE.lock().unwrap_or_else(|p| p.into_inner());
        let Some(ns) = namespace(&mut slot) else {
            return;
        };
        notify(ns, RT_DELETE);
        // SAFETY: the node is in our list (added by `add`, removed only
        // here), which is only changed under the lock held.
        unsafe {
            let n = self.node;
            if (*n).l_prev.is_null() {
                (*ns.ours).r_map = (*n).l_next;
            } else {
                (*(*n).l_prev).l_next = (*n).l_next;
            }
            if !(*n).l_next.is_null() {
                (*(*n).l_next).l_prev = (*n).l_prev;
            }
            drop(Box::from_raw(n));
        }
        notify(ns, RT_CONSISTENT);
    }
}
