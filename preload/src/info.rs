//! What walks the process's objects: `dl_iterate_phdr` (glibc's objects,
//! then minld's), `dladdr` and `dladdr1` (glibc's answer, else minld's),
//! `dlinfo` (minld's handles answered from minld's objects and the link
//! map it keeps for debuggers, glibc's handles by glibc).

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::os::unix::ffi::OsStrExt;

use crate::real::{real, PhdrCallback};
use crate::{error, open};

/// `dladdr1`'s request for the symbol table entry.
const RTLD_DL_SYMENT: c_int = 1;
/// `dladdr1`'s request for the link map.
const RTLD_DL_LINKMAP: c_int = 2;

/// `dlinfo` requests (`<dlfcn.h>`).
const RTLD_DI_LMID: c_int = 1;
/// The `link_map`.
const RTLD_DI_LINKMAP: c_int = 2;
/// `Dl_info` of a configuration: glibc answers it for no object.
const RTLD_DI_CONFIGADDR: c_int = 3;
/// The search path for the object's dependencies, into the caller's
/// `Dl_serinfo` (sized by [`RTLD_DI_SERINFOSIZE`] first).
const RTLD_DI_SERINFO: c_int = 4;
/// The size and count of [`RTLD_DI_SERINFO`]'s answer.
const RTLD_DI_SERINFOSIZE: c_int = 5;
/// The object's directory.
const RTLD_DI_ORIGIN: c_int = 6;
/// The TLS module id.
const RTLD_DI_TLS_MODID: c_int = 9;
/// The calling thread's TLS block.
const RTLD_DI_TLS_DATA: c_int = 10;
/// The program headers.
const RTLD_DI_PHDR: c_int = 11;

/// What the wrapping callback passes on.
struct Walk {
    callback: unsafe extern "C" fn(*mut libc::dl_phdr_info, libc::size_t, *mut c_void) -> c_int,
    data: *mut c_void,
    counts: minld::ObjectCounts,
    /// glibc's own counts, from its entries (to add minld's objects' to).
    glibc: (u64, u64),
}

/// glibc's entries, their counts moved by minld's, passed on.
unsafe extern "C" fn glibc_entry(
    info: *mut libc::dl_phdr_info,
    size: libc::size_t,
    data: *mut c_void,
) -> c_int {
    // SAFETY: glibc passes a valid entry of `size` bytes and our Walk.
    let (info, w) = unsafe { (&*info, &mut *(data as *mut Walk)) };
    let mut copy = libc::dl_phdr_info { ..*info };
    w.glibc = (info.dlpi_adds, info.dlpi_subs);
    copy.dlpi_adds = info.dlpi_adds.wrapping_add(w.counts.adds as _);
    copy.dlpi_subs = info.dlpi_subs.wrapping_add(w.counts.subs as _);
    // SAFETY: the program's callback, with an entry as glibc makes them.
    unsafe { (w.callback)(&mut copy, size.min(std::mem::size_of_val(&copy)), w.data) }
}

