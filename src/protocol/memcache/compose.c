/* compose.c: memcached replies, written into caller buffers.
 *
 * Lines are formatted with a small bounded writer that stops at the
 * buffer's end and reports -ENOSPC, never writing past it. A value is never
 * copied: the *_iov() helpers put the formatted header, the engine's bytes
 * and a static "\r\n" into three iovecs for one gathered send. Meta reply
 * flags are produced by walking the request's flag words in their order, so
 * the reply lists them as the client asked (memcached prints b right after k).
 */
#include "mc_internal.h"

#include <errno.h>
#include <string.h>

static const struct kl_mc_str lines[KL_MC_R_COUNT] = {
    [KL_MC_R_STORED] = MC_S("STORED\r\n"),   [KL_MC_R_NOT_STORED] = MC_S("NOT_STORED\r\n"),
    [KL_MC_R_EXISTS] = MC_S("EXISTS\r\n"),   [KL_MC_R_NOT_FOUND] = MC_S("NOT_FOUND\r\n"),
    [KL_MC_R_DELETED] = MC_S("DELETED\r\n"), [KL_MC_R_TOUCHED] = MC_S("TOUCHED\r\n"),
    [KL_MC_R_END] = MC_S("END\r\n"),         [KL_MC_R_OK] = MC_S("OK\r\n"),
    [KL_MC_R_RESET] = MC_S("RESET\r\n"),     [KL_MC_R_ERROR] = MC_S("ERROR\r\n"),
    [KL_MC_R_MN] = MC_S("MN\r\n"),           [KL_MC_R_EN] = MC_S("EN\r\n"),
    [KL_MC_R_HD] = MC_S("HD\r\n"),           [KL_MC_R_NS] = MC_S("NS\r\n"),
    [KL_MC_R_EX] = MC_S("EX\r\n"),           [KL_MC_R_NF] = MC_S("NF\r\n"),
    [KL_MC_R_CRLF] = MC_S("\r\n"),
};

struct kl_mc_str kl_mc_line(enum kl_mc_line line)
{
    return (unsigned)line < KL_MC_R_COUNT ? lines[line] : lines[KL_MC_R_ERROR];
}

/* A bounded writer: once full, it only remembers that it overflowed. */
struct wr {
    char *p, *end;
    bool full;
};

static void put(struct wr *w, const void *s, size_t n)
{
    if (w->full || (size_t)(w->end - w->p) < n) {
        w->full = true;
        return;
    }
    memcpy(w->p, s, n);
    w->p += n;
}

static void put_c(struct wr *w, char c) { put(w, &c, 1); }

static void put_u64(struct wr *w, uint64_t v)
{
    char tmp[20];
    int i = 20;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(w, tmp + i, (size_t)(20 - i));
}

static void put_i64(struct wr *w, int64_t v)
{
    if (v < 0) {
        put_c(w, '-');
        put_u64(w, (uint64_t)0 - (uint64_t)v);
    } else {
        put_u64(w, (uint64_t)v);
    }
}

static int done(struct wr *w, char *start) { return w->full ? -ENOSPC : (int)(w->p - start); }

int kl_mc_value_header(char *buf, size_t cap, struct kl_mc_str key, uint32_t flags, uint32_t bytes,
                       bool with_cas, uint64_t cas)
{
    struct wr w = {buf, buf + cap, false};
    put(&w, "VALUE ", 6);
    put(&w, key.p, key.len);
    put_c(&w, ' ');
    put_u64(&w, flags);
    put_c(&w, ' ');
    put_u64(&w, bytes);
    if (with_cas) {
        put_c(&w, ' ');
        put_u64(&w, cas);
    }
    put(&w, "\r\n", 2);
    return done(&w, buf);
}

static int three_iov(struct iovec iov[3], char *hdr, int n, const void *value, uint32_t bytes)
{
    if (n < 0)
        return n;
    iov[0] = (struct iovec){hdr, (size_t)n};
    iov[1] = (struct iovec){(void *)(uintptr_t)value, bytes};
    iov[2] = (struct iovec){(void *)(uintptr_t)lines[KL_MC_R_CRLF].p, 2};
    return 3;
}

int kl_mc_value_iov(struct iovec iov[3], char *hdr, size_t hcap, struct kl_mc_str key,
                    uint32_t flags, const void *value, uint32_t bytes, bool with_cas, uint64_t cas)
{
    int n = kl_mc_value_header(hdr, hcap, key, flags, bytes, with_cas, cas);
    return three_iov(iov, hdr, n, value, bytes);
}

