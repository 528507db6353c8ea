//! # minld
//!
//! An ELF shared-library loader for x86-64 Linux, in readable Rust: what
//! glibc's `ld.so` does when a program calls `dlopen`. It finds a library
//! (search paths, `/etc/ld.so.cache`, GNU ld scripts), checks its headers,
//! maps its segments with the same system calls ld.so makes, loads what it
//! needs, relocates it, binds its symbols with their versions, runs its
//! constructors, and unloads it again.
//!
//! ```no_run
//! // Debian's libm.so is a linker script; minld follows it to libm.so.6.
//! // SAFETY: the system's libm; its constructors are trusted.
//! let libm = unsafe { minld::Library::open("libm.so") }?;
//! // SAFETY: libm's cos is `double cos(double)`.
//! let cos = unsafe { libm.get::<extern "C" fn(f64) -> f64>("cos") }?;
//! assert!((cos(1.0) - 1f64.cos()).abs() < 1e-15);
//! # Ok::<(), minld::Error>(())
//! ```
//!
//! The code is in layers, each folder using only those before it: `base`
//! (errors, findings, relocation table, memory views), `os` (system calls,
//! trace), `elf` (tables read in place), `process` (what the host has: its
//! objects, TLS, the debugger's list, the unwinder), `model` (minld's
//! objects and the registry), `pipeline` (a load, stage by stage), `api`
//! (this crate's public types), `plugin` (namespaces and the sandbox).
//!
//! The stages of a load, a file each in `pipeline`:
//!
//! | stage | module |
//! |---|---|
//! | name → open file | `search` (with `ldcache`, `script`) |
//! | file → checked headers | `validate` |
//! | headers → mapped image | `map` (system calls in `os::sys`, printed by `os::trace`) |
//! | bytes or a descriptor → root object | `bytes` (copied into anonymous memory by `map::copy`) |
//! | root → load set | `gather` (host objects in `process::host`) |
//! | load set → linked objects | `reloc` (bindings from a link record: `cache`) |
//! | linked → running | `load::finish`, `init` |
//!
//! The process's own glibc is never mapped a second time: libc.so.6,
//! ld-linux-x86-64.so.2 and their stub libraries are always the host's.

#![deny(missing_docs)]
// No function of the library over 100 lines (clippy.toml sets the limit).
#![warn(clippy::too_many_lines)]

mod api;
mod base;
mod elf;
mod model;
mod os;
mod pipeline;
mod plugin;
mod process;

pub use api::addr::{addr_info, AddrInfo};
pub use api::dropin::{dependency_search_path, frame_object_at, FrameObject, SearchSource};
pub use api::library::{Library, Symbol};
pub use api::loader::{Loader, Prepared};
pub use api::mapped::MappedObject;
pub use api::objects::{
    loaded_objects, object_at, object_counts, LoadedObject, ObjectCounts, SymbolAt,
};
pub use api::pages;
pub use base::error::{
    DynamicFault, Error, ExecutableKind, Feature, HeaderFault, Reentry, RelocFault, Requester,
    ScriptFault, SegmentFault, SegmentName,
};
pub use base::relocs::RelocKind;
pub use base::transfer::TransferFault;
pub use model::image::{LoadBias, Protection, Segment, Source};
pub use pipeline::cache::format::RecordError;
pub use pipeline::policy;
pub use pipeline::policy::Policy;
pub use plugin::namespace::{Namespace, NamespaceBuilder};
pub use plugin::sandbox;
