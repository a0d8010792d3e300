/*
 * test_policy.c -- unit tests of the pure tiering policy (policy/): policy
 * validation, the view-bucket ring, the plan (levels, hysteresis, idle,
 * dwell, capacity, order) and the start gate (budgets, capacity, room).
 *
 * No services: every call is given its time, so each test states the clock
 * it needs.  The level table is the seed's sample one: bronze 0..999,
 * silver 1000..1999, gold 2000..max.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "tier_policy.h"

#define B 0
#define S 1
#define G 2
#define HOUR_MS 3600000LL

static const char *const names[3] = {"bronze", "silver", "gold"};
static const int64_t mins[3] = {0, 1000, 2000};
static const int64_t maxs[3] = {999, 1999, INT64_MAX};

static char err[256];

static int resolve(const tier_policy *p, tier_policy_level *lv)
{
    err[0] = '\0';
    return tier_policy_resolve(p, names, mins, maxs, 3, lv, err, sizeof(err));
}

/* A window policy: silver at 10 views, gold at 100, no dwell (tests that
 * want one set it). */
static void window_policy(tier_policy *p)
{
    tier_policy_window_defaults(p);
    p->dwell_s = 0;
    p->nlevels = 2;
    p->levels[0] = (tier_policy_level_rule){"silver", 10, -1, 0};
    p->levels[1] = (tier_policy_level_rule){"gold", 100, -1, 0};
}

static tier_policy_item item(int64_t cid, int level, int64_t size, int64_t score)
{
    /* Viewed just now, on its level for a day: no idle, no dwell. */
    return (tier_policy_item){cid, level, -1, size, score, 100 * HOUR_MS, 76 * HOUR_MS, 0};
}

#define NOW (100 * HOUR_MS)

typedef struct {
    tier_policy_move mv[16];
    size_t n;
    tier_policy_summary sum;
} plan_out;

static plan_out plan(const tier_policy *p, tier_policy_item *it, size_t n, int64_t now)
{
    tier_policy_level lv[3];
    plan_out o;
    cr_assert_eq(resolve(p, lv), 0, "%s", err);
    cr_assert_eq(tier_policy_plan(p, lv, 3, it, n, now, o.mv, &o.n, &o.sum), 0);
    return o;
}

/* The move planned for cid, or NULL. */
static const tier_policy_move *move_of(const plan_out *o, int64_t cid)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->mv[i].cid == cid)
            return &o->mv[i];
    return NULL;
}

/* ------------------------------------------------------------ resolve */

Test(resolve, seed_default_takes_the_table)
{
    tier_policy p;
    tier_policy_level lv[3];
    tier_policy_default(&p);
    cr_assert_eq(resolve(&p, lv), 0, "%s", err);
    cr_assert_eq(lv[1].min, 1000);
    cr_assert_eq(lv[2].max, INT64_MAX);
    cr_assert_eq(lv[2].capacity_bytes, 0);
}

Test(resolve, seed_refuses_window_knobs)
{
    tier_policy p;
    tier_policy_level lv[3];
    int64_t *knobs[] = {&p.window_s, &p.bucket_s, &p.demote_after_s, &p.dwell_s,
                        &p.plan_interval_s};
    for (size_t i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++) {
        tier_policy_default(&p);
        *knobs[i] = 3600;
        cr_expect_eq(resolve(&p, lv), -1, "knob %zu accepted", i);
        cr_expect(strstr(err, "mode seed") != NULL, "%s", err);
    }
    tier_policy_default(&p);
    p.hysteresis_pct = 10;
    cr_expect_eq(resolve(&p, lv), -1);
    tier_policy_default(&p);
    p.nbudgets = 1;
    p.budgets[0] = (tier_policy_budget){"", "", 1, 0};
    cr_expect_eq(resolve(&p, lv), -1);
}

Test(resolve, window_defaults_derive_lines_from_the_table)
{
    tier_policy p;
    tier_policy_level lv[3];
    tier_policy_window_defaults(&p);
    cr_assert_eq(resolve(&p, lv), 0, "%s", err);
    cr_assert_eq(lv[0].min_views, 0);
    cr_assert_eq(lv[1].min_views, 1000);
    cr_assert_eq(lv[1].demote_below, 800); /* 20% hysteresis */
    cr_assert_eq(lv[2].demote_below, 1600);
}

Test(resolve, bad_window_and_bucket_combinations)
{
    struct {
        int64_t window_s, bucket_s;
    } bad[] = {{59, 60},           {32 * 86400, 3600}, {3600, 59},         {3600, 700},
               {86400 * 2, 86401}, {31 * 86400, 60},   {745 * 3600, 3600}, {3600, 7200}};
    tier_policy p;
    tier_policy_level lv[3];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        window_policy(&p);
        p.window_s = bad[i].window_s;
        p.bucket_s = bad[i].bucket_s;
        cr_expect_eq(resolve(&p, lv), -1, "window %lld bucket %lld accepted",
                     (long long)bad[i].window_s, (long long)bad[i].bucket_s);
    }
    window_policy(&p);
    p.window_s = 744 * 3600; /* exactly BUCKETS_MAX hourly buckets: 31 days */
    cr_expect_eq(resolve(&p, lv), 0, "%s", err);
}

