/*
 * test_migrate.c -- level migrations (issue 10, item 7): SetLevels gives a
 * level that holds contents a new directory, and tierd moves every file
 * there with ordinary move jobs, then removes the old directory.  A real
 * tierd, real tier-worker processes, real Redis, MariaDB and files.
 *
 * What every test checks at the end (migrated()): each content's file is
 * exactly once under the storage root, in its MySQL level's directory, with
 * its bytes; MySQL's levels are what the test expects; update_history has
 * rows only for real level changes; no level_migration row, no job, and
 * the old directory is gone.  tierd's own crash points of the migration
 * are walked by tests/test_crash.c (docs/CRASH.md).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tier_client.h"
#include "tier_policy.h"
#include "tier_testenv.h"
#include "tier_time.h"

#define MAXN 80
#define MAXC 9223372036854775807LL

typedef struct {
    tier_test_mysql m;
    char *root;
    tier_test_tierd td;
    tier_client *c;
    MYSQL *my;
    pid_t w[4];
    int nw;
    int n;
    int64_t cid[MAXN];
    uint64_t sum[MAXN];
    char level[MAXN][16]; /* where the test expects it in the end */
} fx;

static tier_error E;

TestSuite(migrate, .fini = tier_test_kill_children, .timeout = 240);

/* ---------------------------------------------------------- set-up */

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
    tier_test_tierd_setenv(&f->td, "TIER_WORKER_LEASE_MS=1000");
    tier_test_tierd_start(&f->td, (char *const[]){"--lease-ms", "1000", NULL});
    cr_assert_eq(tier_client_open(&f->c, f->td.listen), TIER_OK);
    tier_client_set_timeout(f->c, 10000);
}

static void workers_stop(fx *f)
{
    for (int k = 0; k < f->nw; k++)
        if (f->w[k] > 0) {
            kill(f->w[k], SIGTERM);
            tier_test_wait(f->w[k], 20000);
            f->w[k] = 0;
        }
    f->nw = 0;
}

static void teardown(fx *f)
{
    workers_stop(f);
    tier_test_tierd_stop(&f->td, SIGTERM, 15000);
    tier_client_close(f->c);
    mysql_close(f->my);
    tier_test_db_drop(&f->m);
    tier_test_rmtree(f->root);
    free(f->root);
}

/* A worker that knows every directory the test uses (its start-up cleanup
 * walks them; docs/WORKER.md: add the new directory before SetLevels).
 * crash: TIER_CRASH for it (NULL: none). */
static pid_t worker_start(fx *f, const char *crash)
{
    char dirs[4200], log[1100], id[8], cr[96];
    char *bin = tier_test_bin("tier-worker");
    char *env[32];
    int ne = 0;

    snprintf(id, sizeof(id), "w%d", f->nw);
    snprintf(dirs, sizeof(dirs), "%s/bronze,%s/bronze2,%s/silver,%s/gold", f->root, f->root,
             f->root, f->root);
    snprintf(log, sizeof(log), "%s/%s.log", f->root, id);
    for (int i = 0; i < f->td.nenv && ne < 30; i++)
        env[ne++] = f->td.envp[i];
    if (crash != NULL) {
        snprintf(cr, sizeof(cr), "TIER_CRASH=%s", crash);
        env[ne++] = cr;
    }
    env[ne] = NULL;
    char *argv[] = {bin, "--tierd", f->td.listen, "--pull",  f->td.push, "--id",
                    id,  "--dirs",  dirs,         "--moves", "4",        NULL};
    pid_t pid = tier_test_spawn(argv, env, log);
    free(bin);
    cr_assert_gt(pid, 0);
    f->w[f->nw++] = pid;
    return pid;
}

static uint64_t fill(unsigned char *b, size_t n, int i)
{
    uint64_t x = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 3);
    for (size_t k = 0; k < n; k++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b[k] = (unsigned char)x;
    }
    return tier_test_checksum(b, n);
}

