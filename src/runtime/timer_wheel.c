/* The cascaded timer wheel (keel/timer_wheel.h).
 *
 * Placement: a timer of expiry tick T goes to level L = the highest byte in
 * which T and the current tick `cur` differ, bin = byte L of T. So every bin
 * at or below cur's own byte of its level is empty, and the next tick at which
 * anything happens is found by one masked ctz per level: the first busy bin of
 * level 0 (a tick that fires), or else the start of the first busy bin of the
 * lowest busy level above (a tick at which that bin cascades down). advance()
 * jumps from one such event tick to the next and never visits an idle tick.
 *
 * Ticks come from nanoseconds through a multiply-high by a precomputed
 * reciprocal (exact for every input below 2^63, see tick_floor), because a
 * 64-bit division would be the costliest step of an insert.
 *
 * The overflow list is cascaded when the current tick enters the span of 2^32
 * ticks that holds its earliest timer (a lower bound of it is kept on insert),
 * so a long jump costs one pass over the list per span that holds a timer.
 *
 * next_deadline() keeps the earliest expiry tick in a cache that inserts lower
 * and that is dropped when the earliest timer leaves the wheel. Recomputing it
 * is one bitmap scan: a level-0 bin holds a single tick, and every other bin
 * keeps a lower bound of its ticks, exact unless the timer that set it has
 * left the bin (then one walk of that bin makes it exact again).
 */
#include "keel/timer_wheel.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>

#include "keel/assert.h"

#define BIN_BITS 8
#define BIN_MASK (KL_TIMER_WHEEL_BINS - 1)
#define WORDS    (KL_TIMER_WHEEL_BINS / 64)
#define SPAN_ALL (BIN_BITS * KL_TIMER_WHEEL_LEVELS) /* 32: ticks beyond go to overflow */

/* ---- ticks ------------------------------------------------------------- */

/* floor(ns / resolution) for ns < 2^63. With s = ceil(log2 d) and
 * m = floor(2^(63+s) / d) + 1, m * d = 2^(63+s) + e with 0 < e <= d, so
 * ns * m / 2^(63+s) = ns / d + ns * e / (d * 2^(63+s)) and the second term is
 * below 1/d when ns < 2^63: too small to reach the next integer. As d is not
 * a power of two, d >= 3 and s >= 2, so the shift is the high word of the
 * product shifted by s - 1: a plain shift, not a 128-bit one. */
static inline uint64_t tick_floor(const struct kl_timer_wheel *w, uint64_t ns)
{
    if (w->pow2)
        return ns >> w->magic_shift;
    return (uint64_t)(((unsigned __int128)ns * w->magic) >> 64) >> w->magic_shift;
}

/* ceil(ns / resolution); ns <= KL_TIMER_DEADLINE_MAX keeps the sum below 2^63. */
static inline uint64_t tick_ceil(const struct kl_timer_wheel *w, uint64_t ns)
{
    return tick_floor(w, ns + w->resolution - 1);
}

int kl_timer_wheel_init(struct kl_timer_wheel *w, uint64_t resolution_ns, uint64_t now_ns)
{
    if (resolution_ns == 0 || resolution_ns > KL_TIMER_WHEEL_RESOLUTION_MAX)
        return -EINVAL;
    *w = (struct kl_timer_wheel){0};
    w->resolution = resolution_ns;
    if ((resolution_ns & (resolution_ns - 1)) == 0) {
        w->pow2 = true;
        w->magic_shift = (unsigned)__builtin_ctzll(resolution_ns);
    } else {
        unsigned s = 64 - (unsigned)__builtin_clzll(resolution_ns); /* 2^(s-1) < d < 2^s */
        w->magic = (uint64_t)(((unsigned __int128)1 << (63 + s)) / resolution_ns) + 1;
        w->magic_shift = s - 1; /* 63 + s = 64 + (s - 1) */
    }
    if (now_ns > KL_TIMER_DEADLINE_MAX)
        now_ns = KL_TIMER_DEADLINE_MAX;
    w->now = now_ns;
    w->cur = tick_floor(w, now_ns);
    w->overflow_floor = UINT64_MAX;
    static atomic_uint_fast32_t last_id;
    do
        w->id = (uint32_t)atomic_fetch_add_explicit(&last_id, 1, memory_order_relaxed) + 1;
    while (w->id == 0);
    w->due_tail = &w->lists[KL_TIMER_WHEEL_DUE];
    for (size_t i = 0; i < KL_TIMER_WHEEL_NBINS; i++)
        w->bin_min[i] = UINT64_MAX;
    return 0;
}

