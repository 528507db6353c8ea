//! The runner's seccomp-bpf filter, assembled by hand (no libseccomp).
//!
//! Layout of the program:
//!
//! 1. `arch != AUDIT_ARCH_X86_64` → kill (an i386 `int 0x80` call has
//!    other numbers: 5 is `open` there, `fstat` here).
//! 2. `nr >= 0x40000000` (the x32 bit: same numbers, other ABI) → kill.
//! 3. The allow-list, one `jeq nr → ALLOW` per entry.
//! 4. Entries checked by argument: `write` only to fd 2, `mmap`/`mprotect`
//!    without PROT_EXEC (refused with EPERM), `madvise` by advice,
//!    `tgkill` only to ourselves; while loading, `openat` for reading.
//! 5. Anything else → SECCOMP_RET_TRAP: the kernel sends SIGSYS with
//!    `si_syscall`, the runner's handler writes it to shared memory and
//!    the process dies of SIGSYS (see runner.rs).
//!
//! The runner installs two filters; the kernel runs both on every call and
//! the stricter answer wins. The first (`Stage::Loading`, before the plugin
//! is loaded and its constructors run) also allows [`LOADING`]: opening and
//! mapping files (Landlock decides which) and installing the second;
//! `Stage::Serving` is the allow-list alone.

use libc::{sock_filter, sock_fprog};

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// struct seccomp_data { int nr; u32 arch; u64 ip; u64 args[6]; }
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
/// Low 32 bits of args[i] (little-endian).
const fn off_arg_lo(i: u32) -> u32 {
    16 + 8 * i
}

const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const RET_TRAP: u32 = libc::SECCOMP_RET_TRAP;
const RET_KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
const RET_EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;

/// Allowed with any arguments. Each entry says who needs it.
pub const ALLOWED: &[(libc::c_long, &str)] = &[
    // IPC: the runner sleeps/wakes on the shared futex word; glibc's locks
    // (malloc arenas, stdio) use it when contended.
    (libc::SYS_futex, "futex"),
    // Leaving: the runner exits with _exit (exit_group); `exit` for a
    // thread-style exit some runtimes use.
    (libc::SYS_exit_group, "exit_group"),
    (libc::SYS_exit, "exit"),
    // malloc: brk grows/trims the main arena, mmap/munmap serve blocks of
    // 128 KiB and more, mremap is realloc of such a block. (madvise, for
    // free() in non-main heaps, is below, by advice.)
    (libc::SYS_brk, "brk"),
    (libc::SYS_munmap, "munmap"),
    (libc::SYS_mremap, "mremap"),
    // Returning from any signal handler (ours for fatal signals).
    (libc::SYS_rt_sigreturn, "rt_sigreturn"),
    // abort()/raise(): glibc blocks signals around tgkill; getpid/gettid
    // for raise's target; the runner's parent check uses getppid.
    (libc::SYS_rt_sigprocmask, "rt_sigprocmask"),
    (libc::SYS_getpid, "getpid"),
    (libc::SYS_gettid, "gettid"),
    (libc::SYS_getppid, "getppid"),
    // Time: normally the vDSO answers without a system call; these are
    // the fallbacks when the clock source is not vDSO-capable.
    (libc::SYS_clock_gettime, "clock_gettime"),
    (libc::SYS_gettimeofday, "gettimeofday"),
    // Harmless waits (the host's timeout bounds them): sleep()/usleep()
    // and yields in spin loops.
    (libc::SYS_clock_nanosleep, "clock_nanosleep"),
    (libc::SYS_sched_yield, "sched_yield"),
    // The kernel restarts an interrupted timed wait with it (the runner's
    // futex wait after the host was stopped and continued, Ctrl-Z).
    (libc::SYS_restart_syscall, "restart_syscall"),
    // Rust's HashMap seeds, glibc 2.36's arc4random.
    (libc::SYS_getrandom, "getrandom"),
];

/// Also allowed while loading: what minld does to find, read and map the
/// plugin and its dependencies (and ld.so.cache), and what the runner does
/// to lock itself down afterwards (each of those can only narrow).
/// (And `openat`, read-only: see `program`.)
pub const LOADING: &[(libc::c_long, &str)] = &[
    (libc::SYS_read, "read"),
    (libc::SYS_pread64, "pread64"),
    (libc::SYS_newfstatat, "newfstatat"),
    (libc::SYS_fstat, "fstat"),
    (libc::SYS_lseek, "lseek"),
    (libc::SYS_close, "close"),
    // std::thread::available_parallelism (minld sizes its relocation
    // threads with it; threads themselves are not allowed).
    (libc::SYS_sched_getaffinity, "sched_getaffinity"),
    (libc::SYS_landlock_create_ruleset, "landlock_create_ruleset"),
    (libc::SYS_landlock_restrict_self, "landlock_restrict_self"),
    (libc::SYS_seccomp, "seccomp"),
];

/// Which filter.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Before and during the load: also [`LOADING`], and executable maps.
    Loading,
    /// After it: [`ALLOWED`] only, no new executable memory.
    Serving,
}

fn stmt(code: u32, k: u32) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

