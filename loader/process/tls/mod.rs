//! Thread-local storage of the objects minld loads.
//!
//! glibc's `__tls_get_addr` and TLSDESC resolvers only know glibc's modules
//! (the link maps ld.so made), so minld keeps its own: every object with a
//! PT_TLS segment gets a module id from [`MODID_BASE`] up, and the code minld
//! loads calls minld's `__tls_get_addr` (bound in place of ld.so's) and
//! minld's TLSDESC resolvers. Both hand a glibc module id straight on to
//! glibc, so one library can use its own TLS and libc's.
//!
//! **Allocation is lazy**, as in glibc: a thread gets its copy of a block
//! (the TLS image copied, the rest zeroed) on its first access. Threads
//! that never touch a library pay nothing, and loading never has to reach
//! into other threads. The price is that a first access allocates, and if
//! memory is exhausted there the process aborts (glibc does the same; musl
//! allocates at dlopen time for every thread to avoid it).
//!
//! **Freeing**: a thread's blocks are freed when it exits (a pthread key
//! destructor, which glibc runs after the C++ `thread_local` destructors that
//! may still use them), and every thread's block of a module when the module
//! is unloaded. The per-thread table is found from assembly through one
//! initial-exec TLS word of minld's own, so the fast path takes no lock and
//! calls nothing.
//!
//! **Initial-exec TLS** of a loaded library (TPOFF64 against its own
//! block, DF_STATIC_TLS) needs a block at a fixed offset from the thread
//! pointer in every thread: room in glibc's static TLS, which only glibc
//! hands out. [`Module::make_static`] has glibc reserve it (`surplus`,
//! with the object `stub` builds); the module's code then addresses that
//! block (its DTPMOD64 and TLS descriptors too), and glibc initialises it
//! in every thread, existing and new. minld's module id for it still
//! works: a thread's slot then points at the static block (nothing is
//! allocated or freed for it). When glibc's surplus is exhausted
//! the load fails with the sizes. An initial-exec reference to another
//! library's block moves that block too, unless a thread already has it;
//! once that library is relocated (the pipeline holds the reference back
//! until then), since its image is copied into every thread.
//!
//! The assembly (the entry points loaded code calls and the vector-state
//! save and restore) is in `asm`; this file is the bookkeeping behind it.
//!
//! (See `docs/design.md`, "TLS module ids and minld's own TLS blocks" and
//! "errno through TPOFF64 against the host's static TLS".)

use std::alloc::Layout;
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use crate::os::sys::Sys;

mod asm;
mod stub;
mod surplus;

use asm::{current, set_current};
pub(crate) use asm::{
    init_save_area, restore_vector_state, save_vector_state, tls_get_addr, tlsdesc_dynamic,
    tlsdesc_static, SAVE_SIZE, USE_XSAVE, XSAVE_MASK,
};
pub(crate) use surplus::{refuse_stubs, GlibcDl, StaticBlock, StaticTlsError};

/// Module ids of minld's TLS modules start here. glibc numbers its modules
/// from 1 and keeps them small (its dtv grows with the largest id), so the
/// two ranges never meet and one test tells them apart.
pub(crate) const MODID_BASE: usize = 1 << 40;

/// The argument of `__tls_get_addr` and of a dynamic TLS descriptor.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct TlsIndex {
    /// The module id: one of glibc's, or from [`MODID_BASE`] up for minld's.
    pub(crate) module: usize,
    /// The offset of the variable in the module's block.
    pub(crate) offset: usize,
}

/// Where a module's initialisation image is and how big its block is.
#[derive(Debug, Clone, Copy)]
struct ModuleInfo {
    /// The real address of the initialisation image.
    image: usize,
    /// Its size in bytes (the rest of the block is zeroed).
    file_size: usize,
    /// The block's size and alignment.
    layout: Layout,
    /// The offset from the thread pointer of its block in glibc's static
    /// TLS, once it has one: a thread's slot then points there (nothing
    /// allocated, nothing to free), so minld's module id reaches the same
    /// block as glibc's.
    fixed: Option<isize>,
}

