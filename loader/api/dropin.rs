//! Two questions a drop-in `libdl` (the `minld-preload` crate) asks about
//! minld's objects besides those of [`crate::api::objects`]:
//! - what a backtrace printer needs about an address
//!   ([`frame_object_at`]), answered without allocating, without the
//!   loader lock and without waiting for the index of objects, as
//!   `backtrace_symbols_fd` must be (it is called from signal handlers
//!   and after the heap is damaged);
//! - the directories a search for one object's dependencies tries
//!   ([`dependency_search_path`]), for `dlinfo`'s `RTLD_DI_SERINFO`.

use std::ffi::CStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

use goblin::elf::sym as st;

use crate::model::object::{live, Object};
use crate::pipeline::search::{search_dirs, Requester, SYSTEM_DIRS};

/// One of minld's objects, for naming a frame in it: a reference held (it
/// stays loaded, and the names it hands out valid, while this lives).
pub struct FrameObject {
    object: Arc<Object>,
}

impl std::fmt::Debug for FrameObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameObject")
            .field("path", &self.object.path)
            .finish()
    }
}

/// The object minld loaded whose mapping contains `addr`; nothing is
/// allocated and nothing waited for: None also while minld's index of
/// objects is being changed (a load or unload at that moment, on another
/// thread or on this one, interrupted), so a signal handler never
/// deadlocks here; the caller then prints the frame as glibc would. One
/// limit remains: if another thread closes the library during the call,
/// dropping the returned value may be what unmaps it.
pub fn frame_object_at(addr: usize) -> Option<FrameObject> {
    live::try_object_at(addr).map(|object| FrameObject { object })
}

impl FrameObject {
    /// Its name as `dladdr`'s `dli_fname` gives it: the absolute path in
    /// the debugger's list (`l_name`), else the path minld opened it by.
    pub fn name(&self) -> &[u8] {
        match self.object.debugger.get() {
            Some(e) => e.name().to_bytes(),
            None => self.object.path.as_os_str().as_bytes(),
        }
    }

    /// Its load bias (`l_addr`): what an offset without a symbol is
    /// counted from.
    pub fn base(&self) -> usize {
        self.object.image.bias.0
    }

    /// The dynamic symbol whose extent contains `addr` (or, for a symbol
    /// of size 0, which is at `addr`), as glibc's `_dl_addr` picks it for
    /// `backtrace_symbols`: its name and address. None when `addr` lies in
    /// no symbol (a static function), though one lies below it.
    pub fn symbol(&self, addr: usize) -> Option<(&CStr, usize)> {
        let o = &self.object;
        let (i, value) = crate::api::addr::nearest_symbol(o, addr)?;
        let sym = o.symbols.sym(i)?;
        let rel = addr.wrapping_sub(o.image.bias.0) as u64;
        let inside = rel < value.saturating_add(sym.st_size) || (sym.st_size == 0 && rel == value);
        if !inside || st::st_type(sym.st_info) == st::STT_TLS {
            return None;
        }
        let name = o.symbols.name(&sym)?;
        // The string table holds the name NUL-terminated in place.
        let name = CStr::from_bytes_until_nul(name_with_nul(name)?).ok()?;
        Some((name, o.image.bias.0.wrapping_add(value as usize)))
    }
}

/// `name` and the NUL after it in the string table it lies in.
fn name_with_nul(name: &[u8]) -> Option<&[u8]> {
    // SAFETY: a symbol name from an object's string table is followed in
    // place by its NUL terminator, in the same mapping.
    Some(unsafe { std::slice::from_raw_parts(name.as_ptr(), name.len() + 1) })
}

/// Where a directory of [`dependency_search_path`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchSource {
    /// A DT_RPATH (searched only when the object has no DT_RUNPATH): its
    /// own, then those of the objects that loaded it, then the program's.
    Rpath,
    /// `LD_LIBRARY_PATH`.
    LdLibraryPath,
    /// The object's DT_RUNPATH.
    Runpath,
    /// The system directories, after `/etc/ld.so.cache`.
    System,
}

/// The directories minld searches, in order, for a bare name the object
/// at `addr` needs (its DT_NEEDED entries): its RPATH and those it
/// inherits from its loaders and the program, `LD_LIBRARY_PATH`,
/// its RUNPATH (`$ORIGIN` and the other tokens expanded), then the system
/// directories (not with DF_1_NODEFLIB); `/etc/ld.so.cache`, tried before the system directories,
/// is no directory and is not listed. None when no object of minld's
/// contains `addr`.
pub fn dependency_search_path(addr: usize) -> Option<Vec<(PathBuf, SearchSource)>> {
    let o = live::object_at(addr)?;
    let requester = Requester {
        path: &o.path,
        rpath: o.dynamic.rpath.as_deref(),
        runpath: o.dynamic.runpath.as_deref(),
        inherited: o.inherited.get().map_or(&[], Vec::as_slice),
        nodeflib: o.dynamic.nodeflib(),
    };
    let mut list: Vec<(PathBuf, SearchSource)> =
        search_dirs(&crate::os::sys::Sys { trace: false }, Some(&requester), &[])
            .into_iter()
            .filter_map(|(d, why)| {
                let source = match why {
                    "RPATH" | "inherited RPATH" => SearchSource::Rpath,
                    "LD_LIBRARY_PATH" => SearchSource::LdLibraryPath,
                    "RUNPATH" => SearchSource::Runpath,
                    _ => return None,
                };
                Some((d, source))
            })
            .collect();
    list.extend(
        SYSTEM_DIRS
            .iter()
            .filter(|_| !requester.nodeflib)
            .map(|d| (PathBuf::from(d), SearchSource::System)),
    );
    Some(list)
}
