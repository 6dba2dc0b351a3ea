/* parse.c: memcached's classic text commands, parsed in place.
 *
 * kl_mc_parse() finds the line's newline, splits the line into views of its
 * words and dispatches on the first word; commands with a data block then
 * wait for the whole block and check its "\r\n". Every verdict is a function
 * of the bytes alone (and the config), so the same stream split anywhere
 * gives the same commands. Error replies and how much they consume follow
 * memcached 1.6.18: a malformed storage line does not swallow its data block
 * (which then reads as a command and gets ERROR), a value over the item size
 * limit does; "noreply" hides a classic command's error lines as memcached
 * does. The meta commands are in parse_meta.c.
 */
#include "mc_internal.h"

#include <limits.h>
#include <stddef.h>
#include <string.h>

void kl_mc_config_init(struct kl_mc_config *cfg)
{
    cfg->item_size_max = 1024 * 1024;
    cfg->item_overhead = 59; /* item header 48, cas 8, key's NUL 1, value's \r\n 2 */
    cfg->key_max = 250;
    cfg->now = 0;
}

static const char *const type_names[KL_MC_TYPE_COUNT] = {
    [KL_MC_NONE] = "none",
    [KL_MC_GET] = "get",
    [KL_MC_GETS] = "gets",
    [KL_MC_GAT] = "gat",
    [KL_MC_GATS] = "gats",
    [KL_MC_SET] = "set",
    [KL_MC_ADD] = "add",
    [KL_MC_REPLACE] = "replace",
    [KL_MC_APPEND] = "append",
    [KL_MC_PREPEND] = "prepend",
    [KL_MC_CAS] = "cas",
    [KL_MC_DELETE] = "delete",
    [KL_MC_INCR] = "incr",
    [KL_MC_DECR] = "decr",
    [KL_MC_TOUCH] = "touch",
    [KL_MC_FLUSH_ALL] = "flush_all",
    [KL_MC_VERSION] = "version",
    [KL_MC_VERBOSITY] = "verbosity",
    [KL_MC_QUIT] = "quit",
    [KL_MC_SHUTDOWN] = "shutdown",
    [KL_MC_CACHE_MEMLIMIT] = "cache_memlimit",
    [KL_MC_STATS] = "stats",
    [KL_MC_LRU_CRAWLER] = "lru_crawler",
    [KL_MC_MG] = "mg",
    [KL_MC_MS] = "ms",
    [KL_MC_MD] = "md",
    [KL_MC_MA] = "ma",
    [KL_MC_MN] = "mn",
    [KL_MC_ME] = "me",
};

const char *kl_mc_type_name(enum kl_mc_type type)
{
    return (unsigned)type < KL_MC_TYPE_COUNT ? type_names[type] : "?";
}

int64_t mc_deadline(const struct kl_mc_config *cfg, int32_t exptime)
{
    if (exptime == 0)
        return 0;
    if (exptime < 0)
        return KL_MC_EXPIRED;
    if (exptime > 60 * 60 * 24 * 30)
        return exptime <= cfg->now ? KL_MC_EXPIRED : exptime;
    return cfg->now + exptime;
}

/* ---- lines and words ---- */

/* The first space of [p, end), or end, eight bytes at a time: bytes up to
 * `limit` (the buffer's end, past the line's) may be read, and a space found
 * beyond `end` counts as end. The lowest byte the zero-byte test flags is
 * exact (little-endian). */
static inline const char *find_space(const char *p, const char *end, const char *limit)
{
    while (limit - p >= 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        x ^= 0x2020202020202020ull;
        uint64_t t = (x - 0x0101010101010101ull) & ~x & 0x8080808080808080ull;
        if (t) {
            p += __builtin_ctzll(t) >> 3;
            return p < end ? p : end;
        }
        p += 8;
        if (p >= end)
            return end;
    }
    while (p < end && *p != ' ')
        p++;
    return p;
}

/* Split ln->p[0, ln->len) into words (at most MC_MAX_TOKENS - 1). */
static void tokenize(struct mc_line *ln)
{
    const char *p = ln->p, *end = ln->p + ln->len;
    int n = 0;
    while (p < end) {
        while (p < end && *p == ' ')
            p++;
        if (p == end)
            break;
        if (n == MC_MAX_TOKENS - 1) {
            ln->ntok = n;
            ln->nt = MC_MAX_TOKENS;
            return;
        }
        const char *s = p;
        p = find_space(p, end, ln->limit);
        ln->tok[n].p = s;
        ln->tok[n].len = (uint32_t)(p - s);
        n++;
    }
    ln->ntok = n;
    ln->nt = n + 1;
}

