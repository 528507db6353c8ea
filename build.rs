//! Build script for minld.
//!
//! Compiles the small C/C++ test libraries in `test-libs/` into
//! `$OUT_DIR/test-libs/` with the system C compiler, and exports that
//! directory to the crate as `MINLD_TEST_LIBS` (use `env!("MINLD_TEST_LIBS")`
//! in tests). `test-libs/README.md` says what each artifact proves.
//!
//! The libraries are only built when minld is compiled from its own checkout:
//! `test-libs/` must exist beside Cargo.toml and the package must not live
//! under `$CARGO_HOME` (registry or git dependency). `MINLD_TEST_LIBS` is
//! emitted in every case, so `env!` always compiles.
//!
//! A missing compiler is only a warning (the tests that need the libraries
//! will fail or skip); a compile error in a test library fails the build.

use std::env;
use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What kind of file an artifact is, and which compiler driver builds it.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// A shared object compiled and linked with `$CC` (`-shared`).
    CShared,
    /// A shared object compiled and linked with `$CXX` (`-shared`).
    CxxShared,
    /// An executable compiled and linked with `$CC`.
    CExe,
}

/// Where an artifact is written.
#[derive(Clone, Copy)]
enum Dir {
    /// `$OUT_DIR/test-libs/`
    Top,
    /// `$OUT_DIR/test-libs/<name>/`
    Sub(&'static str),
    /// `$OUT_DIR/scratch/`: link-time helpers that must NOT be found when the
    /// test libraries are loaded.
    Scratch,
}

/// One output of this build script.
struct Artifact {
    /// Output file name, e.g. `libbasic.so`.
    name: &'static str,
    kind: Kind,
    /// Source files, relative to `test-libs/`.
    sources: &'static [&'static str],
    dir: Dir,
    /// DT_SONAME; `None` means "same as `name`" (ignored for executables).
    soname: Option<&'static str>,
    /// Version script (relative to `test-libs/`), if any.
    version_script: Option<&'static str>,
    /// Extra compiler/linker flags, passed after the sources. No shell is
    /// involved, so `$ORIGIN` is written literally.
    flags: &'static [&'static str],
    /// Other artifacts (by `name`) to link against with `-L<dir> -l<stem>`;
    /// they must appear earlier in `ARTIFACTS`.
    deps: &'static [&'static str],
}

/// Defaults for the table below (`..LIB`).
const LIB: Artifact = Artifact {
    name: "",
    kind: Kind::CShared,
    sources: &[],
    dir: Dir::Top,
    soname: None,
    version_script: None,
    flags: &[],
    deps: &[],
};

/// Flags used for every artifact.
const COMMON_FLAGS: &[&str] = &["-O1", "-g", "-fPIC", "-Wall", "-Werror"];

/// RUNPATH pointing at the directory of the library itself.
const RUNPATH_ORIGIN: &str = "-Wl,--enable-new-dtags,-rpath,$ORIGIN";

