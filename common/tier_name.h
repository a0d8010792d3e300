/*
 * tier_name.h -- the one check that a file name is a plain name.
 *
 * Invariant enforced here and relied on by every path join in the project:
 * a filename that passed tier_name_valid() can be appended to a level
 * directory with "/" and never leaves it.
 */
#ifndef TIER_NAME_H
#define TIER_NAME_H

#include <stdbool.h>
#include <stddef.h>

#define TIER_NAME_MAX 255

/* len is the byte length as received (a protobuf string may hold NULs).
 * Valid: 1..255 bytes, no '/', no NUL, not "." or "..". */
bool tier_name_valid(const char *name, size_t len);

/* Level names: 1..32 bytes of [A-Za-z0-9_-]. */
bool tier_level_name_valid(const char *name, size_t len);

#endif
