/* seg_kit.h: helpers shared by the seg engine's tests (open with a small
 * configuration, store and fetch C strings, a seeded random generator). */
#ifndef KEEL_SEG_KIT_H
#define KEEL_SEG_KIT_H

#include "storage/engine.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The clock the tests start at (seconds). */
#define SK_T0 1000u

/* Open a seg engine of mem bytes in segments of seg bytes, clock at SK_T0. */
struct kl_engine *sk_open(enum kl_evict_policy p, size_t mem, size_t seg);

/* Store a NUL-terminated value; the engine's result. */
int sk_store(struct kl_engine *e, enum kl_store_mode mode, const char *key, const char *val,
             uint32_t flags, uint32_t exptime, uint64_t cas_in, uint64_t *cas_out);

/* Fetch a value into buf (NUL-terminated, up to cap-1 bytes); true if found.
 * it (may be NULL) receives the item's fields, already released. */
bool sk_get(struct kl_engine *e, const char *key, char *buf, size_t cap, struct kl_item *it);

/* A test value of size bytes: "k<key> v<ver> " then bytes derived from both. */
void sk_fill(char *v, uint32_t size, uint32_t key, uint32_t ver);

/* The process's resident memory (KiB), from /proc/self/statm. */
long sk_resident_kib(void);

/* xorshift64*: a seeded random number. */
uint64_t sk_rand(uint64_t *state);

#endif /* KEEL_SEG_KIT_H */
