/* methods.c: the ways of appending compared by bench/mmlog. Each runs in a
 * child process, appends `count` records, and times its own loop. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "bench_mmlog.h"
#include "keel/mmlog.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* ---- keel mmlog ---- */

static int run_mmlog(const char *path, uint32_t id, size_t size, uint32_t count, double *us)
{
    struct kl_mmlog_options opt = {.flags = KL_MMLOG_CREATE};
    struct kl_mmlog *log;
    if (kl_mmlog_open(path, &opt, &log) != 0)
        return 10;
    static unsigned char buf[8192];
    record_template(buf, size, id);
    double t0 = now_us();
    for (uint32_t i = 0; i < count; i++) {
        record_stamp(buf, size, id, i);
        if (kl_mmlog_append(log, 1, buf, size) != 0)
            return 11;
    }
    *us = (now_us() - t0) / count;
    kl_mmlog_close(log);
    return 0;
}

static int verify_mmlog(const char *path, size_t size, uint32_t count, uint64_t *intact,
                        uint64_t *corrupt)
{
    struct kl_mmlog_options opt = {.flags = KL_MMLOG_READONLY};
    struct kl_mmlog *log;
    *intact = *corrupt = 0;
    if (kl_mmlog_open(path, &opt, &log) != 0)
        return -1;
    struct kl_mmlog_reader *r;
    kl_mmlog_reader_open(log, 0, &r);
    struct seen seen;
    seen_init(&seen, count);
    struct kl_mmlog_record rec;
    int rc;
    while ((rc = kl_mmlog_next(r, &rec)) == 1) {
        uint32_t id, seq;
        if (rec.len != size || record_check(rec.data, size, &id, &seq) != 0 ||
            seen_add(&seen, size, id, seq) != 0)
            (*corrupt)++;
    }
    if (rc < 0 || kl_mmlog_reader_offset(r) != kl_mmlog_end(log))
        (*corrupt)++; /* the walk did not reach the end */
    *intact = seen_total(&seen, size);
    seen_free(&seen);
    kl_mmlog_reader_close(r);
    kl_mmlog_close(log);
    return 0;
}

static int verify_stream(const char *path, size_t size, uint32_t count, uint64_t *intact,
                         uint64_t *corrupt)
{
    return verify_slots(path, size, size, count, intact, corrupt);
}

static int verify_direct(const char *path, size_t size, uint32_t count, uint64_t *intact,
                         uint64_t *corrupt)
{
    return verify_slots(path, size, DIRECT_BLOCK, count, intact, corrupt);
}

/* ---- write(2) and writev(2) with O_APPEND ---- */

static int open_append(const char *path, int extra)
{
    return open(path, O_WRONLY | O_CREAT | O_APPEND | extra, 0644);
}

static int run_write(const char *path, uint32_t id, size_t size, uint32_t count, double *us)
{
    int fd = open_append(path, 0);
    if (fd < 0)
        return 10;
    static unsigned char buf[8192];
    record_template(buf, size, id);
    double t0 = now_us();
    for (uint32_t i = 0; i < count; i++) {
        record_stamp(buf, size, id, i);
        if (write(fd, buf, size) != (ssize_t)size)
            return 11;
    }
    *us = (now_us() - t0) / count;
    close(fd);
    return 0;
}

static int run_writev(const char *path, uint32_t id, size_t size, uint32_t count, double *us)
{
    int fd = open_append(path, 0);
    if (fd < 0)
        return 10;
    /* a record as two pieces, as a logger writes a header and a message */
    static unsigned char buf[8192];
    record_template(buf, size, id);
    size_t head = size > 1 ? size / 2 : size;
    struct iovec iov[2] = {{buf, head}, {buf + head, size - head}};
    double t0 = now_us();
    for (uint32_t i = 0; i < count; i++) {
        record_stamp(buf, size, id, i);
        if (writev(fd, iov, size > 1 ? 2 : 1) != (ssize_t)size)
            return 11;
    }
    *us = (now_us() - t0) / count;
    close(fd);
    return 0;
}

/* ---- stdio streams: a buffer of whole records, flushed with O_APPEND ---- */

