/*
 * test_comment_batches.c -- batched comment changes and LatestComments'
 * order (issue 12), against a real MariaDB (and a real tierd for the RPCs).
 *
 *   - the store applies a flush's changes in memory in submission order:
 *     delete, restore, delete of one comment in one flush all succeed, an
 *     edit of the then-deleted comment is refused, unknown ids NOT_FOUND,
 *     comment_minute gets the net change;
 *   - DeleteComments / RestoreComments / EditComments through tierd:
 *     per-item codes (already deleted, not deleted, unknown, bad input),
 *     over the cap INVALID_ARGUMENT for the whole call, and after random
 *     batches TopContents equals COUNT(*) of live comments in MySQL and
 *     comment_minute's sums;
 *   - DeleteByAuthor pages with limit / remaining until done;
 *   - LatestComments lists by (created_ms, id) descending, backfilled
 *     comments at their time, pages without skips or repeats.
 */
#include <criterion/criterion.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier_client.h"
#include "tier_comments.h"
#include "tier_status.h"
#include "tier_testenv.h"
#include "tier_time.h"

typedef struct {
    tier_test_mysql m;
    tier_test_tierd td;
    char *dir;
    tier_client *c;
    MYSQL *my;
} fixture;

static void setup(fixture *f, bool tierd)
{
    memset(f, 0, sizeof(*f));
    tier_test_mysql_env(&f->m);
    tier_test_db_create(&f->m, NULL);
    f->dir = tier_test_tmpdir();
    f->my = mysql_init(NULL);
    cr_assert(mysql_real_connect(f->my, f->m.host, f->m.user, f->m.password, f->m.db, f->m.port,
                                 NULL, 0) != NULL,
              "%s", mysql_error(f->my));
    if (!tierd)
        return;
    char *extra[] = {"--threads", "16", NULL};
    tier_test_tierd_init(&f->td, f->dir, f->m.db, NULL);
    tier_test_tierd_setenv_services(&f->td, &f->m, -1, -1);
    tier_test_tierd_start(&f->td, extra);
    cr_assert_eq(tier_client_open(&f->c, f->td.listen), TIER_OK);
    tier_client_set_timeout(f->c, 30000);
}

static void teardown(fixture *f)
{
    if (f->c != NULL) {
        tier_client_close(f->c);
        tier_test_tierd_stop(&f->td, SIGTERM, 20000);
    }
    mysql_close(f->my);
    tier_test_db_drop(&f->m);
    tier_test_rmtree(f->dir);
    free(f->dir);
}

static long long sql_num(fixture *f, const char *q)
{
    char out[64];
    tier_test_sql1(f->my, q, out, sizeof(out));
    return atoll(out);
}

/* Posts n comments by author on cid of svc at time_ms (+ i ms); ids out. */
static void post_n(fixture *f, const char *svc, int64_t cid, const char *author, int64_t time_ms,
                   size_t n, int64_t *ids)
{
    Tier__PostCommentRequest *items = calloc(n, sizeof(*items));
    Tier__PostCommentRequest **ptrs = calloc(n, sizeof(*ptrs));
    Tier__PostCommentsRequest q = TIER__POST_COMMENTS_REQUEST__INIT;
    Tier__PostCommentsReply *rep;
    tier_error err;

    for (size_t i = 0; i < n; i++) {
        tier__post_comment_request__init(&items[i]);
        items[i].service = (char *)svc;
        items[i].cid = cid;
        items[i].author = (char *)author;
        items[i].body = "body";
        items[i].time_ms = time_ms + (int64_t)i;
        ptrs[i] = &items[i];
    }
    q.n_comments = n;
    q.comments = ptrs;
    cr_assert_eq(tier_post_comments(f->c, &q, &rep, &err), TIER_OK, "%s", err.message);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(rep->results[i]->code, 0, "%s", rep->results[i]->message);
        if (ids != NULL)
            ids[i] = rep->results[i]->id;
    }
    tier_free(rep);
    free(items);
    free(ptrs);
}

