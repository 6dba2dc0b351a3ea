/* admin.c: the admin endpoint over libmicrohttpd (see admin.h).
 *
 * libmicrohttpd runs its own polling thread, so scrapes never touch a worker's
 * reactor; the metrics callback reads the workers' counters as they are
 * (relaxed loads) and renders a fresh text per request. The connection limit
 * and timeout keep a misbehaving scraper from holding the thread.
 */
#define _GNU_SOURCE
#include "admin.h"

#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct keeld_admin {
    struct MHD_Daemon *daemon;
    keeld_metrics_fn fn;
    void *ctx;
    uint16_t port;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             char *body, size_t len, bool owned)
{
    struct MHD_Response *r =
        owned ? MHD_create_response_from_buffer_with_free_callback(len, body, free)
              : MHD_create_response_from_buffer(len, body, MHD_RESPMEM_PERSISTENT);
    if (r == NULL) {
        if (owned)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_len, void **state)
{
    (void)version;
    (void)upload;
    (void)upload_len;
    (void)state;
    struct keeld_admin *a = cls;
    static const char text[] = "text/plain; charset=utf-8";
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, text, (char *)"method not allowed\n",
                     sizeof "method not allowed\n" - 1, false);
    if (strcmp(url, "/health") == 0)
        return reply(c, MHD_HTTP_OK, text, (char *)"ok\n", 3, false);
    if (strcmp(url, "/metrics") == 0) {
        struct keeld_text out = {0};
        a->fn(a->ctx, &out);
        if (out.failed) {
            keeld_text_free(&out);
            return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, text, (char *)"out of memory\n",
                         sizeof "out of memory\n" - 1, false);
        }
        if (out.buf == NULL)
            return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4", (char *)"", 0, false);
        return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", out.buf, out.len,
                     true);
    }
    return reply(c, MHD_HTTP_NOT_FOUND, text, (char *)"not found: try /metrics or /health\n",
                 sizeof "not found: try /metrics or /health\n" - 1, false);
}

/* Split "ADDR:PORT" or "[V6]:PORT" and resolve it. */
static int resolve(const char *addr_port, struct sockaddr_storage *ss, char *err, size_t err_len)
{
    char host[256];
    const char *port;
    const char *colon = strrchr(addr_port, ':');
    if (colon == NULL) {
        snprintf(err, err_len, "admin address '%s' has no port", addr_port);
        return -1;
    }
    size_t hlen = (size_t)(colon - addr_port);
    const char *h = addr_port;
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof host) {
        snprintf(err, err_len, "admin address '%s' has no host", addr_port);
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    port = colon + 1;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, err_len, "admin address '%s': %s", addr_port, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

struct keeld_admin *keeld_admin_start(const char *addr_port, keeld_metrics_fn fn, void *ctx,
                                      char *err, size_t err_len)
{
    struct sockaddr_storage ss;
    if (resolve(addr_port, &ss, err, err_len) < 0)
        return NULL;
    struct keeld_admin *a = calloc(1, sizeof *a);
    if (a == NULL) {
        snprintf(err, err_len, "admin: out of memory");
        return NULL;
    }
    a->fn = fn;
    a->ctx = ctx;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    a->daemon = MHD_start_daemon(flags, 0, NULL, NULL, handle, a, MHD_OPTION_SOCK_ADDR,
                                 (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, 64u,
                                 MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (a->daemon == NULL) {
        snprintf(err, err_len, "admin: cannot listen on %s (in use, or not an address here)",
                 addr_port);
        free(a);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(a->daemon, MHD_DAEMON_INFO_BIND_PORT);
    a->port = info ? info->port : 0;
    return a;
}

uint16_t keeld_admin_port(const struct keeld_admin *a) { return a->port; }

void keeld_admin_stop(struct keeld_admin *a)
{
    if (a == NULL)
        return;
    MHD_stop_daemon(a->daemon);
    free(a);
}

void keeld_metric(struct keeld_text *out, const char *name, const char *type, const char *help,
                  double value)
{
    keeld_text_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name,
                      value);
}
