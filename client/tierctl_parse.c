/*
 * tierctl_parse.c -- the numbers tierctl accepts: integers (cids, counts,
 * fences), level table entries (NAME:MIN:MAX:PATH) and the times (`top
 * --from/--to`): a UTC date "2026-11-23 10:03" (or "2026-11-23T10:03"), ms since the epoch,
 * "now", or relative to now: "-60m", "-2h", "-1d".  Windows are whole
 * minutes, so "now" means the end of the current minute.
 *
 * Its own file, free of I/O and of tierctl's globals, so the fuzzer
 * (fuzz/fuzz_time.c) drives exactly the code tierctl runs.  Every input is
 * a user's: all arithmetic is overflow-checked, and anything that does not
 * fit in int64 milliseconds is refused, never wrapped.
 */
#include "tierctl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

bool tierctl_int(const char *s, int64_t *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return false;
    *out = v;
    return true;
}

static bool parse_relative(const char *s, int64_t now, int64_t *out)
{
    char *end;
    long long v;
    int64_t unit, back;

    errno = 0;
    v = strtoll(s + 1, &end, 10);
    if (errno != 0 || end == s + 1 || v < 0 || end[0] == '\0' || end[1] != '\0')
        return false;
    switch (*end) {
    case 'm':
        unit = 60000;
        break;
    case 'h':
        unit = 3600000;
        break;
    case 'd':
        unit = 86400000;
        break;
    default:
        return false;
    }
    if (__builtin_mul_overflow((int64_t)v, unit, &back) || __builtin_sub_overflow(now, back, out))
        return false;
    return true;
}

static bool parse_date(const char *s, int64_t *out)
{
    int y, mo, d, h, mi, n = 0;
    struct tm tm = {0};
    time_t t;

    if ((sscanf(s, "%d-%d-%d %d:%d%n", &y, &mo, &d, &h, &mi, &n) != 5 &&
         sscanf(s, "%d-%d-%dT%d:%d%n", &y, &mo, &d, &h, &mi, &n) != 5) ||
        s[n] != '\0')
        return false;
    /* A calendar, not arithmetic: out-of-range fields are refused rather
     * than normalised by timegm (and y - 1900 cannot overflow). */
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 ||
        mi > 59)
        return false;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    if ((t = timegm(&tm)) == (time_t)-1 || tm.tm_mday != d)
        return false; /* e.g. February 30th */
    *out = (int64_t)t * 1000;
    return true;
}

bool tierctl_parse_time(const char *s, int64_t now_minute_end, int64_t *out)
{
    if (strcmp(s, "now") == 0) {
        *out = now_minute_end;
        return true;
    }
    if (s[0] == '-')
        return parse_relative(s, now_minute_end, out);
    return parse_date(s, out) || tierctl_int(s, out);
}

bool tierctl_level(char *s, Tier__Level *l)
{
    char *a = strchr(s, ':'), *b = a ? strchr(a + 1, ':') : NULL,
         *c = b ? strchr(b + 1, ':') : NULL;
    if (c == NULL)
        return false;
    *a = *b = *c = '\0';
    l->name = s;
    l->path = c + 1;
    return tierctl_int(a + 1, &l->min_counts) && tierctl_int(b + 1, &l->max_counts);
}
