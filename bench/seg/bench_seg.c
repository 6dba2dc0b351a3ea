/* bench/seg: the seg engine in-process (storage/engine.h).
 *
 * 1M keys of 14 bytes ("key:" and 10 digits), 100-byte values, two key
 * streams: zipf(0.99) (YCSB's generator, ranks scrambled over the key space)
 * and uniform. The streams are generated before timing.
 *   get hit      ns per lookup+release of a present key, 1 thread
 *   floor        ns per get of the same stream from the least any hash
 *                table over items can do: hash the key, read its 64-byte
 *                bucket of 8 tagged offsets, read the item (laid out as the
 *                engine lays its items, 128 bytes apart) and compare the key.
 *                No pins, expiry, CAS or frequency: what this machine's
 *                memory charges for the two dependent reads a get needs.
 *   set          ns per set (reserve, copy, commit) of a present key
 *   insert       ns per set of a new key, 1M into an empty engine
 *   mixed        90% get / 10% set: ops/s with 1 and 2 threads sharing the
 *                engine; the scaling ratio is 2 threads over 1
 *   metadata     after loading the 1M keys into an engine that holds them:
 *                (segment bytes written + hash table bytes in use - key and
 *                value bytes) / items
 *   items/MiB    items held per MiB of -m once a 64 MiB engine is full
 *   miss ratio   per eviction policy, at a -m that holds 10% of the keys'
 *                bytes, on a zipf(0.99) get stream with 5% of requests in
 *                scans of 1000 cold keys; a miss stores the key (cache-aside).
 *                An exact LRU holding the same number of bytes of items
 *                runs on the same stream in this program. Segments of
 *                64 KiB there (see missratio_seg).
 * Figures are medians of ROUNDS runs. Wall-clock figures need a quiet machine.
 * --quick: the miss ratios alone; --memory: inserts, metadata and items/MiB.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "keel/clock.h"
#include "keel/hash.h"
#include "storage/engine.h"

#define NKEYS  1000000u
#define KLEN   14u
#define VLEN   100u
#define NOPS   (4u << 20)
#define ROUNDS 5

static char (*keys)[16];
static char value[VLEN];

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static double rnd01(uint64_t *s) { return (double)(rnd(s) >> 11) * (1.0 / 9007199254740992.0); }

/* YCSB's zipfian generator over [0, n). */
struct zipf {
    uint32_t n;
    double theta, alpha, zetan, eta, half_pow;
};

static void zipf_init(struct zipf *z, uint32_t n, double theta)
{
    double zeta2 = 1.0 + pow(0.5, theta), zetan = 0;
    for (uint32_t i = 1; i <= n; i++)
        zetan += 1.0 / pow((double)i, theta);
    *z = (struct zipf){n, theta, 1.0 / (1.0 - theta), zetan, 0, pow(0.5, theta)};
    z->eta = (1.0 - pow(2.0 / n, 1.0 - theta)) / (1.0 - zeta2 / zetan);
}

static uint32_t zipf_next(const struct zipf *z, uint64_t *s)
{
    double u = rnd01(s), uz = u * z->zetan;
    uint32_t rank;
    if (uz < 1.0)
        rank = 0;
    else if (uz < 1.0 + z->half_pow)
        rank = 1;
    else
        rank = (uint32_t)(z->n * pow(z->eta * u - z->eta + 1.0, z->alpha));
    if (rank >= z->n)
        rank = z->n - 1;
    return (uint32_t)(((uint64_t)rank * 2654435761ull) % z->n); /* scramble: a bijection */
}

static struct zipf zipf99;

/* A stream of key indexes; the top bit marks a set. */
static uint32_t *make_stream(bool zipf, uint32_t n, unsigned set_pct, uint64_t seed)
{
    uint32_t *s = malloc(sizeof *s * n);
    uint64_t r = seed;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k = zipf ? zipf_next(&zipf99, &r) : (uint32_t)(rnd(&r) % NKEYS);
        s[i] = k | ((rnd(&r) % 100 < set_pct) ? 0x80000000u : 0);
    }
    return s;
}

/* Segment size of the miss-ratio engines (--seg-size): 64 KiB, so that the
 * 12 MiB cache has 192 segments, as a 192 MiB cache of default 1 MiB
 * segments would (a scale model: with 12 segments, one merge of 4 moves a
 * third of the cache at once). The other figures use the default. */
