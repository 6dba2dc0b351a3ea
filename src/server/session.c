/* session.c: one connection's input, command by command (see exec.h).
 *
 * The runner hands the handler a view of every unconsumed byte; the parser
 * takes commands off its front in place, exec runs them and queues their
 * replies, and the bytes are consumed once, at the end of the batch, so the
 * replies of one read go out in one writev. On an engine that overlaps
 * lookups (the disk engine), consecutive get and gets commands are gathered
 * into a run, answered when another command or the end of the input comes
 * (retrieve.h), so that their reads are in flight at once. A value refused
 * as too large is swallowed without being buffered: the parser says how
 * many bytes to drop, and what is not in the buffer yet is dropped as it
 * arrives (the count rides in the connection's user word). Each command
 * of the call is counted in its latency class, with the call's time
 * (latency.h).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <time.h>

#include "exec.h"
#include "keel/clock.h"
#include "latency.h"
#include "retrieve.h"

int keeld_session(struct kl_conn *c, void *arg)
{
    struct keeld_worker *w = arg;
    struct kl_mc_config cfg = w->shared->mc;
    cfg.now = w->now = (int64_t)time(NULL);
    uintptr_t skip = (uintptr_t)kl_conn_user(c);
    size_t len;
    const char *buf = kl_conn_input(c, &len);
    if (skip > 0) {
        size_t n = skip < len ? skip : len;
        kl_conn_consume(c, n);
        skip -= n;
        kl_conn_set_user(c, (void *)skip);
        keeld_count(w, KEELD_C_bytes_read, n);
        if (skip > 0)
            return KL_CONN_MORE;
        buf = kl_conn_input(c, &len);
    }
    size_t off = 0;
    int rc = 0;
    struct keeld_run run = {.n = 0};
    uint64_t t0 = kl_now();
    uint32_t by_class[KEELD_LAT_CLASSES] = {0};
    while (off < len && rc == 0) {
        struct kl_mc_cmd cmd;
        enum kl_mc_status st = kl_mc_parse(&cfg, buf + off, len - off, &cmd);
        if (st == KL_MC_NEED_MORE)
            break;
        bool joins = st != KL_MC_ERROR && keeld_run_takes(w, &cmd);
        if (run.n > 0 && (!joins || run.n == KEELD_RUN_MAX)) {
            rc = keeld_run_answer(w, c, &run); /* replies keep the commands' order */
            if (rc != 0)
                break;
        }
        if (KL_UNLIKELY(keeld_tracing(w)))
            keeld_trace(kl_conn_fd(c), '<', buf + off, len - off);
        if (st == KL_MC_ERROR) {
            if (KL_UNLIKELY(keeld_tracing(w)) && cmd.reply.len > 0)
                keeld_trace(kl_conn_fd(c), '>', cmd.reply.p, cmd.reply.len);
            if (cmd.too_large)
                keeld_too_large(w, &cmd);
            if (cmd.reply.len > 0)
                rc = keeld_reply(w, c, cmd.reply.p, cmd.reply.len);
            if (rc == 0 && cmd.close)
                rc = KL_CONN_CLOSE;
        } else if (joins) {
            keeld_run_add(&run, &cmd);
            by_class[KEELD_LAT_GET]++;
        } else {
            rc = keeld_exec(w, c, &cmd);
            by_class[keeld_lat_class_of(cmd.type)]++;
        }
        if (cmd.consumed > len - off) {
            skip = cmd.consumed - (len - off);
            off = len;
        } else {
            off += cmd.consumed;
        }
    }
    if (run.n > 0) {
        int rr = keeld_run_answer(w, c, &run);
        rc = rc ? rc : rr;
    }
    kl_conn_consume(c, off);
    kl_conn_set_user(c, (void *)skip);
    keeld_count(w, KEELD_C_bytes_read, off);
    uint64_t took = kl_now() - t0;
    for (unsigned k = 0; k < KEELD_LAT_CLASSES; k++)
        if (by_class[k])
            keeld_lat_record(w->lat, (enum keeld_lat_class)k, took, by_class[k]);
    return rc;
}