/// `dl_iterate_phdr` (see `entry::dl_iterate_phdr`), `caller` its return
/// address: glibc's objects (from glibc), then minld's, in the order they
/// were mapped; `dlpi_adds` and `dlpi_subs` are glibc's and minld's
/// together, so that a cache keyed on them (libgcc's unwinder) notices
/// minld's loads and unloads too.
pub(crate) extern "C" fn iterate_from(
    callback: PhdrCallback,
    data: *mut c_void,
    caller: usize,
) -> c_int {
    crate::guard(0, || {
        if crate::real::is_own(caller) {
            // SAFETY: glibc's dl_iterate_phdr, for minld's own use.
            return unsafe { (real().dl_iterate_phdr)(callback, data) };
        }
        let Some(callback) = callback else {
            return 0;
        };
        // The objects are held (kept loaded) until the walk ends.
        let (objects, counts) = minld::loaded_objects();
        let mut w = Walk {
            callback,
            data,
            counts,
            glibc: (0, 0),
        };
        // SAFETY: glibc's dl_iterate_phdr, with our callback and our Walk.
        let r = unsafe {
            (real().dl_iterate_phdr)(Some(glibc_entry), &mut w as *mut Walk as *mut c_void)
        };
        if r != 0 {
            return r;
        }
        for o in &objects {
            let (phdr, phnum) = o.program_headers();
            let mut info = libc::dl_phdr_info {
                dlpi_addr: o.base() as _,
                dlpi_name: o.c_name().as_ptr(),
                dlpi_phdr: phdr.cast(),
                dlpi_phnum: u16::try_from(phnum).unwrap_or(u16::MAX),
                dlpi_adds: (w.glibc.0.wrapping_add(counts.adds)) as _,
                dlpi_subs: (w.glibc.1.wrapping_add(counts.subs)) as _,
                dlpi_tls_modid: o.tls_module(),
                dlpi_tls_data: o.tls_data(),
            };
            // SAFETY: the program's callback, with an entry describing a
            // loaded object (held by `objects`).
            let r = unsafe { callback(&mut info, std::mem::size_of_val(&info), data) };
            if r != 0 {
                return r;
            }
        }
        0
    })
}

/// The dynamic symbol of `o` that `addr` lies in, as glibc's `dladdr`
/// picks it: one whose extent contains the address (or of size 0, at the
/// address); an address in no symbol (a static function) has none, though
/// one lies below it.
fn symbol_in(o: &minld::LoadedObject, addr: usize) -> Option<minld::SymbolAt> {
    let s = o.symbol_at(addr)?;
    // SAFETY: `entry` is the symbol's Elf64_Sym in the object's symbol
    // table, mapped while `o` holds the object.
    let size = unsafe { (*(s.entry as *const libc::Elf64_Sym)).st_size } as usize;
    let inside = addr.wrapping_sub(s.addr) < size || (size == 0 && addr == s.addr);
    inside.then_some(s)
}

/// Fills `info` for an address in one of minld's objects.
fn minld_addr(addr: usize, info: &mut libc::Dl_info) -> Option<minld::LoadedObject> {
    let o = minld::object_at(addr)?;
    info.dli_fname = o.c_name().as_ptr();
    info.dli_fbase = o.map_start() as *mut c_void;
    match symbol_in(&o, addr) {
        Some(s) => {
            info.dli_sname = s.name;
            info.dli_saddr = s.addr as *mut c_void;
        }
        None => {
            info.dli_sname = std::ptr::null();
            info.dli_saddr = std::ptr::null_mut();
        }
    }
    Some(o)
}

/// `int dladdr(const void *addr, Dl_info *info)`: glibc's answer for its
/// objects, minld's for minld's (the strings are the objects' own, valid
/// while they stay loaded, as with glibc).
#[no_mangle]
pub extern "C" fn dladdr(addr: *const c_void, info: *mut libc::Dl_info) -> c_int {
    crate::guard(0, || {
        // SAFETY: glibc's dladdr with the caller's arguments.
        if unsafe { (real().dladdr)(addr, info) } != 0 {
            return 1;
        }
        // SAFETY: the caller passes a writable Dl_info.
        let Some(info) = (unsafe { info.as_mut() }) else {
            return 0;
        };
        c_int::from(minld_addr(addr as usize, info).is_some())
    })
}

/// `int dladdr1(const void *addr, Dl_info *info, void **extra, int flags)`.
#[no_mangle]
pub extern "C" fn dladdr1(
    addr: *const c_void,
    info: *mut libc::Dl_info,
    extra: *mut *mut c_void,
    flags: c_int,
) -> c_int {
    crate::guard(0, || {
        // SAFETY: glibc's dladdr1 with the caller's arguments.
        if unsafe { (real().dladdr1)(addr, info, extra, flags) } != 0 {
            return 1;
        }
        // SAFETY: the caller passes a writable Dl_info.
        let Some(info) = (unsafe { info.as_mut() }) else {
            return 0;
        };
        let Some(o) = minld_addr(addr as usize, info) else {
            return 0;
        };
        let value = match flags {
            RTLD_DL_SYMENT => {
                symbol_in(&o, addr as usize).map_or(std::ptr::null(), |s| s.entry) as *mut c_void
            }
            RTLD_DL_LINKMAP => o.link_map(),
            _ => return 1,
        };
        if !extra.is_null() {
            // SAFETY: with these flags the caller passes a writable pointer.
            unsafe { *extra = value };
        }
        1
    })
}

