/* A two-thread pool for file I/O under the epoll backend.
 *
 * epoll cannot wait for regular files, so pread/pwrite/fsync go to two
 * worker threads. A job lives on the calling fiber's stack; the fiber queues
 * it (FIFO, under a mutex) and parks. A worker runs the system call, moves
 * the job to a done list and writes the reactor's eventfd; the reactor,
 * woken by epoll, takes the whole done list at once and resumes each fiber.
 * A job that times out or is cancelled before a worker took it is unlinked
 * and never runs; once running it is awaited, so the buffer is never touched
 * after the call returns.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "keel/assert.h"

#include "reactor_internal.h"

#define POOL_THREADS 2

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

struct io_job {
    struct kl_io_wait wait; /* done and res are the reactor's, set in reap */
    struct kl_io_req *req;
    int64_t res;
    enum job_state state;
    struct io_job *next;
};

struct kl_io_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct io_job *head, *tail; /* queued */
    struct io_job *done;        /* finished, not yet reaped (a stack) */
    bool quit;
    int evfd;
    int nthreads;
    pthread_t threads[POOL_THREADS];
};

static int64_t run_syscall(const struct kl_io_req *q)
{
    ssize_t n;
    switch (q->kind) {
    case KL_IO_PREAD: n = pread(q->fd, q->buf, q->len, q->offset); break;
    case KL_IO_PWRITE: n = pwrite(q->fd, q->buf, q->len, q->offset); break;
    case KL_IO_FSYNC: n = fsync(q->fd); break;
    default: return -EINVAL;
    }
    return n < 0 ? -errno : n;
}

static void *worker(void *arg)
{
    struct kl_io_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->head == NULL)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->quit)
            break;
        struct io_job *j = p->head;
        p->head = j->next;
        if (p->head == NULL)
            p->tail = NULL;
        j->state = JOB_RUNNING;
        pthread_mutex_unlock(&p->mu);
        int64_t res = run_syscall(j->req);
        pthread_mutex_lock(&p->mu);
        j->res = res;
        j->state = JOB_DONE;
        j->next = p->done;
        p->done = j;
        pthread_mutex_unlock(&p->mu);
        uint64_t one = 1;
        ssize_t w = write(p->evfd, &one, sizeof one);
        (void)w; /* the counter cannot overflow at this rate */
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int kl_io_pool_start(struct kl_io_pool **out, int evfd)
{
    struct kl_io_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->evfd = evfd;
    /* The pool's threads start with every signal blocked: a signal sent to
     * the process must go to a thread that handles or waits for it
     * (keel/sigwait.h), never to a worker, where SIGTERM would kill. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (int i = 0; i < POOL_THREADS; i++) {
        int rc = pthread_create(&p->threads[i], NULL, worker, p);
        if (rc != 0) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            kl_io_pool_stop(p);
            return -rc;
        }
        p->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    *out = p;
    return 0;
}

void kl_io_pool_stop(struct kl_io_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->quit = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    KL_ASSERT(p->head == NULL && p->done == NULL, "file I/O pool stopped with jobs");
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}

/* Unlink a queued job; true if it was still queued. Caller holds the lock. */
static bool unqueue(struct kl_io_pool *p, struct io_job *j)
{
    if (j->state != JOB_QUEUED)
        return false;
    struct io_job *prev = NULL;
    for (struct io_job *it = p->head; it; prev = it, it = it->next) {
        if (it != j)
            continue;
        if (prev)
            prev->next = j->next;
        else
            p->head = j->next;
        if (p->tail == j)
            p->tail = prev;
        return true;
    }
    KL_PANIC("queued file job not in the pool's queue");
}

int64_t kl_io_pool_run(struct kl_reactor *r, struct kl_io_pool *p, struct kl_io_req *q,
                       uint64_t deadline_ns)
{
    uint64_t id = kl_fiber_id_raw(kl_fiber__id(r->sched->current));
    uint32_t slot = kl_reactor__slot(id);
    struct io_job j = {.wait = {.id = id}, .req = q, .state = JOB_QUEUED};
    KL_ASSERT(r->waits[slot] == NULL, "fiber slot %u has two requests in flight", slot);
    r->waits[slot] = &j.wait;
    pthread_mutex_lock(&p->mu);
    if (p->tail)
        p->tail->next = &j;
    else
        p->head = &j;
    p->tail = &j;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    r->inflight++;
    r->stats.submissions++;

    int reason = 0;
    while (!j.wait.done) {
        int rc = kl_reactor__park(r, "file-io", deadline_ns);
        if (rc == -ETIMEDOUT || rc == -ECANCELED) {
            reason = rc;
            break;
        }
    }
    if (!j.wait.done) {
        pthread_mutex_lock(&p->mu);
        bool dropped = unqueue(p, &j);
        pthread_mutex_unlock(&p->mu);
        if (dropped) {
            r->inflight--;
            r->waits[slot] = NULL;
            return reason;
        }
        kl_reactor__wait_done(r, &j.wait);
    }
    r->waits[slot] = NULL;
    return j.wait.res;
}

void kl_io_pool_reap(struct kl_reactor *r, struct kl_io_pool *p)
{
    pthread_mutex_lock(&p->mu);
    struct io_job *j = p->done;
    p->done = NULL;
    pthread_mutex_unlock(&p->mu);
    while (j) {
        struct io_job *next = j->next; /* the fiber does not run before we return */
        KL_ASSERT(j->state == JOB_DONE && r->inflight > 0);
        r->inflight--;
        kl_reactor__complete(r, j->wait.id, j->res);
        j = next;
    }
}
