/* Bounded channel of fixed-size items (keel/sync.h).
 *
 * A ring of `capacity` items in a caller-provided buffer, plus a FIFO queue
 * of blocked senders (only while the ring is full) and one of blocked
 * receivers (only while it is empty). Hand-off keeps both fair and ordered:
 * a send with a receiver waiting copies the item straight into the
 * receiver's buffer; a receive that frees a slot moves the first blocked
 * sender's item into the ring (it was sent before anything a newcomer could
 * send) and wakes that sender. With capacity 0 every send meets a receive.
 * Close wakes every blocked fiber with -EPIPE; buffered items stay and are
 * drained by later receives.
 */
#include "keel/sync.h"

#include <errno.h>
#include <string.h>

#include "keel/assert.h"

#include "sync_internal.h"

int kl_chan_init(struct kl_chan *ch, void *buf, size_t item_size, size_t capacity)
{
    if (item_size == 0 || (capacity > 0 && buf == NULL) ||
        (capacity > 0 && item_size > SIZE_MAX / capacity))
        return -EINVAL;
    kl_list_init(&ch->senders);
    kl_list_init(&ch->receivers);
    ch->buf = buf;
    ch->item_size = item_size;
    ch->capacity = capacity;
    ch->head = 0;
    ch->count = 0;
    ch->closed = false;
    return 0;
}

static unsigned char *slot(const struct kl_chan *ch, size_t i)
{
    return ch->buf + ((ch->head + i) % ch->capacity) * ch->item_size;
}

static void ring_push(struct kl_chan *ch, const void *item)
{
    KL_ASSERT(ch->count < ch->capacity, "push into a full ring");
    memcpy(slot(ch, ch->count), item, ch->item_size);
    ch->count++;
}

static void ring_pop(struct kl_chan *ch, void *item)
{
    KL_ASSERT(ch->count > 0, "pop from an empty ring");
    memcpy(item, slot(ch, 0), ch->item_size);
    ch->head = (ch->head + 1) % ch->capacity;
    ch->count--;
}

/* Send without blocking: 0, -EAGAIN or -EPIPE. */
static int chan_put(struct kl_chan *ch, const void *item)
{
    if (ch->closed)
        return -EPIPE;
    struct kl_sync_waiter *r = kl_sync__first_live(&ch->receivers);
    if (r != NULL) {
        KL_ASSERT(ch->count == 0 && kl_list_empty(&ch->senders),
                  "receivers wait on a non-empty channel");
        memcpy(r->dst, item, ch->item_size);
        kl_sync__grant(r, 0);
        return 0;
    }
    if (ch->count == ch->capacity)
        return -EAGAIN;
    KL_ASSERT(kl_list_empty(&ch->senders), "senders wait on a channel with room");
    ring_push(ch, item);
    return 0;
}

/* Receive without blocking: 0, -EAGAIN or -EPIPE. */
static int chan_take(struct kl_chan *ch, void *item)
{
    struct kl_sync_waiter *s;
    if (ch->count > 0) {
        ring_pop(ch, item);
        s = kl_sync__first_live(&ch->senders);
        if (s != NULL) { /* the oldest blocked send takes the freed slot */
            ring_push(ch, s->src);
            kl_sync__grant(s, 0);
        }
        return 0;
    }
    s = kl_sync__first_live(&ch->senders);
    if (s != NULL) { /* unbuffered: straight from the sender */
        KL_ASSERT(ch->capacity == 0, "senders wait on a channel with room");
        memcpy(item, s->src, ch->item_size);
        kl_sync__grant(s, 0);
        return 0;
    }
    return ch->closed ? -EPIPE : -EAGAIN;
}

int kl_chan_try_send(struct kl_chan *ch, const void *item) { return chan_put(ch, item); }

int kl_chan_send(struct kl_chan *ch, const void *item, uint64_t timeout_ns)
{
    int rc = chan_put(ch, item);
    if (rc != -EAGAIN)
        return rc;
    struct kl_sync_waiter w;
    kl_sync__waiter_init(&w, "kl_chan_send()");
    w.src = item;
    return kl_sync__wait(&ch->senders, &w, "channel send", timeout_ns);
}

int kl_chan_try_recv(struct kl_chan *ch, void *item) { return chan_take(ch, item); }

int kl_chan_recv(struct kl_chan *ch, void *item, uint64_t timeout_ns)
{
    int rc = chan_take(ch, item);
    if (rc != -EAGAIN)
        return rc;
    struct kl_sync_waiter w;
    kl_sync__waiter_init(&w, "kl_chan_recv()");
    w.dst = item;
    return kl_sync__wait(&ch->receivers, &w, "channel receive", timeout_ns);
}

void kl_chan_close(struct kl_chan *ch)
{
    ch->closed = true;
    kl_sync__grant_all(&ch->senders, -EPIPE);
    KL_ASSERT(kl_list_empty(&ch->receivers) || ch->count == 0, "receivers wait on a full ring");
    kl_sync__grant_all(&ch->receivers, -EPIPE);
}
