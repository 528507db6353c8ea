//! Nested opens (issue 14, item 5): an init function or an ifunc resolver
//! that opens, uses and closes libraries through minld while minld is
//! loading its own library, as glibc's dlopen allows. The C test-libs
//! `nested_*.c` reach minld through a table of functions in
//! `libnested_hook.so` that these tests fill in (see its header comment);
//! each case runs in a process of its own (the loader lock, the registry
//! and the libraries' counters are the process's).

mod common;

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use common::libs::{lib, mapped};
use common::process::{in_fresh_process, rerun};
use minld::{Error, Library, Loader, Reentry};

/// `struct nested_api` of test-libs/nested_hook.c.
#[repr(C)]
struct NestedApi {
    open: extern "C" fn(*const c_char) -> *mut c_void,
    sym: extern "C" fn(*mut c_void, *const c_char) -> *mut c_void,
    close: extern "C" fn(*mut c_void),
    error: extern "C" fn() -> *const c_char,
}

/// Every error a nested open returned, in order.
static ERRORS: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Whether a nested open was refused as `Reentry::Unfinished`, and of what.
static UNFINISHED: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Run once, by the first nested open, before it opens (for the threads case).
static BEFORE_FIRST: Mutex<Option<Box<dyn FnOnce() + Send>>> = Mutex::new(None);
/// What the r_debug chain looked like right after each nested open.
static CHAINS: Mutex<Vec<Chain>> = Mutex::new(Vec::new());
/// Whether `Library::find_default` (which takes the loader lock) found
/// `malloc`, asked from inside each nested open's caller.
static FOUND_DEFAULT: Mutex<Vec<bool>> = Mutex::new(Vec::new());
/// Set by the nested open that ran `BEFORE_FIRST`, once it is done.
static FIRST_NESTED_DONE: AtomicBool = AtomicBool::new(false);

