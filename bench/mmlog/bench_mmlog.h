/* bench_mmlog.h: shared parts of bench/mmlog (see bench_mmlog.c). */
#ifndef KEEL_BENCH_MMLOG_H
#define KEEL_BENCH_MMLOG_H

#include <stddef.h>
#include <stdint.h>

#define WRITERS      4
#define DIRECT_BLOCK 4096 /* O_DIRECT writes whole aligned blocks */

/* One way of appending records to a file shared by WRITERS processes. */
struct method {
    const char *name;
    const char *key; /* for result lines */
    /* In a child: append `count` records of `size` bytes as writer `id` to
     * `path`; return 0 or an exit status. */
    int (*run)(const char *path, uint32_t id, size_t size, uint32_t count, double *us_per_call);
    /* In the parent: count intact records and corrupt ones in the output. */
    int (*verify)(const char *path, size_t size, uint32_t count, uint64_t *intact,
                  uint64_t *corrupt);
};

extern const struct method bench_methods[];
extern const size_t bench_method_count;

/* Fill a record template for writer `id`: bytes past the 8-byte (id, seq)
 * prefix depend on the writer and the position only. */
void record_template(unsigned char *buf, size_t size, uint32_t id);

/* Stamp sequence `seq` into a template (cheap: 8 bytes, or 1 for tiny). */
void record_stamp(unsigned char *buf, size_t size, uint32_t id, uint32_t seq);

/* Check one record; on success store its writer and sequence. */
int record_check(const unsigned char *buf, size_t size, uint32_t *id, uint32_t *seq);

/* Verify a file of fixed-size slots of `slot` bytes, each starting with a
 * record of `size` bytes: every (writer, seq) exactly once. */
int verify_slots(const char *path, size_t size, size_t slot, uint32_t count, uint64_t *intact,
                 uint64_t *corrupt);

/* Verify the stream of records of a set of (writer, seq) seen so far. */
struct seen {
    uint8_t *bits[WRITERS];
    uint32_t count;
    uint64_t small_counts[WRITERS]; /* records too small to carry a sequence */
};
int seen_init(struct seen *s, uint32_t count);
/* Record one verified record; returns 0, or -1 when it is a duplicate. */
int seen_add(struct seen *s, size_t size, uint32_t id, uint32_t seq);
/* The number of distinct records seen. */
uint64_t seen_total(const struct seen *s, size_t size);
void seen_free(struct seen *s);

#endif
