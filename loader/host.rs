//! The host's objects: the program, glibc and whatever else glibc loaded.
//!
//! minld never maps a second glibc (../shared/DESIGN.md §3): symbols of
//! libc.so.6 and ld-linux-x86-64.so.2, and of any dependency the process
//! already has, come from the copies in the process. They are found with
//! `dl_iterate_phdr` and their tables read in place with minld's own lookup.

use std::ffi::CStr;
use std::path::PathBuf;
use std::sync::Arc;

use goblin::elf::program_header as ph;
use goblin::elf64::program_header::ProgramHeader;

use crate::dynamic::{self, PtrStyle};
use crate::mem::Memory;
use crate::symbols::Symbols;

/// glibc's own libraries: never mapped by minld, always the host's copies.
/// The four stubs have been empty since glibc 2.34; their symbols live in
/// libc.so.6.
pub(crate) const GLIBC_OWN: &[&str] = &[
    "libc.so.6",
    "ld-linux-x86-64.so.2",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libutil.so.1",
    "libanl.so.1",
];

/// Where glibc's stubs send their symbols.
pub(crate) fn glibc_target(name: &str) -> Option<&'static str> {
    let base = name.rsplit('/').next().unwrap_or(name);
    match base {
        "ld-linux-x86-64.so.2" => Some("ld-linux-x86-64.so.2"),
        b if GLIBC_OWN.contains(&b) => Some("libc.so.6"),
        _ => None,
    }
}

/// One object glibc loaded.
#[derive(Debug)]
pub(crate) struct HostObject {
    /// dlpi_name; empty for the main program.
    pub(crate) path: PathBuf,
    /// DT_SONAME, or the file name.
    pub(crate) soname: String,
    pub(crate) bias: usize,
    pub(crate) symbols: Symbols,
    /// glibc's TLS module id (0 without PT_TLS).
    pub(crate) tls_modid: usize,
    /// Offset of this module's static TLS block from the thread pointer
    /// (the same in every thread), when it has one.
    pub(crate) tls_offset: Option<isize>,
}

/// The host's objects in glibc's load order, and the counters that tell
/// whether glibc loaded or unloaded anything since.
#[derive(Debug, Default)]
pub(crate) struct HostObjects {
    pub(crate) objects: Vec<Arc<HostObject>>,
    adds: u64,
    subs: u64,
}

struct Raw {
    name: Vec<u8>,
    bias: usize,
    phdrs: Vec<ProgramHeader>,
    tls_modid: usize,
    tls_data: usize,
    adds: u64,
    subs: u64,
}

unsafe extern "C" fn collect(
    info: *mut libc::dl_phdr_info,
    size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: glibc passes a valid dl_phdr_info of `size` bytes and our own
    // `data` pointer, a live Vec<Raw>, for the duration of the callback.
    let (info, out) = unsafe { (&*info, &mut *(data as *mut Vec<Raw>)) };
    let name = if info.dlpi_name.is_null() {
        Vec::new()
    } else {
        // SAFETY: dlpi_name is a NUL-terminated string owned by glibc.
        unsafe { CStr::from_ptr(info.dlpi_name) }
            .to_bytes()
            .to_vec()
    };
    let phdrs = if info.dlpi_phdr.is_null() {
        Vec::new()
    } else {
        // SAFETY: dlpi_phdr points at dlpi_phnum program headers in the
        // object's mapped image; goblin's 64-bit header has the same layout.
        unsafe {
            std::slice::from_raw_parts(
                info.dlpi_phdr as *const ProgramHeader,
                usize::from(info.dlpi_phnum),
            )
        }
        .to_vec()
    };
    let has_counters = size >= std::mem::offset_of!(libc::dl_phdr_info, dlpi_subs) + 8;
    out.push(Raw {
        name,
        bias: info.dlpi_addr as usize,
        phdrs,
        tls_modid: info.dlpi_tls_modid,
        tls_data: info.dlpi_tls_data as usize,
        adds: if has_counters { info.dlpi_adds } else { 0 },
        subs: if has_counters { info.dlpi_subs } else { 0 },
    });
    0
}

/// The thread pointer (%fs:0 on x86-64 holds its own address).
pub(crate) fn thread_pointer() -> usize {
    let tp: usize;
    // SAFETY: on x86-64 Linux %fs points at the thread control block, whose
    // first word is its own address (the TLS ABI); reading it has no effects.
    unsafe {
        std::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) tp, options(nostack, readonly, preserves_flags))
    };
    tp
}