/* ---- lists ------------------------------------------------------------- */

/* Link an unarmed timer at the front of a list (the due list has its own). */
static inline void link_front(struct kl_timer_wheel *w, struct kl_timer *t, size_t list)
{
    struct kl_timer **head = &w->lists[list];
    t->next = *head;
    if (t->next)
        t->next->pprev = &t->next;
    *head = t;
    t->pprev = head;
    t->wheel_id = w->id;
    t->list = (uint32_t)list;
}

/* Link an unarmed timer at the back of the due list, which keeps arming order. */
static inline void link_due(struct kl_timer_wheel *w, struct kl_timer *t)
{
    t->next = NULL;
    t->pprev = w->due_tail;
    *w->due_tail = t;
    w->due_tail = &t->next;
    t->wheel_id = w->id;
    t->list = KL_TIMER_WHEEL_DUE;
}

/* Take an armed timer out of its list. Only stores reach the neighbours: a
 * cancelled timer's neighbours are often cold, and a store miss waits in the
 * store buffer while a load miss (say, asserting *t->pprev == t) stalls the
 * core (see docs/BENCHMARKS.md, "Timer wheel", for what that costs). */
static inline void unlink_timer(struct kl_timer_wheel *w, struct kl_timer *t)
{
    *t->pprev = t->next;
    if (t->next)
        t->next->pprev = t->pprev;
    else if (t->list == KL_TIMER_WHEEL_DUE)
        w->due_tail = t->pprev;
    t->pprev = NULL;
}

/* ---- bins and bitmaps -------------------------------------------------- */

/* Only writes a bit that is clear: most inserts find their bin busy, and an
 * unconditional read-modify-write would chain consecutive inserts into the
 * same bitmap word through store forwarding. */
static inline void mark_busy(struct kl_timer_wheel *w, unsigned level, unsigned bin)
{
    uint64_t *word = &w->occupied[level][bin / 64], bit = UINT64_C(1) << (bin % 64);
    if (!(*word & bit))
        *word |= bit;
}

/* The bin is empty now. */
static inline void mark_idle(struct kl_timer_wheel *w, unsigned level, unsigned bin)
{
    w->occupied[level][bin / 64] &= ~(UINT64_C(1) << (bin % 64));
    w->min_stale[level][bin / 64] &= ~(UINT64_C(1) << (bin % 64));
    w->bin_min[level * KL_TIMER_WHEEL_BINS + bin] = UINT64_MAX;
}

static uint64_t min_tick(const struct kl_timer *chain, uint64_t min)
{
    for (const struct kl_timer *t = chain; t; t = t->next)
        if (t->tick < min)
            min = t->tick;
    return min;
}

/* The earliest tick of a busy bin: its bound, made exact by a walk if stale. */
static uint64_t bin_earliest(struct kl_timer_wheel *w, unsigned level, unsigned bin)
{
    size_t index = level * KL_TIMER_WHEEL_BINS + bin;
    uint64_t bit = UINT64_C(1) << (bin % 64);
    if (w->min_stale[level][bin / 64] & bit) {
        w->bin_min[index] = min_tick(w->lists[index], UINT64_MAX);
        w->min_stale[level][bin / 64] &= ~bit;
    }
    return w->bin_min[index];
}