/* n bronze files through AddContent. */
static void add_contents(fx *f, int n)
{
    for (int i = 0; i < n; i++) {
        Tier__AddContentRequest req = TIER__ADD_CONTENT_REQUEST__INIT;
        Tier__AddContentReply *rep = NULL;
        char name[32], p[1200];
        size_t sz = 1000 + 37 * (size_t)i;
        unsigned char *b = malloc(sz);
        snprintf(name, sizeof(name), "m%03d.bin", i);
        f->sum[i] = fill(b, sz, i);
        snprintf(p, sizeof(p), "%s/bronze/%s", f->root, name);
        cr_assert(tier_test_write_file(p, b, sz));
        free(b);
        req.filename = name;
        cr_assert_eq(tier_add_content(f->c, &req, &rep, &E), TIER_OK, "%s", E.message);
        f->cid[i] = rep->content->cid;
        snprintf(f->level[i], sizeof(f->level[i]), "bronze");
        tier_free(rep);
    }
    f->n = n;
}

/* ---------------------------------------------------------- calls */

typedef struct {
    const char *name;
    long long min, max;
    const char *dir; /* under the storage root */
} level_spec;

static const level_spec MOVED[] = {
    {"bronze", 0, 999, "bronze2"}, {"silver", 1000, 1999, "silver"}, {"gold", 2000, MAXC, "gold"}};

static int set_levels(fx *f, const level_spec *s, size_t n, bool dry, Tier__ListLevelsReply **out)
{
    Tier__SetLevelsRequest req = TIER__SET_LEVELS_REQUEST__INIT;
    Tier__Level lv[8], *lp[8];
    Tier__ListLevelsReply *rep = NULL;
    char path[8][1100];

    for (size_t i = 0; i < n; i++) {
        tier__level__init(&lv[i]);
        snprintf(path[i], sizeof(path[i]), "%s/%s/", f->root, s[i].dir);
        lv[i].name = (char *)s[i].name;
        lv[i].min_counts = s[i].min;
        lv[i].max_counts = s[i].max;
        lv[i].path = path[i];
        lp[i] = &lv[i];
    }
    req.levels = lp;
    req.n_levels = n;
    req.dry_run = dry;
    int rv = tier_set_levels(f->c, &req, &rep, &E);
    if (out != NULL)
        *out = rep;
    else
        tier_free(rep);
    return rv;
}

/* bronze's migrating_from ("" when none) and remaining count. */
static void bronze_migration(fx *f, char *from, size_t len, int64_t *left)
{
    Tier__ListLevelsRequest req = TIER__LIST_LEVELS_REQUEST__INIT;
    Tier__ListLevelsReply *rep = NULL;

    from[0] = '\0';
    *left = 0;
    cr_assert_eq(tier_list_levels(f->c, &req, &rep, &E), TIER_OK, "%s", E.message);
    for (size_t i = 0; i < rep->n_levels; i++)
        if (strcmp(rep->levels[i]->name, "bronze") == 0) {
            snprintf(from, len, "%s", rep->levels[i]->migrating_from);
            *left = rep->levels[i]->migrating_remaining;
        }
    tier_free(rep);
}

static bool migrating(fx *f)
{
    char from[1200];
    int64_t left;
    bronze_migration(f, from, sizeof(from), &left);
    return from[0] != '\0';
}

/* Waits (up to ms) for the migration to end. */
static void wait_migrated(fx *f, int ms)
{
    int64_t end = tier_mono_ms() + ms;
    while (migrating(f) && tier_mono_ms() < end)
        usleep(100 * 1000);
    char *log = tier_test_slurp(f->td.log, NULL);
    cr_assert(!migrating(f), "the migration did not end in %d ms; tierd log:\n%.4000s", ms,
              log ? log : "");
    free(log);
}

