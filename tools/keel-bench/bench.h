/* keel-bench's shared declarations: options, the workload, connections'
 * in-flight requests, statistics, and the functions each file provides.
 *
 * The files split by concern: options.c (flags and -h), workload.c (random
 * numbers, key choice, zipf, the command mix, key and value bytes), verify.c
 * (what a reply must hold), state.c (--state: the acknowledged writes on
 * disk, and --check against them), driver.c (one connection: a sender and a
 * receiver fiber), report.c (progress lines, the final text and JSON
 * report), main.c (threads, timing, exit status). Nothing here is public
 * library API: none of these names start with kl_.
 */
#ifndef KEEL_BENCH_H
#define KEEL_BENCH_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "keel/histogram.h"
#include "keel/workers.h"

#define KB_SERVERS_MAX 64
#define KB_MGET_MAX    64   /* keys in one multi-get, at most */
#define KB_OPEN_WINDOW 1024 /* open loop: requests in flight per connection, at most */
#define KB_VALUE_MAX   (1u << 20)

/* Commands of the mix. */
enum kb_cmd { KB_GET, KB_MGET, KB_SET, KB_DELETE, KB_MG, KB_MS, KB_CMD_COUNT };

/* Error kinds, counted and reported. */
enum kb_err {
    KB_E_MISMATCH,   /* a value that is not what was last stored */
    KB_E_MISSING,    /* a miss where a stored value must exist */
    KB_E_PROTOCOL,   /* a reply that cannot be parsed or does not fit the request */
    KB_E_SERVER,     /* ERROR, CLIENT_ERROR, SERVER_ERROR replies */
    KB_E_NOT_STORED, /* a store the server refused */
    KB_E_CONNECTION, /* connect failures, resets, requests lost with a connection */
    KB_E_TIMEOUT,    /* requests still unanswered when the drain time ran out */
    KB_E_STALE,      /* --check: an older value where a later write was acknowledged */
    KB_ERR_COUNT
};

/* Per-worker counters (keel/workers.h counter blocks), read by the
 * progress line: totals since start, warm-up included. */
enum kb_counter { KB_C_REQUESTS, KB_C_HITS, KB_C_MISSES, KB_C_ERRORS, KB_C_COUNT };

/* A coarse latency histogram for the progress line: 4 buckets per power
 * of two of nanoseconds, written by one worker with kl_counter_add. */
#define KB_COARSE_BUCKETS 256

struct kb_options {
    struct sockaddr_in servers[KB_SERVERS_MAX];
    char server_names[KB_SERVERS_MAX][64];
    uint32_t nservers;
    uint32_t connections; /* per server */
    uint32_t threads;
    uint32_t pipeline;
    double rate; /* requests/s in total; 0: closed loop */
    double duration_s;
    double warmup_s;
    uint64_t keys;
    uint32_t key_min, key_max;
    uint32_t value_min, value_max;
    uint32_t mix[KB_CMD_COUNT]; /* weights */
    uint32_t mix_total;
    uint32_t mget_keys;
    double zipf; /* 0: uniform */
    bool load;
    bool verify;
    const char *state; /* --state FILE: acknowledged writes are appended to it */
    bool check;        /* --check: read every key and check it against --state */
    bool json;
    uint64_t seed;
    enum kl_reactor_backend backend;
};

/* The run as every worker sees it (written before the workers start). */
struct kb_run {
    struct kb_options opt;
    uint32_t total_conns;
    uint32_t run_tag;    /* marks the values this run stored */
    uint64_t start_ns;   /* kl_now() when the load starts */
    uint64_t measure_ns; /* end of warm-up: requests meant to be sent later are measured */
    uint64_t end_ns;     /* no request is sent at or after this (kb_end: main may move it) */
    uint64_t drain_ns;   /* replies still missing by then are timeouts (kb_drain) */
    double zeta_n, zipf_alpha, zipf_eta, zeta2; /* zipf's constants (workload.c) */
    uint64_t zipf_n;                            /* ranks zipf draws from */
    uint32_t *expect; /* --verify: each key's state (KB_EXPECT_*, or a version) */
    struct kl_workers *workers;
    struct kb_thread *threads; /* one per worker */
    struct kb_state *state;    /* --state (state.c) */
    _Atomic uint32_t threads_done;
    _Atomic uint32_t load_done; /* --load: keys stored so far, for progress */
};

/* The end of the run and of its drain, as workers read them: SIGINT moves
 * them earlier while the workers run. */
static inline uint64_t kb_end(const struct kb_run *run)
{
    return __atomic_load_n(&run->end_ns, __ATOMIC_RELAXED);
}

static inline uint64_t kb_drain(const struct kb_run *run)
{
    return __atomic_load_n(&run->drain_ns, __ATOMIC_RELAXED);
}

/* One worker's statistics: measured requests only (after warm-up). */
struct kb_thread {
    uint64_t requests[KB_CMD_COUNT];
    uint64_t hits[KB_CMD_COUNT]; /* per key: get, mget, mg */
    uint64_t misses[KB_CMD_COUNT];
    uint64_t errors[KB_ERR_COUNT]; /* warm-up included: an error is never forgiven */
    uint64_t verified;             /* values checked and found right */
    struct kl_hist *hist[KB_CMD_COUNT];
    struct kl_hist *lag; /* open loop: how late each batch went out after its first was due */
    kl_counter coarse[KB_COARSE_BUCKETS];
    char first_error[160]; /* the first error's description, for the report */
    char *slog;            /* --state: records not yet written */
    uint32_t slog_len;
    uint64_t slog_since; /* kl_now() of the oldest record not yet written */
    uint64_t state_records;
} __attribute__((aligned(64)));

