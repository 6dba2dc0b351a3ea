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
 * memcached.
 */
#define _GNU_SOURCE
#include "crawler.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/fiber.h"
#include "text.h"

#define DUMP_BUCKETS 256 /* hash buckets a part: about 1,800 items, 150 KB of lines */
#define CLASS_MAX    63  /* memcached's highest slab class id */
#define SLEEP_MAX_US 1000000
#define MAX_WORDS    4

/* The command's words (at most MAX_WORDS; *n may exceed it). */
static uint32_t split(struct kl_mc_str arg, struct kl_mc_str *w)
{
    uint32_t n = 0;
    size_t i = 0;
    while (i < arg.len) {
        while (i < arg.len && arg.p[i] == ' ')
            i++;
        size_t start = i;
        while (i < arg.len && arg.p[i] != ' ')
            i++;
        if (i > start) {
            if (n < MAX_WORDS)
                w[n] = (struct kl_mc_str){arg.p + start, (uint32_t)(i - start)};
            n++;
        }
    }
    return n;
}

static bool word_is(struct kl_mc_str w, const char *s)
{
    return w.len == strlen(s) && memcmp(w.p, s, w.len) == 0;
}

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
    if (word_is(w, "all") || word_is(w, "hash"))
        return 1;
    int everything = 0;
    size_t i = 0;
    while (i < w.len) {
        size_t start = i;
        while (i < w.len && w.p[i] != ',')
            i++;
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

struct dump_sink {
    struct keeld_text text;
    int64_t now; /* unix seconds */
    uint64_t items;
};

static void dump_line(void *arg, const struct kl_item_meta *m)
{
    struct dump_sink *d = arg;
    char key[KL_KEY_MAX * 3 + 1];
    url_encode(key, m->key, m->klen);
    long long exp = m->exptime ? (long long)m->exptime : -1;
    keeld_text_printf(&d->text, "key=%s exp=%lld la=%lld cas=%llu fetch=%s cls=1 size=%u\n", key,
                      exp, (long long)(d->now - (int64_t)m->last_access),
                      (unsigned long long)m->cas, m->fetched ? "yes" : "no", m->size);
    d->items++;
}

static int metadump(struct keeld_worker *w, struct kl_conn *c)
{
    struct dump_sink d = {.text = {0}, .now = w->now, .items = 0};
    uint64_t cursor = 0;
    int more, rc = 0;
    do {
        more = kl_engine_dump(w->shared->engine, &cursor, DUMP_BUCKETS, dump_line, &d);
        if (more == -ENOTSUP) {
            keeld_text_free(&d.text);
            return REPLY_LITERAL(w, c,
                                 "SERVER_ERROR metadump needs the keys in memory: the disk "
                                 "engine keeps them on disk\r\n");
        }
        if (d.text.failed) {
            keeld_text_free(&d.text);
            return REPLY_LITERAL(w, c, "SERVER_ERROR out of memory writing the dump\r\n");
        }
        if (d.text.len > 0) {
            rc = keeld_reply(w, c, d.text.buf, d.text.len);
            d.text.len = 0;
        }
        if (more > 0 && rc == 0)
            kl_fiber_yield(); /* the worker's other connections, between parts */
    } while (more > 0 && rc == 0);
    keeld_text_free(&d.text);
    return rc != 0 ? rc : keeld_reply_line(w, c, KL_MC_R_END);
}

int keeld_lru_crawler(struct keeld_worker *w, struct kl_conn *c, const struct kl_mc_cmd *cmd)
{
    struct kl_mc_str word[MAX_WORDS];
    uint32_t n = split(cmd->arg, word);
    if (n == 0 || n > 2)
        return keeld_reply_line(w, c, KL_MC_R_ERROR);
    atomic_bool *off = &w->shared->crawler_off;
    if (n == 1) {
        if (!word_is(word[0], "enable") && !word_is(word[0], "disable"))
            return keeld_reply_line(w, c, KL_MC_R_ERROR);
        atomic_store_explicit(off, word_is(word[0], "disable"), memory_order_relaxed);
        return keeld_reply_line(w, c, KL_MC_R_OK);
    }
    uint64_t v;
    if (word_is(word[0], "sleep") || word_is(word[0], "tocrawl")) {
        if (!number(word[1], &v) || v > UINT32_MAX)
            return REPLY_LITERAL(w, c, "CLIENT_ERROR bad command line format\r\n");
        if (word_is(word[0], "sleep") && v > SLEEP_MAX_US)
            return REPLY_LITERAL(w, c, "CLIENT_ERROR sleep must be one second or less\r\n");
        return keeld_reply_line(w, c, KL_MC_R_OK);
    }
    bool dump = word_is(word[0], "metadump");
    if (!dump && !word_is(word[0], "crawl"))
        return keeld_reply_line(w, c, KL_MC_R_ERROR);
    if (atomic_load_explicit(off, memory_order_relaxed))
        return REPLY_LITERAL(w, c, "CLIENT_ERROR lru crawler disabled\r\n");
    int which = classes(word[1]);
    if (which < 0)
        return REPLY_LITERAL(w, c, "BADCLASS invalid class id\r\n");
    if (!dump)
        return keeld_reply_line(w, c, KL_MC_R_OK);
    return which ? metadump(w, c) : keeld_reply_line(w, c, KL_MC_R_END);
}
