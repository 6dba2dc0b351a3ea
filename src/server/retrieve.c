/* retrieve.c: the get family, keys looked up in batches (see retrieve.h).
 *
 * The keys of the run's commands are walked in order and taken in chunks of
 * up to KL_LOOKUP_MANY_MAX (a chunk may span commands, and a command may span
 * chunks); each chunk is one kl_engine_lookup_many(), then its replies are
 * queued key by key. A command's reply ends (END, or the SERVER_ERROR of a
 * disk failure, which ends it early as memcached ends a get that cannot be
 * served) once the walk has passed its last key. gat and gats touch each key
 * after reading it, so their chunks hold one key: a later key of the same
 * command must see the touch (gat -1 k k returns k once).
 */
#define _GNU_SOURCE
#include "retrieve.h"

#include <stdio.h>
#include <string.h>

#include "keel/assert.h"

bool keeld_run_takes(const struct keeld_worker *w, const struct kl_mc_cmd *cmd)
{
    return (cmd->type == KL_MC_GET || cmd->type == KL_MC_GETS) &&
           kl_engine_overlaps(w->shared->engine);
}

void keeld_run_add(struct keeld_run *run, const struct kl_mc_cmd *cmd)
{
    KL_ASSERT(run->n < KEELD_RUN_MAX, "a run of %u commands is full", run->n);
    KL_ASSERT(cmd->type == KL_MC_GET || cmd->type == KL_MC_GETS || cmd->type == KL_MC_GAT ||
                  cmd->type == KL_MC_GATS,
              "command type %u in a retrieval run", cmd->type);
    run->cmd[run->n++] = (struct keeld_run_cmd){
        .type = cmd->type, .exptime = keeld_exptime(cmd->exptime), .keys = cmd->keys};
}

/* Where the walk over the run's keys stands. */
struct walk {
    uint32_t ci;         /* command */
    size_t pos;          /* kl_mc_next_key's position in its keys */
    struct kl_mc_cmd kc; /* the command's keys, as kl_mc_next_key reads them */
};

static void walk_start(struct walk *at, const struct keeld_run *run)
{
    at->ci = 0;
    at->pos = 0;
    at->kc = (struct kl_mc_cmd){.keys = run->n ? run->cmd[0].keys : (struct kl_mc_str){0}};
}

static bool next_key(const struct keeld_run *run, struct walk *at, struct kl_mc_str *key,
                     uint32_t *owner)
{
    while (at->ci < run->n) {
        if (kl_mc_next_key(&at->kc, &at->pos, key)) {
            *owner = at->ci;
            return true;
        }
        if (++at->ci < run->n)
            at->kc.keys = run->cmd[at->ci].keys;
        at->pos = 0;
    }
    return false;
}

/* What one command's reply has seen so far. */
struct tally {
    uint64_t keys, hits;
    int failed; /* KL_E_CORRUPT or KL_E_IO: the reply ends with its error */
};

static bool touches(uint8_t type) { return type == KL_MC_GAT || type == KL_MC_GATS; }

/* Count command ci's keys and end its reply. */
static int finish(struct keeld_worker *w, struct kl_conn *c, const struct keeld_run_cmd *cmd,
                  const struct tally *t, int rc)
{
    keeld_count(w, KEELD_C_cmd_get, t->keys);
    if (touches(cmd->type)) {
        keeld_count(w, KEELD_C_cmd_touch, t->keys);
        keeld_count(w, KEELD_C_touch_hits, t->hits);
        keeld_count(w, KEELD_C_touch_misses, t->keys - t->hits);
    } else {
        keeld_count(w, KEELD_C_get_hits, t->hits);
        keeld_count(w, KEELD_C_get_misses, t->keys - t->hits);
    }
    if (rc != 0)
        return rc;
    if (t->failed)
        return keeld_engine_failure(w, c, t->failed);
    return keeld_reply_line(w, c, KL_MC_R_END);
}

/* Queue one key's answer (a VALUE, or nothing for a miss). */
static int answer(struct keeld_worker *w, struct kl_conn *c, const struct keeld_run_cmd *cmd,
                  struct kl_mc_str key, struct kl_item *it, int r, struct tally *t)
{
    struct kl_engine *e = w->shared->engine;
    if (t->failed) { /* the reply already ended with an error: the rest is dropped */
        if (r == KL_E_OK)
            kl_engine_release(e, it);
        return 0;
    }
    t->keys++;
    keeld_prefix(w, key.p, key.len, KEELD_PREFIX_GET, r == KL_E_OK);
    if (r == KL_E_CORRUPT || r == KL_E_IO) { /* never a value: an error ends the reply */
        t->failed = r;
        return 0;
    }
    if (r != KL_E_OK)
        return 0;
    t->hits++;
    if (KL_UNLIKELY(keeld_tracing(w))) {
        char line[KL_KEY_MAX + 16];
        int ln = snprintf(line, sizeof line, "sending key %.*s", (int)key.len, key.p);
        keeld_trace(kl_conn_fd(c), '>', line, (size_t)ln);
    }
    if (touches(cmd->type)) /* after the read: as memcached, gat -1 returns the value, then expires
                               it */
        kl_engine_touch(e, key.p, key.len, cmd->exptime);
    bool with_cas = cmd->type == KL_MC_GETS || cmd->type == KL_MC_GATS;
    char hdr[KL_KEY_MAX + 64];
    int hl = kl_mc_value_header(hdr, sizeof hdr, key, it->flags, it->vlen, with_cas, it->cas);
    KL_ASSERT(hl > 0, "a VALUE header fits %zu bytes", sizeof hdr);
    return keeld_reply_value(w, c, hdr, (size_t)hl, it);
}

int keeld_run_answer(struct keeld_worker *w, struct kl_conn *c, struct keeld_run *run)
{
    struct kl_engine *e = w->shared->engine;
    struct kl_key keys[KL_LOOKUP_MANY_MAX];
    struct kl_mc_str strs[KL_LOOKUP_MANY_MAX];
    uint32_t owner[KL_LOOKUP_MANY_MAX];
    struct kl_item items[KL_LOOKUP_MANY_MAX];
    int results[KL_LOOKUP_MANY_MAX];
    struct walk at;
    walk_start(&at, run);
    uint32_t cur = 0; /* the command whose reply is being queued */
    struct tally t = {0, 0, 0};
    int rc = 0;
    for (;;) {
        size_t n = 0;
        while (n < KL_LOOKUP_MANY_MAX && next_key(run, &at, &strs[n], &owner[n])) {
            keys[n] = (struct kl_key){strs[n].p, strs[n].len};
            n++;
            if (touches(run->cmd[owner[n - 1]].type))
                break; /* see the top of the file */
        }
        if (n == 0)
            break;
        kl_engine_lookup_many(e, n, keys, items, results);
        for (size_t i = 0; i < n; i++) {
            for (; cur < owner[i]; cur++) { /* commands the walk has passed */
                rc = finish(w, c, &run->cmd[cur], &t, rc);
                t = (struct tally){0, 0, 0};
            }
            if (rc != 0) { /* the writer failed: release, queue nothing, count no more */
                if (results[i] == KL_E_OK)
                    kl_engine_release(e, &items[i]);
                continue;
            }
            rc = answer(w, c, &run->cmd[cur], strs[i], &items[i], results[i], &t);
        }
    }
    for (; cur < run->n; cur++) {
        rc = finish(w, c, &run->cmd[cur], &t, rc);
        t = (struct tally){0, 0, 0};
    }
    run->n = 0;
    return rc;
}
