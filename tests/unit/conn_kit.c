/* conn_kit.c: the line server and client helpers of the connection tests. */
#include "conn_kit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "keel/clock.h"
#include "keel/io.h"
#include "keel/reactor.h"

#include "kt.h"
#include "reactor_kit.h"

struct ck_server ck;

static char big[CK_BIG];

const char *ck_big(void) { return big; }

static void big_release(void *arg)
{
    (void)arg;
    ck.big_released++;
}

static int command(struct kl_conn *c, const char *line, size_t n)
{
    if (n == 5 && memcmp(line, "quit\n", 5) == 0)
        return KL_CONN_CLOSE;
    if (n == 5 && memcmp(line, "slow\n", 5) == 0) {
        kl_sleep(50 * MS);
        return kl_conn_write(c, line, n);
    }
    if (n == 4 && memcmp(line, "big\n", 4) == 0) {
        ck.big_queued++;
        return kl_conn_write_ref(c, big, sizeof big, big_release, NULL);
    }
    if (n == 5 && memcmp(line, "many\n", 5) == 0) { /* more pieces than a batch's iovecs */
        for (int i = 0; i < CK_MANY_REFS; i++) {
            ck.big_queued++;
            int rc = kl_conn_write_ref(c, big + i, 1, big_release, NULL);
            if (rc < 0)
                return rc;
        }
        return kl_conn_write(c, big, CK_MANY_COPY); /* larger than the copy area */
    }
    if (n == 5 && memcmp(line, "fill\n", 5) == 0) {
        ck.filling = c;
        ssize_t got = kl_conn_fill(c, 0);
        ck.filling = NULL;
        ck.fill_result = (int)got;
        if (got <= 0) {
            char out[32];
            int len = snprintf(out, sizeof out, "fill-error %d\n", (int)got);
            kl_conn_write(c, out, (size_t)len);
            return got == 0 ? KL_CONN_CLOSE : (int)got;
        }
        return 0;
    }
    return kl_conn_write(c, line, n);
}

static int handler(struct kl_conn *c, void *arg)
{
    (void)arg;
    for (;;) {
        size_t len;
        const char *in = kl_conn_input(c, &len);
        const char *nl = memchr(in, '\n', len);
        if (nl == NULL)
            return KL_CONN_MORE;
        size_t n = (size_t)(nl - in) + 1;
        char line[16];
        int rc;
        if (n > sizeof line) {
            rc = kl_conn_write(c, in, n);
            kl_conn_consume(c, n);
        } else { /* a command may call kl_conn_fill, which may move the input */
            memcpy(line, in, n);
            kl_conn_consume(c, n);
            rc = command(c, line, n);
        }
        if (rc != 0)
            return rc;
    }
}

static void on_close(struct kl_conn *c, int reason, void *arg)
{
    (void)c;
    (void)arg;
    int k = reason == 0            ? CK_R_OK
            : reason == -ETIMEDOUT ? CK_R_TIMEDOUT
            : reason == -ENOBUFS   ? CK_R_NOBUFS
            : reason == -ESHUTDOWN ? CK_R_SHUTDOWN
            : reason == -ECANCELED ? CK_R_CANCELED
                                   : CK_R_OTHER;
    ck.closes[k]++;
}

static void refuse(int fd, void *arg)
{
    (void)arg;
    static const char msg[] = "SERVER_ERROR too many open connections\r\n";
    ssize_t n = send(fd, msg, sizeof msg - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)n; /* best effort: the connection is closed either way */
}

bool ck_up(const struct kl_connset_config *cfg)
{
    memset(&ck, 0, sizeof ck);
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    struct kl_connset_config c = *cfg;
    c.handler = handler;
    c.on_close = on_close;
    int rc = kl_connset_init(&ck.set, &c);
    if (rc != 0) {
        kt_fail(__FILE__, __LINE__, "kl_connset_init: %d", rc);
        return false;
    }
    rc = kl_listener_open(&ck.l, &(struct kl_listener_config){
                                     .addrs = "127.0.0.1:0", .conns = &ck.set, .refuse = refuse});
    if (rc == 0)
        rc = kl_listener_start(&ck.l);
    if (rc != 0) {
        kt_fail(__FILE__, __LINE__, "listener: %d", rc);
        return false;
    }
    ck.addr =
        (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(kl_listener_port(&ck.l, 0))};
    ck.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return true;
}

void ck_stop(void)
{
    KT_EQ_I(kl_listener_stop(&ck.l), 0);
    KT_EQ_I(kl_connset_stop(&ck.set, 0), 0);
}

bool ck_wait_open(uint32_t n, uint64_t timeout_ns)
{
    uint64_t end = kl_now() + timeout_ns;
    while (ck.set.stats.open != n && kl_now() < end)
        kl_sleep(5 * MS);
    return ck.set.stats.open == n;
}

void ck_finish(void)
{
    if (!ck_wait_open(0, 20 * SEC))
        kt_fail(__FILE__, __LINE__,
                "%u connections still open (%u active, %zu ready, %zu idle; %u runners, %u parked)",
                ck.set.stats.open, ck.set.stats.active, kl_list_len(&ck.set.ready),
                kl_list_len(&ck.set.idle), ck.set.stats.runners, ck.set.nparked);
    ck_stop();
}

void ck_down(void)
{
    KT_EQ_I(kl_listener_close(&ck.l), 0);
    KT_EQ_I(kl_connset_destroy(&ck.set), 0);
}

int ck_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        kt_fail(__FILE__, __LINE__, "socket: %d", errno);
        return -1;
    }
    int rc = kl_connect(fd, (struct sockaddr *)&ck.addr, sizeof ck.addr, 2 * SEC);
    if (rc != 0) {
        kt_fail(__FILE__, __LINE__, "connect: %d", rc);
        kl_close(fd);
        return -1;
    }
    return fd;
}

bool ck_send(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = kl_send(fd, p, len, 0, 2 * SEC);
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

bool ck_recv_exact(int fd, void *buf, size_t len, uint64_t timeout_ns)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = kl_recv(fd, p, len, 0, timeout_ns);
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

bool ck_eof(int fd, uint64_t timeout_ns)
{
    char c;
    ssize_t n = kl_recv(fd, &c, 1, 0, timeout_ns);
    return n == 0 || (n < 0 && n != -ETIMEDOUT && n != -ECANCELED);
}
