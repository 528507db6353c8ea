//! A loaded object and its place among the others: what minld mapped, what
//! it depends on, and what glibc already had.

pub(crate) mod live;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::elf::dynamic::{Dynamic, DF_1_NODELETE};
use crate::elf::symbols::{Symbols, Version, VersionNeed};
use crate::model::image::MappedImage;
use crate::process::host::{HostObject, HostPin};
use crate::{process::gdb, process::tls, process::unwind};

/// An object minld mapped. Dropping the last reference runs its fini
/// functions (if its init functions ran) and unmaps it; its dependencies are
/// released after it, so dependents always go first.
#[derive(Debug)]
pub(crate) struct Object {
    pub(crate) path: PathBuf,
    pub(crate) soname: String,
    pub(crate) dev_ino: (u64, u64),
    /// Its file's identity when it was opened (the link cache compares it).
    pub(crate) stat: crate::os::sys::FileStat,
    /// A hash of its build-id note (0: none).
    pub(crate) build_id: u64,
    /// The namespace it was loaded in (0: the default one).
    pub(crate) namespace: u64,
    pub(crate) image: std::mem::ManuallyDrop<MappedImage>,
    pub(crate) dynamic: Dynamic,
    pub(crate) symbols: Symbols,
    pub(crate) needs: Vec<VersionNeed>,
    /// Required versions by versym index (from DT_VERNEED).
    pub(crate) need_by_index: Vec<Option<Version>>,
    pub(crate) deps: OnceLock<Vec<Dep>>,
    /// 0 until its init functions run; then its place in the process's
    /// order of initialisation (1, 2, …). Its fini functions run once
    /// ([`Object::finalize`]): when it is unloaded, or at exit in the
    /// reverse of that order ([`at_exit`]).
    pub(crate) initialized: AtomicU64,
    /// Its TLS module, when it has a PT_TLS segment.
    pub(crate) tls: Option<tls::Module>,
    /// Arguments of its dynamic TLS descriptors: the descriptors point at
    /// them, so each is boxed to keep its address as the Vec grows.
    #[allow(clippy::vec_box)]
    pub(crate) tlsdesc: Mutex<Vec<Box<tls::TlsIndex>>>,
    /// Real address of its .eh_frame_hdr (PT_GNU_EH_FRAME), 0 without.
    pub(crate) eh_frame_hdr: usize,
    /// Its .eh_frame registered with the host's unwinder.
    pub(crate) unwind: OnceLock<unwind::Registration>,
    /// Its entry in the debugger's list (see `gdb`).
    pub(crate) debugger: OnceLock<gdb::Entry>,
    /// The scope its lazily bound functions are looked up in: the host's
    /// objects (never unloaded, or pinned by a dependency) and minld's, held
    /// weakly (`Dep::Back`): the scope includes the object itself and its
    /// dependents.
    pub(crate) lazy_scope: OnceLock<Vec<Dep>>,
    /// The global scope's objects (RTLD_GLOBAL) when it was loaded: its
    /// symbols may be bound to them without a DT_NEEDED entry naming
    /// them, so they stay loaded while it is (glibc's `l_reldeps`).
    pub(crate) global_deps: OnceLock<Vec<Arc<Object>>>,
    /// The DT_RPATHs it inherits from the chain of objects that loaded it
    /// (the one whose DT_NEEDED brought it in first, then that one's
    /// loader, and so on; the root of an open has none), nearest first,
    /// each with the path of its object: its dependencies, and what it
    /// opens, are searched in them after its own RPATH when it has no
    /// DT_RUNPATH, as glibc follows `l_loader`. Set once, when its
    /// dependencies are gathered.
    pub(crate) inherited: OnceLock<Vec<(PathBuf, String)>>,
}

/// A dependency: an object of minld's, or one of the host's.
#[derive(Debug, Clone)]
pub(crate) enum Dep {
    Minld(Arc<Object>),
    /// A dependency on an object loaded earlier in the same load (a cycle
    /// or a back edge); held weakly so the objects can still be freed.
    Back(Weak<Object>),
    /// One of glibc's objects; pinned (see `HostPin`) unless it is in
    /// glibc's startup scope, which glibc never unloads. The pin is only
    /// held, for its drop (a dlclose).
    Host(Arc<HostObject>, #[allow(dead_code)] Option<Arc<HostPin>>),
}

/// A borrowed member of a lookup scope.
#[derive(Clone, Copy)]
pub(crate) enum ScopeRef<'a> {
    Minld(&'a Object),
    Host(&'a HostObject),
}

impl ScopeRef<'_> {
    pub(crate) fn symbols(&self) -> &Symbols {
        match self {
            ScopeRef::Minld(o) => &o.symbols,
            ScopeRef::Host(h) => h.symbols(),
        }
    }
    pub(crate) fn bias(&self) -> usize {
        match self {
            ScopeRef::Minld(o) => o.image.bias.0,
            ScopeRef::Host(h) => h.bias,
        }
    }
    pub(crate) fn path(&self) -> &Path {
        match self {
            ScopeRef::Minld(o) => &o.path,
            ScopeRef::Host(h) => &h.path,
        }
    }
    pub(crate) fn soname(&self) -> &str {
        match self {
            ScopeRef::Minld(o) => &o.soname,
            ScopeRef::Host(h) => &h.soname,
        }
    }
}

type FiniFn = extern "C" fn();

impl Object {
    /// Records that its init functions are about to run, taking the next
    /// place in the process's order of initialisation.
    pub(crate) fn mark_initialized(&self) {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        self.initialized
            .store(NEXT.fetch_add(1, Ordering::Relaxed), Ordering::Release);
    }

