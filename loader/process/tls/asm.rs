//! The assembly of minld's thread-local storage: the per-thread table word
//! (one initial-exec TLS word of minld's own), `__tls_get_addr` and the two
//! TLSDESC resolvers that loaded code calls, and the vector-state save and
//! restore that the TLSDESC slow path shares with the lazy-binding
//! trampoline.
//!
//! The fast paths here read the thread's table (laid out by [`Table`]) with
//! no lock and no call; a miss goes to [`tls_slow`] in the parent module.
//!
//! (See `docs/design.md`, "Lazy binding's trampoline and what it must save".)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use super::{tls_slow, Table, MODID_BASE};

/// Bytes the TLSDESC slow path reserves to save the processor's state (a
/// multiple of 64). Set once, with [`USE_XSAVE`], by [`init_save_area`]
/// before the first descriptor that can reach the slow path is written; the
/// assembly reads each once per call.
pub(crate) static SAVE_SIZE: AtomicUsize = AtomicUsize::new(512);
/// Whether the slow path saves with XSAVE (1) or FXSAVE (0, 512 bytes).
pub(crate) static USE_XSAVE: AtomicUsize = AtomicUsize::new(0);

/// The XSAVE components the TLSDESC slow path saves: all the state a caller
/// may hold across the call, since a TLSDESC call preserves everything but
/// %rax and the flags: x87, SSE, AVX, MPX, AVX-512 (bits 0-7) and AMX tile
/// configuration and data (17, 18), as glibc does since 2.40.
pub(crate) const XSAVE_MASK: u32 = 0x0006_00ff;

/// Chooses, once, how the slow paths save the vector state: XSAVE with
/// the area size the CPU reports, or FXSAVE where the OS has not enabled
/// XSAVE.
pub(crate) fn init_save_area() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        // OSXSAVE (CPUID 1, ECX bit 27): the CPU has XSAVE and the OS
        // enabled it. Asked directly: std's feature detection runs a dozen
        // CPUIDs the first time, each a trap in a virtual machine.
        if std::arch::x86_64::__cpuid(1).ecx & (1 << 27) == 0 {
            return; // FXSAVE, 512 bytes
        }
        // The standard-format XSAVE area for every component the OS
        // enabled (XCR0), which covers the ones in XSAVE_MASK: CPUID leaf
        // 0xD, sub-leaf 0, EBX. One CPUID (each one traps to the hypervisor
        // in a virtual machine).
        let size = std::arch::x86_64::__cpuid_count(0xd, 0).ebx.max(576);
        let size = (size as usize).div_ceil(64) * 64;
        SAVE_SIZE.store(size, Ordering::Release);
        USE_XSAVE.store(1, Ordering::Release);
    });
}

/// This thread's table of blocks, or null before its first access.
pub(super) fn current() -> *mut Table {
    // SAFETY: reads this thread's own TLS word; no other effect.
    unsafe { __minld_tls_table_get() }
}

/// Makes `t` this thread's table (the word the fast paths read).
pub(super) fn set_current(t: *mut Table) {
    // SAFETY: writes this thread's own TLS word, read only by this thread.
    unsafe { __minld_tls_table_set(t) }
}

/// minld's `__tls_get_addr`, bound into the code minld loads.
pub(crate) fn tls_get_addr() -> usize {
    __minld_tls_get_addr as *const () as usize
}

/// TLSDESC resolver for a block at a fixed offset from the thread pointer
/// (a host module in glibc's static TLS): the argument is the offset.
pub(crate) fn tlsdesc_static() -> usize {
    __minld_tlsdesc_static as *const () as usize
}

/// TLSDESC resolver for a dynamically allocated block: the argument points
/// at a [`TlsIndex`](super::TlsIndex).
pub(crate) fn tlsdesc_dynamic() -> usize {
    // Before any descriptor can reach the slow path.
    init_save_area();
    __minld_tlsdesc_dynamic as *const () as usize
}

