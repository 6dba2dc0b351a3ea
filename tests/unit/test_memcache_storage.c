/* test_memcache_storage.c: set add replace append prepend cas, parsed.
 *
 * Each expected result is what memcached 1.6.18 does with the same bytes
 * (checked with nc against /usr/bin/memcached): a malformed line answers
 * CLIENT_ERROR and its data block is then read as a command (ERROR); a bad
 * data chunk consumes exactly <bytes>+2; a too large value is swallowed;
 * noreply hides the error lines. Every case also runs split at every byte.
 */
#include <stdlib.h>
#include <string.h>

#include "kt.h"
#include "mc_kit.h"

static const struct mc_case storage_ok[] = {
    {"set k 0 0 5\r\nhello\r\n", "set key=k value=hello"},
    {"set k 5 10 5\r\nhello\r\n", "set key=k flags=5 exp=1700000010 value=hello"},
    {"add k 1 0 2\r\nhi\r\n", "add key=k flags=1 value=hi"},
    {"replace k 1 0 2\r\nhi\r\n", "replace key=k flags=1 value=hi"},
    {"append k 0 0 2\r\nhi\r\n", "append key=k value=hi"},
    {"prepend k 0 0 2\r\nhi\r\n", "prepend key=k value=hi"},
    {"cas k 0 0 2 77\r\nhi\r\n", "cas key=k cas=77 value=hi"},
    {"cas k 0 0 2 77 noreply\r\nhi\r\n", "cas noreply key=k cas=77 value=hi"},
    {"set k 0 0 5 noreply\r\nhello\r\n", "set noreply key=k value=hello"},
    /* only "noreply" is noreply; another last word is ignored */
    {"set k 0 0 5 foo\r\nhello\r\n", "set key=k value=hello"},
    {"set k 0 0 5 norepl\r\nhello\r\n", "set key=k value=hello"},
    {"set  k  0 0 5\r\nhello\r\n", "set key=k value=hello"},
    {"   set k 0 0 5   \r\nhello\r\n", "set key=k value=hello"},
    {"set k 0 0 5\nhello\r\n", "set key=k value=hello"},
    {"set k 0 0 0\r\n\r\n", "set key=k value="},
    {"set k 0 0 4\r\n\r\n\r\n\r\n", "set key=k value=\\x0d\\x0a\\x0d\\x0a"},
    /* numbers as memcached's strtol/strtoul read them */
    {"set k 4294967295 0 2\r\nhi\r\n", "set key=k flags=4294967295 value=hi"},
    {"set k 4294967297 0 2\r\nhi\r\n", "set key=k flags=1 value=hi"},
    {"set k +1 0 2\r\nhi\r\n", "set key=k flags=1 value=hi"},
    {"set k 0 0 +2\r\nhi\r\n", "set key=k value=hi"},
    {"set k 0 0 02\r\nhi\r\n", "set key=k value=hi"},
    {"set k 0 -5 2\r\nhi\r\n", "set key=k exp=-1 value=hi"},
    {"set k 0 2592000 2\r\nhi\r\n", "set key=k exp=1702592000 value=hi"},
    {"set k 0 2592001 2\r\nhi\r\n", "set key=k exp=-1 value=hi"},
    {"set k 0 2000000000 2\r\nhi\r\n", "set key=k exp=2000000000 value=hi"},
    /* 99999999999 wraps to 1215752191 in 32 bits: an absolute time past */
    {"set k 0 99999999999 2\r\nhi\r\n", "set key=k exp=-1 value=hi"},
    /* keys: length only is checked, as memcached 1.6.18 does */
    {"set a\x01"
     "b 0 0 1\r\nx\r\n",
     "set key=a\\x01b value=x"},
    /* pipelined */
    {"set a 0 0 1\r\n1\r\nset b 0 0 1\r\n2\r\n", "set key=a value=1 | set key=b value=2"},
    /* incomplete */
    {"set k 0 0 5\r\nhel", "MORE need=4"},
    {"set k 0 0 5\r\n", "MORE need=7"},
    {"set k 0 0 5", "MORE"},
};

