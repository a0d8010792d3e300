/*
 * tierctl_policy.c -- tierctl's tiering-policy commands: `policy [get]`,
 * `policy set` (a JSON file or flags; --dry-run) and `plan`, and the plan
 * printer `levels set --dry-run` shares.  What the arguments mean is
 * tierctl_policy_parse.c's (pure, unit-tested); this file talks to tierd
 * and prints.
 *
 * `tierctl --json policy` prints the Policy with its .proto field names
 * and integers as numbers, which `tierctl policy set FILE` reads back: an
 * operator edits the current policy rather than retyping it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tierctl.h"
#include "tierctl_policy.h"

#define POLICY_FILE_MAX ((size_t)4 << 20) /* a request is at most 4 MiB anyway */

/* ------------------------------------------------------------ printing */

static const char *any(const char *level)
{
    return level[0] ? level : "any";
}

/* -1 in a rule means "derived" (tier.proto): say so, not "-1". */
static const char *rule_count(int64_t v, const char *derived, char *buf, size_t len)
{
    if (v < 0)
        return derived;
    snprintf(buf, len, "%lld", (long long)v);
    return buf;
}

static void print_rules(const Tier__Policy *p)
{
    char a[32], b[32], c[32];

    printf("levels:\n");
    if (p->n_levels == 0) {
        printf("  (none: every level takes the defaults)\n");
        return;
    }
    printf("  %-12s %12s %14s %12s\n", "LEVEL", "MIN VIEWS", "DEMOTE BELOW", "CAPACITY");
    for (size_t i = 0; i < p->n_levels; i++) {
        const Tier__LevelRule *r = p->levels[i];
        printf("  %-12s %12s %14s %12s\n", r->level, rule_count(r->min_views, "table min", a, 32),
               rule_count(r->demote_below, "hysteresis", b, 32),
               r->capacity_bytes > 0 ? tierctl_fmt_size(r->capacity_bytes, c, 32) : "no limit");
    }
}

static void print_budgets(const Tier__Policy *p)
{
    char a[32], b[40];

    printf("budgets:\n");
    if (p->n_budgets == 0) {
        printf("  (none: moves start as fast as max in-flight allows)\n");
        return;
    }
    printf("  %-12s %-12s %10s %14s\n", "FROM", "TO", "FILES/S", "BYTES/S");
    for (size_t i = 0; i < p->n_budgets; i++) {
        const Tier__MoveBudget *m = p->budgets[i];
        if (m->files_per_s > 0)
            snprintf(a, sizeof(a), "%g", m->files_per_s);
        if (m->bytes_per_s > 0)
            tierctl_fmt_size((int64_t)m->bytes_per_s, b, sizeof(b));
        printf("  %-12s %-12s %10s %14s\n", any(m->from), any(m->to),
               m->files_per_s > 0 ? a : "no limit", m->bytes_per_s > 0 ? b : "no limit");
    }
}

void tierctl_print_policy(tierctl *t, const Tier__Policy *p)
{
    char w[32], b[32], d[32], v[64];

    if (t->json) {
        tierctl_emit(stdout, tierctl_pb_json(&p->base));
        return;
    }
    if (p->version == 0)
        printf("version        0 (the built-in seed policy, never set)\n");
    else
        printf("version        %lld, set %s by %s\n", (long long)p->version,
               tierctl_time(t, p->set_time_ms, v, sizeof(v)), p->set_by[0] ? p->set_by : "-");
    printf("mode           %s\n", p->mode);
    if (strcmp(p->mode, "window") != 0)
        return; /* seed: the level table's count ranges, nothing else */
    printf("window         %s in buckets of %s\n", tierctl_fmt_duration(p->window_s, w, 32),
           tierctl_fmt_duration(p->bucket_s, b, 32));
    printf("demote idle    %s\n",
           p->demote_after_s > 0 ? tierctl_fmt_duration(p->demote_after_s, d, 32) : "off");
    printf("hysteresis     %d%%\n", p->hysteresis_pct);
    printf("dwell          %s\n", p->dwell_s > 0 ? tierctl_fmt_duration(p->dwell_s, d, 32) : "off");
    printf("plan interval  %s\n", tierctl_fmt_duration(p->plan_interval_s, d, 32));
    printf("max in flight  %d\n", p->max_inflight);
    print_rules(p);
    print_budgets(p);
}