Test(resolve, other_ranges)
{
    tier_policy p;
    tier_policy_level lv[3];
    window_policy(&p);
    p.hysteresis_pct = 100;
    cr_expect_eq(resolve(&p, lv), -1);
    window_policy(&p);
    p.plan_interval_s = 0;
    cr_expect_eq(resolve(&p, lv), -1);
    window_policy(&p);
    p.max_inflight = 0;
    cr_expect_eq(resolve(&p, lv), -1);
    window_policy(&p);
    p.dwell_s = -1;
    cr_expect_eq(resolve(&p, lv), -1);
    window_policy(&p);
    p.mode = (tier_policy_mode)7;
    cr_expect_eq(resolve(&p, lv), -1);
    window_policy(&p);
    cr_expect_eq(tier_policy_resolve(&p, names, mins, maxs, 0, lv, err, sizeof(err)), -1);
}

Test(resolve, unknown_or_repeated_level_names)
{
    tier_policy p;
    tier_policy_level lv[3];
    window_policy(&p);
    strcpy(p.levels[1].level, "platinum");
    cr_expect_eq(resolve(&p, lv), -1);
    cr_expect(strstr(err, "platinum") != NULL, "%s", err);
    window_policy(&p);
    strcpy(p.levels[1].level, "silver");
    cr_expect_eq(resolve(&p, lv), -1);
    cr_expect(strstr(err, "twice") != NULL, "%s", err);
    window_policy(&p);
    p.nbudgets = 1;
    p.budgets[0] = (tier_policy_budget){"bronze", "tape", 1, 0};
    cr_expect_eq(resolve(&p, lv), -1);
    cr_expect(strstr(err, "tape") != NULL, "%s", err);
}

Test(resolve, bad_budgets)
{
    tier_policy_budget bad[] = {
        {"", "", 0, 0}, {"", "", -1, 0}, {"", "", NAN, 0}, {"", "", 0, INFINITY}, {"", "", 2e9, 0}};
    tier_policy p;
    tier_policy_level lv[3];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        window_policy(&p);
        p.nbudgets = 1;
        p.budgets[0] = bad[i];
        cr_expect_eq(resolve(&p, lv), -1, "budget %zu accepted", i);
    }
}

Test(resolve, min_views_must_increase)
{
    tier_policy p;
    tier_policy_level lv[3];
    window_policy(&p);
    p.levels[1].min_views = 10; /* gold = silver */
    cr_expect_eq(resolve(&p, lv), -1);
    cr_expect(strstr(err, "min_views") != NULL, "%s", err);
    window_policy(&p);
    p.levels[0].min_views = 0; /* silver at 0 = the bottom's */
    cr_expect_eq(resolve(&p, lv), -1);
    window_policy(&p);
    p.nlevels = 3;
    p.levels[2] = (tier_policy_level_rule){"bronze", 5, -1, 0};
    cr_expect_eq(resolve(&p, lv), -1);
    cr_expect(strstr(err, "bottom") != NULL, "%s", err);
}

Test(resolve, demote_below_at_most_min_views)
{
    tier_policy p;
    tier_policy_level lv[3];
    window_policy(&p);
    p.levels[1].demote_below = 101;
    cr_expect_eq(resolve(&p, lv), -1);
    cr_expect(strstr(err, "demote_below") != NULL, "%s", err);
    p.levels[1].demote_below = 100; /* equal: no hysteresis band, allowed */
    cr_expect_eq(resolve(&p, lv), 0, "%s", err);
    p.levels[1].demote_below = -2;
    cr_expect_eq(resolve(&p, lv), -1);
    window_policy(&p);
    p.levels[1].capacity_bytes = -1;
    cr_expect_eq(resolve(&p, lv), -1);
}

Test(resolve, huge_values_do_not_overflow)
{
    tier_policy p;
    tier_policy_level lv[3];
    window_policy(&p);
    p.hysteresis_pct = 99;
    p.levels[1].min_views = INT64_MAX;
    p.levels[1].capacity_bytes = INT64_MAX;
    cr_assert_eq(resolve(&p, lv), 0, "%s", err);
    cr_assert_eq(lv[2].min_views, INT64_MAX);
    cr_assert(lv[2].demote_below > 0 && lv[2].demote_below <= INT64_MAX / 100 + 1,
              "demote_below %lld", (long long)lv[2].demote_below);
    /* A content at the very top stays; one far below leaves gold. */
    tier_policy_item it[2] = {item(1, G, INT64_MAX, INT64_MAX), item(2, G, 1, 5)};
    plan_out o = plan(&p, it, 2, NOW);
    cr_assert_eq(o.n, 1);
    cr_assert_eq(o.mv[0].cid, 2);
    cr_assert_eq(o.mv[0].to, B);
}