static const struct mc_case storage_err[] = {
    /* the data chunk must end in \r\n; exactly bytes+2 are consumed */
    {"set k 0 0 5\r\nhelloX\r\nget k\r\n",
     "ERR CLIENT_ERROR bad data chunk | ERR ERROR | get key=k"},
    {"set k 0 0 5\r\nhelloXY\r\nget k\r\n",
     "ERR CLIENT_ERROR bad data chunk | ERR ERROR | get key=k"},
    {"set k 0 0 5 noreply\r\nhelloXY\r\nget k\r\n", "ERR (silent) | ERR ERROR | get key=k"},
    /* 4294967296 wraps to 0 */
    {"set k 0 0 4294967296\r\nhi\r\n", "ERR CLIENT_ERROR bad data chunk | ERR ERROR"},
    /* a malformed line does not swallow its data block */
    {"set k abc 0 5\r\nhello\r\n", "ERR CLIENT_ERROR bad command line format | ERR ERROR"},
    {"set k 0 0 -1\r\nhello\r\n", "ERR CLIENT_ERROR bad command line format | ERR ERROR"},
    {"set k -1 0 2\r\nhi\r\n", "ERR CLIENT_ERROR bad command line format | ERR ERROR"},
    {"set k 0 abc 2\r\nhi\r\n", "ERR CLIENT_ERROR bad command line format | ERR ERROR"},
    {"set k 99999999999999999999 0 2\r\nhi\r\n",
     "ERR CLIENT_ERROR bad command line format | ERR ERROR"},
    {"set k 0 0 2147483646\r\n", "ERR CLIENT_ERROR bad command line format"},
    {"set k abc 0 5 noreply\r\nhello\r\n", "ERR (silent) | ERR ERROR"},
    {"cas k 0 0 2 abc\r\nhi\r\n", "ERR CLIENT_ERROR bad command line format | ERR ERROR"},
    {"cas k 0 0 1 abc noreply\r\nx\r\n", "ERR (silent) | ERR ERROR"},
    /* wrong number of words: ERROR */
    {"set k 0 0\r\n", "ERR ERROR"},
    {"set k 0 0 5 6 7\r\nhello\r\n", "ERR ERROR | ERR ERROR"},
    {"cas k 0 0 2\r\nhi\r\n", "ERR ERROR | ERR ERROR"},
    {"SET k 0 0 5\r\n", "ERR ERROR"},
    {"set\tk 0 0 1\r\nx\r\n", "ERR ERROR | ERR ERROR"},
    /* key of 251 bytes */
    {"set aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     " 0 0 1\r\nx\r\nmn\r\n",
     "ERR CLIENT_ERROR bad command line format | ERR ERROR | mn"},
};

KT_TEST(storage_commands) { MC_CHECK_TABLE(storage_ok); }

KT_TEST(storage_errors) { MC_CHECK_TABLE(storage_err); }

/* Run one case built at run time. */
static void check_built(const char *in, size_t n, const char *want)
{
    struct mc_case c = {in, want, n, false};
    mc_check(&c);
}

KT_TEST(storage_item_size_limit)
{
    /* memcached -I 1m: key "k" takes 1048516 bytes of value, not one more */
    const struct kl_mc_config *cfg = mc_kit_config();
    char line[64];
    struct kl_mc_cmd cmd;
    snprintf(line, sizeof(line), "set k 0 0 1048516\r\n");
    KT_EQ_I(kl_mc_parse(cfg, line, strlen(line), &cmd), KL_MC_NEED_MORE);
    KT_EQ_U(cmd.need, 1048518);
    snprintf(line, sizeof(line), "set k 0 0 1048517\r\n");
    KT_EQ_I(kl_mc_parse(cfg, line, strlen(line), &cmd), KL_MC_ERROR);
    KT_EQ_STR(cmd.reply.p, "SERVER_ERROR object too large for cache\r\n");
    KT_EQ_U(cmd.consumed, strlen(line) + 1048517 + 2);
    KT_CHECK(!cmd.close);
    snprintf(line, sizeof(line), "set kkkkkkkkkk 0 0 1048508\r\n");
    KT_EQ_I(kl_mc_parse(cfg, line, strlen(line), &cmd), KL_MC_ERROR);
    snprintf(line, sizeof(line), "set kkkkkkkkkk 0 0 1048507\r\n");
    KT_EQ_I(kl_mc_parse(cfg, line, strlen(line), &cmd), KL_MC_NEED_MORE);
}

KT_TEST(storage_too_large_is_swallowed)
{
    /* the value, whatever it holds, is dropped; the stream goes on after it */
    size_t vlen = 2000000;
    char *in = malloc(vlen + 64);
    int h = sprintf(in, "set k 0 0 %zu\r\n", vlen);
    memset(in + h, 'x', vlen);
    memcpy(in + h + vlen, "\r\nmn\r\n", 6);
    struct mc_case c = {in, "ERR SERVER_ERROR object too large for cache | mn",
                        (size_t)h + vlen + 6, true};
    mc_check(&c);
    /* in two pieces at a few offsets (every offset would take too long) */
    const struct kl_mc_config *cfg = mc_kit_config();
    struct kl_mc_cmd cmd;
    KT_EQ_I(kl_mc_parse(cfg, in, 5, &cmd), KL_MC_NEED_MORE);
    KT_EQ_I(kl_mc_parse(cfg, in, (size_t)h, &cmd), KL_MC_ERROR);
    KT_EQ_U(cmd.consumed, (size_t)h + vlen + 2);
    /* noreply hides the error, the swallow stays */
    h = sprintf(in, "set k 0 0 %zu noreply\r\n", vlen);
    KT_EQ_I(kl_mc_parse(cfg, in, (size_t)h, &cmd), KL_MC_ERROR);
    KT_EQ_U(cmd.reply.len, 0);
    KT_EQ_U(cmd.consumed, (size_t)h + vlen + 2);
    free(in);
    check_built("set k 0 0 2000000\r\nxx", 21,
                "ERR SERVER_ERROR object too large for cache | SKIP 2000000");
}

KT_TEST(storage_value_views_the_buffer)
{
    const struct kl_mc_config *cfg = mc_kit_config();
    const char in[] = "set key 0 0 5\r\nhello\r\n";
    struct kl_mc_cmd cmd;
    KT_REQUIRE(kl_mc_parse(cfg, in, sizeof(in) - 1, &cmd) == KL_MC_CMD);
    KT_EQ_PTR(cmd.key.p, in + 4);
    KT_EQ_PTR(cmd.value.p, in + 15);
    KT_EQ_U(cmd.consumed, sizeof(in) - 1);
}
