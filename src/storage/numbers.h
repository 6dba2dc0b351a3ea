/* storage/numbers.h: the decimal values incr/decr work on, as memcached
 * reads and writes them; shared by the engines (not part of libkeel's API). */
#ifndef KEEL_STORAGE_NUMBERS_H
#define KEEL_STORAGE_NUMBERS_H

#include <stdbool.h>
#include <stdint.h>

/* Parse a value as memcached's incr/decr does: 1-20 digits, at most 2^64-1. */
bool engine_parse_u64(const char *p, uint32_t n, uint64_t *out);

/* Write v in decimal to buf (20 bytes suffice); the length. */
uint32_t engine_format_u64(uint64_t v, char *buf);

#endif /* KEEL_STORAGE_NUMBERS_H */
