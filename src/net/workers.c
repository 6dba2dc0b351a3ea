/* Worker threads, each with a scheduler and a reactor (keel/workers.h).
 *
 * A worker's life: pin itself, bring up its scheduler and reactor, take a
 * reference to its reactor's inbox for the group, spawn a "keeper" fiber
 * that parks until the stop message (so that the loop does not end when the
 * program's fibers do), report to kl_workers_start() and wait for the word
 * to go (every worker up) or to give up (another failed). Then it spawns the
 * group's function in a fiber, runs its loop until the stop message, runs
 * kl_reactor_shutdown() with the grace period, and tears down.
 *
 * Statistics. The program's counters are a cache-line-aligned block in each
 * worker's slot of one array (the slot's size is a multiple of 64 bytes),
 * written by that worker only. The reactor's counters are read in place
 * through kl_reactor_stats_live(); before the reactor is freed the worker
 * copies them into its slot and points readers there, and a reader count
 * (a tiny RCU: the reader increments, then loads the pointer; the worker
 * swaps the pointer, then waits for the count to drop) keeps a reader from
 * touching the freed reactor.
 */
#define _GNU_SOURCE /* pthread_setaffinity_np, pthread_setname_np, CPU_SET */
#include "keel/workers.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "keel/assert.h"
#include "keel/list.h"
#include "keel/log.h"
#include "keel/xthread.h"

#define LINE 64

struct kl_worker {
    _Alignas(LINE) struct kl_workers *group;
    uint32_t index;
    int cpu; /* -1: not pinned */
    pthread_t thread;
    bool thread_started;
    int init_rc;
    int shutdown_rc; /* fibers cancelled at the stop, or -errno */
    bool stopping;   /* the stop message has run (worker's thread only) */
    kl_fiber_id keeper;
    struct kl_reactor_ref *ref; /* the group's reference to the worker's inbox */
    struct kl_xmsg stop_msg;
    _Atomic(const struct kl_reactor_stats *) reactor_stats;
    atomic_uint readers;
    struct kl_reactor_stats final_stats; /* the counters once the reactor is gone */
    kl_counter posts_run;
    kl_counter posts_dropped;
    /* the program's counters follow, on lines of their own */
};

struct kl_workers {
    uint32_t count;
    size_t stride; /* bytes per worker slot, a multiple of LINE */
    char *slots;
    struct kl_workers_options opts;
    kl_worker_fn fn;
    void *arg;
    pthread_mutex_t lock; /* start-up only */
    pthread_cond_t cond;
    uint32_t reported; /* workers that finished bringing themselves up */
    int first_error;
    bool go;
    bool give_up;
    atomic_bool stop_requested;
    _Atomic uint64_t grace_ns;
    bool joined;
    int stop_result;
};

/* A kl_workers_post() call in flight; freed by the fiber that runs it. */
struct post_job {
    struct kl_xmsg msg;
    struct kl_worker *w;
    kl_worker_fn fn;
    void *arg;
};

static __thread struct kl_worker *worker_tls;

static size_t round_line(size_t n) { return (n + LINE - 1) / LINE * LINE; }

static struct kl_worker *slot(const struct kl_workers *g, uint32_t i)
{
    return (struct kl_worker *)(void *)(g->slots + (size_t)i * g->stride);
}

kl_counter *kl_worker_counters(struct kl_worker *w)
{
    return (kl_counter *)(void *)((char *)w + round_line(sizeof *w));
}

/* ---- on the worker's thread ----------------------------------------------- */

static intptr_t keeper_main(void *arg)
{
    struct kl_worker *w = arg;
    while (!w->stopping)
        if (kl_fiber_suspend("worker-stop", KL_FIBER_FOREVER) == -ECANCELED)
            break;
    return 0;
}

static void on_stop(struct kl_xmsg *msg)
{
    struct kl_worker *w = kl_container_of(msg, struct kl_worker, stop_msg);
    if (!kl_reactor_active())
        return; /* run by kl_reactor_destroy(): the worker is ending anyway */
    w->stopping = true;
    kl_fiber_resume(w->keeper, 0); /* -EALREADY when it is ready: it sees `stopping` */
    kl_reactor_stop();
}

static intptr_t main_fiber(void *arg)
{
    struct kl_worker *w = arg;
    w->group->fn(w, w->group->arg);
    return 0;
}

static intptr_t post_fiber(void *arg)
{
    struct post_job j = *(struct post_job *)arg;
    free(arg);
    kl_counter_add(&j.w->posts_run, 1);
    j.fn(j.w, j.arg);
    return 0;
}

