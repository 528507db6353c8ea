//! The runner's seccomp-bpf filters, assembled by hand (see the README for
//! why not a filter compiler: the serving filter's answer for everything
//! unlisted is a user notification, which the crates we weighed lack).
//!
//! Layout of a program:
//!
//! 1. `arch != AUDIT_ARCH_X86_64`, or the x32 bit in `nr` → notify (an
//!    i386 `int 0x80` call has other numbers: 5 is `open` there, `fstat`
//!    here; x32 shares ours with bit 30 set). The host reports the ABI.
//! 2. The allow-list, one `jeq nr → ALLOW` per entry.
//! 3. Entries checked by argument (serving only): `mmap`/`mprotect`
//!    without PROT_EXEC (EPERM otherwise), `madvise` by advice, `tgkill`
//!    only to ourselves, `fcntl` (record locks included) and `ioctl` by
//!    command, `prlimit64` only
//!    reading our own limits; `clone3` answers
//!    ENOSYS so glibc falls back to `clone`, whose flags the host can read.
//! 4. Anything else → SECCOMP_RET_USER_NOTIF: the calling thread stops and
//!    the host, which holds the listener, sees the call's number, ABI and
//!    arguments from the kernel. It lets a granted `openat` go on, and a
//!    `clone` of a thread while the runner is under its thread limit,
//!    answers an `fstat` through a path itself, and kills the runner for
//!    anything else, naming the call (see `watch.rs`). Nothing the plugin
//!    writes can forge that report.
//!
//! The runner installs two filters; the kernel runs both on every call and
//! the answer of higher precedence wins (ERRNO over USER_NOTIF over ALLOW).
//! So the first, `Stage::Loading`, allows a superset of what the second
//! allows or checks, and notifies for the rest (with no listener attached,
//! such a call fails with ENOSYS): while minld links the plugin, which runs
//! none of its code, the calls a link needs are there and nothing else.
//! `Stage::Serving`, installed before the first instruction of the plugin
//! runs, decides everything after that.

use libc::{sock_filter, sock_fprog};

/// `AUDIT_ARCH_X86_64`, the only ABI the filters allow.
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// Set in the number of an x32 system call.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// struct seccomp_data { int nr; u32 arch; u64 ip; u64 args[6]; }
/// Offset of `nr` in `seccomp_data`.
const OFF_NR: u32 = 0;
/// Offset of `arch` in `seccomp_data`.
const OFF_ARCH: u32 = 4;
/// Low 32 bits of `args[i]` (little-endian).
const fn off_arg_lo(i: u32) -> u32 {
    16 + 8 * i
}
/// High 32 bits of `args[i]`.
const fn off_arg_hi(i: u32) -> u32 {
    20 + 8 * i
}

/// The call goes on.
const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
/// The call stops and the host decides (`SECCOMP_RET_USER_NOTIF`).
const RET_NOTIFY: u32 = 0x7fc0_0000; // SECCOMP_RET_USER_NOTIF
/// The call fails with EPERM.
const RET_EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
/// The call fails with ENOSYS (the caller falls back).
const RET_ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

