/* test_memcache_meta.c: mg ms md ma mn me, with every flag.
 *
 * Expected results are memcached 1.6.18's answers to the same bytes (its
 * error texts differ per command: mg and ms name the fault, md and ma say
 * "invalid or duplicate flag"); E, and x for md, are master's and accepted as
 * master documents them. An ms with bad flags swallows its data block, one
 * with a bad length cannot. Each case also runs split at every byte.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt.h"
#include "mc_kit.h"

static const struct mc_case mg[] = {
    {"mg k\r\n", "mg key=k"},
    {"mg k v t f c s k O123 h l\r\n", "mg key=k has=Ocfhklstv O=123"},
    {"mg k  v   t\r\n", "mg key=k has=tv"},
    {"mg k v \r\n", "mg key=k has=v"},
    {" mg k v\n", "mg key=k has=v"},
    {"mg missing q\r\n", "mg noreply key=missing has=q"},
    {"mg k vt\r\n", "mg key=k has=v"},
    {"mg k u\r\n", "mg key=k has=u"},
    {"mg k O\r\n", "mg key=k has=O"},
    {"mg k Oaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
     "mg key=k has=O O=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
    {"mg k T-1 v\r\n", "mg key=k exp=-1 has=Tv"},
    {"mg k T30 N60 R10\r\n", "mg key=k exp=1700000030 has=NRT N=1700000060 R=10"},
    {"mg k N0\r\n", "mg key=k has=N"},
    {"mg k C5 E9\r\n", "mg key=k cas=5 has=CE E=9"},
    {"mg k P L\r\n", "mg key=k has=LP"},
    {"mg k Pfoo Lbar\r\n", "mg key=k has=LP"},
    {"mg k M1\r\n", "mg key=k has=M mode=1"},
    {"mg k I\r\n", "mg key=k has=I"},
    {"mg a2V5 b k v\r\n", "mg b64 key=a2V5 has=bkv"},
    {"mg k s s s s s s s s s s s s s s s s s\r\n", "ERR CLIENT_ERROR duplicate flag"},
    {"mg k v t f c s k h l u O1 q T100 P L R10 N10 I\r\n",
     "mg noreply key=k exp=1700000100 has=ILNOPRTcfhklqstuv O=1 N=1700000010 R=10"},
    {"mg k v t f c s k h l u O1 q T100 P L R10 N10 I C1\r\n",
     "ERR CLIENT_ERROR options flags are too long"},
    {"mg\r\n", "ERR ERROR"},
    {"mgx k v\r\n", "ERR ERROR"},
    {"MG k v\r\n", "ERR ERROR"},
    {"mg k zz\r\n", "ERR CLIENT_ERROR invalid flag"},
    {"mg k !\r\n", "ERR CLIENT_ERROR invalid flag"},
    {"mg k x\r\n", "ERR CLIENT_ERROR invalid flag"},
    {"mg k v v\r\n", "ERR CLIENT_ERROR duplicate flag"},
    {"mg k P L Lfoo Pbar\r\n", "ERR CLIENT_ERROR duplicate flag"},
    {"mg k Oaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", "ERR CLIENT_ERROR opaque token too long"},
    {"mg k Tabc\r\n", "ERR CLIENT_ERROR bad token in command line format"},
    {"mg k T\r\n", "ERR CLIENT_ERROR bad token in command line format"},
    {"mg k N\r\n", "ERR CLIENT_ERROR bad token in command line format"},
    {"mg k R\r\n", "ERR CLIENT_ERROR bad token in command line format"},
    {"mg k C\r\n", "ERR CLIENT_ERROR bad token in command line format"},
    {"mg k Eabc\r\n", "ERR CLIENT_ERROR bad token in command line format"},
    {"mg k D\r\n", "ERR CLIENT_ERROR invalid numeric delta value"},
    {"mg k J\r\n", "ERR CLIENT_ERROR invalid numeric initial value"},
    {"mg k F\r\n", "ERR CLIENT_ERROR bad command line format"},
    {"mg k M\r\n", "ERR CLIENT_ERROR incorrect length for M token"},
    {"mg a2V5= b k v\r\n", "ERR CLIENT_ERROR error decoding key"},
    {"mg !!! b k v\r\n", "ERR CLIENT_ERROR error decoding key"},
    {"mg k v q\r\nmg k q Tabc\r\nmn\r\n",
     "mg noreply key=k has=qv | ERR CLIENT_ERROR bad token in command line format | mn"},
    {"mg k v", "MORE"},
};

static const struct mc_case ms[] = {
    {"ms k 2\r\nhi\r\n", "ms key=k value=hi mode=S"},
    {"ms k 2 T0 F5 c k s O9\r\nhi\r\n", "ms key=k flags=5 value=hi has=FOTcks O=9 mode=S"},
    {"ms k 2 T30\r\nhi\r\n", "ms key=k exp=1700000030 value=hi has=T mode=S"},
    {"ms a2V5 2 b k c\r\nhi\r\n", "ms b64 key=a2V5 value=hi has=bck mode=S"},
    {"ms k 2 q\r\nhi\r\nmn\r\n", "ms noreply key=k value=hi has=q mode=S | mn"},
    {"ms k 2 MS\r\nhi\r\n", "ms key=k value=hi has=M mode=S"},
    {"ms k 2 ME\r\nhi\r\n", "ms key=k value=hi has=M mode=E"},
    {"ms k 2 MA N30\r\nhi\r\n", "ms key=k value=hi has=MN mode=A N=1700000030"},
    {"ms k 2 MP\r\nhi\r\n", "ms key=k value=hi has=M mode=P"},
    {"ms k 2 MR\r\nhi\r\n", "ms key=k value=hi has=M mode=R"},
    {"ms k 2 I C5 E9\r\nhi\r\n", "ms key=k cas=5 value=hi has=CEI mode=S E=9"},
    {"ms k 2 v t f\r\nhi\r\n", "ms key=k value=hi has=ftv mode=S"},
    {"ms k 0\r\n\r\n", "ms key=k value= mode=S"},
    {"ms k 2 T0 T0 T0 T0 T0 T0 T0 T0 T0 T0 T0 T0 T0 T0 T0 T0\r\nhi\r\n",
     "ERR CLIENT_ERROR duplicate flag"},
    {"ms k 2 T0 T0 T0 T0 T0 T0 T0 T0 T0 T0 T0 T0 T0 T0 T0 T0 T0\r\nhi\r\n",
     "ERR CLIENT_ERROR options flags too long | ERR ERROR"},
    /* flag errors swallow the data block */
    {"ms k 2 MX\r\nhi\r\nmn\r\n", "ERR CLIENT_ERROR invalid mode for ms M token | mn"},
    {"ms k 2 Ms\r\nhi\r\n", "ERR CLIENT_ERROR invalid mode for ms M token"},
    {"ms k 2 q MX\r\nhi\r\n", "ERR CLIENT_ERROR invalid mode for ms M token"},
    {"ms k 2 M\r\nhi\r\n", "ERR CLIENT_ERROR incorrect length for M token"},
    {"ms k 2 MAB\r\nhi\r\n", "ERR CLIENT_ERROR incorrect length for M token"},
    {"ms k 2 z\r\nhi\r\nmn\r\n", "ERR CLIENT_ERROR invalid flag | mn"},
    {"ms k 2 S2\r\nhi\r\n", "ERR CLIENT_ERROR invalid flag"},
    {"ms k 2 Fabc\r\nhi\r\n", "ERR CLIENT_ERROR bad command line format"},
    {"ms k 2 Tfoo\r\nhi\r\n", "ERR CLIENT_ERROR bad token in command line format"},
    {"ms k 2 T1 T2\r\nhi\r\n", "ERR CLIENT_ERROR duplicate flag"},
    {"ms k 2 Oab Oc\r\nhi\r\n", "ERR CLIENT_ERROR duplicate flag"},
    {"ms k 2 Oaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\nhi\r\n",
     "ERR CLIENT_ERROR opaque token too long"},
    {"ms k 2 b\r\nhi\r\n", "ERR CLIENT_ERROR error decoding key"},
    {"ms k 2 z\r\nh", "ERR CLIENT_ERROR invalid flag | SKIP 3"},
    /* a bad length cannot be swallowed: the data reads as a command */
    {"ms k\r\nhi\r\n", "ERR CLIENT_ERROR bad command line format | ERR ERROR"},
    {"ms k abc\r\nhi\r\n", "ERR CLIENT_ERROR bad command line format | ERR ERROR"},
    {"ms k -1\r\nhi\r\n", "ERR CLIENT_ERROR bad command line format | ERR ERROR"},
    {"ms\r\n", "ERR ERROR"},
    /* the data block, even with q, is checked */
    {"ms k 2\r\nhiX\r\nmn\r\n", "ERR CLIENT_ERROR bad data chunk | ERR ERROR | mn"},
    {"ms k 2 q\r\nhiX\r\nmn\r\n", "ERR CLIENT_ERROR bad data chunk | ERR ERROR | mn"},
    {"ms k 2\r\nh", "MORE need=3"},
};

