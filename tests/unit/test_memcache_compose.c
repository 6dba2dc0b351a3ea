/* test_memcache_compose.c: replies, byte for byte as memcached 1.6.18 sent
 * them for the same requests (recorded with nc), and the bounded writers. */
#include <errno.h>
#include <string.h>

#include "kt.h"
#include "mc_kit.h"

static struct kl_mc_cmd parse_one(const char *in)
{
    struct kl_mc_cmd cmd;
    enum kl_mc_status st = kl_mc_parse(mc_kit_config(), in, strlen(in), &cmd);
    if (st != KL_MC_CMD)
        kt_fail(__FILE__, __LINE__, "\"%s\" did not parse", in);
    return cmd;
}

/* Compose a meta header for request `in` and compare with `want`. */
static void meta_is(const char *in, const char *code, const struct kl_mc_item_info *info,
                    uint32_t vlen, const char *want)
{
    struct kl_mc_cmd cmd = parse_one(in);
    char buf[256];
    int n = kl_mc_meta_header(buf, sizeof(buf), code, &cmd, info, vlen);
    KT_REQUIRE(n > 0);
    buf[n] = 0;
    KT_EQ_STR(buf, want);
}

KT_TEST(compose_meta_replies_as_memcached)
{
    struct kl_mc_item_info it = {
        .cas = 9, .flags = 0, .size = 5, .ttl = -1, .last_access = 1, .hit_before = true};
    meta_is("mg k v t f c s k O123 h l\r\n", "VA", &it, 5, "VA 5 t-1 f0 c9 s5 kk O123 h1 l1\r\n");
    meta_is("mg missing k O1 v t\r\n", "EN", NULL, 0, "EN kmissing O1\r\n");
    meta_is("mg k\r\n", "HD", &it, 0, "HD\r\n");
    meta_is("mg k v q k\r\n", "VA", &it, 5, "VA 5 kk\r\n");
    meta_is("mg a2V5 b k v\r\n", "EN", NULL, 0, "EN ka2V5 b\r\n");
    struct kl_mc_item_info won = {.cas = 11, .ttl = 30, .win = true};
    meta_is("mg nk N30 v c t\r\n", "VA", &won, 0, "VA 0 c11 t30 W\r\n");
    struct kl_mc_item_info z = {.cas = 11, .ttl = 30, .already_won = true};
    meta_is("mg nk N30 v c t\r\n", "VA", &z, 0, "VA 0 c11 t30 Z\r\n");
    meta_is("mg k O k\r\n", "HD", &z, 0, "HD O kk Z\r\n");
    struct kl_mc_item_info st = {.cas = 13};
    meta_is("ms a2V5 2 b k c\r\nhi\r\n", "HD", &st, 0, "HD ka2V5 b c13\r\n");
    struct kl_mc_item_info ma = {.cas = 41, .ttl = -1};
    meta_is("ma n D2 MD v c t k O7\r\n", "VA", &ma, 1, "VA 1 c41 t-1 kn O7\r\n");
    meta_is("md zz k\r\n", "NF", NULL, 0, "NF kzz\r\n");
    struct kl_mc_item_info stale = {.stale = true, .win = true};
    meta_is("mg k\r\n", "HD", &stale, 0, "HD X W\r\n"); /* memcached 1.6.18's bytes */
    struct kl_mc_item_info stale_won = {.stale = true, .already_won = true};
    meta_is("mg k\r\n", "HD", &stale_won, 0, "HD Z X\r\n");
}

