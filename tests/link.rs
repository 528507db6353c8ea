//! Linking: each test-lib proves one behaviour of the loader, and real
//! system libraries are used for real through minld.

mod common;

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::Mutex;

use minld::{Error, Library, Loader, Requester};

use common::libs::{lib, open};

fn open_err(loader: &Loader, name: &str) -> Error {
    // SAFETY: as above; the load is expected to fail.
    match unsafe { loader.open(name) } {
        Ok(l) => panic!("{name} loaded at {:#x}, expected an error", l.base()),
        Err(e) => e,
    }
}

#[test]
fn exported_data_and_functions() {
    let l = open("libbasic.so");
    // SAFETY: the signatures are those of test-libs/basic.c.
    unsafe {
        let add = l
            .get::<extern "C" fn(c_int, c_int) -> c_int>("basic_add")
            .unwrap();
        assert_eq!(add(2, 3), 5);
        let counter = l.get::<*mut c_int>("basic_counter").unwrap();
        assert_eq!(**counter, 41);
        let greeting = l
            .get::<extern "C" fn() -> *const c_char>("basic_greeting")
            .unwrap();
        assert_eq!(
            CStr::from_ptr(greeting()).to_str().unwrap(),
            "hello from basic"
        );
        let names = l.get::<*const [*const c_char; 3]>("basic_names").unwrap();
        let got: Vec<&str> = (**names)
            .iter()
            .map(|p| CStr::from_ptr(*p).to_str().unwrap())
            .collect();
        assert_eq!(got, ["zero", "one", "two"]);
        let scale = l.get::<extern "C" fn(f64) -> f64>("basic_scale").unwrap();
        assert_eq!(scale(2.0), 5.0);
    }
}

#[test]
fn every_relocation_kind_against_a_dependency() {
    let l = open("librelocs.so");
    assert!(
        l.dependencies().iter().any(|d| d.ends_with("libbasic.so")),
        "{:?}",
        l.dependencies()
    );
    // SAFETY: signatures from test-libs/relocs.c.
    unsafe {
        let read = l
            .get::<extern "C" fn() -> c_int>("relocs_read_counter")
            .unwrap();
        let counter = l.get::<*mut c_int>("basic_counter").unwrap();
        assert_eq!(
            read(),
            **counter,
            "GLOB_DAT reads the dependency's variable"
        );
        let add = l
            .get::<extern "C" fn(c_int, c_int) -> c_int>("relocs_call_add")
            .unwrap();
        assert_eq!(add(4, 5), 9, "JUMP_SLOT");
        let plus3 = l
            .get::<extern "C" fn() -> *const c_char>("relocs_text_plus3_value")
            .unwrap();
        assert_eq!(
            CStr::from_ptr(plus3()).to_str().unwrap(),
            "defgh",
            "R_X86_64_64 with addend"
        );
        let strlen = l
            .get::<extern "C" fn(*const c_char) -> usize>("relocs_strlen")
            .unwrap();
        assert_eq!(strlen(c"hello".as_ptr()), 5, "libc's strlen, an ifunc");
        let via = l
            .get::<extern "C" fn(c_int, c_int) -> c_int>("relocs_via_fnptr")
            .unwrap();
        assert_eq!(via(6, 7), 13, "function pointer in data");
        let local = l
            .get::<extern "C" fn() -> c_int>("relocs_local_value_via_ptr")
            .unwrap();
        assert_eq!(local(), 1234, "RELATIVE");
    }
}

#[test]
fn dependency_chain_through_runpath_origin() {
    let l = open("libchain_a.so");
    // SAFETY: int chain_a(void).
    let f = unsafe { l.get::<extern "C" fn() -> c_int>("chain_a") }.unwrap();
    assert_eq!(f(), 321);
    let deps = l.dependencies();
    assert!(
        deps.iter().any(|d| d.ends_with("chain/libchain_b.so")),
        "{deps:?}"
    );
    // The old DT_RPATH works too.
    let r = open("librpath_a.so");
    // SAFETY: int rpath_a(void).
    let f = unsafe { r.get::<extern "C" fn() -> c_int>("rpath_a") }.unwrap();
    assert_eq!(f(), 321);
}