/// `dlinfo` (see `entry::dlinfo`), `caller` its return address.
pub(crate) extern "C" fn dlinfo_from(
    handle: *mut c_void,
    request: c_int,
    arg: *mut c_void,
    caller: usize,
) -> c_int {
    crate::guard(-1, || {
        if crate::real::is_own(caller) {
            // SAFETY: glibc's dlinfo on a handle of glibc's, for minld.
            return unsafe { (real().dlinfo)(handle, request, arg) };
        }
        error::begin();
        let lib = match open::library(handle) {
            None => {
                // SAFETY: glibc's handle, glibc's dlinfo.
                let r = unsafe { (real().dlinfo)(handle, request, arg) };
                if r != 0 {
                    error::take_glibc();
                }
                return r;
            }
            Some(Err(path)) => {
                error::set(open::not_open("dlinfo", handle, &path));
                return -1;
            }
            Some(Ok(lib)) => lib,
        };
        let o = lib
            .segments()
            .first()
            .and_then(|s| minld::object_at(s.addr));
        let Some(o) = o else {
            error::set(format!(
                "dlinfo: {}: not one of minld's objects",
                lib.path().display()
            ));
            return -1;
        };
        if arg.is_null() {
            error::set(format!(
                "dlinfo: {}: request {request}: the argument is a null pointer",
                o.path().display()
            ));
            return -1;
        }
        answer(&o, request, arg)
    })
}

/// `dlinfo`'s answer for one of minld's objects.
fn answer(o: &minld::LoadedObject, request: c_int, arg: *mut c_void) -> c_int {
    // SAFETY: (each write) the caller passes a writable object of the type
    // the request names (`<dlfcn.h>`); RTLD_DI_ORIGIN's buffer must hold
    // a path (PATH_MAX, as glibc requires too).
    unsafe {
        match request {
            // minld's objects are in the process's base namespace.
            RTLD_DI_LMID => *(arg as *mut libc::c_long) = 0,
            RTLD_DI_LINKMAP => {
                let l = o.link_map();
                if l.is_null() {
                    error::set(format!(
                        "dlinfo: {}: RTLD_DI_LINKMAP: no link map (the program has no DT_DEBUG)",
                        o.path().display()
                    ));
                    return -1;
                }
                *(arg as *mut *mut c_void) = l;
            }
            RTLD_DI_ORIGIN => {
                let dir = o.c_name().to_bytes();
                let end = dir.iter().rposition(|&c| c == b'/').unwrap_or(0);
                let dir = if end == 0 && dir.first() == Some(&b'/') {
                    &b"/"[..]
                } else {
                    &dir[..end]
                };
                std::ptr::copy_nonoverlapping(dir.as_ptr(), arg as *mut u8, dir.len());
                *(arg as *mut u8).add(dir.len()) = 0;
            }
            RTLD_DI_SERINFO | RTLD_DI_SERINFOSIZE => {
                return serinfo(o, arg.cast(), request == RTLD_DI_SERINFOSIZE)
            }
            RTLD_DI_CONFIGADDR => {
                error::set(format!(
                    "unsupported dlinfo request: RTLD_DI_CONFIGADDR for {}: glibc answers it \
                     for none of its objects either",
                    o.path().display()
                ));
                return -1;
            }
            RTLD_DI_TLS_MODID => *(arg as *mut usize) = o.tls_module(),
            RTLD_DI_TLS_DATA => *(arg as *mut *mut c_void) = o.tls_data(),
            RTLD_DI_PHDR => {
                let (p, n) = o.program_headers();
                *(arg as *mut *const c_void) = p;
                return c_int::try_from(n).unwrap_or(c_int::MAX);
            }
            _ => {
                error::set(format!(
                    "unsupported dlinfo request: {request} for {}: minld's objects answer \
                     RTLD_DI_LMID, LINKMAP, ORIGIN, SERINFO, SERINFOSIZE, TLS_MODID, TLS_DATA \
                     and PHDR",
                    o.path().display()
                ));
                return -1;
            }
        }
    }
    0
}

