//! What a load is asked to do: the options `Loader` collects.

use std::path::PathBuf;
use std::sync::Arc;

/// The options of one load (from [`crate::Loader`]).
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) trace: bool,
    pub(crate) search_paths: Vec<PathBuf>,
    pub(crate) bind_now: bool,
    pub(crate) reuse_host: bool,
    pub(crate) allow_textrel: bool,
    /// Run the objects' code (init functions, ifunc resolvers). Without it
    /// a load links only: for inspection and fuzzing (`Loader::link`).
    pub(crate) run_code: bool,
    /// With `run_code`: stop once linked, before any of the objects' code
    /// runs, and leave the rest to [`finish`](crate::pipeline::load::finish) (`Loader::prepare`).
    pub(crate) defer_init: bool,
    /// Checked before loading; any finding refuses the load.
    pub(crate) policy: Option<crate::pipeline::policy::Policy>,
    /// The namespace loaded into (None: the default one).
    pub(crate) namespace: Option<Arc<crate::base::rules::Rules>>,
    /// Relocation stays on the calling thread (`Loader::single_threaded`).
    pub(crate) single_threaded: bool,
    /// The link cache's directory (`Loader::cache`, `MINLD_CACHE`).
    pub(crate) cache: Option<PathBuf>,
    /// The loaded objects join the process's global scope (RTLD_GLOBAL,
    /// `Loader::global`).
    pub(crate) global: bool,
    /// A file glibc has loaded already is returned as glibc's copy
    /// (`Loader::reuse_loaded`), as glibc's dlopen returns it.
    pub(crate) reuse_loaded: bool,
    /// The object the load is made on behalf of (`Loader::caller`): its
    /// RPATH, RUNPATH and `$ORIGIN` are searched for the root, as glibc's
    /// dlopen searches for its caller.
    pub(crate) caller: Option<Arc<Caller>>,
    /// The name of an object given as bytes or a descriptor
    /// (`Loader::name`), for messages, the trace and the debugger.
    pub(crate) given_name: Option<PathBuf>,
}

/// The object a load is made for, as the search needs it.
#[derive(Debug)]
pub(crate) struct Caller {
    /// Its path (its directory is `$ORIGIN`).
    pub(crate) path: PathBuf,
    /// Its DT_RPATH.
    pub(crate) rpath: Option<String>,
    /// Its DT_RUNPATH.
    pub(crate) runpath: Option<String>,
    /// The DT_RPATHs it inherits from its chain of loaders (see
    /// `Object::inherited`; for one of glibc's startup objects, its
    /// loaders' as glibc loaded them).
    pub(crate) inherited: Vec<(PathBuf, String)>,
    /// Its DF_1_NODEFLIB (no system directories for what it opens).
    pub(crate) nodeflib: bool,
}

/// Whether the process runs with more privileges than its caller (setuid,
/// setgid, file capabilities: the kernel's AT_SECURE): then `MINLD_CACHE`
/// is not obeyed, or a user could make the program create directories and
/// files wherever it may write.
fn secure() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

impl Options {
    /// The namespace's id; 0 for the default one.
    pub(crate) fn namespace_id(&self) -> u64 {
        self.namespace.as_ref().map_or(0, |n| n.id)
    }

    /// The default options (`Loader::new`): bind now, reuse the host's
    /// copies of dependencies, no text relocations, run the objects' code;
    /// tracing on when `MINLD_TRACE` is set (and not `0`), the link cache
    /// on when `MINLD_CACHE` names a directory.
    pub(crate) fn new() -> Self {
        let trace = std::env::var_os("MINLD_TRACE").is_some_and(|v| v != "0" && !v.is_empty());
        Options {
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
            cache: std::env::var_os("MINLD_CACHE")
                .filter(|v| !v.is_empty() && !secure())
                .map(PathBuf::from),
            global: false,
            caller: None,
            reuse_loaded: false,
            given_name: None,
        }
    }
}
