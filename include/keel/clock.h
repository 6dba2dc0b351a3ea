/* keel/clock.h: a cheap monotonic clock in nanoseconds.
 *
 * kl_now() reads the TSC and scales it with one 64x64->128 multiply, so it
 * costs a few nanoseconds and no system call. The scale comes, in order of
 * preference, from the kernel's own TSC-to-nanosecond conversion (the perf
 * mmap page), from CPUID leaf 0x15 or the hypervisor's leaf 0x40000010,
 * or from a calibration against CLOCK_MONOTONIC at start-up. Its zero is
 * CLOCK_MONOTONIC's, so values compare with clock_gettime(CLOCK_MONOTONIC).
 * Without an invariant TSC (or with KEEL_CLOCK=monotonic in the environment)
 * kl_now() falls back to clock_gettime.
 */
#ifndef KEEL_CLOCK_H
#define KEEL_CLOCK_H

#include <stdint.h>
#include <time.h>

#include "keel/assert.h"

enum kl_clock_mode { KL_CLOCK_UNINIT = 0, KL_CLOCK_TSC, KL_CLOCK_SYSCALL };

struct kl_clock_state {
    enum kl_clock_mode mode;
    uint32_t shift; /* ns = base_ns + ((tsc - base_tsc) * mult) >> shift */
    uint64_t mult;
    uint64_t base_tsc;
    uint64_t base_ns;
    uint64_t tsc_hz;
    const char *source; /* where the scale came from */
};

extern struct kl_clock_state kl_clock_state;

/* Choose and calibrate the clock; idempotent, runs before main. */
void kl_clock_init(void);

/* Nanoseconds of CLOCK_MONOTONIC through clock_gettime. */
static inline KL_NOTRACE uint64_t kl_clock_gettime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The raw time-stamp counter. */
static inline KL_NOTRACE uint64_t kl_rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

/* kl_now() when the TSC is not in use (or before initialisation). */
uint64_t kl_now_slow(void);

/* Monotonic nanoseconds (CLOCK_MONOTONIC's epoch). */
static inline KL_NOTRACE uint64_t kl_now(void)
{
    const struct kl_clock_state *c = &kl_clock_state;
    if (KL_LIKELY(c->mode == KL_CLOCK_TSC)) {
        uint64_t delta = kl_rdtsc() - c->base_tsc;
        return c->base_ns + (uint64_t)(((unsigned __int128)delta * c->mult) >> c->shift);
    }
    return kl_now_slow();
}

/* TSC frequency in Hz, or 0 when kl_now() does not use the TSC. */
uint64_t kl_clock_tsc_hz(void);

/* A short description of the clock's source, e.g. "tsc (kernel perf page)". */
const char *kl_clock_source(void);

#endif /* KEEL_CLOCK_H */
