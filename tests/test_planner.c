/*
 * test_planner.c -- the tiering policy through a real tierd (issue 10):
 * versioned policies in MySQL, durable view increments, the planner moving
 * files through real tier-worker processes under a window policy (hot
 * contents up, idle ones down, capacity, budgets), and dry runs that change
 * nothing.  Real Redis and MariaDB, real files.  The rules themselves, case
 * by case, are tested on the pure code in test_policy.c.
 */
#include <criterion/criterion.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tier_client.h"
#include "tier_methods.h"
#include "tier_rpc.h"
#include "tier_testenv.h"

typedef struct {
    tier_test_mysql m;
    char *root;
    tier_test_tierd td;
    tier_rpc_client *rpc;
    tier_client *c;
    MYSQL *my;
    pid_t worker;
} fx;

static tier_error E;

TestSuite(planner, .fini = tier_test_kill_children, .timeout = 240);

/* ---------------------------------------------------------- set-up */

static void tierd_start(fx *f)
{
    tier_test_tierd_start(&f->td, NULL);
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
    tier_test_tierd_init(&f->td, f->root, f->m.db, NULL);
    tier_test_tierd_setenv(&f->td, "TIER_STORAGE_ROOT=%s", f->root);
    tierd_start(f);
    cr_assert_eq(tier_client_open(&f->c, f->td.listen), TIER_OK);
    tier_client_set_timeout(f->c, 10000);
    cr_assert_eq(tier_rpc_client_open(&f->rpc, f->td.listen, NULL, NULL), TIER_OK);
}

static void teardown(fx *f)
{
    if (f->worker > 0) {
        kill(f->worker, SIGTERM);
        tier_test_wait(f->worker, 20000);
    }
    tier_test_tierd_stop(&f->td, SIGTERM, 15000);
    tier_rpc_client_close(f->rpc);
    tier_client_close(f->c);
    mysql_close(f->my);
    tier_test_db_drop(&f->m);
    tier_test_rmtree(f->root);
    free(f->root);
}

static void worker_start(fx *f)
{
    char dirs[3200], log[1100];
    snprintf(dirs, sizeof(dirs), "%s/bronze,%s/silver,%s/gold", f->root, f->root, f->root);
    snprintf(log, sizeof(log), "%s/worker.log", f->root);
    f->worker = tier_test_worker_start(&f->td, "w1", dirs, log);
}

/* A bronze file of `size` bytes, added through AddContent; returns its cid. */
static int64_t add(fx *f, const char *name, size_t size)
{
    Tier__AddContentRequest req = TIER__ADD_CONTENT_REQUEST__INIT;
    Tier__AddContentReply *rep = NULL;
    char p[1200], *buf = calloc(1, size + 1);
    int64_t cid;

    snprintf(p, sizeof(p), "%s/bronze/%s", f->root, name);
    cr_assert(tier_test_write_file(p, buf, size));
    free(buf);
    req.filename = (char *)name;
    cr_assert_eq(tier_add_content(f->c, &req, &rep, &E), TIER_OK, "%s", E.message);
    cid = rep->content->cid;
    tier_free(rep);
    return cid;
}

/* ---------------------------------------------------------- calls */

#define CALL(f, method, req, desc, rep)                                                            \
    tier_rpc_call((f)->rpc, method, &(req)->base, &(desc), (ProtobufCMessage **)(rep), 10000, &E)

static Tier__Policy *get_policy(fx *f)
{
    Tier__GetPolicyRequest req = TIER__GET_POLICY_REQUEST__INIT;
    Tier__GetPolicyReply *rep = NULL;
    cr_assert_eq(CALL(f, TIER_M_GET_POLICY, &req, tier__get_policy_reply__descriptor, &rep),
                 TIER_OK, "%s", E.message);
    cr_assert_not_null(rep->policy);
    Tier__Policy *p = rep->policy;
    rep->policy = NULL;
    tier_free(rep);
    return p;
}

static int set_policy(fx *f, Tier__Policy *p, bool dry, Tier__SetPolicyReply **rep)
{
    Tier__SetPolicyRequest req = TIER__SET_POLICY_REQUEST__INIT;
    Tier__SetPolicyReply *r = NULL;
    int rv;
    req.policy = p;
    req.dry_run = dry;
    rv = CALL(f, TIER_M_SET_POLICY, &req, tier__set_policy_reply__descriptor, &r);
    if (rep != NULL)
        *rep = r;
    else
        tier_free(r);
    return rv;
}

