/* disk_kit.h: what the disk engine's tests share: removing a test's data
 * directory (its files, then the directory; no subdirectories are made).
 */
#ifndef KEEL_TESTS_DISK_KIT_H
#define KEEL_TESTS_DISK_KIT_H

#include <dirent.h>
#include <stdio.h>
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

#endif
