//! Level 3 of plugin loading, process isolation: each behaviour of the
//! sandbox, with the plugins of test-libs/sandbox/. The runner is this test
//! binary itself, re-executed: minld's .init_array hook takes over before
//! libtest's main.
mod common;

use std::time::{Duration, Instant};

use minld::sandbox::{Sandbox, SandboxError};

use common::sandbox::plugin;

#[test]
fn behaves() {
    let mut sb = Sandbox::builder(plugin("echo"))
        .function("upper")
        .function("churn")
        .spawn()
        .unwrap();
    assert_eq!(sb.call("upper", b"abc").unwrap(), b"ABC");
    assert_eq!(sb.call(1usize, b"").unwrap(), b"malloc ok");
    assert_eq!(sb.call("upper", &[]).unwrap(), b"");
    let big = vec![b'x'; 1 << 20];
    assert_eq!(sb.call("upper", &big).unwrap(), vec![b'X'; 1 << 20]);
    assert!(matches!(
        sb.call("upper", &vec![0; (1 << 20) + 1]),
        Err(SandboxError::InputTooLarge { .. })
    ));
    assert!(matches!(
        sb.call("nope", b""),
        Err(SandboxError::NoSuchFunction(_))
    ));
}

#[test]
fn segfault_is_reported_and_restart_works() {
    let mut sb = Sandbox::builder(plugin("segv"))
        .function("run")
        .spawn()
        .unwrap();
    match sb.call("run", b"") {
        Err(SandboxError::Crashed {
            signal: libc::SIGSEGV,
            claimed_addr: Some(0),
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(sb.call("run", b""), Err(SandboxError::Dead)));
    sb.restart().unwrap();
    assert!(matches!(
        sb.call("run", b"x"),
        Err(SandboxError::Crashed {
            signal: libc::SIGSEGV,
            claimed_addr: Some(1)
        })
    ));
}

#[test]
fn open_is_refused_and_named() {
    let mut sb = Sandbox::builder(plugin("passwd"))
        .function("run")
        .spawn()
        .unwrap();
    let e = sb.call("run", b"").unwrap_err();
    assert!(
        matches!(&e, SandboxError::ForbiddenOpen { path, .. } if path.as_os_str() == "/etc/passwd"),
        "{e:?}"
    );
    assert!(e.to_string().contains("/etc/passwd"), "{e}");
}

#[test]
fn endless_loop_is_killed_at_the_timeout() {
    // The CPU budget of a call defaults to the timeout, and the host's own
    // work for the runner is charged to it too: the budget could stop the
    // loop a moment before the timeout does. This test is about the
    // timeout, so the budget is set far above it.
    let mut sb = Sandbox::builder(plugin("loop"))
        .function("run")
        .timeout(Duration::from_millis(300))
        .cpu_budget(Duration::from_secs(60), Duration::from_secs(1))
        .spawn()
        .unwrap();
    let t = Instant::now();
    // The loop never returns: the call ends only because the host stops
    // it, and not before its timeout. (No upper bound: a test never fails
    // on a timing, and a busy machine may take the host long to wake.)
    let got = sb.call("run", b"");
    assert!(matches!(got, Err(SandboxError::Timeout(_))), "{got:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "stopped before its timeout: {:?}",
        t.elapsed()
    );
}

#[test]
fn cpu_limit_gives_sigxcpu() {
    let mut sb = Sandbox::builder(plugin("loop"))
        .function("run")
        .cpu_limit(1)
        .timeout(Duration::from_secs(5))
        .spawn()
        .unwrap();
    assert!(matches!(
        sb.call("run", b""),
        Err(SandboxError::Crashed {
            signal: libc::SIGXCPU,
            ..
        })
    ));
}

#[test]
fn memory_limit_makes_malloc_fail() {
    let mut sb = Sandbox::builder(plugin("echo"))
        .function("hog")
        .memory_limit(256 << 20)
        .spawn()
        .unwrap();
    assert!(matches!(
        sb.call("hog", b""),
        Err(SandboxError::Plugin(-12))
    ));
}

#[test]
fn abort_is_sigabrt() {
    let mut sb = Sandbox::builder(plugin("echo"))
        .function("die")
        .spawn()
        .unwrap();
    assert!(matches!(
        sb.call("die", b""),
        Err(SandboxError::Crashed {
            signal: libc::SIGABRT,
            claimed_addr: None
        })
    ));
}

#[test]
fn lying_length_is_refused() {
    let mut sb = Sandbox::builder(plugin("echo"))
        .function("lie")
        .spawn()
        .unwrap();
    assert!(matches!(
        sb.call("lie", b""),
        Err(SandboxError::BadResponse(_))
    ));
}

/// Constructors run under the serving lock-down: the ctor plugin's open of
/// a file for writing kills it at start, named by the host; the file is
/// never created. A constructor's socket is a forbidden call.
#[test]
fn constructors_run_locked_down() {
    let marker = std::path::Path::new("/tmp/sandboxproto-ctor-was-here");
    let _ = std::fs::remove_file(marker);
    let e = Sandbox::builder(plugin("ctor"))
        .function("run")
        .spawn()
        .err()
        .unwrap();
    assert!(
        matches!(&e, SandboxError::ForbiddenOpen { path, .. } if path == marker),
        "{e:?}"
    );
    assert!(!marker.exists());
    let e = Sandbox::builder(plugin("netctor"))
        .function("run")
        .spawn()
        .err()
        .unwrap();
    assert!(
        matches!(e, SandboxError::ForbiddenSyscall { nr: 41, .. }),
        "{e:?}"
    );
}

#[test]
fn load_errors() {
    let e = Sandbox::builder(plugin("missing"))
        .function("run")
        .spawn()
        .err()
        .unwrap();
    assert!(
        matches!(&e, SandboxError::Load(m) if m.contains("cannot open")),
        "{e:?}"
    );
    // A missing function is found after the plugin's init ran: the
    // runner's claim.
    let e = Sandbox::builder(plugin("echo"))
        .function("nosuch")
        .spawn()
        .err()
        .unwrap();
    assert!(
        matches!(&e, SandboxError::Init { claimed } if claimed.contains("nosuch")),
        "{e:?}"
    );
}

#[test]
fn real_dependencies() {
    let mut sb = Sandbox::builder(plugin("deps"))
        .read_only("/dev/urandom")
        .function("deflate_len")
        .function("query")
        .spawn()
        .unwrap();
    let z = sb.call("deflate_len", &vec![b'a'; 100_000]).unwrap();
    assert!(z.len() < 1000, "{}", z.len());
    sb.call(
        "query",
        b"create table t(a, b); insert into t values (1, 'one'), (2, 'two')",
    )
    .unwrap();
    let rows = sb
        .call(
            "query",
            b"select a, b, length(randomblob(16)), typeof(datetime('now')) from t order by a",
        )
        .unwrap();
    assert_eq!(
        String::from_utf8(rows).unwrap(),
        "1|one|16|text\n2|two|16|text\n"
    );
}

#[test]
fn many_threads_spawning() {
    let fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    let before = fds();
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                for i in 0..5 {
                    let mut sb = Sandbox::builder(plugin("echo"))
                        .function("echo")
                        .spawn()
                        .unwrap();
                    let msg = format!("thread {t} round {i}");
                    assert_eq!(sb.call("echo", msg.as_bytes()).unwrap(), msg.as_bytes());
                }
            });
        }
    });
    // Other tests run meanwhile; allow their sandboxes' pidfds/pipes.
    assert!(fds() <= before + 8, "{before} -> {}", fds());
}

