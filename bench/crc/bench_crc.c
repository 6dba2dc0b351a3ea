/* bench/crc: the cost of checking a disk record's CRC-32C: keel's
 * kl_crc32c_hw (three chains of the crc32 instruction at once) beside one
 * chain of the same instruction (written here: what keel did before, and
 * what a plain loop does) and the portable tables, in one run.
 *
 * Sizes: a 4 KiB value's record (4096 + 56 bytes of header and key), a
 * small record (200 B) and 64 KiB. Each method runs ROUNDS rounds of a
 * fixed number of calls over one buffer (hot in the cache: this is the
 * instruction's cost, not memory's), the methods interleaved round by round;
 * every round is printed, then the medians and the ratio against one chain.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/clock.h"
#include "keel/crc32c.h"

#define ROUNDS 7

static volatile uint32_t sink;

__attribute__((target("sse4.2"))) static uint32_t one_chain(uint32_t crc, const void *data,
                                                            size_t len)
{
    const uint8_t *p = data;
    uint64_t c = ~crc & 0xffffffffu;
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = __builtin_ia32_crc32di(c, word);
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}

struct method {
    const char *name;
    uint32_t (*fn)(uint32_t, const void *, size_t);
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double round_ns(const struct method *m, const uint8_t *buf, size_t len, int calls)
{
    uint32_t acc = 0;
    uint64_t t0 = kl_clock_gettime_ns();
    for (int i = 0; i < calls; i++)
        acc ^= m->fn(acc, buf, len);
    uint64_t t1 = kl_clock_gettime_ns();
    sink = acc;
    return (double)(t1 - t0) / calls;
}

int main(void)
{
    if (!kl_crc32c_hw_available()) {
        printf("SKIP: this CPU has no SSE4.2 crc32 instruction\n");
        return 0;
    }
    static const struct method methods[] = {
        {"keel (3 chains)", kl_crc32c_hw},
        {"one chain", one_chain},
        {"tables", kl_crc32c_portable},
    };
    enum { NM = sizeof methods / sizeof methods[0] };
    static const size_t sizes[] = {4152, 200, 65536};
    static uint8_t buf[65536];
    srand(1);
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)rand();
    printf("CRC-32C of one buffer, ns per call, %d rounds, methods interleaved\n", ROUNDS);
    double record_ratio = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t len = sizes[s];
        int calls = (int)(200000000 / (len + 64));
        double ns[NM][ROUNDS];
        for (int r = 0; r < ROUNDS; r++) {
            printf("  %5zu B round %d:", len, r + 1);
            for (int m = 0; m < NM; m++) {
                ns[m][r] = round_ns(&methods[m], buf, len, calls);
                printf("  %s %.1f", methods[m].name, ns[m][r]);
            }
            printf("\n");
        }
        double med[NM];
        for (int m = 0; m < NM; m++) {
            qsort(ns[m], ROUNDS, sizeof ns[m][0], cmp_double);
            med[m] = ns[m][ROUNDS / 2];
        }
        printf("%5zu B median:", len);
        for (int m = 0; m < NM; m++)
            printf("  %s %.1f ns (%.2f GB/s)", methods[m].name, med[m], (double)len / med[m]);
        printf("  keel/one chain %.2fx\n", med[0] / med[1]);
        if (len == 4152)
            record_ratio = med[0] / med[1];
        printf("result crc32c_%zuB_ns %.1f ns\n", len, med[0]);
    }
    printf("result crc32c_record_vs_one_chain %.2f x\n", record_ratio);
    return 0;
}