const LD_ABS: u32 = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
const JEQ: u32 = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
const JGE: u32 = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;
const JSET: u32 = libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K;
const RET: u32 = libc::BPF_RET | libc::BPF_K;

/// The program. `pid` is the runner's own process id (for tgkill).
pub fn program(pid: u32, stage: Stage) -> Vec<sock_filter> {
    let mut p = vec![
        stmt(LD_ABS, OFF_ARCH),
        jump(JEQ, AUDIT_ARCH_X86_64, 1, 0),
        stmt(RET, RET_KILL),
        stmt(LD_ABS, OFF_NR),
        jump(JGE, X32_SYSCALL_BIT, 0, 1),
        stmt(RET, RET_KILL),
    ];
    let loading = if stage == Stage::Loading {
        LOADING
    } else {
        &[]
    };
    for &(nr, _) in ALLOWED.iter().chain(loading) {
        p.push(jump(JEQ, nr as u32, 0, 1));
        p.push(stmt(RET, RET_ALLOW));
    }
    // write(2, ...): stderr only, for diagnostics (a panic message). Each
    // block below loads an argument, so it must end in returns only: the
    // accumulator no longer holds nr afterwards.
    p.extend([
        jump(JEQ, libc::SYS_write as u32, 0, 4),
        stmt(LD_ABS, off_arg_lo(0)),
        jump(JEQ, 2, 0, 1),
        stmt(RET, RET_ALLOW),
        stmt(RET, RET_TRAP),
    ]);
    // writev(2, ...): glibc's fatal messages (double free, stack smashing)
    // before it aborts, so the host sees SIGABRT, not a forbidden call.
    p.extend([
        jump(JEQ, libc::SYS_writev as u32, 0, 4),
        stmt(LD_ABS, off_arg_lo(0)),
        jump(JEQ, 2, 0, 1),
        stmt(RET, RET_ALLOW),
        stmt(RET, RET_TRAP),
    ]);
    // openat(dirfd, path, flags) while loading: for reading only (EACCES
    // otherwise), so the loading stage is read-only even without Landlock
    // (which then also limits *which* files). Not at all when serving.
    if stage == Stage::Loading {
        let writing = (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC) as u32;
        p.extend([
            jump(JEQ, libc::SYS_openat as u32, 0, 4),
            stmt(LD_ABS, off_arg_lo(2)),
            jump(JSET, writing, 1, 0),
            stmt(RET, RET_ALLOW),
            stmt(RET, libc::SECCOMP_RET_ERRNO | libc::EACCES as u32),
        ]);
    }
    // mmap(addr, len, prot, ...) and mprotect(addr, len, prot): memory for
    // malloc, but no new executable memory (EPERM, so a JIT can fall back
    // rather than die). The plugin's code was mapped before the filter.
    // (While loading anything goes: the loader maps code.)
    let no_exec = if stage == Stage::Serving {
        RET_EPERM
    } else {
        RET_ALLOW
    };
    for nr in [libc::SYS_mmap, libc::SYS_mprotect] {
        p.extend([
            jump(JEQ, nr as u32, 0, 4),
            stmt(LD_ABS, off_arg_lo(2)),
            jump(JSET, libc::PROT_EXEC as u32, 1, 0),
            stmt(RET, RET_ALLOW),
            stmt(RET, no_exec),
        ]);
    }
    // madvise(addr, len, advice): the advice malloc and ordinary code give
    // (NORMAL, RANDOM, SEQUENTIAL, WILLNEED, DONTNEED, FREE, HUGEPAGE,
    // NOHUGEPAGE); others (MADV_HWPOISON with CAP_SYS_ADMIN...) get EPERM.
    let advice: &[u32] = &[0, 1, 2, 3, 4, 8, 14, 15];
    p.push(jump(
        JEQ,
        libc::SYS_madvise as u32,
        0,
        advice.len() as u8 + 3,
    ));
    p.push(stmt(LD_ABS, off_arg_lo(2)));
    for (i, &a) in advice.iter().enumerate() {
        // Equal: jump over the rest of the list to ALLOW.
        p.push(jump(JEQ, a, (advice.len() - i) as u8, 0));
    }
    p.push(stmt(RET, RET_EPERM));
    p.push(stmt(RET, RET_ALLOW));
    // tgkill(tgid, tid, sig): only to our own process (abort(), and the
    // fatal-signal handler re-raising its signal).
    p.extend([
        jump(JEQ, libc::SYS_tgkill as u32, 0, 4),
        stmt(LD_ABS, off_arg_lo(0)),
        jump(JEQ, pid, 0, 1),
        stmt(RET, RET_ALLOW),
        stmt(RET, RET_TRAP),
    ]);
    p.push(stmt(RET, RET_TRAP));
    p
}

/// Installs the filter on the calling thread (the runner has one thread).
/// Requires no_new_privs (or CAP_SYS_ADMIN).
pub fn install(pid: u32, stage: Stage) -> std::io::Result<()> {
    let prog = program(pid, stage);
    let fprog = sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut sock_filter,
    };
    // SAFETY: fprog points at a valid program for the call's duration; the
    // kernel copies it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const sock_fprog,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