Test(resolve, half_life_range)
{
    tier_policy p;
    tier_policy_level lv[3];
    window_policy(&p); /* window 7 days */
    int64_t ok[] = {0, 60, 3600, 7 * 86400};
    int64_t bad[] = {-1, 1, 59, 7 * 86400 + 1, INT64_MAX};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        p.half_life_s = ok[i];
        cr_expect_eq(resolve(&p, lv), 0, "half_life_s %lld: %s", (long long)ok[i], err);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        p.half_life_s = bad[i];
        cr_expect_eq(resolve(&p, lv), -1, "half_life_s %lld accepted", (long long)bad[i]);
        cr_expect(strstr(err, "half_life_s") != NULL, "%s", err);
    }
    tier_policy_default(&p);
    p.half_life_s = 3600;
    cr_expect_eq(resolve(&p, lv), -1, "seed mode takes no half-life");
    cr_expect(strstr(err, "mode seed") != NULL, "%s", err);
}

Test(resolve, half_life_scales_the_lines)
{
    tier_policy p;
    tier_policy_level lv[3];
    window_policy(&p); /* silver 10, gold 100, 20% hysteresis */
    p.half_life_s = 3600;
    cr_assert_eq(resolve(&p, lv), 0, "%s", err);
    cr_assert_eq(lv[0].min_views, 0);
    cr_assert_eq(lv[1].min_views, 10 * TIER_POLICY_DECAY_SCALE);
    cr_assert_eq(lv[1].demote_below, 8 * TIER_POLICY_DECAY_SCALE);
    cr_assert_eq(lv[2].min_views, 100 * TIER_POLICY_DECAY_SCALE);
    cr_assert_eq(lv[2].demote_below, 80 * TIER_POLICY_DECAY_SCALE);
    /* A derived demote_below keeps its fraction: 1 view at 20% is 0.8. */
    p.levels[0].min_views = 1;
    p.levels[1].demote_below = 55;
    cr_assert_eq(resolve(&p, lv), 0, "%s", err);
    cr_assert_eq(lv[1].min_views, 1000);
    cr_assert_eq(lv[1].demote_below, 800);
    cr_assert_eq(lv[2].demote_below, 55000, "an explicit demote_below is scaled too");
    /* The seed table's ranges are not. */
    cr_assert_eq(lv[1].min, 1000);
    cr_assert_eq(lv[1].max, 1999);
}

Test(resolve, half_life_lines_saturate)
{
    tier_policy p;
    tier_policy_level lv[3];
    window_policy(&p);
    p.half_life_s = 3600;
    p.hysteresis_pct = 99;
    p.levels[1].min_views = INT64_MAX;
    cr_assert_eq(resolve(&p, lv), 0, "%s", err);
    cr_assert_eq(lv[2].min_views, INT64_MAX);
    cr_assert(lv[2].demote_below > 0 && lv[2].demote_below <= INT64_MAX / 100 + 1);
    p.levels[1].min_views = INT64_MAX / TIER_POLICY_DECAY_SCALE + 1;
    p.levels[1].demote_below = INT64_MAX / TIER_POLICY_DECAY_SCALE + 1;
    cr_assert_eq(resolve(&p, lv), 0, "%s", err);
    cr_assert_eq(lv[2].min_views, INT64_MAX);
    cr_assert_eq(lv[2].demote_below, INT64_MAX);
    p.levels[1].min_views = INT64_MAX / TIER_POLICY_DECAY_SCALE;
    p.levels[1].demote_below = -1;
    cr_assert_eq(resolve(&p, lv), 0, "%s", err);
    cr_assert_eq(lv[2].min_views, INT64_MAX / TIER_POLICY_DECAY_SCALE * TIER_POLICY_DECAY_SCALE);
}

/* ------------------------------------------------------------ views */

Test(views, alloc_limits)
{
    cr_assert_null(tier_policy_views_alloc(0));
    cr_assert_null(tier_policy_views_alloc(TIER_POLICY_BUCKETS_MAX + 1));
    tier_policy_views *v = tier_policy_views_alloc(TIER_POLICY_BUCKETS_MAX);
    cr_assert_not_null(v);
    cr_assert_eq(tier_policy_views_nb(v), TIER_POLICY_BUCKETS_MAX);
    cr_assert_eq(tier_policy_views_sum(v, 60, 0, 3600), 0);
    cr_assert_eq(tier_policy_views_sum(NULL, 60, 0, 3600), 0);
    tier_policy_views_free(v);
}