static const struct mc_case md_ma_me_mn[] = {
    {"md k\r\n", "md key=k"},
    {"md k q\r\n", "md noreply key=k has=q"},
    {"md k C1 q I T30 x k O5 E7\r\n", "md noreply key=k exp=1700000030 cas=1 has=CEIOTkqx O=5 E=7"},
    {"md a2V5 b k\r\n", "md b64 key=a2V5 has=bk"},
    {"md k s s\r\n", "ERR CLIENT_ERROR invalid or duplicate flag"},
    {"md k C\r\n", "ERR CLIENT_ERROR invalid or duplicate flag"},
    {"md k z\r\n", "ERR CLIENT_ERROR invalid or duplicate flag"},
    {"md zz b\r\n", "ERR CLIENT_ERROR invalid or duplicate flag"},
    {"md k s s s s s s s s s s s s s s s s s\r\n", "ERR CLIENT_ERROR invalid or duplicate flag"},
    {"md k s s s s s s s s s s s s s s s s s s\r\n", "ERR CLIENT_ERROR options flags too long"},
    {"md\r\n", "ERR ERROR"},
    {"ma n\r\n", "ma key=n delta=1 mode=+"},
    {"ma n N0 J5 v\r\n", "ma key=n delta=1 has=JNv mode=+ J=5"},
    {"ma n N30 J5\r\n", "ma key=n delta=1 has=JN mode=+ N=1700000030 J=5"},
    {"ma n D2 MD v c t k O7\r\n", "ma key=n delta=2 has=DMOcktv O=7 mode=-"},
    {"ma n M+ q\r\n", "ma noreply key=n delta=1 has=Mq mode=+"},
    {"ma n M-\r\n", "ma key=n delta=1 has=M mode=-"},
    {"ma n MI\r\n", "ma key=n delta=1 has=M mode=+"},
    {"ma n C9 T10 E3\r\n", "ma key=n exp=1700000010 cas=9 delta=1 has=CET mode=+ E=3"},
    {"ma n D0\r\n", "ma key=n has=D mode=+"},
    {"ma n Md\r\n", "ERR CLIENT_ERROR invalid mode for ma M token"},
    {"ma n M1\r\n", "ERR CLIENT_ERROR invalid mode for ma M token"},
    {"ma n Dabc\r\n", "ERR CLIENT_ERROR invalid or duplicate flag"},
    {"ma n D-1\r\n", "ERR CLIENT_ERROR invalid or duplicate flag"},
    {"ma n M\r\n", "ERR CLIENT_ERROR invalid or duplicate flag"},
    {"ma n x\r\n", "ERR CLIENT_ERROR invalid or duplicate flag"},
    {"ma k s s s s s s s s s s s s s s s s s s\r\n", "ERR CLIENT_ERROR options flags too long"},
    {"ma\r\n", "ERR ERROR"},
    {"me k\r\n", "me key=k"},
    {"me k b1 zz\r\n", "me key=k"},
    {"me a2V5 b\r\n", "me b64 key=a2V5 has=b"},
    {"me n b\r\n", "ERR CLIENT_ERROR bad command line format"},
    {"me\r\n", "ERR CLIENT_ERROR bad command line format"},
    {"me k s s s s s s s s s s s s s s s s s s\r\n", "me key=k"},
    {"mn\r\n", "mn"},
    {"mn foo\r\n", "mn"},
};

