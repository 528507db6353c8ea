//! The packed fields of an Elf64_Sym (st_info, st_other, st_shndx),
//! decoded in one place for every reader of symbols.

use goblin::elf64::sym::Sym;

/// The packed fields of an Elf64_Sym, decoded: the one place minld reads
/// st_info, st_other and st_shndx.
// `bind` and `visibility` are for the symbol resolver in pipeline/reloc,
// which still decodes them inline (being rewritten in parallel).
#[allow(dead_code)]
pub(crate) trait SymFields {
    /// STB_*: the binding, st_info's high nibble.
    fn bind(&self) -> u8;
    /// STT_*: the type, st_info's low nibble.
    fn kind(&self) -> u8;
    /// STV_*: the visibility, st_other's low two bits.
    fn visibility(&self) -> u8;
    /// Whether st_shndx is not SHN_UNDEF: the object defines the symbol.
    fn defined(&self) -> bool;
    /// Whether st_shndx is SHN_ABS: the value is not an address.
    fn absolute(&self) -> bool;
}

impl SymFields for Sym {
    #[inline]
    fn bind(&self) -> u8 {
        self.st_info >> 4
    }
    #[inline]
    fn kind(&self) -> u8 {
        self.st_info & 0xf
    }
    #[inline]
    fn visibility(&self) -> u8 {
        self.st_other & 0x3
    }
    #[inline]
    fn defined(&self) -> bool {
        self.st_shndx != goblin::elf::section_header::SHN_UNDEF as u16
    }
    #[inline]
    fn absolute(&self) -> bool {
        self.st_shndx == goblin::elf::section_header::SHN_ABS as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goblin::elf::sym as st;

    #[test]
    fn decodes_st_info_st_other_and_st_shndx() {
        let s = Sym {
            st_info: (st::STB_GLOBAL << 4) | st::STT_FUNC,
            st_other: st::STV_PROTECTED,
            st_shndx: 12,
            ..Default::default()
        };
        assert_eq!(s.bind(), st::STB_GLOBAL);
        assert_eq!(s.kind(), st::STT_FUNC);
        assert_eq!(s.visibility(), st::STV_PROTECTED);
        assert!(s.defined() && !s.absolute());
        let u = Sym {
            st_info: (st::STB_WEAK << 4) | st::STT_NOTYPE,
            st_other: 0x80 | st::STV_HIDDEN,
            ..Default::default()
        };
        assert_eq!(
            (u.bind(), u.kind(), u.visibility()),
            (st::STB_WEAK, st::STT_NOTYPE, st::STV_HIDDEN)
        );
        assert!(!u.defined());
        let a = Sym {
            st_shndx: goblin::elf::section_header::SHN_ABS as u16,
            ..Default::default()
        };
        assert!(a.defined() && a.absolute());
    }
}
