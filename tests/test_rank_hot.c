/*
 * test_rank_hot.c -- the hot order and paging of the ranking index against
 * brute force.
 *
 * HOT: random creates, deletes and restores over three services, mostly in
 * the newest minute but also backfilled into older ones, several
 * half-lives (60 s makes the index rebase its scores every 500 minutes);
 * every answer is compared with the formula of tier_rank.h summed
 * directly.  Scores are doubles, so two rows may swap only where their
 * brute-force scores agree to 1e-9 relative.
 *
 * Paging: walking every page of a ranking (HOT, INCREASE, DECREASE, random
 * windows and page sizes) with the key of each page's last row gives
 * exactly the single-query answer, no row repeated or skipped.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rank_brute.h"
#include "tier_rank.h"
#include "tier_status.h"

#define ALL (TIER_RANK_LIMIT_MAX + 1) /* more than NSVC * NCID */

/* The random streams' seed (rank_brute.h). */
uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

/* Feeds one random batch: mostly the newest minute, some backfill. */
static void feed_random(tier_rank *r, event_log *lg, int64_t now, int64_t oldest)
{
    tier_rank_event batch[64];
    size_t n = (size_t)rnd_range(1, 64);
    for (size_t i = 0; i < n; i++) {
        int64_t m = now;
        if (rnd() % 8 == 0 && now > oldest)
            m = rnd_range(oldest, now); /* backfill */
        batch[i] = random_event(m);
    }
    feed(r, lg, batch, n);
}

/* ---- the brute-force hot order ---- */

typedef struct {
    int svc, seen;
    int64_t cid, change, created, deleted, restored;
    double hot, mag; /* mag: sum of |terms|, the scale of rounding errors */
} hot_agg;

static hot_agg table[NSVC][NCID + 1];

static int hot_cmp(const void *pa, const void *pb)
{
    const hot_agg *a = pa, *b = pb;
    if (a->hot != b->hot)
        return a->hot > b->hot ? -1 : 1;
    if (a->cid != b->cid)
        return a->cid < b->cid ? -1 : 1;
    return strcmp(svc_names[a->svc], svc_names[b->svc]);
}

static size_t hot_oracle(const event_log *lg, int64_t min_minute, const char *service, int64_t now,
                         int64_t half_life_s, hot_agg *out)
{
    memset(table, 0, sizeof(table));
    int want = service && service[0] ? svc_index(service) : -1;
    for (size_t i = 0; i < lg->n; i++) {
        const tier_rank_event *e = &lg->ev[i];
        int s = svc_index(e->service);
        if (e->minute < min_minute || (want >= 0 && s != want))
            continue;
        hot_agg *a = &table[s][e->cid];
        double term = e->delta * exp2(-(double)(now - e->minute) * 60.0 / (double)half_life_s);
        a->svc = s;
        a->cid = e->cid;
        a->seen = 1;
        a->change += e->delta;
        a->created += e->created;
        a->deleted += e->deleted;
        a->restored += e->restored;
        a->hot += term;
        a->mag += fabs(term);
    }
    size_t n = 0;
    for (int s = 0; s < NSVC; s++)
        for (int c = 0; c <= NCID; c++)
            if (table[s][c].seen)
                out[n++] = table[s][c];
    qsort(out, n, sizeof(*out), hot_cmp);
    return n;
}

static double tol(const hot_agg *a, const hot_agg *b)
{
    return 1e-9 * (a->mag + b->mag) + 1e-300;
}