/// Every artifact, dependencies first.
const ARTIFACTS: &[Artifact] = &[
    // glibc dlopen() driver, to strace the system loader for comparison.
    Artifact {
        name: "probe_dlopen",
        kind: Kind::CExe,
        sources: &["probe_dlopen.c"],
        flags: &["-ldl"],
        ..LIB
    },
    // Exported data/functions, RELATIVE and absolute relocations to itself.
    Artifact {
        name: "libbasic.so",
        sources: &["basic.c"],
        ..LIB
    },
    // 64+addend, GLOB_DAT, JUMP_SLOT, RELATIVE, fn pointers, libc IFUNCs.
    Artifact {
        name: "librelocs.so",
        sources: &["relocs.c"],
        flags: &[RUNPATH_ORIGIN],
        deps: &["libbasic.so"],
        ..LIB
    },
    // chain_a -> chain/chain_b -> chain/chain_c through RUNPATH $ORIGIN[/chain].
    Artifact {
        name: "libchain_c.so",
        sources: &["chain_c.c"],
        dir: Dir::Sub("chain"),
        ..LIB
    },
    Artifact {
        name: "libchain_b.so",
        sources: &["chain_b.c"],
        dir: Dir::Sub("chain"),
        flags: &[RUNPATH_ORIGIN],
        deps: &["libchain_c.so"],
        ..LIB
    },
    Artifact {
        name: "libchain_a.so",
        sources: &["chain_a.c"],
        flags: &["-Wl,--enable-new-dtags,-rpath,$ORIGIN/chain"],
        deps: &["libchain_b.so"],
        ..LIB
    },
    // Same as chain_a, but with the old DT_RPATH.
    Artifact {
        name: "librpath_a.so",
        sources: &["rpath_a.c"],
        flags: &["-Wl,--disable-new-dtags,-rpath,$ORIGIN/chain"],
        deps: &["libchain_b.so"],
        ..LIB
    },
    // A TLSDESC call preserves every register (assembly).
    Artifact {
        name: "libtlsdesc_regs.so",
        sources: &["tlsdesc_regs.S"],
        ..LIB
    },
    // A pthread key destructor that reads the library's TLS at thread exit.
    Artifact {
        name: "libtls_key_dtor.so",
        sources: &["tls_key_dtor.c"],
        flags: &["-pthread"],
        ..LIB
    },
    // Lazy binding: calls through PLT entries bound at their first call
    // (no -z now), with arguments in integer and vector registers.
    Artifact {
        name: "liblazy_callee.so",
        sources: &["lazy_callee.c"],
        ..LIB
    },
    Artifact {
        name: "liblazy_caller.so",
        sources: &["lazy_caller.c"],
        flags: &[RUNPATH_ORIGIN, "-Wl,-z,lazy"],
        deps: &["liblazy_callee.so"],
        ..LIB
    },
    // Plugins for namespaces (BIND_NOW and RELRO: a strict policy passes).
    Artifact {
        name: "libplugin_good.so",
        sources: &["plugin_good.c"],
        dir: Dir::Sub("plugins"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    Artifact {
        name: "libplugin_forbidden.so",
        sources: &["plugin_forbidden.c"],
        dir: Dir::Sub("plugins"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    // DT_SONAME libm.so.6 on a plugin importing system: glibc's exemption
    // from a namespace's import rules goes by the file, not by this name.
    Artifact {
        name: "libplugin_fake_libm.so",
        sources: &["plugin_fake_libm.c"],
        dir: Dir::Sub("plugins"),
        soname: Some("libm.so.6"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    // DT_SONAME libm.so.6 on a plugin defining cos, and a plugin needing
    // libm: in a namespace the impostor never stands in for glibc's libm.
    Artifact {
        name: "libplugin_libm_impostor.so",
        sources: &["plugin_libm_impostor.c"],
        dir: Dir::Sub("plugins"),
        soname: Some("libm.so.6"),
        flags: &["-fno-builtin", "-Wl,-z,now,-z,relro"],
        ..LIB
    },
    Artifact {
        name: "libplugin_uses_libm.so",
        sources: &["plugin_uses_libm.c"],
        dir: Dir::Sub("plugins"),
        flags: &["-fno-builtin", "-Wl,-z,now,-z,relro", "-lm"],
        ..LIB
    },
    // DT_SONAME libc.so.6 on a library of the default namespace: the
    // host's libc stays in its scope.
    Artifact {
        name: "liblibc_impostor.so",
        sources: &["libc_impostor.c"],
        soname: Some("libc.so.6"),
        ..LIB
    },
    Artifact {
        name: "libplugin_abi2.so",
        sources: &["plugin_abi2.c"],
        dir: Dir::Sub("plugins"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    // The policy checks the file the load maps: two files swapped at one
    // path while loading (tests/policy.rs).
    Artifact {
        name: "librace_good.so",
        sources: &["race.c"],
        dir: Dir::Sub("race"),
        flags: &["-DRACE_WHICH=1", "-Wl,-z,now,-z,relro"],
        ..LIB
    },
    Artifact {
        name: "librace_bad.so",
        sources: &["race.c"],
        dir: Dir::Sub("race"),
        flags: &["-DRACE_WHICH=2", "-Wl,-z,lazy,-z,relro"],
        ..LIB
    },
    Artifact {
        name: "librace_root.so",
        sources: &["race_root.c"],
        dir: Dir::Sub("race"),
        flags: &[RUNPATH_ORIGIN, "-Wl,-z,now,-z,relro"],
        deps: &["librace_good.so"],
        ..LIB
    },
    // An STB_GNU_UNIQUE definition, in two libraries: one per namespace.
    Artifact {
        name: "libplugin_unique_a.so",
        sources: &["plugin_unique.c"],
        dir: Dir::Sub("plugins"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    Artifact {
        name: "libplugin_unique_b.so",
        sources: &["plugin_unique.c"],
        dir: Dir::Sub("plugins"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    // __cxa_finalize(NULL) from a plugin: the host's atexit handlers must
    // not run.
    Artifact {
        name: "libplugin_finalize.so",
        sources: &["plugin_finalize.c"],
        dir: Dir::Sub("plugins"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    // Plugins for the sandbox (process isolation): test-libs/sandbox/.
    Artifact {
        name: "libecho.so",
        sources: &["sandbox/echo.c"],
        dir: Dir::Sub("sandbox"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    Artifact {
        name: "libsegv.so",
        sources: &["sandbox/segv.c"],
        dir: Dir::Sub("sandbox"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    Artifact {
        name: "libpasswd.so",
        sources: &["sandbox/passwd.c"],
        dir: Dir::Sub("sandbox"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    Artifact {
        name: "libloop.so",
        sources: &["sandbox/loop.c"],
        dir: Dir::Sub("sandbox"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    Artifact {
        name: "libctor.so",
        sources: &["sandbox/ctor.c"],
        dir: Dir::Sub("sandbox"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    Artifact {
        name: "libnetctor.so",
        sources: &["sandbox/netctor.c"],
        dir: Dir::Sub("sandbox"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    Artifact {
        name: "libabi.so",
        sources: &["sandbox/abi.c"],
        dir: Dir::Sub("sandbox"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    // An ordinary plugin: granted files, threads, printing, a shared buffer.
    Artifact {
        name: "libreal.so",
        sources: &["sandbox/real.c"],
        dir: Dir::Sub("sandbox"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    Artifact {
        name: "libdeps.so",
        sources: &["sandbox/deps.c"],
        dir: Dir::Sub("sandbox"),
        flags: &["-Wl,-z,now,-z,relro", "-l:libz.so.1", "-l:libsqlite3.so.0"],
        ..LIB
    },
    // Attacks on the sandbox (issue 11, tests/sandbox_attacks.rs): one plugin
    // per hole, sharing sandbox/attack.h.
    Artifact {
        name: "libatk_unfilter.so",
        sources: &["sandbox/atk_unfilter.c"],
        dir: Dir::Sub("sandbox"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    Artifact {
        name: "libatk_ready.so",
        sources: &["sandbox/atk_ready.c"],
        dir: Dir::Sub("sandbox"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    Artifact {
        name: "libatk_ctor_read.so",
        sources: &["sandbox/atk_ctor_read.c"],
        dir: Dir::Sub("sandbox"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    Artifact {
        name: "libatk_fd2.so",
        sources: &["sandbox/atk_fd2.c"],
        dir: Dir::Sub("sandbox"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    Artifact {
        name: "libatk_early.so",
        sources: &["sandbox/atk_early.c"],
        dir: Dir::Sub("sandbox"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    Artifact {
        name: "libatk_flood.so",
        sources: &["sandbox/atk_flood.c"],
        dir: Dir::Sub("sandbox"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    Artifact {
        name: "libatk_leftover.so",
        sources: &["sandbox/atk_leftover.c"],
        dir: Dir::Sub("sandbox"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    Artifact {
        name: "libatk_forge.so",
        sources: &["sandbox/atk_forge.c"],
        dir: Dir::Sub("sandbox"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    Artifact {
        name: "libatk_ctor_hang.so",
        sources: &["sandbox/atk_ctor_hang.c"],
        dir: Dir::Sub("sandbox"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    // Code at load before the lock-down, instances of one zygote talking,
    // CPU burnt at the start (tests/sandbox_attacks.rs, second round).
    Artifact {
        name: "libatk_hooks.so",
        sources: &["sandbox/atk_hooks.c"],
        dir: Dir::Sub("sandbox"),
        flags: &["-Wl,-z,now,-z,relro", "-Wl,-init=atk_dt_init"],
        ..LIB
    },
    Artifact {
        name: "libatk_zygote.so",
        sources: &["sandbox/atk_zygote.c"],
        dir: Dir::Sub("sandbox"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    Artifact {
        name: "libatk_burn.so",
        sources: &["sandbox/atk_burn.c"],
        dir: Dir::Sub("sandbox"),
        flags: &["-Wl,-z,now,-z,relro", "-pthread"],
        ..LIB
    },
    Artifact {
        name: "libatk_escape.so",
        sources: &["sandbox/atk_escape.c"],
        dir: Dir::Sub("sandbox"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    Artifact {
        name: "libheavyinit.so",
        sources: &["sandbox/heavyinit.c"],
        dir: Dir::Sub("sandbox"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    Artifact {
        name: "libeveryday.so",
        sources: &["sandbox/everyday.c"],
        dir: Dir::Sub("sandbox"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    Artifact {
        name: "libsysfiles.so",
        sources: &["sandbox/sysfiles.c"],
        dir: Dir::Sub("sandbox"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    // A DT_NEEDED with ANSI escapes in it: the stub (soname "lib<ESC>[31m
    // <ESC>[2Jred.so") exists only in $OUT_DIR/scratch, at link time.
    Artifact {
        name: "libatk_ansi_stub.so",
        sources: &["sandbox/atk_ansi_stub.c"],
        dir: Dir::Scratch,
        soname: Some("lib\x1b[31m\x1b[2Jred.so"),
        ..LIB
    },
    Artifact {
        name: "libatk_ansi.so",
        sources: &["sandbox/atk_ansi.c"],
        dir: Dir::Sub("sandbox"),
        flags: &["-Wl,-z,now,-z,relro"],
        deps: &["libatk_ansi_stub.so"],
        ..LIB
    },
    Artifact {
        name: "libplugin_evil_ifunc.so",
        sources: &["plugin_evil_ifunc.c"],
        dir: Dir::Sub("plugins"),
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    Artifact {
        name: "liblazy_fini_self.so",
        sources: &["lazy_fini_self.c"],
        flags: &["-Wl,-z,lazy"],
        ..LIB
    },
    // Faults: a chain whose third library has an undefined symbol
    // (fault_a -> fault/fault_b -> fault/fault_c, fault_b also on libbasic).
    Artifact {
        name: "libfault_c.so",
        sources: &["fault_c.c"],
        dir: Dir::Sub("fault"),
        ..LIB
    },
    Artifact {
        name: "libfault_b.so",
        sources: &["fault_b.c"],
        dir: Dir::Sub("fault"),
        flags: &["-Wl,--enable-new-dtags,-rpath,$ORIGIN:$ORIGIN/.."],
        deps: &["libfault_c.so", "libbasic.so"],
        ..LIB
    },
    Artifact {
        name: "libfault_a.so",
        sources: &["fault_a.c"],
        flags: &["-Wl,--enable-new-dtags,-rpath,$ORIGIN/fault:$ORIGIN"],
        deps: &["libfault_b.so"],
        ..LIB
    },
    // An init array entry outside the code, beside real constructors.
    Artifact {
        name: "libbad_init_dep.so",
        sources: &["bad_init_dep.c"],
        ..LIB
    },
    Artifact {
        name: "libbad_init.so",
        sources: &["bad_init.c"],
        flags: &[RUNPATH_ORIGIN],
        deps: &["libbad_init_dep.so"],
        ..LIB
    },
    // One symbol resolution (tests/resolution.rs): a unique, a versioned,
    // a protected and an interposed symbol, each referenced by a GLOB_DAT
    // and by a lazily bound PLT call.
    Artifact {
        name: "libres_unique_a.so",
        sources: &["res_unique.c"],
        dir: Dir::Sub("resolution"),
        ..LIB
    },
    Artifact {
        name: "libres_unique_b.so",
        sources: &["res_unique.c"],
        dir: Dir::Sub("resolution"),
        ..LIB
    },
    Artifact {
        name: "libres_unique_user.so",
        sources: &["res_unique_user.c"],
        dir: Dir::Sub("resolution"),
        flags: &[RUNPATH_ORIGIN, "-Wl,-z,lazy"],
        deps: &["libres_unique_b.so"],
        ..LIB
    },
    Artifact {
        name: "libres_def.so",
        sources: &["res_def.c"],
        dir: Dir::Sub("resolution"),
        version_script: Some("res_def.map"),
        ..LIB
    },
    Artifact {
        name: "libres_user.so",
        sources: &["res_user.c"],
        dir: Dir::Sub("resolution"),
        flags: &[RUNPATH_ORIGIN, "-Wl,-z,lazy"],
        deps: &["libres_def.so"],
        ..LIB
    },
    // Symbol versioning: VERDEF in libversioned, VERNEED in libversioned_user.
    Artifact {
        name: "libversioned.so",
        sources: &["versioned.c"],
        version_script: Some("versioned.map"),
        ..LIB
    },
    Artifact {
        name: "libversioned_user.so",
        sources: &["versioned_user.c"],
        flags: &[RUNPATH_ORIGIN],
        deps: &["libversioned.so"],
        ..LIB
    },
    // STT_GNU_IFUNC and R_X86_64_IRELATIVE.
    Artifact {
        name: "libifunc.so",
        sources: &["ifunc.c"],
        ..LIB
    },
    // An ifunc bound from another object: its resolver runs only when code
    // may run (not under Loader::link; at Prepared::run).
    Artifact {
        name: "libifunc_provider.so",
        sources: &["ifunc_provider.c"],
        ..LIB
    },
    Artifact {
        name: "libifunc_consumer.so",
        sources: &["ifunc_consumer.c"],
        flags: &["-Wl,-z,now,--enable-new-dtags,-rpath,$ORIGIN"],
        deps: &["libifunc_provider.so"],
        ..LIB
    },
    // Constructor / destructor / DT_INIT / DT_FINI / atexit order.
    Artifact {
        name: "libctor_base.so",
        sources: &["ctor_base.c"],
        ..LIB
    },
    Artifact {
        name: "libctor_mid.so",
        sources: &["ctor_mid.c"],
        flags: &[RUNPATH_ORIGIN],
        deps: &["libctor_base.so"],
        ..LIB
    },
    Artifact {
        name: "libctor_top.so",
        sources: &["ctor_top.c"],
        flags: &[RUNPATH_ORIGIN, "-Wl,-init,top_init", "-Wl,-fini,top_fini"],
        deps: &["libctor_mid.so", "libctor_base.so"],
        ..LIB
    },
    // RTLD_GLOBAL: a library under-linked against another, which it finds
    // only in the global scope.
    Artifact {
        name: "libglobal_def.so",
        sources: &["global_def.c"],
        ..LIB
    },
    Artifact {
        name: "libglobal_user.so",
        sources: &["global_user.c"],
        ..LIB
    },
    // The drop-in <dlfcn.h> (minld-preload, tests/preload.rs): a library
    // whose destructor says it ran, and a program using <dlfcn.h> as any
    // program does, linking libbasic.so, with RUNPATH $ORIGIN.
    Artifact {
        name: "libdl_dtor.so",
        sources: &["dl_dtor.c"],
        ..LIB
    },
    // Lookups with RTLD_NEXT from a library the drop-in loaded.
    Artifact {
        name: "libdl_next.so",
        sources: &["dl_next.c"],
        flags: &["-ldl"],
        ..LIB
    },
    // Its constructor dlopens libdl_dtor.so (a nested open).
    Artifact {
        name: "libdl_nested.so",
        sources: &["dl_nested.c"],
        flags: &[RUNPATH_ORIGIN, "-ldl"],
        ..LIB
    },
    Artifact {
        name: "dl_host",
        kind: Kind::CExe,
        sources: &["dl_host.c"],
        flags: &[RUNPATH_ORIGIN, "-ldl", "-lpthread"],
        deps: &["libbasic.so"],
        ..LIB
    },
    // Backtraces taken inside a library the drop-in loaded.
    Artifact {
        name: "libdl_backtrace.so",
        sources: &["dl_backtrace.c"],
        ..LIB
    },
    Artifact {
        name: "dl_host2",
        kind: Kind::CExe,
        sources: &["dl_host2.c"],
        flags: &[RUNPATH_ORIGIN, "-ldl"],
        ..LIB
    },
    // RPATH inheritance: libinherit_a.so (DT_RPATH $ORIGIN/inherit) ->
    // inherit/libinherit_b.so (no RPATH, no RUNPATH) -> inherit/
    // libinherit_c.so, found through the RPATH of b's loader; the same
    // with a RUNPATH (libinherit_r.so), which is not inherited; dl_rpath,
    // a program whose own DT_RPATH names inherit/.
    Artifact {
        name: "libinherit_c.so",
        sources: &["inherit_c.c"],
        dir: Dir::Sub("inherit"),
        ..LIB
    },
    Artifact {
        name: "libinherit_d.so",
        sources: &["inherit_c.c"],
        dir: Dir::Sub("inherit"),
        ..LIB
    },
    Artifact {
        name: "libinherit_b.so",
        sources: &["inherit_b.c"],
        dir: Dir::Sub("inherit"),
        deps: &["libinherit_c.so"],
        ..LIB
    },
    Artifact {
        name: "libinherit_a.so",
        sources: &["inherit_a.c"],
        flags: &["-Wl,--disable-new-dtags,-rpath,$ORIGIN/inherit"],
        deps: &["libinherit_b.so"],
        ..LIB
    },
    Artifact {
        name: "libinherit_r.so",
        sources: &["inherit_a.c"],
        flags: &["-Wl,--enable-new-dtags,-rpath,$ORIGIN/inherit"],
        deps: &["libinherit_b.so"],
        ..LIB
    },
    Artifact {
        name: "libinherit_caller.so",
        sources: &["inherit_caller.c"],
        flags: &["-Wl,--disable-new-dtags,-rpath,$ORIGIN/inherit", "-ldl"],
        ..LIB
    },
    Artifact {
        name: "libinherit_opener.so",
        sources: &["inherit_opener.c"],
        dir: Dir::Sub("inherit"),
        flags: &["-ldl"],
        ..LIB
    },
    Artifact {
        name: "libinherit_top.so",
        sources: &["inherit_top.c"],
        flags: &["-Wl,--disable-new-dtags,-rpath,$ORIGIN/inherit"],
        deps: &["libinherit_opener.so"],
        ..LIB
    },
    Artifact {
        name: "dl_rpath2",
        kind: Kind::CExe,
        sources: &["dl_rpath2.c"],
        flags: &[RUNPATH_ORIGIN],
        deps: &["libinherit_top.so"],
        ..LIB
    },
    Artifact {
        name: "libnodeflib.so",
        sources: &["nodeflib.c"],
        flags: &[
            "-Wl,-z,nodefaultlib",
            "-Wl,--no-as-needed",
            "/usr/lib/x86_64-linux-gnu/libz.so.1",
        ],
        ..LIB
    },
    Artifact {
        name: "dl_rpath",
        kind: Kind::CExe,
        sources: &["dl_rpath.c"],
        flags: &["-Wl,--disable-new-dtags,-rpath,$ORIGIN/inherit", "-ldl"],
        ..LIB
    },
    // Nested opens: constructors and ifunc resolvers calling minld through
    // the table in libnested_hook.so (see test-libs/nested_hook.c).
    Artifact {
        name: "libnested_hook.so",
        sources: &["nested_hook.c"],
        ..LIB
    },
    Artifact {
        name: "libnested_leaf.so",
        sources: &["nested_leaf.c"],
        flags: &[RUNPATH_ORIGIN],
        deps: &["libnested_hook.so"],
        ..LIB
    },
    Artifact {
        name: "libnested_outer.so",
        sources: &["nested_outer.c"],
        flags: &[RUNPATH_ORIGIN],
        deps: &["libnested_hook.so"],
        ..LIB
    },
    Artifact {
        name: "libnested_closer.so",
        sources: &["nested_closer.c"],
        flags: &[RUNPATH_ORIGIN],
        deps: &["libnested_hook.so"],
        ..LIB
    },
    Artifact {
        name: "libnested_self.so",
        sources: &["nested_self.c"],
        flags: &[RUNPATH_ORIGIN],
        deps: &["libnested_hook.so"],
        ..LIB
    },
    Artifact {
        name: "libnested_back.so",
        sources: &["nested_back.c"],
        flags: &[RUNPATH_ORIGIN],
        deps: &["libnested_self.so"],
        ..LIB
    },
    Artifact {
        name: "libnested_first.so",
        sources: &["nested_first.c"],
        flags: &[RUNPATH_ORIGIN],
        deps: &["libnested_hook.so"],
        ..LIB
    },
    Artifact {
        name: "libnested_top.so",
        sources: &["nested_top.c"],
        flags: &[RUNPATH_ORIGIN],
        deps: &["libnested_first.so", "libnested_hook.so"],
        ..LIB
    },
    Artifact {
        name: "libnested_top_user.so",
        sources: &["nested_top_user.c"],
        flags: &[RUNPATH_ORIGIN],
        deps: &["libnested_top.so", "libnested_hook.so"],
        ..LIB
    },
    Artifact {
        name: "libnested_ifunc.so",
        sources: &["nested_ifunc.c"],
        flags: &[RUNPATH_ORIGIN],
        deps: &["libnested_hook.so"],
        ..LIB
    },
    Artifact {
        name: "libnested_ifunc_back.so",
        sources: &["nested_ifunc_back.c"],
        flags: &[RUNPATH_ORIGIN],
        deps: &["libnested_hook.so"],
        ..LIB
    },
    Artifact {
        name: "libnested_ifunc_back_user.so",
        sources: &["nested_ifunc_back_user.c"],
        flags: &[RUNPATH_ORIGIN],
        deps: &["libnested_ifunc_back.so"],
        ..LIB
    },
    // Weak undefined references and a weak definition.
    Artifact {
        name: "libweak.so",
        sources: &["weak.c"],
        ..LIB
    },
    // DT_NEEDED on a library that is nowhere on the search path: the stub
    // exists only in $OUT_DIR/scratch, at link time.
    Artifact {
        name: "libminld_nonexistent.so",
        sources: &["nonexistent_stub.c"],
        dir: Dir::Scratch,
        ..LIB
    },
    Artifact {
        name: "libmissing_dep.so",
        sources: &["missing_dep.c"],
        deps: &["libminld_nonexistent.so"],
        ..LIB
    },
    // Undefined function (JUMP_SLOT) / undefined data (GLOB_DAT).
    Artifact {
        name: "libmissing_sym.so",
        sources: &["missing_sym.c"],
        ..LIB
    },
    Artifact {
        name: "libmissing_data.so",
        sources: &["missing_data.c"],
        ..LIB
    },
    // General-dynamic TLS: DTPMOD64 / DTPOFF64, PT_TLS.
    Artifact {
        name: "libtls.so",
        sources: &["tls.c"],
        ..LIB
    },
    // The library's own TLS block, every model and section: general dynamic
    // (DTPMOD64/DTPOFF64 against exported symbols), local dynamic (DTPMOD64
    // without a symbol), .tdata, .tbss, 64- and 128-byte alignment, 64 KiB
    // of .tbss.
    Artifact {
        name: "libtls_models.so",
        sources: &["tls_models.c"],
        ..LIB
    },
    // The same source through TLS descriptors: R_X86_64_TLSDESC in
    // DT_JMPREL, DT_TLSDESC_PLT/GOT.
    Artifact {
        name: "libtls_desc.so",
        sources: &["tls_models.c"],
        flags: &["-mtls-dialect=gnu2"],
        ..LIB
    },
    // TLS of a dependency: libtls_user's DTPMOD64/DTPOFF64 against
    // libtls_owner's exported __thread variables.
    Artifact {
        name: "libtls_owner.so",
        sources: &["tls_owner.c"],
        ..LIB
    },
    Artifact {
        name: "libtls_user.so",
        sources: &["tls_user.c"],
        flags: &[RUNPATH_ORIGIN],
        deps: &["libtls_owner.so"],
        ..LIB
    },
    // Initial-exec TLS on its own block: TPOFF64 against tls_ie_var and
    // the block, DF_STATIC_TLS; placed in glibc's surplus static TLS.
    Artifact {
        name: "libtls_ie.so",
        sources: &["tls_ie.c", "tls_ie_gd.c"],
        ..LIB
    },
    // The same, its dynamic access through a TLS descriptor.
    Artifact {
        name: "libtls_ie_desc.so",
        sources: &["tls_ie.c", "tls_ie_gd.c"],
        flags: &["-mtls-dialect=gnu2"],
        ..LIB
    },
    // Needs libtls_ie.so and an undefined function: fails after
    // libtls_ie.so's static block was reserved.
    Artifact {
        name: "libtls_ie_user.so",
        sources: &["tls_ie_user.c"],
        flags: &[RUNPATH_ORIGIN],
        deps: &["libtls_ie.so"],
        ..LIB
    },
    // Initial-exec access to libtls_owner.so's (general-dynamic) variable.
    Artifact {
        name: "libtls_ie_foreign.so",
        sources: &["tls_ie_foreign.c"],
        flags: &[RUNPATH_ORIGIN],
        deps: &["libtls_owner.so"],
        ..LIB
    },
    // Initial-exec access to a block whose definer needs the accessing
    // library (relocated first); the definer's image holds an R_X86_64_64.
    Artifact {
        name: "libtls_ie_reader.so",
        sources: &["tls_ie_reader.c"],
        ..LIB
    },
    Artifact {
        name: "libtls_ie_ptrowner.so",
        sources: &["tls_ie_ptrowner.c"],
        flags: &[RUNPATH_ORIGIN],
        deps: &["libtls_ie_reader.so"],
        ..LIB
    },
    // A TLS image holding an R_X86_64_IRELATIVE (a pointer to a local
    // ifunc), general-dynamic and initial-exec (static TLS).
    Artifact {
        name: "libtls_ifunc.so",
        sources: &["tls_ifunc.c"],
        ..LIB
    },
    Artifact {
        name: "libtls_ifunc_ie.so",
        sources: &["tls_ifunc.c"],
        flags: &["-DTLS_IFUNC_IE"],
        ..LIB
    },
    // Initial-exec access to a block whose image holds an IRELATIVE,
    // from a library relocated before the definer.
    Artifact {
        name: "libtls_ifunc_reader.so",
        sources: &["tls_ifunc_reader.c"],
        ..LIB
    },
    Artifact {
        name: "libtls_ifunc_owner.so",
        sources: &["tls_ifunc.c"],
        flags: &[RUNPATH_ORIGIN],
        deps: &["libtls_ifunc_reader.so"],
        ..LIB
    },
    // A 1 MiB initial-exec block: more than glibc's surplus static TLS.
    Artifact {
        name: "libtls_ie_huge.so",
        sources: &["tls_ie_huge.c"],
        ..LIB
    },
    // DT_TEXTREL: a dynamic relocation inside .text.
    Artifact {
        name: "libtextrel.so",
        sources: &["textrel.c"],
        flags: &["-Wl,-z,notext"],
        ..LIB
    },
    // PT_GNU_STACK with PF_X.
    Artifact {
        name: "libexecstack.so",
        sources: &["execstack.c"],
        flags: &["-Wl,-z,execstack"],
        ..LIB
    },
    // PT_LOAD p_align = 2 MiB.
    Artifact {
        name: "libbigalign.so",
        sources: &["bigalign.c"],
        flags: &["-Wl,-z,max-page-size=0x200000", "-Wl,-z,separate-code"],
        ..LIB
    },
    // p_memsz much larger than p_filesz.
    Artifact {
        name: "libbss.so",
        sources: &["bss.c"],
        ..LIB
    },
    // Gaps between PT_LOAD segments (glibc mprotects them PROT_NONE).
    Artifact {
        name: "libhole.so",
        sources: &["hole.c"],
        flags: &[
            "-Wl,-z,separate-code",
            "-Wl,-z,max-page-size=0x10000",
            "-Wl,-z,common-page-size=0x1000",
        ],
        ..LIB
    },
    // PT_LOAD p_align 0x10: every segment packed into the first page (a
    // strict policy finds nothing else); minld refuses it.
    Artifact {
        name: "libpacked.so",
        sources: &["packed.c"],
        flags: &["-Wl,-z,max-page-size=16", "-Wl,-z,now,-z,relro"],
        ..LIB
    },
    // Four constructors whose .init_array words are 0 in the file (RELATIVE
    // and R_X86_64_64 relocations fill them), and the same packed with RELR.
    Artifact {
        name: "libctors4.so",
        sources: &["ctors4.c"],
        flags: &["-Wl,-z,now,-z,relro"],
        ..LIB
    },
    Artifact {
        name: "libctors4_relr.so",
        sources: &["ctors4.c"],
        flags: &["-Wl,-z,now,-z,relro", "-Wl,-z,pack-relative-relocs"],
        ..LIB
    },
    // C++: static constructor, vtable call, exception (needs libstdc++).
    Artifact {
        name: "libcxx_basic.so",
        kind: Kind::CxxShared,
        sources: &["cxx_basic.cpp"],
        ..LIB
    },
    // C++ exceptions between two loaded libraries: libcxx_thrower throws
    // (MinldError's typeinfo lives there, see cxx_exc.h), libcxx_catcher
    // catches by type, directly and through a callback the host hands over.
    Artifact {
        name: "libcxx_thrower.so",
        kind: Kind::CxxShared,
        sources: &["cxx_thrower.cpp"],
        ..LIB
    },
    Artifact {
        name: "libcxx_catcher.so",
        kind: Kind::CxxShared,
        sources: &["cxx_catcher.cpp"],
        flags: &[RUNPATH_ORIGIN],
        deps: &["libcxx_thrower.so"],
        ..LIB
    },
    // C++ globals: constructors at load, destructors at unload in reverse.
    Artifact {
        name: "libcxx_globals.so",
        kind: Kind::CxxShared,
        sources: &["cxx_globals.cpp"],
        ..LIB
    },
    // A thread_local with a destructor (__cxa_thread_atexit).
    Artifact {
        name: "libcxx_tls_dtor.so",
        kind: Kind::CxxShared,
        sources: &["cxx_tls_dtor.cpp"],
        ..LIB
    },
    // Exceptions thrown inside libstdc++, for a private libstdc++ copy.
    Artifact {
        name: "libcxx_private.so",
        kind: Kind::CxxShared,
        sources: &["cxx_private.cpp"],
        ..LIB
    },
];

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let src_dir = manifest_dir.join("test-libs");
    let libs_dir = out_dir.join("test-libs");

    // Always emitted, so `env!("MINLD_TEST_LIBS")` compiles even when the
    // directory is never populated.
    println!("cargo:rustc-env=MINLD_TEST_LIBS={}", libs_dir.display());
    println!("cargo:rerun-if-env-changed=CC");
    println!("cargo:rerun-if-env-changed=CXX");
    println!("cargo:rerun-if-env-changed=CARGO_HOME");

    if !src_dir.is_dir() || is_under_cargo_home(&manifest_dir) {
        // Built as a dependency (or packaged without test-libs): nothing to do.
        return;
    }

    println!("cargo:rerun-if-changed=test-libs");
    for artifact in ARTIFACTS {
        for source in artifact
            .sources
            .iter()
            .chain(artifact.version_script.iter())
        {
            println!("cargo:rerun-if-changed=test-libs/{source}");
        }
    }

    check_table_order();
    let cc = Compiler::from_env("CC", "cc");
    let cxx = Compiler::from_env("CXX", "c++");
    let cc_ok = cc.check();
    let cxx_ok = ARTIFACTS.iter().any(|a| a.kind == Kind::CxxShared) && cxx.check();

    for artifact in ARTIFACTS {
        let (compiler, available) = match artifact.kind {
            Kind::CShared | Kind::CExe => (&cc, cc_ok),
            Kind::CxxShared => (&cxx, cxx_ok),
        };
        if available {
            build(artifact, compiler, &src_dir, &out_dir);
        }
    }
}

/// True when `path` is inside `$CARGO_HOME` (default `~/.cargo`), i.e. minld
/// is being compiled as a registry or git dependency of another crate.
fn is_under_cargo_home(path: &Path) -> bool {
    let cargo_home = match env::var_os("CARGO_HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home),
        _ => match env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".cargo"),
            None => return false,
        },
    };
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    canonical(path).starts_with(canonical(&cargo_home))
}

/// A compiler driver from `$CC` / `$CXX`; the variable may carry leading
/// arguments (e.g. `CC="ccache gcc"`).
struct Compiler {
    var: &'static str,
    program: OsString,
    args: Vec<OsString>,
}

impl Compiler {
    fn from_env(var: &'static str, default: &str) -> Compiler {
        let value = env::var(var).ok().filter(|v| !v.trim().is_empty());
        let value = value.unwrap_or_else(|| default.to_string());
        let mut words = value.split_whitespace().map(OsString::from);
        let program = words.next().expect("non-empty compiler command");
        Compiler {
            var,
            program,
            args: words.collect(),
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        command
    }

    /// Runs `<compiler> --version`; warns and returns false if it cannot run.
    fn check(&self) -> bool {
        match self.command().arg("--version").output() {
            Ok(output) if output.status.success() => true,
            Ok(output) => {
                println!(
                    "cargo:warning=minld: ${} ({:?}) --version failed ({}); the test libraries it compiles are not built",
                    self.var, self.program, output.status
                );
                false
            }
            Err(err) => {
                let what = if err.kind() == ErrorKind::NotFound {
                    "not found".to_string()
                } else {
                    err.to_string()
                };
                println!(
                    "cargo:warning=minld: C{} compiler {:?} (${}) {what}; the test libraries it compiles are not built",
                    if self.var == "CXX" { "++" } else { "" },
                    self.program,
                    self.var,
                );
                false
            }
        }
    }
}

/// Every dependency must be built before the artifacts that link against it.
fn check_table_order() {
    for (index, artifact) in ARTIFACTS.iter().enumerate() {
        for dep in artifact.deps {
            let position = ARTIFACTS.iter().position(|a| a.name == *dep);
            assert!(
                position.is_some_and(|p| p < index),
                "build.rs: {} depends on {dep}, which must come earlier in ARTIFACTS",
                artifact.name
            );
        }
    }
}

/// Directory an artifact is written to.
fn dir_of(artifact: &Artifact, out_dir: &Path) -> PathBuf {
    match artifact.dir {
        Dir::Top => out_dir.join("test-libs"),
        Dir::Sub(sub) => out_dir.join("test-libs").join(sub),
        Dir::Scratch => out_dir.join("scratch"),
    }
}

fn find(name: &str) -> &'static Artifact {
    ARTIFACTS
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("build.rs: unknown test-lib dependency {name}"))
}

/// Adds `-Wl,-rpath-link,<dir>` for every transitive dependency, so the link
/// editor can check the dependencies of our dependencies without warnings.
fn add_rpath_links(artifact: &Artifact, out_dir: &Path, command: &mut Command) {
    for dep in artifact.deps.iter().map(|d| find(d)) {
        let mut arg = OsString::from("-Wl,-rpath-link,");
        arg.push(dir_of(dep, out_dir));
        command.arg(arg);
        add_rpath_links(dep, out_dir, command);
    }
}

fn build(artifact: &Artifact, compiler: &Compiler, src_dir: &Path, out_dir: &Path) {
    let dir = dir_of(artifact, out_dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let output = dir.join(artifact.name);

    let mut command = compiler.command();
    command.args(COMMON_FLAGS);
    if artifact.kind != Kind::CExe {
        command.arg("-shared");
        let soname = artifact.soname.unwrap_or(artifact.name);
        command.arg(format!("-Wl,-soname,{soname}"));
    }
    command.arg("-o").arg(&output);
    command.args(artifact.sources.iter().map(|s| src_dir.join(s)));
    if let Some(script) = artifact.version_script {
        let mut arg = OsString::from("-Wl,--version-script=");
        arg.push(src_dir.join(script));
        command.arg(arg);
    }
    command.args(artifact.flags);
    if !artifact.deps.is_empty() {
        // Keep every DT_NEEDED even where the toolchain defaults to --as-needed.
        command.arg("-Wl,--no-as-needed");
        for dep in artifact.deps.iter().map(|d| find(d)) {
            let stem = dep
                .name
                .strip_prefix("lib")
                .and_then(|n| n.strip_suffix(".so"));
            let stem =
                stem.unwrap_or_else(|| panic!("build.rs: dependency {} is not lib*.so", dep.name));
            command
                .arg("-L")
                .arg(dir_of(dep, out_dir))
                .arg(format!("-l{stem}"));
        }
        add_rpath_links(artifact, out_dir, &mut command);
    }

    let result = command
        .output()
        .unwrap_or_else(|e| panic!("running {:?} for {}: {e}", compiler.program, artifact.name));
    if !result.status.success() {
        panic!(
            "building test library {} failed ({}).\ncommand: {:?}\n{}",
            artifact.name,
            result.status,
            command,
            String::from_utf8_lossy(&result.stderr)
        );
    }
    // Linker warnings (e.g. about missing transitive dependencies) are
    // surfaced rather than silently dropped.
    let stderr = String::from_utf8_lossy(&result.stderr);
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        println!("cargo:warning={}: {line}", artifact.name);
    }
}
