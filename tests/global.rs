//! The global scope (RTLD_GLOBAL, `Loader::global`): a library loaded into
//! it lends its symbols to later loads that do not name it (an
//! under-linked library links), `Library::find_default` finds them as
//! `dlsym(RTLD_DEFAULT)` does, and a library bound to them keeps them
//! loaded. The global scope is the process's, so each case runs in a
//! process of its own.

mod common;

use common::libs::lib;
use common::process::in_fresh_process;
use minld::{Error, Library, Loader};

/// Loads a test library with `loader`.
fn open_with(loader: Loader, name: &str) -> Result<Library, Error> {
    // SAFETY: test-libs are ours and run no harmful code.
    unsafe { loader.open(lib(name)) }
}

/// Calls `int f(void)` of `l`.
fn call(l: &Library, f: &str) -> i32 {
    // SAFETY: the functions named here are `int f(void)`.
    let f = unsafe { l.get::<extern "C" fn() -> i32>(f) }.unwrap();
    f()
}

#[test]
fn an_under_linked_library_fails_without_the_global_scope() {
    if !in_fresh_process("an_under_linked_library_fails_without_the_global_scope") {
        return;
    }
    let def = open_with(Loader::new(), "libglobal_def.so").unwrap();
    match open_with(Loader::new(), "libglobal_user.so") {
        Err(Error::UndefinedSymbol { name, .. }) => assert!(name.starts_with("global_"), "{name}"),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("linked without global_def in the global scope"),
    }
    assert!(Library::find_default("global_fn").is_none());
    drop(def);
}

#[test]
fn a_library_loaded_global_lends_its_symbols_and_stays_while_used() {
    if !in_fresh_process("a_library_loaded_global_lends_its_symbols_and_stays_while_used") {
        return;
    }
    let def = open_with(Loader::new().global(true), "libglobal_def.so").unwrap();
    let f = Library::find_default("global_fn").expect("global_fn in the default scope");
    // SAFETY: only the address is compared.
    let own = unsafe { def.get::<*mut std::ffi::c_void>("global_fn") }.unwrap();
    assert_eq!(f, *own);
    // The host's definitions come first in the default scope.
    assert!(Library::find_default("malloc").is_some());
    let user = open_with(Loader::new(), "libglobal_user.so").unwrap();
    assert_eq!(call(&user, "use_global"), 42);
    // The user keeps what it was bound to loaded.
    drop(def);
    assert!(common::libs::mapped("libglobal_def.so"));
    assert_eq!(call(&user, "use_global"), 42);
    drop(user);
    assert!(!common::libs::mapped("libglobal_def.so"));
    assert!(Library::find_default("global_fn").is_none());
}

#[test]
fn a_lazily_bound_library_finds_global_functions_at_its_first_call() {
    if !in_fresh_process("a_lazily_bound_library_finds_global_functions_at_its_first_call") {
        return;
    }
    let _def = open_with(Loader::new().global(true), "libglobal_def.so").unwrap();
    let user = open_with(Loader::new().bind_now(false), "libglobal_user.so").unwrap();
    assert_eq!(call(&user, "use_global"), 42);
}
