/*
 * test_rank.c -- the ranking index against a brute-force oracle.
 *
 * Every test keeps the log of the events it fed the index and recomputes
 * each answer the slow way: sum the events of the window per
 * (service, cid), sort by change (then cid, then service), cut at `limit`.
 * The streams mix creates, deletes and restores over three services, go
 * mostly forward in time but also backfill older (already complete, already
 * sorted) minutes and write into the open minute, and queries are
 * interleaved with ingest so stale sorted lists get exercised.
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

Test(rank, random_windows_match_brute_force)
{
    const int64_t retention = 4096;
    tier_rank *r = NULL;
    cr_assert_eq(tier_rank_alloc(&r, retention), TIER_OK);
    event_log lg = {0};
    tier_rank_event batch[64];
    int64_t start = BASE_MINUTE + 77, now = start;
    int queries = 0;
    for (int step = 0; step < 1500; step++) {
        size_t n = make_batch(batch, 64, now, start);
        feed(r, &lg, batch, n);
        if (rnd() % 3 == 0)
            now += rnd_range(1, rnd() % 10 == 0 ? 40 : 2);
        if (rnd() % 7 == 0)
            tier_rank_set_now(r, now);
        if (step % 2 == 0) {
            int64_t from, to;
            random_window(start, now + 1, retention, &from, &to);
            check_query(r, &lg, 0, random_service(), from, to, (int)(rnd() % 2), random_limit());
            queries++;
        }
    }
    for (int i = 0; i < 500; i++) {
        int64_t from, to;
        random_window(start, now + 1, retention, &from, &to);
        check_query(r, &lg, 0, random_service(), from, to, (int)(rnd() % 2), random_limit());
        queries++;
    }
    cr_assert_geq(queries, 1000);
    cr_assert_gt(tier_rank_memory(r), 0);
    tier_rank_free(r);
    free(lg.ev);
}

Test(rank, ties_break_by_cid_then_service)
{
    tier_rank *r = NULL;
    cr_assert_eq(tier_rank_alloc(&r, 43200), TIER_OK);
    tier_rank_event ev[] = {
        {"zeta", 5, 100, 1, 1, 0, 0},  {"alpha", 5, 100, 1, 1, 0, 0},
        {"alpha", 9, 101, 1, 1, 0, 0}, {"alpha", 2, 102, 1, 1, 0, 0},
        {"zeta", 1, 103, 2, 2, 0, 0},  {"alpha", 7, 103, -1, 0, 1, 0},
    };
    cr_assert_eq(tier_rank_add_batch(r, ev, 6), TIER_OK);
    tier_rank_row rows[10];
    size_t n = 0;
    cr_assert_eq(tier_rank_top(r, NULL, 100, 104, 0, 10, rows, &n), TIER_OK);
    cr_assert_eq(n, 6);
    const char *svc[] = {"zeta", "alpha", "alpha", "zeta", "alpha", "alpha"};
    int64_t cid[] = {1, 2, 5, 5, 9, 7};
    for (size_t i = 0; i < n; i++)
        cr_assert(strcmp(rows[i].service, svc[i]) == 0 && rows[i].cid == cid[i], "row %zu: %s/%ld",
                  i, rows[i].service, (long)rows[i].cid);
    cr_assert_eq(tier_rank_top(r, "alpha", 100, 104, 1, 2, rows, &n), TIER_OK);
    cr_assert_eq(n, 2);
    cr_assert(rows[0].cid == 7 && rows[0].change == -1 && rows[0].deleted == 1);
    cr_assert(rows[1].cid == 2 && rows[1].change == 1);
    tier_rank_free(r);
}

/* A backfilled event makes built lists stale; refresh rebuilds them (and
 * then has nothing left to do), and answers stay exact either way. */
