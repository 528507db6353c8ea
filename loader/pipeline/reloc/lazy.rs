//! Lazy binding: with `bind_now(false)` (RTLD_LAZY), a function reached
//! through the PLT is looked up the first time it is called, not at load.
//!
//! The linker's lazy PLT works this way: each JUMP_SLOT word of the GOT
//! first points back into the PLT, at code that pushes the relocation's
//! index and jumps to PLT0, which pushes `GOT[1]` and jumps to `GOT[2]`. A
//! loader makes the JUMP_SLOT words point at their PLT code (adding the
//! load bias), puts an identifier of the object in `GOT[1]` and its
//! resolver in `GOT[2]`. minld's resolver (`__minld_lazy_trampoline`) saves
//! every register a call may carry arguments in (the integer argument
//! registers, %rax for variadic calls, %r10, and the vector and x87 state,
//! with XSAVE as glibc's `_dl_runtime_resolve_xsave` does), binds the slot
//! ([`bind_lazily`], a short caller of the one resolution in `resolve`),
//! restores everything and jumps to the function: later calls go straight
//! there.
//!
//! A function that cannot be found then ends the process with a message
//! naming it, as with glibc's lazy binding.
//!
//! (See `docs/design.md`, "Lazy binding's trampoline and what it must save".)

use super::resolve::{Reference, Resolver, Scope, Target, UniqueTable};
use super::Slot;
use crate::base::error::{Error, RelocFault, Requester};
use crate::base::relocs::{self, split_info, Class, RelocKind};
use crate::model::object::Object;
use crate::process::tls::{self, restore_vector_state, save_vector_state};

/// `GOT[2]` of a lazily bound object.
pub(crate) fn trampoline() -> usize {
    tls::init_save_area();
    __minld_lazy_trampoline as *const () as usize
}

extern "C" {
    /// The PLT's resolver: saves the argument state, calls [`fixup`],
    /// restores it and jumps to the function bound.
    fn __minld_lazy_trampoline();
}

/// Called by the trampoline: binds JUMP_SLOT `index` of `object` (`GOT[1]`)
/// and returns the function's address. Never unwinds: a failure ends the
/// process with a message, as glibc's lazy binding does.
extern "C" fn fixup(object: *const Object, index: usize) -> usize {
    // SAFETY: `GOT[1]` holds the address of the Object, set when it was
    // relocated; the object is alive, since its code is running.
    let obj = unsafe { &*object };
    match bind_lazily(obj, index) {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("minld: symbol lookup error: {}: {e}", obj.path.display());
            std::process::abort()
        }
    }
}

/// Binds JUMP_SLOT `index` of `obj` at its first call: resolves its symbol
/// in the scope the object was loaded with (the namespace's committed
/// unique definitions; an ifunc's resolver runs, the object's code being
/// live), writes the GOT word and returns the function's address. A weak
/// function nobody defines is an undefined symbol here: it is being called.
pub(crate) fn bind_lazily(obj: &Object, index: usize) -> Result<usize, Error> {
    let bad = |t: u32, offset: u64, fault: RelocFault| Error::Relocation {
        path: obj.path.clone(),
        kind: RelocKind(t),
        offset,
        fault,
    };
    let Some(rela) = obj.dynamic.jmprel.get(index) else {
        let fault = RelocFault::BeyondJmprel {
            index: index as u64,
            count: obj.dynamic.jmprel.len() as u64,
        };
        return Err(bad(relocs::r::JUMP_SLOT, 0, fault));
    };
    let (symi, t) = split_info(rela.r_info);
    let off = rela.r_offset;
    if relocs::class(t) != Some(Class::JumpSlot) {
        return Err(bad(t, off, RelocFault::NotJumpSlot));
    }
    let Some(slot) = Slot::in_object(obj, obj.image.bias.at(off), 8) else {
        return Err(bad(t, off, RelocFault::TargetOutside { size: 8 }));
    };
    let r = Reference::of(obj, symi, |what| bad(t, off, what))?;
    let mut resolver = Resolver {
        scope: Scope::Deps {
            deps: obj.lazy_scope.get().map(Vec::as_slice).unwrap_or(&[]),
            this: Some(obj),
        },
        uniques: UniqueTable::Committed(obj.namespace),
        rules: None,
        in_namespace: obj.namespace != 0,
        denied: None,
        lookups: 0,
    };
    let def = resolver
        .resolve(&r)
        .ok_or_else(|| r.error(Requester::Caller))?;
    let (Target::Now(value) | Target::Later(value)) = def.target(true);
    let value = value.wrapping_add(rela.r_addend as usize);
    // Another thread binding the same slot writes the same value.
    slot.store64(value as u64, std::sync::atomic::Ordering::Release);
    Ok(value)
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
