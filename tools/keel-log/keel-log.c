/* keel-log: read, write, follow, check and repair an mmlog.
 *
 *   keel-log write PATH             append each line of stdin as one record
 *   keel-log cat [--json] PATH      print committed records
 *   keel-log tail [-n N] [-f] [--json] PATH
 *   keel-log check PATH             verify; exit 1 when damaged or abandoned
 *   keel-log recover PATH           pad abandoned claims, free dead holders
 *   keel-log stat PATH              print the metadata
 *   keel-log trim PATH              drop the preallocated tail
 *
 * Log records (from KL_INFO and friends) print as text lines, plain records
 * as their text, anything else as a summary. Exit status: 0 success, 1 a
 * failure or a damaged log, 2 bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keel/log.h"
#include "keel/mmlog.h"

static const char *usage_text =
    "usage: keel-log COMMAND [OPTIONS] PATH\n"
    "\n"
    "Read, write, follow, check and repair a keel mmlog (files PATH and PATH.meta).\n"
    "\n"
    "commands:\n"
    "  write PATH                append each line of standard input as one record\n"
    "                            (creates the log if needed)\n"
    "  cat [--json] PATH         print every committed record\n"
    "  tail [-n N] [-f] [--json] PATH\n"
    "                            print the last N records (default 10); -f keeps\n"
    "                            printing new records as they are committed\n"
    "  check PATH                verify the whole log and print counts of records,\n"
    "                            padding and unfinished claims; exit 1 if the log is\n"
    "                            damaged or holds claims abandoned by dead writers\n"
    "  recover PATH              turn abandoned claims into padding and release\n"
    "                            locks and slots held by dead processes\n"
    "  stat PATH                 print the log's metadata\n"
    "  trim PATH                 drop the preallocated space past the last record\n"
    "                            (refused while another process has the log open)\n"
    "\n"
    "options:\n"
    "  --json                    one JSON object per record\n"
    "  -n, --lines N             with tail: how many records\n"
    "  -f, --follow              with tail: follow the log\n"
    "  -h, --help                this help\n"
    "\n"
    "exit status: 0 success, 1 failure or damaged log, 2 bad usage\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "keel-log: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'keel-log --help'.\n");
    return 2;
}

static int fail(const char *path, int err)
{
    fprintf(stderr, "keel-log: %s: %s\n", path, strerror(-err));
    return 1;
}

static int open_log(const char *path, unsigned flags, struct kl_mmlog **log)
{
    struct kl_mmlog_options opt = {.flags = flags};
    int rc = kl_mmlog_open(path, &opt, log);
    if (rc == -EPROTO)
        fprintf(stderr, "keel-log: %s: not a keel log (or another version)\n", path);
    else if (rc != 0)
        fail(path, rc);
    return rc;
}

/* ---- printing records ---- */

static void json_string(FILE *out, const char *s, size_t len)
{
    fputc('"', out);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c == '\t')
            fputs("\\t", out);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void print_record(const struct kl_mmlog_record *rec, bool json)
{
    static char text[1 << 16];
    struct kl_log_entry e;
    bool is_log = rec->type == KL_LOG_TYPE_RECORD && kl_log_decode(rec->data, rec->len, &e) == 0;
    if (!json) {
        if (is_log) {
            size_t n = kl_log_format_line(&e, text, sizeof text);
            fwrite(text, 1, n < sizeof text ? n : sizeof text - 1, stdout);
        } else if (rec->type == KL_LOG_TYPE_TEXT) {
            fwrite(rec->data, 1, rec->len, stdout);
        } else {
            printf("<record type %u, %u bytes at offset %" PRIu64 ">", rec->type, rec->len,
                   rec->offset);
        }
        fputc('\n', stdout);
        return;
    }
    printf("{\"offset\":%" PRIu64 ",\"type\":%u", rec->offset, rec->type);
    if (is_log) {
        char when[64];
        kl_log_format_time(e.time_ns, when, sizeof when);
        size_t n = kl_log_format_message(&e, text, sizeof text);
        printf(",\"time\":\"%s\",\"time_ns\":%" PRIu64 ",\"level\":\"%s\",\"pid\":%d,\"tid\":%d,"
               "\"fiber\":%" PRIu64 ",\"file\":",
               when, e.time_ns, kl_log_level_name(e.level), e.pid, e.tid, e.fiber);
        json_string(stdout, e.file, e.file_len);
        printf(",\"line\":%u,\"message\":", e.line);
        json_string(stdout, text, n < sizeof text ? n : sizeof text - 1);
    } else {
        printf(",\"len\":%u,\"text\":", rec->len);
        json_string(stdout, rec->data, rec->len);
    }
    printf("}\n");
}