/* The first busy bin of `level` above `after`, or -1. */
static inline int first_busy_after(const struct kl_timer_wheel *w, unsigned level, unsigned after)
{
    unsigned from = after + 1;
    if (from >= KL_TIMER_WHEEL_BINS)
        return -1;
    unsigned i = from / 64;
    uint64_t word = w->occupied[level][i] & (~UINT64_C(0) << (from % 64));
    for (;;) {
        if (word)
            return (int)(i * 64 + (unsigned)__builtin_ctzll(word));
        if (++i == WORDS)
            return -1;
        word = w->occupied[level][i];
    }
}

/* Link a timer whose tick is > cur (or == cur while cascading: `cascading`
 * lets it into cur's own level-0 bin, which advance() is about to fire). */
static inline void place(struct kl_timer_wheel *w, struct kl_timer *t, bool cascading)
{
    uint64_t tick = t->tick, cur = w->cur;
    if (tick < cur || (tick == cur && !cascading)) {
        link_due(w, t);
        return;
    }
    uint64_t diff = tick ^ cur;
    unsigned level = diff ? (63 - (unsigned)__builtin_clzll(diff)) / BIN_BITS : 0;
    if (level >= KL_TIMER_WHEEL_LEVELS) {
        if (tick < w->overflow_floor)
            w->overflow_floor = tick;
        link_front(w, t, KL_TIMER_WHEEL_OVERFLOW);
        return;
    }
    unsigned bin = (unsigned)(tick >> (level * BIN_BITS)) & BIN_MASK;
    size_t index = level * KL_TIMER_WHEEL_BINS + bin;
    mark_busy(w, level, bin);
    if (tick < w->bin_min[index])
        w->bin_min[index] = tick;
    link_front(w, t, index);
}

/* Unlink an armed timer of this wheel and account for it. */
static inline void detach(struct kl_timer_wheel *w, struct kl_timer *t)
{
    unlink_timer(w, t);
    size_t index = t->list;
    if (index < KL_TIMER_WHEEL_NBINS) {
        unsigned level = (unsigned)(index / KL_TIMER_WHEEL_BINS), bin = (unsigned)index & BIN_MASK;
        if (w->lists[index] == NULL)
            mark_idle(w, level, bin);
        else if (t->tick == w->bin_min[index])
            w->min_stale[level][bin / 64] |= UINT64_C(1) << (bin % 64);
    }
    KL_ASSERT(w->pending > 0, "timer wheel pending count underflow");
    w->pending--;
    if (t->tick == w->next_tick)
        w->next_valid = false;
}

static inline bool owned_by(const struct kl_timer_wheel *w, const struct kl_timer *t)
{
    return t->wheel_id == w->id;
}

void kl_timer_wheel_destroy(struct kl_timer_wheel *w)
{
    KL_ASSERT(!w->advancing, "timer wheel destroyed from one of its callbacks");
    for (size_t i = 0; i < KL_TIMER_WHEEL_NLISTS; i++) {
        for (struct kl_timer *t = w->lists[i]; t; t = t->next)
            t->pprev = NULL;
        w->lists[i] = NULL;
    }
    w->due_tail = &w->lists[KL_TIMER_WHEEL_DUE];
    for (unsigned l = 0; l < KL_TIMER_WHEEL_LEVELS; l++)
        for (unsigned bin = 0; bin < KL_TIMER_WHEEL_BINS; bin++)
            mark_idle(w, l, bin);
    w->pending = 0;
    w->next_valid = false;
    w->overflow_floor = UINT64_MAX;
}

/* ---- insert and cancel ------------------------------------------------- */

static inline void arm(struct kl_timer_wheel *w, struct kl_timer *t, uint64_t deadline)
{
    if (deadline > KL_TIMER_DEADLINE_MAX)
        deadline = KL_TIMER_DEADLINE_MAX;
    t->deadline = deadline;
    t->tick = tick_ceil(w, deadline);
    place(w, t, false);
    w->pending++;
    if (w->next_valid && t->tick < w->next_tick)
        w->next_tick = t->tick;
}

