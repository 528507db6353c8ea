//! The shared region between host and runner: one memfd, mapped MAP_SHARED
//! by both (the runner inherits the descriptor across exec).
//!
//! ```text
//! 0       Header (one page)
//! 4096    request buffer   (req_cap bytes)   host writes, plugin reads
//! ...     response buffer  (resp_cap bytes)  plugin writes, host reads
//! ...     shared buffers   (page-aligned)    both, in place
//! ```
//!
//! `Header::state` is the futex word both sides sleep on. The host must
//! treat everything in the region as hostile once the plugin runs: it
//! compares `state`, reads each length once and checks it against the
//! capacity *it* chose (kept on its own side, never re-read from here).

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// The header's page; the request buffer starts after it.
pub const HEADER_SIZE: usize = 4096;

/// The runner's descriptors: 0 stdin, 1 and 2 the pipes the host drains,
/// then the region's memfd, the control pipe, and the granted ones.
pub const FD_REGION: i32 = 3;
/// The control pipe to the host (closed at the lock-down).
pub const FD_CONTROL: i32 = 4;
/// The first descriptor the host granted.
pub const FD_GRANTED: i32 = 5;
/// The header's first word, checked by the runner.
pub const MAGIC: u32 = 0x6d6e_6c64; // "mnld"

/// Runner linking the plugin; the request buffer holds the configuration.
pub const BOOT: u32 = 0;
/// Runner initialised the plugin and waits (after start-up, and never
/// again).
pub const READY: u32 = 1;
/// A function the host named is missing after the plugin's init: its
/// index in `func` (the runner's word: plugin code has run by then).
pub const LOAD_FAILED: u32 = 2;
/// Host posted a request (`func`, `req_len`).
pub const REQUEST: u32 = 3;
/// Runner posted the plugin's answer (`resp_len` = its return value).
pub const RESPONSE: u32 = 4;
/// The runner's fatal-signal handler ran (`fault_*`); it is about to die.
pub const FAULT: u32 = 5;
/// Host: it holds the runner's seccomp listener now (the runner waits for
/// this before closing its own copy and running any plugin code).
pub const LISTENING: u32 = 6;

/// The region's first page, shared by host and runner. The words either
/// side writes once the runner runs are atomics; the configuration is
/// written by the host before the spawn.
#[repr(C)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: u32,
    /// The futex word: one of the states above.
    pub state: AtomicU32,
    /// How many sides sleep on `state` (so `post` skips the wake system
    /// call when the other side is busy or spinning).
    pub sleepers: AtomicU32,
    /// Index of the function to call (in the name list given at start).
    pub func: AtomicU32,
    /// Signal number the runner's handler saw (0: none).
    pub fault_signal: AtomicU32,
    /// Unused (kept for the layout): the host learns a refused system call
    /// from the seccomp notification, never from the runner.
    pub reserved: AtomicI64,
    /// For SIGSEGV/SIGBUS: the faulting address (si_addr).
    pub fault_addr: AtomicU64,
    /// The request's length in bytes.
    pub req_len: AtomicU64,
    /// The plugin's return value: >= 0 bytes written, < 0 its error code.
    pub resp_len: AtomicI64,
    // Configuration, written by the host before spawning.
    /// The request buffer's capacity.
    pub req_cap: u64,
    /// The response buffer's capacity.
    pub resp_cap: u64,
    /// RLIMIT_AS in bytes (0: none), RLIMIT_CPU in seconds (0: none).
    pub mem_limit: u64,
    /// See `mem_limit`.
    pub cpu_limit: u64,
    /// How long the runner busy-waits for the next request before sleeping
    /// on the futex, in nanoseconds.
    pub spin_ns: u32,
    /// Number of function names that follow the path in the request buffer.
    pub nfuncs: u32,
    /// Number of descriptors granted, at 5 and up in the runner.
    pub nfds: u32,
    /// Number of grants of paths (`Access` byte then the path, after the
    /// names in the request buffer).
    pub ngrants: u32,
    /// Where the shared buffers start (page-aligned) and their total size.
    pub shared_off: u64,
    /// See `shared_off`.
    pub shared_len: u64,
    /// RLIMIT_FSIZE in bytes.
    pub fsize_limit: u64,
    /// Non-zero: the host allows running without Landlock.
    pub allow_no_landlock: u32,
    /// Index of the shared buffer the call works on in place (u32::MAX:
    /// none, the request and response buffers).
    pub buffer: AtomicU32,
    /// Non-zero: this runner is a zygote (it links the plugin, then forks
    /// instances on request, and never runs plugin code itself).
    pub zygote: u32,
}

/// Where each part of a region lies, checked: None when the sizes
/// overflow or exceed what a mapping can be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Offset of the response buffer.
    pub resp_off: usize,
    /// Offset of the shared buffers (page-aligned).
    pub shared_off: usize,
    /// The region's whole size.
    pub size: usize,
}

