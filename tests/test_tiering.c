/*
 * test_tiering.c -- tiering (seed 000) against a real tierd process, real
 * Redis and MariaDB, over real nng.  The worker is played by the test with
 * libtier (ClaimJob / CompleteJob / FailJob) and rename(2).
 *
 * Isolation: each test has its own database (tier_test_db_create), its own
 * storage directories and its own Redis key prefix (TIER_REDIS_PREFIX).
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/reqrep0/req.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tier_client.h"
#include "rpc.pb-c.h"
#include "tier_db.h"
#include "tier_methods.h"
#include "tier_name.h"
#include "tier_path.h"
#include "tier_rpc.h"
#include "tier_testenv.h"
#include "tier_wire.h"

typedef struct {
    tier_test_mysql m;
    char *root;
    char prefix[64];
    tier_test_tierd td;
    tier_client *c;
    MYSQL *my;
    redisContext *rd;
} fx;

static int seq;
/* libtier returns INTERNAL for any error when err is NULL: always pass one. */
static tier_error E;

static void sql(fx *f, const char *q)
{
    cr_assert(mysql_query(f->my, q) == 0, "%s: %s", q, mysql_error(f->my));
    MYSQL_RES *r = mysql_store_result(f->my);
    if (r)
        mysql_free_result(r);
}

static void file_in(fx *f, const char *level, const char *name)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s/%s/%s", f->root, level, name);
    cr_assert(tier_test_write_file(p, name, strlen(name)));
}

static bool exists_in(fx *f, const char *level, const char *name)
{
    char p[1024];
    struct stat sb;
    snprintf(p, sizeof(p), "%s/%s/%s", f->root, level, name);
    return stat(p, &sb) == 0;
}

static void move_file(fx *f, const char *from, const char *to, const char *name)
{
    char a[1024], b[1024];
    snprintf(a, sizeof(a), "%s/%s/%s", f->root, from, name);
    snprintf(b, sizeof(b), "%s/%s/%s", f->root, to, name);
    cr_assert(rename(a, b) == 0, "rename %s %s", a, b);
}

static void tierd_start(fx *f, const char *lease_ms)
{
    char *extra[] = {"--lease-ms", (char *)(lease_ms ? lease_ms : "30000"), NULL};
    tier_test_tierd_start(&f->td, extra);
}

static void tierd_stop(fx *f, int sig)
{
    cr_assert_neq(tier_test_tierd_stop(&f->td, sig, 10000), -1, "tierd did not stop");
}

/* The seed's contents: cids 1..6 on their levels, loaded at start. */
static void setup(fx *f, const char *lease_ms)
{
    static const char *const seeded[][2] = {{"gold", "a.mp4"},   {"bronze", "b.mp4"},
                                            {"silver", "c.mp4"}, {"bronze", "d.mp4"},
                                            {"silver", "e.mp4"}, {"gold", "f.mp4"}};
    char dir[1024], q[512];

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
    for (int i = 0; i < 6; i++) {
        file_in(f, seeded[i][0], seeded[i][1]);
        snprintf(q, sizeof(q),
                 "INSERT INTO contents (cid, content_level, filename) VALUES (%d, '%s', '%s')",
                 i + 1, seeded[i][0], seeded[i][1]);
        sql(f, q);
    }
    char host[64];
    int port;
    tier_test_redis_env(host, sizeof(host), &port);
    f->rd = redisConnect(host, port);
    cr_assert(f->rd && !f->rd->err);
    snprintf(f->prefix, sizeof(f->prefix), "tt%d_%d:", (int)getpid(), seq++);
    tier_test_tierd_init(&f->td, f->root, f->m.db, f->prefix);
    tier_test_tierd_setenv(&f->td, "TIER_THREADS=8");
    tier_test_tierd_setenv(&f->td, "TIER_STORAGE_ROOT=%s", f->root);
    cr_assert_eq(tier_client_open(&f->c, f->td.listen), TIER_OK);
    tier_client_set_timeout(f->c, 5000);
    tierd_start(f, lease_ms);
}

static void teardown(fx *f)
{
    tierd_stop(f, SIGTERM);
    tier_client_close(f->c);
    mysql_close(f->my);
    redisFree(f->rd);
    tier_test_db_drop(&f->m);
    tier_test_rmtree(f->root);
    free(f->root);
}

/* ---------------------------------------------------------- calls */

static Tier__ViewResult *report(fx *f, int64_t cid, int64_t count, Tier__ReportViewsReply **keep)
{
    Tier__ViewReport v = TIER__VIEW_REPORT__INIT, *list[1] = {&v};
    Tier__ReportViewsRequest req = TIER__REPORT_VIEWS_REQUEST__INIT;
    tier_error err;
    v.cid = cid;
    v.count = count;
    req.reports = list;
    req.n_reports = 1;
    cr_assert_eq(tier_report_views(f->c, &req, keep, &err), TIER_OK, "%s", err.message);
    cr_assert_eq((*keep)->n_results, 1);
    return (*keep)->results[0];
}

static int add(fx *f, const char *name, int64_t cid, tier_error *err)
{
    Tier__AddContentRequest req = TIER__ADD_CONTENT_REQUEST__INIT;
    Tier__AddContentReply *rep = NULL;
    req.filename = (char *)name;
    req.cid = cid;
    int rv = tier_add_content(f->c, &req, &rep, err);
    tier_free(rep);
    return rv;
}

/* Claims one job; returns the code, the fence in *fence. */
static int claim(fx *f, const char *worker, int64_t cid, uint32_t lease_ms, uint64_t *fence)
{
    Tier__ClaimJobRequest req = TIER__CLAIM_JOB_REQUEST__INIT;
    Tier__ClaimJobReply *rep;
    int64_t cids[1] = {cid};
    tier_error err;
    req.worker_id = (char *)worker;
    req.cids = cids;
    req.n_cids = 1;
    req.lease_ms = lease_ms;
    cr_assert_eq(tier_claim_job(f->c, &req, &rep, &err), TIER_OK, "%s", err.message);
    int code = rep->results[0]->code;
    if (code == TIER_OK && fence) {
        cr_assert(rep->results[0]->job != NULL);
        cr_assert_str_eq(rep->results[0]->job->status, "claimed");
        cr_assert_str_eq(rep->results[0]->job->worker_id, worker);
        *fence = rep->results[0]->job->fence;
    }
    tier_free(rep);
    return code;
}

static int complete(fx *f, const char *worker, int64_t cid, uint64_t fence, char *msg, size_t len)
{
    Tier__CompleteJobRequest req = TIER__COMPLETE_JOB_REQUEST__INIT;
    Tier__JobRef ref = TIER__JOB_REF__INIT, *refs[1] = {&ref};
    Tier__CompleteJobReply *rep;
    tier_error err;
    ref.cid = cid;
    ref.fence = fence;
    req.worker_id = (char *)worker;
    req.jobs = refs;
    req.n_jobs = 1;
    cr_assert_eq(tier_complete_job(f->c, &req, &rep, &err), TIER_OK, "%s", err.message);
    int code = rep->results[0]->code;
    if (msg)
        snprintf(msg, len, "%s", rep->results[0]->message);
    tier_free(rep);
    return code;
}

static int fail_job(fx *f, const char *worker, int64_t cid, uint64_t fence, const char *reason,
                    bool permanent, uint32_t retry_ms)
{
    Tier__FailJobRequest req = TIER__FAIL_JOB_REQUEST__INIT;
    Tier__JobRef ref = TIER__JOB_REF__INIT;
    Tier__FailJobReply *rep = NULL;
    ref.cid = cid;
    ref.fence = fence;
    req.worker_id = (char *)worker;
    req.job = &ref;
    req.reason = (char *)reason;
    req.permanent = permanent;
    req.retry_after_ms = retry_ms;
    int rv = tier_fail_job(f->c, &req, &rep, &E);
    tier_free(rep);
    return rv;
}

/* The job of cid (status copied into st) or NOT_FOUND. */
static int get_job(fx *f, int64_t cid, char *st, size_t len, Tier__Job *out)
{
    Tier__GetJobRequest req = TIER__GET_JOB_REQUEST__INIT;
    Tier__GetJobReply *rep;
    req.cid = cid;
    int rv = tier_get_job(f->c, &req, &rep, &E);
    if (rv == TIER_OK) {
        snprintf(st, len, "%s", rep->job->status);
        if (out) {
            *out = *rep->job;
            out->target = out->reason = out->worker_id = NULL;
        }
        tier_free(rep);
    }
    return rv;
}

static void level_of(fx *f, int64_t cid, char *out, size_t len)
{
    char q[256];
    snprintf(q, sizeof(q), "SELECT content_level FROM contents WHERE cid = %lld", (long long)cid);
    tier_test_sql1(f->my, q, out, len);
}

static int history_rows(fx *f, int64_t cid)
{
    char q[256], n[32];
    snprintf(q, sizeof(q), "SELECT COUNT(*) FROM update_history WHERE cid = %lld", (long long)cid);
    tier_test_sql1(f->my, q, n, sizeof(n));
    return atoi(n);
}

