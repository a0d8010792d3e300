/*
 * test_rank_compact.c -- the ranking index with compacted history
 * (rank/rank_compact.c) against a brute-force oracle.
 *
 * Small granules (4^2 or 4^3 minutes) and a short detail horizon make the
 * index compact often; the streams backfill into compacted minutes too.
 * The fringe provider is in-process: it sums the test's own event log, as
 * tierd sums comment_minute.  Random windows with edges anywhere (aligned,
 * unaligned, old, recent, straddling the horizon, inside one granule),
 * INCREASE and DECREASE, one service and all, must match brute force.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rank_brute.h"
#include "tier_rank.h"
#include "tier_status.h"

/* The random streams' seed (rank_brute.h). */
uint64_t rng_state = 0x1234567ULL;

/* ---- the in-process fringe provider ---- */

typedef struct {
    const event_log *lg;
    int calls;
    int fail;           /* status to return instead, 0: none */
    tier_rank *advance; /* if set: move this index's open minute on the first call */
    int64_t advance_to;
    int64_t max_len;      /* the longest range asked for */
    int64_t minutes;      /* minutes asked for, in all */
    int64_t asked[16][2]; /* the first ranges asked for */
    int nasked;
} provider;

static int fringe_from_log(void *ctx, const char *service, int64_t from, int64_t to,
                           tier_rank_fringe *sink)
{
    provider *p = ctx;
    p->calls++;
    if (to - from > p->max_len)
        p->max_len = to - from;
    p->minutes += to - from;
    if (p->nasked < 16) {
        p->asked[p->nasked][0] = from;
        p->asked[p->nasked++][1] = to;
    }
    if (p->fail)
        return p->fail;
    if (p->advance != NULL) {
        tier_rank_set_now(p->advance, p->advance_to); /* the horizon moves under the query */
        p->advance = NULL;
    }
    /* one row per event: the sink must add rows of the same content */
    for (size_t i = 0; i < p->lg->n; i++) {
        const tier_rank_event *e = &p->lg->ev[i];
        if (e->minute < from || e->minute >= to)
            continue;
        if (service && service[0] && strcmp(service, e->service) != 0)
            continue;
        cr_assert_eq(tier_rank_fringe_add(sink, e), TIER_OK);
    }
    return TIER_OK;
}

/* A window with an edge picked to hit the interesting places. */
static void compact_window(int64_t start, int64_t now, int64_t retention, int64_t g, int64_t *from,
                           int64_t *to)
{
    random_window(start, now + 1, retention, from, to);
    switch (rnd() % 6) {
    case 0: /* both edges unaligned, old */
        *from = rnd_range(start, now);
        *to = *from + rnd_range(1, 3 * g);
        break;
    case 1: /* inside one granule */
        *from = rnd_range(start, now) / g * g + rnd_range(0, g - 2);
        *to = *from + rnd_range(1, g - (*from % g));
        break;
    case 2: /* aligned edges */
        *from = rnd_range(start, now) / g * g;
        *to = *from + g * rnd_range(1, 20);
        break;
    default:
        break;
    }
    if (*to - *from > retention)
        *to = *from + retention;
    if (*from < now + 1 - retention) { /* what expiry dropped is not compared */
        *from = now + 1 - retention;
        if (*to <= *from)
            *to = *from + 1 + (int64_t)(rnd() % 5);
    }
}