/// Allowed with any arguments, in both stages. Each entry says who needs
/// it.
pub const ALLOWED: &[(libc::c_long, &str)] = &[
    // IPC: the runner sleeps/wakes on the shared futex word; glibc's locks
    // (malloc arenas, stdio, pthread_join) use it when contended.
    (libc::SYS_futex, "futex"),
    // Leaving: the runner exits with _exit (exit_group); a thread with exit.
    (libc::SYS_exit_group, "exit_group"),
    (libc::SYS_exit, "exit"),
    // malloc: brk grows/trims the main arena, mmap/munmap serve blocks of
    // 128 KiB and more, mremap is realloc of such a block. (mmap and
    // madvise are below, by argument.)
    (libc::SYS_brk, "brk"),
    (libc::SYS_munmap, "munmap"),
    (libc::SYS_mremap, "mremap"),
    // Signal handlers of the plugin's own (glibc's first pthread_create
    // installs two): signals come only from the runner itself and the
    // kernel, and no handler changes what the host observes. Returning
    // from any handler (ours for fatal signals).
    (libc::SYS_rt_sigaction, "rt_sigaction"),
    (libc::SYS_sigaltstack, "sigaltstack"),
    (libc::SYS_rt_sigreturn, "rt_sigreturn"),
    // abort()/raise() and pthread_create block signals around their work;
    // getpid/gettid for raise's target; the runner's parent check.
    (libc::SYS_rt_sigprocmask, "rt_sigprocmask"),
    (libc::SYS_getpid, "getpid"),
    (libc::SYS_gettid, "gettid"),
    (libc::SYS_getppid, "getppid"),
    // Time: normally the vDSO answers without a system call; these are
    // the fallbacks when the clock source is not vDSO-capable.
    (libc::SYS_clock_gettime, "clock_gettime"),
    (libc::SYS_clock_getres, "clock_getres"),
    (libc::SYS_gettimeofday, "gettimeofday"),
    // Harmless waits (the host's timeout bounds them): sleep()/usleep()
    // and yields in spin loops.
    (libc::SYS_clock_nanosleep, "clock_nanosleep"),
    (libc::SYS_nanosleep, "nanosleep"),
    (libc::SYS_sched_yield, "sched_yield"),
    // The kernel restarts an interrupted timed wait with it (the runner's
    // futex wait after the host was stopped and continued, Ctrl-Z).
    (libc::SYS_restart_syscall, "restart_syscall"),
    // Randomness without a file: Rust's HashMap seeds, glibc 2.36's
    // arc4random, a plugin's own generator.
    (libc::SYS_getrandom, "getrandom"),
    // Threads: a new thread registers its robust futex list and rseq area;
    // glibc asks the affinity mask for sysconf(_SC_NPROCESSORS_ONLN)'s
    // cousins and std for available_parallelism.
    (libc::SYS_set_robust_list, "set_robust_list"),
    (libc::SYS_rseq, "rseq"),
    (libc::SYS_sched_getaffinity, "sched_getaffinity"),
    // On descriptors: the runner holds only its stdin (/dev/null), stdout
    // and stderr (pipes the host drains) and the files the host granted or
    // the plugin opened through the host's check, so any descriptor call
    // reaches only those.
    (libc::SYS_read, "read"),
    (libc::SYS_write, "write"),
    (libc::SYS_pread64, "pread64"),
    (libc::SYS_pwrite64, "pwrite64"),
    (libc::SYS_readv, "readv"),
    (libc::SYS_writev, "writev"),
    (libc::SYS_close, "close"),
    (libc::SYS_fstat, "fstat"),
    (libc::SYS_lseek, "lseek"),
    (libc::SYS_getdents64, "getdents64"),
    (libc::SYS_dup, "dup"),
    (libc::SYS_dup2, "dup2"),
    (libc::SYS_dup3, "dup3"),
    (libc::SYS_fsync, "fsync"),
    (libc::SYS_fdatasync, "fdatasync"),
    (libc::SYS_ftruncate, "ftruncate"),
    // What the process is, read only, no effect on anything: glibc's qsort
    // asks sysinfo for the memory size (an array over 1 KiB), sysconf
    // getrlimit (below, prlimit64) for _SC_OPEN_MAX; uname, the ids and
    // getcwd are asked by ordinary libraries. They tell the plugin the
    // kernel's version, the host's user and working directory, the
    // machine's memory and load: nothing of a file's content.
    (libc::SYS_uname, "uname"),
    (libc::SYS_sysinfo, "sysinfo"),
    (libc::SYS_getuid, "getuid"),
    (libc::SYS_geteuid, "geteuid"),
    (libc::SYS_getgid, "getgid"),
    (libc::SYS_getegid, "getegid"),
    (libc::SYS_getresuid, "getresuid"),
    (libc::SYS_getresgid, "getresgid"),
    (libc::SYS_getgroups, "getgroups"),
    (libc::SYS_getrlimit, "getrlimit"),
    (libc::SYS_getrusage, "getrusage"),
    (libc::SYS_times, "times"),
    (libc::SYS_getcwd, "getcwd"),
];