/* A get/gets line may grow past the no-newline limit; anything else that
 * long without a newline is junk and closes the connection (as memcached). */
static bool long_line_ok(const char *buf, size_t len)
{
    size_t i = 0;
    while (i < len - 6 && buf[i] == ' ')
        i++;
    if (i > 100)
        return false;
    return memcmp(buf + i, "get ", 4) == 0 || memcmp(buf + i, "gets ", 5) == 0;
}

int kl_mc_next_key(const struct kl_mc_cmd *cmd, size_t *pos, struct kl_mc_str *key)
{
    if (!cmd->keys.p)
        return 0;
    const char *p = cmd->keys.p, *end = cmd->keys.p + cmd->keys.len;
    size_t i = *pos;
    while (p + i < end && p[i] == ' ')
        i++;
    if (p + i >= end)
        return 0;
    size_t s = i;
    while (p + i < end && p[i] != ' ')
        i++;
    key->p = p + s;
    key->len = (uint32_t)(i - s);
    *pos = i;
    return 1;
}

/* ---- commands ---- */

/* The keys of a get family command: [p, end), p at a key or a space. */
static enum kl_mc_status parse_keys(const struct kl_mc_config *cfg, const char *p, const char *end,
                                    const char *limit, size_t next, struct kl_mc_cmd *cmd)
{
    cmd->consumed = next;
    while (p < end && *p == ' ')
        p++;
    cmd->keys = (struct kl_mc_str){p, (uint32_t)(end - p)};
    uint32_t n = 0;
    while (p < end) {
        const char *s = p;
        p = find_space(p, end, limit);
        if ((size_t)(p - s) > cfg->key_max)
            return mc_error(cmd, MC_S(MC_E_FORMAT), next, false);
        if (n++ == 0)
            cmd->key = (struct kl_mc_str){s, (uint32_t)(p - s)};
        while (p < end && *p == ' ')
            p++;
    }
    cmd->nkeys = n;
    return KL_MC_CMD;
}

enum kl_mc_status mc_data_block(const struct kl_mc_config *cfg, const char *buf, size_t len,
                                const struct mc_line *ln, int32_t vlen, struct kl_mc_cmd *cmd,
                                bool quiet_errors)
{
    size_t total = ln->next + (size_t)vlen + 2;
    if ((uint64_t)cmd->key.len + (uint64_t)vlen + cfg->item_overhead > cfg->item_size_max) {
        enum kl_mc_status st = mc_error(cmd, MC_S(MC_E_TOO_LARGE), total, quiet_errors);
        cmd->too_large = true; /* memcached then unlinks the key: the server's to do */
        return st;
    }
    if (len < total) {
        cmd->need = total - len;
        return KL_MC_NEED_MORE;
    }
    cmd->consumed = total;
    if (buf[total - 2] != '\r' || buf[total - 1] != '\n')
        return mc_error(cmd, MC_S(MC_E_CHUNK), total, quiet_errors);
    cmd->value = (struct kl_mc_str){buf + ln->next, (uint32_t)vlen};
    return KL_MC_CMD;
}

static bool last_is_noreply(const struct mc_line *ln)
{
    return ln->ntok > 0 && mc_eq(ln->tok[ln->ntok - 1], "noreply", 7);
}

/* set add replace append prepend cas */
static enum kl_mc_status parse_storage(const struct kl_mc_config *cfg, const char *buf, size_t len,
                                       const struct mc_line *ln, struct kl_mc_cmd *cmd)
{
    bool is_cas = cmd->type == KL_MC_CAS;
    int base = is_cas ? 7 : 6;
    if (ln->nt != base && ln->nt != base + 1)
        return mc_error(cmd, MC_S(MC_E_ERROR), ln->next, false);
    cmd->noreply = last_is_noreply(ln);
    cmd->key = ln->tok[1];
    int32_t exptime, vlen;
    if (cmd->key.len > cfg->key_max || !mc_strtoul32(ln->tok[2], &cmd->flags) ||
        !mc_strtol32(ln->tok[3], &exptime) || !mc_strtol32(ln->tok[4], &vlen) || vlen < 0 ||
        vlen > INT_MAX - 2 || (is_cas && !mc_strtoull(ln->tok[5], &cmd->cas)))
        return mc_error(cmd, MC_S(MC_E_FORMAT), ln->next, cmd->noreply);
    cmd->exptime = mc_deadline(cfg, exptime);
    return mc_data_block(cfg, buf, len, ln, vlen, cmd, cmd->noreply);
}

