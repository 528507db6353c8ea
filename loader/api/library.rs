//! The public face: [`Loader`] (options), [`Library`] (a counted handle on a
//! loaded library), [`Symbol`] (a value borrowed from one), and
//! [`MappedObject`] (an image mapped but not linked).

use std::ffi::OsStr;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use goblin::elf::sym as st;

use crate::base::error::Error;
use crate::elf::symbols::{elf_hash, Version, Want};
use crate::model::image::{MappedImage, Segment};
use crate::model::object::Dep;
use crate::pipeline::load::{self, Options};
use crate::pipeline::reloc::resolve::{Def, Reference, Resolver, Scope, Target, UniqueTable};

/// How to load: the options of `dlopen` and a few of minld's own.
///
/// ```no_run
/// // SAFETY: the system's libm; its constructors are trusted.
/// let libm = unsafe { minld::Loader::new().trace(true).open("libm.so.6") }.unwrap();
/// // SAFETY: libm's cos is `double cos(double)`.
/// let cos = unsafe { libm.get::<extern "C" fn(f64) -> f64>("cos") }.unwrap();
/// assert_eq!(cos(0.0), 1.0);
/// ```
#[derive(Debug, Clone)]
pub struct Loader {
    opts: Options,
}

impl Default for Loader {
    fn default() -> Self {
        Self::new()
    }
}

impl Loader {
    /// The default options: bind now, reuse the host's copies of
    /// dependencies, no text relocations; tracing on when `MINLD_TRACE=1`.
    pub fn new() -> Self {
        let trace = std::env::var_os("MINLD_TRACE").is_some_and(|v| v != "0" && !v.is_empty());
        Loader {
            opts: Options {
                trace,
                search_paths: Vec::new(),
                bind_now: true,
                reuse_host: true,
                allow_textrel: false,
                run_code: true,
                defer_init: false,
                policy: None,
                namespace: None,
                single_threaded: false,
            },
        }
    }

    /// Prints every open/read/mmap/mprotect/munmap/close minld makes, in
    /// strace's format with a note on why, to stderr.
    pub fn trace(mut self, on: bool) -> Self {
        self.opts.trace = on;
        self
    }

    /// Adds a directory searched after RUNPATH and before ld.so.cache and
    /// the system directories.
    pub fn search_path(mut self, dir: impl Into<PathBuf>) -> Self {
        self.opts.search_paths.push(dir.into());
        self
    }

    /// Binds every function at load time (the default, like RTLD_NOW).
    /// With `false` (RTLD_LAZY), functions reached through the PLT are
    /// bound at their first call instead, by minld's resolver, unless the
    /// object asks for BIND_NOW; a function nobody defines then fails only
    /// when called, ending the process with a message that names it, as
    /// with glibc's lazy binding.
    pub fn bind_now(mut self, now: bool) -> Self {
        self.opts.bind_now = now;
        self
    }

    /// Whether a dependency the process already has (loaded by glibc) is
    /// used from there (the default) or mapped again by minld. glibc's own
    /// libraries (libc, ld.so and their stubs) are always the host's.
    pub fn reuse_host(mut self, reuse: bool) -> Self {
        self.opts.reuse_host = reuse;
        self
    }

    /// Loads into a namespace (see [`crate::Namespace`]).
    pub(crate) fn namespace(mut self, rules: std::sync::Arc<crate::base::rules::Rules>) -> Self {
        self.opts.reuse_host = false;
        self.opts.search_paths = rules.permitted.clone();
        self.opts.namespace = Some(rules);
        self
    }

    /// Keeps relocation on the calling thread (for the sandbox's runner,
    /// whose seccomp filter has no clone).
    pub(crate) fn single_threaded(mut self, on: bool) -> Self {
        self.opts.single_threaded = on;
        self
    }

    /// Checks the library and every dependency it brings in against
    /// `policy` (the checks of [`crate::pipeline::policy::check`]) before any of them
    /// is relocated or runs code, each on the very mapping the load uses
    /// (a file swapped at its path meanwhile is not checked in its place);
    /// any finding refuses the load with [`Error::Policy`], which lists
    /// them all.
    pub fn policy(mut self, policy: crate::Policy) -> Self {
        self.opts.policy = Some(policy);
        self
    }

    /// Allows objects with text relocations (DT_TEXTREL): their read-only
    /// segments are made writable while relocating. Off by default.
    pub fn allow_text_relocations(mut self, allow: bool) -> Self {
        self.opts.allow_textrel = allow;
        self
    }

    /// Loads a library and what it needs, relocates it and runs its init
    /// functions.
    ///
    /// # Safety
    /// Loading runs the library's init functions and ifunc resolvers:
    /// arbitrary native code, with the whole process at its mercy.
    pub unsafe fn open(&self, name: impl AsRef<OsStr>) -> Result<Library, Error> {
        let name = name.as_ref().to_string_lossy().into_owned();
        let mut reg = lock(&format!("open {name}"))?;
        let set = load::load(&self.opts, &mut reg, &name)?;
        Ok(self.handle(set))
    }