static void check_hot(tier_rank *r, const event_log *lg, int64_t min_minute, const char *service,
                      int64_t now, int64_t half_life_s, uint32_t limit)
{
    static hot_agg want[NSVC * (NCID + 1)];
    static tier_rank_row got[ALL];
    size_t nwant = hot_oracle(lg, min_minute, service, now, half_life_s, want), ngot = 0;
    cr_assert_eq(tier_rank_hot(r, service, now, NULL, limit, got, &ngot), TIER_OK);
    cr_assert_eq(ngot, nwant < limit ? nwant : limit, "svc %s limit %u: %zu rows, want %zu",
                 service ? service : "-", limit, ngot, nwant);
    for (size_t i = 0; i < ngot; i++) {
        int s = svc_index(got[i].service);
        cr_assert(s >= 0 && got[i].cid >= 0 && got[i].cid <= NCID);
        hot_agg *g = &table[s][got[i].cid];
        cr_assert(g->seen, "row %zu: %s/%ld has no event", i, got[i].service, (long)got[i].cid);
        cr_assert(fabs(got[i].hot - g->hot) <= tol(g, g), "row %zu %s/%ld: hot %.17g, want %.17g",
                  i, got[i].service, (long)got[i].cid, got[i].hot, g->hot);
        cr_assert(g->change == got[i].change && g->created == got[i].created &&
                      g->deleted == got[i].deleted && g->restored == got[i].restored,
                  "row %zu %s/%ld: counts differ", i, got[i].service, (long)got[i].cid);
        /* in order, up to rounding: a swap only where the scores agree */
        if (i > 0) {
            const hot_agg *p = &table[svc_index(got[i - 1].service)][got[i - 1].cid];
            cr_assert(p->hot >= g->hot - tol(p, g),
                      "svc %s limit %u row %zu: %s/%ld (%.17g) after %s/%ld (%.17g)",
                      service ? service : "-", limit, i, got[i].service, (long)got[i].cid, g->hot,
                      got[i - 1].service, (long)got[i - 1].cid, p->hot);
        }
        cr_assert_eq(g->seen, 1, "row %zu: %s/%ld twice", i, got[i].service, (long)got[i].cid);
        g->seen = 2;
    }
    /* nobody left out who beats the last row */
    if (ngot == 0)
        return;
    const hot_agg *last = &table[svc_index(got[ngot - 1].service)][got[ngot - 1].cid];
    for (size_t k = 0; k < nwant; k++) {
        const hot_agg *x = &table[want[k].svc][want[k].cid];
        cr_assert(x->seen == 2 || x->hot <= last->hot + tol(x, last),
                  "svc %s limit %u: %s/%ld (%.17g) missing, last row %.17g",
                  service ? service : "-", limit, svc_names[x->svc], (long)x->cid, x->hot,
                  last->hot);
    }
}

/* Like random_limit, but up to ALL. */
static uint32_t random_hot_limit(void)
{
    switch (rnd() % 3) {
    case 0:
        return (uint32_t)rnd_range(1, 10);
    case 1:
        return (uint32_t)rnd_range(1, 1000);
    default:
        return ALL;
    }
}

static void hot_run(int64_t half_life_s, int steps, int max_gap)
{
    tier_rank *r = NULL;
    cr_assert_eq(tier_rank_alloc(&r, 1 << 20), TIER_OK);
    cr_assert_eq(tier_rank_set_half_life(r, half_life_s), TIER_OK);
    cr_assert_eq(tier_rank_half_life(r), half_life_s);
    event_log lg = {0};
    int64_t start = BASE_MINUTE + 13, now = start;
    for (int step = 0; step < steps; step++) {
        feed_random(r, &lg, now, start);
        if (rnd() % 3 == 0)
            now += rnd_range(1, max_gap);
        if (step % 3 == 0)
            check_hot(r, &lg, 0, random_service(), now, half_life_s, random_hot_limit());
    }
    /* a later evaluation minute scales every score alike */
    check_hot(r, &lg, 0, NULL, now + 77, half_life_s, ALL);
    tier_rank_free(r);
    free(lg.ev);
}

Test(rank_hot, matches_brute_force_six_hours)
{
    hot_run(TIER_RANK_HOT_HALF_LIFE_S, 1200, 30);
}

Test(rank_hot, matches_brute_force_one_hour)
{
    hot_run(3600, 1200, 10);
}

Test(rank_hot, rebases_with_a_short_half_life)
{
    /* 60 s: 500 half-lives are 500 minutes, passed several times */
    hot_run(60, 1500, 8);
}

Test(rank_hot, odd_half_life)
{
    hot_run(61, 800, 4);
}

