/* Tests for keel/pool.h: get/put, depletion as an error, reuse, ownership,
 * and the assertions on double put and foreign pointers. */
#include "keel/pool.h"

#include <errno.h>
#include <stdlib.h>

#include "kt.h"

struct obj {
    uint64_t a, b, c;
};

KT_TEST(pool_rejects_bad_sizes)
{
    struct kl_pool p;
    KT_EQ_I(kl_pool_init(&p, "zero", 0, 10), -EINVAL);
    KT_EQ_I(kl_pool_init(&p, "zero", 8, 0), -EINVAL);
    KT_EQ_I(kl_pool_init(&p, "huge", SIZE_MAX / 4, 1000), -EINVAL);
}

KT_TEST(pool_get_until_depleted)
{
    struct kl_pool p;
    KT_REQUIRE(kl_pool_init(&p, "objs", sizeof(struct obj), 100) == 0);
    struct obj *got[100];
    for (int i = 0; i < 100; i++) {
        got[i] = kl_pool_get(&p);
        KT_REQUIRE(got[i] != NULL);
        KT_EQ_U((uintptr_t)got[i] % 16, 0);
        got[i]->a = (uint64_t)i; /* writable, distinct */
        KT_EQ_U(kl_pool_index(&p, got[i]), i);
    }
    KT_EQ_U(kl_pool_in_use(&p), 100);
    KT_EQ_U(kl_pool_available(&p), 0);
    errno = 0;
    KT_EQ_PTR(kl_pool_get(&p), NULL);
    KT_EQ_I(errno, ENOMEM);
    KT_EQ_U(p.depleted, 1);
    for (int i = 0; i < 100; i++)
        KT_EQ_U(got[i]->a, i);
    /* one back, one out again: the same object */
    kl_pool_put(&p, got[37]);
    KT_EQ_U(kl_pool_available(&p), 1);
    KT_EQ_PTR(kl_pool_get(&p), got[37]);
    for (int i = 0; i < 100; i++)
        kl_pool_put(&p, got[i]);
    KT_EQ_U(kl_pool_in_use(&p), 0);
    kl_pool_destroy(&p);
}

KT_TEST(pool_reuse_is_lifo_and_fresh_is_lazy)
{
    struct kl_pool p;
    KT_REQUIRE(kl_pool_init(&p, "lazy", 64, 1u << 20) == 0); /* 64 MiB reserved */
    void *a = kl_pool_get(&p), *b = kl_pool_get(&p);
    KT_EQ_U(p.fresh, 2); /* nothing beyond the two objects was touched */
    kl_pool_put(&p, a);
    kl_pool_put(&p, b);
    KT_EQ_PTR(kl_pool_get(&p), b);
    KT_EQ_PTR(kl_pool_get(&p), a);
    KT_EQ_U(p.fresh, 2);
    kl_pool_destroy(&p);
}

KT_TEST(pool_owns_and_at)
{
    struct kl_pool p;
    KT_REQUIRE(kl_pool_init(&p, "own", 24, 10) == 0);
    void *o = kl_pool_get(&p);
    KT_CHECK(kl_pool_owns(&p, o));
    KT_CHECK(!kl_pool_owns(&p, (char *)o + 1));
    KT_CHECK(!kl_pool_owns(&p, &p));
    KT_EQ_PTR(kl_pool_at(&p, 0), o);
    KT_EQ_U(p.obj_size, 32); /* 24 rounded up to 16 */
    kl_pool_put(&p, o);
    kl_pool_destroy(&p);
}

KT_DEATH_TEST(pool_double_put_asserts, "is already free")
{
    struct kl_pool p;
    kl_pool_init(&p, "twice", 32, 4);
    void *o = kl_pool_get(&p);
    kl_pool_put(&p, o);
    kl_pool_put(&p, o);
}

KT_DEATH_TEST(pool_foreign_put_asserts, "does not own")
{
    struct kl_pool p;
    kl_pool_init(&p, "foreign", 32, 4);
    static char other[32];
    kl_pool_put(&p, other);
}

#if defined(KEEL_SANITIZE)
/* Under ASan a free object is poisoned: touching it is reported. */
KT_DEATH_TEST(pool_use_after_put_is_reported, "use-after-poison")
{
    struct kl_pool p;
    kl_pool_init(&p, "poison", 32, 4);
    struct obj *o = kl_pool_get(&p);
    kl_pool_put(&p, o);
    o->b = 1;
    abort();
}
#endif
