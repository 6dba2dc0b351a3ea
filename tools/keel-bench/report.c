/* keel-bench's output: the progress line each second and the final report.
 *
 * Progress comes from counters the workers write and anyone may read
 * (keel/workers.h): totals and a coarse latency histogram (4 buckets per
 * power of two), whose difference over the last second gives the line's
 * rate, hit ratio and p99 without stopping anything. The final report merges
 * each worker's exact histograms (keel/histogram.h) after they stopped:
 * requests, throughput, hit ratio, errors by kind, latency percentiles
 * overall and per command, as text or as JSON ("latency_us" everywhere).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

unsigned kb_coarse_bucket(uint64_t ns)
{
    if (ns < 4)
        return (unsigned)ns;
    unsigned e = 63u - (unsigned)__builtin_clzll(ns);
    return e * 4 + (unsigned)((ns >> (e - 2)) & 3);
}

/* Upper bound of a coarse bucket, in ns. */
static double coarse_high(unsigned b)
{
    if (b < 4)
        return b;
    unsigned e = b / 4, sub = b % 4;
    return ldexp(4.0 + sub + 1.0, (int)e - 2);
}

static struct {
    uint64_t ctr[KB_C_COUNT];
    uint64_t coarse[KB_COARSE_BUCKETS];
    double at;
} last;

void kb_progress(struct kb_run *run, double elapsed_s, bool tty)
{
    uint64_t ctr[KB_C_COUNT], coarse[KB_COARSE_BUCKETS] = {0};
    kl_workers_stats(run->workers, NULL, ctr);
    for (uint32_t i = 0; i < run->opt.threads; i++)
        for (unsigned b = 0; b < KB_COARSE_BUCKETS; b++)
            coarse[b] += kl_counter_get(&run->threads[i].coarse[b]);
    double dt = elapsed_s - last.at;
    uint64_t req = ctr[KB_C_REQUESTS] - last.ctr[KB_C_REQUESTS];
    uint64_t hits = ctr[KB_C_HITS] - last.ctr[KB_C_HITS];
    uint64_t misses = ctr[KB_C_MISSES] - last.ctr[KB_C_MISSES];
    uint64_t n = 0, want, seen = 0;
    for (unsigned b = 0; b < KB_COARSE_BUCKETS; b++)
        n += coarse[b] - last.coarse[b];
    want = n - n / 100; /* the 99th percentile's rank */
    double p99 = 0;
    for (unsigned b = 0; b < KB_COARSE_BUCKETS && n > 0; b++) {
        seen += coarse[b] - last.coarse[b];
        if (seen >= want) {
            p99 = coarse_high(b);
            break;
        }
    }
    /* the phase most of the last second was in */
    const char *phase = run->opt.check                        ? "check"
                        : run->opt.load                       ? "load"
                        : elapsed_s - 0.5 < run->opt.warmup_s ? "warmup"
                                                              : "run";
    fprintf(stderr, "%s[%6.1fs %-6s] %10.0f req/s  hit %5.1f%%  p99 <%8.0f us  errors %lu%s",
            tty ? "\r" : "", elapsed_s, phase, dt > 0 ? (double)req / dt : 0,
            hits + misses ? 100.0 * (double)hits / (double)(hits + misses) : 0, p99 / 1000,
            (unsigned long)ctr[KB_C_ERRORS], tty ? "\033[K" : "\n");
    fflush(stderr);
    memcpy(last.ctr, ctr, sizeof ctr);
    memcpy(last.coarse, coarse, sizeof coarse);
    last.at = elapsed_s;
}

/* ---- the final report ---- */

static const double pcts[6] = {50, 90, 99, 99.9, 99.99, 100};
static const char *const pct_json[6] = {"p50", "p90", "p99", "p999", "p9999", "max"};

static double us(const struct kl_hist *h, double p)
{
    uint64_t ns = p >= 100 ? h->max : kl_hist_percentile(h, p);
    return h->count ? (double)ns / 1000.0 : 0;
}

static void text_line(const char *name, const struct kl_hist *h)
{
    printf("  %-8s %10lu", name, (unsigned long)h->count);
    for (int i = 0; i < 6; i++)
        printf(" %9.1f", us(h, pcts[i]));
    printf("\n");
}

