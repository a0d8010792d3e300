/*
 * tier_name.c -- see tier_name.h.
 */
#include "tier_name.h"

#include <string.h>

bool tier_name_valid(const char *name, size_t len)
{
    if (name == NULL || len == 0 || len > TIER_NAME_MAX)
        return false;
    if (memchr(name, '/', len) != NULL || tier_has_control(name, len) ||
        !tier_utf8_valid(name, len))
        return false;
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return false;
    return true;
}

bool tier_has_control(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return true;
    return false;
}

/* Length of the sequence led by b, and the range its second byte must be
 * in (RFC 3629's table), or 0 when b cannot lead. */
static size_t utf8_lead(unsigned char b, unsigned char *lo, unsigned char *hi)
{
    *lo = 0x80;
    *hi = 0xbf;
    if (b < 0x80)
        return 1;
    if (b >= 0xc2 && b <= 0xdf)
        return 2;
    if (b >= 0xe0 && b <= 0xef) {
        *lo = b == 0xe0 ? 0xa0 : 0x80; /* no overlong */
        *hi = b == 0xed ? 0x9f : 0xbf; /* no surrogates */
        return 3;
    }
    if (b >= 0xf0 && b <= 0xf4) {
        *lo = b == 0xf0 ? 0x90 : 0x80;
        *hi = b == 0xf4 ? 0x8f : 0xbf; /* <= U+10FFFF */
        return 4;
    }
    return 0;
}

size_t tier_utf8_seq(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned char lo, hi;
    size_t n = utf8_lead(p[0], &lo, &hi);

    if (n == 0 || n > len)
        return 0;
    for (size_t k = 1; k < n; k++)
        if (p[k] < (k == 1 ? lo : 0x80) || p[k] > (k == 1 ? hi : 0xbf))
            return 0;
    return n;
}

bool tier_utf8_valid(const char *s, size_t len)
{
    size_t i = 0, n;

    while (i < len) {
        if ((n = tier_utf8_seq(s + i, len - i)) == 0)
            return false;
        i += n;
    }
    return true;
}

bool tier_level_name_valid(const char *name, size_t len)
{
    if (name == NULL || len == 0 || len > 32)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}
