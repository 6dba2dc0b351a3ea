/* crawler.c: memcached's `lru_crawler` command (see crawler.h).
 *
 * Only `metadump` has work to do: it lists every live item of the engine,
 * one line each, in memcached's format ("key=<url-encoded> exp=<unix time or
 * -1> la=<unix time> cas=<n> fetch=<yes|no> cls=<n> size=<n>\n", then
 * "END\r\n"), which is what `memcached-tool dump` and `keys` read. The
 * engine hands over DUMP_BUCKETS hash buckets' items at a time
 * (kl_engine_dump); their lines are queued on the connection, whose writer
 * flushes as its batch fills, and the fiber yields between parts so that
 * the worker's other connections are served during a long dump. keel has no
 * slab classes: every item is listed as class 1, and a list of class ids
 * dumps everything when it names 1, nothing otherwise. The seg engine
 * expires whole segments on its own, so `crawl` has nothing to reclaim and
 * is acknowledged; `sleep` and `tocrawl` are checked and acknowledged;
 * `enable` and `disable` switch metadump and crawl on and off, as in
 * memcached (whose `enable` of a running crawler is an error). One metadump
 * runs at a time, as memcached's one crawler: another gets BUSY. The engine's
 * callback only copies each item (the seg engine calls it under a hash
 * chain's lock); the lines are formatted afterwards.
 */
#define _GNU_SOURCE
#include "crawler.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/fiber.h"
#include "text.h"
#include "words.h"

#define DUMP_BUCKETS 8  /* hash buckets a part: about 50 items, 30 us of work here */
#define CLASS_MAX    63 /* memcached's highest slab class id */
#define SLEEP_MAX_US 1000000
#define MAX_WORDS    4

