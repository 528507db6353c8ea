//! Making the unwind tables of minld's objects findable, so that C++
//! exceptions (and Rust panics, and backtraces) can pass through them.
//!
//! libgcc's unwinder looks for the frame description of a code address
//! first among frames registered with `__register_frame_info`, then through
//! glibc's `_dl_find_object`, which knows only glibc's objects (its own
//! link maps, never a mapping minld made). So minld registers every object's `.eh_frame`
//! with the host's libgcc_s before the object's code first runs, and
//! deregisters it after the last fini function, before unmapping. A
//! private libgcc_s that minld itself loaded (with `reuse_host(false)`)
//! has its own registry; it finds minld's objects through minld's
//! `_dl_find_object`, bound in its place (see `interpose`).

use crate::elf::symbols::{NameHash, Want};
use crate::process::host::HostObjects;

/// A registration with the host unwinder; dropping it deregisters.
#[derive(Debug)]
pub(crate) struct Registration {
    /// What was registered and is deregistered: the address of the table
    /// in `_storage` (or, with the plain registration, the `.eh_frame`).
    begin: usize,
    /// The table (`.eh_frame`'s address, then a null terminator) and
    /// libgcc's `struct object` (six words in GCC 12) after it; both must
    /// stay put while registered, so they live on the heap, with room to
    /// spare.
    _storage: Box<[usize; 16]>,
    /// libgcc's `__deregister_frame_info`, called on drop.
    deregister: usize,
}

/// Where libgcc's `struct object` starts in a registration's storage,
/// after the two words of the table.
const OBJECT_AT: usize = 2;

/// The start of `.eh_frame`, read from the `.eh_frame_hdr` at `hdr`: its
/// second word is an encoded pointer (`DW_EH_PE_*`) to the section.
/// `readable(addr, len)` says whether the object has those bytes mapped.
pub(crate) fn eh_frame_start(readable: impl Fn(usize, usize) -> bool, hdr: usize) -> Option<usize> {
    if !readable(hdr, 12) {
        return None;
    }
    // SAFETY: the 12 bytes at `hdr` are inside the mapped image (checked).
    let (version, enc, word4, word8) = unsafe {
        (
            *(hdr as *const u8),
            *((hdr + 1) as *const u8),
            ((hdr + 4) as *const u32).read_unaligned(),
            ((hdr + 4) as *const u64).read_unaligned(),
        )
    };
    if version != 1 {
        return None;
    }
    let value = match enc & 0x0f {
        0x00 | 0x04 | 0x0c => word8 as usize, // absptr, udata8, sdata8
        0x03 => word4 as usize,               // udata4
        0x0b => word4 as i32 as isize as usize, // sdata4
        _ => return None,
    };
    let addr = match enc & 0x70 {
        0x00 => value,                         // absolute, as libgcc reads it
        0x10 => (hdr + 4).wrapping_add(value), // pcrel
        0x30 => hdr.wrapping_add(value),       // datarel: from the header
        _ => return None,
    };
    readable(addr, 4).then_some(addr)
}

/// Registers the `.eh_frame` at `eh_frame` with the host's libgcc_s, when
/// the process has one.
///
/// The section goes in as a one-entry table (`__register_frame_info_table`)
/// rather than by itself (`__register_frame_info`): libgcc then reads
/// nothing of it until an unwind first searches it, where the plain
/// registration reads its first word at once. That read faults in a page
/// of the object's read-only data that nothing else of a load touches
/// (and with it the kernel's fault-around window, up to 16 pages).
pub(crate) fn register(host: &HostObjects, eh_frame: usize) -> Option<Registration> {
    let gcc = host.by_soname("libgcc_s.so.1")?;
    let find = |name: &[u8]| {
        gcc.symbols()
            .lookup(name, NameHash::new(name), Want::Default)
            .map(|(_, s)| gcc.bias.wrapping_add(s.st_value as usize))
    };
    let deregister = find(b"__deregister_frame_info")?;
    let mut storage = Box::new([0usize; 16]);
    let begin = if let Some(table) = find(b"__register_frame_info_table") {
        storage[0] = eh_frame;
        let object = storage[OBJECT_AT..].as_mut_ptr();
        // SAFETY: libgcc's `void __register_frame_info_table(void *,
        // struct object *)`: the table is a null-terminated array of
        // `.eh_frame` sections (here one, which ends with the zero
        // terminator every linked object has), and `storage`, which holds
        // both, outlives the registration.
        unsafe {
            let f: extern "C" fn(*mut usize, *mut usize) = std::mem::transmute(table);
            f(storage.as_mut_ptr(), object);
        }
        storage.as_ptr() as usize
    } else {
        let register = find(b"__register_frame_info")?;
        // SAFETY: libgcc's `void __register_frame_info(const void *,
        // struct object *)`; the section ends with the zero terminator
        // every linked object has (crtend), and `storage` outlives the
        // registration.
        unsafe {
            let f: extern "C" fn(usize, *mut usize) = std::mem::transmute(register);
            f(eh_frame, storage.as_mut_ptr());
        }
        eh_frame
    };
    Some(Registration {
        begin,
        _storage: storage,
        deregister,
    })
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: libgcc's `void *__deregister_frame_info(const void *)`,
        // with what `register` registered (the table, still in `_storage`,
        // or the section, still mapped).
        unsafe {
            let f: extern "C" fn(usize) -> usize = std::mem::transmute(self.deregister);
            f(self.begin);
        }
    }
}