static enum kl_mc_status parse_arith(const struct kl_mc_config *cfg, const struct mc_line *ln,
                                     struct kl_mc_cmd *cmd)
{
    if (ln->nt != 4 && ln->nt != 5)
        return mc_error(cmd, MC_S(MC_E_ERROR), ln->next, false);
    cmd->noreply = last_is_noreply(ln);
    cmd->key = ln->tok[1];
    if (cmd->key.len > cfg->key_max)
        return mc_error(cmd, MC_S(MC_E_FORMAT), ln->next, cmd->noreply);
    if (!mc_strtoull(ln->tok[2], &cmd->delta))
        return mc_error(cmd, MC_S("CLIENT_ERROR invalid numeric delta argument\r\n"), ln->next,
                        cmd->noreply);
    cmd->consumed = ln->next;
    return KL_MC_CMD;
}

static enum kl_mc_status parse_delete(const struct kl_mc_config *cfg, const struct mc_line *ln,
                                      struct kl_mc_cmd *cmd)
{
    if (ln->nt < 3 || ln->nt > 5)
        return mc_error(cmd, MC_S(MC_E_ERROR), ln->next, false);
    cmd->key = ln->tok[1];
    if (ln->nt > 3) {
        bool zero = mc_eq(ln->tok[2], "0", 1);
        cmd->noreply = last_is_noreply(ln);
        if (!((ln->nt == 4 && (zero || cmd->noreply)) || (ln->nt == 5 && zero && cmd->noreply)))
            return mc_error(
                cmd,
                MC_S("CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"),
                ln->next, cmd->noreply);
    }
    if (cmd->key.len > cfg->key_max)
        return mc_error(cmd, MC_S(MC_E_FORMAT), ln->next, cmd->noreply);
    cmd->consumed = ln->next;
    return KL_MC_CMD;
}

#define MC_E_EXPTIME "CLIENT_ERROR invalid exptime argument\r\n"

static enum kl_mc_status parse_touch(const struct kl_mc_config *cfg, const struct mc_line *ln,
                                     struct kl_mc_cmd *cmd)
{
    if (ln->nt != 4 && ln->nt != 5)
        return mc_error(cmd, MC_S(MC_E_ERROR), ln->next, false);
    cmd->noreply = last_is_noreply(ln);
    cmd->key = ln->tok[1];
    int32_t exptime;
    if (cmd->key.len > cfg->key_max)
        return mc_error(cmd, MC_S(MC_E_FORMAT), ln->next, cmd->noreply);
    if (!mc_strtol32(ln->tok[2], &exptime))
        return mc_error(cmd, MC_S(MC_E_EXPTIME), ln->next, cmd->noreply);
    cmd->exptime = mc_deadline(cfg, exptime);
    cmd->consumed = ln->next;
    return KL_MC_CMD;
}

static enum kl_mc_status parse_gat(const struct kl_mc_config *cfg, const struct mc_line *ln,
                                   struct kl_mc_cmd *cmd)
{
    int32_t exptime;
    if (ln->nt < 3)
        return mc_error(cmd, MC_S(MC_E_ERROR), ln->next, false);
    if (!mc_strtol32(ln->tok[1], &exptime))
        return mc_error(cmd, MC_S(MC_E_EXPTIME), ln->next, false);
    cmd->exptime = mc_deadline(cfg, exptime);
    if (ln->ntok < 3)
        return parse_keys(cfg, ln->p + ln->len, ln->p + ln->len, ln->limit, ln->next, cmd);
    return parse_keys(cfg, ln->tok[2].p, ln->p + ln->len, ln->limit, ln->next, cmd);
}

static enum kl_mc_status parse_flush(const struct kl_mc_config *cfg, const struct mc_line *ln,
                                     struct kl_mc_cmd *cmd)
{
    if (ln->nt < 2 || ln->nt > 4)
        return mc_error(cmd, MC_S(MC_E_ERROR), ln->next, false);
    cmd->noreply = last_is_noreply(ln);
    if (ln->nt != (cmd->noreply ? 3 : 2)) {
        int32_t delay;
        if (!mc_strtol32(ln->tok[1], &delay))
            return mc_error(cmd, MC_S(MC_E_EXPTIME), ln->next, cmd->noreply);
        cmd->exptime = delay > 0 ? mc_deadline(cfg, delay) : 0;
        if (cmd->exptime == KL_MC_EXPIRED)
            cmd->exptime = 0;
    }
    cmd->consumed = ln->next;
    return KL_MC_CMD;
}