/// The table's `open`: opens a test library through minld.
extern "C" fn api_open(name: *const c_char) -> *mut c_void {
    // SAFETY: the C side passes a NUL-terminated string literal.
    let name = unsafe { CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned();
    let before = BEFORE_FIRST.lock().unwrap().take();
    let first = before.is_some();
    if let Some(f) = before {
        f();
    }
    // SAFETY: test-libs are ours and run no harmful code.
    let opened = unsafe { Loader::new().open(lib(&name)) };
    CHAINS.lock().unwrap().push(chain());
    FOUND_DEFAULT
        .lock()
        .unwrap()
        .push(Library::find_default("malloc").is_some());
    if first {
        FIRST_NESTED_DONE.store(true, Ordering::SeqCst);
    }
    match opened {
        Ok(l) => Box::into_raw(Box::new(l)).cast(),
        Err(e) => {
            if let Error::Reentrant {
                reason: Reentry::Unfinished { path },
                ..
            } = &e
            {
                UNFINISHED.lock().unwrap().push(path.display().to_string());
            }
            ERRORS.lock().unwrap().push(e.to_string());
            std::ptr::null_mut()
        }
    }
}

/// The table's `sym`: `Library::get`, from a constructor or a resolver.
extern "C" fn api_sym(lib: *mut c_void, name: *const c_char) -> *mut c_void {
    // SAFETY: `lib` came from `api_open` and is not closed yet; `name` is
    // a NUL-terminated string literal.
    let (lib, name) = unsafe { (&*(lib as *const Library), CStr::from_ptr(name)) };
    // SAFETY: only the address is taken.
    unsafe { lib.get::<*mut c_void>(&name.to_string_lossy()) }
        .map(|s| *s)
        .unwrap_or(std::ptr::null_mut())
}

/// The table's `close`: drops the handle.
extern "C" fn api_close(lib: *mut c_void) {
    // SAFETY: `lib` came from `api_open`, and is closed once.
    drop(unsafe { Box::from_raw(lib as *mut Library) });
}

/// The table's `error`: the last error, as a string that lives for ever.
extern "C" fn api_error() -> *const c_char {
    let last = ERRORS.lock().unwrap().last().cloned().unwrap_or_default();
    CString::new(last).unwrap_or_default().into_raw()
}

/// Opens libnested_hook.so and fills in its table; the handle keeps it
/// loaded (the nested_* libraries reuse this very object).
fn install() -> Library {
    let hook = open("libnested_hook.so");
    // SAFETY: `nested_api` is a `struct nested_api`, laid out as NestedApi.
    let table = unsafe { hook.get::<*mut NestedApi>("nested_api") }.unwrap();
    // SAFETY: the library's writable data; no other thread uses it yet.
    unsafe {
        table.write(NestedApi {
            open: api_open,
            sym: api_sym,
            close: api_close,
            error: api_error,
        })
    };
    hook
}

/// Opens a test library through minld, panicking with the error.
fn open(name: &str) -> Library {
    // SAFETY: test-libs are ours and run no harmful code.
    unsafe { Loader::new().open(lib(name)) }.unwrap_or_else(|e| panic!("open {name}: {e}"))
}

/// Calls `int f(void)` of `l`.
fn call(l: &Library, f: &str) -> i32 {
    // SAFETY: the functions named here are `int f(void)`.
    let f = unsafe { l.get::<extern "C" fn() -> c_int>(f) }.unwrap();
    f()
}

/// A counter (an `int`) of libnested_hook.so.
fn counter(hook: &Library, name: &str) -> i32 {
    // SAFETY: the counters are `int`s of the library, still loaded.
    unsafe { **hook.get::<*const c_int>(name).unwrap() }
}

/// A C string returned by `const char *f(void)` of `l`.
fn text(l: &Library, f: &str) -> String {
    // SAFETY: the functions named here are `const char *f(void)`, giving a
    // NUL-terminated string that lives for ever (a literal or api_error's).
    unsafe {
        let f = l.get::<extern "C" fn() -> *const c_char>(f).unwrap();
        CStr::from_ptr(f()).to_string_lossy().into_owned()
    }
}

/// The debuggers' view: glibc's `r_debug` namespaces, chained (see
/// loader/process/gdb.rs).
#[derive(Debug, Clone)]
struct Chain {
    /// Each namespace's `r_state` (0: RT_CONSISTENT).
    states: Vec<c_int>,
    /// The objects' names, in every namespace.
    names: Vec<String>,
}

/// `struct link_map`'s public part.
#[repr(C)]
struct LinkMap {
    l_addr: usize,
    l_name: *const c_char,
    l_ld: usize,
    l_next: *mut LinkMap,
    l_prev: *mut LinkMap,
}

/// `struct r_debug_extended`.
#[repr(C)]
struct RDebug {
    r_version: c_int,
    r_map: *mut LinkMap,
    r_brk: usize,
    r_state: c_int,
    r_ldbase: usize,
    r_next: *mut RDebug,
}

/// Walks the r_debug chain from glibc's `_r_debug`.
fn chain() -> Chain {
    let mut out = Chain {
        states: Vec::new(),
        names: Vec::new(),
    };
    // SAFETY: dlsym with a NUL-terminated name; `_r_debug` is ld.so's
    // `r_debug_extended`, whose chain and lists live for the process's
    // life (minld changes them under its lock, from this thread here).
    unsafe {
        let mut ns = libc::dlsym(libc::RTLD_DEFAULT, c"_r_debug".as_ptr()) as *const RDebug;
        while !ns.is_null() {
            out.states.push((*ns).r_state);
            let mut m = (*ns).r_map;
            while !m.is_null() {
                if !(*m).l_name.is_null() {
                    out.names
                        .push(CStr::from_ptr((*m).l_name).to_string_lossy().into_owned());
                }
                m = (*m).l_next;
            }
            ns = if (*ns).r_version >= 2 {
                (*ns).r_next
            } else {
                std::ptr::null()
            };
        }
    }
    out
}

/// How many names in `c` end with `/file`.
fn listed(c: &Chain, file: &str) -> usize {
    let tail = format!("/{file}");
    c.names.iter().filter(|n| n.ends_with(&tail)).count()
}

#[test]
fn a_constructor_opens_calls_and_keeps_a_library() {
    if !in_fresh_process("a_constructor_opens_calls_and_keeps_a_library") {
        return;
    }
    let hook = install();
    let outer = open("libnested_outer.so");
    assert_eq!(
        call(&outer, "nested_outer_result"),
        42,
        "the constructor's nested open: {}",
        text(&outer, "nested_outer_error")
    );
    assert_eq!(counter(&hook, "nested_leaf_inits"), 1);
    assert!(mapped("libnested_leaf.so"));
    // The debuggers' list, seen from inside the outer constructor right
    // after the nested open: consistent, the outer library (registered
    // before its constructor ran) and the nested one listed once each.
    let chains = CHAINS.lock().unwrap().clone();
    assert_eq!(chains.len(), 1);
    let inside = &chains[0];
    assert!(inside.states.iter().all(|&s| s == 0), "{inside:?}");
    assert_eq!(listed(inside, "libnested_outer.so"), 1, "{inside:?}");
    assert_eq!(listed(inside, "libnested_leaf.so"), 1, "{inside:?}");
    // A lookup in the default scope from the constructor is served too.
    assert_eq!(*FOUND_DEFAULT.lock().unwrap(), [true]);
    // A later open of the leaf is the same object.
    let leaf = open("libnested_leaf.so");
    assert_eq!(counter(&hook, "nested_leaf_inits"), 1);
    drop(leaf);
    // The outer destructor closes the leaf (a close from a fini function).
    drop(outer);
    assert_eq!(counter(&hook, "nested_leaf_finis"), 1);
    assert!(!mapped("libnested_leaf.so"));
    assert!(!mapped("libnested_outer.so"));
    let after = chain();
    assert!(after.states.iter().all(|&s| s == 0), "{after:?}");
    assert_eq!(listed(&after, "libnested_leaf.so"), 0, "{after:?}");
    assert!(ERRORS.lock().unwrap().is_empty());
}

#[test]
fn a_constructor_opens_a_library_that_needs_the_constructors_own() {
    if !in_fresh_process("a_constructor_opens_a_library_that_needs_the_constructors_own") {
        return;
    }
    let _hook = install();
    let this = open("libnested_self.so");
    assert_eq!(
        call(&this, "nested_self_result"),
        8,
        "{:?}",
        ERRORS.lock().unwrap()
    );
    // Its constructor ran once: the nested open reused it, running nothing.
    assert_eq!(call(&this, "nested_self_inits"), 1);
    // libnested_back.so was bound to this very object, not a second copy.
    // SAFETY: only addresses are compared.
    let own = unsafe { this.get::<*mut c_void>("nested_self_value") }.unwrap();
    // SAFETY: `void *nested_self_back_saw(void)`.
    let saw =
        unsafe { this.get::<extern "C" fn() -> *mut c_void>("nested_self_back_saw") }.unwrap()();
    assert_eq!(saw, *own);
    let copies = common::process::naming(
        &common::process::maps(),
        &std::fs::canonicalize(lib("libnested_self.so")).unwrap(),
    );
    let starts = copies.iter().filter(|l| l.perms.starts_with('r')).count();
    assert!(starts >= 1);
    assert!(
        copies.windows(2).all(|w| w[0].end == w[1].start),
        "one contiguous mapping of the library: {copies:?}"
    );
    // (Closing it unloads nothing: libnested_back.so, which its
    // constructor opened and only its destructor closes, needs it. glibc
    // keeps such a pair loaded too.)
}

#[test]
fn a_nested_open_initialises_an_outer_object_it_needs_once() {
    if !in_fresh_process("a_nested_open_initialises_an_outer_object_it_needs_once") {
        return;
    }
    let hook = install();
    // libnested_top.so needs libnested_first.so, initialised first; its
    // constructor opens libnested_top_user.so, which needs
    // libnested_top.so, not initialised yet.
    let top = open("libnested_top.so");
    assert_eq!(
        call(&top, "nested_top_value"),
        1,
        "what top_user's constructor saw of top's: {:?}",
        ERRORS.lock().unwrap()
    );
    assert_eq!(
        counter(&hook, "nested_top_inits"),
        1,
        "top's constructor ran once"
    );
    // A later open reuses them all, running nothing again.
    let user = open("libnested_top_user.so");
    assert_eq!(call(&user, "nested_top_user_saw"), 1);
    assert_eq!(counter(&hook, "nested_top_inits"), 1);
    drop((user, top));
}

#[test]
fn a_constructor_closes_what_it_opened() {
    if !in_fresh_process("a_constructor_closes_what_it_opened") {
        return;
    }
    let hook = install();
    let closer = open("libnested_closer.so");
    assert_eq!(
        call(&closer, "nested_closer_result"),
        41,
        "{:?}",
        ERRORS.lock().unwrap()
    );
    assert_eq!(counter(&hook, "nested_leaf_inits"), 1);
    assert_eq!(counter(&hook, "nested_leaf_finis"), 1);
    assert!(!mapped("libnested_leaf.so"));
    // And it can be opened again, from here.
    let leaf = open("libnested_leaf.so");
    assert_eq!(call(&leaf, "nested_leaf_value"), 41);
    assert_eq!(counter(&hook, "nested_leaf_inits"), 2);
}

#[test]
fn an_ifunc_resolver_opens_a_library() {
    if !in_fresh_process("an_ifunc_resolver_opens_a_library") {
        return;
    }
    let hook = install();
    let l = open("libnested_ifunc.so");
    assert_eq!(call(&l, "nested_ifunc_resolved"), 1);
    assert_eq!(
        call(&l, "nested_ifunc_call"),
        41,
        "{}",
        text(&l, "nested_ifunc_error")
    );
    assert_eq!(counter(&hook, "nested_leaf_inits"), 1);
    drop(l);
    assert_eq!(counter(&hook, "nested_leaf_finis"), 1);
    assert!(!mapped("libnested_leaf.so"));
}

#[test]
fn an_ifunc_resolver_cannot_open_a_library_needing_its_unfinished_one() {
    if !in_fresh_process("an_ifunc_resolver_cannot_open_a_library_needing_its_unfinished_one") {
        return;
    }
    let _hook = install();
    let l = open("libnested_ifunc_back.so");
    assert_eq!(
        call(&l, "nested_ifunc_back_call"),
        -1,
        "the open was served"
    );
    let message = text(&l, "nested_ifunc_back_error");
    assert!(
        message.contains("libnested_ifunc_back_user.so")
            && message.contains("refused")
            && message.contains("libnested_ifunc_back.so, which the load this open is nested in"),
        "{message}"
    );
    let unfinished = UNFINISHED.lock().unwrap().clone();
    assert_eq!(unfinished.len(), 1);
    assert!(unfinished[0].ends_with("/libnested_ifunc_back.so"));
    // The refused load's second copy is gone; the library works.
    assert!(!mapped("libnested_ifunc_back_user.so"));
    let user = open("libnested_ifunc_back_user.so");
    assert_eq!(call(&user, "nested_ifunc_back_user_value"), 6);
}

/// One thread is inside a nested open (a constructor of its outer open)
/// when another starts an open: the other waits for the whole outer open
/// (the loader lock is the first thread's until then), and both finish.
/// A watchdog ends the process if they hang; nothing is timed.
#[test]
fn other_threads_wait_while_a_nested_open_runs() {
    if !in_fresh_process("other_threads_wait_while_a_nested_open_runs") {
        return;
    }
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(300));
        eprintln!("other_threads_wait_while_a_nested_open_runs: hung for 300 s");
        std::process::exit(3);
    });
    let _hook = install();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || {
        go_rx.recv().unwrap();
        started_tx.send(()).unwrap();
        // This open's own constructor opens the leaf too: a nested open
        // on this thread, once the first thread is done.
        let closer = open("libnested_closer.so");
        let first_done = FIRST_NESTED_DONE.load(Ordering::SeqCst);
        (call(&closer, "nested_closer_result"), first_done)
    });
    *BEFORE_FIRST.lock().unwrap() = Some(Box::new(move || {
        go_tx.send(()).unwrap();
        started_rx.recv().unwrap();
        // Likely enough for the other thread to be waiting on the lock by
        // now; the outcome is the same if not.
        std::thread::sleep(Duration::from_millis(50));
    }));
    let outer = open("libnested_outer.so");
    assert_eq!(call(&outer, "nested_outer_result"), 42);
    let (closer_result, first_done) = other.join().unwrap();
    assert_eq!(closer_result, 41, "{:?}", ERRORS.lock().unwrap());
    assert!(
        first_done,
        "the other thread's open finished while the first was inside its nested open"
    );
}

