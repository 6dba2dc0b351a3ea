/* parse_meta.c: the meta commands (mg ms md ma mn me) and base64 keys.
 *
 * A meta line is "<cm> <key> [<datalen>] <flag><token>...": each flag is one
 * letter, the rest of its word is its token. Flags are checked left to right
 * as memcached does (first error wins; a letter twice is an error; tokens
 * that are numbers are decoded here). Which letters a command accepts is
 * memcached 1.6.18's set plus master's E (and x for md); mg and ms name
 * their errors, md and ma answer every flag error with "invalid or duplicate
 * flag", as 1.6.18 does. An ms whose flags are wrong still has its data
 * block swallowed; an ms whose length is wrong cannot, and does not.
 * The reply flags are not decoded: kl_mc_meta_header() walks meta.flags.
 */
#include "mc_internal.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#define F(c) KL_MC_F(c)

static const uint64_t meta_valid = F('b') | F('c') | F('f') | F('h') | F('k') | F('l') | F('q') |
                                   F('s') | F('t') | F('u') | F('v') | F('C') | F('D') | F('E') |
                                   F('F') | F('I') | F('J') | F('L') | F('M') | F('N') | F('O') |
                                   F('P') | F('R') | F('T');

#define E_BAD_TOKEN "CLIENT_ERROR bad token in command line format\r\n"

/* Check and decode the flag words from `first`; on failure *err is the reply. */
static bool meta_flags(const struct kl_mc_config *cfg, const struct mc_line *ln, int first,
                       struct kl_mc_cmd *cmd, struct kl_mc_str *err)
{
    uint64_t valid = meta_valid | (cmd->type == KL_MC_MD ? F('x') : 0);
    struct kl_mc_meta *m = &cmd->meta;
    if (first < ln->ntok)
        m->flags =
            (struct kl_mc_str){ln->tok[first].p, (uint32_t)(ln->p + ln->len - ln->tok[first].p)};
    else
        m->flags = (struct kl_mc_str){ln->p + ln->len, 0};
    for (int i = first; i < ln->ntok; i++) {
        struct kl_mc_str t = ln->tok[i];
        char c = t.p[0];
        struct kl_mc_str tok = {t.p + 1, t.len - 1};
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) || !(valid & F(c))) {
            *err = MC_S("CLIENT_ERROR invalid flag\r\n");
            return false;
        }
        if (m->has & F(c)) {
            *err = MC_S("CLIENT_ERROR duplicate flag\r\n");
            return false;
        }
        m->has |= F(c);
        int32_t v32;
        switch (c) {
        case 'q': cmd->noreply = true; break;
        case 'b': cmd->base64 = true; break;
        case 'N':
        case 'T':
        case 'R':
            if (!mc_strtol32(tok, &v32)) {
                *err = MC_S(E_BAD_TOKEN);
                return false;
            }
            if (c == 'N')
                m->vivify = mc_deadline(cfg, v32);
            else if (c == 'T')
                cmd->exptime = mc_deadline(cfg, v32);
            else
                m->recache = v32;
            break;
        case 'C':
        case 'E':
            if (!mc_strtoull(tok, c == 'C' ? &cmd->cas : &m->new_cas)) {
                *err = MC_S(E_BAD_TOKEN);
                return false;
            }
            break;
        case 'D':
            if (!mc_strtoull(tok, &cmd->delta)) {
                *err = MC_S("CLIENT_ERROR invalid numeric delta value\r\n");
                return false;
            }
            break;
        case 'J':
            if (!mc_strtoull(tok, &m->initial)) {
                *err = MC_S("CLIENT_ERROR invalid numeric initial value\r\n");
                return false;
            }
            break;
        case 'F':
            if (!mc_strtoul32(tok, &cmd->flags)) {
                *err = MC_S(MC_E_FORMAT);
                return false;
            }
            break;
        case 'M':
            if (tok.len != 1) {
                *err = MC_S("CLIENT_ERROR incorrect length for M token\r\n");
                return false;
            }
            m->mode = tok.p[0];
            break;
        case 'O':
            if (t.len > MC_OPAQUE_MAX) {
                *err = MC_S("CLIENT_ERROR opaque token too long\r\n");
                return false;
            }
            m->opaque = tok;
            break;
        default: /* flags without a token of meaning here (the token is ignored) */ break;
        }
    }
    if (cmd->base64 && !mc_base64_valid(cmd->key.p, cmd->key.len)) {
        *err = MC_S("CLIENT_ERROR error decoding key\r\n");
        return false;
    }
    return true;
}

static enum kl_mc_status parse_ms(const struct kl_mc_config *cfg, const char *buf, size_t len,
                                  const struct mc_line *ln, struct kl_mc_cmd *cmd)
{
    int32_t vlen;
    if (cmd->key.len > cfg->key_max || ln->nt == 3)
        return mc_error(cmd, MC_S(MC_E_FORMAT), ln->next, false);
    if (ln->nt > MC_META_MAX_TOKENS)
        return mc_error(cmd, MC_S("CLIENT_ERROR options flags too long\r\n"), ln->next, false);
    if (!mc_strtol32(ln->tok[2], &vlen) || vlen < 0 || vlen > INT_MAX - 2)
        return mc_error(cmd, MC_S(MC_E_FORMAT), ln->next, false);
    size_t swallow = ln->next + (size_t)vlen + 2;
    struct kl_mc_str err;
    if (!meta_flags(cfg, ln, 3, cmd, &err))
        return mc_error(cmd, err, swallow, false);
    switch (cmd->meta.mode) {
    case 0: cmd->meta.mode = 'S'; break;
    case 'S':
    case 'E':
    case 'A':
    case 'P':
    case 'R': break;
    default:
        return mc_error(cmd, MC_S("CLIENT_ERROR invalid mode for ms M token\r\n"), swallow, false);
    }
    return mc_data_block(cfg, buf, len, ln, vlen, cmd, false);
}