static void print_pairs_levels(const Tier__Plan *p)
{
    char a[32], b[32], c[32];

    printf("moves by level pair:\n");
    if (p->n_pairs == 0)
        printf("  (none)\n");
    else
        printf("  %-12s %-12s %10s %12s\n", "FROM", "TO", "FILES", "BYTES");
    for (size_t i = 0; i < p->n_pairs; i++)
        printf("  %-12s %-12s %10lld %12s\n", p->pairs[i]->from, p->pairs[i]->to,
               (long long)p->pairs[i]->files, tierctl_fmt_size(p->pairs[i]->bytes, a, 32));
    printf("levels:\n  %-12s %10s %12s %10s %12s %12s\n", "LEVEL", "FILES NOW", "BYTES NOW",
           "AFTER", "BYTES AFTER", "CAPACITY");
    for (size_t i = 0; i < p->n_levels; i++) {
        const Tier__PlanLevel *l = p->levels[i];
        printf("  %-12s %10lld %12s %10lld %12s %12s\n", l->level, (long long)l->files_now,
               tierctl_fmt_size(l->bytes_now, a, 32), (long long)l->files_after,
               tierctl_fmt_size(l->bytes_after, b, 32),
               l->capacity_bytes > 0 ? tierctl_fmt_size(l->capacity_bytes, c, 32) : "no limit");
    }
}

void tierctl_print_plan(tierctl *t, const Tier__Plan *p)
{
    char at[64], sz[32];

    if (t->json) {
        tierctl_emit(stdout, tierctl_pb_json(&p->base));
        return;
    }
    if (p->policy_version < 0)
        printf("plan at %s with the proposed policy: ", tierctl_time(t, p->at_ms, at, sizeof(at)));
    else
        printf("plan at %s with policy version %lld: ", tierctl_time(t, p->at_ms, at, sizeof(at)),
               (long long)p->policy_version);
    printf("%lld moves, %s\n", (long long)p->total_moves,
           tierctl_fmt_size(p->total_bytes, sz, sizeof(sz)));
    print_pairs_levels(p);
    printf("held: %lld by dwell, %lld by capacity", (long long)p->held_dwell,
           (long long)p->held_capacity);
    if (p->unknown_score > 0)
        printf("; %lld without a count reported since tierd started", (long long)p->unknown_score);
    printf("\nfirst %zu moves (in start order):\n", p->n_moves);
    if (p->n_moves == 0)
        printf("  (none)\n");
    else
        printf("  %-12s %-12s    %-12s %-9s %12s %12s\n", "CID", "FROM", "TO", "RULE", "SCORE",
               "SIZE");
    for (size_t i = 0; i < p->n_moves; i++) {
        const Tier__PlannedMove *m = p->moves[i];
        printf("  %-12lld %-12s -> %-12s %-9s %12lld %12s\n", (long long)m->cid, m->from, m->to,
               m->rule, (long long)m->score, tierctl_fmt_size(m->size_bytes, sz, sizeof(sz)));
    }
}

/* ------------------------------------------------------------ input */

