/* exec_meta.c: the meta commands (mg ms md ma me) against the engine.
 *
 * The parser hands over the flags decoded (KL_MC_F bits, numbers in the
 * command's fields); the composer writes the return flags in the order the
 * client sent them. What is left here is memcached 1.6.18's meaning: `q`
 * hides only the "nothing to say" code (EN for mg, HD for ms/md/ma), errors
 * and NF/NS/EX always show; mg's C drops the value when the CAS matches;
 * N vivifies a miss into an empty item whose first reader wins the recache
 * (W) and later ones see Z.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "exec.h"
#include "keel/assert.h"

#define HAS(cmd, c) (((cmd)->meta.has & KL_MC_F(c)) != 0)
#define HDR_BYTES   (KL_KEY_MAX * 2 + 256)

static void item_info(const struct kl_item *it, struct kl_mc_item_info *info)
{
    *info = (struct kl_mc_item_info){
        .cas = it->cas,
        .flags = it->flags,
        .size = it->vlen,
        .ttl = it->ttl_left,
        .last_access = it->last_access,
        .hit_before = (it->meta & KL_META_FETCHED) != 0,
        .win = (it->meta & KL_META_WIN) != 0,
        .stale = (it->meta & KL_META_STALE) != 0,
        .already_won = (it->meta & KL_META_WON) != 0,
    };
}

/* A status line with the flags that need no item (k, O). */
static int status(struct keeld_worker *w, struct kl_conn *c, const struct kl_mc_cmd *cmd,
                  const char *code)
{
    char hdr[HDR_BYTES];
    int n = kl_mc_meta_header(hdr, sizeof hdr, code, cmd, NULL, 0);
    KL_ASSERT(n > 0, "a meta status line fits %zu bytes", sizeof hdr);
    return keeld_reply(w, c, hdr, (size_t)n);
}

static int bad_key(struct keeld_worker *w, struct kl_conn *c)
{
    return REPLY_LITERAL(w, c, "CLIENT_ERROR error decoding key\r\n");
}

/* ---- mg ---- */

static int meta_get(struct keeld_worker *w, struct kl_conn *c, const struct kl_mc_cmd *cmd,
                    struct kl_mc_str key)
{
    struct kl_engine *e = w->shared->engine;
    struct kl_lookup_opts o = {.flags = KL_LOOKUP_META};
    if (HAS(cmd, 'u'))
        o.flags |= KL_LOOKUP_NOBUMP;
    if (HAS(cmd, 'R') && cmd->meta.recache > 0)
        o.recache_ttl = cmd->meta.recache > UINT32_MAX ? UINT32_MAX : (uint32_t)cmd->meta.recache;
    struct kl_item it;
    int r = kl_engine_lookup(e, key.p, key.len, &o, &it);
    bool created = false;
    if (r != KL_E_OK && HAS(cmd, 'N')) {
        /* vivify: an empty item; the lookup that follows wins its recache */
        uint32_t exp = keeld_exptime(cmd->meta.vivify);
        if (kl_engine_store(e, KL_ADD, key.p, key.len, "", 0, 0, exp, 0, NULL) == KL_E_STORED) {
            struct kl_lookup_opts win = o;
            win.flags |= KL_LOOKUP_WIN;
            r = kl_engine_lookup(e, key.p, key.len, &win, &it);
            created = r == KL_E_OK;
        } else {
            r = kl_engine_lookup(e, key.p, key.len, &o, &it);
        }
    }
    keeld_count(w, KEELD_C_cmd_get, 1);
    if (HAS(cmd, 'T'))
        keeld_count(w, KEELD_C_cmd_touch, 1);
    if (r != KL_E_OK) {
        keeld_count(w, KEELD_C_get_misses, 1);
        if (r == KL_E_CORRUPT || r == KL_E_IO)
            return keeld_engine_failure(w, c, r);
        return cmd->noreply ? 0 : status(w, c, cmd, "EN");
    }
    keeld_count(w, KEELD_C_get_hits, 1);
    struct kl_mc_item_info info;
    item_info(&it, &info);
    if (HAS(cmd, 'T')) /* after the read, as memcached: t shows the TTL before T */
        kl_engine_touch(e, key.p, key.len, keeld_exptime(cmd->exptime));
    if (created) {
        info.win = true;
        info.already_won = false;
    }
    bool value = HAS(cmd, 'v') && !(HAS(cmd, 'C') && cmd->cas == it.cas);
    char hdr[HDR_BYTES];
    int n = kl_mc_meta_header(hdr, sizeof hdr, value ? "VA" : "HD", cmd, &info, it.vlen);
    KL_ASSERT(n > 0, "a meta header fits %zu bytes", sizeof hdr);
    if (!value) {
        kl_engine_release(e, &it);
        return keeld_reply(w, c, hdr, (size_t)n);
    }
    return keeld_reply_value(w, c, hdr, (size_t)n, &it);
}

