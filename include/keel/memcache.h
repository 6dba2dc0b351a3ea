/* keel/memcache.h: memcached's text protocol, parsed and composed in place.
 *
 * The parser is a pure function of the bytes it is handed: give it every
 * unconsumed byte of a connection and it answers with one complete command
 * (keys, value and tokens are views into those bytes: nothing is copied or
 * allocated), or NEED_MORE, or an error that carries the exact line
 * memcached 1.6 would reply and how many bytes to drop to stay in step.
 * The server's loop is:
 *
 *     while ((st = kl_mc_parse(&cfg, buf, len, &cmd)) != KL_MC_NEED_MORE) {
 *         if (st == KL_MC_CMD) execute(&cmd); else send(cmd.reply), close if cmd.close;
 *         drop(cmd.consumed);   // may exceed len for a swallowed value: skip the rest later
 *     }
 *
 * Replies are composed into caller buffers; a value is never copied: the
 * kl_mc_*_iov() helpers point an iovec at the engine's bytes between the
 * header they format and a static "\r\n".
 *
 * Where memcached's documentation and 1.6.18's behaviour differ, the parser
 * answers as 1.6.18 does (keys are checked for length only; a line without a
 * newline after 2048 bytes closes the connection unless it is a get/gets;
 * numbers wrap as memcached's strtol-based parsing wraps them). Meta features
 * that only master has (mg/ms/md/ma E, md x, ms s) are accepted as master
 * documents them. The binary protocol (first byte 0x80) is refused with a
 * closing error.
 */
#ifndef KEEL_MEMCACHE_H
#define KEEL_MEMCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* A view: `len` bytes at `p`, inside the caller's buffer (or static). */
struct kl_mc_str {
    const char *p;
    uint32_t len;
};

enum kl_mc_type {
    KL_MC_NONE = 0,
    KL_MC_GET,
    KL_MC_GETS,
    KL_MC_GAT,
    KL_MC_GATS,
    KL_MC_SET,
    KL_MC_ADD,
    KL_MC_REPLACE,
    KL_MC_APPEND,
    KL_MC_PREPEND,
    KL_MC_CAS,
    KL_MC_DELETE,
    KL_MC_INCR,
    KL_MC_DECR,
    KL_MC_TOUCH,
    KL_MC_FLUSH_ALL,
    KL_MC_VERSION,
    KL_MC_VERBOSITY,
    KL_MC_QUIT,
    KL_MC_SHUTDOWN,
    KL_MC_CACHE_MEMLIMIT,
    KL_MC_STATS,
    KL_MC_LRU_CRAWLER,
    KL_MC_MG,
    KL_MC_MS,
    KL_MC_MD,
    KL_MC_MA,
    KL_MC_MN,
    KL_MC_ME,
    KL_MC_TYPE_COUNT
};

enum kl_mc_status {
    KL_MC_CMD = 0,       /* one command in cmd; drop cmd.consumed bytes after it ran */
    KL_MC_NEED_MORE = 1, /* incomplete; cmd.need > 0 is what a data block still lacks */
    KL_MC_ERROR = 2,     /* send cmd.reply (may be empty), drop cmd.consumed, close if cmd.close */
};

/* An item that is already expired (exptime < 0, or an absolute time past). */
#define KL_MC_EXPIRED ((int64_t)-1)

/* Bit of meta flag letter c ('A'-'Z', 'a'-'z') in kl_mc_meta.has. */
#define KL_MC_F(c) (1ull << ((c) >= 'a' ? (c) - 'a' + 26 : (c) - 'A'))

/* Meta command options (mg ms md ma me). Tokens that are numbers are decoded
 * into kl_mc_cmd's fields: C -> cas, D -> delta, F -> flags, T -> exptime. */
struct kl_mc_meta {
    uint64_t has;            /* KL_MC_F() bits of the flags sent */
    struct kl_mc_str flags;  /* the flag tokens as sent; reply flags follow their order */
    struct kl_mc_str opaque; /* O token (empty if O sent bare) */
    uint64_t new_cas;        /* E: the CAS to give a modified item */
    int64_t vivify;          /* N: deadline (as exptime) of an item created on a miss */
    int64_t recache;         /* R: win the recache if remaining TTL is below this */
    uint64_t initial;        /* J: ma's value for an item created on a miss */
    char mode;               /* ms: 'S' 'E' 'A' 'P' 'R'; ma: '+' or '-' */
};

