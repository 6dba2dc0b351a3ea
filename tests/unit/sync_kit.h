/* sync_kit.h: helpers shared by the sync tests (test_sync.c, test_sync_chan.c).
 *
 * A scheduler per case (sk_up/sk_down), a real timer wheel behind the
 * scheduler's timeout hooks whose fake clock the idle hook jumps to the next
 * deadline (or a fiber moves with clock_step()), a trace string that waiting
 * fibers append to so a test can check who was served in which order, a
 * `struct job` that describes one waiting fiber, and a seeded PRNG for the
 * stress runs.
 */
#ifndef KEEL_TEST_SYNC_KIT_H
#define KEEL_TEST_SYNC_KIT_H

#include <stdbool.h>
#include <stdint.h>

#include "keel/fiber.h"
#include "keel/sync.h"

#define MS     1000000u
#define TIMERS 512

/* Bring up a scheduler with `max_fibers` slots (records a failure if it cannot). */
void up(uint32_t max_fibers);
/* Remove the hooks and shut the scheduler down. */
void down(void);
/* Spawn a normal-priority fiber; asserts. */
kl_fiber_id spawn(const char *name, kl_fiber_fn fn, void *arg);
/* Join a fiber and return its result; asserts. */
intptr_t join(kl_fiber_id id);

extern uint64_t fake_now;
extern uint64_t idle_horizon; /* the idle hook fires no timeout due later than this */
extern int timeouts_fired;
/* Install the wheel-backed timeout and idle hooks on a fresh wheel. */
void timers_up(void);
/* Check that no timeout is left armed, then drop the wheel. */
void timers_down(void);
/* Move the fake clock by `ns` (at least to the real one) and fire what is due. */
void clock_step(uint64_t ns);

extern char trace[512];
/* Empty the trace. */
void trace_reset(void);
/* Append to the trace. */
void trace_add(const char *s);

/* One waiting fiber: what it waits on, its trace tag, its timeout, its result. */
struct job {
    const char *tag;
    void *obj;
    uint64_t timeout;
    int rc;
    intptr_t value;
    struct kl_event *gate; /* holders: wait here before releasing */
    kl_fiber_id victim;    /* holders: cancel this fiber right before releasing */
    int start;             /* channel receivers: the first value expected */
    bool done;
};

/* Append the job's tag, then T, C, P or ? for -ETIMEDOUT, -ECANCELED, -EPIPE, other errors. */
void job_trace(struct job *j);
/* Wait at the job's gate, if any, then cancel its victim, if any. */
void job_hold(struct job *j);

/* xorshift64* step. */
uint64_t rng_next(uint64_t *s);
/* A number below n. */
unsigned rng_below(uint64_t *s, unsigned n);
/* A timeout for a random wait: none three times in four, else 1-3 ms. */
uint64_t rng_timeout(uint64_t *s);
/* Yield between 0 and max times. */
void rng_yields(uint64_t *s, unsigned max);

#endif /* KEEL_TEST_SYNC_KIT_H */