/* ---------------------------------------------------------- tests */

Test(tiering, seed_walkthrough)
{
    fx f;
    Tier__ReportViewsReply *rep;
    char buf[64], msg[256];
    uint64_t fence = 0;
    tier_error err;

    setup(&f, NULL);
    file_in(&f, "bronze", "g.mp4");
    cr_assert_eq(add(&f, "g.mp4", 7, &err), TIER_OK, "%s", err.message);

    Tier__ViewResult *r = report(&f, 7, 1964, &rep);
    cr_assert_eq(r->code, TIER_OK);
    cr_assert_str_eq(r->target, "silver");
    cr_assert_str_eq(r->db_level, "bronze");
    cr_assert_str_eq(r->filename, "g.mp4");
    cr_assert_str_eq(r->worker_id, "");
    cr_assert_str_eq(r->status, "update");
    cr_assert_eq(r->count, 1964);
    tier_free(rep);

    /* Completing a job nobody claimed: the seed's "check your status again". */
    cr_assert_eq(complete(&f, "w1", 7, 0, msg, sizeof(msg)), TIER_FAILED_PRECONDITION);
    cr_assert_str_eq(msg, "check your status again");
    cr_assert_eq(complete(&f, "w1", 8, 1, msg, sizeof(msg)), TIER_FAILED_PRECONDITION);

    cr_assert_eq(claim(&f, "w1", 7, 0, &fence), TIER_OK);
    cr_assert_eq(fence, 1);
    move_file(&f, "bronze", "silver", "g.mp4");
    cr_assert_eq(complete(&f, "w1", 7, fence, msg, sizeof(msg)), TIER_OK, "%s", msg);
    /* Retried completion (lost reply): still OK, no second history row. */
    cr_assert_eq(complete(&f, "w1", 7, fence, msg, sizeof(msg)), TIER_OK, "%s", msg);

    level_of(&f, 7, buf, sizeof(buf));
    cr_assert_str_eq(buf, "silver");
    cr_assert_eq(history_rows(&f, 7), 1);
    tier_test_sql1(f.my,
                   "SELECT CONCAT(old_content_level, '>', new_content_level) FROM update_history "
                   "WHERE cid = 7",
                   buf, sizeof(buf));
    cr_assert_str_eq(buf, "bronze>silver");
    cr_assert_eq(get_job(&f, 7, buf, sizeof(buf), NULL), TIER_NOT_FOUND);
    cr_assert(exists_in(&f, "silver", "g.mp4"));

    Tier__GetHistoryRequest hr = TIER__GET_HISTORY_REQUEST__INIT;
    Tier__GetHistoryReply *h;
    hr.cid = 7;
    cr_assert_eq(tier_get_history(f.c, &hr, &h, &E), TIER_OK);
    cr_assert_eq(h->n_entries, 1);
    cr_assert_str_eq(h->entries[0]->new_level, "silver");
    tier_free(h);

    /* Now on silver: the same count is "done", no job. */
    r = report(&f, 7, 1964, &rep);
    cr_assert_str_eq(r->status, "done");
    cr_assert_str_eq(r->db_level, "silver");
    tier_free(rep);
    teardown(&f);
}

Test(tiering, batch_done_unknown_and_bad_counts)
{
    fx f;
    Tier__ViewReport v[4], *list[4];
    Tier__ReportViewsRequest req = TIER__REPORT_VIEWS_REQUEST__INIT;
    Tier__ReportViewsReply *rep;
    int64_t cids[4] = {1, 999, 3, 4}, counts[4] = {5000, 10, 1500, -1};
    char st[32];

    setup(&f, NULL);
    for (int i = 0; i < 4; i++) {
        tier__view_report__init(&v[i]);
        v[i].cid = cids[i];
        v[i].count = counts[i];
        list[i] = &v[i];
    }
    req.reports = list;
    req.n_reports = 4;
    cr_assert_eq(tier_report_views(f.c, &req, &rep, NULL), TIER_OK);
    cr_assert_eq(rep->n_results, 4);
    cr_assert_eq(rep->results[0]->code, TIER_OK);
    cr_assert_str_eq(rep->results[0]->status, "done");
    cr_assert_str_eq(rep->results[0]->target, "gold");
    cr_assert_eq(rep->results[1]->code, TIER_NOT_FOUND);
    cr_assert_eq(rep->results[2]->code, TIER_OK);
    cr_assert_str_eq(rep->results[2]->status, "done");
    cr_assert_eq(rep->results[3]->code, TIER_INVALID_ARGUMENT);
    tier_free(rep);
    cr_assert_eq(get_job(&f, 1, st, sizeof(st), NULL), TIER_NOT_FOUND);
    cr_assert_eq(get_job(&f, 3, st, sizeof(st), NULL), TIER_NOT_FOUND);
    teardown(&f);
}

Test(tiering, report_retargets_unclaimed_and_waits_for_claimed)
{
    fx f;
    Tier__ReportViewsReply *rep;
    Tier__Job j;
    char st[32], lvl[32];
    uint64_t fence;

    setup(&f, NULL);
    /* cid 2 (b.mp4) on bronze: a job to silver, retargeted to gold. */
    cr_assert_str_eq(report(&f, 2, 1500, &rep)->status, "update");
    tier_free(rep);
    Tier__ViewResult *r = report(&f, 2, 2500, &rep);
    cr_assert_str_eq(r->status, "update");
    cr_assert_str_eq(r->target, "gold");
    tier_free(rep);
    Tier__GetJobRequest gr = TIER__GET_JOB_REQUEST__INIT;
    Tier__GetJobReply *g;
    gr.cid = 2;
    cr_assert_eq(tier_get_job(f.c, &gr, &g, &E), TIER_OK);
    cr_assert_str_eq(g->job->target, "gold");
    cr_assert_eq(g->job->count, 2500);
    tier_free(g);
    /* Back to bronze's range: the unclaimed job is cancelled. */
    cr_assert_str_eq(report(&f, 2, 10, &rep)->status, "done");
    tier_free(rep);
    cr_assert_eq(get_job(&f, 2, st, sizeof(st), NULL), TIER_NOT_FOUND);

    /* Claimed: a report waits for the end of the job, then moves on. */
    cr_assert_str_eq(report(&f, 2, 1500, &rep)->status, "update");
    tier_free(rep);
    cr_assert_eq(claim(&f, "w1", 2, 0, &fence), TIER_OK);
    r = report(&f, 2, 2500, &rep);
    cr_assert_str_eq(r->status, "claimed");
    cr_assert_str_eq(r->worker_id, "w1");
    tier_free(rep);
    cr_assert_eq(get_job(&f, 2, st, sizeof(st), &j), TIER_OK);
    cr_assert_str_eq(st, "claimed");
    move_file(&f, "bronze", "silver", "b.mp4");
    cr_assert_eq(complete(&f, "w1", 2, fence, NULL, 0), TIER_OK);
    level_of(&f, 2, lvl, sizeof(lvl));
    cr_assert_str_eq(lvl, "silver");
    /* The remembered report made a fresh job: silver -> gold. */
    cr_assert_eq(tier_get_job(f.c, &gr, &g, &E), TIER_OK);
    cr_assert_str_eq(g->job->status, "update");
    cr_assert_str_eq(g->job->db_level, "silver");
    cr_assert_str_eq(g->job->target, "gold");
    cr_assert_geq(g->job->fence, fence, "fences never go back");
    tier_free(g);
    teardown(&f);
}

/* Hole 1 of docs/CRASH.md: a worker renamed the file and died before
 * CompleteJob; its lease ran out.  A report now must not delete the job
 * (the file is on the old target, MySQL says the old level): the job is
 * retargeted, and the claim says every directory the file may be in. */
static void claim_job(fx *f, const char *worker, int64_t cid, Tier__ClaimJobReply **keep)
{
    Tier__ClaimJobRequest req = TIER__CLAIM_JOB_REQUEST__INIT;
    int64_t cids[1] = {cid};
    req.worker_id = (char *)worker;
    req.cids = cids;
    req.n_cids = 1;
    cr_assert_eq(tier_claim_job(f->c, &req, keep, &E), TIER_OK, "%s", E.message);
    cr_assert_eq((*keep)->results[0]->code, TIER_OK);
}

