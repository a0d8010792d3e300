/*
 * tierctl_policy.h -- what `tierctl policy set` and `tierctl plan` accept,
 * as pure functions (tierctl_policy_parse.c): durations ("7d"), sizes
 * ("10G"), per-level rules and budgets, the flags form of a policy, and a
 * Policy as JSON (protobuf's JSON mapping).  Free of I/O and of tierctl's
 * globals so that tests/test_tierctl_args.c checks exactly what tierctl
 * would send, without a tierd.
 *
 * Every input is a user's: all arithmetic is overflow-checked and anything
 * malformed is refused with a message naming the argument, never guessed.
 */
#ifndef TIERCTL_POLICY_H
#define TIERCTL_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tier.pb-c.h"

#define TIERCTL_POLICY_RULES_MAX 64   /* tier.proto: Policy.levels, at most 64 */
#define TIERCTL_POLICY_BUDGETS_MAX 64 /* tier.proto: Policy.budgets, at most 64 */
#define TIERCTL_POLICY_NAME_MAX 32    /* a level name, as the level table takes */

/* Seconds: digits with an optional unit s, m, h or d ("90", "90s", "7d").
 * No sign, no spaces, no fractions; false beyond int64. */
bool tierctl_duration(const char *s, int64_t *out);
/* Bytes: digits with an optional binary unit K, M, G or T (either case:
 * "10G" = 10 GiB).  No sign (a negative size is refused), no fractions. */
bool tierctl_size(const char *s, int64_t *out);
/* The shortest exact form of a duration ("7d", "1h", "90s"; "0" for 0). */
const char *tierctl_fmt_duration(int64_t s, char *buf, size_t len);
/* Bytes for people: "512 B", "100 MiB", "1.5 GiB"; "-" when negative. */
const char *tierctl_fmt_size(int64_t b, char *buf, size_t len);

/* The arguments of `policy set`: a whole Policy built from flags, in
 * storage that needs no freeing (levels and budgets point into it). */
typedef struct {
    Tier__Policy p;
    Tier__LevelRule rules[TIERCTL_POLICY_RULES_MAX];
    Tier__LevelRule *rulep[TIERCTL_POLICY_RULES_MAX];
    char rule_names[TIERCTL_POLICY_RULES_MAX][TIERCTL_POLICY_NAME_MAX + 1];
    Tier__MoveBudget budgets[TIERCTL_POLICY_BUDGETS_MAX];
    Tier__MoveBudget *budgetp[TIERCTL_POLICY_BUDGETS_MAX];
    char budget_from[TIERCTL_POLICY_BUDGETS_MAX][TIERCTL_POLICY_NAME_MAX + 1];
    char budget_to[TIERCTL_POLICY_BUDGETS_MAX][TIERCTL_POLICY_NAME_MAX + 1];
    const char *file; /* FILE or "-" (stdin): the policy is JSON there, p unused */
    bool dry_run;
} tierctl_policy_args;

/*
 * `policy set` arguments (argv[0] is the first one after "set"):
 *   FILE|-  [--dry-run]
 *   --mode seed|window [--window D] [--bucket D] [--demote-after D]
 *     [--hysteresis PCT] [--dwell D] [--interval D] [--max-inflight N]
 *     [--level NAME[:min_views=N][:demote_below=N][:capacity=SIZE]]...
 *     [--budget FROM>TO[:files=N][:bytes=SIZE]]...  [--dry-run]
 * --mode window starts from the documented window defaults (7d window of
 * 1h buckets, hysteresis 20, dwell 1h, interval 10s, 1000 in flight);
 * --mode seed takes no other option.  Returns 0, or -1 with err set.
 */
int tierctl_policy_set_args(int argc, char **argv, tierctl_policy_args *a, char *err,
                            size_t errlen);
/* One --level value into r (name copied into name[]).  False with err set. */
bool tierctl_level_rule(const char *s, Tier__LevelRule *r, char *name, char *err, size_t errlen);
/* One --budget value into b.  False with err set. */
bool tierctl_budget(const char *s, Tier__MoveBudget *b, char *from, char *to, char *err,
                    size_t errlen);

/* A Policy from JSON text (tier_rpc_json_to_pb's mapping: field names as
 * in tier.proto or lowerCamelCase; unknown fields refused).  *out is freed
 * with tier__policy__free_unpacked.  Returns 0, or -1 with err set. */
int tierctl_policy_from_json(const char *text, size_t len, Tier__Policy **out, char *err,
                             size_t errlen);

#endif
