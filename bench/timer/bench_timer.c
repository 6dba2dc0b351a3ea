/* bench/timer: the cascaded timer wheel (keel/timer_wheel.h) against an
 * indexed binary min-heap written here, measured in one run.
 *
 * The heap is the fair rival: an array of (deadline, timer) pairs whose timers
 * know their position, so cancel is a remove-at-index in O(log n). Timers on
 * both sides are caller-owned structs of 64 bytes with a callback; deadlines
 * are "now + a timeout uniform in 1 ms .. 60 s", like connection and request
 * timeouts; the wheel has its default 1 ms resolution.
 *
 * With N timers already pending (1k, 100k, 1M), per operation:
 *   insert+cancel   a window of W = 1024 timers in flight on top of the N:
 *                   each operation cancels the timer armed W operations ago
 *                   and arms it again (a request timeout cancelled when the
 *                   request completes, with about a thousand requests out).
 *   immediate       the same with W = 1: cancel right after insert.
 *   reschedule      cancel a random one of the N and arm it again (an idle
 *                   timeout pushed back on activity): cold memory every time.
 *   insert+expire   event-driven: time jumps to the earliest deadline, the
 *                   due timers fire, and each callback arms its timer again,
 *                   so N stays constant; cost per timer fired.
 * Each figure is the median of ROUNDS rounds; the two sides alternate round
 * by round (and which goes first), so noise from the other core hits both.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/clock.h"
#include "keel/timer_wheel.h"

#define ROUNDS      7
#define CHURN_OPS   (1u << 20)
#define EXPIRE_OPS  (1u << 18)
#define WINDOW      1024u
#define TIMEOUTS    (1u << 16) /* precomputed random timeouts, reused cyclically */
#define TIMEOUT_MIN (1000000ull)
#define TIMEOUT_MAX (60000000000ull)

static uint64_t timeouts[TIMEOUTS];
static uint32_t *picks; /* which timer each churn operation uses */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ull;
}

/* ---- the indexed binary min-heap ----------------------------------------- */

#define HEAP_NONE UINT32_MAX

struct htimer {
    uint64_t deadline;
    uint32_t index; /* position in the heap, HEAP_NONE when not armed */
    uint32_t pad32;
    void (*fn)(struct htimer *, void *);
    void *arg;
    char pad[32]; /* 64 bytes, as a struct kl_timer */
};

struct hentry {
    uint64_t deadline;
    struct htimer *timer;
};

struct heap {
    struct hentry *a;
    uint32_t n;
    uint64_t now;
};

static inline void heap_set(struct heap *h, uint32_t i, struct hentry e)
{
    h->a[i] = e;
    e.timer->index = i;
}

static inline void sift_up(struct heap *h, uint32_t i, struct hentry e)
{
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (h->a[parent].deadline <= e.deadline)
            break;
        heap_set(h, i, h->a[parent]);
        i = parent;
    }
    heap_set(h, i, e);
}

static inline void sift_down(struct heap *h, uint32_t i, struct hentry e)
{
    uint32_t n = h->n;
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && h->a[child + 1].deadline < h->a[child].deadline)
            child++;
        if (e.deadline <= h->a[child].deadline)
            break;
        heap_set(h, i, h->a[child]);
        i = child;
    }
    heap_set(h, i, e);
}

static inline void heap_insert(struct heap *h, struct htimer *t, uint64_t deadline)
{
    t->deadline = deadline;
    sift_up(h, h->n++, (struct hentry){deadline, t});
}

static inline void heap_cancel(struct heap *h, struct htimer *t)
{
    uint32_t i = t->index;
    if (i == HEAP_NONE)
        return;
    t->index = HEAP_NONE;
    uint32_t last = --h->n;
    if (i == last)
        return;
    struct hentry e = h->a[last];
    if (i > 0 && e.deadline < h->a[(i - 1) / 2].deadline)
        sift_up(h, i, e);
    else
        sift_down(h, i, e);
}

/* Fire everything due at the earliest deadline; the number fired. */
static inline uint32_t heap_expire_next(struct heap *h)
{
    uint32_t fired = 0;
    h->now = h->a[0].deadline;
    while (h->n && h->a[0].deadline <= h->now) {
        struct htimer *t = h->a[0].timer;
        t->index = HEAP_NONE;
        struct hentry last = h->a[--h->n];
        if (h->n)
            sift_down(h, 0, last);
        t->fn(t, t->arg);
        fired++;
    }
    return fired;
}

/* The heap's order and indices hold (checked between measurements). */
static bool heap_valid(const struct heap *h)
{
    for (uint32_t i = 0; i < h->n; i++) {
        if (h->a[i].timer->index != i || h->a[i].timer->deadline != h->a[i].deadline)
            return false;
        if (i > 0 && h->a[(i - 1) / 2].deadline > h->a[i].deadline)
            return false;
    }
    return true;
}

