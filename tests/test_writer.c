/*
 * test_writer.c -- one writer per database and key prefix (tierd/writer.c,
 * store/tier_writer.h), against real tierd processes, Redis and MariaDB.
 *
 *   standby       a second tierd on the same db + prefix answers nothing
 *                 while the first serves; it takes over when the first
 *                 stops (at once) or crashes right after taking the lease
 *   kill -9       while a client reports views and a worker (played here
 *                 with libtier and rename(2)) completes jobs: the standby
 *                 answers within 5 s, and no acknowledged report or
 *                 completion is lost
 *   SIGSTOP       a writer paused past its ttl resumes after the standby
 *                 took over: it exits 3 and changes nothing
 *   store         the lease scripts and the MySQL fence, unit-level
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tier_client.h"
#include "tier_contents.h"
#include "tier_db.h"
#include "tier_testenv.h"
#include "tier_time.h"
#include "tier_writer.h"

#define NCONTENTS 40

typedef struct {
    tier_test_mysql m;
    char *root;
    char prefix[64];
    MYSQL *my;
    redisContext *rd;
} fx;

static int seq;

static void sql(fx *f, const char *q)
{
    cr_assert(mysql_query(f->my, q) == 0, "%s: %s", q, mysql_error(f->my));
    MYSQL_RES *r = mysql_store_result(f->my);
    if (r)
        mysql_free_result(r);
}

/* A database with contents 1..n on bronze (files in place), a key prefix. */
static void setup(fx *f, int n)
{
    char p[1024], q[256];

    memset(f, 0, sizeof(*f));
    f->root = tier_test_tmpdir();
    tier_test_mysql_env(&f->m);
    tier_test_db_create(&f->m, f->root);
    f->my = mysql_init(NULL);
    cr_assert(mysql_real_connect(f->my, f->m.host, f->m.user, f->m.password, f->m.db,
                                 (unsigned)f->m.port, NULL, 0) != NULL,
              "%s", mysql_error(f->my));
    for (int i = 1; i <= n; i++) {
        snprintf(p, sizeof(p), "%s/bronze/c%d.mp4", f->root, i);
        cr_assert(tier_test_write_file(p, "x", 1), "%s", p);
        snprintf(q, sizeof(q),
                 "INSERT INTO contents (cid, content_level, filename) VALUES (%d, 'bronze', "
                 "'c%d.mp4')",
                 i, i);
        sql(f, q);
    }
    char host[64];
    int port;
    tier_test_redis_env(host, sizeof(host), &port);
    f->rd = redisConnect(host, port);
    cr_assert(f->rd && !f->rd->err);
    snprintf(f->prefix, sizeof(f->prefix), "tw%d_%d:", (int)getpid(), seq++);
}

static void teardown(fx *f)
{
    mysql_close(f->my);
    redisFree(f->rd);
    tier_test_db_drop(&f->m);
    tier_test_rmtree(f->root);
    free(f->root);
}

/* A tierd of f's db and prefix logging to <root>/<name>/tierd.log. */
static void tierd_init(fx *f, tier_test_tierd *t, const char *name)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/%s", f->root, name);
    mkdir(dir, 0755);
    tier_test_tierd_init(t, dir, f->m.db, f->prefix);
    tier_test_tierd_setenv(t, "TIER_THREADS=4");
}

/* Starts it without waiting (a standby never answers); lease_ms: jobs'. */
static void spawn_lease(tier_test_tierd *t, const char *ttl_ms, const char *lease_ms)
{
    char *bin = tier_test_bin("tierd");
    char *argv[] = {bin,
                    "--listen",
                    t->listen,
                    "--push",
                    t->push,
                    "--writer-ttl-ms",
                    (char *)ttl_ms,
                    "--lease-ms",
                    (char *)lease_ms,
                    NULL};
    t->pid = tier_test_spawn(argv, t->envp, t->log);
    free(bin);
    cr_assert_gt(t->pid, 0);
}

