/* privileges.c: descriptor limit and dropping root (see privileges.h). The
 * order matters: groups first, then the group id, then the user id, after
 * which the process cannot take root back. */
#define _GNU_SOURCE
#include "privileges.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

int keeld_raise_fd_limit(uint32_t max_conns, uint32_t reserve, char *err, size_t err_len)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)max_conns + reserve;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        snprintf(err, err_len, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
        return -1;
    }
    if (rl.rlim_cur >= want)
        return 0;
    struct rlimit raised = {.rlim_cur = want, .rlim_max = rl.rlim_max < want ? want : rl.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
        return 0;
    if (rl.rlim_max >= want) { /* not root: the soft limit can still go up */
        raised.rlim_max = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            return 0;
    }
    snprintf(err, err_len,
             "-c %u needs %llu descriptors but the limit is %llu (hard %llu): lower -c or raise "
             "the limit (ulimit -n)",
             max_conns, (unsigned long long)want, (unsigned long long)rl.rlim_cur,
             (unsigned long long)rl.rlim_max);
    return -1;
}

int keeld_become_user(const char *user, char *err, size_t err_len)
{
    if (user == NULL || user[0] == '\0')
        return 0;
    if (geteuid() != 0)
        return 0; /* as memcached: -u matters only to root (unit files pass it anyway) */
    errno = 0;
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        snprintf(err, err_len, "-u %s: no such user", user);
        return -1;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0) {
        snprintf(err, err_len, "-u %s: cannot become that user: %s", user, strerror(errno));
        return -1;
    }
    return 0;
}