/// Also allowed while loading, with any arguments: what minld does to
/// find, read and map the plugin and its dependencies (Landlock decides
/// which files), what the runner does to lock itself down (each step can
/// only narrow), and every call the serving filter checks by argument or
/// answers itself (so that its answer, not this filter's, decides).
pub const LOADING: &[(libc::c_long, &str)] = &[
    (libc::SYS_openat, "openat"),
    (libc::SYS_newfstatat, "newfstatat"),
    (libc::SYS_mmap, "mmap"),
    (libc::SYS_mprotect, "mprotect"),
    (libc::SYS_madvise, "madvise"),
    (libc::SYS_tgkill, "tgkill"),
    (libc::SYS_clone, "clone"),
    (libc::SYS_clone3, "clone3"),
    (libc::SYS_fcntl, "fcntl"),
    (libc::SYS_ioctl, "ioctl"),
    (libc::SYS_landlock_create_ruleset, "landlock_create_ruleset"),
    (libc::SYS_landlock_add_rule, "landlock_add_rule"),
    (libc::SYS_landlock_restrict_self, "landlock_restrict_self"),
    (libc::SYS_seccomp, "seccomp"),
    // A zygote: it takes requests (descriptors) over a socket, forks,
    // and the fork ties its life to the host's and places descriptors.
    (libc::SYS_recvmsg, "recvmsg"),
    (libc::SYS_prctl, "prctl"),
    (libc::SYS_close_range, "close_range"),
    (libc::SYS_prlimit64, "prlimit64"),
];

/// Which filter.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stage {
    /// While minld links the plugin (none of its code runs).
    Loading,
    /// From before the plugin's first instruction on.
    Serving,
}

/// A BPF statement.
fn stmt(code: u32, k: u32) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

/// A BPF conditional jump: `jt` instructions ahead if true, `jf` if false.
fn jump(code: u32, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// Load a 32-bit word of `seccomp_data`.
const LD_ABS: u32 = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
/// Jump if equal.
const JEQ: u32 = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
/// Jump if greater or equal.
const JGE: u32 = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;
/// Jump if any bit of `k` is set.
const JSET: u32 = libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K;
/// Return `k`.
const RET: u32 = libc::BPF_RET | libc::BPF_K;

/// The clone flags a thread has (glibc's pthread_create passes these and
/// more); a new process lacks CLONE_THREAD.
const THREAD_FLAGS: u32 = (libc::CLONE_VM | libc::CLONE_SIGHAND | libc::CLONE_THREAD) as u32;
/// Flags no thread of the plugin may pass: new namespaces, and a parent
/// other than ours.
const NEVER_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_PARENT
    | libc::CLONE_PTRACE
    | libc::CLONE_VFORK) as u32;

/// Whether clone flags `flags` (the call's first argument, as the kernel
/// reported it) make a thread: CLONE_VM, CLONE_SIGHAND and CLONE_THREAD
/// all set, no namespace or parent flags, nothing in the high word. A
/// process is never one (glibc's fork passes SIGCHLD alone).
pub(super) fn is_thread_clone(flags: u64) -> bool {
    let lo = flags as u32;
    flags >> 32 == 0 && lo & NEVER_FLAGS == 0 && lo & THREAD_FLAGS == THREAD_FLAGS
}

