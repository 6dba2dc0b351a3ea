/* seg_kit.c: helpers shared by the seg engine's tests (seg_kit.h). */
#include "seg_kit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kt.h"

struct kl_engine *sk_open(enum kl_evict_policy p, size_t mem, size_t seg)
{
    struct kl_engine_opts o = {.mem_bytes = mem, .seg_size = seg, .evict = p, .now = SK_T0};
    struct kl_engine *e = NULL;
    int r = kl_engine_open(&o, &e);
    if (r != 0) {
        kt_fail(__FILE__, __LINE__, "kl_engine_open: %d", r);
        return NULL;
    }
    return e;
}

int sk_store(struct kl_engine *e, enum kl_store_mode mode, const char *key, const char *val,
             uint32_t flags, uint32_t exptime, uint64_t cas_in, uint64_t *cas_out)
{
    return kl_engine_store(e, mode, key, strlen(key), val, (uint32_t)strlen(val), flags, exptime,
                           cas_in, cas_out);
}

bool sk_get(struct kl_engine *e, const char *key, char *buf, size_t cap, struct kl_item *out)
{
    struct kl_item it;
    if (kl_engine_lookup(e, key, strlen(key), NULL, &it) != KL_E_OK)
        return false;
    size_t n = it.vlen < cap - 1 ? it.vlen : cap - 1;
    memcpy(buf, it.value, n);
    buf[n] = 0;
    kl_engine_release(e, &it);
    if (out)
        *out = it;
    return true;
}

void sk_fill(char *v, uint32_t size, uint32_t key, uint32_t ver)
{
    int n = snprintf(v, size, "k%u v%u ", key, ver);
    for (uint32_t i = (uint32_t)n; i < size; i++)
        v[i] = (char)('a' + (key * 31 + ver * 7 + i) % 26);
}

long sk_resident_kib(void)
{
    long pages = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &res) != 2)
        res = 0;
    fclose(f);
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

uint64_t sk_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}
