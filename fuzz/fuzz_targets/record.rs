//! The link cache's record parser: any bytes are either a well-formed
//! record or refused with a `RecordError`; none crashes, panics or hangs.
//! Each input is tried as it is and with its checksum made right, so that
//! the checks behind the checksum (tables, positions) are reached too.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The record's checksum over `bytes` (those after the 32-byte head), as
/// `loader/pipeline/cache/format.rs` defines it.
fn checksum(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (bytes.len() as u64).wrapping_mul(K);
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
        h = (h ^ w).wrapping_mul(K).rotate_left(29);
    }
    let mut tail = [0u8; 8];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    h = (h ^ u64::from_le_bytes(tail)).wrapping_mul(K).rotate_left(29);
    h ^ (h >> 31)
}

fuzz_target!(|data: &[u8]| {
    let _ = minld::Loader::check_link_record(data);
    if data.len() >= 64 {
        let mut fixed = data.to_vec();
        let len = fixed.len() as u64;
        fixed[16..24].copy_from_slice(&len.to_le_bytes());
        fixed[..8].copy_from_slice(b"minldlc\0");
        fixed[8..12].copy_from_slice(&2u32.to_le_bytes());
        let sum = checksum(&fixed[32..]);
        fixed[24..32].copy_from_slice(&sum.to_le_bytes());
        let _ = minld::Loader::check_link_record(&fixed);
    }
});