Test(tiering, moved_then_report_retargets_from_where_the_file_is)
{
    fx f;
    Tier__ReportViewsReply *rep;
    Tier__ClaimJobReply *cl;
    uint64_t fence;
    char st[32], lvl[32], gold[1024], silver[1024];

    setup(&f, NULL);
    snprintf(gold, sizeof(gold), "%s/gold/", f.root);
    snprintf(silver, sizeof(silver), "%s/silver/", f.root);
    /* cid 4 (d.mp4, bronze) -> gold; the worker moves it and dies. */
    report(&f, 4, 3000, &rep);
    tier_free(rep);
    cr_assert_eq(claim(&f, "w1", 4, 300, &fence), TIER_OK);
    move_file(&f, "bronze", "gold", "d.mp4");
    usleep(700 * 1000);
    cr_assert_eq(get_job(&f, 4, st, sizeof(st), NULL), TIER_OK);
    cr_assert_str_eq(st, "update", "the reaper took the lease back");

    /* A report for bronze (MySQL's level): the job stays, aimed back home. */
    Tier__ViewResult *r = report(&f, 4, 10, &rep);
    cr_assert_str_eq(r->status, "update");
    cr_assert_str_eq(r->target, "bronze");
    tier_free(rep);
    /* And one for silver: a third level; the file is still in gold. */
    r = report(&f, 4, 1500, &rep);
    cr_assert_str_eq(r->target, "silver");
    tier_free(rep);

    claim_job(&f, "w2", 4, &cl);
    Tier__Job *j = cl->results[0]->job;
    cr_assert_gt(j->fence, fence, "fences only grow");
    cr_assert_str_eq(j->dst_dir, silver);
    cr_assert_eq(j->n_also_dirs, 1, "the old target is where the file may be");
    cr_assert_str_eq(j->also_dirs[0], gold);
    uint64_t f2 = j->fence;
    tier_free(cl);
    move_file(&f, "gold", "silver", "d.mp4");
    cr_assert_eq(complete(&f, "w2", 4, f2, NULL, 0), TIER_OK);
    level_of(&f, 4, lvl, sizeof(lvl));
    cr_assert_str_eq(lvl, "silver");
    cr_assert(exists_in(&f, "silver", "d.mp4") && !exists_in(&f, "gold", "d.mp4"));
    cr_assert_eq(history_rows(&f, 4), 1);
    cr_assert_eq(get_job(&f, 4, st, sizeof(st), NULL), TIER_NOT_FOUND);

    /* The next job of cid 4 starts above every fence it ever had. */
    report(&f, 4, 10, &rep);
    tier_free(rep);
    claim_job(&f, "w3", 4, &cl);
    cr_assert_gt(cl->results[0]->job->fence, f2);
    tier_free(cl);
    teardown(&f);
}

/* A job cancelled before any claim leaves its fence behind too. */
Test(tiering, fences_survive_cancelled_jobs)
{
    fx f;
    Tier__ReportViewsReply *rep;
    Tier__ClaimJobReply *cl;
    uint64_t f1;

    setup(&f, NULL);
    report(&f, 2, 1500, &rep);
    tier_free(rep);
    cr_assert_eq(claim(&f, "w1", 2, 0, &f1), TIER_OK);
    move_file(&f, "bronze", "silver", "b.mp4");
    cr_assert_eq(complete(&f, "w1", 2, f1, NULL, 0), TIER_OK);
    for (int i = 0; i < 3; i++) { /* created, then cancelled unclaimed */
        report(&f, 2, 2500, &rep);
        tier_free(rep);
        report(&f, 2, 1500, &rep);
        tier_free(rep);
    }
    report(&f, 2, 2500, &rep);
    tier_free(rep);
    claim_job(&f, "w1", 2, &cl);
    cr_assert_eq(cl->results[0]->job->fence, f1 + 1);
    tier_free(cl);
    teardown(&f);
}

static int control(fx *f, int64_t cid, bool cancel, char *outcome, size_t len)
{
    Tier__JobControlRequest req = TIER__JOB_CONTROL_REQUEST__INIT;
    Tier__JobControlReply *rep = NULL;
    req.cid = cid;
    int rv = cancel ? tier_cancel_job(f->c, &req, &rep, &E) : tier_retry_job(f->c, &req, &rep, &E);
    if (rv == TIER_OK)
        snprintf(outcome, len, "%s", rep->outcome);
    tier_free(rep);
    return rv;
}

Test(tiering, job_control_retry_cancel_and_finished_jobs)
{
    fx f;
    Tier__ReportViewsReply *rep;
    Tier__ClaimJobReply *cl;
    uint64_t fence;
    char st[32], out[32], lvl[32], bronze[1024];

    setup(&f, NULL);
    snprintf(bronze, sizeof(bronze), "%s/bronze/", f.root);
    cr_assert_eq(control(&f, 4, false, out, sizeof(out)), TIER_NOT_FOUND);
    cr_assert_eq(control(&f, 999, true, out, sizeof(out)), TIER_NOT_FOUND);

    /* Never claimed: cancel deletes it. */
    report(&f, 4, 3000, &rep);
    tier_free(rep);
    cr_assert_eq(control(&f, 4, true, out, sizeof(out)), TIER_OK);
    cr_assert_str_eq(out, "deleted");
    cr_assert_eq(get_job(&f, 4, st, sizeof(st), NULL), TIER_NOT_FOUND);

    /* Failed for good (say a foreign file at the destination): retry puts
     * it back to update now; a running one cannot be retried or cancelled. */
    report(&f, 4, 3000, &rep);
    tier_free(rep);
    cr_assert_eq(claim(&f, "w1", 4, 0, &fence), TIER_OK);
    cr_assert_eq(control(&f, 4, false, out, sizeof(out)), TIER_FAILED_PRECONDITION);
    cr_assert_eq(control(&f, 4, true, out, sizeof(out)), TIER_FAILED_PRECONDITION);
    cr_assert_eq(fail_job(&f, "w1", 4, fence, "d.mp4 exists in gold", true, 0), TIER_OK);
    cr_assert_eq(get_job(&f, 4, st, sizeof(st), NULL), TIER_OK);
    cr_assert_str_eq(st, "failed");
    cr_assert_eq(control(&f, 4, false, out, sizeof(out)), TIER_OK);
    cr_assert_str_eq(out, "retried");
    cr_assert_eq(get_job(&f, 4, st, sizeof(st), NULL), TIER_OK);
    cr_assert_str_eq(st, "update");

    /* Once claimed, cancel aims it home: the file may be in gold. */
    cr_assert_eq(control(&f, 4, true, out, sizeof(out)), TIER_OK);
    cr_assert_str_eq(out, "home");
    claim_job(&f, "w2", 4, &cl);
    Tier__Job *j = cl->results[0]->job;
    cr_assert_str_eq(j->target, "bronze");
    cr_assert_str_eq(j->dst_dir, bronze);
    cr_assert_eq(j->n_also_dirs, 1);
    cr_assert(strstr(j->also_dirs[0], "/gold/") != NULL);
    fence = j->fence;
    tier_free(cl);
    cr_assert_eq(complete(&f, "w2", 4, fence, NULL, 0), TIER_OK);
    level_of(&f, 4, lvl, sizeof(lvl));
    cr_assert_str_eq(lvl, "bronze");
    cr_assert_eq(history_rows(&f, 4), 0, "no level change, no history row");

    /* Finished jobs stay listed (newest first). */
    Tier__ListJobsRequest lr = TIER__LIST_JOBS_REQUEST__INIT;
    Tier__ListJobsReply *ls;
    lr.status = "finished";
    cr_assert_eq(tier_list_jobs(f.c, &lr, &ls, &E), TIER_OK);
    cr_assert_geq(ls->n_jobs, 1);
    cr_assert_eq(ls->jobs[0]->cid, 4);
    cr_assert_str_eq(ls->jobs[0]->status, "finished");
    cr_assert_eq(ls->jobs[0]->fence, fence);
    tier_free(ls);
    teardown(&f);
}

Test(tiering, second_claim_refused)
{
    fx f;
    Tier__ReportViewsReply *rep;
    uint64_t fence;

    setup(&f, NULL);
    report(&f, 4, 3000, &rep);
    tier_free(rep);
    cr_assert_eq(claim(&f, "w1", 4, 0, &fence), TIER_OK);
    cr_assert_eq(claim(&f, "w2", 4, 0, NULL), TIER_ALREADY_EXISTS);
    cr_assert_eq(claim(&f, "w1", 4, 0, NULL), TIER_ALREADY_EXISTS);
    cr_assert_eq(claim(&f, "w2", 5, 0, NULL), TIER_NOT_FOUND);
    /* Another worker cannot complete it. */
    cr_assert_eq(complete(&f, "w2", 4, fence, NULL, 0), TIER_FAILED_PRECONDITION);
    teardown(&f);
}

