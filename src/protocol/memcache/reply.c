/* reply.c: the client side: memcached's replies, parsed in place.
 *
 * For load generators and proxies (keel-bench): one call reads one reply
 * unit from whatever bytes have arrived: a line, or for VALUE and VA a line
 * and its data block, as views into the caller's buffer. An incomplete unit
 * is -EAGAIN (with how much a data block still lacks); bytes that cannot be
 * a reply are -EPROTO, after which the stream cannot be followed.
 */
#include "mc_internal.h"

#include <errno.h>
#include <string.h>

static bool word_is(struct kl_mc_str w, const char *s) { return mc_eq(w, s, (uint32_t)strlen(s)); }

/* Strict unsigned decimal (no sign, no spaces). */
static bool dec_u64(struct kl_mc_str t, uint64_t *out)
{
    if (t.len == 0 || t.len > 20)
        return false;
    uint64_t v = 0;
    for (uint32_t i = 0; i < t.len; i++) {
        char c = t.p[i];
        if (c < '0' || c > '9')
            return false;
        uint64_t d = (uint64_t)(c - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* The next word of [*p, end), spaces skipped. */
static struct kl_mc_str next_word(const char **p, const char *end)
{
    const char *s = *p;
    while (s < end && *s == ' ')
        s++;
    const char *e = s;
    while (e < end && *e != ' ')
        e++;
    *p = e;
    return (struct kl_mc_str){s, (uint32_t)(e - s)};
}

static struct kl_mc_str rest(const char *p, const char *end)
{
    while (p < end && *p == ' ')
        p++;
    return (struct kl_mc_str){p, (uint32_t)(end - p)};
}

/* A data block of n bytes at buf[at]: 0, -EAGAIN or -EPROTO. */
static int data_block(const char *buf, size_t len, size_t at, uint64_t n, struct kl_mc_reply *r)
{
    if (n > UINT32_MAX)
        return -EPROTO;
    size_t total = at + (size_t)n + 2;
    if (len < total) {
        r->need = total - len;
        return -EAGAIN;
    }
    if (buf[total - 2] != '\r' || buf[total - 1] != '\n')
        return -EPROTO;
    r->value = (struct kl_mc_str){buf + at, (uint32_t)n};
    r->consumed = total;
    return 0;
}

static const struct {
    const char *word;
    uint8_t type;
} simple[] = {
    {"END", KL_MC_REPLY_END},
    {"STORED", KL_MC_REPLY_STORED},
    {"NOT_STORED", KL_MC_REPLY_NOT_STORED},
    {"EXISTS", KL_MC_REPLY_EXISTS},
    {"NOT_FOUND", KL_MC_REPLY_NOT_FOUND},
    {"DELETED", KL_MC_REPLY_DELETED},
    {"TOUCHED", KL_MC_REPLY_TOUCHED},
    {"OK", KL_MC_REPLY_OK},
    {"ERROR", KL_MC_REPLY_ERROR},
    {"HD", KL_MC_REPLY_HD},
    {"EN", KL_MC_REPLY_EN},
    {"NF", KL_MC_REPLY_NF},
    {"NS", KL_MC_REPLY_NS},
    {"EX", KL_MC_REPLY_EX},
    {"MN", KL_MC_REPLY_MN},
    {"ME", KL_MC_REPLY_ME},
};

int kl_mc_parse_reply(const char *buf, size_t len, struct kl_mc_reply *r)
{
    memset(r, 0, sizeof(*r));
    const char *nl = memchr(buf, '\n', len);
    if (!nl)
        return -EAGAIN;
    const char *end = nl;
    if (end > buf && end[-1] == '\r')
        end--;
    size_t next = (size_t)(nl - buf) + 1;
    const char *p = buf;
    struct kl_mc_str w = next_word(&p, end);
    r->consumed = next;
    if (word_is(w, "VALUE")) {
        uint64_t flags, bytes;
        r->key = next_word(&p, end);
        if (r->key.len == 0 || !dec_u64(next_word(&p, end), &flags) || flags > UINT32_MAX ||
            !dec_u64(next_word(&p, end), &bytes))
            return -EPROTO;
        struct kl_mc_str cas = next_word(&p, end);
        if (cas.len && !dec_u64(cas, &r->cas))
            return -EPROTO;
        r->flags = (uint32_t)flags;
        r->type = KL_MC_REPLY_VALUE;
        return data_block(buf, len, next, bytes, r);
    }
    if (word_is(w, "VA")) {
        uint64_t bytes;
        if (!dec_u64(next_word(&p, end), &bytes))
            return -EPROTO;
        r->flags_text = rest(p, end);
        r->type = KL_MC_REPLY_VA;
        return data_block(buf, len, next, bytes, r);
    }
    for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
        if (word_is(w, simple[i].word)) {
            r->type = simple[i].type;
            r->flags_text = rest(p, end);
            return 0;
        }
    }
    if (word_is(w, "STAT")) {
        r->type = KL_MC_REPLY_STAT;
        r->key = next_word(&p, end);
        r->value = rest(p, end);
        return 0;
    }
    if (word_is(w, "VERSION") || word_is(w, "CLIENT_ERROR") || word_is(w, "SERVER_ERROR")) {
        r->type = w.p[0] == 'V'   ? KL_MC_REPLY_VERSION
                  : w.p[0] == 'C' ? KL_MC_REPLY_CLIENT_ERROR
                                  : KL_MC_REPLY_SERVER_ERROR;
        r->value = rest(p, end);
        return 0;
    }
    /* incr/decr: a number, perhaps padded with spaces */
    if (dec_u64(w, &r->number) && rest(p, end).len == 0) {
        r->type = KL_MC_REPLY_NUMBER;
        return 0;
    }
    r->type = KL_MC_REPLY_OTHER;
    r->value = (struct kl_mc_str){buf, (uint32_t)(end - buf)};
    return 0;
}