Test(views, add_and_sum_in_the_window)
{
    tier_policy_views *v = tier_policy_views_alloc(4);
    tier_policy_views_add(v, 60, 0, 3);
    tier_policy_views_add(v, 60, 59999, 2); /* same bucket */
    tier_policy_views_add(v, 60, 60000, 5);
    tier_policy_views_add(v, 60, 60000, 0);  /* nothing */
    tier_policy_views_add(v, 60, 60000, -4); /* nothing */
    cr_assert_eq(tier_policy_views_sum(v, 60, 60000, 240), 10);
    cr_assert_eq(tier_policy_views_sum(v, 60, 60000, 60), 5);
    cr_assert_eq(tier_policy_views_sum(v, 60, 30000, 240), 5, "newer buckets than now excluded");
    cr_assert_eq(tier_policy_views_sum(v, 60, 4 * 60000, 240), 5, "bucket 0 left the window");
    cr_assert_eq(tier_policy_views_sum(v, 60, 5 * 60000, 240), 0);
    tier_policy_views_free(v);
}

Test(views, ring_wraps_and_forgets)
{
    tier_policy_views *v = tier_policy_views_alloc(4);
    for (int k = 0; k < 10; k++)
        tier_policy_views_add(v, 60, k * 60000LL, k + 1);
    /* Buckets 6..9 remain: 7 + 8 + 9 + 10. */
    cr_assert_eq(tier_policy_views_sum(v, 60, 9 * 60000LL, 240), 34);
    cr_assert_eq(tier_policy_views_sum(v, 60, 9 * 60000LL, 3600), 34, "window beyond the ring");
    tier_policy_views_add(v, 60, 2 * 60000LL, 100); /* older than the ring: dropped */
    cr_assert_eq(tier_policy_views_sum(v, 60, 9 * 60000LL, 240), 34);
    tier_policy_views_add(v, 60, 7 * 60000LL, 100); /* late but inside: counted */
    cr_assert_eq(tier_policy_views_sum(v, 60, 9 * 60000LL, 240), 134);
    tier_policy_views_add(v, 60, 100 * 60000LL, 1); /* far ahead: all forgotten */
    cr_assert_eq(tier_policy_views_sum(v, 60, 100 * 60000LL, 240), 1);
    tier_policy_views_free(v);
}

Test(views, saturates)
{
    tier_policy_views *v = tier_policy_views_alloc(2);
    tier_policy_views_add(v, 60, 0, UINT32_MAX);
    tier_policy_views_add(v, 60, 0, 5);
    tier_policy_views_add(v, 60, 60000, INT64_MAX);
    cr_assert_eq(tier_policy_views_sum(v, 60, 60000, 120), 2 * (int64_t)UINT32_MAX);
    tier_policy_views_free(v);
}

Test(views, negative_times)
{
    tier_policy_views *v = tier_policy_views_alloc(3);
    tier_policy_views_add(v, 60, -1, 1); /* bucket -1, not 0 */
    tier_policy_views_add(v, 60, 0, 2);
    tier_policy_views_add(v, 60, -120001, 4); /* bucket -3 */
    cr_assert_eq(tier_policy_views_sum(v, 60, 0, 60), 2);
    cr_assert_eq(tier_policy_views_sum(v, 60, 0, 120), 3);
    cr_assert_eq(tier_policy_views_sum(v, 60, -1, 60), 1);
    cr_assert_eq(tier_policy_views_sum(v, 60, 0, 180), 3, "bucket -3 is older than the ring");
    tier_policy_views_free(v);
}

static int64_t decayed(const tier_policy_views *v, int64_t bucket_s, int64_t now_ms,
                       int64_t window_s, int64_t half_life_s)
{
    tier_policy_decay d;
    tier_policy_decay_init(&d, bucket_s, now_ms, window_s, half_life_s);
    return tier_policy_views_decayed(v, &d);
}

Test(views, decay_halves_at_one_half_life)
{
    tier_policy_views *v = tier_policy_views_alloc(60);
    tier_policy_views_add(v, 60, 0, 1000); /* bucket 0, midpoint 30 s */
    cr_assert_eq(decayed(v, 60, 30000, 3600, 600), 1000 * 1000, "age 0: whole");
    cr_assert_eq(decayed(v, 60, 630000, 3600, 600), 500 * 1000, "one half-life");
    cr_assert_eq(decayed(v, 60, 1230000, 3600, 600), 250 * 1000, "two half-lives");
    cr_assert_eq(decayed(v, 60, 0, 3600, 600), 1000 * 1000, "before its midpoint: whole");
    cr_assert_eq(decayed(v, 60, 630000, 3600, 0), 1000 * 1000, "no half-life: the flat window");
    cr_assert_eq(decayed(v, 60, 3600000, 3600, 600), 0, "bucket 0 left the window");
    cr_assert_eq(decayed(NULL, 60, 0, 3600, 600), 0);
    /* Two buckets: 1000 at age 600 s and 1000 at age 0 (now = 630 s). */
    tier_policy_views_add(v, 60, 600000, 1000);
    cr_assert_eq(decayed(v, 60, 630000, 3600, 600), 1500 * 1000);
    cr_assert_eq(decayed(v, 60, 630000, 60, 600), 1000 * 1000, "a one-bucket window");
    /* Low rates keep their resolution: 1 view a half-life ago is 500. */
    tier_policy_views *w = tier_policy_views_alloc(60);
    tier_policy_views_add(w, 60, 0, 1);
    cr_assert_eq(decayed(w, 60, 630000, 3600, 600), 500);
    cr_assert_eq(decayed(w, 60, 90000, 3600, 600), 933, "2^(-60/600) = 0.933");
    tier_policy_views_free(w);
    tier_policy_views_free(v);
}

