//! The runner: the child side. It is the host's own executable, re-executed
//! with `MINLD_SANDBOX=<fd>,<host pid>` in its environment; `enter` takes
//! over before the host's `main` and never returns.
//!
//! Order matters:
//! 1. map the shared region, close every other inherited descriptor;
//! 2. fatal-signal handlers on an alternate stack, no_new_privs,
//!    RLIMIT_CORE 0, RLIMIT_AS, RLIMIT_CPU;
//! 3. stage 1: Landlock layer 1 (read-only, library directories and the
//!    plugin's) and the loading seccomp filter;
//! 4. load the plugin with minld (its constructors and ifunc resolvers run
//!    here, under stage 1) and look up every function by name;
//! 5. stage 2: Landlock layer 2 (no file system, no TCP, no signals out)
//!    and the serving seccomp filter;
//! 6. READY, then serve requests until the host goes away.

use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};
use std::time::Duration;

use super::seccomp::Stage;
use super::shm::{self, Header, Region};
use super::{landlock, seccomp};

/// Readable while loading, with the plugin's own directory: where shared
/// libraries live, and /dev/urandom for libraries that seed a generator
/// from it in a constructor (after loading no file can be opened at all).
const LOADING_READABLE: &[&str] = &[
    "/dev/urandom",
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/usr/local/lib",
    "/etc/ld.so.cache",
];

/// The byte-buffer ABI every plugin function has.
pub type PluginFn = unsafe extern "C" fn(*const u8, usize, *mut u8, usize) -> isize;

/// For the signal handler: the header, our pid and tid (cached: the
/// handler must not depend on anything but atomics and raw syscalls).
static HEADER: AtomicPtr<Header> = AtomicPtr::new(std::ptr::null_mut());
static PID: AtomicI32 = AtomicI32::new(0);
static TID: AtomicI32 = AtomicI32::new(0);

/// Signals the runner reports before dying of them.
const FATAL: [i32; 8] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
    libc::SIGTRAP,
    libc::SIGSYS,
    libc::SIGXCPU,
];

/// Runs the runner. `spec` is the value of MINLD_SANDBOX.
pub fn enter(spec: &str) -> ! {
    let mut it = spec.split(',').map(|s| s.parse::<i32>().unwrap_or(-1));
    let (fd, host) = (it.next().unwrap_or(-1), it.next().unwrap_or(-1));
    // SAFETY: plain system calls.
    if fd < 0 || unsafe { libc::getppid() } != host {
        // Started by hand, or the host is already gone.
        // SAFETY: leaving at once, running nothing of the host's.
        unsafe { libc::_exit(111) };
    }
    let region = match map_region(fd) {
        Ok(r) => r,
        // SAFETY: as above.
        Err(_) => unsafe { libc::_exit(112) },
    };
    // The region lives until the process ends (enter never returns).
    HEADER.store(region.base as *mut Header, Ordering::Relaxed);
    match prepare(&region) {
        Ok(funcs) => serve(&region, &funcs, host),
        Err(msg) => {
            write_load_error(&region, &msg);
            // SAFETY: leaving without atexit handlers or destructors.
            unsafe { libc::_exit(1) }
        }
    }
}

fn map_region(fd: i32) -> std::io::Result<Region> {
    // SAFETY: fstat into a local.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let region = Region::map(fd, st.st_size as usize)?;
    // The mapping keeps the memfd alive. Close it and anything else the
    // host leaked without O_CLOEXEC: Landlock does not restrict open
    // descriptors, seccomp would (no read/write on them), but be plain.
    // SAFETY: closing our own descriptors 3 and up.
    unsafe { libc::close_range(3, u32::MAX, 0) };
    if region.header().magic != shm::MAGIC {
        return Err(std::io::Error::other("bad magic"));
    }
    Ok(region)
}

