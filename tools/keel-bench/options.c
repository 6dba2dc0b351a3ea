/* keel-bench's flags: parsing, checking and the -h text.
 *
 * Every flag has a default that -h shows; a bad flag or value is one line on
 * stderr and exit status 2 (main's job). Sizes take A or A-B (a range each
 * key or value draws its length from); the mix takes name=weight pairs.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

const char *const kb_cmd_names[KB_CMD_COUNT] = {"get", "mget", "set", "delete", "mg", "ms"};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: keel-bench [options]\n"
            "A load generator for memcached-protocol servers (text and meta commands).\n"
            "\n"
            "  --server HOST:PORT    a server; repeat for several (default 127.0.0.1:11211);\n"
            "                        connections go to each, keys are spread over them\n"
            "  --connections N       connections per server (default 4)\n"
            "  --threads N           worker threads; connections are spread over them\n"
            "                        (default 1); beside the server on one machine, no\n"
            "                        more than the cores it leaves free\n"
            "  --pipeline N          requests in flight per connection (default 1); in open\n"
            "                        loop at most max(N, %u), so a stalled server does not\n"
            "                        slow the schedule\n"
            "  --rate R              open loop: R requests/s in total, each timed from its\n"
            "                        intended send time (default: none, closed loop)\n"
            "  --duration S          seconds of load after the warm-up (default 10)\n"
            "  --warmup S            seconds of load that are not measured (default 0)\n"
            "  --keys N              key space: keys 0 .. N-1 (default 100000)\n"
            "  --key-size A[-B]      key length in bytes (default 16; at least 12)\n"
            "  --value-size A[-B]    value length in bytes, fixed per key (default 100; at\n"
            "                        most 1048576)\n"
            "  --mix LIST            command weights, e.g. get=90,set=10 (default); commands:\n"
            "                        get, mget (one get of --mget-keys keys), set, delete,\n"
            "                        mg (meta get), ms (meta set)\n"
            "  --mget-keys N         keys per multi-get (default 10, at most %u)\n"
            "  --dist D              key distribution: uniform or zipf:THETA, 0 < THETA < 1\n"
            "                        (default uniform)\n"
            "  --load                store every key once, in order, and stop (with --verify,\n"
            "                        read every key back and check it)\n"
            "  --verify              values carry their key and version; check every reply\n"
            "                        (each key is then used by one connection only)\n"
            "  --state FILE          with --verify: append every acknowledged write (STORED,\n"
            "                        HD, DELETED, NOT_FOUND) to FILE, kept across runs and\n"
            "                        flushed to the device on exit (README: state file)\n"
            "  --check               with --state: read every key the runs in FILE wrote\n"
            "                        (their --keys and --key-size) once and check it: an\n"
            "                        acknowledged write or a later one must be there, intact\n"
            "                        (after a server's crash and restart); errors missing,\n"
            "                        stale, mismatch\n"
            "  --json                print the final report as JSON\n"
            "  --seed N              random seed (default 1)\n"
            "  --backend B           I/O backend: auto, uring or epoll (default auto: io_uring\n"
            "                        where the kernel allows it)\n"
            "  -h, --help            this text\n"
            "\n"
            "Keys: key i (0 <= i < --keys) is \"kb\" and i in decimal, zero-padded to the\n"
            "key's length: kb00000000000042 with the default --key-size 16; with A-B, key\n"
            "i's length is A + splitmix64(i) %% (B - A + 1). Values: key i's length is fixed,\n"
            "A + splitmix64(2^32 + i) %% (B - A + 1) for --value-size A-B, in every run and\n"
            "every write, so an overwrite keeps the key's size. splitmix64(x) is SplitMix64's\n"
            "first output from state x (README: keel-bench).\n"
            "\n"
            "protostore's workloads, over keys stored before (--load, or keel-mkdata with the\n"
            "same --keys and sizes):\n"
            "  random reads:  --mix get=100 --pipeline K (closed loop: at most K requests in\n"
            "                 flight per connection, connections x K in all)\n"
            "  overwrites:    --mix set=100 (each value the size the key had before)\n"
            "\n"
            "SIGINT (Ctrl-C) or SIGTERM ends the run early; the report covers what ran.\n"
            "Exit status: 0 when every reply was right, 1 on any error, 2 on a bad flag.\n",
            KB_OPEN_WINDOW, KB_MGET_MAX);
}

static int bad(const char *fmt, const char *arg)
{
    fprintf(stderr, "keel-bench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (keel-bench -h lists the flags)\n");
    return -1;
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*s == '-' || *s == '\0')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    uint64_t v;
    if (parse_u64(s, lo, hi, &v) < 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static int parse_range(const char *s, uint32_t lo, uint32_t hi, uint32_t *a, uint32_t *b)
{
    char buf[64];
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    char *dash = strchr(buf, '-');
    if (dash)
        *dash = '\0';
    if (parse_u32(buf, lo, hi, a) < 0)
        return -1;
    if (!dash) {
        *b = *a;
        return 0;
    }
    if (parse_u32(dash + 1, lo, hi, b) < 0 || *b < *a)
        return -1;
    return 0;
}

static int parse_server(struct kb_options *opt, const char *s)
{
    if (opt->nservers == KB_SERVERS_MAX)
        return bad("too many --server flags (at most 64): %s", s);
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= sizeof host)
        return bad("--server wants HOST:PORT, not '%s'", s);
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    uint32_t port;
    if (parse_u32(colon + 1, 1, 65535, &port) < 0)
        return bad("--server: bad port in '%s'", s);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return bad("--server: cannot resolve host in '%s'", s);
    struct sockaddr_in *sa = &opt->servers[opt->nservers];
    *sa = *(struct sockaddr_in *)res->ai_addr;
    sa->sin_port = htons((uint16_t)port);
    freeaddrinfo(res);
    snprintf(opt->server_names[opt->nservers], sizeof opt->server_names[0], "%s", s);
    opt->nservers++;
    return 0;
}

static int parse_mix(struct kb_options *opt, const char *s)
{
    char buf[256];
    if (strlen(s) >= sizeof buf)
        return bad("--mix too long: %s", s);
    strcpy(buf, s);
    memset(opt->mix, 0, sizeof opt->mix);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq)
            return bad("--mix wants NAME=WEIGHT pairs, not '%s'", tok);
        *eq = '\0';
        int c = -1;
        for (int i = 0; i < KB_CMD_COUNT; i++)
            if (strcmp(tok, kb_cmd_names[i]) == 0)
                c = i;
        if (c < 0)
            return bad("--mix: unknown command '%s' (get mget set delete mg ms)", tok);
        if (parse_u32(eq + 1, 0, 1000000, &opt->mix[c]) < 0)
            return bad("--mix: bad weight '%s'", eq + 1);
    }
    opt->mix_total = 0;
    for (int i = 0; i < KB_CMD_COUNT; i++)
        opt->mix_total += opt->mix[i];
    if (opt->mix_total == 0)
        return bad("--mix: every weight is zero: '%s'", s);
    return 0;
}

enum {
    O_SERVER = 256,
    O_CONNS,
    O_THREADS,
    O_PIPELINE,
    O_RATE,
    O_DURATION,
    O_WARMUP,
    O_KEYS,
    O_KEY_SIZE,
    O_VALUE_SIZE,
    O_MIX,
    O_MGET_KEYS,
    O_DIST,
    O_LOAD,
    O_VERIFY,
    O_STATE,
    O_CHECK,
    O_JSON,
    O_SEED,
    O_BACKEND,
};

int kb_options_parse(struct kb_options *opt, int argc, char **argv)
{
    static const struct option longs[] = {
        {"server", required_argument, 0, O_SERVER},
        {"connections", required_argument, 0, O_CONNS},
        {"threads", required_argument, 0, O_THREADS},
        {"pipeline", required_argument, 0, O_PIPELINE},
        {"rate", required_argument, 0, O_RATE},
        {"duration", required_argument, 0, O_DURATION},
        {"warmup", required_argument, 0, O_WARMUP},
        {"keys", required_argument, 0, O_KEYS},
        {"key-size", required_argument, 0, O_KEY_SIZE},
        {"value-size", required_argument, 0, O_VALUE_SIZE},
        {"mix", required_argument, 0, O_MIX},
        {"mget-keys", required_argument, 0, O_MGET_KEYS},
        {"dist", required_argument, 0, O_DIST},
        {"load", no_argument, 0, O_LOAD},
        {"verify", no_argument, 0, O_VERIFY},
        {"state", required_argument, 0, O_STATE},
        {"check", no_argument, 0, O_CHECK},
        {"json", no_argument, 0, O_JSON},
        {"seed", required_argument, 0, O_SEED},
        {"backend", required_argument, 0, O_BACKEND},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    memset(opt, 0, sizeof *opt);
    opt->connections = 4;
    opt->threads = 1;
    opt->pipeline = 1;
    opt->duration_s = 10;
    opt->keys = 100000;
    opt->key_min = opt->key_max = 16;
    opt->value_min = opt->value_max = 100;
    opt->mix[KB_GET] = 90;
    opt->mix[KB_SET] = 10;
    opt->mix_total = 100;
    opt->mget_keys = 10;
    opt->seed = 1;

    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
        const char *a = optarg;
        switch (c) {
        case 'h': usage(stdout); return 1;
        case O_SERVER:
            if (parse_server(opt, a) < 0)
                return -1;
            break;
        case O_CONNS:
            if (parse_u32(a, 1, 100000, &opt->connections) < 0)
                return bad("--connections wants 1 to 100000, not '%s'", a);
            break;
        case O_THREADS:
            if (parse_u32(a, 1, 256, &opt->threads) < 0)
                return bad("--threads wants 1 to 256, not '%s'", a);
            break;
        case O_PIPELINE:
            if (parse_u32(a, 1, KB_OPEN_WINDOW, &opt->pipeline) < 0)
                return bad("--pipeline wants 1 to 1024, not '%s'", a);
            break;
        case O_RATE:
            if (parse_double(a, 1, 1e9, &opt->rate) < 0)
                return bad("--rate wants requests/s from 1 to 1e9, not '%s'", a);
            break;
        case O_DURATION:
            if (parse_double(a, 0.01, 1e7, &opt->duration_s) < 0)
                return bad("--duration wants seconds > 0, not '%s'", a);
            break;
        case O_WARMUP:
            if (parse_double(a, 0, 1e7, &opt->warmup_s) < 0)
                return bad("--warmup wants seconds >= 0, not '%s'", a);
            break;
        case O_KEYS:
            if (parse_u64(a, 1, 1000000000, &opt->keys) < 0)
                return bad("--keys wants 1 to 1e9, not '%s'", a);
            break;
        case O_KEY_SIZE:
            if (parse_range(a, 12, 250, &opt->key_min, &opt->key_max) < 0)
                return bad("--key-size wants A or A-B within 12..250, not '%s'", a);
            break;
        case O_VALUE_SIZE:
            if (parse_range(a, 1, KB_VALUE_MAX, &opt->value_min, &opt->value_max) < 0)
                return bad("--value-size wants A or A-B within 1..1048576, not '%s'", a);
            break;
        case O_MIX:
            if (parse_mix(opt, a) < 0)
                return -1;
            break;
        case O_MGET_KEYS:
            if (parse_u32(a, 1, KB_MGET_MAX, &opt->mget_keys) < 0)
                return bad("--mget-keys wants 1 to 64, not '%s'", a);
            break;
        case O_DIST:
            if (strcmp(a, "uniform") == 0)
                opt->zipf = 0;
            else if (strncmp(a, "zipf:", 5) != 0 ||
                     parse_double(a + 5, 1e-9, 0.999999, &opt->zipf) < 0)
                return bad("--dist wants uniform or zipf:THETA with 0 < THETA < 1, not '%s'", a);
            break;
        case O_LOAD: opt->load = true; break;
        case O_VERIFY: opt->verify = true; break;
        case O_STATE: opt->state = a; break;
        case O_CHECK: opt->check = true; break;
        case O_JSON: opt->json = true; break;
        case O_SEED:
            if (parse_u64(a, 0, UINT64_MAX, &opt->seed) < 0)
                return bad("--seed wants a number, not '%s'", a);
            break;
        case O_BACKEND:
            if (strcmp(a, "auto") == 0)
                opt->backend = KL_REACTOR_AUTO;
            else if (strcmp(a, "uring") == 0)
                opt->backend = KL_REACTOR_URING;
            else if (strcmp(a, "epoll") == 0)
                opt->backend = KL_REACTOR_EPOLL;
            else
                return bad("--backend wants auto, uring or epoll, not '%s'", a);
            break;
        case ':': return bad("%s needs a value", argv[optind - 1]);
        default: return bad("unknown flag '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return bad("unexpected argument '%s'", argv[optind]);
    if (opt->nservers == 0 && parse_server(opt, "127.0.0.1:11211") < 0)
        return -1;
    if (opt->keys > UINT32_MAX - 1)
        return bad("--keys: %s is too many", "that");
    if (opt->check && !opt->state)
        return bad("--check needs --state %s", "FILE");
    if (opt->check && (opt->load || opt->verify))
        return bad("--check reads and checks alone: %s", "no --load or --verify with it");
    if (opt->check) { /* reads only */
        memset(opt->mix, 0, sizeof opt->mix);
        opt->mix[KB_GET] = opt->mix_total = 1;
    }
    if (opt->state && !opt->check && !opt->verify)
        return bad("--state records writes with --verify only (each key %s)",
                   "on one connection, so its acknowledgements come in order");
    if (opt->verify && opt->value_min < KB_VALUE_HEAD)
        return bad("--verify needs --value-size of at least %s bytes", "28");
    uint64_t conns = (uint64_t)opt->connections * opt->nservers;
    if (opt->verify && conns > opt->keys)
        return bad("--verify gives each connection keys of its own: %s", "more --keys needed");
    return 0;
}
