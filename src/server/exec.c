/* exec.c: the classic text commands against the engine (see exec.h).
 *
 * Each command is a few engine calls and one reply, with memcached 1.6's
 * answers and counters: noreply hides the engine's errors too (memcached's
 * out_string), a `set` that fails (too large, no memory) also removes the
 * key's old value (memcached does, so a stale value cannot outlive a failed
 * update), and every retrieval key counts as one cmd_get.
 */
#define _GNU_SOURCE
#include "exec.h"
#include "crawler.h"
#include "words.h"
#include "retrieve.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "keel/assert.h"

#define MB (1024ull * 1024ull)

/* An item lent to the writer until its bytes are sent. */
struct keeld_pin {
    struct kl_engine *engine;
    struct kl_pool *pool;
    struct kl_item item;
};

#define PINS_PER_WORKER 4096

int keeld_worker_init(struct keeld_worker *w, struct keeld_shared *shared, kl_counter *counters,
                      struct keeld_latency *lat)
{
    w->shared = shared;
    w->counters = counters;
    w->lat = lat;
    return kl_pool_init(&w->pins, "keeld-pins", sizeof(struct keeld_pin), PINS_PER_WORKER);
}

void keeld_worker_destroy(struct keeld_worker *w)
{
    KL_ASSERT(kl_pool_in_use(&w->pins) == 0, "%zu items still lent to the writer",
              kl_pool_in_use(&w->pins));
    kl_pool_destroy(&w->pins);
}

static void unpin(void *arg)
{
    struct keeld_pin *p = arg;
    kl_engine_release(p->engine, &p->item);
    kl_pool_put(p->pool, p);
}

int keeld_reply(struct keeld_worker *w, struct kl_conn *c, const char *p, size_t len)
{
    keeld_count(w, KEELD_C_bytes_written, len);
    return kl_conn_write(c, p, len);
}

void keeld_trace(int fd, char dir, const char *p, size_t len)
{
    char line[512];
    size_t n = 0;
    while (n < len && p[n] != '\r' && p[n] != '\n')
        n++;
    int k = snprintf(line, sizeof line, "%c%d %.*s\n", dir, fd, (int)(n < 400 ? n : 400), p);
    if (k > 0 && write(STDERR_FILENO, line, (size_t)k) < 0)
        return; /* stderr is gone: tracing is best effort */
}

int keeld_reply_line(struct keeld_worker *w, struct kl_conn *c, enum kl_mc_line line)
{
    struct kl_mc_str s = kl_mc_line(line);
    if (KL_UNLIKELY(keeld_tracing(w)) && line != KL_MC_R_CRLF)
        keeld_trace(kl_conn_fd(c), '>', s.p, s.len);
    return keeld_reply(w, c, s.p, s.len);
}

int keeld_reply_value(struct keeld_worker *w, struct kl_conn *c, const char *header, size_t hlen,
                      struct kl_item *it)
{
    struct kl_engine *e = w->shared->engine;
    int rc = keeld_reply(w, c, header, hlen);
    keeld_count(w, KEELD_C_bytes_written, it->vlen);
    struct keeld_pin *p = NULL;
    if (rc == 0 && it->vlen >= KEELD_BORROW_MIN)
        p = kl_pool_get(&w->pins);
    if (p == NULL) { /* small, or every pin lent: copy */
        if (rc == 0)
            rc = kl_conn_write(c, it->value, it->vlen);
        kl_engine_release(e, it);
    } else {
        p->engine = e;
        p->pool = &w->pins;
        p->item = *it;
        rc = kl_conn_write_ref(c, p->item.value, p->item.vlen, unpin, p);
    }
    if (rc == 0)
        rc = keeld_reply_line(w, c, KL_MC_R_CRLF);
    return rc;
}

