/*
 * test_worker_lanes.c -- one tier-worker serving several coordinators
 * (docs/CLUSTER.md "Workers", docs/WORKER.md "Lanes"): real tierd
 * processes (one per shard, --shards 3 --shard K, against the same
 * database and Redis base prefix), real tier-worker processes, real files.
 *
 *   three_shards_one_worker   one worker, a --lane per shard: every shard's
 *                             jobs complete, each tierd hears its beats
 *   mounts_leave_jobs         --mount: a worker that cannot reach gold
 *                             leaves those jobs; tierd pushes them again
 *                             and the other worker moves them
 *   dead_coordinator_does_not_stall_others
 *                             a lane whose tierd died holds up the other
 *                             lanes' jobs for seconds at most
 *   cluster_single_coordinator --cluster against one tierd (its Topology,
 *                             or --tierd/--pull while it answers
 *                             UNIMPLEMENTED)
 *   cluster_follows_new_owner --cluster: a shard's tierd replaced by a new
 *                             process on other ports; the lane re-dials
 *                             (skipped while tierd has no Topology)
 *
 * Isolation as in test_worker.c: own database, Redis prefix, ports, dirs.
 */
#include <criterion/criterion.h>
#include <errno.h>
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

#define MAXT 4 /* tierd processes: three shards and a replacement */
#define MAXW 2
#define SIZE 2048

typedef struct {
    tier_test_mysql m;
    char *root;
    char prefix[64];
    unsigned shards;
    tier_test_tierd td[MAXT];
    tier_client *c[MAXT];
    int owner[TIER_SHARDS_MAX]; /* shard -> td index */
    pid_t w[MAXW];
    char wlog[MAXW][1024];
    MYSQL *my;
} fx;

static int seq;

static void kill_children(void)
{
    tier_test_kill_children();
}

TestSuite(worker_lanes, .fini = kill_children);

/* ---------------------------------------------------------- helpers */

static void sql(fx *f, const char *q)
{
    cr_assert(mysql_query(f->my, q) == 0, "%.200s: %s", q, mysql_error(f->my));
    MYSQL_RES *r = mysql_store_result(f->my);
    if (r)
        mysql_free_result(r);
}

static long long sqlnum(fx *f, const char *q)
{
    cr_assert(mysql_query(f->my, q) == 0, "%s: %s", q, mysql_error(f->my));
    MYSQL_RES *r = mysql_store_result(f->my);
    MYSQL_ROW row = r ? mysql_fetch_row(r) : NULL;
    long long v = row && row[0] ? atoll(row[0]) : -1;
    if (r)
        mysql_free_result(r);
    return v;
}

static void path_of(fx *f, const char *level, long i, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s/f%06ld.bin", f->root, level, i);
}

static bool exists(fx *f, const char *level, long i)
{
    char p[1200];
    struct stat st;
    path_of(f, level, i, p, sizeof(p));
    return stat(p, &st) == 0 && st.st_size == SIZE;
}

/* Even cids go to silver (1500 views), odd ones to gold (5000). */
static const char *target_of(long i)
{
    return i % 2 == 0 ? "silver" : "gold";
}

/* Contents 1..n in MySQL and in bronze, before any tierd starts. */
static void contents(fx *f, long n)
{
    char q[256], p[1200], bytes[SIZE];

    for (long i = 1; i <= n; i++) {
        memset(bytes, (int)('a' + i % 26), sizeof(bytes));
        path_of(f, "bronze", i, p, sizeof(p));
        cr_assert(tier_test_write_file(p, bytes, sizeof(bytes)), "write %s", p);
        snprintf(q, sizeof(q),
                 "INSERT INTO contents (cid, content_level, filename) VALUES (%ld, 'bronze', "
                 "'f%06ld.bin')",
                 i, i);
        sql(f, q);
    }
}

