/* bench/conn baseline: a plain edge-triggered epoll line echo server.
 *
 * What one would write by hand without keel: one thread per core, each with
 * its own epoll instance and its own SO_REUSEPORT listening socket on the
 * same port, a fixed input and output buffer per connection. On EPOLLIN a
 * thread reads until EAGAIN, echoes every complete line into the output
 * buffer, moves the partial line to the front and writes the output once
 * (a short write waits for EPOLLOUT). "stats" answers with the system calls
 * the threads made (per-thread counters, summed when asked) and the lines
 * served. It runs in a child process until killed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_conn.h"

#define MAX_THREADS 64
#define BUF         16384

struct bconn {
    int fd;
    size_t in_len, out_len, out_off;
    char in[BUF], out[BUF * 2];
};

struct counters {
    _Atomic uint64_t syscalls, lines;
    char pad[48];
};

static struct counters counts[MAX_THREADS];
static int nthreads;
static int port_;

static uint64_t total(bool lines)
{
    uint64_t s = 0;
    for (int i = 0; i < nthreads; i++)
        s += atomic_load_explicit(lines ? &counts[i].lines : &counts[i].syscalls,
                                  memory_order_relaxed);
    return s;
}

static void add(_Atomic uint64_t *c, uint64_t n)
{ /* one writer per counter: a plain load and store, no locked instruction */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 1024) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    port_ = ntohs(a.sin_port);
    return fd;
}

/* Write what is buffered; false when the connection is gone. */
static bool flush(struct bconn *c, struct counters *k)
{
    while (c->out_off < c->out_len) {
        add(&k->syscalls, 1);
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0)
            return errno == EAGAIN; /* EPOLLOUT will call again */
        c->out_off += (size_t)n;
    }
    c->out_len = c->out_off = 0;
    return true;
}

/* Read until EAGAIN, echoing lines; false when the connection is gone. */
static bool serve(struct bconn *c, struct counters *k)
{
    for (;;) {
        if (c->in_len == BUF || c->out_len + BUF > sizeof c->out)
            return false; /* a line longer than the buffer, or a reader that does not read */
        add(&k->syscalls, 1);
        ssize_t n = read(c->fd, c->in + c->in_len, BUF - c->in_len);
        if (n == 0 || (n < 0 && errno != EAGAIN))
            return false;
        if (n < 0)
            break;
        c->in_len += (size_t)n;
        size_t off = 0;
        char *nl;
        while ((nl = memchr(c->in + off, '\n', c->in_len - off)) != NULL) {
            size_t len = (size_t)(nl - (c->in + off)) + 1;
            if (len == 6 && memcmp(c->in + off, "stats\n", 6) == 0)
                c->out_len += (size_t)snprintf(c->out + c->out_len, sizeof c->out - c->out_len,
                                               "syscalls %llu\r\nlines %llu\r\nEND\r\n",
                                               (unsigned long long)total(false),
                                               (unsigned long long)total(true));
            else {
                memcpy(c->out + c->out_len, c->in + off, len);
                c->out_len += len;
            }
            add(&k->lines, 1);
            off += len;
        }
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    return flush(c, k);
}

static void *worker(void *arg)
{
    int me = (int)(intptr_t)arg;
    struct counters *k = &counts[me];
    int lfd = listen_on(port_);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    for (;;) {
        struct epoll_event evs[128];
        add(&k->syscalls, 1);
        int n = epoll_wait(ep, evs, 128, -1);
        for (int i = 0; i < n; i++) {
            struct bconn *c = evs[i].data.ptr;
            if (c == NULL) { /* the listener: accept all that wait */
                for (;;) {
                    add(&k->syscalls, 1);
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct bconn *nc = calloc(1, sizeof *nc);
                    nc->fd = fd;
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                              .data.ptr = nc};
                    add(&k->syscalls, 2);
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            bool alive = true;
            if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                alive = serve(c, k);
            if (alive && (evs[i].events & EPOLLOUT) && c->out_len)
                alive = flush(c, k);
            if (!alive) {
                close(c->fd);
                free(c);
            }
        }
    }
    return NULL;
}

pid_t bc_baseline_start(int *port)
{
    int p[2];
    if (pipe(p) != 0)
        return -1;
    pid_t pid = fork();
    if (pid != 0) {
        close(p[1]);
        int got = -1;
        ssize_t n = pid > 0 ? read(p[0], &got, sizeof got) : -1;
        close(p[0]);
        *port = got;
        return n == (ssize_t)sizeof got && got > 0 ? pid : -1;
    }
    close(p[0]);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    nthreads = cores < 1 ? 1 : cores > MAX_THREADS ? MAX_THREADS : (int)cores;
    int first = listen_on(0); /* picks the port the others share */
    if (first >= 0)
        close(first);
    for (int i = 0; i < nthreads; i++) {
        pthread_t t;
        pthread_create(&t, NULL, worker, (void *)(intptr_t)i);
    }
    usleep(100000); /* every thread's socket is listening */
    if (write(p[1], &port_, sizeof port_) != (ssize_t)sizeof port_)
        _exit(1);
    for (;;)
        pause();
}