/* The whole of FILE ("-": stdin), at most POLICY_FILE_MAX bytes. */
static int read_all(tierctl *t, const char *path, char **out, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    char *buf;
    size_t n;

    if (f == NULL)
        return tierctl_usage(t, "%s: %s", path, strerror(errno));
    if ((buf = malloc(POLICY_FILE_MAX + 1)) == NULL) {
        if (f != stdin)
            fclose(f);
        return tierctl_fail(t, TIER_RESOURCE_EXHAUSTED, "out of memory");
    }
    n = fread(buf, 1, POLICY_FILE_MAX + 1, f);
    bool bad = ferror(f);
    if (f != stdin)
        fclose(f);
    if (bad || n > POLICY_FILE_MAX) {
        free(buf);
        return tierctl_usage(t, "%s: %s", path,
                             bad ? "cannot be read" : "larger than 4 MiB: not a policy");
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return TIER_OK;
}

/* A Policy from a JSON file: *out to free with tier__policy__free_unpacked. */
static int policy_file(tierctl *t, const char *path, Tier__Policy **out)
{
    char *text = NULL, why[sizeof(t->err.message) - 64];
    size_t len = 0;
    int rv;

    if ((rv = read_all(t, path, &text, &len)) != TIER_OK)
        return rv;
    rv = tierctl_policy_from_json(text, len, out, why, sizeof(why));
    free(text);
    return rv == 0 ? TIER_OK : tierctl_usage(t, "%s: %s", path, why);
}

/* ------------------------------------------------------------ commands */

static int policy_get(tierctl *t)
{
    Tier__GetPolicyRequest req = TIER__GET_POLICY_REQUEST__INIT;
    Tier__GetPolicyReply *rep;
    int rv;

    if ((rv = tier_get_policy(t->client, &req, &rep, &t->err)) != TIER_OK)
        return rv;
    if (rep->policy == NULL)
        rv = tierctl_fail(t, TIER_INTERNAL, "tierd answered without a policy");
    else
        tierctl_print_policy(t, rep->policy);
    tier_free(rep);
    return rv;
}

static int policy_set(tierctl *t, int argc, char **argv)
{
    Tier__SetPolicyRequest req = TIER__SET_POLICY_REQUEST__INIT;
    Tier__SetPolicyReply *rep;
    Tier__Policy *from_file = NULL;
    tierctl_policy_args *a = malloc(sizeof(*a)); /* ~20 KiB: not on the stack */
    int rv;

    if (a == NULL)
        return tierctl_fail(t, TIER_RESOURCE_EXHAUSTED, "out of memory");
    char why[sizeof(t->err.message)];
    if (tierctl_policy_set_args(argc, argv, a, why, sizeof(why)) != 0) {
        free(a);
        return tierctl_usage(t, "%s", why);
    }
    if (a->file != NULL && (rv = policy_file(t, a->file, &from_file)) != TIER_OK) {
        free(a);
        return rv;
    }
    req.policy = from_file ? from_file : &a->p;
    req.dry_run = a->dry_run;
    if ((rv = tier_set_policy(t->client, &req, &rep, &t->err)) == TIER_OK) {
        if (req.dry_run && rep->plan == NULL)
            rv = tierctl_fail(t, TIER_INTERNAL, "tierd answered a dry run without a plan");
        else if (req.dry_run)
            tierctl_print_plan(t, rep->plan);
        else if (rep->policy != NULL)
            tierctl_print_policy(t, rep->policy);
        if (rv == TIER_OK && req.dry_run && !t->json)
            printf("dry run: the policy was not changed\n");
        tier_free(rep);
    }
    if (from_file)
        tier__policy__free_unpacked(from_file, NULL);
    free(a);
    return rv;
}

static int cmd_policy(tierctl *t, int argc, char **argv)
{
    if (argc == 1 || (argc == 2 && strcmp(argv[1], "get") == 0))
        return policy_get(t);
    if (argc >= 3 && strcmp(argv[1], "set") == 0)
        return policy_set(t, argc - 2, argv + 2);
    return tierctl_usage(t, "usage: tierctl policy [get] | policy set FILE|- [--dry-run] | "
                            "policy set --mode seed|window [OPTIONS] (tierctl help policy)");
}

/* plan's --levels: NAME:MIN:MAX:PATH arguments up to the next --flag. */
static int plan_levels(tierctl *t, int argc, char **argv, int *i, Tier__PlanMovesRequest *req)
{
    while (*i + 1 < argc && strncmp(argv[*i + 1], "--", 2) != 0) {
        Tier__Level **grown = realloc(req->levels, (req->n_levels + 1) * sizeof(*grown)), *l;
        if (grown == NULL)
            return tierctl_fail(t, TIER_RESOURCE_EXHAUSTED, "out of memory");
        req->levels = grown;
        if ((l = calloc(1, sizeof(*l))) == NULL)
            return tierctl_fail(t, TIER_RESOURCE_EXHAUSTED, "out of memory");
        tier__level__init(l);
        req->levels[req->n_levels++] = l;
        if (!tierctl_level(argv[++*i], l))
            return tierctl_usage(t, "--levels: NAME:MIN:MAX:PATH (got \"%s\")", argv[*i]);
    }
    return req->n_levels > 0 ? TIER_OK : tierctl_usage(t, "--levels: NAME:MIN:MAX:PATH ...");
}

static int plan_args(tierctl *t, int argc, char **argv, Tier__PlanMovesRequest *req)
{
    int64_t n;
    int rv;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--levels") == 0) {
            if ((rv = plan_levels(t, argc, argv, &i, req)) != TIER_OK)
                return rv;
        } else if (strcmp(argv[i], "--policy") == 0 && i + 1 < argc && req->policy == NULL) {
            if ((rv = policy_file(t, argv[++i], &req->policy)) != TIER_OK)
                return rv;
        } else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
            if (!tierctl_int(argv[++i], &n) || n < 1 || n > 10000)
                return tierctl_usage(t, "--limit: 1..10000 (got \"%s\")", argv[i]);
            req->limit = (uint32_t)n;
        } else {
            return tierctl_usage(t, "usage: tierctl plan [--policy FILE|-] "
                                    "[--levels NAME:MIN:MAX:PATH ...] [--limit N]");
        }
    }
    return TIER_OK;
}

