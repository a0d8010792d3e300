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

#include "ranking_fixture.h"
#include "ranking_model.h"
#include "tier_client.h"
#include "tier_testenv.h"
#include "tier_time.h"

/* ------------------------------------------------------------ a tierd */

/* tierd's arguments at every start (ranking_fixture.h).  The model, the
 * brute force and the random streams are in ranking_model.h. */
static char *const TIERD_ARGS[] = {"--threads", "32", NULL};

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

/* ------------------------------------------------------------ tests */

Test(ranking, random_streams_equal_brute_force_and_survive_restart, .timeout = 600)
{
    ranking_fixture f;
    model m = {0};
    unsigned seed = 20261123;
    row *buf = calloc(NSVC * (MAXCID + 1), sizeof(*buf));
    const size_t NWIN = 1200;

    ranking_fixture_setup(&f, TIERD_ARGS);
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
    ranking_fixture_kill(&f, SIGKILL);
    ranking_fixture_start(&f);
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
    ranking_fixture_teardown(&f);
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
    ranking_fixture f;
    char s[256];

    ranking_fixture_setup(&f, TIERD_ARGS);
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
    ranking_fixture_teardown(&f);
}

/* Imports replay history: a delete or restore may carry its own time,
 * charged to that minute; never before the comment, never in the future. */
Test(ranking, backfilled_delete_and_restore)
{
    ranking_fixture f;
    char s[256];

    ranking_fixture_setup(&f, TIERD_ARGS);
    int64_t m = tier_now_ms() / 60000 - 100;
    int64_t id = post_at(f.c, "imp", 9, m * 60000 + 5000);
    cr_assert_eq(change_at(f.c, id, m * 60000 + 1000, false, NULL), TIER_FAILED_PRECONDITION,
                 "a delete before the comment existed");
    cr_assert_eq(change_at(f.c, id, tier_now_ms() + 3600000, false, NULL), TIER_INVALID_ARGUMENT);
    cr_assert_eq(change_at(f.c, id, (m + 3) * 60000, false, NULL), TIER_OK);
    cr_assert_eq(change_at(f.c, id, (m + 7) * 60000 + 1, true, NULL), TIER_OK);
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
    ranking_fixture_kill(&f, SIGKILL);
    ranking_fixture_start(&f);
    top_str(f.c, "imp", m + 3, m + 4, s, sizeof(s));
    cr_assert_str_eq(s, "9:-1");
    ranking_fixture_teardown(&f);
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
    ranking_fixture f;
    int64_t ids[300], svc_of[300], got[400];
    bool deleted[300] = {false};
    unsigned seed = 7;

    ranking_fixture_setup(&f, TIERD_ARGS);
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
    ranking_fixture_teardown(&f);
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
    ranking_fixture f;
    char *body64k = filled(65536), *body_big = filled(65537);
    char *a255 = filled(255), *a256 = filled(256), *s64 = filled(64), *s65 = filled(65);
    int64_t now = tier_now_ms();
    size_t n;

    ranking_fixture_setup(&f, TIERD_ARGS);
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
    ranking_fixture_teardown(&f);
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
    ranking_fixture f;
    tier_error err;
    size_t n = 0;

    ranking_fixture_setup(&f, TIERD_ARGS);
    cr_assert_eq(post_empty_n(f.c, 10001, &n, &err), TIER_INVALID_ARGUMENT);
    cr_assert(strstr(err.message, "comments: at most 10000 per call") != NULL, "%s", err.message);
    cr_assert_eq(post_empty_n(f.c, 10000, &n, &err), TIER_OK, "%s", err.message);
    cr_assert_eq(n, 10000);
    ranking_fixture_teardown(&f);
}

/* ------------------------------------------------------------ backfilled timelines (issue 8) */

/* The sequence: post at -50 min, delete at -20, restore backfilled
 * to -40 counted +2 for one comment in [-50, -20).  A delete or restore
 * must follow the comment's last transition; equal times are fine. */
Test(ranking, backfilled_transitions_follow_the_timeline)
{
    ranking_fixture f;
    tier_error err;
    char s[256];

    ranking_fixture_setup(&f, TIERD_ARGS);
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
    ranking_fixture_kill(&f, SIGKILL);
    ranking_fixture_start(&f);
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
    ranking_fixture_teardown(&f);
}

Test(ranking, backfilled_histories_equal_brute_force, .timeout = 600)
{
    ranking_fixture f;
    model m = {0};
    unsigned seed = 20261130;
    row *buf = calloc(NSVC * (MAXCID + 1), sizeof(*buf));
    const size_t NWIN = 800;

    ranking_fixture_setup(&f, TIERD_ARGS);
    int64_t now_min = tier_now_ms() / 60000, lo = now_min - 300;
    for (int round = 0; round < 4; round++) {
        post_random(f.c, &m, 500, lo, now_min - 60, &seed);
        change_backfilled(f.c, &m, 600, (now_min - 1) * 60000, &seed);
    }
    window *w = random_windows(NWIN, lo - 5, now_min + 1, &seed);
    for (size_t i = 0; i < NWIN; i++)
        check_window(f.c, &m, &w[i], buf);
    ranking_fixture_kill(&f, SIGKILL);
    ranking_fixture_start(&f);
    for (size_t i = 0; i < NWIN; i++)
        check_window(f.c, &m, &w[i], buf);

    free(w);
    free(buf);
    free(m.ev);
    free(m.cm);
    ranking_fixture_teardown(&f);
}
