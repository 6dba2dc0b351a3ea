/* bench/mmlog: appends from 4 processes to one file, keel's mmlog against
 * write/writev with O_APPEND, stdio streams, O_DIRECT, Linux AIO and
 * io_uring, measured in one run.
 *
 * For each record size (128 B and 1 B: 100,000 appends per process; 4095 B:
 * 10,000), each method runs in 4 fresh child processes released together by
 * a barrier; each child times its own loop, and the figure is the mean time
 * per call over the 4. Methods run in a rotated order in each round (5 by
 * default) and the median round is reported. After every run the parent
 * checks that each child exited cleanly and that the output holds every
 * record exactly once, intact (writer, sequence number and contents); any
 * lost or corrupt record or dead child is reported and fails the benchmark.
 * Output files go to $KEEL_BENCH_DIR (default /tmp/keel-bench-mmlog), on
 * the file system under test, and are removed after each run, and the file
 * system is synced before the next one starts. --only METHOD and --size
 * narrow a run down to one method (with write+O_APPEND, the reference) and
 * one record size.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_mmlog.h"

#define MAX_ROUNDS 9

struct size_case {
    size_t size;
    uint32_t count;
    const char *label;
};

static const struct size_case sizes[] = {
    {128, 100000, "128"},
    {1, 100000, "1"},
    {4095, 10000, "4095"},
};
#define SIZE_COUNT (sizeof sizes / sizeof sizes[0])

/* The published table this benchmark reproduces (µs per call). */
static const double published[7][3] = {
    {0.25, 0.04, 7.55}, {0.97, 0.95, 2.85}, {0.94, 0.92, 4.05}, {0.96, 0.92, 2.95},
    {9.60, 9.71, 9.93}, {1.21, 1.21, 6.62}, {-1, -1, -1},
};

struct outcome {
    double us[MAX_ROUNDS];
    double gbps[MAX_ROUNDS];
    uint64_t lost;
    uint64_t corrupt;
    int died; /* children that did not exit 0 */
};

static struct outcome results[7][SIZE_COUNT];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Remove a run's files and wait until the file system has finished with
 * them: on a file system mounted with `discard` (this machine's root is),
 * freeing 1.6 GB of O_DIRECT blocks stalls the journal for seconds, which
 * would land on whichever method runs next. */
static void remove_files(const char *path)
{
    char meta[1100];
    snprintf(meta, sizeof meta, "%s.meta", path);
    unlink(path);
    unlink(meta);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        syncfs(fd);
        close(fd);
    }
}

/* Run one method at one size once; fills round `round` of its outcome. */
static void run_once(const char *dir, size_t m, size_t s, int round, double *shared_us)
{
    const struct method *method = &bench_methods[m];
    const struct size_case *sc = &sizes[s];
    struct outcome *out = &results[m][s];
    char path[1024];
    snprintf(path, sizeof path, "%s/bench-%s-%s", dir, method->key, sc->label);
    remove_files(path);

    int barrier[2];
    if (pipe(barrier) != 0) {
        perror("pipe");
        exit(2);
    }
    pid_t pids[WRITERS];
    for (uint32_t w = 0; w < WRITERS; w++) {
        pids[w] = fork();
        if (pids[w] < 0) {
            perror("fork");
            exit(2);
        }
        if (pids[w] == 0) {
            close(barrier[1]);
            char c;
            if (read(barrier[0], &c, 1) != 0)
                _exit(20);
            _exit(method->run(path, w, sc->size, sc->count, &shared_us[w]));
        }
    }
    close(barrier[0]);
    double t0 = now_s();
    close(barrier[1]); /* go */
    for (uint32_t w = 0; w < WRITERS; w++) {
        int status;
        waitpid(pids[w], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            out->died++;
            if (WIFSIGNALED(status))
                fprintf(stderr, "%s/%s: writer %u killed by signal %d\n", method->key, sc->label, w,
                        WTERMSIG(status));
            else
                fprintf(stderr, "%s/%s: writer %u exited with %d\n", method->key, sc->label, w,
                        WEXITSTATUS(status));
        }
    }
    double wall = now_s() - t0;

    uint64_t intact = 0, corrupt = 0;
    if (method->verify(path, sc->size, sc->count, &intact, &corrupt) != 0)
        fprintf(stderr, "%s/%s: cannot read the output\n", method->key, sc->label);
    uint64_t expected = (uint64_t)WRITERS * sc->count;
    out->lost += expected - (intact < expected ? intact : expected);
    out->corrupt += corrupt;
    double sum = 0;
    for (uint32_t w = 0; w < WRITERS; w++)
        sum += shared_us[w];
    out->us[round] = sum / WRITERS;
    out->gbps[round] = (double)expected * (double)sc->size / wall / 1e9;
    fprintf(stderr, "  round %d  %-7s %5s B  %10.3f us/call  %6.3f s\n", round + 1, method->key,
            sc->label, out->us[round], wall);
    remove_files(path);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
    double tmp[MAX_ROUNDS];
    memcpy(tmp, v, (size_t)n * sizeof *v);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_double);
    return tmp[n / 2];
}

