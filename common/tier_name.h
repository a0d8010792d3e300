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
 * Valid: 1..255 bytes of UTF-8, no '/', no control character (NUL, newline,
 * ..., DEL: they break logs, tierctl's output and shells), not "." or "..". */
bool tier_name_valid(const char *name, size_t len);

/* Well-formed UTF-8: no overlong forms, no surrogates, <= U+10FFFF. */
bool tier_utf8_valid(const char *s, size_t len);
/* Length of the well-formed UTF-8 sequence at s (1..4), 0 when the bytes
 * there do not start one (len > 0). */
size_t tier_utf8_seq(const char *s, size_t len);

/* A control character (0x00..0x1f or 0x7f) among s[0..len). */
bool tier_has_control(const char *s, size_t len);

/* Level names: 1..32 bytes of [A-Za-z0-9_-]. */
bool tier_level_name_valid(const char *name, size_t len);

#endif