static void spawn(tier_test_tierd *t, const char *ttl_ms)
{
    spawn_lease(t, ttl_ms, "30000");
}

static bool answers(const char *url, uint32_t timeout_ms)
{
    Tier__Rpc__HealthRequest hq = TIER__RPC__HEALTH_REQUEST__INIT;
    Tier__Rpc__HealthReply *hr = NULL;
    tier_client *c;
    tier_error err;
    cr_assert_eq(tier_client_open(&c, url), TIER_OK);
    tier_client_set_timeout(c, timeout_ms);
    bool ok = tier_health(c, &hq, &hr, &err) == TIER_OK;
    tier_free(hr);
    tier_client_close(c);
    return ok;
}

/* Milliseconds until t answers Health, or -1 after limit_ms. */
static int64_t wait_up(const tier_test_tierd *t, int64_t since, int64_t limit_ms)
{
    while (tier_mono_ms() - since < limit_ms) {
        if (answers(t->listen, 100))
            return tier_mono_ms() - since;
        usleep(20 * 1000);
    }
    return -1;
}

static bool log_has(const tier_test_tierd *t, const char *s)
{
    char *text = tier_test_slurp(t->log, NULL);
    bool yes = text != NULL && strstr(text, s) != NULL;
    free(text);
    return yes;
}

static void level_of(fx *f, int64_t cid, char *out, size_t len)
{
    char q[128];
    snprintf(q, sizeof(q), "SELECT content_level FROM contents WHERE cid = %lld", (long long)cid);
    tier_test_sql1(f->my, q, out, len);
}

static int report(tier_client *c, int64_t cid, int64_t count)
{
    Tier__ViewReport v = TIER__VIEW_REPORT__INIT, *list[1] = {&v};
    Tier__ReportViewsRequest req = TIER__REPORT_VIEWS_REQUEST__INIT;
    Tier__ReportViewsReply *rep = NULL;
    tier_error err;
    v.cid = cid;
    v.count = count;
    req.reports = list;
    req.n_reports = 1;
    int rv = tier_report_views(c, &req, &rep, &err);
    if (rv == TIER_OK && (rep->n_results != 1 || (int)rep->results[0]->code != TIER_OK))
        rv = rep->n_results == 1 ? (int)rep->results[0]->code : TIER_INTERNAL;
    tier_free(rep);
    return rv;
}

/* ------------------------------------------------------------ standby */

Test(writer, second_tierd_waits_without_listening)
{
    fx f;
    tier_test_tierd a, b, c;

    setup(&f, 2);
    tierd_init(&f, &a, "a");
    tierd_init(&f, &b, "b");
    tierd_init(&f, &c, "c");
    char *ttl[] = {"--writer-ttl-ms", "1000", NULL};
    tier_test_tierd_start(&a, ttl);
    spawn(&b, "1000");
    usleep(1500 * 1000);
    cr_assert(log_has(&b, "standby: waiting for the writer lease held by token"));
    cr_assert(!answers(b.listen, 300), "a standby must not answer");
    cr_assert_eq(tier_test_wait(b.pid, 0), -1, "the standby keeps waiting");

    /* The writer keeps serving, writes included (a job for cid 1). */
    tier_client *ca;
    cr_assert_eq(tier_client_open(&ca, a.listen), TIER_OK);
    tier_client_set_timeout(ca, 3000);
    cr_assert_eq(report(ca, 1, 1500), TIER_OK);
    tier_client_close(ca);

    /* A standby stops cleanly on SIGTERM. */
    cr_assert_eq(tier_test_tierd_stop(&b, SIGTERM, 5000), 0);

    /* A clean stop of the writer gives the lease back: no ttl to wait. */
    spawn(&c, "1000");
    usleep(300 * 1000);
    int64_t t0 = tier_mono_ms();
    cr_assert_eq(tier_test_tierd_stop(&a, SIGTERM, 10000), 0);
    int64_t up = wait_up(&c, t0, 5000);
    cr_assert(up >= 0, "the standby did not take over");
    printf("writer: takeover after a clean stop: %lld ms\n", (long long)up);
    cr_assert(log_has(&a, "writer: lease released"));
    tier_client *cc;
    cr_assert_eq(tier_client_open(&cc, c.listen), TIER_OK);
    tier_client_set_timeout(cc, 3000);
    Tier__GetJobRequest gq = TIER__GET_JOB_REQUEST__INIT;
    Tier__GetJobReply *gr;
    tier_error err;
    gq.cid = 1;
    cr_assert_eq(tier_get_job(cc, &gq, &gr, &err), TIER_OK, "the job of cid 1 is there");
    tier_free(gr);
    tier_client_close(cc);
    cr_assert_eq(tier_test_tierd_stop(&c, SIGTERM, 10000), 0);
    teardown(&f);
}