static int run_fwrite(const char *path, uint32_t id, size_t size, uint32_t count, double *us)
{
    int fd = open_append(path, 0);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "a");
    if (!f)
        return 10;
    size_t per_buffer = 65536 / size; /* whole records, so flushes never split one */
    static char stream_buf[65536];
    setvbuf(f, stream_buf, _IOFBF, per_buffer * size);
    static unsigned char buf[8192];
    record_template(buf, size, id);
    double t0 = now_us();
    for (uint32_t i = 0; i < count; i++) {
        record_stamp(buf, size, id, i);
        if (fwrite(buf, size, 1, f) != 1)
            return 11;
    }
    if (fflush(f) != 0)
        return 12;
    *us = (now_us() - t0) / count;
    fclose(f);
    return 0;
}

/* ---- O_DIRECT: one aligned block per record ---- */

static int run_direct(const char *path, uint32_t id, size_t size, uint32_t count, double *us)
{
    int fd = open_append(path, O_DIRECT);
    if (fd < 0)
        return 10;
    void *block;
    if (posix_memalign(&block, DIRECT_BLOCK, DIRECT_BLOCK) != 0)
        return 13;
    memset(block, 0, DIRECT_BLOCK);
    record_template(block, size, id);
    double t0 = now_us();
    for (uint32_t i = 0; i < count; i++) {
        record_stamp(block, size, id, i);
        if (write(fd, block, DIRECT_BLOCK) != DIRECT_BLOCK)
            return 11;
    }
    *us = (now_us() - t0) / count;
    close(fd);
    free(block);
    return 0;
}

/* ---- Linux AIO (libaio), buffered, O_APPEND ---- */

static int run_aio(const char *path, uint32_t id, size_t size, uint32_t count, double *us)
{
    int fd = open_append(path, 0);
    io_context_t ctx = 0;
    if (fd < 0 || io_setup(1, &ctx) != 0)
        return 10;
    static unsigned char buf[8192];
    record_template(buf, size, id);
    struct iocb cb, *cbs[1] = {&cb};
    struct io_event ev;
    double t0 = now_us();
    for (uint32_t i = 0; i < count; i++) {
        record_stamp(buf, size, id, i);
        io_prep_pwrite(&cb, fd, buf, size, 0); /* O_APPEND: the kernel appends */
        if (io_submit(ctx, 1, cbs) != 1 || io_getevents(ctx, 1, 1, &ev, NULL) != 1 ||
            ev.res != size)
            return 11;
    }
    *us = (now_us() - t0) / count;
    io_destroy(ctx);
    close(fd);
    return 0;
}

/* ---- io_uring, one write per submission, O_APPEND ---- */

static int run_uring(const char *path, uint32_t id, size_t size, uint32_t count, double *us)
{
    int fd = open_append(path, 0);
    struct io_uring ring;
    if (fd < 0 || io_uring_queue_init(8, &ring, 0) != 0)
        return 10;
    static unsigned char buf[8192];
    record_template(buf, size, id);
    double t0 = now_us();
    for (uint32_t i = 0; i < count; i++) {
        record_stamp(buf, size, id, i);
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        io_uring_prep_write(sqe, fd, buf, (unsigned)size, (uint64_t)-1);
        struct io_uring_cqe *cqe;
        if (io_uring_submit_and_wait(&ring, 1) != 1 || io_uring_wait_cqe(&ring, &cqe) != 0 ||
            cqe->res != (int)size)
            return 11;
        io_uring_cqe_seen(&ring, cqe);
    }
    *us = (now_us() - t0) / count;
    io_uring_queue_exit(&ring);
    close(fd);
    return 0;
}

const struct method bench_methods[] = {
    {"keel mmlog", "mmlog", run_mmlog, verify_mmlog},
    {"write + O_APPEND", "write", run_write, verify_stream},
    {"writev + O_APPEND", "writev", run_writev, verify_stream},
    {"FILE streams (fwrite)", "fwrite", run_fwrite, verify_stream},
    {"O_DIRECT", "direct", run_direct, verify_direct},
    {"Linux AIO (libaio)", "aio", run_aio, verify_stream},
    {"io_uring", "uring", run_uring, verify_stream},
};
const size_t bench_method_count = sizeof bench_methods / sizeof bench_methods[0];