Test(tiering, expired_lease_cannot_complete_and_is_pushed_again)
{
    fx f;
    Tier__ReportViewsReply *rep;
    uint64_t fence, fence2;
    char st[32];
    nng_socket pull;
    void *buf;
    size_t len;

    setup(&f, NULL);
    cr_assert_eq(nng_pull0_open(&pull), 0);
    nng_setopt_ms(pull, NNG_OPT_RECVTIMEO, 3000);
    cr_assert_eq(nng_dial(pull, f.td.push, NULL, 0), 0);
    usleep(200 * 1000);
    report(&f, 4, 3000, &rep);
    tier_free(rep);
    /* The notification. */
    cr_assert_eq(nng_recv(pull, &buf, &len, NNG_FLAG_ALLOC), 0);
    Tier__MoveJob *m = tier__move_job__unpack(NULL, len, buf);
    cr_assert(m != NULL);
    cr_assert_eq(m->cid, 4);
    cr_assert_str_eq(m->filename, "d.mp4");
    cr_assert_str_eq(m->target, "gold");
    cr_assert(strstr(m->src_dir, "/bronze") != NULL && strstr(m->dst_dir, "/gold") != NULL);
    tier__move_job__free_unpacked(m, NULL);
    nng_free(buf, len);

    cr_assert_eq(claim(&f, "w1", 4, 300, &fence), TIER_OK);
    usleep(700 * 1000);
    cr_assert_eq(complete(&f, "w1", 4, fence, NULL, 0), TIER_FAILED_PRECONDITION);
    cr_assert_eq(get_job(&f, 4, st, sizeof(st), NULL), TIER_OK);
    cr_assert_str_eq(st, "update", "the reaper took the lease back");
    /* Pushed again (drain until we see cid 4). */
    bool seen = false;
    for (int i = 0; i < 5 && !seen; i++) {
        if (nng_recv(pull, &buf, &len, NNG_FLAG_ALLOC) != 0)
            break;
        m = tier__move_job__unpack(NULL, len, buf);
        seen = m && m->cid == 4;
        tier__move_job__free_unpacked(m, NULL);
        nng_free(buf, len);
    }
    cr_assert(seen, "job pushed again after its lease ran out");
    cr_assert_eq(claim(&f, "w2", 4, 0, &fence2), TIER_OK);
    cr_assert_eq(fence2, fence + 1);
    cr_assert_eq(complete(&f, "w1", 4, fence, NULL, 0), TIER_FAILED_PRECONDITION);
    move_file(&f, "bronze", "gold", "d.mp4");
    cr_assert_eq(complete(&f, "w2", 4, fence2, NULL, 0), TIER_OK);
    nng_close(pull);
    teardown(&f);
}

Test(tiering, fail_permanent_and_transient)
{
    fx f;
    Tier__ReportViewsReply *rep;
    Tier__ListJobsRequest lr = TIER__LIST_JOBS_REQUEST__INIT;
    Tier__ListJobsReply *l;
    uint64_t fence;
    char st[32];

    setup(&f, NULL);
    report(&f, 2, 1200, &rep);
    tier_free(rep);
    cr_assert_eq(claim(&f, "w1", 2, 0, &fence), TIER_OK);
    cr_assert_eq(fail_job(&f, "w2", 2, fence, "nope", true, 0), TIER_FAILED_PRECONDITION);
    cr_assert_eq(fail_job(&f, "w1", 2, fence, "b.mp4 not exists", true, 0), TIER_OK);
    lr.status = "failed";
    cr_assert_eq(tier_list_jobs(f.c, &lr, &l, &E), TIER_OK);
    cr_assert_eq(l->n_jobs, 1);
    cr_assert_eq(l->jobs[0]->cid, 2);
    cr_assert_str_eq(l->jobs[0]->reason, "b.mp4 not exists");
    cr_assert_str_eq(l->jobs[0]->status, "failed");
    tier_free(l);
    cr_assert_eq(claim(&f, "w1", 2, 0, NULL), TIER_FAILED_PRECONDITION);
    /* A later report starts a fresh job. */
    cr_assert_str_eq(report(&f, 2, 1200, &rep)->status, "update");
    tier_free(rep);

    /* Transient: back to update, claimable after retry_after_ms. */
    cr_assert_eq(claim(&f, "w1", 2, 0, &fence), TIER_OK);
    cr_assert_eq(fail_job(&f, "w1", 2, fence, "EAGAIN", false, 100), TIER_OK);
    cr_assert_eq(get_job(&f, 2, st, sizeof(st), NULL), TIER_OK);
    cr_assert_str_eq(st, "update");
    cr_assert_eq(claim(&f, "w2", 2, 0, &fence), TIER_OK);
    lr.status = "bogus";
    cr_assert_eq(tier_list_jobs(f.c, &lr, &l, &E), TIER_INVALID_ARGUMENT);
    teardown(&f);
}

Test(tiering, done_but_not_committed_is_committed_at_start)
{
    fx f;
    Tier__ReportViewsReply *rep;
    uint64_t fence;
    char lvl[32], st[32];

    setup(&f, NULL);
    report(&f, 4, 1500, &rep);
    tier_free(rep);
    cr_assert_eq(claim(&f, "w1", 4, 0, &fence), TIER_OK);
    move_file(&f, "bronze", "silver", "d.mp4");
    /* Crash between "done" in Redis and the MySQL commit. */
    tierd_stop(&f, SIGKILL);
    redisReply *r = redisCommand(f.rd, "HSET %sjob:4 status done", f.prefix);
    freeReplyObject(r);
    freeReplyObject(redisCommand(f.rd, "ZREM %sjobs:claimed 4", f.prefix));
    freeReplyObject(redisCommand(f.rd, "SADD %sjobs:done 4", f.prefix));
    level_of(&f, 4, lvl, sizeof(lvl));
    cr_assert_str_eq(lvl, "bronze");
    tierd_start(&f, NULL);
    level_of(&f, 4, lvl, sizeof(lvl));
    cr_assert_str_eq(lvl, "silver");
    cr_assert_eq(history_rows(&f, 4), 1);
    cr_assert_eq(get_job(&f, 4, st, sizeof(st), NULL), TIER_NOT_FOUND);
    /* The worker's retry after the restart is acknowledged. */
    cr_assert_eq(complete(&f, "w1", 4, fence, NULL, 0), TIER_OK);
    teardown(&f);
}

/* ---------------------------------------------------------- sizes */

/* A file of n bytes in level. */
static void sized_file_in(fx *f, const char *level, const char *name, size_t n)
{
    char p[1024], *b = malloc(n + 1);
    cr_assert(b != NULL);
    memset(b, 'x', n);
    snprintf(p, sizeof(p), "%s/%s/%s", f->root, level, name);
    cr_assert(tier_test_write_file(p, b, n));
    free(b);
}

/* contents.size_bytes of cid, as MySQL has it. */
static long long size_in_db(fx *f, int64_t cid)
{
    char q[256], v[32];
    snprintf(q, sizeof(q), "SELECT size_bytes FROM contents WHERE cid = %lld", (long long)cid);
    tier_test_sql1(f->my, q, v, sizeof(v));
    return atoll(v);
}

/* GetContent's size_bytes. */
static long long size_of(fx *f, int64_t cid)
{
    Tier__GetContentRequest req = TIER__GET_CONTENT_REQUEST__INIT;
    Tier__GetContentReply *rep;
    req.cid = cid;
    cr_assert_eq(tier_get_content(f->c, &req, &rep, &E), TIER_OK, "%s", E.message);
    long long size = rep->content->size_bytes;
    tier_free(rep);
    return size;
}

/* CompleteJob of one job with sizes[0..nsizes); the call's status, the
 * item's code in *code (when the call is OK). */
static int complete_sized(fx *f, int64_t cid, uint64_t fence, int64_t *sizes, size_t nsizes,
                          int *code, tier_error *err)
{
    Tier__CompleteJobRequest req = TIER__COMPLETE_JOB_REQUEST__INIT;
    Tier__JobRef ref = TIER__JOB_REF__INIT, *refs[1] = {&ref};
    Tier__CompleteJobReply *rep = NULL;
    ref.cid = cid;
    ref.fence = fence;
    req.worker_id = (char *)"w1";
    req.jobs = refs;
    req.n_jobs = 1;
    req.sizes = sizes;
    req.n_sizes = nsizes;
    int rv = tier_complete_job(f->c, &req, &rep, err);
    if (rv == TIER_OK)
        *code = rep->results[0]->code;
    tier_free(rep);
    return rv;
}

/* Reports count for cid, claims the job and renames the file. */
static uint64_t claim_and_move(fx *f, int64_t cid, int64_t count, const char *from, const char *to,
                               const char *name)
{
    Tier__ReportViewsReply *rep;
    uint64_t fence = 0;
    Tier__ViewResult *r = report(f, cid, count, &rep);
    cr_assert_str_eq(r->status, "update");
    tier_free(rep);
    cr_assert_eq(claim(f, "w1", cid, 0, &fence), TIER_OK);
    move_file(f, from, to, name);
    return fence;
}

/* Sizes: AddContent(s) record what they lstat, a move's commit what the
 * worker reports (4242 here, unlike the file's 1000 bytes, so it is
 * surely the reported one and not a stat), a completion without sizes
 * keeps it, and a restart loads it: were it loaded as -1, the size pass
 * would overwrite it with the file's 1000 bytes. */