/* ---- the two sides ------------------------------------------------------- */

static struct kl_timer_wheel wheel;
static struct kl_timer *wtimers;
static struct heap heap;
static struct htimer *htimers;
static uint32_t next_timeout;

static void wheel_rearm(struct kl_timer *t, void *arg)
{
    (void)arg;
    kl_timer_wheel_insert(&wheel, t,
                          kl_timer_wheel_now(&wheel) + timeouts[next_timeout++ % TIMEOUTS], 0);
}

static void heap_rearm(struct htimer *t, void *arg)
{
    (void)arg;
    heap_insert(&heap, t, heap.now + timeouts[next_timeout++ % TIMEOUTS]);
}

static void setup(uint32_t pending, uint64_t now)
{
    kl_timer_wheel_destroy(&wheel);
    if (kl_timer_wheel_init(&wheel, KL_TIMER_WHEEL_DEFAULT_RES, now) != 0)
        abort();
    heap.n = 0;
    heap.now = now;
    for (uint32_t i = 0; i < pending + WINDOW; i++) {
        kl_timer_init(&wtimers[i], wheel_rearm, NULL);
        htimers[i] = (struct htimer){.index = HEAP_NONE, .fn = heap_rearm};
    }
    for (uint32_t i = 0; i < pending; i++) {
        uint64_t d = now + timeouts[i % TIMEOUTS];
        kl_timer_wheel_insert(&wheel, &wtimers[i], d, 0);
        heap_insert(&heap, &htimers[i], d);
    }
}

/* Churn: operation i cancels timer picks[i] and arms it again. */
static double churn_wheel(void)
{
    uint64_t now = kl_timer_wheel_now(&wheel);
    uint64_t t0 = kl_clock_gettime_ns();
    for (uint32_t i = 0; i < CHURN_OPS; i++) {
        struct kl_timer *t = &wtimers[picks[i]];
        kl_timer_wheel_cancel(&wheel, t);
        kl_timer_wheel_insert(&wheel, t, now + timeouts[i % TIMEOUTS], 0);
    }
    return (double)(kl_clock_gettime_ns() - t0) / CHURN_OPS;
}

static double churn_heap(void)
{
    uint64_t now = heap.now;
    uint64_t t0 = kl_clock_gettime_ns();
    for (uint32_t i = 0; i < CHURN_OPS; i++) {
        struct htimer *t = &htimers[picks[i]];
        heap_cancel(&heap, t);
        heap_insert(&heap, t, now + timeouts[i % TIMEOUTS]);
    }
    return (double)(kl_clock_gettime_ns() - t0) / CHURN_OPS;
}

static double expire_wheel(void)
{
    uint32_t fired = 0;
    uint64_t t0 = kl_clock_gettime_ns();
    while (fired < EXPIRE_OPS)
        fired += (uint32_t)kl_timer_wheel_advance(&wheel, kl_timer_wheel_next_deadline(&wheel));
    return (double)(kl_clock_gettime_ns() - t0) / fired;
}

static double expire_heap(void)
{
    uint32_t fired = 0;
    uint64_t t0 = kl_clock_gettime_ns();
    while (fired < EXPIRE_OPS)
        fired += heap_expire_next(&heap);
    return (double)(kl_clock_gettime_ns() - t0) / fired;
}

/* ---- driver -------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v)
{
    qsort(v, ROUNDS, sizeof(double), cmp_double);
    return v[ROUNDS / 2];
}

/* Median ns per operation of each side, alternating sides round by round. */
static void measure(double (*w)(void), double (*h)(void), double *wheel_ns, double *heap_ns)
{
    double wv[ROUNDS], hv[ROUNDS];
    w(); /* warm up */
    h();
    for (int r = 0; r < ROUNDS; r++) {
        if (r % 2 == 0) {
            wv[r] = w();
            hv[r] = h();
        } else {
            hv[r] = h();
            wv[r] = w();
        }
    }
    *wheel_ns = median(wv);
    *heap_ns = median(hv);
}

enum { CANCEL_WINDOW, CANCEL_NOW, RESCHEDULE, EXPIRE, SCENARIOS };

static const char *const scenario_name[SCENARIOS] = {
    "insert+cancel (W=1024)", "insert+cancel (W=1)", "reschedule random", "insert+expire"};
static const char *const scenario_result[SCENARIOS] = {"insert_cancel", "insert_cancel_immediate",
                                                       "reschedule_random", "insert_expire"};
