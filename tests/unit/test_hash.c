/* Tests for keel/hash.h: deterministic, seed-sensitive, matches XXH3, and
 * spreads similar keys. */
#include "keel/hash.h"

#include <xxhash.h>

#include "kt.h"

KT_TEST(hash_matches_xxh3)
{
    const char *keys[] = {"", "a", "user:1000", "a somewhat longer key that crosses 16 bytes"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        size_t len = strlen(keys[i]);
        KT_EQ_U(kl_hash64(keys[i], len, 0), XXH3_64bits_withSeed(keys[i], len, 0));
        KT_EQ_U(kl_hash64(keys[i], len, 99), XXH3_64bits_withSeed(keys[i], len, 99));
    }
    /* XXH3 of the empty input with seed 0: the reference value in xxhash's docs */
    KT_EQ_U(kl_hash64("", 0, 0), UINT64_C(0x2D06800538D394C2));
}

KT_TEST(hash_seed_and_key_matter)
{
    KT_CHECK(kl_hash64("key", 3, 1) != kl_hash64("key", 3, 2));
    KT_CHECK(kl_hash64("key1", 4, 0) != kl_hash64("key2", 4, 0));
}

KT_TEST(hash_spreads_sequential_keys)
{
    /* 64k sequential keys into 256 buckets: every bucket near 256. */
    unsigned counts[256] = {0};
    char key[32];
    for (int i = 0; i < 65536; i++) {
        int n = snprintf(key, sizeof key, "key:%d", i);
        counts[kl_hash64(key, (size_t)n, 0) & 255]++;
    }
    for (int b = 0; b < 256; b++)
        KT_CHECK(counts[b] > 160 && counts[b] < 360);
}
