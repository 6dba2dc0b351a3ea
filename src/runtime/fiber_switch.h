/* fiber_switch.h: the raw context switch (fiber_switch.S), internal.
 *
 * A context is a saved stack pointer. kl_fiber__switch() saves the current
 * one and continues the other; kl_fiber__stack_init() lays out a fresh stack
 * so that the first switch to it calls entry(arg) through the trampoline.
 * The scheduler (fiber.c) and the fiber benchmark use these directly.
 */
#ifndef KEEL_RUNTIME_FIBER_SWITCH_H
#define KEEL_RUNTIME_FIBER_SWITCH_H

#include <stdint.h>

/* Save the callee-saved registers and rsp in *save_sp, continue at next_sp. */
void kl_fiber__switch(void **save_sp, void *next_sp);

/* First code on a new stack (see fiber_switch.S). */
void kl_fiber__trampoline(void);

/* Prepare the stack whose highest address is `top` (16-byte aligned) to call
 * entry(arg) on its first switch; returns the context's stack pointer. */
static inline void *kl_fiber__stack_init(void *top, void (*entry)(void *), void *arg)
{
    /* Popped by the switch, low to high: r15 r14 r13 r12 rbx rbp, then the
     * return address. After the final pop and jump, rsp == top: aligned for
     * the trampoline's call. */
    uintptr_t *sp = (uintptr_t *)top - 7;
    sp[0] = 0;                               /* r15 */
    sp[1] = 0;                               /* r14 */
    sp[2] = (uintptr_t)entry;                /* r13 */
    sp[3] = (uintptr_t)arg;                  /* r12 */
    sp[4] = 0;                               /* rbx */
    sp[5] = 0;                               /* rbp: ends frame-pointer walks */
    sp[6] = (uintptr_t)kl_fiber__trampoline; /* return address */
    return sp;
}

#endif /* KEEL_RUNTIME_FIBER_SWITCH_H */
