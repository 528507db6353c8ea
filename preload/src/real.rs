//! glibc's own `<dlfcn.h>` functions (and the two of `<execinfo.h>` that
//! name addresses), found in the host's libc.so.6
//! itself, and the address range of this preload.
//!
//! They cannot be found by name through the dynamic linker: every lookup
//! of `dlsym` (even `dlsym(RTLD_NEXT, …)`, which is our own export) would
//! find this library's definitions first. So the link map glibc keeps for
//! debuggers (`_r_debug.r_map`) is walked to libc.so.6, and each function
//! is looked up in libc's own symbol table through its GNU hash table, at
//! its default version (`dlopen@@GLIBC_2.34`, not the hidden
//! `dlopen@GLIBC_2.2.5`).

use std::ffi::{c_char, c_int, c_long, c_void, CStr};
use std::sync::OnceLock;

/// `dlopen`.
pub(crate) type OpenFn = unsafe extern "C" fn(*const c_char, c_int) -> *mut c_void;
/// `dlmopen`.
pub(crate) type MopenFn = unsafe extern "C" fn(c_long, *const c_char, c_int) -> *mut c_void;
/// `dlsym`.
pub(crate) type SymFn = unsafe extern "C" fn(*mut c_void, *const c_char) -> *mut c_void;
/// `dlvsym`.
pub(crate) type VsymFn =
    unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char) -> *mut c_void;
/// `dlclose`.
pub(crate) type CloseFn = unsafe extern "C" fn(*mut c_void) -> c_int;
/// `dlerror`.
pub(crate) type ErrorFn = unsafe extern "C" fn() -> *mut c_char;
/// `dladdr`.
pub(crate) type AddrFn = unsafe extern "C" fn(*const c_void, *mut libc::Dl_info) -> c_int;
/// `dladdr1`.
pub(crate) type Addr1Fn =
    unsafe extern "C" fn(*const c_void, *mut libc::Dl_info, *mut *mut c_void, c_int) -> c_int;
/// `dlinfo`.
pub(crate) type InfoFn = unsafe extern "C" fn(*mut c_void, c_int, *mut c_void) -> c_int;
/// A `dl_iterate_phdr` callback.
pub(crate) type PhdrCallback =
    Option<unsafe extern "C" fn(*mut libc::dl_phdr_info, libc::size_t, *mut c_void) -> c_int>;
/// `backtrace_symbols`.
pub(crate) type SymbolsFn = unsafe extern "C" fn(*const *mut c_void, c_int) -> *mut *mut c_char;
/// `backtrace_symbols_fd`.
pub(crate) type SymbolsFdFn = unsafe extern "C" fn(*const *mut c_void, c_int, c_int);
/// `dl_iterate_phdr`.
pub(crate) type IterateFn = unsafe extern "C" fn(PhdrCallback, *mut c_void) -> c_int;

/// glibc's functions, and where this library lies.
pub(crate) struct Real {
    pub(crate) dlopen: OpenFn,
    pub(crate) dlmopen: MopenFn,
    pub(crate) dlsym: SymFn,
    pub(crate) dlvsym: VsymFn,
    pub(crate) dlclose: CloseFn,
    pub(crate) dlerror: ErrorFn,
    pub(crate) dladdr: AddrFn,
    pub(crate) dladdr1: Addr1Fn,
    pub(crate) dlinfo: InfoFn,
    pub(crate) dl_iterate_phdr: IterateFn,
    pub(crate) backtrace_symbols: SymbolsFn,
    pub(crate) backtrace_symbols_fd: SymbolsFdFn,
    /// This library's lowest and highest mapped addresses (its PT_LOADs).
    own: (usize, usize),
}

/// The public head of glibc's `struct link_map` (`<link.h>`).
#[repr(C)]
struct LinkMap {
    l_addr: usize,
    l_name: *const c_char,
    l_ld: *const [i64; 2],
    l_next: *const LinkMap,
    l_prev: *const LinkMap,
}

/// The head of `struct r_debug` (`<link.h>`).
#[repr(C)]
struct RDebug {
    r_version: c_int,
    r_map: *const LinkMap,
}

extern "C" {
    /// ld.so's debugger interface: the list of every object glibc loaded.
    static _r_debug: RDebug;
}

