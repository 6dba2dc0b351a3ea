/* Parsing printf formats, decoding log records and formatting them as text
 * (keel/log.h, log_format.h). The reader formats each conversion with
 * snprintf and the very spec the writer used ("%-8.3lld"), so output matches
 * what printf would have printed at the call. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "keel/log.h"
#include "log_format.h"

/* Skip a width or a precision from fmt[j]: an optional '*' (an int argument,
 * counted in spec->stars), then digits; returns the index after them. */
static size_t skip_number(const char *fmt, size_t len, size_t j, struct log_spec *spec)
{
    if (j < len && fmt[j] == '*') {
        spec->stars++;
        j++;
    }
    while (j < len && fmt[j] >= '0' && fmt[j] <= '9')
        j++;
    return j;
}

int log_next_spec(const char *fmt, size_t len, size_t *pos, struct log_spec *spec)
{
    size_t i = *pos;
    while (i < len && fmt[i] != '%')
        i++;
    if (i >= len) {
        *pos = len;
        return 0;
    }
    spec->start = fmt + i;
    spec->stars = 0;
    size_t j = i + 1;
    if (j < len && fmt[j] == '%') {
        spec->len = 2;
        spec->arg = 0;
        *pos = j + 1;
        return 1;
    }
    while (j < len && strchr("-+ #0'", fmt[j]))
        j++;
    j = skip_number(fmt, len, j, spec); /* width */
    if (j < len && fmt[j] == '.')
        j = skip_number(fmt, len, j + 1, spec); /* precision */
    int longs = 0, wide_int = 0, long_double = 0;
    while (j < len && strchr("hlLjztq", fmt[j])) {
        if (fmt[j] == 'l' || fmt[j] == 'q')
            longs++;
        if (fmt[j] == 'j' || fmt[j] == 'z' || fmt[j] == 't')
            wide_int = 1;
        if (fmt[j] == 'L')
            long_double = 1;
        j++;
    }
    if (j >= len)
        return -1;
    char conv = fmt[j];
    bool wide = longs > 0 || wide_int;
    switch (conv) {
    case 'd':
    case 'i': spec->arg = wide ? LOG_ARG_LONG : LOG_ARG_INT; break;
    case 'o':
    case 'u':
    case 'x':
    case 'X': spec->arg = wide ? LOG_ARG_ULONG : LOG_ARG_UINT; break;
    case 'c':
        if (longs)
            return -1;
        spec->arg = LOG_ARG_INT;
        break;
    case 's':
        if (longs)
            return -1;
        spec->arg = LOG_ARG_STR;
        break;
    case 'p': spec->arg = LOG_ARG_PTR; break;
    case 'm': spec->arg = LOG_ARG_ERRNO; break;
    case 'f':
    case 'F':
    case 'e':
    case 'E':
    case 'g':
    case 'G':
    case 'a':
    case 'A': spec->arg = long_double ? LOG_ARG_LDOUBLE : LOG_ARG_DOUBLE; break;
    default: return -1; /* %n and anything unknown */
    }
    spec->len = j + 1 - i;
    *pos = j + 1;
    return 1;
}

int kl_log_decode(const void *payload, size_t len, struct kl_log_entry *e)
{
    struct log_wire w;
    if (len < sizeof w)
        return -EBADMSG;
    memcpy(&w, payload, sizeof w);
    if (w.level > KL_LEVEL_ERROR || sizeof w + (size_t)w.file_len + w.fmt_len > len)
        return -EBADMSG;
    const char *p = (const char *)payload + sizeof w;
    e->time_ns = w.time_ns;
    e->pid = w.pid;
    e->tid = w.tid;
    e->fiber = w.fiber;
    e->level = (enum kl_log_level)w.level;
    e->line = w.line;
    e->file = p;
    e->file_len = w.file_len;
    e->fmt = p + w.file_len;
    e->fmt_len = w.fmt_len;
    e->args = (const unsigned char *)p + w.file_len + w.fmt_len;
    e->args_len = len - sizeof w - w.file_len - w.fmt_len;
    return 0;
}

/* Appends to a bounded buffer, counting what did not fit (like snprintf). */
struct out {
    char *buf;
    size_t cap;
    size_t len;
};

static void out_bytes(struct out *o, const char *s, size_t n)
{
    if (o->len < o->cap) {
        size_t room = o->cap - o->len - 1;
        memcpy(o->buf + o->len, s, n < room ? n : room);
        o->buf[o->len + (n < room ? n : room)] = '\0';
    }
    o->len += n;
}

/* Read `n` bytes of arguments, or fail. */
static bool take(const unsigned char **p, const unsigned char *end, void *dst, size_t n)
{
    if ((size_t)(end - *p) < n)
        return false;
    memcpy(dst, *p, n);
    *p += n;
    return true;
}