static Tier__Plan *plan(fx *f, Tier__Policy *p)
{
    Tier__PlanMovesRequest req = TIER__PLAN_MOVES_REQUEST__INIT;
    Tier__Plan *rep = NULL;
    req.policy = p;
    req.limit = 1000;
    cr_assert_eq(CALL(f, TIER_M_PLAN_MOVES, &req, tier__plan__descriptor, &rep), TIER_OK, "%s",
                 E.message);
    return rep;
}

/* A window policy: 1 h window of 1-minute buckets, silver from 5 views,
 * gold from 10, planned every second, no dwell. */
typedef struct {
    Tier__Policy p;
    Tier__LevelRule rules[3], *rp[3];
    Tier__MoveBudget budget, *bp[1];
} window_policy;

static Tier__Policy *window(window_policy *w, int64_t gold_capacity)
{
    static const char *names[] = {"bronze", "silver", "gold"};
    static const int64_t mins[] = {0, 5, 10};

    tier__policy__init(&w->p);
    w->p.mode = "window";
    w->p.window_s = 3600;
    w->p.bucket_s = 60;
    w->p.hysteresis_pct = 20;
    w->p.plan_interval_s = 1;
    w->p.max_inflight = 100;
    for (int i = 0; i < 3; i++) {
        tier__level_rule__init(&w->rules[i]);
        w->rules[i].level = (char *)names[i];
        w->rules[i].min_views = mins[i];
        w->rules[i].demote_below = -1;
        w->rp[i] = &w->rules[i];
    }
    w->rules[2].capacity_bytes = gold_capacity;
    w->p.levels = w->rp;
    w->p.n_levels = 3;
    return &w->p;
}

/* Reports views (an increment) or count (absolute) for cid; returns the
 * item's result code and fills *res when given. */
static int report(fx *f, int64_t cid, int64_t count, int64_t views, Tier__ViewResult *res)
{
    Tier__ReportViewsRequest req = TIER__REPORT_VIEWS_REQUEST__INIT;
    Tier__ViewReport r = TIER__VIEW_REPORT__INIT, *rp = &r;
    Tier__ReportViewsReply *rep = NULL;
    int code;
    r.cid = cid;
    r.count = count;
    r.views = views;
    req.reports = &rp;
    req.n_reports = 1;
    cr_assert_eq(tier_report_views(f->c, &req, &rep, &E), TIER_OK, "%s", E.message);
    cr_assert_eq(rep->n_results, 1);
    code = rep->results[0]->code;
    if (res != NULL) {
        *res = *rep->results[0];
        res->target = strdup(res->target);
        res->status = strdup(res->status);
    }
    tier_free(rep);
    return code;
}

static char *level_of(fx *f, int64_t cid, char *buf, size_t len)
{
    char q[128];
    snprintf(q, sizeof(q), "SELECT content_level FROM contents WHERE cid = %lld", (long long)cid);
    tier_test_sql1(f->my, q, buf, len);
    return buf;
}

/* Waits up to ms for cid to be on level in MySQL (and its file there). */
static bool wait_level(fx *f, int64_t cid, const char *level, int ms)
{
    char got[64];
    for (int i = 0; i < ms / 100; i++) {
        if (strcmp(level_of(f, cid, got, sizeof(got)), level) == 0)
            return true;
        usleep(100 * 1000);
    }
    return false;
}

static bool file_in(fx *f, const char *level, const char *name)
{
    char p[1200];
    struct stat sb;
    snprintf(p, sizeof(p), "%s/%s/%s", f->root, level, name);
    return stat(p, &sb) == 0;
}

/* ---------------------------------------------------------- tests */

/* Version 0 is the seed policy; every SetPolicy is a new version in MySQL
 * that survives a restart; a policy is validated whole, naming the field. */
