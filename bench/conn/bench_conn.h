/* bench_conn.h: the parts of bench/conn (see bench_conn.c). */
#ifndef KEEL_BENCH_CONN_H
#define KEEL_BENCH_CONN_H

#include <stdint.h>
#include <sys/types.h>

/* The request line every client sends (and every server echoes). */
#define BC_LINE     "pipelined line echo request...\n"
#define BC_LINE_LEN (sizeof BC_LINE - 1)

/* Closed-loop pipelined load: `conns` connections to 127.0.0.1:port, each
 * sending `depth` lines at once and waiting for all their echoes, for
 * `secs` seconds after a warm-up. Requests completed per second, or -1. */
double bc_load(int port, int conns, int depth, double secs);

/* bc_load, calling mid(arg) once, when the warm-up is over and every
 * connection is open (mid may be NULL). */
double bc_load_mid(int port, int conns, int depth, double secs, void (*mid)(void *), void *arg);

/* A connected socket to 127.0.0.1:port (TCP_NODELAY, receives time out
 * after 2 s), or -1. */
int bc_dial(int port);

/* Start server `path` with argv, its stdout on a pipe read until a line
 * says "serving"; the port is the number after `port_after` in one of the
 * lines. Its pid, or -1. */
pid_t bc_spawn(const char *path, char *const argv[], const char *port_after, int *port);

/* SIGTERM the server `pid` and reap it; SIGKILL after 5 s. */
void bc_stop(pid_t pid);

/* Ask the server at port for "stats" and read `syscalls` and `lines`; 0 or -1. */
int bc_stats(int port, uint64_t *syscalls, uint64_t *lines);

/* The plain edge-triggered epoll server, one thread per core, in a child
 * process: its pid, and its port in *port; -1 on failure. */
pid_t bc_baseline_start(int *port);

/* Open `n` connections to port, one request each ("line" and a reply that
 * ends with "\n"), kept open in fds[]; the count opened. */
int bc_hold(int port, int n, int *fds, const char *line);

/* CPU time (user and system) process `pid` has used, in seconds, from
 * /proc/PID/stat; -1 if it cannot be read. */
double bc_cpu_seconds(pid_t pid);

#endif /* KEEL_BENCH_CONN_H */
