/* mmlog's failure modes, each reproduced with real processes: a creator that
 * dies while initialising, a lock holder that dies, writers that die before,
 * during and after their header, writers killed with SIGKILL at random
 * moments, full file systems (RLIMIT_FSIZE, and a small tmpfs), a file
 * system without fallocate (seccomp makes it fail), a trim while another
 * process writes, and many processes racing to create one log.
 * After each, recovery must leave a log that check finds clean, with every
 * record whose append returned. */
#define _GNU_SOURCE
#include "keel/mmlog.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kt.h"
#include "mmlog_internal.h"

#define SMALL_CHUNK (64u * 1024)

static char log_path[1024];

static struct kl_mmlog *open_at(const char *dir, unsigned flags)
{
    snprintf(log_path, sizeof log_path, "%s/crash.log", dir);
    struct kl_mmlog_options opt = {.flags = flags | KL_MMLOG_CREATE, .chunk_size = SMALL_CHUNK};
    struct kl_mmlog *log = NULL;
    int rc = kl_mmlog_open(log_path, &opt, &log);
    if (rc != 0)
        kt_fail(__FILE__, __LINE__, "kl_mmlog_open: %s", strerror(-rc));
    return log;
}

/* The identity of a process that has exited (fork, let it exit, reap it). */
static mmlog_owner dead_owner(void)
{
    int fds[2];
    if (pipe(fds) != 0)
        abort();
    pid_t pid = fork();
    if (pid == 0) {
        mmlog_owner me = mmlog_self();
        if (write(fds[1], &me, sizeof me) != sizeof me)
            _exit(1);
        _exit(0);
    }
    mmlog_owner owner = 0;
    if (read(fds[0], &owner, sizeof owner) != sizeof owner)
        abort();
    waitpid(pid, NULL, 0);
    close(fds[0]);
    close(fds[1]);
    return owner;
}

/* Count the records of a log, asserting that each is an int sequence tag. */
static int count_records(struct kl_mmlog *log)
{
    struct kl_mmlog_reader *r;
    if (kl_mmlog_reader_open(log, 0, &r) != 0)
        return -1;
    struct kl_mmlog_record rec;
    int n = 0, rc;
    while ((rc = kl_mmlog_next(r, &rec)) == 1)
        n++;
    kl_mmlog_reader_close(r);
    return rc < 0 ? rc : n;
}

static void expect_clean(struct kl_mmlog *log, uint64_t records)
{
    struct kl_mmlog_stats st;
    int rc = kl_mmlog_check(log, &st);
    KT_EQ_I(rc, 0);
    KT_EQ_U(st.damaged, 0);
    KT_EQ_U(st.unfinished, 0);
    KT_EQ_U(st.records, records);
}

static int wait_child(pid_t pid)
{
    int status;
    waitpid(pid, &status, 0);
    return status;
}

/* The creator died between winning the right to initialise and publishing
 * READY: the next opener initialises the log afresh. */