Test(rank, refresh_rebuilds_stale_blocks)
{
    tier_rank *r = NULL;
    tier_rank_row rows[10];
    size_t n = 0;
    cr_assert_eq(tier_rank_alloc(&r, 43200), TIER_OK);
    tier_rank_event ev[] = {{"s", 1, 100, 3, 3, 0, 0}, {"s", 2, 101, 2, 2, 0, 0}};
    cr_assert_eq(tier_rank_add_batch(r, ev, 2), TIER_OK);
    tier_rank_set_now(r, 200); /* minutes 100, 101 and their blocks complete, built */
    cr_assert_eq(tier_rank_top(r, NULL, 100, 102, 0, 10, rows, &n), TIER_OK);
    while (tier_rank_refresh(r, 1) > 0) /* every complete block built */
        ;
    cr_assert_eq(tier_rank_refresh(r, 100), 0, "nothing stale yet");
    tier_rank_event late = {"s", 2, 100, 5, 5, 0, 0}; /* backfill into minute 100 */
    cr_assert_eq(tier_rank_add_batch(r, &late, 1), TIER_OK);
    cr_assert_gt(tier_rank_refresh(r, 100), 0);
    cr_assert_eq(tier_rank_refresh(r, 100), 0, "all rebuilt");
    cr_assert_eq(tier_rank_top(r, NULL, 100, 101, 0, 10, rows, &n), TIER_OK);
    cr_assert(n == 2 && rows[0].cid == 2 && rows[0].change == 5 && rows[1].cid == 1);
    cr_assert_eq(tier_rank_top(r, NULL, 100, 102, 0, 10, rows, &n), TIER_OK);
    cr_assert(n == 2 && rows[0].cid == 2 && rows[0].change == 7);
    tier_rank_free(r);
}

Test(rank, expiry_drops_old_minutes)
{
    const int64_t retention = 600;
    tier_rank *r = NULL;
    cr_assert_eq(tier_rank_alloc(&r, retention), TIER_OK);
    event_log lg = {0};
    tier_rank_event batch[64];
    int64_t start = BASE_MINUTE, now = start;
    for (int step = 0; step < 800; step++) {
        size_t n = make_batch(batch, 64, now, start);
        feed(r, &lg, batch, n);
        now += rnd() % 2;
    }
    size_t before_mem = tier_rank_memory(r);
    int64_t cut = start + (now - start) / 2;
    tier_rank_expire(r, cut);
    cr_assert_lt(tier_rank_memory(r), before_mem);
    for (int i = 0; i < 300; i++) {
        int64_t from, to;
        random_window(start, now + 1, retention, &from, &to);
        check_query(r, &lg, cut, random_service(), from, to, (int)(rnd() % 2), random_limit());
    }
    /* events older than the cut are ignored from now on */
    tier_rank_event old = {"alpha", 1, cut - 1, 5, 5, 0, 0};
    cr_assert_eq(tier_rank_add_batch(r, &old, 1), TIER_OK);
    for (int step = 0; step < 200; step++) {
        size_t n = make_batch(batch, 64, now, cut);
        feed(r, &lg, batch, n);
        now += rnd() % 2;
        int64_t from, to;
        random_window(cut, now + 1, retention, &from, &to);
        check_query(r, &lg, cut, random_service(), from, to, (int)(rnd() % 2), random_limit());
    }
    tier_rank_expire(r, now + 10); /* everything */
    tier_rank_row rows[5];
    size_t n = 9;
    cr_assert_eq(tier_rank_top(r, NULL, now - 5, now + 5, 0, 5, rows, &n), TIER_OK);
    cr_assert_eq(n, 0);
    tier_rank_free(r);
    free(lg.ev);
}

Test(rank, automatic_retention_keeps_working)
{
    const int64_t retention = 64;
    tier_rank *r = NULL;
    cr_assert_eq(tier_rank_alloc(&r, retention), TIER_OK);
    event_log lg = {0};
    tier_rank_event batch[32];
    int64_t now = BASE_MINUTE;
    for (int step = 0; step < 2000; step++) {
        size_t n = make_batch(batch, 32, now, now - 30);
        feed(r, &lg, batch, n);
        now += rnd() % 2;
        if (step % 4 == 0) {
            /* windows inside the last `retention` minutes are always intact */
            int64_t len = rnd_range(1, retention);
            int64_t to = rnd_range(now - retention + len + 1, now + 1);
            check_query(r, &lg, 0, random_service(), to - len, to, (int)(rnd() % 2),
                        random_limit());
        }
    }
    tier_rank_free(r);
    free(lg.ev);
}

/* ---- DECREASE padded with zeros ---- */

/* Counts the negative and zero rows of the full answer of a window. */
static void count_signs(const event_log *lg, const char *service, int64_t from, int64_t to,
                        size_t *nneg, size_t *nzero, size_t *nall)
{
    static agg all[NSVC * (NCID + 1)];
    size_t n = oracle(lg, 0, service, from, to, 1, UINT32_MAX, all);
    *nneg = *nzero = 0;
    for (size_t i = 0; i < n; i++) {
        if (all[i].change < 0)
            (*nneg)++;
        else if (all[i].change == 0)
            (*nzero)++;
    }
    *nall = n;
}