/// The layout of a region with these buffer capacities (the shared
/// buffers, each a whole number of pages, after the response buffer).
pub fn layout(req_cap: usize, resp_cap: usize, shared: &[usize]) -> Option<Layout> {
    const PAGE: usize = 4096;
    let resp_off = HEADER_SIZE.checked_add(req_cap)?;
    let shared_off = resp_off
        .checked_add(resp_cap)?
        .checked_next_multiple_of(PAGE)?;
    let mut size = shared_off;
    for &len in shared {
        size = size.checked_add(len.checked_next_multiple_of(PAGE)?)?;
    }
    // ftruncate takes an off_t; a mapping no larger than the address space.
    (size <= i64::MAX as usize >> 1).then_some(Layout {
        resp_off,
        shared_off,
        size,
    })
}

/// A mapping of the region. The raw pointer is shared with the other
/// process; all access goes through the header's atomics or the two
/// buffers, never through references that assume exclusivity.
pub struct Region {
    /// The first byte of the mapping.
    pub base: *mut u8,
    /// Its length in bytes.
    pub len: usize,
}

// SAFETY: the region is plain shared memory; synchronisation is by the
// header's atomics.
unsafe impl Send for Region {}
// SAFETY: shared between the sandbox and its watcher thread: through
// `&Region` only the header's atomics are touched, and the buffers are
// read and written by raw copies, never through references.
unsafe impl Sync for Region {}

impl Region {
    /// Maps `len` bytes of `fd` shared, read-write.
    pub fn map(fd: i32, len: usize) -> std::io::Result<Region> {
        // SAFETY: a fresh mapping chosen by the kernel; nothing aliases it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Region {
            base: p.cast(),
            len,
        })
    }

    /// The header, in the region's first page.
    pub fn header(&self) -> &Header {
        // SAFETY: the first page is a Header (all fields valid for any bit
        // pattern), mapped for the life of self.
        unsafe { &*(self.base as *const Header) }
    }

    /// Raw header for the host's one-time configuration before spawn.
    pub fn header_mut(&mut self) -> &mut Header {
        // SAFETY: as above; before spawn no other process maps it.
        unsafe { &mut *(self.base as *mut Header) }
    }

    /// The request buffer, after the header.
    pub fn req(&self) -> *mut u8 {
        // SAFETY: inside the mapping (see `layout`).
        unsafe { self.base.add(HEADER_SIZE) }
    }

    /// The response buffer, after the request buffer of `req_cap` bytes.
    pub fn resp(&self, req_cap: usize) -> *mut u8 {
        // SAFETY: inside the mapping (see `layout`).
        unsafe { self.base.add(HEADER_SIZE + req_cap) }
    }

    /// The byte at `off`; the caller keeps `off` inside the region.
    pub fn at(&self, off: usize) -> *mut u8 {
        debug_assert!(off <= self.len);
        // SAFETY: inside the mapping (the caller's bound).
        unsafe { self.base.add(off) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: our own mapping, no references into it outlive self.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

// Futexes on a MAP_SHARED page: no FUTEX_PRIVATE_FLAG, so the kernel keys
// the word by (inode, offset) and both processes meet on it.

/// Sleeps while `*word == expected`, at most `timeout`. Returns on a wake,
/// a timeout (then true), a signal or a changed value; the caller
/// re-checks the word.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) -> bool {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: word is a valid aligned u32 for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        )
    };
    // SAFETY: errno of this thread.
    rc != 0 && unsafe { *libc::__errno_location() } == libc::ETIMEDOUT
}

/// Wakes every sleeper on `word` (there is at most one: the other side).
pub fn futex_wake(word: &AtomicU32) {
    // SAFETY: as futex_wait.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX) };
}

/// Busy-waits up to `limit` while `*word == busy`; returns the value seen
/// last. The clock (vDSO, no system call) is read every 64 turns.
pub fn spin_while(word: &AtomicU32, busy: u32, limit: Duration) -> u32 {
    let start = std::time::Instant::now();
    let mut turns = 0u32;
    loop {
        let s = word.load(Ordering::Acquire);
        if s != busy {
            return s;
        }
        turns = turns.wrapping_add(1);
        if turns % 64 == 0 && start.elapsed() >= limit {
            return s;
        }
        std::hint::spin_loop();
    }
}

/// Sleeps while `h.state == expected`, at most `timeout` (true if it ran
/// out). Announces itself in `sleepers` first; with `post` this is the
/// store-then-load pattern on both sides (all SeqCst): either `post` sees
/// the sleeper and wakes it, or the sleeper sees the new state and does
/// not sleep (and a wake that comes before the futex call finds the value
/// changed, so the kernel does not sleep either).
pub fn sleep(h: &Header, expected: u32, timeout: Duration) -> bool {
    h.sleepers.fetch_add(1, Ordering::SeqCst);
    let timed_out =
        h.state.load(Ordering::SeqCst) == expected && futex_wait(&h.state, expected, timeout);
    h.sleepers.fetch_sub(1, Ordering::SeqCst);
    timed_out
}

/// Publishes a new state and wakes the other side if it sleeps.
/// Async-signal-safe (the fatal-signal handler uses it).
pub fn post(h: &Header, state: u32) {
    h.state.store(state, Ordering::SeqCst);
    if h.sleepers.load(Ordering::SeqCst) != 0 {
        futex_wake(&h.state);
    }
}
