/* keel/reactor.h: the per-thread reactor under keel's fibers.
 *
 * A thread that has a scheduler (kl_sched_init) adds one reactor with
 * kl_reactor_init(). The reactor installs the scheduler's hooks: a fiber
 * suspended with a timeout is woken through a cascaded timer wheel
 * (keel/timer_wheel.h), and after each round of ready fibers (even when
 * some fiber is always ready) the scheduler calls the reactor's loop
 * iteration: fire due timers, hand every I/O request queued since the last
 * iteration to the kernel in one entry, reap completions (waking each
 * waiting fiber with its result), and, when no fiber is ready, block until
 * the next completion or timer deadline (busy-poll mode never blocks).
 *
 * Two poller backends sit behind one internal interface and serve the same
 * fiber-facing I/O (keel/io.h): io_uring (one SQE per request, the fiber's
 * id in user_data, one io_uring_enter per iteration) and edge-triggered
 * epoll (each fd registered once; a fiber tries the system call, parks on
 * EAGAIN and retries on the edge; file I/O goes to the reactor's worker
 * threads). KL_REACTOR_AUTO picks io_uring when the kernel lets us create a
 * ring. Other threads reach a reactor through its inbox (keel/xthread.h),
 * which wakes the loop through an eventfd that both backends watch.
 *
 * Not thread-safe by design: each function acts on the calling thread's
 * reactor and must be called from that thread.
 */
#ifndef KEEL_REACTOR_H
#define KEEL_REACTOR_H

#include <stdbool.h>
#include <stdint.h>

enum kl_reactor_backend {
    KL_REACTOR_AUTO = 0, /* io_uring if a ring can be created, else epoll */
    KL_REACTOR_URING,
    KL_REACTOR_EPOLL,
};

/* The longest kl_reactor_options.batch_wait_us accepted: 10 ms. */
#define KL_REACTOR_BATCH_WAIT_MAX_US 10000u

struct kl_reactor_options {
    enum kl_reactor_backend backend;
    uint32_t ring_entries; /* io_uring submission queue size; 0 means 256 */
    bool busy_poll;        /* never block in the kernel: poll and return */
    /* io_uring only; 0 (the default) is off. After a loop turn that found
     * several completions, the next blocking wait, once one completion is
     * in, waits up to this many microseconds for as many as that turn found
     * before it wakes, so that one wake-up serves many connections. Under
     * pipelined load: fewer wake-ups, system calls and CPU per request; when
     * the peers answer one at a time, up to this much more latency per turn
     * (docs/BENCHMARKS.md, "batch wait"). A lone request is not held. Needs
     * Linux 6.12 (IORING_FEAT_MIN_TIMEOUT); ignored, with a warning, before. */
    uint32_t batch_wait_us;
    uint64_t timer_resolution_ns; /* timer wheel tick; 0 means 1 ms */
};

/* Counters since kl_reactor_init(). */
struct kl_reactor_stats {
    uint64_t iterations;  /* loop iterations (idle hook calls) */
    uint64_t syscalls;    /* system calls the reactor's thread made for I/O and waiting */
    uint64_t submissions; /* I/O requests handed to the backend (SQEs, attempts, pool jobs) */
    uint64_t completions; /* I/O requests completed (CQEs, successful attempts, pool jobs) */
    uint64_t timers_fired;
    uint64_t batch_waits; /* blocking waits that waited for a batch (batch_wait_us) */
};

/* Create the calling thread's reactor (opts may be NULL) and install the
 * scheduler hooks. Needs kl_sched_init() first. If SIGPIPE still has its
 * default action it is set to ignored, so that writing to a closed peer is
 * -EPIPE for the fiber, not the end of the process. 0, -ENOENT (no scheduler),
 * -EBUSY (already one), -EINVAL, -ENOMEM, or the backend's error. */
int kl_reactor_init(const struct kl_reactor_options *opts);

/* Run fibers until none is left or kl_reactor_stop(); main context only.
 * Returns the number of fibers not ended, or a negative errno. */
int kl_reactor_run(void);

/* Make kl_reactor_run() return at its next scheduling point; the fibers
 * stay as they are (run it again, or kl_reactor_shutdown()). */
void kl_reactor_stop(void);

/* Stop cleanly; main context only, typically after kl_reactor_run() returned
 * because a fiber called kl_reactor_stop() on SIGTERM. Runs the fibers on for
 * up to `grace_ns` so that they can finish, then cancels every fiber still
 * live (each unwinds at its next blocking point, where the call returns
 * -ECANCELED and its I/O is cancelled and awaited) and runs them until all
 * have ended. Returns how many fibers it had to cancel, or a negative errno.
 * kl_reactor_stopping() is true meanwhile, so fibers can stop taking work. */
int kl_reactor_shutdown(uint64_t grace_ns);

/* True while kl_reactor_shutdown() runs on this thread's reactor. */
bool kl_reactor_stopping(void);

/* Remove the hooks and release the reactor. Call it after the fibers that
 * use it have ended (kl_sched_shutdown()); 0, -ENOENT, or -EBUSY (I/O in flight). */
int kl_reactor_destroy(void);

/* True when the calling thread has a reactor. */
bool kl_reactor_active(void);

/* The backend in use (KL_REACTOR_URING or KL_REACTOR_EPOLL). */
enum kl_reactor_backend kl_reactor_backend(void);

/* "io_uring" or "epoll". */
const char *kl_reactor_backend_name(enum kl_reactor_backend backend);

/* kl_now() as of the start of the current loop iteration (after a blocking
 * wait, as of its end): a cached read for code that can live with the
 * time a round of fibers takes (a few us to ms), such as expiry checks. */
uint64_t kl_reactor_now(void);

/* Copy the counters into *stats. */
void kl_reactor_stats(struct kl_reactor_stats *stats);

/* Where the counters live, for reading from another thread: only this
 * reactor's thread writes them, one aligned word at a time, so a reader
 * loads each field with __atomic_load_n(..., __ATOMIC_RELAXED) and gets a
 * recent value. Valid until kl_reactor_destroy() (keel/workers.h sums them). */
const struct kl_reactor_stats *kl_reactor_stats_live(void);

/* Sleep the calling fiber for at least `ns`; 0, or -ECANCELED. */
int kl_sleep(uint64_t ns);

#endif /* KEEL_REACTOR_H */
