//! Level 2 of plugin hygiene: a namespace per plugin, in process.
//!
//! A namespace's libraries bind only the host symbols it allows by name
//! (and version), plus functions the host exports to it by name; a plugin
//! that imports anything else is refused with every disallowed import
//! listed. Its dependencies are searched only in its permitted directories,
//! except glibc's own libraries (libc, libm, ld.so and the stubs), which
//! are always the host's. A file loaded in two namespaces is two copies:
//! nothing of one namespace is visible to another or to the host's lookups.
//! Functions are always bound at load time in a namespace (lazy binding
//! would check imports only when called).
//!
//! This is hygiene, not isolation: native code can still make system calls
//! and read any memory of the process. Use a separate process for code you
//! do not trust.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::api::library::Library;
use crate::api::loader::Loader;
use crate::base::error::Error;
use crate::base::rules::Rules;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
use crate::pipeline::policy::Policy;

/// A namespace: its own symbol scope, import allow-list, exported host
/// functions, permitted directories and policy.
///
/// ```no_run
/// extern "C" fn host_log(msg: *const std::ffi::c_char) {
///     // SAFETY: plugins pass NUL-terminated strings.
///     eprintln!("plugin: {:?}", unsafe { std::ffi::CStr::from_ptr(msg) });
/// }
/// let ns = minld::Namespace::builder()
///     .permit_dir("/opt/plugins")
///     .allow_import("malloc")
///     .allow_import("free")
///     .export("host_log", host_log as extern "C" fn(_) as usize)
///     .build();
/// // SAFETY: the plugin's constructors run; see the module docs.
/// let plugin = unsafe { ns.open("libgood.so") }?;
/// # Ok::<(), minld::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Namespace {
    loader: Loader,
    abi: Option<(String, u32)>,
}

/// Builds a [`Namespace`].
#[derive(Debug, Clone, Default)]
pub struct NamespaceBuilder {
    permitted: Vec<PathBuf>,
    imports: Vec<(String, Option<String>)>,
    exports: Vec<(String, usize)>,
    policy: Option<Policy>,
    abi: Option<(String, u32)>,
}

impl Namespace {
    /// A builder with nothing permitted, imported or exported.
    pub fn builder() -> NamespaceBuilder {
        NamespaceBuilder::default()
    }

    /// Loads a library (a name found in the permitted directories, or a
    /// path inside one) into this namespace, checking its policy, its
    /// imports and its ABI version symbol if the namespace asks for one.
    ///
    /// # Safety
    /// As [`Loader::open`]: the library's init functions run. The checks
    /// are hygiene, not a sandbox.
    pub unsafe fn open(&self, name: impl AsRef<OsStr>) -> Result<Library, Error> {
        // SAFETY: forwarded to the caller's promise.
        let lib = unsafe { self.loader.open(name) }?;
        if let Some((symbol, want)) = &self.abi {
            // SAFETY: read as a u32, which the namespace's contract says it is.
            let found = unsafe { lib.find::<*const u32>(symbol) }.map(|p| *p);
            // SAFETY: the symbol is the plugin's ABI version word.
            let got = found.map(|p| unsafe { p.read_unaligned() });
            if got != Some(*want) {
                return Err(Error::Abi {
                    path: lib.path(),
                    symbol: symbol.clone(),
                    expected: *want,
                    found: got,
                });
            }
        }
        Ok(lib)
    }
}

impl NamespaceBuilder {
    /// Permits libraries (and their dependencies) from `dir`.
    pub fn permit_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.permitted.push(dir.into());
        self
    }

    /// Allows binding the host symbol `name` (any version).
    pub fn allow_import(mut self, name: &str) -> Self {
        self.imports.push((name.to_string(), None));
        self
    }

    /// Allows binding the host symbol `name` in `version` only.
    pub fn allow_import_versioned(mut self, name: &str, version: &str) -> Self {
        self.imports
            .push((name.to_string(), Some(version.to_string())));
        self
    }

    /// Exports a host function to the namespace's libraries under `name`:
    /// their references to `name` bind to `addr` (a function of the host,
    /// e.g. `my_fn as extern "C" fn(..) as usize`).
    pub fn export(mut self, name: &str, addr: usize) -> Self {
        self.exports.push((name.to_string(), addr));
        self
    }

    /// Checks every library against `policy` before loading it.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Requires each library opened to export `symbol`, a 32-bit word equal
    /// to `version` (checked after loading, before `open` returns).
    pub fn abi_version(mut self, symbol: &str, version: u32) -> Self {
        self.abi = Some((symbol.to_string(), version));
        self
    }

    /// The namespace.
    pub fn build(self) -> Namespace {
        let rules = Arc::new(Rules {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            permitted: self.permitted,
            imports: self.imports,
            exports: self.exports,
        });
        let mut loader = Loader::new().bind_now(true).namespace(rules);
        if let Some(p) = self.policy {
            loader = loader.policy(p);
        }
        Namespace {
            loader,
            abi: self.abi,
        }
    }
}