/// With `MINLD_DEBUG=statistics` a nested open is reported on its own,
/// before the outer one (whose init phase includes it).
#[test]
fn statistics_report_a_nested_open_apart() {
    const CHILD: &str = "MINLD_TEST_NESTED_STATISTICS";
    if std::env::var_os(CHILD).is_some() {
        let _hook = install();
        let outer = open("libnested_outer.so");
        assert_eq!(call(&outer, "nested_outer_result"), 42);
        return;
    }
    let out = rerun("statistics_report_a_nested_open_apart")
        .env(CHILD, "1")
        .env("MINLD_DEBUG", "statistics")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let line = |what: &str| {
        stderr
            .lines()
            .position(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no {what:?} in:\n{stderr}"))
    };
    let leaf = line("libnested_leaf.so: 1 new object(s)");
    let outer = line("libnested_outer.so: 1 new object(s)");
    assert!(leaf < outer, "{stderr}");
    // The outer clock ran on through the nested load, inside the outer's
    // init phase: that phase lasted at least the nested load's total.
    let lines: Vec<&str> = stderr.lines().collect();
    let micros = |l: &str, before: &str| -> f64 {
        let head = &l[..l.find(before).unwrap()];
        head.split_whitespace().last().unwrap().parse().unwrap()
    };
    let nested_total = micros(lines[leaf], " µs in all");
    let outer_init = lines[outer..]
        .iter()
        .find(|l| l.contains("ifuncs and init"))
        .map(|l| micros(l, " µs "))
        .unwrap();
    assert!(outer_init >= nested_total, "{stderr}");
}

/// In a child of `fork`, opens the leaf and leaves with 0 if it works.
fn child_opens_the_leaf() -> ! {
    // SAFETY: test-libs are ours and run no harmful code.
    let ok = match unsafe { Loader::new().open(lib("libnested_leaf.so")) } {
        Ok(leaf) => call(&leaf, "nested_leaf_value") == 41,
        Err(_) => false,
    };
    // SAFETY: leaving the child without running the parent's exit code.
    unsafe { libc::_exit(if ok { 0 } else { 1 }) }
}

/// Waits for child `pid`; its exit status (-1: it did not exit normally).
fn exit_status(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: waiting for our own child, into a local.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    }
}