static const char *const scenario_vs[SCENARIOS] = {
    "timer_vs_heap", "timer_vs_heap_immediate", "timer_vs_heap_reschedule", "timer_vs_heap_expire"};

int main(void)
{
    static const uint32_t sizes[] = {1000, 100000, 1000000};
    static const char *const size_name[] = {"1k", "100k", "1m"};
    enum { SIZES = 3 };
    double wns[SCENARIOS][SIZES], hns[SCENARIOS][SIZES];

    for (uint32_t i = 0; i < TIMEOUTS; i++)
        timeouts[i] = TIMEOUT_MIN + rnd() % (TIMEOUT_MAX - TIMEOUT_MIN + 1);
    uint32_t max = sizes[SIZES - 1] + WINDOW;
    wtimers = aligned_alloc(64, (size_t)max * sizeof *wtimers);
    htimers = aligned_alloc(64, (size_t)max * sizeof *htimers);
    heap.a = malloc((size_t)max * sizeof *heap.a);
    picks = malloc((size_t)CHURN_OPS * sizeof *picks);
    if (!wtimers || !htimers || !heap.a || !picks) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    kl_timer_wheel_init(&wheel, KL_TIMER_WHEEL_DEFAULT_RES, 0);

    for (int s = 0; s < SIZES; s++) {
        uint32_t n = sizes[s];
        setup(n, 1000 * 1000000000ull);
        for (uint32_t i = 0; i < WINDOW; i++) { /* the window starts armed */
            uint64_t d = kl_timer_wheel_now(&wheel) + timeouts[(n + i) % TIMEOUTS];
            kl_timer_wheel_insert(&wheel, &wtimers[n + i], d, 0);
            heap_insert(&heap, &htimers[n + i], d);
        }
        for (uint32_t i = 0; i < CHURN_OPS; i++)
            picks[i] = n + i % WINDOW;
        measure(churn_wheel, churn_heap, &wns[CANCEL_WINDOW][s], &hns[CANCEL_WINDOW][s]);
        for (uint32_t i = 0; i < CHURN_OPS; i++)
            picks[i] = n; /* one timer: cancelled right after its insert */
        measure(churn_wheel, churn_heap, &wns[CANCEL_NOW][s], &hns[CANCEL_NOW][s]);
        for (uint32_t i = 0; i < CHURN_OPS; i++)
            picks[i] = (uint32_t)(rnd() % n);
        measure(churn_wheel, churn_heap, &wns[RESCHEDULE][s], &hns[RESCHEDULE][s]);
        /* expiry from the population left by the churn; warm up to a steady state */
        for (uint32_t done = 0; done < n;) {
            done += (uint32_t)kl_timer_wheel_advance(&wheel, kl_timer_wheel_next_deadline(&wheel));
        }
        for (uint32_t done = 0; done < n;)
            done += heap_expire_next(&heap);
        measure(expire_wheel, expire_heap, &wns[EXPIRE][s], &hns[EXPIRE][s]);
        if (!heap_valid(&heap)) {
            fprintf(stderr, "the heap is broken\n");
            return 1;
        }
        if (kl_timer_wheel_pending(&wheel) != n + WINDOW || heap.n != n + WINDOW) {
            fprintf(stderr, "pending count drifted: wheel %zu heap %u, expected %u\n",
                    kl_timer_wheel_pending(&wheel), heap.n, n + WINDOW);
            return 1;
        }
    }

    printf("timer wheel (4 x 256 bins, 1 ms) vs indexed binary heap; timeouts uniform in "
           "1 ms .. 60 s\n");
    printf("%d rounds per figure, sides alternating, median ns per operation; clock %s\n\n", ROUNDS,
           kl_clock_source());
    printf("%-24s %8s %10s %10s %11s\n", "operation", "pending", "wheel ns", "heap ns",
           "heap/wheel");
    for (int c = 0; c < SCENARIOS; c++)
        for (int s = 0; s < SIZES; s++)
            printf("%-24s %8s %10.2f %10.2f %10.2fx\n", scenario_name[c], size_name[s], wns[c][s],
                   hns[c][s], hns[c][s] / wns[c][s]);
    printf("\n");
    for (int c = 0; c < SCENARIOS; c++) {
        for (int s = 0; s < SIZES; s++)
            printf("result timer_%s_ns_%s %.2f ns\n", scenario_result[c], size_name[s], wns[c][s]);
        for (int s = 0; s < SIZES; s++)
            printf("result heap_%s_ns_%s %.2f ns\n", scenario_result[c], size_name[s], hns[c][s]);
        printf("result %s_1m %.2f x\n", scenario_vs[c], hns[c][SIZES - 1] / wns[c][SIZES - 1]);
    }
    return 0;
}