KT_TEST(meta_get) { MC_CHECK_TABLE(mg); }

KT_TEST(meta_set) { MC_CHECK_TABLE(ms); }

KT_TEST(meta_delete_arithmetic_debug_noop) { MC_CHECK_TABLE(md_ma_me_mn); }

KT_TEST(meta_key_length)
{
    char in[400];
    const char *cmds[] = {"mg", "md", "ma", "me"};
    for (int i = 0; i < 4; i++) {
        int n = sprintf(in, "%s %0251d v\r\n", cmds[i], 0);
        struct mc_case c = {in, "ERR CLIENT_ERROR bad command line format", (size_t)n};
        mc_check(&c);
    }
    int n = sprintf(in, "ms %0251d 2\r\nhi\r\n", 0);
    struct mc_case c = {in, "ERR CLIENT_ERROR bad command line format | ERR ERROR", (size_t)n};
    mc_check(&c);
}

KT_TEST(meta_set_too_large_is_swallowed)
{
    size_t vlen = 2000000;
    char *in = malloc(vlen + 64);
    const char *lines[] = {"ms k 2000000 T1\r\n", "ms k 2000000 q\r\n"};
    for (int i = 0; i < 2; i++) {
        size_t h = strlen(lines[i]);
        memcpy(in, lines[i], h);
        memset(in + h, 'x', vlen);
        memcpy(in + h + vlen, "\r\nmn\r\n", 6);
        struct mc_case c = {in, "ERR SERVER_ERROR object too large for cache | mn", h + vlen + 6,
                            true};
        mc_check(&c);
    }
    size_t h = strlen("ms k 2000000 zz\r\n");
    memcpy(in, "ms k 2000000 zz\r\n", h);
    struct mc_case c = {in, "ERR CLIENT_ERROR invalid flag | mn", h + vlen + 6, true};
    memset(in + h, 'x', vlen);
    memcpy(in + h + vlen, "\r\nmn\r\n", 6);
    mc_check(&c);
    free(in);
}