/// Steps 2–5. Returns the plugin's functions in the host's order.
fn prepare(region: &Region) -> Result<Vec<PluginFn>, String> {
    let h = region.header();
    // The configuration: path, then nfuncs names, NUL-separated.
    let cfg_len = (h.req_len.load(Ordering::Acquire) as usize).min(h.req_cap as usize);
    // SAFETY: inside the request buffer; the host is quiet until READY.
    let cfg = unsafe { std::slice::from_raw_parts(region.req(), cfg_len) }.to_vec();
    let mut parts = cfg
        .split(|&b| b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned());
    let path = parts.next().ok_or("no plugin path")?;
    let names: Vec<String> = parts.take(h.nfuncs as usize).collect();

    // SAFETY: plain system calls.
    let pid = unsafe { libc::getpid() };
    PID.store(pid, Ordering::Relaxed);
    TID.store(unsafe { libc::gettid() }, Ordering::Relaxed);
    // `ps` shows "exe" otherwise (we were started as /proc/self/exe).
    // SAFETY: a NUL-terminated name of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"minld-sandbox".as_ptr()) };
    // Handlers first: a constructor that crashes or makes a forbidden
    // call is reported like a plugin function.
    install_fatal_handlers().map_err(|e| format!("signal handlers: {e}"))?;
    // SAFETY: plain prctl/setrlimit calls on ourselves.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(format!(
                "PR_SET_NO_NEW_PRIVS: {}",
                std::io::Error::last_os_error()
            ));
        }
        set_limit(libc::RLIMIT_CORE, 0, 0)?;
        drop_capabilities()?;
        if h.mem_limit != 0 {
            set_limit(libc::RLIMIT_AS, h.mem_limit, h.mem_limit)?;
        }
        if h.cpu_limit != 0 {
            // Soft limit: SIGXCPU (reported); one second later, SIGKILL.
            set_limit(libc::RLIMIT_CPU, h.cpu_limit, h.cpu_limit + 1)?;
        }
    }
    // Stage 1, for the load: files readable beneath the plugin's directory
    // and the system's library directories only; no network, no exec, no
    // threads, no signals to others.
    let dir = match std::path::Path::new(&path).parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."), // "libx.so" relative to the cwd
    };
    let mut readable: Vec<&std::path::Path> = vec![dir];
    readable.extend(LOADING_READABLE.iter().map(std::path::Path::new));
    landlock::restrict(&readable).map_err(|e| format!("Landlock (loading layer): {e}"))?;
    seccomp::install(pid as u32, Stage::Loading).map_err(|e| format!("seccomp (loading): {e}"))?;

    // No clone under the filters: relocation stays on this thread.
    crate::reloc::SINGLE_THREADED.store(true, Ordering::Relaxed);
    // SAFETY: the plugin's constructors and ifunc resolvers run now, under
    // stage 1. The Library is leaked: the runner never unloads it (no fini
    // functions run; the process ends with _exit).
    let lib = unsafe { crate::Loader::new().open(&path) }.map_err(|e| e.to_string())?;
    let lib: &'static crate::Library = Box::leak(Box::new(lib));
    let mut funcs = Vec::with_capacity(names.len());
    for name in &names {
        // SAFETY: the byte-buffer ABI is the contract of a sandboxed plugin.
        let f = unsafe { lib.get::<PluginFn>(name) }.map_err(|e| e.to_string())?;
        funcs.push(*f);
    }

    // Stage 2, for serving: no file system at all, the allow-list only.
    landlock::restrict(&[]).map_err(|e| format!("Landlock (serving layer): {e}"))?;
    seccomp::install(pid as u32, Stage::Serving).map_err(|e| format!("seccomp (serving): {e}"))?;
    Ok(funcs)
}

