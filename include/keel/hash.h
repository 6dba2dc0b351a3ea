/* keel/hash.h: hashing for keys.
 *
 * keel hashes keys with XXH3 (64-bit) from Debian's libxxhash: fast on short
 * keys, good distribution, and maintained elsewhere.
 */
#ifndef KEEL_HASH_H
#define KEEL_HASH_H

#include <stddef.h>
#include <stdint.h>

/* 64-bit hash of `len` bytes with a seed (XXH3). */
uint64_t kl_hash64(const void *data, size_t len, uint64_t seed);

#endif /* KEEL_HASH_H */
