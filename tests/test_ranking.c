/*
 * test_ranking.c -- ranking end to end: a real tierd process (spawned per
 * test, on a fresh MariaDB database) driven through libtier.
 *
 *   - random streams of creates (backfilled across hundreds of minutes and
 *     3 services), deletes, restores and edits; TopContents for 1,200
 *     random windows (both orders, with and without a service, various
 *     limits) equals a brute-force computation over the events the test
 *     made, before and after tierd is killed and started again;
 *   - window edges: 10:03:59.999 is in minute 10:03;
 *   - LatestComments paging: never skips or repeats, excludes deleted;
 *   - every bad input refused with its code.
 *
 * Deletes and restores are charged to the server's minute at the time of
 * the call; the test keeps its calls away from minute boundaries so it
 * knows which minute that was (same machine, same clock).
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
    char *extra[] = {"--threads", "32", NULL};
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

/* ------------------------------------------------------------ calls */

/* Waits until the wall clock is at least 300 ms away from a minute's end,
 * so a call made now is charged to the minute returned. */
static int64_t safe_minute(void)
{
    for (;;) {
        int64_t now = tier_now_ms();
        if (now % 60000 < 59700)
            return now / 60000;
        usleep(50 * 1000);
    }
}

static int change_call(tier_client *c, int kind, int64_t id)
{
    Tier__CommentReply *rep = NULL;
    tier_error err;
    int rv;

    if (kind == 1) {
        Tier__DeleteCommentRequest q = TIER__DELETE_COMMENT_REQUEST__INIT;
        q.id = id;
        rv = tier_delete_comment(c, &q, &rep, &err);
    } else if (kind == 2) {
        Tier__RestoreCommentRequest q = TIER__RESTORE_COMMENT_REQUEST__INIT;
        q.id = id;
        rv = tier_restore_comment(c, &q, &rep, &err);
    } else {
        Tier__EditCommentRequest q = TIER__EDIT_COMMENT_REQUEST__INIT;
        q.id = id;
        q.body = "edited body";
        rv = tier_edit_comment(c, &q, &rep, &err);
    }
    if (rv == TIER_OK) {
        cr_assert_eq(rep->comment->id, id);
        cr_assert_eq(rep->comment->deleted, kind == 1);
        tier_free(rep);
    }
    return rv;
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

/* Deletes, restores and edits random comments, recording the events. */
static void change_random(tier_client *c, model *m, size_t n, unsigned *seed)
{
    for (size_t i = 0; i < n; i++) {
        live *l = &m->cm[rand_r(seed) % m->ncm];
        int r = rand_r(seed) % 10;
        int kind = r < 6 ? 1 : r < 8 ? 2 : 3;
        int64_t minute = safe_minute();
        int rv = change_call(c, kind, l->id);
        if (kind == 3) {
            cr_assert_eq(rv, l->deleted ? TIER_FAILED_PRECONDITION : TIER_OK);
            continue;
        }
        bool ok = kind == 1 ? !l->deleted : l->deleted;
        cr_assert_eq(rv, ok ? TIER_OK : TIER_FAILED_PRECONDITION, "kind %d rv %d", kind, rv);
        if (ok) {
            l->deleted = kind == 1;
            l->last_ms = tier_now_ms(); /* an upper bound of the server's time */
            add_event(m, l->svc, l->cid, minute, kind);
        }
    }
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

/* ------------------------------------------------------------ tests */

Test(ranking, random_streams_equal_brute_force_and_survive_restart, .timeout = 600)
{
    fixture f;
    model m = {0};
    unsigned seed = 20261123;
    row *buf = calloc(NSVC * (MAXCID + 1), sizeof(*buf));
    const size_t NWIN = 1200;

    setup(&f);
    int64_t now_min = tier_now_ms() / 60000, lo = now_min - 400;
    for (int round = 0; round < 8; round++) {
        post_random(f.c, &m, 700, lo, now_min - 1, &seed);
        change_random(f.c, &m, 120, &seed);
    }
    /* Windows reach past both ends of the data. */
    window *w = random_windows(NWIN, lo - 5, now_min + 1, &seed);
    for (size_t i = 0; i < NWIN; i++)
        check_window(f.c, &m, &w[i], buf);

    /* Killed without warning, started again: rebuilt from MySQL. */
    kill_tierd(&f, SIGKILL);
    start_tierd(&f);
    for (size_t i = 0; i < NWIN; i++)
        check_window(f.c, &m, &w[i], buf);
    /* And it keeps counting after the restart. */
    post_random(f.c, &m, 300, lo, now_min - 1, &seed);
    change_random(f.c, &m, 60, &seed);
    for (size_t i = 0; i < NWIN / 4; i++)
        check_window(f.c, &m, &w[i], buf);

    free(w);
    free(buf);
    free(m.ev);
    free(m.cm);
    teardown(&f);
}

static int64_t post_at(tier_client *c, const char *svc, int64_t cid, int64_t time_ms)
{
    Tier__PostCommentRequest one = TIER__POST_COMMENT_REQUEST__INIT;
    Tier__PostCommentRequest *p = &one;
    Tier__PostCommentsRequest q = TIER__POST_COMMENTS_REQUEST__INIT;
    Tier__PostCommentsReply *rep;
    tier_error err;

    one.service = (char *)svc;
    one.cid = cid;
    one.author = "edge";
    one.body = "edge";
    one.time_ms = time_ms;
    q.n_comments = 1;
    q.comments = &p;
    cr_assert_eq(tier_post_comments(c, &q, &rep, &err), TIER_OK, "%s", err.message);
    cr_assert_eq(rep->results[0]->code, 0, "%s", rep->results[0]->message);
    int64_t id = rep->results[0]->id;
    tier_free(rep);
    return id;
}

/* The rows of a window of one service, as "cid:change" pairs. */
static void top_str(tier_client *c, const char *svc, int64_t from_min, int64_t to_min, char *out,
                    size_t len)
{
    Tier__TopContentsRequest q = TIER__TOP_CONTENTS_REQUEST__INIT;
    Tier__TopContentsReply *rep;
    tier_error err;
    size_t k = 0;

    q.from_ms = from_min * 60000;
    q.to_ms = to_min * 60000;
    q.service = (char *)svc;
    cr_assert_eq(tier_top_contents(c, &q, &rep, &err), TIER_OK, "%s", err.message);
    out[0] = '\0';
    for (size_t i = 0; i < rep->n_rows; i++)
        k += (size_t)snprintf(out + k, len - k, "%s%lld:%lld", i ? " " : "",
                              (long long)rep->rows[i]->cid, (long long)rep->rows[i]->change);
    tier_free(rep);
}

Test(ranking, window_edges_and_freshness)
{
    fixture f;
    char s[256];

    setup(&f);
    int64_t m = tier_now_ms() / 60000 - 30;     /* "10:03" */
    post_at(f.c, "edge", 1, m * 60000 + 59999); /* 10:03:59.999 */
    post_at(f.c, "edge", 2, (m + 1) * 60000);   /* 10:04:00.000 */
    post_at(f.c, "edge", 3, m * 60000);         /* 10:03:00.000 */
    top_str(f.c, "edge", m, m + 1, s, sizeof(s));
    cr_assert_str_eq(s, "1:1 3:1");
    top_str(f.c, "edge", m + 1, m + 2, s, sizeof(s));
    cr_assert_str_eq(s, "2:1");
    top_str(f.c, "edge", m - 1, m, s, sizeof(s));
    cr_assert_str_eq(s, "");
    top_str(f.c, "edge", m - 1, m + 2, s, sizeof(s));
    cr_assert_str_eq(s, "1:1 2:1 3:1");

    /* Counted as soon as acknowledged, in the current minute. */
    Tier__PostCommentRequest q = TIER__POST_COMMENT_REQUEST__INIT;
    Tier__PostCommentReply *rep;
    q.service = "fresh";
    q.cid = 42;
    q.author = "a";
    q.body = "b";
    cr_assert_eq(tier_post_comment(f.c, &q, &rep, NULL), TIER_OK);
    int64_t cm = rep->created_ms / 60000;
    cr_assert(llabs(rep->created_ms - tier_now_ms()) < 2000);
    tier_free(rep);
    top_str(f.c, "fresh", cm, cm + 1, s, sizeof(s));
    cr_assert_str_eq(s, "42:1");
    teardown(&f);
}

static int delete_at(tier_client *c, int64_t id, int64_t time_ms, bool restore)
{
    Tier__DeleteCommentRequest d = TIER__DELETE_COMMENT_REQUEST__INIT;
    Tier__RestoreCommentRequest r = TIER__RESTORE_COMMENT_REQUEST__INIT;
    Tier__CommentReply *rep = NULL;
    int rv;

    d.id = r.id = id;
    d.time_ms = r.time_ms = time_ms;
    rv = restore ? tier_restore_comment(c, &r, &rep, NULL) : tier_delete_comment(c, &d, &rep, NULL);
    tier_free(rep);
    return rv;
}

/* Imports replay history: a delete or restore may carry its own time,
 * charged to that minute; never before the comment, never in the future. */
Test(ranking, backfilled_delete_and_restore)
{
    fixture f;
    char s[256];

    setup(&f);
    int64_t m = tier_now_ms() / 60000 - 100;
    int64_t id = post_at(f.c, "imp", 9, m * 60000 + 5000);
    cr_assert_eq(delete_at(f.c, id, m * 60000 + 1000, false), TIER_FAILED_PRECONDITION,
                 "a delete before the comment existed");
    cr_assert_eq(delete_at(f.c, id, tier_now_ms() + 3600000, false), TIER_INVALID_ARGUMENT);
    cr_assert_eq(delete_at(f.c, id, (m + 3) * 60000, false), TIER_OK);
    cr_assert_eq(delete_at(f.c, id, (m + 7) * 60000 + 1, true), TIER_OK);
    top_str(f.c, "imp", m, m + 1, s, sizeof(s));
    cr_assert_str_eq(s, "9:1");
    top_str(f.c, "imp", m + 3, m + 4, s, sizeof(s));
    cr_assert_str_eq(s, "9:-1");
    top_str(f.c, "imp", m + 1, m + 7, s, sizeof(s));
    cr_assert_str_eq(s, "9:-1");
    top_str(f.c, "imp", m + 7, m + 8, s, sizeof(s));
    cr_assert_str_eq(s, "9:1");
    top_str(f.c, "imp", m, m + 8, s, sizeof(s));
    cr_assert_str_eq(s, "9:1");
    /* The same after a restart: the per-minute rows are durable. */
    kill_tierd(&f, SIGKILL);
    start_tierd(&f);
    top_str(f.c, "imp", m + 3, m + 4, s, sizeof(s));
    cr_assert_str_eq(s, "9:-1");
    teardown(&f);
}

/* Pages through cid's comments with page size n; the ids, newest first. */
static size_t page_all(tier_client *c, int64_t cid, const char *svc, uint32_t n, int64_t *ids,
                       size_t cap)
{
    Tier__LatestCommentsRequest q = TIER__LATEST_COMMENTS_REQUEST__INIT;
    size_t k = 0;

    q.cid = cid;
    q.n = n;
    q.service = (char *)(svc ? svc : "");
    do {
        Tier__LatestCommentsReply *rep;
        tier_error err;
        cr_assert_eq(tier_latest_comments(c, &q, &rep, &err), TIER_OK, "%s", err.message);
        cr_assert_leq(rep->n_comments, n ? n : 20);
        for (size_t i = 0; i < rep->n_comments; i++) {
            cr_assert_lt(k, cap);
            cr_assert_eq(rep->comments[i]->cid, cid);
            cr_assert_eq(rep->comments[i]->deleted, false);
            ids[k++] = rep->comments[i]->id;
        }
        if (rep->next_cursor != 0)
            cr_assert_eq(rep->n_comments, n ? n : 20, "a short page has no cursor");
        q.cursor = rep->next_cursor;
        tier_free(rep);
    } while (q.cursor != 0);
    return k;
}

Test(ranking, latest_comments_paging)
{
    fixture f;
    int64_t ids[300], svc_of[300], got[400];
    bool deleted[300] = {false};
    unsigned seed = 7;

    setup(&f);
    for (int i = 0; i < 300; i++) {
        Tier__PostCommentRequest q = TIER__POST_COMMENT_REQUEST__INIT;
        Tier__PostCommentReply *rep;
        svc_of[i] = i % 3 == 0;
        q.service = svc_of[i] ? "blog" : "news";
        q.cid = i % 5 == 0 ? 99 : 77; /* another content interleaved */
        q.author = "p";
        q.body = "page";
        cr_assert_eq(tier_post_comment(f.c, &q, &rep, NULL), TIER_OK);
        ids[i] = rep->id;
        tier_free(rep);
    }
    for (int k = 0; k < 60; k++) {
        int i = rand_r(&seed) % 300;
        if (!deleted[i] && change_call(f.c, 1, ids[i]) == TIER_OK)
            deleted[i] = true;
    }
    uint32_t sizes[] = {1, 7, 20, 0, 1000};
    for (int s = 0; s < 5; s++) {
        for (int svc = -1; svc <= 1; svc++) {
            size_t n = page_all(f.c, 77,
                                svc < 0 ? NULL
                                : svc   ? "blog"
                                        : "news",
                                sizes[s], got, 400);
            size_t k = 0;
            for (int i = 299; i >= 0; i--)
                if (i % 5 != 0 && !deleted[i] && (svc < 0 || svc_of[i] == svc)) {
                    cr_assert_lt(k, n, "missing comment %lld", (long long)ids[i]);
                    cr_assert_eq(got[k], ids[i], "page size %u svc %d position %zu", sizes[s], svc,
                                 k);
                    k++;
                }
            cr_assert_eq(k, n, "extra comments");
        }
    }
    teardown(&f);
}

static int post_code(tier_client *c, const char *svc, int64_t cid, const char *author,
                     const char *body, int64_t time_ms)
{
    Tier__PostCommentRequest q = TIER__POST_COMMENT_REQUEST__INIT;
    Tier__PostCommentReply *rep;
    q.service = (char *)svc;
    q.cid = cid;
    q.author = (char *)author;
    q.body = (char *)body;
    q.time_ms = time_ms;
    int rv = tier_post_comment(c, &q, &rep, NULL);
    if (rv == TIER_OK)
        tier_free(rep);
    return rv;
}

static int top_code(tier_client *c, int64_t from_ms, int64_t to_ms, uint32_t limit, size_t *rows)
{
    Tier__TopContentsRequest q = TIER__TOP_CONTENTS_REQUEST__INIT;
    Tier__TopContentsReply *rep;
    q.from_ms = from_ms;
    q.to_ms = to_ms;
    q.limit = limit;
    int rv = tier_top_contents(c, &q, &rep, NULL);
    if (rv == TIER_OK) {
        *rows = rep->n_rows;
        tier_free(rep);
    }
    return rv;
}

static char *filled(size_t n)
{
    char *s = malloc(n + 1);
    memset(s, 'x', n);
    s[n] = '\0';
    return s;
}

Test(ranking, bad_inputs_refused_with_their_codes)
{
    fixture f;
    char *body64k = filled(65536), *body_big = filled(65537);
    char *a255 = filled(255), *a256 = filled(256), *s64 = filled(64), *s65 = filled(65);
    int64_t now = tier_now_ms();
    size_t n;

    setup(&f);
    /* Edges that are fine. */
    cr_assert_eq(post_code(f.c, "x", 1, a255, body64k, 0), TIER_OK);
    cr_assert_eq(post_code(f.c, s64, 1, "a", "b", 0), TIER_OK);
    cr_assert_eq(post_code(f.c, "x", 1, "a", "b", now + 1000), TIER_OK);
    /* Refused. */
    cr_assert_eq(post_code(f.c, "x", 1, "a", "", 0), TIER_INVALID_ARGUMENT);
    cr_assert_eq(post_code(f.c, "x", 1, "a", body_big, 0), TIER_INVALID_ARGUMENT);
    cr_assert_eq(post_code(f.c, "x", 1, "", "b", 0), TIER_INVALID_ARGUMENT);
    cr_assert_eq(post_code(f.c, "x", 1, a256, "b", 0), TIER_INVALID_ARGUMENT);
    cr_assert_eq(post_code(f.c, "", 1, "a", "b", 0), TIER_INVALID_ARGUMENT);
    cr_assert_eq(post_code(f.c, s65, 1, "a", "b", 0), TIER_INVALID_ARGUMENT);
    cr_assert_eq(post_code(f.c, "x", 0, "a", "b", 0), TIER_INVALID_ARGUMENT);
    cr_assert_eq(post_code(f.c, "x", 1, "a", "b", now + 60000), TIER_INVALID_ARGUMENT);
    cr_assert_eq(post_code(f.c, "x", 1, "\xff\xfe", "b", 0), TIER_INVALID_ARGUMENT);

    /* A batch: bad items refused one by one, the others stored. */
    Tier__PostCommentRequest items[3], *ps[3];
    for (int i = 0; i < 3; i++) {
        tier__post_comment_request__init(&items[i]);
        items[i].service = "x";
        items[i].cid = 5;
        items[i].author = "a";
        items[i].body = "b";
        ps[i] = &items[i];
    }
    items[1].body = "";
    items[2].time_ms = now + 3600000;
    Tier__PostCommentsRequest bq = TIER__POST_COMMENTS_REQUEST__INIT;
    Tier__PostCommentsReply *brep;
    bq.n_comments = 3;
    bq.comments = ps;
    cr_assert_eq(tier_post_comments(f.c, &bq, &brep, NULL), TIER_OK);
    cr_assert_eq(brep->results[0]->code, TIER_OK);
    cr_assert_gt(brep->results[0]->id, 0);
    cr_assert_eq(brep->results[1]->code, TIER_INVALID_ARGUMENT);
    cr_assert_eq(brep->results[2]->code, TIER_INVALID_ARGUMENT);
    int64_t id = brep->results[0]->id;
    tier_free(brep);

    /* Unknown ids, double delete, restore of a live one, edit of a deleted one. */
    cr_assert_eq(change_call(f.c, 1, 123456789), TIER_NOT_FOUND);
    cr_assert_eq(change_call(f.c, 2, 123456789), TIER_NOT_FOUND);
    cr_assert_eq(change_call(f.c, 3, 123456789), TIER_NOT_FOUND);
    cr_assert_eq(change_call(f.c, 2, id), TIER_FAILED_PRECONDITION);
    cr_assert_eq(change_call(f.c, 3, id), TIER_OK);
    cr_assert_eq(change_call(f.c, 1, id), TIER_OK);
    cr_assert_eq(change_call(f.c, 1, id), TIER_FAILED_PRECONDITION);
    cr_assert_eq(change_call(f.c, 3, id), TIER_FAILED_PRECONDITION);
    cr_assert_eq(change_call(f.c, 2, id), TIER_OK);
    cr_assert_eq(change_call(f.c, 2, id), TIER_FAILED_PRECONDITION);
    cr_assert_eq(change_call(f.c, 1, 0), TIER_INVALID_ARGUMENT);
    Tier__EditCommentRequest eq = TIER__EDIT_COMMENT_REQUEST__INIT;
    Tier__CommentReply *erep;
    eq.id = id;
    eq.body = "";
    cr_assert_eq(tier_edit_comment(f.c, &eq, &erep, NULL), TIER_INVALID_ARGUMENT);
    eq.body = body_big;
    cr_assert_eq(tier_edit_comment(f.c, &eq, &erep, NULL), TIER_INVALID_ARGUMENT);

    /* TopContents windows and limits. */
    int64_t m = (now / 60000) * 60000;
    for (int i = 0; i < 150; i++)
        cr_assert_eq(post_code(f.c, "many", 1000 + i, "a", "b", m + 1), TIER_OK);
    cr_assert_eq(top_code(f.c, m, m + 60000, 0, &n), TIER_OK);
    cr_assert_eq(n, 100, "limit 0 means 100");
    cr_assert_eq(top_code(f.c, m, m + 60000, 1000, &n), TIER_OK);
    cr_assert_geq(n, 150);
    cr_assert_eq(top_code(f.c, m, m + 60000, 1001, &n), TIER_INVALID_ARGUMENT);
    cr_assert_eq(top_code(f.c, m, m, 10, &n), TIER_INVALID_ARGUMENT);
    cr_assert_eq(top_code(f.c, m + 60000, m, 10, &n), TIER_INVALID_ARGUMENT);
    cr_assert_eq(top_code(f.c, m + 1, m + 60000, 10, &n), TIER_INVALID_ARGUMENT);
    cr_assert_eq(top_code(f.c, m, m + 60001, 10, &n), TIER_INVALID_ARGUMENT);
    /* Longer than the retention (30 days by default), or before it. */
    cr_assert_eq(top_code(f.c, m - 31LL * 86400000, m, 10, &n), TIER_INVALID_ARGUMENT);
    cr_assert_eq(top_code(f.c, m - 40LL * 86400000, m - 39LL * 86400000, 10, &n),
                 TIER_INVALID_ARGUMENT);
    cr_assert_eq(top_code(f.c, m - 30LL * 86400000 + 60000, m + 60000, 10, &n), TIER_OK);

    /* LatestComments. */
    Tier__LatestCommentsRequest lq = TIER__LATEST_COMMENTS_REQUEST__INIT;
    Tier__LatestCommentsReply *lrep;
    lq.cid = 1;
    lq.n = 1001;
    cr_assert_eq(tier_latest_comments(f.c, &lq, &lrep, NULL), TIER_INVALID_ARGUMENT);
    lq.n = 0;
    lq.cid = 0;
    cr_assert_eq(tier_latest_comments(f.c, &lq, &lrep, NULL), TIER_INVALID_ARGUMENT);
    lq.cid = 1;
    cr_assert_eq(tier_latest_comments(f.c, &lq, &lrep, NULL), TIER_OK);
    cr_assert_eq(lrep->n_comments, 3);
    /* Newest first by created_ms: the third post's backfilled time (the
     * test's now + 1 s) may precede the other two (tierd's now). */
    size_t longest = 0;
    for (size_t i = 0; i < 3; i++)
        if (strlen(lrep->comments[i]->body) > longest)
            longest = strlen(lrep->comments[i]->body);
    cr_assert_eq(longest, 65536, "the 64 KiB body comes back whole");
    tier_free(lrep);

    free(body64k);
    free(body_big);
    free(a255);
    free(a256);
    free(s64);
    free(s65);
    teardown(&f);
}

/* n PostComments items with an empty body: each refused by itself, so the
 * call's own status is the cap's alone and nothing is written. */
static int post_empty_n(tier_client *c, size_t n, size_t *results, tier_error *err)
{
    Tier__PostCommentRequest *cs = calloc(n, sizeof(*cs));
    Tier__PostCommentRequest **ps = calloc(n, sizeof(*ps));
    Tier__PostCommentsRequest q = TIER__POST_COMMENTS_REQUEST__INIT;
    Tier__PostCommentsReply *rep = NULL;

    for (size_t i = 0; i < n; i++) {
        tier__post_comment_request__init(&cs[i]);
        cs[i].service = "cap";
        cs[i].cid = 1;
        cs[i].author = "a";
        cs[i].body = "";
        ps[i] = &cs[i];
    }
    q.n_comments = n;
    q.comments = ps;
    int rv = tier_post_comments(c, &q, &rep, err);
    if (rv == TIER_OK) {
        *results = rep->n_results;
        for (size_t i = 0; i < rep->n_results; i++)
            cr_assert_eq(rep->results[i]->code, TIER_INVALID_ARGUMENT);
    }
    tier_free(rep);
    free(cs);
    free(ps);
    return rv;
}

Test(ranking, post_comments_capped_per_call)
{
    fixture f;
    tier_error err;
    size_t n = 0;

    setup(&f);
    cr_assert_eq(post_empty_n(f.c, 10001, &n, &err), TIER_INVALID_ARGUMENT);
    cr_assert(strstr(err.message, "comments: at most 10000 per call") != NULL, "%s", err.message);
    cr_assert_eq(post_empty_n(f.c, 10000, &n, &err), TIER_OK, "%s", err.message);
    cr_assert_eq(n, 10000);
    teardown(&f);
}

/* ------------------------------------------------------------ backfilled timelines (issue 8) */

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

/* The sequence: post at -50 min, delete at -20, restore backfilled
 * to -40 counted +2 for one comment in [-50, -20).  A delete or restore
 * must follow the comment's last transition; equal times are fine. */
Test(ranking, backfilled_transitions_follow_the_timeline)
{
    fixture f;
    tier_error err;
    char s[256];

    setup(&f);
    int64_t m = tier_now_ms() / 60000 - 60, t = m * 60000; /* minute -60 */
    int64_t id = post_at(f.c, "tl", 5, t + 10 * 60000);    /* -50 */
    cr_assert_eq(change_at(f.c, id, t + 40 * 60000, false, &err), TIER_OK, "%s", err.message);
    cr_assert_eq(change_at(f.c, id, t + 20 * 60000, true, &err), TIER_FAILED_PRECONDITION,
                 "a restore before the delete it undoes");
    cr_assert(strstr(err.message, "before the comment's last delete") != NULL, "%s", err.message);
    top_str(f.c, "tl", m + 10, m + 40, s, sizeof(s));
    cr_assert_str_eq(s, "5:1", "never +2 for one comment");

    /* Restore at -10; a delete before it refused, at it accepted. */
    cr_assert_eq(change_at(f.c, id, t + 50 * 60000, true, &err), TIER_OK, "%s", err.message);
    cr_assert_eq(change_at(f.c, id, t + 45 * 60000, false, &err), TIER_FAILED_PRECONDITION);
    cr_assert(strstr(err.message, "before the comment's last restore") != NULL, "%s", err.message);
    cr_assert_eq(change_at(f.c, id, t + 50 * 60000, false, &err), TIER_OK, "%s", err.message);
    /* The floor survives a restart: it is in MySQL, not in tierd. */
    kill_tierd(&f, SIGKILL);
    start_tierd(&f);
    cr_assert_eq(change_at(f.c, id, t + 49 * 60000, true, &err), TIER_FAILED_PRECONDITION);
    cr_assert(strstr(err.message, "before the comment's last delete") != NULL, "%s", err.message);
    cr_assert_eq(change_at(f.c, id, t + 55 * 60000, true, &err), TIER_OK, "%s", err.message);
    top_str(f.c, "tl", m, m + 60, s, sizeof(s));
    cr_assert_str_eq(s, "5:1");
    top_str(f.c, "tl", m + 40, m + 51, s, sizeof(s));
    cr_assert_str_eq(s, "5:-1");
    top_str(f.c, "tl", m + 51, m + 56, s, sizeof(s));
    cr_assert_str_eq(s, "5:1");
    /* Now (time_ms 0) is never refused for its time. */
    cr_assert_eq(change_at(f.c, id, 0, false, &err), TIER_OK, "%s", err.message);
    teardown(&f);
}

/* Backfilled deletes and restores at random times, some before the
 * comment's last transition (refused) and some at it exactly (accepted):
 * every window equals the brute force over the accepted ones. */
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

Test(ranking, backfilled_histories_equal_brute_force, .timeout = 600)
{
    fixture f;
    model m = {0};
    unsigned seed = 20261130;
    row *buf = calloc(NSVC * (MAXCID + 1), sizeof(*buf));
    const size_t NWIN = 800;

    setup(&f);
    int64_t now_min = tier_now_ms() / 60000, lo = now_min - 300;
    for (int round = 0; round < 4; round++) {
        post_random(f.c, &m, 500, lo, now_min - 60, &seed);
        change_backfilled(f.c, &m, 600, (now_min - 1) * 60000, &seed);
    }
    window *w = random_windows(NWIN, lo - 5, now_min + 1, &seed);
    for (size_t i = 0; i < NWIN; i++)
        check_window(f.c, &m, &w[i], buf);
    kill_tierd(&f, SIGKILL);
    start_tierd(&f);
    for (size_t i = 0; i < NWIN; i++)
        check_window(f.c, &m, &w[i], buf);

    free(w);
    free(buf);
    free(m.ev);
    free(m.cm);
    teardown(&f);
}
