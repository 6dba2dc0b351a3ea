/* keel-bench's checks: is a value what this run last stored under its key?
 *
 * With --verify every key belongs to one connection, and one connection's
 * requests are served in order, so when a request is sent the generator
 * knows exactly what the server holds for each of its keys: nothing known
 * (not yet touched in this run: a miss or any well-formed value of that key
 * is right), deleted (must miss), or version V (must be exactly the bytes of
 * version V). The state travels with the request (kb_req.expect). A
 * well-formed value names its key, run and version in its head and its
 * length and remaining bytes follow from them, so a value from another
 * run (a --load before) is checked too (all but its length, which that
 * run's --value-size chose).
 */
#include <stdarg.h>
#include <string.h>

#include "bench.h"

const char *const kb_err_names[KB_ERR_COUNT] = {
    "mismatch",   "missing",    "protocol", "server_error",
    "not_stored", "connection", "timeout",  "stale",
};

void kb_error(struct kb_thread *t, enum kb_err kind, const char *fmt, ...)
{
    t->errors[kind]++;
    if (t->first_error[0] == '\0') {
        int n = snprintf(t->first_error, sizeof t->first_error, "%s: ", kb_err_names[kind]);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->first_error + n, sizeof t->first_error - (size_t)n, fmt, ap);
        va_end(ap);
    }
}

static int hex32(const char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 8; i++) {
        char c = p[i];
        if (c >= '0' && c <= '9')
            v = v << 4 | (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v << 4 | (uint32_t)(c - 'a' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

int kb_value_identity(const char *val, uint32_t len, uint32_t *k, uint32_t *tag, uint32_t *ver)
{
    if (len < KB_VALUE_HEAD || val[0] != '@' || val[9] != '/' || val[18] != '/' || val[27] != '|' ||
        hex32(val + 1, k) < 0 || hex32(val + 10, tag) < 0 || hex32(val + 19, ver) < 0)
        return -1;
    return 0;
}

bool kb_value_body_ok(uint32_t k, uint32_t tag, uint32_t ver, const char *val, uint32_t len)
{
    const char *pat = kb_pattern + kb_pattern_offset(k, tag, ver);
    return len >= KB_VALUE_HEAD && len <= KB_VALUE_MAX &&
           memcmp(val + KB_VALUE_HEAD, pat, len - KB_VALUE_HEAD) == 0;
}

int kb_verify_value(const struct kb_run *run, struct kb_thread *t, uint32_t k, uint32_t expect,
                    const char *val, uint32_t len)
{
    uint32_t vk, tag, ver;
    if (kb_value_identity(val, len, &vk, &tag, &ver) < 0) {
        kb_error(t, KB_E_MISMATCH, "key %u: a value that keel-bench did not write (%u bytes)", k,
                 len);
        return -1;
    }
    if (vk != k) {
        kb_error(t, KB_E_MISMATCH, "key %u holds the value of key %u", k, vk);
        return -1;
    }
    /* another run's value may have another length (its --value-size) */
    uint32_t want =
        tag == run->run_tag ? kb_value_len(run->opt.value_min, run->opt.value_max, k) : len;
    if (len != want || !kb_value_body_ok(k, tag, ver, val, len)) {
        kb_error(t, KB_E_MISMATCH, "key %u version %u: %u bytes, corrupt (expected %u)", k, ver,
                 len, want);
        return -1;
    }
    if (expect == KB_EXPECT_DELETED) {
        kb_error(t, KB_E_MISMATCH, "key %u: a value (version %u) after its delete", k, ver);
        return -1;
    }
    if (expect != KB_EXPECT_UNKNOWN && (tag != run->run_tag || ver != expect)) {
        kb_error(t, KB_E_MISMATCH, "key %u: version %x/%u, expected %x/%u", k, tag, ver,
                 run->run_tag, expect);
        return -1;
    }
    t->verified++;
    return 0;
}

int kb_verify_miss(struct kb_thread *t, uint32_t k, uint32_t expect)
{
    if (expect >= 2) {
        kb_error(t, KB_E_MISSING, "key %u: a miss, but version %u was stored", k, expect);
        return -1;
    }
    return 0;
}