Test(planner, versions_and_validation)
{
    fx f;
    window_policy w;
    Tier__Policy *p;
    Tier__SetPolicyReply *rep;
    char n[32];

    setup(&f);
    p = get_policy(&f);
    cr_expect_eq(p->version, 0);
    cr_expect_str_eq(p->mode, "seed");
    tier_free(p);

    window(&w, 0)->window_s = 30;
    cr_expect_eq(set_policy(&f, &w.p, false, NULL), TIER_INVALID_ARGUMENT);
    cr_expect(strstr(E.message, "window_s") != NULL, "%s", E.message);
    window(&w, 0);
    w.rules[1].level = "platinum";
    cr_expect_eq(set_policy(&f, &w.p, false, NULL), TIER_INVALID_ARGUMENT);
    cr_expect(strstr(E.message, "platinum") != NULL, "%s", E.message);
    window(&w, 0);
    w.rules[2].min_views = 3; /* below silver's 5 */
    cr_expect_eq(set_policy(&f, &w.p, false, NULL), TIER_INVALID_ARGUMENT);
    Tier__Policy seed = TIER__POLICY__INIT;
    seed.mode = "seed";
    seed.dwell_s = 60;
    cr_expect_eq(set_policy(&f, &seed, false, NULL), TIER_INVALID_ARGUMENT);
    cr_expect(strstr(E.message, "mode window") != NULL, "%s", E.message);
    tier_test_sql1(f.my, "SELECT COUNT(*) FROM tier_policy", n, sizeof(n));
    cr_expect_str_eq(n, "0", "a refused policy was stored");

    cr_assert_eq(set_policy(&f, window(&w, 12345), false, &rep), TIER_OK, "%s", E.message);
    cr_expect_eq(rep->policy->version, 1);
    cr_expect_str_eq(rep->policy->set_by, "anonymous");
    tier_free(rep);
    tier_test_tierd_stop(&f.td, SIGKILL, 10000);
    tierd_start(&f);
    p = get_policy(&f);
    cr_expect_eq(p->version, 1);
    cr_expect_str_eq(p->mode, "window");
    cr_expect_eq(p->window_s, 3600);
    cr_expect_eq(p->n_levels, 3);
    cr_expect_eq(p->levels[2]->capacity_bytes, 12345);
    tier_free(p);
    seed.dwell_s = 0;
    cr_assert_eq(set_policy(&f, &seed, false, &rep), TIER_OK, "%s", E.message);
    cr_expect_eq(rep->policy->version, 2);
    tier_free(rep);
    teardown(&f);
}

/* An acknowledged increment survives kill -9; bad report forms are refused
 * per item. */
Test(planner, increments_are_durable)
{
    fx f;
    Tier__ViewResult r;
    int64_t cid;

    setup(&f);
    cid = add(&f, "inc.bin", 10);
    cr_assert_eq(report(&f, cid, 0, 5, &r), TIER_OK);
    cr_expect_eq(r.count, 5);
    cr_assert_eq(report(&f, cid, 0, 3, &r), TIER_OK);
    cr_expect_eq(r.count, 8);
    tier_test_tierd_stop(&f.td, SIGKILL, 10000);
    tierd_start(&f);
    cr_assert_eq(report(&f, cid, 0, 1, &r), TIER_OK);
    cr_expect_eq(r.count, 9, "an acknowledged increment was lost: %lld", (long long)r.count);
    cr_expect_eq(report(&f, cid, 4, 1, NULL), TIER_INVALID_ARGUMENT);
    cr_expect_eq(report(&f, cid, 0, -1, NULL), TIER_INVALID_ARGUMENT);
    cr_expect_eq(report(&f, cid, 0, (int64_t)1 << 41, NULL), TIER_INVALID_ARGUMENT);
    cr_expect_eq(report(&f, 999999, 0, 1, NULL), TIER_NOT_FOUND);
    teardown(&f);
}

/* Under a window policy a hot content goes up by the planner (not by the
 * report), and back down once idle. */
Test(planner, window_moves_hot_up_and_idle_down)
{
    fx f;
    window_policy w;
    Tier__ViewResult r;
    int64_t hot, cold;
    char lv[64];

    setup(&f);
    hot = add(&f, "hot.bin", 100);
    cold = add(&f, "cold.bin", 100);
    cr_assert_eq(set_policy(&f, window(&w, 0), false, NULL), TIER_OK, "%s", E.message);
    cr_assert_eq(report(&f, hot, 0, 12, &r), TIER_OK);
    cr_expect_str_eq(r.target, "gold");
    cr_expect_str_eq(r.status, "planned");
    cr_assert_eq(report(&f, cold, 0, 0, &r), TIER_OK); /* a baseline count: no views */
    cr_expect_str_eq(r.status, "done");
    worker_start(&f);
    cr_assert(wait_level(&f, hot, "gold", 20000), "hot content not promoted: %s",
              level_of(&f, hot, lv, sizeof(lv)));
    cr_expect(file_in(&f, "gold", "hot.bin"));
    cr_expect_str_eq(level_of(&f, cold, lv, sizeof(lv)), "bronze");

    /* Idle for 2 s: back to the bottom level (rule "idle"). */
    window(&w, 0)->demote_after_s = 2;
    cr_assert_eq(set_policy(&f, &w.p, false, NULL), TIER_OK, "%s", E.message);
    cr_assert(wait_level(&f, hot, "bronze", 20000), "idle content not demoted: %s",
              level_of(&f, hot, lv, sizeof(lv)));
    cr_expect(file_in(&f, "bronze", "hot.bin"));
    teardown(&f);
}