/* Deletes (or restores) ids[0..n) at time_ms in one call; codes out. */
static int change_many(fixture *f, bool restore, const int64_t *ids, size_t n, int64_t time_ms,
                       int *codes)
{
    Tier__DeleteCommentRequest *items = calloc(n + 1, sizeof(*items));
    Tier__DeleteCommentRequest **ptrs = calloc(n + 1, sizeof(*ptrs));
    Tier__CommentsReply *rep = NULL;
    tier_error err;
    int rv;

    for (size_t i = 0; i < n; i++) {
        tier__delete_comment_request__init(&items[i]);
        items[i].id = ids[i];
        items[i].time_ms = time_ms;
        ptrs[i] = &items[i];
    }
    if (restore) {
        /* Same layout: RestoreCommentRequest is (id, time_ms) too. */
        Tier__RestoreCommentsRequest q = TIER__RESTORE_COMMENTS_REQUEST__INIT;
        Tier__RestoreCommentRequest *ri = calloc(n + 1, sizeof(*ri));
        Tier__RestoreCommentRequest **rp = calloc(n + 1, sizeof(*rp));
        for (size_t i = 0; i < n; i++) {
            tier__restore_comment_request__init(&ri[i]);
            ri[i].id = ids[i];
            ri[i].time_ms = time_ms;
            rp[i] = &ri[i];
        }
        q.n_items = n;
        q.items = rp;
        rv = tier_restore_comments(f->c, &q, &rep, &err);
        free(ri);
        free(rp);
    } else {
        Tier__DeleteCommentsRequest q = TIER__DELETE_COMMENTS_REQUEST__INIT;
        q.n_items = n;
        q.items = ptrs;
        rv = tier_delete_comments(f->c, &q, &rep, &err);
    }
    if (rv == TIER_OK) {
        cr_assert_eq(rep->n_results, n);
        for (size_t i = 0; i < n; i++) {
            cr_assert_eq(rep->results[i]->id, ids[i]);
            if (codes != NULL)
                codes[i] = rep->results[i]->code;
            if (rep->results[i]->code == 0) {
                cr_assert_not_null(rep->results[i]->comment);
                cr_assert_eq(rep->results[i]->comment->deleted, !restore);
            } else {
                cr_assert_str_not_empty(rep->results[i]->message);
            }
        }
        tier_free(rep);
    }
    free(items);
    free(ptrs);
    return rv;
}

/* TopContents' change of (svc, cid) over [from, to): 0 when absent. */
static int64_t top_change(fixture *f, const char *svc, int64_t cid, int64_t from, int64_t to)
{
    Tier__TopContentsRequest q = TIER__TOP_CONTENTS_REQUEST__INIT;
    Tier__TopContentsReply *rep;
    tier_error err;
    int64_t v = 0;

    q.from_ms = from;
    q.to_ms = to;
    q.limit = 1000;
    q.service = (char *)svc;
    cr_assert_eq(tier_top_contents(f->c, &q, &rep, &err), TIER_OK, "%s", err.message);
    for (size_t i = 0; i < rep->n_rows; i++)
        if (rep->rows[i]->cid == cid)
            v = rep->rows[i]->change;
    tier_free(rep);
    return v;
}

/* Live comments of (svc, cid) by MySQL's comments table and by the sums
 * of comment_minute over [from, to): both must equal TopContents. */
static void check_counts(fixture *f, const char *svc, int64_t cid, int64_t from, int64_t to)
{
    char q[512];
    long long live, sum;

    snprintf(q, sizeof(q),
             "SELECT COUNT(*) FROM comments WHERE service = '%s' AND cid = %lld AND deleted = 0",
             svc, (long long)cid);
    live = sql_num(f, q);
    snprintf(q, sizeof(q),
             "SELECT COALESCE(SUM(delta), 0) FROM comment_minute WHERE service = '%s' AND "
             "cid = %lld AND minute >= %lld AND minute < %lld",
             svc, (long long)cid, (long long)(from / 60000), (long long)(to / 60000));
    sum = sql_num(f, q);
    cr_assert_eq(sum, live, "%s/%lld: comment_minute %lld, live comments %lld", svc, (long long)cid,
                 sum, live);
    cr_assert_eq(top_change(f, svc, cid, from, to), live, "%s/%lld: TopContents vs %lld", svc,
                 (long long)cid, live);
}

