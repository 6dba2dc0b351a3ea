/* keel/list.h: intrusive lists whose nodes know their owner.
 *
 * A node is embedded in the object it links (no allocation) and records the
 * list that holds it. So "is this node in that list" and "remove this node
 * from whatever list holds it" are O(1), and linking a node that is already
 * linked is caught by an assertion instead of silently corrupting two lists.
 *
 * kl_list is circular and doubly linked, with a sentinel head. kl_queue is
 * singly linked (head and tail): cheaper for FIFO use, O(n) removal from the
 * middle. Both keep a count. Neither is thread-safe.
 */
#ifndef KEEL_LIST_H
#define KEEL_LIST_H

#include <stdbool.h>
#include <stddef.h>

#include "keel/assert.h"

/* The object that holds `member` at `ptr`. */
#define kl_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct kl_list;

struct kl_list_node {
    struct kl_list_node *next;
    struct kl_list_node *prev;
    struct kl_list *owner; /* NULL while not linked */
};

struct kl_list {
    struct kl_list_node head; /* sentinel: head.owner is the list itself */
    size_t count;
};

/* A node that is in no list. */
#define KL_LIST_NODE_INIT ((struct kl_list_node){NULL, NULL, NULL})

/* Initialise an empty list. */
static inline void kl_list_init(struct kl_list *list)
{
    list->head.next = &list->head;
    list->head.prev = &list->head;
    list->head.owner = list;
    list->count = 0;
}

/* Initialise a node as unlinked. */
static inline void kl_list_node_init(struct kl_list_node *node) { *node = KL_LIST_NODE_INIT; }

/* True when the list holds no node. */
static inline bool kl_list_empty(const struct kl_list *list) { return list->count == 0; }

/* Number of nodes in the list. */
static inline size_t kl_list_len(const struct kl_list *list) { return list->count; }

/* True when the node is in some list. */
static inline bool kl_list_node_linked(const struct kl_list_node *node)
{
    return node->owner != NULL;
}

/* True when the node is in `list` (O(1)). */
static inline bool kl_list_contains(const struct kl_list *list, const struct kl_list_node *node)
{
    return node->owner == list;
}

/* The list that holds the node, or NULL. */
static inline struct kl_list *kl_list_owner(const struct kl_list_node *node) { return node->owner; }

static inline void kl_list__link(struct kl_list *list, struct kl_list_node *node,
                                 struct kl_list_node *prev, struct kl_list_node *next)
{
    KL_ASSERT(node->owner == NULL, "node %p is already in list %p", (void *)node,
              (void *)node->owner);
    KL_ASSERT(prev->owner == list && next->owner == list, "neighbours not in list %p",
              (void *)list);
    node->prev = prev;
    node->next = next;
    prev->next = node;
    next->prev = node;
    node->owner = list;
    list->count++;
}

/* Insert at the front. */
static inline void kl_list_push_front(struct kl_list *list, struct kl_list_node *node)
{
    kl_list__link(list, node, &list->head, list->head.next);
}

/* Insert at the back. */
static inline void kl_list_push_back(struct kl_list *list, struct kl_list_node *node)
{
    kl_list__link(list, node, list->head.prev, &list->head);
}

/* Insert `node` right after `pos`, which must be linked. */
static inline void kl_list_insert_after(struct kl_list_node *pos, struct kl_list_node *node)
{
    KL_ASSERT(pos->owner != NULL, "insert after an unlinked node");
    kl_list__link(pos->owner, node, pos, pos->next);
}

/* Insert `node` right before `pos`, which must be linked. */
static inline void kl_list_insert_before(struct kl_list_node *pos, struct kl_list_node *node)
{
    KL_ASSERT(pos->owner != NULL, "insert before an unlinked node");
    kl_list__link(pos->owner, node, pos->prev, pos);
}

/* Remove the node from whatever list holds it; it must be linked. */
static inline void kl_list_unlink(struct kl_list_node *node)
{
    struct kl_list *list = node->owner;
    KL_ASSERT(list != NULL, "node %p is in no list", (void *)node);
    KL_ASSERT(node != &list->head, "the sentinel cannot be unlinked");
    KL_ASSERT(list->count > 0);
    node->prev->next = node->next;
    node->next->prev = node->prev;
    list->count--;
    *node = KL_LIST_NODE_INIT;
}

/* Remove the node from `list`, asserting that `list` holds it. */
static inline void kl_list_remove(struct kl_list *list, struct kl_list_node *node)
{
    KL_ASSERT(node->owner == list, "node %p is in list %p, not %p", (void *)node,
              (void *)node->owner, (void *)list);
    kl_list_unlink(node);
}

/* First node, or NULL when empty. */
static inline struct kl_list_node *kl_list_first(const struct kl_list *list)
{
    return list->count ? list->head.next : NULL;
}

/* Last node, or NULL when empty. */
static inline struct kl_list_node *kl_list_last(const struct kl_list *list)
{
    return list->count ? list->head.prev : NULL;
}

