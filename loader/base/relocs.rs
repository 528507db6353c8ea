//! The x86-64 relocation types: one table with, for every psABI number,
//! its name, what it computes (its [`Class`]), how wide a field it writes
//! and whether minld applies it in a shared object. Every other place that
//! knows a relocation type (the relocation pass, lazy binding, the policy
//! checks, error messages) reads it from here.

use std::fmt;

/// What a relocation computes, in the psABI's terms (S the symbol's value,
/// A the addend, B the load bias, P the place written, Z the symbol's
/// size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Nothing.
    None,
    /// B + A.
    Relative,
    /// S + A, into a data word.
    Absolute,
    /// S, into a GOT word.
    GlobDat,
    /// S, into a PLT's GOT word (lazily bound when allowed).
    JumpSlot,
    /// S + A - P.
    PcRelative,
    /// Z + A.
    Size,
    /// The TLS module id of the symbol's definer.
    TlsModule,
    /// The symbol's offset in its module's TLS block, plus A.
    TlsOffset,
    /// The symbol's offset from the thread pointer (initial-exec TLS).
    TlsTpOffset,
    /// A TLS descriptor: two words, a resolver and its argument.
    TlsDesc,
    /// The value an ifunc resolver at B + A returns.
    IRelative,
    /// Copies the symbol's bytes: only executables have these.
    Copy,
    /// A type the static linker resolves (GOT and PLT forms, 8- and 16-bit
    /// fields, TLS code sequences): never in a shared object's dynamic
    /// relocations.
    ObjectOnly,
}

/// How wide a field a relocation writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Width {
    /// No field (R_X86_64_NONE, a copy, a marker on an instruction).
    W0,
    /// One byte.
    W8,
    /// Two bytes.
    W16,
    /// Four bytes.
    W32,
    /// Eight bytes.
    W64,
    /// Two eight-byte words (a TLS descriptor).
    W128,
}

impl Width {
    /// The number of bytes written.
    pub(crate) const fn bytes(self) -> usize {
        match self {
            Width::W0 => 0,
            Width::W8 => 1,
            Width::W16 => 2,
            Width::W32 => 4,
            Width::W64 => 8,
            Width::W128 => 16,
        }
    }
}

/// One relocation type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RelocType {
    /// Its psABI number (the low 32 bits of `r_info`).
    pub(crate) number: u32,
    /// Its psABI name.
    pub(crate) name: &'static str,
    /// What it computes.
    pub(crate) class: Class,
    /// The field it writes.
    pub(crate) width: Width,
    /// A 32-bit field holds a signed value (checked to fit as one).
    pub(crate) signed: bool,
    /// minld applies it in a shared object.
    pub(crate) supported: bool,
}

/// A table row (kept short so the table reads as one).
const fn t(number: u32, name: &'static str, class: Class, width: Width) -> RelocType {
    RelocType {
        number,
        name,
        class,
        width,
        signed: false,
        supported: !matches!(class, Class::Copy | Class::ObjectOnly),
    }
}

/// A row whose 32-bit field is signed.
const fn signed(row: RelocType) -> RelocType {
    RelocType {
        signed: true,
        ..row
    }
}

use Class as C;
use Width as W;

