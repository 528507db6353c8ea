//! [`Library`], a counted handle on a loaded library, and [`Symbol`], a
//! value borrowed from one: lookups in the library's scope.

use std::ffi::OsStr;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use goblin::elf::sym as st;

use crate::base::error::Error;
use crate::elf::symbols::{elf_hash, Want};
use crate::model::image::Segment;
use crate::model::object::Dep;
use crate::os::sys::Sys;
use crate::pipeline::load;
use crate::pipeline::options::{Caller, Options};
use crate::pipeline::reloc::resolve::{Def, Reference, Resolver, Scope, Target, UniqueTable};
use crate::process::host::HostObject;

/// One of minld's objects as a caller.
fn object_caller(o: &crate::model::object::Object) -> Caller {
    Caller {
        path: o.path.clone(),
        rpath: o.dynamic.rpath.clone(),
        runpath: o.dynamic.runpath.clone(),
        inherited: o.inherited.get().cloned().unwrap_or_default(),
        nodeflib: o.dynamic.nodeflib(),
    }
}

/// A host object's path: its own, or the program's by `/proc/self/exe`.
fn host_path(sys: &Sys, h: &HostObject) -> PathBuf {
    if h.path.as_os_str().is_empty() {
        crate::process::program::path(sys).to_path_buf()
    } else {
        h.path.clone()
    }
}

/// The host's startup object at `i` of `objects` (glibc's load order) as a
/// caller, with the DT_RPATHs it inherits: glibc loaded the startup
/// objects breadth-first, each by the first object whose DT_NEEDED names
/// it, so that one is its loader, and so on up to the program.
fn host_caller(sys: &Sys, objects: &[Arc<HostObject>], i: usize) -> Caller {
    let h = &objects[i];
    let (rpath, runpath) = h.search_paths();
    let mut inherited = Vec::new();
    let mut at = i;
    // Each step goes to an earlier object: the walk ends.
    while let Some(j) = objects[..at].iter().position(|l| {
        l.needed
            .iter()
            .any(|n| *n == objects[at].soname || file_name(&objects[at].path) == Some(n.as_str()))
    }) {
        let l = &objects[j];
        if let (Some(rp), None) = l.search_paths() {
            inherited.push((host_path(sys, l), rp.to_string()));
        }
        at = j;
    }
    Caller {
        path: host_path(sys, h),
        rpath: rpath.map(str::to_string),
        runpath: runpath.map(str::to_string),
        inherited,
        nodeflib: h.nodeflib(),
    }
}

/// The last component of a host object's path.
fn file_name(path: &std::path::Path) -> Option<&str> {
    path.file_name().and_then(|f| f.to_str())
}

/// The object containing `addr` as a caller: one of minld's, or one of
/// the host's startup objects.
pub(crate) fn caller_at(sys: &Sys, addr: usize) -> Option<Caller> {
    if let Some(o) = crate::model::object::live::object_at(addr) {
        return Some(object_caller(&o));
    }
    let mut reg = crate::model::registry::lock("find the object an address is in").ok()?;
    reg.host.refresh();
    let objects = &reg.host.objects;
    let i = objects.iter().position(|h| h.contains(addr))?;
    Some(host_caller(sys, objects, i))
}

/// A library loaded by minld: a counted handle (Clone shares it); dropping
/// the last handle runs its fini functions and unmaps it, with every
/// dependency no other library still uses. One never dropped runs its fini
/// functions at the process's exit (dependents first), as with glibc.
#[derive(Clone)]
pub struct Library {
    inner: Arc<Inner>,
}

struct Inner {
    /// Unique for the process's life (never reused, unlike an address):
    /// the key of this handle's entries in the lookup cache.
    id: u64,
    /// The lookup scope of the handle, breadth-first; the root first.
    scope: Vec<Dep>,
    as_needed: Mutex<AsNeeded>,
    /// The options it was loaded with (an AS_NEEDED member is loaded with
    /// them too).
    opts: Options,
}

