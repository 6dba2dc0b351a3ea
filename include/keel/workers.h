/* keel/workers.h: N worker threads, each with its own scheduler and reactor.
 *
 * kl_workers_start() starts the threads. Each one (optionally pinned to a
 * core) brings up a scheduler and a reactor with the group's options, and
 * once every worker is up, runs the group's function in a fiber of its own
 * and then its reactor loop. Threads do not share runtime state: another
 * thread reaches a worker only through its reactor's inbox
 * (keel/xthread.h), for instance with kl_workers_post(), which runs a
 * function in a new fiber on that worker.
 *
 * Stopping is graceful: kl_workers_request_stop() posts a stop message to
 * each worker; the worker's loop returns and it runs kl_reactor_shutdown()
 * with the grace period (its fibers see kl_reactor_stopping() and may finish
 * their work; those still live afterwards are cancelled), then releases its
 * reactor and scheduler and ends. kl_workers_stop() also joins the threads.
 *
 * Statistics without locks: each worker has a block of counters that the
 * program defines (kl_workers_options.counters of them: connections,
 * commands, ...), on cache lines of its own. Only the worker's thread writes
 * them (kl_counter_add: a relaxed load and store, a plain add), any thread
 * reads them with relaxed loads, and kl_workers_stats() sums them across the
 * workers together with the reactors' counters (kl_reactor_stats_live()).
 * Nothing on a worker's hot path takes a lock or writes a shared line.
 *
 * Workers inherit the starting thread's signal mask: block the service's
 * signals (kl_sigblock, keel/sigwait.h) before kl_workers_start() and wait
 * for them in one fiber of the main thread.
 */
#ifndef KEEL_WORKERS_H
#define KEEL_WORKERS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "keel/fiber.h"
#include "keel/reactor.h"
#include "keel/xthread.h"

/* At most this many workers in a group. */
#define KL_WORKERS_MAX 1024

/* At most this many counters per worker. */
#define KL_WORKER_COUNTERS_MAX 64

/* A counter that one thread writes and any thread reads. */
typedef _Atomic uint64_t kl_counter;

