/*
 * tierctl.h -- what tierctl's command files share: the parsed global
 * options, the command table, and output helpers.
 *
 * Each command file (tierctl_tiering.c, tierctl_ranking.c, ...) exports a
 * NULL-terminated table of tierctl_cmd.  A command returns a status code;
 * main turns it into the exit code (0, or 64 + code) and prints the error
 * (as JSON on stderr under --json).
 *
 * Output contract (tierctl_out.c): under --json every command prints one
 * JSON document built with jansson -- integers as JSON numbers, every
 * string valid UTF-8 (invalid bytes from the server become U+FFFD), times
 * as RFC 3339 UTC strings with milliseconds ("2026-11-30T16:02:08.336Z",
 * null when unset); a field that carried raw milliseconds (`*_ms`) keeps
 * them, as a number.  Human output says UTC on every time, or the local
 * offset with --local; an empty list prints "(none)".
 */
#ifndef TIERCTL_H
#define TIERCTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tier_client.h"
#include "tier_token.h"

typedef struct {
    tier_client *client;
    /* Routing (tierctl_for): the cluster handle once a Topology said
     * shards > 1, opened with opts (token copied into token). */
    tier_cluster *cluster;
    int routing; /* 0: not asked yet, 1: one tierd, 2: cluster */
    tier_client_opts opts;
    char token[TIER_TOKEN_MAX + 1];
    bool json;
    bool local;          /* human times in local time, not UTC */
    const char *url;     /* as given, for messages */
    uint32_t timeout_ms; /* per call */
    tier_error err;      /* filled by the failing call */
} tierctl;

typedef struct {
    const char *name;                              /* "views", "comment", ... */
    const char *usage;                             /* "views CID COUNT" */
    const char *help;                              /* one line */
    int (*run)(tierctl *t, int argc, char **argv); /* argv[0] is the command name */
    const char *more;                              /* `help CMD`'s details, or NULL */
} tierctl_cmd;

extern const tierctl_cmd tierctl_tiering_cmds[];
extern const tierctl_cmd tierctl_ranking_cmds[];
extern const tierctl_cmd tierctl_fsck_cmds[];
extern const tierctl_cmd tierctl_import_cmds[];
extern const tierctl_cmd tierctl_policy_cmds[];

#define TIERCTL_USAGE (-1) /* a command's return for a usage error: exit 2 */
#define TIERCTL_FOUND (-2) /* a check found problems (fsck): exit 1, output says them */

extern const tierctl_cmd tierctl_cluster_cmds[];

/* The client for calls about cid: its shard owner's when the tierd's
 * Topology says the cluster has several shards (asked once, by the first
 * such call), else t->client (one tierd, or one that has no Topology).
 * A shard with no owner now: t->client, whose answer then says so. */
tier_client *tierctl_for(tierctl *t, int64_t cid);
/* The cluster handle when the tierd given says several shards, else NULL
 * (the commands then use t->client). */
tier_cluster *tierctl_cluster(tierctl *t);

/* `top --watch` (tierctl_watch.c); argv as top's. */
int tierctl_top_watch(tierctl *t, int argc, char **argv);
/* TopContents/WatchTop rows (tierctl_ranking.c): as a JSON array (with
 * "hot" when hot), and as a table, ranks counted from `first` ("-" when 0),
 * the column header when header. */
json_t *tierctl_top_rows_json(Tier__TopRow *const *rows, size_t n, bool hot);
void tierctl_top_rows_print(Tier__TopRow *const *rows, size_t n, size_t first, bool hot,
                            bool header);

/* Sets t->err for a usage error and returns TIERCTL_USAGE. */
int tierctl_usage(tierctl *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sets t->err to code and message; returns code. */
int tierctl_fail(tierctl *t, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Parses a decimal int64; false if it is not one. */
bool tierctl_int(const char *s, int64_t *out);
/* A time argument: "2026-11-23 10:03" (UTC), ms since the epoch, "now" (=
 * now_minute_end) or "-60m" / "-2h" / "-1d" before it.  False for anything
 * else, out-of-range fields or a result outside int64 ms (tierctl_parse.c). */
bool tierctl_parse_time(const char *s, int64_t now_minute_end, int64_t *out);
/* NAME:MIN:MAX:PATH (the path may hold ':'), split in place into l. */
bool tierctl_level(char *s, Tier__Level *l);
/* What tierctl_parse_time accepts, for error messages. */
#define TIERCTL_TIME_FORMS                                                                         \
    "\"YYYY-MM-DD HH:MM\" (UTC, years 1970..9999), ms since the epoch, now, or -Nm/-Nh/-Nd"

/* ---- output (tierctl_out.c) */

/* Human time: "2026-11-23 10:03:04.123 UTC", or with --local
 * "2026-11-23 11:03:04.123 +01:00"; "-" when ms <= 0. */
const char *tierctl_time(const tierctl *t, int64_t ms, char *buf, size_t len);
/* A JSON string of s, invalid UTF-8 replaced by U+FFFD (never NULL unless
 * out of memory; jansson refuses invalid UTF-8). */
json_t *tierctl_jstr(const char *s);
/* RFC 3339 UTC with milliseconds, or null when ms <= 0. */
json_t *tierctl_jtime(int64_t ms);
json_t *tierctl_jint(int64_t v);
/* Prints v as one line on f and releases it. */
void tierctl_emit(FILE *f, json_t *v);
/* The JSON of shared records. */
json_t *tierctl_job_json(const Tier__Job *j);
json_t *tierctl_content_json(const Tier__Content *c);
/* Any message as tierctl's JSON: its .proto field names, integers as
 * numbers (`*_ms` times stay raw ms, as the contract allows), so that
 * `tierctl --json policy` is a file `tierctl policy set` reads back. */
json_t *tierctl_pb_json(const ProtobufCMessage *m);
/* A policy, human or JSON (tierctl_policy.c). */
void tierctl_print_policy(tierctl *t, const Tier__Policy *p);
/* A plan (PlanMoves, SetPolicy or SetLevels with --dry-run), human or
 * JSON (tierctl_policy.c). */
void tierctl_print_plan(tierctl *t, const Tier__Plan *p);
/* "(none)" for an empty human list. */
void tierctl_none(void);

#endif
