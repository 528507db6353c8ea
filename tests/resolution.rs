//! One symbol resolution: relocation (an R_X86_64_64 bound at load), lazy
//! binding (a PLT call through `bind_now(false)`, read back from its GOT
//! word) and `Library::get` give the same address, for a unique symbol, a
//! versioned one, a protected one and one minld interposes
//! (test-libs/res_*.c).

use std::ffi::c_void;
use std::path::PathBuf;

use minld::{Library, Loader};

/// A test library of this suite.
fn lib(name: &str) -> PathBuf {
    PathBuf::from(env!("MINLD_TEST_LIBS"))
        .join("resolution")
        .join(name)
}

/// Opens a test library with lazy binding.
fn open_lazy(name: &str) -> Library {
    // SAFETY: the test libraries of test-libs/res_*.c; their code is ours.
    unsafe { Loader::new().bind_now(false).open(lib(name)) }.unwrap_or_else(|e| panic!("{e}"))
}

/// Calls `void *f(void)` of `l`.
fn call(l: &Library, f: &str) -> usize {
    // SAFETY: every function named here is `void *f(void)`.
    let f = unsafe { *l.get::<extern "C" fn() -> *mut c_void>(f).unwrap() };
    f() as usize
}

/// The address `l.get` gives for `name` (in `version`).
fn get(l: &Library, name: &str, version: Option<&str>) -> usize {
    // SAFETY: only the address is taken.
    let s = unsafe {
        match version {
            Some(v) => l.get_versioned::<*mut c_void>(name, v),
            None => l.get::<*mut c_void>(name),
        }
    };
    *s.unwrap_or_else(|e| panic!("{e}")) as usize
}

/// The word the JUMP_SLOT of `name` in `l` writes (lazily bound: once
/// called, the function's address).
fn jump_slot(l: &Library, name: &str) -> usize {
    let bytes = std::fs::read(l.path()).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).unwrap();
    let rel = elf
        .pltrelocs
        .iter()
        .find(|r| {
            elf.dynsyms
                .get(r.r_sym)
                .and_then(|s| elf.dynstrtab.get_at(s.st_name))
                == Some(name)
        })
        .unwrap_or_else(|| panic!("no JUMP_SLOT for {name}"));
    let at = l.base() + rel.r_offset as usize;
    // SAFETY: a GOT word of the loaded library, which `l` keeps mapped.
    unsafe { (at as *const usize).read_volatile() }
}

/// Whether `addr` lies in one of `l`'s segments.
fn inside(l: &Library, addr: usize) -> bool {
    l.segments()
        .iter()
        .any(|s| addr >= s.addr && addr < s.addr + s.mem_size as usize)
}

#[test]
fn a_unique_symbol_is_the_first_definition_on_every_path() {
    // The first definition the process meets: libres_unique_a's, bound by
    // its own GOT reference.
    let a = open_lazy("libres_unique_a.so");
    let first = get(&a, "res_unique", None);
    assert!(inside(&a, first));
    assert_eq!(call(&a, "res_unique_here"), first);
    // libres_unique_user finds libres_unique_b's definition first in its
    // scope, and must bind the unique one instead, on every path.
    let user = open_lazy("libres_unique_user.so");
    let relocated = call(&user, "res_unique_addr");
    let called = call(&user, "res_unique_call");
    let lazily = jump_slot(&user, "res_unique");
    let got = get(&user, "res_unique", None);
    assert_eq!(
        [relocated, called, lazily, got],
        [first; 4],
        "relocation, the PLT call, its GOT word, Library::get"
    );
}

#[test]
fn a_versioned_reference_binds_its_version_on_every_path() {
    let user = open_lazy("libres_user.so");
    let def = open_lazy("libres_def.so");
    let v1 = get(&def, "res_versioned", Some("VER_1"));
    let v2 = get(&def, "res_versioned", None);
    assert_ne!(v1, v2, "two versions, two definitions");
    assert_eq!(get(&def, "res_versioned", Some("VER_2")), v2);
    let relocated = call(&user, "res_versioned_addr");
    let called = call(&user, "res_versioned_call");
    let lazily = jump_slot(&user, "res_versioned");
    let got = get(&user, "res_versioned", Some("VER_1"));
    assert_eq!([relocated, called, lazily, got], [v1; 4]);
}

#[test]
fn a_protected_symbol_is_its_definers_on_every_path() {
    let user = open_lazy("libres_user.so");
    let def = open_lazy("libres_def.so");
    let own = call(&def, "res_protected_here");
    assert!(inside(&def, own));
    let relocated = call(&user, "res_protected_addr");
    let called = call(&user, "res_protected_call");
    let lazily = jump_slot(&user, "res_protected");
    let got = get(&user, "res_protected", None);
    assert_eq!([relocated, called, lazily, got], [own; 4]);
    assert_eq!(get(&def, "res_protected", None), own);
}

#[test]
fn an_interposed_host_function_is_minlds_on_every_path() {
    let user = open_lazy("libres_user.so");
    // SAFETY: int res_interposed_call(void): minld's _dl_find_object finds
    // the caller's own code (0).
    let found = unsafe {
        *user
            .get::<extern "C" fn() -> i32>("res_interposed_call")
            .unwrap()
    };
    assert_eq!(found(), 0, "minld's _dl_find_object knows minld's objects");
    let relocated = call(&user, "res_interposed_addr");
    let lazily = jump_slot(&user, "_dl_find_object");
    let got = get(&user, "_dl_find_object", None);
    assert_eq!([lazily, got], [relocated; 2]);
    // SAFETY: a plain dlsym of the host's definition.
    let host = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"_dl_find_object".as_ptr()) } as usize;
    assert_ne!(host, 0);
    assert_ne!(relocated, host, "bound to minld's version, not glibc's");
}