/// One thread's blocks: `len` followed by `len` block pointers, indexed by
/// module id − [`MODID_BASE`]. The assembly reads this layout.
#[repr(C)]
struct Table {
    /// How many block pointers follow.
    len: usize,
    /// The block pointers (null until the thread's first access).
    blocks: [AtomicPtr<u8>; 0],
}

impl Table {
    /// The allocation of a table of `len` blocks.
    fn layout(len: usize) -> Layout {
        // len + 1 words; cannot overflow for any length we allocate.
        Layout::array::<usize>(len + 1).expect("TLS table layout")
    }

    /// # Safety
    /// `t` points at a live table and `i < (*t).len`.
    unsafe fn slot<'a>(t: *mut Table, i: usize) -> &'a AtomicPtr<u8> {
        // SAFETY: the caller guarantees `i` is in bounds of the allocation,
        // which holds `len` AtomicPtr after the length word.
        unsafe { &*(ptr::addr_of_mut!((*t).blocks) as *const AtomicPtr<u8>).add(i) }
    }
}

/// A table pointer kept in the global list (the tables are only touched
/// under the state lock, or by their own thread's lock-free reads).
struct TablePtr(*mut Table);
// SAFETY: a table is plain memory; every access from another thread happens
// under STATE's lock and goes through atomics.
unsafe impl Send for TablePtr {}

/// What the TLS bookkeeping keeps, under one lock.
#[derive(Default)]
struct State {
    /// The registered modules by slot (id − [`MODID_BASE`]); a free slot is
    /// None and is used again.
    modules: Vec<Option<ModuleInfo>>,
    /// Every thread's table, for freeing a module's blocks at unload.
    threads: Vec<TablePtr>,
}

/// The one TLS state of the process.
static STATE: Mutex<State> = Mutex::new(State {
    modules: Vec::new(),
    threads: Vec::new(),
});

/// Locks [`STATE`]; a panic while it was held does not poison it.
fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Held while a module is made static ([`Module::make_static`]): one at
/// a time (two loads may share a library). Taken before [`STATE`].
static MAKING_STATIC: Mutex<()> = Mutex::new(());

/// Locks [`MAKING_STATIC`]; a panic while it was held does not poison it.
fn making_static() -> MutexGuard<'static, ()> {
    MAKING_STATIC.lock().unwrap_or_else(|p| p.into_inner())
}

/// The TLS locks, held across a fork (see `fork`), in their order.
pub(crate) fn lock_for_fork() -> Box<dyn std::any::Any> {
    let one = making_static();
    Box::new((one, state()))
}

/// A registered TLS module; unregistering (drop) frees every thread's block
/// (and gives its static block, if it has one, back to glibc).
#[derive(Debug)]
pub(crate) struct Module {
    /// Its slot in [`State::modules`].
    slot: usize,
    /// Its block in glibc's static TLS, once it has one (initial-exec
    /// TLS): then the module is addressed through it only.
    fixed: OnceLock<StaticBlock>,
}

impl Module {
    /// Registers a PT_TLS segment whose initialisation image (already
    /// relocated by the time any thread touches it) is `file_size` bytes at
    /// `image`, in a block of `mem_size` bytes aligned to `align`.
    pub(crate) fn register(
        image: usize,
        file_size: usize,
        mem_size: usize,
        align: usize,
    ) -> Option<Module> {
        let layout = Layout::from_size_align(mem_size.max(1), align.max(1)).ok()?;
        if file_size > mem_size {
            return None;
        }
        init_save_area();
        let info = ModuleInfo {
            image,
            file_size,
            layout,
            fixed: None,
        };
        let mut st = state();
        let slot = match st.modules.iter().position(Option::is_none) {
            Some(i) => {
                st.modules[i] = Some(info);
                i
            }
            None => {
                st.modules.push(Some(info));
                st.modules.len() - 1
            }
        };
        Some(Module {
            slot,
            fixed: OnceLock::new(),
        })
    }

    /// Its block in glibc's static TLS, if it has one.
    pub(crate) fn static_block(&self) -> Option<&StaticBlock> {
        self.fixed.get()
    }

