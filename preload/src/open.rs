//! `dlopen`, `dlmopen` and `dlclose`, and the handles minld hands out.
//!
//! A handle of minld's is the address of a small allocation of this
//! library's, never freed (so it can never be one of glibc's `link_map`
//! addresses, nor stand for two libraries): one per library, counted as
//! glibc counts its opens. Anything else is glibc's and goes to glibc.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_long, c_void, CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use minld::{Error, HeaderFault, Library, Loader, Policy};

use crate::{error, real::real};

/// glibc's own libraries, opened by glibc: libc.so.6 and ld.so hold
/// glibc's state (the heap, threads, TLS, its link map), which must exist
/// once in a process, and the five stubs (empty since glibc 2.34, their
/// symbols in libc.so.6) name it. Their handles must be glibc's so that
/// `dlsym` on them searches as glibc does. libm and libmvec are ordinary
/// libraries to minld (a program that links libm gets its own copy back,
/// as for any library it has).
pub(crate) const GLIBC_OWN: &[&[u8]] = &[
    b"libc.so.6",
    b"ld-linux-x86-64.so.2",
    b"libpthread.so.0",
    b"libdl.so.2",
    b"librt.so.1",
    b"libutil.so.1",
    b"libanl.so.1",
];

/// `<dlfcn.h>`'s mode bits.
pub(crate) const RTLD_LAZY: c_int = 0x1;
/// Bind every function at load.
pub(crate) const RTLD_NOW: c_int = 0x2;
/// Only a library already loaded.
const RTLD_NOLOAD: c_int = 0x4;
/// The library's own scope before the global one.
const RTLD_DEEPBIND: c_int = 0x8;
/// Join the global scope.
const RTLD_GLOBAL: c_int = 0x100;
/// Never unload.
const RTLD_NODELETE: c_int = 0x1000;
/// Every bit a `dlopen` mode may have; glibc refuses any other.
const RTLD_ALL: c_int =
    RTLD_LAZY | RTLD_NOW | RTLD_NOLOAD | RTLD_DEEPBIND | RTLD_GLOBAL | RTLD_NODELETE;

/// One of minld's handles.
struct Entry {
    /// The library; None once closed as often as it was opened.
    lib: Option<Library>,
    /// Opens not yet closed.
    refs: usize,
    /// Opened with RTLD_GLOBAL at least once.
    global: bool,
    /// The library's path, kept after the last close for the messages
    /// about a closed handle.
    path: PathBuf,
}

/// minld's handles.
#[derive(Default)]
struct Table {
    /// By handle.
    entries: HashMap<usize, Entry>,
    /// The handle of each library, by its path and load base.
    by_root: HashMap<(PathBuf, usize), usize>,
    /// Libraries opened with RTLD_NODELETE: never dropped.
    kept: Vec<Library>,
}

/// The table, under its lock (never held while a library's code runs,
/// nor while minld's own locks are taken).
fn table() -> MutexGuard<'static, Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            // SAFETY: the handlers are plain functions that live forever.
            let rc = unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_release), Some(fork_release)) };
            if rc != 0 {
                eprintln!("minld-preload: pthread_atfork failed ({rc}): a fork during a dlopen may hang the child");
            }
            Mutex::default()
        })
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

thread_local! {
    /// The table's lock, taken by the forking thread across a fork (and by
    /// its copy in the child).
    static FORK_HELD: std::cell::RefCell<Option<MutexGuard<'static, Table>>> =
        const { std::cell::RefCell::new(None) };
}

/// Before a fork: the table's lock, so that no other thread holds it
/// when the child is made (the child would inherit it held, by a thread
/// it does not have). minld's own locks have handlers of their own;
/// glibc's `dlopen` in such a child can still hang on glibc's loader lock
/// (seen with glibc 2.36 alone), as POSIX allows it to.
extern "C" fn fork_prepare() {
    let g = table();
    FORK_HELD.with(|h| *h.borrow_mut() = Some(g));
}

/// After a fork, in the parent and in the child: the lock released.
extern "C" fn fork_release() {
    let g = FORK_HELD.with(|h| h.borrow_mut().take());
    drop(g);
}

/// glibc's handle of the program (`dlopen(NULL)`): `dlsym` on it searches
/// the global scope, minld's part included.
pub(crate) static MAIN: AtomicUsize = AtomicUsize::new(0);

/// The library behind one of minld's handles: None for a handle that is
/// not minld's; Some(Err(its path)) for one of minld's already closed.
pub(crate) fn library(handle: *mut c_void) -> Option<Result<Library, PathBuf>> {
    table()
        .entries
        .get(&(handle as usize))
        .map(|e| e.lib.clone().ok_or_else(|| e.path.clone()))
}

