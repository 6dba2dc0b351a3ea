/* bench/fiber: the cost of a fiber switch, of spawn+join, and of
 * swapcontext(3) for comparison, measured in one run.
 *
 * Time. Four methods run ROUNDS rounds each, interleaved (round 1 of each,
 * round 2 of each, ...) so that noise from the other core hits all alike:
 *   - yield:        two fibers ping-pong through kl_fiber_yield(), the full
 *                   scheduler path (ready queue push and pop, bookkeeping,
 *                   the assembly switch). This is "fiber_switch".
 *   - raw switch:   the main context and one stack ping-pong through the
 *                   assembly routine alone (kl_fiber__switch), no scheduler.
 *   - swapcontext:  the same ping-pong with glibc's swapcontext(3), which
 *                   saves the signal mask with a system call on every switch.
 *   - spawn+join:   a fiber spawns a child that returns at once and joins
 *                   it: spawn, two switches, and the slot's release.
 * A round's cost per switch is its elapsed CLOCK_MONOTONIC time over the
 * switches it made (kl_sched_switches() for fibers); the table reports the
 * median and the best round. A second yield row repeats the measurement with
 * the hogger check on (one kl_now() per switch), to show its price.
 *
 * Instructions. The bench re-runs itself under
 *   valgrind --tool=callgrind --collect-atstart=no
 * with a switch count, for yield and for the raw switch; the child turns
 * collection on with CALLGRIND_TOGGLE_COLLECT just around the ping-pong and
 * callgrind prints the instructions collected. Each configuration runs at two
 * counts (N and 2N switches) and the difference over the difference in
 * switches is the cost of one switch: set-up, spawning and the first and
 * last switches cancel out. The ping-pong loops are unrolled 8 times, so the
 * loop's own increment, compare and branch add under half an instruction per
 * switch. Without valgrind the instruction lines are skipped (reported as
 * -1).
 *
 * Memory. PARKED fibers are spawned in a scheduler of that many slots and
 * each parks in kl_fiber_suspend(); the growth of the process's resident set
 * from before kl_sched_init() to then, over PARKED, is the memory a parked
 * fiber costs (its touched stack pages, page tables, its slot in the fiber
 * table): "fiber_park_bytes". The mappings the stacks added are counted
 * from /proc/self/maps.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>
#include <valgrind/callgrind.h>

#include "keel/clock.h"
#include "keel/fiber.h"

#include "../../src/runtime/fiber_switch.h"

#define ROUNDS      11
#define SWITCHES    2000000 /* per round of the switch methods */
#define SPAWNS      200000  /* per round of spawn+join */
#define RAW_STACK   (64 * 1024)
#define CG_SWITCHES 20000 /* the smaller callgrind count; the larger is twice this */
#define PARKED      100000

static void check(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "bench_fiber: %s: %s\n", what, strerror(-rc));
        exit(1);
    }
}

/* ---- yield ping-pong ------------------------------------------------------- */

static intptr_t yielder(void *arg)
{
    long rounds = (long)(intptr_t)arg; /* each round: 8 yields */
    for (long i = 0; i < rounds; i++) {
        kl_fiber_yield();
        kl_fiber_yield();
        kl_fiber_yield();
        kl_fiber_yield();
        kl_fiber_yield();
        kl_fiber_yield();
        kl_fiber_yield();
        kl_fiber_yield();
    }
    return 0;
}

/* Two fibers yielding `switches` times between them; returns switches made. */
static uint64_t run_yield(long switches, bool collect)
{
    kl_fiber_id a, b;
    void *rounds = (void *)(intptr_t)(switches / 16);
    check(kl_fiber_spawn(&a, "ping", yielder, rounds, KL_FIBER_PRIO_NORMAL), "spawn");
    check(kl_fiber_spawn(&b, "pong", yielder, rounds, KL_FIBER_PRIO_NORMAL), "spawn");
    uint64_t before = kl_sched_switches();
    if (collect)
        CALLGRIND_TOGGLE_COLLECT;
    kl_sched_run();
    if (collect)
        CALLGRIND_TOGGLE_COLLECT;
    uint64_t made = kl_sched_switches() - before;
    check(kl_fiber_join(a, NULL), "join");
    check(kl_fiber_join(b, NULL), "join");
    return made;
}