Test(views, decay_does_not_overflow)
{
    unsigned nb = TIER_POLICY_BUCKETS_MAX;
    int64_t win = (int64_t)nb * 60, now = win * 1000 - 1, max = (int64_t)nb * UINT32_MAX * 1000;
    tier_policy_views *v = tier_policy_views_alloc(nb);
    for (unsigned k = 0; k < nb; k++)
        tier_policy_views_add(v, 60, (int64_t)k * 60000, INT64_MAX);
    cr_assert_eq(decayed(v, 60, now, win, 0), max);
    cr_assert_eq(tier_policy_views_sum(v, 60, now, win) * 1000, max);
    int64_t d = decayed(v, 60, now, win, win);
    cr_assert(d > max / 2 && d < max, "%lld", (long long)d);
    d = decayed(v, 60, now, win, 60);
    cr_assert(d > 0 && d < max, "%lld", (long long)d);
    tier_policy_views_free(v);
}

static void collect(void *arg, int64_t start_s, int64_t views)
{
    int64_t *acc = arg;
    acc[0]++;
    acc[1] += start_s * views;
}

Test(views, each_visits_nonempty_buckets)
{
    tier_policy_views *v = tier_policy_views_alloc(5);
    int64_t acc[2] = {0, 0};
    tier_policy_views_each(v, 60, collect, acc);
    cr_assert_eq(acc[0], 0);
    tier_policy_views_add(v, 60, -60000, 2);
    tier_policy_views_add(v, 60, 120000, 3);
    tier_policy_views_each(v, 60, collect, acc);
    cr_assert_eq(acc[0], 2);
    cr_assert_eq(acc[1], -60 * 2 + 120 * 3);
    tier_policy_views_free(v);
}

/* ------------------------------------------------------------ plan */

Test(plan, seed_ranges_and_order)
{
    tier_policy p;
    tier_policy_default(&p);
    tier_policy_item it[] = {item(1, B, 10, 5),    item(2, B, 10, 1500), item(3, B, 10, 5000),
                             item(4, B, 10, -1),   item(5, G, 10, 10),   item(6, S, 10, 1999),
                             item(7, B, 10, 5000), item(8, S, 10, 3000)};
    plan_out o = plan(&p, it, 8, NOW);
    cr_assert_eq(o.n, 5);
    /* Promotions, larger gap (past the target's min) first, then cid. */
    cr_assert_eq(o.mv[0].cid, 3);
    cr_assert_eq(o.mv[1].cid, 7);
    cr_assert_eq(o.mv[2].cid, 8);
    cr_assert_eq(o.mv[2].gap, 1000);
    cr_assert_eq(o.mv[3].cid, 2);
    cr_assert_eq(o.mv[3].to, S);
    cr_assert_eq(o.mv[4].cid, 5); /* the demotion last */
    cr_assert_eq(o.mv[4].to, B);
    cr_assert_eq(o.mv[4].rule, TIER_POLICY_RULE_RANGE);
    cr_assert_null(move_of(&o, 4), "unknown count: left alone");
}

Test(plan, seed_ignores_what_no_range_holds)
{
    static const int64_t gappy_max[3] = {999, 1999, 2999};
    tier_policy p;
    tier_policy_level lv[3];
    tier_policy_move mv[2];
    tier_policy_summary sum;
    size_t n;
    tier_policy_default(&p);
    cr_assert_eq(tier_policy_resolve(&p, names, mins, gappy_max, 3, lv, err, sizeof(err)), 0);
    tier_policy_item it[] = {item(1, S, 10, 5000)};
    cr_assert_eq(tier_policy_plan(&p, lv, 3, it, 1, NOW, mv, &n, &sum), 0);
    cr_assert_eq(n, 0, "a count above every range stays");
}

Test(plan, window_promotion)
{
    tier_policy p;
    window_policy(&p);
    tier_policy_item it[] = {item(1, B, 10, 150), item(2, B, 10, 50), item(3, B, 10, 9)};
    plan_out o = plan(&p, it, 3, NOW);
    cr_assert_eq(o.n, 2);
    cr_assert_eq(move_of(&o, 1)->to, G);
    cr_assert_eq(move_of(&o, 1)->gap, 50);
    cr_assert_eq(move_of(&o, 2)->to, S);
    cr_assert_eq(o.sum.files_after[G], 1);
    cr_assert_eq(o.sum.files_after[B], 1);
}