Test(rank_hot, changing_the_half_life_recomputes)
{
    tier_rank *r = NULL;
    cr_assert_eq(tier_rank_alloc(&r, 1 << 20), TIER_OK);
    event_log lg = {0};
    int64_t start = BASE_MINUTE, now = start;
    for (int step = 0; step < 400; step++) {
        feed_random(r, &lg, now, start);
        now += rnd() % 3;
    }
    check_hot(r, &lg, 0, NULL, now, TIER_RANK_HOT_HALF_LIFE_S, ALL);
    cr_assert_eq(tier_rank_set_half_life(r, 900), TIER_OK);
    check_hot(r, &lg, 0, NULL, now, 900, ALL);
    check_hot(r, &lg, 0, "alpha", now, 900, 50);
    cr_assert_eq(tier_rank_set_half_life(r, 59), TIER_INVALID_ARGUMENT);
    tier_rank_free(r);
    free(lg.ev);
}

Test(rank_hot, expiry_removes_old_minutes_from_scores)
{
    tier_rank *r = NULL;
    cr_assert_eq(tier_rank_alloc(&r, 1 << 20), TIER_OK);
    cr_assert_eq(tier_rank_set_half_life(r, 600), TIER_OK);
    event_log lg = {0};
    int64_t start = BASE_MINUTE, now = start;
    for (int step = 0; step < 600; step++) {
        feed_random(r, &lg, now, start);
        now += rnd() % 2;
    }
    int64_t cut = start + (now - start) / 2;
    tier_rank_expire(r, cut);
    check_hot(r, &lg, cut, NULL, now, 600, ALL);
    check_hot(r, &lg, cut, "gamma", now, 600, 7);
    tier_rank_expire(r, now + 1);
    tier_rank_row rows[4];
    size_t n = 9;
    cr_assert_eq(tier_rank_hot(r, NULL, now, NULL, 4, rows, &n), TIER_OK);
    cr_assert_eq(n, 0);
    tier_rank_free(r);
    free(lg.ev);
}

Test(rank_hot, ties_by_cid_then_service)
{
    tier_rank *r = NULL;
    cr_assert_eq(tier_rank_alloc(&r, 1000), TIER_OK);
    tier_rank_event ev[] = {
        {"b", 7, 100, 1, 1, 0, 0}, {"a", 7, 100, 1, 1, 0, 0}, {"a", 3, 100, 1, 1, 0, 0},
        {"a", 9, 101, 1, 1, 0, 0}, {"a", 5, 99, 2, 2, 0, 0},
    };
    cr_assert_eq(tier_rank_add_batch(r, ev, 5), TIER_OK);
    tier_rank_row rows[8];
    size_t n = 0;
    cr_assert_eq(tier_rank_hot(r, NULL, 101, NULL, 8, rows, &n), TIER_OK);
    cr_assert_eq(n, 5);
    /* 5: 2 * 2^(-2 min / 6 h) > 9: 1 > the 2^(-1 min / 6 h) ties by cid, service */
    const char *ws[] = {"a", "a", "a", "a", "b"};
    int64_t wc[] = {5, 9, 3, 7, 7};
    for (size_t i = 0; i < n; i++)
        cr_assert(rows[i].cid == wc[i] && strcmp(rows[i].service, ws[i]) == 0, "row %zu: %s/%ld", i,
                  rows[i].service, (long)rows[i].cid);
    cr_assert(fabs(rows[1].hot - 1.0) < 1e-12);
    cr_assert_eq(rows[2].hot, rows[3].hot);
    tier_rank_free(r);
}

/* ---- paging ---- */

static int same_row(const tier_rank_row *a, const tier_rank_row *b)
{
    return a->cid == b->cid && strcmp(a->service, b->service) == 0 && a->change == b->change &&
           a->hot == b->hot && a->created == b->created && a->deleted == b->deleted &&
           a->restored == b->restored;
}

/* order 0/1: INCREASE/DECREASE over [from, to); 2: HOT at `to`. */
static size_t query(tier_rank *r, int order, const char *svc, int64_t from, int64_t to,
                    const tier_rank_key *after, uint32_t limit, tier_rank_row *rows)
{
    size_t n = 0;
    int rc = order == 2 ? tier_rank_hot(r, svc, to, after, limit, rows, &n)
                        : tier_rank_top_after(r, svc, from, to, order, after, limit, rows, &n);
    cr_assert_eq(rc, TIER_OK);
    return n;
}