    /// Gives the module a block in glibc's static TLS (see `surplus`),
    /// initialised from its image (relocated by now) in every thread; the
    /// block it already has if asked again. Refused once a thread has a
    /// block of it from minld (glibc too never moves a block it allocated
    /// dynamically). `name` is the library's, for the trace.
    pub(crate) fn make_static(
        &self,
        name: &str,
        sys: Sys,
        dl: &GlibcDl,
    ) -> Result<&StaticBlock, StaticTlsError> {
        let _one = making_static();
        if let Some(b) = self.fixed.get() {
            return Ok(b);
        }
        let info = {
            let st = state();
            if self.in_use(&st) {
                return Err(StaticTlsError::InUse);
            }
            st.modules.get(self.slot).copied().flatten()
        };
        let Some(info) = info else {
            return Err(StaticTlsError::Failed {
                what: "the module is not registered".to_string(),
            });
        };
        // SAFETY: `register`'s caller checked that the image lies in the
        // object's mapped segments, which live as long as the module.
        let image = unsafe { std::slice::from_raw_parts(info.image as *const u8, info.file_size) };
        let align = info.layout.align();
        let phase = info.image % align;
        let size = info.layout.size();
        let block = surplus::allocate(name, sys, dl, image, size, align, phase)?;
        let mut st = state();
        // A thread may have taken a block of its own meanwhile (dropping
        // `block` gives glibc's back).
        if self.in_use(&st) {
            return Err(StaticTlsError::InUse);
        }
        if let Some(Some(info)) = st.modules.get_mut(self.slot) {
            info.fixed = Some(block.offset);
        }
        drop(st);
        Ok(self.fixed.get_or_init(|| block))
    }

    /// Whether some thread has a block of this module (from minld's slow
    /// path).
    fn in_use(&self, st: &State) -> bool {
        st.threads.iter().any(|t| {
            // SAFETY: listed tables are live; their length only changes
            // under the lock the caller holds.
            unsafe {
                (*t.0).len > self.slot
                    && !Table::slot(t.0, self.slot)
                        .load(Ordering::Acquire)
                        .is_null()
            }
        })
    }

    /// The module id code passes to `__tls_get_addr`.
    pub(crate) fn id(&self) -> usize {
        MODID_BASE + self.slot
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        let mut st = state();
        let Some(info) = st.modules.get_mut(self.slot).and_then(Option::take) else {
            return;
        };
        for t in &st.threads {
            // SAFETY: tables in the list are live; their length is only
            // changed under this lock.
            unsafe {
                if (*t.0).len > self.slot {
                    let p = Table::slot(t.0, self.slot).swap(ptr::null_mut(), Ordering::AcqRel);
                    if !p.is_null() && info.fixed.is_none() {
                        std::alloc::dealloc(p, info.layout);
                    }
                }
            }
        }
    }
}

/// The address of a block word for `ti` in the calling thread, allocating
/// the block (and the thread's table) first if needed. Called by the
/// assembly (`asm`) when its fast path misses; never unwinds.
extern "C" fn tls_slow(ti: *const TlsIndex) -> *mut u8 {
    // SAFETY: code compiled for TLS passes a pointer to a GOT pair (or our
    // own TLSDESC argument), both two readable words.
    let ti = unsafe { *ti };
    let slot = ti.module.wrapping_sub(MODID_BASE);
    let mut st = state();
    let Some(info) = st.modules.get(slot).copied().flatten() else {
        drop(st);
        fatal(format_args!(
            "thread-local storage of module {:#x} used, but no library minld loaded has it (unloaded?)",
            ti.module
        ));
    };
    let mut table = current();
    let len = if table.is_null() {
        0
    } else {
        // SAFETY: `current()` is this thread's table or null (not null
        // here); only this thread replaces it, and other threads only clear
        // slots (under the lock held), never its length.
        unsafe { (*table).len }
    };
    if slot >= len {
        table = grow(&mut st, table, slot + 1);
    }
    // SAFETY: slot < len after growing.
    let cell = unsafe { Table::slot(table, slot) };
    let mut block = cell.load(Ordering::Acquire);
    if let (true, Some(offset)) = (block.is_null(), info.fixed) {
        block = (crate::process::host::thread_pointer() as isize + offset) as *mut u8;
        cell.store(block, Ordering::Release);
    }
    if block.is_null() {
        // SAFETY: the layout has a non-zero size.
        block = unsafe { std::alloc::alloc(info.layout) };
        if block.is_null() {
            drop(st);
            fatal(format_args!(
                "out of memory allocating {} bytes of thread-local storage",
                info.layout.size()
            ));
        }
        // SAFETY: the block has layout.size() >= file_size bytes; the image
        // lies in the object's mapped, relocated segments (checked when the
        // module was registered from its PT_TLS header).
        unsafe {
            ptr::copy_nonoverlapping(info.image as *const u8, block, info.file_size);
            ptr::write_bytes(
                block.add(info.file_size),
                0,
                info.layout.size() - info.file_size,
            );
        }
        cell.store(block, Ordering::Release);
    }
    block.wrapping_add(ti.offset)
}

