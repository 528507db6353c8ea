//! The runner: the child side. It is the host's own executable, re-executed
//! with `MINLD_SANDBOX=<host pid>` in its environment; `enter` takes over
//! before the host's `main` and never returns.
//!
//! Its descriptors, laid out by the host before the exec: 0 `/dev/null`,
//! 1 and 2 pipes the host drains, 3 the shared region's memfd, 4 the
//! control pipe to the host, 5 and up the descriptors the host granted.
//!
//! Order matters, and the rule is: **not one instruction of the plugin
//! runs before the final lock-down.**
//! 1. map the shared region, close every descriptor but those above;
//! 2. fatal-signal handlers on an alternate stack, no_new_privs, no
//!    capabilities, RLIMIT_CORE 0, RLIMIT_AS, RLIMIT_CPU, RLIMIT_FSIZE;
//! 3. Landlock layer 1 (read beneath the library directories and the
//!    plugin's, plus the grants) and the loading seccomp filter;
//! 4. link the plugin with [`crate::Loader::prepare`]: map, load the
//!    dependencies, relocate; none of their code runs;
//! 5. Landlock layer 2 (the grants only) and the serving seccomp filter,
//!    whose listener goes to the host; the control pipe says so and is
//!    closed: what came through it came before any plugin code, so the
//!    host can believe it;
//! 6. run the plugin's ifunc resolvers and init functions (under the
//!    serving filter), look up its functions, READY, serve requests.

use std::path::Path;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::time::Duration;

use super::fail::RunnerError;
use super::landlock::{self, Access};
use super::seccomp::{self, Stage};
use super::shm::{self, Header, Region};
use super::Config;

/// Readable while linking, with the plugin's own directory: where shared
/// libraries live. (After linking, only what the host grants.)
const LOADING_READABLE: &[&str] = &[
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/usr/local/lib",
    "/etc/ld.so.cache",
];

use super::shm::{FD_CONTROL, FD_GRANTED, FD_REGION};

/// The byte-buffer ABI every plugin function has.
pub type PluginFn = unsafe extern "C" fn(*const u8, usize, *mut u8, usize) -> isize;

/// For the signal handler: the header (the handler must depend on nothing
/// but atomics and raw system calls).
static HEADER: AtomicPtr<Header> = AtomicPtr::new(std::ptr::null_mut());

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

/// What a runner has once it linked the plugin: it then becomes an
/// instance ([`become_instance`]) or a zygote (`forks::serve_forks`).
pub(super) struct Linked {
    /// The shared region, mapped.
    pub(super) region: Region,
    /// The plugin, linked, none of its code run.
    pub(super) prepared: crate::Prepared,
    /// The configuration read from the region before any plugin code ran.
    pub(super) cfg: Config,
    /// The Landlock ABI in force (0: none, when the host allowed that).
    pub(super) abi: u32,
    /// The host's pid.
    pub(super) host: i32,
}

/// Steps 1–4 of the runner. `spec` is the value of MINLD_SANDBOX. Exits on
/// failure (reported through the control pipe).
pub(super) fn enter(spec: &str) -> Linked {
    let host = spec.parse::<i32>().unwrap_or(-1);
    // SAFETY: plain system calls.
    if unsafe { libc::getppid() } != host {
        // Started by hand, or the host is already gone (PR_SET_PDEATHSIG,
        // set before the exec, fires only for a death after it).
        // SAFETY: leaving at once, running nothing of the host's.
        unsafe { libc::_exit(111) };
    }
    let region = match map_region() {
        Ok(r) => r,
        // SAFETY: as above.
        Err(_) => unsafe { libc::_exit(112) },
    };
    // The region lives until the process ends (enter never returns).
    HEADER.store(region.base as *mut Header, Ordering::Relaxed);
    match link(&region) {
        Ok((prepared, cfg, abi)) => Linked {
            region,
            prepared,
            cfg,
            abi,
            host,
        },
        Err(err) => fail_early(&err),
    }
}

/// Reports a failure through the control pipe (no plugin code has run),
/// as text, and exits.
pub(super) fn fail_early(err: &RunnerError) -> ! {
    control(b"FAIL", err.to_string().as_bytes());
    // SAFETY: leaving without atexit handlers or destructors.
    unsafe { libc::_exit(1) }
}

