/* Tests for keel/crc32c.h against published vectors (RFC 3720, B.4, and the
 * common "123456789" check value), and hardware against portable paths on
 * every length and alignment. */
#include "keel/crc32c.h"

#include <stdlib.h>

#include "kt.h"

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

static void check_vectors(crc_fn fn)
{
    uint8_t buf[32];
    KT_EQ_U(fn(0, "123456789", 9), 0xE3069283u);
    memset(buf, 0, 32);
    KT_EQ_U(fn(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xff, 32);
    KT_EQ_U(fn(0, buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    KT_EQ_U(fn(0, buf, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)(31 - i);
    KT_EQ_U(fn(0, buf, 32), 0x113FDB5Cu);
    KT_EQ_U(fn(0, "", 0), 0);
}

KT_TEST(crc32c_portable_vectors) { check_vectors(kl_crc32c_portable); }

KT_TEST(crc32c_dispatch_vectors) { check_vectors(kl_crc32c); }

KT_TEST(crc32c_hw_vectors)
{
    if (!kl_crc32c_hw_available()) {
        kt_fail(__FILE__, __LINE__, "this CPU has no SSE4.2: hardware path untested");
        return;
    }
    check_vectors(kl_crc32c_hw);
}

KT_TEST(crc32c_hw_equals_portable_all_lengths_and_offsets)
{
    if (!kl_crc32c_hw_available())
        return; /* reported by crc32c_hw_vectors */
    static uint8_t buf[1100];
    srand(7);
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)rand();
    for (size_t off = 0; off < 8; off++)
        for (size_t len = 0; len + off <= 1090; len += (len < 64 ? 1 : 37))
            KT_EQ_U(kl_crc32c_hw(0, buf + off, len), kl_crc32c_portable(0, buf + off, len));
}

/* The three-chain path (3 x 256 bytes and more): every length around its
 * rounds' edges, from a zero and from a running CRC, equals the tables'. */
KT_TEST(crc32c_hw_equals_portable_long_buffers)
{
    if (!kl_crc32c_hw_available())
        return; /* reported by crc32c_hw_vectors */
    static uint8_t buf[9000];
    srand(11);
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)rand();
    for (size_t len = 700; len + 3 <= sizeof buf;
         len += (len % 768 < 16 || len % 768 > 752) ? 1 : 61)
        for (size_t off = 0; off < 3; off++) {
            KT_EQ_U(kl_crc32c_hw(0, buf + off, len), kl_crc32c_portable(0, buf + off, len));
            KT_EQ_U(kl_crc32c_hw(0xdeadbeefu, buf + off, len),
                    kl_crc32c_portable(0xdeadbeefu, buf + off, len));
        }
    memset(buf, 0xff, sizeof buf); /* all ones: every table entry's bits in play */
    KT_EQ_U(kl_crc32c_hw(0, buf, sizeof buf), kl_crc32c_portable(0, buf, sizeof buf));
}

KT_TEST(crc32c_chains)
{
    const char *msg = "the quick brown fox jumps over the lazy dog";
    size_t len = strlen(msg);
    uint32_t whole = kl_crc32c(0, msg, len);
    for (size_t cut = 0; cut <= len; cut++) {
        KT_EQ_U(kl_crc32c(kl_crc32c(0, msg, cut), msg + cut, len - cut), whole);
        KT_EQ_U(kl_crc32c_portable(kl_crc32c_portable(0, msg, cut), msg + cut, len - cut), whole);
    }
}