/* A writer that dies right after taking the lease (before loading or
 * listening): the standby takes over once the lease runs out. */
Test(writer, crash_after_acquire)
{
    fx f;
    tier_test_tierd a, b;

    setup(&f, 1);
    tierd_init(&f, &a, "a");
    tierd_init(&f, &b, "b");
    tier_test_tierd_setenv(&a, "TIER_CRASH=writer.after_acquire");
    spawn(&a, "1000");
    cr_assert_eq(tier_test_wait(a.pid, 10000), 86, "crash point hit");
    int64_t t0 = tier_mono_ms();
    spawn(&b, "1000");
    int64_t up = wait_up(&b, t0, 5000);
    cr_assert(up >= 0, "the standby did not take over");
    cr_assert_eq(tier_test_tierd_stop(&b, SIGTERM, 10000), 0);
    teardown(&f);
}

/* ------------------------------------------------------------ kill -9 */

/* A client of two tierds: calls go to the one that answered last; on an
 * error that may mean "gone" it tries the other, until limit. */
typedef struct {
    tier_client *c[2];
    int cur;
} duo;

static void duo_open(duo *d, const tier_test_tierd *a, const tier_test_tierd *b)
{
    cr_assert_eq(tier_client_open(&d->c[0], a->listen), TIER_OK);
    cr_assert_eq(tier_client_open(&d->c[1], b->listen), TIER_OK);
    tier_client_set_timeout(d->c[0], 700);
    tier_client_set_timeout(d->c[1], 700);
    d->cur = 0;
}

static void duo_close(duo *d)
{
    tier_client_close(d->c[0]);
    tier_client_close(d->c[1]);
}

static bool transient(int rv)
{
    return rv == TIER_UNAVAILABLE || rv == TIER_DEADLINE_EXCEEDED || rv == TIER_CANCELLED ||
           rv == TIER_ABORTED;
}

typedef struct {
    fx *f;
    const tier_test_tierd *a, *b;
    atomic_int reports_acked; /* reports answered OK */
    atomic_int completions;   /* completions answered OK */
    atomic_bool reports_done, stop_worker;
    int64_t last_count[NCONTENTS + 1]; /* last acknowledged count per cid */
    struct {
        int64_t cid;
        char level[33];
    } done[4 * NCONTENTS];
    int ndone;
    int retries;
} run;

/* Every cid gets 1500 (silver) then 2500 (gold); each report is sent
 * until one tierd acknowledges it, as a client would. */
static void *reporter(void *arg)
{
    run *r = arg;
    duo d;
    duo_open(&d, r->a, r->b);
    for (int round = 0; round < 2; round++) {
        for (int cid = 1; cid <= NCONTENTS; cid++) {
            int64_t count = round == 0 ? 1500 : 2500;
            int rv;
            for (int tries = 0; (rv = report(d.c[d.cur], cid, count)) != TIER_OK; tries++) {
                cr_assert(transient(rv) && tries < 200, "report %d: %s", cid, tier_status_name(rv));
                d.cur = 1 - d.cur;
                usleep(20 * 1000);
            }
            r->last_count[cid] = count;
            atomic_fetch_add(&r->reports_acked, 1);
            usleep(15 * 1000);
        }
    }
    atomic_store(&r->reports_done, true);
    duo_close(&d);
    return NULL;
}

