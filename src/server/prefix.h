/* prefix.h: memcached's per-prefix statistics (`stats detail`, `-D`).
 *
 * Off by default. Once on (`stats detail on`, or `-D CHAR` at start), every
 * get, set-family and delete command counts its key under the key's prefix:
 * the bytes before the first delimiter (':' unless -D says otherwise); a key
 * without the delimiter is not counted, as in memcached. `stats detail dump`
 * lists "PREFIX <p> get <n> hit <n> set <n> del <n>" lines; `stats reset`
 * clears them; `stats detail off` stops counting and keeps what was counted.
 * The table is shared by the workers under one mutex, taken only while
 * counting is on; off, a command pays one relaxed load. It holds at most
 * KEELD_PREFIXES_MAX prefixes: past that, keys of new prefixes are not
 * counted (memcached's table has no bound, so a client could grow it
 * without end).
 */
#ifndef KEELD_PREFIX_H
#define KEELD_PREFIX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "text.h"

#define KEELD_PREFIXES_MAX   100000
#define KEELD_PREFIX_BUCKETS 4096

enum keeld_prefix_op { KEELD_PREFIX_GET, KEELD_PREFIX_SET, KEELD_PREFIX_DEL };

struct keeld_prefix; /* one prefix's counts (prefix.c) */

struct keeld_prefixes {
    atomic_bool on;
    char delimiter;
    pthread_mutex_t lock;
    struct keeld_prefix *bucket[KEELD_PREFIX_BUCKETS]; /* chains, under lock */
    uint32_t count;                                    /* prefixes held */
};

/* An empty table, counting from the start when `on`. */
void keeld_prefixes_init(struct keeld_prefixes *p, char delimiter, bool on);

/* Free every prefix. */
void keeld_prefixes_destroy(struct keeld_prefixes *p);

/* Whether commands count their keys now. */
static inline bool keeld_prefixes_on(const struct keeld_prefixes *p)
{
    return atomic_load_explicit(&p->on, memory_order_relaxed);
}

/* Start or stop counting. */
void keeld_prefixes_switch(struct keeld_prefixes *p, bool on);

/* Count one command on `key` (hit: a get that found it). Call it only when
 * keeld_prefixes_on(). */
void keeld_prefix_count(struct keeld_prefixes *p, const char *key, size_t klen,
                        enum keeld_prefix_op op, bool hit);

/* Append memcached's "PREFIX ..." lines (each ending "\r\n") of the
 * prefixes in `n` buckets from *cursor on (0 to start), and advance it: a
 * long report comes in parts, the lock held for one part at a time. True
 * while buckets remain. */
bool keeld_prefixes_report(struct keeld_prefixes *p, uint32_t *cursor, uint32_t n,
                           struct keeld_text *out);

/* Forget every prefix (`stats reset`). */
void keeld_prefixes_clear(struct keeld_prefixes *p);

#endif