/* After the switch to a window policy nothing is demoted for a low score
 * until a whole window has been counted (views before the switch are
 * unknown), but promotions start at once; the dry run of the switch says
 * the same.  (Hysteresis, idle and dwell rules case by case: test_policy.c.) */
Test(planner, switching_to_a_window_demotes_nothing_at_once)
{
    fx f;
    window_policy w;
    Tier__SetPolicyReply *rep;
    Tier__Plan *pl;
    Tier__Policy *p;
    int64_t cid, gold;

    setup(&f);
    cid = add(&f, "h.bin", 100);
    gold = add(&f, "g.bin", 100);
    cr_assert_eq(report(&f, gold, 2500, 0, NULL), TIER_OK); /* seed: to gold */
    worker_start(&f);
    cr_assert(wait_level(&f, gold, "gold", 20000));
    cr_assert_eq(set_policy(&f, window(&w, 0), true, &rep), TIER_OK, "%s", E.message);
    cr_expect_eq(rep->plan->total_moves, 0, "the dry run of the switch demotes");
    tier_free(rep);
    cr_assert_eq(set_policy(&f, window(&w, 0), false, NULL), TIER_OK, "%s", E.message);
    p = get_policy(&f);
    cr_expect_gt(p->counting_since_ms, 0);
    tier_free(p);
    cr_assert_eq(report(&f, cid, 0, 10, NULL), TIER_OK);
    cr_assert(wait_level(&f, cid, "gold", 20000));
    pl = plan(&f, NULL);
    cr_expect_eq(pl->total_moves, 0, "gold's unviewed content is demoted before a window passed");
    tier_free(pl);
    teardown(&f);
}

/* Gold holds 1,000 bytes: of two 600-byte contents that both earn gold,
 * the one with more views per byte gets it; the other waits on silver. */