static void check_pages(tier_rank *r, int order, const char *svc, int64_t from, int64_t to,
                        uint32_t page)
{
    static tier_rank_row full[ALL], part[ALL];
    size_t nfull = query(r, order, svc, from, to, NULL, ALL, full), at = 0;
    tier_rank_key key;
    const tier_rank_key *after = NULL;
    for (int pages = 0;; pages++) {
        cr_assert_leq((size_t)pages, nfull / page + 1);
        size_t n = query(r, order, svc, from, to, after, page, part);
        for (size_t i = 0; i < n; i++)
            cr_assert(at + i < nfull && same_row(&part[i], &full[at + i]),
                      "order %d page %u: row %zu differs", order, page, at + i);
        at += n;
        if (n < page)
            break;
        key = (tier_rank_key){part[n - 1].change, part[n - 1].hot, part[n - 1].cid,
                              part[n - 1].service};
        after = &key;
    }
    cr_assert_eq(at, nfull, "order %d page %u: walked %zu of %zu rows", order, page, at, nfull);
}

Test(rank_hot, pages_walk_the_whole_ranking)
{
    tier_rank *r = NULL;
    cr_assert_eq(tier_rank_alloc(&r, 4096), TIER_OK);
    event_log lg = {0};
    int64_t start = BASE_MINUTE + 5, now = start;
    for (int step = 0; step < 900; step++) {
        feed_random(r, &lg, now, start);
        now += rnd() % 3 == 0 ? rnd_range(1, 5) : 0;
        if (step % 5 == 0) {
            int order = (int)(rnd() % 3);
            int64_t len = rnd_range(1, now + 1 - start);
            int64_t to = rnd_range(start + len, now + 1);
            uint32_t page = (uint32_t)(rnd() % 2 ? rnd_range(1, 7) : rnd_range(8, 300));
            check_pages(r, order, random_service(), to - len, to, page);
        }
    }
    tier_rank_free(r);
    free(lg.ev);
}

Test(rank_hot, key_between_rows_and_invalid_arguments)
{
    tier_rank *r = NULL;
    cr_assert_eq(tier_rank_alloc(&r, 100), TIER_OK);
    tier_rank_event ev[] = {{"a", 1, 50, 3, 3, 0, 0},
                            {"a", 2, 50, 2, 2, 0, 0},
                            {"b", 2, 50, 2, 2, 0, 0},
                            {"a", 4, 50, 1, 1, 0, 0}};
    cr_assert_eq(tier_rank_add_batch(r, ev, 4), TIER_OK);
    tier_rank_row rows[4];
    size_t n = 0;
    /* a key that is no row: change 2, cid 2, service "a0" lies between a/2 and b/2 */
    tier_rank_key k = {2, 0, 2, "a0"};
    cr_assert_eq(tier_rank_top_after(r, NULL, 0, 100, 0, &k, 4, rows, &n), TIER_OK);
    cr_assert_eq(n, 2);
    cr_assert(rows[0].cid == 2 && strcmp(rows[0].service, "b") == 0 && rows[1].cid == 4);
    tier_rank_key bad = {0, 0, 1, NULL};
    cr_assert_eq(tier_rank_top_after(r, NULL, 0, 100, 0, &bad, 4, rows, &n), TIER_INVALID_ARGUMENT);
    cr_assert_eq(tier_rank_hot(r, NULL, 50, &bad, 4, rows, &n), TIER_INVALID_ARGUMENT);
    cr_assert_eq(tier_rank_hot(r, NULL, 50, NULL, 0, rows, &n), TIER_INVALID_ARGUMENT);
    cr_assert_eq(tier_rank_hot(r, NULL, -1, NULL, 4, rows, &n), TIER_INVALID_ARGUMENT);
    cr_assert_eq(tier_rank_hot(r, NULL, 50, NULL, ALL + 1, rows, &n), TIER_INVALID_ARGUMENT);
    cr_assert_eq(tier_rank_top(r, NULL, 0, 100, 0, ALL, rows, &n), TIER_INVALID_ARGUMENT);
    cr_assert_eq(tier_rank_hot(r, "nope", 50, NULL, 4, rows, &n), TIER_OK);
    cr_assert_eq(n, 0);
    tier_rank_free(r);
}
