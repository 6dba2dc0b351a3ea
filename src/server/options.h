/* options.h: keeld's command line.
 *
 * keeld takes memcached's flags for everything the two share (-p -l -m -c -t
 * -I -U -v -A -u -b -F -h -V, and memcached's `-o key=value,...` extended
 * options), so an existing memcached command line starts keeld unchanged.
 * memcached's -o options that tune machinery keel does not have (slab
 * classes, LRU crawler, ...) are accepted and reported as ignored; keel's own
 * settings come as long options (--engine, --backend, --evict, ...) or as
 * the same names through -o. Anything else is a one-line error that points
 * to -h, and exit status 2. Parsing is pure: it fills a struct and never
 * exits or prints, so it can be tested.
 */
#ifndef KEELD_OPTIONS_H
#define KEELD_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEELD_MAX_LISTEN   8 /* KL_LISTENER_MAX_ADDRS */
#define KEELD_ADDR_BYTES   128
#define KEELD_PATH_BYTES   4096
#define KEELD_IGNORED_MAX  16
#define KEELD_DEFAULT_PORT 11211

enum keeld_engine { KEELD_ENGINE_SEG = 0, KEELD_ENGINE_DISK };
enum keeld_backend { KEELD_BACKEND_AUTO = 0, KEELD_BACKEND_URING, KEELD_BACKEND_EPOLL };
enum keeld_sync { KEELD_SYNC_BATCH = 0, KEELD_SYNC_ALWAYS, KEELD_SYNC_NONE }; /* = kl_sync_mode */
/* How connections reach the workers (keel/listener.h's modes). */
enum keeld_listener { KEELD_LISTENER_REUSEPORT = 0, KEELD_LISTENER_HANDOFF };

struct keeld_options {
    /* memcached's flags */
    uint16_t port;                                   /* -p; 0 picks a free port */
    char listen[KEELD_MAX_LISTEN][KEELD_ADDR_BYTES]; /* -l, each "ADDR" or "ADDR:PORT" */
    unsigned listen_count;
    uint64_t memory_bytes;  /* -m, given in megabytes */
    uint32_t max_conns;     /* -c */
    uint32_t threads;       /* -t */
    uint32_t max_item_size; /* -I, bytes */
    uint32_t backlog;       /* -b */
    unsigned verbose;       /* -v, -vv */
    bool allow_shutdown;    /* -A */
    bool disable_flush_all; /* -F */
    char prefix_delimiter;  /* -D (default ':'); per-prefix stats (prefix.h) */
    bool detail_on;         /* -D given: per-prefix stats from the start */
    char user[64];          /* -u */
    /* keel's own (long options, or -o NAME=VALUE) */
    enum keeld_engine engine;
    enum keeld_backend backend;
    enum keeld_listener listener;
    bool busy_poll;
    char evict[16];                  /* seg eviction policy; "" = engine default */
    char log_path[KEELD_PATH_BYTES]; /* "" = keel's default ($KEEL_LOG or /tmp/keel.log) */
    char admin[KEELD_ADDR_BYTES];    /* "ADDR:PORT" of the metrics endpoint; "" = off */
    char data_dir[KEELD_PATH_BYTES]; /* disk engine */
    bool direct;                     /* disk: --direct (O_DIRECT reads) */
    enum keeld_sync sync;            /* disk: --sync (default batch) */
    uint32_t sync_ms;                /* disk: --sync-ms (default 10) */
    bool disk_opt_set;               /* one of the three was given */
    uint32_t idle_timeout_s;         /* 0 = none */
    uint32_t sched_slice_us;         /* the workers' scheduler slice; 0 = the kernel's */
    uint32_t hash_power;             /* 0 = sized from -m */
    uint32_t seg_size;               /* bytes; 0 = engine default */
    /* what was accepted but has no effect in keel (memcached -o tunables) */
    char ignored[KEELD_IGNORED_MAX][48];
    unsigned ignored_count;
};

/* What keeld_options_parse() asks the caller to do. */
enum keeld_parse_result {
    KEELD_RUN = 0,     /* options valid: start the server */
    KEELD_HELP = 1,    /* -h: print keeld_usage() and exit 0 */
    KEELD_VERSION = 2, /* -V: print the version and exit 0 */
    KEELD_BAD = -1,    /* invalid: print `err` and exit 2 */
};

/* Fill `o` with the defaults (threads: 4 capped at `cores`). */
void keeld_options_defaults(struct keeld_options *o, unsigned cores);

/* Parse argv into `o` (which holds the defaults); on KEELD_BAD `err` holds a
 * one-line message (no trailing newline). Not re-entrant (getopt). */
enum keeld_parse_result keeld_options_parse(struct keeld_options *o, int argc, char **argv,
                                            char *err, size_t err_len);

/* The text of -h. */
const char *keeld_usage(void);

/* Name of an engine / backend, as the flags spell it. */
const char *keeld_engine_name(enum keeld_engine e);
const char *keeld_backend_name(enum keeld_backend b);

/* Name of a listener mode, as --listener spells it. */
const char *keeld_listener_name(enum keeld_listener l);

#endif
