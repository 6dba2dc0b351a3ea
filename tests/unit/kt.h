/* kt.h: keel's small unit-test harness.
 *
 * A test program is a set of cases declared with KT_TEST(name) { ... }. Each
 * case runs in the test process; KT_CHECK-style macros record a failure with
 * its location and let the case go on, KT_REQUIRE stops the case. A death
 * case, KT_DEATH_TEST(name, "text") { ... }, runs in a forked child and
 * passes only if the child dies (a signal, as keel's assertions and panics
 * end, or a non-zero exit, as sanitizer reports end) and its stderr contains
 * "text". The program prints one line per
 * case and closes with "N passed, N failed"; it exits non-zero on any
 * failure, which fails ctest. `prog NAME...` runs only the named cases.
 * A case that cannot run on this machine calls KT_SKIP("why"): it prints
 * SKIP and counts as skipped, never as passed; in a death case too (its
 * child then exits with a status the harness reads as a skip).
 */
#ifndef KEEL_KT_H
#define KEEL_KT_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef void (*kt_fn)(void);

void kt_register(const char *name, kt_fn fn, const char *death_text);
void kt_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Non-zero when the current case has failed. */
int kt_failed(void);
/* Mark the current case skipped (it cannot run here), with the reason. */
void kt_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Run fn() with stderr sent to a file, and put what it wrote in out (through a
 * file, not a pipe, so a large output cannot block the writer). */
void kt_capture_stderr(void (*fn)(void), char *out, size_t cap);

/* From now on, in this process and its children, system call `nr` fails
 * with `err` (a seccomp filter), as on a kernel or file system without it;
 * 0, or -errno when seccomp is unavailable. */
int kt_refuse_syscall(long nr, int err);

/* A fresh temporary directory for the current case (removed at exit). */
const char *kt_tmpdir(void);

#define KT_SKIP(...)                                                                               \
    do {                                                                                           \
        kt_skip(__VA_ARGS__);                                                                      \
        return;                                                                                    \
    } while (0)

#define KT_CASE_(name, death)                                                                      \
    static void name(void);                                                                        \
    __attribute__((constructor)) static void name##_register(void)                                 \
    {                                                                                              \
        kt_register(#name, name, death);                                                           \
    }                                                                                              \
    static void name(void)

#define KT_TEST(name)             KT_CASE_(name, NULL)
#define KT_DEATH_TEST(name, text) KT_CASE_(name, text)

#define KT_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond))                                                                               \
            kt_fail(__FILE__, __LINE__, "check failed: %s", #cond);                                \
    } while (0)

#define KT_REQUIRE(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            kt_fail(__FILE__, __LINE__, "requirement failed: %s", #cond);                          \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define KT_EQ_U(a, b)                                                                              \
    do {                                                                                           \
        uintmax_t kt_a_ = (uintmax_t)(a), kt_b_ = (uintmax_t)(b);                                  \
        if (kt_a_ != kt_b_)                                                                        \
            kt_fail(__FILE__, __LINE__, "%s == %s: %ju != %ju", #a, #b, kt_a_, kt_b_);             \
    } while (0)

#define KT_EQ_I(a, b)                                                                              \
    do {                                                                                           \
        intmax_t kt_a_ = (intmax_t)(a), kt_b_ = (intmax_t)(b);                                     \
        if (kt_a_ != kt_b_)                                                                        \
            kt_fail(__FILE__, __LINE__, "%s == %s: %jd != %jd", #a, #b, kt_a_, kt_b_);             \
    } while (0)

#define KT_EQ_PTR(a, b)                                                                            \
    do {                                                                                           \
        const void *kt_a_ = (a), *kt_b_ = (b);                                                     \
        if (kt_a_ != kt_b_)                                                                        \
            kt_fail(__FILE__, __LINE__, "%s == %s: %p != %p", #a, #b, kt_a_, kt_b_);               \
    } while (0)

#define KT_EQ_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *kt_a_ = (a), *kt_b_ = (b);                                                     \
        if (strcmp(kt_a_, kt_b_) != 0)                                                             \
            kt_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b, kt_a_, kt_b_);       \
    } while (0)

#endif /* KEEL_KT_H */
