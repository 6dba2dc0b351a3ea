/* mmlog at its edges: creating a log under a file-size limit, failed claims
 * that must not eat log space, a header rewritten while a reader looks at
 * it, a reader stuck behind a claim past the file's end, recovery while the
 * same handle holds a claim, and a lock that another process took over.
 * White-box where a dead writer has to be staged (mmlog_internal.h). */
#define _GNU_SOURCE
#include "keel/mmlog.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keel/clock.h"

#include "kt.h"
#include "mmlog_internal.h"

#define CHUNK (16u * 1024) /* four pages: windows turn over quickly */

static char path[1024];

static struct kl_mmlog *open_log(unsigned flags)
{
    snprintf(path, sizeof path, "%s/edge.log", kt_tmpdir());
    struct kl_mmlog_options opt = {.flags = flags | KL_MMLOG_CREATE, .chunk_size = CHUNK};
    struct kl_mmlog *log = NULL;
    int rc = kl_mmlog_open(path, &opt, &log);
    if (rc != 0)
        kt_fail(__FILE__, __LINE__, "kl_mmlog_open: %s", strerror(-rc));
    return log;
}

/* Run fn() in a child; its exit status (a signal shows as 128 + signo). */
static int in_child(int (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn());
    int status;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

static void lower_fsize_limit(rlim_t bytes)
{
    struct rlimit rl;
    getrlimit(RLIMIT_FSIZE, &rl);
    rl.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &rl);
}

/* ---- a file-size limit at creation and at every growth ------------------------- */

static int create_at_64k(void)
{
    lower_fsize_limit(64 * 1024); /* `ulimit -f 64`: the meta file alone is larger */
    struct kl_mmlog *log;
    int rc = kl_mmlog_open(path, &(struct kl_mmlog_options){.flags = KL_MMLOG_CREATE}, &log);
    return rc == -EFBIG ? 0 : 1;
}

static int create_at_1m(void)
{
    lower_fsize_limit(1u << 20); /* the meta fits; the first 4 MiB chunk does not */
    struct kl_mmlog *log;
    int rc = kl_mmlog_open(path, &(struct kl_mmlog_options){.flags = KL_MMLOG_CREATE}, &log);
    return rc == -EFBIG ? 0 : 1;
}

static int limit_lowered_after_open(void)
{
    struct kl_mmlog *log;
    if (kl_mmlog_open(path, NULL, &log) != 0)
        return 2;
    lower_fsize_limit(4 * CHUNK); /* read at the growth, not remembered from open */
    static char buf[1000];
    int rc;
    while ((rc = kl_mmlog_append(log, 1, buf, sizeof buf)) == 0)
        ;
    kl_mmlog_close(log);
    return rc == -EFBIG ? 0 : 1;
}

KT_TEST(file_size_limit_at_creation_and_after_open_is_efbig_not_sigxfsz)
{
    snprintf(path, sizeof path, "%s/limited.log", kt_tmpdir());
    KT_EQ_I(in_child(create_at_64k), 0);
    KT_EQ_I(in_child(create_at_1m), 0);
    struct kl_mmlog *log = open_log(0);
    KT_REQUIRE(log);
    kl_mmlog_close(log);
    KT_EQ_I(in_child(limit_lowered_after_open), 0);
}

/* ---- failed claims do not advance the cursor ------------------------------------ */

static int append_on_a_full_file(void)
{
    struct kl_mmlog *log;
    if (kl_mmlog_open(path, NULL, &log) != 0)
        return 2;
    lower_fsize_limit(8 * CHUNK);
    static char buf[1000];
    int rc;
    while ((rc = kl_mmlog_append(log, 1, buf, sizeof buf)) == 0)
        ;
    uint64_t end = kl_mmlog_end(log);
    for (int i = 0; i < 1000; i++) /* a logger that goes on trying */
        if (kl_mmlog_append(log, 1, buf, sizeof buf) != rc)
            return 3;
    int ok = rc == -EFBIG && kl_mmlog_end(log) == end;
    kl_mmlog_close(log);
    return ok ? 0 : 1;
}