void kl_timer_wheel_insert(struct kl_timer_wheel *w, struct kl_timer *t, uint64_t deadline_ns,
                           uint64_t period_ns)
{
    KL_ASSERT(t->pprev == NULL, "timer %p is already armed (deadline %" PRIu64 " ns)", (void *)t,
              t->deadline);
    KL_ASSERT(t->fn != NULL, "timer %p has no callback", (void *)t);
    t->period = period_ns;
    arm(w, t, deadline_ns);
}

int kl_timer_wheel_cancel(struct kl_timer_wheel *w, struct kl_timer *t)
{
    if (t->pprev == NULL)
        return -ENOENT;
    KL_ASSERT(owned_by(w, t),
              "timer %p is armed in another wheel (or in this one before it was re-initialised)",
              (void *)t);
    detach(w, t);
    return 0;
}

void kl_timer_wheel_rearm(struct kl_timer_wheel *w, struct kl_timer *t, uint64_t deadline_ns,
                          uint64_t period_ns)
{
    kl_timer_wheel_cancel(w, t);
    kl_timer_wheel_insert(w, t, deadline_ns, period_ns);
}

/* ---- advance ----------------------------------------------------------- */

/* Call a detached timer; a recurring one is re-armed first, past `now`. */
static void fire(struct kl_timer_wheel *w, struct kl_timer *t)
{
    if (t->period) {
        uint64_t next;
        if (__builtin_add_overflow(t->deadline, t->period, &next))
            next = KL_TIMER_DEADLINE_MAX;
        if (next <= w->now) { /* missed periods: skip them, keep the phase */
            uint64_t skip = (w->now - t->deadline) / t->period + 1;
            if (__builtin_mul_overflow(skip, t->period, &next) ||
                __builtin_add_overflow(next, t->deadline, &next))
                next = KL_TIMER_DEADLINE_MAX;
        }
        arm(w, t, next);
    }
    t->fn(t, t->arg);
}

/* Fire every timer of one list (callbacks add none to it). */
static size_t fire_list(struct kl_timer_wheel *w, size_t list)
{
    size_t fired = 0;
    struct kl_timer *t;
    while ((t = w->lists[list]) != NULL) {
        detach(w, t);
        fire(w, t);
        fired++;
    }
    return fired;
}

/* Move every timer of one list to where it belongs relative to cur. The
 * chain is taken whole first: overflow timers may go back to the overflow. */
static void cascade(struct kl_timer_wheel *w, size_t list)
{
    struct kl_timer *t = w->lists[list];
    w->lists[list] = NULL;
    while (t) {
        struct kl_timer *next = t->next;
        KL_ASSERT(t->tick >= w->cur, "cascaded timer %p is overdue", (void *)t);
        t->pprev = NULL;
        place(w, t, true);
        t = next;
    }
}

/* The next tick after cur at which a timer fires or a bin cascades, with the
 * level of that event in *level (KL_TIMER_WHEEL_LEVELS: the overflow list). */
static uint64_t next_event(const struct kl_timer_wheel *w, unsigned *level)
{
    uint64_t cur = w->cur;
    for (unsigned l = 0; l < KL_TIMER_WHEEL_LEVELS; l++) {
        unsigned shift = l * BIN_BITS;
        int bin = first_busy_after(w, l, (unsigned)(cur >> shift) & BIN_MASK);
        if (bin >= 0) {
            *level = l;
            return (cur >> (shift + BIN_BITS) << (shift + BIN_BITS)) | ((uint64_t)bin << shift);
        }
    }
    /* The levels are empty: go to the span of 2^32 ticks that holds the
     * earliest overflow timer (or to the next span, if the floor is stale). */
    *level = KL_TIMER_WHEEL_LEVELS;
    if (w->lists[KL_TIMER_WHEEL_OVERFLOW] == NULL)
        return UINT64_MAX;
    uint64_t next_span = ((cur >> SPAN_ALL) + 1) << SPAN_ALL;
    uint64_t floor_span = w->overflow_floor >> SPAN_ALL << SPAN_ALL;
    return floor_span > next_span ? floor_span : next_span;
}