#[test]
fn other_abis_are_killed() {
    let mut sb = Sandbox::builder(plugin("abi"))
        .function("x32")
        .function("i386")
        .spawn()
        .unwrap();
    assert!(matches!(
        sb.call("x32", b""),
        Err(SandboxError::ForbiddenSyscall { .. })
    ));
    sb.restart().unwrap();
    assert!(matches!(
        sb.call("i386", b""),
        Err(SandboxError::ForbiddenSyscall { .. })
    ));
}

#[test]
fn no_new_executable_memory() {
    let mut sb = Sandbox::builder(plugin("abi"))
        .function("jit")
        .spawn()
        .unwrap();
    assert!(
        matches!(sb.call("jit", b""), Err(SandboxError::Plugin(-1))),
        "EPERM from mprotect"
    );
}

#[test]
fn stack_overflow_is_sigsegv() {
    let mut sb = Sandbox::builder(plugin("abi"))
        .function("recurse")
        .spawn()
        .unwrap();
    assert!(matches!(
        sb.call("recurse", b""),
        Err(SandboxError::Crashed {
            signal: libc::SIGSEGV,
            claimed_addr: Some(_)
        })
    ));
}

#[test]
fn madvise_by_advice() {
    let mut sb = Sandbox::builder(plugin("abi"))
        .function("advise")
        .spawn()
        .unwrap();
    assert_eq!(sb.call("advise", b"").unwrap(), b"");
}