/// glibc's message for a handle closed as often as it was opened, with
/// the library's path and the handle (`what` is the function called).
pub(crate) fn not_open(what: &str, handle: *mut c_void, path: &std::path::Path) -> String {
    format!(
        "shared object not open: {}: {what} of handle {handle:p}, closed as often as it was opened",
        path.display()
    )
}

/// The libraries opened through the preload with RTLD_GLOBAL and still
/// open, in no particular order (for `dlvsym(RTLD_DEFAULT)`, which
/// `Library::find_default` does not answer).
pub(crate) fn global_libraries() -> Vec<Library> {
    table()
        .entries
        .values()
        .filter(|e| e.global)
        .filter_map(|e| e.lib.clone())
        .collect()
}

/// Registers a library opened by minld; its handle.
fn register(lib: Library, mode: c_int) -> *mut c_void {
    let key = (lib.path(), lib.base());
    let path = key.0.clone();
    let mut t = table();
    if mode & RTLD_NODELETE != 0 {
        t.kept.push(lib.clone());
    }
    if let Some(&h) = t.by_root.get(&key) {
        if let Some(e) = t.entries.get_mut(&h) {
            e.refs += 1;
            e.global |= mode & RTLD_GLOBAL != 0;
            // The handle's own reference stays; the new one (on the same
            // objects) is dropped after the lock.
            let extra = match &e.lib {
                Some(_) => Some(lib),
                None => e.lib.replace(lib),
            };
            drop(t);
            drop(extra);
            return h as *mut c_void;
        }
    }
    let h = Box::into_raw(Box::new(0u64)) as usize;
    t.entries.insert(
        h,
        Entry {
            lib: Some(lib),
            refs: 1,
            global: mode & RTLD_GLOBAL != 0,
            path,
        },
    );
    t.by_root.insert(key, h);
    h as *mut c_void
}

/// The policy `MINLD_POLICY` asks for: `strict`, or a file naming the
/// permitted directories (one a line, `#` comments), which also means
/// strict; None when unset or empty. A file that cannot be read is a
/// message at the first open and refuses every open (a policy asked for
/// is never silently dropped).
fn policy() -> &'static Result<Option<Policy>, String> {
    static POLICY: OnceLock<Result<Option<Policy>, String>> = OnceLock::new();
    POLICY.get_or_init(|| {
        let Some(v) = std::env::var_os("MINLD_POLICY").filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        if v == "strict" {
            return Ok(Some(Policy::strict()));
        }
        let text = std::fs::read_to_string(&v)
            .map_err(|e| format!("MINLD_POLICY={}: {e}", v.to_string_lossy()))?;
        let mut p = Policy::strict();
        for line in text.lines().map(str::trim) {
            if !line.is_empty() && !line.starts_with('#') {
                p = p.permit_dir(line);
            }
        }
        Ok(Some(p))
    })
}

/// The Loader for a `dlopen` of `mode` from `caller`.
fn loader(mode: c_int, caller: usize) -> Result<Loader, String> {
    let bind_now =
        mode & RTLD_NOW != 0 || std::env::var_os("LD_BIND_NOW").is_some_and(|v| !v.is_empty());
    let mut l = Loader::new()
        .reuse_loaded(true)
        .global(mode & RTLD_GLOBAL != 0)
        .bind_now(bind_now)
        .caller_at(caller);
    if let Some(p) = policy().as_ref().map_err(Clone::clone)? {
        l = l.policy(p.clone());
    }
    Ok(l)
}

