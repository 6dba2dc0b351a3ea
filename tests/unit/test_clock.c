/* Tests for keel/clock.h: kl_now() agrees with CLOCK_MONOTONIC over a sleep
 * within 1%, is monotonic, shares CLOCK_MONOTONIC's epoch, and the fallback
 * (KEEL_CLOCK=monotonic) works. */
#include "keel/clock.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kt.h"

static void check_against_monotonic(uint64_t sleep_ms)
{
    uint64_t m0 = kl_clock_gettime_ns(), k0 = kl_now();
    struct timespec ts = {0, (long)(sleep_ms * 1000000)};
    nanosleep(&ts, NULL);
    uint64_t k1 = kl_now(), m1 = kl_clock_gettime_ns();
    double mono = (double)(m1 - m0), keel = (double)(k1 - k0);
    double err = (keel - mono) / mono;
    if (err < 0)
        err = -err;
    if (err > 0.01)
        kt_fail(__FILE__, __LINE__, "kl_now %.0f ns vs CLOCK_MONOTONIC %.0f ns: %.3f%% off", keel,
                mono, err * 100);
}

KT_TEST(clock_matches_monotonic_over_sleep)
{
    printf("  clock source: %s, tsc %llu Hz\n", kl_clock_source(),
           (unsigned long long)kl_clock_tsc_hz());
    check_against_monotonic(200);
}

KT_TEST(clock_shares_monotonic_epoch)
{
    uint64_t m = kl_clock_gettime_ns();
    uint64_t k = kl_now();
    uint64_t diff = k > m ? k - m : m - k;
    KT_CHECK(diff < 1000000); /* within 1 ms */
}

KT_TEST(clock_is_monotonic)
{
    uint64_t prev = kl_now();
    for (int i = 0; i < 1000000; i++) {
        uint64_t t = kl_now();
        if (t < prev) {
            kt_fail(__FILE__, __LINE__, "went back %llu ns", (unsigned long long)(prev - t));
            return;
        }
        prev = t;
    }
}

/* The source fits the environment: clock_gettime when KEEL_CLOCK=monotonic,
 * the TSC on a machine with an invariant TSC otherwise. */
KT_TEST(clock_source_matches_environment)
{
    const char *forced = getenv("KEEL_CLOCK");
    if (forced && strcmp(forced, "monotonic") == 0) {
        KT_EQ_U(kl_clock_tsc_hz(), 0);
        KT_CHECK(strstr(kl_clock_source(), "KEEL_CLOCK=monotonic") != NULL);
    } else if (strstr(kl_clock_source(), "not invariant") == NULL) {
        KT_CHECK(strncmp(kl_clock_source(), "tsc", 3) == 0);
        KT_CHECK(kl_clock_tsc_hz() > 100000000); /* no real TSC runs below 100 MHz */
    }
}

/* The fallback path: this test binary runs again with KEEL_CLOCK=monotonic
 * (the clock is chosen at start-up, so it takes a new process) and must pass
 * every clock case there too. */
KT_TEST(clock_fallback_to_clock_gettime)
{
    if (getenv("KEEL_CLOCK"))
        return; /* already the child */
    pid_t pid = fork();
    KT_REQUIRE(pid >= 0);
    if (pid == 0) {
        setenv("KEEL_CLOCK", "monotonic", 1);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, STDOUT_FILENO);
        execl("/proc/self/exe", "test_clock", (char *)NULL);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    KT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
