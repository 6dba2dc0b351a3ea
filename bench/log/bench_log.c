/* bench/log: the cost of one log call with three arguments, keel's KL_INFO
 * (binary record into the shared mmlog) against fprintf to a buffered FILE
 * and snprintf + write(2) to a file, and a call whose level is disabled.
 *
 * Every call is timed on its own with kl_now() before and after; the cost of
 * an empty timing (two kl_now() calls) is measured in the same run and
 * subtracted. Methods alternate in rounds; the histograms of all rounds are
 * merged and their percentiles reported. Files go to $KEEL_BENCH_DIR
 * (default /tmp/keel-bench-log) and are removed afterwards.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keel/clock.h"
#include "keel/histogram.h"
#include "keel/log.h"

#define ROUNDS 5
#define CALLS  200000

enum { M_EMPTY, M_KEEL, M_DISABLED, M_FPRINTF, M_WRITE, M_COUNT };
static const char *names[M_COUNT] = {"empty timing", "KL_INFO (keel)", "KL_DEBUG (disabled)",
                                     "fprintf (buffered FILE)", "snprintf + write(2)"};
static struct kl_hist hists[M_COUNT];

static FILE *stream;
static int raw_fd;

static void run(int method, struct kl_hist *h)
{
    static const char *clients[4] = {"10.0.0.1:5501", "10.0.0.2:5502", "peer-3", "peer-4"};
    char line[256];
    for (int i = 0; i < CALLS; i++) {
        const char *who = clients[i & 3];
        unsigned long long took = (unsigned long long)i * 37 + 1000;
        uint64_t t0 = kl_now();
        switch (method) {
        case M_EMPTY: break;
        case M_KEEL: KL_INFO("request %d from %s took %llu ns", i, who, took); break;
        case M_DISABLED: KL_DEBUG("request %d from %s took %llu ns", i, who, took); break;
        case M_FPRINTF: fprintf(stream, "request %d from %s took %llu ns\n", i, who, took); break;
        case M_WRITE: {
            int n = snprintf(line, sizeof line, "request %d from %s took %llu ns\n", i, who, took);
            if (write(raw_fd, line, (size_t)n) != n)
                abort();
            break;
        }
        }
        uint64_t t1 = kl_now();
        kl_hist_record(h, t1 - t0);
    }
}

int main(void)
{
    signal(SIGXFSZ, SIG_IGN); /* a file-size limit is an error (-EFBIG), not death */
    const char *dir = getenv("KEEL_BENCH_DIR") ? getenv("KEEL_BENCH_DIR") : "/tmp/keel-bench-log";
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "bench_log: cannot create %s: %s\n", dir, strerror(errno));
        return 2;
    }
    char keel_path[600], meta_path[620], file_path[600], raw_path[600];
    snprintf(keel_path, sizeof keel_path, "%s/keel.log", dir);
    snprintf(meta_path, sizeof meta_path, "%s/keel.log.meta", dir);
    snprintf(file_path, sizeof file_path, "%s/stdio.log", dir);
    snprintf(raw_path, sizeof raw_path, "%s/write.log", dir);
    unlink(keel_path);
    unlink(meta_path);
    if (kl_log_open(keel_path) != 0 || !(stream = fopen(file_path, "w")) ||
        (raw_fd = open(raw_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644)) < 0) {
        fprintf(stderr, "bench_log: cannot open the output files in %s\n", dir);
        return 2;
    }
    kl_log_set_level(KL_LEVEL_INFO);
    KL_INFO("warm-up: open the thread's log handle %d", 0);
    for (int m = 0; m < M_COUNT; m++)
        kl_hist_init(&hists[m]);
    for (int round = 0; round < ROUNDS; round++)
        for (int k = 0; k < M_COUNT; k++)
            run((k + round) % M_COUNT, &hists[(k + round) % M_COUNT]);
    fclose(stream);
    close(raw_fd);

    double overhead = (double)kl_hist_percentile(&hists[M_EMPTY], 50);
    printf("bench/log: %d rounds x %d calls per method, each call timed alone\n", ROUNDS, CALLS);
    printf("clock: %s; an empty timing costs %.0f ns (median), subtracted below\n\n",
           kl_clock_source(), overhead);
    printf("%-26s %10s %10s %10s %12s\n", "method (3 arguments)", "p50 ns", "p99 ns", "p99.9 ns",
           "vs fprintf");
    double med[M_COUNT];
    for (int m = 1; m < M_COUNT; m++) {
        double p50 = (double)kl_hist_percentile(&hists[m], 50) - overhead;
        med[m] = p50 > 0 ? p50 : 0;
    }
    for (int m = 1; m < M_COUNT; m++) {
        double p99 = (double)kl_hist_percentile(&hists[m], 99) - overhead;
        double p999 = (double)kl_hist_percentile(&hists[m], 99.9) - overhead;
        char ratio[32] = "-"; /* a disabled call is below the timer's resolution */
        if (med[m] >= 1)
            snprintf(ratio, sizeof ratio, "%.2fx", med[M_FPRINTF] / med[m]);
        printf("%-26s %10.0f %10.0f %10.0f %12s\n", names[m], med[m], p99, p999, ratio);
    }
    printf("\nresult log_call_ns_median %.0f ns\n", med[M_KEEL]);
    printf("result log_call_ns_p99 %.0f ns\n",
           (double)kl_hist_percentile(&hists[M_KEEL], 99) - overhead);
    printf("result log_disabled_ns_median %.0f ns\n", med[M_DISABLED]);
    printf("result log_fprintf_ns_median %.0f ns\n", med[M_FPRINTF]);
    printf("result log_write_ns_median %.0f ns\n", med[M_WRITE]);
    unlink(keel_path);
    unlink(meta_path);
    unlink(file_path);
    unlink(raw_path);
    return 0;
}
