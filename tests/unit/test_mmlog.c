/* Tests for keel/mmlog.h in one process: append and read back, claim/commit/
 * abort, records across chunk boundaries and larger than a chunk, argument
 * errors, reopening, trim, bounded mappings, and follow. The failure modes
 * (dead processes, full disks) are in test_mmlog_crash.c. */
#include "keel/mmlog.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kt.h"

#define SMALL_CHUNK (64u * 1024)

static char log_path[512];

static struct kl_mmlog *open_log(uint64_t chunk, unsigned windows)
{
    snprintf(log_path, sizeof log_path, "%s/test.log", kt_tmpdir());
    struct kl_mmlog_options opt = {
        .flags = KL_MMLOG_CREATE, .chunk_size = chunk, .window_chunks = windows};
    struct kl_mmlog *log = NULL;
    int rc = kl_mmlog_open(log_path, &opt, &log);
    if (rc != 0)
        kt_fail(__FILE__, __LINE__, "kl_mmlog_open: %s", strerror(-rc));
    return log;
}

/* Fill `buf` with bytes derived from (seed, i) so contents can be checked. */
static void fill(unsigned char *buf, size_t len, uint32_t seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)((seed * 2654435761u + i * 40503u) >> 7);
}

static bool matches(const void *data, size_t len, uint32_t seed)
{
    static unsigned char expect[300000];
    fill(expect, len, seed);
    return memcmp(data, expect, len) == 0;
}

KT_TEST(mmlog_append_and_read_back)
{
    struct kl_mmlog *log = open_log(SMALL_CHUNK, 4);
    KT_REQUIRE(log);
    static unsigned char buf[5000];
    const int n = 2000;
    for (int i = 0; i < n; i++) {
        size_t len = (size_t)(i * 37) % 3000; /* includes 0-byte records */
        fill(buf, len, (uint32_t)i);
        KT_REQUIRE(kl_mmlog_append(log, (uint16_t)(i % 7), buf, len) == 0);
    }
    struct kl_mmlog_reader *r;
    KT_REQUIRE(kl_mmlog_reader_open(log, 0, &r) == 0);
    struct kl_mmlog_record rec;
    int got = 0;
    while (kl_mmlog_next(r, &rec) == 1) {
        KT_EQ_U(rec.len, (size_t)(got * 37) % 3000);
        KT_EQ_U(rec.type, got % 7);
        if (!matches(rec.data, rec.len, (uint32_t)got))
            kt_fail(__FILE__, __LINE__, "record %d corrupted", got);
        got++;
    }
    KT_EQ_I(got, n);
    KT_EQ_U(kl_mmlog_reader_offset(r), kl_mmlog_end(log));
    kl_mmlog_reader_close(r);
    struct kl_mmlog_stats st;
    KT_EQ_I(kl_mmlog_check(log, &st), 0);
    KT_EQ_U(st.records, n);
    KT_EQ_U(st.damaged, 0);
    KT_EQ_U(st.unfinished, 0);
    kl_mmlog_close(log);
}

KT_TEST(mmlog_claim_commit_and_abort)
{
    struct kl_mmlog *log = open_log(SMALL_CHUNK, 4);
    KT_REQUIRE(log);
    struct kl_mmlog_claim c;
    KT_REQUIRE(kl_mmlog_claim(log, 1, 11, &c) == 0);
    memcpy(c.data, "hello world", 11);
    /* not visible before commit */
    struct kl_mmlog_reader *r;
    struct kl_mmlog_record rec;
    KT_REQUIRE(kl_mmlog_reader_open(log, 0, &r) == 0);
    KT_EQ_I(kl_mmlog_next(r, &rec), 0);
    kl_mmlog_commit(log, &c);
    KT_EQ_I(kl_mmlog_next(r, &rec), 1);
    KT_CHECK(rec.len == 11 && memcmp(rec.data, "hello world", 11) == 0);
    /* an aborted claim is padding that readers skip */
    KT_REQUIRE(kl_mmlog_claim(log, 1, 100, &c) == 0);
    kl_mmlog_abort(log, &c);
    KT_REQUIRE(kl_mmlog_append(log, 2, "after", 5) == 0);
    KT_EQ_I(kl_mmlog_next(r, &rec), 1);
    KT_CHECK(rec.type == 2 && rec.len == 5 && memcmp(rec.data, "after", 5) == 0);
    KT_EQ_I(kl_mmlog_next(r, &rec), 0);
    kl_mmlog_reader_close(r);
    struct kl_mmlog_stats st;
    KT_EQ_I(kl_mmlog_check(log, &st), 0);
    KT_EQ_U(st.records, 2);
    KT_EQ_U(st.padding, 1);
    kl_mmlog_close(log);
}

