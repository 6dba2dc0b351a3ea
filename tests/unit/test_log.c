/* Tests for keel/log.h: records round-trip through the shared log with their
 * metadata; every supported conversion formats as printf would; run-time
 * and compile-time level filtering; the stderr fallback; threads, fork, the
 * fiber hook, errno, and long strings. */
#define _GNU_SOURCE
#include "keel/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keel/mmlog.h"
#include "kt.h"

void log_below_floor(void);

static char log_path[512];

static void use_fresh_log(void)
{
    snprintf(log_path, sizeof log_path, "%s/keel.log", kt_tmpdir());
    char meta[600];
    snprintf(meta, sizeof meta, "%s.meta", log_path);
    unlink(log_path);
    unlink(meta);
    kl_log_set_level(KL_LEVEL_DEBUG);
    kl_log_open(log_path);
}

/* Read every log record back; returns how many, formatted messages in msgs. */
static int read_back(struct kl_log_entry *entries, char msgs[][512], int max)
{
    struct kl_mmlog *log;
    struct kl_mmlog_options ro = {.flags = KL_MMLOG_READONLY};
    if (kl_mmlog_open(log_path, &ro, &log) != 0)
        return -1;
    struct kl_mmlog_reader *r;
    kl_mmlog_reader_open(log, 0, &r);
    struct kl_mmlog_record rec;
    int n = 0;
    static unsigned char copies[64][4096];
    while (kl_mmlog_next(r, &rec) == 1 && n < max) {
        if (rec.type != KL_LOG_TYPE_RECORD || rec.len > sizeof copies[0])
            continue;
        memcpy(copies[n % 64], rec.data, rec.len);
        if (kl_log_decode(copies[n % 64], rec.len, &entries[n]) != 0)
            return -2;
        kl_log_format_message(&entries[n], msgs[n], 512);
        n++;
    }
    kl_mmlog_reader_close(r);
    kl_mmlog_close(log);
    return n;
}

static struct kl_log_entry entries[64];
static char msgs[64][512];

KT_TEST(log_record_round_trip)
{
    use_fresh_log();
    int line = __LINE__ + 1;
    KL_INFO("request %d from %s took %llu ns", 42, "client-7", 1234ULL);
    KT_REQUIRE(read_back(entries, msgs, 64) == 1);
    KT_EQ_STR(msgs[0], "request 42 from client-7 took 1234 ns");
    KT_EQ_I(entries[0].level, KL_LEVEL_INFO);
    KT_EQ_I(entries[0].pid, getpid());
    KT_EQ_I(entries[0].tid, gettid());
    KT_EQ_U(entries[0].line, line);
    KT_CHECK(entries[0].file_len > 10 &&
             memcmp(entries[0].file + entries[0].file_len - 10, "test_log.c", 10) == 0);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t wall = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
    KT_CHECK(entries[0].time_ns <= wall && wall - entries[0].time_ns < 2000000000u);
    char line_text[600];
    kl_log_format_line(&entries[0], line_text, sizeof line_text);
    KT_CHECK(strstr(line_text, " INFO ") != NULL);
    KT_CHECK(strstr(line_text, "test_log.c:") != NULL);
    KT_CHECK(strstr(line_text, "request 42 from client-7 took 1234 ns") != NULL);
}

/* Each call is compared with snprintf of the same format and arguments. */
#define SAME_AS_PRINTF(fmt, ...)                                                                   \
    do {                                                                                           \
        use_fresh_log();                                                                           \
        KL_WARN(fmt, __VA_ARGS__);                                                                 \
        char expect[512];                                                                          \
        snprintf(expect, sizeof expect, fmt, __VA_ARGS__);                                         \
        KT_REQUIRE(read_back(entries, msgs, 64) == 1);                                             \
        KT_EQ_STR(msgs[0], expect);                                                                \
    } while (0)

KT_TEST(log_conversions_match_printf)
{
    SAME_AS_PRINTF("%5d|%-5u|%x|%X|%o|%c|%i", -12, 7u, 0xbeefu, 0xbeefu, 8u, 'k', 3);
    SAME_AS_PRINTF("%ld %lld %zu %jd %hhd %hu %lu", -5L, -6LL, (size_t)7, (intmax_t)-8,
                   (signed char)-9, (unsigned short)10, 11UL);
    SAME_AS_PRINTF("%.3f %e %g %10.2f %a", 3.14159, 1e-7, 2.5, -1.0, 0.5);
    SAME_AS_PRINTF("%Lf %.2Lg", 1.25L, 3e10L);
    SAME_AS_PRINTF("%s|%.3s|%10s|%-10s|", "abc", "abcdef", "right", "left");
    SAME_AS_PRINTF("%p %p", (void *)0x1234, (void *)NULL);
    SAME_AS_PRINTF("100%% of %d", 5);
    SAME_AS_PRINTF("%*d|%-*.*s|", 6, 42, 8, 2, "xyzzy");
    SAME_AS_PRINTF("%s", (const char *)"");
}

