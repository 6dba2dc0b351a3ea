/* admin.h: keeld's admin endpoint, `--admin ADDR:PORT`.
 *
 * An HTTP server on its own thread (Debian's libmicrohttpd, not a home-made
 * one) that answers GET /metrics with the Prometheus text format and GET
 * /health with "ok". The metrics come from a callback that renders the
 * server's figures (workers' counters, summed without locks on their
 * request path) into a text buffer each time it is scraped.
 */
#ifndef KEELD_ADMIN_H
#define KEELD_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "text.h"

struct keeld_admin;

/* Render every metric into `out` (Prometheus text exposition format). */
typedef void (*keeld_metrics_fn)(void *ctx, struct keeld_text *out);

/* Listen on "ADDR:PORT" ("[V6]:PORT"; port 0 picks a free one) and serve.
 * NULL on failure, with a one-line reason in `err`. */
struct keeld_admin *keeld_admin_start(const char *addr_port, keeld_metrics_fn fn, void *ctx,
                                      char *err, size_t err_len);

/* The TCP port it listens on. */
uint16_t keeld_admin_port(const struct keeld_admin *a);

/* Stop serving and free it. */
void keeld_admin_stop(struct keeld_admin *a);

/* Append one Prometheus sample with its HELP and TYPE lines (type "counter"
 * or "gauge"); `name` gets no prefix added. */
void keeld_metric(struct keeld_text *out, const char *name, const char *type, const char *help,
                  double value);

#endif
