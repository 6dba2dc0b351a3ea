/* The reactor's worker threads for blocking work.
 *
 * Two users: the epoll backend, which cannot wait for regular files, sends
 * pread/pwrite/fsync here, and kl_defer_to_thread() (xthread.c) runs any
 * blocking call here on both backends. A job lives on the calling fiber's
 * stack; the fiber queues it (FIFO, under a mutex) and parks. A worker runs
 * the job, moves it to a done list and, when that list was empty, writes
 * the reactor's wake-up eventfd; the reactor, woken by it, takes the whole
 * done list at once and resumes each fiber.
 *
 * The pool starts its first thread on first use and adds one whenever a job
 * is queued with no idle worker to take it, up to POOL_MAX_THREADS; threads
 * live until the reactor is destroyed. They start with every signal
 * blocked: a signal sent to the process must go to a thread that handles or
 * waits for it (keel/sigwait.h), never to a worker, where SIGTERM would kill.
 *
 * A droppable job (file I/O) that times out or is cancelled before a worker
 * took it is unlinked and never runs; otherwise it is awaited, so a buffer
 * or stack is never touched after the call returns.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "keel/assert.h"
#include "keel/list.h"

#include "reactor_internal.h"

#define POOL_MAX_THREADS 8

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

struct pool_job {
    struct kl_io_wait wait; /* done and res are the reactor's, set in reap */
    intptr_t (*fn)(void *arg);
    void *arg;
    intptr_t res;
    enum job_state state;
    struct kl_queue_node queue_node; /* in the pool's queue while JOB_QUEUED */
    struct pool_job *done_next;      /* in the done stack once JOB_DONE */
};

struct kl_io_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct kl_queue queue; /* struct pool_job, queued (FIFO) */
    struct pool_job *done; /* finished, not yet reaped (a stack) */
    uint32_t idle;         /* workers waiting for a job */
    bool quit;
    int evfd;
    int nthreads; /* only the reactor's thread touches it and threads[] */
    pthread_t threads[POOL_MAX_THREADS];
};

