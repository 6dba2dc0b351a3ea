/* test_keeld_privileges: -u and the descriptor limit for -c, in child
 * processes so that the test runner keeps its own identity and limits. */
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kt.h"
#include "privileges.h"

/* Run fn in a child; its exit status (0 = the child's checks held). */
static int in_child(int (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn());
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

static int become_nobody(void)
{
    char err[256];
    struct passwd *pw = getpwnam("nobody");
    if (keeld_become_user("nobody", err, sizeof err) != 0)
        return 1;
    if (getuid() != pw->pw_uid || geteuid() != pw->pw_uid || getgid() != pw->pw_gid)
        return 2;
    if (setuid(0) == 0) /* no way back */
        return 3;
    /* and a second change, no longer root, is ignored: still nobody */
    if (keeld_become_user("root", err, sizeof err) != 0 || getuid() != pw->pw_uid)
        return 4;
    return 0;
}

KT_TEST(become_user_drops_root_for_good)
{
    if (geteuid() != 0)
        KT_SKIP("not root (uid %d): cannot change user", (int)geteuid());
    if (getpwnam("nobody") == NULL)
        KT_SKIP("no user 'nobody' here");
    KT_CHECK(in_child(become_nobody) == 0);
}

KT_TEST(become_user_errors)
{
    char err[256];
    KT_CHECK(keeld_become_user(NULL, err, sizeof err) == 0);
    KT_CHECK(keeld_become_user("", err, sizeof err) == 0);
    if (geteuid() == 0) {
        KT_CHECK(keeld_become_user("no-such-user-keel", err, sizeof err) == -1);
        KT_CHECK(strstr(err, "no such user") != NULL);
    }
}

static int limit_rises(void)
{
    char err[256];
    struct rlimit low = {.rlim_cur = 256, .rlim_max = 4096};
    if (setrlimit(RLIMIT_NOFILE, &low) != 0)
        return 1;
    if (keeld_raise_fd_limit(1000, 64, err, sizeof err) != 0)
        return 2;
    struct rlimit now;
    getrlimit(RLIMIT_NOFILE, &now);
    if (now.rlim_cur < 1064)
        return 3;
    return 0;
}

static int limit_too_low(void)
{
    char err[256];
    struct rlimit low = {.rlim_cur = 256, .rlim_max = 512};
    if (setrlimit(RLIMIT_NOFILE, &low) != 0)
        return 1;
    if (geteuid() == 0 && keeld_become_user("nobody", err, sizeof err) != 0)
        return 2; /* as root the hard limit could be raised: test as a user */
    if (keeld_raise_fd_limit(1000, 64, err, sizeof err) != -1)
        return 3;
    return strstr(err, "lower -c") != NULL ? 0 : 4;
}

KT_TEST(fd_limit_raised_for_max_conns)
{
    KT_CHECK(in_child(limit_rises) == 0);
    if (geteuid() == 0 && getpwnam("nobody") == NULL)
        KT_SKIP("no user 'nobody' to test a hard limit as");
    KT_CHECK(in_child(limit_too_low) == 0);
}