/// Replaces this thread's table by one with room for `need` modules.
fn grow(st: &mut State, old: *mut Table, need: usize) -> *mut Table {
    let old_len = if old.is_null() {
        0
    } else {
        // SAFETY: `old` is this thread's live table (not null here).
        unsafe { (*old).len }
    };
    let len = need.max(old_len * 2).max(8);
    let layout = Table::layout(len);
    // SAFETY: non-zero size; zeroed memory is a valid Table (null blocks).
    let new = unsafe { std::alloc::alloc_zeroed(layout) } as *mut Table;
    if new.is_null() {
        fatal(format_args!("out of memory growing a thread's TLS table"));
    }
    // SAFETY: `new` is a fresh allocation of `len` slots; `old` has
    // `old_len` slots, all moved over before it is freed.
    unsafe {
        (*new).len = len;
        for i in 0..old_len {
            Table::slot(new, i).store(
                Table::slot(old, i).load(Ordering::Acquire),
                Ordering::Release,
            );
        }
    }
    match st.threads.iter_mut().find(|t| t.0 == old) {
        Some(t) if !old.is_null() => t.0 = new,
        _ => st.threads.push(TablePtr(new)),
    }
    set_current(new);
    // SAFETY: the key exists (created below, once); the value is only read
    // back by `thread_exit`.
    let rc = unsafe { libc::pthread_setspecific(exit_key(), new as *const c_void) };
    if rc != 0 {
        fatal(format_args!(
            "pthread_setspecific failed ({rc}): the thread's TLS blocks could not be freed at its exit"
        ));
    }
    if !old.is_null() {
        // SAFETY: `old` was allocated by an earlier `grow` with this length
        // and nothing refers to it any more.
        unsafe { std::alloc::dealloc(old as *mut u8, Table::layout(old_len)) };
    }
    new
}

/// A pthread key whose destructor frees an exiting thread's blocks. glibc
/// runs key destructors after the thread's `thread_local` destructors.
fn exit_key() -> libc::pthread_key_t {
    static KEY: OnceLock<libc::pthread_key_t> = OnceLock::new();
    *KEY.get_or_init(|| {
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: `thread_exit` has the destructor signature.
        let rc = unsafe { libc::pthread_key_create(&mut key, Some(thread_exit)) };
        if rc != 0 {
            fatal(format_args!("pthread_key_create failed ({rc})"));
        }
        key
    })
}

/// glibc's `PTHREAD_DESTRUCTOR_ITERATIONS` (`<limits.h>`).
const PTHREAD_DESTRUCTOR_ITERATIONS: u32 = 4;

