/* test_memcache_retrieval.c: get gets gat gats, and memcached's long lines.
 *
 * Expected results are memcached 1.6.18's answers to the same bytes. A get
 * names any number of keys (500 here), each checked for length; a line with
 * no newline in its first 2048 bytes closes the connection unless it starts
 * as a get or gets (memcached decides this on whatever bytes it has read, so
 * those cases are checked as delivered all at once and as delivered in the
 * pieces memcached would see).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt.h"
#include "mc_kit.h"

static const struct mc_case retrieval[] = {
    {"get k\r\n", "get key=k"},
    {"gets k\r\n", "gets key=k"},
    {"get a b c\r\n", "get keys=3:a,b,c"},
    {"gets  k   k \r\n", "gets keys=2:k,k"},
    {"get k\n", "get key=k"},
    {"get k noreply\r\n", "get keys=2:k,noreply"},
    {"get\r\n", "ERR ERROR"},
    {"get \r\n", "ERR ERROR"},
    {"get\tk\r\n", "ERR ERROR"},
    {"gat 10 k\r\n", "gat key=k exp=1700000010"},
    {"gats 10 k n\r\n", "gats keys=2:k,n exp=1700000010"},
    {"gat 0 k\r\n", "gat key=k"},
    {"gat -1 k\r\n", "gat key=k exp=-1"},
    {"gat 10\r\n", "gat exp=1700000010"},
    {"gat k\r\n", "ERR CLIENT_ERROR invalid exptime argument"},
    {"gat abc k\r\n", "ERR CLIENT_ERROR invalid exptime argument"},
    {"gat abc k noreply\r\n", "ERR CLIENT_ERROR invalid exptime argument"},
    {"gat\r\n", "ERR ERROR"},
    {"get k\r\nget k2\r\n", "get key=k | get key=k2"},
    {"get k", "MORE"},
};

KT_TEST(retrieval_commands) { MC_CHECK_TABLE(retrieval); }

KT_TEST(retrieval_key_length)
{
    /* a key of 250 bytes is fine, 251 is not, wherever it stands */
    char in[600], want[200];
    int n = sprintf(in, "get %0250d\r\n", 0);
    sprintf(want, "get key=%064d...(250)", 0);
    struct mc_case ok = {in, want, (size_t)n};
    mc_check(&ok);
    n = sprintf(in, "get k %0251d k\r\nmn\r\n", 0);
    struct mc_case bad = {in, "ERR CLIENT_ERROR bad command line format | mn", (size_t)n};
    mc_check(&bad);
    n = sprintf(in, "gets %0251d\r\n", 0);
    struct mc_case bad2 = {in, "ERR CLIENT_ERROR bad command line format", (size_t)n};
    mc_check(&bad2);
    n = sprintf(in, "delete %0251d\r\n", 0);
    struct mc_case bad3 = {in, "ERR CLIENT_ERROR bad command line format", (size_t)n};
    mc_check(&bad3);
    n = sprintf(in, "incr %0251d 1\r\n", 0);
    struct mc_case bad4 = {in, "ERR CLIENT_ERROR bad command line format", (size_t)n};
    mc_check(&bad4);
    n = sprintf(in, "touch %0251d 1\r\n", 0);
    struct mc_case bad5 = {in, "ERR CLIENT_ERROR bad command line format", (size_t)n};
    mc_check(&bad5);
}

/* "get k0 k1 ... k<n-1>\r\n" into a fresh buffer. */
static char *many_keys(int n, size_t *len)
{
    char *s = malloc((size_t)n * 8 + 16);
    size_t o = (size_t)sprintf(s, "get");
    for (int i = 0; i < n; i++)
        o += (size_t)sprintf(s + o, " k%d", i);
    o += (size_t)sprintf(s + o, "\r\nmn\r\n");
    *len = o;
    return s;
}

KT_TEST(retrieval_get_of_500_keys)
{
    size_t n;
    char *in = many_keys(500, &n);
    KT_REQUIRE(n > 2048);
    /* every delivery gives the same command: a get may grow past 2048 bytes */
    char *want = malloc(n + 64);
    size_t o = (size_t)sprintf(want, "get keys=500:");
    for (int i = 0; i < 500; i++)
        o += (size_t)sprintf(want + o, "%sk%d", i ? "," : "", i);
    sprintf(want + o, " | mn");
    struct mc_case c = {in, want, n};
    mc_check(&c);
    free(want);
    /* and the keys, walked */
    const struct kl_mc_config *cfg = mc_kit_config();
    struct kl_mc_cmd cmd;
    KT_REQUIRE(kl_mc_parse(cfg, in, n, &cmd) == KL_MC_CMD);
    KT_EQ_U(cmd.nkeys, 500);
    size_t pos = 0, count = 0;
    struct kl_mc_str k, last = {0};
    while (kl_mc_next_key(&cmd, &pos, &k)) {
        last = k;
        count++;
    }
    KT_EQ_U(count, 500);
    KT_CHECK(last.len == 4 && memcmp(last.p, "k499", 4) == 0);
    KT_EQ_U(cmd.consumed, n - 4);
    free(in);
}

KT_TEST(retrieval_long_garbage_line)
{
    /* 3000 bytes of garbage: with its newline, ERROR; without, after 2048
     * bytes, the connection closes (memcached does both, by arrival) */
    size_t n = 3000;
    char *in = malloc(n + 8);
    memset(in, 'x', n);
    memcpy(in + n, "\r\nmn\r\n", 6);
    struct mc_case whole = {in, "ERR ERROR | mn", n + 6, true};
    mc_check(&whole);
    const struct kl_mc_config *cfg = mc_kit_config();
    struct kl_mc_cmd cmd;
    KT_EQ_I(kl_mc_parse(cfg, in, 2048, &cmd), KL_MC_NEED_MORE);
    KT_EQ_I(kl_mc_parse(cfg, in, 2049, &cmd), KL_MC_ERROR);
    KT_CHECK(cmd.close);
    KT_EQ_U(cmd.reply.len, 0);
    /* leading spaces then get: fine up to 100 of them */
    memset(in, ' ', 100);
    memcpy(in + 100, "get ", 4);
    memset(in + 104, 'k', n - 104);
    KT_EQ_I(kl_mc_parse(cfg, in, n, &cmd), KL_MC_NEED_MORE);
    memset(in, ' ', 101);
    memcpy(in + 101, "get ", 4);
    KT_EQ_I(kl_mc_parse(cfg, in, n, &cmd), KL_MC_ERROR);
    KT_CHECK(cmd.close);
    memcpy(in, "gat ", 4);
    KT_EQ_I(kl_mc_parse(cfg, in, n, &cmd), KL_MC_ERROR);
    free(in);
}

KT_TEST(retrieval_keys_view_the_buffer)
{
    const struct kl_mc_config *cfg = mc_kit_config();
    const char in[] = "get alpha beta\r\n";
    struct kl_mc_cmd cmd;
    KT_REQUIRE(kl_mc_parse(cfg, in, sizeof(in) - 1, &cmd) == KL_MC_CMD);
    KT_EQ_PTR(cmd.key.p, in + 4);
    KT_EQ_U(cmd.key.len, 5);
    KT_EQ_PTR(cmd.keys.p, in + 4);
    KT_EQ_U(cmd.keys.len, 10);
}