static bool move_from(const char *dir, const char *dst, const char *name)
{
    char a[8192], b[8192];
    snprintf(a, sizeof(a), "%s%s", dir, name);
    snprintf(b, sizeof(b), "%s%s", dst, name);
    return rename(a, b) == 0;
}

/* Puts the file of job j into its dst_dir, wherever it is. */
static void move_job_file(const Tier__Job *j)
{
    char p[8192];
    struct stat sb;
    snprintf(p, sizeof(p), "%s%s", j->dst_dir, j->filename);
    if (stat(p, &sb) == 0 || move_from(j->src_dir, j->dst_dir, j->filename))
        return;
    for (size_t i = 0; i < j->n_also_dirs; i++)
        if (move_from(j->also_dirs[i], j->dst_dir, j->filename))
            return;
    cr_assert_fail("file %s of cid %lld is nowhere", j->filename, (long long)j->cid);
}

/* Claims one waiting job: OK with *job (free with tier_free(*keep)). */
static int claim_one(duo *d, Tier__ClaimJobReply **keep, Tier__Job **job)
{
    Tier__ListJobsRequest lq = TIER__LIST_JOBS_REQUEST__INIT;
    Tier__ListJobsReply *lr = NULL;
    tier_error err;
    int rv;

    lq.status = "update";
    lq.limit = 1;
    if ((rv = tier_list_jobs(d->c[d->cur], &lq, &lr, &err)) != TIER_OK)
        return rv;
    if (lr->n_jobs == 0) {
        tier_free(lr);
        return TIER_NOT_FOUND;
    }
    Tier__ClaimJobRequest cq = TIER__CLAIM_JOB_REQUEST__INIT;
    int64_t cids[1] = {lr->jobs[0]->cid};
    tier_free(lr);
    cq.worker_id = "w1";
    cq.cids = cids;
    cq.n_cids = 1;
    if ((rv = tier_claim_job(d->c[d->cur], &cq, keep, &err)) != TIER_OK)
        return rv;
    if ((int)(*keep)->results[0]->code != TIER_OK) {
        tier_free(*keep);
        return TIER_ALREADY_EXISTS;
    }
    *job = (*keep)->results[0]->job;
    return TIER_OK;
}

static int complete(tier_client *c, int64_t cid, uint64_t fence)
{
    Tier__CompleteJobRequest req = TIER__COMPLETE_JOB_REQUEST__INIT;
    Tier__JobRef ref = TIER__JOB_REF__INIT, *refs[1] = {&ref};
    Tier__CompleteJobReply *rep = NULL;
    tier_error err;
    ref.cid = cid;
    ref.fence = fence;
    req.worker_id = "w1";
    req.jobs = refs;
    req.n_jobs = 1;
    int rv = tier_complete_job(c, &req, &rep, &err);
    if (rv == TIER_OK)
        rv = rep->results[0]->code;
    tier_free(rep);
    return rv;
}

