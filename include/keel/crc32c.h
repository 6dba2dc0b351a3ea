/* keel/crc32c.h: CRC-32C (Castagnoli), as used by iSCSI, ext4 and SCTP.
 *
 * kl_crc32c() uses the SSE4.2 crc32 instruction when the CPU has it (checked
 * once at start-up) and a portable slice-by-8 table otherwise. The crc
 * argument chains calls: crc32c(crc32c(0, a), b) == crc32c(0, a || b).
 */
#ifndef KEEL_CRC32C_H
#define KEEL_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* CRC-32C of `len` bytes, continuing from `crc` (0 to start). */
uint32_t kl_crc32c(uint32_t crc, const void *data, size_t len);

/* The portable implementation (tables), whatever the CPU. */
uint32_t kl_crc32c_portable(uint32_t crc, const void *data, size_t len);

/* The SSE4.2 implementation; only valid when kl_crc32c_hw_available(). */
uint32_t kl_crc32c_hw(uint32_t crc, const void *data, size_t len);

/* True when the CPU has the SSE4.2 crc32 instruction. */
bool kl_crc32c_hw_available(void);

#endif /* KEEL_CRC32C_H */
