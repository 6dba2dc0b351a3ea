/* prefix.c: memcached's per-prefix statistics (see prefix.h).
 *
 * A chained hash table of prefixes under one mutex: counting is an admin's
 * choice for a while (memcached also takes one global lock for it), so the
 * table stays simple; a command pays for it only while it is on.
 */
#define _GNU_SOURCE
#include "prefix.h"

#include <stdlib.h>
#include <string.h>

#include "keel/assert.h"
#include "keel/hash.h"

struct keeld_prefix {
    struct keeld_prefix *next;
    uint64_t get, hit, set, del;
    uint32_t len;
    char name[]; /* len bytes, not NUL-terminated */
};

void keeld_prefixes_init(struct keeld_prefixes *p, char delimiter, bool on)
{
    memset(p, 0, sizeof *p);
    atomic_init(&p->on, on);
    p->delimiter = delimiter;
    pthread_mutex_init(&p->lock, NULL);
}

void keeld_prefixes_clear(struct keeld_prefixes *p)
{
    pthread_mutex_lock(&p->lock);
    for (size_t b = 0; b < KEELD_PREFIX_BUCKETS; b++) {
        struct keeld_prefix *e = p->bucket[b];
        while (e) {
            struct keeld_prefix *next = e->next;
            free(e);
            e = next;
        }
        p->bucket[b] = NULL;
    }
    p->count = 0;
    pthread_mutex_unlock(&p->lock);
}

void keeld_prefixes_destroy(struct keeld_prefixes *p)
{
    keeld_prefixes_clear(p);
    pthread_mutex_destroy(&p->lock);
}

void keeld_prefixes_switch(struct keeld_prefixes *p, bool on)
{
    atomic_store_explicit(&p->on, on, memory_order_relaxed);
}

/* Under the lock: the entry of this prefix, made if new; NULL when the
 * table is full (or memory is out). */
static struct keeld_prefix *entry(struct keeld_prefixes *p, const char *name, uint32_t len)
{
    struct keeld_prefix **head = &p->bucket[kl_hash64(name, len, 0) % KEELD_PREFIX_BUCKETS];
    for (struct keeld_prefix *e = *head; e; e = e->next)
        if (e->len == len && memcmp(e->name, name, len) == 0)
            return e;
    if (p->count >= KEELD_PREFIXES_MAX)
        return NULL;
    struct keeld_prefix *e = calloc(1, sizeof *e + len);
    if (e == NULL)
        return NULL;
    memcpy(e->name, name, len);
    e->len = len;
    e->next = *head;
    *head = e;
    p->count++;
    return e;
}

void keeld_prefix_count(struct keeld_prefixes *p, const char *key, size_t klen,
                        enum keeld_prefix_op op, bool hit)
{
    const char *d = memchr(key, p->delimiter, klen);
    if (d == NULL)
        return; /* no prefix: not counted, as in memcached */
    pthread_mutex_lock(&p->lock);
    struct keeld_prefix *e = entry(p, key, (uint32_t)(d - key));
    if (e != NULL) { /* NULL: the table is full, the key goes uncounted */
        switch (op) {
        case KEELD_PREFIX_GET:
            e->get++;
            e->hit += hit;
            break;
        case KEELD_PREFIX_SET: e->set++; break;
        case KEELD_PREFIX_DEL: e->del++; break;
        default: KL_ASSERT(false, "prefix op %d", (int)op);
        }
    }
    pthread_mutex_unlock(&p->lock);
}

bool keeld_prefixes_report(struct keeld_prefixes *p, uint32_t *cursor, uint32_t n,
                           struct keeld_text *out)
{
    uint32_t from = *cursor < KEELD_PREFIX_BUCKETS ? *cursor : KEELD_PREFIX_BUCKETS;
    uint32_t end = n < KEELD_PREFIX_BUCKETS - from ? from + n : KEELD_PREFIX_BUCKETS;
    pthread_mutex_lock(&p->lock);
    for (size_t b = from; b < end; b++)
        for (const struct keeld_prefix *e = p->bucket[b]; e; e = e->next)
            keeld_text_printf(out, "PREFIX %.*s get %llu hit %llu set %llu del %llu\r\n",
                              (int)e->len, e->name, (unsigned long long)e->get,
                              (unsigned long long)e->hit, (unsigned long long)e->set,
                              (unsigned long long)e->del);
    pthread_mutex_unlock(&p->lock);
    *cursor = end;
    return end < KEELD_PREFIX_BUCKETS;
}
