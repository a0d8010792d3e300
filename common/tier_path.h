/*
 * tier_path.h -- level directories: the canonical form of a path and the
 * checks SetLevels makes before it creates anything.
 *
 * A level directory is where tierd and the workers create, rename and
 * delete files, so a path an operator (or anyone who reaches the port)
 * sends must not name a system directory, a file, or a directory another
 * level already uses under a different spelling ("/a/x/../b" is "/a/b").
 * Comparing canonical forms is the only way to see those.
 */
#ifndef TIER_PATH_H
#define TIER_PATH_H

#include <stdbool.h>
#include <stddef.h>

#define TIER_PATH_MAX 4096

/* Canonical absolute form of `in` into out (no trailing '/' except for
 * "/"): ".", ".." and repeated '/' resolved, the longest existing prefix
 * through realpath(3) (so symlinks count), the rest lexically (it does not
 * exist yet, so it holds no symlink).  Returns NULL when it is fine, else
 * why not: not absolute, not UTF-8, a control character, too long, an
 * existing prefix that is not a directory, or the path is a regular file. */
const char *tier_path_canon(const char *in, char *out, size_t outlen);

/* "/a/b" is under "/a" (strictly: not equal).  Both canonical. */
bool tier_path_under(const char *path, const char *dir);

/* NULL, or why a canonical path may never be a level: "/" itself, or in a
 * system directory (/etc, /proc, /sys, /dev, /boot, /usr, /bin, /sbin,
 * /lib*, /run, /var/lib, ...). */
const char *tier_path_forbidden(const char *canon);

#endif
