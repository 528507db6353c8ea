/* libtlsdesc_regs.so - a TLSDESC call must preserve every register but
 * %rax (and the flags). tlsdesc_regs_check(use_avx) fills xmm0-15 (ymm0-15
 * with use_avx), the caller-saved integer registers and the x87 stack with
 * known values, makes the TLSDESC call for a 4 KiB initialised thread-local
 * array (in a fresh thread that is minld's slow path: an allocation and a
 * 4 KiB memcpy, which use the vector registers), and returns 0 when all
 * came back, else a code saying which did not (1-16 a vector register,
 * 17-24 an integer register, 25 x87). */
    .section .tdata,"awT",@progbits
    .globl tlsdesc_regs_var
    .type tlsdesc_regs_var,@object
    .size tlsdesc_regs_var,4096
    .p2align 6
tlsdesc_regs_var:
    .fill 4096,1,0x5a

    .text
    .globl tlsdesc_regs_check
    .type tlsdesc_regs_check,@function
tlsdesc_regs_check:
    pushq %rbp
    movq %rsp, %rbp
    pushq %rbx
    pushq %r12
    subq $528, %rsp            # 16 registers x 32 bytes, aligned
    andq $-32, %rsp
    movl %edi, %r12d           # use_avx
    movl $0x1010101, %eax
    movd %eax, %xmm0
    pshufd $0, %xmm0, %xmm0
    movl $0x2020202, %eax
    movd %eax, %xmm1
    pshufd $0, %xmm1, %xmm1
    movl $0x3030303, %eax
    movd %eax, %xmm2
    pshufd $0, %xmm2, %xmm2
    movl $0x4040404, %eax
    movd %eax, %xmm3
    pshufd $0, %xmm3, %xmm3
    movl $0x5050505, %eax
    movd %eax, %xmm4
    pshufd $0, %xmm4, %xmm4
    movl $0x6060606, %eax
    movd %eax, %xmm5
    pshufd $0, %xmm5, %xmm5
    movl $0x7070707, %eax
    movd %eax, %xmm6
    pshufd $0, %xmm6, %xmm6
    movl $0x8080808, %eax
    movd %eax, %xmm7
    pshufd $0, %xmm7, %xmm7
    movl $0x9090909, %eax
    movd %eax, %xmm8
    pshufd $0, %xmm8, %xmm8
    movl $0xa0a0a0a, %eax
    movd %eax, %xmm9
    pshufd $0, %xmm9, %xmm9
    movl $0xb0b0b0b, %eax
    movd %eax, %xmm10
    pshufd $0, %xmm10, %xmm10
    movl $0xc0c0c0c, %eax
    movd %eax, %xmm11
    pshufd $0, %xmm11, %xmm11
    movl $0xd0d0d0d, %eax
    movd %eax, %xmm12
    pshufd $0, %xmm12, %xmm12
    movl $0xe0e0e0e, %eax
    movd %eax, %xmm13
    pshufd $0, %xmm13, %xmm13
    movl $0xf0f0f0f, %eax
    movd %eax, %xmm14
    pshufd $0, %xmm14, %xmm14
    movl $0x10101010, %eax
    movd %eax, %xmm15
    pshufd $0, %xmm15, %xmm15
    testl %r12d, %r12d
    jz 1f
    vinsertf128 $1, %xmm0, %ymm0, %ymm0
    vinsertf128 $1, %xmm1, %ymm1, %ymm1
    vinsertf128 $1, %xmm2, %ymm2, %ymm2
    vinsertf128 $1, %xmm3, %ymm3, %ymm3
    vinsertf128 $1, %xmm4, %ymm4, %ymm4
    vinsertf128 $1, %xmm5, %ymm5, %ymm5
    vinsertf128 $1, %xmm6, %ymm6, %ymm6
    vinsertf128 $1, %xmm7, %ymm7, %ymm7
    vinsertf128 $1, %xmm8, %ymm8, %ymm8
    vinsertf128 $1, %xmm9, %ymm9, %ymm9
    vinsertf128 $1, %xmm10, %ymm10, %ymm10
    vinsertf128 $1, %xmm11, %ymm11, %ymm11
    vinsertf128 $1, %xmm12, %ymm12, %ymm12
    vinsertf128 $1, %xmm13, %ymm13, %ymm13
    vinsertf128 $1, %xmm14, %ymm14, %ymm14
    vinsertf128 $1, %xmm15, %ymm15, %ymm15
