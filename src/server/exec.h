/* exec.h: running one parsed memcached command against the engine.
 *
 * The protocol layer (keel/memcache.h) turns bytes into a struct kl_mc_cmd;
 * exec maps it onto the engine interface (storage/engine.h) with memcached's
 * semantics and gathers the reply on the connection (keel/conn.h): headers
 * composed into small copied pieces, values borrowed from engine memory
 * (pinned until the send completes) when they are large enough for that to
 * pay, copied when small. exec holds no parser and no storage: it is the
 * table of "this command means these engine calls and this reply".
 *
 * Counters go to the calling worker's block (stats.h), on that worker's own
 * cache lines.
 */
#ifndef KEELD_EXEC_H
#define KEELD_EXEC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "keel/conn.h"
#include "keel/memcache.h"
#include "keel/pool.h"
#include "keel/workers.h"
#include "latency.h"
#include "options.h"
#include "prefix.h"
#include "stats.h"
#include "storage/engine.h"

/* Values of at least this many bytes are sent from engine memory; smaller
 * ones are copied into the reply batch (cheaper than pinning). */
#define KEELD_BORROW_MIN 2048

/* A `stats` argument the server answers: 0, or -1 for an unknown argument. */
typedef int (*keeld_stats_fn)(void *arg, const char *which, size_t which_len, keeld_stat_emit emit,
                              void *sink);

/* What every worker shares; read-only once serving (but `stopping`). */
struct keeld_shared {
    struct kl_engine *engine;
    const struct keeld_options *opts;
    struct kl_mc_config mc; /* limits; `now` is set per batch */
    keeld_stats_fn stats;
    void *stats_arg;
    void (*shutdown)(void *arg, bool graceful); /* the "shutdown" command, with -A */
    void *shutdown_arg;
    atomic_uint verbosity;
    atomic_bool crawler_off;         /* `lru_crawler disable` (crawler.h) */
    atomic_bool dumping;             /* a metadump is running (crawler.h) */
    struct keeld_prefixes *prefixes; /* `stats detail` (prefix.h) */
};

/* One worker's part. */
struct keeld_worker {
    struct keeld_shared *shared;
    kl_counter *counters;      /* KEELD_COUNTERS of them (stats.h) */
    int64_t now;               /* unix seconds, set for each batch of input */
    struct kl_pool pins;       /* struct keeld_pin: items lent to the writer */
    struct keeld_latency *lat; /* this worker's per-command histograms */
};

/* -vv (or the `verbosity` command at 2 or more): commands and replies are
 * traced on stderr, as memcached -vv traces them. */
static inline bool keeld_tracing(const struct keeld_worker *w)
{
    return atomic_load_explicit(&w->shared->verbosity, memory_order_relaxed) > 1;
}

/* Trace one line on stderr as memcached -vv does: "<17 get a" for what came
 * in (dir '<'), ">17 END" for what went out; the line ends at its first
 * CR or LF. One write(2), so lines of different workers do not mix. */
void keeld_trace(int fd, char dir, const char *p, size_t len);

/* Set up a worker's part (its pin pool); 0 or -ENOMEM. */
int keeld_worker_init(struct keeld_worker *w, struct keeld_shared *shared, kl_counter *counters,
                      struct keeld_latency *lat);

/* Release it (every pin returned). */
void keeld_worker_destroy(struct keeld_worker *w);

/* Run one command and queue its reply on `c`: KL_CONN_MORE, KL_CONN_CLOSE
 * (quit, or a reply that ends the connection), or a negative errno from the
 * writer (the connection is closing). */
int keeld_exec(struct keeld_worker *w, struct kl_conn *c, const struct kl_mc_cmd *cmd);

/* The connection handler (keel/conn.h): parse every complete command in the
 * input, run each, consume them; `arg` is the struct keeld_worker. */
int keeld_session(struct kl_conn *c, void *arg);

/* The parser refused a value over -I (cmd->too_large): count it and, as
 * memcached, unlink the key's old value for a set (and for ms in any mode),
 * so no stale value outlives a failed update. */
void keeld_too_large(struct keeld_worker *w, const struct kl_mc_cmd *cmd);

/* The meta commands (mg ms md ma me); called by keeld_exec. */
int keeld_exec_meta(struct keeld_worker *w, struct kl_conn *c, const struct kl_mc_cmd *cmd);

/* ---- shared by exec.c and exec_meta.c ---- */

/* Count a command on key under its prefix, while `stats detail` is on. */
static inline void keeld_prefix(struct keeld_worker *w, const char *key, size_t klen,
                                enum keeld_prefix_op op, bool hit)
{
    if (KL_UNLIKELY(keeld_prefixes_on(w->shared->prefixes)))
        keeld_prefix_count(w->shared->prefixes, key, klen, op, hit);
}

/* Add n to one of the worker's counters. */
static inline void keeld_count(struct keeld_worker *w, enum keeld_counter which, uint64_t n)
{
    kl_counter_add(&w->counters[which], n);
}

/* Count an incr/decr (classic or meta) by its engine result. */
static inline void keeld_count_arith(struct keeld_worker *w, bool incr, int r)
{
    if (r == KL_E_OK)
        keeld_count(w, incr ? KEELD_C_incr_hits : KEELD_C_decr_hits, 1);
    else if (r == KL_E_NOT_FOUND)
        keeld_count(w, incr ? KEELD_C_incr_misses : KEELD_C_decr_misses, 1);
}

/* Queue a static or composed line. */
int keeld_reply(struct keeld_worker *w, struct kl_conn *c, const char *p, size_t len);

/* Queue a string literal. */
/* The SERVER_ERROR line of a disk failure (KL_E_NO_SPACE, KL_E_CORRUPT, KL_E_IO). */
int keeld_engine_failure(struct keeld_worker *w, struct kl_conn *c, int r);

#define REPLY_LITERAL(w, c, s) keeld_reply((w), (c), s, sizeof s - 1)

/* Queue a fixed line (STORED, END, ...). */
int keeld_reply_line(struct keeld_worker *w, struct kl_conn *c, enum kl_mc_line line);

/* Queue `header`, the item's value and "\r\n", then release the item (at
 * once when copied, after the send when borrowed). */
int keeld_reply_value(struct keeld_worker *w, struct kl_conn *c, const char *header, size_t hlen,
                      struct kl_item *it);

/* The engine's exptime for a protocol deadline. */
uint32_t keeld_exptime(int64_t deadline);

/* The key to give the engine: the key as sent, or decoded from base64 into
 * buf (KL_KEY_MAX bytes). 0, or -1 when it cannot be decoded. */
int keeld_key(const struct kl_mc_cmd *cmd, char *buf, struct kl_mc_str *key);

#endif