/// `jeq nr, then: load arg, accept one of `values` → ALLOW, else `other``.
/// Must come where the accumulator holds nr; leaves it clobbered only on
/// the matching path, which ends in returns.
fn by_value(p: &mut Vec<sock_filter>, nr: libc::c_long, arg: u32, values: &[u32], other: u32) {
    p.push(jump(JEQ, nr as u32, 0, values.len() as u8 + 3));
    p.push(stmt(LD_ABS, off_arg_lo(arg)));
    for (i, &v) in values.iter().enumerate() {
        // Equal: jump over the rest of the list and the refusal to ALLOW.
        p.push(jump(JEQ, v, (values.len() - i) as u8, 0));
    }
    p.push(stmt(RET, other));
    p.push(stmt(RET, RET_ALLOW));
}

/// The program. `pid` is the runner's own process id (for tgkill).
pub fn program(pid: u32, stage: Stage) -> Vec<sock_filter> {
    let mut p = vec![
        stmt(LD_ABS, OFF_ARCH),
        jump(JEQ, AUDIT_ARCH_X86_64, 1, 0),
        stmt(RET, RET_NOTIFY),
        stmt(LD_ABS, OFF_NR),
        jump(JGE, X32_SYSCALL_BIT, 0, 1),
        stmt(RET, RET_NOTIFY),
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
    if stage == Stage::Serving {
        serving_checks(&mut p, pid);
    }
    p.push(stmt(RET, RET_NOTIFY));
    p
}

/// The serving filter's calls checked by argument. Each block starts with
/// nr in the accumulator and, once it loads an argument, ends in returns.
fn serving_checks(p: &mut Vec<sock_filter>, pid: u32) {
    // clone(flags, ...) is not allowed here: every clone goes to the host,
    // which lets a thread ([`is_thread_clone`]) go on while the runner has
    // fewer than its thread limit and kills it for a process. (A filter
    // cannot count: allowing threads here let a plugin make threads until
    // the machine ran out of process ids.)
    // clone3 passes its flags in memory, out of a filter's reach: ENOSYS
    // makes glibc fall back to clone.
    p.extend([
        jump(JEQ, libc::SYS_clone3 as u32, 0, 1),
        stmt(RET, RET_ENOSYS),
    ]);
    // mmap(addr, len, prot, ...) and mprotect(addr, len, prot): memory for
    // malloc and thread stacks, but no new executable memory (EPERM, so a
    // JIT can fall back rather than die). The code was mapped before.
    for nr in [libc::SYS_mmap, libc::SYS_mprotect] {
        p.extend([
            jump(JEQ, nr as u32, 0, 4),
            stmt(LD_ABS, off_arg_lo(2)),
            jump(JSET, libc::PROT_EXEC as u32, 1, 0),
            stmt(RET, RET_ALLOW),
            stmt(RET, RET_EPERM),
        ]);
    }
    // madvise(addr, len, advice): the advice malloc, thread exit and
    // ordinary code give (NORMAL, RANDOM, SEQUENTIAL, WILLNEED, DONTNEED,
    // FREE, HUGEPAGE, NOHUGEPAGE); others (MADV_HWPOISON...) get EPERM.
    by_value(
        p,
        libc::SYS_madvise,
        2,
        &[0, 1, 2, 3, 4, 8, 14, 15],
        RET_EPERM,
    );
    // tgkill(tgid, tid, sig): only within our own process (abort(), the
    // fatal-signal handler re-raising its signal, pthread_kill).
    by_value(p, libc::SYS_tgkill, 0, &[pid], RET_NOTIFY);
    // fcntl(fd, cmd): F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL,
    // F_DUPFD_CLOEXEC, and the record locks (F_GETLK, F_SETLK, F_SETLKW
    // and their open-file-description forms: SQLite locks its database on
    // every transaction), which act only on a descriptor the runner holds;
    // not F_SETOWN/F_SETSIG (signals to other processes).
    let fcntl = [
        0,
        1,
        2,
        3,
        4,
        libc::F_DUPFD_CLOEXEC as u32,
        libc::F_GETLK as u32,
        libc::F_SETLK as u32,
        libc::F_SETLKW as u32,
        libc::F_OFD_GETLK as u32,
        libc::F_OFD_SETLK as u32,
        libc::F_OFD_SETLKW as u32,
    ];
    by_value(p, libc::SYS_fcntl, 1, &fcntl, RET_NOTIFY);
    // ioctl(fd, cmd): isatty's TCGETS, TIOCGWINSZ and FIONREAD only (on the
    // runner's pipes and files they answer ENOTTY or a count).
    let ioctl = [
        libc::TCGETS as u32,
        libc::TIOCGWINSZ as u32,
        libc::FIONREAD as u32,
    ];
    by_value(p, libc::SYS_ioctl, 1, &ioctl, RET_NOTIFY);
    // prlimit64(pid, resource, new, old): glibc's getrlimit, reading its
    // own limits only (pid 0, no new limit); setting one stops for the
    // host, which kills the runner (its limits are the host's to set).
    p.extend([
        jump(JEQ, libc::SYS_prlimit64 as u32, 0, 10),
        stmt(LD_ABS, off_arg_lo(0)),
        jump(JEQ, 0, 0, 7),
        stmt(LD_ABS, off_arg_hi(0)),
        jump(JEQ, 0, 0, 5),
        stmt(LD_ABS, off_arg_lo(2)),
        jump(JEQ, 0, 0, 3),
        stmt(LD_ABS, off_arg_hi(2)),
        jump(JEQ, 0, 0, 1),
        stmt(RET, RET_ALLOW),
        stmt(RET, RET_NOTIFY),
    ]);
}

/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`: the filter returns a notification
/// descriptor.
const SECCOMP_FILTER_FLAG_NEW_LISTENER: libc::c_ulong = 1 << 3;

/// Installs the filter on the calling thread (the runner has one thread
/// then). Requires no_new_privs. For the serving stage, returns the
/// listener descriptor the host takes over.
pub fn install(pid: u32, stage: Stage) -> std::io::Result<Option<i32>> {
    let prog = program(pid, stage);
    let fprog = sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut sock_filter,
    };
    let flags = match stage {
        Stage::Loading => 0,
        Stage::Serving => SECCOMP_FILTER_FLAG_NEW_LISTENER,
    };
    // SAFETY: fprog points at a valid program for the call's duration; the
    // kernel copies it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const sock_fprog,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((stage == Stage::Serving).then_some(rc as i32))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every jump lands inside the program, and every path ends in a
    /// return: a malformed program would be refused by the kernel, but
    /// this says where.
    #[test]
    fn jumps_stay_inside() {
        for stage in [Stage::Loading, Stage::Serving] {
            let p = program(1234, stage);
            assert!(p.len() < 4096, "{stage:?}: {} instructions", p.len());
            for (i, ins) in p.iter().enumerate() {
                if u32::from(ins.code) & 0x07 == libc::BPF_JMP {
                    for off in [ins.jt, ins.jf] {
                        assert!(i + 1 + (off as usize) < p.len(), "{stage:?}: jump at {i}");
                    }
                }
            }
            assert_eq!(u32::from(p.last().unwrap().code), RET);
        }
    }

    /// The loading filter allows everything the serving filter allows or
    /// checks, so the serving filter's answer is the one that counts.
    #[test]
    fn loading_is_a_superset() {
        let serving_checked = [
            libc::SYS_clone,
            libc::SYS_clone3,
            libc::SYS_mmap,
            libc::SYS_mprotect,
            libc::SYS_madvise,
            libc::SYS_tgkill,
            libc::SYS_fcntl,
            libc::SYS_ioctl,
            libc::SYS_prlimit64,
        ];
        for nr in serving_checked {
            assert!(LOADING.iter().any(|&(n, _)| n == nr), "{nr}");
        }
    }
}