/* The node after `node` in its list, or NULL at the end. */
static inline struct kl_list_node *kl_list_next(const struct kl_list_node *node)
{
    KL_ASSERT(node->owner != NULL, "node %p is in no list", (void *)node);
    return node->next == &node->owner->head ? NULL : node->next;
}

/* The node before `node` in its list, or NULL at the start. */
static inline struct kl_list_node *kl_list_prev(const struct kl_list_node *node)
{
    KL_ASSERT(node->owner != NULL, "node %p is in no list", (void *)node);
    return node->prev == &node->owner->head ? NULL : node->prev;
}

/* Remove and return the first node, or NULL when empty. */
static inline struct kl_list_node *kl_list_pop_front(struct kl_list *list)
{
    struct kl_list_node *node = kl_list_first(list);
    if (node)
        kl_list_unlink(node);
    return node;
}

/* Remove and return the last node, or NULL when empty. */
static inline struct kl_list_node *kl_list_pop_back(struct kl_list *list)
{
    struct kl_list_node *node = kl_list_last(list);
    if (node)
        kl_list_unlink(node);
    return node;
}

/* Iterate over the nodes; the body must not unlink `it`. */
#define kl_list_for_each(it, list)                                                                 \
    for (struct kl_list_node *it = (list)->head.next; it != &(list)->head; it = it->next)

/* Iterate over the nodes; the body may unlink `it`. */
#define kl_list_for_each_safe(it, list)                                                            \
    for (struct kl_list_node *it = (list)->head.next, *it##_next = it->next; it != &(list)->head;  \
         it = it##_next, it##_next = it->next)

/* ---- singly-linked queue ---------------------------------------------- */

struct kl_queue;

struct kl_queue_node {
    struct kl_queue_node *next;
    struct kl_queue *owner; /* NULL while not linked */
};

struct kl_queue {
    struct kl_queue_node *head;
    struct kl_queue_node *tail;
    size_t count;
};

#define KL_QUEUE_NODE_INIT ((struct kl_queue_node){NULL, NULL})

/* Initialise an empty queue. */
static inline void kl_queue_init(struct kl_queue *q) { *q = (struct kl_queue){NULL, NULL, 0}; }

/* Initialise a node as unlinked. */
static inline void kl_queue_node_init(struct kl_queue_node *node) { *node = KL_QUEUE_NODE_INIT; }

/* True when the queue holds no node. */
static inline bool kl_queue_empty(const struct kl_queue *q) { return q->count == 0; }

/* Number of nodes in the queue. */
static inline size_t kl_queue_len(const struct kl_queue *q) { return q->count; }

/* True when the node is in `q` (O(1)). */
static inline bool kl_queue_contains(const struct kl_queue *q, const struct kl_queue_node *node)
{
    return node->owner == q;
}

/* True when the node is in some queue. */
static inline bool kl_queue_node_linked(const struct kl_queue_node *node)
{
    return node->owner != NULL;
}

/* Append at the tail. */
static inline void kl_queue_push_back(struct kl_queue *q, struct kl_queue_node *node)
{
    KL_ASSERT(node->owner == NULL, "node %p is already in queue %p", (void *)node,
              (void *)node->owner);
    node->next = NULL;
    node->owner = q;
    if (q->tail)
        q->tail->next = node;
    else
        q->head = node;
    q->tail = node;
    q->count++;
}

/* Insert at the head. */
static inline void kl_queue_push_front(struct kl_queue *q, struct kl_queue_node *node)
{
    KL_ASSERT(node->owner == NULL, "node %p is already in queue %p", (void *)node,
              (void *)node->owner);
    node->next = q->head;
    node->owner = q;
    q->head = node;
    if (!q->tail)
        q->tail = node;
    q->count++;
}

/* The head node, or NULL when empty. */
static inline struct kl_queue_node *kl_queue_peek(const struct kl_queue *q) { return q->head; }

/* Remove and return the head node, or NULL when empty. */
static inline struct kl_queue_node *kl_queue_pop_front(struct kl_queue *q)
{
    struct kl_queue_node *node = q->head;
    if (!node)
        return NULL;
    KL_ASSERT(node->owner == q && q->count > 0);
    q->head = node->next;
    if (!q->head)
        q->tail = NULL;
    q->count--;
    *node = KL_QUEUE_NODE_INIT;
    return node;
}

/* Remove `node` from `q` (O(n)); the node must be in `q`. */
static inline void kl_queue_remove(struct kl_queue *q, struct kl_queue_node *node)
{
    KL_ASSERT(node->owner == q, "node %p is in queue %p, not %p", (void *)node, (void *)node->owner,
              (void *)q);
    struct kl_queue_node **link = &q->head, *prev = NULL;
    while (*link != node) {
        prev = *link;
        link = &(*link)->next;
    }
    *link = node->next;
    if (q->tail == node)
        q->tail = prev;
    q->count--;
    *node = KL_QUEUE_NODE_INIT;
}

/* Iterate over the nodes from head to tail; the body must not remove `it`. */
#define kl_queue_for_each(it, q) for (struct kl_queue_node *it = (q)->head; it; it = it->next)

#endif /* KEEL_LIST_H */
