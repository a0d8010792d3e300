/*
 * fuzz_path.c -- libFuzzer target: the level-directory checks SetLevels
 * makes before it creates anything (common/tier_path.h).  Properties: a
 * path tier_path_canon accepts comes out absolute, without "//", "/./" or
 * "/../" and without a trailing '/' (but for "/"); canonicalising it again
 * gives the same string; and tier_path_forbidden / tier_path_under never
 * crash on it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tier_path.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size + 1), a[TIER_PATH_MAX], b[TIER_PATH_MAX];

    if (in == NULL)
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';
    if (tier_path_canon(in, a, sizeof(a)) == NULL) {
        size_t n = strlen(a);
        if (a[0] != '/' || strstr(a, "//") || strstr(a, "/./") || strstr(a, "/../") ||
            (n > 1 && a[n - 1] == '/'))
            abort(); /* not canonical */
        if (tier_path_canon(a, b, sizeof(b)) != NULL || strcmp(a, b) != 0)
            abort(); /* canonicalising twice must change nothing */
        tier_path_forbidden(a);
        tier_path_under(a, "/srv/tier");
    }
    free(in);
    return 0;
}