/* One request in flight on a connection. */
struct kb_req {
    uint64_t t0; /* intended (open loop) or actual (closed loop) send time */
    uint8_t cmd;
    uint8_t nkeys;
    uint8_t done;     /* mget: keys answered so far */
    uint32_t ver;     /* set, ms, delete: the connection's version of this write */
    uint32_t *keys;   /* the slot's own room for its keys (driver.c sizes it by the mix) */
    uint32_t *expect; /* verify: state of each key when sent */
};

/* Verify's per-key state (a key is owned by one connection when verifying). */
#define KB_EXPECT_UNKNOWN 0u /* nothing known: a miss or any well-formed value */
#define KB_EXPECT_DELETED 1u /* must miss */
/* values >= 2: the version this run last stored */

/* ---- options.c ---- */

/* Parse argv into *opt; 0, 1 for -h (usage printed), or -1 after a one-line error. */
int kb_options_parse(struct kb_options *opt, int argc, char **argv);

/* ---- workload.c ---- */

/* A connection's random stream (xoshiro256**). */
struct kb_rng {
    uint64_t s[4];
};

void kb_rng_seed(struct kb_rng *r, uint64_t seed);
uint64_t kb_rng_next(struct kb_rng *r);
/* Uniform in [0, n). */
uint64_t kb_rng_below(struct kb_rng *r, uint64_t n);

/* Precompute zipf's constants for the ranks a connection draws from. */
void kb_workload_init(struct kb_run *run);
/* A key for connection `conn` (its own keys when verifying). */
uint32_t kb_pick_key(const struct kb_run *run, struct kb_rng *r, uint32_t conn);
/* A command by the mix's weights. */
enum kb_cmd kb_pick_cmd(const struct kb_options *opt, struct kb_rng *r);
/* Write key `k`'s bytes into buf (at least key_max + 1); returns the length. */
uint32_t kb_key_format(const struct kb_options *opt, uint32_t k, char *buf);
/* Key index from key bytes; -1 if they are not one of ours. */
int64_t kb_key_parse(const struct kb_options *opt, const char *p, uint32_t len);
/* SplitMix64's output for state x: the hash behind key and value lengths. */
uint64_t kb_splitmix64(uint64_t x);
/* Length of key k's values within [value_min, value_max]: the same for
 * every version, value_min + splitmix64(2^32 + k) % (value_max - value_min + 1). */
#define KB_VALUE_LEN_SALT (1ull << 32)
uint32_t kb_value_len(uint32_t value_min, uint32_t value_max, uint32_t k);
/* The value's head (its identity, at most KB_VALUE_HEAD bytes) into buf;
 * returns its length; the rest comes from kb_pattern at kb_pattern_offset. */
#define KB_VALUE_HEAD 28
uint32_t kb_value_head(uint32_t k, uint32_t tag, uint32_t ver, char *buf);
extern const char *kb_pattern; /* KB_VALUE_MAX + 64 bytes, the same in every run */
uint32_t kb_pattern_offset(uint32_t k, uint32_t tag, uint32_t ver);
/* Fill kb_pattern (once, at start-up). */
int kb_pattern_init(void);

/* ---- verify.c ---- */

/* Check one value of key k against `expect`; returns -1 (and counts the error)
 * when it is wrong, 0 when right. */
int kb_verify_value(const struct kb_run *run, struct kb_thread *t, uint32_t k, uint32_t expect,
                    const char *val, uint32_t len);
/* A value's identity (key, run tag, version) from its head; -1 if it has none. */
int kb_value_identity(const char *val, uint32_t len, uint32_t *k, uint32_t *tag, uint32_t *ver);
/* Whether the bytes after the head are those of (k, tag, ver). */
bool kb_value_body_ok(uint32_t k, uint32_t tag, uint32_t ver, const char *val, uint32_t len);
/* A miss of key k: an error if `expect` says it must exist. */
int kb_verify_miss(struct kb_thread *t, uint32_t k, uint32_t expect);
/* Count an error of `kind`, remembering the first description. */
void kb_error(struct kb_thread *t, enum kb_err kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- state.c ---- */

/* --state: read FILE (all of it with --check), and without --check append
 * this run's header, durably; 0, or -1 after a message on stderr. */
int kb_state_open(struct kb_run *run);
/* A record of thread t: 'S' an acknowledged store, 'D' an acknowledged
 * delete, 'd' a delete sent, of key k at version ver. */
void kb_state_record(struct kb_run *run, struct kb_thread *t, char kind, uint32_t k, uint32_t ver);
/* Append what thread t holds to the file. */
void kb_state_flush(struct kb_run *run, struct kb_thread *t);
/* Flush to the device and close; 0, or -1 after a message (a write failed). */
int kb_state_close(struct kb_run *run);
/* --check: key k's value, or its miss, against the acknowledged writes;
 * -1 (error counted) when wrong. */
int kb_state_check_value(const struct kb_run *run, struct kb_thread *t, uint32_t k, const char *val,
                         uint32_t len);
int kb_state_check_miss(const struct kb_run *run, struct kb_thread *t, uint32_t k);

/* ---- driver.c ---- */

/* The function each worker runs: its share of the connections. */
void kb_worker_main(struct kl_worker *w, void *arg);

/* ---- report.c ---- */

/* Coarse bucket of a latency in ns. */
unsigned kb_coarse_bucket(uint64_t ns);
/* One progress line (every second) from the workers' live counters. */
void kb_progress(struct kb_run *run, double elapsed_s, bool tty);
/* The final report on stdout (text or JSON); returns the total error count. */
uint64_t kb_report(struct kb_run *run, double measured_s);

/* Names. */
extern const char *const kb_cmd_names[KB_CMD_COUNT];
extern const char *const kb_err_names[KB_ERR_COUNT];

#endif /* KEEL_BENCH_H */
