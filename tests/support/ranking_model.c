/*
 * ranking_model.c -- the test's own account of what a tierd should rank
 * (test_ranking, test_ranking_compact; test_ranking_hot keeps its model in
 * it too): the comments a suite posted and the events it caused, the
 * brute-force TopContents over them, and the random posts, backfilled
 * deletes/restores and windows that drive the suites.  See ranking_model.h.
 */
#include "ranking_model.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

const char *const SVCS[NSVC] = {"news", "sports", "blog"};

void add_event(model *m, int svc, int64_t cid, int64_t minute, int kind)
{
    if (m->nev == m->evcap) {
        m->evcap = m->evcap ? m->evcap * 2 : 1024;
        m->ev = realloc(m->ev, m->evcap * sizeof(*m->ev));
    }
    m->ev[m->nev++] = (event){svc, cid, minute, kind};
}

void add_comment(model *m, int64_t id, int svc, int64_t cid, int64_t created_ms)
{
    if (m->ncm == m->cmcap) {
        m->cmcap = m->cmcap ? m->cmcap * 2 : 1024;
        m->cm = realloc(m->cm, m->cmcap * sizeof(*m->cm));
    }
    m->cm[m->ncm++] = (live){id, svc, cid, false, created_ms};
}

static int cmp_inc(const void *a, const void *b)
{
    const row *x = a, *y = b;
    if (x->change != y->change)
        return x->change > y->change ? -1 : 1;
    if (x->cid != y->cid)
        return x->cid < y->cid ? -1 : 1;
    return strcmp(SVCS[x->svc], SVCS[y->svc]);
}

static int cmp_dec(const void *a, const void *b)
{
    const row *x = a, *y = b;
    if (x->change != y->change)
        return x->change < y->change ? -1 : 1;
    if (x->cid != y->cid)
        return x->cid < y->cid ? -1 : 1;
    return strcmp(SVCS[x->svc], SVCS[y->svc]);
}

/* Brute force: sums per (service, cid) over [from, to); only contents with
 * an event in the window take part.  Returns the number of rows. */
size_t brute_top(const model *m, int svc, int64_t from, int64_t to, bool dec, row *out)
{
    static row acc[NSVC][MAXCID + 1];
    static bool seen[NSVC][MAXCID + 1];
    size_t n = 0;

    memset(acc, 0, sizeof(acc));
    memset(seen, 0, sizeof(seen));
    for (size_t i = 0; i < m->nev; i++) {
        const event *e = &m->ev[i];
        if (e->minute < from || e->minute >= to || (svc >= 0 && e->svc != svc))
            continue;
        row *r = &acc[e->svc][e->cid];
        seen[e->svc][e->cid] = true;
        r->change += e->kind == 1 ? -1 : 1;
        r->created += e->kind == 0;
        r->deleted += e->kind == 1;
        r->restored += e->kind == 2;
    }
    for (int s = 0; s < NSVC; s++)
        for (int64_t c = 1; c <= MAXCID; c++)
            if (seen[s][c]) {
                out[n] = acc[s][c];
                out[n].svc = s;
                out[n].cid = c;
                n++;
            }
    qsort(out, n, sizeof(*out), dec ? cmp_dec : cmp_inc);
    return n;
}

void post_built(tier_client *c, model *m, Tier__PostCommentRequest *cs, size_t n)
{
    Tier__PostCommentRequest **ps = calloc(n, sizeof(*ps));
    Tier__PostCommentsRequest q = TIER__POST_COMMENTS_REQUEST__INIT;
    Tier__PostCommentsReply *rep;
    tier_error err;

    for (size_t i = 0; i < n; i++)
        ps[i] = &cs[i];
    q.n_comments = n;
    q.comments = ps;
    cr_assert_eq(tier_post_comments(c, &q, &rep, &err), TIER_OK, "%s", err.message);
    cr_assert_eq(rep->n_results, n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(rep->results[i]->code, 0, "%s", rep->results[i]->message);
        cr_assert_eq(rep->results[i]->created_ms, cs[i].time_ms);
        int svc = cs[i].service == SVCS[0] ? 0 : cs[i].service == SVCS[1] ? 1 : 2;
        add_comment(m, rep->results[i]->id, svc, cs[i].cid, cs[i].time_ms);
        add_event(m, svc, cs[i].cid, cs[i].time_ms / 60000, 0);
    }
    tier_free(rep);
    free(ps);
}

/* Posts n comments with backfilled times in [lo_min, hi_min]. */
void post_random(tier_client *c, model *m, size_t n, int64_t lo_min, int64_t hi_min, unsigned *seed)
{
    Tier__PostCommentRequest *cs = calloc(n, sizeof(*cs));

    for (size_t i = 0; i < n; i++) {
        tier__post_comment_request__init(&cs[i]);
        int svc = rand_r(seed) % NSVC;
        /* Skewed cids: many ties and many repeats. */
        int64_t cid = 1 + (rand_r(seed) % MAXCID) * (rand_r(seed) % MAXCID) / MAXCID;
        int64_t minute = lo_min + rand_r(seed) % (hi_min - lo_min + 1);
        cs[i].service = (char *)SVCS[svc];
        cs[i].cid = cid;
        cs[i].author = "tester";
        cs[i].body = "a comment body of some length";
        cs[i].time_ms = minute * 60000 + rand_r(seed) % 60000;
    }
    post_built(c, m, cs, n);
    free(cs);
}

