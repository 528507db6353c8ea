//! The link cache's record parser: any bytes are either a well-formed
//! record or refused with a `RecordError`; none crashes, panics or hangs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = minld::Loader::check_link_record(data);
});
