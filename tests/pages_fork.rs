//! Page states across a fork: libz's pages written by its load (relocated
//! data, anonymous copies of file pages, "Private") are, while a forked
//! child lives, shared copy on write with it: `SharedCopy`, never "Clean"
//! (not written), while pages not written stay "Clean" or "Shared". Once
//! the child has gone, the written pages are this process's own again.

use std::collections::HashMap;

use minld::pages::{PageState, Snapshot};
use minld::Loader;

const LIBZ: &str = "/usr/lib/x86_64-linux-gnu/libz.so.1";

/// Each page's address and state.
fn states(snap: &Snapshot) -> HashMap<usize, PageState> {
    snap.mappings
        .iter()
        .flat_map(|m| {
            m.states
                .iter()
                .enumerate()
                .map(move |(i, &s)| (m.start + i * 4096, s))
        })
        .collect()
}

#[test]
fn written_pages_are_shared_copies_while_a_fork_child_lives() {
    // SAFETY: the system's libz; its init code is harmless.
    let lib = unsafe { Loader::new().open(LIBZ) }.expect("open libz");
    // A copy from bytes: anonymous memory, every page written by the copy.
    let copy = Loader::new()
        .map_bytes(&std::fs::read(LIBZ).expect("read libz"))
        .expect("map_bytes libz");
    let copied = states(&copy.pages().expect("pages of the copy"));
    let before = states(&lib.pages().expect("pages before the fork"));
    let written: Vec<usize> = before
        .iter()
        .filter(|(_, &s)| s == PageState::Private)
        .map(|(&a, _)| a)
        .collect();
    let clean_files: Vec<usize> = before
        .iter()
        .filter(|(_, &s)| s == PageState::Clean)
        .map(|(&a, _)| a)
        .collect();
    assert!(!written.is_empty(), "libz's load writes pages: {before:?}");

    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe returns.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: the child calls only close, read and _exit (async-signal
    // safe) and waits until this process closes the pipe's write end.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        let mut b = 0u8;
        // SAFETY: the child's own copies of the descriptors; `b` is one
        // writable byte.
        unsafe {
            libc::close(fds[1]);
            libc::read(fds[0], (&raw mut b).cast(), 1);
            libc::_exit(0);
        }
    }
    let during = states(&lib.pages().expect("pages during the fork"));
    let copied_during = states(&copy.pages().expect("pages of the copy during the fork"));
    // SAFETY: our write end; closing it lets the child's read return 0.
    unsafe {
        libc::close(fds[1]);
    }
    let mut status = 0;
    // SAFETY: our child, waited for once.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    // SAFETY: our read end.
    unsafe {
        libc::close(fds[0]);
    }
    assert_eq!(waited, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);

    for a in &written {
        assert_eq!(
            during[a],
            PageState::SharedCopy,
            "{a:#x}: written, shared with the child"
        );
    }
    // Pages not written stay so (a file VMA the child has not touched is
    // not copied into its page tables at fork: still mapped once).
    for a in &clean_files {
        assert!(
            matches!(during[a], PageState::Clean | PageState::Shared),
            "{a:#x}: not written: {:?}",
            during[a]
        );
    }
    // The copy's written pages, in anonymous VMAs: smaps counts every one
    // as written, so none can be the zero page.
    let mut n = 0;
    for (a, s) in &copied {
        if *s == PageState::Private {
            assert_eq!(copied_during[a], PageState::SharedCopy, "copy {a:#x}");
            n += 1;
        }
    }
    assert!(n > 0, "the copy's pages are written: {copied:?}");
    let after = states(&lib.pages().expect("pages after the child"));
    for a in &written {
        assert_eq!(after[a], PageState::Private, "{a:#x}: ours alone again");
    }
}