/* Add `n` to a counter that only the calling thread writes (no lock prefix). */
static inline void kl_counter_add(kl_counter *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* A counter's value, from any thread. */
static inline uint64_t kl_counter_get(const kl_counter *c)
{
    return atomic_load_explicit((kl_counter *)c, memory_order_relaxed);
}

struct kl_workers;
struct kl_worker;

/* Runs in a fiber on worker `w`'s thread. */
typedef void (*kl_worker_fn)(struct kl_worker *w, void *arg);

struct kl_workers_options {
    uint32_t count;                    /* threads: 1 to KL_WORKERS_MAX */
    struct kl_reactor_options reactor; /* each worker's reactor: backend, busy_poll, ring size */
    struct kl_sched_config sched;      /* each worker's scheduler: fiber slots, stack size */
    bool pin;                          /* pin worker i to one CPU: cpus[i % cpu_count], or without
                                        * cpus the (i % n)-th of the n CPUs this process may use */
    const int *cpus;                   /* with pin: the CPUs, each one this process may use */
    uint32_t cpu_count;
    uint32_t counters;  /* counters per worker (kl_worker_counters), up to KL_WORKER_COUNTERS_MAX */
    const char *name;   /* thread name prefix ("NAME-i", cut to 15 bytes); NULL: "keel-worker" */
    bool crash_reports; /* kl_crash_install() on each worker (its own signal stack), so that
                         * a fiber's stack overflow on a worker is reported and named */
    uint64_t sched_slice_ns; /* ask for this scheduler slice per worker (sched_setattr:
                              * EEVDF's custom slice, Linux 6.12+, 100 us to 100 ms; older
                              * kernels ignore it); 0: the kernel's default */
};

/* ---- the group (any thread that is not one of its workers) ---------------- */

/* Start the workers; each runs fn(worker, arg) in a fiber (fn may be NULL)
 * once all are up. 0 with the group in *out; -EINVAL (bad options, or a CPU
 * this process may not use), -EAGAIN (no thread), -ENOMEM, or the first
 * error a worker met bringing up its scheduler or reactor (nothing is left
 * running then). */
int kl_workers_start(struct kl_workers **out, const struct kl_workers_options *opts,
                     kl_worker_fn fn, void *arg);

/* Ask every worker to stop, giving its fibers `grace_ns` to finish; returns
 * at once (also from a worker's fiber). Later calls do nothing. */
void kl_workers_request_stop(struct kl_workers *g, uint64_t grace_ns);

/* Request the stop (if not yet done) and wait for every worker to end; from
 * one thread at a time, not a worker's (-EDEADLK). Returns how many fibers the workers
 * had to cancel after the grace period, or a worker's negative errno. The
 * statistics stay readable until kl_workers_destroy(). */
int kl_workers_stop(struct kl_workers *g, uint64_t grace_ns);

/* Stop the workers if they still run (no grace) and free the group. */
void kl_workers_destroy(struct kl_workers *g);

/* The number of workers. */
uint32_t kl_workers_count(const struct kl_workers *g);

/* Worker `index` of the group (NULL when out of range). */
struct kl_worker *kl_workers_get(struct kl_workers *g, uint32_t index);

/* Run fn(worker, arg) in a new fiber on worker `index`, from any thread
 * (it allocates a small job: for control work such as stats and flushes;
 * on a hot path post your own struct kl_xmsg, keel/xthread.h).
 * 0, -EINVAL (no such worker, fn NULL), -ENOMEM, -ESHUTDOWN (it stopped).
 * A post the worker cannot spawn a fiber for (every slot taken) is dropped
 * and counted (kl_workers_stats' posts_dropped). */
int kl_workers_post(struct kl_workers *g, uint32_t index, kl_worker_fn fn, void *arg);

/* kl_workers_post() to every worker; 0, or the first error (the others
 * were still posted). */
int kl_workers_post_all(struct kl_workers *g, kl_worker_fn fn, void *arg);

/* Counters summed over the workers, read while they run. */
struct kl_workers_stats {
    struct kl_reactor_stats reactor; /* the reactors' counters */
    uint64_t posts_run;              /* kl_workers_post() functions started */
    uint64_t posts_dropped;          /* posts that found no free fiber slot */
};

/* Sum every worker's counters: the reactors' into *stats (may be NULL), the
 * program's into counters[0 .. options.counters) (may be NULL). Any thread,
 * any time between start and destroy; no lock, no message. */
void kl_workers_stats(struct kl_workers *g, struct kl_workers_stats *stats, uint64_t *counters);

/* ---- one worker ----------------------------------------------------------- */

/* The calling thread's worker, or NULL outside a worker. */
struct kl_worker *kl_worker_self(void);

/* A worker's index in its group (0 to count - 1). */
uint32_t kl_worker_index(const struct kl_worker *w);

/* A worker's group. */
struct kl_workers *kl_worker_group(const struct kl_worker *w);

/* The group's reference to a worker's reactor, for kl_reactor_post() of
 * the caller's own messages (keel/xthread.h); valid until kl_workers_destroy(). */
struct kl_reactor_ref *kl_worker_ref(struct kl_worker *w);

/* The CPU a worker is pinned to, or -1. */
int kl_worker_cpu(const struct kl_worker *w);

/* A worker's counter block (options.counters entries): its own thread adds
 * with kl_counter_add(), others read with kl_counter_get(). */
kl_counter *kl_worker_counters(struct kl_worker *w);

/* One worker's counters, as kl_workers_stats() for a single worker. */
void kl_worker_stats(struct kl_worker *w, struct kl_workers_stats *stats, uint64_t *counters);

#endif /* KEEL_WORKERS_H */
