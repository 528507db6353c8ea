//! `dlerror` with glibc's semantics: the message of the last failure
//! belongs to the thread that failed, and reading it clears it (the
//! string returned stays valid until that thread's next `dlerror`).

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};

/// One thread's state.
#[derive(Default)]
struct State {
    /// The failure not yet read.
    pending: Option<CString>,
    /// The string the last `dlerror` returned, kept alive for the caller.
    returned: Option<CString>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// Records a failure of this thread for its next `dlerror`.
pub(crate) fn set(message: String) {
    let c = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    let _ = STATE.try_with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            s.pending = Some(c);
        }
    });
}

/// Takes glibc's message for a failure of one of its functions just
/// called (clearing glibc's own state) and makes it ours; a failure glibc
/// gave no message for (RTLD_NOLOAD) leaves none.
pub(crate) fn take_glibc() {
    // SAFETY: glibc's dlerror, called on the thread that failed; the
    // string it returns is read before any other dl call of this thread.
    let m = unsafe { (crate::real::real().dlerror)() };
    if !m.is_null() {
        // SAFETY: glibc's message, NUL-terminated.
        set(unsafe { CStr::from_ptr(m) }.to_string_lossy().into_owned());
    }
}

/// `char *dlerror(void)`.
#[no_mangle]
pub extern "C" fn dlerror() -> *mut c_char {
    crate::guard(std::ptr::null_mut(), || {
        STATE
            .try_with(|s| {
                let Ok(mut s) = s.try_borrow_mut() else {
                    return std::ptr::null_mut();
                };
                s.returned = s.pending.take();
                s.returned
                    .as_ref()
                    .map_or(std::ptr::null_mut(), |c| c.as_ptr() as *mut c_char)
            })
            .unwrap_or(std::ptr::null_mut())
    })
}