extern "C" {
    fn __minld_tls_table_get() -> *mut Table;
    fn __minld_tls_table_set(t: *mut Table);
    fn __minld_tls_get_addr();
    fn __minld_tlsdesc_static();
    fn __minld_tlsdesc_dynamic();
}

/// Assembly shared by the TLSDESC slow path and the lazy-binding
/// trampoline (`lazy`), which must both keep every register of their
/// caller: after the integer registers are pushed (and %rax, %rdx are free),
/// saves the vector and x87 state below a 64-byte aligned %rsp with XSAVE,
/// or FXSAVE where the CPU lacks it, pushing the choice first. The operands
/// `use_xsave`, `save_size` and `mask` must be given to the `global_asm!`.
macro_rules! save_vector_state {
    () => {
        "
    movq {use_xsave}(%rip), %rax
    pushq %rax
    andq $-64, %rsp
    subq {save_size}(%rip), %rsp
    testq %rax, %rax
    jz 80f
    movl ${mask}, %eax
    xorl %edx, %edx
    movq $0, 512(%rsp)
    movq $0, 520(%rsp)
    movq $0, 528(%rsp)
    movq $0, 536(%rsp)
    movq $0, 544(%rsp)
    movq $0, 552(%rsp)
    movq $0, 560(%rsp)
    movq $0, 568(%rsp)
    xsave (%rsp)
    jmp 81f
80:
    fxsave (%rsp)
81:
"
    };
}
pub(crate) use save_vector_state;

/// Restores what [`save_vector_state`] saved; `$flag` is the %rbp offset of
/// the choice it pushed. Clobbers %rax and %rdx.
macro_rules! restore_vector_state {
    ($flag:literal) => {
        concat!(
            "
    cmpq $0, ",
            $flag,
            "(%rbp)
    je 82f
    movl ${mask}, %eax
    xorl %edx, %edx
    xrstor (%rsp)
    jmp 83f
82:
    fxrstor (%rsp)
83:
"
        )
    };
}
pub(crate) use restore_vector_state;

