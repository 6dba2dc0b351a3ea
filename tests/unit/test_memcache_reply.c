/* test_memcache_reply.c: the client-side reply parser (keel-bench's).
 *
 * Server streams recorded from memcached 1.6.18 are read back unit by unit,
 * whole and delivered in two pieces at every offset, with the same units.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt.h"
#include "mc_kit.h"

static const char *const type_names[] = {
    [KL_MC_REPLY_VALUE] = "VALUE",
    [KL_MC_REPLY_END] = "END",
    [KL_MC_REPLY_STORED] = "STORED",
    [KL_MC_REPLY_NOT_STORED] = "NOT_STORED",
    [KL_MC_REPLY_EXISTS] = "EXISTS",
    [KL_MC_REPLY_NOT_FOUND] = "NOT_FOUND",
    [KL_MC_REPLY_DELETED] = "DELETED",
    [KL_MC_REPLY_TOUCHED] = "TOUCHED",
    [KL_MC_REPLY_OK] = "OK",
    [KL_MC_REPLY_NUMBER] = "NUMBER",
    [KL_MC_REPLY_STAT] = "STAT",
    [KL_MC_REPLY_VERSION] = "VERSION",
    [KL_MC_REPLY_ERROR] = "ERROR",
    [KL_MC_REPLY_CLIENT_ERROR] = "CLIENT_ERROR",
    [KL_MC_REPLY_SERVER_ERROR] = "SERVER_ERROR",
    [KL_MC_REPLY_HD] = "HD",
    [KL_MC_REPLY_VA] = "VA",
    [KL_MC_REPLY_EN] = "EN",
    [KL_MC_REPLY_NF] = "NF",
    [KL_MC_REPLY_NS] = "NS",
    [KL_MC_REPLY_EX] = "EX",
    [KL_MC_REPLY_MN] = "MN",
    [KL_MC_REPLY_ME] = "ME",
    [KL_MC_REPLY_OTHER] = "OTHER",
};

/* Read the stream delivered in pieces of `first` then the rest; render units. */
static void read_units(const char *in, size_t n, size_t first, char *out, size_t cap)
{
    size_t pos = 0, delivered = first, o = 0;
    out[0] = 0;
    for (;;) {
        size_t avail = delivered - pos;
        char *view = malloc(avail ? avail : 1);
        memcpy(view, in + pos, avail);
        struct kl_mc_reply r;
        int rc = kl_mc_parse_reply(view, avail, &r);
        if (rc == -EAGAIN && delivered < n) {
            free(view);
            delivered = n;
            continue;
        }
        if (rc != 0) {
            if (avail)
                o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? " | " : "",
                                      rc == -EAGAIN ? "AGAIN" : "PROTO");
            free(view);
            return;
        }
        o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? " | " : "", type_names[r.type]);
        if (r.key.len)
            o += (size_t)snprintf(out + o, cap - o, " key=%.*s", (int)r.key.len, r.key.p);
        if (r.value.p)
            o += (size_t)snprintf(out + o, cap - o, " value=%.*s", (int)r.value.len, r.value.p);
        if (r.flags_text.len)
            o += (size_t)snprintf(out + o, cap - o, " [%.*s]", (int)r.flags_text.len,
                                  r.flags_text.p);
        if (r.flags || r.cas)
            o += (size_t)snprintf(out + o, cap - o, " f=%u c=%llu", r.flags,
                                  (unsigned long long)r.cas);
        if (r.type == KL_MC_REPLY_NUMBER)
            o += (size_t)snprintf(out + o, cap - o, " %llu", (unsigned long long)r.number);
        free(view);
        pos += r.consumed;
        if (pos == n)
            return;
    }
}

static void reads_as(const char *in, const char *want)
{
    size_t n = strlen(in);
    char whole[2048], got[2048];
    read_units(in, n, n, whole, sizeof(whole));
    KT_EQ_STR(whole, want);
    for (size_t k = 0; k < n; k++) {
        read_units(in, n, k, got, sizeof(got));
        if (strcmp(got, whole) != 0) {
            kt_fail(__FILE__, __LINE__, "split at %zu: %s", k, got);
            return;
        }
    }
}

KT_TEST(reply_classic)
{
    reads_as("VALUE k 0 5\r\nhello\r\nEND\r\n", "VALUE key=k value=hello | END");
    reads_as("VALUE k 7 5 12\r\nhe\r\nl\r\nEND\r\n", "VALUE key=k value=he\r\nl f=7 c=12 | END");
    reads_as("STORED\r\nNOT_STORED\r\nEXISTS\r\nNOT_FOUND\r\nDELETED\r\nTOUCHED\r\nOK\r\n",
             "STORED | NOT_STORED | EXISTS | NOT_FOUND | DELETED | TOUCHED | OK");
    reads_as("9\r\n18446744073709551615\r\n", "NUMBER 9 | NUMBER 18446744073709551615");
    reads_as("STAT pid 4242\r\nSTAT version 1.6.18\r\nEND\r\n",
             "STAT key=pid value=4242 | STAT key=version value=1.6.18 | END");
    reads_as("VERSION 1.6.18\r\n", "VERSION value=1.6.18");
    reads_as("ERROR\r\nCLIENT_ERROR bad data chunk\r\nSERVER_ERROR object too large for cache\r\n",
             "ERROR | CLIENT_ERROR value=bad data chunk | SERVER_ERROR value=object too large "
             "for cache");
    reads_as("RESET\r\n", "OTHER value=RESET");
}

KT_TEST(reply_meta)
{
    reads_as("VA 5 t-1 f0 c9 s5 kk O123 h1 l1\r\nhello\r\n",
             "VA value=hello [t-1 f0 c9 s5 kk O123 h1 l1]");
    reads_as("HD\r\nEN\r\nNF\r\nNS\r\nEX\r\nMN\r\n", "HD | EN | NF | NS | EX | MN");
    reads_as("HD ka2V5 b c13\r\nEN kmissing O1\r\n", "HD [ka2V5 b c13] | EN [kmissing O1]");
    reads_as("VA 0 c11 t30 W\r\n\r\n", "VA value= [c11 t30 W]");
    reads_as("ME k exp=-1 la=3 cas=10 fetch=yes cls=1 size=60\r\n",
             "ME [k exp=-1 la=3 cas=10 fetch=yes cls=1 size=60]");
}

KT_TEST(reply_incomplete_and_malformed)
{
    struct kl_mc_reply r;
    KT_EQ_I(kl_mc_parse_reply("VALUE k 0 5\r\nhel", 16, &r), -EAGAIN);
    KT_EQ_U(r.need, 4);
    KT_EQ_I(kl_mc_parse_reply("STORED", 6, &r), -EAGAIN);
    KT_EQ_I(kl_mc_parse_reply("VALUE k x 5\r\n", 13, &r), -EPROTO);
    KT_EQ_I(kl_mc_parse_reply("VALUE k 0 1\r\nxyz", 16, &r), -EPROTO);
    KT_EQ_I(kl_mc_parse_reply("VA x\r\n", 6, &r), -EPROTO);
}