/* ---- raw switch ping-pong --------------------------------------------------- */

static void *raw_main_sp, *raw_other_sp;
static long raw_rounds;

static void raw_other(void *arg)
{
    (void)arg;
    for (;;)
        kl_fiber__switch(&raw_other_sp, raw_main_sp);
}

static uint64_t run_raw(long switches, bool collect)
{
    static char *stack;
    if (stack == NULL) {
        stack = aligned_alloc(64, RAW_STACK);
        if (stack == NULL)
            exit(1);
    }
    raw_other_sp = kl_fiber__stack_init(stack + RAW_STACK, raw_other, NULL);
    raw_rounds = switches / 16;
    if (collect)
        CALLGRIND_TOGGLE_COLLECT;
    for (long i = 0; i < raw_rounds; i++) { /* 8 round trips: 16 switches */
        kl_fiber__switch(&raw_main_sp, raw_other_sp);
        kl_fiber__switch(&raw_main_sp, raw_other_sp);
        kl_fiber__switch(&raw_main_sp, raw_other_sp);
        kl_fiber__switch(&raw_main_sp, raw_other_sp);
        kl_fiber__switch(&raw_main_sp, raw_other_sp);
        kl_fiber__switch(&raw_main_sp, raw_other_sp);
        kl_fiber__switch(&raw_main_sp, raw_other_sp);
        kl_fiber__switch(&raw_main_sp, raw_other_sp);
    }
    if (collect)
        CALLGRIND_TOGGLE_COLLECT;
    return (uint64_t)raw_rounds * 16;
}

/* ---- swapcontext ping-pong ------------------------------------------------- */

static ucontext_t uc_main, uc_other;

static void uc_entry(void)
{
    for (;;)
        swapcontext(&uc_other, &uc_main);
}

static uint64_t run_swapcontext(long switches)
{
    static char *stack;
    if (stack == NULL) {
        stack = aligned_alloc(64, RAW_STACK);
        if (stack == NULL)
            exit(1);
        getcontext(&uc_other);
        uc_other.uc_stack.ss_sp = stack;
        uc_other.uc_stack.ss_size = RAW_STACK;
        uc_other.uc_link = NULL;
        makecontext(&uc_other, uc_entry, 0);
    }
    long trips = switches / 2;
    for (long i = 0; i < trips; i++)
        swapcontext(&uc_main, &uc_other);
    return (uint64_t)trips * 2;
}

/* ---- spawn + join ----------------------------------------------------------- */

static intptr_t child(void *arg) { return (intptr_t)arg; }

static intptr_t spawner(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++) {
        kl_fiber_id id;
        intptr_t r;
        check(kl_fiber_spawn(&id, "child", child, (void *)(intptr_t)i, KL_FIBER_PRIO_NORMAL),
              "spawn");
        check(kl_fiber_join(id, &r), "join");
    }
    return 0;
}

static uint64_t run_spawn_join(long n)
{
    kl_fiber_id id;
    check(kl_fiber_spawn(&id, "spawner", spawner, (void *)(intptr_t)n, KL_FIBER_PRIO_NORMAL),
          "spawn");
    check(kl_fiber_join(id, NULL), "join");
    return (uint64_t)n;
}

/* ---- timing ----------------------------------------------------------------- */

enum { M_YIELD, M_YIELD_HOG, M_RAW, M_SWAPCONTEXT, M_SPAWN, M_COUNT };

static const char *const method_names[M_COUNT] = {"kl_fiber_yield ping-pong",
                                                  "  same, hogger check on", "raw kl_fiber__switch",
                                                  "swapcontext(3) ping-pong", "spawn + join"};

static void sched_up(uint64_t hog_ns)
{
    struct kl_sched_config cfg = {.max_fibers = 16, .hog_threshold_ns = hog_ns};
    check(kl_sched_init(&cfg), "kl_sched_init");
}