struct AsNeeded {
    names: Vec<String>,
    loaded: Vec<Library>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Members of a linker script first, then drop the references to the
        // dependencies (each still held by its dependent), then the root:
        // its last reference runs fini and unmaps, dependents before
        // dependencies.
        if let Ok(mut a) = self.as_needed.lock() {
            a.loaded.clear();
        }
        let mut scope = std::mem::take(&mut self.scope);
        let root = if scope.is_empty() {
            None
        } else {
            Some(scope.remove(0))
        };
        drop(scope);
        drop(root);
    }
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library")
            .field("path", &self.path())
            .field("base", &format_args!("{:#x}", self.base()))
            .finish()
    }
}

/// A value taken from a [`Library`]: a function pointer or a data pointer.
/// It cannot outlive the library it came from.
pub struct Symbol<'lib, T> {
    value: T,
    _lib: PhantomData<&'lib Library>,
}

impl<T> std::ops::Deref for Symbol<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Symbol<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

impl Library {
    /// The handle on a finished load.
    pub(super) fn from_set(set: load::LoadSet, opts: Options) -> Library {
        Library {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                scope: set.scope,
                as_needed: Mutex::new(AsNeeded {
                    names: set.as_needed,
                    loaded: Vec::new(),
                }),
                opts,
            }),
        }
    }

    /// Loads a library with the default [`Loader`](crate::Loader).
    ///
    /// # Safety
    /// As [`Loader::open`](crate::Loader::open): the library's code runs.
    pub unsafe fn open(name: impl AsRef<OsStr>) -> Result<Library, Error> {
        // SAFETY: the caller accepts that the library's code runs.
        unsafe { open_with(&Options::new(), name.as_ref()) }
    }

    pub(super) fn root(&self) -> &Dep {
        &self.inner.scope[0]
    }

    /// What a load on this library's behalf searches
    /// (`Loader::caller`): its path, RPATH and RUNPATH.
    pub(crate) fn as_caller(&self, sys: &Sys) -> Option<Caller> {
        match self.root() {
            Dep::Minld(o) => Some(object_caller(o)),
            Dep::Host(h, _) => {
                // One of glibc's startup objects inherits its loaders'
                // RPATHs; another (glibc loaded it later) is asked alone.
                let reg = crate::model::registry::lock("the host's objects, for a caller");
                let startup = reg.as_ref().ok().and_then(|r| {
                    let objects = &r.host.objects;
                    let i = objects.iter().position(|o| Arc::ptr_eq(o, h))?;
                    Some(host_caller(sys, objects, i))
                });
                Some(startup.unwrap_or_else(|| host_caller(sys, std::slice::from_ref(h), 0)))
            }
            Dep::Back(_) => None,
        }
    }

    /// The path of the library's file.
    pub fn path(&self) -> PathBuf {
        self.root().path()
    }

    /// Its load base: the real address of virtual address 0.
    pub fn base(&self) -> usize {
        self.root().with(|s| s.bias()).unwrap_or(0)
    }

    /// Its PT_LOAD segments as mapped (empty for glibc's own libraries,
    /// which minld did not map).
    pub fn segments(&self) -> Vec<Segment> {
        match self.root() {
            Dep::Minld(o) => o.image.segments.clone(),
            _ => Vec::new(),
        }
    }

    /// The paths of its direct dependencies, in DT_NEEDED order.
    pub fn dependencies(&self) -> Vec<PathBuf> {
        match self.root() {
            Dep::Minld(o) => o.deps().iter().map(Dep::path).collect(),
            _ => Vec::new(),
        }
    }

    /// Like [`Library::get`], without building an error when the symbol is
    /// missing: `None` then (and for a TLS symbol whose address cannot be
    /// given). For probing many names cheaply; AS_NEEDED members of a
    /// linker script are not loaded by it. `T` must be pointer-sized (a
    /// compile-time check).
    ///
    /// # Safety
    /// As for [`Library::get`].
    pub unsafe fn find<T: Copy>(&self, name: &str) -> Option<Symbol<'_, T>> {
        const { assert!(std::mem::size_of::<T>() == std::mem::size_of::<usize>()) };
        let addr = self.address(name, Want::Default).ok().flatten()?;
        Some(Symbol {
            // SAFETY: T is pointer-sized (checked at compile time); the
            // caller promises T is the symbol's type.
            value: unsafe { std::mem::transmute_copy::<usize, T>(&addr) },
            _lib: PhantomData,
        })
    }

    /// Looks a symbol up in the library and its dependencies (as dlsym with
    /// a handle does) and returns it as a `T`: a function pointer type, or a
    /// raw pointer for data. The default version is bound.
    ///
    /// # Safety
    /// `T` must match what the symbol really is; calling a function through
    /// a wrong signature is undefined behaviour.
    pub unsafe fn get<T: Copy>(&self, name: &str) -> Result<Symbol<'_, T>, Error> {
        // SAFETY: forwarded to the caller's promise about T.
        unsafe { self.lookup(name, Want::Default) }
    }

    /// The address of `name` in the process's default scope, as glibc's
    /// `dlsym(RTLD_DEFAULT, name)` finds it: the host's objects (the
    /// program and glibc's startup libraries) first, then minld's objects
    /// loaded with [`Loader::global`](crate::Loader::global), in the order
    /// they joined. An ifunc's resolver runs; a TLS variable gives the
    /// calling thread's address. None when nobody defines it.
    ///
    /// The address stays valid while the object defining it is loaded
    /// (the host's are never unloaded).
    pub fn find_default(name: &str) -> Option<*mut std::ffi::c_void> {
        let deps: Vec<Dep> = {
            let mut reg =
                crate::model::registry::lock("look up a symbol in the default scope").ok()?;
            reg.host.refresh();
            let mut deps: Vec<Dep> = reg
                .host
                .objects
                .iter()
                .map(|h| Dep::Host(h.clone(), None))
                .collect();
            deps.extend(
                reg.global
                    .iter()
                    .filter_map(std::sync::Weak::upgrade)
                    .map(Dep::Minld),
            );
            deps
        };
        let mut resolver = Resolver {
            scope: Scope::Deps {
                deps: &deps,
                this: None,
            },
            uniques: UniqueTable::Committed(0),
            rules: None,
            in_namespace: false,
            denied: None,
            lookups: 0,
        };
        let def = resolver.resolve(&Reference::by_name(name.as_bytes(), Want::Default))?;
        let addr = if def.kind == st::STT_TLS {
            def.tls_address()?
        } else {
            match def.target(true) {
                Target::Now(v) => v,
                Target::Later(_) => return None,
            }
        };
        Some(addr as *mut std::ffi::c_void)
    }

    /// Like [`Library::get`], for one version of the symbol (dlvsym): a
    /// definition of that version, never an unversioned one.
    ///
    /// # Safety
    /// As [`Library::get`].
    pub unsafe fn get_versioned<T: Copy>(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Symbol<'_, T>, Error> {
        let want = Want::Exact {
            hash: elf_hash(version.as_bytes()),
            name: version.as_bytes(),
        };
        // SAFETY: forwarded to the caller's promise about T.
        unsafe { self.lookup(name, want) }
    }

    /// [`Library::get`] and [`Library::get_versioned`]: the symbol's address
    /// (AS_NEEDED members loaded if needed) as a `T`.
    ///
    /// # Safety
    /// As [`Library::get`].
    unsafe fn lookup<T: Copy>(&self, name: &str, want: Want<'_>) -> Result<Symbol<'_, T>, Error> {
        if std::mem::size_of::<T>() != std::mem::size_of::<usize>() {
            return Err(Error::Unsupported {
                path: self.path(),
                feature: crate::base::error::Feature::SymbolSize {
                    bytes: std::mem::size_of::<T>(),
                },
            });
        }
        let addr = match self.address(name, want)? {
            Some(a) => a,
            None => self.address_as_needed(name, want)?.ok_or_else(|| {
                Reference::by_name(name.as_bytes(), want)
                    .error(crate::base::error::Requester::Lookup(self.path()))
            })?,
        };
        Ok(Symbol {
            // SAFETY: T is pointer-sized (checked above); the caller
            // promises T is the symbol's type.
            value: unsafe { std::mem::transmute_copy::<usize, T>(&addr) },
            _lib: PhantomData,
        })
    }

    /// The address of a symbol in this handle's scope, if defined there.
    fn address(&self, name: &str, want: Want<'_>) -> Result<Option<usize>, Error> {
        let unversioned = matches!(want, Want::Default);
        if unversioned {
            if let Some(hit) = cache::get(self.inner.id, name) {
                return Ok(hit);
            }
        }
        let found = self.search(name, want)?;
        if unversioned && self.no_as_needed_left() {
            cache::put(self.inner.id, name, found);
        }
        Ok(found)
    }

    /// Whether every AS_NEEDED member has been loaded (only then is a miss
    /// final, and cached).
    fn no_as_needed_left(&self) -> bool {
        self.inner
            .as_needed
            .lock()
            .map(|a| a.names.is_empty())
            .unwrap_or(false)
    }

    /// The lookup itself: the one symbol resolution (`pipeline::reloc::
    /// resolve`) over the handle's scope, with the namespace's rules and
    /// unique definitions, as relocation and lazy binding see it.
    fn search(&self, name: &str, want: Want<'_>) -> Result<Option<usize>, Error> {
        let rules = self.inner.opts.namespace.as_deref();
        let mut resolver = Resolver {
            scope: Scope::Deps {
                deps: &self.inner.scope,
                this: None,
            },
            uniques: UniqueTable::Committed(rules.map_or(0, |r| r.id)),
            rules,
            in_namespace: rules.is_some(),
            denied: None,
            lookups: 0,
        };
        match resolver.resolve(&Reference::by_name(name.as_bytes(), want)) {
            Some(def) => self.resolve_value(name, &def).map(Some),
            None => Ok(None),
        }
    }

    /// The value of a found symbol: its address, through its resolver for
    /// an ifunc, or the calling thread's address for a TLS variable.
    fn resolve_value(&self, name: &str, def: &Def) -> Result<usize, Error> {
        if def.kind == st::STT_TLS {
            return def.tls_address().ok_or_else(|| {
                Error::dynamic(
                    self.path(),
                    "st_value",
                    def.value as u64,
                    crate::base::error::DynamicFault::NoTlsSegment,
                )
            });
        }
        // Loader::link promises none of the objects' code runs: not even
        // an ifunc resolver of theirs.
        match def.target(self.inner.opts.run_code) {
            Target::Now(v) => Ok(v),
            Target::Later(_) => Err(Error::Unsupported {
                path: self.path(),
                feature: crate::base::error::Feature::IfuncWithoutCode {
                    symbol: name.to_string(),
                },
            }),
        }
    }

    /// The address of a symbol in the AS_NEEDED members of a linker
    /// script, loading them in turn until one defines it. The loader lock
    /// (recursive) keeps other threads out meanwhile; the list's own mutex
    /// is held only for moments, never across a member's load, so an init
    /// function of the member may look symbols up in this library too.
    fn address_as_needed(&self, name: &str, want: Want<'_>) -> Result<Option<usize>, Error> {
        let _held = lock();
        let list = || {
            self.inner
                .as_needed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
        };
        let mut checked = 0;
        loop {
            let loaded: Vec<Library> = list().loaded[checked..].to_vec();
            for lib in &loaded {
                if let Some(v) = lib.address(name, want)? {
                    return Ok(Some(v));
                }
            }
            checked += loaded.len();
            let member = {
                let mut a = list();
                if a.names.is_empty() {
                    return Ok(None);
                }
                a.names.remove(0)
            };
            // SAFETY: loading an AS_NEEDED member of the library the caller
            // opened, which it accepted to run code from.
            let lib = unsafe { open_with(&self.inner.opts, member.as_ref()) }?;
            list().loaded.push(lib);
        }
    }
}