// The per-thread table word, and the entry points loaded code calls. The
// fast paths (a module of minld's whose block this thread already has)
// read the table without locking or calling; everything else goes to
// `__minld_tls_slow` (minld's modules) or glibc's `__tls_get_addr` (glibc's
// modules).
//
// __tls_get_addr follows the normal calling convention, but gcc has called
// it with a misaligned stack, so the slow path realigns (as glibc does).
// A TLSDESC resolver must preserve every register but %rax (the address of
// the descriptor on entry; the offset from the thread pointer on return):
// its slow path saves the integer argument and scratch registers and the
// vector state (XSAVE, or FXSAVE where the CPU lacks it) around the call.
std::arch::global_asm!(
    concat!(
    r#"
    .pushsection .tbss,"awT",@nobits
    .p2align 3
    .globl __minld_tls_table
    .hidden __minld_tls_table
    .type __minld_tls_table,@object
    .size __minld_tls_table,8
__minld_tls_table:
    .zero 8
    .popsection

    .text
    .p2align 4
    .globl __minld_tls_table_get
    .hidden __minld_tls_table_get
    .type __minld_tls_table_get,@function
__minld_tls_table_get:
    .cfi_startproc
    movq __minld_tls_table@gottpoff(%rip), %rax
    movq %fs:(%rax), %rax
    ret
    .cfi_endproc
    .size __minld_tls_table_get, .-__minld_tls_table_get

    .p2align 4
    .globl __minld_tls_table_set
    .hidden __minld_tls_table_set
    .type __minld_tls_table_set,@function
__minld_tls_table_set:
    .cfi_startproc
    movq __minld_tls_table@gottpoff(%rip), %rax
    movq %rdi, %fs:(%rax)
    ret
    .cfi_endproc
    .size __minld_tls_table_set, .-__minld_tls_table_set

    .p2align 4
    .globl __minld_tls_get_addr
    .hidden __minld_tls_get_addr
    .type __minld_tls_get_addr,@function
__minld_tls_get_addr:
    .cfi_startproc
    movq (%rdi), %rax
    movabsq ${base}, %rcx
    subq %rcx, %rax
    jb 1f
    movq __minld_tls_table@gottpoff(%rip), %rcx
    movq %fs:(%rcx), %rcx
    testq %rcx, %rcx
    jz 2f
    cmpq (%rcx), %rax
    jae 2f
    movq 8(%rcx,%rax,8), %rax
    testq %rax, %rax
    jz 2f
    addq 8(%rdi), %rax
    ret
1:
    jmp __tls_get_addr@PLT
2:
    pushq %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %rbp, 0
    movq %rsp, %rbp
    .cfi_def_cfa_register %rbp
    andq $-16, %rsp
    call {slow}
    movq %rbp, %rsp
    .cfi_def_cfa_register %rsp
    popq %rbp
    .cfi_adjust_cfa_offset -8
    .cfi_restore %rbp
    ret
    .cfi_endproc
    .size __minld_tls_get_addr, .-__minld_tls_get_addr

    .p2align 4
    .globl __minld_tlsdesc_static
    .hidden __minld_tlsdesc_static
    .type __minld_tlsdesc_static,@function
__minld_tlsdesc_static:
    .cfi_startproc
    movq 8(%rax), %rax
    ret
    .cfi_endproc
    .size __minld_tlsdesc_static, .-__minld_tlsdesc_static

    .p2align 4
    .globl __minld_tlsdesc_dynamic
    .hidden __minld_tlsdesc_dynamic
    .type __minld_tlsdesc_dynamic,@function
__minld_tlsdesc_dynamic:
    .cfi_startproc
    pushq %rdi
    .cfi_adjust_cfa_offset 8
    pushq %rcx
    .cfi_adjust_cfa_offset 8
    movq 8(%rax), %rdi
    movq (%rdi), %rax
    movabsq ${base}, %rcx
    subq %rcx, %rax
    jb 3f
    movq __minld_tls_table@gottpoff(%rip), %rcx
    movq %fs:(%rcx), %rcx
    testq %rcx, %rcx
    jz 3f
    cmpq (%rcx), %rax
    jae 3f
    movq 8(%rcx,%rax,8), %rax
    testq %rax, %rax
    jz 3f
    addq 8(%rdi), %rax
    subq %fs:0, %rax
    .cfi_remember_state
    popq %rcx
    .cfi_adjust_cfa_offset -8
    popq %rdi
    .cfi_adjust_cfa_offset -8
    ret
    .cfi_restore_state
3:
    pushq %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %rbp, 0
    movq %rsp, %rbp
    .cfi_def_cfa_register %rbp
    pushq %rsi
    pushq %rdx
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
"#,
    save_vector_state!(),
    r#"
    call __minld_tls_get_addr
    movq %rax, %rdi
"#,
    restore_vector_state!("-56"),
    r#"
    movq %rdi, %rax
    subq %fs:0, %rax
    leaq -48(%rbp), %rsp
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rdx
    popq %rsi
    movq %rbp, %rsp
    .cfi_def_cfa_register %rsp
    popq %rbp
    .cfi_adjust_cfa_offset -8
    .cfi_restore %rbp
    popq %rcx
    .cfi_adjust_cfa_offset -8
    popq %rdi
    .cfi_adjust_cfa_offset -8
    ret
    .cfi_endproc
    .size __minld_tlsdesc_dynamic, .-__minld_tlsdesc_dynamic
"#,
    ),
    base = const MODID_BASE,
    mask = const XSAVE_MASK,
    slow = sym tls_slow,
    save_size = sym SAVE_SIZE,
    use_xsave = sym USE_XSAVE,
    options(att_syntax)
);