static void *worker(void *arg)
{
    run *r = arg;
    duo d;
    duo_open(&d, r->a, r->b);
    while (!atomic_load(&r->stop_worker)) {
        Tier__ClaimJobReply *keep;
        Tier__Job *j;
        int rv = claim_one(&d, &keep, &j);
        if (rv != TIER_OK) {
            if (transient(rv))
                d.cur = 1 - d.cur;
            usleep(20 * 1000);
            continue;
        }
        move_job_file(j);
        /* Sent until a tierd answers: a retry of a done or committed job
         * is OK again (store/tier_jobs.c, DONE).  FAILED_PRECONDITION: the
         * lease ran out during the takeover (a machine under load can take
         * longer than the 2 s job lease); like a real worker, drop the job:
         * it is claimed again and the move finds the file already there. */
        for (int tries = 0; (rv = complete(d.c[d.cur], j->cid, j->fence)) != TIER_OK; tries++) {
            if (rv == TIER_FAILED_PRECONDITION)
                break;
            cr_assert(transient(rv) && tries < 200, "complete %lld: %s", (long long)j->cid,
                      tier_status_name(rv));
            d.cur = 1 - d.cur;
            r->retries++;
            usleep(20 * 1000);
        }
        if (rv != TIER_OK) {
            tier_free(keep);
            continue;
        }
        cr_assert_lt(r->ndone, 4 * NCONTENTS);
        r->done[r->ndone].cid = j->cid;
        snprintf(r->done[r->ndone].level, sizeof(r->done[0].level), "%s", j->target);
        r->ndone++;
        atomic_fetch_add(&r->completions, 1);
        tier_free(keep);
    }
    duo_close(&d);
    return NULL;
}

static int jobs_left(const tier_test_tierd *t)
{
    Tier__ListJobsRequest lq = TIER__LIST_JOBS_REQUEST__INIT;
    Tier__ListJobsReply *lr = NULL;
    tier_client *c;
    tier_error err;
    cr_assert_eq(tier_client_open(&c, t->listen), TIER_OK);
    tier_client_set_timeout(c, 3000);
    cr_assert_eq(tier_list_jobs(c, &lq, &lr, &err), TIER_OK, "%s", err.message);
    int n = (int)lr->n_jobs;
    tier_free(lr);
    tier_client_close(c);
    return n;
}

Test(writer, standby_takes_over_after_kill9_losing_nothing, .timeout = 120)
{
    fx f;
    tier_test_tierd a, b;
    static run r;
    pthread_t rt, wt;

    setup(&f, NCONTENTS);
    tierd_init(&f, &a, "a");
    tierd_init(&f, &b, "b");
    /* The default ttl (3000 ms); short job leases, so a claim whose answer
     * died with the writer is soon given to the worker again. */
    spawn_lease(&a, "3000", "2000");
    cr_assert(wait_up(&a, tier_mono_ms(), 10000) >= 0, "tierd a did not start");
    spawn_lease(&b, "3000", "2000");
    memset(&r, 0, sizeof(r));
    r.f = &f, r.a = &a, r.b = &b;
    cr_assert_eq(pthread_create(&rt, NULL, reporter, &r), 0);
    cr_assert_eq(pthread_create(&wt, NULL, worker, &r), 0);

    /* Kill the writer in the middle of the traffic. */
    int64_t t0 = tier_mono_ms();
    while ((atomic_load(&r.reports_acked) < NCONTENTS / 2 || atomic_load(&r.completions) < 3) &&
           tier_mono_ms() - t0 < 30000)
        usleep(5 * 1000);
    cr_assert(atomic_load(&r.completions) >= 3, "the worker completed nothing on the writer");
    int acked_before = atomic_load(&r.reports_acked), done_before = atomic_load(&r.completions);
    int64_t killed = tier_mono_ms();
    cr_assert_eq(tier_test_tierd_stop(&a, SIGKILL, 5000), 128 + SIGKILL);
    int64_t up = wait_up(&b, killed, 10000);
    printf("writer: takeover after kill -9: %lld ms (%d reports, %d completions acknowledged "
           "before)\n",
           (long long)up, acked_before, done_before);
    cr_assert(up >= 0 && up < 5000, "the standby answered after %lld ms", (long long)up);

    pthread_join(rt, NULL);
    for (int i = 0; i < 600 && jobs_left(&b) > 0; i++)
        usleep(50 * 1000);
    cr_assert_eq(jobs_left(&b), 0, "jobs left behind");
    atomic_store(&r.stop_worker, true);
    pthread_join(wt, NULL);

    /* Every acknowledged report is reflected: the last count's level. */
    for (int cid = 1; cid <= NCONTENTS; cid++) {
        char lvl[64], p[1024];
        struct stat sb;
        cr_assert_eq(r.last_count[cid], 2500);
        level_of(&f, cid, lvl, sizeof(lvl));
        cr_assert_str_eq(lvl, "gold", "cid %d", cid);
        snprintf(p, sizeof(p), "%s/gold/c%d.mp4", f.root, cid);
        cr_assert_eq(stat(p, &sb), 0, "%s", p);
    }
    /* Every acknowledged completion is committed. */
    for (int i = 0; i < r.ndone; i++) {
        char q[256], n[32];
        snprintf(q, sizeof(q),
                 "SELECT COUNT(*) FROM update_history WHERE cid = %lld AND new_content_level = "
                 "'%s'",
                 (long long)r.done[i].cid, r.done[i].level);
        tier_test_sql1(f.my, q, n, sizeof(n));
        cr_assert_eq(atoi(n), 1, "completion %lld -> %s", (long long)r.done[i].cid,
                     r.done[i].level);
    }
    printf("writer: %d completions (%d retried on the standby)\n", r.ndone, r.retries);
    cr_assert_eq(tier_test_tierd_stop(&b, SIGTERM, 10000), 0);
    teardown(&f);
}