/// The loader lock, with the fork handlers that keep it sound installed
/// first (once per process). Recursive for this thread: an init function
/// or ifunc resolver that opens a library takes it again; other threads
/// wait.
pub(super) fn lock() -> crate::model::registry::Held {
    crate::model::fork::install();
    crate::model::registry::hold()
}

/// Loads `name` with `opts`: what [`Loader::open`](crate::Loader::open)
/// does. From an init function or an ifunc resolver of another load on
/// this thread too (a nested open, as glibc's dlopen allows).
///
/// # Safety
/// The library's init functions and ifunc resolvers run.
pub(super) unsafe fn open_with(opts: &Options, name: &OsStr) -> Result<Library, Error> {
    let name = name.to_string_lossy();
    let held = lock();
    let set = load::load(opts, &held, &name)?;
    Ok(Library::from_set(set, opts.clone()))
}

/// Source of [`Inner::id`].
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A small per-thread cache of unversioned lookups (hits and misses), by
/// handle and name: a repeated `get` or `find` of the same name costs a
/// name comparison instead of a hash-table walk over the scope. Entries
/// are keyed by the handle's never-reused id, so a dropped library's
/// entries can never be returned; they are simply overwritten. Per thread,
/// so it takes no lock, and a TLS symbol's cached address is this
/// thread's.
mod cache {
    use std::cell::RefCell;

