/* keel-mkdata: build a data set for keeld's disk engine, directly in the
 * engine's format (for benchmarks), as protostore's mk_data.
 *
 * It opens the disk engine itself on --dir (kl_disk_open, so the records,
 * the index and its checkpoint are the engine's own code) and stores --keys
 * keys from a few threads, then closes the engine, which writes the index
 * checkpoint: keeld started on the directory serves the keys at once.
 *
 * Keys are keel-bench's: "kb" and the key's index in decimal, padded with
 * zeros to --key-size bytes (default 16, keel-bench's default), e.g.
 * kb00000000000042; keys 0 .. N-1. A value's length is drawn uniformly in
 * [--min-size, --max-size] from the key's index and --seed; it starts with
 * "@KEY|" (as much of it as fits) and goes on with bytes of a pattern
 * derived from the seed.
 */
#define _GNU_SOURCE
#include "storage/engine.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct job {
    struct kl_engine *e;
    uint64_t keys, seed;
    uint32_t min, max, key_size, threads;
    _Atomic uint64_t done, bytes;
    _Atomic int failed;
    const char *pattern; /* max + 64 bytes */
};

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* keel-bench's key: "kb", then the index zero-padded to `size` bytes. */
static uint32_t key_format(uint64_t k, uint32_t size, char *buf)
{
    int n = snprintf(buf, 32, "kb%0*llu", (int)size - 2, (unsigned long long)k);
    return (uint32_t)n;
}