/* A decimal number of at most 10 digits; false if w is not one. */
static bool number(struct kl_mc_str w, uint64_t *out)
{
    if (w.len == 0 || w.len > 10)
        return false;
    uint64_t v = 0;
    for (uint32_t i = 0; i < w.len; i++) {
        if (w.p[i] < '0' || w.p[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(w.p[i] - '0');
    }
    *out = v;
    return true;
}

/* Which items a class argument asks for: 1 everything ("all", "hash", or
 * ids naming class 1), 0 nothing (other valid ids), -1 a bad id. */
static int classes(struct kl_mc_str w)
{
    if (keeld_word_is(w, "all") || keeld_word_is(w, "hash"))
        return 1;
    int everything = 0;
    size_t i = 0;
    while (i < w.len) {
        size_t start = i;
        while (i < w.len && w.p[i] != ',')
            i++;
        if (i == start) { /* an empty item ("1,,2", "1,"): skipped, as memcached's strtok */
            i++;
            continue;
        }
        uint64_t id;
        if (!number((struct kl_mc_str){w.p + start, (uint32_t)(i - start)}, &id) || id < 1 ||
            id > CLASS_MAX)
            return -1;
        everything |= id == 1;
        i++; /* the comma; a trailing one is allowed, as memcached allows it */
    }
    return everything;
}

/* URL-encode a key as memcached's metadump does: letters, digits and "-_.~"
 * as they are, every other byte as %XX. */
static size_t url_encode(char *out, const char *key, uint32_t klen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (uint32_t i = 0; i < klen; i++) {
        unsigned char ch = (unsigned char)key[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            out[n++] = (char)ch;
        } else {
            out[n++] = '%';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 15];
        }
    }
    out[n] = '\0';
    return n;
}

/* One item of a part, packed behind its key bytes in the part's buffer:
 * the engine's callback runs under a hash chain's lock, so it only copies;
 * the lines are formatted after the part, outside every engine lock. */
struct dump_rec {
    uint64_t cas;
    uint32_t exptime, last_access, size;
    uint8_t klen;
    bool fetched;
};

static void dump_copy(void *arg, const struct kl_item_meta *m)
{
    struct keeld_text *part = arg;
    struct dump_rec r = {m->cas, m->exptime, m->last_access, m->size, (uint8_t)m->klen, m->fetched};
    keeld_text_append(part, &r, sizeof r);
    keeld_text_append(part, m->key, m->klen);
}

/* The part's lines, in memcached's format, into `out`. */
static void dump_format(const struct keeld_text *part, int64_t now, struct keeld_text *out)
{
    char key[KL_KEY_MAX * 3 + 1];
    for (size_t at = 0; at + sizeof(struct dump_rec) <= part->len;) {
        struct dump_rec r;
        memcpy(&r, part->buf + at, sizeof r);
        at += sizeof r;
        url_encode(key, part->buf + at, r.klen);
        at += r.klen;
        long long exp = r.exptime ? (long long)r.exptime : -1;
        keeld_text_printf(out, "key=%s exp=%lld la=%lld cas=%llu fetch=%s cls=1 size=%u\n", key,
                          exp, (long long)(now - (int64_t)r.last_access), (unsigned long long)r.cas,
                          r.fetched ? "yes" : "no", r.size);
    }
}

static int metadump(struct keeld_worker *w, struct kl_conn *c)
{
    struct keeld_text part = {0}, lines = {0};
    uint64_t cursor = 0;
    int more, rc = 0;
    bool failed = false;
    do {
        more = kl_engine_dump(w->shared->engine, &cursor, DUMP_BUCKETS, dump_copy, &part);
        if (more < 0)
            break;
        dump_format(&part, w->now, &lines);
        failed = part.failed || lines.failed;
        if (failed)
            break;
        if (lines.len > 0)
            rc = keeld_reply(w, c, lines.buf, lines.len);
        part.len = lines.len = 0;
        if (more > 0 && rc == 0)
            kl_fiber_yield(); /* the worker's other connections, between parts */
    } while (more > 0 && rc == 0);
    keeld_text_free(&part);
    keeld_text_free(&lines);
    if (rc != 0)
        return rc;
    if (more == -ENOTSUP)
        return REPLY_LITERAL(w, c, "SERVER_ERROR this engine cannot list its keys\r\n");
    if (failed || more < 0)
        return REPLY_LITERAL(w, c, "SERVER_ERROR out of memory writing the dump\r\n");
    return keeld_reply_line(w, c, KL_MC_R_END);
}

/* One metadump at a time in the process, as memcached's one crawler: a
 * dump holds its connection's fiber until a reader takes the whole key set,
 * and many slow readers could otherwise hold every fiber of a worker. */
static int metadump_alone(struct keeld_worker *w, struct kl_conn *c)
{
    if (atomic_exchange_explicit(&w->shared->dumping, true, memory_order_acquire))
        return REPLY_LITERAL(w, c, "BUSY currently processing crawler request\r\n");
    int rc = metadump(w, c);
    atomic_store_explicit(&w->shared->dumping, false, memory_order_release);
    return rc;
}

int keeld_lru_crawler(struct keeld_worker *w, struct kl_conn *c, const struct kl_mc_cmd *cmd)
{
    struct kl_mc_str word[MAX_WORDS];
    uint32_t n = keeld_words(cmd->arg, word, MAX_WORDS);
    if (n == 0 || n > 2)
        return keeld_reply_line(w, c, KL_MC_R_ERROR);
    atomic_bool *off = &w->shared->crawler_off;
    if (n == 1) {
        if (!keeld_word_is(word[0], "enable") && !keeld_word_is(word[0], "disable"))
            return keeld_reply_line(w, c, KL_MC_R_ERROR);
        bool was_off =
            atomic_exchange_explicit(off, keeld_word_is(word[0], "disable"), memory_order_relaxed);
        if (keeld_word_is(word[0], "enable") && !was_off) /* memcached's reply: its thread runs */
            return REPLY_LITERAL(w, c, "ERROR failed to start lru crawler thread\r\n");
        return keeld_reply_line(w, c, KL_MC_R_OK);
    }
    uint64_t v;
    if (keeld_word_is(word[0], "sleep") || keeld_word_is(word[0], "tocrawl")) {
        if (!number(word[1], &v) || v > UINT32_MAX)
            return REPLY_LITERAL(w, c, "CLIENT_ERROR bad command line format\r\n");
        if (keeld_word_is(word[0], "sleep") && v > SLEEP_MAX_US)
            return REPLY_LITERAL(w, c, "CLIENT_ERROR sleep must be one second or less\r\n");
        return keeld_reply_line(w, c, KL_MC_R_OK);
    }
    bool dump = keeld_word_is(word[0], "metadump");
    if (!dump && !keeld_word_is(word[0], "crawl"))
        return keeld_reply_line(w, c, KL_MC_R_ERROR);
    if (atomic_load_explicit(off, memory_order_relaxed))
        return REPLY_LITERAL(w, c, "CLIENT_ERROR lru crawler disabled\r\n");
    int which = classes(word[1]);
    if (which < 0)
        return REPLY_LITERAL(w, c, "BADCLASS invalid class id\r\n");
    if (!dump)
        return atomic_load_explicit(&w->shared->dumping, memory_order_relaxed)
                   ? REPLY_LITERAL(w, c, "BUSY currently processing crawler request\r\n")
                   : keeld_reply_line(w, c, KL_MC_R_OK);
    return which ? metadump_alone(w, c) : keeld_reply_line(w, c, KL_MC_R_END);
}
