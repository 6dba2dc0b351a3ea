/* conns.h: `stats conns`, memcached's list of open sockets.
 *
 * For every listening socket and every connection, the lines memcached
 * sends ("STAT <fd>:addr tcp:127.0.0.1:11211", ":listen_addr", ":state",
 * ":secs_since_last_cmd"). A connection belongs to its worker's thread, so
 * each worker lists its own (conns.c posts the listing to it) and the asking
 * fiber gathers them.
 */
#ifndef KEELD_CONNS_H
#define KEELD_CONNS_H

#include <stdbool.h>
#include <stdint.h>

#include "keel/workers.h"
#include "stats.h"
#include "text.h"

/* Write worker `index`'s sockets into `out` (keeld_conns_listening and
 * keeld_conns_connection for each); runs on that worker's thread. */
typedef void (*keeld_conns_list_fn)(uint32_t index, struct keeld_text *out, void *arg);

/* List every worker's sockets (each on its own thread) and emit them as
 * stats lines; from a fiber on one of the workers. Waits up to a second for
 * the others (a stopping worker is left out). 0, or -ENOMEM. */
int keeld_conns_report(struct kl_workers *group, keeld_conns_list_fn list, void *arg,
                       keeld_stat_emit emit, void *sink);

/* The lines of a listening socket, open for up_s seconds. */
void keeld_conns_listening(struct keeld_text *out, int fd, uint64_t up_s);

/* The lines of a connection: busy (serving a command: memcached's state
 * conn_parse_cmd) or waiting for input (conn_read) for idle_s seconds. */
void keeld_conns_connection(struct keeld_text *out, int fd, bool busy, uint64_t idle_s);

#endif
