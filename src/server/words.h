/* words.h: the words of an admin command's arguments (stats, lru_crawler).
 *
 * The protocol layer hands over the rest of such a line as one view
 * (cmd.arg); the server only splits it at spaces and compares words, here,
 * once for every command that takes subcommands.
 */
#ifndef KEELD_WORDS_H
#define KEELD_WORDS_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "keel/memcache.h"

/* Is w exactly the word s? */
static inline bool keeld_word_is(struct kl_mc_str w, const char *s)
{
    return w.len == strlen(s) && memcmp(w.p, s, w.len) == 0;
}

/* Split arg at spaces into at most max words; how many there are (may
 * exceed max: the rest are counted, not stored). */
static inline uint32_t keeld_words(struct kl_mc_str arg, struct kl_mc_str *w, uint32_t max)
{
    uint32_t n = 0;
    size_t i = 0;
    while (i < arg.len) {
        while (i < arg.len && arg.p[i] == ' ')
            i++;
        size_t start = i;
        while (i < arg.len && arg.p[i] != ' ')
            i++;
        if (i > start) {
            if (n < max)
                w[n] = (struct kl_mc_str){arg.p + start, (uint32_t)(i - start)};
            n++;
        }
    }
    return n;
}

#endif
