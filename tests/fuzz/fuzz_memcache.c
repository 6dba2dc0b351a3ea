/* fuzz_memcache.c: arbitrary bytes through the memcache parser and composer.
 *
 * libFuzzer entry point (make fuzz builds it with clang's -fsanitize=fuzzer);
 * replay_main.c runs the same function over the seed corpus as a ctest
 * program, so gcc builds exercise it too. For each input it checks:
 *  - every view of a command lies inside the buffer parsed;
 *  - every verdict other than NEED_MORE consumes at least one byte, and a
 *    command never more than the buffer holds (no command from a data block
 *    that has not fully arrived; its value is followed by "\r\n");
 *  - delivering the same bytes in pieces (sizes drawn from the input) gives
 *    the same verdicts, up to memcached's arrival-dependent long-line close;
 *  - a reply composed for every command fits and parses back with the
 *    client-side reply parser.
 * A failed check aborts, which libFuzzer and ctest both report.
 */
#include <keel/memcache.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_memcache: check failed at line %d: %s\n", __LINE__, #c);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define MAX_VERDICTS 4096

struct verdict {
    uint8_t status, type;
    bool close;
    size_t consumed;
    uint32_t reply_len;
};

static bool inside(struct kl_mc_str v, const char *buf, size_t len)
{
    return !v.p || (v.p >= buf && v.p + v.len <= buf + len);
}

/* Read back one composed reply and require it is a whole unit of `type`. */
static void reply_reads_as(const char *p, size_t n, enum kl_mc_reply_type type)
{
    struct kl_mc_reply r;
    CHECK(kl_mc_parse_reply(p, n, &r) == 0);
    CHECK(r.type == type);
    CHECK(r.consumed == n);
}

/* Compose what a server could answer to cmd; check it reads back. */
static void compose_for(const struct kl_mc_cmd *cmd)
{
    static char out[1 << 16];
    static const char value[] = "0123456789";
    struct iovec iov[3];
    struct kl_mc_item_info info = {
        .cas = 7, .flags = cmd->flags, .size = 10, .ttl = -1, .win = true, .stale = true};
    int n;
    switch (cmd->type) {
    case KL_MC_GET:
    case KL_MC_GETS:
    case KL_MC_GAT:
    case KL_MC_GATS: {
        size_t pos = 0;
        struct kl_mc_str key;
        uint32_t count = 0;
        while (kl_mc_next_key(cmd, &pos, &key)) {
            CHECK(key.len > 0 && key.len <= 250);
            n = kl_mc_value_iov(iov, out, sizeof(out) - 16, key, cmd->flags, value, 10,
                                cmd->type == KL_MC_GETS || cmd->type == KL_MC_GATS, 7);
            CHECK(n == 3);
            memcpy(out + iov[0].iov_len, value, 10);
            memcpy(out + iov[0].iov_len + 10, "\r\n", 2);
            reply_reads_as(out, iov[0].iov_len + 12, KL_MC_REPLY_VALUE);
            count++;
        }
        CHECK(count == cmd->nkeys);
        break;
    }
    case KL_MC_MG:
    case KL_MC_MA:
        n = kl_mc_meta_value_iov(iov, out, sizeof(out) - 16, cmd, &info, value, 10);
        CHECK(n == 3);
        memcpy(out + iov[0].iov_len, value, 10);
        memcpy(out + iov[0].iov_len + 10, "\r\n", 2);
        reply_reads_as(out, iov[0].iov_len + 12, KL_MC_REPLY_VA);
        n = kl_mc_meta_header(out, sizeof(out), "EN", cmd, NULL, 0);
        CHECK(n > 0);
        reply_reads_as(out, (size_t)n, KL_MC_REPLY_EN);
        break;
    case KL_MC_MS:
    case KL_MC_MD:
        n = kl_mc_meta_header(out, sizeof(out), "HD", cmd, &info, 0);
        CHECK(n > 0);
        reply_reads_as(out, (size_t)n, KL_MC_REPLY_HD);
        break;
    case KL_MC_INCR:
    case KL_MC_DECR:
        n = kl_mc_number(out, sizeof(out), cmd->delta);
        CHECK(n > 0);
        reply_reads_as(out, (size_t)n, KL_MC_REPLY_NUMBER);
        break;
    case KL_MC_STATS:
        n = kl_mc_stat_u64(out, sizeof(out), "uptime", (uint64_t)cmd->arg.len);
        CHECK(n > 0);
        reply_reads_as(out, (size_t)n, KL_MC_REPLY_STAT);
        break;
    default: {
        struct kl_mc_str s = kl_mc_line(KL_MC_R_STORED);
        reply_reads_as(s.p, s.len, KL_MC_REPLY_STORED);
        break;
    }
    }
}