static int report(fx *f, int64_t cid, int64_t count)
{
    Tier__ReportViewsRequest req = TIER__REPORT_VIEWS_REQUEST__INIT;
    Tier__ViewReport vr = TIER__VIEW_REPORT__INIT, *vp = &vr;
    Tier__ReportViewsReply *rep = NULL;
    vr.cid = cid;
    vr.count = count;
    req.reports = &vp;
    req.n_reports = 1;
    int rv = tier_report_views(f->c, &req, &rep, &E);
    if (rv == TIER_OK) {
        cr_assert_eq(rep->n_results, 1);
        rv = (int)rep->results[0]->code;
    }
    tier_free(rep);
    return rv;
}

/* The job of cid: its target and src_dir; false when there is none. */
static bool job_of(fx *f, int64_t cid, char *target, char *src, size_t len)
{
    Tier__GetJobRequest req = TIER__GET_JOB_REQUEST__INIT;
    Tier__GetJobReply *rep = NULL;
    req.cid = cid;
    int rv = tier_get_job(f->c, &req, &rep, &E);
    if (rv == TIER_NOT_FOUND)
        return false;
    cr_assert_eq(rv, TIER_OK, "%s", E.message);
    snprintf(target, len, "%s", rep->job->target);
    snprintf(src, len, "%s", rep->job->src_dir);
    tier_free(rep);
    return true;
}

static int64_t jobs_left(fx *f)
{
    Tier__ListJobsRequest req = TIER__LIST_JOBS_REQUEST__INIT;
    Tier__ListJobsReply *rep = NULL;
    cr_assert_eq(tier_list_jobs(f->c, &req, &rep, &E), TIER_OK, "%s", E.message);
    int64_t n = (int64_t)rep->n_jobs;
    tier_free(rep);
    return n;
}

static long long sql_num(fx *f, const char *q)
{
    char v[64];
    tier_test_sql1(f->my, q, v, sizeof(v));
    return atoll(v);
}

/* ---------------------------------------------------------- checks */

static bool exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

/* Where the file of content i is, among the directories under the root
 * (bronze, bronze2, silver, gold): exactly one, the expected one, with its
 * bytes; MySQL agrees on the level. */
static void check_content(fx *f, int i, const char *bronze_dir)
{
    static const char *const dirs[] = {"bronze", "bronze2", "silver", "gold"};
    char name[32], p[1200], want_dir[16], q[256], lvl[64];
    int found = 0;

    snprintf(name, sizeof(name), "m%03d.bin", i);
    snprintf(want_dir, sizeof(want_dir), "%s",
             strcmp(f->level[i], "bronze") == 0 ? bronze_dir : f->level[i]);
    for (size_t d = 0; d < 4; d++) {
        snprintf(p, sizeof(p), "%s/%s/%s", f->root, dirs[d], name);
        if (!exists(p))
            continue;
        found++;
        cr_assert_str_eq(dirs[d], want_dir, "cid %lld (%s) is in %s, not %s", (long long)f->cid[i],
                         name, dirs[d], want_dir);
        size_t len;
        char *b = tier_test_slurp(p, &len);
        cr_assert(b != NULL && tier_test_checksum(b, len) == f->sum[i], "%s: bytes changed", p);
        free(b);
    }
    cr_assert_eq(found, 1, "cid %lld (%s): %d copies", (long long)f->cid[i], name, found);
    snprintf(q, sizeof(q), "SELECT content_level FROM contents WHERE cid = %lld",
             (long long)f->cid[i]);
    tier_test_sql1(f->my, q, lvl, sizeof(lvl));
    cr_assert_str_eq(lvl, f->level[i], "cid %lld: MySQL level", (long long)f->cid[i]);
}

/* No temporaries left in any directory. */
static void check_no_tmp(fx *f)
{
    static const char *const dirs[] = {"bronze2", "silver", "gold"};
    for (size_t d = 0; d < 3; d++) {
        char p[1100];
        snprintf(p, sizeof(p), "%s/%s", f->root, dirs[d]);
        DIR *dd = opendir(p);
        struct dirent *de;
        cr_assert(dd != NULL, "%s: %s", p, strerror(errno));
        while ((de = readdir(dd)) != NULL)
            cr_assert(strncmp(de->d_name, ".tier-tmp.", 10) != 0, "temporary %s/%s", p, de->d_name);
        closedir(dd);
    }
}

