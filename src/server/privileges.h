/* privileges.h: what keeld does about running as root, as memcached does.
 *
 * `-u USER` makes the process that user (its groups too) once start-up work
 * that needs root is done (raising the descriptor limit for -c). Without -u
 * a root keeld warns and runs on; memcached refuses there, but keeld's users
 * start it by hand in containers and CI often enough that a warning serves
 * them better than a failure.
 */
#ifndef KEELD_PRIVILEGES_H
#define KEELD_PRIVILEGES_H

#include <stddef.h>
#include <stdint.h>

/* Raise RLIMIT_NOFILE so that `max_conns` connections plus `reserve`
 * descriptors fit (up to the hard limit, or beyond it as root). 0, or -1
 * with a one-line reason in `err` when the limit cannot be raised enough. */
int keeld_raise_fd_limit(uint32_t max_conns, uint32_t reserve, char *err, size_t err_len);

/* Become `user` (NULL or "", or not root: stay who we are, as memcached).
 * 0, or -1 with a one-line reason in `err` (no such user, a failed call). */
int keeld_become_user(const char *user, char *err, size_t err_len);

#endif