    /// Runs its fini functions if its init functions ran and its fini have
    /// not run yet: once, whoever asks first (its unloading, or the exit).
    pub(crate) fn finalize(&self) {
        if self.initialized.swap(0, Ordering::AcqRel) != 0 {
            self.run_fini();
        }
    }

    pub(crate) fn nodelete(&self) -> bool {
        self.dynamic.flags_1 & DF_1_NODELETE != 0
    }

    /// The version a reference through symbol `symi` asks for (its
    /// DT_VERNEED entry, or its own DT_VERDEF one), None when unversioned.
    pub(crate) fn wanted_version(&self, symi: usize) -> Option<&Version> {
        let versym = self.symbols.versym(symi) & 0x7fff;
        if versym < 2 {
            return None;
        }
        self.need_by_index
            .get(usize::from(versym))
            .and_then(|v| v.as_ref())
            .or_else(|| self.symbols.version_def(versym))
    }

    pub(crate) fn deps(&self) -> &[Dep] {
        self.deps.get().map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether `addr` lies in one of its executable segments.
    pub(crate) fn in_code(&self, addr: usize) -> bool {
        self.image
            .segments
            .iter()
            .any(|s| s.prot.exec() && addr >= s.addr && addr < s.addr + s.mem_size as usize)
    }

    /// Runs DT_FINI_ARRAY in reverse, then DT_FINI.
    fn run_fini(&self) {
        let d = &self.dynamic;
        crate::os::debug::print_if(crate::os::debug::Category::Libs, || {
            format!("calling fini: {}", self.path.display())
        });
        let mut fns: Vec<usize> = d
            .fini_array
            .iter()
            .filter(|&a| a != 0 && a != usize::MAX)
            .collect();
        fns.reverse();
        fns.extend(d.fini);
        for f in fns {
            if !self.in_code(f) {
                log::warn!(
                    "{}: fini function {f:#x} outside the object's code, skipped",
                    self.path.display()
                );
                continue;
            }
            // SAFETY: `f` lies in the object's code, which is still mapped; the
            // object was initialised, so its fini functions may run.
            let func: FiniFn = unsafe { std::mem::transmute::<usize, FiniFn>(f) };
            func();
        }
    }
}

impl Drop for Object {
    fn drop(&mut self) {
        self.finalize();
        // Undo, in reverse, what made the object known to the process:
        // the debugger's entry, the unwinder's registration, every thread's TLS block, the
        // address index; then unmap.
        drop(self.debugger.take());
        drop(self.unwind.take());
        drop(self.tls.take());
        live::remove(self.image.start);
        // SAFETY: dropped exactly once, here; fini functions have run and no
        // handle (Library, Symbol, dependent object) refers to the image.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.image) };
    }
}

/// At the process's exit, as glibc's `_dl_fini` does: the fini functions
/// of every object still loaded whose init functions ran, once each, in
/// the reverse of the order they were initialised in (dependents before
/// their dependencies). Registered with `atexit` before the first init
/// function runs, so the `atexit` handlers the objects register
/// themselves run before it, as with glibc. Nothing is unmapped: other
/// threads may still be running the objects' code.
pub(crate) fn at_exit() {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        // SAFETY: registers a function without arguments that libc calls
        // once at exit; it touches only minld's own index and objects.
        if unsafe { libc::atexit(finalize_all) } != 0 {
            log::warn!(
                "atexit failed: libraries never closed will not run their fini functions at exit"
            );
        }
    });
}

/// The exit handler of [`at_exit`].
extern "C" fn finalize_all() {
    let mut objects = live::all();
    objects.sort_by_key(|o| std::cmp::Reverse(o.initialized.load(Ordering::Acquire)));
    for o in &objects {
        o.finalize();
    }
    // Not dropped: a reference taken here may be the last, and unmapping
    // at exit could pull code from under another thread.
    std::mem::forget(objects);
}

impl Dep {
    /// Calls `f` with the scope member, if it is still alive.
    pub(crate) fn with<R>(&self, f: impl FnOnce(ScopeRef<'_>) -> R) -> Option<R> {
        match self {
            Dep::Minld(o) => Some(f(ScopeRef::Minld(o))),
            Dep::Back(w) => w.upgrade().map(|o| f(ScopeRef::Minld(&o))),
            Dep::Host(h, _) => Some(f(ScopeRef::Host(h))),
        }
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.with(|s| s.path().to_path_buf()).unwrap_or_default()
    }
}
