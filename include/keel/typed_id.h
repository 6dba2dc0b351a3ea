/* keel/typed_id.h: integer-like identifiers that do not mix.
 *
 * KL_TYPED_ID(disk_id, uint32_t) declares `disk_id`, a one-member struct
 * around a uint32_t. Being a distinct struct type, a disk_id cannot be passed
 * where a node_id is expected, assigned to one, or added to anything: each is
 * a compile error. The generated functions are the only way in and out:
 *
 *   disk_id d = disk_id_from(7);        raw -> id, range-checked (asserts)
 *   int rc = disk_id_try_from(v, &d);   raw -> id, 0 or -ERANGE (outside input)
 *   uint32_t r = disk_id_raw(d);        id -> raw
 *   disk_id_eq(a, b), disk_id_cmp(a, b), disk_id_next(d)
 *
 * Conversions take __int128, which holds every value of every standard integer
 * type, so the range check is exact for signed and unsigned bases alike.
 */
#ifndef KEEL_TYPED_ID_H
#define KEEL_TYPED_ID_H

#include <errno.h>
#include <stdbool.h>

#include "keel/assert.h"

/* True when `v` is representable in `base_type`. */
#define KL_FITS_IN(base_type, v) ((__int128)(base_type)(v) == (__int128)(v))

#define KL_TYPED_ID(name, base_type)                                                               \
    typedef struct name {                                                                          \
        base_type value;                                                                           \
    } name;                                                                                        \
    /* The id with raw value `v`; `v` must fit base_type. */                                       \
    static inline __attribute__((unused)) name name##_from(__int128 v)                             \
    {                                                                                              \
        KL_ASSERT(KL_FITS_IN(base_type, v), #name " out of range of " #base_type ": %lld",         \
                  (long long)v);                                                                   \
        return (name){(base_type)v};                                                               \
    }                                                                                              \
    /* Store the id with raw value `v` in *out; -ERANGE when it does not fit. */                   \
    static inline __attribute__((unused)) int name##_try_from(__int128 v, name *out)               \
    {                                                                                              \
        if (!KL_FITS_IN(base_type, v))                                                             \
            return -ERANGE;                                                                        \
        *out = (name){(base_type)v};                                                               \
        return 0;                                                                                  \
    }                                                                                              \
    /* The raw value. */                                                                           \
    static inline __attribute__((unused)) base_type name##_raw(name id) { return id.value; }       \
    static inline __attribute__((unused)) bool name##_eq(name a, name b)                           \
    {                                                                                              \
        return a.value == b.value;                                                                 \
    }                                                                                              \
    /* -1, 0 or 1, as for qsort. */                                                                \
    static inline __attribute__((unused)) int name##_cmp(name a, name b)                           \
    {                                                                                              \
        return (a.value > b.value) - (a.value < b.value);                                          \
    }                                                                                              \
    /* The id after `id`; asserts on overflow. */                                                  \
    static inline __attribute__((unused)) name name##_next(name id)                                \
    {                                                                                              \
        return name##_from((__int128)id.value + 1);                                                \
    }                                                                                              \
    typedef int name##_typed_id_end_ /* swallows the caller's semicolon */

#endif /* KEEL_TYPED_ID_H */