static void run_random(int64_t retention, int64_t detail, int level, int steps)
{
    tier_rank *r = NULL, *plain = NULL;
    const char *seed = getenv("TIER_TEST_SEED"); /* other streams, same checks */
    if (seed != NULL && strtoull(seed, NULL, 10) != 0)
        rng_state = strtoull(seed, NULL, 10);
    cr_assert_eq(tier_rank_alloc(&r, retention), TIER_OK);
    cr_assert_eq(tier_rank_alloc(&plain, retention), TIER_OK);
    cr_assert_eq(tier_rank_set_compaction(r, detail, level), TIER_OK);
    event_log lg = {0};
    provider p = {.lg = &lg};
    tier_rank_set_fringe_provider(r, fringe_from_log, &p);
    int64_t g = (int64_t)1 << (2 * level);
    tier_rank_event batch[64];
    int64_t start = BASE_MINUTE + 77, now = start;
    int queries = 0;
    for (int step = 0; step < steps; step++) {
        size_t n = make_batch(batch, 64, now, start);
        cr_assert_eq(tier_rank_add_batch(plain, batch, n), TIER_OK);
        feed(r, &lg, batch, n);
        if (rnd() % 3 == 0)
            now += rnd_range(1, rnd() % 10 == 0 ? 40 : 4);
        if (rnd() % 7 == 0) {
            tier_rank_set_now(r, now);
            tier_rank_set_now(plain, now);
        }
        if (step % 2 == 0) {
            int64_t from, to;
            compact_window(start, now, retention, g, &from, &to);
            check_query(r, &lg, 0, random_service(), from, to, (int)(rnd() % 2), random_limit());
            queries++;
        }
    }
    for (int i = 0; i < 600; i++) {
        int64_t from, to;
        compact_window(start, now, retention, g, &from, &to);
        check_query(r, &lg, 0, random_service(), from, to, (int)(rnd() % 2), random_limit());
        queries++;
    }
    cr_assert_gt(p.calls, 100, "the fringe was used %d times", p.calls);
    /* the shorter side of each granule: never more than half of it */
    cr_assert_leq(p.max_len, g / 2, "asked for %ld minutes at once", (long)p.max_len);
    cr_assert_lt(tier_rank_memory(r), tier_rank_memory(plain), "compacted %zu, plain %zu",
                 tier_rank_memory(r), tier_rank_memory(plain));
    tier_rank_free(r);
    tier_rank_free(plain);
    free(lg.ev);
}

Test(rank_compact, random_windows_match_brute_force_g16)
{
    run_random(4096, 64, 2, 2500);
}

Test(rank_compact, random_windows_match_brute_force_g64)
{
    run_random(4096, 100, 3, 2500);
}

Test(rank_compact, short_retention_expiry_and_compaction)
{
    run_random(300, 40, 2, 2500);
}

/* An old window with an edge inside a compacted granule needs the
 * provider; an aligned one does not. */
Test(rank_compact, provider_needed_only_for_unaligned_old_edges)
{
    tier_rank *r = NULL;
    cr_assert_eq(tier_rank_alloc(&r, 4096), TIER_OK);
    cr_assert_eq(tier_rank_set_compaction(r, 32, 2), TIER_OK);
    event_log lg = {0};
    int64_t m0 = BASE_MINUTE; /* a multiple of 16 */
    for (int64_t m = m0; m < m0 + 200; m++) {
        tier_rank_event e = random_event(m);
        feed(r, &lg, &e, 1);
    }
    tier_rank_row rows[10];
    size_t n;
    cr_assert_eq(tier_rank_top(r, NULL, m0, m0 + 64, 0, 10, rows, &n), TIER_OK);
    check_query(r, &lg, 0, NULL, m0 + 16, m0 + 190, 1, 10); /* old edge aligned, new in detail */
    cr_assert_eq(tier_rank_top(r, NULL, m0 + 3, m0 + 64, 0, 10, rows, &n),
                 TIER_FAILED_PRECONDITION);
    provider p = {.lg = &lg, .fail = TIER_UNAVAILABLE};
    tier_rank_set_fringe_provider(r, fringe_from_log, &p);
    cr_assert_eq(tier_rank_top(r, NULL, m0 + 3, m0 + 64, 0, 10, rows, &n), TIER_UNAVAILABLE);
    p.fail = 0;
    check_query(r, &lg, 0, NULL, m0 + 3, m0 + 64, 0, 10);
    cr_assert_eq(p.calls, 2);
    cr_assert_eq(tier_rank_set_compaction(r, 32, 2), TIER_FAILED_PRECONDITION); /* not after data */
    tier_rank_free(r);
    free(lg.ev);
}