KT_TEST(mmlog_records_larger_than_a_chunk)
{
    struct kl_mmlog *log = open_log(SMALL_CHUNK, 2);
    KT_REQUIRE(log);
    static unsigned char big[300000];
    size_t sizes[] = {SMALL_CHUNK - 16, SMALL_CHUNK - 15, SMALL_CHUNK, 3 * SMALL_CHUNK + 5, 300000};
    for (size_t i = 0; i < 5; i++) {
        fill(big, sizes[i], (uint32_t)(100 + i));
        KT_REQUIRE(kl_mmlog_append(log, 3, big, sizes[i]) == 0);
        KT_REQUIRE(kl_mmlog_append(log, 4, "x", 1) == 0);
    }
    struct kl_mmlog_claim c;
    KT_EQ_I(kl_mmlog_claim(log, 1, SMALL_CHUNK, &c), -EMSGSIZE);
    struct kl_mmlog_reader *r;
    KT_REQUIRE(kl_mmlog_reader_open(log, 0, &r) == 0);
    struct kl_mmlog_record rec;
    for (size_t i = 0; i < 5; i++) {
        KT_REQUIRE(kl_mmlog_next(r, &rec) == 1);
        KT_EQ_U(rec.len, sizes[i]);
        KT_CHECK(matches(rec.data, rec.len, (uint32_t)(100 + i)));
        KT_REQUIRE(kl_mmlog_next(r, &rec) == 1);
        KT_CHECK(rec.len == 1 && ((const char *)rec.data)[0] == 'x');
    }
    kl_mmlog_reader_close(r);
    kl_mmlog_close(log);
}

KT_TEST(mmlog_appendv_joins_buffers)
{
    struct kl_mmlog *log = open_log(SMALL_CHUNK, 4);
    KT_REQUIRE(log);
    struct iovec iov[3] = {{"abc", 3}, {"", 0}, {"defgh", 5}};
    KT_REQUIRE(kl_mmlog_appendv(log, 9, iov, 3) == 0);
    struct kl_mmlog_reader *r;
    struct kl_mmlog_record rec;
    KT_REQUIRE(kl_mmlog_reader_open(log, 0, &r) == 0);
    KT_REQUIRE(kl_mmlog_next(r, &rec) == 1);
    KT_CHECK(rec.len == 8 && memcmp(rec.data, "abcdefgh", 8) == 0);
    kl_mmlog_reader_close(r);
    kl_mmlog_close(log);
}

KT_TEST(mmlog_argument_errors)
{
    struct kl_mmlog *log = open_log(SMALL_CHUNK, 4);
    KT_REQUIRE(log);
    KT_EQ_I(kl_mmlog_append(log, KL_MMLOG_TYPE_RESERVED, "x", 1), -EINVAL);
    KT_EQ_I(kl_mmlog_append(log, 0xFFFF, "x", 1), -EINVAL);
    KT_EQ_I(kl_mmlog_append(log, 1, "x", (size_t)KL_MMLOG_MAX_PAYLOAD + 1), -EMSGSIZE);
    struct kl_mmlog_reader *r;
    KT_EQ_I(kl_mmlog_reader_open(log, 3, &r), -EINVAL);
    kl_mmlog_close(log);

    struct kl_mmlog *missing = NULL;
    char path[600];
    snprintf(path, sizeof path, "%s/nope.log", kt_tmpdir());
    KT_EQ_I(kl_mmlog_open(path, NULL, &missing), -ENOENT); /* no CREATE */
    struct kl_mmlog_options bad_chunk = {.flags = KL_MMLOG_CREATE, .chunk_size = 12345};
    KT_EQ_I(kl_mmlog_open(path, &bad_chunk, &missing), -EINVAL);

    /* a file that is not a log */
    snprintf(path, sizeof path, "%s/junk.log", kt_tmpdir());
    char meta[620];
    snprintf(meta, sizeof meta, "%s.meta", path);
    FILE *f = fopen(meta, "w");
    KT_REQUIRE(f);
    for (int i = 0; i < 200000; i++)
        fputc('j', f);
    fclose(f);
    struct kl_mmlog_options opt = {.flags = KL_MMLOG_CREATE};
    KT_EQ_I(kl_mmlog_open(path, &opt, &missing), -EPROTO); /* left alone, not initialised */
}

KT_TEST(mmlog_reopen_keeps_records_and_readonly_cannot_write)
{
    struct kl_mmlog *log = open_log(SMALL_CHUNK, 4);
    KT_REQUIRE(log);
    for (int i = 0; i < 100; i++)
        KT_REQUIRE(kl_mmlog_append(log, 1, &i, sizeof i) == 0);
    uint64_t end = kl_mmlog_end(log);
    kl_mmlog_close(log);

    struct kl_mmlog_options ro = {.flags = KL_MMLOG_READONLY};
    KT_REQUIRE(kl_mmlog_open(log_path, &ro, &log) == 0);
    KT_EQ_U(kl_mmlog_end(log), end);
    KT_EQ_I(kl_mmlog_append(log, 1, "x", 1), -EBADF);
    struct kl_mmlog_stats st;
    KT_EQ_I(kl_mmlog_check(log, &st), 0);
    KT_EQ_U(st.records, 100);
    kl_mmlog_close(log);

    log = open_log(0, 0);
    KT_REQUIRE(log);
    int v = 100;
    KT_REQUIRE(kl_mmlog_append(log, 1, &v, sizeof v) == 0);
    struct kl_mmlog_reader *r;
    struct kl_mmlog_record rec;
    KT_REQUIRE(kl_mmlog_reader_open(log, 0, &r) == 0);
    int i = 0;
    while (kl_mmlog_next(r, &rec) == 1) {
        KT_EQ_I(*(const int *)rec.data, i);
        i++;
    }
    KT_EQ_I(i, 101);
    kl_mmlog_reader_close(r);
    kl_mmlog_close(log);
}

