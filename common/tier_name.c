/*
 * tier_name.c -- see tier_name.h.
 */
#include "tier_name.h"

#include <string.h>

bool tier_name_valid(const char *name, size_t len)
{
    if (name == NULL || len == 0 || len > TIER_NAME_MAX)
        return false;
    if (memchr(name, '/', len) != NULL || memchr(name, '\0', len) != NULL)
        return false;
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return false;
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