static size_t missratio_seg = 64u << 10;
static size_t seg_size;

static struct kl_engine *open_engine(size_t mem, enum kl_evict_policy p, unsigned hash_power)
{
    struct kl_engine_opts o = {
        .mem_bytes = mem, .evict = p, .hash_power = hash_power, .seg_size = seg_size, .now = 1000};
    struct kl_engine *e;
    if (kl_engine_open(&o, &e) != 0) {
        fprintf(stderr, "bench_seg: cannot open an engine of %zu bytes\n", mem);
        exit(1);
    }
    return e;
}

static void set_key(struct kl_engine *e, uint32_t k)
{
    struct kl_store st;
    if (kl_engine_reserve(e, keys[k], KLEN, VLEN, 0, 0, &st) != 0)
        return;
    memcpy(st.value, value, VLEN);
    kl_engine_commit(e, &st, KL_SET, 0, NULL);
}

static bool get_key(struct kl_engine *e, uint32_t k)
{
    struct kl_item it;
    if (kl_engine_lookup(e, keys[k], KLEN, NULL, &it) != KL_E_OK)
        return false;
    __asm__ volatile("" ::"r"(it.value[0]));
    kl_engine_release(e, &it);
    return true;
}

/* The floor (see the top): a table of 64-byte buckets, each 8 slots of
 * (16-bit tag << 48 | item offset), as many buckets as the engine has; a
 * full bucket spills to the next. */
struct floor_table {
    uint64_t (*buckets)[8];
    uint32_t nbuckets;
    char *items; /* item k at k * FLOOR_STRIDE: key, then value */
};
#define FLOOR_STRIDE 128u

static uint32_t floor_bucket(const struct floor_table *t, uint64_t h)
{
    return (uint32_t)(((h & 0xffffffffu) * t->nbuckets) >> 32);
}

static void floor_build(struct floor_table *t, uint32_t nbuckets)
{
    t->nbuckets = nbuckets;
    t->buckets = calloc(nbuckets, sizeof *t->buckets);
    t->items = malloc((size_t)NKEYS * FLOOR_STRIDE);
    for (uint32_t k = 0; k < NKEYS; k++) {
        char *item = t->items + (size_t)k * FLOOR_STRIDE;
        memcpy(item, keys[k], KLEN);
        memcpy(item + KLEN, value, VLEN);
        uint64_t h = kl_hash64(keys[k], KLEN, 0);
        for (uint32_t b = floor_bucket(t, h);; b = (b + 1) % nbuckets) {
            int i = 0;
            while (i < 8 && t->buckets[b][i] != 0)
                i++;
            if (i < 8) {
                t->buckets[b][i] = (h >> 48) << 48 | ((uint64_t)k * FLOOR_STRIDE + 1);
                break;
            }
        }
    }
}

static bool floor_get(const struct floor_table *t, uint32_t k)
{
    uint64_t h = kl_hash64(keys[k], KLEN, 0), tag = (h >> 48) << 48;
    for (uint32_t b = floor_bucket(t, h);; b = (b + 1) % t->nbuckets) {
        for (int i = 0; i < 8; i++) {
            uint64_t slot = t->buckets[b][i];
            if (slot == 0)
                return false;
            if ((slot & 0xffff000000000000ull) != tag)
                continue;
            const char *item = t->items + (slot & 0xffffffffffffull) - 1;
            if (memcmp(item, keys[k], KLEN) == 0) {
                __asm__ volatile("" ::"r"(item[KLEN]));
                return true;
            }
        }
    }
}

static double floor_timed(const struct floor_table *t, const uint32_t *ops, uint32_t n)
{
    uint64_t hits = 0, t0 = kl_now();
    for (uint32_t i = 0; i < n; i++)
        hits += floor_get(t, ops[i]);
    double secs = (double)(kl_now() - t0) / 1e9;
    if (hits != n)
        fprintf(stderr, "bench_seg: the floor table missed %llu keys\n",
                (unsigned long long)(n - hits));
    return secs;
}

struct run {
    struct kl_engine *e;
    const uint32_t *ops;
    uint32_t n;
    uint64_t hits;
    pthread_t th;
};