/// The size of glibc's static TLS area, from ld.so's
/// `_dl_get_tls_static_info` (GLIBC_PRIVATE; 0 if it cannot be asked, and
/// then no host block is taken for static).
fn static_tls_size() -> usize {
    static SIZE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *SIZE.get_or_init(|| {
        // SAFETY: dlsym with a NUL-terminated name; no other effect.
        let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"_dl_get_tls_static_info".as_ptr()) };
        if f.is_null() {
            return 0;
        }
        let (mut size, mut align) = (0usize, 0usize);
        // SAFETY: glibc's `void _dl_get_tls_static_info(size_t *, size_t *)`.
        unsafe {
            let f: extern "C" fn(*mut usize, *mut usize) = std::mem::transmute(f);
            f(&mut size, &mut align);
        }
        size
    })
}

impl HostObjects {
    /// Brings the list up to date when glibc loaded or unloaded something.
    pub(crate) fn refresh(&mut self) {
        let mut raw: Vec<Raw> = Vec::new();
        // SAFETY: `collect` only writes to the Vec passed as data, which
        // outlives the call.
        unsafe {
            libc::dl_iterate_phdr(
                Some(collect),
                &mut raw as *mut Vec<Raw> as *mut libc::c_void,
            )
        };
        let Some(first) = raw.first() else { return };
        if !self.objects.is_empty() && first.adds == self.adds && first.subs == self.subs {
            return;
        }
        self.adds = first.adds;
        self.subs = first.subs;
        let tp = thread_pointer();
        let old = std::mem::take(&mut self.objects);
        for r in raw {
            let name = String::from_utf8_lossy(&r.name).into_owned();
            if name.contains("linux-vdso") {
                continue; // not part of glibc's symbol scope
            }
            if let Some(o) = old
                .iter()
                .find(|o| o.bias == r.bias && o.path.as_os_str() == name.as_str())
            {
                self.objects.push(Arc::clone(o));
                continue;
            }
            match host_object(&name, &r, tp) {
                Some(o) => self.objects.push(Arc::new(o)),
                None => log::debug!(
                    "host object {name:?} at {:#x}: no usable dynamic symbols, skipped",
                    r.bias
                ),
            }
        }
    }

    /// The host object with this soname (or file name).
    pub(crate) fn by_soname(&self, name: &str) -> Option<&Arc<HostObject>> {
        self.objects.iter().find(|o| o.soname == name)
    }
}

fn host_object(name: &str, r: &Raw, tp: usize) -> Option<HostObject> {
    let ranges = r
        .phdrs
        .iter()
        .filter(|p| p.p_type == ph::PT_LOAD)
        .map(|p| {
            (
                r.bias.wrapping_add(p.p_vaddr as usize),
                r.bias.wrapping_add((p.p_vaddr + p.p_memsz) as usize),
            )
        })
        .collect();
    let mem = Memory::new(ranges);
    let dyn_ph = r.phdrs.iter().find(|p| p.p_type == ph::PT_DYNAMIC)?;
    let path = PathBuf::from(name);
    let d = dynamic::parse(
        &path,
        &mem,
        r.bias,
        r.bias.wrapping_add(dyn_ph.p_vaddr as usize),
        PtrStyle::HostMixed,
    )
    .map_err(|e| log::debug!("host object {name}: {e}"))
    .ok()?;
    let symbols = Symbols::new(&path, &mem, &d)
        .map_err(|e| log::debug!("host object {name}: {e}"))
        .ok()?;
    let soname = d
        .soname
        .clone()
        .unwrap_or_else(|| name.rsplit('/').next().unwrap_or(name).to_string());
    // A block in glibc's static TLS area (which ends at the thread pointer)
    // is at the same offset in every thread; one allocated later for a
    // module dlopen'ed after startup is not.
    let tls_offset = Some(r.tls_data as isize - tp as isize)
        .filter(|&o| r.tls_data != 0 && o < 0 && o.unsigned_abs() <= static_tls_size());
    Some(HostObject {
        path,
        soname,
        bias: r.bias,
        symbols,
        tls_modid: r.tls_modid,
        tls_offset,
    })
}
