//! The host's objects: the program, glibc and whatever else glibc loaded.
//!
//! minld never maps a second glibc (two would each claim the heap, the TLS
//! and the process's state): symbols of
//! libc.so.6 and ld-linux-x86-64.so.2, and of any dependency the process
//! already has, come from the copies in the process. They are found with
//! `dl_iterate_phdr` and their tables read in place with minld's own lookup.
//!
//! (See `docs/design.md`, "The host's glibc is never mapped twice",
//! "Finding the host's objects" and "errno through TPOFF64 against the
//! host's static TLS".)

use std::ffi::CStr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use crate::base::mem::Memory;
use crate::elf::dynamic::{self, Dynamic, PtrStyle};
use crate::elf::symbols::Symbols;
use crate::process::link_map::{generation, identities, raw_objects, Generation, Identities, Raw};
use goblin::elf::program_header as ph;

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
    /// Its DT_NEEDED entries.
    pub(crate) needed: Vec<String>,
    /// Its load bias.
    pub(crate) bias: usize,
    /// Its dynamic symbols, read in place on first use ([`HostObject::symbols`]):
    /// a load that looks symbols up reads every host object's (its weak
    /// undefined references, such as `__gmon_start__`, walk the whole
    /// scope), but one bound from a link record reads none.
    symbols: OnceLock<Symbols>,
    /// Its readable memory and dynamic section, which `symbols` is read
    /// from.
    tables: (Memory, Dynamic),
    /// glibc's TLS module id (0 without PT_TLS).
    pub(crate) tls_modid: usize,
    /// A hash of its build-id note (0: none), read in place.
    pub(crate) build_id: u64,
    /// Offset of this module's static TLS block from the thread pointer
    /// (the same in every thread), when it has one.
    pub(crate) tls_offset: Option<isize>,
}

/// The host's objects that minld binds to without pinning them: glibc's
/// global scope as it stood at startup (the program, preloaded objects and
/// the closure of their DT_NEEDED), in glibc's load order. glibc never
/// unloads these, so their tables, read in place, stay valid. Objects glibc
/// loads later with dlopen are used only as dependencies, each pinned while
/// used (see [`HostObjects::dependency`]); those it opened RTLD_GLOBAL are
/// not in minld's global scope (glibc does not say which they are).
#[derive(Debug, Default)]
pub(crate) struct HostObjects {
    /// The startup scope, in glibc's load order.
    pub(crate) objects: Vec<Arc<HostObject>>,
    /// Pinned objects already read, by (name, bias): valid while some
    /// dependency holds them.
    pinned: Vec<(HostKey, std::sync::Weak<HostObject>)>,
    /// The files glibc's objects were found to be, kept while glibc's set
    /// of objects stays the same (see [`Identities`]).
    identities: Identities,
    /// glibc's names for its objects, with the generation of its list they
    /// were read at (see [`HostObjects::dependency`]).
    names: (Option<Generation>, Vec<Vec<u8>>),
}

/// glibc's name for an object and its load bias.
type HostKey = (Vec<u8>, usize);

/// The last component of a path, as bytes.
fn base_name(path: &[u8]) -> &[u8] {
    path.rsplit(|&b| b == b'/').next().unwrap_or(path)
}

/// Whether `hay` contains `needle`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
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

/// A reference glibc counts on one of its objects, taken with
/// `dlopen(RTLD_NOLOAD)` when one of minld's objects binds to it: glibc
/// cannot unload an object minld's code still calls (another thread's
/// `dlclose` would otherwise unmap it under minld). Dropping it is a
/// `dlclose`.
#[derive(Debug)]
pub(crate) struct HostPin(*mut libc::c_void);

// SAFETY: a glibc handle may be used and closed from any thread.
unsafe impl Send for HostPin {}
// SAFETY: as above; &HostPin gives no access to the handle.
unsafe impl Sync for HostPin {}