/// glibc's message style for minld's errors: a missing file starts as
/// glibc's does (`libfoo.so: cannot open shared object file: No such file
/// or directory`), which programs match on, and so does a file that could
/// not be opened or read for another reason (`…: cannot open shared object
/// file: File name too long`, `…: cannot read file data: Is a
/// directory`); minld's details follow.
fn message(name: &str, e: &Error) -> String {
    let m = e.to_string();
    match e {
        Error::Io {
            path,
            call,
            segment: None,
            errno,
        } if matches!(*call, "open" | "read") => {
            let what = if *call == "open" {
                "cannot open shared object file"
            } else {
                "cannot read file data"
            };
            // A bare name searched for is reported under that name, as
            // glibc reports it; the candidate that failed follows.
            let shown = path.display().to_string();
            if !name.contains('/') && *call == "open" && shown != name {
                return format!(
                    "{name}: {what}: {} (minld: {call} of {shown} failed: {errno})",
                    errno.desc()
                );
            }
            format!(
                "{shown}: {what}: {} (minld: {call} failed: {errno})",
                errno.desc()
            )
        }
        Error::NotFound { name: missing, .. } => {
            let head = format!("{missing}: cannot open shared object file: not found");
            match m.strip_prefix(&head) {
                Some(rest) => format!(
                    "{missing}: cannot open shared object file: No such file or directory{rest}"
                ),
                None => m,
            }
        }
        // The two header faults glibc names apart from "invalid ELF
        // header": programs tell a library of another class, and an empty
        // file, from a linker script by them.
        Error::BadHeader {
            path,
            fault: fault @ (HeaderFault::Class | HeaderFault::TooShort { .. }),
            found,
            ..
        } => {
            let head = match fault {
                HeaderFault::Class if *found == 1 => "wrong ELF class: ELFCLASS32",
                HeaderFault::Class => "wrong ELF class",
                _ => "file too short",
            };
            let p = path.display().to_string();
            // (Without "invalid ELF header", which programs match on.)
            let detail = m
                .strip_prefix(&format!("{p}: invalid ELF header: "))
                .unwrap_or(&m);
            format!("{p}: {head} (minld: {detail})")
        }
        _ if m.contains(name) => m,
        _ => format!("{name}: {m}"),
    }
}

/// glibc's `dlopen`, its message made ours on failure.
fn glibc_open(file: *const c_char, mode: c_int) -> *mut c_void {
    // SAFETY: glibc's dlopen with the caller's own arguments.
    let h = unsafe { (real().dlopen)(file, mode) };
    if h.is_null() {
        error::take_glibc();
    }
    h
}

/// Whether `name` (a path or a bare name) is one of [`GLIBC_OWN`].
fn is_glibc_own(name: &[u8]) -> bool {
    let base = name.rsplit(|&c| c == b'/').next().unwrap_or(name);
    GLIBC_OWN.contains(&base)
}

/// `dlopen` (see `entry::dlopen`), `caller` its return address.
pub(crate) extern "C" fn dlopen_from(
    file: *const c_char,
    mode: c_int,
    caller: usize,
) -> *mut c_void {
    crate::guard(std::ptr::null_mut(), || open(file, mode, caller))
}

/// The body of [`dlopen_from`].
fn open(file: *const c_char, mode: c_int, caller: usize) -> *mut c_void {
    if crate::real::is_own(caller) {
        // SAFETY: glibc's dlopen, for minld's own use.
        return unsafe { (real().dlopen)(file, mode) };
    }
    error::begin();
    // SAFETY: a non-null `file` is a C string, as dlopen requires; its
    // first byte is there.
    if file.is_null() || unsafe { *file } == 0 {
        // The program (glibc's answer for NULL and for "").
        let h = glibc_open(file, mode);
        MAIN.store(h as usize, Ordering::Relaxed);
        return h;
    }
    // SAFETY: a non-null `file` is a C string, as dlopen requires.
    let name = unsafe { CStr::from_ptr(file) }.to_bytes();
    if mode & !RTLD_ALL != 0 {
        error::set(format!(
            "invalid mode parameter: {}: mode {mode:#x} has bits {:#x} that are no RTLD_ flag",
            String::from_utf8_lossy(name),
            mode & !RTLD_ALL
        ));
        return std::ptr::null_mut();
    }
    if mode & (RTLD_NOW | RTLD_LAZY) == 0 {
        error::set(format!(
            "{}: invalid mode for dlopen(): Invalid argument (mode {mode:#x} has neither \
             RTLD_LAZY nor RTLD_NOW)",
            String::from_utf8_lossy(name)
        ));
        return std::ptr::null_mut();
    }
    // (RTLD_DEEPBIND never gets here: `entry::dlopen` hands it to glibc
    // whole, for glibc to search on behalf of the caller.)
    if is_glibc_own(name) || mode & RTLD_DEEPBIND != 0 {
        return glibc_open(file, mode);
    }
    if mode & RTLD_NOLOAD != 0 {
        return match loaded(name) {
            Some(_) => minld_open(name, mode, caller),
            None => glibc_open(file, mode),
        };
    }
    minld_open(name, mode, caller)
}