static void *run_mixed(void *arg)
{
    struct run *r = arg;
    uint64_t hits = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        uint32_t op = r->ops[i];
        if (op & 0x80000000u)
            set_key(r->e, op & 0x7fffffffu);
        else
            hits += get_key(r->e, op);
    }
    r->hits = hits;
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* Seconds to run the streams on nthreads threads at once. */
static double timed(struct kl_engine *e, uint32_t *const *streams, int nthreads, uint32_t n)
{
    struct run r[2];
    uint64_t t0 = kl_now();
    for (int i = 0; i < nthreads; i++) {
        r[i] = (struct run){.e = e, .ops = streams[i], .n = n};
        pthread_create(&r[i].th, NULL, run_mixed, &r[i]);
    }
    for (int i = 0; i < nthreads; i++)
        pthread_join(r[i].th, NULL);
    return (double)(kl_now() - t0) / 1e9;
}

static void speed(bool zipf, const char *name)
{
    struct kl_engine *e = open_engine((size_t)512 << 20, KL_EVICT_MERGE, 0);
    for (uint32_t k = 0; k < NKEYS; k++)
        set_key(e, k);
    uint32_t *gets = make_stream(zipf, NOPS, 0, 11);
    uint32_t *sets = make_stream(zipf, NOPS / 4, 100, 12);
    uint32_t *mix[2] = {make_stream(zipf, NOPS, 10, 13), make_stream(zipf, NOPS, 10, 14)};
    struct kl_engine_stats es;
    kl_engine_stats(e, &es);
    struct floor_table ft;
    floor_build(&ft, (uint32_t)es.hash_buckets);
    double g[ROUNDS], f[ROUNDS], s[ROUNDS], m1[ROUNDS], m2[ROUNDS];
    for (int i = 0; i < ROUNDS; i++) {
        g[i] = timed(e, &gets, 1, NOPS) * 1e9 / NOPS;
        f[i] = floor_timed(&ft, gets, NOPS) * 1e9 / NOPS;
        s[i] = timed(e, &sets, 1, NOPS / 4) * 1e9 / (NOPS / 4);
        m1[i] = NOPS / timed(e, mix, 1, NOPS);
        m2[i] = 2.0 * NOPS / timed(e, mix, 2, NOPS);
        printf("  %s round %d: get %.1f ns (floor %.1f), set %.1f ns, 1 thread %.2f Mops/s, 2 "
               "threads %.2f Mops/s\n",
               name, i + 1, g[i], f[i], s[i], m1[i] / 1e6, m2[i] / 1e6);
    }
    double gn = median(g, ROUNDS), fn = median(f, ROUNDS), sn = median(s, ROUNDS);
    double o1 = median(m1, ROUNDS), o2 = median(m2, ROUNDS);
    printf("%-8s get hit %6.1f ns (floor %.1f, x%.2f)   set %6.1f ns   90/10: 1 thread %.2f "
           "Mops/s, 2 threads %.2f Mops/s (x%.2f)\n",
           name, gn, fn, gn / fn, sn, o1 / 1e6, o2 / 1e6, o2 / o1);
    const char *sfx = zipf ? "" : "_uniform";
    printf("result seg_get_ns%s %.1f ns\n", sfx, gn);
    printf("result seg_get_floor_ns%s %.1f ns\n", sfx, fn);
    printf("result seg_get_vs_floor%s %.2f x\n", sfx, gn / fn);
    printf("result seg_set_ns%s %.1f ns\n", sfx, sn);
    printf("result seg_ops_1t%s %.0f ops/s\n", sfx, o1);
    printf("result seg_ops_2t%s %.0f ops/s\n", sfx, o2);
    printf("result seg_scaling_2t%s %.2f x\n", sfx, o2 / o1);
    free(ft.buckets);
    free(ft.items);
    free(gets);
    free(sets);
    free(mix[0]);
    free(mix[1]);
    kl_engine_close(e);
}

/* Metadata after loading the 1M keys once, with a hash table of 2^hp buckets
 * (0: the default for the memory). */