impl HostPin {
    /// Pins the object glibc has under `name` (a soname or path), if it has
    /// one; returns the pin, the object's load bias and glibc's name for it.
    fn take(name: &str) -> Option<(HostPin, usize, Vec<u8>)> {
        let cname = std::ffi::CString::new(name).ok()?;
        // SAFETY: dlopen with a NUL-terminated name; RTLD_NOLOAD never loads
        // (so runs no constructor), it only counts a reference.
        let h = unsafe { libc::dlopen(cname.as_ptr(), libc::RTLD_NOLOAD | libc::RTLD_LAZY) };
        if h.is_null() {
            return None;
        }
        let pin = HostPin(h);
        let mut map: *const LinkMapHead = std::ptr::null();
        // SAFETY: RTLD_DI_LINKMAP writes a `struct link_map *`, whose public
        // head (l_addr, l_name) stays valid while the object is pinned.
        unsafe {
            if libc::dlinfo(
                h,
                libc::RTLD_DI_LINKMAP,
                &mut map as *mut _ as *mut libc::c_void,
            ) != 0
                || map.is_null()
            {
                return None;
            }
            let name = if (*map).l_name.is_null() {
                Vec::new()
            } else {
                CStr::from_ptr((*map).l_name).to_bytes().to_vec()
            };
            Some((pin, (*map).l_addr, name))
        }
    }
}

/// The public head of glibc's `struct link_map`.
#[repr(C)]
struct LinkMapHead {
    /// The object's load bias.
    l_addr: usize,
    /// glibc's name for it (NUL-terminated).
    l_name: *const libc::c_char,
}

impl Drop for HostPin {
    fn drop(&mut self) {
        // SAFETY: a handle from dlopen, closed once.
        unsafe { libc::dlclose(self.0) };
    }
}

/// The directory of the process's libc.so.6 (where glibc's other
/// libraries are).
pub(crate) fn libc_dir() -> Option<PathBuf> {
    raw_objects().into_iter().find_map(|r| {
        let p = PathBuf::from(String::from_utf8_lossy(&r.name).into_owned());
        (p.file_name()? == "libc.so.6")
            .then(|| p.parent().map(PathBuf::from))
            .flatten()
    })
}

/// glibc's libraries besides libc, ld.so and the stubs (which are always
/// the host's): in a namespace these come from the host, or else only from
/// the directory of the host's libc.
pub(crate) const GLIBC_FAMILY: &[&str] = &["libm.so.6", "libmvec.so.1"];

/// Where glibc's other libraries are: beside the host's libc.
pub(crate) fn glibc_family_dir() -> PathBuf {
    libc_dir().unwrap_or_else(|| PathBuf::from("/lib/x86_64-linux-gnu"))
}