#[test]
fn symbol_versions_default_and_hidden() {
    let l = open("libversioned.so");
    // SAFETY: int vers_value(void) in both versions.
    unsafe {
        let default = l.get::<extern "C" fn() -> c_int>("vers_value").unwrap();
        assert_eq!(default(), 2, "unversioned lookup binds the default version");
        let v2 = l
            .get_versioned::<extern "C" fn() -> c_int>("vers_value", "VERS_2")
            .unwrap();
        assert_eq!(v2(), 2);
        let v1 = l
            .get_versioned::<extern "C" fn() -> c_int>("vers_value", "VERS_1")
            .unwrap();
        assert_eq!(v1(), 1, "the hidden version is reachable by name");
        let only = l.get::<extern "C" fn() -> c_int>("vers_only_v1").unwrap();
        assert_eq!(only(), 10);
        assert!(matches!(
            l.get_versioned::<extern "C" fn() -> c_int>("vers_value", "VERS_9"),
            Err(Error::UndefinedSymbol { .. })
        ));
    }
    // A user that requires VERS_2 (verneed) binds it.
    let u = open("libversioned_user.so");
    // SAFETY: int versioned_user_call(void).
    let f = unsafe { u.get::<extern "C" fn() -> c_int>("versioned_user_call") }.unwrap();
    assert_eq!(f(), 2);
}

#[test]
fn ifunc_symbols_and_irelative() {
    let l = open("libifunc.so");
    // SAFETY: signatures from test-libs/ifunc.c.
    unsafe {
        let calls = l
            .get::<extern "C" fn() -> c_int>("ifunc_resolver_calls")
            .unwrap();
        assert_eq!(calls(), 1, "IRELATIVE ran the resolver once at load");
        let internal = l
            .get::<extern "C" fn() -> c_int>("ifunc_call_internal")
            .unwrap();
        assert_eq!(internal(), 7);
        let pick = l.get::<extern "C" fn() -> c_int>("ifunc_pick").unwrap();
        assert_eq!(
            pick(),
            7,
            "an STT_GNU_IFUNC symbol resolves through its resolver"
        );
        assert_eq!(calls(), 2);
    }
}

#[test]
fn weak_undefined_references_are_null() {
    let l = open("libweak.so");
    // SAFETY: signatures from test-libs/weak.c.
    unsafe {
        assert_eq!(
            l.get::<extern "C" fn() -> c_int>("weak_fn_is_null")
                .unwrap()(),
            1
        );
        assert_eq!(
            l.get::<extern "C" fn() -> c_int>("weak_data_is_null")
                .unwrap()(),
            1
        );
        assert_eq!(
            l.get::<extern "C" fn() -> c_int>("weak_defined").unwrap()(),
            5
        );
    }
}

static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

extern "C" fn sink(event: *const c_char) {
    // SAFETY: the library passes NUL-terminated string literals.
    let e = unsafe { CStr::from_ptr(event) }
        .to_string_lossy()
        .into_owned();
    EVENTS.lock().unwrap().push(e);
}

#[test]
fn constructors_and_destructors_in_dependency_order() {
    let top = open("libctor_top.so");
    // SAFETY: void order_set_sink(void (*)(const char *)), from libctor_base.
    let set_sink =
        unsafe { top.get::<extern "C" fn(extern "C" fn(*const c_char))>("order_set_sink") }
            .unwrap();
    set_sink(sink);
    drop(top);
    let events = EVENTS.lock().unwrap().clone();
    assert_eq!(
        events,
        [
            "base:ctor",
            "mid:ctor101",
            "mid:ctor",
            "top:init",
            "top:ctor",
            "top:args-ok",
            "top:dtor",
            "top:atexit",
            "top:fini",
            "mid:dtor",
            "base:dtor"
        ],
        "the order glibc's dlopen/dlclose gives"
    );
}

