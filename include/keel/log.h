/* keel/log.h: keel's logging.
 *
 * KL_DEBUG, KL_INFO, KL_WARN and KL_ERROR take a printf format (a string
 * literal, checked by the compiler) and its arguments. A level below the
 * compile-time floor (KL_LOG_FLOOR, default debug) compiles to nothing; a
 * level disabled at run time costs one load and one predictable branch.
 *
 * A log call does not format: it copies the format and the arguments, in
 * binary, into a record of the host's shared log (an mmlog, by default
 * /tmp/keel.log, or $KEEL_LOG), and readers format later (`keel-log cat`).
 * Each call site parses its format once and caches the argument types. A
 * record carries wall-clock time, pid, thread id, fiber id (when the runtime
 * has installed its hook), level, source file and line. When the shared log
 * cannot be opened or written, records go to stderr as text instead.
 */
#ifndef KEEL_LOG_H
#define KEEL_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/assert.h"

enum kl_log_level { KL_LEVEL_DEBUG = 0, KL_LEVEL_INFO = 1, KL_LEVEL_WARN = 2, KL_LEVEL_ERROR = 3 };

#ifndef KL_LOG_FLOOR
#define KL_LOG_FLOOR KL_LEVEL_DEBUG /* levels below it are compiled out */
#endif

#define KL_LOG_MAX_ARGS 16

/* One call site: constant but for the argument types, parsed on first use. */
struct kl_log_site {
    const char *file;
    const char *fmt;
    uint32_t line;
    uint16_t file_len;
    uint16_t fmt_len;
    uint8_t level;
    uint8_t parsed; /* 0: not yet; 1: arg_types valid; 2: unsupported format */
    uint8_t nargs;
    uint8_t arg_types[KL_LOG_MAX_ARGS];
};

/* The lowest level written at run time (a plain variable: one load). */
extern int kl_log_level;

/* Write one record for `site`. Use through the macros. */
void kl_log_emit(struct kl_log_site *site, ...);

#define KL_LOG_(lvl, fmt, ...)                                                                     \
    do {                                                                                           \
        if ((lvl) >= KL_LOG_FLOOR && KL_UNLIKELY((lvl) >= kl_log_level)) {                         \
            static struct kl_log_site kl_log_site_ =                                               \
                {                                                                                  \
                    __FILE__, "" fmt, __LINE__, sizeof(__FILE__) - 1, sizeof(fmt) - 1, lvl,        \
                    0,        0,      {0}};                                                        \
            if (0) /* type-check the arguments against the format */                               \
                kl_log_check_format_(fmt, ##__VA_ARGS__);                                          \
            kl_log_emit(&kl_log_site_, ##__VA_ARGS__);                                             \
        }                                                                                          \
    } while (0)

static inline __attribute__((format(printf, 1, 2))) void kl_log_check_format_(const char *fmt, ...)
{
    (void)fmt;
}

#define KL_DEBUG(fmt, ...) KL_LOG_(KL_LEVEL_DEBUG, fmt, ##__VA_ARGS__)
#define KL_INFO(fmt, ...)  KL_LOG_(KL_LEVEL_INFO, fmt, ##__VA_ARGS__)
#define KL_WARN(fmt, ...)  KL_LOG_(KL_LEVEL_WARN, fmt, ##__VA_ARGS__)
#define KL_ERROR(fmt, ...) KL_LOG_(KL_LEVEL_ERROR, fmt, ##__VA_ARGS__)

/* Set the lowest level written at run time. */
void kl_log_set_level(enum kl_log_level level);

/* Send records to the mmlog at `path` (NULL: $KEEL_LOG or /tmp/keel.log), or
 * to stderr only when `path` is "-". Threads open their handles lazily. */
int kl_log_open(const char *path);

/* Stop using the shared log in this process (records go to stderr). */
void kl_log_close(void);

/* Install the function that tells the current fiber's id (0: none). The
 * runtime calls this; log/ does not depend on it. */
void kl_log_set_fiber_hook(uint64_t (*current_fiber)(void));

/* ---- reading records back ---- */

/* mmlog record types used by keel's logging. */
#define KL_LOG_TYPE_TEXT   1u     /* a plain line (keel-log write) */
#define KL_LOG_TYPE_RECORD 0x100u /* a log call */

/* A decoded log record; pointers point into the record. */
struct kl_log_entry {
    uint64_t time_ns; /* CLOCK_REALTIME */
    int32_t pid;
    int32_t tid;
    uint64_t fiber;
    enum kl_log_level level;
    uint32_t line;
    const char *file;
    size_t file_len;
    const char *fmt;
    size_t fmt_len;
    const unsigned char *args;
    size_t args_len;
};

/* Decode a KL_LOG_TYPE_RECORD payload; 0 or -EBADMSG. */
int kl_log_decode(const void *payload, size_t len, struct kl_log_entry *entry);

/* Format the entry's message (format + arguments) into buf; returns the
 * length it needed, like snprintf. Damaged arguments show as "<?>". */
size_t kl_log_format_message(const struct kl_log_entry *entry, char *buf, size_t cap);

/* "2026-11-21T11:30:00.123456Z INFO  1234/1235 f7 file.c:42 message" */
size_t kl_log_format_line(const struct kl_log_entry *entry, char *buf, size_t cap);

/* Wall-clock nanoseconds as "2026-11-21T11:30:00.123456Z" (UTC, microseconds);
 * returns the length written (buf holds at least 28 bytes). */
size_t kl_log_format_time(uint64_t time_ns, char *buf, size_t cap);

/* "DEBUG", "INFO", "WARN" or "ERROR". */
const char *kl_log_level_name(enum kl_log_level level);

#endif /* KEEL_LOG_H */