/* ---- ms ---- */

static int meta_set(struct keeld_worker *w, struct kl_conn *c, const struct kl_mc_cmd *cmd,
                    struct kl_mc_str key)
{
    struct kl_engine *e = w->shared->engine;
    enum kl_store_mode mode;
    switch (cmd->meta.mode) {
    case 'E': mode = KL_ADD; break;
    case 'A': mode = KL_APPEND; break;
    case 'P': mode = KL_PREPEND; break;
    case 'R': mode = KL_REPLACE; break;
    default: mode = KL_SET; break;
    }
    /* with C, a set or replace is a compare-and-swap (missing: NF, changed: EX);
     * memcached 1.6.18's add stores a missing key whatever C says */
    if (HAS(cmd, 'C') && (mode == KL_SET || mode == KL_REPLACE))
        mode = KL_CAS;
    uint64_t cas = 0;
    int r = KL_E_OK;
    if (HAS(cmd, 'C') && (mode == KL_APPEND || mode == KL_PREPEND)) {
        /* the engine's append has no CAS: compare first (not atomic with the append) */
        struct kl_item it;
        struct kl_lookup_opts nobump = {.flags = KL_LOOKUP_NOBUMP};
        if (kl_engine_lookup(e, key.p, key.len, &nobump, &it) == KL_E_OK) { /* else: NS */
            r = it.cas == cmd->cas ? KL_E_OK : KL_E_EXISTS;
            kl_engine_release(e, &it);
        }
    }
    if (r == KL_E_OK)
        r = kl_engine_store(e, mode, key.p, key.len, cmd->value.p, cmd->value.len, cmd->flags,
                            keeld_exptime(cmd->exptime), cmd->cas, &cas);
    keeld_count(w, KEELD_C_cmd_set, 1);
    const char *code;
    switch (r) {
    case KL_E_STORED:
        keeld_count(w, KEELD_C_total_items, 1);
        if (cmd->noreply)
            return 0;
        code = "HD";
        break;
    case KL_E_NOT_STORED: code = "NS"; break;
    case KL_E_EXISTS: code = "EX"; break;
    case KL_E_NOT_FOUND: code = "NF"; break;
    case KL_E_TOO_LARGE:
        keeld_count(w, KEELD_C_store_too_large, 1);
        return REPLY_LITERAL(w, c, "SERVER_ERROR object too large for cache\r\n");
    case KL_E_NO_MEMORY:
        keeld_count(w, KEELD_C_store_no_memory, 1);
        return REPLY_LITERAL(w, c, "SERVER_ERROR out of memory storing object\r\n");
    case KL_E_NO_SPACE:
    case KL_E_CORRUPT:
    case KL_E_IO: return keeld_engine_failure(w, c, r);
    default: return REPLY_LITERAL(w, c, "SERVER_ERROR unexpected engine result\r\n");
    }
    struct kl_mc_item_info info = {
        .cas = r == KL_E_STORED ? cas : 0, .size = cmd->value.len, .flags = cmd->flags, .ttl = -1};
    char hdr[HDR_BYTES];
    int n = kl_mc_meta_header(hdr, sizeof hdr, code, cmd, &info, 0);
    KL_ASSERT(n > 0, "a meta header fits %zu bytes", sizeof hdr);
    return keeld_reply(w, c, hdr, (size_t)n);
}

/* ---- md ---- */

static int meta_delete(struct keeld_worker *w, struct kl_conn *c, const struct kl_mc_cmd *cmd,
                       struct kl_mc_str key)
{
    uint64_t cas = 0;
    int r = kl_engine_delete(w->shared->engine, key.p, key.len, HAS(cmd, 'C') ? cmd->cas : 0,
                             HAS(cmd, 'I'), &cas);
    keeld_count(w, r == KL_E_OK ? KEELD_C_delete_hits : KEELD_C_delete_misses, 1);
    switch (r) {
    case KL_E_OK: return cmd->noreply ? 0 : status(w, c, cmd, "HD");
    case KL_E_EXISTS: return status(w, c, cmd, "EX");
    case KL_E_NO_SPACE:
    case KL_E_CORRUPT:
    case KL_E_IO: return keeld_engine_failure(w, c, r);
    default: return status(w, c, cmd, "NF");
    }
}

/* ---- ma ---- */

