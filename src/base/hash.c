/* Key hashing (keel/hash.h): a thin wrapper over libxxhash's XXH3, so that
 * the rest of keel depends on one name and the choice can change in one place.
 */
#include "keel/hash.h"

#include <xxhash.h>

uint64_t kl_hash64(const void *data, size_t len, uint64_t seed)
{
    return XXH3_64bits_withSeed(data, len, seed);
}