static unsigned count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    unsigned n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* 1,600 chunks written, yet the number of mappings stays bounded. */
KT_TEST(mmlog_mappings_stay_bounded)
{
    struct kl_mmlog *log = open_log(SMALL_CHUNK, 4);
    KT_REQUIRE(log);
    unsigned before = count_maps();
    static unsigned char buf[4000];
    for (int i = 0; i < 25000; i++) /* 100 MB through 64 KiB chunks */
        KT_REQUIRE(kl_mmlog_append(log, 1, buf, sizeof buf) == 0);
    unsigned after = count_maps();
    KT_CHECK(after <= before + 4);
    struct kl_mmlog_reader *r;
    struct kl_mmlog_record rec;
    KT_REQUIRE(kl_mmlog_reader_open(log, 0, &r) == 0);
    int n = 0;
    while (kl_mmlog_next(r, &rec) == 1)
        n++;
    KT_EQ_I(n, 25000);
    KT_CHECK(count_maps() <= before + 5); /* the reader keeps one window */
    kl_mmlog_reader_close(r);
    kl_mmlog_close(log);
}

KT_TEST(mmlog_trim_is_idempotent_and_waits_for_other_handles)
{
    struct kl_mmlog *log = open_log(SMALL_CHUNK, 4);
    KT_REQUIRE(log);
    for (int i = 0; i < 10; i++)
        KT_REQUIRE(kl_mmlog_append(log, 1, "0123456789", 10) == 0);
    struct kl_mmlog *other;
    KT_REQUIRE(kl_mmlog_open(log_path, NULL, &other) == 0);
    KT_EQ_I(kl_mmlog_trim(log), -EBUSY); /* never shrink under a live handle */
    kl_mmlog_close(other);
    KT_EQ_I(kl_mmlog_trim(log), 0);
    struct stat st;
    KT_REQUIRE(stat(log_path, &st) == 0);
    KT_EQ_U(st.st_size, 4096); /* 10 records of 32 bytes: one page */
    KT_EQ_I(kl_mmlog_trim(log), 0);
    KT_REQUIRE(stat(log_path, &st) == 0);
    KT_EQ_U(st.st_size, 4096);
    /* appends go on after a trim */
    static unsigned char buf[9000];
    for (int i = 0; i < 20; i++)
        KT_REQUIRE(kl_mmlog_append(log, 1, buf, sizeof buf) == 0);
    struct kl_mmlog_stats s;
    KT_EQ_I(kl_mmlog_check(log, &s), 0);
    KT_EQ_U(s.records, 30);
    kl_mmlog_close(log);
}

/* A follower blocks in kl_mmlog_wait and sees every record a writer process
 * appends, without spinning (its CPU time stays small). */
KT_TEST(mmlog_follow_live_log)
{
    struct kl_mmlog *log = open_log(SMALL_CHUNK, 4);
    KT_REQUIRE(log);
    const int n = 300;
    pid_t pid = fork();
    KT_REQUIRE(pid >= 0);
    if (pid == 0) {
        struct kl_mmlog *w;
        if (kl_mmlog_open(log_path, NULL, &w) != 0)
            _exit(1);
        for (int i = 0; i < n; i++) {
            if (kl_mmlog_append(w, 1, &i, sizeof i) != 0)
                _exit(2);
            usleep(1000);
        }
        kl_mmlog_close(w);
        _exit(0);
    }
    struct kl_mmlog_reader *r;
    KT_REQUIRE(kl_mmlog_reader_open(log, 0, &r) == 0);
    struct timespec cpu0, cpu1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu0);
    int got = 0;
    while (got < n) {
        struct kl_mmlog_record rec;
        int rc = kl_mmlog_next(r, &rec);
        if (rc == 1) {
            KT_EQ_I(*(const int *)rec.data, got);
            got++;
        } else if (rc == 0) {
            if (kl_mmlog_wait(r, 5000) == 0)
                break; /* 5 s without news: the writer is stuck */
        } else {
            kt_fail(__FILE__, __LINE__, "next: %d", rc);
            break;
        }
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu1);
    KT_EQ_I(got, n);
    int status;
    waitpid(pid, &status, 0);
    KT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    double cpu_ms = (double)(cpu1.tv_sec - cpu0.tv_sec) * 1e3 + (cpu1.tv_nsec - cpu0.tv_nsec) / 1e6;
    printf("  follower used %.1f ms of CPU over %d records (~%d ms of writing)\n", cpu_ms, n, n);
    KT_CHECK(cpu_ms < 150); /* a spinning follower would burn ~all of it */
    kl_mmlog_reader_close(r);
    kl_mmlog_close(log);
}
