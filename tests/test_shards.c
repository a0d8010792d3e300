/*
 * test_shards.c -- several coordinators on one Redis and one MariaDB
 * (docs/CLUSTER.md): three tierd processes started with --shards 3 and
 * --shard 0, 1, 2 share a key prefix and a database.  Real processes,
 * real Redis, MariaDB, files and tier-worker processes.
 *
 * What it checks:
 *   - each shard picks cids (AddContent, AddContents) and comment ids that
 *     are its own, and refuses calls naming another shard's cid or comment
 *     with FAILED_PRECONDITION ("moved");
 *   - moves run per shard, each with its own worker, and every file ends
 *     exactly once in its MySQL level's directory;
 *   - TopContents (INCREASE and HOT, paged with cursors) asked of any shard
 *     is the exact answer over all of them;
 *   - a shard's writer replaced by a new process loads its own contents
 *     only, and its fsck finds nothing (other shards' files in the shared
 *     level directories are not "foreign");
 */
#include <criterion/criterion.h>
#include <math.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tier_client.h"
#include "tier_slot.h"
#include "tier_testenv.h"
#include "tier_time.h"

#define SHARDS 3
#define PER 8 /* contents per shard */

typedef struct {
    tier_test_mysql m;
    char *root;
    char prefix[64];
    tier_test_tierd td[SHARDS];
    tier_client *c[SHARDS];
    MYSQL *my;
    pid_t w[SHARDS];
    int64_t cid[SHARDS][PER];
} fx;

static tier_error E;

TestSuite(shards, .fini = tier_test_kill_children, .timeout = 300);

static void shard_start(fx *f, int k)
{
    char shard[12];

    snprintf(shard, sizeof(shard), "%d", k);
    tier_test_tierd_init(&f->td[k], NULL, f->m.db, f->prefix);
    tier_test_tierd_setenv(&f->td[k], "TIER_STORAGE_ROOT=%s", f->root);
    tier_test_tierd_start(&f->td[k], (char *const[]){"--shards", "3", "--shard", shard,
                                                     "--writer-ttl-ms", "1000", NULL});
    cr_assert_eq(tier_client_open(&f->c[k], f->td[k].listen), TIER_OK);
    tier_client_set_timeout(f->c[k], 10000);
}

static void setup(fx *f)
{
    char dir[1024];

    memset(f, 0, sizeof(*f));
    f->root = tier_test_tmpdir();
    tier_test_mysql_env(&f->m);
    tier_test_db_create(&f->m, f->root);
    for (const char *const *l = (const char *const[]){"bronze", "silver", "gold", NULL}; *l; l++) {
        snprintf(dir, sizeof(dir), "%s/%s", f->root, *l);
        mkdir(dir, 0755);
    }
    f->my = mysql_init(NULL);
    cr_assert(mysql_real_connect(f->my, f->m.host, f->m.user, f->m.password, f->m.db,
                                 (unsigned)f->m.port, NULL, 0) != NULL,
              "%s", mysql_error(f->my));
    snprintf(f->prefix, sizeof(f->prefix), "tshard%d:", (int)getpid());
    for (int k = 0; k < SHARDS; k++)
        shard_start(f, k);
}

static void teardown(fx *f)
{
    for (int k = 0; k < SHARDS; k++) {
        if (f->w[k] > 0) {
            kill(f->w[k], SIGTERM);
            tier_test_wait(f->w[k], 20000);
        }
        if (f->td[k].pid > 0) /* 0: it exited already (never kill(0)) */
            tier_test_tierd_stop(&f->td[k], SIGTERM, 15000);
        tier_client_close(f->c[k]);
    }
    mysql_close(f->my);
    tier_test_db_drop(&f->m);
    tier_test_rmtree(f->root);
    free(f->root);
}

/* A bronze file through shard k's AddContent (cid picked by the shard). */
static int64_t add(fx *f, int k, const char *name)
{
    char path[1200];
    Tier__AddContentRequest req = TIER__ADD_CONTENT_REQUEST__INIT;
    Tier__AddContentReply *rep = NULL;
    int64_t cid;

    snprintf(path, sizeof(path), "%s/bronze/%s", f->root, name);
    cr_assert(tier_test_write_file(path, name, strlen(name)));
    req.filename = (char *)name;
    cr_assert_eq(tier_add_content(f->c[k], &req, &rep, &E), TIER_OK, "%s", E.message);
    cid = rep->content->cid;
    tier_free(rep);
    return cid;
}

static void add_all(fx *f)
{
    for (int k = 0; k < SHARDS; k++)
        for (int i = 0; i < PER; i++) {
            char name[32];
            snprintf(name, sizeof(name), "s%d-%d.bin", k, i);
            f->cid[k][i] = add(f, k, name);
        }
}