/// printf works (the runner's stdout is a pipe the host drains) and what
/// the plugin printed reaches the host as its output, not the host's.
#[test]
fn printf_reaches_the_host() {
    let mut sb = Sandbox::builder(plugin("echo"))
        .function("say")
        .spawn()
        .unwrap();
    assert_eq!(sb.call("say", b"hello").unwrap(), b"");
    assert_eq!(sb.call("say", b"again").unwrap(), b"");
    // The watcher drains the pipe: give it a bounded time to get there.
    let mut out = Vec::new();
    for _ in 0..200 {
        out.extend(sb.take_output().stdout);
        if out.ends_with(b"again\n") {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(out, b"hello\nagain\n");
}

/// A large library (over 32,768 RELATIVE relocations, which minld splits
/// over threads elsewhere) loads in the runner, whose filters allow no
/// clone: relocation stays on one thread there.
#[test]
fn a_large_library_loads_in_the_runner() {
    let llvm = "/usr/lib/x86_64-linux-gnu/libLLVM-15.so.1";
    if !std::path::Path::new(llvm).exists() {
        eprintln!("SKIPPED: {llvm} is not installed");
        return;
    }
    let sb = Sandbox::builder(llvm)
        .timeout(Duration::from_secs(20))
        .spawn();
    assert!(sb.is_ok(), "{:?}", sb.err());
}

/// A plugin with initial-exec TLS (libtls_ie.so, DF_STATIC_TLS) is refused
/// with a clear error: reserving its block takes glibc's dlopen of a
/// memfd, which the runner's loading stage does not allow.
#[test]
fn initial_exec_tls_is_refused_saying_why() {
    let e = Sandbox::builder(format!("{}/libtls_ie.so", env!("MINLD_TEST_LIBS")))
        .function("tls_ie_get")
        .spawn()
        .err()
        .expect("a plugin with initial-exec TLS spawned");
    assert!(
        matches!(&e, SandboxError::Load(m)
            if m.contains("libtls_ie.so")
                && m.contains("initial-exec TLS needs glibc's dlopen of a memfd, which the \
                               sandbox's loading stage does not allow")),
        "{e:?}"
    );
}

/// Everyday libc calls of an ordinary plugin work (each killed the runner
/// as a forbidden call before): qsort of a large array (sysinfo),
/// sysconf(_SC_OPEN_MAX) (prlimit64 reading its own limits), uname,
/// getuid, getcwd, getrusage. Setting a limit (prlimit64 with a new one)
/// is still a forbidden call.
#[test]
fn everyday_libc_calls_work() {
    let mut sb = Sandbox::builder(plugin("everyday"))
        .function("op")
        .spawn()
        .unwrap();
    for (op, want) in [
        ("q", "1"),
        ("o", "1"),
        ("u", "1"),
        ("i", "1"),
        ("g", "1"),
        ("r", "1"),
    ] {
        let got = sb.call("op", op.as_bytes());
        assert_eq!(
            got.as_deref().map(String::from_utf8_lossy).ok().as_deref(),
            Some(want),
            "{op}: {got:?}"
        );
    }
    let set = sb.call("op", b"s");
    assert!(
        matches!(set, Err(SandboxError::ForbiddenSyscall { nr: 302, .. })),
        "{set:?}"
    );
}

/// Calls `op` of the sysfiles plugin with `arg`; its answer as text.
fn sysfiles_call(sb: &mut Sandbox, op: char, arg: &str) -> Result<String, SandboxError> {
    let input = format!("{op}{arg}");
    sb.call("op", input.as_bytes())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// `t` as `date` (glibc's localtime in a process of its own) shows it,
/// with `TZ` unset or set to `tz`: "Y-m-d H:M:S offset zone".
fn date_of(t: i64, tz: Option<&str>) -> String {
    let mut cmd = std::process::Command::new("date");
    match tz {
        Some(z) => cmd.env("TZ", z),
        None => cmd.env_remove("TZ"),
    };
    let out = cmd
        .arg(format!("--date=@{t}"))
        .arg("+%Y-%m-%d %H:%M:%S %z %Z")
        .output()
        .expect("date");
    assert!(out.status.success(), "date: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `t` as this process's own localtime_r shows it (with the time zone of
/// /etc/localtime when `TZ` is unset), and whether it is summer time.
fn host_localtime(t: i64) -> String {
    // SAFETY: `libc::tm` is plain integers and a pointer, for which all
    // zeroes is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let tt = t as libc::time_t;
    // SAFETY: localtime_r writes into our local only.
    assert!(!unsafe { libc::localtime_r(&tt, &mut tm) }.is_null());
    let mut buf = [0u8; 128];
    // SAFETY: strftime writes at most `buf.len()` bytes into `buf`; the
    // format is NUL-terminated and `tm` was filled above.
    let n = unsafe {
        libc::strftime(
            buf.as_mut_ptr().cast(),
            buf.len(),
            c"%Y-%m-%d %H:%M:%S %z %Z".as_ptr(),
            &tm,
        )
    };
    format!("{} {}", String::from_utf8_lossy(&buf[..n]), tm.tm_isdst)
}

/// An ordinary plugin gets the local time without `TZ` (glibc opens
/// /etc/localtime, a link into /usr/share/zoneinfo, and on the second call
/// stats it), the time of a named zone (also through posix/, whose links
/// stay inside /usr/share/zoneinfo), the CPU counts and a UTF-8 locale: the
/// host opens these public system files for it. Each used to kill the
/// runner.
#[test]
fn public_system_files_are_readable() {
    let mut sb = Sandbox::builder(plugin("sysfiles"))
        .function("op")
        .spawn()
        .unwrap();
    // A winter and a summer instant.
    for t in [1_733_486_400i64, 1_751_371_200] {
        let got = sysfiles_call(&mut sb, 't', &t.to_string()).unwrap();
        let (shown, _dst) = got.rsplit_once(' ').unwrap();
        assert_eq!(shown, date_of(t, None), "localtime of {t}: {got}");
        if std::env::var_os("TZ").is_none() {
            assert_eq!(got, host_localtime(t), "localtime of {t}");
        }
        for zone in ["Europe/Paris", "posix/Europe/Paris"] {
            let got = sysfiles_call(&mut sb, 'z', &format!("{t} {zone}")).unwrap();
            let (shown, _dst) = got.rsplit_once(' ').unwrap();
            assert_eq!(shown, date_of(t, Some(zone)), "{zone} at {t}: {got}");
        }
    }
    // SAFETY: plain sysconf queries.
    let (onln, conf) = unsafe {
        (
            libc::sysconf(libc::_SC_NPROCESSORS_ONLN),
            libc::sysconf(libc::_SC_NPROCESSORS_CONF),
        )
    };
    assert!(onln >= 1);
    assert_eq!(sysfiles_call(&mut sb, 'n', "").unwrap(), onln.to_string());
    assert_eq!(sysfiles_call(&mut sb, 'c', "").unwrap(), conf.to_string());
    assert_eq!(
        sysfiles_call(&mut sb, 'l', "").unwrap(),
        "C.UTF-8|UTF-8|No such file or directory"
    );
    // Listing a directory of the set; a missing file is ENOENT, as glibc
    // expects when it probes for a locale.
    let listed = sysfiles_call(&mut sb, 'd', "/usr/share/zoneinfo").unwrap();
    assert!(listed.starts_with("entries "), "{listed}");
    let enoent = format!("errno {}", libc::ENOENT);
    assert_eq!(
        sysfiles_call(&mut sb, 'r', "/usr/lib/locale/xx_XX.nothing/LC_CTYPE").unwrap(),
        enoent
    );
    // A link that leads out of its directory of the set is EACCES, never
    // followed (Debian's /usr/share/zoneinfo/localtime -> /etc/localtime;
    // where it is absent, ENOENT): the runner lives on.
    let link = sysfiles_call(&mut sb, 'r', "/usr/share/zoneinfo/localtime").unwrap();
    if std::fs::symlink_metadata("/usr/share/zoneinfo/localtime").is_ok() {
        assert_eq!(link, format!("errno {}", libc::EACCES));
    } else {
        assert_eq!(link, enoent);
    }
    assert!(sysfiles_call(&mut sb, 'n', "").is_ok());
    // Time zone libraries read the link's target for the zone's name;
    // access is answered too, read-only.
    let link = sysfiles_call(&mut sb, 'k', "/etc/localtime").unwrap();
    match std::fs::read_link("/etc/localtime") {
        Ok(target) => assert_eq!(link, format!("link {}", target.display())),
        Err(_) => assert_eq!(link, format!("errno {}", libc::EINVAL)),
    }
    assert_eq!(
        sysfiles_call(&mut sb, 'a', "/usr/share/zoneinfo/UTC").unwrap(),
        format!("r 0 w {}", libc::EACCES)
    );
}

/// A zygote's instances read the public system files as a spawned runner
/// does.
#[test]
fn zygote_instances_read_public_system_files() {
    let z = Sandbox::builder(plugin("sysfiles"))
        .function("op")
        .zygote()
        .unwrap();
    let mut sb = z.instance().unwrap();
    let t = 1_751_371_200i64;
    let got = sysfiles_call(&mut sb, 't', &t.to_string()).unwrap();
    assert_eq!(got.rsplit_once(' ').unwrap().0, date_of(t, None));
    // SAFETY: a plain sysconf query.
    let onln = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    assert_eq!(sysfiles_call(&mut sb, 'n', "").unwrap(), onln.to_string());
}

/// The public system files are read-only and nothing else: /etc/passwd,
/// /etc/shadow (also named through `..` from a directory of the set), a
/// directory next to the CPU lists, and a write open of a file of the set
/// each kill the runner as a forbidden open, the path named as the plugin
/// spelled it (its `..` kept: the host never folds them by their text).
#[test]
fn only_public_system_files_are_readable() {
    let mut sb = Sandbox::builder(plugin("sysfiles"))
        .function("op")
        .spawn()
        .unwrap();
    for (op, arg, path, writes) in [
        ('r', "/etc/passwd", "/etc/passwd", false),
        ('r', "/etc/shadow", "/etc/shadow", false),
        (
            'r',
            "/usr/share/zoneinfo/../../../etc/passwd",
            "/usr/share/zoneinfo/../../../etc/passwd",
            false,
        ),
        (
            'd',
            "/sys/devices/system/cpu",
            "/sys/devices/system/cpu",
            false,
        ),
        ('w', "/etc/localtime", "/etc/localtime", true),
        (
            'w',
            "/usr/share/zoneinfo/UTC",
            "/usr/share/zoneinfo/UTC",
            true,
        ),
    ] {
        let got = sysfiles_call(&mut sb, op, arg);
        match &got {
            Err(SandboxError::ForbiddenOpen { path: p, flags }) => {
                assert_eq!(p, std::path::Path::new(path), "{op}{arg}");
                assert_eq!(flags & libc::O_RDWR != 0, writes, "{op}{arg}: {flags:#o}");
            }
            _ => panic!("{op}{arg}: {got:?}"),
        }
        sb.restart().unwrap();
    }
}

/// With `system_files(false)` the runner reads none of them: localtime
/// without `TZ` kills it, as before the set existed.
#[test]
fn system_files_off_kills_as_before() {
    let mut sb = Sandbox::builder(plugin("sysfiles"))
        .function("op")
        .system_files(false)
        .spawn()
        .unwrap();
    let got = sysfiles_call(&mut sb, 't', "0");
    assert!(
        matches!(&got, Err(SandboxError::ForbiddenOpen { path, .. }) if path == std::path::Path::new("/etc/localtime")),
        "{got:?}"
    );
    sb.restart().unwrap();
    let got = sysfiles_call(&mut sb, 'n', "");
    assert!(
        matches!(&got, Err(SandboxError::ForbiddenOpen { path, .. })
            if path == std::path::Path::new("/sys/devices/system/cpu/online")),
        "{got:?}"
    );
}

/// With `refuse_forbidden_paths` an open of a path no grant covers fails
/// with EACCES and the host records it, as it read it, instead of killing
/// the runner: /etc/passwd, /etc/shadow and a write open of /etc/localtime
/// are refused and recorded in order, and the same runner serves on. By
/// default the same open kills it.
#[test]
fn forbidden_opens_can_fail_instead_of_killing() {
    let mut sb = Sandbox::builder(plugin("sysfiles"))
        .function("op")
        .refuse_forbidden_paths()
        .spawn()
        .unwrap();
    let pid = sb.pid();
    let eacces = format!("errno {}", libc::EACCES);
    for path in ["/etc/passwd", "/etc/shadow"] {
        assert_eq!(sysfiles_call(&mut sb, 'r', path).unwrap(), eacces);
    }
    assert_eq!(
        sysfiles_call(&mut sb, 'w', "/etc/localtime").unwrap(),
        format!("opened for writing: -1 {eacces}")
    );
    let got = sb.take_refused();
    assert_eq!(got.dropped, 0);
    let seen: Vec<_> = got
        .calls
        .iter()
        .map(|r| {
            (
                r.nr,
                r.path.display().to_string(),
                r.flags & libc::O_ACCMODE,
            )
        })
        .collect();
    let openat = libc::SYS_openat;
    assert_eq!(
        seen,
        [
            (openat, "/etc/passwd".to_string(), libc::O_RDONLY),
            (openat, "/etc/shadow".to_string(), libc::O_RDONLY),
            (openat, "/etc/localtime".to_string(), libc::O_RDWR),
        ]
    );
    assert_eq!(sb.take_refused(), Default::default());
    // The public files still work, and the runner is the same one.
    assert!(sysfiles_call(&mut sb, 't', "0").is_ok());
    assert_eq!(sb.pid(), pid);

    let mut sb = Sandbox::builder(plugin("sysfiles"))
        .function("op")
        .spawn()
        .unwrap();
    let got = sysfiles_call(&mut sb, 'r', "/etc/passwd");
    assert!(
        matches!(&got, Err(SandboxError::ForbiddenOpen { .. })),
        "{got:?}"
    );
    assert_eq!(sb.take_refused(), Default::default());
}

/// `refuse_forbidden_paths` covers the other calls on paths too (access,
/// unlink of a path no grant covers: EACCES, recorded with their call
/// numbers), and keeps at most `Refusals::KEPT` records, counting the
/// rest.
#[test]
fn refused_paths_are_recorded_and_bounded() {
    let mut sb = Sandbox::builder(plugin("atk_escape"))
        .function("fileop")
        .refuse_forbidden_paths()
        .spawn()
        .unwrap();
    for op in ["a", "u"] {
        let got = sb.call("fileop", format!("{op}/etc/passwd").as_bytes());
        let want = format!("-{}", libc::EACCES);
        assert_eq!(got.unwrap(), want.as_bytes(), "{op}");
    }
    let got = sb.take_refused();
    let seen: Vec<_> = got.calls.iter().map(|r| (r.nr, r.path.clone())).collect();
    let passwd = std::path::PathBuf::from("/etc/passwd");
    assert_eq!(
        seen,
        [
            (libc::SYS_access, passwd.clone()),
            (libc::SYS_unlink, passwd)
        ]
    );
    assert!(std::path::Path::new("/etc/passwd").exists());

    let mut sb = Sandbox::builder(plugin("sysfiles"))
        .function("op")
        .refuse_forbidden_paths()
        .spawn()
        .unwrap();
    let kept = minld::sandbox::Refusals::KEPT;
    for i in 0..kept + 6 {
        let got = sysfiles_call(&mut sb, 'r', &format!("/etc/nothing-{i}")).unwrap();
        assert_eq!(got, format!("errno {}", libc::EACCES));
    }
    let got = sb.take_refused();
    assert_eq!((got.calls.len(), got.dropped), (kept, 6));
    assert_eq!(
        got.calls[kept - 1].path,
        std::path::Path::new(&format!("/etc/nothing-{}", kept - 1))
    );
}
