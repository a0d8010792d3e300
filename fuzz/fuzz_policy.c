/*
 * fuzz_policy.c -- libFuzzer target: the tiering policy (policy/) on hostile
 * numbers.  The input is read as a policy (every field, level rules and
 * budgets included), a level table and a list of contents; every field is
 * a peer's number in tierd (SetPolicy, reports, sizes), so UBSan's overflow
 * checks are the point.  Properties checked beyond "no crash": a policy
 * resolve accepts has rising promotion lines with demotion lines at or
 * below them; a plan moves only contents with no job, between levels of
 * the table, never from a level to itself; the start gate starts at most
 * `room` moves and never fills a level over its capacity.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tier_policy.h"

typedef struct {
    const uint8_t *p;
    size_t n;
} input;

static uint64_t take(input *in, size_t bytes)
{
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; i++) {
        v = v << 8 | (in->n ? *in->p : 0);
        if (in->n) {
            in->p++;
            in->n--;
        }
    }
    return v;
}

static int64_t take_i64(input *in)
{
    return (int64_t)take(in, 8);
}

static const char *const NAMES[] = {"bronze", "silver", "gold", "platinum", "nope", ""};

static void read_policy(input *in, tier_policy *p)
{
    memset(p, 0, sizeof(*p));
    p->mode = take(in, 1) & 1 ? TIER_POLICY_WINDOW : TIER_POLICY_SEED;
    p->window_s = take_i64(in);
    p->bucket_s = take_i64(in);
    p->demote_after_s = take_i64(in);
    p->hysteresis_pct = (int32_t)take(in, 4);
    p->dwell_s = take_i64(in);
    p->plan_interval_s = take_i64(in);
    p->max_inflight = (int32_t)take(in, 4);
    p->counting_since_ms = take_i64(in);
    p->nlevels = take(in, 1) % 5;
    for (size_t i = 0; i < p->nlevels; i++) {
        strcpy(p->levels[i].level, NAMES[take(in, 1) % 6]);
        p->levels[i].min_views = take_i64(in);
        p->levels[i].demote_below = take_i64(in);
        p->levels[i].capacity_bytes = take_i64(in);
    }
    p->nbudgets = take(in, 1) % 4;
    for (size_t i = 0; i < p->nbudgets; i++) {
        strcpy(p->budgets[i].from, NAMES[take(in, 1) % 6]);
        strcpy(p->budgets[i].to, NAMES[take(in, 1) % 6]);
        p->budgets[i].files_per_s = (double)take(in, 4) / 16.0;
        p->budgets[i].bytes_per_s = (double)take(in, 6);
    }
}

/* Moves only between levels of the table, for contents with no job. */
static void check_moves(const tier_policy_item *it, size_t n, const tier_policy_move *mv, size_t nm,
                        size_t nlv)
{
    for (size_t k = 0; k < nm; k++) {
        if (mv[k].from == mv[k].to || mv[k].from < 0 || mv[k].to < 0 || (size_t)mv[k].from >= nlv ||
            (size_t)mv[k].to >= nlv)
            abort();
        for (size_t i = 0; i < n; i++)
            if (it[i].cid == mv[k].cid && it[i].moving_to >= 0)
                abort(); /* a content with a job was planned again */
    }
}

static void run_plan(input *in, const tier_policy *p, const tier_policy_level *lv, size_t nlv)
{
    tier_policy_item it[16];
    tier_policy_move mv[16];
    tier_policy_summary sum;
    tier_policy_start_stats st;
    tier_policy_gate g;
    bool go[16];
    size_t n = take(in, 1) % 17, nm = 0, room = take(in, 1) % 8;
    int64_t now = take_i64(in);
    int64_t before[TIER_POLICY_LEVELS_MAX];

    for (size_t i = 0; i < n; i++) {
        it[i] = (tier_policy_item){(int64_t)i,
                                   (int)(take(in, 1) % (nlv + 1)) - 1,
                                   (int)(take(in, 1) % (nlv + 2)) - 2,
                                   take_i64(in),
                                   take_i64(in),
                                   take_i64(in),
                                   take_i64(in),
                                   take_i64(in)};
        if (it[i].moving_to < -1)
            it[i].moving_to = -1;
    }
    if (tier_policy_plan(p, lv, nlv, it, n, now, mv, &nm, &sum) != 0)
        return;
    check_moves(it, n, mv, nm, nlv);
    memcpy(before, sum.bytes_now, sizeof(before));
    tier_policy_gate_init(&g, now);
    if (tier_policy_start(p, lv, nlv, &g, take_i64(in), mv, nm, room, &sum, go, &st) > room)
        abort();
    for (size_t l = 0; l < nlv; l++)
        if (lv[l].capacity_bytes > 0 && sum.bytes_now[l] > before[l] &&
            sum.bytes_now[l] > lv[l].capacity_bytes)
            abort(); /* the gate filled a level over its capacity */
}

static void run_views(input *in)
{
    tier_policy_views *v = tier_policy_views_alloc((unsigned)(take(in, 2) % 800));
    int64_t bs = 60 + (int64_t)(take(in, 2) % 86341);

    if (v == NULL)
        return;
    for (int i = 0; i < 8; i++)
        tier_policy_views_add(v, bs, take_i64(in), take_i64(in));
    if (tier_policy_views_sum(v, bs, take_i64(in), take_i64(in)) < 0)
        abort();
    tier_policy_views_free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input in = {data, size};
    tier_policy p;
    tier_policy_level lv[4];
    const char *names[4] = {"bronze", "silver", "gold", "platinum"};
    int64_t mins[4], maxs[4];
    size_t nlv = 1 + take(&in, 1) % 4;
    char err[256];

    read_policy(&in, &p);
    for (size_t i = 0; i < nlv; i++) {
        mins[i] = take_i64(&in);
        maxs[i] = take_i64(&in);
    }
    if (tier_policy_resolve(&p, names, mins, maxs, nlv, lv, err, sizeof(err)) == 0) {
        for (size_t i = 0; i < nlv; i++)
            if (lv[i].demote_below > lv[i].min_views ||
                (i > 0 && lv[i].min_views <= lv[i - 1].min_views))
                abort();
        run_plan(&in, &p, lv, nlv);
    }
    run_views(&in);
    return 0;
}