static int report(fx *f, int k, int64_t cid, int64_t count)
{
    Tier__ReportViewsRequest req = TIER__REPORT_VIEWS_REQUEST__INIT;
    Tier__ViewReport r = TIER__VIEW_REPORT__INIT, *rp = &r;
    Tier__ReportViewsReply *rep = NULL;
    int rv;

    r.cid = cid;
    r.count = count;
    req.reports = &rp;
    req.n_reports = 1;
    rv = tier_report_views(f->c[k], &req, &rep, &E);
    tier_free(rep);
    return rv;
}

static void level_of(fx *f, int64_t cid, char *out, size_t len)
{
    char q[128];
    snprintf(q, sizeof(q), "SELECT content_level FROM contents WHERE cid = %lld", (long long)cid);
    tier_test_sql1(f->my, q, out, len);
}

static bool file_in(fx *f, const char *level, const char *name)
{
    char path[1200];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s/%s", f->root, level, name);
    return stat(path, &st) == 0;
}

Test(shards, each_shard_picks_and_keeps_its_own_cids)
{
    fx f;
    Tier__AddContentRequest aq = TIER__ADD_CONTENT_REQUEST__INIT;
    Tier__AddContentReply *ar = NULL;
    Tier__GetContentRequest gq = TIER__GET_CONTENT_REQUEST__INIT;
    Tier__GetContentReply *gr = NULL;

    setup(&f);
    add_all(&f);
    for (int k = 0; k < SHARDS; k++)
        for (int i = 0; i < PER; i++) {
            int64_t cid = f.cid[k][i];
            int other = (k + 1) % SHARDS;
            cr_expect_eq(tier_shard_of(cid, SHARDS), (unsigned)k, "cid %lld picked by shard %d",
                         (long long)cid, k);
            gq.cid = cid;
            cr_expect_eq(tier_get_content(f.c[k], &gq, &gr, &E), TIER_OK, "%s", E.message);
            tier_free(gr);
            gr = NULL;
            cr_expect_eq(tier_get_content(f.c[other], &gq, &gr, &E), TIER_FAILED_PRECONDITION);
            cr_expect(strstr(E.message, "moved") != NULL, "%s", E.message);
            cr_expect_eq(report(&f, other, cid, 10), TIER_FAILED_PRECONDITION);
        }
    /* A named cid of another shard: refused, nothing written. */
    char path[1200];
    snprintf(path, sizeof(path), "%s/bronze/named.bin", f.root);
    cr_assert(tier_test_write_file(path, "x", 1));
    aq.filename = "named.bin";
    aq.cid = 1000000;
    while (tier_shard_of(aq.cid, SHARDS) == 0)
        aq.cid++;
    cr_expect_eq(tier_add_content(f.c[0], &aq, &ar, &E), TIER_FAILED_PRECONDITION);
    char n[32];
    tier_test_sql1(f.my, "SELECT COUNT(*) FROM contents WHERE filename = 'named.bin'", n,
                   sizeof(n));
    cr_expect_str_eq(n, "0");
    /* The shard it belongs to takes it. */
    cr_expect_eq(tier_add_content(f.c[tier_shard_of(aq.cid, SHARDS)], &aq, &ar, &E), TIER_OK, "%s",
                 E.message);
    tier_free(ar);
    teardown(&f);
}

Test(shards, moves_run_per_shard_and_files_land_once)
{
    fx f;
    char dirs[4200], log[1200], id[8], lv[33];

    setup(&f);
    add_all(&f);
    snprintf(dirs, sizeof(dirs), "%s/bronze,%s/silver,%s/gold", f.root, f.root, f.root);
    for (int k = 0; k < SHARDS; k++) {
        snprintf(id, sizeof(id), "w%d", k);
        snprintf(log, sizeof(log), "%s/w%d.log", f.root, k);
        f.w[k] = tier_test_worker_start(&f.td[k], id, dirs, log);
    }
    /* The sample levels: silver from 1000 views, gold from 10000. */
    for (int k = 0; k < SHARDS; k++)
        for (int i = 0; i < PER; i++)
            cr_assert_eq(report(&f, k, f.cid[k][i], i % 2 ? 20000 : 1500), TIER_OK, "%s",
                         E.message);
    int64_t until = tier_mono_ms() + 60000;
    bool all = false;
    while (!all && tier_mono_ms() < until) {
        all = true;
        for (int k = 0; k < SHARDS && all; k++)
            for (int i = 0; i < PER && all; i++) {
                level_of(&f, f.cid[k][i], lv, sizeof(lv));
                all = strcmp(lv, i % 2 ? "gold" : "silver") == 0;
            }
        if (!all)
            usleep(100000);
    }
    cr_assert(all, "every move committed within 60 s");
    for (int k = 0; k < SHARDS; k++)
        for (int i = 0; i < PER; i++) {
            char name[32];
            const char *want = i % 2 ? "gold" : "silver";
            snprintf(name, sizeof(name), "s%d-%d.bin", k, i);
            cr_expect(file_in(&f, want, name), "%s in %s", name, want);
            for (const char *const *l = (const char *const[]){"bronze", "silver", "gold", NULL}; *l;
                 l++)
                if (strcmp(*l, want) != 0)
                    cr_expect(!file_in(&f, *l, name), "%s also in %s", name, *l);
        }
    teardown(&f);
}