KT_TEST(failed_appends_do_not_consume_log_space)
{
    struct kl_mmlog *log = open_log(0);
    KT_REQUIRE(log);
    kl_mmlog_close(log);
    KT_EQ_I(in_child(append_on_a_full_file), 0);
    KT_REQUIRE(kl_mmlog_open(path, NULL, &log) == 0);
    struct kl_mmlog_stats st;
    KT_EQ_I(kl_mmlog_check(log, &st), 0);
    KT_EQ_U(st.unfinished, 0); /* no hole for recovery to walk */
    kl_mmlog_close(log);
}

/* ---- a header rewritten under a reader ------------------------------------------- */

static struct kl_mmlog *race_log;
static int race_stop;
static uint64_t race_ms = 500;

static void *abort_loop(void *arg)
{
    (void)arg;
    struct kl_mmlog *w;
    if (kl_mmlog_open(path, NULL, &w) != 0)
        return (void *)1;
    uint64_t t0 = kl_now();
    while (kl_now() - t0 < race_ms * 1000000ull && !__atomic_load_n(&race_stop, __ATOMIC_RELAXED)) {
        struct kl_mmlog_claim c;
        if (kl_mmlog_claim(w, 1, 1 + (kl_now() & 255), &c) != 0)
            break;
        kl_mmlog_abort(w, &c); /* type, length and check rewritten as padding */
    }
    __atomic_store_n(&race_stop, 1, __ATOMIC_RELAXED);
    kl_mmlog_close(w);
    return NULL;
}

/* Claims aborted as fast as possible while a reader follows them: the reader
 * must never see a mixture of the old and the new header (-EBADMSG). */
KT_TEST(abort_never_shows_a_reader_a_torn_header)
{
    if (getenv("RACE_MS"))
        race_ms = strtoull(getenv("RACE_MS"), NULL, 10);
    race_log = open_log(0);
    KT_REQUIRE(race_log);
    race_stop = 0;
    struct kl_mmlog_reader *r;
    KT_REQUIRE(kl_mmlog_reader_open(race_log, 0, &r) == 0);
    pthread_t th;
    KT_REQUIRE(pthread_create(&th, NULL, abort_loop, NULL) == 0);
    long polls = 0, bad = 0;
    struct kl_mmlog_record rec;
    while (!__atomic_load_n(&race_stop, __ATOMIC_RELAXED)) {
        int rc = kl_mmlog_next(r, &rec);
        polls++;
        if (rc < 0) {
            bad++;
            break;
        }
    }
    __atomic_store_n(&race_stop, 1, __ATOMIC_RELAXED);
    pthread_join(th, NULL);
    printf("  %ld polls, reader at %llu\n", polls, (unsigned long long)kl_mmlog_reader_offset(r));
    KT_EQ_I(bad, 0);
    kl_mmlog_reader_close(r);
    kl_mmlog_close(race_log);
}

/* ---- every state of a header being padded, as a reader sees it ------------------ */

/* The header's page is write-protected in the writer's mapping; each store
 * to it faults, is let through, and traps right after (the trap flag), and
 * the trap handler lets a reader (through a mapping of its own) look at
 * the header as it is between two stores: the reader must never find it
 * damaged. Deterministic, where racing threads only rarely hit the window. */
static struct kl_mmlog_reader *probe_reader;
static char *probe_page;
static long probe_stores, probe_bad;

#if defined(__x86_64__)
#include <sys/mman.h>
#include <ucontext.h>

#define TRAP_FLAG 0x100

static void on_store_fault(int sig, siginfo_t *si, void *ctx)
{
    char *addr = si->si_addr;
    if (addr < probe_page || addr >= probe_page + 4096) {
        signal(sig, SIG_DFL); /* a real crash: let it happen */
        return;
    }
    mprotect(probe_page, 4096, PROT_READ | PROT_WRITE);
    ((ucontext_t *)ctx)->uc_mcontext.gregs[REG_EFL] |= TRAP_FLAG; /* trap after this store */
}

