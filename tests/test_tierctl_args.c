/*
 * test_tierctl_args.c -- what `tierctl policy set` would send, without a
 * tierd: durations, sizes, --level and --budget values, the flags form of
 * a Policy (checked field by field and as the JSON of the packed message),
 * a Policy read from JSON, and the round trip `tierctl --json policy` ->
 * `tierctl policy set FILE`.  Bad input must be refused with a message
 * naming the argument: "7x", overflow, negative sizes, unknown keys.
 *
 * Also the human printers of a policy and a plan.  Links tierctl's sources
 * (client/tierctl_policy_parse.c, tierctl_policy.c, tierctl_out.c,
 * tierctl_parse.c): the code tierctl runs, not a copy.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier_rpc_json.h"
#include "tierctl.h"
#include "tierctl_policy.h"

/* tierctl.c's, which holds main: what the linked command code calls. */
int tierctl_usage(tierctl *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->err.message, sizeof(t->err.message), fmt, ap);
    va_end(ap);
    return TIERCTL_USAGE;
}

int tierctl_fail(tierctl *t, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->err.message, sizeof(t->err.message), fmt, ap);
    va_end(ap);
    return code;
}

/* ------------------------------------------------------------ units */

Test(tierctl_args, durations)
{
    static const struct {
        const char *s;
        int64_t v;
    } ok[] = {{"0", 0},         {"90", 90},
              {"90s", 90},      {"5m", 300},
              {"3h", 10800},    {"7d", 604800},
              {"31d", 2678400}, {"106751991167300d", 106751991167300LL * 86400}};
    static const char *const bad[] = {"",
                                      "7x",
                                      "d",
                                      "-1d",
                                      "+1d",
                                      " 1d",
                                      "1d ",
                                      "1.5h",
                                      "1dd",
                                      "0x10s",
                                      "1D",
                                      "99999999999999999999d",
                                      "99999999999999999999",
                                      "106751991167301d"};
    int64_t v;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        cr_assert(tierctl_duration(ok[i].s, &v), "%s", ok[i].s);
        cr_assert_eq(v, ok[i].v, "%s", ok[i].s);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert(!tierctl_duration(bad[i], &v), "accepted \"%s\"", bad[i]);
}

Test(tierctl_args, sizes)
{
    static const struct {
        const char *s;
        int64_t v;
    } ok[] = {{"0", 0},
              {"512", 512},
              {"1K", 1024},
              {"1k", 1024},
              {"100M", 100LL << 20},
              {"10G", 10LL << 30},
              {"2T", 2LL << 40},
              {"8388607T", 8388607LL << 40}};
    static const char *const bad[] = {"",
                                      "-1",
                                      "-1G",
                                      "1.5G",
                                      "10GB",
                                      "10 G",
                                      "G",
                                      "10P",
                                      "+1G",
                                      "8388608T",
                                      "99999999999999999999"};
    int64_t v;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        cr_assert(tierctl_size(ok[i].s, &v), "%s", ok[i].s);
        cr_assert_eq(v, ok[i].v, "%s", ok[i].s);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert(!tierctl_size(bad[i], &v), "accepted \"%s\"", bad[i]);
}

/* What people read, and durations read back to the same value. */
Test(tierctl_args, formats)
{
    char b[32];
    int64_t v;

    cr_assert_str_eq(tierctl_fmt_duration(0, b, sizeof(b)), "0");
    cr_assert_str_eq(tierctl_fmt_duration(604800, b, sizeof(b)), "7d");
    cr_assert_str_eq(tierctl_fmt_duration(3600, b, sizeof(b)), "1h");
    cr_assert_str_eq(tierctl_fmt_duration(300, b, sizeof(b)), "5m");
    cr_assert_str_eq(tierctl_fmt_duration(90, b, sizeof(b)), "90s");
    for (int64_t s = 1; s < 200000; s += 997) {
        cr_assert(tierctl_duration(tierctl_fmt_duration(s, b, sizeof(b)), &v));
        cr_assert_eq(v, s, "%s", b);
    }
    cr_assert_str_eq(tierctl_fmt_size(-1, b, sizeof(b)), "-");
    cr_assert_str_eq(tierctl_fmt_size(512, b, sizeof(b)), "512 B");
    cr_assert_str_eq(tierctl_fmt_size(1024, b, sizeof(b)), "1 KiB");
    cr_assert_str_eq(tierctl_fmt_size(100LL << 20, b, sizeof(b)), "100 MiB");
    cr_assert_str_eq(tierctl_fmt_size(3LL << 29, b, sizeof(b)), "1.5 GiB");
    cr_assert_str_eq(tierctl_fmt_size(INT64_MAX, b, sizeof(b)), "8.0 EiB");
}

