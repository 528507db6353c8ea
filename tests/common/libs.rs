//! The test libraries (`test-libs/`, built by build.rs into the directory
//! `MINLD_TEST_LIBS` names) and opening them.

use std::path::{Path, PathBuf};

use minld::Library;

/// The directory of the built test libraries.
pub const TEST_LIBS: &str = env!("MINLD_TEST_LIBS");

/// The path of test library `name` (`"libbasic.so"`, `"chain/libchain_b.so"`).
pub fn lib(name: &str) -> String {
    format!("{TEST_LIBS}/{name}")
}

/// [`lib`] as a path.
pub fn test_lib(name: &str) -> PathBuf {
    Path::new(TEST_LIBS).join(name)
}

/// Opens test library `name` with the default loader; panics with the
/// error if it does not load.
pub fn open(name: &str) -> Library {
    // SAFETY: test-libs are ours and run no harmful code.
    unsafe { Library::open(lib(name)) }.unwrap_or_else(|e| panic!("open {name}: {e}"))
}

/// Whether `/proc/self/maps` shows a mapping of test library `name` (by
/// its real path, as the kernel shows it).
pub fn mapped(name: &str) -> bool {
    let path = PathBuf::from(lib(name));
    let path = path.canonicalize().unwrap_or(path);
    let path = path.to_str().expect("UTF-8 path");
    std::fs::read_to_string("/proc/self/maps")
        .expect("/proc/self/maps")
        .lines()
        .any(|line| line.ends_with(path))
}