/* Shard 1's writer dies; a new process for shard 1 takes over, serves its
 * own contents only, and finds nothing wrong in the shared directories. */
Test(shards, a_new_writer_loads_its_shard_only)
{
    fx f;
    Tier__GetContentRequest gq = TIER__GET_CONTENT_REQUEST__INIT;
    Tier__GetContentReply *gr = NULL;
    Tier__ScrubRequest sq = TIER__SCRUB_REQUEST__INIT;
    Tier__ScrubReply *sr = NULL;

    setup(&f);
    add_all(&f);
    tier_test_tierd_stop(&f.td[1], SIGKILL, 5000);
    tier_client_close(f.c[1]);
    shard_start(&f, 1);
    for (int i = 0; i < PER; i++) {
        gq.cid = f.cid[1][i];
        cr_expect_eq(tier_get_content(f.c[1], &gq, &gr, &E), TIER_OK, "%s", E.message);
        tier_free(gr);
        gr = NULL;
    }
    for (int k = 0; k < SHARDS; k++) {
        sq.local = true;
        cr_assert_eq(tier_scrub(f.c[k], &sq, &sr, &E), TIER_OK, "%s", E.message);
        cr_expect_eq(sr->contents, PER, "shard %d checked its own %d contents", k, PER);
        cr_expect_eq(sr->n_findings, 0);
        tier_free(sr);
        sr = NULL;
        sq.local = false; /* every shard's, through any */
        cr_assert_eq(tier_scrub(f.c[k], &sq, &sr, &E), TIER_OK, "%s", E.message);
        cr_expect_eq(sr->contents, SHARDS * PER, "through shard %d", k);
        for (size_t j = 0; j < sr->n_findings; j++)
            cr_expect_fail("shard %d: %s %s (%s)", k, sr->findings[j]->kind,
                           sr->findings[j]->filename, sr->findings[j]->detail);
        tier_free(sr);
        sr = NULL;
    }
    teardown(&f);
}

/* Comment ids are the shard's (id % shards == shard), and a change of
 * another shard's comment is refused. */
Test(shards, comment_ids_are_the_shards)
{
    fx f;
    Tier__PostCommentRequest pq = TIER__POST_COMMENT_REQUEST__INIT;
    Tier__PostCommentReply *pr = NULL;
    Tier__EditCommentRequest eq = TIER__EDIT_COMMENT_REQUEST__INIT;
    Tier__CommentReply *er = NULL;
    int64_t ids[SHARDS];

    setup(&f);
    add_all(&f);
    for (int k = 0; k < SHARDS; k++) {
        pq.service = "news";
        pq.cid = f.cid[k][0];
        pq.author = "a";
        pq.body = "hello";
        cr_assert_eq(tier_post_comment(f.c[k], &pq, &pr, &E), TIER_OK, "%s", E.message);
        ids[k] = pr->id;
        tier_free(pr);
        pr = NULL;
        cr_expect_eq(ids[k] % SHARDS, k, "comment id %lld of shard %d", (long long)ids[k], k);
        cr_expect_eq(tier_post_comment(f.c[(k + 1) % SHARDS], &pq, &pr, &E),
                     TIER_FAILED_PRECONDITION);
    }
    for (int k = 0; k < SHARDS; k++) {
        eq.id = ids[k];
        eq.body = "edited";
        cr_expect_eq(tier_edit_comment(f.c[(k + 1) % SHARDS], &eq, &er, &E),
                     TIER_FAILED_PRECONDITION);
        cr_expect(strstr(E.message, "moved") != NULL, "%s", E.message);
        cr_expect_eq(tier_edit_comment(f.c[k], &eq, &er, &E), TIER_OK, "%s", E.message);
        tier_free(er);
        er = NULL;
    }
    teardown(&f);
}

/* The level table and the policy are every shard's: a change through one
 * writer reaches the others within about a second (tiering_shared.c); a
 * change that needs every shard's contents is refused. */