size_t kl_timer_wheel_advance(struct kl_timer_wheel *w, uint64_t now_ns)
{
    KL_ASSERT(!w->advancing, "kl_timer_wheel_advance called from a timer callback");
    w->advancing = true;
    if (now_ns > KL_TIMER_DEADLINE_MAX)
        now_ns = KL_TIMER_DEADLINE_MAX;
    if (now_ns > w->now)
        w->now = now_ns;
    uint64_t target = tick_floor(w, w->now);

    /* Timers armed for a processed tick. They move to a list of their own
     * first, so that the ones their callbacks arm wait for the next call: the
     * chain moves at once, then a walk retags each timer's list (they are
     * about to fire, so the walk costs no more than their firing). */
    KL_ASSERT(w->lists[KL_TIMER_WHEEL_FIRING] == NULL, "timers left from an earlier advance");
    struct kl_timer *due = w->lists[KL_TIMER_WHEEL_DUE];
    if (due) {
        w->lists[KL_TIMER_WHEEL_FIRING] = due;
        due->pprev = &w->lists[KL_TIMER_WHEEL_FIRING];
        for (struct kl_timer *t = due; t; t = t->next)
            t->list = KL_TIMER_WHEEL_FIRING;
        w->lists[KL_TIMER_WHEEL_DUE] = NULL;
        w->due_tail = &w->lists[KL_TIMER_WHEEL_DUE];
    }
    size_t fired = fire_list(w, KL_TIMER_WHEEL_FIRING);

    for (;;) {
        unsigned level;
        uint64_t tick = next_event(w, &level);
        if (tick > target)
            break;
        w->cur = tick;
        if (level == KL_TIMER_WHEEL_LEVELS) {
            w->overflow_floor = UINT64_MAX; /* recomputed as the timers are placed again */
            cascade(w, KL_TIMER_WHEEL_OVERFLOW);
        } else if (level > 0) {
            unsigned bin = (unsigned)(tick >> (level * BIN_BITS)) & BIN_MASK;
            mark_idle(w, level, bin);
            cascade(w, level * KL_TIMER_WHEEL_BINS + bin);
        }
        unsigned bin0 = (unsigned)tick & BIN_MASK;
        fired += fire_list(w, bin0);
        mark_idle(w, 0, bin0);
    }
    if (target > w->cur)
        w->cur = target;
    w->advancing = false;
    return fired;
}

/* ---- next deadline ----------------------------------------------------- */

static uint64_t earliest_tick(struct kl_timer_wheel *w)
{
    if (w->pending == 0)
        return UINT64_MAX;
    /* Due timers, and (from a callback) the rest of the timers being fired,
     * have ticks <= cur, below every tick in the wheel. */
    uint64_t cur = w->cur;
    uint64_t min = min_tick(w->lists[KL_TIMER_WHEEL_DUE], UINT64_MAX);
    min = min_tick(w->lists[KL_TIMER_WHEEL_FIRING], min);
    if (w->lists[cur & BIN_MASK] != NULL && cur < min)
        min = cur;
    if (min != UINT64_MAX)
        return min;
    for (unsigned l = 0; l < KL_TIMER_WHEEL_LEVELS; l++) {
        unsigned shift = l * BIN_BITS;
        int bin = first_busy_after(w, l, (unsigned)(cur >> shift) & BIN_MASK);
        if (bin < 0)
            continue;
        if (l == 0) /* a level-0 bin holds one tick */
            return (cur & ~(uint64_t)BIN_MASK) | (unsigned)bin;
        return bin_earliest(w, l, (unsigned)bin);
    }
    return min_tick(w->lists[KL_TIMER_WHEEL_OVERFLOW], UINT64_MAX);
}

uint64_t kl_timer_wheel_next_deadline(struct kl_timer_wheel *w)
{
    if (!w->next_valid) {
        w->next_tick = earliest_tick(w);
        w->next_valid = true;
    }
    if (w->next_tick == UINT64_MAX)
        return UINT64_MAX;
    return w->next_tick * w->resolution;
}