/* The end state of a migration of bronze to bronze2; `history` rows
 * expected in all. */
static void migrated(fx *f, long long history)
{
    char p[1100], q[256];
    for (int i = 0; i < f->n; i++)
        check_content(f, i, "bronze2");
    check_no_tmp(f);
    snprintf(p, sizeof(p), "%s/bronze", f->root);
    cr_assert(!exists(p), "the old directory %s is still there", p);
    cr_assert_eq(sql_num(f, "SELECT COUNT(*) FROM level_migration"), 0);
    snprintf(q, sizeof(q),
             "SELECT COUNT(*) FROM level WHERE content_level = 'bronze' AND TRIM(TRAILING '/' "
             "FROM path) = '%s/bronze2'",
             f->root);
    cr_assert_eq(sql_num(f, q), 1, "bronze's path in MySQL");
    cr_assert_eq(sql_num(f, "SELECT COUNT(*) FROM level"), 3);
    cr_assert_eq(sql_num(f, "SELECT COUNT(*) FROM update_history"), history,
                 "update_history rows (a migration writes none)");
    cr_assert_eq(jobs_left(f), 0, "jobs left");
}

/* ---------------------------------------------------------- tests */

/* 50 files: SetLevels moves bronze, the planner and a worker move every
 * file, the old directory goes; nothing else changes. */
Test(migrate, happy_path)
{
    fx f;
    char from[1200], dir[1100];
    int64_t left;

    setup(&f);
    add_contents(&f, 50);
    worker_start(&f, NULL);
    /* A dry run shows the proposed table and the migration it would
     * start, and changes nothing. */
    Tier__ListLevelsReply *dry = NULL;
    cr_assert_eq(set_levels(&f, MOVED, 3, true, &dry), TIER_OK, "%s", E.message);
    snprintf(dir, sizeof(dir), "%s/bronze/", f.root);
    for (size_t i = 0; i < dry->n_levels; i++)
        cr_assert_str_eq(dry->levels[i]->migrating_from,
                         strcmp(dry->levels[i]->name, "bronze") == 0 ? dir : "", "level %s",
                         dry->levels[i]->name);
    tier_free(dry);
    cr_assert(!migrating(&f));
    cr_assert_eq(sql_num(&f, "SELECT COUNT(*) FROM level_migration"), 0);

    cr_assert_eq(set_levels(&f, MOVED, 3, false, NULL), TIER_OK, "%s", E.message);
    bronze_migration(&f, from, sizeof(from), &left);
    snprintf(dir, sizeof(dir), "%s/bronze/", f.root);
    /* Either still running (and then it says from where) or already done. */
    if (from[0] != '\0')
        cr_assert_str_eq(from, dir);
    wait_migrated(&f, 60000);
    migrated(&f, 0);
    /* A new content lands in the new directory, and moves work as before. */
    cr_assert_eq(report(&f, f.cid[0], 1500), TIER_OK, "%s", E.message);
    snprintf(f.level[0], sizeof(f.level[0]), "silver");
    int64_t end = tier_mono_ms() + 20000;
    while (jobs_left(&f) > 0 && tier_mono_ms() < end)
        usleep(100 * 1000);
    migrated(&f, 1);
    teardown(&f);
}

/* While bronze migrates (no worker: its jobs wait): a second change of its
 * directory, removing it, another level into its old directory are
 * refused; ranges may change; then it completes. */
