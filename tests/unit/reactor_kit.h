/* reactor_kit.h: what the reactor-level tests share.
 *
 * Each case brings up its own scheduler and reactor once per backend
 * (rk_each_backend), so every behaviour is checked on io_uring, on epoll,
 * and on io_uring with a batch wait;
 * a backend this machine cannot create (io_uring in some containers) is
 * reported, and the case counts as skipped, neither failed nor passed.
 */
#ifndef KEEL_TEST_REACTOR_KIT_H
#define KEEL_TEST_REACTOR_KIT_H

#include <stdbool.h>

#include "keel/fiber.h"
#include "keel/reactor.h"

#define MS   1000000ull
#define SEC  (1000 * MS)
#define SLOP (200 * MS) /* how late a timer may be on a loaded 2-core VM under ASan */

/* A scheduler (256 fibers) and a reactor on backend `b`; false (reported) if not. */
bool rk_up(enum kl_reactor_backend b);

/* The same with reactor options `o`. */
bool rk_up_with(const struct kl_reactor_options *o);

/* Shut the scheduler down and destroy the reactor, failing the case on an error. */
void rk_down(void);

/* Run `fn` once per backend that can be brought up here, between rk_up and
 * rk_down; the case counts as skipped when a backend could not be. */
void rk_each_backend(void (*fn)(enum kl_reactor_backend));

/* Spawn a normal-priority fiber, failing the case if that fails. */
kl_fiber_id rk_spawn(const char *name, kl_fiber_fn fn, void *arg);

/* A fiber body: sleep 10 ms, then cancel the fiber whose id `arg` points to
 * (failing the case if that fails). */
intptr_t rk_canceller(void *arg);

#endif /* KEEL_TEST_REACTOR_KIT_H */
