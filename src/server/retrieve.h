/* retrieve.h: the get family (get gets gat gats), keys looked up in batches.
 *
 * A connection's pipelined gets arrive in one read; on an engine that waits
 * for a device (kl_engine_overlaps) the session gathers a run of consecutive
 * get/gets commands and answers them together, so that their keys go to the
 * engine in batches of up to KL_LOOKUP_MANY_MAX and the device sees them all
 * at once, instead of one read at a time. Replies keep the commands' order.
 * On the in-memory engine a run is one command, as before.
 */
#ifndef KEELD_RETRIEVE_H
#define KEELD_RETRIEVE_H

#include "exec.h"

/* Most commands in one run. */
#define KEELD_RUN_MAX 32

/* A run of retrieval commands waiting for their answers. */
struct keeld_run {
    uint32_t n;
    struct keeld_run_cmd {
        uint8_t type;          /* KL_MC_GET, GETS, GAT, GATS */
        uint32_t exptime;      /* gat, gats: the engine's exptime */
        struct kl_mc_str keys; /* as the parser gave them (kl_mc_next_key) */
    } cmd[KEELD_RUN_MAX];
};

/* True when cmd joins runs on this worker's engine (a get or gets, and an
 * engine that overlaps lookups); a full run is answered before it joins. */
bool keeld_run_takes(const struct keeld_worker *w, const struct kl_mc_cmd *cmd);

/* Add a retrieval command to the run. */
void keeld_run_add(struct keeld_run *run, const struct kl_mc_cmd *cmd);

/* Answer every command of the run in order and empty it: KL_CONN_MORE, or
 * the writer's error (every item released either way). */
int keeld_run_answer(struct keeld_worker *w, struct kl_conn *c, struct keeld_run *run);

#endif