void check_window(tier_client *c, const model *m, const window *w, row *buf)
{
    Tier__TopContentsRequest q = TIER__TOP_CONTENTS_REQUEST__INIT;
    Tier__TopContentsReply *rep;
    tier_error err;
    uint32_t limit = w->limit ? w->limit : 100;

    q.from_ms = w->from * 60000;
    q.to_ms = w->to * 60000;
    q.limit = w->limit;
    q.service = w->svc >= 0 ? (char *)SVCS[w->svc] : "";
    q.order = w->dec ? TIER__ORDER__DECREASE : TIER__ORDER__INCREASE;
    cr_assert_eq(tier_top_contents(c, &q, &rep, &err), TIER_OK, "%s", err.message);
    size_t n = brute_top(m, w->svc, w->from, w->to, w->dec, buf);
    if (n > limit)
        n = limit;
    cr_assert_eq(rep->n_rows, n, "window [%lld, %lld) svc %d dec %d limit %u: %zu rows, want %zu",
                 (long long)w->from, (long long)w->to, w->svc, w->dec, limit, rep->n_rows, n);
    for (size_t i = 0; i < n; i++) {
        const Tier__TopRow *r = rep->rows[i];
        cr_assert(strcmp(r->service, SVCS[buf[i].svc]) == 0 && r->cid == buf[i].cid &&
                      r->change == buf[i].change && r->created == buf[i].created &&
                      r->deleted == buf[i].deleted && r->restored == buf[i].restored,
                  "window [%lld, %lld) svc %d dec %d row %zu: got %s/%lld %lld (%lld,%lld,%lld) "
                  "want %s/%lld %lld (%lld,%lld,%lld)",
                  (long long)w->from, (long long)w->to, w->svc, w->dec, i, r->service,
                  (long long)r->cid, (long long)r->change, (long long)r->created,
                  (long long)r->deleted, (long long)r->restored, SVCS[buf[i].svc],
                  (long long)buf[i].cid, (long long)buf[i].change, (long long)buf[i].created,
                  (long long)buf[i].deleted, (long long)buf[i].restored);
    }
    tier_free(rep);
}

window *random_windows(size_t n, int64_t lo, int64_t hi, unsigned *seed)
{
    static const uint32_t limits[] = {1, 3, 10, 50, 0, 1000};
    window *w = calloc(n, sizeof(*w));
    for (size_t i = 0; i < n; i++) {
        int64_t a = lo + rand_r(seed) % (hi - lo + 1);
        /* Short windows mostly, some very long. */
        int64_t len =
            rand_r(seed) % 4 == 0 ? 1 + rand_r(seed) % (hi - lo + 2) : 1 + rand_r(seed) % 15;
        w[i] = (window){a, a + len, (int)(rand_r(seed) % (NSVC + 1)) - 1, rand_r(seed) % 2 == 0,
                        limits[rand_r(seed) % 6]};
    }
    return w;
}

int change_at(tier_client *c, int64_t id, int64_t time_ms, bool restore, tier_error *err)
{
    Tier__DeleteCommentRequest d = TIER__DELETE_COMMENT_REQUEST__INIT;
    Tier__RestoreCommentRequest r = TIER__RESTORE_COMMENT_REQUEST__INIT;
    Tier__CommentReply *rep = NULL;
    int rv;

    d.id = r.id = id;
    d.time_ms = r.time_ms = time_ms;
    rv = restore ? tier_restore_comment(c, &r, &rep, err) : tier_delete_comment(c, &d, &rep, err);
    tier_free(rep);
    return rv;
}

/* Backfilled deletes and restores at random times, some before the
 * comment's last transition (refused) and some at it exactly (accepted),
 * the accepted ones recorded as events. */
void change_backfilled(tier_client *c, model *m, size_t n, int64_t hi_ms, unsigned *seed)
{
    tier_error err;

    for (size_t i = 0; i < n; i++) {
        live *l = &m->cm[rand_r(seed) % m->ncm];
        int kind = l->deleted ? 2 : 1;
        int64_t t, r = rand_r(seed) % 8;
        if (l->last_ms >= hi_ms)
            continue;
        if (r == 0)
            t = l->last_ms;
        else if (r <= 2)
            t = l->last_ms - 1 - rand_r(seed) % (30 * 60000);
        else
            t = l->last_ms + (int64_t)rand_r(seed) % (hi_ms - l->last_ms);
        if (t <= 0) /* 0 would mean now */
            continue;
        bool ok = t >= l->last_ms;
        int rv = change_at(c, l->id, t, kind == 2, &err);
        cr_assert_eq(rv, ok ? TIER_OK : TIER_FAILED_PRECONDITION,
                     "kind %d at %lld, last %lld: %d %s", kind, (long long)t, (long long)l->last_ms,
                     rv, err.message);
        if (ok) {
            l->deleted = kind == 1;
            l->last_ms = t;
            add_event(m, l->svc, l->cid, t / 60000, kind);
        }
    }
}
