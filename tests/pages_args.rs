//! `minld::pages::snapshot` is public and safe: any arguments get a result
//! or a typed error, never a panic or an abort. A span or a segment that
//! runs past the end of the address space is refused naming it
//! (`Error::BadRange`); a span far larger than anything mapped is answered
//! with work bounded by what is mapped (no per-page buffer for unmapped
//! stretches).

use std::path::Path;

use minld::pages::snapshot;
use minld::{Error, Loader};

const LIBZ: &str = "/usr/lib/x86_64-linux-gnu/libz.so.1";

#[test]
fn a_span_past_the_address_space_is_refused() {
    let e = snapshot(Path::new("x"), usize::MAX - 0xfff, 0x2000, &[], false)
        .expect_err("the span wraps");
    match e {
        Error::BadRange {
            what: "span",
            segment: None,
            start,
            len: 0x2000,
            ..
        } => assert_eq!(start, (usize::MAX - 0xfff) as u64),
        other => panic!("expected BadRange, got {other:?}"),
    }
    // Its end is the last byte, but rounded up to a page it wraps too.
    assert!(matches!(
        snapshot(Path::new("x"), usize::MAX & !0xfff, 0xfff, &[], false),
        Err(Error::BadRange { what: "span", .. })
    ));
}

#[test]
fn a_segment_past_the_address_space_is_refused() {
    let m = Loader::new().map(LIBZ).expect("map libz");
    let (start, len) = m.span();
    for (addr, file, mem) in [
        (usize::MAX - 0x10, 0, 0x1000),
        (usize::MAX - 0x10, 0x1000, 0x1000),
        (start, 0, u64::MAX),
    ] {
        let mut segs = m.segments().to_vec();
        segs[1].addr = addr;
        segs[1].file_size = file;
        segs[1].mem_size = mem;
        match snapshot(Path::new(LIBZ), start, len, &segs, false) {
            Err(Error::BadRange {
                segment: Some(1),
                start,
                len,
                ..
            }) => {
                assert_eq!(start, addr as u64);
                assert!(len == file || len == mem, "{len:#x}");
            }
            other => panic!("expected BadRange of segment 1, got {other:?}"),
        }
    }
}

#[test]
fn a_huge_span_costs_only_what_is_mapped() {
    let m = Loader::new().map(LIBZ).expect("map libz");
    let (start, _) = m.span();
    let page = 4096;
    // 64 TiB from libz's base: libz, then whatever else is mapped above it,
    // and mostly nothing.
    let len = 1usize << 46;
    let snap = snapshot(Path::new(LIBZ), start, len, m.segments(), false).expect("snapshot");
    let total: usize = snap.mappings.iter().map(|p| p.pages).sum();
    assert_eq!(total, len / page, "the whole span, in mappings");
    let mut mapped = 0;
    for p in &snap.mappings {
        match p.vma {
            Some(_) => {
                assert_eq!(p.states.len(), p.pages);
                mapped += p.pages;
            }
            None => {
                assert!(p.states.is_empty() && p.present == 0, "{p:?}");
                assert_eq!(p.prot, "----");
            }
        }
    }
    assert!(mapped < total / 1000, "{mapped} of {total} pages mapped");
    // libz's own pages are read as for its own span.
    let own = m.pages().expect("pages");
    for o in &own.mappings {
        let same = snap
            .mappings
            .iter()
            .find(|p| p.start == o.start && p.part == o.part)
            .expect("libz's mapping in the large snapshot");
        assert_eq!(same.pages, o.pages);
        assert_eq!(same.states.len(), o.states.len());
    }
}

/// Another thread mapping and unmapping inside the span while snapshots
/// are read: a stretch listed in smaps can be gone when its pages are
/// asked about. Every snapshot still succeeds and covers the whole span
/// (CI once failed here with `mincore` ENOMEM before snapshots were
/// re-read on it).
#[test]
fn mappings_changing_under_a_snapshot_are_read_again() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let m = Loader::new().map(LIBZ).expect("map libz");
    let (start, _) = m.span();
    let len = 1usize << 40;
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut rounds = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Fresh mappings land near the others, so inside the span
                // (or not: either way the VMA list changes).
                let maps: Vec<minld::MappedObject> = (0..4)
                    .filter_map(|_| Loader::new().map(LIBZ).ok())
                    .collect();
                drop(maps);
                rounds += 1;
            }
            rounds
        })
    };
    for _ in 0..200 {
        let snap = snapshot(Path::new(LIBZ), start, len, m.segments(), false)
            .expect("snapshot while the mappings change");
        let total: usize = snap.mappings.iter().map(|p| p.pages).sum();
        assert_eq!(total, len / 4096);
    }
    stop.store(true, Ordering::Relaxed);
    assert!(churn.join().expect("churn thread") > 0);
}
