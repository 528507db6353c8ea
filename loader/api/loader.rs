//! [`Loader`]: the options of a load and the calls that make one
//! ([`Loader::open`], [`Loader::prepare`] and [`Prepared::run`],
//! [`Loader::link`], [`Loader::map`]).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::api::library::{self, lock, Library};
use crate::api::mapped::MappedObject;
use crate::base::error::Error;
use crate::pipeline::load;
use crate::pipeline::options::Options;

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
    pub(super) opts: Options,
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
        Loader {
            opts: Options::new(),
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

    /// Whether the library and everything it loads join the process's
    /// global scope, as with glibc's `RTLD_GLOBAL`: every later load then
    /// finds their symbols after the host's own objects (the program and
    /// glibc's startup libraries), so a library that uses them without
    /// naming them in DT_NEEDED still links, and
    /// [`Library::find_default`](crate::Library::find_default) (`dlsym(RTLD_DEFAULT)`) sees them.
    /// A library bound to them keeps them loaded. Off by default
    /// (`RTLD_LOCAL`); in a namespace it has no effect (a namespace's
    /// objects see only their own and the host's).
    pub fn global(mut self, global: bool) -> Self {
        self.opts.global = global;
        self
    }

    /// Whether a library the process already has, loaded by glibc (at
    /// startup or by a `dlopen` since), is returned as glibc's copy, as
    /// glibc's own dlopen returns it, instead of being mapped again. Off
    /// by default: an open through minld's API maps minld's own copy, so
    /// that minld's trace, policy and cache apply to it and its state is
    /// its own (a second libpython is a second, uninitialised Python).
    /// The file is found and identified as for a load (by device and
    /// inode); a handle on glibc's copy keeps it loaded.
    pub fn reuse_loaded(mut self, reuse: bool) -> Self {
        self.opts.reuse_loaded = reuse;
        self
    }

    /// Loads on behalf of `caller`, as glibc's `dlopen` does for the object
    /// that calls it: a bare name is searched in the caller's DT_RPATH
    /// (unless it has a DT_RUNPATH), `LD_LIBRARY_PATH`, the caller's
    /// DT_RUNPATH, then as usual; `$ORIGIN` in the name or in those paths
    /// is the caller's directory. Without a caller, as for a program
    /// calling `dlopen` from code with neither, only the usual places are
    /// searched. (glibc also tries the DT_RPATH of the objects that loaded
    /// the caller, up to the program; minld only the caller's own.)
    pub fn caller(mut self, caller: &Library) -> Self {
        let sys = crate::os::sys::Sys {
            trace: self.opts.trace,
        };
        self.opts.caller = caller.as_caller(&sys).map(std::sync::Arc::new);
        self
    }

    /// [`Loader::caller`] for the object whose code or data contains
    /// `addr` (a return address, a function's address): one of minld's
    /// libraries or one of the host's startup objects. An address in
    /// neither leaves the load without a caller.
    pub fn caller_at(mut self, addr: usize) -> Self {
        let sys = crate::os::sys::Sys {
            trace: self.opts.trace,
        };
        self.opts.caller = library::caller_at(&sys, addr).map(std::sync::Arc::new);
        self
    }

    /// Keeps a link cache in `dir` (created, mode 0700, if missing; it must
    /// belong to the user and be writable by nobody else, and is not used
    /// otherwise): a load records what it worked out there (the files of its
    /// scope, and each symbol binding as a dependency and an offset, never
    /// an address), and a later load of the same library, in any process,
    /// binds from the record without looking symbols up, once it has
    /// proven the record describes the same files. Off by default, or on
    /// when `MINLD_CACHE` names a directory; `MINLD_DEBUG=libs` says what
    /// the cache did and why. Loads into a namespace, under a policy,
    /// linked only or prepared do not use it.
    pub fn cache(mut self, dir: impl Into<PathBuf>) -> Self {
        self.opts.cache = Some(dir.into());
        self
    }

    /// No link cache, even if `MINLD_CACHE` names one.
    pub fn without_cache(mut self) -> Self {
        self.opts.cache = None;
        self
    }

    /// Checks a link record's structure (header, checksum, every table and
    /// position) as minld does before using one; for tools, tests and
    /// fuzzing. It says nothing of whether the record fits a load.
    pub fn check_link_record(bytes: &[u8]) -> Result<(), crate::RecordError> {
        crate::pipeline::cache::check(bytes)
    }

    /// Stores a link record's checksum anew after its bytes were edited
    /// (for tools, tests and fuzzing that must reach the checks behind
    /// the checksum); bytes shorter than a record's header are left alone.
    pub fn reseal_link_record(bytes: &mut [u8]) {
        crate::pipeline::cache::format::reseal(bytes);
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
        // SAFETY: the caller's promise, passed on.
        unsafe { library::open_with(&self.opts, name.as_ref()) }
    }

    pub(super) fn handle(&self, set: load::LoadSet) -> Library {
        Library::from_set(set, self.opts.clone())
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
        let pending = load::link(&opts.opts, &lock(), &name)?;
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
        Ok(MappedObject::new(crate::pipeline::map::map_only(
            self.opts.trace,
            path.as_ref(),
        )?))
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
        let set = load::finish(&lock(), self.pending)?;
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
