/* log_format.h: printf formats as keel's logging stores them (internal to
 * src/log). A format is walked one conversion at a time; each conversion
 * consumes zero or more arguments, whose types are stored in the record as
 * tags so that a reader can format the message without the writer. */
#ifndef KEEL_LOG_FORMAT_H
#define KEEL_LOG_FORMAT_H

#include <stddef.h>
#include <stdint.h>

/* Internal to libkeel: never exported from libkeel.so, whatever the name. */
#pragma GCC visibility push(hidden)

/* Argument kinds, as stored: 8 bytes each but for strings (u32 length and
 * bytes) and long doubles (16 bytes). */
enum log_arg {
    LOG_ARG_INT = 1, /* int and narrower, and '*' widths: int64 */
    LOG_ARG_UINT,    /* unsigned int and narrower: uint64 */
    LOG_ARG_LONG,    /* long, long long, intmax_t, ssize_t, ptrdiff_t */
    LOG_ARG_ULONG,   /* their unsigned kinds, size_t */
    LOG_ARG_DOUBLE,
    LOG_ARG_LDOUBLE,
    LOG_ARG_STR, /* char * (NULL stored as "(null)") */
    LOG_ARG_PTR,
    LOG_ARG_ERRNO, /* %m: strerror(errno) at the call, stored as a string */
};

/* The fixed part of a KL_LOG_TYPE_RECORD payload; the file name, the format
 * and the arguments follow it. Written by log.c, read by log_format.c. */
struct log_wire {
    uint64_t time_ns; /* CLOCK_REALTIME */
    int32_t pid;
    int32_t tid;
    uint64_t fiber;
    uint32_t line;
    uint16_t file_len;
    uint16_t fmt_len;
    uint8_t level;
    uint8_t pad[7];
};

/* One conversion of a format. */
struct log_spec {
    const char *start; /* the '%' */
    size_t len;        /* through the conversion character */
    int stars;         /* '*' width/precision arguments before the value */
    enum log_arg arg;  /* the value's kind; 0 for "%%" */
};

/* Find the next conversion in fmt[0..len) at or after *pos. Returns 1 with
 * *spec filled and *pos moved past it, 0 at the end, -1 on a conversion keel
 * cannot store (%n, wide strings). Literal text is what lies between. */
int log_next_spec(const char *fmt, size_t len, size_t *pos, struct log_spec *spec);

#pragma GCC visibility pop

#endif /* KEEL_LOG_FORMAT_H */