/// `Dl_serpath` (`<dlfcn.h>`): one directory of a search path.
#[repr(C)]
struct SerPath {
    /// The directory, without a trailing slash.
    name: *mut c_char,
    /// Always 0 (glibc sets none).
    flags: c_uint,
}

/// `Dl_serinfo` (`<dlfcn.h>`): its head; `dls_cnt` [`SerPath`]s follow,
/// then their strings.
#[repr(C)]
struct SerInfo {
    /// The size of the whole buffer, in bytes.
    size: libc::size_t,
    /// How many directories.
    cnt: c_uint,
}

/// `RTLD_DI_SERINFOSIZE` (`counting`) and `RTLD_DI_SERINFO`: the search
/// path minld uses for the object's dependencies
/// ([`minld::dependency_search_path`]), in glibc's layout and its
/// two-call protocol: the first call sets `dls_size` and `dls_cnt`, the
/// second fills a buffer of that size whose head the caller set so. A
/// buffer whose head does not match the path (too small, or another
/// count) is refused with a message where glibc would write past it.
fn serinfo(o: &minld::LoadedObject, si: *mut SerInfo, counting: bool) -> c_int {
    let Some(dirs) = minld::dependency_search_path(o.map_start()) else {
        error::set(format!(
            "dlinfo: {}: no longer one of minld's objects",
            o.path().display()
        ));
        return -1;
    };
    // Each directory as glibc writes it: no trailing slash ("/" stays).
    let names: Vec<&[u8]> = dirs
        .iter()
        .map(|(d, _)| {
            let b = d.as_os_str().as_bytes();
            match b.strip_suffix(b"/") {
                Some(s) if !s.is_empty() => s,
                _ if b.is_empty() => b".",
                _ => b,
            }
        })
        .collect();
    let head = std::mem::size_of::<SerInfo>().next_multiple_of(std::mem::align_of::<SerPath>());
    let table = head + names.len() * std::mem::size_of::<SerPath>();
    let size = table + names.iter().map(|n| n.len() + 1).sum::<usize>();
    let cnt = c_uint::try_from(names.len()).unwrap_or(c_uint::MAX);
    // SAFETY: the caller passes a Dl_serinfo: its head is readable and
    // writable; with RTLD_DI_SERINFO, `dls_size` bytes are (checked
    // against what is written below).
    unsafe {
        if counting {
            (*si).size = size;
            (*si).cnt = cnt;
            return 0;
        }
        if (*si).cnt != cnt || (*si).size < size {
            error::set(format!(
                "dlinfo: {}: RTLD_DI_SERINFO: the buffer says dls_size {} and dls_cnt {}; \
                 the search path needs {size} bytes for {cnt} directories (ask \
                 RTLD_DI_SERINFOSIZE first)",
                o.path().display(),
                (*si).size,
                (*si).cnt
            ));
            return -1;
        }
        let paths = (si as *mut u8).add(head) as *mut SerPath;
        let mut text = (si as *mut u8).add(table);
        for (i, n) in names.iter().enumerate() {
            paths.add(i).write(SerPath {
                name: text.cast(),
                flags: 0,
            });
            std::ptr::copy_nonoverlapping(n.as_ptr(), text, n.len());
            *text.add(n.len()) = 0;
            text = text.add(n.len() + 1);
        }
    }
    0
}
