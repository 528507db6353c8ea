//! DT_RPATH is inherited down the chain of loaders, as glibc searches it:
//! a library without a DT_RUNPATH of its own has its dependencies searched
//! in its own DT_RPATH, then in the DT_RPATH of the object that loaded it,
//! and of that one's loader, and so on, then in the program's DT_RPATH. A
//! DT_RUNPATH is never inherited. `libinherit_a.so` (RPATH
//! `$ORIGIN/inherit`) needs `inherit/libinherit_b.so` (no RPATH, no
//! RUNPATH), which needs `inherit/libinherit_c.so`: only a's RPATH finds
//! c. `libinherit_r.so` is a with a RUNPATH instead. Each case runs in a
//! process of its own, glibc's reference in one and minld's in another,
//! so that neither sees the other's copies. The program's own RPATH is
//! checked through the drop-in (`tests/preload.rs`, `dl_rpath`). A library
//! with DF_1_NODEFLIB has its dependencies searched nowhere in the system
//! directories (`libnodeflib.so`).

mod common;

use common::libs::{lib, test_lib};
use common::process::in_fresh_process;
use minld::{Error, Library, Loader};

/// Calls `int f(void)` of `l`.
fn call(l: &Library, f: &str) -> i32 {
    // SAFETY: the functions named here are `int f(void)`.
    let f = unsafe { l.get::<extern "C" fn() -> i32>(f) }.expect(f);
    f()
}

/// glibc's `dlopen` of test library `name`: its `inherit_a()`, or
/// dlerror's text.
fn glibc_inherit_a(name: &str) -> Result<i32, String> {
    let path = std::ffi::CString::new(lib(name)).expect("path");
    // SAFETY: a test library of ours, opened by glibc; dlerror's string
    // is read before any other dl call.
    unsafe {
        let h = libc::dlopen(path.as_ptr(), libc::RTLD_NOW);
        if h.is_null() {
            let e = std::ffi::CStr::from_ptr(libc::dlerror());
            return Err(e.to_string_lossy().into_owned());
        }
        let f = libc::dlsym(h, c"inherit_a".as_ptr());
        assert!(!f.is_null(), "inherit_a in {name}");
        let f: extern "C" fn() -> i32 = std::mem::transmute(f);
        Ok(f())
    }
}

#[test]
fn glibc_finds_a_dependency_through_its_loaders_rpath() {
    if in_fresh_process("glibc_finds_a_dependency_through_its_loaders_rpath") {
        assert_eq!(glibc_inherit_a("libinherit_a.so"), Ok(777));
    }
}

#[test]
fn minld_finds_a_dependency_through_its_loaders_rpath() {
    if !in_fresh_process("minld_finds_a_dependency_through_its_loaders_rpath") {
        return;
    }
    // SAFETY: test-libs are ours and run no harmful code.
    let a = unsafe { Loader::new().open(lib("libinherit_a.so")) }.expect("libinherit_a.so");
    assert_eq!(call(&a, "inherit_a"), 777);
    let b = test_lib("inherit/libinherit_b.so");
    assert!(a.dependencies().contains(&b), "{:?}", a.dependencies());
    assert!(common::libs::mapped("inherit/libinherit_c.so"));
}

#[test]
fn glibc_does_not_inherit_a_runpath() {
    if in_fresh_process("glibc_does_not_inherit_a_runpath") {
        let e = glibc_inherit_a("libinherit_r.so").expect_err("RUNPATH inherited");
        assert!(
            e.starts_with("libinherit_c.so: cannot open shared object file"),
            "{e}"
        );
    }
}

#[test]
fn minld_does_not_inherit_a_runpath() {
    if !in_fresh_process("minld_does_not_inherit_a_runpath") {
        return;
    }
    // SAFETY: test-libs are ours and run no harmful code.
    let Err(e) = (unsafe { Loader::new().open(lib("libinherit_r.so")) }) else {
        panic!("RUNPATH inherited");
    };
    match e {
        Error::NotFound {
            ref name,
            needed_by: minld::Requester::Library(ref by),
            ..
        } => {
            assert_eq!(name, "libinherit_c.so");
            assert_eq!(*by, test_lib("inherit/libinherit_b.so"));
        }
        other => panic!("expected NotFound of libinherit_c.so, got {other:?}"),
    }
}

/// An open on behalf of a library (`Loader::caller_at` an address in
/// it) searches that library's inherited RPATH too: glibc's dlopen from
/// code in libinherit_b.so searches b's RPATH (none), then its loader
/// a's. `inherit/libinherit_d.so` is needed by nobody, so it is searched
/// for, not matched by soname.
#[test]
fn a_callers_inherited_rpath_is_searched() {
    if !in_fresh_process("a_callers_inherited_rpath_is_searched") {
        return;
    }
    // SAFETY: test-libs are ours and run no harmful code.
    let a = unsafe { Loader::new().open(lib("libinherit_a.so")) }.expect("libinherit_a.so");
    // SAFETY: only its address is used.
    let in_b = unsafe { a.get::<*const u8>("inherit_b") }.expect("inherit_b");
    let in_b = *in_b as usize;
    // Without the caller, nothing names inherit/.
    // SAFETY: as above.
    let e = unsafe { Loader::new().open("libinherit_d.so") };
    assert!(e.is_err(), "found without a caller");
    // SAFETY: as above.
    let d = unsafe { Loader::new().caller_at(in_b).open("libinherit_d.so") }
        .expect("libinherit_d.so through b's inherited RPATH");
    assert_eq!(d.path(), test_lib("inherit/libinherit_d.so"));
}