Test(shards, levels_and_policy_follow_across_shards)
{
    fx f;
    Tier__ListLevelsRequest lq = TIER__LIST_LEVELS_REQUEST__INIT;
    Tier__ListLevelsReply *lr = NULL;
    Tier__SetLevelsRequest sq = TIER__SET_LEVELS_REQUEST__INIT;
    Tier__Level lv[3], *lp[3];
    static const char *names[] = {"bronze", "silver", "gold"};
    static const int64_t mins[] = {0, 500, 10000}, maxs[] = {499, 9999, 1000000000};
    char paths[3][1100];

    setup(&f);
    for (int i = 0; i < 3; i++) {
        tier__level__init(&lv[i]);
        lv[i].name = (char *)names[i];
        lv[i].min_counts = mins[i];
        lv[i].max_counts = maxs[i];
        snprintf(paths[i], sizeof(paths[i]), "%s/%s", f.root, names[i]);
        lv[i].path = paths[i];
        lp[i] = &lv[i];
    }
    sq.levels = lp;
    sq.n_levels = 3;
    cr_assert_eq(tier_set_levels(f.c[0], &sq, &lr, &E), TIER_OK, "%s", E.message);
    tier_free(lr);
    lr = NULL;
    for (int k = 1; k < SHARDS; k++) {
        bool seen = false;
        for (int64_t until = tier_mono_ms() + 5000; !seen && tier_mono_ms() < until;) {
            cr_assert_eq(tier_list_levels(f.c[k], &lq, &lr, &E), TIER_OK, "%s", E.message);
            seen = lr->n_levels == 3 && lr->levels[1]->min_counts == 500;
            tier_free(lr);
            lr = NULL;
            if (!seen)
                usleep(100000);
        }
        cr_expect(seen, "shard %d follows shard 0's level table", k);
    }
    /* A report on shard 2 is classified by the new table. */
    int64_t cid = add(&f, 2, "late.bin");
    Tier__ReportViewsRequest rq = TIER__REPORT_VIEWS_REQUEST__INIT;
    Tier__ViewReport r = TIER__VIEW_REPORT__INIT, *rp = &r;
    Tier__ReportViewsReply *rr = NULL;
    r.cid = cid;
    r.count = 700;
    rq.reports = &rp;
    rq.n_reports = 1;
    cr_assert_eq(tier_report_views(f.c[2], &rq, &rr, &E), TIER_OK, "%s", E.message);
    cr_expect_str_eq(rr->results[0]->target, "silver");
    tier_free(rr);
    /* Removing a level, or moving one, needs every shard: refused. */
    sq.n_levels = 2;
    lv[1].max_counts = 1000000000;
    cr_expect_eq(tier_set_levels(f.c[1], &sq, &lr, &E), TIER_FAILED_PRECONDITION);
    sq.n_levels = 3;
    lv[1].max_counts = 9999;
    snprintf(paths[2], sizeof(paths[2]), "%s/gold2", f.root);
    cr_expect_eq(tier_set_levels(f.c[1], &sq, &lr, &E), TIER_FAILED_PRECONDITION);
    /* The policy: set through shard 2, seen by shard 0. */
    Tier__GetPolicyRequest gq = TIER__GET_POLICY_REQUEST__INIT;
    Tier__GetPolicyReply *gr = NULL;
    Tier__SetPolicyRequest pq = TIER__SET_POLICY_REQUEST__INIT;
    Tier__SetPolicyReply *pr = NULL;
    Tier__Policy pol = TIER__POLICY__INIT;
    pol.mode = "window";
    pol.window_s = 3600;
    pol.bucket_s = 60;
    pol.plan_interval_s = 5;
    pol.max_inflight = 100;
    pq.policy = &pol;
    cr_assert_eq(tier_set_policy(f.c[2], &pq, &pr, &E), TIER_OK, "%s", E.message);
    int64_t version = pr->policy->version;
    tier_free(pr);
    bool seen = false;
    for (int64_t until = tier_mono_ms() + 5000; !seen && tier_mono_ms() < until;) {
        cr_assert_eq(tier_get_policy(f.c[0], &gq, &gr, &E), TIER_OK, "%s", E.message);
        seen = gr->policy->version == version && strcmp(gr->policy->mode, "window") == 0;
        tier_free(gr);
        gr = NULL;
        if (!seen)
            usleep(100000);
    }
    cr_expect(seen, "shard 0 follows shard 2's policy version %lld", (long long)version);
    teardown(&f);
}

/* Shard 0's writer runs away from home; a standby started with --home on
 * the shard's home host gets the shard back: the writer hands over
 * (exit status 3, TIERD_EXIT_NOT_WRITER, for its supervisor to restart it
 * as a standby) and the home serves every content of the shard. */