Test(tiering, sizes_from_add_move_and_restart, .timeout = 60)
{
    int64_t sizes[1] = {4242};
    tier_error err;
    int code = -1;
    fx f;

    setup(&f, NULL);
    sized_file_in(&f, "bronze", "g.mp4", 1000);
    cr_assert_eq(add(&f, "g.mp4", 7, &err), TIER_OK, "%s", err.message);
    cr_assert_eq(size_of(&f, 7), 1000);
    cr_assert_eq(size_in_db(&f, 7), 1000);

    sized_file_in(&f, "bronze", "h.mp4", 300);
    sized_file_in(&f, "bronze", "i.mp4", 0);
    Tier__AddContentRequest it[2], *p[2] = {&it[0], &it[1]};
    Tier__AddContentsRequest areq = TIER__ADD_CONTENTS_REQUEST__INIT;
    Tier__AddContentsReply *arep;
    tier__add_content_request__init(&it[0]);
    tier__add_content_request__init(&it[1]);
    it[0].filename = (char *)"h.mp4";
    it[0].cid = 8;
    it[1].filename = (char *)"i.mp4";
    it[1].cid = 9;
    areq.items = p;
    areq.n_items = 2;
    cr_assert_eq(tier_add_contents(f.c, &areq, &arep, &err), TIER_OK, "%s", err.message);
    cr_assert_eq(arep->results[0]->code, TIER_OK, "%s", arep->results[0]->message);
    cr_assert_eq(arep->results[0]->content->size_bytes, 300);
    cr_assert_eq(arep->results[1]->content->size_bytes, 0);
    tier_free(arep);
    cr_assert_eq(size_in_db(&f, 8), 300);
    cr_assert_eq(size_of(&f, 9), 0);

    uint64_t fence = claim_and_move(&f, 7, 1964, "bronze", "silver", "g.mp4");
    cr_assert_eq(complete_sized(&f, 7, fence, sizes, 1, &code, &err), TIER_OK, "%s", err.message);
    cr_assert_eq(code, TIER_OK);
    cr_assert_eq(size_of(&f, 7), 4242);
    cr_assert_eq(size_in_db(&f, 7), 4242);
    cr_assert_eq(history_rows(&f, 7), 1);

    /* An older worker's completion (no sizes) keeps the size. */
    fence = claim_and_move(&f, 7, 5000, "silver", "gold", "g.mp4");
    cr_assert_eq(complete_sized(&f, 7, fence, NULL, 0, &code, &err), TIER_OK, "%s", err.message);
    cr_assert_eq(code, TIER_OK);
    char lvl[32];
    level_of(&f, 7, lvl, sizeof(lvl));
    cr_assert_str_eq(lvl, "gold");
    cr_assert_eq(size_in_db(&f, 7), 4242);

    /* cid 20 is unknown to this tierd (inserted behind its back, size -1):
     * the next start loads it and its first size pass fills it in, which
     * says that pass is over. */
    sized_file_in(&f, "bronze", "z.mp4", 77);
    sql(&f, "INSERT INTO contents (cid, content_level, filename) VALUES (20, 'bronze', 'z.mp4')");
    tierd_stop(&f, SIGTERM);
    tierd_start(&f, NULL);
    for (int i = 0; i < 100 && size_in_db(&f, 20) < 0; i++)
        usleep(50 * 1000);
    cr_assert_eq(size_in_db(&f, 20), 77);
    cr_assert_eq(size_of(&f, 7), 4242);
    cr_assert_eq(size_in_db(&f, 7), 4242);
    cr_assert_eq(size_of(&f, 8), 300);
    teardown(&f);
}

/* Rows from before sql/006 (size -1, like the seeded cids 1..6) get their
 * sizes from the background size pass, with no history row. */
Test(tiering, size_pass_backfills_unknown_sizes, .timeout = 60)
{
    fx f;

    setup(&f, NULL);
    for (int i = 0; i < 100 && size_in_db(&f, 6) < 0; i++)
        usleep(50 * 1000);
    for (int64_t cid = 1; cid <= 6; cid++) {
        cr_assert_eq(size_in_db(&f, cid), 5, "cid %lld", (long long)cid); /* "a.mp4" .. */
        cr_assert_eq(size_of(&f, cid), 5);
        cr_assert_eq(history_rows(&f, cid), 0);
    }
    teardown(&f);
}

/* A size that is negative, or a count of sizes that is neither the jobs'
 * nor 0, is refused whole before anything is marked done. */
Test(tiering, complete_refuses_hostile_sizes, .timeout = 60)
{
    int64_t neg[1] = {-5}, two[2] = {10, 20}, ok[1] = {1000};
    char st[32], lvl[32];
    tier_error err;
    int code = -1;
    fx f;

    setup(&f, NULL);
    sized_file_in(&f, "bronze", "g.mp4", 1000);
    cr_assert_eq(add(&f, "g.mp4", 7, &err), TIER_OK, "%s", err.message);
    uint64_t fence = claim_and_move(&f, 7, 1964, "bronze", "silver", "g.mp4");

    cr_assert_eq(complete_sized(&f, 7, fence, neg, 1, &code, &err), TIER_INVALID_ARGUMENT);
    cr_assert(strstr(err.message, "sizes[0]: -5 bytes") != NULL, "%s", err.message);
    cr_assert_eq(complete_sized(&f, 7, fence, two, 2, &code, &err), TIER_INVALID_ARGUMENT);
    cr_assert(strstr(err.message, "one per job or none (got 2 for 1 jobs)") != NULL, "%s",
              err.message);
    cr_assert_eq(get_job(&f, 7, st, sizeof(st), NULL), TIER_OK);
    cr_assert_str_eq(st, "claimed");
    level_of(&f, 7, lvl, sizeof(lvl));
    cr_assert_str_eq(lvl, "bronze");
    cr_assert_eq(size_in_db(&f, 7), 1000);

    cr_assert_eq(complete_sized(&f, 7, fence, ok, 1, &code, &err), TIER_OK, "%s", err.message);
    cr_assert_eq(code, TIER_OK);
    cr_assert_eq(size_of(&f, 7), 1000);
    teardown(&f);
}

Test(tiering, add_content_errors)
{
    fx f;
    tier_error err;
    char name[300];
    Tier__GetContentRequest gr = TIER__GET_CONTENT_REQUEST__INIT;
    Tier__GetContentReply *g;

    setup(&f, NULL);
    cr_assert_eq(add(&f, "missing.mp4", 0, &err), TIER_FAILED_PRECONDITION);
    file_in(&f, "bronze", "x.mp4");
    cr_assert_eq(add(&f, "x.mp4", 3, &err), TIER_ALREADY_EXISTS, "cid 3 is taken");
    cr_assert_eq(add(&f, "../x", 0, &err), TIER_INVALID_ARGUMENT);
    cr_assert_eq(add(&f, "a/b", 0, &err), TIER_INVALID_ARGUMENT);
    cr_assert_eq(add(&f, "..", 0, &err), TIER_INVALID_ARGUMENT);
    cr_assert_eq(add(&f, ".", 0, &err), TIER_INVALID_ARGUMENT);
    cr_assert_eq(add(&f, "", 0, &err), TIER_INVALID_ARGUMENT);
    memset(name, 'n', 256);
    name[256] = '\0';
    cr_assert_eq(add(&f, name, 0, &err), TIER_INVALID_ARGUMENT);
    cr_assert_eq(add(&f, "x.mp4", -4, &err), TIER_INVALID_ARGUMENT);
    cr_assert_eq(add(&f, "x.mp4", 0, &err), TIER_OK, "%s", err.message);
    gr.cid = 7; /* max + 1 */
    cr_assert_eq(tier_get_content(f.c, &gr, &g, &E), TIER_OK);
    cr_assert_str_eq(g->content->filename, "x.mp4");
    cr_assert_str_eq(g->content->level, "bronze");
    cr_assert_gt(g->content->generate_time_ms, 0);
    cr_assert(g->job == NULL);
    tier_free(g);
    cr_assert_eq(add(&f, "x.mp4", 0, &err), TIER_ALREADY_EXISTS, "filename taken");
    gr.cid = 12345;
    cr_assert_eq(tier_get_content(f.c, &gr, &g, &E), TIER_NOT_FOUND);
    teardown(&f);
}

static int set_levels(fx *f, const char *spec[][4], size_t n)
{
    Tier__SetLevelsRequest req = TIER__SET_LEVELS_REQUEST__INIT;
    Tier__Level lv[8], *lp[8];
    Tier__ListLevelsReply *rep = NULL;
    for (size_t i = 0; i < n; i++) {
        tier__level__init(&lv[i]);
        lv[i].name = (char *)spec[i][0];
        lv[i].min_counts = atoll(spec[i][1]);
        lv[i].max_counts = atoll(spec[i][2]);
        lv[i].path = (char *)spec[i][3];
        lp[i] = &lv[i];
    }
    req.levels = lp;
    req.n_levels = n;
    int rv = tier_set_levels(f->c, &req, &rep, &E);
    tier_free(rep);
    return rv;
}

