/*
 * tier_log.c -- see tier_log.h.
 */
#include "tier_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static tier_log_level threshold = TIER_LOG_INFO;
static char progname[32] = "tier";

void tier_log_init(const char *name, tier_log_level level)
{
    const char *env = getenv("TIER_LOG");

    snprintf(progname, sizeof(progname), "%s", name);
    threshold = level;
    if (env == NULL)
        return;
    if (strcasecmp(env, "debug") == 0)
        threshold = TIER_LOG_DEBUG;
    else if (strcasecmp(env, "info") == 0)
        threshold = TIER_LOG_INFO;
    else if (strcasecmp(env, "warn") == 0)
        threshold = TIER_LOG_WARN;
    else if (strcasecmp(env, "error") == 0)
        threshold = TIER_LOG_ERROR;
}

void tier_log(tier_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    char line[2048];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n;

    if (level < threshold)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof(line),
                 "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[level],
                 progname);
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0)
        return; /* nowhere left to report it */
}