struct worker {
    struct job *job;
    uint32_t id;
    pthread_t th;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    struct job *j = w->job;
    char key[40];
    char *val = malloc((size_t)j->max + 64);
    if (val == NULL) {
        atomic_store(&j->failed, -ENOMEM);
        return NULL;
    }
    for (uint64_t k = w->id; k < j->keys && !atomic_load(&j->failed); k += j->threads) {
        uint32_t kl = key_format(k, j->key_size, key);
        uint64_t h = mix(k ^ mix(j->seed));
        uint32_t vlen = j->min + (uint32_t)(h % ((uint64_t)j->max - j->min + 1));
        int hl = snprintf(val, 64, "@%s|", key);
        memcpy(val + hl, j->pattern + h % 61, vlen);
        int r = kl_engine_store(j->e, KL_SET, key, kl, val, vlen, 0, 0, 0, NULL);
        if (r != KL_E_STORED) {
            atomic_store(&j->failed, r);
            break;
        }
        atomic_fetch_add_explicit(&j->done, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&j->bytes, kl + vlen, memory_order_relaxed);
    }
    free(val);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void progress(struct job *j, double t0, bool last)
{
    uint64_t done = atomic_load(&j->done), bytes = atomic_load(&j->bytes);
    double pct = j->keys ? 100.0 * (double)done / (double)j->keys : 100.0, dt = now_s() - t0;
    int bar = (int)(pct / 2.5);
    fprintf(stderr, "\r[%-40.*s] %5.1f%%  %llu/%llu keys  %.1f MB/s", bar,
            "########################################", pct, (unsigned long long)done,
            (unsigned long long)j->keys, dt > 0 ? (double)bytes / 1e6 / dt : 0.0);
    if (last)
        fputc('\n', stderr);
}

static const char usage[] =
    "usage: keel-mkdata --dir DIR --keys N --min-size A --max-size B [options]\n"
    "Build a data set for keeld --engine disk --data-dir DIR (the engine's own format).\n"
    "  --dir DIR        the data directory (created; keys already there are overwritten)\n"
    "  --keys N         keys 0..N-1, named as keel-bench names them: \"kb\" and the index\n"
    "                   zero-padded to --key-size bytes (kb00000000000042)\n"
    "  --min-size A     smallest value, bytes\n"
    "  --max-size B     largest value, bytes (lengths uniform in [A, B] per key)\n"
    "  --key-size L     key length, 12..32 (default 16, keel-bench's default)\n"
    "  --seed S         value lengths and bytes (default 1)\n"
    "  --threads T      writer threads (default 2)\n"
    "  --file-size MB   data file size before rotating to the next (default 1024)\n";

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"dir", required_argument, 0, 'd'},      {"keys", required_argument, 0, 'n'},
        {"min-size", required_argument, 0, 'a'}, {"max-size", required_argument, 0, 'b'},
        {"key-size", required_argument, 0, 'k'}, {"seed", required_argument, 0, 's'},
        {"threads", required_argument, 0, 't'},  {"file-size", required_argument, 0, 'f'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0},
    };
    const char *dir = NULL;
    struct job j = {.key_size = 16, .seed = 1, .threads = 2, .min = 0, .max = 0};
    uint64_t file_mb = 1024;
    bool have_keys = false, have_min = false, have_max = false;
    for (int c; (c = getopt_long(argc, argv, "h", lo, NULL)) != -1;) {
        char *end = NULL;
        bool number = optarg && c != 'd';
        unsigned long long v = number ? strtoull(optarg, &end, 10) : 0;
        if (number && (*optarg == '\0' || *end != '\0' || *optarg == '-')) {
            fprintf(stderr, "keel-mkdata: bad number '%s'\n", optarg);
            return 2;
        }
        switch (c) {
        case 'd': dir = optarg; break;
        case 'n': j.keys = v, have_keys = true; break;
        case 'a': j.min = (uint32_t)v, have_min = v <= (1u << 20); break;
        case 'b': j.max = (uint32_t)v, have_max = v <= (1u << 20); break;
        case 'k': j.key_size = (uint32_t)v; break;
        case 's': j.seed = v; break;
        case 't': j.threads = (uint32_t)v; break;
        case 'f': file_mb = v; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (!dir || !have_keys || !have_min || !have_max || j.min > j.max || j.key_size < 12 ||
        j.key_size > 32 || j.threads == 0 || j.threads > 64 || file_mb == 0) {
        fprintf(stderr, "keel-mkdata: need --dir, --keys, --min-size <= --max-size (at most "
                        "1 MiB), --key-size 12..32 (see --help)\n");
        return 2;
    }
    char *pattern = malloc((size_t)j.max + 64);
    for (uint32_t i = 0; pattern && i < j.max + 64; i++)
        pattern[i] = (char)('!' + mix(j.seed * 131 + i) % 90);
    j.pattern = pattern;
    struct kl_engine_opts o = {.engine = "disk",
                               .data_dir = dir,
                               .sync = KL_SYNC_NONE,
                               .item_max = j.max + 64,
                               .file_bytes = file_mb << 20,
                               .compact_pct = 100,
                               .now = (uint32_t)time(NULL)};
    int r = pattern ? kl_engine_open(&o, &j.e) : -ENOMEM;
    if (r != 0) {
        fprintf(stderr, "keel-mkdata: cannot open a disk engine in %s: %s\n", dir, strerror(-r));
        return 1;
    }
    bool tty = isatty(2);
    double t0 = now_s();
    struct worker *ws = calloc(j.threads, sizeof *ws);
    for (uint32_t i = 0; i < j.threads; i++) {
        ws[i] = (struct worker){.job = &j, .id = i};
        pthread_create(&ws[i].th, NULL, work, &ws[i]);
    }
    while (tty && atomic_load(&j.done) < j.keys && !atomic_load(&j.failed)) {
        progress(&j, t0, false);
        usleep(200000);
    }
    for (uint32_t i = 0; i < j.threads; i++)
        pthread_join(ws[i].th, NULL);
    if (tty)
        progress(&j, t0, true);
    kl_engine_close(j.e); /* syncs and writes the index checkpoint */
    double dt = now_s() - t0;
    free(ws);
    free(pattern);
    if (atomic_load(&j.failed)) {
        fprintf(stderr, "keel-mkdata: a store failed: %s\n",
                kl_eresult_name(atomic_load(&j.failed)));
        return 1;
    }
    uint64_t bytes = atomic_load(&j.bytes);
    printf("keel-mkdata: %llu keys, %llu bytes of keys and values in %s, %.1f s, %.1f MB/s\n",
           (unsigned long long)j.keys, (unsigned long long)bytes, dir, dt,
           dt > 0 ? (double)bytes / 1e6 / dt : 0.0);
    return 0;
}