/* The rest of the line after the first word, leading spaces skipped. */
static struct kl_mc_str rest_after_first(const struct mc_line *ln)
{
    if (ln->ntok < 2)
        return (struct kl_mc_str){ln->p + ln->len, 0};
    const char *p = ln->tok[1].p;
    return (struct kl_mc_str){p, (uint32_t)(ln->p + ln->len - p)};
}

static enum kl_mc_status parse_other(const struct mc_line *ln, struct kl_mc_cmd *cmd)
{
    cmd->consumed = ln->next;
    switch (cmd->type) {
    case KL_MC_VERBOSITY: {
        uint32_t level;
        if (ln->nt != 3 && ln->nt != 4)
            return mc_error(cmd, MC_S(MC_E_ERROR), ln->next, false);
        cmd->noreply = last_is_noreply(ln);
        if (!mc_strtoul32(ln->tok[1], &level))
            return mc_error(cmd, MC_S(MC_E_FORMAT), ln->next, cmd->noreply);
        cmd->num = level;
        return KL_MC_CMD;
    }
    case KL_MC_CACHE_MEMLIMIT: {
        uint32_t mb;
        if (ln->nt != 3 && ln->nt != 4)
            return mc_error(cmd, MC_S(MC_E_ERROR), ln->next, false);
        cmd->noreply = last_is_noreply(ln);
        if (!mc_strtoul32(ln->tok[1], &mb))
            return mc_error(cmd, MC_S(MC_E_ERROR), ln->next, cmd->noreply);
        cmd->num = mb;
        return KL_MC_CMD;
    }
    case KL_MC_SHUTDOWN:
        cmd->arg = rest_after_first(ln);
        cmd->num = ln->nt == 2 ? 0 : ln->nt == 3 && mc_eq(ln->tok[1], "graceful", 8) ? 1 : -1;
        return KL_MC_CMD;
    case KL_MC_STATS:
    case KL_MC_LRU_CRAWLER: cmd->arg = rest_after_first(ln); return KL_MC_CMD;
    default: /* version, quit: arguments ignored */ return KL_MC_CMD;
    }
}

/* The command named by word t, or KL_MC_NONE. */
static enum kl_mc_type lookup(struct kl_mc_str t)
{
    const char *s = t.p;
    switch (t.len) {
    case 2:
        if (s[0] != 'm')
            return KL_MC_NONE;
        switch (s[1]) {
        case 'g': return KL_MC_MG;
        case 's': return KL_MC_MS;
        case 'd': return KL_MC_MD;
        case 'a': return KL_MC_MA;
        case 'n': return KL_MC_MN;
        case 'e': return KL_MC_ME;
        default: return KL_MC_NONE;
        }
    case 3:
        if (memcmp(s, "get", 3) == 0)
            return KL_MC_GET;
        if (memcmp(s, "set", 3) == 0)
            return KL_MC_SET;
        if (memcmp(s, "add", 3) == 0)
            return KL_MC_ADD;
        if (memcmp(s, "cas", 3) == 0)
            return KL_MC_CAS;
        if (memcmp(s, "gat", 3) == 0)
            return KL_MC_GAT;
        return KL_MC_NONE;
    case 4:
        if (memcmp(s, "gets", 4) == 0)
            return KL_MC_GETS;
        if (memcmp(s, "incr", 4) == 0)
            return KL_MC_INCR;
        if (memcmp(s, "decr", 4) == 0)
            return KL_MC_DECR;
        if (memcmp(s, "gats", 4) == 0)
            return KL_MC_GATS;
        if (memcmp(s, "quit", 4) == 0)
            return KL_MC_QUIT;
        return KL_MC_NONE;
    case 5:
        if (memcmp(s, "touch", 5) == 0)
            return KL_MC_TOUCH;
        if (memcmp(s, "stats", 5) == 0)
            return KL_MC_STATS;
        return KL_MC_NONE;
    case 6:
        if (memcmp(s, "delete", 6) == 0)
            return KL_MC_DELETE;
        if (memcmp(s, "append", 6) == 0)
            return KL_MC_APPEND;
        return KL_MC_NONE;
    case 7:
        if (memcmp(s, "replace", 7) == 0)
            return KL_MC_REPLACE;
        if (memcmp(s, "prepend", 7) == 0)
            return KL_MC_PREPEND;
        if (memcmp(s, "version", 7) == 0)
            return KL_MC_VERSION;
        return KL_MC_NONE;
    case 8: return memcmp(s, "shutdown", 8) == 0 ? KL_MC_SHUTDOWN : KL_MC_NONE;
    case 9:
        if (memcmp(s, "flush_all", 9) == 0)
            return KL_MC_FLUSH_ALL;
        if (memcmp(s, "verbosity", 9) == 0)
            return KL_MC_VERBOSITY;
        return KL_MC_NONE;
    case 11: return memcmp(s, "lru_crawler", 11) == 0 ? KL_MC_LRU_CRAWLER : KL_MC_NONE;
    case 14: return memcmp(s, "cache_memlimit", 14) == 0 ? KL_MC_CACHE_MEMLIMIT : KL_MC_NONE;
    default: return KL_MC_NONE;
    }
}

