/* mmlog chunk windows: bounded mappings of the data file.
 *
 * A handle maps at most `window_count` windows, each two chunks long, in a
 * ring indexed by chunk number; moving to a new chunk unmaps the window that
 * held an old one. So a process that writes for days keeps a fixed number of
 * mappings (no creep towards vm.max_map_count) and no stale page-table
 * entries for the log's past. Pages are faulted in as they are touched, by
 * whichever writer touches them first, so the writers of several processes
 * create the file's pages in parallel; the blocks under them were allocated
 * by mmlog_grow_file, so a fault never needs disk space.
 * Windows may extend past the end of the file: the pages there are only
 * touched once the file has grown to cover them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/mman.h>

#include "keel/assert.h"
#include "mmlog_internal.h"

static int window_map(struct kl_mmlog *log, struct mmlog_window *w, uint64_t chunk, bool write)
{
    uint64_t cs = log->chunk_size;
    if (w->base) {
        munmap(w->base, 2 * cs);
        w->base = NULL;
        w->chunk = UINT64_MAX;
    }
    int prot = write ? PROT_READ | PROT_WRITE : PROT_READ;
    void *base = mmap(NULL, 2 * cs, prot, MAP_SHARED, log->data_fd, (off_t)(chunk * cs));
    if (base == MAP_FAILED)
        return -errno;
    w->base = base;
    w->chunk = chunk;
    return 0;
}

char *mmlog_window_at(struct kl_mmlog *log, struct mmlog_window *windows, unsigned count,
                      uint64_t offset, bool write)
{
    uint64_t chunk = offset / log->chunk_size;
    struct mmlog_window *w = &windows[chunk % count];
    if (KL_UNLIKELY(w->chunk != chunk)) {
        int err = window_map(log, w, chunk, write);
        if (err) {
            errno = -err;
            return NULL;
        }
    }
    return w->base + (offset - chunk * log->chunk_size);
}

void mmlog_windows_release(struct kl_mmlog *log, struct mmlog_window *windows, unsigned count)
{
    for (unsigned i = 0; i < count; i++) {
        if (windows[i].base)
            munmap(windows[i].base, 2 * log->chunk_size);
        windows[i].base = NULL;
        windows[i].chunk = UINT64_MAX;
    }
}