Test(migrate, refusals_while_migrating)
{
    fx f;
    static const level_spec again[] = {{"bronze", 0, 999, "bronze3"},
                                       {"silver", 1000, 1999, "silver"},
                                       {"gold", 2000, MAXC, "gold"}};
    static const level_spec drop[] = {{"silver", 0, 1999, "silver"}, {"gold", 2000, MAXC, "gold"}};
    static const level_spec intoold[] = {{"bronze", 0, 999, "bronze2"},
                                         {"silver", 1000, 1999, "bronze"},
                                         {"gold", 2000, MAXC, "gold"}};
    static const level_spec ranges[] = {{"bronze", 0, 1499, "bronze2"},
                                        {"silver", 1500, 1999, "silver"},
                                        {"gold", 2000, MAXC, "gold"}};
    static const level_spec nested[] = {{"bronze", 0, 999, "bronze/sub"},
                                        {"silver", 1000, 1999, "silver"},
                                        {"gold", 2000, MAXC, "gold"}};

    setup(&f);
    add_contents(&f, 5);
    cr_assert_eq(set_levels(&f, nested, 3, false, NULL), TIER_INVALID_ARGUMENT,
                 "a new directory inside the old one");
    cr_assert_eq(set_levels(&f, MOVED, 3, false, NULL), TIER_OK, "%s", E.message);
    cr_assert(migrating(&f));
    cr_assert_eq(sql_num(&f, "SELECT COUNT(*) FROM level_migration"), 1);
    cr_assert_eq(set_levels(&f, again, 3, false, NULL), TIER_FAILED_PRECONDITION);
    cr_assert(strstr(E.message, "migrating") != NULL, "%s", E.message);
    cr_assert_eq(set_levels(&f, drop, 2, false, NULL), TIER_FAILED_PRECONDITION);
    cr_assert_eq(set_levels(&f, intoold, 3, false, NULL), TIER_FAILED_PRECONDITION);
    cr_assert(strstr(E.message, "old directory") != NULL, "%s", E.message);
    /* fsck waits for the migration. */
    Tier__ScrubRequest sq = TIER__SCRUB_REQUEST__INIT;
    Tier__ScrubReply *sr = NULL;
    cr_assert_eq(tier_scrub(f.c, &sq, &sr, &E), TIER_FAILED_PRECONDITION);
    tier_free(sr);
    /* The migration survives a range change (the table is rebuilt). */
    cr_assert_eq(set_levels(&f, ranges, 3, false, NULL), TIER_OK, "%s", E.message);
    cr_assert(migrating(&f), "a range change keeps the migration");
    /* And a restart: MySQL knows it. */
    tier_test_tierd_stop(&f.td, SIGTERM, 15000);
    tier_test_tierd_start(&f.td, (char *const[]){"--lease-ms", "1000", NULL});
    cr_assert(migrating(&f), "the restarted tierd knows the migration");
    worker_start(&f, NULL);
    wait_migrated(&f, 60000);
    migrated(&f, 0);
    teardown(&f);
}

/* Reports during a migration (70 files: the seed policy starts 64
 * migration jobs at once, so some contents have none yet): a promotion of
 * a content still in the old directory moves it from there, with or
 * without a migration job; a report for its own level keeps its migration
 * job. */
Test(migrate, reports_during_migration)
{
    fx f;
    char target[64], src[1200], old[1100];
    int with = -1, without = -1, keep = -1;

    setup(&f);
    add_contents(&f, 70);
    cr_assert_eq(set_levels(&f, MOVED, 3, false, NULL), TIER_OK, "%s", E.message);
    snprintf(old, sizeof(old), "%s/bronze/", f.root);
    int64_t end = tier_mono_ms() + 10000;
    while (jobs_left(&f) < 64 && tier_mono_ms() < end)
        usleep(100 * 1000);
    cr_assert_eq(jobs_left(&f), 64, "the seed policy's migration in-flight cap");
    for (int i = 0; i < f.n; i++) {
        bool has = job_of(&f, f.cid[i], target, src, sizeof(src));
        if (has) {
            cr_assert_str_eq(target, "bronze");
            cr_assert_str_eq(src, old);
        }
        if (has && with < 0)
            with = i;
        else if (has && keep < 0)
            keep = i;
        else if (!has && without < 0)
            without = i;
    }
    cr_assert(with >= 0 && without >= 0 && keep >= 0);
    cr_assert_eq(report(&f, f.cid[with], 1500), TIER_OK);
    cr_assert_eq(report(&f, f.cid[without], 2500), TIER_OK);
    cr_assert_eq(report(&f, f.cid[keep], 10), TIER_OK);
    cr_assert(job_of(&f, f.cid[with], target, src, sizeof(src)));
    cr_assert_str_eq(target, "silver");
    cr_assert_str_eq(src, old);
    cr_assert(job_of(&f, f.cid[without], target, src, sizeof(src)));
    cr_assert_str_eq(target, "gold");
    cr_assert_str_eq(src, old, "a promotion from the old directory");
    cr_assert(job_of(&f, f.cid[keep], target, src, sizeof(src)), "the migration job is kept");
    cr_assert_str_eq(target, "bronze");
    snprintf(f.level[with], sizeof(f.level[with]), "silver");
    snprintf(f.level[without], sizeof(f.level[without]), "gold");
    worker_start(&f, NULL);
    wait_migrated(&f, 60000);
    migrated(&f, 2);
    teardown(&f);
}