Test(shards, a_shard_goes_home)
{
    fx f;
    tier_test_tierd home;
    tier_client *hc;
    Tier__GetContentRequest gq = TIER__GET_CONTENT_REQUEST__INIT;
    Tier__GetContentReply *gr = NULL;

    setup(&f);
    add_all(&f);
    tier_test_tierd_init(&home, NULL, f.m.db, f.prefix);
    tier_test_tierd_setenv(&home, "TIER_STORAGE_ROOT=%s", f.root);
    int64_t t0 = tier_mono_ms();
    tier_test_tierd_start(&home,
                          (char *const[]){"--shards", "3", "--shard", "0", "--home", "--node",
                                          "home0", "--writer-ttl-ms", "1000", NULL});
    int64_t took = tier_mono_ms() - t0;
    cr_expect_eq(tier_test_wait(f.td[0].pid, 10000), 3, "the away writer exits NOT_WRITER");
    f.td[0].pid = 0;
    cr_log_info("shard 0 went home in %lld ms", (long long)took);
    cr_expect_lt(took, 10000);
    cr_assert_eq(tier_client_open(&hc, home.listen), TIER_OK);
    tier_client_set_timeout(hc, 10000);
    for (int i = 0; i < PER; i++) {
        gq.cid = f.cid[0][i];
        cr_expect_eq(tier_get_content(hc, &gq, &gr, &E), TIER_OK, "%s", E.message);
        tier_free(gr);
        gr = NULL;
    }
    tier_client_close(hc);
    tier_test_tierd_stop(&home, SIGTERM, 15000);
    teardown(&f);
}

/* TopContents asked of any shard is the exact top of all of them: each
 * shard's own top merged (tier_rank_merge); local asks one shard only. */
Test(shards, top_contents_is_exact_across_shards)
{
    fx f;
    Tier__PostCommentsRequest pq = TIER__POST_COMMENTS_REQUEST__INIT;
    Tier__PostCommentsReply *pr = NULL;
    Tier__TopContentsRequest tq = TIER__TOP_CONTENTS_REQUEST__INIT;
    Tier__TopContentsReply *tr = NULL;
    Tier__PostCommentRequest cm[64], *cp[64];
    int want[SHARDS][PER];

    setup(&f);
    add_all(&f);
    for (int k = 0; k < SHARDS; k++) {
        size_t n = 0;
        for (int i = 0; i < PER; i++) {
            want[k][i] = (i * 7 + k * 3) % 6; /* ties across shards on purpose */
            for (int j = 0; j < want[k][i]; j++) {
                tier__post_comment_request__init(&cm[n]);
                cm[n].service = "news";
                cm[n].cid = f.cid[k][i];
                cm[n].author = "a";
                cm[n].body = "b";
                cp[n] = &cm[n];
                n++;
            }
        }
        pq.comments = cp;
        pq.n_comments = n;
        cr_assert_eq(tier_post_comments(f.c[k], &pq, &pr, &E), TIER_OK, "%s", E.message);
        tier_free(pr);
        pr = NULL;
    }
    int64_t now = tier_now_ms() / 60000 * 60000;
    tq.from_ms = now - 10 * 60000;
    tq.to_ms = now + 60000;
    tq.limit = 10;
    for (int k = 0; k < SHARDS; k++) {
        cr_assert_eq(tier_top_contents(f.c[k], &tq, &tr, &E), TIER_OK, "%s", E.message);
        cr_assert_eq(tr->n_rows, 10);
        for (size_t r = 0; r < tr->n_rows; r++) {
            int64_t cid = tr->rows[r]->cid;
            int64_t change = tr->rows[r]->change, expect = -1, better = 0;
            for (int s = 0; s < SHARDS; s++)
                for (int i = 0; i < PER; i++) {
                    if (f.cid[s][i] == cid)
                        expect = want[s][i];
                }
            cr_expect_eq(change, expect, "row %zu: cid %lld", r, (long long)cid);
            /* exactly r contents rank before it (change desc, cid asc) */
            for (int s = 0; s < SHARDS; s++)
                for (int i = 0; i < PER; i++)
                    better += want[s][i] > expect || (want[s][i] == expect && f.cid[s][i] < cid);
            cr_expect_eq(better, (int64_t)r, "asked shard %d, row %zu: cid %lld", k, r,
                         (long long)cid);
        }
        tier_free(tr);
        tr = NULL;
    }
    tq.local = true; /* one shard's own */
    cr_assert_eq(tier_top_contents(f.c[1], &tq, &tr, &E), TIER_OK, "%s", E.message);
    for (size_t r = 0; r < tr->n_rows; r++)
        cr_expect_eq(tier_shard_of(tr->rows[r]->cid, SHARDS), 1u);
    tier_free(tr);
    teardown(&f);
}

