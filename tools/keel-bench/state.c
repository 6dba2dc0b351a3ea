/* keel-bench's state file (--state): the writes a server acknowledged, kept
 * across runs, and --check, which holds a server to them after a restart.
 *
 * The file is text, one record a line, appended to by one run at a time:
 *
 *   keel-bench-state 1                          first line
 *   run TAG KEYS KEY_MIN KEY_MAX VALUE_MIN VALUE_MAX
 *   S TAG KEY VER                               STORED (set) or HD (ms)
 *   D TAG KEY VER                               DELETED or NOT_FOUND (delete)
 *   d TAG KEY VER                               a delete sent (before its reply)
 *
 * TAG is the run's tag (8 hex digits, also in each value's head), KEY the
 * key's index, VER the version the connection gave that write (decimal).
 * A run's line is written and fsync'd before its first request; each worker
 * thread buffers its records and appends them (one write of whole lines)
 * when the buffer fills, when its oldest record is 100 ms old, and at the
 * end; the file is fsync'd when keel-bench exits (SIGINT and SIGTERM too).
 * A last line without its newline (keel-bench killed while writing) is
 * ignored. With --verify every key belongs to one connection, so a key's
 * records are in the order the server applied them, and the last one counts.
 *
 * What --check accepts for key k, given its last acknowledged write (run r,
 * version v; runs ordered as listed): a value of run r at version >= v or of
 * a later run (a write sent after the acknowledged one, whose reply the
 * crash swallowed, may have landed: a value names its write, so stores need
 * no record of their sending), or, after an acknowledged delete, a miss or
 * such a later value; a miss also where a delete was sent after the
 * acknowledged store (the `d` records: a miss names nothing). A miss where a
 * store was acknowledged is "missing", an older value "stale", a value whose
 * bytes or length are not those its head names, or of a run the file does
 * not list, "mismatch". A key with no record may miss or hold any listed
 * run's value.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "keel/clock.h"

#define SLOG_CAP   (64 * 1024)
#define SLOG_LINE  48 /* one record line, at most */
#define SLOG_AGE   (100 * 1000000ull)
#define STATE_HEAD "keel-bench-state 1\n"

struct state_run {
    uint32_t tag, value_min, value_max;
};

struct tag_index {
    uint32_t tag, run; /* run: index into runs */
};

/* --check: a key's last acknowledged write, and its latest delete sent. */
struct ack {
    uint32_t run; /* index + 1 into runs; 0: no record */
    uint32_t ver;
    bool deleted;
    uint32_t del_run, del_ver; /* the latest delete sent (run 0: none) */
};

/* (run, version) pairs in the order the writes were made. */
static bool older(uint32_t run_a, uint32_t ver_a, uint32_t run_b, uint32_t ver_b)
{
    return run_a < run_b || (run_a == run_b && ver_a < ver_b);
}

struct kb_state {
    int fd;
    const char *path;
    struct state_run *runs;
    uint32_t nruns, cap;
    struct tag_index *by_tag; /* sorted by tag, one entry per tag (--check) */
    uint32_t ntags;
    struct ack *acks; /* per key (--check) */
    uint64_t keys;
    uint32_t key_min, key_max;
    uint64_t records;
    off_t good_len;          /* the file's complete lines */
    _Atomic int write_error; /* the first failed write's errno */
};

static int fail(const struct kb_state *s, const char *what, int err)
{
    fprintf(stderr, "keel-bench: state file %s: %s%s%s\n", s->path, what, err ? ": " : "",
            err ? strerror(err) : "");
    return -1;
}

static int add_run(struct kb_state *s, uint32_t tag, uint32_t vmin, uint32_t vmax)
{
    if (s->nruns == s->cap) {
        uint32_t cap = s->cap ? 2 * s->cap : 16;
        struct state_run *r = realloc(s->runs, cap * sizeof *r);
        if (!r)
            return -1;
        s->runs = r;
        s->cap = cap;
    }
    s->runs[s->nruns++] = (struct state_run){tag, vmin, vmax};
    return 0;
}

/* The run of `tag` among the listed ones (the last with that tag); -1 if none. */
static int64_t run_of(const struct kb_state *s, uint32_t tag)
{
    if (!s->by_tag) { /* while reading: runs are few, the newest last */
        for (uint32_t i = s->nruns; i-- > 0;)
            if (s->runs[i].tag == tag)
                return i;
        return -1;
    }
    uint32_t lo = 0, hi = s->ntags;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->by_tag[mid].tag < tag)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->ntags && s->by_tag[lo].tag == tag ? (int64_t)s->by_tag[lo].run : -1;
}

static int by_tag_cmp(const void *a, const void *b)
{
    const struct tag_index *x = a, *y = b;
    if (x->tag != y->tag)
        return x->tag < y->tag ? -1 : 1;
    return x->run < y->run ? 1 : x->run > y->run ? -1 : 0; /* the newest first */
}