/* Format one conversion with its stored arguments. */
static bool format_spec(struct out *o, const struct log_spec *s, const unsigned char **p,
                        const unsigned char *end)
{
    char spec[64];
    if (s->len >= sizeof spec)
        return false;
    memcpy(spec, s->start, s->len);
    spec[s->len] = '\0';
    int64_t stars[2] = {0, 0};
    for (int k = 0; k < s->stars; k++)
        if (!take(p, end, &stars[k], 8))
            return false;
    char tmp[512];
    char *dst = tmp;
    size_t cap = sizeof tmp;
    int n = -1;
#define EMIT(value)                                                                                \
    (s->stars == 0   ? snprintf(dst, cap, spec, value)                                             \
     : s->stars == 1 ? snprintf(dst, cap, spec, (int)stars[0], value)                              \
                     : snprintf(dst, cap, spec, (int)stars[0], (int)stars[1], value))
    switch (s->arg) {
    case LOG_ARG_INT:
    case LOG_ARG_UINT: {
        int64_t v;
        if (!take(p, end, &v, 8))
            return false;
        n = EMIT((int)v);
        break;
    }
    case LOG_ARG_LONG:
    case LOG_ARG_ULONG: {
        int64_t v;
        if (!take(p, end, &v, 8))
            return false;
        n = EMIT((long long)v);
        break;
    }
    case LOG_ARG_DOUBLE: {
        double v;
        if (!take(p, end, &v, 8))
            return false;
        n = EMIT(v);
        break;
    }
    case LOG_ARG_LDOUBLE: {
        long double v;
        if (!take(p, end, &v, sizeof v))
            return false;
        n = EMIT(v);
        break;
    }
    case LOG_ARG_PTR: {
        uint64_t v;
        if (!take(p, end, &v, 8))
            return false;
        n = EMIT((void *)(uintptr_t)v);
        break;
    }
    case LOG_ARG_STR:
    case LOG_ARG_ERRNO: {
        uint32_t slen;
        if (!take(p, end, &slen, 4) || (size_t)(end - *p) < slen)
            return false;
        char str[4096];
        size_t keep = slen < sizeof str - 1 ? slen : sizeof str - 1;
        memcpy(str, *p, keep);
        str[keep] = '\0';
        *p += slen;
        if (s->arg == LOG_ARG_ERRNO) { /* %m takes no argument: print the text */
            out_bytes(o, str, keep);
            return true;
        }
        n = EMIT(str);
        break;
    }
    default: out_bytes(o, "%", 1); return true; /* "%%" */
    }
#undef EMIT
    if (n < 0)
        return false;
    out_bytes(o, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
    return true;
}

size_t kl_log_format_message(const struct kl_log_entry *e, char *buf, size_t cap)
{
    struct out o = {buf, cap, 0};
    if (cap)
        buf[0] = '\0';
    const unsigned char *p = e->args, *end = e->args + e->args_len;
    size_t pos = 0, literal = 0;
    struct log_spec s;
    int rc;
    while ((rc = log_next_spec(e->fmt, e->fmt_len, &pos, &s)) == 1) {
        out_bytes(&o, e->fmt + literal, (size_t)(s.start - (e->fmt + literal)));
        if (!format_spec(&o, &s, &p, end)) {
            out_bytes(&o, "<?>", 3);
            return o.len;
        }
        literal = pos;
    }
    out_bytes(&o, e->fmt + literal, e->fmt_len - literal);
    if (rc < 0)
        out_bytes(&o, " <unsupported format>", 21);
    return o.len;
}

const char *kl_log_level_name(enum kl_log_level level)
{
    static const char *names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    return (unsigned)level <= KL_LEVEL_ERROR ? names[level] : "?";
}

size_t kl_log_format_time(uint64_t time_ns, char *buf, size_t cap)
{
    time_t sec = (time_t)(time_ns / 1000000000u);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    int m = snprintf(buf + n, cap - n, ".%06uZ", (unsigned)(time_ns % 1000000000u / 1000));
    return m > 0 && n + (size_t)m < cap ? n + (size_t)m : n;
}

size_t kl_log_format_line(const struct kl_log_entry *e, char *buf, size_t cap)
{
    struct out o = {buf, cap, 0};
    if (cap)
        buf[0] = '\0';
    char head[160];
    size_t n = kl_log_format_time(e->time_ns, head, sizeof head);
    int m = snprintf(head + n, sizeof head - n, " %-5s %d/%d ", kl_log_level_name(e->level), e->pid,
                     e->tid);
    out_bytes(&o, head, n + (size_t)m);
    if (e->fiber) {
        m = snprintf(head, sizeof head, "f%llu ", (unsigned long long)e->fiber);
        out_bytes(&o, head, (size_t)m);
    }
    out_bytes(&o, e->file, e->file_len);
    m = snprintf(head, sizeof head, ":%u ", e->line);
    out_bytes(&o, head, (size_t)m);
    size_t used = o.len;
    size_t msg =
        kl_log_format_message(e, used < cap ? buf + used : NULL, used < cap ? cap - used : 0);
    return used + msg;
}