static void on_store_done(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)si;
    ((ucontext_t *)ctx)->uc_mcontext.gregs[REG_EFL] &= ~TRAP_FLAG;
    probe_stores++;
    struct kl_mmlog_record rec;
    if (kl_mmlog_next(probe_reader, &rec) < 0)
        probe_bad++;
    mprotect(probe_page, 4096, PROT_READ);
}

KT_TEST(a_reader_never_sees_a_header_damaged_while_it_becomes_padding)
{
    struct kl_mmlog *log = open_log(0);
    KT_REQUIRE(log);
    struct sigaction sa = {.sa_flags = SA_SIGINFO}, old_segv, old_trap;
    sa.sa_sigaction = on_store_fault;
    sigaction(SIGSEGV, &sa, &old_segv);
    sa.sa_sigaction = on_store_done;
    sigaction(SIGTRAP, &sa, &old_trap);
    probe_stores = probe_bad = 0;
    for (int i = 0; i < 3; i++) {
        struct kl_mmlog_claim c;
        KT_REQUIRE(kl_mmlog_claim(log, 1, 40 + 8 * (size_t)i, &c) == 0);
        memset(c.data, 'c', c.len);
        KT_REQUIRE(kl_mmlog_reader_open(log, c.offset, &probe_reader) == 0);
        probe_page = (char *)((uintptr_t)((char *)c.data - MMLOG_HDR_SIZE) & ~(uintptr_t)4095);
        mprotect(probe_page, 4096, PROT_READ);
        kl_mmlog_abort(log, &c); /* every store to the header is probed */
        mprotect(probe_page, 4096, PROT_READ | PROT_WRITE);
        probe_page = NULL;
        kl_mmlog_reader_close(probe_reader);
    }
    sigaction(SIGSEGV, &old_segv, NULL);
    sigaction(SIGTRAP, &old_trap, NULL);
    printf("  %ld stores probed\n", probe_stores);
    KT_CHECK(probe_stores >= 3 * 3);
    KT_EQ_I(probe_bad, 0);
    kl_mmlog_close(log);
}
#endif

/* ---- a reader stuck behind a claim past the file's end ----------------------------- */

static uint64_t past_end_at;

/* Pad up to the file's end, then claim past it and die before growing. */
static int die_with_a_claim_past_the_end(void)
{
    struct kl_mmlog *log;
    if (kl_mmlog_open(path, NULL, &log) != 0)
        return 2;
    struct mmlog_meta *m = log->meta;
    uint64_t size = __atomic_load_n(&m->file_size, __ATOMIC_ACQUIRE);
    uint64_t cur = __atomic_fetch_add(&m->cursor, size - m->cursor, __ATOMIC_ACQ_REL);
    if (mmlog_write_padding(log, cur, size - cur) != 0)
        return 3;
    log->slot->claim_len = 64;
    __atomic_store_n(&log->slot->state, MMLOG_SLOT_CLAIMING, __ATOMIC_RELAXED);
    log->slot->claim_offset = __atomic_fetch_add(&m->cursor, 64, __ATOMIC_ACQ_REL);
    __atomic_store_n(&log->slot->state, MMLOG_SLOT_WRITING, __ATOMIC_RELEASE);
    return 0; /* dies holding the claim */
}