Test(tiering, set_levels_refusals)
{
    fx f;
    char b[512], s[512], g[512], x[512];

    setup(&f, NULL);
    snprintf(b, sizeof(b), "%s/bronze", f.root);
    snprintf(s, sizeof(s), "%s/silver", f.root);
    snprintf(g, sizeof(g), "%s/gold", f.root);
    snprintf(x, sizeof(x), "%s/new/platinum", f.root);
    const char *gap[][4] = {
        {"bronze", "0", "999", b}, {"silver", "1001", "1999", s}, {"gold", "2000", "9000000", g}};
    const char *overlap[][4] = {
        {"bronze", "0", "999", b}, {"silver", "999", "1999", s}, {"gold", "2000", "9000000", g}};
    const char *two0[][4] = {{"bronze", "0", "999", b}, {"silver", "0", "1999", s}};
    const char *rel[][4] = {{"bronze", "0", "999", "bronze/"}, {"silver", "1000", "1999", s}};
    const char *badname[][4] = {{"bro nze", "0", "999", b}};
    const char *dup[][4] = {{"bronze", "0", "999", b}, {"bronze", "1000", "1999", s}};
    const char *minmax[][4] = {{"bronze", "0", "999", b}, {"silver", "1000", "500", s}};
    const char *neg[][4] = {{"bronze", "-5", "999", b}};
    const char *nozero[][4] = {{"bronze", "1", "999", b}};
    const char *dropgold[][4] = {{"bronze", "0", "999", b}, {"silver", "1000", "9000000", s}};
    const char *ok[][4] = {{"bronze", "0", "999", b},
                           {"silver", "1000", "1999", s},
                           {"gold", "2000", "99999", g},
                           {"platinum", "100000", "9000000000", x}};
    cr_assert_eq(set_levels(&f, gap, 3), TIER_INVALID_ARGUMENT);
    cr_assert_eq(set_levels(&f, overlap, 3), TIER_INVALID_ARGUMENT);
    cr_assert_eq(set_levels(&f, two0, 2), TIER_INVALID_ARGUMENT);
    cr_assert_eq(set_levels(&f, rel, 2), TIER_INVALID_ARGUMENT);
    cr_assert_eq(set_levels(&f, badname, 1), TIER_INVALID_ARGUMENT);
    cr_assert_eq(set_levels(&f, dup, 2), TIER_INVALID_ARGUMENT);
    cr_assert_eq(set_levels(&f, minmax, 2), TIER_INVALID_ARGUMENT);
    cr_assert_eq(set_levels(&f, neg, 1), TIER_INVALID_ARGUMENT);
    cr_assert_eq(set_levels(&f, nozero, 1), TIER_INVALID_ARGUMENT);
    cr_assert_eq(set_levels(&f, NULL, 0), TIER_INVALID_ARGUMENT);
    cr_assert_eq(set_levels(&f, dropgold, 2), TIER_FAILED_PRECONDITION, "gold holds a.mp4");
    cr_assert_eq(set_levels(&f, ok, 4), TIER_OK);
    struct stat sb;
    cr_assert(stat(x, &sb) == 0 && S_ISDIR(sb.st_mode), "directory created");
    char n[32];
    tier_test_sql1(f.my, "SELECT COUNT(*) FROM level", n, sizeof(n));
    cr_assert_str_eq(n, "4");
    Tier__ReportViewsReply *rep;
    cr_assert_str_eq(report(&f, 1, 200000, &rep)->target, "platinum");
    tier_free(rep);

    /* While a job exists (cid 1 -> platinum, unclaimed) no level is moved
     * or removed, even one holding contents (which would otherwise start a
     * level migration: tests/test_migrate.c).  Ranges may still change. */
    char b2[512], x2[512];
    snprintf(b2, sizeof(b2), "%s/bronze2", f.root);
    snprintf(x2, sizeof(x2), "%s/new/platinum2", f.root);
    const char *movebronze[][4] = {{"bronze", "0", "999", b2},
                                   {"silver", "1000", "1999", s},
                                   {"gold", "2000", "99999", g},
                                   {"platinum", "100000", "9000000000", x}};
    const char *moveplat[][4] = {{"bronze", "0", "999", b},
                                 {"silver", "1000", "1999", s},
                                 {"gold", "2000", "99999", g},
                                 {"platinum", "100000", "9000000000", x2}};
    const char *ranges[][4] = {{"bronze", "0", "1499", b},
                               {"silver", "1500", "1999", s},
                               {"gold", "2000", "99999", g},
                               {"platinum", "100000", "9000000000", x}};
    cr_assert_eq(set_levels(&f, movebronze, 4), TIER_FAILED_PRECONDITION, "a job exists");
    cr_assert(strstr(E.message, "move jobs in progress") != NULL, "%s", E.message);
    cr_assert_eq(set_levels(&f, moveplat, 4), TIER_FAILED_PRECONDITION, "a job targets it");
    cr_assert(strstr(E.message, "move jobs in progress") != NULL, "%s", E.message);
    cr_assert_eq(set_levels(&f, ranges, 4), TIER_OK, "%s", E.message);
    teardown(&f);
}

static int run_tierd_with(const char *var, int port, char *out, size_t len)
{
    char listen[128], push[128], e[64];
    char *bin = tier_test_bin("tierd");
    snprintf(e, sizeof(e), "%s=%d", var, port);
    char *envp[] = {e, NULL};
    tier_test_tcp_url(listen, sizeof(listen));
    tier_test_tcp_url(push, sizeof(push));
    char *argv[] = {bin, "--listen", listen, "--push", push, "--no-auth", NULL};
    int st = tier_test_run(argv, envp, out, len, 20000);
    free(bin);
    return st;
}

Test(tiering, dead_dependency_at_start)
{
    char out[4096];
    int st = run_tierd_with("TIER_REDIS_PORT", tier_test_free_port(), out, sizeof(out));
    cr_assert(st > 0 && st < 128 && strstr(out, "Redis"), "%d %s", st, out);
    st = run_tierd_with("TIER_MYSQL_PORT", tier_test_free_port(), out, sizeof(out));
    cr_assert(st > 0 && st < 128 && strstr(out, "MySQL"), "%d %s", st, out);
}

/* ---------------------------------------------------------- caps (issue 8, item 3) */

static int claim_n(fx *f, size_t n, size_t *results)
{
    Tier__ClaimJobRequest req = TIER__CLAIM_JOB_REQUEST__INIT;
    Tier__ClaimJobReply *rep = NULL;
    int64_t *cids = calloc(n, sizeof(*cids));
    for (size_t i = 0; i < n; i++)
        cids[i] = 1000000 + (int64_t)i;
    req.worker_id = "w1";
    req.cids = cids;
    req.n_cids = n;
    int rv = tier_claim_job(f->c, &req, &rep, &E);
    if (rv == TIER_OK) {
        *results = rep->n_results;
        for (size_t i = 0; i < rep->n_results; i++)
            cr_assert_eq(rep->results[i]->code, TIER_NOT_FOUND);
    }
    tier_free(rep);
    free(cids);
    return rv;
}

/* RenewLease (complete = false) or CompleteJob of n unknown jobs. */
static int refs_n(fx *f, bool complete, size_t n, size_t *results)
{
    Tier__JobRef *refs = calloc(n, sizeof(*refs));
    Tier__JobRef **rp = calloc(n, sizeof(*rp));
    int rv;
    for (size_t i = 0; i < n; i++) {
        tier__job_ref__init(&refs[i]);
        refs[i].cid = 1000000 + (int64_t)i;
        refs[i].fence = 1;
        rp[i] = &refs[i];
    }
    if (complete) {
        Tier__CompleteJobRequest req = TIER__COMPLETE_JOB_REQUEST__INIT;
        Tier__CompleteJobReply *rep = NULL;
        req.worker_id = "w1";
        req.jobs = rp;
        req.n_jobs = n;
        if ((rv = tier_complete_job(f->c, &req, &rep, &E)) == TIER_OK)
            *results = rep->n_results;
        tier_free(rep);
    } else {
        Tier__RenewLeaseRequest req = TIER__RENEW_LEASE_REQUEST__INIT;
        Tier__RenewLeaseReply *rep = NULL;
        req.worker_id = "w1";
        req.jobs = rp;
        req.n_jobs = n;
        if ((rv = tier_renew_lease(f->c, &req, &rep, &E)) == TIER_OK)
            *results = rep->n_results;
        tier_free(rep);
    }
    free(refs);
    free(rp);
    return rv;
}

static int report_n(fx *f, size_t n, size_t *results)
{
    Tier__ViewReport *v = calloc(n, sizeof(*v));
    Tier__ViewReport **list = calloc(n, sizeof(*list));
    Tier__ReportViewsRequest req = TIER__REPORT_VIEWS_REQUEST__INIT;
    Tier__ReportViewsReply *rep = NULL;
    for (size_t i = 0; i < n; i++) {
        tier__view_report__init(&v[i]);
        v[i].cid = 1000000 + (int64_t)i;
        v[i].count = 5;
        list[i] = &v[i];
    }
    req.reports = list;
    req.n_reports = n;
    int rv = tier_report_views(f->c, &req, &rep, &E);
    if (rv == TIER_OK) {
        *results = rep->n_results;
        for (size_t i = 0; i < rep->n_results; i++)
            cr_assert_eq(rep->results[i]->code, TIER_NOT_FOUND);
    }
    tier_free(rep);
    free(v);
    free(list);
    return rv;
}

