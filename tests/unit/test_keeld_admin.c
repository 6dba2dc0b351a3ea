/* test_keeld_admin: the --admin HTTP endpoint, spoken to over a real socket. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin.h"
#include "kt.h"

static int scrapes;

static void render(void *ctx, struct keeld_text *out)
{
    const char *who = ctx;
    scrapes++;
    keeld_metric(out, "keeld_cmd_get_total", "counter", "get commands", 42);
    keeld_metric(out, "keeld_curr_connections", "gauge", who, 3);
}

/* One HTTP/1.0 exchange; the whole response in `resp`. */
static int http(uint16_t port, const char *request, char *resp, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    if (write(fd, request, strlen(request)) != (ssize_t)strlen(request)) {
        close(fd);
        return -1;
    }
    size_t len = 0;
    ssize_t n;
    while (len + 1 < cap && (n = read(fd, resp + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    resp[len] = '\0';
    close(fd);
    return (int)len;
}

KT_TEST(metrics_health_and_errors)
{
    char err[256], resp[8192];
    struct keeld_admin *a =
        keeld_admin_start("127.0.0.1:0", render, (void *)"open connections", err, sizeof err);
    KT_REQUIRE(a != NULL);
    uint16_t port = keeld_admin_port(a);
    KT_REQUIRE(port != 0);

    KT_REQUIRE(http(port, "GET /metrics HTTP/1.0\r\n\r\n", resp, sizeof resp) > 0);
    KT_CHECK(strncmp(resp, "HTTP/1.0 200", 12) == 0 || strncmp(resp, "HTTP/1.1 200", 12) == 0);
    KT_CHECK(strstr(resp, "text/plain; version=0.0.4") != NULL);
    KT_CHECK(strstr(resp, "# TYPE keeld_cmd_get_total counter\nkeeld_cmd_get_total 42\n") != NULL);
    KT_CHECK(strstr(resp, "# HELP keeld_curr_connections open connections\n") != NULL);
    KT_CHECK(scrapes == 1);

    KT_REQUIRE(http(port, "GET /health HTTP/1.0\r\n\r\n", resp, sizeof resp) > 0);
    KT_CHECK(strstr(resp, " 200 ") != NULL && strstr(resp, "\r\n\r\nok\n") != NULL);
    KT_REQUIRE(http(port, "GET /nope HTTP/1.0\r\n\r\n", resp, sizeof resp) > 0);
    KT_CHECK(strstr(resp, " 404 ") != NULL);
    KT_REQUIRE(
        http(port, "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n", resp, sizeof resp) > 0);
    KT_CHECK(strstr(resp, " 405 ") != NULL);
    KT_CHECK(scrapes == 1);
    keeld_admin_stop(a);
    KT_CHECK(http(port, "GET /health HTTP/1.0\r\n\r\n", resp, sizeof resp) < 0);
}

KT_TEST(bad_addresses_are_reported)
{
    char err[256];
    KT_CHECK(keeld_admin_start("127.0.0.1", render, NULL, err, sizeof err) == NULL);
    KT_CHECK(strstr(err, "no port") != NULL);
    KT_CHECK(keeld_admin_start("no.such.host.invalid:80", render, NULL, err, sizeof err) == NULL);
    KT_CHECK(strstr(err, "no.such.host.invalid") != NULL);
    struct keeld_admin *a = keeld_admin_start("127.0.0.1:0", render, NULL, err, sizeof err);
    KT_REQUIRE(a != NULL);
    char taken[64];
    snprintf(taken, sizeof taken, "127.0.0.1:%u", keeld_admin_port(a));
    KT_CHECK(keeld_admin_start(taken, render, NULL, err, sizeof err) == NULL);
    KT_CHECK(strstr(err, "cannot listen") != NULL);
    keeld_admin_stop(a);
}