uint32_t keeld_exptime(int64_t deadline)
{
    if (deadline == 0)
        return 0;
    if (deadline == KL_MC_EXPIRED || deadline < 0)
        return KL_EXPTIME_EXPIRED;
    if (deadline >= (int64_t)UINT32_MAX)
        return UINT32_MAX - 1;
    return (uint32_t)deadline;
}

int keeld_key(const struct kl_mc_cmd *cmd, char *buf, struct kl_mc_str *key)
{
    if (!cmd->base64) {
        *key = cmd->key;
        return 0;
    }
    int n = kl_mc_base64_decode(cmd->key.p, cmd->key.len, buf, KL_KEY_MAX);
    if (n <= 0)
        return -1;
    *key = (struct kl_mc_str){buf, (uint32_t)n};
    return 0;
}

/* A reply line unless noreply. */
static int ack(struct keeld_worker *w, struct kl_conn *c, const struct kl_mc_cmd *cmd,
               enum kl_mc_line line)
{
    return cmd->noreply ? 0 : keeld_reply_line(w, c, line);
}

int keeld_engine_failure(struct keeld_worker *w, struct kl_conn *c, int r)
{
    switch (r) {
    case KL_E_NO_SPACE: return REPLY_LITERAL(w, c, "SERVER_ERROR out of space\r\n");
    case KL_E_CORRUPT: return REPLY_LITERAL(w, c, "SERVER_ERROR corrupt record\r\n");
    default: return REPLY_LITERAL(w, c, "SERVER_ERROR I/O error\r\n");
    }
}

/* An engine result that is an error; hidden by noreply, as memcached's
 * out_string hides it. */
static int engine_error(struct keeld_worker *w, struct kl_conn *c, const struct kl_mc_cmd *cmd,
                        int r)
{
    if (cmd->noreply)
        return 0;
    const char *line;
    switch (r) {
    case KL_E_NON_NUMERIC:
        line = "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
        break;
    case KL_E_TOO_LARGE: line = "SERVER_ERROR object too large for cache\r\n"; break;
    case KL_E_NO_MEMORY: line = "SERVER_ERROR out of memory storing object\r\n"; break;
    case KL_E_BAD_KEY: line = "CLIENT_ERROR bad command line format\r\n"; break;
    case KL_E_NO_SPACE:
    case KL_E_CORRUPT:
    case KL_E_IO: return keeld_engine_failure(w, c, r);
    default: line = "SERVER_ERROR unexpected engine result\r\n"; break;
    }
    if (KL_UNLIKELY(keeld_tracing(w)))
        keeld_trace(kl_conn_fd(c), '>', line, strlen(line));
    return keeld_reply(w, c, line, strlen(line));
}

/* ---- storage ---- */

static int store(struct keeld_worker *w, struct kl_conn *c, const struct kl_mc_cmd *cmd)
{
    static const enum kl_store_mode modes[KL_MC_TYPE_COUNT] = {
        [KL_MC_SET] = KL_SET,       [KL_MC_ADD] = KL_ADD,         [KL_MC_REPLACE] = KL_REPLACE,
        [KL_MC_APPEND] = KL_APPEND, [KL_MC_PREPEND] = KL_PREPEND, [KL_MC_CAS] = KL_CAS,
    };
    struct kl_engine *e = w->shared->engine;
    enum kl_store_mode mode = modes[cmd->type];
    uint64_t cas_out = 0;
    int r = kl_engine_store(e, mode, cmd->key.p, cmd->key.len, cmd->value.p, cmd->value.len,
                            cmd->flags, keeld_exptime(cmd->exptime), cmd->cas, &cas_out);
    keeld_count(w, KEELD_C_cmd_set, 1);
    keeld_prefix(w, cmd->key.p, cmd->key.len, KEELD_PREFIX_SET, false);
    if (mode == KL_CAS) {
        keeld_count(w,
                    r == KL_E_STORED   ? KEELD_C_cas_hits
                    : r == KL_E_EXISTS ? KEELD_C_cas_badval
                                       : KEELD_C_cas_misses,
                    r == KL_E_STORED || r == KL_E_EXISTS || r == KL_E_NOT_FOUND);
    }
    switch (r) {
    case KL_E_STORED: keeld_count(w, KEELD_C_total_items, 1); return ack(w, c, cmd, KL_MC_R_STORED);
    case KL_E_NOT_STORED: return ack(w, c, cmd, KL_MC_R_NOT_STORED);
    case KL_E_EXISTS: return ack(w, c, cmd, KL_MC_R_EXISTS);
    case KL_E_NOT_FOUND: return ack(w, c, cmd, KL_MC_R_NOT_FOUND);
    case KL_E_TOO_LARGE:
        keeld_count(w, KEELD_C_store_too_large, 1);
        if (mode == KL_SET) /* as memcached: no stale value outlives a failed set */
            kl_engine_delete(e, cmd->key.p, cmd->key.len, 0, false, NULL);
        return engine_error(w, c, cmd, r);
    case KL_E_NO_MEMORY:
        keeld_count(w, KEELD_C_store_no_memory, 1);
        if (mode == KL_SET) /* likewise */
            kl_engine_delete(e, cmd->key.p, cmd->key.len, 0, false, NULL);
        return engine_error(w, c, cmd, r);
    default: return engine_error(w, c, cmd, r);
    }
}

