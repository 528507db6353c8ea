//! Opens on behalf of a caller (`Loader::caller`, `Loader::caller_at`): a
//! bare name is searched in the caller's RUNPATH or RPATH, and `$ORIGIN`
//! is the caller's directory, as glibc's dlopen does for the object that
//! calls it; without a caller neither applies.
//!
//! A bare name that is the soname of a library minld has loaded is that
//! library without a search (as with glibc), so the searches without a
//! caller are made before libchain_c.so is loaded, one test at a time.

mod common;

use common::libs::open;
use minld::{Error, Library, Loader};

/// Calls `int f(void)` of `l`.
fn call(l: &Library, f: &str) -> i32 {
    // SAFETY: the functions named here are `int f(void)`.
    let f = unsafe { l.get::<extern "C" fn() -> i32>(f) }.unwrap();
    f()
}

/// Opens `name` with `loader`.
fn open_with(loader: Loader, name: &str) -> Result<Library, Error> {
    // SAFETY: test-libs are ours and run no harmful code.
    unsafe { loader.open(name) }
}

#[test]
fn a_bare_name_is_found_through_the_callers_runpath() {
    let _serial = common::process::serial();
    // libchain_a.so has RUNPATH $ORIGIN/chain; libchain_c.so is in chain/.
    match open_with(Loader::new(), "libchain_c.so") {
        Err(Error::NotFound { .. }) => {}
        other => panic!("found without a caller: {:?}", other.map(|l| l.path())),
    }
    let a = open("libchain_a.so");
    let c = open_with(Loader::new().caller(&a), "libchain_c.so").unwrap();
    assert_eq!(call(&c, "chain_c"), 3);
    assert_eq!(c.path(), common::libs::test_lib("chain/libchain_c.so"));
}

#[test]
fn a_bare_name_is_found_through_the_callers_rpath() {
    let _serial = common::process::serial();
    let a = open("librpath_a.so");
    let c = open_with(Loader::new().caller(&a), "libchain_c.so").unwrap();
    assert_eq!(call(&c, "chain_c"), 3);
}

#[test]
fn origin_in_the_name_is_the_callers_directory() {
    let _serial = common::process::serial();
    let a = open("libchain_a.so");
    let name = "$ORIGIN/chain/libchain_c.so";
    assert!(open_with(Loader::new(), name).is_err());
    let c = open_with(Loader::new().caller(&a), name).unwrap();
    assert_eq!(call(&c, "chain_c"), 3);
}

#[test]
fn the_caller_can_be_named_by_an_address_in_it() {
    let _serial = common::process::serial();
    // An address in no object: no caller, the usual search only.
    let nowhere = Loader::new().caller_at(8);
    assert!(matches!(
        open_with(nowhere, "libchain_c.so"),
        Err(Error::NotFound { .. })
    ));
    let a = open("libchain_a.so");
    // SAFETY: only the address is taken.
    let f = unsafe { a.get::<*mut std::ffi::c_void>("chain_a") }.unwrap();
    let c = open_with(Loader::new().caller_at(*f as usize + 1), "libchain_c.so").unwrap();
    assert_eq!(call(&c, "chain_c"), 3);
}