static double metadata(unsigned hp)
{
    struct kl_engine *e = open_engine((size_t)128 << 20, KL_EVICT_MERGE, hp);
    struct kl_engine_stats s;
    double lo = 1e9, hi = 0; /* the table's bytes per item along the load */
    for (uint32_t k = 0; k < NKEYS; k++) {
        set_key(e, k);
        if ((k + 1) % 50000 == 0 && k + 1 >= 100000) {
            kl_engine_stats(e, &s);
            double b = (double)s.hash_bytes / (double)s.items;
            lo = b < lo ? b : lo;
            hi = b > hi ? b : hi;
        }
    }
    kl_engine_stats(e, &s);
    double meta =
        ((double)s.seg_used_bytes + (double)s.hash_bytes - (double)s.items * (KLEN + VLEN)) /
        (double)s.items;
    double hash = (double)s.hash_bytes / (double)s.items;
    printf("metadata %.2f B/item (hash table %.2f, item header+padding %.2f) with %llu buckets "
           "(%s); %llu items, %llu overflow buckets\n",
           meta, hash, meta - hash, (unsigned long long)s.hash_buckets,
           hp ? "--hash-power" : "default for -m 128 MiB", (unsigned long long)s.items,
           (unsigned long long)s.hash_overflow_used);
    printf("hash table bytes per item along the load (every 50k items from 100k): %.2f to %.2f\n",
           lo, hi);
    kl_engine_close(e);
    return meta;
}

/* ns per set of a new key while 1M keys go into an empty engine (the table
 * grows and moves entries to make room: what an overwrite never does). */
static void inserts(void)
{
    double ns[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        struct kl_engine *e = open_engine((size_t)128 << 20, KL_EVICT_MERGE, 0);
        uint64_t t0 = kl_now();
        for (uint32_t k = 0; k < NKEYS; k++)
            set_key(e, k);
        ns[r] = (double)(kl_now() - t0) / NKEYS;
        kl_engine_close(e);
        printf("  insert round %d: %.1f ns\n", r + 1, ns[r]);
    }
    double m = median(ns, ROUNDS);
    printf("insert of a new key (1M into an empty engine): %.1f ns\n", m);
    printf("result seg_insert_ns %.1f ns\n", m);
}

static void memory(void)
{
    inserts();
    double meta = metadata(0);
    printf("result seg_meta_bytes_per_item %.2f B\n", meta);
    struct kl_engine_stats s;
    struct kl_engine *e;
    /* items per MiB of -m once full */
    size_t mem = (size_t)64 << 20;
    e = open_engine(mem, KL_EVICT_MERGE, 0);
    for (uint32_t k = 0; k < NKEYS; k++)
        set_key(e, k);
    kl_engine_stats(e, &s);
    double per = (double)s.items / (double)(mem >> 20);
    printf("items per MiB of -m at %u B values: %.0f (%llu items in %zu MiB)\n", VLEN, per,
           (unsigned long long)s.items, mem >> 20);
    printf("result seg_items_per_mib %.0f items\n", per);
    kl_engine_close(e);
}

/* ---- exact LRU over key indexes ---- */

struct lru {
    uint32_t cap, n, head, tail;         /* head: most recent */
    uint32_t *prev, *next, *key, *where; /* where[key]: node + 1, 0 = absent */
};

static void lru_init(struct lru *l, uint32_t cap)
{
    l->cap = cap;
    l->n = 0;
    l->head = l->tail = UINT32_MAX;
    l->prev = malloc(sizeof(uint32_t) * cap);
    l->next = malloc(sizeof(uint32_t) * cap);
    l->key = malloc(sizeof(uint32_t) * cap);
    l->where = calloc(NKEYS, sizeof(uint32_t));
}

static void lru_unlink(struct lru *l, uint32_t x)
{
    if (l->prev[x] != UINT32_MAX)
        l->next[l->prev[x]] = l->next[x];
    else
        l->head = l->next[x];
    if (l->next[x] != UINT32_MAX)
        l->prev[l->next[x]] = l->prev[x];
    else
        l->tail = l->prev[x];
}

static void lru_front(struct lru *l, uint32_t x)
{
    l->prev[x] = UINT32_MAX;
    l->next[x] = l->head;
    if (l->head != UINT32_MAX)
        l->prev[l->head] = x;
    else
        l->tail = x;
    l->head = x;
}