/* Limits 1..1000 around the phase boundaries of DECREASE: the last negative
 * row, the last zero row, and the whole answer. */
static void check_boundaries(tier_rank *r, const event_log *lg, const char *service, int64_t from,
                             int64_t to)
{
    size_t nneg, nzero, nall;
    count_signs(lg, service, from, to, &nneg, &nzero, &nall);
    size_t marks[] = {nneg, nneg + 1, nneg + nzero / 2, nneg + nzero, nall};
    for (size_t m = 0; m < sizeof(marks) / sizeof(marks[0]); m++) {
        for (int d = -1; d <= 1; d++) {
            int64_t limit = (int64_t)marks[m] + d;
            if (limit >= 1 && limit <= TIER_RANK_LIMIT_MAX)
                check_query(r, lg, 0, service, from, to, 1, (uint32_t)limit);
        }
    }
    check_query(r, lg, 0, service, from, to, 1, (uint32_t)rnd_range(1, 1000));
    check_query(r, lg, 0, service, from, to, 0, (uint32_t)rnd_range(1, 1000));
}

/* Each comment is deleted soon after it was created, so over most windows
 * few contents have a negative change (their comment was created before the
 * window), few a positive one, and many exactly 0: the answer is padded
 * with zeros by cid, and beyond them with the smallest positive changes.
 * Some events cancel within one minute (a zero entry in a level-0 list) or
 * carry delta 0 with counts (a candidate whose every entry is 0). */
Test(rank, decrease_padded_with_zeros_matches_brute_force)
{
    const int64_t retention = 4096;
    tier_rank *r = NULL;
    cr_assert_eq(tier_rank_alloc(&r, retention), TIER_OK);
    event_log lg = {0};
    static uint8_t live[NSVC][NCID + 1];
    memset(live, 0, sizeof(live));
    tier_rank_event batch[48];
    int64_t start = BASE_MINUTE + 13, now = start;
    int windows = 0;
    for (int step = 0; step < 900; step++) {
        size_t n = (size_t)rnd_range(1, 48);
        for (size_t i = 0; i < n; i++) {
            tier_rank_event e = {0};
            int s = (int)(rnd() % NSVC);
            e.service = svc_names[s];
            e.cid = rnd_range(1, NCID);
            e.minute = now;
            if (rnd() % 25 == 0 && now > start) /* backfill: counts only, no live state */
                e.minute = rnd_range(start, now);
            if (rnd() % 40 == 0) {
                e.created = e.deleted = 1; /* net 0 within one event */
            } else if (live[s][e.cid] > 0 && rnd() % 10 != 0) {
                e.delta = -1;
                e.deleted = 1;
                if (e.minute == now)
                    live[s][e.cid]--;
            } else {
                e.delta = 1;
                e.created = 1;
                if (e.minute == now)
                    live[s][e.cid]++;
            }
            batch[i] = e;
        }
        feed(r, &lg, batch, n);
        if (rnd() % 2 == 0)
            now += rnd_range(1, 3);
        if (rnd() % 5 == 0)
            tier_rank_set_now(r, now);
        if (step % 15 == 0) {
            int64_t from, to;
            random_window(start, now + 1, retention, &from, &to);
            check_boundaries(r, &lg, random_service(), from, to);
            windows++;
        }
    }
    for (int i = 0; i < 120; i++) {
        int64_t from, to;
        random_window(start, now + 1, retention, &from, &to);
        if (i % 3 == 0) { /* long windows ending now: the padded case */
            from = rnd_range(start - 5, now - 20);
            to = now + 1;
        }
        check_boundaries(r, &lg, random_service(), from, to);
        windows++;
    }
    cr_assert_geq(windows, 150);
    tier_rank_free(r);
    free(lg.ev);
}

/* A hand-made window: one negative, zeros (one made of +1 and -1 in
 * different blocks, one cancelling within a minute, one from a delta-0
 * event), positives; two services sharing cids. */
