/* keel-demo: what `make run` starts until keeld exists.
 *
 * It exercises the base library a service is built from: it reads the clock,
 * times kl_now() into a latency histogram, moves objects between a pool and
 * an intrusive list, and checksums and hashes a buffer, printing what each
 * part did. It says plainly that it is a demo and not the server.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/assert.h"
#include "keel/clock.h"
#include "keel/crc32c.h"
#include "keel/hash.h"
#include "keel/histogram.h"
#include "keel/list.h"
#include "keel/pool.h"

struct request {
    uint64_t id;
    uint64_t started_ns;
    struct kl_list_node link;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: keel-demo [--requests N]\n"
                 "A demo of keel's base library. keeld, the server, does not exist yet;\n"
                 "until it does, `make run` starts this program instead.\n");
}

int main(int argc, char **argv)
{
    long requests = 100000;
    static const struct option opts[] = {
        {"requests", required_argument, NULL, 'n'}, {"help", no_argument, NULL, 'h'}, {0}};
    int c;
    while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
        if (c == 'n') {
            char *end;
            requests = strtol(optarg, &end, 10);
            if (*end != '\0' || requests <= 0) {
                fprintf(stderr, "keel-demo: --requests wants a positive number, got '%s'\n",
                        optarg);
                return 2;
            }
        } else if (c == 'h') {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    kl_crash_install();

    printf("keel-demo: this is a demo of keel's base library, not the keel server.\n"
           "keeld does not exist yet; when it does, `make run` will start it.\n\n");
    printf("clock     source %s, TSC %.3f GHz\n", kl_clock_source(), kl_clock_tsc_hz() / 1e9);

    /* Requests come from a pool, queue up in an intrusive list, and are timed. */
    struct kl_pool pool;
    int rc = kl_pool_init(&pool, "requests", sizeof(struct request), 1024);
    KL_ASSERT(rc == 0, "pool init: %d", rc);
    struct kl_list pending;
    kl_list_init(&pending);
    static struct kl_hist latency;
    kl_hist_init(&latency);
    uint64_t rejected = 0;
    uint64_t t0 = kl_now();
    for (long i = 0; i < requests; i++) {
        struct request *r = kl_pool_get(&pool);
        if (!r) { /* more than the pool holds: drain, count the rejection */
            rejected++;
            while (!kl_list_empty(&pending)) {
                struct request *done =
                    kl_container_of(kl_list_pop_front(&pending), struct request, link);
                kl_hist_record(&latency, kl_now() - done->started_ns);
                kl_pool_put(&pool, done);
            }
            r = kl_pool_get(&pool);
        }
        r->id = (uint64_t)i;
        r->started_ns = kl_now();
        kl_list_node_init(&r->link);
        kl_list_push_back(&pending, &r->link);
    }
    while (!kl_list_empty(&pending)) {
        struct request *done = kl_container_of(kl_list_pop_front(&pending), struct request, link);
        kl_hist_record(&latency, kl_now() - done->started_ns);
        kl_pool_put(&pool, done);
    }
    uint64_t elapsed = kl_now() - t0;
    printf("pool+list %ld requests through a pool of 1024 in %.2f ms (pool ran dry %llu times)\n",
           requests, elapsed / 1e6, (unsigned long long)rejected);
    printf("histogram queue time p50 %llu ns, p99 %llu ns, p99.9 %llu ns, max %llu ns\n",
           (unsigned long long)kl_hist_percentile(&latency, 50),
           (unsigned long long)kl_hist_percentile(&latency, 99),
           (unsigned long long)kl_hist_percentile(&latency, 99.9), (unsigned long long)latency.max);
    KL_ASSERT(kl_pool_in_use(&pool) == 0, "every request returned to the pool");
    kl_pool_destroy(&pool);

    const char *text = "keel: low-latency storage infrastructure";
    printf("checksum  crc32c(\"%s\") = %08x (%s)\n", text, kl_crc32c(0, text, strlen(text)),
           kl_crc32c_hw_available() ? "SSE4.2" : "portable");
    printf("hash      xxh3(\"%s\") = %016llx\n", text,
           (unsigned long long)kl_hash64(text, strlen(text), 0));
    return 0;
}
