/* server.h: keeld as a whole: the engine, the worker threads, their
 * listeners and connections, the admin endpoint, signals and the clock.
 *
 * The main thread owns start-up and shutdown and nothing on the request
 * path: it opens the engine and the listening sockets, starts N workers
 * (keel/workers.h) that each serve their own listener's connections, then
 * waits for signals and ticks the engine's clock once a second (which also
 * frees expired segments). SIGTERM/SIGINT drain: the listeners stop, the
 * connections finish the requests they hold (up to a grace period), and the
 * process exits 0. SIGHUP reopens the log.
 */
#ifndef KEELD_SERVER_H
#define KEELD_SERVER_H

#include "options.h"

/* Run keeld with these options until it is stopped. Returns the exit
 * status: 0 after a clean stop, 1 when it could not start (said on stderr). */
int keeld_run(const struct keeld_options *opts);

#endif
