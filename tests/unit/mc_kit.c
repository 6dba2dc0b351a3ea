/* mc_kit.c: see mc_kit.h. */
#include "mc_kit.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt.h"

static struct kl_mc_config kit_cfg;

const struct kl_mc_config *mc_kit_config(void)
{
    kl_mc_config_init(&kit_cfg);
    kit_cfg.now = MC_KIT_NOW;
    return &kit_cfg;
}

struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_printf(struct sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *s, const char *fmt, ...)
{
    if (s->len >= s->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->p + s->len, s->cap - s->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        s->len = s->len + (size_t)n < s->cap ? s->len + (size_t)n : s->cap - 1;
}

/* A view, with bytes outside printable ASCII as \xNN and long ones cut. */
static void sb_view(struct sbuf *s, const char *tag, struct kl_mc_str v)
{
    sb_printf(s, " %s=", tag);
    for (uint32_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if (i == 64 && v.len > 80) {
            sb_printf(s, "...(%" PRIu32 ")", v.len);
            return;
        }
        if (c < 0x20 || c >= 0x7f || c == '\\')
            sb_printf(s, "\\x%02x", c);
        else
            sb_printf(s, "%c", c);
    }
}

void mc_describe(enum kl_mc_status st, const struct kl_mc_cmd *cmd, char *out, size_t cap)
{
    struct sbuf s = {out, 0, cap};
    out[0] = 0;
    if (st == KL_MC_NEED_MORE) {
        sb_printf(&s, "MORE");
        if (cmd->need)
            sb_printf(&s, " need=%zu", cmd->need);
        return;
    }
    if (st == KL_MC_ERROR) {
        struct kl_mc_str r = cmd->reply;
        if (r.len >= 2 && r.p[r.len - 2] == '\r' && r.p[r.len - 1] == '\n')
            r.len -= 2;
        sb_printf(&s, "ERR %.*s", (int)r.len, r.p);
        if (r.len == 0)
            sb_printf(&s, "(silent)");
        if (cmd->close)
            sb_printf(&s, " close");
        return;
    }
    sb_printf(&s, "%s", kl_mc_type_name((enum kl_mc_type)cmd->type));
    if (cmd->noreply)
        sb_printf(&s, " noreply");
    if (cmd->base64)
        sb_printf(&s, " b64");
    if (cmd->nkeys > 1 || (cmd->nkeys == 1 && cmd->key.len != cmd->keys.len)) {
        size_t pos = 0;
        struct kl_mc_str k;
        sb_printf(&s, " keys=%" PRIu32 ":", cmd->nkeys);
        for (int i = 0; kl_mc_next_key(cmd, &pos, &k); i++)
            sb_printf(&s, "%s%.*s", i ? "," : "", (int)(k.len > 20 ? 20 : k.len), k.p);
    } else if (cmd->key.p) {
        sb_view(&s, "key", cmd->key);
    }
    if (cmd->flags)
        sb_printf(&s, " flags=%" PRIu32, cmd->flags);
    if (cmd->exptime)
        sb_printf(&s, " exp=%" PRId64, cmd->exptime);
    if (cmd->cas)
        sb_printf(&s, " cas=%" PRIu64, cmd->cas);
    if (cmd->delta)
        sb_printf(&s, " delta=%" PRIu64, cmd->delta);
    if (cmd->num)
        sb_printf(&s, " num=%" PRId64, cmd->num);
    if (cmd->value.p)
        sb_view(&s, "value", cmd->value);
    if (cmd->arg.len)
        sb_view(&s, "arg", cmd->arg);
    if (cmd->type < KL_MC_MG)
        return; /* meta is set for the meta commands only */
    const struct kl_mc_meta *m = &cmd->meta;
    if (m->has) {
        sb_printf(&s, " has=");
        for (char c = 'A'; c <= 'z'; c++)
            if (((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) && (m->has & KL_MC_F(c)))
                sb_printf(&s, "%c", c);
    }
    if (m->opaque.len)
        sb_view(&s, "O", m->opaque);
    if (m->mode)
        sb_printf(&s, " mode=%c", m->mode);
    if (m->new_cas)
        sb_printf(&s, " E=%" PRIu64, m->new_cas);
    if (m->vivify)
        sb_printf(&s, " N=%" PRId64, m->vivify);
    if (m->recache)
        sb_printf(&s, " R=%" PRId64, m->recache);
    if (m->initial)
        sb_printf(&s, " J=%" PRIu64, m->initial);
}

/* Check that every view of cmd lies inside [buf, buf + len). */
static bool views_inside(const struct kl_mc_cmd *cmd, const char *buf, size_t len)
{
    const struct kl_mc_str *v[] = {&cmd->key, &cmd->keys,       &cmd->value,
                                   &cmd->arg, &cmd->meta.flags, &cmd->meta.opaque};
    size_t n = cmd->type >= KL_MC_MG ? 6 : 4; /* meta is set for the meta commands only */
    for (size_t i = 0; i < n; i++) {
        if (!v[i]->p)
            continue;
        if (v[i]->p < buf || v[i]->p + v[i]->len > buf + len)
            return false;
    }
    return true;
}

/* Deliver c->in in chunks of the given sizes; results into out. */
static void run(const struct mc_case *c, size_t n, const size_t *chunks, size_t nchunks, char *out,
                size_t cap)
{
    const struct kl_mc_config *cfg = mc_kit_config();
    struct sbuf s = {out, 0, cap};
    out[0] = 0;
    size_t delivered = 0, pos = 0, skip = 0;
    bool closed = false;
    static char one[1 << 14];
    for (size_t ci = 0; ci < nchunks && !closed; ci++) {
        delivered += chunks[ci];
        size_t sk = skip < delivered - pos ? skip : delivered - pos;
        pos += sk;
        skip -= sk;
        while (!skip && !closed) {
            size_t avail = delivered - pos;
            char *view = malloc(avail ? avail : 1);
            memcpy(view, c->in + pos, avail);
            struct kl_mc_cmd cmd;
            enum kl_mc_status st = kl_mc_parse(cfg, view, avail, &cmd);
            bool last = ci + 1 == nchunks;
            if (st == KL_MC_NEED_MORE) {
                if (last && avail) {
                    mc_describe(st, &cmd, one, sizeof(one));
                    sb_printf(&s, "%s%s", s.len ? " | " : "", one);
                }
                free(view);
                break;
            }
            if (st == KL_MC_CMD && !views_inside(&cmd, view, avail))
                kt_fail(__FILE__, __LINE__, "view outside the buffer in \"%s\"", c->want);
            if (cmd.consumed == 0)
                kt_fail(__FILE__, __LINE__, "no progress in \"%s\"", c->want);
            mc_describe(st, &cmd, one, sizeof(one));
            sb_printf(&s, "%s%s", s.len ? " | " : "", one);
            free(view);
            if (cmd.consumed == 0)
                return;
            if (st == KL_MC_ERROR && cmd.close)
                closed = true;
            if (cmd.consumed > avail) {
                skip = cmd.consumed - avail;
                pos = delivered;
            } else {
                pos += cmd.consumed;
            }
        }
    }
    if (skip && !closed)
        sb_printf(&s, "%sSKIP %zu", s.len ? " | " : "", skip);
    (void)n;
}

bool mc_check(const struct mc_case *c)
{
    size_t n = c->in_len ? c->in_len : strlen(c->in);
    static char whole[1 << 16], got[1 << 16];
    size_t one = n;
    run(c, n, &one, 1, whole, sizeof(whole));
    if (strcmp(whole, c->want) != 0) {
        kt_fail(__FILE__, __LINE__, "input \"%.*s\"\n    want: %s\n    got:  %s",
                (int)(n > 200 ? 200 : n), c->in, c->want, whole);
        return false;
    }
    if (c->whole_only || n < 2)
        return true;
    size_t *ones = malloc(n * sizeof(size_t));
    for (size_t i = 0; i < n; i++)
        ones[i] = 1;
    run(c, n, ones, n, got, sizeof(got));
    free(ones);
    if (strcmp(got, whole) != 0) {
        kt_fail(__FILE__, __LINE__, "byte at a time: \"%.*s\"\n    want: %s\n    got:  %s",
                (int)(n > 200 ? 200 : n), c->in, whole, got);
        return false;
    }
    for (size_t k = 1; k < n; k++) {
        size_t two[2] = {k, n - k};
        run(c, n, two, 2, got, sizeof(got));
        if (strcmp(got, whole) != 0) {
            kt_fail(__FILE__, __LINE__, "split at %zu: \"%.*s\"\n    want: %s\n    got:  %s", k,
                    (int)(n > 200 ? 200 : n), c->in, whole, got);
            return false;
        }
    }
    return true;
}

void mc_check_table(const struct mc_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        mc_check(&cases[i]);
}
