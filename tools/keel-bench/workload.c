/* keel-bench's workload: random numbers, keys, the command mix and values.
 *
 * Keys are "kb" and the key's index in decimal, padded with zeros to a
 * length drawn (deterministically, from the index) within --key-size, so a
 * reply's key maps back to its index without a table. A key's value length
 * is drawn from its index too, the same for every write of every run: an
 * overwrite keeps the key's size (protostore's overwrite workload), and a
 * tool that writes a data set directly (keel-mkdata) can give each key the
 * size keel-bench will write. Both draws are splitmix64 (below), so the
 * names and sizes are easy to reproduce elsewhere (README, keel-bench -h). Zipf draws ranks with
 * the YCSB method (Gray et al., "Quickly generating billion-record synthetic
 * databases"): constant time per draw after an O(n) sum at start-up.
 *
 * A value is its identity "@KEY/TAG/VERSION|" followed by bytes of one
 * fixed pattern (the same in every run, so one run can check another's
 * values), from an offset and for a length that both follow from the
 * identity. Requests send the pattern bytes straight from that buffer
 * (writev); nothing is filled per request.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static char *pattern;
const char *kb_pattern;

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* SplitMix64's step: advances *x by the golden ratio and mixes it. */
static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void kb_rng_seed(struct kb_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix(&seed);
}

uint64_t kb_rng_next(struct kb_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

uint64_t kb_rng_below(struct kb_rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)kb_rng_next(r) * n) >> 64);
}

uint64_t kb_splitmix64(uint64_t x) { return splitmix(&x); }

static double rng_unit(struct kb_rng *r) { return (double)(kb_rng_next(r) >> 11) * 0x1.0p-53; }

/* Ranks one connection draws from: all keys, or its own share when verifying. */
static uint64_t rank_space(const struct kb_run *run)
{
    if (!run->opt.verify)
        return run->opt.keys;
    return (run->opt.keys + run->total_conns - 1) / run->total_conns;
}

void kb_workload_init(struct kb_run *run)
{
    uint64_t n = rank_space(run);
    run->zipf_n = n;
    if (run->opt.zipf <= 0)
        return;
    double theta = run->opt.zipf, zeta = 0;
    for (uint64_t i = 1; i <= n; i++)
        zeta += 1.0 / pow((double)i, theta);
    run->zeta_n = zeta;
    run->zeta2 = 1.0 + 1.0 / pow(2.0, theta);
    run->zipf_alpha = 1.0 / (1.0 - theta);
    run->zipf_eta = (1.0 - pow(2.0 / (double)n, 1.0 - theta)) / (1.0 - run->zeta2 / zeta);
}

static uint64_t zipf_rank(const struct kb_run *run, struct kb_rng *r)
{
    double u = rng_unit(r), uz = u * run->zeta_n;
    if (uz < 1.0)
        return 0;
    if (uz < run->zeta2)
        return 1;
    uint64_t v = (uint64_t)((double)run->zipf_n *
                            pow(run->zipf_eta * u - run->zipf_eta + 1.0, run->zipf_alpha));
    return v < run->zipf_n ? v : run->zipf_n - 1;
}

uint32_t kb_pick_key(const struct kb_run *run, struct kb_rng *r, uint32_t conn)
{
    uint64_t rank = run->opt.zipf > 0 ? zipf_rank(run, r) : kb_rng_below(r, run->zipf_n);
    if (!run->opt.verify)
        return (uint32_t)rank;
    /* connection c owns keys c, c + C, c + 2C, ...: wrap ranks past the end */
    uint64_t owned = (run->opt.keys - conn + run->total_conns - 1) / run->total_conns;
    return (uint32_t)((rank % owned) * run->total_conns + conn);
}

enum kb_cmd kb_pick_cmd(const struct kb_options *opt, struct kb_rng *r)
{
    uint32_t x = (uint32_t)kb_rng_below(r, opt->mix_total);
    for (int c = 0; c < KB_CMD_COUNT; c++) {
        if (x < opt->mix[c])
            return (enum kb_cmd)c;
        x -= opt->mix[c];
    }
    return KB_GET; /* not reached: the weights sum to mix_total */
}

static uint64_t mix3(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t x = a * 0x9e3779b97f4a7c15ull ^ rotl(b, 21) ^ rotl(c, 42);
    return splitmix(&x);
}

uint32_t kb_key_format(const struct kb_options *opt, uint32_t k, char *buf)
{
    uint32_t len = opt->key_min;
    if (opt->key_max > opt->key_min)
        len += (uint32_t)(kb_splitmix64(k) % (opt->key_max - opt->key_min + 1));
    char digits[16];
    int nd = 0;
    do {
        digits[nd++] = (char)('0' + k % 10);
        k /= 10;
    } while (k);
    buf[0] = 'k';
    buf[1] = 'b';
    uint32_t pad = len - 2 - (uint32_t)nd;
    memset(buf + 2, '0', pad);
    for (int i = 0; i < nd; i++)
        buf[2 + pad + (uint32_t)i] = digits[nd - 1 - i];
    buf[len] = '\0';
    return len;
}

int64_t kb_key_parse(const struct kb_options *opt, const char *p, uint32_t len)
{
    if (len < 3 || len < opt->key_min || len > opt->key_max || p[0] != 'k' || p[1] != 'b')
        return -1;
    uint64_t v = 0;
    for (uint32_t i = 2; i < len; i++) {
        if (p[i] < '0' || p[i] > '9' || v > UINT32_MAX)
            return -1;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    return v < opt->keys ? (int64_t)v : -1;
}

uint32_t kb_value_len(uint32_t value_min, uint32_t value_max, uint32_t k)
{
    uint32_t span = value_max - value_min + 1;
    if (span == 1)
        return value_min;
    return value_min + (uint32_t)(kb_splitmix64(KB_VALUE_LEN_SALT + k) % span);
}

static char *put_hex(char *p, uint32_t v)
{
    static const char hex[] = "0123456789abcdef";
    for (int s = 28; s >= 0; s -= 4)
        *p++ = hex[(v >> s) & 15];
    return p;
}

uint32_t kb_value_head(uint32_t k, uint32_t tag, uint32_t ver, char *buf)
{
    char *p = buf;
    *p++ = '@';
    p = put_hex(p, k);
    *p++ = '/';
    p = put_hex(p, tag);
    *p++ = '/';
    p = put_hex(p, ver);
    *p++ = '|';
    return (uint32_t)(p - buf);
}

uint32_t kb_pattern_offset(uint32_t k, uint32_t tag, uint32_t ver)
{
    return (uint32_t)(mix3(ver, k, tag) % 64);
}

int kb_pattern_init(void)
{
    pattern = malloc(KB_VALUE_MAX + 64);
    if (!pattern)
        return -1;
    uint64_t x = 0x6b65656c2d62656eull; /* fixed: every run makes the same bytes */
    for (size_t i = 0; i < KB_VALUE_MAX + 64; i++)
        pattern[i] = (char)('a' + splitmix(&x) % 26);
    kb_pattern = pattern;
    return 0;
}
