//! The dynamic section, symbol, version and hash tables, and relocation:
//! any bytes are either linked (without running any of their code) or
//! refused with an error; none crashes, panics or hangs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minld_fuzz::MemFile;

fuzz_target!(|data: &[u8]| {
    let file = MemFile::new(data);
    if let Ok(lib) = minld::Loader::new().link(&file.path) {
        assert!(lib.base() != 0);
    }
});
