/* kt.c: the harness behind kt.h; see there. */
#include "kt.h"

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define KT_MAX_CASES 512

struct kt_case {
    const char *name;
    kt_fn fn;
    const char *death_text;
};

static struct kt_case cases[KT_MAX_CASES];
static int case_count;
static int current_failed;
static int current_skipped;
static char tmpdir_path[256];

void kt_register(const char *name, kt_fn fn, const char *death_text)
{
    if (case_count == KT_MAX_CASES) {
        fprintf(stderr, "kt: too many cases\n");
        exit(2);
    }
    cases[case_count++] = (struct kt_case){name, fn, death_text};
}

void kt_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "  %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    current_failed = 1;
}

int kt_failed(void) { return current_failed; }

void kt_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "  skipped: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    current_skipped = 1;
}

static void remove_tmpdir(void)
{
    if (tmpdir_path[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir_path);
        if (system(cmd) != 0)
            fprintf(stderr, "kt: could not remove %s\n", tmpdir_path);
        tmpdir_path[0] = '\0';
    }
}

const char *kt_tmpdir(void)
{
    if (!tmpdir_path[0]) {
        snprintf(tmpdir_path, sizeof tmpdir_path, "/tmp/kt.XXXXXX");
        if (!mkdtemp(tmpdir_path)) {
            perror("kt: mkdtemp");
            exit(2);
        }
    }
    return tmpdir_path;
}

void kt_capture_stderr(void (*fn)(void), char *out, size_t cap)
{
    char path[300];
    snprintf(path, sizeof path, "%s/stderr.txt", kt_tmpdir());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        perror("kt: capture");
        exit(2);
    }
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    fn();
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    ssize_t n = pread(fd, out, cap - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
}

/* A death case's child that called KT_SKIP exits with this. */
#define KT_SKIP_EXIT 77

/* Run a death case in a child; it passes when the child dies (of a signal,
 * or exits non-zero as sanitizers do) having written `text` to stderr. */
static void run_death(const struct kt_case *c)
{
    int pipefd[2];
    if (pipe(pipefd) != 0) {
        kt_fail(__FILE__, __LINE__, "pipe failed");
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        kt_fail(__FILE__, __LINE__, "fork failed");
        return;
    }
    if (pid == 0) {
        close(pipefd[0]);
        dup2(pipefd[1], STDERR_FILENO);
        c->fn();
        fflush(NULL);
        _exit(current_skipped ? KT_SKIP_EXIT : 0); /* surviving is the failure */
    }
    close(pipefd[1]);
    static char out[65536];
    size_t len = 0;
    ssize_t n;
    while ((n = read(pipefd[0], out + len, sizeof out - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(pipefd[0]);
    int status;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == KT_SKIP_EXIT) {
        current_skipped = 1; /* the child called KT_SKIP before it could die */
        fputs(out, stderr);
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        kt_fail(__FILE__, __LINE__, "expected death, child exited normally");
    } else if (strstr(out, c->death_text) == NULL) {
        kt_fail(__FILE__, __LINE__, "child died (status %#x) without \"%s\"", status,
                c->death_text);
    }
    if (current_failed)
        fprintf(stderr, "  child stderr:\n%s\n", out);
}

static int selected(const struct kt_case *c, int argc, char **argv)
{
    if (argc < 2)
        return 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], c->name) == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    /* keel's logging goes to stderr in tests unless a test opens its own log */
    setenv("KEEL_LOG", "-", 0);
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < case_count; i++) {
        const struct kt_case *c = &cases[i];
        if (!selected(c, argc, argv))
            continue;
        current_failed = 0;
        current_skipped = 0;
        if (c->death_text)
            run_death(c);
        else
            c->fn();
        remove_tmpdir();
        const char *verdict = current_failed ? "FAIL" : current_skipped ? "SKIP" : "PASS";
        printf("%s %s\n", verdict, c->name);
        fflush(stdout);
        if (current_failed)
            failed++;
        else if (current_skipped)
            skipped++;
        else
            passed++;
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : (passed ? 0 : 1);
}
