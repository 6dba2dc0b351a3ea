/* text.c: a growable text buffer (see text.h). It doubles its capacity, so
 * appending n bytes costs O(n) amortised. */
#define _GNU_SOURCE
#include "text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool reserve(struct keeld_text *t, size_t more)
{
    if (t->failed)
        return false;
    if (t->len + more + 1 <= t->cap)
        return true;
    size_t cap = t->cap ? t->cap : 1024;
    while (cap < t->len + more + 1)
        cap *= 2;
    char *nb = realloc(t->buf, cap);
    if (nb == NULL) {
        t->failed = true;
        return false;
    }
    t->buf = nb;
    t->cap = cap;
    return true;
}

void keeld_text_printf(struct keeld_text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(t, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

void keeld_text_append(struct keeld_text *t, const void *p, size_t n)
{
    if (!reserve(t, n))
        return;
    memcpy(t->buf + t->len, p, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

void keeld_text_free(struct keeld_text *t)
{
    free(t->buf);
    memset(t, 0, sizeof *t);
}