static double time_round(int m)
{
    uint64_t n = 0;
    uint64_t t0 = kl_clock_gettime_ns();
    switch (m) {
    case M_YIELD: n = run_yield(SWITCHES, false); break;
    case M_YIELD_HOG:
        check(kl_sched_shutdown(), "shutdown");
        sched_up(1000000000); /* a second: never reported here */
        t0 = kl_clock_gettime_ns();
        n = run_yield(SWITCHES, false);
        {
            uint64_t t1 = kl_clock_gettime_ns();
            check(kl_sched_shutdown(), "shutdown");
            sched_up(0);
            return (double)(t1 - t0) / (double)n;
        }
    case M_RAW: n = run_raw(SWITCHES, false); break;
    case M_SWAPCONTEXT: n = run_swapcontext(SWITCHES / 4); break;
    case M_SPAWN: n = run_spawn_join(SPAWNS); break;
    }
    return (double)(kl_clock_gettime_ns() - t0) / (double)n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- callgrind -------------------------------------------------------------- */

/* In the child under callgrind: one ping-pong of `switches`, prints what it made. */
static int count_child(const char *what, long switches)
{
    sched_up(0);
    uint64_t made = strcmp(what, "raw") == 0 ? run_raw(switches, true) : run_yield(switches, true);
    printf("switches-made %llu\n", (unsigned long long)made);
    return 0;
}

/* Instructions callgrind collected for one child run, or -1. */
static double callgrind_run(const char *what, long switches, uint64_t *made)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "valgrind --tool=callgrind --collect-atstart=no --callgrind-out-file=/dev/null "
             "/proc/%d/exe --count %s %ld 2>&1",
             (int)getpid(), what, switches);
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    char line[512];
    double collected = -1;
    *made = 0;
    while (fgets(line, sizeof line, p)) {
        char *c = strstr(line, "Collected :");
        unsigned long long v;
        if (c && sscanf(c, "Collected : %llu", &v) == 1)
            collected = (double)v;
        if (sscanf(line, "switches-made %llu", &v) == 1)
            *made = v;
    }
    if (pclose(p) != 0 || *made == 0)
        return -1;
    return collected;
}

/* Instructions per switch from two callgrind runs, or -1. */
static double instructions_per_switch(const char *what)
{
    uint64_t m1, m2;
    double i1 = callgrind_run(what, CG_SWITCHES, &m1);
    double i2 = callgrind_run(what, 2 * CG_SWITCHES, &m2);
    if (i1 < 0 || i2 < 0 || m2 <= m1)
        return -1;
    return (i2 - i1) / (double)(m2 - m1);
}

/* ---- memory per parked fiber --------------------------------------------------- */

/* The resident set in bytes, from /proc/self/statm (its second field, in pages). */
static double resident(void)
{
    char buf[128] = "";
    FILE *f = fopen("/proc/self/statm", "r");
    size_t got = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[got] = '\0';
    const char *sp = strchr(buf, ' ');
    return sp ? strtod(sp + 1, NULL) * (double)sysconf(_SC_PAGESIZE) : 0;
}

static int mappings(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    int n = 0;
    char line[512];
    while (f && fgets(line, sizeof line, f))
        n += strchr(line, '\n') != NULL;
    if (f)
        fclose(f);
    return n;
}

static intptr_t parker(void *arg)
{
    (void)arg;
    return kl_fiber_suspend("parked", KL_FIBER_FOREVER);
}

struct park_figures {
    double bytes;       /* RSS per parked fiber */
    double spawn_ns;    /* spawn and first run to the park, per fiber */
    int extra_maps;     /* mappings the scheduler added */
    const char *guards; /* how the stacks are guarded */
};

