/* test_keeld_options: keeld's command line, memcached's flags and keel's own. */
#include <stdarg.h>
#include <string.h>

#include "kt.h"
#include "options.h"

#define MB (1024ull * 1024ull)

static struct keeld_options opts;
static char err[256];

/* Parse a NULL-terminated list of arguments (after "keeld"). */
static enum keeld_parse_result parse(const char *first, ...)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)"keeld";
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a != NULL && argc < 31; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    keeld_options_defaults(&opts, 2);
    return keeld_options_parse(&opts, argc, argv, err, sizeof err);
}

KT_TEST(defaults_match_memcached_but_listen_on_loopback)
{
    KT_CHECK(parse(NULL) == KEELD_RUN);
    KT_CHECK(opts.port == 11211);
    KT_CHECK(opts.memory_bytes == 64 * MB);
    KT_CHECK(opts.max_conns == 1024);
    KT_CHECK(opts.max_item_size == 1024 * 1024);
    KT_CHECK(opts.threads == 2); /* 4, capped at 2 cores */
    KT_CHECK(opts.listen_count == 1 && strcmp(opts.listen[0], "127.0.0.1") == 0);
    KT_CHECK(opts.engine == KEELD_ENGINE_SEG && opts.backend == KEELD_BACKEND_AUTO);
    KT_CHECK(opts.listener == KEELD_LISTENER_REUSEPORT);
    KT_CHECK(opts.prefix_delimiter == ':' && !opts.detail_on);
    keeld_options_defaults(&opts, 16);
    KT_CHECK(opts.threads == 4);
}

KT_TEST(memcached_command_line_is_accepted)
{
    KT_REQUIRE(parse("-p", "22122", "-U", "0", "-l", "127.0.0.1,::1", "-l", "[::1]:7000", "-m",
                     "1024", "-c", "19000", "-t", "3", "-I", "2m", "-b", "512", "-vv", "-A", "-F",
                     "-D", "#", "-u", "nobody", "-o", "modern,hashpower=20,idle_timeout=30",
                     NULL) == KEELD_RUN);
    KT_CHECK(opts.port == 22122);
    KT_CHECK(opts.listen_count == 3);
    KT_CHECK(strcmp(opts.listen[1], "::1") == 0 && strcmp(opts.listen[2], "[::1]:7000") == 0);
    KT_CHECK(opts.memory_bytes == 1024 * MB);
    KT_CHECK(opts.max_conns == 19000 && opts.threads == 3 && opts.backlog == 512);
    KT_CHECK(opts.max_item_size == 2 * MB);
    KT_CHECK(opts.verbose == 2 && opts.allow_shutdown && opts.disable_flush_all);
    KT_CHECK(opts.prefix_delimiter == '#' && opts.detail_on); /* -D turns them on */
    KT_CHECK(strcmp(opts.user, "nobody") == 0);
    KT_CHECK(opts.hash_power == 20 && opts.idle_timeout_s == 30);
    KT_CHECK(opts.ignored_count == 1 && strcmp(opts.ignored[0], "modern") == 0);
}

KT_TEST(long_forms_and_keel_options)
{
    KT_REQUIRE(parse("--port=0", "--memory-limit", "8", "--max-item-size=1k", "--engine", "seg",
                     "--backend=epoll", "--busy-poll", "--evict=s3fifo", "--log=/tmp/x.log",
                     "--admin", "127.0.0.1:9150", "--idle-timeout=5", "--seg-size=4m",
                     "--hash-power", "18", "--listener=handoff", "--sched-slice-us=250",
                     NULL) == KEELD_RUN);
    KT_CHECK(opts.port == 0 && opts.memory_bytes == 8 * MB && opts.max_item_size == 1024);
    KT_CHECK(opts.backend == KEELD_BACKEND_EPOLL && opts.busy_poll);
    KT_CHECK(strcmp(opts.evict, "s3fifo") == 0 && strcmp(opts.log_path, "/tmp/x.log") == 0);
    KT_CHECK(strcmp(opts.admin, "127.0.0.1:9150") == 0 && opts.idle_timeout_s == 5);
    KT_CHECK(opts.seg_size == 4 * MB && opts.hash_power == 18);
    KT_CHECK(opts.listener == KEELD_LISTENER_HANDOFF && opts.sched_slice_us == 250);
    /* the same through -o, with either spelling */
    KT_REQUIRE(parse("-o", "engine=disk,data_dir=/var/lib/keel,backend=io_uring,busy-poll", "-o",
                     "listener=handoff,sched_slice_us=0", NULL) == KEELD_RUN);
    KT_CHECK(opts.sched_slice_us == 0);
    KT_CHECK(opts.engine == KEELD_ENGINE_DISK && strcmp(opts.data_dir, "/var/lib/keel") == 0);
    KT_CHECK(opts.backend == KEELD_BACKEND_URING && opts.busy_poll);
    KT_CHECK(opts.listener == KEELD_LISTENER_HANDOFF);
    /* the disk engine's options, long and through -o */
    KT_REQUIRE(parse("--engine=disk", "--data-dir", "/d", "--direct", "--sync", "always",
                     "--sync-ms=25", NULL) == KEELD_RUN);
    KT_CHECK(opts.direct && opts.sync == KEELD_SYNC_ALWAYS && opts.sync_ms == 25);
    KT_REQUIRE(parse("-o", "engine=disk,data_dir=/d,sync=none,sync_ms=5", NULL) == KEELD_RUN);
    KT_CHECK(!opts.direct && opts.sync == KEELD_SYNC_NONE && opts.sync_ms == 5);
    KT_REQUIRE(parse("--engine=disk", "--data-dir=/d", NULL) == KEELD_RUN);
    KT_CHECK(opts.sync == KEELD_SYNC_BATCH && opts.sync_ms == 0); /* the engine's default: 10 */
}