/* ------------------------------------------------------------ --level, --budget */

Test(tierctl_args, level_rules)
{
    Tier__LevelRule r;
    char name[TIERCTL_POLICY_NAME_MAX + 1], err[256];

    cr_assert(tierctl_level_rule("gold", &r, name, err, sizeof(err)), "%s", err);
    cr_assert_str_eq(r.level, "gold");
    cr_assert(r.min_views == -1 && r.demote_below == -1 && r.capacity_bytes == 0,
              "left out: derived (-1), no capacity");
    cr_assert(tierctl_level_rule("gold:capacity=10G:min_views=100:demote_below=80", &r, name, err,
                                 sizeof(err)),
              "%s", err);
    cr_assert(r.min_views == 100 && r.demote_below == 80 && r.capacity_bytes == 10LL << 30);

    static const struct {
        const char *in, *says;
    } bad[] = {
        {"", "a level name"},
        {":min_views=1", "a level name"},
        {"gold:min_views=1:min_views=2", "given twice"},
        {"gold:foo=1", "unknown key \"foo\""},
        {"gold:min_views", "KEY=VALUE"},
        {"gold:=1", "KEY=VALUE"},
        {"gold::min_views=1", "KEY=VALUE"},
        {"gold:min_views=-2", "min_views"},
        {"gold:min_views=1e3", "min_views"},
        {"gold:min_views=99999999999999999999", "min_views"},
        {"gold:capacity=-1G", "capacity"},
        {"gold:capacity=7x", "capacity"},
        {"a23456789012345678901234567890123", "longer than 32"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        cr_assert(!tierctl_level_rule(bad[i].in, &r, name, err, sizeof(err)), "accepted %s",
                  bad[i].in);
        cr_assert(strstr(err, bad[i].says) != NULL, "%s: %s", bad[i].in, err);
    }
}

Test(tierctl_args, budgets)
{
    Tier__MoveBudget b;
    char from[40], to[40], err[256];

    cr_assert(tierctl_budget("gold>bronze:files=5:bytes=100M", &b, from, to, err, sizeof(err)),
              "%s", err);
    cr_assert_str_eq(b.from, "gold");
    cr_assert_str_eq(b.to, "bronze");
    cr_assert(b.files_per_s == 5 && b.bytes_per_s == (double)(100LL << 20));
    /* Empty and * are "any level"; a rate may be fractional. */
    cr_assert(tierctl_budget("*>bronze:files=0.5", &b, from, to, err, sizeof(err)), "%s", err);
    cr_assert(b.from[0] == '\0' && strcmp(b.to, "bronze") == 0 && b.files_per_s == 0.5 &&
              b.bytes_per_s == 0);
    cr_assert(tierctl_budget(">:bytes=1G", &b, from, to, err, sizeof(err)), "%s", err);
    cr_assert(b.from[0] == '\0' && b.to[0] == '\0');

    static const char *const bad[] = {"gold",
                                      "gold>bronze",
                                      "gold>bronze:",
                                      "gold>bronze:files=-1",
                                      "gold>bronze:files=inf",
                                      "gold>bronze:files=nan",
                                      "gold>bronze:files= 1",
                                      "gold>bronze:files=1:files=2",
                                      "gold>bronze:bytes=-1M",
                                      "gold>bronze:speed=1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        cr_assert(!tierctl_budget(bad[i], &b, from, to, err, sizeof(err)), "accepted %s", bad[i]);
        cr_assert(err[0] != '\0' && strstr(err, "--budget") != NULL, "%s: %s", bad[i], err);
    }
}

/* ------------------------------------------------------------ policy set */

static int set_args(tierctl_policy_args *a, char *err, size_t len, const char *line)
{
    static char copy[4096]; /* a->file points into it: kept until the next call */
    char *argv[256], *save = NULL;
    int argc = 0;

    cr_assert_lt(strlen(line), sizeof(copy));
    strcpy(copy, line);

    for (char *w = strtok_r(copy, " ", &save); w && argc < 256; w = strtok_r(NULL, " ", &save))
        argv[argc++] = w;
    return tierctl_policy_set_args(argc, argv, a, err, len);
}

/* The message as JSON, as tier_rpc_json (the HTTP gateway's mapping)
 * would send it: what tierd receives, field names in lowerCamelCase. */
static json_t *sent(const Tier__Policy *p)
{
    size_t n = tier__policy__get_packed_size(p), tlen;
    uint8_t *buf = malloc(n ? n : 1);
    char *text, err[256];

    tier__policy__pack(p, buf);
    cr_assert_eq(
        tier_rpc_json_from_pb(&tier__policy__descriptor, buf, n, &text, &tlen, err, sizeof(err)), 0,
        "%s", err);
    json_t *v = json_loads(text, 0, NULL);
    cr_assert_not_null(v, "%s", text);
    free(text);
    free(buf);
    return v;
}

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

Test(tierctl_args, flags_form_as_sent)
{
    static tierctl_policy_args a;
    char err[256];

    cr_assert_eq(set_args(&a, err, sizeof(err),
                          "--mode window --window 7d --bucket 1h --hysteresis 20 --dwell 1h "
                          "--demote-after 30d --interval 10s --max-inflight 1000 "
                          "--level gold:min_views=100:capacity=10G "
                          "--budget gold>bronze:files=5:bytes=100M --dry-run"),
                 0, "%s", err);
    cr_assert(a.dry_run && a.file == NULL);
    json_t *v = sent(&a.p);
    cr_assert_str_eq(jstr(v, "mode"), "window");
    cr_assert_str_eq(jstr(v, "windowS"), "604800"); /* 64-bit: strings */
    cr_assert_str_eq(jstr(v, "bucketS"), "3600");
    cr_assert_str_eq(jstr(v, "demoteAfterS"), "2592000");
    cr_assert_eq(json_integer_value(json_object_get(v, "hysteresisPct")), 20);
    cr_assert_str_eq(jstr(v, "dwellS"), "3600");
    cr_assert_str_eq(jstr(v, "planIntervalS"), "10");
    cr_assert_eq(json_integer_value(json_object_get(v, "maxInflight")), 1000);
    json_t *l = json_array_get(json_object_get(v, "levels"), 0);
    cr_assert_eq(json_array_size(json_object_get(v, "levels")), 1);
    cr_assert_str_eq(jstr(l, "level"), "gold");
    cr_assert_str_eq(jstr(l, "minViews"), "100");
    cr_assert_str_eq(jstr(l, "demoteBelow"), "-1");
    cr_assert_str_eq(jstr(l, "capacityBytes"), "10737418240");
    json_t *b = json_array_get(json_object_get(v, "budgets"), 0);
    cr_assert_str_eq(jstr(b, "from"), "gold");
    cr_assert_str_eq(jstr(b, "to"), "bronze");
    cr_assert(json_real_value(json_object_get(b, "filesPerS")) == 5 ||
              json_integer_value(json_object_get(b, "filesPerS")) == 5);
    cr_assert_str_eq(jstr(v, "version"), "0");
    json_decref(v);
}

/* --mode window alone: the documented defaults; flags override them, in
 * the --flag=VALUE form too. */
Test(tierctl_args, window_defaults_and_seed)
{
    static tierctl_policy_args a;
    char err[256];

    cr_assert_eq(set_args(&a, err, sizeof(err), "--mode window"), 0, "%s", err);
    cr_assert(a.p.window_s == 604800 && a.p.bucket_s == 3600 && a.p.hysteresis_pct == 20 &&
              a.p.dwell_s == 3600 && a.p.plan_interval_s == 10 && a.p.max_inflight == 1000 &&
              a.p.demote_after_s == 0 && a.p.n_levels == 0 && a.p.n_budgets == 0 && !a.dry_run);
    cr_assert_eq(set_args(&a, err, sizeof(err), "--dwell=0 --mode=window --window=1d"), 0, "%s",
                 err);
    cr_assert(a.p.dwell_s == 0 && a.p.window_s == 86400 && a.p.bucket_s == 3600);

    /* --mode seed: the seed policy, nothing else set. */
    cr_assert_eq(set_args(&a, err, sizeof(err), "--mode seed"), 0, "%s", err);
    cr_assert_str_eq(a.p.mode, "seed");
    cr_assert(a.p.window_s == 0 && a.p.bucket_s == 0 && a.p.max_inflight == 0 &&
              a.p.n_levels == 0 && a.p.n_budgets == 0);
    json_t *v = sent(&a.p);
    cr_assert_str_eq(jstr(v, "windowS"), "0");
    json_decref(v);

    /* A file instead. */
    cr_assert_eq(set_args(&a, err, sizeof(err), "--dry-run p.json"), 0, "%s", err);
    cr_assert(a.dry_run && a.file != NULL && strcmp(a.file, "p.json") == 0);
    cr_assert_eq(set_args(&a, err, sizeof(err), "-"), 0, "%s", err);
    cr_assert_str_eq(a.file, "-");
}

Test(tierctl_args, flags_form_errors)
{
    static tierctl_policy_args a;
    static const struct {
        const char *line, *says;
    } bad[] = {
        {"--window 7d", "--mode seed|window"},
        {"--mode fast", "--mode: seed or window"},
        {"--mode seed --window 7d", "--mode seed takes no other option"},
        {"--mode seed --level gold", "--mode seed takes no other option"},
        {"--mode window --window 7x", "--window: a duration"},
        {"--mode window --window 99999999999999999999d", "--window: a duration"},
        {"--mode window --window -7d", "--window: a duration"},
        {"--mode window --dwell", "--dwell needs a value"},
        {"--mode window --window 1d --window 2d", "--window given twice"},
        {"--mode window --hysteresis 100", "--hysteresis: an integer 0..99"},
        {"--mode window --hysteresis -1", "--hysteresis"},
        {"--mode window --max-inflight 0", "--max-inflight: an integer 1..100000"},
        {"--mode window --max-inflight 4294967297", "--max-inflight"},
        {"--mode window --level gold:capacity=-1G", "capacity"},
        {"--mode window --budget gold>bronze", "files=N, bytes=SIZE or both"},
        {"--mode window --speed 3", "unexpected \"--speed\""},
        {"--mode window p.json", "a FILE or flags, not both"},
        {"a.json b.json", "unexpected \"b.json\""},
        {"--dry-run", "FILE (JSON, - for stdin) or --mode"},
    };
    char err[256];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        cr_assert_neq(set_args(&a, err, sizeof(err), bad[i].line), 0, "accepted %s", bad[i].line);
        cr_assert(strstr(err, bad[i].says) != NULL, "%s: %s", bad[i].line, err);
    }
    /* 65 levels: more than tier.proto allows, refused before sending. */
    char line[4096] = "--mode window";
    for (int i = 0; i < 65; i++)
        snprintf(line + strlen(line), sizeof(line) - strlen(line), " --level l%d", i);
    cr_assert_neq(set_args(&a, err, sizeof(err), line), 0);
    cr_assert(strstr(err, "at most 64") != NULL, "%s", err);
}

