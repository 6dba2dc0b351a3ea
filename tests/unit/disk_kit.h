/* disk_kit.h: what the disk engine's tests share: removing a test's data
 * directory (its files, then the directory; no subdirectories are made),
 * and finding a directory whose file system takes O_DIRECT (tmpfs does not).
 */
#ifndef KEEL_TESTS_DISK_KIT_H
#define KEEL_TESTS_DISK_KIT_H

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Remove the files in `dir`, then `dir` itself; a missing one is fine. */
static inline void dk_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* Does the file system of `dir` take an aligned O_DIRECT write? */
static inline bool dk_direct_ok(const char *dir)
{
    char p[512];
    snprintf(p, sizeof p, "%s/.keel-direct-probe-%d", dir, (int)getpid());
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    void *b = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    bool ok = b != MAP_FAILED && pwrite(fd, b, 4096, 0) == 4096;
    if (b != MAP_FAILED)
        munmap(b, 4096);
    close(fd);
    unlink(p);
    return ok;
}

/* A fresh directory for --direct tests named like `name`-XXXXXX in
 * $TMPDIR, /tmp or the working directory (the build dir), the first whose
 * file system takes O_DIRECT; false (out untouched) if none does. */
static inline bool dk_direct_dir(const char *name, char *out, size_t cap)
{
    const char *bases[] = {getenv("TMPDIR"), "/tmp", "."};
    for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
        if (bases[i] == NULL || !dk_direct_ok(bases[i]))
            continue;
        snprintf(out, cap, "%s/%s-XXXXXX", bases[i], name);
        if (mkdtemp(out) != NULL)
            return true;
    }
    return false;
}

#endif
