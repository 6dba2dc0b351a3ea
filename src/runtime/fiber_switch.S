/* fiber_switch.S: the x86-64 context switch under keel's fibers.
 *
 * kl_fiber__switch(void **save_sp, void *next_sp) pushes the registers the
 * System V ABI makes a callee preserve (rbp, rbx, r12-r15), stores rsp in
 * *save_sp, loads next_sp and pops the same six registers from the other
 * stack, then pops the other context's return address and jumps to it.
 * Everything else (rax..r11, the vector registers, flags) is caller-saved, so
 * the C compiler has already spilled whatever it needed: 16 instructions.
 *
 * Why `pop; jmp *` and not `ret`: a `ret` is predicted by the return stack
 * buffer, which holds the return address of *this* context's call, so a
 * switch's `ret` is mispredicted every time, while the jump's target is
 * learnt by the indirect predictor (the measured difference is in
 * docs/BENCHMARKS.md, "Fibers"). The return stack is then one entry deeper than the
 * calls; it was going to be wrong for the other context's returns anyway.
 *
 * MXCSR and the x87 control word are NOT saved. The ABI lists their control
 * bits as callee-saved, i.e. a function that changes them must restore them
 * before returning. keel treats them as per-thread state, like the FS base:
 * no keel code changes them, every fiber of a thread starts with the thread's
 * setting, and a fiber that changes rounding or exception masks (fesetround)
 * must restore them before it blocks or yields, exactly as it would before
 * returning. Saving them would cost stmxcsr/fnstcw plus ldmxcsr/fldcw, whose
 * loads are slow, partly serialising instructions (more than the rest of the
 * switch together) on every switch for a case keel never has.
 *
 * A new fiber's stack is prepared (fiber_switch.h) so that the first switch
 * to it pops zeros into rbp and the callee-saved registers, except r12 (the
 * argument) and r13 (the C entry), and jumps to kl_fiber__trampoline.
 * The trampoline's CFI marks the return address undefined: unwinders (glibc
 * backtrace(), gdb) stop there cleanly, and rbp = 0 ends frame-pointer walks.
 */
    .text

    .globl  kl_fiber__switch
    .hidden kl_fiber__switch
    .type   kl_fiber__switch, @function
    .p2align 4
kl_fiber__switch:
    .cfi_startproc
    pushq   %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %rbp, 0
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %rbx, 0
    pushq   %r12
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r12, 0
    pushq   %r13
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r13, 0
    pushq   %r14
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r14, 0
    pushq   %r15
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset %r15, 0
    /* The other stack has the same frame layout, so the CFI above stays true. */
    movq    %rsp, (%rdi)
    movq    %rsi, %rsp
    popq    %r15
    .cfi_adjust_cfa_offset -8
    .cfi_restore %r15
    popq    %r14
    .cfi_adjust_cfa_offset -8
    .cfi_restore %r14
    popq    %r13
    .cfi_adjust_cfa_offset -8
    .cfi_restore %r13
    popq    %r12
    .cfi_adjust_cfa_offset -8
    .cfi_restore %r12
    popq    %rbx
    .cfi_adjust_cfa_offset -8
    .cfi_restore %rbx
    popq    %rbp
    .cfi_adjust_cfa_offset -8
    .cfi_restore %rbp
    popq    %rcx
    .cfi_adjust_cfa_offset -8
    .cfi_register %rip, %rcx
    jmpq    *%rcx
    .cfi_endproc
    .size   kl_fiber__switch, .-kl_fiber__switch

/* First code on a new stack: call entry(arg) with entry in r13 and arg in
 * r12; the entry never returns. rsp is 16-byte aligned here, as a call needs. */
    .globl  kl_fiber__trampoline
    .hidden kl_fiber__trampoline
    .type   kl_fiber__trampoline, @function
    .p2align 4
kl_fiber__trampoline:
    .cfi_startproc
    .cfi_undefined %rip
    movq    %r12, %rdi
    call    *%r13
    ud2     /* the entry returned: impossible, and the return address stays in this FDE */
    .cfi_endproc
    .size   kl_fiber__trampoline, .-kl_fiber__trampoline

    .section .note.GNU-stack,"",@progbits
