/*
 * rank_brute.c -- the brute-force side of the in-memory ranking index
 * suites (test_rank, test_rank_compact, test_rank_hot): random events,
 * the event log and the oracle of tier_rank_top.  See rank_brute.h.
 */
#include "rank_brute.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "tier_status.h"

const char *svc_names[NSVC] = {"beta", "alpha", "gamma"};

uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

int64_t rnd_range(int64_t lo, int64_t hi) /* [lo, hi] */
{
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

void log_push(event_log *lg, tier_rank_event e)
{
    if (lg->n == lg->cap) {
        lg->cap = lg->cap ? lg->cap * 2 : 1024;
        lg->ev = realloc(lg->ev, lg->cap * sizeof(*lg->ev));
        cr_assert_not_null(lg->ev);
    }
    lg->ev[lg->n++] = e;
}

/* A random create/delete/restore; skewed cids so some entities dominate. */
tier_rank_event random_event(int64_t minute)
{
    tier_rank_event e = {0};
    e.service = svc_names[rnd() % NSVC];
    int64_t c = rnd_range(1, NCID);
    e.cid = rnd() % 3 ? c % 20 + 1 : c;
    e.minute = minute;
    int kind = (int)(rnd() % 10);
    if (kind < 6) {
        e.delta = 1;
        e.created = 1;
    } else if (kind < 9) {
        e.delta = -1;
        e.deleted = 1;
    } else {
        e.delta = 1;
        e.restored = 1;
    }
    return e;
}

/* ---- oracle ---- */

int svc_index(const char *name)
{
    for (int i = 0; i < NSVC; i++)
        if (strcmp(svc_names[i], name) == 0)
            return i;
    return -1;
}

static int oracle_dec;

static int agg_cmp(const void *pa, const void *pb)
{
    const agg *a = pa, *b = pb;
    if (a->change != b->change)
        return (oracle_dec ? a->change > b->change : a->change < b->change) ? 1 : -1;
    if (a->cid != b->cid)
        return a->cid < b->cid ? -1 : 1;
    return strcmp(svc_names[a->svc], svc_names[b->svc]);
}

size_t oracle(const event_log *lg, int64_t min_minute, const char *service, int64_t from,
              int64_t to, int dec, uint32_t limit, agg *out)
{
    static agg table[NSVC][NCID + 1];
    memset(table, 0, sizeof(table));
    int want = service && service[0] ? svc_index(service) : -1;
    for (size_t i = 0; i < lg->n; i++) {
        const tier_rank_event *e = &lg->ev[i];
        if (e->minute < from || e->minute >= to || e->minute < min_minute)
            continue;
        int s = svc_index(e->service);
        if (want >= 0 && s != want)
            continue;
        agg *a = &table[s][e->cid];
        a->svc = s;
        a->cid = e->cid;
        a->change += e->delta;
        a->created += e->created;
        a->deleted += e->deleted;
        a->restored += e->restored;
        a->seen = 1;
    }
    size_t n = 0;
    for (int s = 0; s < NSVC; s++)
        for (int c = 0; c <= NCID; c++)
            if (table[s][c].seen)
                out[n++] = table[s][c];
    oracle_dec = dec;
    qsort(out, n, sizeof(agg), agg_cmp);
    return n < limit ? n : limit;
}

void check_query(tier_rank *r, const event_log *lg, int64_t min_minute, const char *service,
                 int64_t from, int64_t to, int dec, uint32_t limit)
{
    static agg want[NSVC * (NCID + 1)];
    static tier_rank_row got[TIER_RANK_LIMIT_MAX];
    size_t nwant = oracle(lg, min_minute, service, from, to, dec, limit, want), ngot = 0;
    int rc = tier_rank_top(r, service, from, to, dec, limit, got, &ngot);
    cr_assert_eq(rc, TIER_OK, "rc %d", rc);
    cr_assert_eq(ngot, nwant, "window [%ld,%ld) svc %s dec %d limit %u: got %zu rows, want %zu",
                 (long)from, (long)to, service ? service : "-", dec, limit, ngot, nwant);
    for (size_t i = 0; i < ngot; i++) {
        const agg *w = &want[i];
        cr_assert(strcmp(got[i].service, svc_names[w->svc]) == 0 && got[i].cid == w->cid &&
                      got[i].change == w->change && got[i].created == w->created &&
                      got[i].deleted == w->deleted && got[i].restored == w->restored,
                  "window [%ld,%ld) svc %s dec %d limit %u row %zu: got %s/%ld %ld, want %s/%ld "
                  "%ld",
                  (long)from, (long)to, service ? service : "-", dec, limit, i, got[i].service,
                  (long)got[i].cid, (long)got[i].change, svc_names[w->svc], (long)w->cid,
                  (long)w->change);
    }
}

uint32_t random_limit(void)
{
    switch (rnd() % 4) {
    case 0:
        return 1;
    case 1:
        return (uint32_t)rnd_range(1, 10);
    case 2:
        return (uint32_t)rnd_range(1, 1000);
    default:
        return 1000;
    }
}

/* A window somewhere around [lo, hi): tiny, medium, huge, or past the data. */
void random_window(int64_t lo, int64_t hi, int64_t retention, int64_t *from, int64_t *to)
{
    int64_t len;
    switch (rnd() % 4) {
    case 0:
        len = rnd_range(1, 3);
        break;
    case 1:
        len = rnd_range(1, 80);
        break;
    case 2:
        len = rnd_range(1, retention);
        break;
    default:
        len = retention;
        break;
    }
    *from = rnd_range(lo - 50, hi + 20);
    if (rnd() % 5 == 0)
        *from = hi - len + rnd_range(0, 2); /* ending about now */
    *to = *from + len;
}

const char *random_service(void)
{
    int k = (int)(rnd() % 5);
    return k < NSVC ? svc_names[k] : (k == NSVC ? NULL : "");
}

void feed(tier_rank *r, event_log *lg, tier_rank_event *batch, size_t n)
{
    cr_assert_eq(tier_rank_add_batch(r, batch, n), TIER_OK);
    for (size_t i = 0; i < n; i++)
        log_push(lg, batch[i]);
}

/* Generates one batch: mostly the current minute, some backfill. */
size_t make_batch(tier_rank_event *batch, size_t max, int64_t now, int64_t start)
{
    size_t n = (size_t)rnd_range(1, (int64_t)max);
    for (size_t i = 0; i < n; i++) {
        int64_t m = now;
        if (rnd() % 10 == 0 && now > start)
            m = rnd_range(start, now); /* backfill into a complete minute */
        batch[i] = random_event(m);
    }
    return n;
}
