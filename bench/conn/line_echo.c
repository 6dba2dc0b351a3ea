/* line_echo.c: see line_echo.h. */
#define _GNU_SOURCE
#include "line_echo.h"

#include <string.h>

#include "keel/workers.h"

int line_echo(struct kl_conn *c, void *arg)
{
    (void)arg;
    size_t len;
    const char *in = kl_conn_input(c, &len);
    const char *nl = memrchr(in, '\n', len);
    if (nl == NULL)
        return KL_CONN_MORE;
    size_t n = (size_t)(nl - in) + 1;
    int rc = kl_conn_write(c, in, n);
    kl_conn_consume(c, n);
    return rc < 0 ? rc : KL_CONN_MORE;
}

void line_echo_opened(struct kl_conn *c, void *arg)
{
    (void)c;
    kl_counter_add(&((kl_counter *)arg)[LINE_ECHO_OPENED], 1);
}

void line_echo_closed(struct kl_conn *c, int reason, void *arg)
{
    (void)c;
    (void)reason;
    kl_counter_add(&((kl_counter *)arg)[LINE_ECHO_CLOSED], 1);
}
