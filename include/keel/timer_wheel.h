/* keel/timer_wheel.h: a cascaded (hierarchical) timer wheel.
 *
 * Time is cut into ticks of a resolution fixed at init (1 ms by default). The
 * wheel has 4 levels of 256 bins; a level-L bin spans 256^L ticks, so with
 * 1 ms ticks the levels reach 256 ms, 65.5 s, 4.66 h and 49.7 days. A timer
 * goes to the level of the highest 8-bit digit in which its expiry tick
 * differs from the wheel's current tick, in the bin named by that digit, and
 * to an overflow list when it differs above bit 32. So every timer of level
 * L expires before every timer of level L+1, and when the current tick enters
 * a higher-level bin's span, that bin is "cascaded": its timers move down to
 * the levels (and bins) they now belong to. A 256-bit occupancy bitmap per
 * level, scanned with ctz, finds the next busy bin, so advancing across a long
 * idle gap costs a few word operations, not one step per tick.
 *
 * Timers are intrusive and owned by the caller. A bin is a head pointer and
 * its timers a doubly-linked chain through next/pprev (pprev points at the
 * pointer that points at the timer), so insert (at the chain's front) and
 * cancel are O(1), an empty bin is a NULL head, and the wheel never
 * allocates. While armed a timer records its wheel's id and its list, which
 * is how cancel finds the bin and asserts that the timer is its own. Nothing
 * is thread-safe: a wheel and its timers belong to one thread (one reactor).
 *
 * Guarantees. A timer with deadline D (ns) fires in the first
 * kl_timer_wheel_advance(now) call with now >= D rounded up to the
 * resolution. So it never fires before D, and an advance() with
 * now >= D + resolution always fires it: at most one tick late relative to
 * the time given to advance(). Within one advance() call timers fire in order
 * of expiry tick (timers of one tick in no specified order), except that
 * timers armed for an already processed tick fire first, in arming order.
 * Callbacks run from advance() and may insert, cancel or re-arm any timer of
 * the wheel, themselves included. A timer armed (from a callback or not) for
 * a tick that has already been processed fires in the next advance() call,
 * so a callback that re-arms itself for "now" cannot live-lock the loop.
 * A recurring timer is re-armed, before its callback runs, for the first
 * deadline first + k * period that is later than the advance() time: it
 * fires at most once per advance() call, skips the periods it missed and
 * keeps its phase. Cancelling it from its callback stops it. Deadlines beyond
 * KL_TIMER_DEADLINE_MAX are clamped to it (about 146 years of uptime).
 *
 * Costs. insert and cancel: O(1), no division (a reciprocal multiply).
 * advance(): O(1) per event (a tick with timers to fire, or a bin to
 * cascade) plus O(1) per timer fired or moved; a timer moves down at most
 * once per level. next_deadline(): O(1) from a cache in the usual case; after
 * the earliest timer fires or is cancelled, one bitmap scan, plus one walk of
 * a single bin when the earliest timer is not within the current 256 ticks.
 */
#ifndef KEEL_TIMER_WHEEL_H
#define KEEL_TIMER_WHEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KL_TIMER_WHEEL_LEVELS         4
#define KL_TIMER_WHEEL_BINS           256                            /* per level */
#define KL_TIMER_WHEEL_DEFAULT_RES    1000000u                       /* 1 ms, in ns */
#define KL_TIMER_WHEEL_RESOLUTION_MAX (UINT64_C(3600) * 1000000000u) /* 1 hour */
#define KL_TIMER_DEADLINE_MAX         (UINT64_C(1) << 62) /* ns; later deadlines are clamped */

struct kl_timer;

/* A timer's callback; `timer` is no longer armed unless it is recurring. */
typedef void (*kl_timer_fn)(struct kl_timer *timer, void *arg);

struct kl_timer {
    struct kl_timer *next;   /* the next in its list, while armed */
    struct kl_timer **pprev; /* the pointer to this timer while armed; NULL while not */
    uint32_t wheel_id;       /* the wheel that holds it, while armed */
    uint32_t list;           /* its list in that wheel, while armed */
    uint64_t tick;           /* expiry: deadline rounded up to a tick */
    uint64_t deadline;       /* ns */
    uint64_t period;         /* ns; 0 for a one-shot timer */
    kl_timer_fn fn;
    void *arg;
};