KT_TEST(log_null_string_and_errno)
{
    use_fresh_log();
    const char *nothing = NULL;
    errno = ENOENT;
    KL_ERROR("open: %m (%s)", nothing);
    KT_EQ_I(errno, ENOENT); /* a log call leaves errno alone */
    KT_REQUIRE(read_back(entries, msgs, 64) == 1);
    char expect[200];
    snprintf(expect, sizeof expect, "open: %s ((null))", strerror(ENOENT));
    KT_EQ_STR(msgs[0], expect);
}

KT_TEST(log_no_arguments)
{
    use_fresh_log();
    KL_DEBUG("plain text");
    KT_REQUIRE(read_back(entries, msgs, 64) == 1);
    KT_EQ_STR(msgs[0], "plain text");
    KT_EQ_I(entries[0].level, KL_LEVEL_DEBUG);
}

KT_TEST(log_levels_filter_at_run_time)
{
    use_fresh_log();
    kl_log_set_level(KL_LEVEL_WARN);
    KL_DEBUG("no %d", 1);
    KL_INFO("no %d", 2);
    KL_WARN("yes %d", 3);
    KL_ERROR("yes %d", 4);
    kl_log_set_level(KL_LEVEL_INFO);
    KT_REQUIRE(read_back(entries, msgs, 64) == 2);
    KT_EQ_STR(msgs[0], "yes 3");
    KT_EQ_STR(msgs[1], "yes 4");
}

KT_TEST(log_levels_below_compile_floor_vanish)
{
    use_fresh_log();
    log_below_floor(); /* built with KL_LOG_FLOOR = ERROR, level DEBUG at run time */
    KT_REQUIRE(read_back(entries, msgs, 64) == 1);
    KT_EQ_STR(msgs[0], "kept 4");
}

KT_TEST(log_long_string_is_truncated_not_lost)
{
    use_fresh_log();
    static char big[20000];
    memset(big, 'q', sizeof big - 1);
    KL_INFO("big %s end %d", big, 9);
    KT_REQUIRE(read_back(entries, msgs, 64) == 1);
    KT_CHECK(strncmp(msgs[0], "big qqqq", 8) == 0);
}

static uint64_t fiber77(void) { return 77; }

KT_TEST(log_fiber_hook_is_recorded)
{
    use_fresh_log();
    kl_log_set_fiber_hook(fiber77);
    KL_INFO("in a fiber");
    kl_log_set_fiber_hook(NULL);
    KL_INFO("not in a fiber");
    KT_REQUIRE(read_back(entries, msgs, 64) == 2);
    KT_EQ_U(entries[0].fiber, 77);
    KT_EQ_U(entries[1].fiber, 0);
}
static void *thread_logs(void *arg)
{
    for (int i = 0; i < 1000; i++)
        KL_INFO("thread %d record %d", (int)(intptr_t)arg, i);
    return NULL;
}

KT_TEST(log_from_threads_and_a_forked_child)
{
    use_fresh_log();
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, thread_logs, (void *)(intptr_t)i);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    pid_t pid = fork();
    if (pid == 0) {
        KL_INFO("from the child");
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    KT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    struct kl_mmlog *log;
    KT_REQUIRE(kl_mmlog_open(log_path, NULL, &log) == 0);
    struct kl_mmlog_stats st;
    KT_EQ_I(kl_mmlog_check(log, &st), 0);
    KT_EQ_U(st.records, 4001);
    kl_mmlog_close(log);
    int child_found = 0;
    struct kl_mmlog_reader *r;
    struct kl_mmlog_options ro = {.flags = KL_MMLOG_READONLY};
    KT_REQUIRE(kl_mmlog_open(log_path, &ro, &log) == 0);
    kl_mmlog_reader_open(log, 0, &r);
    struct kl_mmlog_record rec;
    while (kl_mmlog_next(r, &rec) == 1) {
        struct kl_log_entry e;
        KT_REQUIRE(kl_log_decode(rec.data, rec.len, &e) == 0);
        if (e.pid == pid) {
            child_found++;
            KT_EQ_I(e.tid, pid);
        }
    }
    KT_EQ_I(child_found, 1);
    kl_mmlog_reader_close(r);
    kl_mmlog_close(log);
}

/* With no usable shared log, records go to stderr as text. */
static void log_to_dash(void)
{
    kl_log_open("-");
    KL_ERROR("disk %s is %d%% full", "sda", 97);
}

static void log_to_unwritable(void)
{
    kl_log_open("/nonexistent-dir/keel.log");
    KL_WARN("still heard %d", 5);
}

KT_TEST(log_falls_back_to_stderr)
{
    char out[4096];
    kt_capture_stderr(log_to_dash, out, sizeof out);
    KT_CHECK(strstr(out, " ERROR ") != NULL);
    KT_CHECK(strstr(out, "disk sda is 97% full") != NULL);
    kt_capture_stderr(log_to_unwritable, out, sizeof out);
    KT_CHECK(strstr(out, "cannot open the log /nonexistent-dir/keel.log") != NULL);
    KT_CHECK(strstr(out, "still heard 5") != NULL);
}