static struct park_figures park_many(void)
{
    struct park_figures p = {0};
    int maps0 = mappings();
    double rss0 = resident();
    struct kl_sched_config cfg = {.max_fibers = PARKED};
    check(kl_sched_init(&cfg), "kl_sched_init (100,000 slots)");
    p.guards = kl_sched_stack_guard() == KL_STACK_GUARD_REGION ? "guard regions" : "mprotect";
    uint64_t t0 = kl_clock_gettime_ns();
    for (int i = 0; i < PARKED; i++) {
        kl_fiber_id id;
        check(kl_fiber_spawn(&id, "parked", parker, NULL, KL_FIBER_PRIO_NORMAL), "spawn");
    }
    if (kl_sched_run() != PARKED) {
        fprintf(stderr, "bench_fiber: not every fiber parked\n");
        exit(1);
    }
    p.spawn_ns = (double)(kl_clock_gettime_ns() - t0) / PARKED;
    p.bytes = (resident() - rss0) / PARKED;
    p.extra_maps = mappings() - maps0;
    check(kl_sched_shutdown(), "shutdown"); /* cancels them all */
    return p;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--count") == 0)
        return count_child(argv[2], atol(argv[3]));

    struct park_figures park = park_many();
    sched_up(0);
    static double ns[M_COUNT][ROUNDS];
    for (int m = 0; m < M_COUNT; m++) /* warm up */
        time_round(m);
    for (int r = 0; r < ROUNDS; r++)
        for (int m = 0; m < M_COUNT; m++)
            ns[m][r] = time_round(m);
    double median[M_COUNT];
    for (int m = 0; m < M_COUNT; m++) {
        qsort(ns[m], ROUNDS, sizeof(double), cmp_double);
        median[m] = ns[m][ROUNDS / 2];
    }
    check(kl_sched_shutdown(), "shutdown");

    bool have_valgrind = system("valgrind --version >/dev/null 2>&1") == 0;
    double instr_yield = have_valgrind ? instructions_per_switch("yield") : -1;
    double instr_raw = have_valgrind ? instructions_per_switch("raw") : -1;

    printf("clock source: %s (TSC %.3f GHz)\n", kl_clock_source(), kl_clock_tsc_hz() / 1e9);
    printf("%d rounds per method, interleaved; %d switches per round (swapcontext %d), %d "
           "spawn+join\n\n",
           ROUNDS, SWITCHES, SWITCHES / 4, SPAWNS);
    printf("%-28s %12s %12s %12s %14s\n", "method", "median ns", "best ns", "cycles",
           "instructions");
    double ghz = kl_clock_tsc_hz() / 1e9;
    for (int m = 0; m < M_COUNT; m++) {
        char instr[32] = "";
        if (m == M_YIELD && instr_yield >= 0)
            snprintf(instr, sizeof instr, "%.1f", instr_yield);
        if (m == M_RAW && instr_raw >= 0)
            snprintf(instr, sizeof instr, "%.1f", instr_raw);
        printf("%-28s %12.2f %12.2f %12.1f %14s\n", method_names[m], median[m], ns[m][0],
               median[m] * ghz, instr);
    }
    printf("(per switch; spawn + join per pair; instructions by callgrind, per switch)\n\n");
    printf("%d parked fibers (stacks with %s): %.0f bytes of RSS each, %d mappings added, "
           "%.0f ns to spawn and park each\n\n",
           PARKED, park.guards, park.bytes, park.extra_maps, park.spawn_ns);
    printf("result fiber_switch_ns %.2f ns\n", median[M_YIELD]);
    printf("result fiber_switch_instructions %.1f instr\n", instr_yield);
    printf("result fiber_switch_hog_check_ns %.2f ns\n", median[M_YIELD_HOG]);
    printf("result fiber_raw_switch_ns %.2f ns\n", median[M_RAW]);
    printf("result fiber_raw_switch_instructions %.1f instr\n", instr_raw);
    printf("result swapcontext_switch_ns %.2f ns\n", median[M_SWAPCONTEXT]);
    printf("result fiber_spawn_join_ns %.2f ns\n", median[M_SPAWN]);
    printf("result fiber_vs_swapcontext %.2f x\n", median[M_SWAPCONTEXT] / median[M_YIELD]);
    printf("result fiber_park_bytes %.0f bytes\n", park.bytes);
    printf("result fiber_park_maps %d mappings\n", park.extra_maps);
    printf("result fiber_park_spawn_ns %.0f ns\n", park.spawn_ns);
    return 0;
}
