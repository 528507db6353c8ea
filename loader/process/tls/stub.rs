//! The small ELF shared object that makes glibc reserve a block of its
//! static TLS for a library minld loads (see `surplus`).
//!
//! It has one read-write PT_LOAD holding everything, a PT_DYNAMIC, a
//! PT_TLS with the library's size, alignment and initialisation image,
//! and a PT_GNU_STACK without PF_X (without it glibc would make the stack
//! executable). Its dynamic section has what glibc's dlopen reads: a
//! symbol table of the null symbol only, an empty string table, an
//! empty DT_HASH, DT_FLAGS with DF_STATIC_TLS, and one R_X86_64_TPOFF64
//! against symbol 0 (the object's own block) into a word of its data.
//! Relocating that word makes glibc give the block a place in static TLS
//! (or fail with "cannot allocate memory in static TLS block"), and it
//! then holds the block's offset from the thread pointer. No DT_SONAME:
//! a later dlopen of the library's own name must never find the stub.

/// Where the parts of the stub are (file offsets, which are also its
/// virtual addresses: one PT_LOAD at 0).
mod at {
    /// The program headers, after the 64-byte ELF header.
    pub(super) const PHDRS: usize = 64;
    /// How many program headers.
    pub(super) const PHNUM: usize = 4;
    /// The dynamic section.
    pub(super) const DYNAMIC: usize = PHDRS + PHNUM * 56;
    /// How many dynamic entries (DT_NULL included).
    pub(super) const DYNNUM: usize = 10;
    /// The symbol table: the null symbol.
    pub(super) const SYMTAB: usize = DYNAMIC + DYNNUM * 16;
    /// The string table: one NUL (8 bytes reserved).
    pub(super) const STRTAB: usize = SYMTAB + 24;
    /// DT_HASH: nbucket 1, nchain 1, both entries 0.
    pub(super) const HASH: usize = STRTAB + 8;
    /// The one relocation.
    pub(super) const RELA: usize = HASH + 16;
    /// The word the TPOFF64 relocation fills.
    pub(super) const WORD: usize = RELA + 24;
    /// Where the TLS image may start.
    pub(super) const END: usize = WORD + 8;
}

/// The largest alignment of a block the stub is made for (a larger one is
/// refused before: the file would be padded to it).
pub(crate) const MAX_ALIGN: usize = 1 << 20;

/// A stub object: its bytes, and the address (relative to where glibc
/// maps it) of the word holding the block's offset from the thread
/// pointer after relocation.
pub(crate) struct Stub {
    /// The ELF file.
    pub(crate) bytes: Vec<u8>,
    /// The word's offset in the mapped object.
    pub(crate) word: usize,
}

/// Little-endian writer of the stub's fields.
struct Out(Vec<u8>);

impl Out {
    /// Writes `v` (its low `n` bytes) at `at`.
    fn put(&mut self, at: usize, n: usize, v: u64) {
        self.0[at..at + n].copy_from_slice(&v.to_le_bytes()[..n]);
    }

    /// A 64-bit program header at index `i`.
    #[allow(clippy::too_many_arguments)] // the seven fields of Elf64_Phdr, plus where
    fn phdr(&mut self, i: usize, kind: u32, flags: u32, off: u64, size: u64, mem: u64, align: u64) {
        let at = at::PHDRS + i * 56;
        self.put(at, 4, u64::from(kind));
        self.put(at + 4, 4, u64::from(flags));
        self.put(at + 8, 8, off); // p_offset
        self.put(at + 16, 8, off); // p_vaddr
        self.put(at + 24, 8, off); // p_paddr
        self.put(at + 32, 8, size); // p_filesz
        self.put(at + 40, 8, mem); // p_memsz
        self.put(at + 48, 8, align);
    }
}