/* Parse buf[0, len) to the end as one connection would (all bytes at once). */
static size_t run_whole(const struct kl_mc_config *cfg, const char *buf, size_t len,
                        struct verdict *v)
{
    size_t pos = 0, nv = 0;
    while (pos < len && nv < MAX_VERDICTS) {
        struct kl_mc_cmd cmd;
        size_t avail = len - pos;
        enum kl_mc_status st = kl_mc_parse(cfg, buf + pos, avail, &cmd);
        if (st == KL_MC_NEED_MORE)
            break;
        CHECK(cmd.consumed > 0);
        if (st == KL_MC_CMD) {
            const char *b = buf + pos;
            CHECK(cmd.consumed <= avail);
            CHECK(inside(cmd.key, b, cmd.consumed) && inside(cmd.keys, b, cmd.consumed));
            CHECK(inside(cmd.value, b, cmd.consumed) && inside(cmd.arg, b, cmd.consumed));
            if (cmd.type >= KL_MC_MG) {
                CHECK(inside(cmd.meta.flags, b, cmd.consumed));
                CHECK(inside(cmd.meta.opaque, b, cmd.consumed));
            }
            if (cmd.value.p)
                CHECK(cmd.value.p + cmd.value.len + 2 == b + cmd.consumed &&
                      memcmp(cmd.value.p + cmd.value.len, "\r\n", 2) == 0);
            compose_for(&cmd);
        } else {
            CHECK(st == KL_MC_ERROR);
            CHECK(cmd.reply.len == 0 ||
                  (cmd.reply.len >= 2 && memcmp(cmd.reply.p + cmd.reply.len - 2, "\r\n", 2) == 0));
        }
        v[nv++] = (struct verdict){(uint8_t)st, cmd.type, cmd.close, cmd.consumed, cmd.reply.len};
        if (cmd.close || cmd.consumed >= avail)
            break;
        pos += cmd.consumed;
    }
    return nv;
}

/* The same bytes in pieces; each parse sees exactly the unconsumed bytes. */
static void run_pieces(const struct kl_mc_config *cfg, const char *buf, size_t len,
                       const struct verdict *want, size_t nwant)
{
    uint32_t seed = (uint32_t)len * 2654435761u + 1;
    size_t delivered = 0, pos = 0, skip = 0, nv = 0;
    while (delivered < len && nv < nwant) {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        size_t piece = 1 + seed % 64;
        delivered = delivered + piece > len ? len : delivered + piece;
        size_t sk = skip < delivered - pos ? skip : delivered - pos;
        pos += sk;
        skip -= sk;
        while (!skip && nv < nwant) {
            size_t avail = delivered - pos;
            char *view = malloc(avail ? avail : 1);
            memcpy(view, buf + pos, avail);
            struct kl_mc_cmd cmd;
            enum kl_mc_status st = kl_mc_parse(cfg, view, avail, &cmd);
            free(view);
            if (st == KL_MC_NEED_MORE)
                break;
            if (st == KL_MC_ERROR && cmd.close && cmd.reply.len == 0 &&
                !(want[nv].status == KL_MC_ERROR && want[nv].close))
                return; /* memcached's long-line close: depends on arrival */
            if (st != want[nv].status || cmd.consumed != want[nv].consumed)
                fprintf(stderr,
                        "verdict %zu at %zu (+%zu delivered): status %d/%d type %d/%d consumed "
                        "%zu/%zu\n",
                        nv, pos, avail, st, want[nv].status, cmd.type, want[nv].type, cmd.consumed,
                        want[nv].consumed);
            CHECK(st == want[nv].status && cmd.type == want[nv].type);
            CHECK(cmd.consumed == want[nv].consumed && cmd.close == want[nv].close);
            CHECK(cmd.reply.len == want[nv].reply_len);
            nv++;
            if (cmd.close)
                return;
            if (cmd.consumed > avail) {
                skip = cmd.consumed - avail;
                pos = delivered;
            } else {
                pos += cmd.consumed;
            }
        }
    }
    CHECK(nv == nwant);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct verdict v[MAX_VERDICTS];
    struct kl_mc_config cfg;
    kl_mc_config_init(&cfg);
    cfg.now = 1700000000;
    cfg.item_size_max = 4096; /* small, so too-large values happen */
    /* an exact-size copy: a read past the end is an ASan report */
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    size_t nv = run_whole(&cfg, buf, size, v);
    if (size <= 4096) /* the pieces copy the unconsumed bytes per call: keep it quick */
        run_pieces(&cfg, buf, size, v, nv);
    /* the reply parser on the raw bytes as well: it must not misbehave */
    size_t pos = 0;
    for (int i = 0; i < MAX_VERDICTS && pos < size; i++) {
        struct kl_mc_reply r;
        int rc = kl_mc_parse_reply(buf + pos, size - pos, &r);
        if (rc != 0)
            break;
        CHECK(r.consumed > 0 && r.consumed <= size - pos);
        CHECK(inside(r.key, buf + pos, r.consumed) && inside(r.value, buf + pos, r.consumed));
        pos += r.consumed;
    }
    free(buf);
    return 0;
}