/* HOT and paging across shards: every shard ranks at the asker's minute
 * and returns its rows after the cursor; the merge is the exact answer,
 * whichever shard is asked, and pages of 5 walk it without repeat. */
static Tier__TopContentsReply *top_page(tier_client *c, int order, int64_t from_ms, int64_t to_ms,
                                        uint32_t limit, const char *cursor)
{
    Tier__TopContentsRequest tq = TIER__TOP_CONTENTS_REQUEST__INIT;
    Tier__TopContentsReply *tr = NULL;

    tq.order = order;
    tq.from_ms = from_ms;
    tq.to_ms = to_ms;
    tq.limit = limit;
    tq.cursor = (char *)cursor;
    cr_assert_eq(tier_top_contents(c, &tq, &tr, &E), TIER_OK, "%s", E.message);
    return tr;
}

Test(shards, top_contents_hot_and_pages_across_shards)
{
    fx f;
    Tier__PostCommentsRequest pq = TIER__POST_COMMENTS_REQUEST__INIT;
    Tier__PostCommentsReply *pr = NULL;
    Tier__PostCommentRequest cm[64], *cp[64];
    double hot[SHARDS][PER] = {{0}};
    int64_t now_min = tier_now_ms() / 60000;

    setup(&f);
    add_all(&f);
    for (int k = 0; k < SHARDS; k++) {
        size_t n = 0;
        for (int i = 0; i < PER; i++) {
            for (int j = 0; j < (i * 5 + k) % 4 + 1; j++) { /* backfilled 0..299 min ago */
                int64_t ago = (i * 37 + k * 11 + j * 53) % 300;
                tier__post_comment_request__init(&cm[n]);
                cm[n].service = "news";
                cm[n].cid = f.cid[k][i];
                cm[n].author = "a";
                cm[n].body = "b";
                cm[n].time_ms = (now_min - ago) * 60000 + 1;
                hot[k][i] += exp2(-(double)ago * 60.0 / 21600.0);
                cp[n] = &cm[n];
                n++;
            }
        }
        pq.comments = cp;
        pq.n_comments = n;
        cr_assert_eq(tier_post_comments(f.c[k], &pq, &pr, &E), TIER_OK, "%s", E.message);
        tier_free(pr);
        pr = NULL;
    }
    for (int k = 0; k < SHARDS; k++) {
        Tier__TopContentsReply *full =
            top_page(f.c[k], TIER__ORDER__HOT, 0, now_min * 60000, 100, "");
        cr_assert_eq(full->n_rows, SHARDS * PER);
        cr_assert_str_eq(full->next_cursor, "");
        for (size_t r = 0; r < full->n_rows; r++) {
            double h = -1;
            for (int s = 0; s < SHARDS; s++)
                for (int i = 0; i < PER; i++)
                    if (f.cid[s][i] == full->rows[r]->cid)
                        h = hot[s][i];
            cr_expect(fabs(full->rows[r]->hot - h) < 1e-9, "row %zu: %.17g, want %.17g", r,
                      full->rows[r]->hot, h);
            if (r > 0)
                cr_expect(full->rows[r - 1]->hot > full->rows[r]->hot - 1e-9 &&
                              (full->rows[r - 1]->hot != full->rows[r]->hot ||
                               full->rows[r - 1]->cid < full->rows[r]->cid),
                          "asked shard %d: row %zu out of order", k, r);
        }
        for (int order = 0; order < 3; order++) {
            int64_t from = order == TIER__ORDER__HOT ? 0 : (now_min - 200) * 60000;
            int64_t to = order == TIER__ORDER__HOT ? now_min * 60000 : (now_min + 1) * 60000;
            Tier__TopContentsReply *all = top_page(f.c[k], order, from, to, 100, "");
            char cursor[300] = "";
            size_t at = 0;
            for (;;) {
                Tier__TopContentsReply *p =
                    top_page(f.c[(k + 1) % SHARDS], order, from, to, 5, cursor);
                for (size_t r = 0; r < p->n_rows; r++)
                    cr_expect(at + r < all->n_rows && p->rows[r]->cid == all->rows[at + r]->cid,
                              "order %d: page row %zu", order, at + r);
                at += p->n_rows;
                snprintf(cursor, sizeof(cursor), "%s", p->next_cursor);
                tier_free(p);
                if (cursor[0] == '\0')
                    break;
            }
            cr_expect_eq(at, all->n_rows, "order %d", order);
            tier_free(all);
        }
        tier_free(full);
    }
    teardown(&f);
}