Test(plan, hysteresis_band)
{
    tier_policy p;
    window_policy(&p); /* gold 100, demote below 80; silver 10, below 8 */
    tier_policy_item it[] = {item(1, G, 10, 90), item(2, G, 10, 80), item(3, G, 10, 79),
                             item(4, B, 10, 90), item(5, S, 10, 8),  item(6, S, 10, 7)};
    plan_out o = plan(&p, it, 6, NOW);
    cr_assert_null(move_of(&o, 1), "inside the band: stays on gold");
    cr_assert_null(move_of(&o, 2), "at demote_below: stays");
    cr_assert_eq(move_of(&o, 3)->to, S, "below the band: to its score's level");
    cr_assert_eq(move_of(&o, 3)->gap, 1);
    cr_assert_eq(move_of(&o, 4)->to, S, "from below, the band is not enough for gold");
    cr_assert_null(move_of(&o, 5));
    cr_assert_eq(move_of(&o, 6)->to, B);
    cr_assert_eq(o.n, 3);
}

Test(plan, decayed_scores_against_scaled_lines)
{
    tier_policy p;
    window_policy(&p); /* gold 100 (80), silver 10 (8) views: 1/1000 views with a half-life */
    p.half_life_s = 3600;
    tier_policy_item it[] = {item(1, G, 10, 80000), item(2, G, 10, 79999), item(3, B, 10, 99999),
                             item(4, B, 10, 100000), item(5, S, 10, 7999)};
    plan_out o = plan(&p, it, 5, NOW);
    cr_assert_null(move_of(&o, 1), "at demote_below: stays");
    cr_assert_eq(move_of(&o, 2)->to, S, "0.001 view below the band");
    cr_assert_eq(move_of(&o, 2)->gap, 1);
    cr_assert_eq(move_of(&o, 3)->to, S);
    cr_assert_eq(move_of(&o, 4)->to, G);
    cr_assert_eq(move_of(&o, 5)->to, B);
    cr_assert_eq(o.n, 4);
}

Test(plan, idle_demotes_to_the_bottom)
{
    tier_policy p;
    window_policy(&p);
    p.demote_after_s = 3600;
    tier_policy_item it[] = {item(1, G, 10, 500), item(2, G, 10, 500), item(3, B, 10, 0)};
    it[0].last_access_ms = NOW - 2 * HOUR_MS;
    it[1].last_access_ms = NOW - HOUR_MS + 1000;
    it[2].last_access_ms = 0;
    plan_out o = plan(&p, it, 3, NOW);
    cr_assert_eq(o.n, 1);
    cr_assert_eq(o.mv[0].cid, 1);
    cr_assert_eq(o.mv[0].to, B);
    cr_assert_eq(o.mv[0].rule, TIER_POLICY_RULE_IDLE);
    cr_assert_eq(o.mv[0].gap, 7200);
    cr_assert_str_eq(tier_policy_rule_name(o.mv[0].rule), "idle");
}

Test(plan, idle_counts_from_the_last_move)
{
    tier_policy p;
    window_policy(&p);
    p.demote_after_s = 3600;
    tier_policy_item it[] = {item(1, G, 10, 500)};
    it[0].last_access_ms = 0;          /* never viewed ... */
    it[0].since_ms = NOW - 600 * 1000; /* ... but promoted ten minutes ago */
    plan_out o = plan(&p, it, 1, NOW);
    cr_assert_eq(o.n, 0);
}

Test(plan, dwell_holds_a_recent_move)
{
    tier_policy p;
    window_policy(&p);
    p.dwell_s = 3600;
    tier_policy_item it[] = {item(1, S, 10, 500), item(2, S, 10, 500)};
    it[0].since_ms = NOW - 10 * 60000;
    it[1].since_ms = NOW - HOUR_MS;
    plan_out o = plan(&p, it, 2, NOW);
    cr_assert_eq(o.n, 1);
    cr_assert_eq(o.mv[0].cid, 2);
    cr_assert_eq(o.sum.held_dwell, 1);
    cr_assert_eq(o.sum.files_after[S], 1, "the held one counts where it is");
}

Test(plan, capacity_keeps_the_most_views_per_byte)
{
    tier_policy p;
    window_policy(&p);
    p.levels[1].capacity_bytes = 1000;
    /* Densities: 1: 0.2, 2: 0.6, 3: 0.3 views per byte; room for two. */
    tier_policy_item it[] = {item(1, B, 500, 100), item(2, B, 500, 300), item(3, B, 500, 150)};
    plan_out o = plan(&p, it, 3, NOW);
    cr_assert_eq(move_of(&o, 2)->to, G);
    cr_assert_eq(move_of(&o, 3)->to, G);
    cr_assert_eq(move_of(&o, 1)->to, S, "waits one level down");
    cr_assert_eq(move_of(&o, 1)->rule, TIER_POLICY_RULE_CAPACITY);
    cr_assert_eq(o.sum.held_capacity, 1);
    cr_assert_eq(o.sum.bytes_after[G], 1000);
}

