/* mc_internal.h: what the memcache parser's files share.
 *
 * A command line is split on spaces into at most MC_MAX_TOKENS - 1 words, as
 * memcached's tokenizer does; memcached counts one more, final token, so its
 * "ntokens" is words + 1 (capped at MC_MAX_TOKENS). Number parsing follows
 * memcached's strtol/strtoull-based helpers, wrap-arounds included, so that
 * the same bytes are accepted and refused.
 */
#ifndef KEEL_MC_INTERNAL_H
#define KEEL_MC_INTERNAL_H

#include <keel/memcache.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MC_MAX_TOKENS      24
#define MC_META_MAX_TOKENS 20 /* memcached's MFLAG_MAX_OPT_LENGTH */
#define MC_OPAQUE_MAX      32 /* O token, its letter included */
#define MC_NO_NEWLINE_MAX  2048

struct mc_line {
    const char *p;     /* start of the line */
    const char *limit; /* end of the buffer: bytes before it may be read */
    size_t len;        /* without \n and a \r before it */
    size_t next;       /* offset of the byte after \n */
    int ntok;          /* words stored in tok[] */
    int nt;            /* memcached's ntokens: ntok + 1 */
    struct kl_mc_str tok[MC_MAX_TOKENS];
};

/* Fixed reply strings. */
#define MC_S(s)        ((struct kl_mc_str){s, sizeof(s) - 1})
#define MC_E_ERROR     "ERROR\r\n"
#define MC_E_FORMAT    "CLIENT_ERROR bad command line format\r\n"
#define MC_E_CHUNK     "CLIENT_ERROR bad data chunk\r\n"
#define MC_E_TOO_LARGE "SERVER_ERROR object too large for cache\r\n"

/* Set the error verdict: reply r (suppressed when quiet), consumed n. */
static inline enum kl_mc_status mc_error(struct kl_mc_cmd *cmd, struct kl_mc_str r, size_t n,
                                         bool quiet)
{
    cmd->reply = quiet ? (struct kl_mc_str){r.p, 0} : r;
    cmd->consumed = n;
    return KL_MC_ERROR;
}

static inline bool mc_eq(struct kl_mc_str t, const char *s, uint32_t n)
{
    return t.len == n && __builtin_memcmp(t.p, s, n) == 0;
}

/* ---- numbers, as memcached's safe_strto* read them ---- */

static inline bool mc_isspace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* strtoull over a token: leading white space, a sign, digits; the token may
 * go on after the number only with white space. *neg tells a '-' was seen. */
static inline bool scan_u64(struct kl_mc_str t, uint64_t *out, bool *neg)
{
    /* the usual token: up to 19 digits, which cannot overflow */
    if (t.len - 1u < 19u) {
        uint64_t v = 0;
        uint32_t i = 0;
        for (; i < t.len; i++) {
            unsigned d = (unsigned)(unsigned char)t.p[i] - '0';
            if (d > 9)
                break;
            v = v * 10 + d;
        }
        if (i == t.len) {
            *neg = false;
            *out = v;
            return true;
        }
    }
    const char *p = t.p, *end = t.p + t.len;
    while (p < end && mc_isspace(*p))
        p++;
    *neg = false;
    if (p < end && (*p == '+' || *p == '-')) {
        *neg = *p == '-';
        p++;
    }
    const char *digits = p;
    uint64_t v = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false; /* ERANGE */
        v = v * 10 + d;
        p++;
    }
    if (p == digits)
        return false;
    if (p < end && !mc_isspace(*p))
        return false;
    *out = v; /* the magnitude */
    return true;
}

static inline bool mc_strtoull(struct kl_mc_str t, uint64_t *out)
{
    bool neg;
    uint64_t v;
    if (!scan_u64(t, &v, &neg))
        return false;
    if (neg)
        v = (uint64_t)0 - v;
    if ((int64_t)v < 0 && __builtin_memchr(t.p, '-', t.len))
        return false;
    *out = v;
    return true;
}

static inline bool mc_strtoul32(struct kl_mc_str t, uint32_t *out)
{
    uint64_t v;
    if (!mc_strtoull(t, &v))
        return false;
    *out = (uint32_t)v; /* memcached stores an unsigned long into 32 bits */
    return true;
}

static inline bool mc_strtol32(struct kl_mc_str t, int32_t *out)
{
    bool neg;
    uint64_t v;
    if (!scan_u64(t, &v, &neg))
        return false;
    /* strtol's range: [-2^63, 2^63 - 1] */
    if (v > (uint64_t)INT64_MAX + (neg ? 1 : 0))
        return false;
    if (neg)
        v = (uint64_t)0 - v;
    *out = (int32_t)(uint32_t)v; /* then stored into 32 bits */
    return true;
}

int64_t mc_deadline(const struct kl_mc_config *cfg, int32_t exptime);
bool mc_base64_valid(const char *p, size_t len);

/* Storage tail shared by set-family and ms: wait for, check and attach the data block. */
enum kl_mc_status mc_data_block(const struct kl_mc_config *cfg, const char *buf, size_t len,
                                const struct mc_line *ln, int32_t vlen, struct kl_mc_cmd *cmd,
                                bool quiet_errors);

enum kl_mc_status mc_parse_meta(const struct kl_mc_config *cfg, const char *buf, size_t len,
                                const struct mc_line *ln, struct kl_mc_cmd *cmd);

#endif /* KEEL_MC_INTERNAL_H */