static void on_post(struct kl_xmsg *msg)
{
    struct post_job *j = kl_container_of(msg, struct post_job, msg);
    kl_fiber_id id;
    /* After the reactor is gone (messages run by kl_reactor_destroy) there
     * is no scheduler to run the job: it is dropped like one without a slot. */
    if (kl_sched_active() &&
        kl_fiber_spawn(&id, "worker-post", post_fiber, j, KL_FIBER_PRIO_NORMAL) == 0) {
        kl_fiber_detach(id);
        return;
    }
    kl_counter_add(&j->w->posts_dropped, 1);
    KL_WARN("worker %u: a posted function was dropped (no fiber slot, or stopping)", j->w->index);
    free(j);
}

static int pin(struct kl_worker *w)
{
    if (w->cpu < 0)
        return 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(w->cpu, &set);
    return -pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

/* EEVDF's custom slice for this thread (SCHED_OTHER's sched_runtime): a
 * shorter one gives a woken worker an earlier deadline, so it preempts a
 * thread that has run its slice sooner. 0 or -errno. */
static int set_slice(uint64_t slice_ns)
{
    if (slice_ns == 0)
        return 0;
    struct { /* the kernel's struct sched_attr (its first version: 48 bytes) */
        uint32_t size, sched_policy;
        uint64_t sched_flags;
        int32_t sched_nice;
        uint32_t sched_priority;
        uint64_t sched_runtime, sched_deadline, sched_period;
    } attr = {.size = sizeof attr, .sched_policy = SCHED_OTHER, .sched_runtime = slice_ns};
    return syscall(SYS_sched_setattr, 0, &attr, 0) == 0 ? 0 : -errno;
}

/* Pin, scheduler, reactor, inbox reference, keeper; 0 or -errno with
 * nothing left behind. */
static int bring_up(struct kl_worker *w)
{
    struct kl_workers *g = w->group;
    char name[16];
    snprintf(name, sizeof name, "%s-%u", g->opts.name ? g->opts.name : "keel-worker", w->index);
    pthread_setname_np(pthread_self(), name);
    if (g->opts.crash_reports)
        kl_crash_install(); /* a signal stack for this thread: an overflow can be reported */
    int rc = pin(w);
    if (rc == 0)
        rc = set_slice(g->opts.sched_slice_ns);
    if (rc < 0)
        return rc;
    rc = kl_sched_init(&g->opts.sched);
    if (rc < 0)
        return rc;
    rc = kl_reactor_init(&g->opts.reactor);
    if (rc < 0) {
        kl_sched_shutdown();
        return rc;
    }
    w->ref = kl_reactor_ref();
    atomic_store(&w->reactor_stats, kl_reactor_stats_live());
    rc = kl_fiber_spawn(&w->keeper, "worker-keeper", keeper_main, w, KL_FIBER_PRIO_NORMAL);
    KL_ASSERT(rc == 0, "a fresh scheduler has room for the keeper: %d", rc);
    kl_fiber_detach(w->keeper);
    return 0;
}

/* Shut the reactor down and release everything; the inbox reference stays
 * with the group (posts now get -ESHUTDOWN). */
static void tear_down(struct kl_worker *w, uint64_t grace_ns)
{
    /* The keeper is made ready (the stop message did, unless the loop
     * failed or never ran): with a grace period it ends in the first round,
     * without one it is cancelled with the rest, and it is not one of the
     * program's fibers to count. */
    w->stopping = true;
    kl_fiber_resume(w->keeper, 0); /* -EALREADY or -ESRCH: ready, or ended */
    bool keeper_live = kl_fiber_state(w->keeper) >= 0;
    w->shutdown_rc = kl_reactor_shutdown(grace_ns);
    if (keeper_live && grace_ns == 0 && w->shutdown_rc > 0)
        w->shutdown_rc--;
    int rc = kl_sched_shutdown();
    KL_ASSERT(rc == 0, "worker %u: fibers outlived kl_reactor_shutdown(): %d", w->index, rc);
    w->final_stats = *kl_reactor_stats_live();
    atomic_store(&w->reactor_stats, &w->final_stats);
    while (atomic_load(&w->readers) != 0)
        sched_yield(); /* a reader still in the live counters: a few instructions */
    rc = kl_reactor_destroy();
    KL_ASSERT(rc == 0, "worker %u: kl_reactor_destroy: %d", w->index, rc);
}

static void run(struct kl_worker *w)
{
    if (w->group->fn) {
        kl_fiber_id id;
        int rc = kl_fiber_spawn(&id, "worker-main", main_fiber, w, KL_FIBER_PRIO_NORMAL);
        KL_ASSERT(rc == 0, "a fresh scheduler has room for the main fiber: %d", rc);
        kl_fiber_detach(id);
    }
    /* A fiber's own kl_reactor_stop() also ends a run: go on until the
     * group's stop message has arrived. */
    while (!w->stopping) {
        int rc = kl_reactor_run();
        if (rc < 0) {
            KL_ERROR("worker %u: reactor loop failed: %d", w->index, rc);
            break;
        }
    }
}

static void *worker_main(void *arg)
{
    struct kl_worker *w = arg;
    struct kl_workers *g = w->group;
    worker_tls = w;
    int rc = bring_up(w);
    pthread_mutex_lock(&g->lock);
    w->init_rc = rc;
    if (rc < 0 && g->first_error == 0)
        g->first_error = rc;
    g->reported++;
    pthread_cond_broadcast(&g->cond);
    while (!g->go && !g->give_up)
        pthread_cond_wait(&g->cond, &g->lock);
    bool go = g->go;
    pthread_mutex_unlock(&g->lock);
    if (rc == 0) {
        if (go)
            run(w);
        tear_down(w, go ? atomic_load(&g->grace_ns) : 0);
    }
    worker_tls = NULL;
    return NULL;
}

/* ---- the group ------------------------------------------------------------ */

/* Each worker's CPU, or -1; -EINVAL for a CPU the calling thread may not use. */
static int assign_cpus(struct kl_workers *g)
{
    const struct kl_workers_options *o = &g->opts;
    for (uint32_t i = 0; i < g->count; i++)
        slot(g, i)->cpu = -1;
    if (!o->pin)
        return 0;
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0)
        return -errno;
    int usable[CPU_SETSIZE];
    uint32_t n = 0;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &allowed))
            usable[n++] = c;
    if (o->cpus && o->cpu_count == 0)
        return -EINVAL;
    for (uint32_t i = 0; i < g->count; i++) {
        int c = o->cpus ? o->cpus[i % o->cpu_count] : usable[i % n];
        if (c < 0 || c >= CPU_SETSIZE || !CPU_ISSET(c, &allowed))
            return -EINVAL;
        slot(g, i)->cpu = c;
    }
    return 0;
}