1:
    fldpi
    movq $0x1111, %rcx
    movq $0x2222, %rdx
    movq $0x3333, %rsi
    movq $0x4444, %rdi
    movq $0x5555, %r8
    movq $0x6666, %r9
    movq $0x7777, %r10
    movq $0x8888, %r11
    leaq tlsdesc_regs_var@TLSDESC(%rip), %rax
    call *tlsdesc_regs_var@TLSCALL(%rax)
    movq %rax, %rbx            # the offset, unused beyond here
    cmpq $0x1111, %rcx
    movl $17, %eax
    jne 9f
    cmpq $0x2222, %rdx
    movl $18, %eax
    jne 9f
    cmpq $0x3333, %rsi
    movl $19, %eax
    jne 9f
    cmpq $0x4444, %rdi
    movl $20, %eax
    jne 9f
    cmpq $0x5555, %r8
    movl $21, %eax
    jne 9f
    cmpq $0x6666, %r9
    movl $22, %eax
    jne 9f
    cmpq $0x7777, %r10
    movl $23, %eax
    jne 9f
    cmpq $0x8888, %r11
    movl $24, %eax
    jne 9f
    testl %r12d, %r12d
    jz 2f
    vmovdqu %ymm0, 0(%rsp)
    vmovdqu %ymm1, 32(%rsp)
    vmovdqu %ymm2, 64(%rsp)
    vmovdqu %ymm3, 96(%rsp)
    vmovdqu %ymm4, 128(%rsp)
    vmovdqu %ymm5, 160(%rsp)
    vmovdqu %ymm6, 192(%rsp)
    vmovdqu %ymm7, 224(%rsp)
    vmovdqu %ymm8, 256(%rsp)
    vmovdqu %ymm9, 288(%rsp)
    vmovdqu %ymm10, 320(%rsp)
    vmovdqu %ymm11, 352(%rsp)
    vmovdqu %ymm12, 384(%rsp)
    vmovdqu %ymm13, 416(%rsp)
    vmovdqu %ymm14, 448(%rsp)
    vmovdqu %ymm15, 480(%rsp)
    movl $32, %ecx              # bytes per register to check
    jmp 3f
2:
    movdqu %xmm0, 0(%rsp)
    movdqu %xmm1, 32(%rsp)
    movdqu %xmm2, 64(%rsp)
    movdqu %xmm3, 96(%rsp)
    movdqu %xmm4, 128(%rsp)
    movdqu %xmm5, 160(%rsp)
    movdqu %xmm6, 192(%rsp)
    movdqu %xmm7, 224(%rsp)
    movdqu %xmm8, 256(%rsp)
    movdqu %xmm9, 288(%rsp)
    movdqu %xmm10, 320(%rsp)
    movdqu %xmm11, 352(%rsp)
    movdqu %xmm12, 384(%rsp)
    movdqu %xmm13, 416(%rsp)
    movdqu %xmm14, 448(%rsp)
    movdqu %xmm15, 480(%rsp)
    movl $16, %ecx
3:
    xorl %edx, %edx            # register index
4:
    movq %rdx, %rsi
    shlq $5, %rsi
    xorl %edi, %edi            # byte index
5:
    movzbl (%rsp,%rsi), %eax
    leal 1(%rdx), %r8d
    cmpl %r8d, %eax
    movl %r8d, %eax
    jne 9f
    incq %rsi
    incl %edi
    cmpl %ecx, %edi
    jb 5b
    incl %edx
    cmpl $16, %edx
    jb 4b
    fldpi
    fucomip %st(1), %st
    movl $25, %eax
    jne 9f
    jp 9f
    xorl %eax, %eax
9:
    fstp %st(0)
    vzeroupper
    leaq -16(%rbp), %rsp
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size tlsdesc_regs_check, .-tlsdesc_regs_check
    .section .note.GNU-stack,"",@progbits