/* ------------------------------------------------------------ SIGSTOP */

typedef struct {
    const char *url;
    int64_t cid;
    uint64_t fence;
    int rv;
} late_call;

static void *late_complete(void *arg)
{
    late_call *lc = arg;
    tier_client *c;
    cr_assert_eq(tier_client_open(&c, lc->url), TIER_OK);
    tier_client_set_timeout(c, 4000);
    lc->rv = complete(c, lc->cid, lc->fence);
    tier_client_close(c);
    return NULL;
}

static void job_field(fx *f, int64_t cid, const char *field, char *out, size_t len)
{
    redisReply *r = redisCommand(f->rd, "HGET %sjob:%lld %s", f->prefix, (long long)cid, field);
    cr_assert(r != NULL);
    snprintf(out, len, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
}

Test(writer, paused_writer_resumes_fenced, .timeout = 60)
{
    fx f;
    tier_test_tierd a, b;
    tier_client *ca, *cb;
    char buf[64];

    setup(&f, 2);
    tierd_init(&f, &a, "a");
    tierd_init(&f, &b, "b");
    char *ttl[] = {"--writer-ttl-ms", "1000", NULL};
    tier_test_tierd_start(&a, ttl);
    spawn(&b, "1000");
    cr_assert_eq(tier_client_open(&ca, a.listen), TIER_OK);
    tier_client_set_timeout(ca, 3000);

    /* A job for cid 2, claimed by the worker through the writer. */
    cr_assert_eq(report(ca, 2, 1500), TIER_OK);
    duo d = {{ca, ca}, 0};
    Tier__ClaimJobReply *keep;
    Tier__Job *j;
    cr_assert_eq(claim_one(&d, &keep, &j), TIER_OK);
    cr_assert_eq(j->cid, 2);
    uint64_t fence = j->fence;
    move_job_file(j);
    tier_free(keep);

    /* Pause the writer past its ttl: the standby takes over. */
    int64_t t0 = tier_mono_ms();
    kill(a.pid, SIGSTOP);
    int64_t up = wait_up(&b, t0, 5000);
    cr_assert(up >= 0, "the standby did not take over");
    printf("writer: takeover from a paused writer: %lld ms\n", (long long)up);

    /* A completion reaches the paused one; then it resumes. */
    late_call lc = {a.listen, 2, fence, -1};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, late_complete, &lc), 0);
    usleep(300 * 1000);
    kill(a.pid, SIGCONT);
    int st = tier_test_wait(a.pid, 5000);
    pthread_join(th, NULL);
    cr_assert_eq(st, 3, "the old writer must step down with status 3, got %d", st);
    a.pid = 0;
    cr_assert_neq(lc.rv, TIER_OK, "the old writer acknowledged a completion");
    cr_assert(log_has(&a, "not the writer any more"));

    /* It changed nothing: the job is still claimed, MySQL unchanged. */
    job_field(&f, 2, "status", buf, sizeof(buf));
    cr_assert_str_eq(buf, "claimed");
    job_field(&f, 2, "fence", buf, sizeof(buf));
    cr_assert_eq(strtoull(buf, NULL, 10), fence);
    level_of(&f, 2, buf, sizeof(buf));
    cr_assert_str_eq(buf, "bronze");

    /* The new writer completes it. */
    cr_assert_eq(tier_client_open(&cb, b.listen), TIER_OK);
    tier_client_set_timeout(cb, 3000);
    cr_assert_eq(complete(cb, 2, fence), TIER_OK);
    level_of(&f, 2, buf, sizeof(buf));
    cr_assert_str_eq(buf, "silver");
    tier_client_close(ca);
    tier_client_close(cb);
    cr_assert_eq(tier_test_tierd_stop(&b, SIGTERM, 10000), 0);
    teardown(&f);
}

