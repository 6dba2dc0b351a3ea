/* keel's logging: the write side (keel/log.h).
 *
 * kl_log_emit encodes one record into a thread-local buffer (fixed header,
 * file, format, arguments by the types cached in the call site) and appends
 * it to the thread's own mmlog handle, opened on the thread's first record
 * and closed at thread exit. Time is kl_now() plus an offset to the wall
 * clock refreshed every second, which costs no system call. pid and tid are
 * cached (and refreshed in a child after fork). If the shared log cannot be
 * opened or written, the record is formatted and written to stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keel/clock.h"
#include "keel/log.h"
#include "keel/mmlog.h"
#include "log_format.h"

#define LOG_RECORD_MAX 4096
#define DEFAULT_PATH   "/tmp/keel.log"

int kl_log_level = KL_LEVEL_INFO;

/* Process-wide configuration; a new generation makes threads reopen. */
static struct {
    pthread_mutex_t lock;
    char *path; /* NULL: stderr only */
    bool configured;
    unsigned generation;
    uint64_t (*fiber_hook)(void);
    pthread_key_t thread_key;
    pthread_once_t once;
} config = {PTHREAD_MUTEX_INITIALIZER, NULL, false, 0, NULL, 0, PTHREAD_ONCE_INIT};

/* Per-thread state. */
struct log_thread {
    struct kl_mmlog *log;
    unsigned generation;
    bool open_failed;
    int32_t tid;
    unsigned char buf[LOG_RECORD_MAX];
};
static __thread struct log_thread *tls;
static pid_t cached_pid;

/* Wall clock = kl_now() + offset, refreshed at most once a second. */
static uint64_t wall_offset, wall_refreshed;

static void thread_exit(void *arg)
{
    struct log_thread *t = arg;
    kl_mmlog_close(t->log);
    free(t);
}

static void after_fork_in_child(void)
{
    cached_pid = getpid();
    if (tls) {
        tls->tid = gettid();
        tls->generation = (unsigned)-1; /* the parent's handle: reopen */
        tls->log = NULL;                /* its slot belongs to the parent */
    }
}

static void init_once(void)
{
    pthread_key_create(&config.thread_key, thread_exit);
    pthread_atfork(NULL, NULL, after_fork_in_child);
    cached_pid = getpid();
}

void kl_log_set_level(enum kl_log_level level) { kl_log_level = (int)level; }

/* The fiber hook: every thread's kl_sched_init() sets it (the same
 * function) while other threads may be logging, so it is read and written
 * atomically (relaxed: nothing else rides on it). */
static uint64_t current_fiber_id(void)
{
    uint64_t (*hook)(void) = __atomic_load_n(&config.fiber_hook, __ATOMIC_RELAXED);
    return hook ? hook() : 0;
}

void kl_log_set_fiber_hook(uint64_t (*current_fiber)(void))
{
    __atomic_store_n(&config.fiber_hook, current_fiber, __ATOMIC_RELAXED);
}

int kl_log_open(const char *path)
{
    pthread_once(&config.once, init_once);
    if (!path)
        path = getenv("KEEL_LOG") ? getenv("KEEL_LOG") : DEFAULT_PATH;
    char *copy = strcmp(path, "-") == 0 ? NULL : strdup(path);
    if (strcmp(path, "-") != 0 && !copy)
        return -ENOMEM;
    pthread_mutex_lock(&config.lock);
    free(config.path);
    config.path = copy;
    config.configured = true;
    config.generation++;
    pthread_mutex_unlock(&config.lock);
    return 0;
}

void kl_log_close(void) { kl_log_open("-"); }

static struct log_thread *thread_state(void)
{
    if (KL_LIKELY(tls != NULL))
        return tls;
    pthread_once(&config.once, init_once);
    struct log_thread *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->tid = gettid();
    t->generation = (unsigned)-1;
    pthread_setspecific(config.thread_key, t);
    tls = t;
    return t;
}

/* The thread's handle on the shared log, (re)opened when the configuration
 * changed; NULL means stderr. */
static struct kl_mmlog *thread_log(struct log_thread *t)
{
    unsigned gen = __atomic_load_n(&config.generation, __ATOMIC_ACQUIRE);
    if (KL_LIKELY(t->generation == gen && config.configured))
        return t->log;
    if (!config.configured)
        kl_log_open(NULL); /* first record in the process: the default sink */
    pthread_mutex_lock(&config.lock);
    kl_mmlog_close(t->log);
    t->log = NULL;
    t->open_failed = false;
    if (config.path) {
        struct kl_mmlog_options opt = {.flags = KL_MMLOG_CREATE | KL_MMLOG_NO_RECOVER};
        int rc = kl_mmlog_open(config.path, &opt, &t->log);
        if (rc != 0) {
            t->log = NULL;
            t->open_failed = true;
            fprintf(stderr, "keel: cannot open the log %s (%s); logging to stderr\n", config.path,
                    strerror(-rc));
        }
    }
    t->generation = config.generation;
    pthread_mutex_unlock(&config.lock);
    return t->log;
}