/// A host running as root would hand its capabilities to the runner:
/// clear the effective, permitted and inheritable sets (with
/// no_new_privs and no exec they cannot come back).
unsafe fn drop_capabilities() -> Result<(), String> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let hdr = Header {
        version: VERSION_3,
        pid: 0,
    };
    let data = [0u32; 6]; // two { effective, permitted, inheritable }
                          // SAFETY: capset with a v3 header and two data structs.
    if unsafe { libc::syscall(libc::SYS_capset, &hdr as *const Header, data.as_ptr()) } != 0 {
        return Err(format!("capset: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

unsafe fn set_limit(res: libc::__rlimit_resource_t, soft: u64, hard: u64) -> Result<(), String> {
    let rl = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: rl is a valid rlimit.
    if unsafe { libc::setrlimit(res, &rl) } != 0 {
        return Err(format!(
            "setrlimit({res}): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn write_load_error(region: &Region, msg: &str) {
    let h = region.header();
    let n = msg.len().min(h.resp_cap as usize);
    // SAFETY: n bytes inside the response buffer.
    unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), region.resp(h.req_cap as usize), n) };
    h.resp_len.store(n as i64, Ordering::Relaxed);
    shm::post(h, shm::LOAD_FAILED);
}

/// Step 6: the request loop. Runs under seccomp: only futex, the plugin's
/// code, and the allow-list.
fn serve(region: &Region, funcs: &[PluginFn], host: i32) -> ! {
    let h = region.header();
    let (req_cap, resp_cap) = (h.req_cap as usize, h.resp_cap as usize);
    let (req, resp) = (region.req(), region.resp(req_cap));
    shm::post(h, shm::READY);
    loop {
        // Wait for REQUEST: spin a little (a quick next call is then seen
        // without a sleep and a wake-up), then sleep on the futex, waking
        // every second to check the host is still our parent.
        let mut spin = Duration::from_nanos(h.spin_ns as u64);
        loop {
            let s = h.state.load(Ordering::Acquire);
            if s == shm::REQUEST {
                break;
            }
            if !spin.is_zero() {
                shm::spin_while(&h.state, s, spin);
                spin = Duration::ZERO;
                continue;
            }
            let timed_out = shm::sleep(h, s, Duration::from_secs(1));
            // SAFETY: getppid is on the allow-list. Reparented: the host
            // is gone (PR_SET_PDEATHSIG would fire when the host *thread*
            // that spawned us exits, which is not the same).
            if timed_out && unsafe { libc::getppid() } != host {
                unsafe { libc::_exit(0) };
            }
        }
        let f = h.func.load(Ordering::Relaxed) as usize;
        let len = (h.req_len.load(Ordering::Relaxed) as usize).min(req_cap);
        let ret = match funcs.get(f) {
            // SAFETY: the plugin gets the two buffers with their sizes.
            Some(func) => unsafe { func(req, len, resp, resp_cap) },
            None => isize::MIN,
        };
        h.resp_len.store(ret as i64, Ordering::Relaxed);
        shm::post(h, shm::RESPONSE);
    }
}

/// One handler for every fatal signal, SA_RESETHAND so the kernel itself
/// puts back SIG_DFL on entry (rt_sigaction is not allowed afterwards), on
/// an alternate stack (a stack overflow is a SIGSEGV too).
fn install_fatal_handlers() -> std::io::Result<()> {
    const ALT: usize = 64 * 1024;
    // SAFETY: an anonymous mapping for the alternate stack, never freed.
    unsafe {
        let stack = libc::mmap(
            std::ptr::null_mut(),
            ALT,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if stack == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let ss = libc::stack_t {
            ss_sp: stack,
            ss_flags: 0,
            ss_size: ALT,
        };
        if libc::sigaltstack(&ss, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_fatal as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESETHAND | libc::SA_ONSTACK;
        libc::sigemptyset(&mut sa.sa_mask);
        for sig in FATAL {
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Records the signal (and for SIGSYS the refused system call) in the
/// header, wakes the host, and makes sure the process dies *of this
/// signal*: it queues the signal to itself (tgkill, allowed only towards
/// our own pid); it is blocked while the handler runs and its action is
/// SIG_DFL by now, so it kills the process as the handler returns. (For a
/// fault, returning would re-run the faulting instruction anyway.)
extern "C" fn on_fatal(sig: i32, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    let h = HEADER.load(Ordering::Relaxed);
    if !h.is_null() {
        // SAFETY: the header is mapped for the life of the process.
        let h = unsafe { &*h };
        // siginfo_t on x86-64: the union starts at 16; for SIGSYS
        // _call_addr (8 bytes) then _syscall (int) at 24; for faults
        // si_addr at 16.
        // SAFETY: the kernel's siginfo, valid during the handler.
        let (addr, nr) = unsafe {
            let p = info as *const u8;
            (*(p.add(16) as *const u64), *(p.add(24) as *const i32))
        };
        let code = unsafe { (*info).si_code };
        // si_code SYS_SECCOMP (1): from the filter, si_syscall is valid (a
        // SIGSYS sent with kill/tgkill has none).
        let from_filter = sig == libc::SIGSYS && code == 1;
        h.fault_syscall
            .store(if from_filter { nr as i64 } else { -1 }, Ordering::Relaxed);
        // si_addr only means something for a fault the kernel raised
        // (si_code > 0), not for kill/tgkill/abort; u64::MAX: none.
        let fault = code > 0 && sig != libc::SIGSYS && sig != libc::SIGXCPU;
        h.fault_addr
            .store(if fault { addr } else { u64::MAX }, Ordering::Relaxed);
        h.fault_signal.store(sig as u32, Ordering::Relaxed);
        shm::post(h, shm::FAULT);
    }
    // SAFETY: tgkill towards ourselves, on the allow-list.
    unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            PID.load(Ordering::Relaxed),
            TID.load(Ordering::Relaxed),
            sig,
        )
    };
}