/* ------------------------------------------------------------ JSON */

Test(tierctl_args, policy_from_json)
{
    Tier__Policy *p;
    char err[256];
    const char *text = "{\"mode\": \"window\", \"window_s\": 86400, \"bucketS\": \"3600\","
                       " \"hysteresis_pct\": 10, \"max_inflight\": 50, \"plan_interval_s\": 5,"
                       " \"levels\": [{\"level\": \"gold\", \"min_views\": 10, "
                       "\"capacity_bytes\": 1073741824}],"
                       " \"budgets\": [{\"from\": \"\", \"to\": \"gold\", \"files_per_s\": 2.5}]}";

    cr_assert_eq(tierctl_policy_from_json(text, strlen(text), &p, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(p->mode, "window");
    cr_assert(p->window_s == 86400 && p->bucket_s == 3600 && p->hysteresis_pct == 10 &&
              p->max_inflight == 50 && p->plan_interval_s == 5);
    cr_assert(p->n_levels == 1 && strcmp(p->levels[0]->level, "gold") == 0 &&
              p->levels[0]->min_views == 10 && p->levels[0]->capacity_bytes == 1LL << 30);
    cr_assert(p->n_budgets == 1 && p->budgets[0]->files_per_s == 2.5);
    tier__policy__free_unpacked(p, NULL);

    static const struct {
        const char *in, *says;
    } bad[] = {
        {"{\"mode\": \"window\", \"windw_s\": 60}", "windw_s"},
        {"{\"window_s\": \"7d\"}", "window_s"},
        {"{\"window_s\": 99999999999999999999}", "too big"},
        {"{\"hysteresis_pct\": 4294967296}", "hysteresis_pct"},
        {"{\"levels\": [{\"level\": \"gold\", \"size\": 1}]}", "size"},
        {"[1, 2]", ""},
        {"{\"mode\": ", ""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        cr_assert_neq(tierctl_policy_from_json(bad[i].in, strlen(bad[i].in), &p, err, sizeof(err)),
                      0, "accepted %s", bad[i].in);
        cr_assert(err[0] != '\0' && strstr(err, bad[i].says) != NULL, "%s: %s", bad[i].in, err);
    }
}

/* `tierctl --json policy` prints what `tierctl policy set FILE` reads back
 * into the same message (tierctl_pb_json: .proto names, numbers). */
Test(tierctl_args, json_output_round_trips)
{
    static tierctl_policy_args a;
    char err[256];
    Tier__Policy *back;

    cr_assert_eq(set_args(&a, err, sizeof(err),
                          "--mode window --window 2d --bucket 2h --demote-after 30d "
                          "--level gold:min_views=100:capacity=10G --level silver:demote_below=3 "
                          "--budget *>gold:files=0.25 --budget gold>:bytes=1T"),
                 0, "%s", err);
    a.p.version = 7;
    a.p.set_time_ms = 1795000000123LL;
    a.p.set_by = "admin";
    json_t *v = tierctl_pb_json(&a.p.base);
    cr_assert(json_is_integer(json_object_get(v, "window_s")), "integers as numbers");
    cr_assert_eq(json_integer_value(json_object_get(v, "set_time_ms")), 1795000000123LL);
    char *text = json_dumps(v, 0);
    json_decref(v);
    cr_assert_eq(tierctl_policy_from_json(text, strlen(text), &back, err, sizeof(err)), 0, "%s: %s",
                 err, text);

    size_t n1 = tier__policy__get_packed_size(&a.p), n2 = tier__policy__get_packed_size(back);
    uint8_t *b1 = malloc(n1), *b2 = malloc(n2);
    tier__policy__pack(&a.p, b1);
    tier__policy__pack(back, b2);
    cr_assert(n1 == n2 && memcmp(b1, b2, n1) == 0, "not the same message: %s", text);
    free(b1);
    free(b2);
    free(text);
    tier__policy__free_unpacked(back, NULL);
}

/* ------------------------------------------------------------ printing */

static char *captured(void)
{
    static char buf[16384];
    fflush(stdout);
    FILE *f = cr_get_redirected_stdout();
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    return buf;
}

/* Human output: durations and sizes for people, -1 rules as "derived",
 * "any" for a budget's empty level. */
Test(tierctl_args, policy_printer, .init = cr_redirect_stdout)
{
    static tierctl_policy_args a;
    tierctl t = {0};
    char err[256];

    cr_assert_eq(set_args(&a, err, sizeof(err),
                          "--mode window --demote-after 30d --level gold:capacity=10G "
                          "--budget >gold:files=2"),
                 0, "%s", err);
    a.p.version = 3;
    a.p.set_time_ms = 1795000000123LL;
    a.p.set_by = "admin";
    tierctl_print_policy(&t, &a.p);
    char *out = captured();
    cr_assert(strstr(out, "version        3, set 2026-") && strstr(out, "UTC by admin") &&
                  strstr(out, "window         7d in buckets of 1h") &&
                  strstr(out, "demote idle    30d") && strstr(out, "hysteresis     20%") &&
                  strstr(out, "table min") && strstr(out, "10 GiB") && strstr(out, "any"),
              "%s", out);
}

Test(tierctl_args, plan_printer, .init = cr_redirect_stdout)
{
    Tier__Plan p = TIER__PLAN__INIT;
    Tier__PlanPair pair = TIER__PLAN_PAIR__INIT, *pairs[] = {&pair};
    Tier__PlanLevel lv = TIER__PLAN_LEVEL__INIT, *lvs[] = {&lv};
    Tier__PlannedMove mv = TIER__PLANNED_MOVE__INIT, *mvs[] = {&mv};
    tierctl t = {0};

    p.at_ms = 1795000000123LL;
    p.policy_version = -1;
    p.total_moves = 1;
    p.total_bytes = 3LL << 29;
    pair.from = mv.from = "bronze";
    pair.to = mv.to = lv.level = "gold";
    pair.files = 1;
    pair.bytes = mv.size_bytes = 3LL << 29;
    lv.files_after = 1;
    lv.bytes_after = 3LL << 29;
    mv.cid = 42;
    mv.rule = "range";
    mv.score = 120;
    p.pairs = pairs, p.n_pairs = 1;
    p.levels = lvs, p.n_levels = 1;
    p.moves = mvs, p.n_moves = 1;
    p.held_dwell = 4;
    tierctl_print_plan(&t, &p);
    char *out = captured();
    cr_assert(strstr(out, "with the proposed policy: 1 moves, 1.5 GiB") &&
                  strstr(out, "held: 4 by dwell, 0 by capacity") && strstr(out, "42") &&
                  strstr(out, "bronze       -> gold") && strstr(out, "range"),
              "%s", out);
}