/* One complete line; 0, or -1 after a message. */
static int parse_line(struct kb_state *s, char *line, uint64_t lineno)
{
    char kind[8];
    unsigned tag;
    unsigned long long a, b, c, d, e;
    if (sscanf(line, "%7s", kind) != 1)
        goto bad;
    if (strcmp(kind, "run") == 0) {
        if (sscanf(line, "run %x %llu %llu %llu %llu %llu", &tag, &a, &b, &c, &d, &e) != 6 ||
            a == 0 || a > UINT32_MAX - 1 || b < 12 || c < b || c > 250 || d < 1 || e < d ||
            e > KB_VALUE_MAX)
            goto bad;
        if (s->nruns > 0 && (a != s->keys || b != s->key_min || c != s->key_max)) {
            fprintf(stderr,
                    "keel-bench: state file %s line %llu: its runs differ in --keys or "
                    "--key-size\n",
                    s->path, (unsigned long long)lineno);
            return -1;
        }
        s->keys = a;
        s->key_min = (uint32_t)b;
        s->key_max = (uint32_t)c;
        if (add_run(s, tag, (uint32_t)d, (uint32_t)e) < 0)
            return fail(s, "out of memory", 0);
        return 0;
    }
    if (kind[1] != '\0' || !strchr("SDd", kind[0]) ||
        sscanf(line + 1, " %x %llu %llu", &tag, &a, &b) != 3 || a >= s->keys || b > UINT32_MAX)
        goto bad;
    int64_t r = run_of(s, tag);
    if (r < 0)
        goto bad;
    s->records++;
    if (!s->acks)
        return 0;
    struct ack *k = &s->acks[a];
    uint32_t run = (uint32_t)r + 1, ver = (uint32_t)b;
    if (kind[0] == 'd') { /* sent; its reply (a D) may come after later acks' records */
        if (older(k->del_run, k->del_ver, run, ver)) {
            k->del_run = run;
            k->del_ver = ver;
        }
    } else {
        k->run = run;
        k->ver = ver;
        k->deleted = kind[0] == 'D';
    }
    return 0;
bad:
    fprintf(stderr, "keel-bench: state file %s line %llu is not a state record: %.60s\n", s->path,
            (unsigned long long)lineno, line);
    return -1;
}

/* Read every complete line of the file; the first must be the header. */
static int read_all(struct kb_state *s, bool check)
{
    FILE *f = fdopen(dup(s->fd), "r");
    if (!f)
        return fail(s, "cannot read", errno);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t lineno = 0;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] != '\n')
            break; /* torn by a kill while it was written: never acknowledged */
        s->good_len += n;
        if (++lineno == 1) {
            if (strcmp(line, STATE_HEAD) != 0)
                rc = fail(s, "is not a keel-bench state file", 0);
            continue;
        }
        if (check && !s->acks && strncmp(line, "run ", 4) == 0) {
            /* the key space comes with the first run */
            if ((rc = parse_line(s, line, lineno)) == 0 &&
                !(s->acks = calloc(s->keys, sizeof *s->acks)))
                rc = fail(s, "out of memory for the keys", 0);
            continue;
        }
        rc = parse_line(s, line, lineno);
    }
    free(line);
    fclose(f);
    return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int kb_state_open(struct kb_run *run)
{
    struct kb_options *opt = &run->opt;
    struct kb_state *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    run->state = s;
    s->path = opt->state;
    s->fd =
        open(opt->state, (opt->check ? O_RDONLY : O_RDWR | O_CREAT | O_APPEND) | O_CLOEXEC, 0644);
    if (s->fd < 0)
        return fail(s, "cannot open", errno);
    if (read_all(s, opt->check) < 0)
        return -1;
    if (opt->check) {
        if (s->nruns == 0)
            return fail(s, "lists no run: nothing to check", 0);
        opt->keys = s->keys; /* --check reads the key space the runs wrote */
        opt->key_min = s->key_min;
        opt->key_max = s->key_max;
        opt->value_min = opt->value_max = 1;
        if (!(s->by_tag = malloc(s->nruns * sizeof *s->by_tag)))
            return fail(s, "out of memory", 0);
        for (uint32_t i = 0; i < s->nruns; i++)
            s->by_tag[i] = (struct tag_index){s->runs[i].tag, i};
        qsort(s->by_tag, s->nruns, sizeof *s->by_tag, by_tag_cmp);
        /* keep the newest run of each tag only, so the search finds it */
        uint32_t n = 0;
        for (uint32_t i = 0; i < s->nruns; i++)
            if (n == 0 || s->by_tag[n - 1].tag != s->by_tag[i].tag)
                s->by_tag[n++] = s->by_tag[i];
        s->ntags = n;
        for (uint32_t i = 0; i < s->nruns; i++) /* the receive buffer fits every value */
            if (s->runs[i].value_max > opt->value_max)
                opt->value_max = s->runs[i].value_max;
        return 0;
    }
    if (s->nruns > 0 &&
        (opt->keys != s->keys || opt->key_min != s->key_min || opt->key_max != s->key_max)) {
        fprintf(stderr, "keel-bench: state file %s holds runs of --keys %llu --key-size %u-%u\n",
                s->path, (unsigned long long)s->keys, s->key_min, s->key_max);
        return -1;
    }
    if (ftruncate(s->fd, s->good_len) < 0) /* a torn last line goes */
        return fail(s, "cannot cut a torn last line", errno);
    while (run_of(s, run->run_tag) >= 0 || run->run_tag == 0)
        run->run_tag = run->run_tag * 0x9e3779b1u + 1; /* each run's tag is its own */
    char line[160];
    int n =
        snprintf(line, sizeof line, "%srun %08x %llu %u %u %u %u\n",
                 s->good_len == 0 ? STATE_HEAD : "", run->run_tag, (unsigned long long)opt->keys,
                 opt->key_min, opt->key_max, opt->value_min, opt->value_max);
    int rc = write_all(s->fd, line, (size_t)n);
    if (rc == 0 && fdatasync(s->fd) < 0)
        rc = -errno;
    if (rc < 0)
        return fail(s, "cannot write", -rc);
    for (uint32_t i = 0; i < opt->threads; i++)
        if (!(run->threads[i].slog = malloc(SLOG_CAP)))
            return fail(s, "out of memory", 0);
    return 0;
}