/* Over the cap: refused as a whole, the message naming the field and the
 * cap; at the cap: answered item by item. */
static void assert_capped(fx *f, const char *what, int (*call)(fx *, size_t, size_t *), size_t cap)
{
    char want[64];
    size_t n = 0;

    snprintf(want, sizeof(want), "at most %zu per call", cap);
    cr_assert_eq(call(f, cap + 1, &n), TIER_INVALID_ARGUMENT, "%s: %zu items", what, cap + 1);
    cr_assert(strstr(E.message, what) != NULL && strstr(E.message, want) != NULL, "%s: %s", what,
              E.message);
    cr_assert_eq(call(f, cap, &n), TIER_OK, "%s: %s", what, E.message);
    cr_assert_eq(n, cap, "%s: one result per item", what);
}

static int renew_n(fx *f, size_t n, size_t *results)
{
    return refs_n(f, false, n, results);
}

static int complete_n(fx *f, size_t n, size_t *results)
{
    return refs_n(f, true, n, results);
}

Test(tiering, repeated_fields_are_capped_per_call, .timeout = 120)
{
    fx f;
    Tier__FailJobRequest fr = TIER__FAIL_JOB_REQUEST__INIT;
    Tier__FailJobReply *frep = NULL;

    setup(&f, NULL);
    tier_client_set_timeout(f.c, 30000);
    assert_capped(&f, "cids", claim_n, 1024);
    assert_capped(&f, "jobs", renew_n, 10000);
    assert_capped(&f, "jobs", complete_n, 10000);
    assert_capped(&f, "reports", report_n, 8000);
    /* The one optional sub-message of a request: FailJob without its job. */
    fr.worker_id = "w1";
    cr_assert_eq(tier_fail_job(f.c, &fr, &frep, &E), TIER_INVALID_ARGUMENT);
    cr_assert(strstr(E.message, "job") != NULL, "%s", E.message);
    tier_free(frep);
    teardown(&f);
}

/* ---------------------------------------------------------- hostile input (issue 8) */

/* cid INT64_MAX leaves no max + 1: refused, not wrapped to INT64_MIN (which
 * no worker would ever move and which made every later pick collide). */
Test(tiering, cid_overflow)
{
    fx f;
    tier_error err;

    setup(&f, NULL);
    file_in(&f, "bronze", "x.mp4");
    file_in(&f, "bronze", "y.mp4");
    cr_assert_eq(add(&f, "x.mp4", INT64_MAX, &E), TIER_OK, "%s", E.message);
    cr_assert_eq(add(&f, "y.mp4", 0, &err), TIER_RESOURCE_EXHAUSTED, "%s", err.message);
    cr_assert(strstr(err.message, "no cid left") != NULL, "%s", err.message);
    cr_assert_eq(add(&f, "y.mp4", 7, &E), TIER_OK, "a given cid still works: %s", E.message);
    char n[32];
    tier_test_sql1(f.my, "SELECT COUNT(*) FROM contents WHERE cid <= 0", n, sizeof(n));
    cr_assert_str_eq(n, "0");
    /* Across a restart too: max_cid is loaded from MySQL. */
    tierd_stop(&f, SIGTERM);
    tierd_start(&f, NULL);
    file_in(&f, "bronze", "z.mp4");
    cr_assert_eq(add(&f, "z.mp4", 0, &err), TIER_RESOURCE_EXHAUSTED, "%s", err.message);
    teardown(&f);
}

static bool exists(const char *p)
{
    struct stat sb;
    return lstat(p, &sb) == 0;
}

/* Every refusal is INVALID_ARGUMENT and creates nothing: the fourth level
 * (root/fresh/p) would be new, and must not appear. */
Test(tiering, set_levels_dangerous_dirs)
{
    fx f;
    char b[512], s[512], g[512], fresh[512], p[512], file[512], via[512], nest[512], bad[512],
        out[512], dots[512];

    setup(&f, NULL);
    snprintf(b, sizeof(b), "%s/bronze", f.root);
    snprintf(s, sizeof(s), "%s/silver", f.root);
    snprintf(g, sizeof(g), "%s/gold", f.root);
    snprintf(fresh, sizeof(fresh), "%s/fresh", f.root);
    snprintf(p, sizeof(p), "%s/fresh/p", f.root);
    snprintf(file, sizeof(file), "%s/afile", f.root);
    cr_assert(tier_test_write_file(file, "x", 1));
    snprintf(via, sizeof(via), "%s/fresh/../bronze/", f.root);
    snprintf(nest, sizeof(nest), "%s/gold/inner", f.root);
    snprintf(bad, sizeof(bad), "%s/fresh/\xff\xfe", f.root);
    snprintf(out, sizeof(out), "%s-elsewhere/p", f.root);
    snprintf(dots, sizeof(dots), "%s//fresh/./q/../p2", f.root);
    const char *cases[] = {file,
                           via,
                           nest,
                           bad,
                           out,
                           "/",
                           "/etc/tier",
                           "/proc/self/",
                           "/sys/x",
                           "/dev/shm/x",
                           "/usr/local/tier",
                           "/boot/x",
                           "/lib/x",
                           NULL};
    for (size_t i = 0; cases[i] != NULL; i++) {
        const char *spec[][4] = {{"bronze", "0", "999", b},
                                 {"silver", "1000", "1999", s},
                                 {"gold", "2000", "99999", g},
                                 {"platinum", "100000", "9000000000", cases[i]},
                                 {"diamond", "9000000001", "9000000002", p}};
        cr_assert_eq(set_levels(&f, spec, 5), TIER_INVALID_ARGUMENT, "%s: %s", cases[i], E.message);
        cr_assert_not(exists(fresh), "%s: %s was created", cases[i], fresh);
    }
    cr_assert_not(exists(out), "outside the storage root");
    /* A file as a level, and a regular file in the way. */
    snprintf(nest, sizeof(nest), "%s/afile/sub", f.root);
    const char *infile[][4] = {{"bronze", "0", "999", b},
                               {"silver", "1000", "1999", s},
                               {"gold", "2000", "99999", g},
                               {"platinum", "100000", "9000000000", nest}};
    cr_assert_eq(set_levels(&f, infile, 4), TIER_INVALID_ARGUMENT, "%s", E.message);
    /* Two new levels in one directory, spelled differently. */
    snprintf(via, sizeof(via), "%s/fresh/x/../p", f.root);
    const char *shared[][4] = {{"bronze", "0", "999", b},
                               {"silver", "1000", "1999", s},
                               {"gold", "2000", "99999", g},
                               {"platinum", "100000", "9000000000", p},
                               {"diamond", "9000000001", "9000000002", via}};
    cr_assert_eq(set_levels(&f, shared, 5), TIER_INVALID_ARGUMENT, "%s", E.message);
    cr_assert(strstr(E.message, "share") != NULL, "%s", E.message);
    cr_assert_not(exists(fresh));
    /* A clean table with a messy spelling is stored canonical. */
    const char *ok[][4] = {{"bronze", "0", "999", b},
                           {"silver", "1000", "1999", s},
                           {"gold", "2000", "99999", g},
                           {"platinum", "100000", "9000000000", dots}};
    cr_assert_eq(set_levels(&f, ok, 4), TIER_OK, "%s", E.message);
    char q[700], n[32];
    snprintf(q, sizeof(q),
             "SELECT COUNT(*) FROM level WHERE path IN ('%s/fresh/p2', '%s/fresh/p2/')", f.root,
             f.root);
    tier_test_sql1(f.my, q, n, sizeof(n));
    cr_assert_str_eq(n, "1");
    teardown(&f);
}

/* --storage-root replaces the environment's roots; TIER_STORAGE_ROOT takes
 * several, ':'-separated. */
Test(tiering, storage_root_flag)
{
    fx f;
    char b[512], s[512], g[512], only[512];

    setup(&f, NULL);
    snprintf(b, sizeof(b), "%s/bronze", f.root);
    snprintf(s, sizeof(s), "%s/silver", f.root);
    snprintf(g, sizeof(g), "%s/gold", f.root);
    snprintf(only, sizeof(only), "%s/other", f.root);
    const char *same[][4] = {
        {"bronze", "0", "999", b}, {"silver", "1000", "1999", s}, {"gold", "2000", "99999", g}};
    tierd_stop(&f, SIGTERM);
    char *flag[] = {"--storage-root", only, NULL};
    tier_test_tierd_start(&f.td, flag);
    cr_assert_eq(set_levels(&f, same, 3), TIER_INVALID_ARGUMENT);
    cr_assert(strstr(E.message, "storage root") != NULL, "%s", E.message);
    tierd_stop(&f, SIGTERM);
    tier_test_tierd_setenv(&f.td, "TIER_STORAGE_ROOT=/nonexistent-root:%s", f.root);
    tierd_start(&f, NULL);
    cr_assert_eq(set_levels(&f, same, 3), TIER_OK, "%s", E.message);
    teardown(&f);
}