/// glibc's functions; the process cannot go on without them (a glibc
/// older than 2.34, whose libdl was a library of its own, is refused here
/// with a message).
pub(crate) fn real() -> &'static Real {
    static REAL: OnceLock<Real> = OnceLock::new();
    REAL.get_or_init(|| match find() {
        Ok(r) => r,
        Err(why) => {
            eprintln!("minld-preload: {why}");
            std::process::abort()
        }
    })
}

/// Whether `addr` is in this library's own code or data: a call from
/// here (minld or Rust's std calling `dlsym`, `dl_iterate_phdr`…) goes
/// straight to glibc.
pub(crate) fn is_own(addr: usize) -> bool {
    let (start, end) = real().own;
    addr >= start && addr < end
}

/// Walks glibc's link map to libc.so.6 and looks each function up.
fn find() -> Result<Real, String> {
    // SAFETY: ld.so's `_r_debug` lives for the process; its list is
    // glibc's, complete for every object loaded before this library ran
    // (libc.so.6 among them, as this library's own dependency).
    let mut l = unsafe { (*std::ptr::addr_of!(_r_debug)).r_map };
    let libc = loop {
        if l.is_null() {
            return Err("libc.so.6 is not in glibc's link map".into());
        }
        // SAFETY: a node of glibc's list, whose nodes of startup objects
        // are never freed.
        let node = unsafe { &*l };
        let name = if node.l_name.is_null() {
            &b""[..]
        } else {
            // SAFETY: l_name is a NUL-terminated string owned by glibc.
            unsafe { CStr::from_ptr(node.l_name) }.to_bytes()
        };
        if name.ends_with(b"/libc.so.6") || name == b"libc.so.6" {
            break node;
        }
        l = node.l_next;
    };
    // SAFETY: libc's dynamic section and tables, mapped for the process's
    // life; the lookup reads only inside the tables they describe.
    let t =
        unsafe { Tables::of(libc) }.ok_or("libc.so.6: no DT_GNU_HASH, DT_SYMTAB or DT_STRTAB")?;
    let get = |name: &CStr| -> Result<usize, String> {
        // SAFETY: as above.
        unsafe { t.lookup(name) }
            .ok_or_else(|| format!("libc.so.6: no default version of {name:?} (glibc < 2.34?)"))
    };
    let dl_iterate_phdr: IterateFn = {
        let a = get(c"dl_iterate_phdr")?;
        // SAFETY: libc's dl_iterate_phdr has this type.
        unsafe { std::mem::transmute::<usize, IterateFn>(a) }
    };
    let own = own_range(dl_iterate_phdr);
    // SAFETY: (each transmute) the symbol of that name in libc.so.6 is
    // the function of that type (`<dlfcn.h>`, glibc 2.34 and later).
    unsafe {
        Ok(Real {
            dlopen: std::mem::transmute::<usize, OpenFn>(get(c"dlopen")?),
            dlmopen: std::mem::transmute::<usize, MopenFn>(get(c"dlmopen")?),
            dlsym: std::mem::transmute::<usize, SymFn>(get(c"dlsym")?),
            dlvsym: std::mem::transmute::<usize, VsymFn>(get(c"dlvsym")?),
            dlclose: std::mem::transmute::<usize, CloseFn>(get(c"dlclose")?),
            dlerror: std::mem::transmute::<usize, ErrorFn>(get(c"dlerror")?),
            dladdr: std::mem::transmute::<usize, AddrFn>(get(c"dladdr")?),
            dladdr1: std::mem::transmute::<usize, Addr1Fn>(get(c"dladdr1")?),
            dlinfo: std::mem::transmute::<usize, InfoFn>(get(c"dlinfo")?),
            dl_iterate_phdr,
            backtrace_symbols: std::mem::transmute::<usize, SymbolsFn>(get(c"backtrace_symbols")?),
            backtrace_symbols_fd: std::mem::transmute::<usize, SymbolsFdFn>(get(
                c"backtrace_symbols_fd",
            )?),
            own,
        })
    }
}

