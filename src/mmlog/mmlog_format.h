/* mmlog_format.h: the shared-memory layout of an mmlog (internal to src/mmlog).
 *
 * A log is two files, both mapped MAP_SHARED by every process that opens it:
 *
 *   PATH.meta   one struct mmlog_meta: identity, state, the lock, the file
 *               size, the cursor, and one slot per open handle;
 *   PATH        the data: records back to back from offset 0.
 *
 * A record is a 16-byte header, the payload, and padding to 8 bytes:
 *
 *   int32  len          total length; < 0 while being written, > 0 committed,
 *                       0 where nothing was ever written
 *   uint16 type         the user's type; MMLOG_TYPE_PAD marks padding
 *   uint16 reserved
 *   uint32 payload_len  exact payload length
 *   uint32 check        mix of (offset, |len|, type, payload_len), never 0
 *
 * A writer claims space with one fetch-and-add on the cursor, writes the
 * header with a negative length, copies the payload, then stores the positive
 * length with release ordering: the record is visible only once complete.
 * Because `check` binds a header to its offset, recovery can tell a real
 * header from payload bytes or zeros when it scans past an abandoned claim.
 *
 * Slots make claims recoverable. Before its fetch-and-add a writer stores the
 * claim's length in its slot with state CLAIMING; the fetch-and-add has
 * release ordering, so whoever reads the cursor past the claim also sees the
 * slot. After it, the writer stores the offset and state WRITING, and IDLE
 * once committed. A claim is abandoned when its slot's process is dead (or
 * its writer gave up, e.g. on a full disk); recovery turns it into padding.
 */
#ifndef KEEL_MMLOG_FORMAT_H
#define KEEL_MMLOG_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MMLOG_MAGIC      UINT64_C(0x31474f4c4c45454b) /* "KEELLOG1" */
#define MMLOG_VERSION    1u
#define MMLOG_HDR_SIZE   16u
#define MMLOG_ALIGN      8u
#define MMLOG_MAX_SLOTS  1024u
#define MMLOG_TYPE_PAD   0xFFFFu
#define MMLOG_MAX_RECORD (UINT32_C(1) << 30) /* total length, header included */
#define MMLOG_CACHELINE  64

/* Meta states: a zero-filled new file is MMLOG_STATE_EMPTY. */
enum mmlog_state {
    MMLOG_STATE_EMPTY = 0,
    MMLOG_STATE_INITIALIZING = 1, /* init_owner holds the right to initialise */
    MMLOG_STATE_READY = 2,
};

/* Slot states. */
enum mmlog_slot_state {
    MMLOG_SLOT_FREE = 0,     /* nobody */
    MMLOG_SLOT_IDLE = 1,     /* a handle, no claim */
    MMLOG_SLOT_CLAIMING = 2, /* claim_len set; offset not yet known */
    MMLOG_SLOT_WRITING = 3,  /* claim at claim_offset, claim_len bytes */
};

/* Meta flags. */
#define MMLOG_FLAG_PANICKED  1u /* damage found that recovery could not explain */
#define MMLOG_FLAG_NEED_SCAN 2u /* a claim was abandoned at an unknown offset */

struct mmlog_hdr {
    int32_t len;
    uint16_t type;
    uint16_t reserved;
    uint32_t payload_len;
    uint32_t check;
};
_Static_assert(sizeof(struct mmlog_hdr) == MMLOG_HDR_SIZE, "header is 16 bytes");

/* A process identity: pid in the low 32 bits, the low 32 bits of its start
 * time (clock ticks since boot, /proc/PID/stat) above, so that a recycled pid
 * is not mistaken for the process that held a lock or a claim. 0 is nobody. */
typedef uint64_t mmlog_owner;

/* One per open handle, on its own cache line. */
struct mmlog_slot {
    mmlog_owner owner; /* atomic; 0 when the slot is free */
    uint32_t state;    /* enum mmlog_slot_state, atomic */
    int32_t tid;       /* the opening thread, for `keel-log stat` */
    uint64_t claim_offset;
    uint64_t claim_len;
    uint8_t pad[MMLOG_CACHELINE - 32];
};
_Static_assert(sizeof(struct mmlog_slot) == MMLOG_CACHELINE, "slot is one cache line");

struct mmlog_meta {
    /* identity, written once by the initialiser */
    uint64_t magic;
    uint32_t version;
    uint32_t state;         /* enum mmlog_state, atomic */
    mmlog_owner init_owner; /* who initialises (or last did); atomic */
    uint64_t chunk_size;    /* the data file grows by whole chunks */
    uint64_t created_ns;    /* CLOCK_REALTIME at initialisation */
    uint32_t page_size;
    uint8_t pad0[MMLOG_CACHELINE - 44];

    /* written by growers and recovery, read by everyone */
    mmlog_owner lock_owner; /* who holds the lock, 0 when free; atomic */
    uint32_t flags;         /* MMLOG_FLAG_*, atomic */
    uint32_t reserved;
    uint64_t file_size;      /* bytes of the data file that exist; atomic */
    uint64_t recovered_upto; /* everything below is committed records or padding */
    uint64_t grow_count;
    uint64_t lock_takeovers;
    uint64_t recovered_claims; /* abandoned claims turned into padding, ever */
    uint8_t pad1[MMLOG_CACHELINE - 56];

    uint64_t cursor; /* next free offset; atomic, alone on its line */
    uint8_t pad2[MMLOG_CACHELINE - 8];

    uint32_t commit_seq; /* futex word: bumped on commit when followers wait */
    uint32_t waiters;    /* followers blocked on commit_seq */
    uint8_t pad3[MMLOG_CACHELINE - 8];

    struct mmlog_slot slots[MMLOG_MAX_SLOTS];
};
_Static_assert(offsetof(struct mmlog_meta, cursor) % MMLOG_CACHELINE == 0, "cursor alone");
_Static_assert(offsetof(struct mmlog_meta, slots) % MMLOG_CACHELINE == 0, "slots aligned");

/* Round up to the record alignment. */
static inline uint64_t mmlog_align(uint64_t n)
{
    return (n + MMLOG_ALIGN - 1) & ~(uint64_t)(MMLOG_ALIGN - 1);
}

/* The check of a header at `offset`; never 0, so zeros never look valid. */
static inline uint32_t mmlog_check(uint64_t offset, uint32_t len, uint16_t type,
                                   uint32_t payload_len)
{
    uint64_t x = offset ^ ((uint64_t)len << 20) ^ ((uint64_t)type << 52) ^
                 ((uint64_t)payload_len * UINT64_C(0x9E3779B97F4A7C15));
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    uint32_t c = (uint32_t)x;
    return c ? c : 1;
}

/* True when `h` read at `offset` is a well-formed header (committed or not). */
static inline bool mmlog_hdr_valid(const struct mmlog_hdr *h, uint64_t offset, int32_t len)
{
    if (len == 0 || len == INT32_MIN)
        return false;
    uint32_t abs_len = (uint32_t)(len < 0 ? -len : len);
    if (abs_len < MMLOG_HDR_SIZE || abs_len % MMLOG_ALIGN != 0 || abs_len > MMLOG_MAX_RECORD)
        return false;
    if (h->type == MMLOG_TYPE_PAD
            ? h->payload_len != 0
            : abs_len != mmlog_align(MMLOG_HDR_SIZE + (uint64_t)h->payload_len))
        return false;
    return h->check == mmlog_check(offset, abs_len, h->type, h->payload_len);
}

#endif /* KEEL_MMLOG_FORMAT_H */