/// Steps 5 and 6: lock down, run the plugin, serve. (A zygote's fork
/// starts here, with a region of its own.)
pub(super) fn become_instance(
    region: Region,
    prepared: crate::Prepared,
    cfg: Config,
    abi: u32,
    host: i32,
) -> ! {
    HEADER.store(region.base as *mut Header, Ordering::Relaxed);
    if let Err(err) = lock(&region, &cfg, abi) {
        fail_early(&err);
    }
    let funcs = start(&region, prepared, &cfg);
    serve(&region, &funcs, &cfg, host)
}

/// Writes one record to the control pipe: a 4-byte tag and a payload.
pub(super) fn control(tag: &[u8; 4], payload: &[u8]) {
    let mut rec = tag.to_vec();
    rec.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    rec.extend_from_slice(payload);
    let mut done = 0;
    while done < rec.len() {
        // SAFETY: writing our own buffer to our own pipe.
        let n = unsafe { libc::write(FD_CONTROL, rec[done..].as_ptr().cast(), rec.len() - done) };
        if n <= 0 {
            return;
        }
        done += n as usize;
    }
}

/// Step 1: maps the shared region the host left at [`FD_REGION`], checks
/// its magic, and closes every descriptor the runner must not keep.
pub(super) fn map_region() -> std::io::Result<Region> {
    // SAFETY: `libc::stat` is plain integers, for which all zeroes is a
    // valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes at most one `stat` into the local it is given.
    if unsafe { libc::fstat(FD_REGION, &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let region = Region::map(FD_REGION, st.st_size as usize)?;
    if region.len < shm::HEADER_SIZE || region.header().magic != shm::MAGIC {
        return Err(std::io::Error::other("bad magic"));
    }
    // The mapping keeps the memfd alive. Close it, and anything but the
    // control pipe and the granted descriptors the host might have leaked
    // without O_CLOEXEC: Landlock does not restrict open descriptors.
    let granted = region.header().nfds;
    // SAFETY: closing our own descriptors.
    unsafe {
        libc::close(FD_REGION);
        libc::close_range((FD_GRANTED as u32).saturating_add(granted), u32::MAX, 0);
    }
    Ok(region)
}

/// Unmaps `region`, the fatal-signal handler's header first (a zygote
/// keeps no region of its own: see `forks::serve_forks`).
pub(super) fn unmap_region(region: Region) {
    HEADER.store(std::ptr::null_mut(), Ordering::Relaxed);
    drop(region);
}

/// Steps 2–4: returns the linked, not yet run, plugin, the configuration
/// (read now: once the plugin runs, the region is its) and the Landlock
/// ABI in force.
fn link(region: &Region) -> Result<(crate::Prepared, Config, u32), RunnerError> {
    let h = region.header();
    let cfg = Config::read(region)?;
    // `ps` shows "exe" otherwise (we were started as /proc/self/exe).
    // SAFETY: a NUL-terminated name of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"minld-sandbox".as_ptr()) };
    // Handlers first: a plugin that crashes is reported as such.
    install_fatal_handlers().map_err(RunnerError::SignalHandlers)?;
    // SAFETY: plain prctl/setrlimit calls on ourselves.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(RunnerError::NoNewPrivs(std::io::Error::last_os_error()));
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
        set_limit(libc::RLIMIT_FSIZE, h.fsize_limit, h.fsize_limit)?;
    }
    // Stage 1, for the link: files readable beneath the plugin's directory
    // and the system's library directories, and the grants.
    let dir = match Path::new(&cfg.path).parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."), // "libx.so" relative to the cwd
    };
    let grants: Vec<(&Path, Access)> = cfg.grants.iter().map(|(p, a)| (Path::new(p), *a)).collect();
    let mut loading: Vec<(&Path, Access)> = vec![(dir, Access::ReadExec)];
    loading.extend(
        LOADING_READABLE
            .iter()
            .map(|p| (Path::new(*p), Access::ReadExec)),
    );
    loading.extend(grants.iter().copied());
    let abi = match landlock::restrict(&loading) {
        Ok(abi) => abi,
        Err(_) if h.allow_no_landlock != 0 && landlock::abi() == 0 => 0,
        Err(source) => {
            return Err(RunnerError::Landlock {
                layer: "linking",
                source,
            })
        }
    };
    // Neither stage allows the memfd glibc's dlopen would reserve
    // initial-exec TLS from: such a plugin is refused saying so.
    crate::process::tls::refuse_stubs();
    seccomp::install(0, Stage::Loading).map_err(|source| RunnerError::Seccomp {
        stage: "linking",
        source,
    })?;

    // No clone is needed: relocation stays on this thread.
    let prepared = crate::Loader::new()
        .single_threaded(true)
        .bind_now(true)
        .prepare(&cfg.path)?;
    Ok((prepared, cfg, abi))
}

