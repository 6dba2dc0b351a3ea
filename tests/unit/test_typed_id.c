/* Tests for keel/typed_id.h: conversions, range checks and comparisons.
 * That ids do not mix is checked at compile time by typed_id_mix.c. */
#include "keel/typed_id.h"

#include <stdint.h>

#include "kt.h"

KL_TYPED_ID(disk_id, uint16_t);
KL_TYPED_ID(slot_id, int8_t);
KL_TYPED_ID(big_id, uint64_t);

KT_TEST(typed_id_round_trip)
{
    disk_id d = disk_id_from(42);
    KT_EQ_U(disk_id_raw(d), 42);
    KT_CHECK(disk_id_eq(d, disk_id_from(42)));
    KT_CHECK(!disk_id_eq(d, disk_id_from(43)));
    KT_EQ_I(disk_id_cmp(disk_id_from(1), disk_id_from(2)), -1);
    KT_EQ_I(disk_id_cmp(disk_id_from(2), disk_id_from(2)), 0);
    KT_EQ_I(disk_id_cmp(disk_id_from(3), disk_id_from(2)), 1);
    KT_EQ_U(disk_id_raw(disk_id_next(d)), 43);
    KT_EQ_U(sizeof(disk_id), sizeof(uint16_t));
}

KT_TEST(typed_id_try_from_range)
{
    disk_id d;
    KT_EQ_I(disk_id_try_from(65535, &d), 0);
    KT_EQ_U(disk_id_raw(d), 65535);
    KT_EQ_I(disk_id_try_from(65536, &d), -ERANGE);
    KT_EQ_I(disk_id_try_from(-1, &d), -ERANGE);
    slot_id s;
    KT_EQ_I(slot_id_try_from(-128, &s), 0);
    KT_EQ_I(slot_id_raw(s), -128);
    KT_EQ_I(slot_id_try_from(127, &s), 0);
    KT_EQ_I(slot_id_try_from(128, &s), -ERANGE);
    KT_EQ_I(slot_id_try_from(-129, &s), -ERANGE);
    big_id b;
    KT_EQ_I(big_id_try_from(UINT64_MAX, &b), 0);
    KT_EQ_U(big_id_raw(b), UINT64_MAX);
    KT_EQ_I(big_id_try_from(-1, &b), -ERANGE);
    KT_EQ_I(big_id_try_from((__int128)UINT64_MAX + 1, &b), -ERANGE);
}

KT_DEATH_TEST(typed_id_from_out_of_range_asserts, "disk_id out of range of uint16_t: 70000")
{
    disk_id d = disk_id_from(70000);
    (void)d;
}

KT_DEATH_TEST(typed_id_next_overflow_asserts, "slot_id out of range")
{
    slot_id s = slot_id_next(slot_id_from(127));
    (void)s;
}