/// Whether the file with this (device, inode) is one of glibc's
/// [`GLIBC_FAMILY`] beside the host's libc: decided by the file's identity,
/// never by a name (DT_SONAME, DT_NEEDED) a file chooses.
pub(crate) fn is_glibc_family(dev: u64, ino: u64) -> bool {
    use std::os::unix::fs::MetadataExt;
    static IDS: std::sync::OnceLock<Vec<(u64, u64)>> = std::sync::OnceLock::new();
    IDS.get_or_init(|| {
        let dir = glibc_family_dir();
        GLIBC_FAMILY
            .iter()
            .filter_map(|n| std::fs::metadata(dir.join(n)).ok())
            .map(|m| (m.dev(), m.ino()))
            .collect()
    })
    .contains(&(dev, ino))
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
    /// Reads glibc's startup scope, once: the program, what LD_PRELOAD
    /// added, and the closure of their DT_NEEDED entries.
    pub(crate) fn refresh(&mut self) {
        if !self.objects.is_empty() {
            return;
        }
        let raw = raw_objects();
        let tp = thread_pointer();
        // Each entry's file name (the last component of glibc's name for it).
        let file_names: Vec<&[u8]> = raw.iter().map(|r| base_name(&r.name)).collect();
        // Which raw entries are in the startup scope, found from the
        // program (the first entry) and the preloaded objects. glibc names
        // each object by the path it found for the DT_NEEDED string, so the
        // string is that path's file name (or the path itself).
        let preload = std::env::var("LD_PRELOAD").unwrap_or_default();
        let preloaded: Vec<&str> = preload
            .split([' ', ':'])
            .filter(|s| !s.is_empty())
            .map(|s| s.rsplit('/').next().unwrap_or(s))
            .collect();
        let names = |w: &str, j: usize| {
            w.as_bytes() == file_names[j] || raw[j].name.ends_with(w.as_bytes())
        };
        // The objects read, with their entries' indexes, in the order found.
        let mut found: Vec<(usize, Arc<HostObject>)> = Vec::with_capacity(raw.len());
        let mut tried = vec![false; raw.len()];
        let mut queue: Vec<usize> = vec![0];
        while let Some(i) = queue.pop() {
            if std::mem::replace(&mut tried[i], true) {
                continue;
            }
            let name = String::from_utf8_lossy(&raw[i].name);
            let Some(o) = host_object(&name, &raw[i], tp) else {
                log::debug!("host object {name:?}: no usable dynamic symbols, skipped");
                continue;
            };
            found.push((i, Arc::new(o)));
            for (j, r) in raw.iter().enumerate() {
                if !tried[j]
                    && !r.name.is_empty()
                    && !contains(file_names[j], b"linux-vdso")
                    && (preloaded.iter().any(|w| names(w, j))
                        || found
                            .iter()
                            .any(|(_, o)| o.needed.iter().any(|w| names(w, j))))
                {
                    queue.push(j);
                }
            }
        }
        // In glibc's load order.
        found.sort_unstable_by_key(|&(i, _)| i);
        self.objects = found.into_iter().map(|(_, o)| o).collect();
    }

    /// The startup object with this soname (or file name).
    pub(crate) fn by_soname(&self, name: &str) -> Option<&Arc<HostObject>> {
        self.objects.iter().find(|o| o.soname == name)
    }

    /// The object glibc has loaded from the file with identity `id`
    /// (device, inode), if any: a startup object (never unloaded), or one
    /// it opened later, then pinned. Each object's path is asked with
    /// `stat` once per [`Generation`] of glibc's objects ([`Identities`]);
    /// the program (whose path glibc does not give) and the vDSO (whose
    /// name is no path) are not asked. The object pinned is checked to be
    /// the one asked about: if glibc loaded or unloaded anything in
    /// between, the pin is let go and None returned (the caller maps its
    /// own copy).
    pub(crate) fn loaded_from(
        &mut self,
        sys: &crate::os::sys::Sys,
        id: (u64, u64),
    ) -> Option<(Arc<HostObject>, Option<HostPin>)> {
        let now = generation();
        if now.is_none() || self.identities.generation != now {
            self.identities = identities(sys);
        }
        let asked = self.identities.generation;
        let path = self
            .identities
            .files
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, name)| String::from_utf8_lossy(name).into_owned())?;
        if let Some(h) = self
            .objects
            .iter()
            .find(|h| h.path.as_os_str() == path.as_str())
        {
            return Some((h.clone(), None));
        }
        let (h, pin) = self.pinned_at(&path)?;
        (asked.is_some() && generation() == asked).then_some((h, Some(pin)))
    }

    /// An object glibc loaded after startup (dlopen) under `name`, pinned so
    /// glibc cannot unload it while minld's objects use it.
    pub(crate) fn dependency(&mut self, name: &str) -> Option<(Arc<HostObject>, HostPin)> {
        // Only ask glibc about a name it has loaded under that file name:
        // a dlopen(RTLD_NOLOAD) of a bare name makes glibc search the file
        // system (and open the file) to compare file identities.
        // glibc's list is copied out again only once it has changed.
        let now = generation();
        if now.is_none() || self.names.0 != now {
            let raw = raw_objects();
            let at = raw.first().and_then(|r| r.generation);
            self.names = (at, raw.into_iter().map(|r| r.name).collect());
        }
        let path = self
            .names
            .1
            .iter()
            .find(|n| base_name(n) == name.as_bytes())
            .map(|n| String::from_utf8_lossy(n).into_owned())?;
        self.pinned_at(&path)
    }

    /// The object glibc has under the path `path` (its name for it),
    /// pinned.
    fn pinned_at(&mut self, path: &str) -> Option<(Arc<HostObject>, HostPin)> {
        let (pin, bias, glibc_name) = HostPin::take(path)?;
        let key = (glibc_name, bias);
        self.pinned.retain(|(_, w)| w.strong_count() > 0);
        if let Some(o) = self
            .pinned
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, w)| w.upgrade())
        {
            return Some((o, pin));
        }
        let raw = raw_objects();
        let r = raw.iter().find(|r| r.bias == bias && r.name == key.0)?;
        let o = Arc::new(host_object(
            &String::from_utf8_lossy(&r.name),
            r,
            thread_pointer(),
        )?);
        self.pinned.push((key, Arc::downgrade(&o)));
        Some((o, pin))
    }
}