static void setup(fx *f, unsigned shards, long n)
{
    char dir[1024];

    memset(f, 0, sizeof(*f));
    f->shards = shards;
    f->root = tier_test_tmpdir();
    cr_assert(f->root != NULL);
    tier_test_mysql_env(&f->m);
    tier_test_db_create(&f->m, f->root);
    for (const char *const *l = (const char *const[]){"bronze", "silver", "gold", NULL}; *l; l++) {
        snprintf(dir, sizeof(dir), "%s/%s", f->root, *l);
        cr_assert(mkdir(dir, 0755) == 0 || errno == EEXIST);
    }
    f->my = mysql_init(NULL);
    cr_assert(mysql_real_connect(f->my, f->m.host, f->m.user, f->m.password, f->m.db,
                                 (unsigned)f->m.port, NULL, 0) != NULL,
              "%s", mysql_error(f->my));
    snprintf(f->prefix, sizeof(f->prefix), "twl%d_%d:", (int)getpid(), seq++);
    contents(f, n);
}

/* tierd number k serving shard (its own log directory root/t<k>). */
static void tierd_start(fx *f, int k, unsigned shard)
{
    char logdir[1100], shards_s[8], shard_s[8];

    snprintf(logdir, sizeof(logdir), "%s/t%d", f->root, k);
    cr_assert(mkdir(logdir, 0755) == 0 || errno == EEXIST);
    tier_test_tierd_init(&f->td[k], logdir, f->m.db, f->prefix);
    snprintf(shards_s, sizeof(shards_s), "%u", f->shards);
    snprintf(shard_s, sizeof(shard_s), "%u", shard);
    char *extra[] = {"--shards", shards_s, "--shard", shard_s, NULL};
    tier_test_tierd_start(&f->td[k], extra);
    cr_assert_eq(tier_client_open(&f->c[k], f->td[k].listen), TIER_OK);
    tier_client_set_timeout(f->c[k], 10000);
    f->owner[shard] = k;
}

static void tierd_stop(fx *f, int k)
{
    if (f->td[k].pid > 0)
        cr_assert_neq(tier_test_tierd_stop(&f->td[k], SIGTERM, 15000), -1, "tierd did not stop");
    f->td[k].pid = 0;
    tier_client_close(f->c[k]);
    f->c[k] = NULL;
}

/* Starts worker k with the flags in args (NULL-terminated), plus its id,
 * --dirs and a short lease; TIER_LOG=debug when debug. */
static void worker_start(fx *f, int k, char *const *args, bool debug)
{
    char *bin = tier_test_bin("tier-worker");
    char id[16], dirs[3200], *argv[40], *envp[4];
    int n = 0, ne = 0;

    snprintf(id, sizeof(id), "wl%d", k);
    snprintf(dirs, sizeof(dirs), "%s/bronze,%s/silver,%s/gold", f->root, f->root, f->root);
    argv[n++] = bin;
    for (; args[n - 1] != NULL && n < 30; n++)
        argv[n] = args[n - 1];
    char *tail[] = {"--id", id, "--dirs", dirs, "--lease-ms", "10000", NULL};
    for (int i = 0; tail[i] != NULL; i++)
        argv[n++] = tail[i];
    argv[n] = NULL;
    envp[ne++] = debug ? "TIER_LOG=debug" : "TIER_LOG=info";
    envp[ne++] = "TIER_URL=";  /* never the shell's */
    envp[ne++] = "TIER_PULL="; /* (an empty variable counts as unset) */
    envp[ne] = NULL;
    snprintf(f->wlog[k], sizeof(f->wlog[k]), "%s/worker%d.log", f->root, k);
    f->w[k] = tier_test_spawn(argv, envp, f->wlog[k]);
    cr_assert_gt(f->w[k], 0);
    free(bin);
}

/* SIGTERM: a clean stop, exit 0. */
static void worker_stop(fx *f, int k)
{
    if (f->w[k] <= 0)
        return;
    kill(f->w[k], SIGTERM);
    int st = tier_test_wait(f->w[k], 20000);
    f->w[k] = 0;
    char *log = tier_test_slurp(f->wlog[k], NULL);
    cr_assert_eq(st, 0, "worker %d exit status %d; log:\n%.3000s", k, st, log ? log : "");
    free(log);
}

static void teardown(fx *f)
{
    for (int k = 0; k < MAXW; k++)
        worker_stop(f, k);
    for (int k = 0; k < MAXT; k++)
        tierd_stop(f, k);
    mysql_close(f->my);
    tier_test_db_drop(&f->m);
    if (getenv("TIER_TEST_KEEP") == NULL)
        tier_test_rmtree(f->root);
    free(f->root);
}