int main(int argc, char **argv)
{
    signal(SIGXFSZ, SIG_IGN); /* a file-size limit is an error (-EFBIG), not death */
    int rounds = 5;
    const char *only = NULL;
    const char *only_size = NULL;
    const char *dir = getenv("KEEL_BENCH_DIR") ? getenv("KEEL_BENCH_DIR") : "/tmp/keel-bench-mmlog";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            rounds = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only = argv[++i]; /* that method and write+O_APPEND, the reference */
        } else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
            only_size = argv[++i]; /* one record size: 128, 1 or 4095 */
        } else {
            fprintf(stderr, "usage: bench_mmlog [--rounds N] [--only METHOD] [--size 128|1|4095]\n"
                            "(KEEL_BENCH_DIR sets the directory)\n");
            return 2;
        }
    }
    if (rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "bench_mmlog: --rounds takes 1 to %d\n", MAX_ROUNDS);
        return 2;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "bench_mmlog: cannot create %s: %s\n", dir, strerror(errno));
        return 2;
    }
    double *shared_us = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    printf("bench/mmlog: %d writer processes per run, %d rounds, files in %s\n", WRITERS, rounds,
           dir);
    printf("load generator and writers share this machine (%ld cores)\n\n",
           sysconf(_SC_NPROCESSORS_ONLN));
    for (int round = 0; round < rounds; round++) {
        for (size_t s = 0; s < SIZE_COUNT; s++) {
            if (only_size && strcmp(only_size, sizes[s].label) != 0)
                continue;
            for (size_t k = 0; k < bench_method_count; k++) {
                size_t m = (k + (size_t)round) % bench_method_count; /* rotate the order */
                if (!only || strcmp(only, bench_methods[m].key) == 0 || m == 1)
                    run_once(dir, m, s, round, shared_us);
            }
        }
        fprintf(stderr, "round %d of %d done\n", round + 1, rounds);
    }

    uint64_t lost_total = 0;
    int died_total = 0;
    double write_us[SIZE_COUNT], mmlog_us[SIZE_COUNT];
    for (size_t s = 0; s < SIZE_COUNT; s++) {
        if (only_size && strcmp(only_size, sizes[s].label) != 0)
            continue;
        printf("record size %s B, %u appends per process\n", sizes[s].label, sizes[s].count);
        printf("  %-24s %10s %10s %12s %10s %14s\n", "method", "us/call", "GB/s", "vs write",
               "lost", "published us");
        double wus = median(results[1][s].us, rounds);
        write_us[s] = wus;
        for (size_t m = 0; m < bench_method_count; m++) {
            struct outcome *o = &results[m][s];
            double us = median(o->us, rounds);
            if (m == 0)
                mmlog_us[s] = us;
            char pub[32] = "-";
            if (published[m][s] > 0)
                snprintf(pub, sizeof pub, "%.2f", published[m][s]);
            printf("  %-24s %10.3f %10.3f %11.2fx %10llu %14s%s\n", bench_methods[m].name, us,
                   median(o->gbps, rounds), wus / us, (unsigned long long)(o->lost + o->corrupt),
                   pub, o->died ? "  WRITERS DIED" : "");
            lost_total += o->lost + o->corrupt;
            died_total += o->died;
        }
        printf("\n");
    }
    printf("(published: the mmlog sketch's table; 'vs write' is write+O_APPEND time / method "
           "time)\n\n");
    for (size_t s = 0; s < SIZE_COUNT; s++)
        if (!only_size || strcmp(only_size, sizes[s].label) == 0)
            printf("result mmlog_vs_write_%s %.2f x\n", sizes[s].label, write_us[s] / mmlog_us[s]);
    for (size_t s = 0; s < SIZE_COUNT; s++)
        if (!only_size || strcmp(only_size, sizes[s].label) == 0)
            printf("result mmlog_us_%s %.3f us\n", sizes[s].label, mmlog_us[s]);
    printf("result mmlog_lost_records %llu records\n", (unsigned long long)lost_total);
    printf("result mmlog_writers_died %d processes\n", died_total);
    return lost_total || died_total ? 1 : 0;
}