/* ListJobs and GetStats asked of any shard cover every shard. */
Test(shards, list_jobs_and_stats_cover_every_shard)
{
    fx f;
    Tier__ListJobsRequest lq = TIER__LIST_JOBS_REQUEST__INIT;
    Tier__ListJobsReply *lr = NULL;
    Tier__GetStatsRequest sq = TIER__GET_STATS_REQUEST__INIT;
    Tier__GetStatsReply *sr = NULL;

    setup(&f);
    add_all(&f);
    for (int k = 0; k < SHARDS; k++) /* no worker: every job waits */
        for (int i = 0; i < PER; i++)
            cr_assert_eq(report(&f, k, f.cid[k][i], 1500), TIER_OK, "%s", E.message);
    for (int k = 0; k < SHARDS; k++) {
        cr_assert_eq(tier_list_jobs(f.c[k], &lq, &lr, &E), TIER_OK, "%s", E.message);
        cr_expect_eq(lr->n_jobs, SHARDS * PER, "asked shard %d", k);
        for (size_t j = 1; j < lr->n_jobs; j++)
            cr_expect_lt(lr->jobs[j - 1]->cid, lr->jobs[j]->cid, "in cid order");
        tier_free(lr);
        lr = NULL;
        cr_assert_eq(tier_get_stats(f.c[k], &sq, &sr, &E), TIER_OK, "%s", E.message);
        uint64_t contents = 0, waiting = 0, reports = 0;
        for (size_t i = 0; i < sr->n_levels; i++)
            contents += sr->levels[i]->contents;
        for (size_t i = 0; i < sr->n_jobs; i++)
            if (strcmp(sr->jobs[i]->state, "update") == 0)
                waiting = sr->jobs[i]->count;
        for (size_t i = 0; i < sr->n_reports; i++)
            reports += sr->reports[i];
        cr_expect_eq(contents, SHARDS * PER);
        cr_expect_eq(waiting, SHARDS * PER);
        cr_expect_eq(reports, SHARDS * PER);
        tier_free(sr);
        sr = NULL;
    }
    lq.local = true;
    cr_assert_eq(tier_list_jobs(f.c[2], &lq, &lr, &E), TIER_OK, "%s", E.message);
    cr_expect_eq(lr->n_jobs, PER);
    tier_free(lr);
    teardown(&f);
}

/* libtier's cluster handle routes a comment's change by its id (id %
 * shards), and follows the MOVED of a comment from before the cluster had
 * several shards (its id says nothing of its content's shard). */
Test(shards, comment_changes_route_by_id)
{
    fx f;
    tier_cluster *cl;
    char seeds[600], q[512];
    Tier__PostCommentRequest pq = TIER__POST_COMMENT_REQUEST__INIT;
    Tier__PostCommentReply *pr = NULL;
    Tier__EditCommentRequest eq = TIER__EDIT_COMMENT_REQUEST__INIT;
    Tier__DeleteCommentRequest dq = TIER__DELETE_COMMENT_REQUEST__INIT;
    Tier__CommentReply *cr = NULL;

    setup(&f);
    add_all(&f);
    snprintf(seeds, sizeof(seeds), "%s,%s,%s", f.td[0].listen, f.td[1].listen, f.td[2].listen);
    cr_assert_eq(tier_cluster_open(&cl, seeds, NULL, &E), TIER_OK, "%s", E.message);
    for (int k = 0; k < SHARDS; k++) {
        pq.service = "news";
        pq.cid = f.cid[k][1];
        pq.author = "a";
        pq.body = "hello";
        cr_assert_eq(tier_cluster_post_comment(cl, &pq, &pr, &E), TIER_OK, "%s", E.message);
        eq.id = pr->id;
        tier_free(pr);
        pr = NULL;
        eq.body = "edited";
        cr_expect_eq(tier_cluster_edit_comment(cl, &eq, &cr, &E), TIER_OK, "%s", E.message);
        tier_free(cr);
        cr = NULL;
        dq.id = eq.id;
        cr_expect_eq(tier_cluster_delete_comment(cl, &dq, &cr, &E), TIER_OK, "%s", E.message);
        tier_free(cr);
        cr = NULL;
    }
    /* A comment of shard 0's content whose id names shard 1. */
    int64_t old = 3000001;
    while (old % SHARDS != 1)
        old++;
    snprintf(q, sizeof(q),
             "INSERT INTO comments (id, service, cid, author, body, created_ms) VALUES "
             "(%lld, 'news', %lld, 'old', 'before the shards', %lld)",
             (long long)old, (long long)f.cid[0][2], (long long)tier_now_ms() - 60000);
    cr_assert(mysql_query(f.my, q) == 0, "%s", mysql_error(f.my));
    eq.id = old;
    eq.body = "edited through a MOVED";
    cr_expect_eq(tier_edit_comment(f.c[1], &eq, &cr, &E), TIER_FAILED_PRECONDITION);
    cr_expect_str_eq(E.moved_to, f.td[0].listen, "MOVED names shard 0's writer");
    cr_expect_eq(tier_cluster_edit_comment(cl, &eq, &cr, &E), TIER_OK, "%s", E.message);
    tier_free(cr);
    /* Edits change no count, so they leave no (all-zero) minute row: this
     * content has no post in the edit's minute for one to hide in. */
    char zeros[32];
    tier_test_sql1(f.my,
                   "SELECT COUNT(*) FROM comment_minute WHERE delta = 0 AND created = 0 AND "
                   "deleted = 0 AND restored = 0",
                   zeros, sizeof(zeros));
    cr_expect_str_eq(zeros, "0");
    tier_cluster_close(cl);
    teardown(&f);
}