Test(plan, capacity_demotes_the_least_dense)
{
    tier_policy p;
    window_policy(&p);
    p.levels[1].capacity_bytes = 1000;
    /* The incumbent's 110 counts as 137 (20% hysteresis): still the least. */
    tier_policy_item it[] = {item(1, G, 500, 110), item(2, B, 500, 1000), item(3, S, 500, 900)};
    plan_out o = plan(&p, it, 3, NOW);
    cr_assert_eq(move_of(&o, 1)->to, S);
    cr_assert_eq(move_of(&o, 1)->rule, TIER_POLICY_RULE_CAPACITY);
    cr_assert_eq(move_of(&o, 2)->to, G);
    cr_assert_eq(move_of(&o, 3)->to, G);
    /* Promotions first even though the demotion frees their room. */
    cr_assert_eq(o.mv[2].cid, 1);
}

Test(plan, capacity_incumbent_keeps_its_place_on_near_ties)
{
    tier_policy p;
    window_policy(&p);
    p.levels[1].capacity_bytes = 500;
    tier_policy_item it[] = {item(1, G, 500, 110), item(2, B, 500, 120)};
    plan_out o = plan(&p, it, 2, NOW);
    cr_assert_null(move_of(&o, 1), "110 / 0.8 > 120: no swap");
    cr_assert_eq(move_of(&o, 2)->to, S);
}

Test(plan, items_with_jobs_count_where_they_go)
{
    tier_policy p;
    window_policy(&p);
    p.levels[1].capacity_bytes = 1000;
    tier_policy_item it[] = {item(1, B, 800, 5), item(2, B, 500, 1000)};
    it[0].moving_to = G; /* its job stands, whatever its score now says */
    plan_out o = plan(&p, it, 2, NOW);
    cr_assert_null(move_of(&o, 1));
    cr_assert_eq(move_of(&o, 2)->to, S, "gold's room is taken by the job");
    cr_assert_eq(o.sum.bytes_now[G], 800);
    cr_assert_eq(o.sum.bytes_now[B], 1300, "a moving file counts at both ends");
    cr_assert_eq(o.sum.bytes_after[G], 800);
}

Test(plan, foreign_levels_left_alone)
{
    tier_policy p;
    window_policy(&p);
    tier_policy_item it[] = {item(1, 7, 10, 500), item(2, -1, 10, 500)};
    plan_out o = plan(&p, it, 2, NOW);
    cr_assert_eq(o.n, 0);
}

/* ------------------------------------------------------------ start */

typedef struct {
    tier_policy p;
    tier_policy_level lv[3];
    tier_policy_gate g;
    tier_policy_summary sum;
    tier_policy_start_stats st;
    bool go[8];
} gate_fx;

static void gate_setup(gate_fx *f, tier_policy_budget b, int64_t gold_capacity)
{
    memset(f, 0, sizeof(*f));
    window_policy(&f->p);
    f->p.levels[1].capacity_bytes = gold_capacity;
    if (b.files_per_s > 0 || b.bytes_per_s > 0) {
        f->p.nbudgets = 1;
        f->p.budgets[0] = b;
    }
    cr_assert_eq(resolve(&f->p, f->lv), 0, "%s", err);
    tier_policy_gate_init(&f->g, 0);
}

static size_t start(gate_fx *f, const tier_policy_move *mv, size_t n, int64_t now, size_t room)
{
    return tier_policy_start(&f->p, f->lv, 3, &f->g, now, mv, n, room, &f->sum, f->go, &f->st);
}

static tier_policy_move mv(int64_t cid, int from, int to, int64_t size)
{
    return (tier_policy_move){cid, from, to, TIER_POLICY_RULE_RANGE, 0, size, 0};
}

Test(start, files_per_second_throttles_and_refills)
{
    gate_fx f;
    tier_policy_move m[5] = {mv(1, B, S, 1), mv(2, B, S, 1), mv(3, B, S, 1), mv(4, B, S, 1),
                             mv(5, B, S, 1)};
    gate_setup(&f, (tier_policy_budget){"", "", 2, 0}, 0);
    cr_assert_eq(start(&f, m, 5, 0, 100), 2, "a full bucket: one second's worth");
    cr_assert(f.go[0] && f.go[1] && !f.go[2]);
    cr_assert_eq(f.st.throttled, 3);
    cr_assert_eq(start(&f, m + 2, 3, 0, 100), 0);
    cr_assert_eq(start(&f, m + 2, 3, 500, 100), 1, "half a second: one more");
    cr_assert_eq(start(&f, m + 3, 2, 60000, 100), 2, "a minute idle still holds one second");
}