/// Every x86-64 relocation type, indexed by number (39 and 40 were the MPX
/// types the psABI has since withdrawn).
const TABLE: [RelocType; 43] = [
    t(0, "R_X86_64_NONE", C::None, W::W0),
    t(1, "R_X86_64_64", C::Absolute, W::W64),
    signed(t(2, "R_X86_64_PC32", C::PcRelative, W::W32)),
    t(3, "R_X86_64_GOT32", C::ObjectOnly, W::W32),
    t(4, "R_X86_64_PLT32", C::ObjectOnly, W::W32),
    t(5, "R_X86_64_COPY", C::Copy, W::W0),
    t(6, "R_X86_64_GLOB_DAT", C::GlobDat, W::W64),
    t(7, "R_X86_64_JUMP_SLOT", C::JumpSlot, W::W64),
    t(8, "R_X86_64_RELATIVE", C::Relative, W::W64),
    t(9, "R_X86_64_GOTPCREL", C::ObjectOnly, W::W32),
    t(10, "R_X86_64_32", C::Absolute, W::W32),
    signed(t(11, "R_X86_64_32S", C::Absolute, W::W32)),
    t(12, "R_X86_64_16", C::ObjectOnly, W::W16),
    t(13, "R_X86_64_PC16", C::ObjectOnly, W::W16),
    t(14, "R_X86_64_8", C::ObjectOnly, W::W8),
    t(15, "R_X86_64_PC8", C::ObjectOnly, W::W8),
    t(16, "R_X86_64_DTPMOD64", C::TlsModule, W::W64),
    t(17, "R_X86_64_DTPOFF64", C::TlsOffset, W::W64),
    t(18, "R_X86_64_TPOFF64", C::TlsTpOffset, W::W64),
    t(19, "R_X86_64_TLSGD", C::ObjectOnly, W::W32),
    t(20, "R_X86_64_TLSLD", C::ObjectOnly, W::W32),
    t(21, "R_X86_64_DTPOFF32", C::ObjectOnly, W::W32),
    t(22, "R_X86_64_GOTTPOFF", C::ObjectOnly, W::W32),
    t(23, "R_X86_64_TPOFF32", C::ObjectOnly, W::W32),
    t(24, "R_X86_64_PC64", C::PcRelative, W::W64),
    t(25, "R_X86_64_GOTOFF64", C::ObjectOnly, W::W64),
    t(26, "R_X86_64_GOTPC32", C::ObjectOnly, W::W32),
    t(27, "R_X86_64_GOT64", C::ObjectOnly, W::W64),
    t(28, "R_X86_64_GOTPCREL64", C::ObjectOnly, W::W64),
    t(29, "R_X86_64_GOTPC64", C::ObjectOnly, W::W64),
    t(30, "R_X86_64_GOTPLT64", C::ObjectOnly, W::W64),
    t(31, "R_X86_64_PLTOFF64", C::ObjectOnly, W::W64),
    t(32, "R_X86_64_SIZE32", C::Size, W::W32),
    t(33, "R_X86_64_SIZE64", C::Size, W::W64),
    t(34, "R_X86_64_GOTPC32_TLSDESC", C::ObjectOnly, W::W32),
    t(35, "R_X86_64_TLSDESC_CALL", C::ObjectOnly, W::W0),
    t(36, "R_X86_64_TLSDESC", C::TlsDesc, W::W128),
    t(37, "R_X86_64_IRELATIVE", C::IRelative, W::W64),
    t(38, "R_X86_64_RELATIVE64", C::Relative, W::W64),
    t(39, "R_X86_64_PC32_BND", C::ObjectOnly, W::W32),
    t(40, "R_X86_64_PLT32_BND", C::ObjectOnly, W::W32),
    t(41, "R_X86_64_GOTPCRELX", C::ObjectOnly, W::W32),
    t(42, "R_X86_64_REX_GOTPCRELX", C::ObjectOnly, W::W32),
];

/// The numbers of the types minld names in code (each checked against the
/// table by a unit test).
pub(crate) mod r {
    /// R_X86_64_64.
    pub(crate) const R64: u32 = 1;
    /// R_X86_64_GLOB_DAT.
    pub(crate) const GLOB_DAT: u32 = 6;
    /// R_X86_64_JUMP_SLOT.
    pub(crate) const JUMP_SLOT: u32 = 7;
    /// R_X86_64_RELATIVE.
    pub(crate) const RELATIVE: u32 = 8;
}

/// The table's row for type `t`, if the psABI defines it.
#[inline]
pub(crate) fn lookup(t: u32) -> Option<&'static RelocType> {
    TABLE.get(t as usize)
}