static tier_rpc_client *raw_client(fx *f)
{
    tier_rpc_client *rc;
    cr_assert_eq(tier_rpc_client_open(&rc, f->td.listen, NULL, NULL), TIER_OK);
    return rc;
}

/* One length-delimited field: tag, length (< 128), bytes. */
static size_t ld(uint8_t *out, unsigned field, const void *data, size_t len)
{
    cr_assert(len < 128);
    out[0] = (uint8_t)(field << 3 | 2);
    out[1] = (uint8_t)len;
    memcpy(out + 2, data, len);
    return len + 2;
}

/* protobuf-c would cut "ok.mp4\0../../etc/passwd" to "ok.mp4": the raw
 * bytes are refused instead, in every string field, nested ones too. */
Test(tiering, embedded_nul_refused)
{
    static const char name[] = "ok.mp4\0../../etc/passwd";
    uint8_t req[256], lvl[128];
    void *rep = NULL;
    size_t replen, n;
    tier_rpc_error err;
    fx f;

    setup(&f, NULL);
    file_in(&f, "bronze", "ok.mp4");
    tier_rpc_client *rc = raw_client(&f);
    n = ld(req, 1, name, sizeof(name) - 1);
    cr_assert_eq(tier_rpc_call_raw(rc, TIER_M_ADD_CONTENT, req, n, &rep, &replen, 5000, &err),
                 TIER_INVALID_ARGUMENT, "%s", err.message);
    free(rep);
    rep = NULL;
    char c[32];
    tier_test_sql1(f.my, "SELECT COUNT(*) FROM contents WHERE filename LIKE 'ok.mp4%'", c,
                   sizeof(c));
    cr_assert_str_eq(c, "0", "ok.mp4 was registered");
    /* Control characters and invalid UTF-8 in a file name. */
    file_in(&f, "bronze", "a\tb");
    cr_assert_eq(add(&f, "a\tb", 0, &E), TIER_INVALID_ARGUMENT);
    cr_assert_eq(add(&f, "\xff.mp4", 0, &E), TIER_INVALID_ARGUMENT);
    /* Nested: SetLevels { levels { name: "gold\0x" path: ... } }. */
    size_t m = ld(lvl, 1, "gold\0x", 6);
    m += ld(lvl + m, 4, "/tmp/x", 6);
    n = ld(req, 1, lvl, m);
    cr_assert_eq(tier_rpc_call_raw(rc, TIER_M_SET_LEVELS, req, n, &rep, &replen, 5000, &err),
                 TIER_INVALID_ARGUMENT, "%s", err.message);
    free(rep);
    rep = NULL;
    /* The same bytes without the NUL are served: the check is about the NUL. */
    n = ld(req, 1, "ok.mp4", 6);
    cr_assert_eq(tier_rpc_call_raw(rc, TIER_M_ADD_CONTENT, req, n, &rep, &replen, 5000, &err),
                 TIER_OK, "%s", err.message);
    free(rep);
    tier_rpc_client_close(rc);
    teardown(&f);
}

/* "tier.Tier/ListLevels\0junk" as a method name is not served as ListLevels. */
Test(tiering, method_name_with_nul)
{
    static const char method[] = TIER_M_LIST_LEVELS "\0junk";
    uint8_t env[128];
    nng_socket sock;
    nng_msg *msg;
    fx f;

    setup(&f, NULL);
    size_t n = ld(env, 1, method, sizeof(method) - 1);
    env[n++] = 3 << 3 | 1; /* request_id, fixed64 */
    memset(env + n, 0, 8);
    env[n] = 42;
    n += 8;
    cr_assert_eq(nng_req0_open(&sock), 0);
    nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 5000);
    cr_assert_eq(nng_dial(sock, f.td.listen, NULL, 0), 0);
    cr_assert_eq(nng_send(sock, env, n, 0), 0);
    cr_assert_eq(nng_recvmsg(sock, &msg, 0), 0);
    Tier__Rpc__Reply *r = tier__rpc__reply__unpack(NULL, nng_msg_len(msg), nng_msg_body(msg));
    cr_assert_not_null(r);
    cr_assert_eq((int)r->code, TIER_INVALID_ARGUMENT, "code %d: %s", (int)r->code, r->message);
    tier__rpc__reply__free_unpacked(r, NULL);
    nng_msg_free(msg);
    nng_close(sock);
    teardown(&f);
}

/* Found by fuzz/fuzz_path.c: a ".." that climbs out of a missing directory
 * back into existing ones must be resolved there, or a symlink (here to
 * /etc) or a file hides behind a name that looks like it is under a root. */
Test(validation, dotdot_after_a_missing_directory)
{
    char *root = tier_test_tmpdir(), link[700], in[800], out[TIER_PATH_MAX], f[800];
    cr_assert_not_null(root);
    snprintf(link, sizeof(link), "%s/to_etc", root);
    cr_assert_eq(symlink("/etc", link), 0);
    snprintf(in, sizeof(in), "%s/nope/../to_etc/tier", root);
    cr_assert_null(tier_path_canon(in, out, sizeof(out)));
    cr_assert_str_eq(out, "/etc/tier");
    cr_assert_not_null(tier_path_forbidden(out), "%s must be refused", out);
    snprintf(f, sizeof(f), "%s/file", root);
    cr_assert(tier_test_write_file(f, "x", 1));
    snprintf(in, sizeof(in), "%s/nope/../file", root);
    cr_assert_not_null(tier_path_canon(in, out, sizeof(out)), "a regular file: %s", out);
    tier_test_rmtree(root);
    free(root);
}

/* The checks themselves, without a tierd. */
Test(validation, path_canon)
{
    char *root = tier_test_tmpdir(), in[700], want[TIER_PATH_MAX + 8], out[TIER_PATH_MAX];
    cr_assert_not_null(root);
    char real[TIER_PATH_MAX];
    cr_assert_not_null(realpath(root, real));
    snprintf(in, sizeof(in), "%s//a/./b/../c/", root);
    snprintf(want, sizeof(want), "%s/a/c", real);
    cr_assert_null(tier_path_canon(in, out, sizeof(out)));
    cr_assert_str_eq(out, want);
    snprintf(in, sizeof(in), "%s/../%s", root, strrchr(root, '/') + 1);
    cr_assert_null(tier_path_canon(in, out, sizeof(out)));
    cr_assert_str_eq(out, real);
    cr_assert_null(tier_path_canon("/../..", out, sizeof(out)));
    cr_assert_str_eq(out, "/");
    cr_assert_not_null(tier_path_canon("rel/x", out, sizeof(out)));
    cr_assert_not_null(tier_path_canon("/tmp/\xc0\xaf", out, sizeof(out)), "overlong '/'");
    cr_assert_not_null(tier_path_canon("/tmp/a\nb", out, sizeof(out)));
    cr_assert_not_null(tier_path_forbidden("/"));
    cr_assert_not_null(tier_path_forbidden("/etc"));
    cr_assert_not_null(tier_path_forbidden("/proc/self"));
    cr_assert_null(tier_path_forbidden("/etcetera"));
    cr_assert(tier_path_under("/a/b", "/a"));
    cr_assert_not(tier_path_under("/a", "/a"));
    cr_assert_not(tier_path_under("/ab", "/a"));
    tier_test_rmtree(root);
    free(root);
}

Test(validation, utf8_and_names)
{
    cr_assert(tier_utf8_valid("h\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10));
    cr_assert_not(tier_utf8_valid("\xed\xa0\x80", 3), "surrogate");
    cr_assert_not(tier_utf8_valid("\xf4\x90\x80\x80", 4), "above U+10FFFF");
    cr_assert_not(tier_utf8_valid("\xe2\x82", 2), "truncated");
    cr_assert_not(tier_name_valid("a\x7f", 2));
    cr_assert(tier_name_valid("caf\xc3\xa9.mp4", 9));
}

Test(validation, wire_scan)
{
    uint8_t b[64];
    size_t n = ld(b, 1, "a\0b", 3);
    const char *f;
    cr_assert_not(tier_wire_strings_clean(&tier__add_content_request__descriptor, b, n, &f));
    cr_assert_str_eq(f, "filename");
    n = ld(b, 1, "ab", 2);
    b[n++] = 2 << 3; /* cid, varint */
    b[n++] = 7;
    cr_assert(tier_wire_strings_clean(&tier__add_content_request__descriptor, b, n, NULL));
    cr_assert_not(tier_wire_strings_clean(&tier__add_content_request__descriptor, b, n - 1, NULL),
                  "truncated");
}
