/*
 * fuzz_time.c -- libFuzzer target: tierctl's time arguments
 * (client/tierctl_parse.c), the one parser in tierctl that does arithmetic
 * on what a user types.  UBSan turns any overflow into a crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tierctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    int64_t out;

    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    /* "now" at both ends of the range the arithmetic must survive. */
    tierctl_parse_time(s, 1764500000000LL, &out);
    tierctl_parse_time(s, INT64_MAX, &out);
    tierctl_parse_time(s, INT64_MIN + 1, &out);
    free(s);
    return 0;
}