/// Whether minld has loaded `name`: by path, or a bare name by soname.
fn loaded(name: &[u8]) -> Option<minld::LoadedObject> {
    let (objects, _) = minld::loaded_objects();
    let path = std::path::Path::new(OsStr::from_bytes(name));
    objects.into_iter().find(|o| {
        if name.contains(&b'/') {
            o.path() == path || std::fs::canonicalize(path).ok().as_deref() == Some(o.path())
        } else {
            o.soname().as_bytes() == name
        }
    })
}

/// An open through minld; glibc's handle when the result is glibc's copy.
fn minld_open(name: &[u8], mode: c_int, caller: usize) -> *mut c_void {
    let shown = String::from_utf8_lossy(name).into_owned();
    let l = match loader(mode, caller) {
        Ok(l) => l,
        Err(m) => {
            error::set(m);
            return std::ptr::null_mut();
        }
    };
    // SAFETY: the program asked for this library's code to run.
    match unsafe { l.open(OsStr::from_bytes(name)) } {
        Ok(lib) if lib.segments().is_empty() => {
            // glibc's own copy: its handle, so glibc counts the open and
            // its dlsym answers for it.
            let path = CString::new(lib.path().into_os_string().into_encoded_bytes());
            match path {
                Ok(p) => glibc_open(p.as_ptr(), mode),
                Err(_) => {
                    error::set(format!("{shown}: glibc's copy has a path with a NUL byte"));
                    std::ptr::null_mut()
                }
            }
        }
        Ok(lib) => register(lib, mode),
        Err(e) => {
            error::set(message(&shown, &e));
            std::ptr::null_mut()
        }
    }
}

/// `dlmopen` (see `entry::dlmopen`). `LM_ID_BASE` is `dlopen`; any other
/// namespace (`LM_ID_NEWLM`, one glibc made) is glibc's: a namespace with
/// a libc of its own is what minld never makes (it never maps a second
/// glibc), and minld's own namespaces (`minld::Namespace`) are built with
/// rules a `dlmopen` cannot give.
pub(crate) extern "C" fn dlmopen_from(
    lmid: c_long,
    file: *const c_char,
    mode: c_int,
    caller: usize,
) -> *mut c_void {
    crate::guard(std::ptr::null_mut(), || {
        if lmid == 0 {
            return open(file, mode, caller);
        }
        // (`entry::dlmopen` hands these to glibc whole; only a call from
        // here would reach this.)
        error::begin();
        // SAFETY: glibc's dlmopen with the caller's arguments.
        let h = unsafe { (real().dlmopen)(lmid, file, mode) };
        if h.is_null() {
            error::take_glibc();
        }
        h
    })
}

/// For the stubs of `entry`: a call they hand to glibc whole (a tail
/// jump to `f`, so that glibc sees the program's return address) leaves
/// its message in glibc's state.
pub(crate) fn glibc_whole(f: usize) -> usize {
    error::to_glibc();
    f
}

/// For `entry::dlopen`: glibc's `dlopen` for an `RTLD_DEEPBIND` open.
pub(crate) extern "C" fn deepbind_target() -> usize {
    glibc_whole(real().dlopen as usize)
}

/// For `entry::dlmopen`: glibc's `dlmopen`, for a namespace other than
/// `LM_ID_BASE`.
pub(crate) extern "C" fn dlmopen_target() -> usize {
    glibc_whole(real().dlmopen as usize)
}

/// `dlclose` (see `entry::dlclose`), `caller` its return address.
pub(crate) extern "C" fn dlclose_from(handle: *mut c_void, caller: usize) -> c_int {
    crate::guard(-1, || {
        if crate::real::is_own(caller) {
            // SAFETY: glibc's dlclose of a handle of glibc's, for minld.
            return unsafe { (real().dlclose)(handle) };
        }
        error::begin();
        if handle.is_null() {
            // glibc's own dlclose would crash on it.
            error::set("shared object not open: dlclose of a null handle".into());
            return -1;
        }
        let dropped = {
            let mut t = table();
            let Some(e) = t.entries.get_mut(&(handle as usize)) else {
                drop(t);
                // SAFETY: not minld's: glibc's handle (or garbage, which
                // glibc's dlclose is as undefined for as ours would be).
                let r = unsafe { (real().dlclose)(handle) };
                if r != 0 {
                    error::take_glibc();
                }
                return r;
            };
            if e.lib.is_none() {
                let m = not_open("dlclose", handle, &e.path);
                drop(t);
                error::set(m);
                return -1;
            }
            e.refs -= 1;
            if e.refs > 0 {
                return 0;
            }
            e.lib.take()
        };
        // The last close: fini functions run here, outside the table's
        // lock (they may call dlopen or dlclose).
        drop(dropped);
        0
    })
}
