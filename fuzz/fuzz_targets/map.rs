//! Header and program-header validation, and mapping: any bytes are either
//! mapped (and unmapped on drop) or refused with an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minld_fuzz::MemFile;

fuzz_target!(|data: &[u8]| {
    let file = MemFile::new(data);
    if let Ok(m) = minld::Loader::new().map(&file.path) {
        // The image must lie where the loader says it does.
        let (start, len) = m.span();
        assert!(len > 0 && start != 0);
    }
});