Test(rank_compact, invalid_settings)
{
    tier_rank *r = NULL;
    cr_assert_eq(tier_rank_alloc(&r, 4096), TIER_OK); /* levels 0..6 */
    cr_assert_eq(tier_rank_set_compaction(r, 10, 0), TIER_INVALID_ARGUMENT);
    cr_assert_eq(tier_rank_set_compaction(r, 10, 7), TIER_INVALID_ARGUMENT);
    cr_assert_eq(tier_rank_set_compaction(r, -1, 2), TIER_INVALID_ARGUMENT);
    cr_assert_eq(tier_rank_set_compaction(r, 5000, 2), TIER_INVALID_ARGUMENT);
    cr_assert_eq(tier_rank_set_compaction(r, 0, 0), TIER_OK);
    cr_assert_eq(tier_rank_fringe_add(NULL, NULL), TIER_INVALID_ARGUMENT);
    tier_rank_free(r);
}

/* The horizon moves between the fringe read and the query: the query sees
 * it and reads the fringe again. */
Test(rank_compact, horizon_moving_during_the_fringe_read)
{
    tier_rank *r = NULL;
    cr_assert_eq(tier_rank_alloc(&r, 4096), TIER_OK);
    cr_assert_eq(tier_rank_set_compaction(r, 32, 2), TIER_OK);
    event_log lg = {0};
    int64_t m0 = BASE_MINUTE;
    for (int64_t m = m0; m < m0 + 100; m++) {
        for (int k = 0; k < 5; k++) {
            tier_rank_event e = random_event(m);
            feed(r, &lg, &e, 1);
        }
    }
    /* [m0+50, m0+70): detail now (horizon m0+64), compacted after the move */
    provider p = {.lg = &lg, .advance = r, .advance_to = m0 + 140};
    tier_rank_set_fringe_provider(r, fringe_from_log, &p);
    check_query(r, &lg, 0, NULL, m0 + 3, m0 + 70, 0, 50);
    cr_assert_geq(p.calls, 2);
    check_query(r, &lg, 0, "alpha", m0 + 50, m0 + 70, 1, 50);
    tier_rank_free(r);
    free(lg.ev);
}

/* Whether (service, cid) is among rows[0..n). */
static int has_row(const tier_rank_row *rows, size_t n, const char *service, int64_t cid)
{
    for (size_t i = 0; i < n; i++)
        if (rows[i].cid == cid && strcmp(rows[i].service, service) == 0)
            return 1;
    return 0;
}

/* Edges past the middle of their granule: the provider is asked for the
 * shorter side (the complement) and the index derives the part the window
 * needs from the granule totals.  Contents with events only on the
 * complement side must not become (zero-sum) candidates; contents with
 * events only on the needed side must still be there, with their sums. */
