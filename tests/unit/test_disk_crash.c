/* Crash safety of the disk engine, in-process: a child process stores
 * versions of keys from several threads with --sync always (and a
 * checkpoint every second, so restarts replay a checkpoint plus a tail),
 * noting each acknowledged version in shared memory; the parent kills it
 * with SIGKILL at a random moment, reopens the data directory and checks
 * that every key holds a whole value of at least its last acknowledged
 * version (a later, unacknowledged one may have landed) and at most its
 * last issued one. Several cycles on one directory; again with O_DIRECT
 * writes (where the file system takes them). */
#define _GNU_SOURCE
#include "storage/engine.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "disk_kit.h"
#include "kt.h"

#define NKEYS    300u
#define NTHREADS 4
#define CYCLES   5

struct shared {
    _Atomic uint32_t acked[NKEYS];
    _Atomic uint32_t issued[NKEYS];
};

static char dir[256];
static bool direct;
static struct shared *sh;
static struct kl_engine *eng;

static uint32_t vlen_of(uint32_t k, uint32_t ver) { return 20 + (k * 31 + ver * 17) % 3000; }

static void fill(char *v, uint32_t len, uint32_t k, uint32_t ver)
{
    int n = snprintf(v, len, "k%u v%u ", k, ver);
    for (uint32_t i = (uint32_t)n; i < len; i++)
        v[i] = (char)('A' + (k + ver * 3 + i) % 26);
}

static struct kl_engine *open_it(void)
{
    struct kl_engine_opts o = {.engine = "disk",
                               .data_dir = dir,
                               .direct = direct,
                               .sync = KL_SYNC_ALWAYS,
                               .file_bytes = 256 << 10,
                               .item_max = 8192,
                               .compact_pct = 60,
                               .checkpoint_s = 1,
                               .now = 1000};
    struct kl_engine *e = NULL;
    return kl_engine_open(&o, &e) == 0 ? e : NULL;
}

/* Thread t owns keys t, t + NTHREADS, ...: one writer per key. */
static void *writer(void *arg)
{
    uint32_t t = (uint32_t)(uintptr_t)arg, n = 0;
    char v[4096], key[16];
    for (;;) {
        uint32_t k = t + NTHREADS * (n++ % (NKEYS / NTHREADS));
        uint32_t ver = atomic_load(&sh->issued[k]) + 1;
        atomic_store(&sh->issued[k], ver);
        fill(v, vlen_of(k, ver), k, ver);
        snprintf(key, sizeof key, "key%u", k);
        if (kl_engine_store(eng, KL_SET, key, strlen(key), v, vlen_of(k, ver), 0, 0, 0, NULL) ==
            KL_E_STORED)
            atomic_store(&sh->acked[k], ver);
    }
    return NULL;
}

static void child(void)
{
    eng = open_it();
    if (eng == NULL)
        _exit(3);
    pthread_t th[NTHREADS];
    for (uintptr_t i = 0; i < NTHREADS; i++)
        pthread_create(&th[i], NULL, writer, (void *)i);
    pause(); /* until SIGKILL */
    _exit(0);
}

static int check(struct kl_engine *e)
{
    int bad = 0;
    for (uint32_t k = 0; k < NKEYS; k++) {
        char key[16];
        snprintf(key, sizeof key, "key%u", k);
        struct kl_item it;
        int r = kl_engine_lookup(e, key, strlen(key), NULL, &it);
        uint32_t acked = atomic_load(&sh->acked[k]), issued = atomic_load(&sh->issued[k]);
        if (r != KL_E_OK) {
            if (acked != 0 && bad++ < 5)
                fprintf(stderr, "  %s: acked v%u, lookup %s\n", key, acked, kl_eresult_name(r));
            continue;
        }
        char head[32] = {0};
        memcpy(head, it.value, it.vlen < 31 ? it.vlen : 31);
        unsigned rk, rv;
        char want[4096];
        bool ok = sscanf(head, "k%u v%u ", &rk, &rv) == 2 && rk == k && rv >= acked &&
                  rv <= issued && it.vlen == vlen_of(k, rv);
        if (ok) {
            fill(want, it.vlen, k, rv);
            ok = memcmp(want, it.value, it.vlen) == 0;
        }
        if (!ok && bad++ < 5)
            fprintf(stderr, "  %s: acked v%u issued v%u, found '%.20s'\n", key, acked, issued,
                    head);
        kl_engine_release(e, &it);
    }
    return bad;
}

static void sigkill_cycles(void)
{
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    KT_REQUIRE(sh != MAP_FAILED);
    memset(sh, 0, sizeof *sh);
    srand((unsigned)time(NULL));
    for (int cycle = 0; cycle < CYCLES; cycle++) {
        pid_t pid = fork();
        KT_REQUIRE(pid >= 0);
        if (pid == 0)
            child();
        /* once the child stores (it may start slowly under ASan), a random moment */
        uint64_t before = 0, now = 0;
        for (uint32_t k = 0; k < NKEYS; k++)
            before += atomic_load(&sh->acked[k]);
        for (int t = 0; t < 6000 && now <= before; t++) {
            usleep(10000);
            now = 0;
            for (uint32_t k = 0; k < NKEYS; k++)
                now += atomic_load(&sh->acked[k]);
        }
        usleep(200000 + (useconds_t)(rand() % 1300) * 1000);
        kill(pid, SIGKILL);
        int status;
        KT_REQUIRE(waitpid(pid, &status, 0) == pid);
        KT_CHECK(WIFSIGNALED(status)); /* not an early exit (engine open failed: 3) */
        struct kl_engine *e = open_it();
        KT_REQUIRE(e != NULL);
        uint64_t total = 0;
        for (uint32_t k = 0; k < NKEYS; k++)
            total += atomic_load(&sh->acked[k]);
        KT_CHECK(total > before); /* this cycle's child stored something */
        KT_EQ_I(check(e), 0);
        struct kl_engine_stats st;
        kl_engine_stats(e, &st);
        printf("  cycle %d: %llu acknowledged stores so far, %llu files, %llu compactions\n", cycle,
               (unsigned long long)total, (unsigned long long)st.disk_files,
               (unsigned long long)st.disk_compactions);
        kl_engine_close(e);
    }
    munmap(sh, sizeof *sh);
    dk_rmdir(dir);
}

KT_TEST(sigkill_loses_no_acknowledged_store)
{
    snprintf(dir, sizeof dir, "/tmp/keel-disk-crash-XXXXXX");
    KT_REQUIRE(mkdtemp(dir) != NULL);
    direct = false;
    sigkill_cycles();
}

KT_TEST(sigkill_loses_no_acknowledged_store_direct)
{
    if (!dk_direct_dir("keel-disk-crash-direct", dir, sizeof dir)) {
        kt_skip("no file system here takes O_DIRECT ($TMPDIR, /tmp, the build dir)");
        return;
    }
    direct = true;
    sigkill_cycles();
}
