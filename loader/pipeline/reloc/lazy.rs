//! Lazy binding: with `bind_now(false)` (RTLD_LAZY), a function reached
//! through the PLT is looked up the first time it is called, not at load.
//!
//! The linker's lazy PLT works this way: each JUMP_SLOT word of the GOT
//! first points back into the PLT, at code that pushes the relocation's
//! index and jumps to PLT0, which pushes GOT[1] and jumps to GOT[2]. A
//! loader makes the JUMP_SLOT words point at their PLT code (adding the
//! load bias), puts an identifier of the object in GOT[1] and its resolver
//! in GOT[2]. minld's resolver (`__minld_lazy_trampoline`) saves every
//! register a call may carry arguments in (the integer argument registers,
//! %rax for variadic calls, %r10, and the vector and x87 state, with XSAVE
//! as glibc's `_dl_runtime_resolve_xsave` does), looks the symbol up in the
//! object's scope, writes the GOT word, restores everything and jumps to
//! the function: later calls go straight there.
//!
//! A function that cannot be found then ends the process with a message
//! naming it, as with glibc's lazy binding.
//!
//! (See `docs/design.md`, "Lazy binding's trampoline and what it must save".)

use crate::model::object::Object;
use crate::process::tls::{self, restore_vector_state, save_vector_state};

/// GOT[2] of a lazily bound object.
pub(crate) fn trampoline() -> usize {
    tls::init_save_area();
    __minld_lazy_trampoline as *const () as usize
}

extern "C" {
    fn __minld_lazy_trampoline();
}

/// Called by the trampoline: binds JUMP_SLOT `index` of `object` (GOT[1])
/// and returns the function's address. Never unwinds: a failure ends the
/// process with a message, as glibc's lazy binding does.
extern "C" fn fixup(object: *const Object, index: usize) -> usize {
    // SAFETY: GOT[1] holds the address of the Object, set when it was
    // relocated; the object is alive, since its code is running.
    let obj = unsafe { &*object };
    match crate::pipeline::reloc::bind_lazily(obj, index) {
        Ok(addr) => addr,
        Err(msg) => {
            eprintln!("minld: symbol lookup error: {}: {msg}", obj.path.display());
            std::process::abort()
        }
    }
}

// Entry: 0(%rsp) = GOT[1], 8(%rsp) = the relocation index, 16(%rsp) = the
// caller's return address; every argument register still holds the
// caller's arguments.
std::arch::global_asm!(
    concat!(
    r#"
    .text
    .p2align 4
    .globl __minld_lazy_trampoline
    .hidden __minld_lazy_trampoline
    .type __minld_lazy_trampoline,@function
__minld_lazy_trampoline:
    .cfi_startproc
    .cfi_adjust_cfa_offset 16
    pushq %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %rbp, 0
    movq %rsp, %rbp
    .cfi_def_cfa_register %rbp
    pushq %rax
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %r8
    pushq %r9
    pushq %r10
"#,
    save_vector_state!(),
    r#"
    movq 8(%rbp), %rdi
    movq 16(%rbp), %rsi
    call {fixup}
    movq %rax, %r11
"#,
    restore_vector_state!("-72"),
    r#"
    leaq -64(%rbp), %rsp
    popq %r10
    popq %r9
    popq %r8
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rax
    movq %rbp, %rsp
    .cfi_def_cfa_register %rsp
    popq %rbp
    .cfi_adjust_cfa_offset -8
    .cfi_restore %rbp
    addq $16, %rsp
    .cfi_adjust_cfa_offset -16
    jmp *%r11
    .cfi_endproc
    .size __minld_lazy_trampoline, .-__minld_lazy_trampoline
"#,
    ),
    mask = const tls::XSAVE_MASK,
    fixup = sym fixup,
    save_size = sym tls::SAVE_SIZE,
    use_xsave = sym tls::USE_XSAVE,
    options(att_syntax)
);