enum kl_mc_status kl_mc_parse(const struct kl_mc_config *cfg, const char *buf, size_t len,
                              struct kl_mc_cmd *cmd)
{
    /* meta is cleared by the meta commands' parser, which alone fills it;
     * the rest in pieces that compilers write with plain stores (one memset
     * of it becomes "rep stos", slow to start) */
    enum { HEAD = offsetof(struct kl_mc_cmd, meta), PART = HEAD / 3 };
    memset((char *)cmd, 0, PART);
    memset((char *)cmd + PART, 0, PART);
    memset((char *)cmd + 2 * PART, 0, HEAD - 2 * PART);
    if (len == 0)
        return KL_MC_NEED_MORE;
    if ((unsigned char)buf[0] == 0x80) {
        cmd->close = true;
        return mc_error(cmd, MC_S("CLIENT_ERROR binary protocol is not supported\r\n"), 1, false);
    }
    const char *nl = memchr(buf, '\n', len);
    if (!nl) {
        if (len > MC_NO_NEWLINE_MAX && !long_line_ok(buf, len)) {
            cmd->close = true; /* consumed: the bytes judged, whatever else arrived */
            return mc_error(cmd, MC_S(""), MC_NO_NEWLINE_MAX + 1, false);
        }
        return KL_MC_NEED_MORE;
    }
    struct mc_line ln;
    ln.p = buf;
    ln.limit = buf + len;
    ln.len = (size_t)(nl - buf);
    ln.next = ln.len + 1;
    if (ln.len > 1 && nl[-1] == '\r')
        ln.len--;
    /* get and gets read their keys straight from the line */
    if (ln.len >= 4 && buf[0] == 'g' && buf[1] == 'e' && buf[2] == 't') {
        if (buf[3] == ' ' || (buf[3] == 's' && (ln.len == 4 || buf[4] == ' '))) {
            cmd->type = buf[3] == ' ' ? KL_MC_GET : KL_MC_GETS;
            enum kl_mc_status st = parse_keys(cfg, buf + 4, buf + ln.len, buf + len, ln.next, cmd);
            if (st == KL_MC_CMD && cmd->nkeys == 0)
                return mc_error(cmd, MC_S(MC_E_ERROR), ln.next, false);
            return st;
        }
    }
    tokenize(&ln);
    if (ln.ntok == 0)
        return mc_error(cmd, MC_S(MC_E_ERROR), ln.next, false);
    cmd->type = (uint8_t)lookup(ln.tok[0]);
    switch (cmd->type) {
    case KL_MC_NONE: return mc_error(cmd, MC_S(MC_E_ERROR), ln.next, false);
    case KL_MC_GET:
    case KL_MC_GETS:
        if (ln.nt < 3)
            return mc_error(cmd, MC_S(MC_E_ERROR), ln.next, false);
        return parse_keys(cfg, ln.tok[1].p, buf + ln.len, buf + len, ln.next, cmd);
    case KL_MC_GAT:
    case KL_MC_GATS: return parse_gat(cfg, &ln, cmd);
    case KL_MC_SET:
    case KL_MC_ADD:
    case KL_MC_REPLACE:
    case KL_MC_APPEND:
    case KL_MC_PREPEND:
    case KL_MC_CAS: return parse_storage(cfg, buf, len, &ln, cmd);
    case KL_MC_INCR:
    case KL_MC_DECR: return parse_arith(cfg, &ln, cmd);
    case KL_MC_DELETE: return parse_delete(cfg, &ln, cmd);
    case KL_MC_TOUCH: return parse_touch(cfg, &ln, cmd);
    case KL_MC_FLUSH_ALL: return parse_flush(cfg, &ln, cmd);
    case KL_MC_MG:
    case KL_MC_MS:
    case KL_MC_MD:
    case KL_MC_MA:
    case KL_MC_MN:
    case KL_MC_ME: return mc_parse_meta(cfg, buf, len, &ln, cmd);
    default: return parse_other(&ln, cmd);
    }
}
