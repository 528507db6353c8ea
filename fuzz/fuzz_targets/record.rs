//! The link cache's record parser: any bytes are either a well-formed
//! record or refused with a `RecordError`; none crashes, panics or hangs.
//! Each input is tried as it is and with its checksum made right, so that
//! the checks behind the checksum (tables, positions) are reached too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = minld::Loader::check_link_record(data);
    if data.len() >= 64 {
        let mut fixed = data.to_vec();
        let len = fixed.len() as u64;
        fixed[16..24].copy_from_slice(&len.to_le_bytes());
        fixed[..8].copy_from_slice(b"minldlc\0");
        fixed[8..12].copy_from_slice(&2u32.to_le_bytes());
        minld::Loader::reseal_link_record(&mut fixed);
        let _ = minld::Loader::check_link_record(&fixed);
    }
});
