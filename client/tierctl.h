/*
 * tierctl.h -- what tierctl's command files share: the parsed global
 * options, the command table, and output helpers.
 *
 * Each command file (tierctl_tiering.c, tierctl_ranking.c) exports a NULL-
 * terminated table of tierctl_cmd.  A command returns a status code; main
 * turns it into the exit code (0, or 64 + code) and prints the error.
 */
#ifndef TIERCTL_H
#define TIERCTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tier_client.h"

typedef struct {
    tier_client *client;
    bool json;
    tier_error err; /* filled by the failing call */
} tierctl;

typedef struct {
    const char *name;                              /* "views", "comment", ... */
    const char *usage;                             /* "views CID COUNT" */
    const char *help;                              /* one line */
    int (*run)(tierctl *t, int argc, char **argv); /* argv[0] is the command name */
} tierctl_cmd;

extern const tierctl_cmd tierctl_tiering_cmds[];
extern const tierctl_cmd tierctl_ranking_cmds[];
extern const tierctl_cmd tierctl_fsck_cmds[];

#define TIERCTL_USAGE (-1) /* a command's return for a usage error: exit 2 */
#define TIERCTL_FOUND (-2) /* a check found problems (fsck): exit 1, output says them */

/* Sets t->err for a usage error and returns TIERCTL_USAGE. */
int tierctl_usage(tierctl *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses a decimal int64; false if it is not one. */
bool tierctl_int(const char *s, int64_t *out);
/* Writes s as a JSON string literal (with quotes). */
void tierctl_json_str(FILE *f, const char *s);
/* "2026-11-23 10:03:04.123" (UTC) for ms since the epoch. */
const char *tierctl_time(int64_t ms, char *buf, size_t len);
/* A time argument: "2026-11-23 10:03" (UTC), ms since the epoch, "now" (=
 * now_minute_end) or "-60m" / "-2h" / "-1d" before it.  False for anything
 * else, out-of-range fields or a result outside int64 ms (tierctl_parse.c). */
bool tierctl_parse_time(const char *s, int64_t now_minute_end, int64_t *out);

#endif