/* ------------------------------------------------------------ the store, one flush */

static void db_open(fixture *f, tier_db **db)
{
    tier_db_config c;
    char err[512];

    memset(&c, 0, sizeof(c));
    snprintf(c.host, sizeof(c.host), "%s", f->m.host);
    c.port = f->m.port;
    snprintf(c.user, sizeof(c.user), "%s", f->m.user);
    snprintf(c.password, sizeof(c.password), "%s", f->m.password);
    snprintf(c.db, sizeof(c.db), "%s", f->m.db);
    cr_assert_eq(tier_db_open(db, &c, err, sizeof(err)), TIER_OK, "%s", err);
    cr_assert_eq(tier_db_autocommit(*db, false), TIER_OK);
}

static int apply(tier_db *db, tier_comment_op *ops, size_t n, int64_t *next)
{
    tier_comment_op *p[16];
    tier_comment_minute *mins;
    size_t nmins;
    int rv;

    for (size_t i = 0; i < n; i++)
        p[i] = &ops[i];
    rv = tier_comments_apply(db, p, n, next, &mins, &nmins);
    free(mins);
    return rv;
}

Test(comment_batches, one_flush_applies_changes_in_submission_order)
{
    fixture f;
    tier_db *db;
    int64_t next = 1, t = 1700000000000LL; /* minute 28333333 */

    setup(&f, false);
    db_open(&f, &db);
    tier_comment_op post[2] = {
        {.kind = TIER_COP_POST,
         .service = "x",
         .service_len = 1,
         .cid = 7,
         .author = "a",
         .author_len = 1,
         .body = "b",
         .body_len = 1,
         .time_ms = t},
        {.kind = TIER_COP_POST,
         .service = "x",
         .service_len = 1,
         .cid = 7,
         .author = "a",
         .author_len = 1,
         .body = "b",
         .body_len = 1,
         .time_ms = t},
    };
    cr_assert_eq(apply(db, post, 2, &next), TIER_OK);
    int64_t a = post[0].id, b = post[1].id;

    /* One flush: delete, restore, delete of a; an edit of a (deleted by
     * then: refused); a second delete of a (refused); edits of b (the
     * last wins); an unknown id. */
    tier_comment_op ops[] = {
        {.kind = TIER_COP_DELETE, .id = a, .time_ms = t + 60000},
        {.kind = TIER_COP_RESTORE, .id = a, .time_ms = t + 60000},
        {.kind = TIER_COP_DELETE, .id = a, .time_ms = t + 120000},
        {.kind = TIER_COP_EDIT, .id = a, .body = "e", .body_len = 1, .time_ms = t + 120000},
        {.kind = TIER_COP_DELETE, .id = a, .time_ms = t + 120000},
        {.kind = TIER_COP_EDIT, .id = b, .body = "one", .body_len = 3, .time_ms = t + 1},
        {.kind = TIER_COP_EDIT, .id = b, .body = "two", .body_len = 3, .time_ms = t + 2},
        {.kind = TIER_COP_RESTORE, .id = b, .time_ms = t + 3},
        {.kind = TIER_COP_DELETE, .id = 999999, .time_ms = t + 3},
        /* Backfilled before a's last transition (t + 2 min): refused. */
        {.kind = TIER_COP_RESTORE, .id = a, .time_ms = t + 60000},
    };
    size_t n = sizeof(ops) / sizeof(ops[0]);
    cr_assert_eq(apply(db, ops, n, &next), TIER_OK);
    int want[] = {TIER_OK,
                  TIER_OK,
                  TIER_OK,
                  TIER_FAILED_PRECONDITION,
                  TIER_FAILED_PRECONDITION,
                  TIER_OK,
                  TIER_OK,
                  TIER_FAILED_PRECONDITION,
                  TIER_NOT_FOUND,
                  TIER_FAILED_PRECONDITION};
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(ops[i].code, want[i], "op %zu: %s, want %s", i, tier_status_name(ops[i].code),
                     tier_status_name(want[i]));
    cr_assert_eq(ops[9].floor, TIER_FLOOR_DELETE);
    cr_assert(ops[1].after.deleted == false && ops[2].after.deleted == true);
    cr_assert_str_eq(ops[0].after.body, "b", "a single change's reply has the stored body");
    cr_assert_str_eq(ops[5].after.body, "one");
    cr_assert_str_eq(ops[6].after.body, "two");
    for (size_t i = 0; i < n; i++)
        tier_comment_clear(&ops[i].after);
    char q[256];
    snprintf(q, sizeof(q),
             "SELECT CONCAT(deleted, ':', last_transition_ms) FROM comments "
             "WHERE id = %lld",
             (long long)a);
    char out[64];
    tier_test_sql1(f.my, q, out, sizeof(out));
    char exp[64];
    snprintf(exp, sizeof(exp), "1:%lld", (long long)(t + 120000));
    cr_assert_str_eq(out, exp);
    snprintf(q, sizeof(q), "SELECT CONCAT(body, ':', modified_ms) FROM comments WHERE id = %lld",
             (long long)b);
    tier_test_sql1(f.my, q, out, sizeof(out));
    snprintf(exp, sizeof(exp), "two:%lld", (long long)(t + 2));
    cr_assert_str_eq(out, exp);
    /* minute +1: -1 +1; minute +2: -1 (net); created 2 at minute 0. */
    cr_assert_eq(sql_num(&f, "SELECT SUM(delta) FROM comment_minute"), 1);
    cr_assert_eq(sql_num(&f, "SELECT SUM(deleted) FROM comment_minute"), 2);
    cr_assert_eq(sql_num(&f, "SELECT SUM(restored) FROM comment_minute"), 1);
    tier_db_close(db);
    teardown(&f);
}