/* Batches of changes (issue 12): a tierd refuses a batch naming another
 * shard's id whole (MOVED); libtier's cluster handle cuts it by id %
 * shards and answers in request order; DeleteByAuthor through any tierd
 * covers every shard. */
Test(shards, comment_batches_split_by_id_and_delete_by_author_fans_out)
{
    fx f;
    tier_cluster *cl;
    char seeds[600], n[32];
    int64_t ids[SHARDS * 2];
    Tier__DeleteCommentRequest items[SHARDS * 2], *ptrs[SHARDS * 2];
    Tier__DeleteCommentsRequest dq = TIER__DELETE_COMMENTS_REQUEST__INIT;
    Tier__CommentsReply *dr = NULL;

    setup(&f);
    add_all(&f);
    snprintf(seeds, sizeof(seeds), "%s,%s,%s", f.td[0].listen, f.td[1].listen, f.td[2].listen);
    cr_assert_eq(tier_cluster_open(&cl, seeds, NULL, &E), TIER_OK, "%s", E.message);
    for (int i = 0; i < SHARDS * 2; i++) {
        Tier__PostCommentRequest pq = TIER__POST_COMMENT_REQUEST__INIT;
        Tier__PostCommentReply *pr = NULL;
        pq.service = "news";
        pq.cid = f.cid[i % SHARDS][1];
        pq.author = i < SHARDS ? "spam" : "batch";
        pq.body = "b";
        cr_assert_eq(tier_cluster_post_comment(cl, &pq, &pr, &E), TIER_OK, "%s", E.message);
        ids[i] = pr->id;
        tier_free(pr);
    }
    for (int i = 0; i < SHARDS; i++) { /* the "batch" ones, in reverse */
        tier__delete_comment_request__init(&items[i]);
        items[i].id = ids[2 * SHARDS - 1 - i];
        ptrs[i] = &items[i];
    }
    dq.n_items = SHARDS;
    dq.items = ptrs;
    cr_expect_eq(tier_delete_comments(f.c[0], &dq, &dr, &E), TIER_FAILED_PRECONDITION);
    cr_expect(E.moved_to[0] != '\0', "MOVED names the owner: %s", E.message);
    cr_assert_eq(tier_cluster_delete_comments(cl, &dq, &dr, &E), TIER_OK, "%s", E.message);
    cr_assert_eq(dr->n_results, SHARDS);
    for (int i = 0; i < SHARDS; i++) {
        cr_expect_eq(dr->results[i]->code, TIER_OK, "%s", dr->results[i]->message);
        cr_expect_eq(dr->results[i]->id, items[i].id, "results in request order");
    }
    tier_free(dr);
    Tier__DeleteByAuthorRequest aq = TIER__DELETE_BY_AUTHOR_REQUEST__INIT;
    Tier__DeleteByAuthorReply *ar = NULL;
    aq.author = "spam";
    cr_assert_eq(tier_delete_by_author(f.c[1], &aq, &ar, &E), TIER_OK, "%s", E.message);
    cr_expect_eq(ar->deleted, SHARDS, "every shard's comments of the author");
    cr_expect_eq(ar->remaining, 0);
    tier_free(ar);
    tier_test_sql1(f.my, "SELECT COUNT(*) FROM comments WHERE deleted = 0", n, sizeof(n));
    cr_expect_str_eq(n, "0");
    tier_test_sql1(f.my, "SELECT COALESCE(SUM(delta), 0) FROM comment_minute", n, sizeof(n));
    cr_expect_str_eq(n, "0");
    tier_cluster_close(cl);
    teardown(&f);
}
