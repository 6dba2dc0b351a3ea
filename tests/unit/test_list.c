/* Tests for keel/list.h: both list kinds, owners, and the assertions that
 * catch double insertion and removal from the wrong list. */
#include "keel/list.h"

#include "kt.h"

struct item {
    int value;
    struct kl_list_node node;
    struct kl_queue_node qnode;
};

static struct item items[8];

static void reset_items(void)
{
    for (int i = 0; i < 8; i++) {
        items[i].value = i;
        kl_list_node_init(&items[i].node);
        kl_queue_node_init(&items[i].qnode);
    }
}

static int list_values(struct kl_list *l, int *out)
{
    int n = 0;
    kl_list_for_each (it, l)
        out[n++] = kl_container_of(it, struct item, node)->value;
    return n;
}

KT_TEST(list_empty)
{
    struct kl_list l;
    kl_list_init(&l);
    KT_CHECK(kl_list_empty(&l));
    KT_EQ_U(kl_list_len(&l), 0);
    KT_EQ_PTR(kl_list_first(&l), NULL);
    KT_EQ_PTR(kl_list_last(&l), NULL);
    KT_EQ_PTR(kl_list_pop_front(&l), NULL);
    KT_EQ_PTR(kl_list_pop_back(&l), NULL);
}

KT_TEST(list_push_order_and_owner)
{
    reset_items();
    struct kl_list l, other;
    kl_list_init(&l);
    kl_list_init(&other);
    kl_list_push_back(&l, &items[1].node);
    kl_list_push_back(&l, &items[2].node);
    kl_list_push_front(&l, &items[0].node);
    int v[8];
    KT_EQ_I(list_values(&l, v), 3);
    KT_CHECK(v[0] == 0 && v[1] == 1 && v[2] == 2);
    KT_CHECK(kl_list_contains(&l, &items[1].node));
    KT_CHECK(!kl_list_contains(&other, &items[1].node));
    KT_CHECK(!kl_list_node_linked(&items[5].node));
    KT_EQ_PTR(kl_list_owner(&items[2].node), &l);
    KT_EQ_PTR(kl_list_first(&l), &items[0].node);
    KT_EQ_PTR(kl_list_last(&l), &items[2].node);
    KT_EQ_PTR(kl_list_next(&items[0].node), &items[1].node);
    KT_EQ_PTR(kl_list_next(&items[2].node), NULL);
    KT_EQ_PTR(kl_list_prev(&items[0].node), NULL);
    KT_EQ_PTR(kl_list_prev(&items[2].node), &items[1].node);
}

KT_TEST(list_unlink_from_whatever_list)
{
    reset_items();
    struct kl_list a, b;
    kl_list_init(&a);
    kl_list_init(&b);
    kl_list_push_back(&a, &items[0].node);
    kl_list_push_back(&b, &items[1].node);
    kl_list_push_back(&b, &items[2].node);
    kl_list_unlink(&items[1].node); /* no need to know it is in b */
    KT_EQ_U(kl_list_len(&b), 1);
    KT_CHECK(!kl_list_node_linked(&items[1].node));
    KT_EQ_PTR(kl_list_first(&b), &items[2].node);
    /* an unlinked node can move to another list */
    kl_list_push_back(&a, &items[1].node);
    KT_EQ_U(kl_list_len(&a), 2);
    kl_list_remove(&a, &items[0].node);
    KT_EQ_PTR(kl_list_first(&a), &items[1].node);
}

KT_TEST(list_insert_and_pop)
{
    reset_items();
    struct kl_list l;
    kl_list_init(&l);
    kl_list_push_back(&l, &items[0].node);
    kl_list_push_back(&l, &items[3].node);
    kl_list_insert_after(&items[0].node, &items[1].node);
    kl_list_insert_before(&items[3].node, &items[2].node);
    int v[8];
    KT_EQ_I(list_values(&l, v), 4);
    for (int i = 0; i < 4; i++)
        KT_EQ_I(v[i], i);
    KT_EQ_PTR(kl_list_pop_back(&l), &items[3].node);
    KT_EQ_PTR(kl_list_pop_front(&l), &items[0].node);
    KT_EQ_U(kl_list_len(&l), 2);
    KT_CHECK(!kl_list_node_linked(&items[0].node));
}