thread_local! {
    /// How many rounds of pthread key destructors this thread has seen.
    static EXIT_ROUNDS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// The key destructor. glibc runs key destructors in rounds, in key order,
/// and another round while any value was set again; minld's key is created
/// at the first TLS access, so keys a library creates later run after it.
/// So the blocks are kept, and the key set again, until the last round
/// (PTHREAD_DESTRUCTOR_ITERATIONS): a later key's destructor that uses a
/// library's TLS still finds its block.
unsafe extern "C" fn thread_exit(p: *mut c_void) {
    let round = EXIT_ROUNDS.with(|r| {
        r.set(r.get() + 1);
        r.get()
    });
    if round < PTHREAD_DESTRUCTOR_ITERATIONS {
        // SAFETY: setting our own key again to the same table.
        if unsafe { libc::pthread_setspecific(exit_key(), p) } == 0 {
            return;
        }
    }
    let table = p as *mut Table;
    let mut st = state();
    st.threads.retain(|t| t.0 != table);
    // SAFETY: `table` is this thread's table, no longer listed, so no other
    // thread can reach it; blocks of live modules are freed with their
    // layouts (blocks of unloaded modules were freed and cleared then).
    unsafe {
        let len = (*table).len;
        for i in 0..len {
            let b = Table::slot(table, i).swap(ptr::null_mut(), Ordering::AcqRel);
            if let (false, Some(Some(info))) = (b.is_null(), st.modules.get(i)) {
                if info.fixed.is_none() {
                    std::alloc::dealloc(b, info.layout);
                }
            }
        }
        if current() == table {
            set_current(ptr::null_mut());
        }
        std::alloc::dealloc(table as *mut u8, Table::layout(len));
    }
}

/// Ends the process with a message: a TLS access that cannot be served
/// has no caller to return an error to.
fn fatal(msg: std::fmt::Arguments<'_>) -> ! {
    eprintln!("minld: {msg}");
    std::process::abort()
}

/// The calling thread's address of `offset` in TLS module `module` (one
/// of minld's or glibc's), allocating its block if needed: what `dlsym`
/// returns for a TLS symbol.
pub(crate) fn address(module: usize, offset: usize) -> usize {
    let ti = TlsIndex { module, offset };
    // SAFETY: minld's __tls_get_addr takes a TlsIndex pointer and returns
    // the address, like glibc's, to which it hands glibc's modules.
    let get: extern "C" fn(*const TlsIndex) -> usize =
        unsafe { std::mem::transmute(tls_get_addr()) };
    get(&ti)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_per_thread_initialised_and_freed_at_unload() {
        let image: &'static [u8] = &[1, 2, 3, 4];
        let m = Module::register(image.as_ptr() as usize, 4, 64, 32).unwrap();
        let ti = TlsIndex {
            module: m.id(),
            offset: 2,
        };
        let here = tls_slow(&ti) as usize;
        assert_eq!((here - 2) % 32, 0, "block alignment");
        // SAFETY: the block has 64 bytes: the image, then zeroes.
        unsafe {
            assert_eq!(*(here as *const u8), 3);
            assert_eq!(*((here + 10) as *const u8), 0);
        }
        // SAFETY: minld's __tls_get_addr takes a TlsIndex pointer and
        // returns the address, like glibc's.
        let get: extern "C" fn(*const TlsIndex) -> usize =
            unsafe { std::mem::transmute(tls_get_addr()) };
        assert_eq!(get(&ti), here, "fast path: same thread, same block");
        let there = std::thread::spawn(move || get(&ti)).join().unwrap();
        assert_ne!(there, here, "another thread gets its own block");
        let slot = m.id() - MODID_BASE;
        drop(m);
        // SAFETY: this thread's table exists (it has a block) and is long
        // enough for the slot.
        let cleared = unsafe { Table::slot(current(), slot).load(Ordering::Acquire) };
        assert!(cleared.is_null(), "unloading frees every thread's block");
    }

    #[test]
    fn a_static_block_is_reached_through_both_module_ids() {
        let image: &'static [u8] = &[5, 6, 7, 8];
        let m = Module::register(image.as_ptr() as usize, 4, 48, 16).unwrap();
        let dl = GlibcDl::new(|_| None);
        let block = m.make_static("unit", Sys { trace: false }, &dl).unwrap();
        let (glibc, offset) = (block.modid, block.offset);
        assert!(glibc < MODID_BASE && offset < 0);
        let ours = TlsIndex {
            module: m.id(),
            offset: 1,
        };
        let check = move || {
            let tp = crate::process::host::thread_pointer() as isize;
            let at = tls_slow(&ours) as isize;
            assert_eq!(at, tp + offset + 1, "minld's id: the static block");
            assert_eq!(address(glibc, 1) as isize, at, "glibc's id: the same");
            // SAFETY: the block's second byte, initialised by glibc.
            assert_eq!(unsafe { *(at as *const u8) }, 6);
            at
        };
        let here = check();
        let there = std::thread::spawn(check).join().unwrap();
        assert_ne!(here, there, "each thread has its own");
        drop(m); // clears the slots, frees nothing, closes the stub
    }
}