/* ------------------------------------------------------------ store */

static void db_open(fx *f, tier_db **db, long long token)
{
    tier_db_config c;
    char err[512];
    memset(&c, 0, sizeof(c));
    snprintf(c.host, sizeof(c.host), "%s", f->m.host);
    c.port = f->m.port;
    snprintf(c.user, sizeof(c.user), "%s", f->m.user);
    snprintf(c.password, sizeof(c.password), "%s", f->m.password);
    snprintf(c.db, sizeof(c.db), "%s", f->m.db);
    c.writer_token = token;
    cr_assert_eq(tier_db_open(db, &c, err, sizeof(err)), TIER_OK, "%s", err);
}

Test(writer, stale_token_commit_is_refused)
{
    fx f;
    tier_db *admin, *old, *cur;
    const int64_t cids[1] = {1};
    const char *silver[1] = {"silver"};
    char buf[64];
    int64_t tok;

    setup(&f, 1);
    db_open(&f, &admin, 0);
    db_open(&f, &old, 5);
    db_open(&f, &cur, 7);
    cr_assert_eq(tier_writer_fence_raise(admin, 5), TIER_WRITER_HELD);
    cr_assert_eq(tier_writer_fence_raise(admin, 7), TIER_WRITER_HELD);
    cr_assert_eq(tier_writer_fence_raise(admin, 6), TIER_WRITER_LOST, "the fence only grows");
    cr_assert_eq(tier_writer_fence_read(admin, &tok), TIER_OK);
    cr_assert_eq(tok, 7);

    cr_assert_eq(tier_contents_commit(old, cids, silver, NULL, 1), TIER_ABORTED);
    cr_assert_eq(tier_contents_insert(old, 9, "bronze", "n.mp4", 5, 3), TIER_ABORTED);
    tier_level_row lv = {"bronze", 0, 10, "/x/"};
    cr_assert_eq(tier_contents_set_levels(old, &lv, 1, NULL, 0), TIER_ABORTED);
    level_of(&f, 1, buf, sizeof(buf));
    cr_assert_str_eq(buf, "bronze");
    tier_test_sql1(f.my, "SELECT COUNT(*) FROM contents", buf, sizeof(buf));
    cr_assert_str_eq(buf, "1");
    tier_test_sql1(f.my, "SELECT COUNT(*) FROM level", buf, sizeof(buf));
    cr_assert_str_eq(buf, "3");

    cr_assert_eq(tier_contents_commit(cur, cids, silver, NULL, 1), TIER_OK);
    level_of(&f, 1, buf, sizeof(buf));
    cr_assert_str_eq(buf, "silver");
    tier_db_close(admin);
    tier_db_close(old);
    tier_db_close(cur);
    teardown(&f);
}

/* A writer cut off mid-transaction (its host lost power: the server keeps
 * the connection, and its lock on the fence row, for hours): the next
 * writer kills that connection before it raises the fence, instead of
 * waiting for the lock forever (sql/010). */