/// The stub for a block of `mem_size` bytes aligned to `align` (a power
/// of two), whose first `image.len()` bytes start as `image`. `phase` is
/// the library's PT_TLS p_vaddr modulo `align`: the stub's image starts at
/// the same phase, so glibc places the block as it would the library's.
pub(crate) fn build(image: &[u8], mem_size: usize, align: usize, phase: usize) -> Stub {
    use goblin::elf::dynamic as dt;
    use goblin::elf::program_header as ph;
    let align = align.max(1);
    let mem_size = mem_size.max(image.len()).max(1);
    let tls = at::END.next_multiple_of(align) + phase % align;
    let file_size = tls + image.len();
    let mut o = Out(vec![0u8; file_size]);
    // e_ident: magic, ELFCLASS64, ELFDATA2LSB, EV_CURRENT, ELFOSABI_SYSV.
    o.0[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    o.put(16, 2, u64::from(goblin::elf::header::ET_DYN));
    o.put(18, 2, u64::from(goblin::elf::header::EM_X86_64));
    o.put(20, 4, 1); // e_version
    o.put(32, 8, at::PHDRS as u64); // e_phoff
    o.put(52, 2, 64); // e_ehsize
    o.put(54, 2, 56); // e_phentsize
    o.put(56, 2, at::PHNUM as u64);
    o.put(58, 2, 64); // e_shentsize (no sections)
    let (rw, r) = (ph::PF_R | ph::PF_W, ph::PF_R);
    let (file, mem) = (file_size as u64, (tls + mem_size) as u64);
    o.phdr(0, ph::PT_LOAD, rw, 0, file, mem, 0x1000);
    o.phdr(1, ph::PT_DYNAMIC, rw, at::DYNAMIC as u64, 160, 160, 8);
    let (tls, size) = (tls as u64, image.len() as u64);
    o.phdr(2, ph::PT_TLS, r, tls, size, mem_size as u64, align as u64);
    o.phdr(3, ph::PT_GNU_STACK, rw, 0, 0, 0, 16);
    let entries: [(u64, u64); at::DYNNUM] = [
        (dt::DT_HASH, at::HASH as u64),
        (dt::DT_STRTAB, at::STRTAB as u64),
        (dt::DT_SYMTAB, at::SYMTAB as u64),
        (dt::DT_STRSZ, 1),
        (dt::DT_SYMENT, 24),
        (dt::DT_RELA, at::RELA as u64),
        (dt::DT_RELASZ, 24),
        (dt::DT_RELAENT, 24),
        (dt::DT_FLAGS, dt::DF_STATIC_TLS),
        (dt::DT_NULL, 0),
    ];
    for (i, (tag, val)) in entries.into_iter().enumerate() {
        o.put(at::DYNAMIC + i * 16, 8, tag);
        o.put(at::DYNAMIC + i * 16 + 8, 8, val);
    }
    o.put(at::HASH, 4, 1); // nbucket
    o.put(at::HASH + 4, 4, 1); // nchain
    o.put(at::RELA, 8, at::WORD as u64); // r_offset
    o.put(
        at::RELA + 8,
        8,
        u64::from(goblin::elf::reloc::R_X86_64_TPOFF64),
    );
    o.0[tls as usize..].copy_from_slice(image);
    Stub {
        bytes: o.0,
        word: at::WORD,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goblin::elf::Elf;

    #[test]
    fn the_stub_parses_with_its_tls_segment_and_relocation() {
        let image = [7u8, 8, 9];
        let s = build(&image, 100, 64, 8);
        let elf = Elf::parse(&s.bytes).expect("a valid ELF file");
        let tls = elf
            .program_headers
            .iter()
            .find(|p| p.p_type == goblin::elf::program_header::PT_TLS)
            .expect("PT_TLS");
        assert_eq!((tls.p_filesz, tls.p_memsz, tls.p_align), (3, 100, 64));
        assert_eq!(tls.p_vaddr % 64, 8, "the library's phase");
        let at = tls.p_offset as usize;
        assert_eq!(&s.bytes[at..at + 3], &image);
        let d = elf.dynamic.expect("PT_DYNAMIC");
        assert_ne!(d.info.flags & goblin::elf::dynamic::DF_STATIC_TLS, 0);
        let relocs: Vec<_> = elf.dynrelas.iter().collect();
        assert_eq!(relocs.len(), 1);
        assert_eq!(relocs[0].r_type, goblin::elf::reloc::R_X86_64_TPOFF64);
        assert_eq!((relocs[0].r_sym, relocs[0].r_offset), (0, s.word as u64));
    }
}