/// The class of type `t`, if the psABI defines it.
#[inline]
pub(crate) fn class(t: u32) -> Option<Class> {
    lookup(t).map(|k| k.class)
}

/// The psABI name of a relocation type.
pub(crate) fn reloc_name(t: u32) -> Option<&'static str> {
    lookup(t).map(|k| k.name)
}

/// `r_info` decoded: the symbol index (high 32 bits) and the type (low 32
/// bits), the one place minld splits the word.
#[inline]
pub(crate) const fn split_info(r_info: u64) -> (usize, u32) {
    ((r_info >> 32) as usize, (r_info & 0xffff_ffff) as u32)
}

/// A relocation type, printed by its psABI name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelocKind(pub u32);

impl fmt::Display for RelocKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match reloc_name(self.0) {
            Some(name) => f.write_str(name),
            None => write!(f, "type {}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_indexed_by_number() {
        for (i, k) in TABLE.iter().enumerate() {
            assert_eq!(k.number as usize, i, "{}", k.name);
            assert!(k.name.starts_with("R_X86_64_"), "{}", k.name);
        }
    }

    #[test]
    fn names_round_trip() {
        for k in &TABLE {
            let back = TABLE.iter().find(|o| o.name == k.name).map(|o| o.number);
            assert_eq!(back, Some(k.number), "{} named twice", k.name);
            assert_eq!(RelocKind(k.number).to_string(), k.name);
        }
        assert_eq!(RelocKind(43).to_string(), "type 43");
        assert_eq!(reloc_name(u32::MAX), None);
    }

    #[test]
    fn every_supported_type_has_a_class_that_writes() {
        for k in TABLE.iter().filter(|k| k.supported) {
            assert!(
                !matches!(k.class, Class::Copy | Class::ObjectOnly),
                "{}",
                k.name
            );
            assert_eq!(k.width == Width::W0, k.class == Class::None, "{}", k.name);
        }
        let supported: Vec<u32> = TABLE
            .iter()
            .filter(|k| k.supported)
            .map(|k| k.number)
            .collect();
        assert_eq!(
            supported,
            [0, 1, 2, 6, 7, 8, 10, 11, 16, 17, 18, 24, 32, 33, 36, 37, 38]
        );
    }

    #[test]
    fn unsupported_types_are_refused_by_number() {
        for n in [
            3, 4, 5, 9, 12, 13, 14, 15, 19, 20, 21, 22, 23, 25, 26, 34, 35, 41,
        ] {
            let k = lookup(n).unwrap();
            assert!(!k.supported, "{}", k.name);
            assert_eq!(k.number, n);
        }
        assert!(lookup(43).is_none());
    }

    #[test]
    fn the_named_constants_are_the_tables() {
        assert_eq!(reloc_name(r::R64), Some("R_X86_64_64"));
        assert_eq!(reloc_name(r::GLOB_DAT), Some("R_X86_64_GLOB_DAT"));
        assert_eq!(reloc_name(r::JUMP_SLOT), Some("R_X86_64_JUMP_SLOT"));
        assert_eq!(reloc_name(r::RELATIVE), Some("R_X86_64_RELATIVE"));
    }

    #[test]
    fn r_info_splits_into_symbol_and_type() {
        assert_eq!(split_info(0x0000_0012_0000_0007), (0x12, 7));
        assert_eq!(split_info(u64::MAX), (0xffff_ffff, u32::MAX));
    }

    #[test]
    fn signed_fields_are_the_pc_relative_and_sign_extended_ones() {
        let s: Vec<&str> = TABLE.iter().filter(|k| k.signed).map(|k| k.name).collect();
        assert_eq!(s, ["R_X86_64_PC32", "R_X86_64_32S"]);
        assert_eq!(lookup(36).unwrap().width.bytes(), 16);
    }
}