Test(planner, capacity_keeps_the_most_viewed_per_byte)
{
    fx f;
    window_policy w;
    Tier__Plan *pl;
    int64_t a, b;
    char lv[64];

    setup(&f);
    a = add(&f, "a.bin", 600);
    b = add(&f, "b.bin", 600);
    cr_assert_eq(report(&f, a, 0, 20, NULL), TIER_OK);
    cr_assert_eq(report(&f, b, 0, 30, NULL), TIER_OK);
    /* The dry run first: nothing is stored, the plan says it all. */
    Tier__SetPolicyReply *rep;
    if (set_policy(&f, window(&w, 1000), true, &rep) != TIER_OK) {
        char *log = tier_test_slurp(f.td.log, NULL);
        int st = tier_test_wait(f.td.pid, 0);
        cr_assert_fail("%s; tierd status %d; log:\n%s", E.message, st, log ? log : "");
    }
    cr_assert_not_null(rep->plan);
    cr_expect_eq(rep->plan->total_moves, 0, "views before the window policy counted");
    tier_free(rep);
    /* Stored with rounds an hour apart: only the wake of a policy change
     * runs one. A timed round between the views and the plan below (or
     * between the two reports, which ReportViews applies one by one) would
     * start a's move to gold before b's views count, and b would then get
     * gold only after a's round trip -- the plan would show b held. */
    window(&w, 1000)->plan_interval_s = 3600;
    cr_assert_eq(set_policy(&f, &w.p, false, NULL), TIER_OK, "%s", E.message);
    /* Views counted from now on (increments under the window policy). */
    Tier__ReportViewsRequest rq = TIER__REPORT_VIEWS_REQUEST__INIT;
    Tier__ViewReport ra = TIER__VIEW_REPORT__INIT, rb = TIER__VIEW_REPORT__INIT,
                     *rl[2] = {&ra, &rb};
    Tier__ReportViewsReply *rr = NULL;
    ra.cid = a, ra.views = 20, rb.cid = b, rb.views = 30;
    rq.reports = rl;
    rq.n_reports = 2;
    cr_assert_eq(tier_report_views(f.c, &rq, &rr, &E), TIER_OK, "%s", E.message);
    cr_assert((int)rr->results[0]->code == TIER_OK && (int)rr->results[1]->code == TIER_OK);
    tier_free(rr);
    pl = plan(&f, NULL);
    cr_expect_eq(pl->total_moves, 2);
    for (size_t i = 0; i < pl->n_moves; i++) {
        if (pl->moves[i]->cid == b)
            cr_expect_str_eq(pl->moves[i]->to, "gold");
        else
            cr_expect(strcmp(pl->moves[i]->to, "silver") == 0 &&
                          strcmp(pl->moves[i]->rule, "capacity") == 0,
                      "a: %s (%s)", pl->moves[i]->to, pl->moves[i]->rule);
    }
    cr_expect_eq(pl->held_capacity, 1);
    tier_free(pl);
    /* Rounds every second again (a change between window policies keeps
     * the views counted): the wake's round starts the planned moves. */
    cr_assert_eq(set_policy(&f, window(&w, 1000), false, NULL), TIER_OK, "%s", E.message);
    worker_start(&f);
    cr_assert(wait_level(&f, b, "gold", 20000), "b: %s", level_of(&f, b, lv, sizeof(lv)));
    cr_assert(wait_level(&f, a, "silver", 20000), "a: %s", level_of(&f, a, lv, sizeof(lv)));
    sleep(2); /* a few more rounds: a must not be squeezed into gold */
    cr_expect_str_eq(level_of(&f, a, lv, sizeof(lv)), "silver");
    /* The fill level per level: GetStats (the dashboard) shows the capacity. */
    Tier__GetStatsRequest sq = TIER__GET_STATS_REQUEST__INIT;
    Tier__GetStatsReply *st = NULL;
    cr_assert_eq(tier_get_stats(f.c, &sq, &st, &E), TIER_OK, "%s", E.message);
    for (size_t i = 0; i < st->n_levels; i++)
        cr_expect_eq(st->levels[i]->capacity_bytes,
                     strcmp(st->levels[i]->name, "gold") == 0 ? 1000 : 0, "%s",
                     st->levels[i]->name);
    tier_free(st);
    teardown(&f);
}

/* A budget of one file a second into gold: five hot contents take about
 * five seconds, and ListJobs shows the backlog meanwhile. */
Test(planner, budgets_spread_moves_and_show_backlog)
{
    fx f;
    window_policy w;
    int64_t cids[5];
    bool saw_backlog = false;

    setup(&f);
    for (int i = 0; i < 5; i++) {
        char name[32];
        snprintf(name, sizeof(name), "b%d.bin", i);
        cids[i] = add(&f, name, 100);
    }
    window(&w, 0);
    tier__move_budget__init(&w.budget);
    w.budget.to = "gold";
    w.budget.files_per_s = 1;
    w.bp[0] = &w.budget;
    w.p.budgets = w.bp;
    w.p.n_budgets = 1;
    cr_assert_eq(set_policy(&f, &w.p, false, NULL), TIER_OK, "%s", E.message);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(report(&f, cids[i], 0, 50, NULL), TIER_OK);
    worker_start(&f);
    for (int i = 0; i < 40 && !saw_backlog; i++) {
        Tier__ListJobsRequest req = TIER__LIST_JOBS_REQUEST__INIT;
        Tier__ListJobsReply *rep = NULL;
        cr_assert_eq(tier_list_jobs(f.c, &req, &rep, &E), TIER_OK, "%s", E.message);
        saw_backlog =
            rep->planner != NULL && rep->planner->throttled > 0 && rep->planner->backlog > 0;
        tier_free(rep);
        usleep(100 * 1000);
    }
    cr_expect(saw_backlog, "ListJobs never showed a throttled backlog");
    for (int i = 0; i < 5; i++)
        cr_expect(wait_level(&f, cids[i], "gold", 30000), "content %d not promoted", i);
    teardown(&f);
}

/* SetLevels --dry-run and PlanMoves with a proposed table change nothing;
 * a table the policy does not fit is refused. */