/* ------------------------------------------------------------ through tierd */

Test(comment_batches, per_item_codes_and_the_cap, .timeout = 120)
{
    fixture f;
    int64_t ids[4], now = tier_now_ms(), t = (now / 60000 - 30) * 60000;
    int codes[8];

    setup(&f, true);
    post_n(&f, "news", 1, "a", t, 4, ids);
    int64_t del[] = {ids[0], ids[1], ids[0], 987654321, -5, ids[2]};
    cr_assert_eq(change_many(&f, false, del, 6, 0, codes), TIER_OK);
    int want[] = {TIER_OK, TIER_OK, TIER_FAILED_PRECONDITION, TIER_NOT_FOUND, TIER_INVALID_ARGUMENT,
                  TIER_OK};
    for (int i = 0; i < 6; i++)
        cr_assert_eq(codes[i], want[i], "item %d: %d", i, codes[i]);
    /* A resend changes nothing: every item "already deleted". */
    cr_assert_eq(change_many(&f, false, del, 3, 0, codes), TIER_OK);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(codes[i], TIER_FAILED_PRECONDITION);
    int64_t res[] = {ids[0], ids[3], ids[0]};
    cr_assert_eq(change_many(&f, true, res, 3, 0, codes), TIER_OK);
    cr_assert_eq(codes[0], TIER_OK);
    cr_assert_eq(codes[1], TIER_FAILED_PRECONDITION, "not deleted");
    cr_assert_eq(codes[2], TIER_FAILED_PRECONDITION, "restored by the item before");
    check_counts(&f, "news", 1, t, (now / 60000 + 1) * 60000);

    /* Edits: a bad body is refused alone. */
    Tier__EditCommentRequest e[2] = {TIER__EDIT_COMMENT_REQUEST__INIT,
                                     TIER__EDIT_COMMENT_REQUEST__INIT};
    Tier__EditCommentRequest *ep[2] = {&e[0], &e[1]};
    Tier__EditCommentsRequest eq = TIER__EDIT_COMMENTS_REQUEST__INIT;
    Tier__CommentsReply *rep;
    e[0].id = ids[0];
    e[0].body = "edited";
    e[1].id = ids[3];
    e[1].body = "";
    eq.n_items = 2;
    eq.items = ep;
    cr_assert_eq(tier_edit_comments(f.c, &eq, &rep, NULL), TIER_OK);
    cr_assert_eq(rep->results[0]->code, TIER_OK);
    cr_assert_str_eq(rep->results[0]->comment->body, "", "batch replies carry no body");
    cr_assert_eq(rep->results[1]->code, TIER_INVALID_ARGUMENT);
    tier_free(rep);
    char q[128], out[64];
    snprintf(q, sizeof(q), "SELECT body FROM comments WHERE id = %lld", (long long)ids[0]);
    tier_test_sql1(f.my, q, out, sizeof(out));
    cr_assert_str_eq(out, "edited");

    /* Over the cap: the whole call is refused. */
    size_t big = 10001;
    int64_t *many = calloc(big, sizeof(*many));
    for (size_t i = 0; i < big; i++)
        many[i] = (int64_t)i + 1;
    cr_assert_eq(change_many(&f, false, many, big, 0, NULL), TIER_INVALID_ARGUMENT);
    free(many);
    teardown(&f);
}