/// Step 5: the serving stage, then the host takes the listener.
fn lock(region: &Region, cfg: &Config, abi: u32) -> Result<(), RunnerError> {
    let h = region.header();
    // Stage 2, for the plugin's code: the grants only, the allow-list.
    if abi != 0 {
        let grants: Vec<(&Path, Access)> =
            cfg.grants.iter().map(|(p, a)| (Path::new(p), *a)).collect();
        landlock::restrict(&grants).map_err(|source| RunnerError::Landlock {
            layer: "serving",
            source,
        })?;
    }
    line_buffer_stdout();
    // SAFETY: plain system call.
    let pid = unsafe { libc::getpid() } as u32;
    let listener = seccomp::install(pid, Stage::Serving)
        .map_err(|source| RunnerError::Seccomp {
            stage: "serving",
            source,
        })?
        .unwrap_or(-1);
    let mut locked = abi.to_le_bytes().to_vec();
    locked.extend_from_slice(&listener.to_le_bytes());
    control(b"LOCK", &locked);
    // The host takes the listener (pidfd_getfd); then ours can go, and
    // with the control pipe closed nothing the plugin does reaches it.
    let mut waited = Duration::ZERO;
    while h.state.load(Ordering::Acquire) != shm::LISTENING {
        if waited >= Duration::from_secs(30) {
            return Err(RunnerError::ListenerNotTaken);
        }
        shm::sleep(h, shm::BOOT, Duration::from_millis(100));
        waited += Duration::from_millis(100);
    }
    // SAFETY: closing our own descriptors.
    unsafe {
        libc::close(listener);
        libc::close(FD_CONTROL);
    }
    Ok(())
}

/// Step 6: the plugin's code runs from here on. Returns its functions in
/// the host's order; on failure reports it in the shared header (the
/// runner's word from now on) and exits.
fn start(region: &Region, prepared: crate::Prepared, cfg: &Config) -> Vec<PluginFn> {
    let h = region.header();
    let fail = |msg: String| -> ! {
        write_message(region, cfg, &msg);
        shm::post(h, shm::LOAD_FAILED);
        // SAFETY: leaving without atexit handlers or destructors.
        unsafe { libc::_exit(1) }
    };
    // SAFETY: the plugin's ifunc resolvers and init functions run now,
    // under the serving lock-down. The Library is leaked: the runner never
    // unloads it (no fini functions run; the process ends with _exit).
    let lib = match unsafe { prepared.run() } {
        Ok(lib) => &*Box::leak(Box::new(lib)),
        Err(e) => fail(e.to_string()),
    };
    let mut funcs = Vec::with_capacity(cfg.names.len());
    for name in &cfg.names {
        // SAFETY: the byte-buffer ABI is the contract of a sandboxed plugin.
        match unsafe { lib.get::<PluginFn>(name) } {
            Ok(f) => funcs.push(*f),
            Err(e) => fail(e.to_string()),
        }
    }
    funcs
}

/// glibc's stdout is fully buffered on a pipe and asks fstat for the size
/// of its buffer at the first write; a buffer of our own, line-buffered,
/// sends each line to the host as it is printed and makes no call.
fn line_buffer_stdout() {
    extern "C" {
        static mut stdout: *mut libc::FILE;
    }
    let buf: &'static mut [u8] = Box::leak(vec![0u8; 4096].into_boxed_slice());
    // SAFETY: glibc's stdout stream, not yet used by anyone (no plugin code
    // has run); the buffer lives for the process's life.
    unsafe {
        libc::setvbuf(stdout, buf.as_mut_ptr().cast(), libc::_IOLBF, buf.len());
    }
}