static void json_latency(const struct kl_hist *h)
{
    printf("\"latency_us\": {");
    for (int i = 0; i < 6; i++)
        printf("%s\"%s\": %.1f", i ? ", " : "", pct_json[i], us(h, pcts[i]));
    printf("}");
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

uint64_t kb_report(struct kb_run *run, double measured_s)
{
    const struct kb_options *opt = &run->opt;
    struct kb_thread sum;
    memset(&sum, 0, sizeof sum);
    static struct kl_hist all, per[KB_CMD_COUNT], lag;
    kl_hist_init(&all);
    kl_hist_init(&lag);
    for (int c = 0; c < KB_CMD_COUNT; c++)
        kl_hist_init(&per[c]);
    const char *first = NULL;
    for (uint32_t i = 0; i < opt->threads; i++) {
        struct kb_thread *t = &run->threads[i];
        for (int c = 0; c < KB_CMD_COUNT; c++) {
            sum.requests[c] += t->requests[c];
            sum.hits[c] += t->hits[c];
            sum.misses[c] += t->misses[c];
            kl_hist_merge(&per[c], t->hist[c]);
            kl_hist_merge(&all, t->hist[c]);
        }
        kl_hist_merge(&lag, t->lag);
        for (int e = 0; e < KB_ERR_COUNT; e++)
            sum.errors[e] += t->errors[e];
        sum.verified += t->verified;
        sum.state_records += t->state_records;
        if (!first && t->first_error[0])
            first = t->first_error;
    }
    uint64_t req = 0, hits = 0, misses = 0, errors = 0;
    for (int c = 0; c < KB_CMD_COUNT; c++) {
        req += sum.requests[c];
        hits += sum.hits[c];
        misses += sum.misses[c];
    }
    for (int e = 0; e < KB_ERR_COUNT; e++)
        errors += sum.errors[e];
    double tput = measured_s > 0 ? (double)req / measured_s : 0;
    double ratio = hits + misses ? (double)hits / (double)(hits + misses) : 0;

    if (opt->json) {
        printf("{\"servers\": [");
        for (uint32_t s = 0; s < opt->nservers; s++) {
            printf("%s", s ? ", " : "");
            json_str(opt->server_names[s]);
        }
        printf("], \"connections\": %u, \"threads\": %u, \"pipeline\": %u, ", run->total_conns,
               opt->threads, opt->pipeline);
        printf("\"mode\": \"%s\", \"target_rate\": %.1f, ",
               opt->check      ? "check"
               : opt->load     ? "load"
               : opt->rate > 0 ? "open"
                               : "closed",
               opt->rate);
        printf("\"duration_s\": %.3f, \"requests\": %lu, \"throughput\": %.1f, ", measured_s,
               (unsigned long)req, tput);
        printf("\"hits\": %lu, \"misses\": %lu, \"hit_ratio\": %.4f, \"verified\": %lu, ",
               (unsigned long)hits, (unsigned long)misses, ratio, (unsigned long)sum.verified);
        printf("\"errors\": {\"total\": %lu", (unsigned long)errors);
        for (int e = 0; e < KB_ERR_COUNT; e++)
            printf(", \"%s\": %lu", kb_err_names[e], (unsigned long)sum.errors[e]);
        printf("}, \"state_records\": %lu, \"first_error\": ", (unsigned long)sum.state_records);
        json_str(first ? first : "");
        printf(", ");
        json_latency(&all);
        if (opt->rate > 0)
            printf(", \"send_lag_us\": {\"p50\": %.1f, \"p99\": %.1f, \"max\": %.1f}", us(&lag, 50),
                   us(&lag, 99), us(&lag, 100));
        printf(", \"commands\": {");
        int n = 0;
        for (int c = 0; c < KB_CMD_COUNT; c++) {
            if (!opt->mix[c] && !per[c].count)
                continue;
            printf("%s\"%s\": {\"requests\": %lu, \"hits\": %lu, \"misses\": %lu, ",
                   n++ ? ", " : "", kb_cmd_names[c], (unsigned long)sum.requests[c],
                   (unsigned long)sum.hits[c], (unsigned long)sum.misses[c]);
            json_latency(&per[c]);
            printf("}");
        }
        printf("}}\n");
    } else {
        printf("keel-bench: %u connections to %u server(s), %u thread(s), pipeline %u, %s",
               run->total_conns, opt->nservers, opt->threads, opt->pipeline,
               opt->check      ? "check"
               : opt->load     ? "load"
               : opt->rate > 0 ? "open loop"
                               : "closed loop");
        if (opt->rate > 0)
            printf(" at %.0f req/s", opt->rate);
        printf("\n");
        printf("requests    %lu in %.3f s: %.1f req/s\n", (unsigned long)req, measured_s, tput);
        printf("hit ratio   %.4f (%lu hits, %lu misses)\n", ratio, (unsigned long)hits,
               (unsigned long)misses);
        if (opt->verify || opt->check)
            printf("verified    %lu values\n", (unsigned long)sum.verified);
        if (opt->state && !opt->check)
            printf("state       %lu acknowledged writes appended to %s\n",
                   (unsigned long)sum.state_records, opt->state);
        printf("errors      %lu", (unsigned long)errors);
        for (int e = 0; e < KB_ERR_COUNT; e++)
            if (sum.errors[e])
                printf("  %s %lu", kb_err_names[e], (unsigned long)sum.errors[e]);
        printf("\n");
        if (first)
            printf("first error %s\n", first);
        if (opt->rate > 0)
            printf("send lag    p50 %.1f us, p99 %.1f us, max %.1f us (sent after due; counted in "
                   "the latencies)\n",
                   us(&lag, 50), us(&lag, 99), us(&lag, 100));
        printf(
            "latency (us)    count       p50       p90       p99     p99.9    p99.99       max\n");
        text_line("all", &all);
        for (int c = 0; c < KB_CMD_COUNT; c++)
            if (opt->mix[c] || per[c].count)
                text_line(kb_cmd_names[c], &per[c]);
    }
    fflush(stdout);
    return errors;
}