Test(planner, dry_runs_change_nothing)
{
    fx f;
    window_policy w;
    Tier__SetLevelsRequest req = TIER__SET_LEVELS_REQUEST__INIT;
    Tier__ListLevelsReply *rep = NULL;
    Tier__Level l[3], *lp[3];
    char paths[3][1100], n[32];
    static const char *names[] = {"bronze", "silver", "gold"};
    int64_t cid;

    setup(&f);
    cid = add(&f, "d.bin", 100);
    cr_assert_eq(report(&f, cid, 1500, 0, NULL), TIER_OK); /* seed: to silver */
    for (int i = 0; i < 3; i++) {
        tier__level__init(&l[i]);
        snprintf(paths[i], sizeof(paths[i]), "%s/%s", f.root, names[i]);
        l[i].name = (char *)names[i];
        l[i].path = paths[i];
        lp[i] = &l[i];
    }
    /* Proposed: silver from 2000 -- the count 1500 would stay on bronze. */
    l[0].min_counts = 0, l[0].max_counts = 1999;
    l[1].min_counts = 2000, l[1].max_counts = 2999;
    l[2].min_counts = 3000, l[2].max_counts = INT64_MAX;
    req.levels = lp;
    req.n_levels = 3;
    req.dry_run = true;
    cr_assert_eq(tier_set_levels(f.c, &req, &rep, &E), TIER_OK, "%s", E.message);
    cr_assert_not_null(rep->plan);
    cr_expect_eq(rep->plan->unknown_score, 0);
    tier_free(rep);
    tier_test_sql1(f.my, "SELECT max_counts FROM level WHERE content_level = 'bronze'", n,
                   sizeof(n));
    cr_expect_str_eq(n, "999", "a dry run changed the table");

    /* A window policy names silver: a table without silver is refused. */
    cr_assert_eq(set_policy(&f, window(&w, 0), false, NULL), TIER_OK, "%s", E.message);
    l[0].max_counts = 2999;
    lp[1] = &l[2];
    req.n_levels = 2;
    req.dry_run = false;
    cr_expect_eq(tier_set_levels(f.c, &req, &rep, &E), TIER_FAILED_PRECONDITION);
    cr_expect(strstr(E.message, "policy") != NULL, "%s", E.message);
    teardown(&f);
}

/* An operator's MoveContent is not held by the policy: a cold content goes
 * to gold on request, and the dwell time then keeps it there. */
Test(planner, forced_move_is_kept_by_dwell)
{
    fx f;
    window_policy w;
    Tier__MoveContentRequest req = TIER__MOVE_CONTENT_REQUEST__INIT;
    Tier__MoveContentReply *rep = NULL;
    Tier__Plan *pl;
    int64_t cid;
    char lv[64];

    setup(&f);
    cid = add(&f, "forced.bin", 100);
    window(&w, 0)->dwell_s = 3600;
    w.p.demote_after_s = 1; /* unviewed: idle a second after its move, then held by dwell */
    cr_assert_eq(set_policy(&f, &w.p, false, NULL), TIER_OK, "%s", E.message);
    req.cid = cid;
    req.level = "platinum";
    cr_expect_eq(tier_move_content(f.c, &req, &rep, &E), TIER_NOT_FOUND);
    req.level = "bronze";
    cr_expect_eq(tier_move_content(f.c, &req, &rep, &E), TIER_FAILED_PRECONDITION);
    req.cid = 987654;
    cr_expect_eq(tier_move_content(f.c, &req, &rep, &E), TIER_NOT_FOUND);
    req.cid = cid;
    req.level = "gold";
    cr_assert_eq(tier_move_content(f.c, &req, &rep, &E), TIER_OK, "%s", E.message);
    cr_assert_not_null(rep->job);
    cr_expect_str_eq(rep->job->target, "gold");
    tier_free(rep);
    cr_expect_eq(tier_move_content(f.c, &req, &rep, &E), TIER_FAILED_PRECONDITION,
                 "a second job for the same content");
    worker_start(&f);
    cr_assert(wait_level(&f, cid, "gold", 20000), "%s", level_of(&f, cid, lv, sizeof(lv)));
    sleep(2); /* rounds of the planner: no views, but it stays */
    cr_expect_str_eq(level_of(&f, cid, lv, sizeof(lv)), "gold");
    pl = plan(&f, NULL);
    cr_expect_eq(pl->total_moves, 0);
    cr_expect_eq(pl->held_dwell, 1);
    tier_free(pl);
    teardown(&f);
}
