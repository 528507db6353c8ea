//! The x86-64 relocation types (psABI numbers and names).

use std::fmt;

/// psABI relocation types minld knows.
pub(crate) mod r {
    pub const NONE: u32 = 0;
    pub const R64: u32 = 1;
    pub const PC32: u32 = 2;
    pub const COPY: u32 = 5;
    pub const GLOB_DAT: u32 = 6;
    pub const JUMP_SLOT: u32 = 7;
    pub const RELATIVE: u32 = 8;
    pub const R32: u32 = 10;
    pub const R32S: u32 = 11;
    pub const DTPMOD64: u32 = 16;
    pub const DTPOFF64: u32 = 17;
    pub const TPOFF64: u32 = 18;
    pub const PC64: u32 = 24;
    pub const SIZE32: u32 = 32;
    pub const SIZE64: u32 = 33;
    pub const TLSDESC: u32 = 36;
    pub const IRELATIVE: u32 = 37;
    pub const RELATIVE64: u32 = 38;
}

/// The psABI name of a relocation type.
pub(crate) fn reloc_name(t: u32) -> Option<&'static str> {
    Some(match t {
        r::NONE => "R_X86_64_NONE",
        r::R64 => "R_X86_64_64",
        r::PC32 => "R_X86_64_PC32",
        3 => "R_X86_64_GOT32",
        4 => "R_X86_64_PLT32",
        r::COPY => "R_X86_64_COPY",
        r::GLOB_DAT => "R_X86_64_GLOB_DAT",
        r::JUMP_SLOT => "R_X86_64_JUMP_SLOT",
        r::RELATIVE => "R_X86_64_RELATIVE",
        9 => "R_X86_64_GOTPCREL",
        r::R32 => "R_X86_64_32",
        r::R32S => "R_X86_64_32S",
        12 => "R_X86_64_16",
        13 => "R_X86_64_PC16",
        14 => "R_X86_64_8",
        15 => "R_X86_64_PC8",
        r::DTPMOD64 => "R_X86_64_DTPMOD64",
        r::DTPOFF64 => "R_X86_64_DTPOFF64",
        r::TPOFF64 => "R_X86_64_TPOFF64",
        19 => "R_X86_64_TLSGD",
        20 => "R_X86_64_TLSLD",
        21 => "R_X86_64_DTPOFF32",
        22 => "R_X86_64_GOTTPOFF",
        23 => "R_X86_64_TPOFF32",
        r::PC64 => "R_X86_64_PC64",
        25 => "R_X86_64_GOTOFF64",
        26 => "R_X86_64_GOTPC32",
        r::SIZE32 => "R_X86_64_SIZE32",
        r::SIZE64 => "R_X86_64_SIZE64",
        34 => "R_X86_64_GOTPC32_TLSDESC",
        35 => "R_X86_64_TLSDESC_CALL",
        r::TLSDESC => "R_X86_64_TLSDESC",
        r::IRELATIVE => "R_X86_64_IRELATIVE",
        r::RELATIVE64 => "R_X86_64_RELATIVE64",
        _ => return None,
    })
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
