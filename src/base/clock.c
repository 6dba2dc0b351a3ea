/* TSC clock (keel/clock.h).
 *
 * The scale is ns = (tsc * mult) >> shift. The kernel publishes exactly that
 * pair in the first page of a perf event mapping (time_mult, time_shift) when
 * its sched_clock is the native TSC; that is the "kernel's known TSC
 * frequency" and is preferred. Under KVM the kernel's sched_clock is
 * paravirtual and the page carries no scale (cap_user_time == 0). Then CPUID
 * 0x15 may give the crystal ratio, a hypervisor may give the frequency in
 * leaf 0x40000010, and failing those we count TSC ticks across a 10 ms
 * CLOCK_MONOTONIC interval (error about 1e-5). The base pair (tsc, ns) is taken as the
 * closest-spaced of a few samples, so the offset error is a fraction of a microsecond.
 */
#include "keel/clock.h"

#include <cpuid.h>
#include <linux/perf_event.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

struct kl_clock_state kl_clock_state;

static bool tsc_is_invariant(void)
{
    unsigned eax, ebx, ecx, edx;
    if (__get_cpuid(0x80000000, &eax, &ebx, &ecx, &edx) == 0 || eax < 0x80000007)
        return false;
    __get_cpuid(0x80000007, &eax, &ebx, &ecx, &edx);
    return (edx & (1u << 8)) != 0;
}

/* The kernel's TSC->ns scale from a perf mmap page; false when unavailable. */
static bool scale_from_kernel(uint64_t *mult, uint32_t *shift)
{
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_DUMMY;
    /* The kernel fills the time fields when the event is scheduled: enabled. */
    attr.exclude_kernel = 1;
    attr.exclude_hv = 1;
    int fd = (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
    if (fd < 0)
        return false;
    long page = sysconf(_SC_PAGESIZE);
    struct perf_event_mmap_page *pg = mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (pg == MAP_FAILED)
        return false;
    bool ok = false;
    uint32_t seq;
    do {
        seq = __atomic_load_n(&pg->lock, __ATOMIC_ACQUIRE);
        if (pg->cap_user_time && pg->time_mult != 0) {
            *mult = pg->time_mult;
            *shift = pg->time_shift;
            ok = true;
        }
    } while (__atomic_load_n(&pg->lock, __ATOMIC_ACQUIRE) != seq);
    munmap(pg, (size_t)page);
    return ok;
}

/* TSC frequency from CPUID 0x15 (crystal clock); 0 when not enumerated. */
static uint64_t hz_from_cpuid(void)
{
    unsigned eax, ebx, ecx, edx;
    if (__get_cpuid(0, &eax, &ebx, &ecx, &edx) == 0 || eax < 0x15)
        return 0;
    __cpuid(0x15, eax, ebx, ecx, edx);
    if (eax == 0 || ebx == 0 || ecx == 0)
        return 0;
    return (uint64_t)ecx * ebx / eax;
}

/* TSC frequency from the hypervisor's timing leaf (0x40000010, in kHz),
 * which VMware and some KVM set-ups provide; 0 when absent. */
static uint64_t hz_from_hypervisor(void)
{
    unsigned eax, ebx, ecx, edx;
    __cpuid(1, eax, ebx, ecx, edx);
    if (!(ecx & (1u << 31))) /* not running under a hypervisor */
        return 0;
    __cpuid(0x40000000, eax, ebx, ecx, edx);
    if (eax < 0x40000010)
        return 0;
    __cpuid(0x40000010, eax, ebx, ecx, edx);
    return (uint64_t)eax * 1000;
}

/* A (tsc, ns) pair taken as close together as we can manage. */
static void sample_pair(uint64_t *tsc, uint64_t *ns)
{
    uint64_t best_gap = UINT64_MAX;
    for (int i = 0; i < 16; i++) {
        uint64_t t0 = kl_rdtsc();
        uint64_t n = kl_clock_gettime_ns();
        uint64_t t1 = kl_rdtsc();
        if (t1 - t0 < best_gap) {
            best_gap = t1 - t0;
            *tsc = t0 + (t1 - t0) / 2;
            *ns = n;
        }
    }
}

/* TSC frequency measured across a CLOCK_MONOTONIC interval. */
static uint64_t hz_from_calibration(void)
{
    uint64_t tsc0 = 0, ns0 = 0, tsc1 = 0, ns1 = 0;
    sample_pair(&tsc0, &ns0);
    struct timespec pause = {0, 10 * 1000 * 1000};
    nanosleep(&pause, NULL);
    sample_pair(&tsc1, &ns1);
    if (ns1 <= ns0 || tsc1 <= tsc0)
        return 0;
    return (uint64_t)((unsigned __int128)(tsc1 - tsc0) * 1000000000u / (ns1 - ns0));
}

/* mult and shift for a frequency, keeping 32 bits of fraction. */
static void scale_from_hz(uint64_t hz, uint64_t *mult, uint32_t *shift)
{
    *shift = 32;
    *mult = (uint64_t)(((unsigned __int128)1000000000u << 32) / hz);
}

void kl_clock_init(void)
{
    struct kl_clock_state *c = &kl_clock_state;
    if (c->mode != KL_CLOCK_UNINIT)
        return;
    const char *forced = getenv("KEEL_CLOCK");
    if ((forced && strcmp(forced, "monotonic") == 0) || !tsc_is_invariant()) {
        c->source =
            forced ? "clock_gettime (KEEL_CLOCK=monotonic)" : "clock_gettime (TSC not invariant)";
        c->mode = KL_CLOCK_SYSCALL;
        return;
    }
    uint64_t mult = 0, hz = 0;
    uint32_t shift = 0;
    if (scale_from_kernel(&mult, &shift)) {
        c->source = "tsc (kernel perf page)";
        hz = (uint64_t)(((unsigned __int128)1000000000u << shift) / mult);
    } else if ((hz = hz_from_cpuid()) != 0) {
        c->source = "tsc (cpuid 0x15)";
        scale_from_hz(hz, &mult, &shift);
    } else if ((hz = hz_from_hypervisor()) != 0) {
        c->source = "tsc (hypervisor leaf 0x40000010)";
        scale_from_hz(hz, &mult, &shift);
    } else if ((hz = hz_from_calibration()) != 0) {
        c->source = "tsc (calibrated against CLOCK_MONOTONIC)";
        scale_from_hz(hz, &mult, &shift);
    } else {
        c->source = "clock_gettime (TSC calibration failed)";
        c->mode = KL_CLOCK_SYSCALL;
        return;
    }
    c->mult = mult;
    c->shift = shift;
    c->tsc_hz = hz;
    sample_pair(&c->base_tsc, &c->base_ns);
    __atomic_store_n(&c->mode, KL_CLOCK_TSC, __ATOMIC_RELEASE);
}

__attribute__((constructor)) static void clock_init_at_start(void) { kl_clock_init(); }

uint64_t kl_now_slow(void)
{
    if (kl_clock_state.mode == KL_CLOCK_UNINIT) {
        kl_clock_init();
        if (kl_clock_state.mode == KL_CLOCK_TSC)
            return kl_now();
    }
    return kl_clock_gettime_ns();
}

uint64_t kl_clock_tsc_hz(void)
{
    kl_clock_init();
    return kl_clock_state.mode == KL_CLOCK_TSC ? kl_clock_state.tsc_hz : 0;
}

const char *kl_clock_source(void)
{
    kl_clock_init();
    return kl_clock_state.source;
}
