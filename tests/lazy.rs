//! Lazy binding (`bind_now(false)`, RTLD_LAZY): PLT entries are bound at
//! their first call, through minld's resolver, with every argument
//! register intact; a function nobody defines fails only when called.

mod common;

use std::ffi::{c_char, c_int, c_long, CStr};
use std::process::Command;

use minld::{Error, Library, Loader};

use common::libs::lib;

fn open_lazy() -> Library {
    // SAFETY: test-libs/lazy_caller.c and lazy_callee.c.
    unsafe { Loader::new().bind_now(false).open(lib("liblazy_caller.so")) }
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The GOT word of the JUMP_SLOT relocation against `symbol`.
fn slot(l: &Library, symbol: &str) -> usize {
    let bytes = std::fs::read(lib("liblazy_caller.so")).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).unwrap();
    let r = elf
        .pltrelocs
        .iter()
        .find(|r| {
            elf.dynstrtab
                .get_at(elf.dynsyms.get(r.r_sym).unwrap().st_name)
                == Some(symbol)
        })
        .unwrap_or_else(|| panic!("no PLT relocation against {symbol}"));
    let at = l.base() + r.r_offset as usize;
    // SAFETY: a GOT word of the loaded library, inside its data segment.
    unsafe { (at as *const usize).read() }
}

#[test]
fn functions_are_bound_at_their_first_call_with_their_arguments() {
    let l = open_lazy();
    // SAFETY: the signatures of test-libs/lazy_caller.c.
    unsafe {
        let before = slot(&l, "lazy_sum8");
        let own = minld::addr_info(before).expect("the slot points into a loaded library");
        assert!(
            own.path.ends_with("liblazy_caller.so"),
            "before the first call the slot points at the caller's own PLT: {own:?}"
        );
        let sum8 = l.get::<extern "C" fn() -> f64>("lazy_call_sum8").unwrap();
        assert_eq!(
            sum8(),
            36.0,
            "eight doubles in xmm0-7 survived the resolver"
        );
        let after = slot(&l, "lazy_sum8");
        let callee = l.get::<usize>("lazy_sum8").unwrap();
        assert_eq!(after, *callee, "after it, the slot holds lazy_sum8");
        assert_eq!(sum8(), 36.0);

        let mix = l.get::<extern "C" fn() -> c_long>("lazy_call_mix").unwrap();
        assert_eq!(mix(), 9_354_321);
        let format = l
            .get::<extern "C" fn(*mut c_char, c_int) -> c_int>("lazy_call_format")
            .unwrap();
        let mut buf = [0 as c_char; 64];
        let n = format(buf.as_mut_ptr(), 64);
        let s = CStr::from_ptr(buf.as_ptr()).to_str().unwrap();
        assert_eq!((n, s), (15, "42 2.50 ok -1.0"), "a variadic call (%al)");
    }
}

#[test]
fn first_calls_from_many_threads_at_once() {
    for _ in 0..20 {
        let l = open_lazy();
        // SAFETY: long lazy_call_mix(void).
        let mix = unsafe { *l.get::<extern "C" fn() -> c_long>("lazy_call_mix").unwrap() };
        let results: Vec<c_long> = (0..8)
            .map(|_| std::thread::spawn(move || mix()))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert!(results.iter().all(|&r| r == 9_354_321), "{results:?}");
    }
}

#[test]
fn bind_now_refuses_what_lazy_binding_defers() {
    // SAFETY: fails before any code runs.
    let e = match unsafe { Loader::new().open(lib("liblazy_caller.so")) } {
        Ok(_) => panic!("loaded with an undefined function bound now"),
        Err(e) => e,
    };
    assert!(
        matches!(&e, Error::UndefinedSymbol { name, .. } if name == "lazy_nowhere"),
        "{e}"
    );
}

/// Calling the function nobody defines ends the process, with a message
/// naming it (run in a child: it aborts).
#[test]
fn calling_an_undefined_function_ends_the_process_with_its_name() {
    if std::env::var_os("MINLD_LAZY_CHILD").is_some() {
        let l = open_lazy();
        // SAFETY: int lazy_missing(void); it does not return.
        unsafe { l.get::<extern "C" fn() -> c_int>("lazy_missing").unwrap()() };
        unreachable!("lazy_missing returned");
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "calling_an_undefined_function_ends_the_process_with_its_name",
            "--exact",
            "--nocapture",
        ])
        .env("MINLD_LAZY_CHILD", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the child survived:\n{err}");
    assert!(
        err.contains("liblazy_caller.so") && err.contains("undefined symbol: lazy_nowhere"),
        "{err}"
    );
}

static FINI_SAW: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn fini_hook(v: c_int) {
    FINI_SAW.store(v, std::sync::atomic::Ordering::SeqCst);
}

/// A destructor that calls its own library's function for the first time
/// is bound while the library is being unloaded.
#[test]
fn a_destructor_binds_its_own_function_during_unload() {
    // SAFETY: test-libs/lazy_fini_self.c.
    let l = unsafe {
        Loader::new()
            .bind_now(false)
            .open(lib("liblazy_fini_self.so"))
    }
    .unwrap();
    // SAFETY: void lazy_fini_set_hook(void (*)(int)).
    unsafe {
        l.get::<extern "C" fn(extern "C" fn(c_int))>("lazy_fini_set_hook")
            .unwrap()(fini_hook)
    };
    drop(l);
    assert_eq!(FINI_SAW.load(std::sync::atomic::Ordering::SeqCst), 42);
}
