/* bench/conn load: the pipelined client, the connection holder, and the
 * small helpers the conn and listener benchmarks share.
 *
 * One thread, edge-triggered epoll, plain system calls: the same client for
 * every server. Each connection writes `depth` request lines in one write,
 * reads until all `depth` echoes are back, and starts over.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keel/clock.h"

#include "bench_conn.h"

extern char **environ;

int bc_dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 2};
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

struct lconn {
    int fd;
    size_t got; /* bytes of the current batch's echo received */
};

double bc_load(int port, int conns, int depth, double secs)
{
    return bc_load_mid(port, conns, depth, secs, NULL, NULL);
}

double bc_load_mid(int port, int conns, int depth, double secs, void (*mid)(void *), void *arg)
{
    size_t batch_len = (size_t)depth * BC_LINE_LEN;
    char *batch = malloc(batch_len), buf[65536];
    struct lconn *c = calloc((size_t)conns, sizeof *c);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (batch == NULL || c == NULL || ep < 0)
        return -1;
    for (int d = 0; d < depth; d++)
        memcpy(batch + (size_t)d * BC_LINE_LEN, BC_LINE, BC_LINE_LEN);
    int ok = 1;
    for (int i = 0; i < conns && ok; i++) {
        c[i].fd = bc_dial(port);
        ok = c[i].fd >= 0;
        if (ok) {
            fcntl(c[i].fd, F_SETFL, O_NONBLOCK);
            struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u32 = (uint32_t)i};
            epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev);
            ok = write(c[i].fd, batch, batch_len) == (ssize_t)batch_len;
        }
    }
    uint64_t start = kl_now(), warm = start + 300000000ull, t0 = 0, done = 0;
    uint64_t end = warm + (uint64_t)(secs * 1e9);
    while (ok) {
        uint64_t now = kl_now();
        if (t0 == 0 && now >= warm) {
            if (mid)
                mid(arg);
            t0 = kl_now();
            done = 0;
        }
        if (now >= end)
            break;
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, 100);
        for (int e = 0; e < n; e++) {
            struct lconn *k = &c[evs[e].data.u32];
            for (;;) {
                ssize_t r = read(k->fd, buf, sizeof buf);
                if (r <= 0) {
                    if (r == 0 || errno != EAGAIN)
                        ok = 0;
                    break;
                }
                k->got += (size_t)r;
                while (k->got >= batch_len) { /* a whole batch came back: the next */
                    k->got -= batch_len;
                    done += (uint64_t)depth;
                    if (write(k->fd, batch, batch_len) != (ssize_t)batch_len)
                        ok = 0;
                }
            }
        }
    }
    double rate = ok && t0 ? (double)done / ((double)(kl_now() - t0) / 1e9) : -1;
    for (int i = 0; i < conns; i++)
        if (c[i].fd > 0)
            close(c[i].fd);
    close(ep);
    free(c);
    free(batch);
    return rate;
}

int bc_stats(int port, uint64_t *syscalls, uint64_t *lines)
{
    int fd = bc_dial(port);
    if (fd < 0)
        return -1;
    char buf[2048];
    size_t have = 0;
    if (write(fd, "stats\n", 6) != 6) {
        close(fd);
        return -1;
    }
    while (have < sizeof buf - 1) {
        ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
        if (n <= 0)
            break;
        have += (size_t)n;
        buf[have] = '\0';
        if (strstr(buf, "END\r\n"))
            break;
    }
    buf[have] = '\0';
    close(fd);
    const char *s = strstr(buf, "syscalls "), *l = strstr(buf, "lines ");
    if (s == NULL || l == NULL)
        return -1;
    *syscalls = strtoull(s + 9, NULL, 10);
    *lines = strtoull(l + 6, NULL, 10);
    return 0;
}

int bc_hold(int port, int n, int *fds, const char *line)
{
    size_t len = strlen(line);
    for (int i = 0; i < n; i++) {
        fds[i] = bc_dial(port);
        if (fds[i] < 0 || write(fds[i], line, len) != (ssize_t)len)
            return i;
        char c = 0;
        while (c != '\n') /* the reply's end */
            if (read(fds[i], &c, 1) != 1)
                return i + 1;
    }
    return n;
}

void bc_stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    for (int i = 0; i < 50; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        usleep(100000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

pid_t bc_spawn(const char *path, char *const argv[], const char *port_after, int *port)
{
    int p[2];
    if (pipe(p) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, p[0]);
    pid_t pid;
    int rc = posix_spawn(&pid, path, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    if (rc != 0) {
        close(p[0]);
        return -1;
    }
    FILE *out = fdopen(p[0], "r");
    char line[512];
    *port = -1;
    while (fgets(line, sizeof line, out)) {
        const char *at = strstr(line, port_after);
        if (at)
            *port = atoi(at + strlen(port_after));
        if (strstr(line, "serving"))
            break;
    }
    fclose(out); /* the server's later lines go to a closed pipe: it must ignore SIGPIPE */
    if (*port <= 0) {
        bc_stop(pid);
        return -1;
    }
    return pid;
}