Test(comment_batches, random_batches_keep_counts_exact, .timeout = 300)
{
    fixture f;
    static const char *const svcs[] = {"news", "blog"};
    int64_t now = tier_now_ms(), t0 = (now / 60000 - 60) * 60000, ids[600];
    unsigned seed = 12;

    setup(&f, true);
    for (int k = 0; k < 6; k++) /* 6 x 100: 2 services x 3 cids, minutes apart */
        post_n(&f, svcs[k % 2], 1 + k / 2, "a", t0 + k * 60000, 100, ids + k * 100);
    for (int round = 0; round < 6; round++) {
        int64_t pick[300];
        for (int i = 0; i < 300; i++) /* duplicates on purpose */
            pick[i] = ids[rand_r(&seed) % 600];
        /* Backfilled at minutes after every creation, in order. */
        int64_t at = t0 + (10 + round * 2) * 60000;
        cr_assert_eq(change_many(&f, round % 2 == 1, pick, 300, at, NULL), TIER_OK);
    }
    for (int k = 0; k < 6; k++)
        check_counts(&f, svcs[k % 2], 1 + k / 2, t0, (now / 60000 + 1) * 60000);
    /* The counts hold after a restart too (rebuilt from comment_minute). */
    tier_client_close(f.c);
    tier_test_tierd_stop(&f.td, SIGKILL, 20000);
    char *extra[] = {"--threads", "16", NULL};
    tier_test_tierd_start(&f.td, extra);
    cr_assert_eq(tier_client_open(&f.c, f.td.listen), TIER_OK);
    for (int k = 0; k < 6; k++)
        check_counts(&f, svcs[k % 2], 1 + k / 2, t0, (now / 60000 + 1) * 60000);
    teardown(&f);
}

Test(comment_batches, delete_by_author_pages_until_done, .timeout = 120)
{
    fixture f;
    int64_t now = tier_now_ms(), t0 = (now / 60000 - 20) * 60000;
    Tier__DeleteByAuthorRequest q = TIER__DELETE_BY_AUTHOR_REQUEST__INIT;
    Tier__DeleteByAuthorReply *rep;
    uint64_t total = 0;
    int calls = 0;

    setup(&f, true);
    post_n(&f, "news", 1, "spammer", t0, 15, NULL);
    post_n(&f, "blog", 2, "spammer", t0, 10, NULL);
    post_n(&f, "news", 1, "good", t0, 5, NULL);
    q.author = "";
    cr_assert_eq(tier_delete_by_author(f.c, &q, &rep, NULL), TIER_INVALID_ARGUMENT);
    q.author = "spammer";
    q.limit = 10001;
    cr_assert_eq(tier_delete_by_author(f.c, &q, &rep, NULL), TIER_INVALID_ARGUMENT);
    /* One service only first. */
    q.limit = 0;
    q.service = "blog";
    cr_assert_eq(tier_delete_by_author(f.c, &q, &rep, NULL), TIER_OK);
    cr_assert_eq(rep->deleted, 10);
    cr_assert_eq(rep->remaining, 0);
    tier_free(rep);
    q.service = "";
    q.limit = 4;
    do {
        cr_assert_eq(tier_delete_by_author(f.c, &q, &rep, NULL), TIER_OK);
        total += rep->deleted;
        cr_assert_leq(rep->deleted, 4);
        bool more = rep->remaining != 0;
        tier_free(rep);
        calls++;
        if (!more)
            break;
    } while (calls < 10);
    cr_assert_eq(total, 15);
    cr_assert_eq(calls, 4, "4 + 4 + 4 + 3");
    cr_assert_eq(sql_num(&f, "SELECT COUNT(*) FROM comments WHERE author = 'spammer' AND "
                             "deleted = 0"),
                 0);
    cr_assert_eq(sql_num(&f, "SELECT COUNT(*) FROM comments WHERE author = 'good' AND "
                             "deleted = 0"),
                 5);
    check_counts(&f, "news", 1, t0, (now / 60000 + 1) * 60000);
    check_counts(&f, "blog", 2, t0, (now / 60000 + 1) * 60000);
    teardown(&f);
}