/* A worker dies right after renaming a migration's file (before its
 * directory fsync and CompleteJob): the lease runs out, the job is claimed
 * again and finds the file in the new directory; one copy, no history. */
Test(migrate, worker_crash_mid_move)
{
    fx f;

    setup(&f);
    add_contents(&f, 10);
    pid_t w = worker_start(&f, "move.renamed");
    cr_assert_eq(set_levels(&f, MOVED, 3, false, NULL), TIER_OK, "%s", E.message);
    cr_assert_eq(tier_test_wait(w, 20000), 86, "the worker crashed at move.renamed");
    f.w[0] = 0;
    worker_start(&f, NULL);
    wait_migrated(&f, 60000);
    migrated(&f, 0);
    teardown(&f);
}

/* tierd is killed (-9) while the migration runs; the restarted tierd finds
 * which files moved (lstat) and finishes it. */
Test(migrate, tierd_killed_mid_migration)
{
    fx f;

    setup(&f);
    add_contents(&f, 60);
    worker_start(&f, NULL);
    cr_assert_eq(set_levels(&f, MOVED, 3, false, NULL), TIER_OK, "%s", E.message);
    int64_t end = tier_mono_ms() + 20000;
    char from[1200];
    int64_t left = -1;
    do {
        usleep(20 * 1000);
        bronze_migration(&f, from, sizeof(from), &left);
    } while (from[0] != '\0' && (left < 0 || left > 40) && tier_mono_ms() < end);
    tier_test_tierd_stop(&f.td, SIGKILL, 5000);
    usleep(300 * 1000);
    tier_test_tierd_start(&f.td, (char *const[]){"--lease-ms", "1000", NULL});
    wait_migrated(&f, 60000);
    migrated(&f, 0);
    teardown(&f);
}

/* The start gate (pure code): a same-level move is never held by capacity
 * and adds no bytes; a budget matching from = to = the level holds it. */
Test(migrate, gate_same_level)
{
    tier_policy p;
    tier_policy_level lv[2] = {{.name = "bronze", .min = 0, .max = 999, .capacity_bytes = 10},
                               {.name = "silver", .min = 1000, .max = 1999, .capacity_bytes = 10}};
    tier_policy_move mv[3] = {{.cid = 1, .from = 0, .to = 0, .size = 1000},
                              {.cid = 2, .from = 0, .to = 0, .size = 1000},
                              {.cid = 3, .from = 0, .to = 1, .size = 1000}};
    tier_policy_summary sum;
    tier_policy_gate g;
    tier_policy_start_stats st;
    bool start[3];

    tier_policy_window_defaults(&p);
    memset(&sum, 0, sizeof(sum));
    tier_policy_gate_init(&g, 1000);
    cr_assert_eq(tier_policy_start(&p, lv, 2, &g, 1000, mv, 3, 10, &sum, start, &st), 2);
    cr_assert(start[0] && start[1] && !start[2], "capacity holds only the move to silver");
    cr_assert_eq(sum.bytes_now[0], 0, "a same-level move adds no bytes");
    cr_assert_eq(st.waiting_capacity, 1);

    p.nbudgets = 1;
    memset(&p.budgets[0], 0, sizeof(p.budgets[0]));
    snprintf(p.budgets[0].from, sizeof(p.budgets[0].from), "bronze");
    snprintf(p.budgets[0].to, sizeof(p.budgets[0].to), "bronze");
    p.budgets[0].files_per_s = 1;
    tier_policy_gate_init(&g, 1000);
    cr_assert_eq(tier_policy_start(&p, lv, 2, &g, 1000, mv, 2, 10, &sum, start, &st), 1,
                 "a bronze>bronze budget of 1 file/s starts one");
    cr_assert_eq(st.throttled, 1);
}