KT_TEST(help_and_version_win_over_other_flags)
{
    KT_CHECK(parse("-m", "8", "-h", NULL) == KEELD_HELP);
    KT_CHECK(parse("-V", NULL) == KEELD_VERSION);
    KT_CHECK(parse("--help", NULL) == KEELD_HELP);
    KT_CHECK(strstr(keeld_usage(), "-m, --memory-limit") != NULL);
}

/* Each bad command line is refused with a message naming the problem. */
KT_TEST(bad_flags_are_one_line_errors)
{
    static const struct {
        const char *a, *b, *expect;
    } cases[] = {
        {"-Q", NULL, "unknown option -Q"},
        {"--bogus", NULL, "unknown option --bogus"},
        {"-p", NULL, "-p needs a value"},
        {"-p", "abc", "-p: 'abc' is not a number"},
        {"-p", "70000", "out of range"},
        {"-m", "-5", "not a number"},
        {"-m", "0", "out of range"},
        {"-c", "0", "out of range"},
        {"-t", "0", "out of range"},
        {"-t", "2x", "not a number"},
        {"-I", "512", "out of range"},
        {"-I", "2g", "not a size"},
        {"-I", "40m", "half of -m"},
        {"-U", "5", "does not serve UDP"},
        {"-D", "", "-D takes a character"},
        {"-o", "foo=1", "unknown option 'foo'"},
        {"-o", "hashpower", "needs a value"},
        {"-o", "busy_poll=1", "takes no value"},
        {"--engine", "rocks", "not an engine"},
        {"--engine=disk", NULL, "needs --data-dir"},
        {"--data-dir=/tmp", NULL, "is for --engine disk"},
        {"--sync", "sometimes", "not a sync mode"},
        {"--sync=always", NULL, "are for --engine disk"},
        {"--direct", NULL, "are for --engine disk"},
        {"--sync-ms", "0", "out of range"},
        {"-o", "direct=1", "takes no value"},
        {"--evict", "lru", "not a policy"},
        {"--backend", "kqueue", "not a backend"},
        {"--listener", "steal", "not a listener mode"},
        {"--sched-slice-us", "50", "100 to 100000"},
        {"--sched-slice-us", "200000", "out of range"},
        {"--admin", "127.0.0.1", "has no port"},
        {"--admin", "127.0.0.1:http", "not a number"},
        {"-l", "127.0.0.1:99999", "out of range"},
        {"-l", ",", "no address"},
        {"stray", NULL, "unexpected argument 'stray'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum keeld_parse_result r = parse(cases[i].a, cases[i].b, NULL);
        KT_CHECK(r == KEELD_BAD);
        if (strstr(err, cases[i].expect) == NULL || strchr(err, '\n') != NULL)
            kt_fail(__FILE__, __LINE__, "%s %s: got \"%s\", want \"%s\"", cases[i].a,
                    cases[i].b ? cases[i].b : "", err, cases[i].expect);
    }
}

KT_TEST(parse_can_run_twice)
{
    KT_CHECK(parse("-Q", NULL) == KEELD_BAD);
    KT_CHECK(parse("-p", "1", NULL) == KEELD_RUN && opts.port == 1);
}
