//! Level 2 of plugin hygiene: a namespace per plugin, with imports denied
//! by default, host functions exported by name, dependencies only from
//! permitted directories, and an ABI version check.

use std::ffi::{c_char, c_int, CStr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use minld::{Error, Namespace, Policy};

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

extern "C" fn host_log(msg: *const c_char) {
    // SAFETY: the plugin passes a NUL-terminated string.
    let s = unsafe { CStr::from_ptr(msg) }
        .to_string_lossy()
        .into_owned();
    LOG.lock().unwrap().push(s);
}

fn plugins() -> PathBuf {
    Path::new(env!("MINLD_TEST_LIBS")).join("plugins")
}

fn namespace() -> Namespace {
    Namespace::builder()
        .permit_dir(plugins())
        .allow_import("malloc")
        .allow_import("free")
        .allow_import_versioned("snprintf", "GLIBC_2.2.5")
        .export(
            "host_log",
            host_log as extern "C" fn(*const c_char) as usize,
        )
        .policy(Policy::strict().permit_dir(plugins()))
        .abi_version("plugin_abi_version", 1)
        .build()
}

#[test]
fn a_plugin_that_behaves_calls_the_host_it_was_given() {
    let ns = namespace();
    // SAFETY: test-libs/plugin_good.c.
    let p = unsafe { ns.open("libplugin_good.so") }.unwrap_or_else(|e| panic!("{e}"));
    // SAFETY: int plugin_run(int).
    let run = unsafe {
        *p.get::<extern "C" fn(c_int) -> c_int>("plugin_run")
            .unwrap()
    };
    assert_eq!(run(21), 42);
    assert!(
        LOG.lock().unwrap().contains(&"plugin_run(21)".to_string()),
        "host_log was called through the export"
    );
}

#[test]
fn every_disallowed_import_is_listed() {
    // SAFETY: refused before any of its code runs.
    let e = match unsafe { namespace().open("libplugin_forbidden.so") } {
        Ok(_) => panic!("a plugin importing fopen, getenv and system loaded"),
        Err(e) => e,
    };
    match &e {
        Error::DisallowedImports { path, imports } => {
            assert!(path.ends_with("libplugin_forbidden.so"));
            let names: Vec<&str> = imports
                .iter()
                .map(|i| i.split('@').next().unwrap())
                .collect();
            for want in ["fopen", "getenv", "system", "fclose"] {
                assert!(names.contains(&want), "{want} not in {imports:?}");
            }
            assert!(
                imports.iter().all(|i| i.contains("(from libc.so.6)")),
                "{imports:?}"
            );
        }
        other => panic!("expected DisallowedImports, got {other:?}"),
    }
    assert!(e.to_string().contains("system@GLIBC_2.2.5"), "{e}");
}

#[test]
fn the_abi_version_is_checked() {
    // SAFETY: test-libs/plugin_abi2.c.
    let e = match unsafe { namespace().open("libplugin_abi2.so") } {
        Ok(_) => panic!("ABI 2 accepted by a namespace that wants 1"),
        Err(e) => e,
    };
    assert!(
        matches!(
            &e,
            Error::Abi {
                expected: 1,
                found: Some(2),
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn two_namespaces_get_two_copies() {
    let (a, b) = (namespace(), namespace());
    // SAFETY: test-libs/plugin_good.c.
    let (pa, pb) = unsafe {
        (
            a.open("libplugin_good.so").unwrap(),
            b.open("libplugin_good.so").unwrap(),
        )
    };
    assert_ne!(pa.base(), pb.base(), "one copy per namespace");
    // SAFETY: int plugin_run(int), int plugin_calls(void).
    unsafe {
        let run = *pa
            .get::<extern "C" fn(c_int) -> c_int>("plugin_run")
            .unwrap();
        run(1);
        run(2);
        let calls_a = *pa.get::<extern "C" fn() -> c_int>("plugin_calls").unwrap();
        let calls_b = *pb.get::<extern "C" fn() -> c_int>("plugin_calls").unwrap();
        assert_eq!(
            (calls_a(), calls_b()),
            (2, 0),
            "each copy has its own state"
        );
    }
    // The same namespace reuses its copy.
    // SAFETY: as above.
    let again = unsafe { a.open("libplugin_good.so") }.unwrap();
    assert_eq!(again.base(), pa.base());
}

#[test]
fn only_permitted_directories_are_searched() {
    // libchain_a needs chain/libchain_b through RUNPATH $ORIGIN/chain: with
    // only test-libs/ itself permitted (not chain/), it is not found.
    let libs = PathBuf::from(env!("MINLD_TEST_LIBS"));
    let ns = Namespace::builder().permit_dir(&libs).build();
    // SAFETY: test-libs/chain_a.c.
    let l = unsafe { ns.open("libchain_a.so") };
    assert!(
        l.is_ok(),
        "RUNPATH inside a permitted directory is followed: {:?}",
        l.err()
    );
    let ns = Namespace::builder().permit_dir(libs.join("chain")).build();
    // SAFETY: as above; refused before anything runs.
    let e = match unsafe { ns.open(libs.join("libchain_a.so")) } {
        Ok(_) => panic!("a path outside the permitted directories loaded"),
        Err(e) => e,
    };
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    // Not even libz from the system directories.
    // SAFETY: refused before anything runs.
    let e = match unsafe {
        Namespace::builder()
            .permit_dir(&libs)
            .build()
            .open("libz.so.1")
    } {
        Ok(_) => panic!("libz found outside the permitted directories"),
        Err(e) => e,
    };
    assert!(
        e.to_string().contains("only its permitted directories"),
        "{e}"
    );
}

#[test]
fn a_version_allowed_is_the_only_one_bound() {
    let ns = Namespace::builder()
        .permit_dir(plugins())
        .allow_import("malloc")
        .allow_import("free")
        .allow_import_versioned("snprintf", "GLIBC_9.9")
        .export(
            "host_log",
            host_log as extern "C" fn(*const c_char) as usize,
        )
        .build();
    // SAFETY: refused before any of its code runs.
    let e = match unsafe { ns.open("libplugin_good.so") } {
        Ok(_) => panic!("snprintf@GLIBC_2.2.5 bound where only GLIBC_9.9 is allowed"),
        Err(e) => e,
    };
    assert!(e.to_string().contains("snprintf@GLIBC_2.2.5"), "{e}");
}

#[test]
fn more_namespaces_than_glibc_allows() {
    // glibc's dlmopen stops at 16 namespaces; these are not limited.
    let copies: Vec<_> = (0..40)
        .map(|_| {
            let ns = namespace();
            // SAFETY: test-libs/plugin_good.c.
            let p = unsafe { ns.open("libplugin_good.so") }.unwrap_or_else(|e| panic!("{e}"));
            (ns, p)
        })
        .collect();
    let mut bases: Vec<usize> = copies.iter().map(|(_, p)| p.base()).collect();
    bases.sort_unstable();
    bases.dedup();
    assert_eq!(bases.len(), 40, "one copy per namespace");
}

#[test]
fn a_refused_plugin_runs_nothing_not_even_an_ifunc_resolver() {
    std::env::remove_var("MINLD_EVIL_RAN");
    // SAFETY: refused before relocation, so before any of its code runs.
    let e = match unsafe { namespace().open("libplugin_evil_ifunc.so") } {
        Ok(_) => panic!("a plugin importing system loaded"),
        Err(e) => e,
    };
    assert!(e.to_string().contains("system@GLIBC_2.2.5"), "{e}");
    assert_eq!(
        std::env::var_os("MINLD_EVIL_RAN"),
        None,
        "the plugin's ifunc resolver ran although the plugin was refused"
    );
}

#[test]
fn a_runpath_cannot_climb_out_of_the_permitted_directories() {
    // chain_a's RUNPATH $ORIGIN/chain, reached as plugins/../chain: the
    // real path is outside plugins/, so nothing there is found.
    let ns = Namespace::builder().permit_dir(plugins()).build();
    let sneaky = plugins().join("..").join("libchain_a.so");
    // SAFETY: refused before anything runs.
    let e = match unsafe { ns.open(&sneaky) } {
        Ok(_) => panic!("{} loaded from outside plugins/", sneaky.display()),
        Err(e) => e,
    };
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
}

#[test]
fn a_soname_of_glibc_s_libm_does_not_exempt_a_plugin_from_the_rules() {
    // libplugin_fake_libm imports system and calls itself libm.so.6: glibc's
    // exemption goes by the file found beside the host's libc, not by the
    // name a file gives itself.
    // SAFETY: refused before any of its code runs.
    let e = match unsafe { namespace().open("libplugin_fake_libm.so") } {
        Ok(_) => panic!("a plugin importing system loaded under DT_SONAME libm.so.6"),
        Err(e) => e,
    };
    match &e {
        Error::DisallowedImports { path, imports } => {
            assert!(path.ends_with("libplugin_fake_libm.so"), "{e}");
            assert!(
                imports.iter().any(|i| i.starts_with("system@")),
                "{imports:?}"
            );
        }
        other => panic!("expected DisallowedImports, got {other:?}"),
    }
}

/// The address `plugin_unique_addr` of test-libs/plugin_unique.c returns.
fn unique_addr(l: &minld::Library) -> usize {
    // SAFETY: int *plugin_unique_addr(void).
    let f = unsafe { l.get::<extern "C" fn() -> *const c_int>("plugin_unique_addr") }.unwrap();
    f() as usize
}

/// Whether `addr` lies in one of `l`'s own segments.
fn in_image(l: &minld::Library, addr: usize) -> bool {
    l.segments()
        .iter()
        .any(|s| addr >= s.addr && addr < s.addr + s.mem_size as usize)
}

#[test]
fn a_unique_symbol_is_one_per_namespace() {
    let ns = || Namespace::builder().permit_dir(plugins()).build();
    let (a, b) = (ns(), ns());
    // SAFETY: test-libs/plugin_unique.c, no constructors.
    let (a1, a2, b1) = unsafe {
        (
            a.open("libplugin_unique_a.so").unwrap(),
            a.open("libplugin_unique_b.so").unwrap(),
            b.open("libplugin_unique_a.so").unwrap(),
        )
    };
    // Within a namespace: one definition, the first one loaded.
    assert_eq!(unique_addr(&a1), unique_addr(&a2));
    assert!(in_image(&a1, unique_addr(&a1)));
    // Another namespace binds its own copy, not namespace A's.
    assert_ne!(unique_addr(&b1), unique_addr(&a1));
    assert!(
        in_image(&b1, unique_addr(&b1)),
        "B bound outside its own copy"
    );
    // The default namespace keeps its own.
    // SAFETY: as above.
    let d = unsafe { minld::Loader::new().open(plugins().join("libplugin_unique_b.so")) }.unwrap();
    assert!(
        in_image(&d, unique_addr(&d)),
        "the default namespace bound a namespace's copy"
    );
}

/// Set by a host atexit handler, which no plugin may run.
static HOST_HANDLER_RAN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn host_handler() {
    HOST_HANDLER_RAN.store(true, std::sync::atomic::Ordering::SeqCst);
}

extern "C" {
    /// The program's own dso handle (crtbegin's), which its atexit uses.
    static __dso_handle: u8;
}

#[test]
fn a_plugin_finalizes_only_its_own_namespace_s_handlers() {
    type Finalize = extern "C" fn(*const u8);
    type Handle = extern "C" fn() -> *const u8;
    let own = "plugin_finalize: own handler".to_string();
    let ran = || LOG.lock().unwrap().iter().filter(|l| **l == own).count();
    // SAFETY: glibc's atexit with a function that only sets a flag.
    assert_eq!(unsafe { libc::atexit(host_handler) }, 0);
    let ns = || {
        Namespace::builder()
            .permit_dir(plugins())
            .allow_import("__cxa_atexit")
            .export(
                "host_log",
                host_log as extern "C" fn(*const c_char) as usize,
            )
            .build()
    };
    let (a, b) = (ns(), ns());
    // SAFETY: test-libs/plugin_finalize.c; its constructor registers a
    // handler of its own.
    let (pa, pb) = unsafe {
        (
            a.open("libplugin_finalize.so")
                .unwrap_or_else(|e| panic!("{e}")),
            b.open("libplugin_finalize.so")
                .unwrap_or_else(|e| panic!("{e}")),
        )
    };
    // SAFETY: void plugin_finalize(void *), void *plugin_dso_handle(void).
    let (finalize, b_handle) = unsafe {
        (
            pa.get::<Finalize>("plugin_finalize").unwrap(),
            pb.get::<Handle>("plugin_dso_handle").unwrap(),
        )
    };
    // The program's handle (only its address is taken).
    finalize(std::ptr::addr_of!(__dso_handle));
    finalize(std::ptr::null());
    assert!(
        !HOST_HANDLER_RAN.load(std::sync::atomic::Ordering::SeqCst),
        "__cxa_finalize from a plugin ran the host's atexit handler"
    );
    finalize(b_handle());
    assert_eq!(ran(), 0, "a plugin's handler ran before its unload");
    drop(pb);
    assert_eq!(
        ran(),
        1,
        "the plugin's own atexit handler did not run at unload"
    );
    drop(pa);
    assert_eq!(
        ran(),
        2,
        "the plugin's own atexit handler did not run at unload"
    );
}

#[test]
fn a_soname_of_libm_does_not_stand_in_for_glibc_s_libm() {
    // The impostor (DT_SONAME libm.so.6, cos() == 42) is loaded first; the
    // next plugin's DT_NEEDED libm.so.6 is still glibc's libm (the host's,
    // or the file beside the host's libc).
    let ns = Namespace::builder()
        .permit_dir(plugins())
        .allow_import("cos")
        .build();
    // SAFETY: test-libs/plugin_libm_impostor.c and plugin_uses_libm.c, no
    // constructors.
    let (_impostor, user) = unsafe {
        (
            ns.open("libplugin_libm_impostor.so")
                .unwrap_or_else(|e| panic!("{e}")),
            ns.open("libplugin_uses_libm.so")
                .unwrap_or_else(|e| panic!("{e}")),
        )
    };
    // SAFETY: double plugin_cos(double).
    let plugin_cos = unsafe { user.get::<extern "C" fn(f64) -> f64>("plugin_cos") }.unwrap();
    assert_eq!(plugin_cos(0.0), 1.0, "cos bound to the impostor");
    assert!(
        !user
            .dependencies()
            .iter()
            .any(|d| d.ends_with("libplugin_libm_impostor.so")),
        "{:?}",
        user.dependencies()
    );
}

#[test]
fn a_soname_of_libc_does_not_hide_the_host_s_libc() {
    // liblibc_impostor calls itself libc.so.6 and defines getpid; its own
    // call to getpid still binds the host's libc (first in the default
    // namespace's scope), as it would with glibc's dlopen.
    let path = Path::new(env!("MINLD_TEST_LIBS")).join("liblibc_impostor.so");
    // SAFETY: test-libs/libc_impostor.c, no constructors.
    let l = unsafe { minld::Loader::new().open(&path) }.unwrap_or_else(|e| panic!("{e}"));
    // SAFETY: int impostor_pid(void).
    let pid = unsafe { l.get::<extern "C" fn() -> c_int>("impostor_pid") }.unwrap();
    assert_eq!(pid(), std::process::id() as c_int);
}