KT_TEST(meta_flags_view_keeps_order)
{
    const struct kl_mc_config *cfg = mc_kit_config();
    const char in[] = "mg key s v Oab t\r\n";
    struct kl_mc_cmd cmd;
    KT_REQUIRE(kl_mc_parse(cfg, in, sizeof(in) - 1, &cmd) == KL_MC_CMD);
    KT_EQ_U(cmd.meta.flags.len, 9);
    KT_CHECK(memcmp(cmd.meta.flags.p, "s v Oab t", 9) == 0);
    KT_EQ_PTR(cmd.meta.opaque.p, in + 12);
}

KT_TEST(meta_base64)
{
    char out[64];
    KT_EQ_I(kl_mc_base64_decode("a2V5", 4, out, sizeof(out)), 3);
    KT_CHECK(memcmp(out, "key", 3) == 0);
    KT_EQ_I(kl_mc_base64_decode("AAEC/w==", 8, out, sizeof(out)), 4);
    KT_CHECK(memcmp(out, "\x00\x01\x02\xff", 4) == 0);
    KT_EQ_I(kl_mc_base64_decode("a2V", 3, out, sizeof(out)), -EINVAL);
    KT_EQ_I(kl_mc_base64_decode("a=V5", 4, out, sizeof(out)), -EINVAL);
    KT_EQ_I(kl_mc_base64_decode("a2V5", 4, out, 2), -ENOSPC);
    KT_EQ_I(kl_mc_base64_encode("\x00\x01\x02\xff", 4, out, sizeof(out)), 8);
    KT_CHECK(memcmp(out, "AAEC/w==", 8) == 0);
    KT_EQ_I(kl_mc_base64_encode("key", 3, out, 3), -ENOSPC);
}
