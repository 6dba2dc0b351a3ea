/* bench/clock: the cost of one kl_now() against clock_gettime(CLOCK_MONOTONIC)
 * (through the vDSO) and a raw rdtsc, measured in one run.
 *
 * Each method runs ROUNDS rounds of CALLS calls, interleaved (round 1 of each,
 * round 2 of each, ...) so that frequency changes and noise from the other
 * core hit all three alike. A round's cost per call is its elapsed
 * CLOCK_MONOTONIC time over CALLS; the table reports the median and the best
 * round. The results are summed into a sink so the calls are not optimised
 * away.
 */
#include <stdio.h>
#include <stdlib.h>

#include "keel/clock.h"

#define ROUNDS 21
#define CALLS  2000000

static volatile uint64_t sink;

static uint64_t run_now(void)
{
    uint64_t acc = 0;
    for (int i = 0; i < CALLS; i++)
        acc += kl_now();
    return acc;
}

static uint64_t run_gettime(void)
{
    uint64_t acc = 0;
    for (int i = 0; i < CALLS; i++)
        acc += kl_clock_gettime_ns();
    return acc;
}

static uint64_t run_rdtsc(void)
{
    uint64_t acc = 0;
    for (int i = 0; i < CALLS; i++)
        acc += kl_rdtsc();
    return acc;
}

struct method {
    const char *name;
    const char *result;
    uint64_t (*run)(void);
    double ns[ROUNDS];
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(void)
{
    struct method methods[] = {
        {"kl_now()", "clock_now_ns", run_now, {0}},
        {"clock_gettime(MONOTONIC)", "clock_gettime_ns", run_gettime, {0}},
        {"rdtsc", "clock_rdtsc_ns", run_rdtsc, {0}},
    };
    const int n = sizeof methods / sizeof methods[0];
    for (int m = 0; m < n; m++) /* warm up */
        sink += methods[m].run();
    for (int r = 0; r < ROUNDS; r++) {
        for (int m = 0; m < n; m++) {
            uint64_t t0 = kl_clock_gettime_ns();
            sink += methods[m].run();
            uint64_t t1 = kl_clock_gettime_ns();
            methods[m].ns[r] = (double)(t1 - t0) / CALLS;
        }
    }
    printf("clock source: %s (TSC %.3f GHz)\n", kl_clock_source(), kl_clock_tsc_hz() / 1e9);
    printf("%d rounds x %d calls per method, interleaved\n\n", ROUNDS, CALLS);
    printf("%-26s %12s %12s %14s\n", "method", "median ns", "best ns", "vs gettime");
    double medians[3];
    for (int m = 0; m < n; m++) {
        qsort(methods[m].ns, ROUNDS, sizeof(double), cmp_double);
        medians[m] = methods[m].ns[ROUNDS / 2];
    }
    for (int m = 0; m < n; m++)
        printf("%-26s %12.2f %12.2f %13.2fx\n", methods[m].name, medians[m], methods[m].ns[0],
               medians[1] / medians[m]);
    printf("\n");
    for (int m = 0; m < n; m++)
        printf("result %s %.2f ns\n", methods[m].result, medians[m]);
    printf("result clock_now_vs_gettime %.2f x\n", medians[1] / medians[0]);
    return 0;
}