Test(rank_compact, shorter_side_of_the_granule)
{
    tier_rank *r = NULL;
    cr_assert_eq(tier_rank_alloc(&r, 4096), TIER_OK);
    cr_assert_eq(tier_rank_set_compaction(r, 32, 2), TIER_OK); /* G = 16 */
    event_log lg = {0};
    int64_t m0 = BASE_MINUTE; /* a multiple of 16 */
    for (int64_t m = m0; m <= m0 + 200; m++) {
        for (int k = 0; k < 6; k++) {
            tier_rank_event e = random_event(m);
            if (e.cid > 290) /* 291..299 are the marked contents below */
                e.cid -= 10;
            feed(r, &lg, &e, 1);
        }
    }
    /* alpha/291 only on the left complement side, 292 only on its needed
     * side, 293 on both (+1, then -1: net 0 in the window); beta/294 only
     * on the right complement side, 295 only on its needed side */
    tier_rank_event marked[] = {
        {"alpha", 291, m0 + 1, 1, 1, 0, 0},  {"alpha", 292, m0 + 5, 1, 1, 0, 0},
        {"alpha", 293, m0 + 1, 1, 1, 0, 0},  {"alpha", 293, m0 + 6, -1, 0, 1, 0},
        {"alpha", 293, m0 + 90, 1, 0, 0, 1}, {"beta", 294, m0 + 46, -1, 0, 1, 0},
        {"beta", 295, m0 + 40, -1, 0, 1, 0},
    };
    feed(r, &lg, marked, sizeof(marked) / sizeof(marked[0])); /* backfill, compacted */
    provider p = {.lg = &lg};
    tier_rank_set_fringe_provider(r, fringe_from_log, &p);
    static const int64_t win[][2] = {
        {3, 90},  /* left needs 13 of 16: reads [0, 3); right needs 10: reads [90, 96) */
        {3, 45},  /* right needs 13: reads [45, 48) */
        {1, 14},  /* one granule, needs 13: reads [0, 1) and [14, 16) */
        {7, 25},  /* both need 9: read [0, 7) and [25, 32) */
        {12, 36}, /* both need 4: read themselves */
        {8, 24},  /* both need exactly half: read themselves */
        {2, 150}, {15, 131},
    };
    static const char *svcs[] = {NULL, "alpha", "beta"};
    static const uint32_t limits[] = {1, 5, 1000};
    for (size_t w = 0; w < sizeof(win) / sizeof(win[0]); w++)
        for (int s = 0; s < 3; s++)
            for (int dec = 0; dec < 2; dec++)
                for (int l = 0; l < 3; l++)
                    check_query(r, &lg, 0, svcs[s], m0 + win[w][0], m0 + win[w][1], dec, limits[l]);
    cr_assert_leq(p.max_len, 8, "asked for %ld minutes at once", (long)p.max_len);

    /* which ranges were asked for */
    p.nasked = 0;
    check_query(r, &lg, 0, NULL, m0 + 3, m0 + 90, 0, 10);
    cr_assert_eq(p.nasked, 2);
    cr_assert(p.asked[0][0] == m0 && p.asked[0][1] == m0 + 3);
    cr_assert(p.asked[1][0] == m0 + 90 && p.asked[1][1] == m0 + 96);
    p.nasked = 0;
    check_query(r, &lg, 0, "alpha", m0 + 1, m0 + 14, 1, 10);
    cr_assert_eq(p.nasked, 2);
    cr_assert(p.asked[0][0] == m0 && p.asked[0][1] == m0 + 1);
    cr_assert(p.asked[1][0] == m0 + 14 && p.asked[1][1] == m0 + 16);
    p.nasked = 0;
    check_query(r, &lg, 0, "beta", m0 + 12, m0 + 36, 0, 10);
    cr_assert_eq(p.nasked, 2);
    cr_assert(p.asked[0][0] == m0 + 12 && p.asked[0][1] == m0 + 16);
    cr_assert(p.asked[1][0] == m0 + 32 && p.asked[1][1] == m0 + 36);

    /* the marked contents, all rows of a small window */
    static tier_rank_row rows[TIER_RANK_LIMIT_MAX];
    size_t n = 0;
    cr_assert_eq(tier_rank_top(r, "alpha", m0 + 3, m0 + 16, 1, 1000, rows, &n), TIER_OK);
    cr_assert(!has_row(rows, n, "alpha", 291), "a complement-only content became a candidate");
    cr_assert(has_row(rows, n, "alpha", 292));
    cr_assert(has_row(rows, n, "alpha", 293));
    cr_assert_eq(tier_rank_top(r, "beta", m0 + 32, m0 + 45, 1, 1000, rows, &n), TIER_OK);
    cr_assert(!has_row(rows, n, "beta", 294), "a complement-only content became a candidate");
    cr_assert(has_row(rows, n, "beta", 295));
    tier_rank_free(r);
    free(lg.ev);
}
