//! Initial-exec TLS of a library minld loads, in glibc's surplus static
//! TLS: glibc alone hands out that room, so minld asks glibc for it.
//!
//! A small object with a PT_TLS like the library's (`stub`) is written
//! into a memfd and opened with glibc's own `dlopen` from
//! `/proc/self/fd/N`. Its TPOFF64 against its own block makes glibc place
//! the block in static TLS and initialise it from the image in every
//! thread that exists (and, from then on, in every new thread); the
//! relocated word gives the block's offset from the thread pointer, and
//! `dlinfo` its module id (so `__tls_get_addr` reaches the same block).
//! The library's references are then relocated against that block.
//!
//! The stub stays open as long as the library's TLS module lives; its
//! memfd too, so that no later stub is opened under the same
//! `/proc/self/fd/N` name (glibc would take it for the loaded one).
//! Dropping the [`StaticBlock`] closes both. glibc gives static TLS back
//! only when the block is the last one handed out; otherwise the room is
//! lost, as with any static-TLS library glibc unloads.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::os::sys::{Fd, Sys};
use crate::process::host::thread_pointer;

use super::stub;

/// glibc's `dlopen`, `dlclose`, `dlinfo` and `dlerror`: the definitions of
/// libc.so.6 (found by the caller in the host's objects), so that a
/// `dlopen` interposed by a preloaded library is never the one used.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GlibcDl {
    /// `void *dlopen(const char *, int)`.
    dlopen: unsafe extern "C" fn(*const c_char, c_int) -> *mut c_void,
    /// `int dlclose(void *)`.
    dlclose: unsafe extern "C" fn(*mut c_void) -> c_int,
    /// `int dlinfo(void *, int, void *)`.
    dlinfo: unsafe extern "C" fn(*mut c_void, c_int, *mut c_void) -> c_int,
    /// `char *dlerror(void)`.
    dlerror: unsafe extern "C" fn() -> *mut c_char,
}

impl GlibcDl {
    /// The functions at the addresses `find` gives for their names (the
    /// host libc's definitions); where it finds none, the ones minld itself
    /// is linked against.
    pub(crate) fn new(find: impl Fn(&str) -> Option<usize>) -> GlibcDl {
        // SAFETY: `find` returns the address of libc's function of that
        // name, whose C signature is the field's (each transmute).
        unsafe {
            GlibcDl {
                dlopen: find("dlopen").map_or(libc::dlopen, |a| std::mem::transmute(a)),
                dlclose: find("dlclose").map_or(libc::dlclose, |a| std::mem::transmute(a)),
                dlinfo: find("dlinfo").map_or(libc::dlinfo, |a| std::mem::transmute(a)),
                dlerror: find("dlerror").map_or(libc::dlerror, |a| std::mem::transmute(a)),
            }
        }
    }

    /// The calling thread's `dlerror()` text (empty if none).
    fn error(&self) -> String {
        // SAFETY: dlerror takes nothing and returns null or a C string
        // valid until the thread's next dl call.
        let p = unsafe { (self.dlerror)() };
        if p.is_null() {
            return String::new();
        }
        // SAFETY: non-null: a NUL-terminated string owned by glibc.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// Why no static block could be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StaticTlsError {
    /// glibc's static TLS has no room left for the block; glibc's words.
    Full {
        /// What glibc's dlopen said.
        glibc: String,
    },
    /// A thread already has a block of the module from minld, which cannot
    /// be moved.
    InUse,
    /// The process cannot make the stub: it is the sandbox's runner,
    /// whose loading stage has no `memfd_create` (seccomp) and no
    /// `/proc/self/fd` (Landlock) (see [`refuse_stubs`]).
    Sandboxed,
    /// Anything else (the memfd, glibc's dlopen, what it answered).
    Failed {
        /// What went wrong.
        what: String,
    },
}

/// A block of glibc's static TLS held for a library: the stub glibc
/// loaded for it, and where the block is. Dropping it closes the stub.
pub(crate) struct StaticBlock {
    /// The stub's dlopen handle.
    handle: usize,
    /// glibc's dlclose, to close it.
    dlclose: unsafe extern "C" fn(*mut c_void) -> c_int,
    /// The memfd the stub was opened from, kept open while it is loaded.
    _file: Fd,
    /// glibc's module id of the stub (for `__tls_get_addr` and DTPMOD64).
    pub(crate) modid: usize,
    /// The block's offset from the thread pointer (negative), the same in
    /// every thread.
    pub(crate) offset: isize,
}

impl std::fmt::Debug for StaticBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticBlock")
            .field("handle", &format_args!("{:#x}", self.handle))
            .field("fd", &self._file.raw)
            .field("modid", &self.modid)
            .field("offset", &self.offset)
            .finish()
    }
}