    fn handle(&self, set: load::LoadSet) -> Library {
        Library {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                scope: set.scope,
                as_needed: Mutex::new(AsNeeded {
                    names: set.as_needed,
                    loaded: Vec::new(),
                }),
                loader: self.clone(),
            }),
        }
    }

    /// The first half of [`Loader::open`]: finds, maps and links the
    /// library and what it needs, with every check `open` makes, and stops
    /// before any of their code runs (no ifunc resolver, no init function).
    /// [`Prepared::run`] does the rest. Between the two the caller can
    /// lock itself down (seccomp, Landlock), so that not one instruction of
    /// the library runs before it: the sandbox's runner does exactly this.
    ///
    /// Until `run`, RELRO is still writable and the objects are private to
    /// the returned value; dropping it unmaps them, running nothing.
    /// Objects with text relocations are refused (finishing them would
    /// need their text made executable again).
    pub fn prepare(&self, name: impl AsRef<OsStr>) -> Result<Prepared, Error> {
        let name = name.as_ref().to_string_lossy().into_owned();
        let mut opts = self.clone();
        opts.opts.defer_init = true;
        let mut reg = lock(&format!("prepare {name}"))?;
        let pending = load::link(&opts.opts, &mut reg, &name)?;
        Ok(Prepared {
            pending,
            loader: self.clone(),
        })
    }

    /// Loads a library and what it needs and links them (relocations,
    /// symbol bindings, versions, TLS relocations) without running any of
    /// their code: no init or fini functions, no ifunc resolvers (an
    /// ifunc's slot points at a function that aborts with a message). For
    /// inspecting a library and for fuzzing the loader: every table is
    /// read through bounds checks, every relocation writes only inside its
    /// own object's writable segments.
    ///
    /// The objects it maps are private to the returned handle: a later
    /// [`Loader::open`] of the same file maps its own copy. Dependencies the
    /// process already has are bound, as by `open`. Calling a function of
    /// the result is undefined behaviour unless you know it needs neither
    /// initialisation nor an ifunc.
    pub fn link(&self, name: impl AsRef<OsStr>) -> Result<Library, Error> {
        let mut opts = self.clone();
        opts.opts.run_code = false;
        // SAFETY: with run_code false no code of the loaded objects runs
        // (only the host's own, already running, ifunc resolvers).
        unsafe { opts.open(name) }
    }

    /// Validates and maps a file without linking it: no relocation, no
    /// symbol binding, none of its code runs. For inspecting the mapping.
    pub fn map(&self, path: impl AsRef<Path>) -> Result<MappedObject, Error> {
        Ok(MappedObject {
            image: crate::pipeline::map::map_only(self.opts.trace, path.as_ref())?,
        })
    }
}

/// A library linked by [`Loader::prepare`], none of whose code has run.
pub struct Prepared {
    pending: load::Pending,
    loader: Loader,
}

impl Prepared {
    /// The path of the library's file, if this load mapped it (None when
    /// `prepare` found it already loaded, or it is the host's).
    pub fn path(&self) -> Option<&Path> {
        self.pending.root_path()
    }

    /// Runs the library's code: fills the slots of its ifuncs (their
    /// resolvers run), makes RELRO read-only, registers it with the
    /// process (unwinder, debugger, minld's registry) and runs the init
    /// functions, dependencies first. The result is what
    /// [`Loader::open`] would have returned.
    ///
    /// # Safety
    /// As [`Loader::open`]: the library's ifunc resolvers and init
    /// functions run, arbitrary native code.
    pub unsafe fn run(self) -> Result<Library, Error> {
        let mut reg = lock("run a prepared library")?;
        let set = load::finish(&mut reg, self.pending)?;
        Ok(self.loader.handle(set))
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("path", &self.path())
            .finish()
    }
}