static int meta_arith(struct keeld_worker *w, struct kl_conn *c, const struct kl_mc_cmd *cmd,
                      struct kl_mc_str key)
{
    struct kl_engine *e = w->shared->engine;
    bool incr = cmd->meta.mode != '-';
    bool created = false;
    uint64_t value = 0, cas = 0;
    int r = kl_engine_arith(e, key.p, key.len, incr, cmd->delta, HAS(cmd, 'C') ? cmd->cas : 0,
                            &value, &cas);
    if (r == KL_E_NOT_FOUND && HAS(cmd, 'N')) {
        /* autovivify with the initial value J (0 by default) */
        char num[24];
        int len = snprintf(num, sizeof num, "%llu", (unsigned long long)cmd->meta.initial);
        r = kl_engine_store(e, KL_ADD, key.p, key.len, num, (uint32_t)len, 0,
                            keeld_exptime(cmd->meta.vivify), 0, &cas);
        if (r == KL_E_STORED) {
            value = cmd->meta.initial;
            created = true;
            r = KL_E_OK;
        } else if (r == KL_E_NOT_STORED) { /* another client created it first */
            r = kl_engine_arith(e, key.p, key.len, incr, cmd->delta, 0, &value, &cas);
        }
    }
    if (r == KL_E_OK && HAS(cmd, 'T'))
        kl_engine_touch(e, key.p, key.len, keeld_exptime(cmd->exptime));
    keeld_count_arith(w, incr, r);
    switch (r) {
    case KL_E_OK: break;
    case KL_E_NOT_FOUND: return status(w, c, cmd, "NF");
    case KL_E_EXISTS: return status(w, c, cmd, "EX");
    case KL_E_NON_NUMERIC:
        return REPLY_LITERAL(w, c,
                             "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
    case KL_E_NO_SPACE:
    case KL_E_CORRUPT:
    case KL_E_IO: return keeld_engine_failure(w, c, r);
    default: return REPLY_LITERAL(w, c, "SERVER_ERROR unexpected engine result\r\n");
    }
    if (cmd->noreply && !created) /* q hides HD and VA alike; a vivified item shows */
        return 0;
    struct kl_mc_item_info info = {.cas = cas, .ttl = -1};
    if (HAS(cmd, 't')) {
        struct kl_item it;
        struct kl_lookup_opts o = {.flags = KL_LOOKUP_NOBUMP};
        if (kl_engine_lookup(e, key.p, key.len, &o, &it) == KL_E_OK) {
            info.ttl = it.ttl_left;
            kl_engine_release(e, &it);
        }
    }
    char num[24];
    int nlen = snprintf(num, sizeof num, "%llu", (unsigned long long)value);
    char hdr[HDR_BYTES];
    int n =
        kl_mc_meta_header(hdr, sizeof hdr, HAS(cmd, 'v') ? "VA" : "HD", cmd, &info, (uint32_t)nlen);
    KL_ASSERT(n > 0, "a meta header fits %zu bytes", sizeof hdr);
    int rc = keeld_reply(w, c, hdr, (size_t)n);
    if (rc == 0 && HAS(cmd, 'v')) {
        rc = keeld_reply(w, c, num, (size_t)nlen);
        if (rc == 0)
            rc = keeld_reply_line(w, c, KL_MC_R_CRLF);
    }
    return rc;
}

/* ---- me ---- */

static int meta_debug(struct keeld_worker *w, struct kl_conn *c, const struct kl_mc_cmd *cmd,
                      struct kl_mc_str key)
{
    struct kl_engine *e = w->shared->engine;
    struct kl_item it;
    struct kl_lookup_opts o = {.flags = KL_LOOKUP_NOBUMP};
    if (kl_engine_lookup(e, key.p, key.len, &o, &it) != KL_E_OK)
        return keeld_reply_line(w, c, KL_MC_R_EN);
    char line[HDR_BYTES];
    int n = snprintf(line, sizeof line, "ME %.*s exp=%d la=%u cas=%llu fetch=%s cls=1 size=%u\r\n",
                     (int)cmd->key.len, cmd->key.p, it.ttl_left, it.last_access,
                     (unsigned long long)it.cas, (it.meta & KL_META_FETCHED) ? "yes" : "no",
                     it.vlen + key.len);
    kl_engine_release(e, &it);
    return keeld_reply(w, c, line, (size_t)n);
}

int keeld_exec_meta(struct keeld_worker *w, struct kl_conn *c, const struct kl_mc_cmd *cmd)
{
    char buf[KL_KEY_MAX];
    struct kl_mc_str key;
    if (keeld_key(cmd, buf, &key) < 0)
        return bad_key(w, c);
    switch (cmd->type) {
    case KL_MC_MG: return meta_get(w, c, cmd, key);
    case KL_MC_MS: return meta_set(w, c, cmd, key);
    case KL_MC_MD: return meta_delete(w, c, cmd, key);
    case KL_MC_MA: return meta_arith(w, c, cmd, key);
    case KL_MC_ME: return meta_debug(w, c, cmd, key);
    default: KL_PANIC("not a meta command: type %u", cmd->type);
    }
}