#[test]
fn missing_dependency_names_it_and_every_path_tried() {
    let e = open_err(&Loader::new(), &lib("libmissing_dep.so"));
    let msg = e.to_string();
    match &e {
        Error::NotFound {
            name,
            needed_by,
            tried,
            ..
        } => {
            assert_eq!(name, "libminld_nonexistent.so");
            assert!(matches!(needed_by, Requester::Library(p) if p.ends_with("libmissing_dep.so")));
            assert!(
                tried
                    .iter()
                    .any(|p| p.starts_with("/usr/lib/x86_64-linux-gnu")),
                "{tried:?}"
            );
        }
        other => panic!("expected NotFound, got {other}"),
    }
    assert!(
        msg.contains("libminld_nonexistent.so") && msg.contains("libmissing_dep.so"),
        "{msg}"
    );
}

#[test]
fn missing_symbol_names_it_and_who_needs_it() {
    let e = open_err(&Loader::new(), &lib("libmissing_sym.so"));
    assert!(
        matches!(&e, Error::UndefinedSymbol { name, needed_by, .. } if name == "minld_no_such_function" && matches!(needed_by, Requester::Library(p) if p.ends_with("libmissing_sym.so"))),
        "{e}"
    );
    // Lazy binding loads it (the function is only reached through the PLT) ...
    // SAFETY: the library's code is ours.
    let l = unsafe { Loader::new().bind_now(false).open(lib("libmissing_sym.so")) }.unwrap();
    drop(l);
    // ... but not missing data.
    let e = open_err(&Loader::new().bind_now(false), &lib("libmissing_data.so"));
    assert!(e.to_string().contains("minld_no_such_data"), "{e}");
}

#[test]
fn text_relocations_are_refused_unless_allowed() {
    let e = open_err(&Loader::new(), &lib("libtextrel.so"));
    assert!(matches!(e, Error::TextRelocations { .. }), "{e}");
    // SAFETY: the library's code is ours.
    let l = unsafe {
        Loader::new()
            .allow_text_relocations(true)
            .open(lib("libtextrel.so"))
    }
    .unwrap();
    // SAFETY: void *textrel_ptr(void); int textrel_target.
    unsafe {
        let ptr = l
            .get::<extern "C" fn() -> *const c_int>("textrel_ptr")
            .unwrap();
        let target = l.get::<*const c_int>("textrel_target").unwrap();
        assert_eq!(ptr(), *target);
        assert_eq!(*ptr(), 99);
    }
}

#[test]
fn own_tls_is_per_thread() {
    let l = open("libtls.so");
    // SAFETY: int tls_bump(void); int tls_init_value(void).
    let (bump, init) = unsafe {
        (
            *l.get::<extern "C" fn() -> c_int>("tls_bump").unwrap(),
            *l.get::<extern "C" fn() -> c_int>("tls_init_value").unwrap(),
        )
    };
    assert_eq!(init(), 100);
    assert_eq!((bump(), bump(), bump()), (1, 2, 3));
    let others: Vec<(c_int, c_int, c_int)> = (0..4)
        .map(|_| std::thread::spawn(move || (bump(), bump(), init())))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert!(others.iter().all(|&o| o == (1, 2, 100)), "{others:?}");
    assert_eq!(bump(), 4, "the main thread's copy is its own");
}

#[test]
fn cxx_exceptions_unwind_through_loaded_code() {
    let l = open("libcxx_basic.so");
    // SAFETY: the extern "C" functions of test-libs/cxx_basic.cpp.
    unsafe {
        assert_eq!(
            l.get::<extern "C" fn() -> c_int>("cxx_basic_static_init")
                .unwrap()(),
            42
        );
        assert_eq!(
            l.get::<extern "C" fn(c_int) -> c_int>("cxx_basic_virtual")
                .unwrap()(5),
            15
        );
        assert_eq!(
            l.get::<extern "C" fn() -> c_int>("cxx_basic_throw_catch")
                .unwrap()(),
            7
        );
    }
}