KT_TEST(creator_dies_during_initialisation)
{
    snprintf(log_path, sizeof log_path, "%s/half.log", kt_tmpdir());
    char meta_path[1100];
    snprintf(meta_path, sizeof meta_path, "%s.meta", log_path);
    int fd = open(meta_path, O_RDWR | O_CREAT, 0644);
    KT_REQUIRE(fd >= 0);
    KT_REQUIRE(ftruncate(fd, sizeof(struct mmlog_meta)) == 0);
    struct mmlog_meta *m = mmap(NULL, sizeof *m, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    KT_REQUIRE(m != MAP_FAILED);
    m->init_owner = dead_owner();
    m->state = MMLOG_STATE_INITIALIZING;
    m->chunk_size = 12345; /* half-written garbage */
    munmap(m, sizeof *m);
    close(fd);

    struct kl_mmlog_options opt = {.flags = KL_MMLOG_CREATE, .chunk_size = SMALL_CHUNK};
    struct kl_mmlog *log = NULL;
    KT_REQUIRE(kl_mmlog_open(log_path, &opt, &log) == 0);
    KT_REQUIRE(kl_mmlog_append(log, 1, "alive", 5) == 0);
    expect_clean(log, 1);
    kl_mmlog_close(log);
}

/* Sixteen processes race to create one log; exactly one initialises it and
 * every append of every process is there. */
KT_TEST(many_processes_race_to_create)
{
    snprintf(log_path, sizeof log_path, "%s/race.log", kt_tmpdir());
    int go[2];
    KT_REQUIRE(pipe(go) == 0);
    pid_t pids[16];
    for (int i = 0; i < 16; i++) {
        pids[i] = fork();
        KT_REQUIRE(pids[i] >= 0);
        if (pids[i] == 0) {
            char c;
            close(go[1]);
            if (read(go[0], &c, 1) != 0) /* wait for the start: the pipe closing */
                _exit(3);
            struct kl_mmlog_options opt = {.flags = KL_MMLOG_CREATE, .chunk_size = SMALL_CHUNK};
            struct kl_mmlog *log;
            if (kl_mmlog_open(log_path, &opt, &log) != 0)
                _exit(1);
            for (int k = 0; k < 2000; k++)
                if (kl_mmlog_append(log, 1, &k, sizeof k) != 0)
                    _exit(2);
            kl_mmlog_close(log);
            _exit(0);
        }
    }
    close(go[0]);
    close(go[1]);
    for (int i = 0; i < 16; i++) {
        int status = wait_child(pids[i]);
        KT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    struct kl_mmlog *log = open_at(kt_tmpdir(), 0);
    KT_REQUIRE(log);
    snprintf(log_path, sizeof log_path, "%s/race.log", kt_tmpdir());
    kl_mmlog_close(log);
    KT_REQUIRE(kl_mmlog_open(log_path, NULL, &log) == 0);
    expect_clean(log, 16 * 2000);
    kl_mmlog_close(log);
}

/* The lock's holder died: the next writer that needs the lock takes it over. */
KT_TEST(dead_lock_holder_is_displaced)
{
    struct kl_mmlog *log = open_at(kt_tmpdir(), 0);
    KT_REQUIRE(log);
    log->meta->lock_owner = dead_owner();
    static char buf[10000];
    for (int i = 0; i < 30; i++) /* 300 KB: forces growth, which needs the lock */
        KT_REQUIRE(kl_mmlog_append(log, 1, buf, sizeof buf) == 0);
    struct kl_mmlog_info info;
    kl_mmlog_info(log, &info);
    KT_EQ_U(info.lock_takeovers, 1);
    KT_EQ_I(info.lock_owner, 0);
    expect_clean(log, 30);
    kl_mmlog_close(log);
}

/* How a writer child dies, relative to its claim. */
enum death_point { DIE_AFTER_FETCH_ADD, DIE_AFTER_OFFSET, DIE_AFTER_HEADER };

static void die_while_writing(enum death_point point)
{
    struct kl_mmlog *log;
    if (kl_mmlog_open(log_path, NULL, &log) != 0)
        _exit(1);
    kl_mmlog_append(log, 1, "before", 6);
    struct mmlog_slot *slot = log->slot;
    uint64_t total = 64;
    slot->claim_len = total;
    __atomic_store_n(&slot->state, MMLOG_SLOT_CLAIMING, __ATOMIC_RELAXED);
    uint64_t offset = __atomic_fetch_add(&log->meta->cursor, total, __ATOMIC_ACQ_REL);
    if (point == DIE_AFTER_FETCH_ADD)
        _exit(0); /* slot CLAIMING, header zero: the hardest case */
    slot->claim_offset = offset;
    __atomic_store_n(&slot->state, MMLOG_SLOT_WRITING, __ATOMIC_RELEASE);
    if (point == DIE_AFTER_OFFSET)
        _exit(0);
    struct kl_mmlog_claim c; /* a real claim, never committed */
    if (kl_mmlog_claim(log, 1, 40, &c) != 0)
        _exit(2);
    memset(c.data, 'z', 20);
    _exit(0);
}

static void check_death(enum death_point point)
{
    struct kl_mmlog *log = open_at(kt_tmpdir(), KL_MMLOG_NO_RECOVER);
    KT_REQUIRE(log);
    pid_t pid = fork();
    KT_REQUIRE(pid >= 0);
    if (pid == 0)
        die_while_writing(point);
    KT_REQUIRE(WIFEXITED(wait_child(pid)));
    for (int i = 0; i < 50; i++)
        KT_REQUIRE(kl_mmlog_append(log, 2, &i, sizeof i) == 0);
    /* Readers stop at the abandoned claim until recovery. */
    KT_EQ_I(count_records(log), 1);
    struct kl_mmlog_stats st;
    kl_mmlog_check(log, &st);
    KT_CHECK(st.abandoned >= 1);
    KT_EQ_I(kl_mmlog_recover(log, &st), 0);
    KT_CHECK(st.recovered >= 1);
    KT_EQ_U(st.slots_released, 1);
    KT_EQ_I(count_records(log), 51);
    expect_clean(log, 51);
    kl_mmlog_close(log);
}

KT_TEST(writer_dies_after_fetch_add) { check_death(DIE_AFTER_FETCH_ADD); }
KT_TEST(writer_dies_after_recording_offset) { check_death(DIE_AFTER_OFFSET); }
KT_TEST(writer_dies_after_header) { check_death(DIE_AFTER_HEADER); }

/* A follower stuck behind a dead writer's claim recovers it by itself. */
KT_TEST(follower_recovers_a_dead_claim)
{
    struct kl_mmlog *log = open_at(kt_tmpdir(), KL_MMLOG_NO_RECOVER);
    KT_REQUIRE(log);
    pid_t pid = fork();
    if (pid == 0)
        die_while_writing(DIE_AFTER_HEADER);
    wait_child(pid);
    KT_REQUIRE(kl_mmlog_append(log, 2, "next", 4) == 0);
    struct kl_mmlog_reader *r;
    KT_REQUIRE(kl_mmlog_reader_open(log, 0, &r) == 0);
    struct kl_mmlog_record rec;
    int got = 0;
    for (int spins = 0; spins < 100 && got < 2; spins++) {
        if (kl_mmlog_next(r, &rec) == 1)
            got++;
        else
            kl_mmlog_wait(r, 100);
    }
    KT_EQ_I(got, 2);
    kl_mmlog_reader_close(r);
    kl_mmlog_close(log);
}

/* Writers are SIGKILLed at random moments, over and over; after recovery the
 * log is clean and every record whose append returned is there, intact. */
struct ack_board {
    int64_t acked[8]; /* highest sequence whose append returned, per writer */
};

static void killed_writer(struct ack_board *board, int id)
{
    struct kl_mmlog *log;
    if (kl_mmlog_open(log_path, NULL, &log) != 0)
        _exit(1);
    int64_t seq = __atomic_load_n(&board->acked[id], __ATOMIC_ACQUIRE) + 1;
    for (;; seq++) {
        int64_t rec[24];
        rec[0] = id;
        rec[1] = seq;
        size_t words = 2 + (size_t)(seq % 22);
        for (size_t k = 2; k < words; k++)
            rec[k] = seq * 31 + (int64_t)k;
        if (kl_mmlog_append(log, 1, rec, words * sizeof rec[0]) != 0)
            _exit(2);
        __atomic_store_n(&board->acked[id], seq, __ATOMIC_RELEASE);
    }
}

KT_TEST(sigkill_at_random_moments_loses_nothing)
{
    struct kl_mmlog *log = open_at(kt_tmpdir(), 0);
    KT_REQUIRE(log);
    struct ack_board *board =
        mmap(NULL, sizeof *board, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    for (int w = 0; w < 4; w++)
        board->acked[w] = -1;
    srand(42);
    const int rounds = 20;
    for (int round = 0; round < rounds; round++) {
        pid_t pids[4];
        for (int w = 0; w < 4; w++) {
            pids[w] = fork();
            KT_REQUIRE(pids[w] >= 0);
            if (pids[w] == 0)
                killed_writer(board, w);
        }
        for (int w = 0; w < 4; w++) {
            struct timespec ts = {0, (long)(rand() % 8000) * 1000};
            nanosleep(&ts, NULL);
            kill(pids[w], SIGKILL);
        }
        for (int w = 0; w < 4; w++) {
            int status = wait_child(pids[w]);
            KT_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        }
        struct kl_mmlog_stats st;
        KT_EQ_I(kl_mmlog_recover(log, &st), 0);
        KT_EQ_I(kl_mmlog_check(log, &st), 0);
        KT_EQ_U(st.damaged, 0);
        KT_EQ_U(st.unfinished, 0);
    }
    /* Every acknowledged record is there exactly once, intact; a record past
     * the acknowledgement (its append was cut short by the kill after the
     * commit) may be there too. */
    int64_t next[4] = {0, 0, 0, 0};
    struct kl_mmlog_reader *r;
    KT_REQUIRE(kl_mmlog_reader_open(log, 0, &r) == 0);
    struct kl_mmlog_record rec;
    uint64_t total = 0, corrupt = 0, out_of_order = 0;
    int rc;
    while ((rc = kl_mmlog_next(r, &rec)) == 1) {
        const int64_t *v = rec.data;
        size_t words = rec.len / sizeof(int64_t);
        if (rec.len % 8 || words < 2 || v[0] < 0 || v[0] > 3 || words != 2 + (size_t)(v[1] % 22)) {
            corrupt++;
            continue;
        }
        for (size_t k = 2; k < words; k++)
            if (v[k] != v[1] * 31 + (int64_t)k)
                corrupt++;
        /* a writer's records appear in order; a restarted writer resumes
         * after its last acknowledged one, so a record after an unacked
         * one may repeat its sequence number */
        if (v[1] > next[v[0]])
            out_of_order++;
        next[v[0]] = v[1] + 1;
        total++;
    }
    KT_EQ_I(rc, 0);
    KT_EQ_U(corrupt, 0);
    KT_EQ_U(out_of_order, 0);
    for (int w = 0; w < 4; w++)
        KT_CHECK(next[w] >= board->acked[w] + 1);
    printf("  %d rounds, %llu records, acked per writer: %lld %lld %lld %lld\n", rounds,
           (unsigned long long)total, (long long)board->acked[0], (long long)board->acked[1],
           (long long)board->acked[2], (long long)board->acked[3]);
    kl_mmlog_reader_close(r);
    kl_mmlog_close(log);
}

/* A file-size limit: appends fail with -EFBIG (no SIGXFSZ, no SIGBUS) and
 * claim nothing; when the limit is lifted, appends go on. */
KT_TEST(file_size_limit_is_an_error_not_a_signal)
{
    struct kl_mmlog *log = open_at(kt_tmpdir(), 0);
    KT_REQUIRE(log);
    kl_mmlog_close(log);
    pid_t pid = fork();
    KT_REQUIRE(pid >= 0);
    if (pid == 0) {
        struct rlimit rl;
        getrlimit(RLIMIT_FSIZE, &rl);
        struct rlimit low = {1u << 20, rl.rlim_max};
        setrlimit(RLIMIT_FSIZE, &low);
        struct kl_mmlog *w;
        if (kl_mmlog_open(log_path, NULL, &w) != 0)
            _exit(10);
        static char buf[1000];
        int ok = 0, rc = 0;
        while ((rc = kl_mmlog_append(w, 1, buf, sizeof buf)) == 0)
            ok++;
        if (rc != -EFBIG)
            _exit(11);
        for (int i = 0; i < 5; i++) /* failing again and again is fine too */
            if (kl_mmlog_append(w, 1, buf, sizeof buf) != -EFBIG)
                _exit(12);
        kl_mmlog_close(w);
        setrlimit(RLIMIT_FSIZE, &rl);
        if (kl_mmlog_open(log_path, NULL, &w) != 0)
            _exit(13);
        for (int i = 0; i < 100; i++)
            if (kl_mmlog_append(w, 1, buf, sizeof buf) != 0)
                _exit(14);
        kl_mmlog_close(w);
        _exit(ok >= 900 && ok < 1100 ? 0 : 15);
    }
    int status = wait_child(pid);
    KT_CHECK(WIFEXITED(status));
    KT_EQ_I(WEXITSTATUS(status), 0);
    KT_REQUIRE(kl_mmlog_open(log_path, NULL, &log) == 0);
    struct kl_mmlog_stats st;
    KT_EQ_I(kl_mmlog_recover(log, &st), 0);
    KT_EQ_U(st.recovered, 0); /* the failed appends claimed nothing */
    KT_EQ_I(kl_mmlog_check(log, &st), 0);
    KT_EQ_U(st.unfinished, 0);
    KT_CHECK(st.records >= 1000);
    KT_EQ_I(count_records(log), (int)st.records);
    kl_mmlog_close(log);
}

/* A real full file system: a 2 MiB tmpfs. */
KT_TEST(full_tmpfs_is_an_error_not_a_signal)
{
    char mnt[300];
    snprintf(mnt, sizeof mnt, "%s/small", kt_tmpdir());
    KT_REQUIRE(mkdir(mnt, 0755) == 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=2m") != 0)
        KT_SKIP("cannot mount a tmpfs here (%s); the RLIMIT_FSIZE case covers full files",
                strerror(errno));
    struct kl_mmlog *log = open_at(mnt, 0);
    if (log) {
        static char buf[3000];
        int ok = 0, rc;
        while ((rc = kl_mmlog_append(log, 1, buf, sizeof buf)) == 0)
            ok++;
        KT_EQ_I(rc, -ENOSPC);
        KT_CHECK(ok > 300);
        struct kl_mmlog_stats st;
        KT_EQ_I(kl_mmlog_recover(log, &st), 0);
        KT_EQ_I(kl_mmlog_check(log, &st), 0);
        KT_EQ_U(st.records, ok);
        KT_EQ_U(st.damaged, 0);
        KT_EQ_I(count_records(log), ok);
        kl_mmlog_close(log);
    }
    umount2(mnt, MNT_DETACH);
}

#define NOFALLOC_RECORDS 3000 /* 3 MB of 1000-byte records: dozens of growths */

/* Without fallocate, a log is created (its meta block extended with
 * ftruncate) and its data file grows by writing zeros; every record is
 * there afterwards, read by a process that has fallocate. */
KT_TEST(file_system_without_fallocate)
{
    snprintf(log_path, sizeof log_path, "%s/nofalloc.log", kt_tmpdir());
    pid_t pid = fork();
    KT_REQUIRE(pid >= 0);
    if (pid == 0) {
        int rc = kt_refuse_syscall(__NR_fallocate, EOPNOTSUPP);
        if (rc != 0)
            _exit(20);
        int probe = open(kt_tmpdir(), O_TMPFILE | O_RDWR, 0600);
        if (probe < 0 || fallocate(probe, 0, 0, 4096) == 0 || errno != EOPNOTSUPP)
            _exit(21); /* the filter must really take fallocate away */
        close(probe);
        struct kl_mmlog_options opt = {.flags = KL_MMLOG_CREATE, .chunk_size = SMALL_CHUNK};
        struct kl_mmlog *w;
        if (kl_mmlog_open(log_path, &opt, &w) != 0)
            _exit(22);
        char buf[1000];
        memset(buf, 'x', sizeof buf);
        for (int i = 0; i < NOFALLOC_RECORDS; i++) {
            memcpy(buf, &i, sizeof i);
            if (kl_mmlog_append(w, 7, buf, sizeof buf) != 0)
                _exit(23);
        }
        kl_mmlog_close(w);
        _exit(0);
    }
    int status = wait_child(pid);
    KT_REQUIRE(WIFEXITED(status));
    if (WEXITSTATUS(status) == 20)
        KT_SKIP("seccomp filters are not available here");
    KT_EQ_I(WEXITSTATUS(status), 0);
    struct kl_mmlog *log;
    KT_REQUIRE(kl_mmlog_open(log_path, NULL, &log) == 0);
    expect_clean(log, NOFALLOC_RECORDS);
    struct kl_mmlog_reader *r;
    KT_REQUIRE(kl_mmlog_reader_open(log, 0, &r) == 0);
    struct kl_mmlog_record rec;
    int n = 0;
    while (kl_mmlog_next(r, &rec) == 1) {
        int tag;
        memcpy(&tag, rec.data, sizeof tag);
        if (rec.type != 7 || rec.len != 1000 || tag != n ||
            ((const char *)rec.data)[rec.len - 1] != 'x') {
            kt_fail(__FILE__, __LINE__, "record %d: type %u, %u bytes, tag %d", n, rec.type,
                    rec.len, tag);
            break;
        }
        n++;
    }
    KT_EQ_I(n, NOFALLOC_RECORDS);
    kl_mmlog_reader_close(r);
    kl_mmlog_close(log);
}

/* trim while another process writes: refused, and the writer is unharmed. */
KT_TEST(trim_never_shrinks_under_a_writer)
{
    struct kl_mmlog *log = open_at(kt_tmpdir(), 0);
    KT_REQUIRE(log);
    int ready[2];
    KT_REQUIRE(pipe(ready) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        struct kl_mmlog *w;
        if (kl_mmlog_open(log_path, NULL, &w) != 0)
            _exit(1);
        if (write(ready[1], "r", 1) != 1)
            _exit(2);
        static char buf[2000];
        for (int i = 0; i < 20000; i++)
            if (kl_mmlog_append(w, 1, buf, sizeof buf) != 0)
                _exit(3);
        kl_mmlog_close(w);
        _exit(0);
    }
    char c;
    KT_REQUIRE(read(ready[0], &c, 1) == 1);
    int busy = 0;
    for (int i = 0; i < 200; i++)
        busy += kl_mmlog_trim(log) == -EBUSY;
    int status = wait_child(pid);
    KT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    KT_CHECK(busy > 0);
    KT_EQ_I(kl_mmlog_trim(log), 0); /* alone now */
    expect_clean(log, 20000);
    kl_mmlog_close(log);
}

/* Liveness by pid and start time: a running process is alive, an exited one
 * is not, and a live pid with another start time (a recycled pid) is not. */
KT_TEST(owner_liveness_uses_pid_and_start_time)
{
    KT_CHECK(mmlog_owner_alive(mmlog_self()));
    KT_CHECK(!mmlog_owner_alive(dead_owner()));
    KT_CHECK(!mmlog_owner_alive(0));
    int fds[2];
    KT_REQUIRE(pipe(fds) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        mmlog_owner me = mmlog_self();
        if (write(fds[1], &me, sizeof me) != sizeof me)
            _exit(1);
        pause();
        _exit(0);
    }
    mmlog_owner child = 0;
    KT_REQUIRE(read(fds[0], &child, sizeof child) == sizeof child);
    KT_EQ_U((uint32_t)child, (uint32_t)pid);
    KT_CHECK(mmlog_owner_alive(child));
    mmlog_owner recycled = child ^ (UINT64_C(0x5a5a) << 32); /* same pid, other start */
    KT_CHECK(!mmlog_owner_alive(recycled));
    kill(pid, SIGKILL);
    wait_child(pid);
    KT_CHECK(!mmlog_owner_alive(child));
    close(fds[0]);
    close(fds[1]);
}
