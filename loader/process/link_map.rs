//! glibc's list of its objects, as `dl_iterate_phdr` gives it: each
//! entry copied out ([`Raw`]), the counters that say when the list changed
//! ([`Generation`]), and the file each entry was loaded from
//! ([`Identities`]), for `host`.

use std::ffi::CStr;

use goblin::elf64::program_header::ProgramHeader;

/// glibc's counts of the objects it has loaded and unloaded so far
/// (`dlpi_adds`, `dlpi_subs`): while both stay the same, so does the set
/// of its objects (each only grows, and every load or unload moves one).
pub(crate) type Generation = (u64, u64);

/// The identity (device, inode) of the file each of glibc's objects was
/// loaded from, by `stat` of the path glibc names it by, with the
/// [`Generation`] the list was read at: `HostObjects::loaded_from` asks
/// the file system again only once glibc has loaded or unloaded something.
/// An object glibc unloads (or replaces by another at the same address)
/// moves the generation, so no entry outlives its object. The identity is
/// the file's at the path when first asked, not necessarily the one glibc
/// mapped: a file replaced on disk after glibc loaded it but before minld
/// first asks is taken for glibc's copy (once asked, a later replacement
/// is told apart).
#[derive(Debug, Default)]
pub(crate) struct Identities {
    /// When the entries were read; None: never (or glibc does not count).
    pub(crate) generation: Option<Generation>,
    /// Each object's file identity and glibc's name for it.
    pub(crate) files: Vec<((u64, u64), Vec<u8>)>,
}

/// One entry of `dl_iterate_phdr`, copied out of the callback.
pub(crate) struct Raw {
    /// `dlpi_name`: empty for the program.
    pub(crate) name: Vec<u8>,
    /// `dlpi_addr`: the load bias.
    pub(crate) bias: usize,
    /// The program headers.
    pub(crate) phdrs: Vec<ProgramHeader>,
    /// `dlpi_tls_modid`: glibc's TLS module id, 0 without PT_TLS.
    pub(crate) tls_modid: usize,
    /// `dlpi_tls_data`: the calling thread's TLS block, 0 if none yet.
    pub(crate) tls_data: usize,
    /// `dlpi_adds` and `dlpi_subs`, when glibc's structure has them.
    pub(crate) generation: Option<Generation>,
}

/// `dlpi_adds` and `dlpi_subs` of an entry of `size` bytes, if it is big
/// enough to hold them.
fn generation_of(info: &libc::dl_phdr_info, size: usize) -> Option<Generation> {
    let end = std::mem::offset_of!(libc::dl_phdr_info, dlpi_subs) + 8;
    (size >= end).then_some((info.dlpi_adds, info.dlpi_subs))
}

/// The `dl_iterate_phdr` callback: copies each object into the
/// `Vec<Raw>` that `data` points at.
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
    out.push(Raw {
        name,
        bias: info.dlpi_addr as usize,
        phdrs,
        tls_modid: info.dlpi_tls_modid,
        tls_data: info.dlpi_tls_data as usize,
        generation: generation_of(info, size),
    });
    0
}

/// The `dl_iterate_phdr` callback of [`generation`]: reads the first
/// entry's counters into the `Option<Generation>` that `data` points at,
/// and stops.
unsafe extern "C" fn first_generation(
    info: *mut libc::dl_phdr_info,
    size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: glibc passes a valid dl_phdr_info of `size` bytes and our own
    // `data` pointer, a live Option<Generation>, for the duration of the
    // callback.
    let (info, out) = unsafe { (&*info, &mut *(data as *mut Option<Generation>)) };
    *out = generation_of(info, size);
    1
}

/// glibc's [`Generation`] now (None if it does not say).
pub(crate) fn generation() -> Option<Generation> {
    let mut g: Option<Generation> = None;
    // SAFETY: `first_generation` only writes to the Option passed as data,
    // which outlives the call.
    unsafe {
        libc::dl_iterate_phdr(
            Some(first_generation),
            &mut g as *mut Option<Generation> as *mut libc::c_void,
        )
    };
    g
}

/// glibc's list of its objects as it stands.
pub(crate) fn raw_objects() -> Vec<Raw> {
    let mut raw: Vec<Raw> = Vec::with_capacity(16);
    // SAFETY: `collect` only writes to the Vec passed as data, which
    // outlives the call.
    unsafe {
        libc::dl_iterate_phdr(
            Some(collect),
            &mut raw as *mut Vec<Raw> as *mut libc::c_void,
        )
    };
    raw
}

/// The file identity of each of glibc's objects named by a path, with the
/// generation of the list they were read from.
pub(crate) fn identities(sys: &crate::os::sys::Sys) -> Identities {
    let raw = raw_objects();
    let generation = raw.first().and_then(|r| r.generation);
    let files = raw
        .into_iter()
        .filter_map(|r| {
            // The program ("") and the vDSO (no slash) name no file.
            if !r.name.contains(&b'/') {
                return None;
            }
            let c = std::ffi::CString::new(r.name).ok()?;
            let st = sys
                .stat(&c, "is it the file asked for? (reuse_loaded)")
                .ok()?;
            Some(((st.dev, st.ino), c.into_bytes()))
        })
        .collect();
    Identities { generation, files }
}