/// A library loaded by minld: a counted handle (Clone shares it); dropping
/// the last handle runs its fini functions and unmaps it, with every
/// dependency no other library still uses.
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
    loader: Loader,
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
    /// Loads a library with the default [`Loader`].
    ///
    /// # Safety
    /// As [`Loader::open`]: the library's code runs.
    pub unsafe fn open(name: impl AsRef<OsStr>) -> Result<Library, Error> {
        // SAFETY: the caller accepts that the library's code runs.
        unsafe { Loader::new().open(name) }
    }

    fn root(&self) -> &Dep {
        &self.inner.scope[0]
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
        let addr = self.address(name, None).ok().flatten()?;
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
        unsafe { self.lookup(name, None) }
    }

    /// Like [`Library::get`], for one version of the symbol (dlvsym).
    ///
    /// # Safety
    /// As [`Library::get`].
    pub unsafe fn get_versioned<T: Copy>(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Symbol<'_, T>, Error> {
        let v = Version {
            name: version.to_string(),
            hash: elf_hash(version.as_bytes()),
        };
        // SAFETY: forwarded to the caller's promise about T.
        unsafe { self.lookup(name, Some(&v)) }
    }

    /// [`Library::get`] and [`Library::get_versioned`]: the symbol's address
    /// (AS_NEEDED members loaded if needed) as a `T`.
    ///
    /// # Safety
    /// As [`Library::get`].
    unsafe fn lookup<T: Copy>(
        &self,
        name: &str,
        version: Option<&Version>,
    ) -> Result<Symbol<'_, T>, Error> {
        if std::mem::size_of::<T>() != std::mem::size_of::<usize>() {
            return Err(Error::Unsupported {
                path: self.path(),
                what: format!(
                    "Library::get::<T> with a {}-byte T: symbols are pointer-sized",
                    std::mem::size_of::<T>()
                ),
            });
        }
        let addr = match self.address(name, version)? {
            Some(a) => a,
            None => self.address_as_needed(name, version)?.ok_or_else(|| {
                let want = version.map_or(Want::Default, Want::Version);
                Reference::by_name(name.as_bytes(), want)
                    .error(Some(format!("Library::get on {}", self.path().display())))
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
    fn address(&self, name: &str, version: Option<&Version>) -> Result<Option<usize>, Error> {
        if version.is_none() {
            if let Some(hit) = cache::get(self.inner.id, name) {
                return Ok(hit);
            }
        }
        let found = self.search(name, version)?;
        if version.is_none() && self.no_as_needed_left() {
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
    fn search(&self, name: &str, version: Option<&Version>) -> Result<Option<usize>, Error> {
        let want = version.map_or(Want::Default, Want::Version);
        let rules = self.inner.loader.opts.namespace.as_deref();
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
                    format!("{name}: a TLS symbol in an object without a PT_TLS segment"),
                )
            });
        }
        // Loader::link promises none of the objects' code runs: not even
        // an ifunc resolver of theirs.
        match def.target(self.inner.loader.opts.run_code) {
            Target::Now(v) => Ok(v),
            Target::Later(_) => Err(Error::Unsupported {
                path: self.path(),
                what: format!(
                    "{name} is an ifunc, whose resolver would run; the library was linked \
                     without running code (Loader::link)"
                ),
            }),
        }
    }

    /// The address of a symbol in the AS_NEEDED members of a linker
    /// script, loading them in turn until one defines it.
    fn address_as_needed(
        &self,
        name: &str,
        version: Option<&Version>,
    ) -> Result<Option<usize>, Error> {
        let mut a = self
            .inner
            .as_needed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for lib in &a.loaded {
            if let Some(v) = lib.address(name, version)? {
                return Ok(Some(v));
            }
        }
        while let Some(member) = a.names.first().cloned() {
            a.names.remove(0);
            // SAFETY: loading an AS_NEEDED member of the library the caller
            // opened, which it accepted to run code from.
            let lib = unsafe { self.inner.loader.open(&member) }?;
            let found = lib.address(name, version)?;
            a.loaded.push(lib);
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }
}

/// Source of [`Inner::id`].
/// The loader lock, with the fork handlers that keep it sound installed
/// first (once per process).
fn lock(what: &str) -> Result<crate::model::registry::Locked, Error> {
    crate::model::fork::install();
    crate::model::registry::lock(what)
}

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

    /// Entries per thread.
    const SLOTS: usize = 64;
    /// Longer names are not cached.
    const MAX_NAME: usize = 48;

    /// One cached answer.
    #[derive(Clone, Copy)]
    struct Entry {
        /// The handle's id.
        id: u64,
        /// The name's length.
        len: u8,
        /// The name, zero-padded.
        name: [u8; MAX_NAME],
        /// The address, None for a known miss.
        value: Option<usize>,
    }

    thread_local! {
        /// This thread's entries.
        static CACHE: RefCell<[Option<Entry>; SLOTS]> = const { RefCell::new([None; SLOTS]) };
    }

    /// The entry `name` of handle `id` goes in.
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

    /// Caches the answer for `name` in handle `id`.
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

/// An object validated and mapped, but not linked: nothing of it has run.
/// Dropping it unmaps it.
#[derive(Debug)]
pub struct MappedObject {
    image: MappedImage,
}

impl MappedObject {
    /// The path of the file.
    pub fn path(&self) -> &Path {
        &self.image.path
    }
    /// The load base: the real address of virtual address 0.
    pub fn base(&self) -> usize {
        self.image.bias.0
    }
    /// The PT_LOAD segments as mapped.
    pub fn segments(&self) -> &[Segment] {
        &self.image.segments
    }
    /// The start and length of the whole mapping.
    pub fn span(&self) -> (usize, usize) {
        (self.image.start, self.image.len)
    }
    /// Makes PT_GNU_RELRO read-only, as the loader does after relocation.
    pub fn protect_relro(&self) -> Result<(), Error> {
        self.image.protect_relro()
    }
}