/* One parsed command, or the verdict on bytes that are not one. */
struct kl_mc_cmd {
    uint8_t type;           /* enum kl_mc_type */
    bool noreply;           /* "noreply", or meta q (which hides mg EN, ms/md/ma HD only) */
    bool base64;            /* meta b: key is base64 (kl_mc_base64_decode) */
    bool close;             /* KL_MC_ERROR: close the connection after the reply */
    bool too_large;         /* KL_MC_ERROR: a value over the item limit (type, key set) */
    uint32_t nkeys;         /* get gets gat gats: number of keys */
    struct kl_mc_str key;   /* the key (get family: the first key) */
    struct kl_mc_str keys;  /* get family: every key, space separated; see kl_mc_next_key */
    struct kl_mc_str value; /* storage commands: the data block, without its \r\n */
    struct kl_mc_str arg;   /* stats, shutdown, lru_crawler: the rest of the line (may be empty) */
    struct kl_mc_str reply; /* KL_MC_ERROR: the reply line, with its \r\n */
    uint32_t flags;         /* client flags (set family, ms F) */
    int64_t exptime;        /* deadline, unix seconds: 0 never, KL_MC_EXPIRED; flush_all's time */
    uint64_t cas;           /* cas's unique, meta C */
    uint64_t delta;         /* incr/decr, ma D (default 1) */
    int64_t num;     /* verbosity level, cache_memlimit MB, shutdown: 1 graceful, -1 bad mode */
    size_t consumed; /* bytes of the command; an error's may exceed the buffer (swallow) */
    size_t need;     /* KL_MC_NEED_MORE: bytes a data block still needs, 0 if unknown */
    struct kl_mc_meta meta; /* set for the meta commands (mg ... me) only */
};

/* What the server decides: memcached's -I and key limit, and the time. */
struct kl_mc_config {
    uint32_t item_size_max; /* -I (default 1 MiB) */
    uint32_t item_overhead; /* bytes an item takes beyond key and value (59, as memcached) */
    uint32_t key_max;       /* 250 */
    int64_t now;            /* unix seconds now, to turn exptimes into deadlines */
};

/* Fill cfg with memcached's defaults; now = 0 (set it before parsing). */
void kl_mc_config_init(struct kl_mc_config *cfg);

/* Parse the first command of buf[0, len). Never reads past len, never allocates. */
enum kl_mc_status kl_mc_parse(const struct kl_mc_config *cfg, const char *buf, size_t len,
                              struct kl_mc_cmd *cmd);

/* Next key of a get-family command: 1 and *key, or 0 when done; *pos starts at 0. */
int kl_mc_next_key(const struct kl_mc_cmd *cmd, size_t *pos, struct kl_mc_str *key);

/* Name of a command type ("get", "mg", ...). */
const char *kl_mc_type_name(enum kl_mc_type type);

/* Decode base64 src into dst (cap bytes): decoded length, or -EINVAL / -ENOSPC. */
int kl_mc_base64_decode(const char *src, size_t len, char *dst, size_t cap);

/* Encode src as base64 into dst (cap bytes): encoded length, or -ENOSPC. */
int kl_mc_base64_encode(const char *src, size_t len, char *dst, size_t cap);

/* ---- composing replies ---- */

/* Fixed reply lines, each with its \r\n. */
enum kl_mc_line {
    KL_MC_R_STORED,
    KL_MC_R_NOT_STORED,
    KL_MC_R_EXISTS,
    KL_MC_R_NOT_FOUND,
    KL_MC_R_DELETED,
    KL_MC_R_TOUCHED,
    KL_MC_R_END,
    KL_MC_R_OK,
    KL_MC_R_RESET,
    KL_MC_R_ERROR,
    KL_MC_R_MN,
    KL_MC_R_EN,
    KL_MC_R_HD,
    KL_MC_R_NS,
    KL_MC_R_EX,
    KL_MC_R_NF,
    KL_MC_R_CRLF,
    KL_MC_R_COUNT
};

/* A static reply line. */
struct kl_mc_str kl_mc_line(enum kl_mc_line line);

/* "VALUE <key> <flags> <bytes>[ <cas>]\r\n" into buf: its length, or -ENOSPC. */
int kl_mc_value_header(char *buf, size_t cap, struct kl_mc_str key, uint32_t flags, uint32_t bytes,
                       bool with_cas, uint64_t cas);

/* iov[0..2] = header (formatted into hdr), the value (borrowed), "\r\n": 3 or -ENOSPC. */
int kl_mc_value_iov(struct iovec iov[3], char *hdr, size_t hcap, struct kl_mc_str key,
                    uint32_t flags, const void *value, uint32_t bytes, bool with_cas, uint64_t cas);

