/* line_echo.h: a line echo server's pieces on keel/conn.h, shared by
 * bench/listener and the handoff test (tests/unit/test_handoff.c): the
 * handler that echoes every complete line, and the on_open/on_close
 * callbacks that count connections in a worker's counter block (`arg`: a
 * kl_counter array whose first two counters are LINE_ECHO_OPENED and
 * LINE_ECHO_CLOSED). */
#ifndef KEEL_BENCH_LINE_ECHO_H
#define KEEL_BENCH_LINE_ECHO_H

#include "keel/conn.h"

enum { LINE_ECHO_OPENED, LINE_ECHO_CLOSED, LINE_ECHO_COUNTERS };

/* Echo every complete line of the input (a kl_conn_handler; arg unused). */
int line_echo(struct kl_conn *c, void *arg);

/* Count a connection opened / closed in the counters `arg` points to. */
void line_echo_opened(struct kl_conn *c, void *arg);
void line_echo_closed(struct kl_conn *c, int reason, void *arg);

#endif