/// A host running as root would hand its capabilities to the runner:
/// clear the effective, permitted and inheritable sets (with
/// no_new_privs and no exec they cannot come back).
unsafe fn drop_capabilities() -> Result<(), RunnerError> {
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
    // Two { effective, permitted, inheritable } sets, all empty.
    let data = [0u32; 6];
    // SAFETY: capset reads a v3 header and the two data structs it implies,
    // both locals that outlive the call.
    if unsafe { libc::syscall(libc::SYS_capset, &hdr as *const Header, data.as_ptr()) } != 0 {
        return Err(RunnerError::Capset(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Sets resource limit `res` of this process.
///
/// # Safety
/// None of memory: a plain `setrlimit`. Called only by the runner, on
/// itself, before any plugin code runs.
unsafe fn set_limit(
    res: libc::__rlimit_resource_t,
    soft: u64,
    hard: u64,
) -> Result<(), RunnerError> {
    let rl = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: rl is a valid rlimit.
    if unsafe { libc::setrlimit(res, &rl) } != 0 {
        return Err(RunnerError::Rlimit {
            resource: res,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Writes `msg` (cut to the response buffer) as the runner's message to
/// the host.
fn write_message(region: &Region, cfg: &Config, msg: &str) {
    let h = region.header();
    let n = msg.len().min(cfg.resp_cap);
    // SAFETY: n bytes inside the response buffer (capacities as checked
    // against the region when the configuration was read).
    unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), region.resp(cfg.req_cap), n) };
    h.resp_len.store(n as i64, Ordering::Relaxed);
}

/// The request loop: the plugin's code, under the serving lock-down.
fn serve(region: &Region, funcs: &[PluginFn], cfg: &Config, host: i32) -> ! {
    let h = region.header();
    let (req_cap, resp_cap) = (cfg.req_cap, cfg.resp_cap);
    let (req, resp) = (region.req(), region.resp(req_cap));
    let shared = &cfg.shared;
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
            // is gone (PR_SET_PDEATHSIG normally kills us first).
            if timed_out && unsafe { libc::getppid() } != host {
                // SAFETY: leaving at once.
                unsafe { libc::_exit(0) };
            }
        }
        let f = h.func.load(Ordering::Relaxed) as usize;
        let len = h.req_len.load(Ordering::Relaxed) as usize;
        let buffer = h.buffer.load(Ordering::Relaxed) as usize;
        let ret = match (funcs.get(f), shared.get(buffer)) {
            // SAFETY: the plugin gets one shared buffer, in and out.
            (Some(func), Some(&(off, cap))) => unsafe {
                let p = region.at(off);
                func(p, len.min(cap), p, cap)
            },
            // SAFETY: the plugin gets the two buffers with their sizes.
            (Some(func), None) => unsafe { func(req, len.min(req_cap), resp, resp_cap) },
            (None, _) => isize::MIN,
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

/// Records the signal and the faulting address in the header (the
/// runner's claim: the host believes only the signal it sees from
/// `waitid`), wakes the host, and makes sure the process dies *of this
/// signal*: it queues the signal to its own thread (tgkill, allowed only
/// within our process); it is blocked while the handler runs and its
/// action is SIG_DFL by now, so it kills the process as the handler
/// returns. (For a fault, returning would re-run the instruction anyway.)
extern "C" fn on_fatal(sig: i32, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    let h = HEADER.load(Ordering::Relaxed);
    if !h.is_null() {
        // SAFETY: the header is mapped for the life of the process.
        let h = unsafe { &*h };
        // SAFETY: the kernel's siginfo, valid during the handler; for a
        // fault si_addr is the first word of the union, at 16.
        let (addr, code) = unsafe {
            (
                *((info as *const u8).add(16) as *const u64),
                (*info).si_code,
            )
        };
        // si_addr only means something for a fault the kernel raised
        // (si_code > 0), not for kill/tgkill/abort; u64::MAX: none.
        let fault = code > 0 && sig != libc::SIGSYS && sig != libc::SIGXCPU;
        h.fault_addr
            .store(if fault { addr } else { u64::MAX }, Ordering::Relaxed);
        h.fault_signal.store(sig as u32, Ordering::Relaxed);
        shm::post(h, shm::FAULT);
    }
    // SAFETY: getpid/gettid/tgkill within our own process, on the
    // allow-list.
    unsafe {
        libc::syscall(libc::SYS_tgkill, libc::getpid(), libc::gettid(), sig);
    }
}