    const SLOTS: usize = 64;
    const MAX_NAME: usize = 48;

    #[derive(Clone, Copy)]
    struct Entry {
        id: u64,
        len: u8,
        name: [u8; MAX_NAME],
        value: Option<usize>,
    }

    thread_local! {
        static CACHE: RefCell<[Option<Entry>; SLOTS]> = const { RefCell::new([None; SLOTS]) };
    }

    fn slot(id: u64, name: &[u8]) -> usize {
        // Cheap: the length, the first and last bytes, and the handle.
        let (f, l) = (
            name.first().copied().unwrap_or(0),
            name.last().copied().unwrap_or(0),
        );
        let h = (name.len() as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(u64::from(f) << 8 | u64::from(l))
            .wrapping_add(id.wrapping_mul(0xff51_afd7_ed55_8ccd));
        (h ^ (h >> 29)) as usize % SLOTS
    }

    /// The cached answer for `name` in handle `id`: Some(Some(addr)) a hit,
    /// Some(None) a known miss, None not cached.
    pub(super) fn get(id: u64, name: &str) -> Option<Option<usize>> {
        let name = name.as_bytes();
        if name.len() > MAX_NAME {
            return None;
        }
        CACHE
            .try_with(|c| {
                let c = c.try_borrow().ok()?;
                let e = c[slot(id, name)]?;
                (e.id == id && usize::from(e.len) == name.len() && &e.name[..name.len()] == name)
                    .then_some(e.value)
            })
            .ok()
            .flatten()
    }

    pub(super) fn put(id: u64, name: &str, value: Option<usize>) {
        let name = name.as_bytes();
        if name.len() > MAX_NAME {
            return;
        }
        let mut e = Entry {
            id,
            len: name.len() as u8,
            name: [0; MAX_NAME],
            value,
        };
        e.name[..name.len()].copy_from_slice(name);
        let _ = CACHE.try_with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                c[slot(id, name)] = Some(e);
            }
        });
    }
}