/* "<n>\r\n" (incr/decr): length or -ENOSPC. */
int kl_mc_number(char *buf, size_t cap, uint64_t n);

/* "VERSION <v>\r\n": length or -ENOSPC. */
int kl_mc_version(char *buf, size_t cap, const char *version);

/* "STAT <name> <value>\r\n": length or -ENOSPC. */
int kl_mc_stat(char *buf, size_t cap, const char *name, const char *value);

/* "STAT <name> <n>\r\n": length or -ENOSPC. */
int kl_mc_stat_u64(char *buf, size_t cap, const char *name, uint64_t n);

/* "<CLIENT_ERROR|SERVER_ERROR> <msg>\r\n" for kind "CLIENT_ERROR" etc.: length or -ENOSPC. */
int kl_mc_error_line(char *buf, size_t cap, const char *kind, const char *msg);

/* What an engine knows of an item, for meta reply flags. */
struct kl_mc_item_info {
    uint64_t cas;
    uint32_t flags;
    uint32_t size;
    int64_t ttl;         /* seconds left, -1 for none */
    int64_t last_access; /* seconds since last access */
    bool hit_before;
    bool win;         /* W: this client won the recache */
    bool stale;       /* X */
    bool already_won; /* Z */
};

/* A meta reply line: code ("HD", "VA", "EN", "NS", "EX", "NF", "ME"), for VA
 * the size, then the return flags the command asked for, in its order (only
 * O, k and b when info is NULL), W/X/Z from info, and \r\n: length or -ENOSPC. */
int kl_mc_meta_header(char *buf, size_t cap, const char *code, const struct kl_mc_cmd *cmd,
                      const struct kl_mc_item_info *info, uint32_t value_len);

/* iov[0..2] = "VA <len> <flags>\r\n" (into hdr), the value (borrowed), "\r\n": 3 or -ENOSPC. */
int kl_mc_meta_value_iov(struct iovec iov[3], char *hdr, size_t hcap, const struct kl_mc_cmd *cmd,
                         const struct kl_mc_item_info *info, const void *value, uint32_t bytes);

/* ---- the client side: parsing replies (keel-bench) ---- */

enum kl_mc_reply_type {
    KL_MC_REPLY_VALUE = 1, /* VALUE key flags bytes [cas] + data (value) */
    KL_MC_REPLY_END,
    KL_MC_REPLY_STORED,
    KL_MC_REPLY_NOT_STORED,
    KL_MC_REPLY_EXISTS,
    KL_MC_REPLY_NOT_FOUND,
    KL_MC_REPLY_DELETED,
    KL_MC_REPLY_TOUCHED,
    KL_MC_REPLY_OK,
    KL_MC_REPLY_NUMBER, /* incr/decr result in number */
    KL_MC_REPLY_STAT,   /* STAT name value: key = name, value = value */
    KL_MC_REPLY_VERSION,
    KL_MC_REPLY_ERROR,
    KL_MC_REPLY_CLIENT_ERROR, /* message in value */
    KL_MC_REPLY_SERVER_ERROR,
    KL_MC_REPLY_HD,
    KL_MC_REPLY_VA, /* data in value, flags in flags_text */
    KL_MC_REPLY_EN,
    KL_MC_REPLY_NF,
    KL_MC_REPLY_NS,
    KL_MC_REPLY_EX,
    KL_MC_REPLY_MN,
    KL_MC_REPLY_ME,
    KL_MC_REPLY_OTHER, /* any other line (RESET, BUSY, ...): whole line in value */
};

/* One reply unit parsed from a server's bytes. */
struct kl_mc_reply {
    uint8_t type;                /* enum kl_mc_reply_type */
    struct kl_mc_str key;        /* VALUE's key, STAT's name */
    struct kl_mc_str value;      /* data block, STAT value, error message, VERSION string */
    struct kl_mc_str flags_text; /* meta: the flags after the code (and size) */
    uint32_t flags;              /* VALUE's client flags */
    uint64_t cas;                /* VALUE's cas (gets) */
    uint64_t number;             /* KL_MC_REPLY_NUMBER */
    size_t consumed;
    size_t need; /* when incomplete: bytes a data block still needs (0 unknown) */
};

/* Parse one reply unit: 0, -EAGAIN (incomplete), or -EPROTO (malformed; the
 * stream cannot be followed any more). */
int kl_mc_parse_reply(const char *buf, size_t len, struct kl_mc_reply *reply);

#endif /* KEEL_MEMCACHE_H */