#[test]
fn executable_stack_is_refused() {
    let e = open_err(&Loader::new(), &lib("libexecstack.so"));
    assert!(matches!(e, Error::ExecutableStack { .. }), "{e}");
}

#[test]
fn big_alignment_bss_and_holes() {
    let l = open("libbigalign.so");
    assert_eq!(l.base() % 0x200000, 0);
    // SAFETY: int f(void) each.
    unsafe {
        assert_eq!(
            l.get::<extern "C" fn() -> c_int>("bigalign_fn").unwrap()(),
            25
        );
        assert_eq!(
            l.get::<extern "C" fn() -> c_int>("bigalign_base_ok")
                .unwrap()(),
            1
        );
        assert_eq!(
            l.get::<extern "C" fn() -> c_int>("bigalign_bss_zero")
                .unwrap()(),
            1
        );
    }
    let b = open("libbss.so");
    // SAFETY: as above.
    unsafe {
        assert_eq!(
            b.get::<extern "C" fn() -> c_int>("bss_all_zero").unwrap()(),
            1
        );
        assert_eq!(**b.get::<*const c_int>("bss_data").unwrap(), 7);
    }
    let h = open("libhole.so");
    assert_eq!(
        // SAFETY: as above.
        unsafe { h.get::<extern "C" fn() -> c_int>("hole_fn") }.unwrap()(),
        42
    );
}

#[test]
fn same_file_is_reused_and_counted() {
    let a = open("libbasic.so");
    let b = open("libbasic.so");
    assert_eq!(a.base(), b.base(), "one mapping for one file");
    // SAFETY: int basic_bump(void).
    let bump = unsafe { a.get::<extern "C" fn() -> c_int>("basic_bump") }.unwrap();
    let first = bump();

    drop(a);
    // Still loaded through b: the counter kept its value.
    // SAFETY: as above.
    let bump = unsafe { b.get::<extern "C" fn() -> c_int>("basic_bump") }.unwrap();
    assert_eq!(bump(), first + 1);
}

#[test]
fn glibc_itself_is_the_hosts() {
    // SAFETY: opening glibc gives the host's copy; nothing new runs.
    let libc = unsafe { Library::open("libc.so.6") }.unwrap();
    // SAFETY: size_t strlen(const char *).
    let strlen = unsafe { libc.get::<extern "C" fn(*const c_char) -> usize>("strlen") }.unwrap();
    assert_eq!(strlen(c"four".as_ptr()), 4);
    assert_eq!(
        *strlen as usize,
        libc::strlen as *const () as usize,
        "the process's own strlen"
    );
    // SAFETY: as above.
    let pthread = unsafe { Library::open("libpthread.so.0") }.unwrap();
    assert_eq!(pthread.path(), libc.path(), "glibc's stubs are libc");
}

// ---- real system libraries, used for real ----