KT_TEST(compose_value_iov_borrows_the_value)
{
    char hdr[64];
    struct iovec iov[3];
    static const char value[] = "hello";
    struct kl_mc_str key = {"k", 1};
    KT_EQ_I(kl_mc_value_iov(iov, hdr, sizeof(hdr), key, 0, value, 5, false, 0), 3);
    KT_EQ_U(iov[0].iov_len, 13);
    KT_CHECK(memcmp(iov[0].iov_base, "VALUE k 0 5\r\n", 13) == 0);
    KT_EQ_PTR(iov[1].iov_base, value);
    KT_EQ_U(iov[1].iov_len, 5);
    KT_CHECK(iov[2].iov_len == 2 && memcmp(iov[2].iov_base, "\r\n", 2) == 0);
    KT_EQ_I(kl_mc_value_iov(iov, hdr, sizeof(hdr), key, 7, value, 5, true, 5), 3);
    KT_CHECK(iov[0].iov_len == 15 && memcmp(iov[0].iov_base, "VALUE k 7 5 5\r\n", 15) == 0);
    struct kl_mc_cmd cmd = parse_one("mg k v f\r\n");
    struct kl_mc_item_info it = {.flags = 3};
    KT_EQ_I(kl_mc_meta_value_iov(iov, hdr, sizeof(hdr), &cmd, &it, value, 5), 3);
    KT_CHECK(iov[0].iov_len == 9 && memcmp(iov[0].iov_base, "VA 5 f3\r\n", 9) == 0);
    KT_EQ_PTR(iov[1].iov_base, value);
}

KT_TEST(compose_lines)
{
    char buf[128];
    KT_EQ_I(kl_mc_number(buf, sizeof(buf), 18446744073709551615ull), 22);
    KT_CHECK(memcmp(buf, "18446744073709551615\r\n", 22) == 0);
    KT_EQ_I(kl_mc_version(buf, sizeof(buf), "1.6.18"), 16);
    KT_CHECK(memcmp(buf, "VERSION 1.6.18\r\n", 16) == 0);
    KT_EQ_I(kl_mc_stat(buf, sizeof(buf), "pid", "42"), 13);
    KT_CHECK(memcmp(buf, "STAT pid 42\r\n", 13) == 0);
    KT_EQ_I(kl_mc_stat_u64(buf, sizeof(buf), "curr_items", 0), 19);
    KT_CHECK(memcmp(buf, "STAT curr_items 0\r\n", 19) == 0);
    KT_EQ_I(kl_mc_error_line(buf, sizeof(buf), "SERVER_ERROR", "out of memory"), 28);
    KT_CHECK(memcmp(buf, "SERVER_ERROR out of memory\r\n", 28) == 0);
    struct kl_mc_str s = kl_mc_line(KL_MC_R_NOT_STORED);
    KT_CHECK(s.len == 12 && memcmp(s.p, "NOT_STORED\r\n", 12) == 0);
    s = kl_mc_line(KL_MC_R_EN);
    KT_CHECK(s.len == 4 && memcmp(s.p, "EN\r\n", 4) == 0);
}

KT_TEST(compose_never_writes_past_the_buffer)
{
    char buf[40];
    struct kl_mc_str key = {"abcdefghijklmnopqrstuvwxyz", 26};
    for (size_t cap = 0; cap < 36; cap++) {
        memset(buf, '#', sizeof(buf));
        int n = kl_mc_value_header(buf, cap, key, 1, 2, true, 3);
        /* "VALUE " 6 + 26 + " 1 2 3\r\n" 8 = 40 */
        KT_EQ_I(n, -ENOSPC);
        for (size_t i = cap; i < sizeof(buf); i++)
            KT_REQUIRE(buf[i] == '#');
    }
    KT_EQ_I(kl_mc_value_header(buf, 40, key, 1, 2, true, 3), 40);
    struct kl_mc_cmd cmd = parse_one("mg k v t f c s k O123 h l\r\n");
    struct kl_mc_item_info it = {.ttl = -1};
    for (size_t cap = 0; cap < 20; cap++) {
        memset(buf, '#', sizeof(buf));
        KT_EQ_I(kl_mc_meta_header(buf, cap, "VA", &cmd, &it, 5), -ENOSPC);
        for (size_t i = cap; i < sizeof(buf); i++)
            KT_REQUIRE(buf[i] == '#');
    }
}

KT_TEST(compose_commands_without_keys_or_flags)
{
    /* next_key on a command without keys, meta_header on mn: nothing, no fault */
    struct kl_mc_cmd cmd = parse_one("version\r\n");
    size_t pos = 0;
    struct kl_mc_str k;
    KT_EQ_I(kl_mc_next_key(&cmd, &pos, &k), 0);
    cmd = parse_one("mn\r\n");
    char buf[16];
    KT_EQ_I(kl_mc_meta_header(buf, sizeof(buf), "MN", &cmd, NULL, 0), 4);
    KT_CHECK(memcmp(buf, "MN\r\n", 4) == 0);
}
