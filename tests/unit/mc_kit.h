/* mc_kit.h: table-driven checks of the memcache parser (test_memcache_*.c).
 *
 * A case is input bytes and the expected results of parsing them as one
 * connection would: every command or error, rendered as text ("set key=k
 * flags=5 value=hello", "ERR CLIENT_ERROR bad data chunk", "MORE need=3"),
 * joined by " | ". mc_check() runs the case with the bytes arriving all at
 * once, one byte at a time, and in two pieces split at every offset, and
 * requires the same results from each (unless the case is whole_only, for
 * memcached's few arrival-dependent verdicts). Each parse call sees a copy of
 * exactly the unconsumed bytes in a buffer of their size, so a read past the
 * end is an ASan report.
 */
#ifndef KEEL_TEST_MC_KIT_H
#define KEEL_TEST_MC_KIT_H

#include <stdbool.h>
#include <stddef.h>

#include "keel/memcache.h"

#define MC_KIT_NOW 1700000000 /* the config's clock for the cases */

struct mc_case {
    const char *in;
    const char *want;
    size_t in_len;   /* 0: strlen(in) */
    bool whole_only; /* only the all-at-once delivery is checked */
};

/* The config the cases run with (memcached's defaults, now = MC_KIT_NOW). */
const struct kl_mc_config *mc_kit_config(void);

/* Render one parse result into out. */
void mc_describe(enum kl_mc_status st, const struct kl_mc_cmd *cmd, char *out, size_t cap);

/* Run the case (every delivery) and record failures; true if all passed. */
bool mc_check(const struct mc_case *c);

/* mc_check() every case of a table. */
void mc_check_table(const struct mc_case *cases, size_t n);

#define MC_CHECK_TABLE(t) mc_check_table(t, sizeof(t) / sizeof((t)[0]))

#endif /* KEEL_TEST_MC_KIT_H */
