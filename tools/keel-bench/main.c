/* keel-bench: a load generator for memcached-protocol servers.
 *
 * main parses the flags, lays out the run (times, key ownership, the value
 * tag of this run), starts the worker threads (keel/workers.h), each of
 * which drives its share of the connections (driver.c), prints a progress
 * line every second from the workers' live counters, and when the workers
 * are done prints the report (also after SIGINT or SIGTERM, which end the
 * run early). Exit status: 0 when every reply was right,
 * 1 on any error, 2 on a bad flag, a start-up failure or a state file that
 * could not be written.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "keel/clock.h"

#define MS 1000000ull

static struct kb_run run;

/* Wait up to `ns` for SIGINT or SIGTERM (blocked in every thread); true if one came. */
static bool wait_signal(const sigset_t *set, uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    return sigtimedwait(set, NULL, &ts) > 0;
}

/* SIGINT or SIGTERM: stop sending now, report what was measured so far. */
static void stop_early(void)
{
    uint64_t now = kl_now();
    if (now < run.end_ns) {
        __atomic_store_n(&run.end_ns, now, __ATOMIC_RELAXED);
        __atomic_store_n(&run.drain_ns, now + 2000 * MS, __ATOMIC_RELAXED);
    }
}

static int setup(void)
{
    const struct kb_options *opt = &run.opt;
    run.total_conns = opt->connections * opt->nservers;
    run.run_tag = (uint32_t)(kl_clock_gettime_ns() ^ ((uint64_t)getpid() << 20) ^ opt->seed);
    if (kb_pattern_init() < 0)
        return -1;
    run.threads = aligned_alloc(64, sizeof *run.threads * opt->threads);
    if (!run.threads)
        return -1;
    memset(run.threads, 0, sizeof *run.threads * opt->threads);
    if (opt->state && kb_state_open(&run) < 0) /* --check takes the key space from it */
        return -2;
    if (opt->verify && !(run.expect = calloc(opt->keys, sizeof *run.expect)))
        return -1;
    for (uint32_t i = 0; i < opt->threads; i++) {
        if (!(run.threads[i].lag = malloc(sizeof(struct kl_hist))))
            return -1;
        kl_hist_init(run.threads[i].lag);
        for (int c = 0; c < KB_CMD_COUNT; c++) {
            if (!(run.threads[i].hist[c] = malloc(sizeof(struct kl_hist))))
                return -1;
            kl_hist_init(run.threads[i].hist[c]);
        }
    }
    kb_workload_init(&run);
    return 0;
}

int main(int argc, char **argv)
{
    int rc = kb_options_parse(&run.opt, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    const struct kb_options *opt = &run.opt;
    if ((rc = setup()) < 0) {
        if (rc == -1)
            fprintf(stderr, "keel-bench: out of memory\n");
        return 2;
    }
    bool sweep = opt->load || opt->check; /* every key once, then stop */
    uint32_t per_thread = (run.total_conns + opt->threads - 1) / opt->threads;
    struct kl_workers_options wo = {
        .count = opt->threads,
        .sched = {.max_fibers = 2 * per_thread + 16},
        .counters = KB_C_COUNT,
        .name = "keel-bench",
        /* open loop: a request goes out within 20 us of its due time */
        .reactor = {.backend = opt->backend, .timer_resolution_ns = opt->rate > 0 ? 20000 : 0},
    };
    uint64_t now = kl_now();
    run.start_ns = now + 100 * MS; /* time to connect */
    run.measure_ns = run.start_ns + (uint64_t)(opt->warmup_s * 1e9);
    run.end_ns = sweep ? UINT64_MAX / 4 : run.measure_ns + (uint64_t)(opt->duration_s * 1e9);
    run.drain_ns = sweep ? UINT64_MAX / 4 : run.end_ns + 5000 * MS;
    if (sweep)
        run.measure_ns = run.start_ns;
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* the workers inherit the mask */
    rc = kl_workers_start(&run.workers, &wo, kb_worker_main, &run);
    if (rc < 0) {
        fprintf(stderr, "keel-bench: cannot start %u worker threads: %s\n", opt->threads,
                strerror(-rc));
        return 2;
    }
    bool tty = isatty(STDERR_FILENO);
    uint64_t next = run.start_ns + 1000 * MS;
    while (atomic_load(&run.threads_done) < opt->threads) {
        if (wait_signal(&sigs, 5 * MS))
            stop_early();
        now = kl_now();
        if (now >= next) {
            kb_progress(&run, (double)(now - run.start_ns) / 1e9, tty);
            next += 1000 * MS;
        }
    }
    uint64_t done = kl_now();
    if (tty && done >= run.start_ns + 1000 * MS)
        fprintf(stderr, "\n");
    kl_workers_stop(run.workers, 1000 * MS);
    double measured = sweep                         ? (double)(done - run.start_ns) / 1e9
                      : run.end_ns > run.measure_ns ? (double)(run.end_ns - run.measure_ns) / 1e9
                                                    : 0;
    uint64_t errors = kb_report(&run, measured);
    kl_workers_destroy(run.workers);
    int state_rc = kb_state_close(&run); /* records on the device before exiting */
    for (uint32_t i = 0; i < opt->threads; i++) {
        for (int c = 0; c < KB_CMD_COUNT; c++)
            free(run.threads[i].hist[c]);
        free(run.threads[i].lag);
    }
    free(run.threads);
    free(run.expect);
    return state_rc < 0 ? 2 : errors ? 1 : 0;
}