int kl_mc_number(char *buf, size_t cap, uint64_t n)
{
    struct wr w = {buf, buf + cap, false};
    put_u64(&w, n);
    put(&w, "\r\n", 2);
    return done(&w, buf);
}

int kl_mc_version(char *buf, size_t cap, const char *version)
{
    struct wr w = {buf, buf + cap, false};
    put(&w, "VERSION ", 8);
    put(&w, version, strlen(version));
    put(&w, "\r\n", 2);
    return done(&w, buf);
}

int kl_mc_stat(char *buf, size_t cap, const char *name, const char *value)
{
    struct wr w = {buf, buf + cap, false};
    put(&w, "STAT ", 5);
    put(&w, name, strlen(name));
    put_c(&w, ' ');
    put(&w, value, strlen(value));
    put(&w, "\r\n", 2);
    return done(&w, buf);
}

int kl_mc_stat_u64(char *buf, size_t cap, const char *name, uint64_t n)
{
    struct wr w = {buf, buf + cap, false};
    put(&w, "STAT ", 5);
    put(&w, name, strlen(name));
    put_c(&w, ' ');
    put_u64(&w, n);
    put(&w, "\r\n", 2);
    return done(&w, buf);
}

int kl_mc_error_line(char *buf, size_t cap, const char *kind, const char *msg)
{
    struct wr w = {buf, buf + cap, false};
    put(&w, kind, strlen(kind));
    if (msg && *msg) {
        put_c(&w, ' ');
        put(&w, msg, strlen(msg));
    }
    put(&w, "\r\n", 2);
    return done(&w, buf);
}

/* The return flags each command gives for an item it found. */
static uint64_t returned_flags(uint8_t type)
{
#define F(c) KL_MC_F(c)
    switch (type) {
    case KL_MC_MG: return F('c') | F('f') | F('h') | F('k') | F('l') | F('O') | F('s') | F('t');
    case KL_MC_MS: return F('c') | F('k') | F('O') | F('s');
    case KL_MC_MA: return F('c') | F('k') | F('O') | F('t');
    default: return F('k') | F('O');
    }
}

int kl_mc_meta_header(char *buf, size_t cap, const char *code, const struct kl_mc_cmd *cmd,
                      const struct kl_mc_item_info *info, uint32_t value_len)
{
    struct wr w = {buf, buf + cap, false};
    put(&w, code, strlen(code));
    if (code[0] == 'V' && code[1] == 'A') {
        put_c(&w, ' ');
        put_u64(&w, value_len);
    }
    uint64_t want = info ? returned_flags(cmd->type) : (F('k') | F('O'));
    const char *p = cmd->meta.flags.p, *end = p ? p + cmd->meta.flags.len : p;
    while (p < end) {
        while (p < end && *p == ' ')
            p++;
        if (p == end)
            break;
        const char *s = p;
        while (p < end && *p != ' ')
            p++;
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) || !(want & F(c)))
            continue;
        put_c(&w, ' ');
        put_c(&w, c);
        switch (c) {
        case 'O': put(&w, cmd->meta.opaque.p, cmd->meta.opaque.len); break;
        case 'k':
            put(&w, cmd->key.p, cmd->key.len);
            if (cmd->base64)
                put(&w, " b", 2);
            break;
        case 'c': put_u64(&w, info->cas); break;
        case 'f': put_u64(&w, info->flags); break;
        case 'h': put_c(&w, info->hit_before ? '1' : '0'); break;
        case 'l': put_i64(&w, info->last_access); break;
        case 's': put_u64(&w, info->size); break;
        case 't': put_i64(&w, info->ttl); break;
        default: break;
        }
    }
    if (info) { /* in 1.6.18's order: a stale item that wins is "X W", one won is "Z X" */
        if (info->already_won)
            put(&w, " Z", 2);
        if (info->stale)
            put(&w, " X", 2);
        if (info->win)
            put(&w, " W", 2);
    }
#undef F
    put(&w, "\r\n", 2);
    return done(&w, buf);
}

int kl_mc_meta_value_iov(struct iovec iov[3], char *hdr, size_t hcap, const struct kl_mc_cmd *cmd,
                         const struct kl_mc_item_info *info, const void *value, uint32_t bytes)
{
    int n = kl_mc_meta_header(hdr, hcap, "VA", cmd, info, bytes);
    return three_iov(iov, hdr, n, value, bytes);
}