static void join_all(struct kl_workers *g)
{
    for (uint32_t i = 0; i < g->count; i++) {
        struct kl_worker *w = slot(g, i);
        if (w->thread_started) {
            pthread_join(w->thread, NULL);
            w->thread_started = false;
        }
    }
}

static void free_group(struct kl_workers *g)
{
    for (uint32_t i = 0; i < g->count; i++)
        if (slot(g, i)->ref)
            kl_reactor_unref(slot(g, i)->ref);
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->lock);
    free(g->slots);
    free(g);
}

int kl_workers_start(struct kl_workers **out, const struct kl_workers_options *opts,
                     kl_worker_fn fn, void *arg)
{
    if (out == NULL || opts == NULL || opts->count == 0 || opts->count > KL_WORKERS_MAX ||
        opts->counters > KL_WORKER_COUNTERS_MAX || opts->sched.max_fibers == 1)
        return -EINVAL; /* a worker needs two fiber slots: its keeper and fn */
    struct kl_workers *g = calloc(1, sizeof *g);
    if (g == NULL)
        return -ENOMEM;
    g->count = opts->count;
    g->opts = *opts;
    g->fn = fn;
    g->arg = arg;
    g->stride =
        round_line(sizeof(struct kl_worker)) + round_line(opts->counters * sizeof(kl_counter));
    g->slots = aligned_alloc(LINE, g->stride * g->count);
    if (g->slots == NULL) {
        free(g);
        return -ENOMEM;
    }
    memset(g->slots, 0, g->stride * g->count);
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    for (uint32_t i = 0; i < g->count; i++) {
        struct kl_worker *w = slot(g, i);
        w->group = g;
        w->index = i;
        w->stop_msg.fn = on_stop;
    }
    int rc = assign_cpus(g);
    g->opts.cpus = NULL; /* the caller's array need not outlive this call */
    uint32_t started = 0;
    for (; rc == 0 && started < g->count; started++) {
        struct kl_worker *w = slot(g, started);
        int err = pthread_create(&w->thread, NULL, worker_main, w);
        if (err != 0)
            rc = err == EAGAIN ? -EAGAIN : -err;
        else
            w->thread_started = true;
    }
    if (rc == 0) {
        pthread_mutex_lock(&g->lock);
        while (g->reported < g->count)
            pthread_cond_wait(&g->cond, &g->lock);
        rc = g->first_error;
        pthread_mutex_unlock(&g->lock);
    }
    pthread_mutex_lock(&g->lock);
    if (rc == 0)
        g->go = true;
    else
        g->give_up = true;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
    if (rc < 0) {
        join_all(g);
        free_group(g);
        return rc;
    }
    *out = g;
    return 0;
}

void kl_workers_request_stop(struct kl_workers *g, uint64_t grace_ns)
{
    if (atomic_exchange(&g->stop_requested, true))
        return;
    atomic_store(&g->grace_ns, grace_ns);
    for (uint32_t i = 0; i < g->count; i++) {
        struct kl_worker *w = slot(g, i);
        (void)kl_reactor_post(w->ref, &w->stop_msg); /* -ESHUTDOWN: it has ended */
    }
}