void keeld_too_large(struct keeld_worker *w, const struct kl_mc_cmd *cmd)
{
    keeld_count(w, KEELD_C_cmd_set, 1);
    if (cmd->type != KL_MC_MS) /* as memcached: meta commands are not counted by prefix */
        keeld_prefix(w, cmd->key.p, cmd->key.len, KEELD_PREFIX_SET, false);
    keeld_count(w, KEELD_C_store_too_large, 1);
    if (cmd->type != KL_MC_SET && cmd->type != KL_MC_MS)
        return;
    char buf[KL_KEY_MAX];
    struct kl_mc_str key;
    if (keeld_key(cmd, buf, &key) == 0)
        kl_engine_delete(w->shared->engine, key.p, key.len, 0, false, NULL);
}

/* ---- the rest ---- */

static int remove_key(struct keeld_worker *w, struct kl_conn *c, const struct kl_mc_cmd *cmd)
{
    int r = kl_engine_delete(w->shared->engine, cmd->key.p, cmd->key.len, 0, false, NULL);
    keeld_count(w, r == KL_E_OK ? KEELD_C_delete_hits : KEELD_C_delete_misses, 1);
    keeld_prefix(w, cmd->key.p, cmd->key.len, KEELD_PREFIX_DEL, false);
    if (r == KL_E_NO_SPACE || r == KL_E_CORRUPT || r == KL_E_IO)
        return engine_error(w, c, cmd, r);
    return ack(w, c, cmd, r == KL_E_OK ? KL_MC_R_DELETED : KL_MC_R_NOT_FOUND);
}

static int arith(struct keeld_worker *w, struct kl_conn *c, const struct kl_mc_cmd *cmd)
{
    bool incr = cmd->type == KL_MC_INCR;
    uint64_t value = 0, cas = 0;
    int r = kl_engine_arith(w->shared->engine, cmd->key.p, cmd->key.len, incr, cmd->delta, 0,
                            &value, &cas);
    keeld_count_arith(w, incr, r);
    switch (r) {
    case KL_E_OK: {
        if (cmd->noreply)
            return 0;
        char buf[32];
        int n = kl_mc_number(buf, sizeof buf, value);
        if (KL_UNLIKELY(keeld_tracing(w)))
            keeld_trace(kl_conn_fd(c), '>', buf, (size_t)n);
        return keeld_reply(w, c, buf, (size_t)n);
    }
    case KL_E_NOT_FOUND: return ack(w, c, cmd, KL_MC_R_NOT_FOUND);
    default: return engine_error(w, c, cmd, r);
    }
}