/* Under a window policy a budget bronze>bronze of 2 files a second spreads
 * the migration of 12 files over several seconds; it still ends. */
Test(migrate, budget_spreads_migration)
{
    fx f;
    Tier__Policy pol = TIER__POLICY__INIT;
    Tier__MoveBudget b = TIER__MOVE_BUDGET__INIT, *bp = &b;
    Tier__SetPolicyRequest req = TIER__SET_POLICY_REQUEST__INIT;
    Tier__SetPolicyReply *rep = NULL;

    setup(&f);
    add_contents(&f, 12);
    pol.mode = "window";
    pol.window_s = 3600;
    pol.bucket_s = 60;
    pol.hysteresis_pct = 20;
    pol.plan_interval_s = 60;
    pol.max_inflight = 100;
    b.from = "bronze";
    b.to = "bronze";
    b.files_per_s = 2;
    pol.budgets = &bp;
    pol.n_budgets = 1;
    req.policy = &pol;
    cr_assert_eq(tier_set_policy(f.c, &req, &rep, &E), TIER_OK, "%s", E.message);
    tier_free(rep);
    worker_start(&f, NULL);
    int64_t t0 = tier_mono_ms();
    cr_assert_eq(set_levels(&f, MOVED, 3, false, NULL), TIER_OK, "%s", E.message);
    wait_migrated(&f, 60000);
    int64_t took = tier_mono_ms() - t0;
    cr_assert_geq(took, 4000, "12 files at 2/s took only %lld ms", (long long)took);
    migrated(&f, 0);
    teardown(&f);
}

/* bronze2 on its own tmpfs, so every migration move crosses filesystems
 * (copy, install, unlink).  A worker dies after installing a file in
 * bronze2 with the source still in bronze (both copies), then tierd is
 * killed -9 too: the restarted tierd sees the file in the new directory
 * (moved), but its job is still there, so the migration does not retire
 * until a worker's retry has removed the source copy.  One copy each, the
 * old directory gone. */
Test(migrate, cross_fs_worker_and_tierd_crash)
{
    fx f;
    char b2[1100];

    setup(&f);
    snprintf(b2, sizeof(b2), "%s/bronze2", f.root);
    cr_assert(mkdir(b2, 0755) == 0);
    cr_assert(mount("tmpfs", b2, "tmpfs", 0, "size=16m,mode=0755") == 0,
              "mount -t tmpfs %s: %s (the test needs another filesystem)", b2, strerror(errno));
    add_contents(&f, 8);
    pid_t w = worker_start(&f, "move.installed");
    cr_assert_eq(set_levels(&f, MOVED, 3, false, NULL), TIER_OK, "%s", E.message);
    cr_assert_eq(tier_test_wait(w, 20000), 86, "the worker crashed at move.installed");
    f.w[0] = 0;
    tier_test_tierd_stop(&f.td, SIGKILL, 5000);
    tier_test_tierd_start(&f.td, (char *const[]){"--lease-ms", "1000", NULL});
    cr_assert(migrating(&f), "a job is left: the migration goes on");
    usleep(1500 * 1000); /* the dead worker's lease runs out */
    worker_start(&f, NULL);
    wait_migrated(&f, 60000);
    migrated(&f, 0);
    workers_stop(&f);
    umount2(b2, MNT_DETACH); /* lazily: tierd may still hold it */
    teardown(&f);
}