enum kl_mc_status mc_parse_meta(const struct kl_mc_config *cfg, const char *buf, size_t len,
                                const struct mc_line *ln, struct kl_mc_cmd *cmd)
{
    struct kl_mc_str err;
    memset(&cmd->meta, 0, sizeof(cmd->meta));
    cmd->consumed = ln->next;
    if (cmd->type == KL_MC_MN)
        return KL_MC_CMD;
    if (ln->nt < 3)
        return mc_error(cmd, cmd->type == KL_MC_ME ? MC_S(MC_E_FORMAT) : MC_S(MC_E_ERROR), ln->next,
                        false);
    cmd->key = ln->tok[1];
    switch (cmd->type) {
    case KL_MC_ME:
        if (cmd->key.len > cfg->key_max)
            return mc_error(cmd, MC_S(MC_E_FORMAT), ln->next, false);
        cmd->meta.flags = (struct kl_mc_str){ln->p + ln->len, 0};
        if (ln->ntok > 2) {
            cmd->meta.flags =
                (struct kl_mc_str){ln->tok[2].p, (uint32_t)(ln->p + ln->len - ln->tok[2].p)};
            if (mc_eq(ln->tok[2], "b", 1)) {
                cmd->base64 = true;
                cmd->meta.has = F('b');
                if (!mc_base64_valid(cmd->key.p, cmd->key.len))
                    return mc_error(cmd, MC_S(MC_E_FORMAT), ln->next, false);
            }
        }
        return KL_MC_CMD;
    case KL_MC_MS: return parse_ms(cfg, buf, len, ln, cmd);
    case KL_MC_MG:
        if (cmd->key.len > cfg->key_max)
            return mc_error(cmd, MC_S(MC_E_FORMAT), ln->next, false);
        if (ln->nt > MC_META_MAX_TOKENS)
            return mc_error(cmd, MC_S("CLIENT_ERROR options flags are too long\r\n"), ln->next,
                            false);
        if (!meta_flags(cfg, ln, 2, cmd, &err))
            return mc_error(cmd, err, ln->next, false);
        return KL_MC_CMD;
    default: /* md, ma */
        if (cmd->key.len > cfg->key_max)
            return mc_error(cmd, MC_S(MC_E_FORMAT), ln->next, false);
        if (ln->nt > MC_META_MAX_TOKENS)
            return mc_error(cmd, MC_S("CLIENT_ERROR options flags too long\r\n"), ln->next, false);
        if (cmd->type == KL_MC_MA)
            cmd->delta = 1;
        if (!meta_flags(cfg, ln, 2, cmd, &err))
            return mc_error(cmd, MC_S("CLIENT_ERROR invalid or duplicate flag\r\n"), ln->next,
                            false);
        if (cmd->type == KL_MC_MA) {
            switch (cmd->meta.mode) {
            case 0:
            case 'I':
            case '+': cmd->meta.mode = '+'; break;
            case 'D':
            case '-': cmd->meta.mode = '-'; break;
            default:
                return mc_error(cmd, MC_S("CLIENT_ERROR invalid mode for ma M token\r\n"), ln->next,
                                false);
            }
        }
        return KL_MC_CMD;
    }
}

/* ---- base64 (RFC 4648, padded) ---- */

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decode into dst when dst != NULL: decoded length, -EINVAL or -ENOSPC. */
static int b64_decode(const char *src, size_t len, char *dst, size_t cap)
{
    if (len == 0 || len % 4 != 0)
        return -EINVAL;
    size_t out = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4], pad = 0;
        for (int j = 0; j < 4; j++) {
            unsigned char c = (unsigned char)src[i + j];
            if (c == '=' && i + 4 == len && j >= 2) {
                pad++;
                v[j] = 0;
                continue;
            }
            if (pad)
                return -EINVAL; /* data after padding */
            v[j] = b64_val(c);
            if (v[j] < 0)
                return -EINVAL;
        }
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        int n = 3 - pad;
        if (dst) {
            if (out + (size_t)n > cap)
                return -ENOSPC;
            for (int j = 0; j < n; j++)
                dst[out + (size_t)j] = (char)(w >> (16 - 8 * j));
        }
        out += (size_t)n;
    }
    return out > INT_MAX ? -EINVAL : (int)out;
}

bool mc_base64_valid(const char *p, size_t len) { return b64_decode(p, len, NULL, 0) > 0; }

int kl_mc_base64_decode(const char *src, size_t len, char *dst, size_t cap)
{
    return b64_decode(src, len, dst, cap);
}

int kl_mc_base64_encode(const char *src, size_t len, char *dst, size_t cap)
{
    size_t need = (len + 2) / 3 * 4;
    if (need > cap || need > INT_MAX)
        return -ENOSPC;
    const unsigned char *s = (const unsigned char *)src;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t w = (uint32_t)s[i] << 16;
        if (i + 1 < len)
            w |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < len)
            w |= s[i + 2];
        dst[o++] = b64_chars[(w >> 18) & 63];
        dst[o++] = b64_chars[(w >> 12) & 63];
        dst[o++] = i + 1 < len ? b64_chars[(w >> 6) & 63] : '=';
        dst[o++] = i + 2 < len ? b64_chars[w & 63] : '=';
    }
    return (int)need;
}
