//! The entry points whose caller matters, in assembly: each passes its
//! return address (the caller, as glibc's `dlopen` takes it with
//! `__builtin_return_address(0)`) to the Rust code as one more argument.
//!
//! `dlsym(RTLD_NEXT, …)` and `dlvsym(RTLD_NEXT, …)` from code glibc
//! loaded is glibc's to answer, and glibc finds "next" from its own
//! caller: the stub jumps to glibc's function (a tail call, the stack
//! untouched), so glibc sees the program's return address, not ours; so
//! are `dlopen` with `RTLD_DEEPBIND` and `dlmopen` into a namespace other
//! than `LM_ID_BASE`, which glibc searches on behalf of its caller.

use std::ffi::{c_char, c_int, c_long, c_void};

use crate::real::PhdrCallback;

/// `void *dlopen(const char *file, int mode)`: [`crate::open::dlopen_from`]
/// with the caller.
#[unsafe(naked)]
#[no_mangle]
pub extern "C" fn dlopen(file: *const c_char, mode: c_int) -> *mut c_void {
    std::arch::naked_asm!(
        // RTLD_DEEPBIND (0x8): glibc's, whole (see `open::deepbind_target`).
        "test esi, 8",
        "jz 2f",
        "push rdi",
        "push rsi",
        "sub rsp, 8",
        "call {deep}",
        "add rsp, 8",
        "pop rsi",
        "pop rdi",
        "jmp rax",
        "2:",
        "mov rdx, [rsp]",
        "jmp {imp}",
        deep = sym crate::open::deepbind_target,
        imp = sym crate::open::dlopen_from,
    )
}

/// `void *dlmopen(Lmid_t lmid, const char *file, int mode)`:
/// [`crate::open::dlmopen_from`] with the caller.
#[unsafe(naked)]
#[no_mangle]
pub extern "C" fn dlmopen(lmid: c_long, file: *const c_char, mode: c_int) -> *mut c_void {
    std::arch::naked_asm!(
        // A namespace other than LM_ID_BASE (0): glibc's, whole.
        "test rdi, rdi",
        "jz 2f",
        // 3 pushes from 8 mod 16: aligned at the call.
        "push rdi",
        "push rsi",
        "push rdx",
        "call {glibc}",
        "pop rdx",
        "pop rsi",
        "pop rdi",
        "jmp rax",
        "2:",
        "mov rcx, [rsp]",
        "jmp {imp}",
        glibc = sym crate::open::dlmopen_target,
        imp = sym crate::open::dlmopen_from,
    )
}

/// `int dlclose(void *handle)`: [`crate::open::dlclose_from`] with the
/// caller (minld closes glibc's handles it pinned; those must not clear
/// the program's `dlerror`).
#[unsafe(naked)]
#[no_mangle]
pub extern "C" fn dlclose(handle: *mut c_void) -> c_int {
    std::arch::naked_asm!(
        "mov rsi, [rsp]",
        "jmp {imp}",
        imp = sym crate::open::dlclose_from,
    )
}

/// `int dlinfo(void *handle, int request, void *arg)`:
/// [`crate::info::dlinfo_from`] with the caller.
#[unsafe(naked)]
#[no_mangle]
pub extern "C" fn dlinfo(handle: *mut c_void, request: c_int, arg: *mut c_void) -> c_int {
    std::arch::naked_asm!(
        "mov rcx, [rsp]",
        "jmp {imp}",
        imp = sym crate::info::dlinfo_from,
    )
}

/// `void *dlsym(void *handle, const char *name)`: glibc's own for
/// `RTLD_NEXT` from an object glibc loaded ([`crate::sym::next_dlsym`]
/// says), [`crate::sym::dlsym_from`] with the caller otherwise.
#[unsafe(naked)]
#[no_mangle]
pub extern "C" fn dlsym(handle: *mut c_void, name: *const c_char) -> *mut c_void {
    std::arch::naked_asm!(
        "cmp rdi, -1",
        "jne 2f",
        // RTLD_NEXT: keep the arguments, ask whose it is (the stack is
        // 16-byte aligned at the call: entry 8 mod 16, 2 pushes, 8 more).
        "push rdi",
        "push rsi",
        "mov rdi, [rsp + 16]",
        "sub rsp, 8",
        "call {next}",
        "add rsp, 8",
        "pop rsi",
        "pop rdi",
        "test rax, rax",
        "jz 2f",
        "jmp rax",
        "2:",
        "mov rdx, [rsp]",
        "jmp {imp}",
        next = sym crate::sym::next_dlsym,
        imp = sym crate::sym::dlsym_from,
    )
}

/// `void *dlvsym(void *handle, const char *name, const char *version)`:
/// as [`dlsym`], with [`crate::sym::next_dlvsym`] and
/// [`crate::sym::dlvsym_from`].
#[unsafe(naked)]
#[no_mangle]
pub extern "C" fn dlvsym(
    handle: *mut c_void,
    name: *const c_char,
    version: *const c_char,
) -> *mut c_void {
    std::arch::naked_asm!(
        "cmp rdi, -1",
        "jne 2f",
        // 3 pushes from 8 mod 16: aligned at the call.
        "push rdi",
        "push rsi",
        "push rdx",
        "mov rdi, [rsp + 24]",
        "call {next}",
        "pop rdx",
        "pop rsi",
        "pop rdi",
        "test rax, rax",
        "jz 2f",
        "jmp rax",
        "2:",
        "mov rcx, [rsp]",
        "jmp {imp}",
        next = sym crate::sym::next_dlvsym,
        imp = sym crate::sym::dlvsym_from,
    )
}

/// `int dl_iterate_phdr(callback, data)`: [`crate::info::iterate_from`]
/// with the caller (minld itself asks for glibc's objects only).
#[unsafe(naked)]
#[no_mangle]
pub extern "C" fn dl_iterate_phdr(callback: PhdrCallback, data: *mut c_void) -> c_int {
    std::arch::naked_asm!(
        "mov rdx, [rsp]",
        "jmp {imp}",
        imp = sym crate::info::iterate_from,
    )
}