static void *worker(void *arg)
{
    struct kl_io_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        p->idle++;
        while (!p->quit && kl_queue_empty(&p->queue))
            pthread_cond_wait(&p->cv, &p->mu);
        p->idle--;
        if (p->quit)
            break;
        struct pool_job *j =
            kl_container_of(kl_queue_pop_front(&p->queue), struct pool_job, queue_node);
        KL_ASSERT(j->state == JOB_QUEUED, "pool job taken twice");
        j->state = JOB_RUNNING;
        pthread_mutex_unlock(&p->mu);
        intptr_t res = j->fn(j->arg);
        pthread_mutex_lock(&p->mu);
        j->res = res;
        j->state = JOB_DONE;
        bool wake = p->done == NULL; /* else a write is on its way already */
        j->done_next = p->done;
        p->done = j;
        if (wake) {
            pthread_mutex_unlock(&p->mu);
            uint64_t one = 1;
            while (write(p->evfd, &one, sizeof one) < 0 && errno == EINTR) {
            }
            pthread_mutex_lock(&p->mu);
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Start one more worker; 0 or -errno. Reactor thread only. */
static int add_thread(struct kl_io_pool *p)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&p->threads[p->nthreads], NULL, worker, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return -rc;
    pthread_setname_np(p->threads[p->nthreads], "keel-pool");
    p->nthreads++;
    return 0;
}

static struct kl_io_pool *pool_get(struct kl_reactor *r)
{
    if (r->pool)
        return r->pool;
    struct kl_io_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    kl_queue_init(&p->queue);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->evfd = r->wake_fd;
    r->pool = p;
    return p;
}

void kl_io_pool_stop(struct kl_reactor *r)
{
    struct kl_io_pool *p = r->pool;
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    KL_ASSERT(kl_queue_empty(&p->queue) && p->done == NULL, "worker pool stopped with jobs");
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
    r->pool = NULL;
}

/* Unlink a queued job; true if it was still queued. Caller holds the lock. */
static bool unqueue(struct kl_io_pool *p, struct pool_job *j)
{
    if (j->state != JOB_QUEUED)
        return false;
    kl_queue_remove(&p->queue, &j->queue_node);
    return true;
}

/* Queue `j`, starting a worker if none is idle to take it; false when the
 * pool has no thread at all and none could start (j is not queued then). */
static bool enqueue(struct kl_io_pool *p, struct pool_job *j)
{
    pthread_mutex_lock(&p->mu);
    kl_queue_push_back(&p->queue, &j->queue_node);
    bool grow = kl_queue_len(&p->queue) > p->idle && p->nthreads < POOL_MAX_THREADS;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (!grow || add_thread(p) == 0 || p->nthreads > 0)
        return true;
    pthread_mutex_lock(&p->mu);
    unqueue(p, j);
    pthread_mutex_unlock(&p->mu);
    return false;
}

int kl_io_pool_run(struct kl_reactor *r, const char *what, intptr_t (*fn)(void *arg), void *arg,
                   uint64_t deadline_ns, bool droppable, intptr_t *res)
{
    struct kl_io_pool *p = pool_get(r);
    if (p == NULL)
        return -ENOMEM;
    uint64_t id = kl_fiber_id_raw(kl_fiber__id(r->sched->current));
    uint32_t slot = kl_reactor__slot(id);
    struct pool_job j = {.wait = {.id = id}, .fn = fn, .arg = arg, .state = JOB_QUEUED};
    KL_ASSERT(r->waits[slot] == NULL, "fiber slot %u has two requests in flight", slot);
    if (!enqueue(p, &j))
        return -EAGAIN;
    r->waits[slot] = &j.wait;
    r->inflight++;
    r->stats.submissions++;

    int reason = 0;
    while (!j.wait.done) {
        int rc = kl_reactor__park(r, what, deadline_ns);
        if (rc == -ETIMEDOUT || rc == -ECANCELED) {
            reason = rc;
            break;
        }
    }
    if (!j.wait.done) {
        bool dropped = false;
        if (droppable) {
            pthread_mutex_lock(&p->mu);
            dropped = unqueue(p, &j);
            pthread_mutex_unlock(&p->mu);
        }
        if (dropped) {
            r->inflight--;
            r->waits[slot] = NULL;
            return reason;
        }
        kl_reactor__wait_done(r, &j.wait);
    }
    r->waits[slot] = NULL;
    *res = (intptr_t)j.wait.res;
    return 0;
}

void kl_io_pool_reap(struct kl_reactor *r)
{
    struct kl_io_pool *p = r->pool;
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    struct pool_job *j = p->done;
    p->done = NULL;
    pthread_mutex_unlock(&p->mu);
    while (j) {
        struct pool_job *next = j->done_next; /* the fiber does not run before we return */
        KL_ASSERT(j->state == JOB_DONE && r->inflight > 0);
        r->inflight--;
        kl_reactor__complete(r, j->wait.id, j->res);
        j = next;
    }
}

/* ---- the epoll backend's file I/O ----------------------------------------- */

static intptr_t file_syscall(void *arg)
{
    const struct kl_io_req *q = arg;
    ssize_t n;
    switch (q->kind) {
    case KL_IO_READ: n = read(q->fd, q->buf, q->len); break;
    case KL_IO_WRITE: n = write(q->fd, q->buf, q->len); break;
    case KL_IO_READV: n = readv(q->fd, q->iov, q->iovcnt); break;
    case KL_IO_WRITEV: n = writev(q->fd, q->iov, q->iovcnt); break;
    case KL_IO_PREAD: n = pread(q->fd, q->buf, q->len, q->offset); break;
    case KL_IO_PWRITE: n = pwrite(q->fd, q->buf, q->len, q->offset); break;
    case KL_IO_FSYNC: n = fsync(q->fd); break;
    default: return -EINVAL;
    }
    return n < 0 ? -errno : n;
}

int64_t kl_io_pool_file(struct kl_reactor *r, struct kl_io_req *q, uint64_t deadline_ns)
{
    intptr_t res;
    int rc = kl_io_pool_run(r, "file-io", file_syscall, q, deadline_ns, true, &res);
    return rc < 0 ? rc : res;
}