static int touch(struct keeld_worker *w, struct kl_conn *c, const struct kl_mc_cmd *cmd)
{
    int r =
        kl_engine_touch(w->shared->engine, cmd->key.p, cmd->key.len, keeld_exptime(cmd->exptime));
    keeld_count(w, KEELD_C_cmd_touch, 1);
    keeld_count(w, r == KL_E_OK ? KEELD_C_touch_hits : KEELD_C_touch_misses, 1);
    if (r == KL_E_NO_SPACE || r == KL_E_CORRUPT || r == KL_E_IO)
        return engine_error(w, c, cmd, r);
    return ack(w, c, cmd, r == KL_E_OK ? KL_MC_R_TOUCHED : KL_MC_R_NOT_FOUND);
}

static int flush_all(struct keeld_worker *w, struct kl_conn *c, const struct kl_mc_cmd *cmd)
{
    if (w->shared->opts->disable_flush_all)
        return REPLY_LITERAL(w, c, "CLIENT_ERROR flush_all not allowed\r\n");
    int64_t now = w->now;
    uint32_t delay = 0;
    if (cmd->exptime > now && cmd->exptime != KL_MC_EXPIRED)
        delay = (uint32_t)(cmd->exptime - now);
    kl_engine_flush(w->shared->engine, delay);
    keeld_count(w, KEELD_C_cmd_flush, 1);
    return ack(w, c, cmd, KL_MC_R_OK);
}

static int version(struct keeld_worker *w, struct kl_conn *c)
{
    char buf[64];
    int n = kl_mc_version(buf, sizeof buf, KEELD_VERSION_STRING);
    return keeld_reply(w, c, buf, (size_t)n);
}

static int shutdown_cmd(struct keeld_worker *w, struct kl_conn *c, const struct kl_mc_cmd *cmd)
{
    if (!w->shared->opts->allow_shutdown)
        return REPLY_LITERAL(w, c, "ERROR: shutdown not enabled\r\n");
    if (cmd->num < 0)
        return REPLY_LITERAL(w, c, "CLIENT_ERROR invalid shutdown mode\r\n");
    w->shared->shutdown(w->shared->shutdown_arg, cmd->num == 1);
    return KL_CONN_CLOSE; /* as memcached: no reply, the connection ends */
}

static int cache_memlimit(struct keeld_worker *w, struct kl_conn *c, const struct kl_mc_cmd *cmd)
{
    if (cmd->num < 8)
        return REPLY_LITERAL(w, c, "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n");
    if ((uint64_t)cmd->num * MB == w->shared->opts->memory_bytes)
        return ack(w, c, cmd, KL_MC_R_OK);
    /* keel's segments are one mapping sized at start: it cannot grow or shrink */
    return REPLY_LITERAL(w, c, "MEMLIMIT_ADJUST_FAILED keeld sets its memory at start (-m)\r\n");
}

struct stat_sink {
    struct keeld_worker *w;
    struct kl_conn *c;
    int rc;
};

static void stat_line(void *sink, enum keeld_stat_kind kind, const char *name, const char *value)
{
    (void)kind;
    struct stat_sink *s = sink;
    char buf[256];
    int n = kl_mc_stat(buf, sizeof buf, name, value);
    if (s->rc == 0 && n > 0)
        s->rc = keeld_reply(s->w, s->c, buf, (size_t)n);
}

/* `stats detail on|off|dump` (prefix.h): its first word decides, as in
 * memcached; none, or another, gets memcached's usage line. The dump is
 * written a part of the table at a time. */