impl Drop for StaticBlock {
    fn drop(&mut self) {
        // SAFETY: a handle glibc's dlopen returned, closed once; the stub
        // has no code, so nothing runs.
        unsafe { (self.dlclose)(self.handle as *mut c_void) };
    }
}

/// `RTLD_DI_LINKMAP` and `RTLD_DI_TLS_MODID` of `<dlfcn.h>`.
const RTLD_DI_LINKMAP: c_int = 2;
/// See [`RTLD_DI_LINKMAP`].
const RTLD_DI_TLS_MODID: c_int = 9;

/// Has glibc reserve a block of its static TLS of `mem_size` bytes aligned
/// to `align`, starting as `image` (the rest zeroed) in every thread;
/// `phase` is the library's PT_TLS p_vaddr modulo `align`, `name` the
/// library's (in the memfd's name and the trace).
#[allow(clippy::too_many_arguments)] // the block's four, the library, the means
pub(crate) fn allocate(
    name: &str,
    sys: Sys,
    dl: &GlibcDl,
    image: &[u8],
    mem_size: usize,
    align: usize,
    phase: usize,
) -> Result<StaticBlock, StaticTlsError> {
    let failed = |what: String| StaticTlsError::Failed { what };
    if STUBS_REFUSED.load(Ordering::Relaxed) {
        return Err(StaticTlsError::Sandboxed);
    }
    if !align.is_power_of_two() || align > stub::MAX_ALIGN {
        return Err(failed(format!("alignment {align:#x} not supported")));
    }
    let stub = stub::build(image, mem_size, align, phase);
    let why = format!(
        "{name}: initial-exec TLS ({mem_size:#x} bytes, align {align}): \
         an object for glibc's dlopen, whose PT_TLS reserves the block in its static TLS"
    );
    let memfd_name = memfd_name(name);
    let file = sys
        .memfd_create(&memfd_name, &why)
        .map_err(|e| failed(format!("memfd_create: {e}")))?;
    sys.write_all(&file, &stub.bytes, &why)
        .map_err(|e| failed(format!("writing the memfd: {e}")))?;
    let path = CString::new(format!("/proc/self/fd/{}", file.raw)).expect("no NUL in a number");
    // SAFETY: glibc's dlopen of a file holding only the stub: no
    // dependencies, no code, no constructors.
    let handle = unsafe { (dl.dlopen)(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    let glibc = if handle.is_null() {
        dl.error()
    } else {
        String::new()
    };
    sys.untraced(format_args!(
        "not traced: glibc's dlopen(\"{}\", RTLD_NOW|RTLD_LOCAL) ran here, its own system \
         calls (openat, read, mmap, close, ...) are not in this trace; it returned {}",
        path.to_string_lossy(),
        if handle.is_null() {
            format!("NULL ({glibc})")
        } else {
            format!("{handle:p} (a handle)")
        }
    ));
    if handle.is_null() {
        return Err(if glibc.contains("static TLS") {
            StaticTlsError::Full { glibc }
        } else {
            failed(format!(
                "glibc's dlopen of {}: {glibc}",
                path.to_string_lossy()
            ))
        });
    }
    let mut block = StaticBlock {
        handle: handle as usize,
        dlclose: dl.dlclose,
        _file: file,
        modid: 0,
        offset: 0,
    };
    let (mut map, mut modid): (*const usize, usize) = (std::ptr::null(), 0);
    // SAFETY: dlinfo on a live handle, each request writing one pointer /
    // one size_t.
    let ok = unsafe {
        (dl.dlinfo)(handle, RTLD_DI_LINKMAP, (&raw mut map).cast()) == 0
            && (dl.dlinfo)(handle, RTLD_DI_TLS_MODID, (&raw mut modid).cast()) == 0
    };
    if !ok || map.is_null() || modid == 0 {
        return Err(failed(format!("dlinfo of the stub: {}", dl.error())));
    }
    // SAFETY: `map` is the stub's `struct link_map`, whose first member is
    // l_addr; the word lies in its mapped, relocated PT_LOAD.
    let offset = unsafe { *((*map).wrapping_add(stub.word) as *const isize) };
    let start = (thread_pointer() as isize).wrapping_add(offset) as usize;
    if offset >= 0 || (start.wrapping_sub(phase % align)) % align != 0 {
        return Err(failed(format!(
            "glibc placed the block at {offset:#x} from the thread pointer, \
             not below it and aligned to {align:#x}"
        )));
    }
    (block.modid, block.offset) = (modid, offset);
    Ok(block)
}

/// Set once the process can no longer make a stub (see [`refuse_stubs`]).
static STUBS_REFUSED: AtomicBool = AtomicBool::new(false);

/// From now on, for the life of the process, [`allocate`] refuses with
/// [`StaticTlsError::Sandboxed`] before trying: called by the sandbox's
/// runner as it locks itself down for loading (a seccomp filter cannot be
/// lifted, and neither its loading nor its serving stage allows the
/// memfd or glibc's open of `/proc/self/fd/N`).
pub(crate) fn refuse_stubs() {
    STUBS_REFUSED.store(true, Ordering::Relaxed);
}

/// The longest name `memfd_create` takes, its NUL not counted (the
/// kernel's limit: a file name's 255 bytes less its `memfd:` prefix).
const MEMFD_NAME_MAX: usize = 249;

/// The memfd's name for the stub of library `name`: `minld-static-tls:`
/// and the name, cut on a character boundary to what `memfd_create` takes
/// (a longer name is refused with EINVAL), without NUL bytes.
fn memfd_name(name: &str) -> CString {
    let mut s = String::from("minld-static-tls:");
    for c in name.chars().filter(|&c| c != '\0') {
        if s.len() + c.len_utf8() > MEMFD_NAME_MAX {
            break;
        }
        s.push(c);
    }
    CString::new(s).expect("NUL bytes were left out")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel takes the name: `memfd_create` with it succeeds.
    fn kernel_takes(name: &CStr) -> bool {
        // SAFETY: a NUL-terminated name and valid flags; the fd, if any,
        // is closed at once.
        unsafe {
            let fd = libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC);
            if fd >= 0 {
                libc::close(fd);
            }
            fd >= 0
        }
    }

    #[test]
    fn a_long_soname_is_cut_on_a_char_boundary_to_what_the_kernel_takes() {
        let short = memfd_name("libshort.so");
        assert_eq!(short.to_bytes(), b"minld-static-tls:libshort.so");
        for soname in [
            format!("lib{}.so", "x".repeat(300)),
            format!("lib{}.so", "\u{e9}".repeat(200)),
            format!("lib{}.so", "\u{1f600}".repeat(100)),
            format!("lib{}\0x.so", "y".repeat(240)),
        ] {
            let name = memfd_name(&soname);
            let text = std::str::from_utf8(name.to_bytes()).expect("cut on a char boundary");
            assert!(name.to_bytes().len() <= MEMFD_NAME_MAX, "{text}");
            assert!(name.to_bytes().len() > MEMFD_NAME_MAX - 4, "{text}");
            let kept = text.strip_prefix("minld-static-tls:").unwrap();
            assert!(soname.replace('\0', "").starts_with(kept), "{text}");
            assert!(kernel_takes(&name), "memfd_create refused {text}");
        }
        // The limit is the kernel's: one byte more is refused.
        let over = CString::new("z".repeat(MEMFD_NAME_MAX + 1)).unwrap();
        assert!(!kernel_takes(&over));
        let at = CString::new("z".repeat(MEMFD_NAME_MAX)).unwrap();
        assert!(kernel_takes(&at));
    }
}