static unsigned shard_of(fx *f, long cid)
{
    return f->shards > 1 ? tier_shard_of(cid, f->shards) : 0;
}

/* Reports cid i with its target count to its shard's tierd. */
static void report_one(fx *f, long i)
{
    {
        Tier__ViewReport v = TIER__VIEW_REPORT__INIT, *list[1] = {&v};
        Tier__ReportViewsRequest req = TIER__REPORT_VIEWS_REQUEST__INIT;
        Tier__ReportViewsReply *rep;
        tier_error err;
        tier_client *c = f->c[f->owner[shard_of(f, i)]];
        v.cid = i;
        v.count = i % 2 == 0 ? 1500 : 5000;
        req.reports = list;
        req.n_reports = 1;
        cr_assert_eq(tier_report_views(c, &req, &rep, &err), TIER_OK, "%s", err.message);
        cr_assert_eq(rep->results[0]->code, TIER_OK, "cid %ld: %s", i, rep->results[0]->message);
        tier_free(rep);
    }
}

/* Reports cids from..to. */
static void report(fx *f, long from, long to)
{
    for (long i = from; i <= to; i++)
        report_one(f, i);
}

static long settled(fx *f, long from, long to)
{
    char q[300];
    snprintf(q, sizeof(q),
             "SELECT COUNT(*) FROM contents WHERE cid BETWEEN %ld AND %ld AND content_level = "
             "IF(cid %% 2 = 0, 'silver', 'gold')",
             from, to);
    return (long)sqlnum(f, q);
}

static char *tail_of(const char *path, size_t max)
{
    size_t n = 0;
    char *log = path[0] ? tier_test_slurp(path, &n) : NULL;
    if (log != NULL && n > max)
        memmove(log, log + n - max, max + 1);
    return log;
}

static void wait_settled(fx *f, long from, long to, int timeout_ms)
{
    int64_t end = tier_mono_ms() + timeout_ms;
    long got = 0;

    while (tier_mono_ms() < end) {
        if ((got = settled(f, from, to)) == to - from + 1)
            return;
        usleep(100 * 1000);
    }
    char *w0 = tail_of(f->wlog[0], 2500), *w1 = tail_of(f->wlog[1], 1500);
    cr_assert_fail("%ld of %ld contents settled after %d ms\n--- worker 0:\n%s\n--- worker 1:\n%s",
                   got, to - from + 1, timeout_ms, w0 ? w0 : "", w1 ? w1 : "");
}

/* Files of from..to: at their target, nowhere else. */
static void check_files(fx *f, long from, long to)
{
    for (long i = from; i <= to; i++) {
        const char *t = target_of(i), *other = i % 2 == 0 ? "gold" : "silver";
        cr_assert(exists(f, t, i), "f%06ld.bin not in %s", i, t);
        cr_assert(!exists(f, "bronze", i), "f%06ld.bin still in bronze", i);
        cr_assert(!exists(f, other, i), "f%06ld.bin also in %s", i, other);
    }
}

/* Whether tierd k lists worker id as alive. */
static bool lists_worker(fx *f, int k, const char *id)
{
    Tier__ListWorkersRequest req = TIER__LIST_WORKERS_REQUEST__INIT;
    Tier__ListWorkersReply *rep = NULL;
    tier_error err;
    bool found = false;

    if (tier_list_workers(f->c[k], &req, &rep, &err) != TIER_OK)
        return false;
    for (size_t i = 0; i < rep->n_workers; i++)
        found = found || (strcmp(rep->workers[i]->worker_id, id) == 0 && rep->workers[i]->alive);
    tier_free(rep);
    return found;
}

static void wait_listed(fx *f, int k, const char *id)
{
    int64_t end = tier_mono_ms() + 20000;
    while (!lists_worker(f, k, id)) {
        char *log = tail_of(f->wlog[0], 2000);
        cr_assert(tier_mono_ms() < end, "tierd %d never heard of %s; worker 0:\n%s", k, id,
                  log ? log : "");
        free(log);
        usleep(100 * 1000);
    }
}