static int stats_detail(struct keeld_worker *w, struct kl_conn *c, uint32_t n,
                        const struct kl_mc_str *word)
{
    struct keeld_prefixes *pre = w->shared->prefixes;
    if (n >= 2 && (keeld_word_is(word[1], "on") || keeld_word_is(word[1], "off"))) {
        keeld_prefixes_switch(pre, keeld_word_is(word[1], "on"));
        return keeld_reply_line(w, c, KL_MC_R_OK);
    }
    if (n < 2 || !keeld_word_is(word[1], "dump"))
        return REPLY_LITERAL(w, c, "CLIENT_ERROR usage: stats detail on|off|dump\r\n");
    struct keeld_text out = {0};
    uint32_t cursor = 0;
    bool more, failed = false;
    int rc = 0;
    do {
        more = keeld_prefixes_report(pre, &cursor, 256, &out);
        failed = out.failed;
        if (!failed && out.len > 0)
            rc = keeld_reply(w, c, out.buf, out.len);
        out.len = 0;
    } while (more && rc == 0 && !failed);
    keeld_text_free(&out);
    if (rc != 0)
        return rc;
    if (failed)
        return REPLY_LITERAL(w, c, "SERVER_ERROR out of memory writing the prefixes\r\n");
    return keeld_reply_line(w, c, KL_MC_R_END);
}

static int stats(struct keeld_worker *w, struct kl_conn *c, const struct kl_mc_cmd *cmd)
{
    struct kl_mc_str word[2];
    uint32_t n = keeld_words(cmd->arg, word, 2);
    if (n >= 1 && keeld_word_is(word[0], "detail"))
        return stats_detail(w, c, n, word);
    struct stat_sink sink = {w, c, 0};
    if (w->shared->stats(w->shared->stats_arg, cmd->arg.p, cmd->arg.len, stat_line, &sink) < 0)
        return keeld_reply_line(w, c, KL_MC_R_ERROR);
    if (sink.rc != 0)
        return sink.rc;
    if (keeld_word_is(cmd->arg, "reset"))
        return keeld_reply_line(w, c, KL_MC_R_RESET);
    return keeld_reply_line(w, c, KL_MC_R_END);
}

int keeld_exec(struct keeld_worker *w, struct kl_conn *c, const struct kl_mc_cmd *cmd)
{
    switch ((enum kl_mc_type)cmd->type) {
    case KL_MC_GET:
    case KL_MC_GETS:
    case KL_MC_GAT:
    case KL_MC_GATS: {
        struct keeld_run one = {.n = 0};
        keeld_run_add(&one, cmd);
        return keeld_run_answer(w, c, &one);
    }
    case KL_MC_SET:
    case KL_MC_ADD:
    case KL_MC_REPLACE:
    case KL_MC_APPEND:
    case KL_MC_PREPEND:
    case KL_MC_CAS: return store(w, c, cmd);
    case KL_MC_DELETE: return remove_key(w, c, cmd);
    case KL_MC_INCR:
    case KL_MC_DECR: return arith(w, c, cmd);
    case KL_MC_TOUCH: return touch(w, c, cmd);
    case KL_MC_FLUSH_ALL: return flush_all(w, c, cmd);
    case KL_MC_VERSION: return version(w, c);
    case KL_MC_VERBOSITY:
        atomic_store_explicit(&w->shared->verbosity, (unsigned)cmd->num, memory_order_relaxed);
        return ack(w, c, cmd, KL_MC_R_OK);
    case KL_MC_QUIT: return KL_CONN_CLOSE;
    case KL_MC_SHUTDOWN: return shutdown_cmd(w, c, cmd);
    case KL_MC_CACHE_MEMLIMIT: return cache_memlimit(w, c, cmd);
    case KL_MC_STATS: return stats(w, c, cmd);
    case KL_MC_LRU_CRAWLER: return keeld_lru_crawler(w, c, cmd);
    case KL_MC_MN: return keeld_reply_line(w, c, KL_MC_R_MN);
    case KL_MC_MG:
    case KL_MC_MS:
    case KL_MC_MD:
    case KL_MC_MA:
    case KL_MC_ME: keeld_count(w, KEELD_C_cmd_meta, 1); return keeld_exec_meta(w, c, cmd);
    case KL_MC_NONE:
    case KL_MC_TYPE_COUNT: break;
    }
    KL_PANIC("the parser gave a command of type %u", cmd->type);
}