KT_TEST(reader_stuck_behind_a_claim_past_the_end_recovers_it)
{
    struct kl_mmlog *log = open_log(KL_MMLOG_NO_RECOVER);
    KT_REQUIRE(log);
    KT_REQUIRE(kl_mmlog_append(log, 1, "first", 5) == 0);
    KT_EQ_I(in_child(die_with_a_claim_past_the_end), 0);
    past_end_at = __atomic_load_n(&log->meta->file_size, __ATOMIC_ACQUIRE);
    KT_REQUIRE(kl_mmlog_end(log) == past_end_at + 64);
    struct kl_mmlog_reader *r;
    KT_REQUIRE(kl_mmlog_reader_open(log, 0, &r) == 0);
    struct kl_mmlog_record rec;
    KT_EQ_I(kl_mmlog_next(r, &rec), 1);
    KT_EQ_I(kl_mmlog_next(r, &rec), 0); /* stuck at the file's end */
    KT_EQ_U(kl_mmlog_reader_offset(r), past_end_at);
    uint64_t t0 = kl_now();
    while (kl_mmlog_reader_offset(r) == past_end_at && kl_now() - t0 < 2000000000ull) {
        kl_mmlog_wait(r, 100);
        KT_REQUIRE(kl_mmlog_next(r, &rec) >= 0);
    }
    KT_EQ_U(kl_mmlog_reader_offset(r), past_end_at + 64); /* padded by recovery */
    kl_mmlog_reader_close(r);
    kl_mmlog_close(log);
}

/* ---- recovery while the same handle holds a claim ------------------------------- */

/* Fill four chunks, then die holding a claim in the fifth, whose window
 * shares its slot in a four-window ring with the first chunk's. */
static int die_claiming_in_chunk_4(void)
{
    struct kl_mmlog *log;
    if (kl_mmlog_open(path, NULL, &log) != 0)
        return 2;
    static char buf[1000];
    while (kl_mmlog_end(log) + 1100 < 4 * CHUNK)
        if (kl_mmlog_append(log, 1, buf, sizeof buf) != 0)
            return 3;
    struct kl_mmlog_claim pad, c;
    if (kl_mmlog_claim(log, 1, 4 * CHUNK - kl_mmlog_end(log) - MMLOG_HDR_SIZE, &pad) != 0)
        return 4;
    kl_mmlog_commit(log, &pad);
    if (kl_mmlog_claim(log, 1, 40, &c) != 0 || c.offset != 4 * CHUNK)
        return 5;
    return 0; /* dies holding it */
}

KT_TEST(recovery_keeps_the_window_of_an_open_claim)
{
    struct kl_mmlog *log = open_log(KL_MMLOG_NO_RECOVER);
    KT_REQUIRE(log);
    struct kl_mmlog_claim mine;
    KT_REQUIRE(kl_mmlog_claim(log, 7, 100, &mine) == 0);
    KT_EQ_I(in_child(die_claiming_in_chunk_4), 0);
    struct kl_mmlog_stats st;
    KT_EQ_I(kl_mmlog_recover(log, &st), 0);
    KT_EQ_U(st.recovered, 1);
    memset(mine.data, 'm', 100); /* the claim's pointer must still be good */
    kl_mmlog_commit(log, &mine);
    struct kl_mmlog_reader *r;
    KT_REQUIRE(kl_mmlog_reader_open(log, 0, &r) == 0);
    struct kl_mmlog_record rec;
    KT_EQ_I(kl_mmlog_next(r, &rec), 1);
    KT_EQ_I(rec.type, 7);
    KT_CHECK(rec.len == 100 && ((const char *)rec.data)[99] == 'm');
    kl_mmlog_reader_close(r);
    KT_EQ_I(kl_mmlog_check(log, &st), 0);
    KT_EQ_U(st.unfinished, 0);
    kl_mmlog_close(log);
}

/* ---- a lock that another process took over --------------------------------------- */

static struct kl_mmlog *lock_log;

static int unlock_after_takeover(void)
{
    mmlog_lock(lock_log);
    mmlog_owner thief = lock_log->self ^ 0x5a5a; /* took it, thinking us dead */
    __atomic_store_n(&lock_log->meta->lock_owner, thief, __ATOMIC_RELEASE);
    mmlog_unlock(lock_log); /* must neither die nor release the thief's lock */
    return __atomic_load_n(&lock_log->meta->lock_owner, __ATOMIC_ACQUIRE) == thief ? 0 : 1;
}

KT_TEST(unlock_of_a_lock_taken_over_is_not_fatal)
{
    lock_log = open_log(0);
    KT_REQUIRE(lock_log);
    KT_EQ_I(in_child(unlock_after_takeover), 0);
    kl_mmlog_close(lock_log);
}
