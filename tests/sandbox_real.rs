//! Level 3, room for real plugins: granted files (in a constructor too),
//! threads, printing, shared buffers worked on in place. The plugin is
//! test-libs/sandbox/real.c.
mod common;

use std::time::Duration;

use minld::sandbox::{Sandbox, SandboxError};

/// The plugin of test-libs/sandbox/real.c.
fn plugin() -> String {
    common::sandbox::plugin("real")
}

/// The directory the plugin's constructor reads from, made for the test.
fn grant_dir() -> std::path::PathBuf {
    let dir = std::path::PathBuf::from("/tmp/minld-sandbox-grant");
    std::fs::create_dir_all(&dir).unwrap();
    // Written once per process and moved into place whole: tests run in
    // parallel, and a constructor reading the file while another test
    // truncated it to rewrite it read nothing.
    static WRITTEN: std::sync::Once = std::sync::Once::new();
    WRITTEN.call_once(|| {
        let tmp = dir.join(format!("config.txt.{}", std::process::id()));
        std::fs::write(&tmp, b"answer=42\n").unwrap();
        std::fs::rename(&tmp, dir.join("config.txt")).unwrap();
    });
    dir
}

fn builder() -> minld::sandbox::Builder {
    ["config_text", "cat", "save", "pool", "print", "invert"]
        .into_iter()
        .fold(Sandbox::builder(plugin()), |b, f| b.function(f))
}

#[test]
fn a_constructor_reads_a_granted_file() {
    let dir = grant_dir();
    let mut sb = builder().read_only(&dir).spawn().unwrap();
    assert_eq!(sb.call("config_text", b"").unwrap(), b"answer=42\n");
    // Read-only: writing beneath it is an open no grant covers.
    let mut input = dir.join("new.txt").into_os_string().into_encoded_bytes();
    input.extend_from_slice(b"\0data");
    let e = sb.call("save", &input).unwrap_err();
    assert!(
        matches!(&e, SandboxError::ForbiddenOpen { path, .. } if path == &dir.join("new.txt")),
        "{e:?}"
    );
    assert!(!dir.join("new.txt").exists());
}

#[test]
fn without_the_grant_the_constructor_is_killed_and_named() {
    let dir = grant_dir();
    let e = builder().spawn().err().unwrap();
    assert!(
        matches!(&e, SandboxError::ForbiddenOpen { path, .. } if path == &dir.join("config.txt")),
        "{e:?}"
    );
}

#[test]
fn granted_read_write() {
    let dir = tempdir("rw");
    let mut sb = builder()
        .read_only(grant_dir())
        .read_write(&dir)
        .spawn()
        .unwrap();
    let file = dir.join("out.txt");
    let mut input = file.clone().into_os_string().into_encoded_bytes();
    input.extend_from_slice(b"\0written by the plugin");
    assert_eq!(sb.call("save", &input).unwrap(), b"");
    assert_eq!(std::fs::read(&file).unwrap(), b"written by the plugin");
    let got = sb.call("cat", file.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(got, b"written by the plugin");
    // Outside every grant: killed, named.
    let e = sb.call("cat", b"/etc/hostname").unwrap_err();
    assert!(
        matches!(&e, SandboxError::ForbiddenOpen { path, .. } if path.as_os_str() == "/etc/hostname"),
        "{e:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_thread_pool_runs() {
    let mut sb = builder().read_only(grant_dir()).spawn().unwrap();
    for _ in 0..3 {
        assert_eq!(sb.call("pool", b"").unwrap(), b"500000500000 4");
    }
}

#[test]
fn printing_goes_to_the_host() {
    let mut sb = builder().read_only(grant_dir()).spawn().unwrap();
    assert_eq!(sb.call("print", b"hello from the plugin").unwrap(), b"");
    let mut out = minld::sandbox::Output::default();
    for _ in 0..200 {
        let o = sb.take_output();
        out.stdout.extend(o.stdout);
        out.stderr.extend(o.stderr);
        if out.stderr.ends_with(b"\n") && !out.stdout.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(out.stdout, b"hello from the plugin\n");
    assert_eq!(out.stderr, b"printed 21 bytes\n");
}

#[test]
fn a_shared_buffer_is_worked_on_in_place() {
    let mut sb = builder()
        .read_only(grant_dir())
        .shared_buffer(1 << 20)
        .spawn()
        .unwrap();
    let data: Vec<u8> = (0..1 << 20).map(|i| i as u8).collect();
    let buf = sb.buffer(0).unwrap();
    assert_eq!(buf.len(), 1 << 20);
    buf.write(0, &data).unwrap();
    assert_eq!(sb.call_in("invert", 0, data.len()).unwrap(), data.len());
    let mut back = vec![0u8; data.len()];
    sb.buffer(0).unwrap().read(0, &mut back).unwrap();
    assert!(back.iter().zip(&data).all(|(b, d)| *b == !*d));
    // Bounds are the host's own.
    assert!(sb.buffer(0).unwrap().write((1 << 20) - 1, b"xy").is_err());
    assert!(sb.buffer(1).is_none());
    assert!(matches!(
        sb.call_in("invert", 0, (1 << 20) + 1),
        Err(SandboxError::InputTooLarge { .. })
    ));
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("minld-sb-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A zygote links the plugin once; each instance is a fork of it, locked
/// down and initialised on its own, reaped by the host, restartable.
#[test]
fn a_zygote_forks_instances() {
    let zygote = builder().read_only(grant_dir()).zygote().unwrap();
    let mut a = zygote.instance().unwrap();
    let mut b = zygote.instance().unwrap();
    assert_ne!(a.pid(), b.pid());
    assert_ne!(a.pid(), Some(zygote.pid()));
    // Each ran its own constructor (which read the granted file).
    assert_eq!(a.call("config_text", b"").unwrap(), b"answer=42\n");
    assert_eq!(b.call("pool", b"").unwrap(), b"500000500000 4");
    // An instance is a runner like any: a forbidden open kills it alone.
    let e = a.call("cat", b"/etc/hostname").unwrap_err();
    assert!(matches!(e, SandboxError::ForbiddenOpen { .. }), "{e:?}");
    assert_eq!(b.call("config_text", b"").unwrap(), b"answer=42\n");
    a.restart().unwrap();
    assert_eq!(a.call("config_text", b"").unwrap(), b"answer=42\n");
    // The instances keep the zygote: dropping its handle first is fine.
    drop(zygote);
    assert_eq!(b.call("pool", b"").unwrap(), b"500000500000 4");
}

/// A descriptor the host passes is the plugin's at 5, whatever Landlock
/// says of its path.
#[test]
fn a_passed_descriptor_is_readable() {
    let dir = tempdir("fd");
    let file = dir.join("passed.txt");
    std::fs::write(&file, b"handed over").unwrap();
    let fd = std::fs::File::open(&file).unwrap();
    let mut sb = Sandbox::builder(plugin())
        .read_only(grant_dir())
        .pass_fd(fd.into())
        .function("passed")
        .spawn()
        .unwrap();
    assert_eq!(sb.call("passed", b"").unwrap(), b"handed over");
    let _ = std::fs::remove_dir_all(&dir);
}