/* Print records from `offset` to the current end; 0, or 1 on damage. */
static int print_from(const char *path, struct kl_mmlog *log, struct kl_mmlog_reader *r, bool json)
{
    struct kl_mmlog_record rec;
    int rc;
    while ((rc = kl_mmlog_next(r, &rec)) == 1)
        print_record(&rec, json);
    if (rc < 0) {
        fflush(stdout);
        fprintf(stderr, "keel-log: %s: damaged at offset %" PRIu64 " (%s); see keel-log check\n",
                path, kl_mmlog_reader_offset(r), strerror(-rc));
        return 1;
    }
    if (kl_mmlog_reader_offset(r) < kl_mmlog_end(log))
        fprintf(stderr, "keel-log: %s: stopped at an unfinished record at offset %" PRIu64 "\n",
                path, kl_mmlog_reader_offset(r));
    return 0;
}

/* ---- commands ---- */

static int cmd_write(const char *path)
{
    struct kl_mmlog *log;
    if (open_log(path, KL_MMLOG_CREATE, &log) != 0)
        return 1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int status = 0;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        if (n > 0 && line[n - 1] == '\n')
            n--;
        int rc = kl_mmlog_append(log, KL_LOG_TYPE_TEXT, line, (size_t)n);
        if (rc != 0) {
            status = fail(path, rc);
            break;
        }
    }
    free(line);
    kl_mmlog_close(log);
    return status;
}

static int cmd_cat(const char *path, bool json)
{
    struct kl_mmlog *log;
    if (open_log(path, KL_MMLOG_READONLY, &log) != 0)
        return 1;
    struct kl_mmlog_reader *r;
    kl_mmlog_reader_open(log, 0, &r);
    int status = print_from(path, log, r, json);
    kl_mmlog_reader_close(r);
    kl_mmlog_close(log);
    return status;
}

static volatile sig_atomic_t stop_following;
static void on_stop(int sig) { (void)sig, stop_following = 1; }

static int cmd_tail(const char *path, long lines, bool follow, bool json)
{
    struct kl_mmlog *log;
    /* Following needs write access to recover a claim left by a dead writer;
     * fall back to read-only when that is all we have. */
    if (!follow || open_log(path, KL_MMLOG_NO_RECOVER, &log) != 0)
        if (open_log(path, KL_MMLOG_READONLY, &log) != 0)
            return 1;
    /* Find the offset of the Nth last record: one pass, a ring of offsets. */
    uint64_t *ring = calloc((size_t)lines + 1, sizeof *ring);
    struct kl_mmlog_reader *r;
    kl_mmlog_reader_open(log, 0, &r);
    struct kl_mmlog_record rec;
    uint64_t seen = 0;
    while (lines > 0 && kl_mmlog_next(r, &rec) == 1)
        ring[seen++ % (uint64_t)lines] = rec.offset;
    uint64_t start = lines == 0 ? kl_mmlog_end(log) : kl_mmlog_reader_offset(r);
    if (lines > 0 && seen > 0)
        start = seen < (uint64_t)lines ? ring[0] : ring[seen % (uint64_t)lines];
    free(ring);
    kl_mmlog_reader_close(r);
    kl_mmlog_reader_open(log, start, &r);
    int status = print_from(path, log, r, json);
    if (follow && status == 0) {
        struct sigaction sa = {.sa_handler = on_stop};
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        while (!stop_following) {
            fflush(stdout);
            kl_mmlog_wait(r, 200);
            int rc;
            while ((rc = kl_mmlog_next(r, &rec)) == 1)
                print_record(&rec, json);
            if (rc < 0) {
                status = print_from(path, log, r, json);
                break;
            }
        }
    }
    kl_mmlog_reader_close(r);
    kl_mmlog_close(log);
    return status;
}

static void print_stats(const struct kl_mmlog_stats *st)
{
    printf("records     %" PRIu64 " (%" PRIu64 " payload bytes)\n", st->records, st->record_bytes);
    printf("padding     %" PRIu64 " (%" PRIu64 " bytes)\n", st->padding, st->padding_bytes);
    printf("unfinished  %" PRIu64 " (abandoned by dead writers: %" PRIu64 ")\n", st->unfinished,
           st->abandoned);
    printf("damaged     %" PRIu64 "\n", st->damaged);
    printf("end         %" PRIu64 "\n", st->end);
}

static int cmd_check(const char *path)
{
    struct kl_mmlog *log;
    if (open_log(path, KL_MMLOG_READONLY, &log) != 0)
        return 1;
    struct kl_mmlog_stats st;
    kl_mmlog_check(log, &st);
    struct kl_mmlog_info info;
    kl_mmlog_info(log, &info);
    print_stats(&st);
    int status = 0;
    if (st.damaged) {
        printf("the log is damaged: %" PRIu64 " places cannot be parsed (keel-log recover "
               "pads over them)\n",
               st.damaged);
        status = 1;
    }
    if (st.abandoned) {
        printf("%" PRIu64 " claims were abandoned by writers that died: run keel-log recover\n",
               st.abandoned);
        status = 1;
    }
    if (info.panicked) {
        printf("the log is marked panicked\n");
        status = 1;
    }
    if (status == 0)
        printf("the log is clean\n");
    kl_mmlog_close(log);
    return status;
}

