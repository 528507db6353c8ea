//! `dlerror` with glibc's semantics: the message of the last failure
//! belongs to the thread that failed, reading it clears it (the string
//! returned stays valid until that thread's next `dlerror`), and every
//! `dlopen`, `dlsym`, `dlvsym`, `dlclose` or `dlinfo` clears what the
//! one before it left (a failure then a success leaves no message).
//!
//! A call the entry stubs hand to glibc whole (a tail jump, so that glibc
//! sees the program's return address) leaves its message in glibc's own
//! state: the thread then remembers that glibc has the last word, and
//! its next `dlerror` is glibc's.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};

/// One thread's state.
#[derive(Default)]
struct State {
    /// The failure not yet read.
    pending: Option<CString>,
    /// The last call went to glibc whole: its message, if any, is glibc's.
    glibc_has_it: bool,
    /// The string the last `dlerror` returned, kept alive for the caller.
    returned: Option<CString>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// Runs `f` on this thread's state (nothing during the thread's teardown).
fn with(f: impl FnOnce(&mut State)) {
    let _ = STATE.try_with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            f(&mut s);
        }
    });
}

/// A call of the program's starts: what the last one left is dropped.
pub(crate) fn begin() {
    with(|s| {
        s.pending = None;
        s.glibc_has_it = false;
    });
}

/// A call of the program's goes to glibc whole: glibc has the last word.
pub(crate) fn to_glibc() {
    with(|s| {
        s.pending = None;
        s.glibc_has_it = true;
    });
}

/// Records a failure of this thread for its next `dlerror`.
pub(crate) fn set(message: String) {
    let c = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    with(|s| {
        s.pending = Some(c);
        s.glibc_has_it = false;
    });
}

/// glibc's message of this thread, taken (and so cleared in glibc).
fn glibc_message() -> Option<CString> {
    // SAFETY: glibc's dlerror, on this thread; its string is copied
    // before any other dl call of this thread.
    let m = unsafe { (crate::real::real().dlerror)() };
    // SAFETY: glibc's message, NUL-terminated.
    (!m.is_null()).then(|| unsafe { CStr::from_ptr(m) }.to_owned())
}

/// Takes glibc's message for a failure of one of its functions just
/// called (clearing glibc's own state) and makes it ours; a failure glibc
/// gave no message for (RTLD_NOLOAD) leaves none.
pub(crate) fn take_glibc() {
    if let Some(m) = glibc_message() {
        set(m.to_string_lossy().into_owned());
    }
}

/// `char *dlerror(void)`.
#[no_mangle]
pub extern "C" fn dlerror() -> *mut c_char {
    crate::guard(std::ptr::null_mut(), || {
        let glibc = STATE
            .try_with(|s| s.try_borrow().is_ok_and(|s| s.glibc_has_it))
            .unwrap_or(false);
        let from_glibc = if glibc { glibc_message() } else { None };
        STATE
            .try_with(|s| {
                let Ok(mut s) = s.try_borrow_mut() else {
                    return std::ptr::null_mut();
                };
                s.returned = if glibc { from_glibc } else { s.pending.take() };
                s.glibc_has_it = false;
                s.pending = None;
                s.returned
                    .as_ref()
                    .map_or(std::ptr::null_mut(), |c| c.as_ptr() as *mut c_char)
            })
            .unwrap_or(std::ptr::null_mut())
    })
}
