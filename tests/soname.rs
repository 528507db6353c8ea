//! A bare name that is the DT_SONAME of a library minld has loaded is that
//! library, found without a search, as glibc's dlopen matches it.

mod common;

use minld::Library;

#[test]
fn bare_name_matches_a_loaded_soname_without_search() {
    let _serial = common::process::serial();
    // chain/libchain_c.so is in no directory a search looks in.
    let by_path = common::libs::open("chain/libchain_c.so");
    // SAFETY: test-libs are ours and run no harmful code.
    let by_name = unsafe { Library::open("libchain_c.so") }
        .unwrap_or_else(|e| panic!("libchain_c.so by soname: {e}"));
    assert_eq!(by_name.base(), by_path.base());
    assert_eq!(by_name.path(), by_path.path());
    drop((by_path, by_name));
    // Once unloaded, the name is searched for again, and not found.
    // SAFETY: as above.
    let again = unsafe { Library::open("libchain_c.so") };
    assert!(
        matches!(again, Err(minld::Error::NotFound { .. })),
        "{again:?}"
    );
}