Test(start, bytes_per_second_allows_one_move_of_debt)
{
    gate_fx f;
    tier_policy_move m[3] = {mv(1, B, S, 600), mv(2, B, S, 600), mv(3, B, S, 600)};
    gate_setup(&f, (tier_policy_budget){"", "", 0, 1000}, 0);
    cr_assert_eq(start(&f, m, 3, 0, 100), 2, "1000 - 600 > 0: the second goes into debt");
    cr_assert_eq(f.st.throttled_bytes, 600);
    cr_assert_eq(start(&f, m + 2, 1, 100, 100), 0, "-200 + 100 is still in debt");
    cr_assert_eq(start(&f, m + 2, 1, 300, 100), 1);
}

Test(start, budgets_match_by_level)
{
    gate_fx f;
    tier_policy_move m[3] = {mv(1, B, G, 1), mv(2, B, G, 1), mv(3, S, B, 1)};
    gate_setup(&f, (tier_policy_budget){"bronze", "gold", 1, 0}, 0);
    cr_assert_eq(start(&f, m, 3, 0, 100), 2);
    cr_assert(f.go[0] && !f.go[1] && f.go[2], "only bronze -> gold is limited");
}

Test(start, capacity_makes_moves_wait)
{
    gate_fx f;
    tier_policy_move m[3] = {mv(1, B, G, 300), mv(2, B, G, 200), mv(3, B, S, 5000)};
    gate_setup(&f, (tier_policy_budget){"", "", 0, 0}, 1000);
    f.sum.bytes_now[G] = 800;
    cr_assert_eq(start(&f, m, 3, 0, 100), 2);
    cr_assert(!f.go[0] && f.go[1] && f.go[2]);
    cr_assert_eq(f.st.waiting_capacity, 1);
    cr_assert_eq(f.sum.bytes_now[G], 1000);
    cr_assert_eq(f.sum.files_now[G], 1);
    cr_assert_eq(f.sum.bytes_now[S], 5000);
}

Test(start, room_limits_the_count)
{
    gate_fx f;
    tier_policy_move m[3] = {mv(1, B, S, 1), mv(2, B, S, 1), mv(3, 9, S, 1)};
    gate_setup(&f, (tier_policy_budget){"", "", 0, 0}, 0);
    cr_assert_eq(start(&f, m, 3, 0, 1), 1);
    cr_assert(f.go[0] && !f.go[1] && !f.go[2]);
    cr_assert_eq(f.st.throttled, 1, "the out-of-table move is skipped, not throttled");
    cr_assert_eq(f.st.started, 1);
}

Test(plan, capacity_with_a_huge_incumbent_score)
{
    tier_policy p;
    window_policy(&p);
    p.levels[1].capacity_bytes = 1000;
    /* The incumbent's boost (score / 0.8) must not overflow into a negative
     * rank that would sort the most viewed content last. */
    tier_policy_item it[] = {item(1, G, 500, INT64_MAX), item(2, B, 500, 1000),
                             item(3, B, 500, 900)};
    plan_out o = plan(&p, it, 3, NOW);
    cr_assert_null(move_of(&o, 1), "the most viewed content stays on gold");
    cr_assert_eq(move_of(&o, 2)->to, G);
    cr_assert_eq(move_of(&o, 3)->to, S);
}

/* A content seen for less than a window has its views scaled to a whole
 * window (a rate), from when it was added or counting began, whichever is
 * later, at least one bucket; older ones, unknown birth and decayed scores
 * are left as they are. */
Test(plan, young_contents_are_scaled_to_a_window)
{
    tier_policy p;
    tier_policy_level lv[3];
    tier_policy_item it = item(1, 0, 100, 10);

    window_policy(&p); /* 7 days of 1-hour buckets */
    cr_assert_eq(resolve(&p, lv), 0, "%s", err);
    it.born_ms = NOW - 2 * HOUR_MS;
    cr_expect_eq(tier_policy_score(&p, &it, NOW), 10 * 168 / 2);
    it.born_ms = NOW - 10 * 60000; /* 10 minutes: one bucket at least */
    cr_expect_eq(tier_policy_score(&p, &it, NOW), 10 * 168);
    it.born_ms = NOW - 200 * HOUR_MS; /* older than the window */
    cr_expect_eq(tier_policy_score(&p, &it, NOW), 10);
    it.born_ms = 0; /* unknown */
    cr_expect_eq(tier_policy_score(&p, &it, NOW), 10);
    it.born_ms = NOW - 200 * HOUR_MS; /* old, but counted only for 4 hours */
    p.counting_since_ms = NOW - 4 * HOUR_MS;
    cr_expect_eq(tier_policy_score(&p, &it, NOW), 10 * 168 / 4);
    it.score = INT64_MAX / 2; /* saturates */
    cr_expect_eq(tier_policy_score(&p, &it, NOW), INT64_MAX);
    /* The plan promotes on the scaled score: 10 views in 2 hours is 840 a week. */
    it = item(1, 0, 100, 10);
    it.born_ms = NOW - 2 * HOUR_MS;
    p.counting_since_ms = 0;
    tier_policy_rule rule;
    cr_expect_eq(tier_policy_want(&p, lv, 3, &it, NOW, &rule), 2);
}