static int cmd_recover(const char *path)
{
    struct kl_mmlog *log;
    if (open_log(path, KL_MMLOG_NO_RECOVER, &log) != 0)
        return 1;
    struct kl_mmlog_stats st;
    int rc = kl_mmlog_recover(log, &st);
    if (rc != 0) {
        kl_mmlog_close(log);
        return fail(path, rc);
    }
    printf("padded %" PRIu64 " abandoned claims, released %" PRIu64 " dead locks and %" PRIu64
           " slots of dead processes\n",
           st.recovered, st.locks_released, st.slots_released);
    kl_mmlog_check(log, &st);
    kl_mmlog_close(log);
    if (st.damaged || st.abandoned) {
        printf("still not clean: %" PRIu64 " damaged, %" PRIu64 " abandoned\n", st.damaged,
               st.abandoned);
        return 1;
    }
    printf("the log is clean\n");
    return 0;
}

static int cmd_stat(const char *path)
{
    struct kl_mmlog *log;
    if (open_log(path, KL_MMLOG_READONLY, &log) != 0)
        return 1;
    struct kl_mmlog_info i;
    kl_mmlog_info(log, &i);
    char created[64];
    kl_log_format_time(i.created_ns, created, sizeof created);
    printf("path            %s\n", path);
    printf("version         %u\n", i.version);
    printf("state           %s%s%s\n", i.ready ? "ready" : "not ready",
           i.panicked ? ", panicked" : "", i.need_scan ? ", needs a recovery scan" : "");
    printf("created         %s\n", created);
    printf("page size       %u\n", i.page_size);
    printf("chunk size      %" PRIu64 "\n", i.chunk_size);
    printf("file size       %" PRIu64 "\n", i.file_size);
    printf("cursor          %" PRIu64 "\n", i.cursor);
    printf("recovered to    %" PRIu64 "\n", i.recovered_upto);
    printf("grown           %" PRIu64 " times\n", i.grow_count);
    printf("lock            %s", i.lock_owner ? "held by pid " : "free");
    if (i.lock_owner)
        printf("%d", i.lock_owner);
    printf("\nlock takeovers  %" PRIu64 "\n", i.lock_takeovers);
    printf("claims padded   %" PRIu64 "\n", i.recovered_claims);
    printf("open handles    %u (%u writing)\n", i.open_handles, i.writing);
    kl_mmlog_close(log);
    return 0;
}

static int cmd_trim(const char *path)
{
    struct kl_mmlog *log;
    if (open_log(path, 0, &log) != 0)
        return 1;
    struct kl_mmlog_info before, after;
    kl_mmlog_info(log, &before);
    int rc = kl_mmlog_trim(log);
    kl_mmlog_info(log, &after);
    kl_mmlog_close(log);
    if (rc == -EBUSY) {
        fprintf(stderr, "keel-log: %s: open in %u other handles; not trimmed\n", path,
                before.open_handles - 1);
        return 1;
    }
    if (rc != 0)
        return fail(path, rc);
    printf("file size %" PRIu64 " -> %" PRIu64 "\n", before.file_size, after.file_size);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGXFSZ, SIG_IGN); /* a file-size limit is an error (-EFBIG), not death */
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (argc < 2) {
        fputs(usage_text, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    bool json = false, follow = false;
    long lines = 10;
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                         {"follow", no_argument, NULL, 'f'},
                                         {"lines", required_argument, NULL, 'n'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "fn:h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = true; break;
        case 'f': follow = true; break;
        case 'n': {
            char *end;
            lines = strtol(optarg, &end, 10);
            if (*end != '\0' || lines < 0)
                return usage_error("invalid number of lines: '%s'", optarg);
            break;
        }
        case 'h': fputs(usage_text, stdout); return 0;
        default: return usage_error("%s", "bad option");
        }
    }
    if (optind != argc - 1)
        return usage_error("%s: expects one PATH", cmd);
    const char *path = argv[optind];
    bool tail = strcmp(cmd, "tail") == 0;
    if ((json && strcmp(cmd, "cat") != 0 && !tail) || ((follow || lines != 10) && !tail))
        return usage_error("%s: option not valid for this command", cmd);
    if (strcmp(cmd, "write") == 0)
        return cmd_write(path);
    if (strcmp(cmd, "cat") == 0)
        return cmd_cat(path, json);
    if (tail)
        return cmd_tail(path, lines, follow, json);
    if (strcmp(cmd, "check") == 0)
        return cmd_check(path);
    if (strcmp(cmd, "recover") == 0)
        return cmd_recover(path);
    if (strcmp(cmd, "stat") == 0)
        return cmd_stat(path);
    if (strcmp(cmd, "trim") == 0)
        return cmd_trim(path);
    return usage_error("unknown command '%s'", cmd);
}