/* Every page of LatestComments of cid (order, page size n): ids out. */
static size_t page_all(fixture *f, int64_t cid, uint32_t n, int64_t *ids, int64_t *created)
{
    Tier__LatestCommentsRequest q = TIER__LATEST_COMMENTS_REQUEST__INIT;
    Tier__LatestCommentsReply *rep;
    size_t k = 0;

    q.cid = cid;
    q.n = n;
    for (int pages = 0; pages < 100; pages++) {
        tier_error err;
        cr_assert_eq(tier_latest_comments(f->c, &q, &rep, &err), TIER_OK, "%s", err.message);
        for (size_t i = 0; i < rep->n_comments; i++) {
            ids[k] = rep->comments[i]->id;
            created[k++] = rep->comments[i]->created_ms;
        }
        q.cursor = rep->next_cursor;
        tier_free(rep);
        if (q.cursor == 0)
            break;
    }
    return k;
}

Test(comment_batches, latest_comments_by_created_time, .timeout = 120)
{
    fixture f;
    int64_t now = tier_now_ms(), t0 = (now / 60000 - 100) * 60000;
    /* Posted in this order (ids ascending) with times out of order, ties. */
    static const int mins[] = {50, 10, 90, 10, 30, 90, 70, 10, 60, 20, 50, 80};
    int64_t ids[12], got[32], created[32];
    size_t n = sizeof(mins) / sizeof(mins[0]);

    setup(&f, true);
    for (size_t i = 0; i < n; i++) {
        /* Single posts: one comment per call, at exactly its minute. */
        Tier__PostCommentRequest one = TIER__POST_COMMENT_REQUEST__INIT, *p = &one;
        Tier__PostCommentsRequest q = TIER__POST_COMMENTS_REQUEST__INIT;
        Tier__PostCommentsReply *rep;
        one.service = "news";
        one.cid = 3;
        one.author = "a";
        one.body = "b";
        one.time_ms = t0 + mins[i] * 60000;
        q.n_comments = 1;
        q.comments = &p;
        cr_assert_eq(tier_post_comments(f.c, &q, &rep, NULL), TIER_OK);
        ids[i] = rep->results[0]->id;
        tier_free(rep);
    }
    int codes[1];
    cr_assert_eq(change_many(&f, false, &ids[4], 1, 0, codes), TIER_OK); /* minute 30 gone */
    for (uint32_t page = 1; page <= 5; page += 2) {
        size_t k = page_all(&f, 3, page, got, created);
        cr_assert_eq(k, n - 1, "page size %u: %zu comments", page, k);
        for (size_t i = 1; i < k; i++)
            cr_assert(created[i - 1] > created[i] ||
                          (created[i - 1] == created[i] && got[i - 1] > got[i]),
                      "page size %u: position %zu out of order", page, i);
        for (size_t i = 0; i < k; i++)
            cr_assert_neq(got[i], ids[4], "a deleted comment is listed");
        cr_assert_eq(got[0], ids[5], "the newest by time (90, the larger id) first");
        cr_assert_eq(got[k - 1], ids[1], "the oldest (10, smallest id) last");
    }
    /* A cursor naming no comment. */
    Tier__LatestCommentsRequest q = TIER__LATEST_COMMENTS_REQUEST__INIT;
    Tier__LatestCommentsReply *rep;
    q.cid = 3;
    q.cursor = 987654321;
    cr_assert_eq(tier_latest_comments(f.c, &q, &rep, NULL), TIER_INVALID_ARGUMENT);
    teardown(&f);
}
