/* test_memcache_misc.c: delete incr decr touch flush_all version verbosity
 * quit shutdown cache_memlimit stats, the binary protocol, and unknown words.
 *
 * Expected results are memcached 1.6.18's answers to the same bytes
 * (including its quirks: "delete k 0" is allowed, noreply hides errors,
 * verbosity and flush_all ignore extra words, cache_memlimit's bad number is
 * a bare ERROR). Each case also runs split at every byte.
 */
#include "kt.h"
#include "mc_kit.h"

static const struct mc_case misc[] = {
    {"delete k\r\n", "delete key=k"},
    {"delete k 0\r\n", "delete key=k"},
    {"delete k noreply\r\n", "delete noreply key=k"},
    {"delete k 0 noreply\r\n", "delete noreply key=k"},
    {"delete k 5\r\n", "ERR CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"},
    {"delete k x\r\n", "ERR CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"},
    {"delete k x noreply\r\n", "ERR (silent)"},
    {"delete\r\n", "ERR ERROR"},
    {"incr n 1\r\n", "incr key=n delta=1"},
    {"decr n 7 noreply\r\n", "decr noreply key=n delta=7"},
    {"incr n 18446744073709551615\r\n", "incr key=n delta=18446744073709551615"},
    {"incr n  5\r\n", "incr key=n delta=5"},
    {"incr n 1 foo\r\n", "incr key=n delta=1"},
    {"incr n abc\r\n", "ERR CLIENT_ERROR invalid numeric delta argument"},
    {"incr n -1\r\n", "ERR CLIENT_ERROR invalid numeric delta argument"},
    {"incr n 1.5\r\n", "ERR CLIENT_ERROR invalid numeric delta argument"},
    {"incr n 0x10\r\n", "ERR CLIENT_ERROR invalid numeric delta argument"},
    {"incr n 18446744073709551616\r\n", "ERR CLIENT_ERROR invalid numeric delta argument"},
    {"incr n abc noreply\r\n", "ERR (silent)"},
    {"incr n\r\n", "ERR ERROR"},
    {"decr n 1 2 3\r\n", "ERR ERROR"},
    {"touch k 10\r\n", "touch key=k exp=1700000010"},
    {"touch k 10 noreply\r\n", "touch noreply key=k exp=1700000010"},
    {"touch k abc\r\n", "ERR CLIENT_ERROR invalid exptime argument"},
    {"touch k abc noreply\r\n", "ERR (silent)"},
    {"touch k\r\n", "ERR ERROR"},
    {"flush_all\r\n", "flush_all"},
    {"flush_all 10\r\n", "flush_all exp=1700000010"},
    {"flush_all -1\r\n", "flush_all"},
    {"flush_all noreply\r\n", "flush_all noreply"},
    {"flush_all 0 noreply\r\n", "flush_all noreply"},
    {"flush_all 1 2\r\n", "flush_all exp=1700000001"},
    {"flush_all 0 foo\r\n", "flush_all"},
    {"flush_all abc\r\n", "ERR CLIENT_ERROR invalid exptime argument"},
    {"flush_all abc noreply\r\n", "ERR (silent)"},
    {"flush_all 1 2 3\r\n", "ERR ERROR"},
    {"version\r\n", "version"},
    {"version x\r\n", "version"},
    {"verbosity 1\r\n", "verbosity num=1"},
    {"verbosity 1 2\r\n", "verbosity num=1"},
    {"verbosity 1 noreply\r\n", "verbosity noreply num=1"},
    {"verbosity abc\r\n", "ERR CLIENT_ERROR bad command line format"},
    {"verbosity abc noreply\r\n", "ERR (silent)"},
    {"verbosity\r\n", "ERR ERROR"},
    {"cache_memlimit 100\r\n", "cache_memlimit num=100"},
    {"cache_memlimit 100 noreply\r\n", "cache_memlimit noreply num=100"},
    {"cache_memlimit abc\r\n", "ERR ERROR"},
    {"cache_memlimit\r\n", "ERR ERROR"},
    {"quit\r\n", "quit"},
    {"quit x\r\n", "quit"},
    {"shutdown\r\n", "shutdown"},
    {"shutdown graceful\r\n", "shutdown num=1 arg=graceful"},
    {"shutdown foo\r\n", "shutdown num=-1 arg=foo"},
    {"shutdown a b\r\n", "shutdown num=-1 arg=a b"},
    {"stats\r\n", "stats"},
    {"stats settings\r\n", "stats arg=settings"},
    {"stats  cachedump 1 2\r\n", "stats arg=cachedump 1 2"},
    {"stats detail on\r\n", "stats arg=detail on"},
    /* unknown commands and empty lines */
    {"\r\n", "ERR ERROR"},
    {"\n", "ERR ERROR"},
    {"\r\r\n", "ERR ERROR"},
    {"foo\r\n", "ERR ERROR"},
    {"   \r\n", "ERR ERROR"},
    {"getx k\r\n", "ERR ERROR"},
    {"slabs reassign 1 2\r\n", "ERR ERROR"},
    /* the binary protocol: refused, connection closed */
    {"\x80\x01\x00\x00", "ERR CLIENT_ERROR binary protocol is not supported close"},
    {"version\r\n\x80", "version | ERR CLIENT_ERROR binary protocol is not supported close"},
};

KT_TEST(misc_commands) { MC_CHECK_TABLE(misc); }
