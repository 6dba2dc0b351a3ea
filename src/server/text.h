/* text.h: a growable text buffer for keeld's reports (Prometheus metrics,
 * start-up messages). Off the request path: it allocates with malloc. A
 * failed allocation is remembered and the text is then reported as lost
 * instead of truncated silently.
 */
#ifndef KEELD_TEXT_H
#define KEELD_TEXT_H

#include <stdbool.h>
#include <stddef.h>

struct keeld_text {
    char *buf;
    size_t len, cap;
    bool failed; /* an allocation failed: the text is incomplete */
};

/* Append printf-formatted text. */
void keeld_text_printf(struct keeld_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Append n bytes as they are. */
void keeld_text_append(struct keeld_text *t, const void *p, size_t n);

/* Free the buffer and reset `t` to empty. */
void keeld_text_free(struct keeld_text *t);

#endif
