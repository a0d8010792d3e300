/*
 * fuzz_name.c -- libFuzzer target: the file-name check (common/tier_name.h)
 * every content name passes through.  Properties checked beyond "no crash":
 * an accepted name has no '/', no NUL, is not "." or "..", and is at most
 * 255 bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tier_name.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;

    if (!tier_name_valid(s, size))
        return 0;
    if (size == 0 || size > 255 || memchr(s, '/', size) != NULL || memchr(s, '\0', size) != NULL ||
        (size == 1 && s[0] == '.') || (size == 2 && s[0] == '.' && s[1] == '.'))
        abort(); /* accepted a name it must refuse */
    return 0;
}