static int cmd_plan(tierctl *t, int argc, char **argv)
{
    Tier__PlanMovesRequest req = TIER__PLAN_MOVES_REQUEST__INIT;
    Tier__Plan *rep;
    int rv = plan_args(t, argc, argv, &req);

    if (rv == TIER_OK && (rv = tier_plan_moves(t->client, &req, &rep, &t->err)) == TIER_OK) {
        tierctl_print_plan(t, rep);
        tier_free(rep);
    }
    if (req.policy)
        tier__policy__free_unpacked(req.policy, NULL);
    for (size_t i = 0; i < req.n_levels; i++)
        free(req.levels[i]);
    free(req.levels);
    return rv;
}

const tierctl_cmd tierctl_policy_cmds[] = {
    {"policy", "policy [get]", "the tiering policy: mode, window, rules, budgets, version",
     cmd_policy, NULL},
    {"policy", "policy set FILE|-|--mode M ... [--dry-run]",
     "replace the policy (a JSON file, or flags); --dry-run: the plan only", cmd_policy,
     "  FILE: a Policy as JSON (tier.proto field names, or lowerCamelCase), e.g. what\n"
     "  `tierctl --json policy` printed; - reads stdin.  Or flags:\n"
     "    --mode seed                  the built-in seed policy (no other option)\n"
     "    --mode window                from the defaults: --window 7d --bucket 1h\n"
     "                                 --hysteresis 20 --dwell 1h --interval 10s\n"
     "                                 --max-inflight 1000, no idle demotion\n"
     "    --window D, --bucket D, --demote-after D, --dwell D, --interval D\n"
     "                                 durations: digits with s, m, h or d (0 = off)\n"
     "    --hysteresis PCT (0..99), --max-inflight N (1..100000)\n"
     "    --level NAME[:min_views=N][:demote_below=N][:capacity=SIZE]   (repeatable;\n"
     "                                 -1 or left out: derived; sizes with K/M/G/T)\n"
     "    --budget FROM>TO[:files=N][:bytes=SIZE]   moves started per second\n"
     "                                 (repeatable; an empty or * level = any)\n"
     "  Prints the policy as stored (its new version); --dry-run prints what it\n"
     "  would move now and changes nothing."},
    {"plan", "plan [--policy F] [--levels L..] [--limit N]",
     "what the policy would move now (nothing changes)", cmd_plan,
     "  With the current policy and level table, or a proposed policy (a JSON file\n"
     "  as `policy set` reads) and/or level table (NAME:MIN:MAX:PATH as `levels set`).\n"
     "  Prints moves per level pair, each level now and after, the contents held by\n"
     "  dwell or capacity, and the first --limit moves (default 100, at most 10000)."},
    {NULL, NULL, NULL, NULL, NULL},
};
