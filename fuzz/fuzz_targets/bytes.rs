//! Loading from bytes against loading the same bytes as a file: for any
//! input, `Loader::map_bytes` (named as the file) and `Loader::map` of a
//! memfd holding the input both map it, or both refuse it with the same
//! error (but a linker script, which only a file is read as); a copy holds
//! the input's bytes where the mapping has the file's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minld_fuzz::MemFile;

fuzz_target!(|data: &[u8]| {
    let file = MemFile::new(data);
    let from_file = minld::Loader::new().map(&file.path);
    let from_bytes = minld::Loader::new().name(&file.path).map_bytes(data);
    match (&from_file, &from_bytes) {
        (Ok(f), Ok(b)) => {
            assert_eq!(f.span().1, b.span().1, "the same length");
            assert_eq!(f.segments().len(), b.segments().len());
            for (fs, bs) in f.segments().iter().zip(b.segments()) {
                assert_eq!(fs.addr - f.base(), bs.addr - b.base());
                assert_eq!(fs.prot, bs.prot);
                if fs.prot.read() && fs.file_size > 0 {
                    let n = fs.file_size as usize;
                    // SAFETY: both are readable segments of `n` file bytes
                    // at least, mapped while `f` and `b` live.
                    let (x, y) = unsafe {
                        (
                            std::slice::from_raw_parts(fs.addr as *const u8, n),
                            std::slice::from_raw_parts(bs.addr as *const u8, n),
                        )
                    };
                    assert_eq!(x, y, "the copy holds the file's bytes");
                }
            }
        }
        // A file that reads as a linker script is parsed as one; bytes are
        // an ELF object or refused by its header checks.
        (Err(minld::Error::BadScript { .. }), Err(_)) => {}
        (Err(f), Err(b)) => assert_eq!(format!("{f:?}"), format!("{b:?}")),
        (f, b) => panic!("map gave {f:?}, map_bytes {b:?}"),
    }
});