/* true on a hit; a miss inserts the key, evicting the least recent. */
static bool lru_access(struct lru *l, uint32_t k)
{
    uint32_t w = l->where[k];
    if (w) {
        lru_unlink(l, w - 1);
        lru_front(l, w - 1);
        return true;
    }
    uint32_t x;
    if (l->n < l->cap) {
        x = l->n++;
    } else {
        x = l->tail;
        lru_unlink(l, x);
        l->where[l->key[x]] = 0;
    }
    l->key[x] = k;
    l->where[k] = x + 1;
    lru_front(l, x);
    return false;
}

static void lru_free(struct lru *l)
{
    free(l->prev);
    free(l->next);
    free(l->key);
    free(l->where);
}

/* zipf gets, 5% of requests in scans of 1000 consecutive cold keys */
static uint32_t *make_scan_stream(uint32_t n)
{
    uint32_t *s = malloc(sizeof *s * n);
    uint64_t r = 99;
    for (uint32_t i = 0; i < n;) {
        if (rnd(&r) % 19000 == 0) { /* then 1000 keys: about 5% of requests */
            uint32_t start = (uint32_t)(rnd(&r) % NKEYS);
            for (uint32_t j = 0; j < 1000 && i < n; j++)
                s[i++] = (start + j) % NKEYS;
        } else {
            s[i++] = zipf_next(&zipf99, &r);
        }
    }
    return s;
}

static void miss_ratios(void)
{
    const uint32_t n = 8u << 20, warm = 2u << 20;
    uint32_t *stream = make_scan_stream(n);
    uint32_t item = (4 + KLEN + VLEN + 7) & ~7u; /* bytes of one item in a segment */
    size_t mem = (size_t)NKEYS / 10 * item;
    mem = (mem + (1u << 20) - 1) & ~(size_t)((1u << 20) - 1); /* whole segments */
    struct lru l;
    lru_init(&l, (uint32_t)(mem / item));
    uint64_t miss = 0;
    for (uint32_t i = 0; i < n; i++)
        if (!lru_access(&l, stream[i]) && i >= warm)
            miss++;
    double lru = (double)miss / (n - warm);
    printf("miss ratio at %zu MiB (%u items of %u B by LRU's count; segments of %zu KiB), "
           "zipf 0.99 + 5%% scans:\n",
           mem >> 20, l.cap, item, missratio_seg >> 10);
    printf("  %-7s %.4f\n", "lru", lru);
    lru_free(&l);
    seg_size = missratio_seg;
    for (int p = KL_EVICT_MERGE; p <= KL_EVICT_S3FIFO; p++) {
        struct kl_engine *e = open_engine(mem, (enum kl_evict_policy)p, 0);
        miss = 0;
        for (uint32_t i = 0; i < n; i++) {
            if (!get_key(e, stream[i])) {
                set_key(e, stream[i]);
                if (i >= warm)
                    miss++;
            }
        }
        double mr = (double)miss / (n - warm);
        const char *name = kl_evict_policy_name((enum kl_evict_policy)p);
        printf("  %-7s %.4f\n", name, mr);
        printf("result seg_missratio_%s %.4f ratio\n", name, mr);
        kl_engine_close(e);
    }
    printf("result seg_missratio_lru %.4f ratio\n", lru);
    free(stream);
}

int main(int argc, char **argv)
{
    bool quick = false, mem_only = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = true;
        else if (strcmp(argv[i], "--memory") == 0)
            mem_only = true;
        else if (strcmp(argv[i], "--seg-size") == 0 && i + 1 < argc)
            missratio_seg = strtoul(argv[++i], NULL, 0);
    }
    keys = aligned_alloc((size_t)2 << 20, sizeof *keys * NKEYS);
    madvise(keys, sizeof *keys * NKEYS, MADV_HUGEPAGE); /* the bench's own misses: fewer */
    for (uint32_t k = 0; k < NKEYS; k++)
        snprintf(keys[k], sizeof keys[k], "key:%010u", k);
    memset(value, 'v', VLEN);
    zipf_init(&zipf99, NKEYS, 0.99);
    if (mem_only) {
        memory(); /* inserts, metadata, items per MiB */
    } else {
        if (!quick) {
            speed(true, "zipf");
            speed(false, "uniform");
            memory();
        }
        miss_ratios();
    }
    free(keys);
    return 0;
}