/* Lines of worker k's log that contain needle. */
static long log_count(fx *f, int k, const char *needle)
{
    long c = 0;
    char *log = tier_test_slurp(f->wlog[k], NULL);
    for (char *p = log; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
        c++;
    free(log);
    return c;
}

static size_t jobs_left(fx *f, int k)
{
    Tier__ListJobsRequest req = TIER__LIST_JOBS_REQUEST__INIT;
    Tier__ListJobsReply *rep;
    tier_error err;
    req.limit = 100000;
    cr_assert_eq(tier_list_jobs(f->c[k], &req, &rep, &err), TIER_OK, "%s", err.message);
    size_t n = rep->n_jobs;
    tier_free(rep);
    return n;
}

static void lane_arg(fx *f, int k, char *buf, size_t len)
{
    snprintf(buf, len, "%s=%s", f->td[k].listen, f->td[k].push);
}

/* ---------------------------------------------------------- tests */

/* One worker, three shard processes, a --lane each: every shard's jobs
 * are claimed and completed at their own tierd. */
Test(worker_lanes, three_shards_one_worker, .timeout = 180)
{
    fx f;
    char l0[300], l1[300], l2[300];
    unsigned per[3] = {0};
    const long n = 60;

    setup(&f, 3, n);
    for (long i = 1; i <= n; i++)
        per[shard_of(&f, i)]++;
    cr_assert(per[0] > 0 && per[1] > 0 && per[2] > 0, "every shard owns some of 1..%ld", n);
    for (int k = 0; k < 3; k++)
        tierd_start(&f, k, (unsigned)k);
    lane_arg(&f, 0, l0, sizeof(l0));
    lane_arg(&f, 1, l1, sizeof(l1));
    lane_arg(&f, 2, l2, sizeof(l2));
    worker_start(&f, 0, (char *[]){"--lane", l0, "--lane", l1, "--lane", l2, NULL}, false);
    for (int k = 0; k < 3; k++)
        wait_listed(&f, k, "wl0"); /* a heartbeat per lane */
    report(&f, 1, n);
    wait_settled(&f, 1, n, 60000);
    check_files(&f, 1, n);
    for (int k = 0; k < 3; k++)
        cr_assert_eq(jobs_left(&f, k), 0, "tierd %d has jobs left", k);
    cr_assert_eq(log_count(&f, 0, " moves bronze to "), n, "one move per content");
    cr_assert_eq(sqlnum(&f, "SELECT COUNT(*) FROM update_history"), n);
    teardown(&f);
}

/* Worker 0 can reach bronze and silver only (and a directory whose name
 * starts like gold's, which is not gold); worker 1 reaches everything.
 * Every move completes; worker 0 moved none into gold, left some gold jobs
 * it was pushed, and tierd pushed those again to worker 1. */
Test(worker_lanes, mounts_leave_jobs, .timeout = 180)
{
    fx f;
    char mounts[2200], trap[1100];
    const long n = 40;

    setup(&f, 1, n);
    tierd_start(&f, 0, 0);
    snprintf(mounts, sizeof(mounts), "%s/bronze:%s/silver/", f.root, f.root);
    snprintf(trap, sizeof(trap), "%s/gol", f.root);
    worker_start(&f, 0,
                 (char *[]){"--tierd", f.td[0].listen, "--pull", f.td[0].push, "--mount", mounts,
                            "--mount", trap, NULL},
                 true);
    worker_start(&f, 1, (char *[]){"--tierd", f.td[0].listen, "--pull", f.td[0].push, NULL}, false);
    wait_listed(&f, 0, "wl0");
    wait_listed(&f, 0, "wl1");
    /* Each report pushes one job, round robin over the two workers: the
     * even (silver) cids first, then the odd (gold) ones, so that each
     * worker is pushed jobs of both kinds. */
    for (long i = 2; i <= n; i += 2)
        report_one(&f, i);
    for (long i = 1; i <= n; i += 2)
        report_one(&f, i);
    wait_settled(&f, 1, n, 90000);
    check_files(&f, 1, n);
    cr_assert_eq(jobs_left(&f, 0), 0);
    cr_assert_eq(log_count(&f, 0, " moves bronze to gold"), 0, "worker 0 moved into gold");
    cr_assert_eq(log_count(&f, 1, " moves bronze to gold"), n / 2);
    cr_assert_gt(log_count(&f, 0, "left for another worker"), 0,
                 "worker 0 was never pushed a "
                 "gold job: the test proves "
                 "nothing");
    cr_assert_gt(log_count(&f, 0, " moves bronze to silver"), 0, "worker 0 moved nothing");
    teardown(&f);
}

/* Two shards, a lane each.  Shard 1's tierd hangs (SIGSTOP) just after
 * its jobs were pushed: the worker's calls to it hang until their
 * timeout.  Shard 0's jobs, reported next, still complete promptly (claims
 * and completions of the dead lane hold up no other lane for long).  A new
 * tierd for shard 1 on the same addresses then finishes shard 1's jobs. */
Test(worker_lanes, dead_coordinator_does_not_stall_others, .timeout = 240)
{
    fx f;
    char l0[300], l1[300];
    const long n = 40;

    long per1 = 0;

    setup(&f, 2, n);
    for (long i = 1; i <= n; i++)
        per1 += shard_of(&f, i) == 1;
    cr_assert(per1 > 0 && per1 < n);
    tierd_start(&f, 0, 0);
    tierd_start(&f, 1, 1);
    lane_arg(&f, 0, l0, sizeof(l0));
    lane_arg(&f, 1, l1, sizeof(l1));
    worker_start(&f, 0, (char *[]){"--lane", l0, "--lane", l1, "--moves", "2", NULL}, false);
    wait_listed(&f, 0, "wl0");
    wait_listed(&f, 1, "wl0");
    /* The worker is stopped while shard 1 pushes its jobs, so that they
     * wait in its socket; then shard 1's tierd hangs (SIGSTOP: connected,
     * never answering) and the worker goes on. */
    kill(f.w[0], SIGSTOP);
    for (long i = 1; i <= n; i++)
        if (shard_of(&f, i) == 1)
            report_one(&f, i);
    usleep(300 * 1000);
    kill(f.td[1].pid, SIGSTOP);
    kill(f.w[0], SIGCONT);
    int64_t t0 = tier_mono_ms();
    for (long i = 1; i <= n; i++)
        if (shard_of(&f, i) == 0)
            report_one(&f, i);
    /* Shard 0's moves committed (MySQL), shard 1's none (its tierd hangs). */
    while (settled(&f, 1, n) < n - per1) {
        cr_assert_lt(tier_mono_ms() - t0, 25000, "shard 0's moves not committed in 25 s");
        usleep(100 * 1000);
    }
    for (long i = 1; i <= n; i++)
        if (shard_of(&f, i) == 0)
            cr_assert(exists(&f, target_of(i), i) && !exists(&f, "bronze", i), "f%06ld.bin", i);
    cr_assert_eq(settled(&f, 1, n), n - per1, "shard 1's jobs finished without its tierd");
    kill(f.td[1].pid, SIGKILL);
    cr_assert_neq(tier_test_wait(f.td[1].pid, 10000), -1);
    f.td[1].pid = 0;
    /* Shard 1 again, at the same addresses (the worker's lane 1). */
    tier_client_close(f.c[1]);
    char listen[128], push[128];
    snprintf(listen, sizeof(listen), "%s", f.td[1].listen);
    snprintf(push, sizeof(push), "%s", f.td[1].push);
    char logdir[1100];
    snprintf(logdir, sizeof(logdir), "%s/t3", f.root);
    cr_assert(mkdir(logdir, 0755) == 0 || errno == EEXIST);
    tier_test_tierd_init(&f.td[3], logdir, f.m.db, f.prefix);
    snprintf(f.td[3].listen, sizeof(f.td[3].listen), "%s", listen);
    snprintf(f.td[3].push, sizeof(f.td[3].push), "%s", push);
    tier_test_tierd_start(&f.td[3], (char *[]){"--shards", "2", "--shard", "1", NULL});
    cr_assert_eq(tier_client_open(&f.c[3], f.td[3].listen), TIER_OK);
    tier_client_set_timeout(f.c[3], 10000);
    f.c[1] = NULL;
    wait_settled(&f, 1, n, 90000);
    check_files(&f, 1, n);
    teardown(&f);
}

/* A bad --lane, --mount or push address is refused at start (exit 2). */
Test(worker_lanes, bad_flags)
{
    char *bin = tier_test_bin("tier-worker"), out[4096];
    char *envp[] = {"TIER_URL=", "TIER_PULL=", NULL};
    struct {
        char *argv[8];
        const char *says;
    } cases[] = {
        {{bin, "--lane", "tcp://127.0.0.1:1", NULL}, "RPC_URL"},
        {{bin, "--lane", "=tcp://127.0.0.1:1", NULL}, "RPC_URL"},
        {{bin, "--lane", "tcp://a:1=tcp://a:2=tcp://a:3", NULL}, "RPC_URL"},
        {{bin, "--cluster", NULL}, "required"},
        {{bin, "--tierd", "tcp://127.0.0.1:1", "--pull", "tcp://127.0.0.1:2", "--mount", "relative",
          NULL},
         "absolute"},
        {{bin, NULL}, "required"},
        {{bin, "--tierd", "tcp://127.0.0.1:1", "--pull", "bogus://x", NULL}, "bogus://x"},
        {{bin, "--lane", "tcp://127.0.0.1:1=tcp://127.0.0.1:2", "--lane",
          "tcp://127.0.0.1:3=nope://y", NULL},
         "nope://y"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int st = tier_test_run(cases[i].argv, envp, out, sizeof(out), 10000);
        cr_assert_eq(st, 2, "case %zu: exit %d: %s", i, st, out);
        cr_assert(strstr(out, cases[i].says) != NULL, "case %zu: %s", i, out);
    }
    free(bin);
}

/* Topology from tierd k: TIER_OK, or UNIMPLEMENTED until tierd has it. */
static int topology_rv(fx *f, int k)
{
    Tier__TopologyRequest req = TIER__TOPOLOGY_REQUEST__INIT;
    Tier__TopologyReply *rep = NULL;
    tier_error err;
    int rv = tier_topology(f->c[k], &req, &rep, &err);
    tier_free(rep);
    return rv;
}

/* --cluster against one tierd: with Topology it makes the one lane from
 * it, without (UNIMPLEMENTED) it serves --tierd/--pull.  Either way every
 * move completes. */
Test(worker_lanes, cluster_single_coordinator, .timeout = 120)
{
    fx f;
    const long n = 10;

    setup(&f, 1, n);
    tierd_start(&f, 0, 0);
    worker_start(&f, 0,
                 (char *[]){"--cluster", "--tierd", f.td[0].listen, "--pull", f.td[0].push, NULL},
                 false);
    wait_listed(&f, 0, "wl0");
    report(&f, 1, n);
    wait_settled(&f, 1, n, 60000);
    check_files(&f, 1, n);
    if (topology_rv(&f, 0) == TIER_UNIMPLEMENTED)
        cr_assert_gt(log_count(&f, 0, "does not answer Topology"), 0);
    else
        cr_assert_gt(log_count(&f, 0, "cluster of 1 shard"), 0);
    teardown(&f);
}

/* --cluster, three shards: shard 1's tierd is stopped and a new process
 * on other ports takes the shard.  The worker's lane 1 follows the
 * topology to it and the next jobs of shard 1 complete there. */
Test(worker_lanes, cluster_follows_new_owner, .timeout = 240)
{
    fx f;
    char seeds[1000];
    const long n = 60;

    setup(&f, 3, n);
    for (int k = 0; k < 3; k++)
        tierd_start(&f, k, (unsigned)k);
    if (topology_rv(&f, 0) == TIER_UNIMPLEMENTED) {
        teardown(&f);
        cr_skip_test("tierd answers Topology UNIMPLEMENTED: nothing to follow yet");
    }
    snprintf(seeds, sizeof(seeds), "%s,%s,%s", f.td[0].listen, f.td[1].listen, f.td[2].listen);
    worker_start(&f, 0, (char *[]){"--cluster", "--tierd", seeds, NULL}, false);
    for (int k = 0; k < 3; k++)
        wait_listed(&f, k, "wl0");
    report(&f, 1, n / 2);
    wait_settled(&f, 1, n / 2, 60000);

    tierd_stop(&f, 1);
    tierd_start(&f, 3, 1); /* shard 1 again, other ports */
    report(&f, n / 2 + 1, n);
    wait_settled(&f, n / 2 + 1, n, 90000);
    check_files(&f, 1, n);
    cr_assert_gt(log_count(&f, 0, "lane 1: shard's coordinator is now"), 0);
    cr_assert_eq(jobs_left(&f, 3), 0);
    teardown(&f);
}