#[test]
fn glibc_keeps_a_nodeflib_library_out_of_the_system_directories() {
    if in_fresh_process("glibc_keeps_a_nodeflib_library_out_of_the_system_directories") {
        let path = std::ffi::CString::new(lib("libnodeflib.so")).expect("path");
        // SAFETY: a test library of ours, opened by glibc; dlerror's string
        // is read before any other dl call.
        let e = unsafe {
            let h = libc::dlopen(path.as_ptr(), libc::RTLD_NOW);
            assert!(h.is_null(), "libz.so.1 found in a system directory");
            std::ffi::CStr::from_ptr(libc::dlerror())
                .to_string_lossy()
                .into_owned()
        };
        assert!(
            e.starts_with("libz.so.1: cannot open shared object file"),
            "{e}"
        );
    }
}

/// DF_1_NODEFLIB: the library's dependencies are searched neither in the
/// system directories nor through `/etc/ld.so.cache` entries there.
#[test]
fn minld_keeps_a_nodeflib_library_out_of_the_system_directories() {
    if !in_fresh_process("minld_keeps_a_nodeflib_library_out_of_the_system_directories") {
        return;
    }
    // SAFETY: test-libs are ours and run no harmful code.
    let Err(e) = (unsafe { Loader::new().open(lib("libnodeflib.so")) }) else {
        panic!("libz.so.1 found in a system directory");
    };
    match e {
        Error::NotFound {
            ref name,
            ref tried,
            ..
        } => {
            assert_eq!(name, "libz.so.1");
            assert!(
                tried
                    .iter()
                    .all(|p| !p.starts_with("/lib") && !p.starts_with("/usr/lib")),
                "{tried:?}"
            );
        }
        other => panic!("expected NotFound of libz.so.1, got {other:?}"),
    }
}

/// The caller's RPATH finds the name it opens, not that object's
/// dependencies: glibc's `dlopen` from `libinherit_caller.so` (RPATH
/// `$ORIGIN/inherit`) of `inherit/libinherit_b.so` fails on b's
/// `libinherit_c.so`; so does minld's open on behalf of the same caller.
#[test]
fn glibc_does_not_pass_a_callers_rpath_to_what_it_opens() {
    if !in_fresh_process("glibc_does_not_pass_a_callers_rpath_to_what_it_opens") {
        return;
    }
    let caller = std::ffi::CString::new(lib("libinherit_caller.so")).expect("path");
    let b = std::ffi::CString::new(lib("inherit/libinherit_b.so")).expect("path");
    // SAFETY: a test library of ours, opened by glibc; its functions are
    // `int (const char *)` and `const char *(void)`.
    let (opened, error) = unsafe {
        let h = libc::dlopen(caller.as_ptr(), libc::RTLD_NOW);
        assert!(!h.is_null(), "libinherit_caller.so");
        let open = libc::dlsym(h, c"inherit_caller_open".as_ptr());
        let error = libc::dlsym(h, c"inherit_caller_error".as_ptr());
        assert!(!open.is_null() && !error.is_null());
        let open: extern "C" fn(*const libc::c_char) -> i32 = std::mem::transmute(open);
        let error: extern "C" fn() -> *const libc::c_char = std::mem::transmute(error);
        let opened = open(b.as_ptr());
        (
            opened,
            std::ffi::CStr::from_ptr(error())
                .to_string_lossy()
                .into_owned(),
        )
    };
    assert_eq!(
        opened, 0,
        "libinherit_c.so found through the caller's RPATH"
    );
    assert!(
        error.starts_with("libinherit_c.so: cannot open shared object file"),
        "{error}"
    );
}

#[test]
fn minld_does_not_pass_a_callers_rpath_to_what_it_opens() {
    if !in_fresh_process("minld_does_not_pass_a_callers_rpath_to_what_it_opens") {
        return;
    }
    // SAFETY: test-libs are ours and run no harmful code.
    let caller = unsafe { Loader::new().open(lib("libinherit_caller.so")) }.expect("caller");
    // SAFETY: as above.
    let Err(e) = (unsafe {
        Loader::new()
            .caller(&caller)
            .open(lib("inherit/libinherit_b.so"))
    }) else {
        panic!("libinherit_c.so found through the caller's RPATH");
    };
    assert!(
        matches!(&e, Error::NotFound { name, .. } if name == "libinherit_c.so"),
        "{e:?}"
    );
    // The caller's RPATH still finds a bare name it opens itself.
    // SAFETY: as above.
    let d = unsafe { Loader::new().caller(&caller).open("libinherit_d.so") }.expect("d");
    assert_eq!(d.path(), test_lib("inherit/libinherit_d.so"));
}
