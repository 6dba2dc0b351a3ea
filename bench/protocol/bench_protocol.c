/* bench/protocol: how fast keel's memcache parser reads request streams.
 *
 * Streams of N requests of one kind (get of 1 key, get of 10 keys, set of
 * 100 B and of 4 KiB, mg with v t f) are built in memory and parsed to the
 * end, the way keeld will: the parser is handed every unconsumed byte of a
 * batch of D pipelined requests (D = 1: the buffer holds one request; D =
 * 32: up to 32), and the loop consumes what each command took. Figures are
 * ns per command and GB/s of request bytes, the median of ROUNDS rounds
 * (memchr and the parser alternate round by round).
 * Beside them, the floor of a line protocol: memchr() finding every newline
 * of the same buffer (for a set, also the one closing the value).
 *
 * result protocol_get_ns       one-key get, pipelined 32 deep
 * result protocol_set100_ns    100 B set, pipelined 32 deep
 * result protocol_vs_memchr    get stream: parse time / memchr time
 *
 * `bench_protocol quick` uses short streams, for instruction counts:
 * valgrind --tool=callgrind --toggle-collect=parse_stream bench_protocol quick
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/clock.h"
#include "keel/memcache.h"

#define ROUNDS 7
static size_t target_bytes = 8u << 20; /* each stream is about this long */

struct stream {
    const char *name;
    char *buf;
    size_t len;
    size_t count;
    size_t *ends; /* end offset of each request */
};

static void append(struct stream *s, size_t *cap, const char *p, size_t n)
{
    if (s->len + n > *cap) {
        *cap = (*cap + n) * 2;
        s->buf = realloc(s->buf, *cap);
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
}

/* Build a stream of requests made by fmt(i) until about TARGET_BYTES. */
static struct stream build(const char *name, int kind)
{
    struct stream s = {name, NULL, 0, 0, NULL};
    size_t cap = 0, ends_cap = 0;
    static char req[8192];
    for (size_t i = 0; s.len < target_bytes; i++) {
        int n = 0;
        uint32_t k = (uint32_t)(i * 2654435761u) % 1000000;
        switch (kind) {
        case 0: n = sprintf(req, "get key:%06u\r\n", k); break;
        case 1:
            n = sprintf(req, "get");
            for (int j = 0; j < 10; j++)
                n += sprintf(req + n, " key:%06u", (k + (uint32_t)j) % 1000000);
            n += sprintf(req + n, "\r\n");
            break;
        case 2:
        case 3: {
            int vlen = kind == 2 ? 100 : 4096;
            n = sprintf(req, "set key:%06u 0 0 %d\r\n", k, vlen);
            memset(req + n, 'v', (size_t)vlen);
            n += vlen;
            n += sprintf(req + n, "\r\n");
            break;
        }
        default: n = sprintf(req, "mg key:%06u v t f\r\n", k); break;
        }
        append(&s, &cap, req, (size_t)n);
        if (s.count == ends_cap) {
            ends_cap = ends_cap ? ends_cap * 2 : 1024;
            s.ends = realloc(s.ends, ends_cap * sizeof(size_t));
        }
        s.ends[s.count++] = s.len;
    }
    return s;
}

static volatile uint64_t sink;

/* Parse the whole stream with batches of `depth` requests: ns elapsed. */
static uint64_t parse_stream(const struct kl_mc_config *cfg, const struct stream *s, size_t depth)
{
    uint64_t t0 = kl_now(), check = 0;
    size_t pos = 0;
    for (size_t i = 0; i < s->count; i += depth) {
        size_t last = i + depth < s->count ? i + depth : s->count;
        size_t end = s->ends[last - 1];
        while (pos < end) {
            struct kl_mc_cmd cmd;
            if (kl_mc_parse(cfg, s->buf + pos, end - pos, &cmd) != KL_MC_CMD) {
                fprintf(stderr, "bench_protocol: %s did not parse at %zu\n", s->name, pos);
                exit(1);
            }
            check += cmd.key.len;
            pos += cmd.consumed;
        }
    }
    uint64_t t = kl_now() - t0;
    sink += check;
    return t;
}

/* The floor: find every newline of the stream with memchr. */
static uint64_t memchr_stream(const struct stream *s)
{
    uint64_t t0 = kl_now(), n = 0;
    const char *p = s->buf, *end = s->buf + s->len;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        p++;
        n++;
    }
    uint64_t t = kl_now() - t0;
    sink += n;
    return t;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double median(uint64_t *v)
{
    qsort(v, ROUNDS, sizeof(v[0]), cmp_u64);
    return (double)v[ROUNDS / 2];
}

int main(int argc, char **argv)
{
    /* `bench_protocol quick`: 256 KiB streams, for counting instructions under callgrind */
    int only = -1; /* `quick K`: only stream K (0..4) */
    if (argc > 1 && strcmp(argv[1], "quick") == 0)
        target_bytes = 256u << 10;
    if (argc > 2)
        only = atoi(argv[2]);
    struct kl_mc_config cfg;
    kl_mc_config_init(&cfg);
    cfg.now = 1700000000;
    static const char *names[] = {"get 1 key", "get 10 keys", "set 100 B", "set 4 KiB", "mg v t f"};
    double get32 = 0, set32 = 0, get_memchr = 0;
    printf("%-12s %6s %10s %8s %12s %8s\n", "stream", "depth", "ns/cmd", "GB/s", "memchr ns/cmd",
           "x memchr");
    for (int kind = 0; kind < 5; kind++) {
        if (only >= 0 && kind != only)
            continue;
        struct stream s = build(names[kind], kind);
        if (only >= 0)
            printf("%s: %zu requests, %zu bytes\n", names[kind], s.count, s.len);
        static const size_t depths[] = {1, 32};
        for (int d = 0; d < 2; d++) {
            uint64_t tp[ROUNDS], tm[ROUNDS];
            parse_stream(&cfg, &s, depths[d]); /* warm */
            for (int r = 0; r < ROUNDS; r++) { /* alternate, so noise hits both */
                tm[r] = memchr_stream(&s);
                tp[r] = parse_stream(&cfg, &s, depths[d]);
            }
            double pns = median(tp), mns = median(tm);
            double per = pns / (double)s.count;
            printf("%-12s %6zu %10.2f %8.2f %12.2f %8.2f\n", names[kind], depths[d], per,
                   (double)s.len / pns, mns / (double)s.count, pns / mns);
            if (d == 1 && kind == 0) {
                get32 = per;
                get_memchr = pns / mns;
            }
            if (d == 1 && kind == 2)
                set32 = per;
        }
        free(s.buf);
        free(s.ends);
    }
    printf("result protocol_get_ns %.2f ns\n", get32);
    printf("result protocol_set100_ns %.2f ns\n", set32);
    printf("result protocol_vs_memchr %.2f x\n", get_memchr);
    return 0;
}