/// A constructor forks (its thread holds the loader lock, once for the
/// outer open, once more for its nested open's fork): the child can still
/// load, and so can the parent.
#[test]
fn a_constructor_forks_and_the_child_loads() {
    if !in_fresh_process("a_constructor_forks_and_the_child_loads") {
        return;
    }
    let _hook = install();
    let status = std::sync::Arc::new(Mutex::new(None));
    let seen = status.clone();
    *BEFORE_FIRST.lock().unwrap() = Some(Box::new(move || {
        // SAFETY: the child only loads a library and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            child_opens_the_leaf();
        }
        *seen.lock().unwrap() = Some(exit_status(pid));
    }));
    let outer = open("libnested_outer.so");
    assert_eq!(call(&outer, "nested_outer_result"), 42);
    assert_eq!(*status.lock().unwrap(), Some(0), "the child's load");
}

/// Another thread forks while the first is inside a nested open: the fork
/// waits for the loader lock (the child would otherwise inherit it held
/// by a thread it does not have), and the child can load.
#[test]
fn a_fork_during_a_nested_open_waits_and_the_child_loads() {
    if !in_fresh_process("a_fork_during_a_nested_open_waits_and_the_child_loads") {
        return;
    }
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(300));
        eprintln!("a_fork_during_a_nested_open_waits_and_the_child_loads: hung for 300 s");
        std::process::exit(3);
    });
    let _hook = install();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let forker = std::thread::spawn(move || {
        go_rx.recv().unwrap();
        started_tx.send(()).unwrap();
        // SAFETY: the child only loads a library and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            child_opens_the_leaf();
        }
        let first_done = FIRST_NESTED_DONE.load(Ordering::SeqCst);
        (exit_status(pid), first_done)
    });
    *BEFORE_FIRST.lock().unwrap() = Some(Box::new(move || {
        go_tx.send(()).unwrap();
        started_rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }));
    let outer = open("libnested_outer.so");
    assert_eq!(call(&outer, "nested_outer_result"), 42);
    let (status, first_done) = forker.join().unwrap();
    assert_eq!(status, 0, "the child's load");
    assert!(first_done, "the fork did not wait for the nested open");
}
