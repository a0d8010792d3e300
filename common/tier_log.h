/*
 * tier_log.h -- leveled, timestamped log lines on stderr.
 *
 *   2026-11-23T09:31:16.123Z INFO  tierd: listening on tcp://127.0.0.1:7400
 *
 * One line per call, written with a single write(2) so lines from several
 * threads never interleave.  The level threshold comes from tier_log_init()
 * or the TIER_LOG environment variable (debug, info, warn, error).
 */
#ifndef TIER_LOG_H
#define TIER_LOG_H

typedef enum {
    TIER_LOG_DEBUG = 0,
    TIER_LOG_INFO = 1,
    TIER_LOG_WARN = 2,
    TIER_LOG_ERROR = 3,
} tier_log_level;

/* name: the program name put on every line.  Reads TIER_LOG if set. */
void tier_log_init(const char *name, tier_log_level level);

void tier_log(tier_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define tier_debug(...) tier_log(TIER_LOG_DEBUG, __VA_ARGS__)
#define tier_info(...) tier_log(TIER_LOG_INFO, __VA_ARGS__)
#define tier_warn(...) tier_log(TIER_LOG_WARN, __VA_ARGS__)
#define tier_error(...) tier_log(TIER_LOG_ERROR, __VA_ARGS__)

#endif