static void parse_site(struct kl_log_site *site)
{
    struct kl_log_site parsed = *site;
    size_t pos = 0;
    struct log_spec s;
    int rc;
    parsed.nargs = 0;
    while ((rc = log_next_spec(site->fmt, site->fmt_len, &pos, &s)) == 1) {
        for (int k = 0; k < s.stars && parsed.nargs < KL_LOG_MAX_ARGS; k++)
            parsed.arg_types[parsed.nargs++] = LOG_ARG_INT;
        if (s.arg == 0)
            continue;
        if (parsed.nargs == KL_LOG_MAX_ARGS) {
            rc = -1;
            break;
        }
        parsed.arg_types[parsed.nargs++] = (uint8_t)s.arg;
    }
    memcpy(site->arg_types, parsed.arg_types, sizeof parsed.arg_types);
    site->nargs = parsed.nargs;
    __atomic_store_n(&site->parsed, rc < 0 ? 2 : 1, __ATOMIC_RELEASE);
}

static uint64_t wall_now(void)
{
    uint64_t now = kl_now();
    if (KL_UNLIKELY(now - __atomic_load_n(&wall_refreshed, __ATOMIC_RELAXED) > 1000000000u)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t wall = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        __atomic_store_n(&wall_offset, wall - now, __ATOMIC_RELAXED);
        __atomic_store_n(&wall_refreshed, now, __ATOMIC_RELAXED);
    }
    return now + __atomic_load_n(&wall_offset, __ATOMIC_RELAXED);
}

/* Append `n` bytes of `src` at *p if they fit before `end`. */
static inline bool put(unsigned char **p, unsigned char *end, const void *src, size_t n)
{
    if ((size_t)(end - *p) < n)
        return false;
    memcpy(*p, src, n);
    *p += n;
    return true;
}

static bool put_string(unsigned char **p, unsigned char *end, const char *s)
{
    if (!s)
        s = "(null)";
    size_t len = strlen(s);
    size_t room = (size_t)(end - *p);
    if (room < 4)
        return false;
    if (len > room - 4)
        len = room - 4; /* truncate a long string rather than lose the record */
    uint32_t l32 = (uint32_t)len;
    put(p, end, &l32, 4);
    return put(p, end, s, len);
}

static void write_stderr(const unsigned char *record, size_t len)
{
    struct kl_log_entry e;
    char line[LOG_RECORD_MAX + 256];
    if (kl_log_decode(record, len, &e) != 0)
        return;
    size_t n = kl_log_format_line(&e, line, sizeof line - 1);
    if (n > sizeof line - 2)
        n = sizeof line - 2;
    line[n] = '\n';
    kl_crash_write_n(line, n + 1);
}

void kl_log_emit(struct kl_log_site *site, ...)
{
    int saved_errno = errno;
    struct log_thread *t = thread_state();
    if (KL_UNLIKELY(!t))
        return;
    if (KL_UNLIKELY(__atomic_load_n(&site->parsed, __ATOMIC_ACQUIRE) == 0))
        parse_site(site);
    unsigned char *p = t->buf, *end = t->buf + sizeof t->buf;
    struct log_wire w = {
        .time_ns = wall_now(),
        .pid = cached_pid,
        .tid = t->tid,
        .fiber = current_fiber_id(),
        .line = site->line,
        .file_len = site->file_len,
        .fmt_len = site->fmt_len,
        .level = site->level,
    };
    put(&p, end, &w, sizeof w);
    put(&p, end, site->file, site->file_len);
    put(&p, end, site->fmt, site->fmt_len);
    va_list ap;
    va_start(ap, site);
    bool ok = site->parsed == 1;
    for (unsigned i = 0; ok && i < site->nargs; i++) {
        union {
            int64_t i;
            uint64_t u;
            double d;
        } v;
        switch (site->arg_types[i]) {
        case LOG_ARG_INT: v.i = va_arg(ap, int); break;
        case LOG_ARG_UINT: v.u = va_arg(ap, unsigned); break;
        case LOG_ARG_LONG: v.i = va_arg(ap, long long); break;
        case LOG_ARG_ULONG: v.u = va_arg(ap, unsigned long long); break;
        case LOG_ARG_DOUBLE: v.d = va_arg(ap, double); break;
        case LOG_ARG_PTR: v.u = (uintptr_t)va_arg(ap, void *); break;
        case LOG_ARG_LDOUBLE: {
            long double ld = va_arg(ap, long double);
            ok = put(&p, end, &ld, sizeof ld);
            continue;
        }
        case LOG_ARG_STR: ok = put_string(&p, end, va_arg(ap, const char *)); continue;
        case LOG_ARG_ERRNO: ok = put_string(&p, end, strerror(saved_errno)); continue;
        default: ok = false; continue;
        }
        ok = put(&p, end, &v, 8);
    }
    va_end(ap);
    size_t len = (size_t)(p - t->buf);
    struct kl_mmlog *log = thread_log(t);
    if (!log || kl_mmlog_append(log, KL_LOG_TYPE_RECORD, t->buf, len) != 0)
        write_stderr(t->buf, len);
    errno = saved_errno;
}