#[test]
fn libm_through_the_linker_script() {
    // SAFETY: the system's libm.
    let m = unsafe { Library::open("libm.so") }.unwrap();
    assert!(m.path().ends_with("libm.so.6"), "{:?}", m.path());
    // SAFETY: libm's signatures.
    unsafe {
        let cos = m.get::<extern "C" fn(f64) -> f64>("cos").unwrap();
        for x in [0.0, 0.5, 1.0, 2.0, 3.0, 100.0] {
            assert_eq!(cos(x), x.cos(), "cos({x})");
        }
        let pow = m.get::<extern "C" fn(f64, f64) -> f64>("pow").unwrap();
        assert_eq!(pow(2.0, 10.0), 1024.0);
        assert_eq!(pow(2.5, 3.0), 15.625);
        let lgamma = m.get::<extern "C" fn(f64) -> f64>("lgamma").unwrap();
        let signgam = m.get::<*const c_int>("signgam").unwrap();
        assert!((lgamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert_eq!(**signgam, 1);
        assert!((lgamma(-0.5) - (2.0 * std::f64::consts::PI.sqrt()).ln()).abs() < 1e-12);
        assert_eq!(**signgam, -1, "lgamma sets the loaded libm's own signgam");
        // errno is the host's (TPOFF64 against libc's TLS).
        *libc::__errno_location() = 0;
        let log = m.get::<extern "C" fn(f64) -> f64>("log").unwrap();
        assert!(log(-1.0).is_nan());
        assert_eq!(
            *libc::__errno_location(),
            libc::EDOM,
            "errno set through TPOFF64"
        );
        // exp exists as exp@GLIBC_2.2.5 (hidden) and exp@@GLIBC_2.29.
        let exp = m.get::<extern "C" fn(f64) -> f64>("exp").unwrap();
        let exp229 = m
            .get_versioned::<extern "C" fn(f64) -> f64>("exp", "GLIBC_2.29")
            .unwrap();
        assert_eq!(
            *exp as usize, *exp229 as usize,
            "the default version is bound"
        );
        assert_eq!(exp(1.0), std::f64::consts::E);
    }
    assert!(m.base() != 0);
}

#[test]
fn libz_compress_round_trip() {
    // SAFETY: the system's libz.
    let z = unsafe { Library::open("libz.so.1") }.unwrap();
    type Compress2 =
        extern "C" fn(*mut u8, *mut libc::c_ulong, *const u8, libc::c_ulong, c_int) -> c_int;
    type Uncompress = extern "C" fn(*mut u8, *mut libc::c_ulong, *const u8, libc::c_ulong) -> c_int;
    // SAFETY: zlib's documented signatures.
    let (compress2, uncompress) = unsafe {
        (
            z.get::<Compress2>("compress2").unwrap(),
            z.get::<Uncompress>("uncompress").unwrap(),
        )
    };
    let input: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let mut packed = vec![0u8; 20_000];
    let mut plen = packed.len() as libc::c_ulong;
    assert_eq!(
        compress2(
            packed.as_mut_ptr(),
            &mut plen,
            input.as_ptr(),
            input.len() as _,
            9
        ),
        0
    );
    assert!((plen as usize) < input.len() / 4, "compressed to {plen}");
    let mut out = vec![0u8; input.len()];
    let mut olen = out.len() as libc::c_ulong;
    assert_eq!(
        uncompress(out.as_mut_ptr(), &mut olen, packed.as_ptr(), plen),
        0
    );
    assert_eq!(&out[..olen as usize], &input[..]);
}

#[test]
fn libsqlite3_in_memory_database() {
    // SAFETY: the system's libsqlite3.
    let s = unsafe { Library::open("libsqlite3.so.0") }.unwrap();
    type Open = extern "C" fn(*const c_char, *mut *mut c_void) -> c_int;
    type Exec = extern "C" fn(
        *mut c_void,
        *const c_char,
        Option<extern "C" fn(*mut c_void, c_int, *mut *mut c_char, *mut *mut c_char) -> c_int>,
        *mut c_void,
        *mut *mut c_char,
    ) -> c_int;
    type Close = extern "C" fn(*mut c_void) -> c_int;
    extern "C" fn row(
        acc: *mut c_void,
        n: c_int,
        vals: *mut *mut c_char,
        _cols: *mut *mut c_char,
    ) -> c_int {
        // SAFETY: sqlite passes n column values; acc is our Vec<String>.
        unsafe {
            let acc = &mut *(acc as *mut Vec<String>);
            for i in 0..n as usize {
                acc.push(CStr::from_ptr(*vals.add(i)).to_string_lossy().into_owned());
            }
        }
        0
    }
    // SAFETY: SQLite's documented C API.
    unsafe {
        let open = s.get::<Open>("sqlite3_open").unwrap();
        let exec = s.get::<Exec>("sqlite3_exec").unwrap();
        let close = s.get::<Close>("sqlite3_close").unwrap();
        let mut db = std::ptr::null_mut();
        assert_eq!(open(c":memory:".as_ptr(), &mut db), 0);
        let mut err = std::ptr::null_mut();
        let sql = c"create table t(a integer, b text); insert into t values (1, 'one'), (2, 'two'), (3, 'three');";
        assert_eq!(
            exec(db, sql.as_ptr(), None, std::ptr::null_mut(), &mut err),
            0
        );
        let mut rows: Vec<String> = Vec::new();
        let q = c"select b, a * 10 from t where a >= 2 order by a";
        assert_eq!(
            exec(
                db,
                q.as_ptr(),
                Some(row),
                &mut rows as *mut _ as *mut c_void,
                &mut err
            ),
            0
        );
        assert_eq!(rows, ["two", "20", "three", "30"]);
        assert_eq!(close(db), 0);
    }
}

#[test]
fn libcrypto_sha256() {
    // SAFETY: the system's libcrypto.
    let c = unsafe { Library::open("libcrypto.so.3") }.unwrap();
    type Sha256 = extern "C" fn(*const u8, usize, *mut u8) -> *mut u8;
    // SAFETY: unsigned char *SHA256(const unsigned char *, size_t, unsigned char *).
    let sha = unsafe { c.get::<Sha256>("SHA256") }.unwrap();
    let mut md = [0u8; 32];
    sha(b"abc".as_ptr(), 3, md.as_mut_ptr());
    let hex: String = md.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn threads_open_look_up_and_drop_at_once() {
    let names = ["libz.so.1", "libm.so.6", "libsqlite3.so.0"];
    let handles: Vec<_> = (0..6)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..15 {
                    let name = names[(t + i) % names.len()];
                    // SAFETY: system libraries.
                    let l =
                        unsafe { Library::open(name) }.unwrap_or_else(|e| panic!("{name}: {e}"));
                    let sym = match name {
                        "libz.so.1" => "zlibVersion",
                        "libm.so.6" => "cos",
                        _ => "sqlite3_libversion",
                    };
                    // SAFETY: only the address is used.
                    let f = unsafe { l.get::<*const c_void>(sym) }.unwrap();
                    assert!(!f.is_null());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn reuse_host_false_maps_private_dependencies() {
    // libxml2 needs libm, which the process has; no other test here opens
    // libxml2 (a file minld already has is the same object, whatever the
    // options of a later open, as with glibc's dlopen).
    // SAFETY: the system's libxml2 and its dependencies.
    let s = unsafe { Loader::new().reuse_host(false).open("libxml2.so.2") }.unwrap();
    let deps = s.dependencies();
    assert!(deps.iter().any(|d| d.ends_with("libm.so.6")), "{deps:?}");
    assert!(
        deps.iter().any(|d| d.ends_with("libc.so.6")),
        "glibc stays the host's: {deps:?}"
    );
    // The private libm is one of minld's mappings, and libxml2 works.
    // SAFETY: const char *const xmlParserVersion.
    let version = unsafe { s.get::<*const *const c_char>("xmlParserVersion") }.unwrap();
    // SAFETY: a static NUL-terminated string.
    let v = unsafe { CStr::from_ptr(**version) }
        .to_str()
        .unwrap()
        .to_string();
    assert!(v.starts_with('2') && v.len() == 5, "{v}");
    // SAFETY: double sqrt(double), reached through libxml2's scope.
    let sqrt = unsafe { s.get::<extern "C" fn(f64) -> f64>("sqrt") }.unwrap();
    assert_eq!(sqrt(2.25), 1.5);
    // SAFETY: dlsym in the process's global scope.
    let host_sqrt = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"sqrt".as_ptr()) } as usize;
    assert_ne!(
        *sqrt as usize, host_sqrt,
        "sqrt comes from minld's own libm, not the host's"
    );
    let libm_maps = std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.ends_with("libm.so.6") && l.contains("r-xp"))
        .count();
    assert!(libm_maps >= 1);
}

#[test]
fn addr_info_names_the_library_and_nearest_symbol() {
    let l = open("libbasic.so");
    // SAFETY: int basic_add(int, int); int basic_counter.
    let (add, counter) = unsafe {
        (
            *l.get::<extern "C" fn(c_int, c_int) -> c_int>("basic_add")
                .unwrap() as usize,
            *l.get::<*mut c_int>("basic_counter").unwrap() as usize,
        )
    };
    let info = minld::addr_info(add + 3).expect("inside libbasic.so");
    assert!(info.path.ends_with("libbasic.so"), "{info:?}");
    assert_eq!(info.base, l.base());
    assert_eq!(info.symbol.as_deref(), Some("basic_add"));
    assert_eq!((info.symbol_addr, info.offset), (add, 3));
    let data = minld::addr_info(counter).unwrap();
    assert_eq!(data.symbol.as_deref(), Some("basic_counter"));
    assert_eq!(data.offset, 0);
    // Not one of minld's: the test binary's own code.
    assert_eq!(minld::addr_info(open as fn(&str) -> Library as usize), None);
}

#[test]
fn find_is_get_without_an_error() {
    let l = open("libbasic.so");
    // SAFETY: int basic_add(int, int); only addresses compared otherwise.
    unsafe {
        let add = l
            .find::<extern "C" fn(c_int, c_int) -> c_int>("basic_add")
            .unwrap();
        assert_eq!(add(2, 3), 5);
        assert_eq!(
            *add as usize,
            *l.get::<extern "C" fn(c_int, c_int) -> c_int>("basic_add")
                .unwrap() as usize
        );
        assert!(l.find::<*const c_void>("no_such_symbol").is_none());
    }
}

#[test]
fn get_on_a_linked_library_runs_no_ifunc_resolver() {
    let l = Loader::new().link(lib("libifunc.so")).unwrap();
    // SAFETY: only the result is used.
    let e = match unsafe { l.get::<*const c_void>("ifunc_pick") } {
        Ok(_) => panic!("an ifunc resolved in a library linked without running code"),
        Err(e) => e,
    };
    assert!(e.to_string().contains("Loader::link"), "{e}");
}

/// The ifunc resolver of a dependency minld loads is that dependency's
/// code: `Loader::link` never runs it, `Loader::prepare` runs it (and the
/// constructors) only at `Prepared::run`.
#[test]
fn a_dependencys_ifunc_runs_only_with_its_code() {
    let marks = |l: &Library| {
        // SAFETY: two ints of test-libs/ifunc_provider.c; reading data runs
        // no code.
        unsafe {
            let r = *l.get::<*const c_int>("resolver_ran").unwrap();
            let c = *l.get::<*const c_int>("ctor_ran").unwrap();
            (*r, *c)
        }
    };
    let linked = Loader::new().link(lib("libifunc_consumer.so")).unwrap();
    assert_eq!(marks(&linked), (0, 0));
    drop(linked);

    // Dropped without running: everything unmapped (no other test maps
    // these files).
    let maps = || std::fs::read_to_string("/proc/self/maps").unwrap();
    let n = |m: String| m.matches("libifunc_").count();
    let before = n(maps());
    let p = Loader::new().prepare(lib("libifunc_consumer.so")).unwrap();
    assert!(n(maps()) > before);
    drop(p);
    assert_eq!(n(maps()), before);

    let prepared = Loader::new().prepare(lib("libifunc_consumer.so")).unwrap();
    assert!(prepared
        .path()
        .is_some_and(|p| p.ends_with("libifunc_consumer.so")));
    // SAFETY: our test-lib; its resolver and constructor are harmless.
    let l = unsafe { prepared.run() }.unwrap();
    let (resolved, ctors) = marks(&l);
    assert!(resolved >= 1, "resolver ran {resolved} times");
    assert_eq!(ctors, 1);
    // SAFETY: int consume(int).
    let consume = unsafe { *l.get::<extern "C" fn(c_int) -> c_int>("consume").unwrap() };
    assert_eq!(consume(20), 42);
}