/* Lists of the wheel: the bins level by level, then these three. */
#define KL_TIMER_WHEEL_NBINS    (KL_TIMER_WHEEL_LEVELS * KL_TIMER_WHEEL_BINS)
#define KL_TIMER_WHEEL_DUE      KL_TIMER_WHEEL_NBINS /* expired, fire on next advance (FIFO) */
#define KL_TIMER_WHEEL_OVERFLOW (KL_TIMER_WHEEL_NBINS + 1) /* beyond level 3 */
#define KL_TIMER_WHEEL_FIRING   (KL_TIMER_WHEEL_NBINS + 2) /* due ones advance() is firing */
#define KL_TIMER_WHEEL_NLISTS   (KL_TIMER_WHEEL_NBINS + 3)

struct kl_timer_wheel {
    uint64_t cur;        /* the last tick processed: its timers have fired */
    uint64_t now;        /* ns: the latest time given to init or advance */
    uint64_t resolution; /* ns per tick */
    uint64_t magic;      /* tick = ((ns * magic) >> 64) >> magic_shift, or ns >> magic_shift */
    unsigned magic_shift;
    uint32_t id;     /* nonzero, unique per init: what armed timers record */
    bool pow2;       /* resolution is a power of two: a plain shift */
    bool advancing;  /* inside advance(): it is not reentrant */
    bool next_valid; /* next_tick is the exact earliest expiry */
    uint64_t next_tick;
    uint64_t overflow_floor; /* no overflow timer expires before this tick */
    size_t pending;
    uint64_t occupied[KL_TIMER_WHEEL_LEVELS][KL_TIMER_WHEEL_BINS / 64];  /* busy bins */
    uint64_t min_stale[KL_TIMER_WHEEL_LEVELS][KL_TIMER_WHEEL_BINS / 64]; /* bin_min inexact */
    uint64_t bin_min[KL_TIMER_WHEEL_NBINS]; /* no timer of the bin expires before this tick */
    struct kl_timer *lists[KL_TIMER_WHEEL_NLISTS]; /* heads; NULL when empty */
    struct kl_timer **due_tail;                    /* where the due list's next timer goes */
};

/* Prepare a timer (unarmed) that will call fn(timer, arg). */
static inline void kl_timer_init(struct kl_timer *timer, kl_timer_fn fn, void *arg)
{
    *timer = (struct kl_timer){.fn = fn, .arg = arg};
}

/* True while the timer is armed in some wheel (O(1)). */
static inline bool kl_timer_armed(const struct kl_timer *timer) { return timer->pprev != NULL; }

/* The timer's current deadline in ns (meaningful while armed). */
static inline uint64_t kl_timer_deadline(const struct kl_timer *timer) { return timer->deadline; }

/* Initialise an empty wheel with ticks of `resolution_ns` at time `now_ns`;
 * 0, or -EINVAL for a resolution of 0 or above KL_TIMER_WHEEL_RESOLUTION_MAX.
 * A wheel that has timers armed must be destroyed first: init gives the wheel
 * a new id, and timers armed before belong to no wheel after it. */
int kl_timer_wheel_init(struct kl_timer_wheel *wheel, uint64_t resolution_ns, uint64_t now_ns);

/* Disarm every pending timer (without calling it); the wheel is then empty. */
void kl_timer_wheel_destroy(struct kl_timer_wheel *wheel);

/* Arm an unarmed timer for `deadline_ns`, recurring every `period_ns` if not 0. */
void kl_timer_wheel_insert(struct kl_timer_wheel *wheel, struct kl_timer *timer,
                           uint64_t deadline_ns, uint64_t period_ns);

/* Disarm the timer; 0, or -ENOENT if it was not armed. */
int kl_timer_wheel_cancel(struct kl_timer_wheel *wheel, struct kl_timer *timer);

/* Cancel the timer if it is armed, then insert it anew. */
void kl_timer_wheel_rearm(struct kl_timer_wheel *wheel, struct kl_timer *timer,
                          uint64_t deadline_ns, uint64_t period_ns);

/* Fire every timer due at `now_ns` (see the guarantees above); returns how many fired. */
size_t kl_timer_wheel_advance(struct kl_timer_wheel *wheel, uint64_t now_ns);

/* The time (ns) from which advance() fires the earliest pending timer (its
 * deadline rounded up to the resolution), or UINT64_MAX when none is pending. */
uint64_t kl_timer_wheel_next_deadline(struct kl_timer_wheel *wheel);

/* Number of armed timers. */
static inline size_t kl_timer_wheel_pending(const struct kl_timer_wheel *wheel)
{
    return wheel->pending;
}

/* The latest time (ns) given to init or advance; callbacks use it as "now". */
static inline uint64_t kl_timer_wheel_now(const struct kl_timer_wheel *wheel) { return wheel->now; }

/* The wheel's resolution (ns per tick). */
static inline uint64_t kl_timer_wheel_resolution(const struct kl_timer_wheel *wheel)
{
    return wheel->resolution;
}

#endif /* KEEL_TIMER_WHEEL_H */