KT_TEST(list_for_each_safe_removes_all)
{
    reset_items();
    struct kl_list l;
    kl_list_init(&l);
    for (int i = 0; i < 8; i++)
        kl_list_push_back(&l, &items[i].node);
    int seen = 0;
    kl_list_for_each_safe (it, &l) {
        if (kl_container_of(it, struct item, node)->value % 2 == 0)
            kl_list_unlink(it);
        seen++;
    }
    KT_EQ_I(seen, 8);
    KT_EQ_U(kl_list_len(&l), 4);
    int v[8];
    KT_EQ_I(list_values(&l, v), 4);
    KT_CHECK(v[0] == 1 && v[1] == 3 && v[2] == 5 && v[3] == 7);
}

KT_DEATH_TEST(list_double_insert_asserts, "is already in list")
{
    reset_items();
    struct kl_list a, b;
    kl_list_init(&a);
    kl_list_init(&b);
    kl_list_push_back(&a, &items[0].node);
    kl_list_push_back(&b, &items[0].node);
}

KT_DEATH_TEST(list_remove_from_wrong_list_asserts, "is in list")
{
    reset_items();
    struct kl_list a, b;
    kl_list_init(&a);
    kl_list_init(&b);
    kl_list_push_back(&a, &items[0].node);
    kl_list_remove(&b, &items[0].node);
}

KT_DEATH_TEST(list_unlink_unlinked_asserts, "is in no list")
{
    reset_items();
    kl_list_unlink(&items[0].node);
}

KT_TEST(queue_fifo)
{
    reset_items();
    struct kl_queue q;
    kl_queue_init(&q);
    KT_CHECK(kl_queue_empty(&q));
    KT_EQ_PTR(kl_queue_pop_front(&q), NULL);
    for (int i = 0; i < 4; i++)
        kl_queue_push_back(&q, &items[i].qnode);
    kl_queue_push_front(&q, &items[4].qnode);
    KT_EQ_U(kl_queue_len(&q), 5);
    KT_CHECK(kl_queue_contains(&q, &items[2].qnode));
    KT_CHECK(!kl_queue_contains(&q, &items[6].qnode));
    int expect[] = {4, 0, 1, 2, 3};
    for (int i = 0; i < 5; i++) {
        struct kl_queue_node *n = kl_queue_pop_front(&q);
        KT_REQUIRE(n != NULL);
        KT_EQ_I(kl_container_of(n, struct item, qnode)->value, expect[i]);
        KT_CHECK(!kl_queue_node_linked(n));
    }
    KT_CHECK(kl_queue_empty(&q));
    KT_EQ_PTR(q.tail, NULL);
}

KT_TEST(queue_remove_middle_and_tail)
{
    reset_items();
    struct kl_queue q;
    kl_queue_init(&q);
    for (int i = 0; i < 4; i++)
        kl_queue_push_back(&q, &items[i].qnode);
    kl_queue_remove(&q, &items[1].qnode);
    kl_queue_remove(&q, &items[3].qnode);
    KT_EQ_U(kl_queue_len(&q), 2);
    KT_EQ_PTR(q.tail, &items[2].qnode);
    kl_queue_push_back(&q, &items[5].qnode); /* tail must still be right */
    int v[8], n = 0;
    kl_queue_for_each (it, &q)
        v[n++] = kl_container_of(it, struct item, qnode)->value;
    KT_EQ_I(n, 3);
    KT_CHECK(v[0] == 0 && v[1] == 2 && v[2] == 5);
    kl_queue_remove(&q, &items[0].qnode);
    KT_EQ_PTR(kl_queue_peek(&q), &items[2].qnode);
}

KT_DEATH_TEST(queue_double_insert_asserts, "is already in queue")
{
    reset_items();
    struct kl_queue a, b;
    kl_queue_init(&a);
    kl_queue_init(&b);
    kl_queue_push_back(&a, &items[0].qnode);
    kl_queue_push_back(&b, &items[0].qnode);
}
