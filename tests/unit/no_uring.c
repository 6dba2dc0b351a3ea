/* no_uring: run a program as on a kernel without io_uring.
 *
 *   no_uring PROGRAM [ARG...]
 *
 * io_uring_setup(2) fails with ENOSYS in PROGRAM (a seccomp filter, kept
 * across exec), so tests can check that what cannot run there is reported
 * as skipped, never as passed. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kt.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: no_uring PROGRAM [ARG...]\n");
        return 2;
    }
    int rc = kt_refuse_syscall(__NR_io_uring_setup, ENOSYS);
    if (rc != 0) {
        fprintf(stderr, "no_uring: seccomp: %s\n", strerror(-rc));
        return 2;
    }
    execvp(argv[1], argv + 1);
    fprintf(stderr, "no_uring: %s: %s\n", argv[1], strerror(errno));
    return 2;
}
