/* storage/engine.c: what every engine shares: opening by name, the one-call
 * store, and the names of policies and results (storage/engine.h).
 */
#include "storage/engine.h"

#include <errno.h>
#include <string.h>

int kl_engine_open(const struct kl_engine_opts *opts, struct kl_engine **out)
{
    if (opts->engine == NULL || strcmp(opts->engine, "seg") == 0)
        return kl_seg_open(opts, out);
    if (strcmp(opts->engine, "disk") == 0)
        return kl_disk_open(opts, out);
    return -EINVAL;
}

int kl_engine_store(struct kl_engine *e, enum kl_store_mode mode, const char *key, size_t klen,
                    const void *value, uint32_t vlen, uint32_t flags, uint32_t exptime,
                    uint64_t cas_in, uint64_t *cas_out)
{
    struct kl_store st;
    int r = kl_engine_reserve(e, key, klen, vlen, flags, exptime, &st);
    if (r != 0)
        return r;
    memcpy(st.value, value, vlen);
    return kl_engine_commit(e, &st, mode, cas_in, cas_out);
}

static const char *const policy_names[] = {
    [KL_EVICT_MERGE] = "merge",   [KL_EVICT_FIFO] = "fifo",     [KL_EVICT_CTE] = "cte",
    [KL_EVICT_RANDOM] = "random", [KL_EVICT_S3FIFO] = "s3fifo",
};

int kl_evict_policy_parse(const char *name, enum kl_evict_policy *out)
{
    for (size_t i = 0; i < sizeof policy_names / sizeof policy_names[0]; i++) {
        if (strcmp(name, policy_names[i]) == 0) {
            *out = (enum kl_evict_policy)i;
            return 0;
        }
    }
    return -EINVAL;
}

int kl_sync_mode_parse(const char *name, enum kl_sync_mode *out)
{
    static const char *const names[] = {
        [KL_SYNC_BATCH] = "batch", [KL_SYNC_ALWAYS] = "always", [KL_SYNC_NONE] = "none"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (enum kl_sync_mode)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *kl_evict_policy_name(enum kl_evict_policy p)
{
    if ((unsigned)p < sizeof policy_names / sizeof policy_names[0])
        return policy_names[p];
    return "?";
}

const char *kl_eresult_name(int r)
{
    static const char *const names[] = {
        [KL_E_OK] = "OK",
        [KL_E_STORED] = "STORED",
        [KL_E_NOT_STORED] = "NOT_STORED",
        [KL_E_EXISTS] = "EXISTS",
        [KL_E_NOT_FOUND] = "NOT_FOUND",
        [KL_E_TOO_LARGE] = "TOO_LARGE",
        [KL_E_NO_MEMORY] = "NO_MEMORY",
        [KL_E_NON_NUMERIC] = "NON_NUMERIC",
        [KL_E_BAD_KEY] = "BAD_KEY",
        [KL_E_CORRUPT] = "CORRUPT",
        [KL_E_NO_SPACE] = "NO_SPACE",
        [KL_E_IO] = "IO_ERROR",
    };
    if (r >= 0 && (unsigned)r < sizeof names / sizeof names[0])
        return names[r];
    return "?";
}
