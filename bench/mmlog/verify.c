/* verify.c: record contents and the checks run after every method, so that
 * a method that loses, tears or duplicates records cannot look fast. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_mmlog.h"

static unsigned char filler(uint32_t id, size_t k) { return (unsigned char)(id * 131 + k * 7 + 1); }

void record_template(unsigned char *buf, size_t size, uint32_t id)
{
    for (size_t k = 0; k < size; k++)
        buf[k] = size < 8 ? (unsigned char)('a' + id) : filler(id, k);
}

void record_stamp(unsigned char *buf, size_t size, uint32_t id, uint32_t seq)
{
    if (size < 8)
        return;
    memcpy(buf, &id, 4);
    memcpy(buf + 4, &seq, 4);
}

int record_check(const unsigned char *buf, size_t size, uint32_t *id, uint32_t *seq)
{
    if (size < 8) {
        uint32_t w = (uint32_t)(buf[0] - 'a');
        if (w >= WRITERS)
            return -1;
        for (size_t k = 1; k < size; k++)
            if (buf[k] != buf[0])
                return -1;
        *id = w;
        *seq = 0;
        return 0;
    }
    memcpy(id, buf, 4);
    memcpy(seq, buf + 4, 4);
    if (*id >= WRITERS)
        return -1;
    for (size_t k = 8; k < size; k++)
        if (buf[k] != filler(*id, k))
            return -1;
    return 0;
}

int seen_init(struct seen *s, uint32_t count)
{
    memset(s, 0, sizeof *s);
    s->count = count;
    for (int w = 0; w < WRITERS; w++)
        if (!(s->bits[w] = calloc(count, 1)))
            return -1;
    return 0;
}

int seen_add(struct seen *s, size_t size, uint32_t id, uint32_t seq)
{
    if (size < 8) {
        s->small_counts[id]++;
        return s->small_counts[id] > s->count ? -1 : 0;
    }
    if (seq >= s->count || s->bits[id][seq])
        return -1;
    s->bits[id][seq] = 1;
    return 0;
}

uint64_t seen_total(const struct seen *s, size_t size)
{
    uint64_t total = 0;
    for (int w = 0; w < WRITERS; w++) {
        if (size < 8) {
            total += s->small_counts[w];
            continue;
        }
        for (uint32_t i = 0; i < s->count; i++)
            total += s->bits[w][i];
    }
    return total;
}

void seen_free(struct seen *s)
{
    for (int w = 0; w < WRITERS; w++)
        free(s->bits[w]);
}

int verify_slots(const char *path, size_t size, size_t slot, uint32_t count, uint64_t *intact,
                 uint64_t *corrupt)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    struct stat st;
    fstat(fd, &st);
    *intact = *corrupt = 0;
    if (st.st_size == 0) {
        close(fd);
        return 0;
    }
    const unsigned char *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return -1;
    struct seen seen;
    if (seen_init(&seen, count) != 0)
        return -1;
    size_t slots = (size_t)st.st_size / slot;
    if ((size_t)st.st_size % slot)
        (*corrupt)++; /* a torn tail */
    for (size_t i = 0; i < slots; i++) {
        uint32_t id, seq;
        if (record_check(map + i * slot, size, &id, &seq) != 0 || seen_add(&seen, size, id, seq))
            (*corrupt)++;
    }
    *intact = seen_total(&seen, size);
    seen_free(&seen);
    munmap((void *)map, (size_t)st.st_size);
    return 0;
}