/// This library's mapped range, from glibc's `dl_iterate_phdr`.
fn own_range(iterate: IterateFn) -> (usize, usize) {
    /// The callback: the object whose PT_LOADs contain `data`'s address.
    unsafe extern "C" fn cb(
        info: *mut libc::dl_phdr_info,
        _: libc::size_t,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: glibc passes a valid entry; `data` is our (usize, usize, usize).
        let (info, out) = unsafe { (&*info, &mut *(data as *mut (usize, usize, usize))) };
        let (mut lo, mut hi) = (usize::MAX, 0);
        for i in 0..usize::from(info.dlpi_phnum) {
            // SAFETY: dlpi_phdr holds dlpi_phnum program headers.
            let p = unsafe { &*info.dlpi_phdr.add(i) };
            if p.p_type == libc::PT_LOAD {
                let start = (info.dlpi_addr as usize).wrapping_add(p.p_vaddr as usize);
                lo = lo.min(start);
                hi = hi.max(start.wrapping_add(p.p_memsz as usize));
            }
        }
        if out.0 >= lo && out.0 < hi {
            (out.1, out.2) = (lo, hi);
            return 1;
        }
        0
    }
    let mut data = (own_range as *const () as usize, 0usize, 0usize);
    // SAFETY: glibc's dl_iterate_phdr with a callback of the right type
    // and a pointer to a live tuple it only passes back.
    unsafe { iterate(Some(cb), &mut data as *mut _ as *mut c_void) };
    (data.1, data.2)
}

/// libc's symbol lookup tables, as real addresses.
struct Tables {
    /// The load bias: symbol values are relative to it.
    bias: usize,
    gnu_hash: usize,
    symtab: usize,
    strtab: usize,
    versym: usize,
}

impl Tables {
    /// # Safety
    /// `l` is glibc's node of a loaded object with a dynamic section.
    unsafe fn of(l: &LinkMap) -> Option<Tables> {
        let (mut gnu_hash, mut symtab, mut strtab, mut versym) = (0, 0, 0, 0);
        let mut d = l.l_ld;
        loop {
            // SAFETY: the dynamic section ends with DT_NULL.
            let [tag, val] = unsafe { *d };
            // glibc stores most pointers of a loaded object's dynamic
            // section relocated in place; a value below the load bias is
            // still a virtual address.
            let val = val as usize;
            let addr = if val < l.l_addr { val + l.l_addr } else { val };
            match tag {
                0 => break,
                5 => strtab = addr,
                6 => symtab = addr,
                0x6fff_fef5 => gnu_hash = addr,
                0x6fff_fff0 => versym = addr,
                _ => {}
            }
            // SAFETY: not at DT_NULL yet, so another entry follows.
            d = unsafe { d.add(1) };
        }
        (gnu_hash != 0 && symtab != 0 && strtab != 0).then_some(Tables {
            bias: l.l_addr,
            gnu_hash,
            symtab,
            strtab,
            versym,
        })
    }

    /// The address of `name`'s default-version definition.
    ///
    /// # Safety
    /// The tables are a loaded object's, consistent with each other.
    unsafe fn lookup(&self, name: &CStr) -> Option<usize> {
        let want = name.to_bytes();
        let h = want.iter().fold(5381u32, |h, &c| {
            h.wrapping_mul(33).wrapping_add(u32::from(c))
        });
        // SAFETY: (whole block) reads inside the GNU hash table (header,
        // bloom words, buckets, chains), the symbol table and the string
        // table, at the positions the hash table gives.
        unsafe {
            let hdr = self.gnu_hash as *const u32;
            let (nbuckets, symoffset, bloom_size) = (*hdr, *hdr.add(1), *hdr.add(2));
            let buckets = hdr.add(4 + 2 * bloom_size as usize);
            let chains = buckets.add(nbuckets as usize);
            let mut i = *buckets.add((h % nbuckets) as usize);
            if i < symoffset {
                return None;
            }
            loop {
                let ch = *chains.add((i - symoffset) as usize);
                if ch | 1 == h | 1 {
                    let sym = &*((self.symtab as *const libc::Elf64_Sym).add(i as usize));
                    let sname =
                        CStr::from_ptr((self.strtab + sym.st_name as usize) as *const c_char);
                    let hidden = self.versym != 0
                        && *((self.versym as *const u16).add(i as usize)) & 0x8000 != 0;
                    if sname.to_bytes() == want && !hidden && sym.st_shndx != 0 {
                        return Some(self.bias + sym.st_value as usize);
                    }
                }
                if ch & 1 != 0 {
                    return None;
                }
                i += 1;
            }
        }
    }
}
