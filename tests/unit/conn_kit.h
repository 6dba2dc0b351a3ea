/* conn_kit.h: what the connection tests share (test_conn*.c).
 *
 * A line server on keel/conn.h + keel/listener.h at 127.0.0.1 (a port the
 * kernel picks), whose handler echoes lines and knows a few commands:
 * "slow" (sleep 50 ms, then echo), "fill" (wait in kl_conn_fill for more
 * input, then echo what came, or "fill-error N"), "big" (a 256 KiB borrowed
 * piece, released through a counter), "many" (150 borrowed one-byte pieces,
 * then 40 KiB copied), "quit". Connections over the limit
 * get "SERVER_ERROR too many open connections". Client helpers are fiber-side
 * wrappers over keel/io.h that fail the case on surprises.
 */
#ifndef KEEL_TEST_CONN_KIT_H
#define KEEL_TEST_CONN_KIT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/conn.h"
#include "keel/listener.h"

#define CK_BIG       (256 * 1024)
#define CK_MANY_REFS 150         /* "many": 1-byte borrowed pieces, big[0..150) */
#define CK_MANY_COPY (40 * 1024) /* then big[0..40 KiB) copied */

struct ck_server {
    struct kl_connset set;
    struct kl_listener l;
    struct sockaddr_in addr;
    uint64_t big_queued, big_released; /* borrowed pieces */
    uint32_t closes[8];                /* by reason: see ck_reason() */
    int fill_result;                   /* the last "fill" command's kl_conn_fill result */
    struct kl_conn *filling;           /* the connection waiting in "fill" */
};

extern struct ck_server ck;

enum { CK_R_OK, CK_R_TIMEDOUT, CK_R_NOBUFS, CK_R_SHUTDOWN, CK_R_CANCELED, CK_R_OTHER };

/* Start the server with `cfg` (handler and on_close are the kit's); false
 * (the case failed) if it cannot. */
bool ck_up(const struct kl_connset_config *cfg);

/* From a fiber: stop the listener and the set (grace 0). */
void ck_stop(void);

/* Wait (sleeping 5 ms at a time) until the set has `n` connections open. */
bool ck_wait_open(uint32_t n, uint64_t timeout_ns);

/* The end of a driver: every connection closed (else the case fails), then ck_stop(). */
void ck_finish(void);

/* From the main context after the fibers ended: close and destroy, failing on -EBUSY. */
void ck_down(void);

/* The bytes "big" and "many" send ('a' + i % 26). */
const char *ck_big(void);

/* A connected client socket, or -1 (the case failed). */
int ck_connect(void);

/* Send all of buf; false on error. */
bool ck_send(int fd, const void *buf, size_t len);

/* Receive exactly len bytes within timeout; false otherwise. */
bool ck_recv_exact(int fd, void *buf, size_t len, uint64_t timeout_ns);

/* True when the server closes within timeout (a receive returns 0 or an error). */
bool ck_eof(int fd, uint64_t timeout_ns);

#endif /* KEEL_TEST_CONN_KIT_H */
