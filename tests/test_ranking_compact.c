/*
 * test_ranking_compact.c -- ranking over compacted history, end to end: a
 * real tierd with a short detail horizon (--rank-detail-min 30) and small
 * granules (--rank-coarse-level 2: 16 minutes), so nearly all of three days
 * of backfilled comments sit in compacted granules and window edges inside
 * them are completed from comment_minute in MariaDB (the fringe).
 * TopContents over random windows (unaligned edges, minutes to days long,
 * both orders, one service and all) equals brute force over the events the
 * test made, before and after a kill -9 (the rebuild compacts as it
 * streams) and after backfilling into compacted granules.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tier_client.h"
#include "tier_testenv.h"
#include "tier_time.h"

/* ------------------------------------------------------------ a tierd */

typedef struct {
    tier_test_mysql m;
    tier_test_tierd td;
    char *dir;
    tier_client *c;
} fixture;

static void start_tierd(fixture *f)
{
    char *extra[] = {"--threads", "16", "--rank-detail-min", "30", "--rank-coarse-level",
                     "2",         NULL};
    tier_test_tierd_start(&f->td, extra);
    cr_assert_eq(tier_client_open(&f->c, f->td.listen), TIER_OK);
    tier_client_set_timeout(f->c, 30000);
}

static void kill_tierd(fixture *f, int sig)
{
    tier_client_close(f->c);
    f->c = NULL;
    cr_assert_neq(tier_test_tierd_stop(&f->td, sig, 20000), -1, "tierd did not stop");
}

static void setup(fixture *f)
{
    memset(f, 0, sizeof(*f));
    tier_test_mysql_env(&f->m);
    tier_test_db_create(&f->m, NULL);
    f->dir = tier_test_tmpdir();
    tier_test_tierd_init(&f->td, f->dir, f->m.db, NULL);
    tier_test_tierd_setenv_services(&f->td, &f->m, -1, -1);
    start_tierd(f);
}

static void teardown(fixture *f)
{
    if (f->c != NULL)
        kill_tierd(f, SIGTERM);
    tier_test_db_drop(&f->m);
    tier_test_rmtree(f->dir);
    free(f->dir);
}

/* ------------------------------------------------------------ the model */

typedef struct {
    int svc; /* index into SVCS */
    int64_t cid;
    int64_t minute;
    int kind; /* 0 create, 1 delete, 2 restore */
} event;

typedef struct {
    int64_t id;
    int svc;
    int64_t cid;
    bool deleted;
    int64_t last_ms; /* creation, or the last delete or restore */
} live;

static const char *const SVCS[] = {"news", "sports", "blog"};
#define NSVC 3

typedef struct {
    event *ev;
    size_t nev, evcap;
    live *cm;
    size_t ncm, cmcap;
} model;

static void add_event(model *m, int svc, int64_t cid, int64_t minute, int kind)
{
    if (m->nev == m->evcap) {
        m->evcap = m->evcap ? m->evcap * 2 : 1024;
        m->ev = realloc(m->ev, m->evcap * sizeof(*m->ev));
    }
    m->ev[m->nev++] = (event){svc, cid, minute, kind};
}

static void add_comment(model *m, int64_t id, int svc, int64_t cid, int64_t created_ms)
{
    if (m->ncm == m->cmcap) {
        m->cmcap = m->cmcap ? m->cmcap * 2 : 1024;
        m->cm = realloc(m->cm, m->cmcap * sizeof(*m->cm));
    }
    m->cm[m->ncm++] = (live){id, svc, cid, false, created_ms};
}

typedef struct {
    int svc;
    int64_t cid;
    int64_t change, created, deleted, restored;
} row;

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

#define MAXCID 300

/* Brute force: sums per (service, cid) over [from, to); only contents with
 * an event in the window take part.  Returns the number of rows. */
static size_t brute_top(const model *m, int svc, int64_t from, int64_t to, bool dec, row *out)
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

/* Posts n comments with backfilled times in [lo_min, hi_min]. */
static void post_random(tier_client *c, model *m, size_t n, int64_t lo_min, int64_t hi_min,
                        unsigned *seed)
{
    Tier__PostCommentRequest *cs = calloc(n, sizeof(*cs));
    Tier__PostCommentRequest **ps = calloc(n, sizeof(*ps));
    Tier__PostCommentsRequest q = TIER__POST_COMMENTS_REQUEST__INIT;
    Tier__PostCommentsReply *rep;
    tier_error err;

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
        ps[i] = &cs[i];
    }
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
    free(cs);
    free(ps);
}

/* ------------------------------------------------------------ windows */

typedef struct {
    int64_t from, to; /* minutes */
    int svc;          /* -1 = all */
    bool dec;
    uint32_t limit; /* as sent; 0 = 100 */
} window;

static void check_window(tier_client *c, const model *m, const window *w, row *buf)
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

static window *random_windows(size_t n, int64_t lo, int64_t hi, unsigned *seed)
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

static int change_at(tier_client *c, int64_t id, int64_t time_ms, bool restore, tier_error *err)
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

static void change_backfilled(tier_client *c, model *m, size_t n, int64_t hi_ms, unsigned *seed)
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

/* Windows with edges anywhere in [lo, hi], biased to unaligned old edges
 * and multi-day lengths. */
static window *old_windows(size_t n, int64_t lo, int64_t hi, unsigned *seed)
{
    window *w = random_windows(n, lo, hi, seed);
    for (size_t i = 0; i < n; i++) {
        int64_t len;
        switch (rand_r(seed) % 4) {
        case 0:
            len = 1 + rand_r(seed) % 40;
            break;
        case 1:
            len = 1 + rand_r(seed) % 600;
            break;
        default:
            len = 1 + rand_r(seed) % (hi - lo);
            break;
        }
        w[i].from = lo + rand_r(seed) % (hi - lo);
        w[i].to = w[i].from + len;
    }
    return w;
}

Test(ranking_compact, old_windows_equal_brute_force_across_restart, .timeout = 600)
{
    fixture f;
    model m = {0};
    unsigned seed = 20261201;
    row *buf = calloc(NSVC * (MAXCID + 1), sizeof(*buf));
    const size_t NWIN = 400;

    setup(&f);
    int64_t now_min = tier_now_ms() / 60000, lo = now_min - 3 * 1440;
    for (int round = 0; round < 4; round++) {
        post_random(f.c, &m, 800, lo, now_min - 1, &seed);
        change_backfilled(f.c, &m, 300, (now_min - 1) * 60000, &seed);
    }
    window *w = old_windows(NWIN, lo - 5, now_min + 1, &seed);
    for (size_t i = 0; i < NWIN; i++)
        check_window(f.c, &m, &w[i], buf);

    kill_tierd(&f, SIGKILL);
    start_tierd(&f);
    for (size_t i = 0; i < NWIN; i++)
        check_window(f.c, &m, &w[i], buf);

    /* backfills into compacted granules after the rebuild */
    post_random(f.c, &m, 600, lo, now_min - 60, &seed);
    change_backfilled(f.c, &m, 200, (now_min - 1) * 60000, &seed);
    for (size_t i = 0; i < NWIN; i++)
        check_window(f.c, &m, &w[i], buf);

    free(w);
    free(buf);
    free(m.ev);
    free(m.cm);
    teardown(&f);
}
