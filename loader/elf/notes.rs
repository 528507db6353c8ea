//! PT_NOTE segments read in place: the GNU build-id note, which names an
//! object's contents (the link cache compares it).

use goblin::elf::program_header as ph;

use crate::base::mem::Memory;

/// The note type of a GNU build-id (`NT_GNU_BUILD_ID`).
const NT_GNU_BUILD_ID: u32 = 3;

/// A 64-bit FNV-1a hash of the build-id note's descriptor in the PT_NOTE
/// segments (given as (p_type, p_vaddr, p_memsz)) of an object mapped at
/// `bias`; 0 when it has none (or none that lies in readable memory).
pub(crate) fn build_id_hash(
    mem: &Memory,
    bias: usize,
    phdrs: impl Iterator<Item = (u32, u64, u64)>,
) -> u64 {
    phdrs
        .filter(|p| p.0 == ph::PT_NOTE)
        .find_map(|(_, vaddr, memsz)| {
            let notes = mem.table::<u8>(bias.wrapping_add(vaddr as usize), memsz as usize)?;
            let bytes: Vec<u8> = notes.iter().collect();
            build_id_in(&bytes).map(fnv1a)
        })
        .unwrap_or(0)
}

/// The descriptor of the build-id note in a PT_NOTE segment's bytes.
fn build_id_in(mut b: &[u8]) -> Option<&[u8]> {
    let word = |b: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    let pad = |n: usize| n.checked_add(3).map(|n| n & !3);
    while b.len() >= 12 {
        let (namesz, descsz, kind) = (word(b, 0)? as usize, word(b, 4)? as usize, word(b, 8)?);
        let name_end = 12usize.checked_add(pad(namesz)?)?;
        let desc_end = name_end.checked_add(pad(descsz)?)?;
        let name = b.get(12..12 + namesz)?;
        let desc = b.get(name_end..name_end.checked_add(descsz)?)?;
        if kind == NT_GNU_BUILD_ID && name == b"GNU\0" && !desc.is_empty() {
            return Some(desc);
        }
        b = b.get(desc_end..)?;
    }
    None
}

/// FNV-1a, 64 bits.
fn fnv1a(bytes: &[u8]) -> u64 {
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    h.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_build_id_after_another_note() {
        let mut b = Vec::new();
        // An ABI tag note ("GNU", type 1, 16 bytes), then the build-id.
        for (name, kind, desc) in [
            (&b"GNU\0"[..], 1u32, vec![0u8; 16]),
            (b"GNU\0", 3, vec![7u8; 20]),
        ] {
            b.extend((name.len() as u32).to_le_bytes());
            b.extend((desc.len() as u32).to_le_bytes());
            b.extend(kind.to_le_bytes());
            b.extend(name);
            b.extend(&desc);
        }
        assert_eq!(build_id_in(&b), Some(&[7u8; 20][..]));
        assert_eq!(build_id_in(&b[..b.len() - 1]), None);
        assert_eq!(build_id_in(&[0xff; 40]), None);
    }
}