impl HostObject {
    /// Its dynamic symbols, read on first use; none when its tables cannot
    /// be read (said at debug level).
    pub(crate) fn symbols(&self) -> &Symbols {
        self.symbols.get_or_init(|| {
            let (mem, d) = &self.tables;
            Symbols::new(&self.path, mem, d).unwrap_or_else(|e| {
                log::debug!("host object {}: {e}", self.path.display());
                Symbols::empty()
            })
        })
    }

    /// Its DT_RPATH and DT_RUNPATH (a load on its behalf searches them).
    pub(crate) fn search_paths(&self) -> (Option<&str>, Option<&str>) {
        let d = &self.tables.1;
        (d.rpath.as_deref(), d.runpath.as_deref())
    }

    /// Its DF_1_NODEFLIB: what it opens is not searched in the system
    /// directories.
    pub(crate) fn nodeflib(&self) -> bool {
        self.tables.1.nodeflib()
    }

    /// Whether `addr` lies in one of its segments.
    pub(crate) fn contains(&self, addr: usize) -> bool {
        self.tables.0.contains(addr, 1)
    }

    /// Whether it leaves a load's scope because the load has its own copy
    /// (one of `local`, given as soname and file identity, has its soname). Never the program or glibc's own
    /// libraries, and glibc's libm or libmvec only for the real file: a
    /// DT_SONAME is the file's choice and must not hide the host's glibc.
    pub(crate) fn replaced_by<'a>(
        &self,
        mut local: impl Iterator<Item = (&'a str, (u64, u64))>,
    ) -> bool {
        if self.soname.is_empty() || glibc_target(&self.soname).is_some() {
            return false;
        }
        let family = GLIBC_FAMILY.contains(&self.soname.as_str());
        local.any(|(soname, (dev, ino))| {
            soname == self.soname && (!family || is_glibc_family(dev, ino))
        })
    }
}

/// Reads one of glibc's objects in place: its dynamic section, symbols
/// and TLS; None when it has no dynamic section minld can read.
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
    // SAFETY: the ranges are the PT_LOAD segments of an object glibc
    // loaded, from its link map entry; minld relies on the host not
    // dlclosing an object while a HostObject made from it is in use (the
    // host's libraries it links against stay loaded for the process's life).
    let mem = unsafe { Memory::new(ranges) };
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
    let soname = d
        .soname
        .clone()
        .unwrap_or_else(|| name.rsplit('/').next().unwrap_or(name).to_string());
    // A block in glibc's static TLS area (which ends at the thread pointer)
    // is at the same offset in every thread; one allocated later for a
    // module dlopen'ed after startup is not.
    let tls_offset = Some(r.tls_data as isize - tp as isize)
        .filter(|&o| r.tls_data != 0 && o < 0 && o.unsigned_abs() <= static_tls_size());
    let phdrs = r.phdrs.iter().map(|p| (p.p_type, p.p_vaddr, p.p_memsz));
    let build_id = crate::elf::notes::build_id_hash(&mem, r.bias, phdrs);
    Some(HostObject {
        path,
        soname,
        needed: d.needed.clone(),
        bias: r.bias,
        symbols: OnceLock::new(),
        tables: (mem, d),
        tls_modid: r.tls_modid,
        build_id,
        tls_offset,
    })
}