Test(rank, decrease_phases_in_order)
{
    tier_rank *r = NULL;
    cr_assert_eq(tier_rank_alloc(&r, 43200), TIER_OK);
    tier_rank_event ev[] = {
        {"b", 8, 90, 1, 1, 0, 0},   /* created before the window ... */
        {"b", 8, 100, -1, 0, 1, 0}, /* ... deleted in it: -1 */
        {"b", 6, 101, 1, 1, 0, 0},  /* +1 then -1 much later: 0 */
        {"b", 6, 163, -1, 0, 1, 0}, /**/
        {"a", 6, 120, 1, 1, 0, 0},  /* cancels within minute 120: 0 */
        {"a", 6, 120, -1, 0, 1, 0}, /**/
        {"b", 9, 140, 0, 1, 1, 0},  /* delta 0 with counts: 0 */
        {"a", 2, 150, 2, 2, 0, 0},  /* +2 */
        {"b", 3, 155, 1, 1, 0, 0},  /* +1 */
        {"a", 4, 171, 1, 0, 0, 1},  /* +1 */
        {"b", 1, 80, 5, 5, 0, 0},   /* before the window only */
    };
    cr_assert_eq(tier_rank_add_batch(r, ev, sizeof(ev) / sizeof(ev[0])), TIER_OK);
    tier_rank_set_now(r, 200);
    const char *svc[] = {"b", "a", "b", "b", "b", "a", "a"};
    int64_t cid[] = {8, 6, 6, 9, 3, 4, 2}, change[] = {-1, 0, 0, 0, 1, 1, 2};
    tier_rank_row rows[10];
    for (uint32_t limit = 1; limit <= 8; limit++) {
        size_t n = 0;
        cr_assert_eq(tier_rank_top(r, NULL, 95, 180, 1, limit, rows, &n), TIER_OK);
        cr_assert_eq(n, limit < 7 ? limit : 7);
        for (size_t i = 0; i < n; i++)
            cr_assert(strcmp(rows[i].service, svc[i]) == 0 && rows[i].cid == cid[i] &&
                          rows[i].change == change[i],
                      "limit %u row %zu: %s/%ld %ld", limit, i, rows[i].service, (long)rows[i].cid,
                      (long)rows[i].change);
    }
    size_t n = 0;
    cr_assert_eq(tier_rank_top(r, "b", 95, 180, 1, 3, rows, &n), TIER_OK);
    cr_assert(n == 3 && rows[0].cid == 8 && rows[1].cid == 6 && rows[2].cid == 9);
    cr_assert(rows[2].created == 1 && rows[2].deleted == 1 && rows[2].change == 0);
    tier_rank_free(r);
}

Test(rank, invalid_arguments)
{
    tier_rank *r = NULL;
    cr_assert_eq(tier_rank_alloc(&r, 0), TIER_INVALID_ARGUMENT);
    cr_assert_eq(tier_rank_alloc(&r, 100), TIER_OK);
    tier_rank_row rows[1];
    size_t n;
    cr_assert_eq(tier_rank_top(r, NULL, 10, 10, 0, 1, rows, &n), TIER_INVALID_ARGUMENT);
    cr_assert_eq(tier_rank_top(r, NULL, 11, 10, 0, 1, rows, &n), TIER_INVALID_ARGUMENT);
    cr_assert_eq(tier_rank_top(r, NULL, 0, 10, 0, 0, rows, &n), TIER_INVALID_ARGUMENT);
    cr_assert_eq(tier_rank_top(r, NULL, 0, 10, 0, 1001, rows, &n), TIER_INVALID_ARGUMENT);
    cr_assert_eq(tier_rank_top(r, NULL, 0, 101, 0, 1, rows, &n), TIER_INVALID_ARGUMENT);
    cr_assert_eq(tier_rank_top(r, NULL, 0, 10, 0, 1, NULL, &n), TIER_INVALID_ARGUMENT);
    cr_assert_eq(tier_rank_top(r, NULL, 0, 100, 0, 1, rows, &n), TIER_OK);
    cr_assert_eq(n, 0);
    tier_rank_event bad[] = {{"a", 1, 5, 1, 1, 0, 0}, {NULL, 1, 5, 1, 1, 0, 0}};
    cr_assert_eq(tier_rank_add_batch(r, bad, 2), TIER_INVALID_ARGUMENT);
    bad[1].service = "";
    cr_assert_eq(tier_rank_add_batch(r, bad, 2), TIER_INVALID_ARGUMENT);
    bad[1].service = "b";
    bad[1].minute = -1;
    cr_assert_eq(tier_rank_add_batch(r, bad, 2), TIER_INVALID_ARGUMENT);
    /* nothing of a rejected batch was applied */
    cr_assert_eq(tier_rank_top(r, NULL, 0, 100, 0, 1, rows, &n), TIER_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(tier_rank_top(r, "nope", 0, 100, 0, 1, rows, &n), TIER_OK);
    cr_assert_eq(n, 0);
    tier_rank_free(r);
}