Test(writer, a_cut_off_writers_lock_is_taken_back)
{
    fx f;
    tier_db *admin, *old, *next;
    char buf[64];

    setup(&f, 1);
    db_open(&f, &admin, 0);
    cr_assert_eq(tier_writer_fence_raise(admin, 5), TIER_WRITER_HELD);
    db_open(&f, &old, 5); /* records itself in writer_conn */
    tier_test_sql1(f.my, "SELECT COUNT(*) FROM writer_conn WHERE fence_id = 1 AND token = 5", buf,
                   sizeof(buf));
    cr_assert_str_eq(buf, "1");
    /* Its write transaction, open, holding the fence row (as every write
     * transaction does first) -- and then nothing more from it. */
    cr_assert_eq(tier_db_exec(old, "BEGIN"), TIER_OK);
    cr_assert_eq(tier_writer_fence_check(old), TIER_OK);
    db_open(&f, &next, 0);
    tier_db_exec(next, "SET SESSION innodb_lock_wait_timeout = 1");
    cr_assert_eq(tier_writer_fence_raise(next, 6), TIER_WRITER_ERROR, "blocked by the lock");
    cr_assert_eq(tier_writer_conns_kill(next, 6), 1);
    cr_assert_eq(tier_writer_fence_raise(next, 6), TIER_WRITER_HELD);
    tier_test_sql1(f.my, "SELECT COUNT(*) FROM writer_conn WHERE fence_id = 1 AND token < 6", buf,
                   sizeof(buf));
    cr_assert_str_eq(buf, "0", "the old rows are forgotten");
    /* Nothing is left to kill, and the admin connection lives. */
    cr_assert_eq(tier_writer_conns_kill(next, 7), 0);
    cr_assert_eq(tier_db_ping(admin, buf, sizeof(buf)), TIER_OK);
    tier_db_close(admin);
    tier_db_close(old);
    tier_db_close(next);
    teardown(&f);
}

Test(writer, lease_scripts)
{
    fx f;
    tier_kv *kv;
    tier_kv_config kc;
    char err[512];
    int64_t tok, other;

    setup(&f, 0);
    tier_kv_config_from_env(&kc);
    cr_assert_eq(tier_kv_open(&kv, &kc, err, sizeof(err)), TIER_OK, "%s", err);
    /* Tokens start above the MySQL fence, and keep growing. */
    cr_assert_eq(tier_writer_acquire(kv, f.prefix, 2000, 100, &tok), TIER_WRITER_HELD);
    cr_assert_eq(tok, 101);
    cr_assert_eq(tier_writer_acquire(kv, f.prefix, 2000, 0, &other), TIER_WRITER_TAKEN);
    cr_assert_eq(other, 101);
    cr_assert_eq(tier_writer_renew(kv, f.prefix, tok, 2000), TIER_WRITER_HELD);
    cr_assert_eq(tier_writer_renew(kv, f.prefix, 999, 2000), TIER_WRITER_LOST);
    /* Lost from Redis (a restart): the holder sets it again. */
    redisReply *r = redisCommand(f.rd, "DEL %swriter", f.prefix);
    freeReplyObject(r);
    cr_assert_eq(tier_writer_renew(kv, f.prefix, tok, 2000), TIER_WRITER_HELD);
    cr_assert_eq(tier_writer_release(kv, f.prefix, 999), TIER_OK);
    cr_assert_eq(tier_writer_acquire(kv, f.prefix, 2000, 0, &other), TIER_WRITER_TAKEN,
                 "released by its holder only");
    cr_assert_eq(tier_writer_release(kv, f.prefix, tok), TIER_OK);
    cr_assert_eq(tier_writer_acquire(kv, f.prefix, 2000, 0, &other), TIER_WRITER_HELD);
    cr_assert_eq(other, 102);
    tier_kv_close(kv);
    teardown(&f);
}