int kl_workers_stop(struct kl_workers *g, uint64_t grace_ns)
{
    if (worker_tls && worker_tls->group == g)
        return -EDEADLK;
    if (g->joined)
        return g->stop_result;
    kl_workers_request_stop(g, grace_ns);
    join_all(g);
    int rc = 0;
    for (uint32_t i = 0; i < g->count; i++) {
        int r = slot(g, i)->shutdown_rc;
        if (r < 0 && rc >= 0)
            rc = r;
        else if (rc >= 0)
            rc += r;
    }
    g->joined = true;
    g->stop_result = rc;
    return rc;
}

void kl_workers_destroy(struct kl_workers *g)
{
    if (g == NULL)
        return;
    KL_ASSERT(worker_tls == NULL || worker_tls->group != g,
              "kl_workers_destroy() from one of the group's workers");
    kl_workers_stop(g, 0);
    free_group(g);
}

uint32_t kl_workers_count(const struct kl_workers *g) { return g->count; }

struct kl_worker *kl_workers_get(struct kl_workers *g, uint32_t index)
{
    return index < g->count ? slot(g, index) : NULL;
}

int kl_workers_post(struct kl_workers *g, uint32_t index, kl_worker_fn fn, void *arg)
{
    if (index >= g->count || fn == NULL)
        return -EINVAL;
    struct post_job *j = malloc(sizeof *j);
    if (j == NULL)
        return -ENOMEM;
    *j = (struct post_job){.msg.fn = on_post, .w = slot(g, index), .fn = fn, .arg = arg};
    int rc = kl_reactor_post(j->w->ref, &j->msg);
    if (rc < 0)
        free(j);
    return rc;
}

int kl_workers_post_all(struct kl_workers *g, kl_worker_fn fn, void *arg)
{
    int first = 0;
    for (uint32_t i = 0; i < g->count; i++) {
        int rc = kl_workers_post(g, i, fn, arg);
        if (rc < 0 && first == 0)
            first = rc;
    }
    return first;
}

/* Add worker `w`'s figures to *stats and counters[]. */
static void add_worker(struct kl_worker *w, struct kl_workers_stats *stats, uint64_t *counters)
{
    if (stats) {
        atomic_fetch_add(&w->readers, 1);
        const struct kl_reactor_stats *rs = atomic_load(&w->reactor_stats);
        if (rs) {
            struct kl_reactor_stats *sum = &stats->reactor;
            sum->iterations += __atomic_load_n(&rs->iterations, __ATOMIC_RELAXED);
            sum->syscalls += __atomic_load_n(&rs->syscalls, __ATOMIC_RELAXED);
            sum->submissions += __atomic_load_n(&rs->submissions, __ATOMIC_RELAXED);
            sum->completions += __atomic_load_n(&rs->completions, __ATOMIC_RELAXED);
            sum->timers_fired += __atomic_load_n(&rs->timers_fired, __ATOMIC_RELAXED);
            sum->batch_waits += __atomic_load_n(&rs->batch_waits, __ATOMIC_RELAXED);
        }
        atomic_fetch_sub_explicit(&w->readers, 1, memory_order_release);
        stats->posts_run += kl_counter_get(&w->posts_run);
        stats->posts_dropped += kl_counter_get(&w->posts_dropped);
    }
    if (counters) {
        const kl_counter *c = kl_worker_counters(w);
        for (uint32_t i = 0; i < w->group->opts.counters; i++)
            counters[i] += kl_counter_get(&c[i]);
    }
}

void kl_workers_stats(struct kl_workers *g, struct kl_workers_stats *stats, uint64_t *counters)
{
    if (stats)
        memset(stats, 0, sizeof *stats);
    if (counters)
        memset(counters, 0, g->opts.counters * sizeof *counters);
    for (uint32_t i = 0; i < g->count; i++)
        add_worker(slot(g, i), stats, counters);
}

void kl_worker_stats(struct kl_worker *w, struct kl_workers_stats *stats, uint64_t *counters)
{
    if (stats)
        memset(stats, 0, sizeof *stats);
    if (counters)
        memset(counters, 0, w->group->opts.counters * sizeof *counters);
    add_worker(w, stats, counters);
}

/* ---- one worker ----------------------------------------------------------- */

struct kl_worker *kl_worker_self(void) { return worker_tls; }

uint32_t kl_worker_index(const struct kl_worker *w) { return w->index; }

struct kl_workers *kl_worker_group(const struct kl_worker *w) { return w->group; }

int kl_worker_cpu(const struct kl_worker *w) { return w->cpu; }

struct kl_reactor_ref *kl_worker_ref(struct kl_worker *w) { return w->ref; }