void kb_state_flush(struct kb_run *run, struct kb_thread *t)
{
    if (!run->state || t->slog_len == 0)
        return;
    int rc = write_all(run->state->fd, t->slog, t->slog_len);
    int none = 0;
    if (rc < 0)
        atomic_compare_exchange_strong(&run->state->write_error, &none, -rc);
    t->slog_len = 0;
}

void kb_state_record(struct kb_run *run, struct kb_thread *t, char kind, uint32_t k, uint32_t ver)
{
    uint64_t now = kl_now();
    if (t->slog_len == 0)
        t->slog_since = now;
    t->slog_len += (uint32_t)snprintf(t->slog + t->slog_len, SLOG_LINE, "%c %08x %u %u\n", kind,
                                      run->run_tag, k, ver);
    t->state_records++;
    if (t->slog_len > SLOG_CAP - SLOG_LINE || now - t->slog_since >= SLOG_AGE)
        kb_state_flush(run, t);
}

int kb_state_close(struct kb_run *run)
{
    struct kb_state *s = run->state;
    if (!s)
        return 0;
    int rc = 0;
    int err = atomic_load(&s->write_error);
    if (err)
        rc = fail(s, "a record could not be written", err);
    else if (!run->opt.check && fsync(s->fd) < 0)
        rc = fail(s, "cannot fsync", errno);
    if (s->fd >= 0)
        close(s->fd);
    for (uint32_t i = 0; i < run->opt.threads; i++)
        free(run->threads[i].slog);
    free(s->runs);
    free(s->by_tag);
    free(s->acks);
    free(s);
    run->state = NULL;
    return rc;
}

/* ---- --check ---- */

int kb_state_check_value(const struct kb_run *run, struct kb_thread *t, uint32_t k, const char *val,
                         uint32_t len)
{
    const struct kb_state *s = run->state;
    uint32_t vk, tag, ver;
    if (kb_value_identity(val, len, &vk, &tag, &ver) < 0 || vk != k) {
        kb_error(t, KB_E_MISMATCH,
                 "key %u: a value that keel-bench did not write for it (%u bytes)", k, len);
        return -1;
    }
    int64_t r = run_of(s, tag);
    if (r < 0) {
        kb_error(t, KB_E_MISMATCH,
                 "key %u: a value of run %08x, which the state file does not list", k, tag);
        return -1;
    }
    uint32_t want = kb_value_len(s->runs[r].value_min, s->runs[r].value_max, k);
    if (len != want || !kb_value_body_ok(k, tag, ver, val, len)) {
        kb_error(t, KB_E_MISMATCH, "key %u run %08x version %u: %u bytes, corrupt (expected %u)", k,
                 tag, ver, len, want);
        return -1;
    }
    const struct ack *a = &s->acks[k];
    uint32_t vr = (uint32_t)r + 1;
    if (a->run &&
        (older(vr, ver, a->run, a->ver) || (a->deleted && vr == a->run && ver == a->ver))) {
        kb_error(t, KB_E_STALE,
                 "key %u: run %08x version %u, older than the acknowledged %s of "
                 "run %08x version %u",
                 k, tag, ver, a->deleted ? "delete" : "store", s->runs[a->run - 1].tag, a->ver);
        return -1;
    }
    t->verified++;
    return 0;
}

int kb_state_check_miss(const struct kb_run *run, struct kb_thread *t, uint32_t k)
{
    const struct kb_state *s = run->state;
    const struct ack *a = &s->acks[k];
    if (a->run && !a->deleted && older(a->del_run, a->del_ver, a->run, a->ver)) {
        kb_error(t, KB_E_MISSING, "key %u: a miss, but run %08x version %u was acknowledged", k,
                 s->runs[a->run - 1].tag, a->ver);
        return -1;
    }
    return 0;
}
