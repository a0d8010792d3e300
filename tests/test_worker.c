/*
 * test_worker.c -- tiering end to end: a real tierd, real tier-worker
 * processes, real Redis and MariaDB, real files in temporary directories.
 *
 * Isolation: each test has its own database (tier_test_db_create, sample
 * levels under its own storage root), its own Redis key prefix
 * (TIER_REDIS_PREFIX), its own ports and its own directories.
 *
 * Contents are inserted into MySQL before tierd starts (tierd loads them at
 * start), which is how 2,000 of them are set up quickly.  File i holds bytes
 * derived from i, so "byte-identical" is checked by regenerating them.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <dirent.h>
#include <pthread.h>
#include <errno.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tier_client.h"
#include "tier_move.h"
#include "tier_testenv.h"
#include "tier_time.h"
#include "tier_worker.h"

#define MAXW 4

typedef struct {
    tier_test_mysql m;
    char *root; /* storage root: root/bronze, root/silver, root/gold */
    char *shm;  /* a tmpfs directory (cross-filesystem test) or NULL */
    char gold[1024];
    char prefix[64];
    tier_test_tierd td; /* its envp serves the workers too */
    pid_t w[MAXW];
    char wlog[MAXW][512];
    char lease[16];
    tier_client *c;
    MYSQL *my;
} fx;

static int seq;
/* Children and the tmpfs directory of the running test, kept outside the
 * test's stack frame for the cleanup after a failed assertion. */
static char shm_dir[64];

/* Runs after every test, also after a failed assertion (which skips the
 * test's own teardown): no tierd or worker outlives its test. */
static void kill_children(void)
{
    tier_test_kill_children();
    if (getenv("TIER_TEST_KEEP") == NULL && shm_dir[0] != '\0')
        tier_test_rmtree(shm_dir);
    shm_dir[0] = '\0';
}

TestSuite(worker, .fini = kill_children);

/* ---------------------------------------------------------- sql */

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

/* ---------------------------------------------------------- files */

static const char *level_dir(fx *f, const char *level, char *buf, size_t len)
{
    if (strcmp(level, "gold") == 0 && f->gold[0])
        snprintf(buf, len, "%s", f->gold);
    else
        snprintf(buf, len, "%s/%s", f->root, level);
    return buf;
}

static char *path_of(fx *f, const char *level, const char *name, char *buf, size_t len)
{
    char d[1024];
    snprintf(buf, len, "%s/%s", level_dir(f, level, d, sizeof(d)), name);
    return buf;
}

/* Deterministic bytes of content i (size n). */
static unsigned char *bytes_of(long i, size_t n)
{
    unsigned char *b = malloc(n + 1);
    uint64_t x = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
    cr_assert(b != NULL);
    for (size_t k = 0; k < n; k++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b[k] = (unsigned char)x;
    }
    return b;
}

static void write_content(fx *f, const char *level, const char *name, long i, size_t n)
{
    char p[1200];
    unsigned char *b = bytes_of(i, n);
    cr_assert(tier_test_write_file(path_of(f, level, name, p, sizeof(p)), b, n), "write %s", p);
    free(b);
}

static bool exists_in(fx *f, const char *level, const char *name)
{
    char p[1200];
    struct stat sb;
    return stat(path_of(f, level, name, p, sizeof(p)), &sb) == 0;
}

static bool same_content(fx *f, const char *level, const char *name, long i, size_t n)
{
    char p[1200];
    size_t len = 0;
    char *got = tier_test_slurp(path_of(f, level, name, p, sizeof(p)), &len);
    unsigned char *want;
    bool ok;
    if (got == NULL)
        return false;
    want = bytes_of(i, n);
    ok = len == n && memcmp(got, want, n) == 0;
    free(got);
    free(want);
    return ok;
}

/* Entries of a level directory: regular names and temporaries. */
static void count_dir(fx *f, const char *level, long *files, long *tmps)
{
    char d[1024];
    DIR *dir = opendir(level_dir(f, level, d, sizeof(d)));
    struct dirent *de;
    *files = *tmps = 0;
    cr_assert(dir != NULL, "opendir %s", d);
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.' && (de->d_name[1] == '\0' || strcmp(de->d_name, "..") == 0))
            continue;
        if (strncmp(de->d_name, TIER_MOVE_TMP_PREFIX, strlen(TIER_MOVE_TMP_PREFIX)) == 0)
            (*tmps)++;
        else
            (*files)++;
    }
    closedir(dir);
}

/* ---------------------------------------------------------- processes */

static void tierd_start(fx *f)
{
    tier_test_tierd_start(&f->td, NULL);
}

static void tierd_stop(fx *f, int sig)
{
    pid_t pid = f->td.pid;
    if (pid <= 0)
        return;
    cr_assert_neq(tier_test_tierd_stop(&f->td, sig, 15000), -1, "tierd did not stop");
}

/* Starts worker k; crash (may be NULL) arms a crash point (TIER_CRASH). */
static void worker_spawn(fx *f, int k, const char *moves, const char *tierd, const char *pull,
                         const char *crash)
{
    char *bin = tier_test_bin("tier-worker");
    char id[32], dirs[3200], d1[1024], d2[1024], d3[1024];
    snprintf(id, sizeof(id), "w%d", k);
    snprintf(dirs, sizeof(dirs), "%s,%s,%s", level_dir(f, "bronze", d1, sizeof(d1)),
             level_dir(f, "silver", d2, sizeof(d2)), level_dir(f, "gold", d3, sizeof(d3)));
    char *argv[] = {bin,          "--tierd",    (char *)tierd,
                    "--pull",     (char *)pull, "--id",
                    id,           "--moves",    (char *)(moves ? moves : "4"),
                    "--lease-ms", f->lease,     "--dirs",
                    dirs,         NULL};
    snprintf(f->wlog[k], sizeof(f->wlog[k]), "%s/worker%d.log", f->root, k);
    char armed[96], *envp[10];
    int ne = 0;
    for (; f->td.envp[ne] != NULL && ne < 8; ne++)
        envp[ne] = f->td.envp[ne];
    if (crash != NULL) {
        snprintf(armed, sizeof(armed), "TIER_CRASH=%s", crash);
        envp[ne++] = armed;
    }
    envp[ne] = NULL;
    f->w[k] = tier_test_spawn(argv, envp, f->wlog[k]);
    cr_assert_gt(f->w[k], 0);
    free(bin);
}

static void worker_start_at(fx *f, int k, const char *moves, const char *tierd, const char *pull)
{
    worker_spawn(f, k, moves, tierd, pull, NULL);
}

static void worker_start(fx *f, int k, const char *moves)
{
    worker_start_at(f, k, moves, f->td.listen, f->td.push);
}

/* SIGTERM: a worker stops cleanly (exit 0). */
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

static bool running(pid_t pid)
{
    return pid > 0 && tier_test_wait(pid, 0) == -1;
}

/* ---------------------------------------------------------- fixture */

/* Seeded contents (the seed's table): cid, level, name, file present. */
typedef struct {
    long cid;
    const char *level, *name;
    bool file;
} seeded;

static void setup(fx *f, const char *lease_ms, bool cross_fs)
{
    char dir[1024], q[1400];

    memset(f, 0, sizeof(*f));
    snprintf(f->lease, sizeof(f->lease), "%s", lease_ms ? lease_ms : "30000");
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
    if (cross_fs) {
        char tmpl[] = "/dev/shm/tier-wtest-XXXXXX";
        cr_assert(mkdtemp(tmpl) != NULL);
        f->shm = strdup(tmpl);
        snprintf(shm_dir, sizeof(shm_dir), "%s", tmpl);
        snprintf(f->gold, sizeof(f->gold), "%s/gold", f->shm);
        cr_assert(mkdir(f->gold, 0755) == 0);
        snprintf(q, sizeof(q), "UPDATE level SET path = '%s/' WHERE content_level = 'gold'",
                 f->gold);
        sql(f, q);
    }
    snprintf(f->prefix, sizeof(f->prefix), "tw%d_%d:", (int)getpid(), seq++);
    tier_test_tierd_init(&f->td, f->root, f->m.db, f->prefix);
    tier_test_tierd_setenv(&f->td, "TIER_THREADS=8");
    cr_assert_eq(tier_client_open(&f->c, f->td.listen), TIER_OK);
    tier_client_set_timeout(f->c, 10000);
}

static void teardown(fx *f)
{
    for (int k = 0; k < MAXW; k++)
        worker_stop(f, k);
    tierd_stop(f, SIGTERM);
    tier_client_close(f->c);
    mysql_close(f->my);
    tier_test_db_drop(&f->m);
    if (getenv("TIER_TEST_KEEP") == NULL) {
        tier_test_rmtree(f->root);
        if (f->shm)
            tier_test_rmtree(f->shm);
    }
    free(f->root);
    free(f->shm);
    shm_dir[0] = '\0';
}

/* Contents 1..n named f<i>.bin in bronze, size bytes each; inserted in
 * MySQL (before tierd starts). */
static void many_contents(fx *f, long n, size_t size)
{
    size_t cap = 64 + 64 * 1000, len;
    char *q = malloc(cap);
    cr_assert(q != NULL);
    for (long start = 1; start <= n; start += 1000) {
        len =
            (size_t)snprintf(q, cap, "INSERT INTO contents (cid, content_level, filename) VALUES ");
        for (long i = start; i < start + 1000 && i <= n; i++) {
            char name[32];
            snprintf(name, sizeof(name), "f%06ld.bin", i);
            write_content(f, "bronze", name, i, size);
            len += (size_t)snprintf(q + len, cap - len, "%s(%ld, 'bronze', '%s')",
                                    i == start ? "" : ",", i, name);
        }
        sql(f, q);
    }
    free(q);
}

/* Even cids to silver (1500), odd to gold (5000), in batches of 1000. */
static int64_t target_count(long i)
{
    return i % 2 == 0 ? 1500 : 5000;
}

static const char *target_level(long i)
{
    return i % 2 == 0 ? "silver" : "gold";
}

static void report_range(fx *f, long from, long to)
{
    Tier__ViewReport *v = calloc(1000, sizeof(*v));
    Tier__ViewReport **list = calloc(1000, sizeof(*list));
    for (long s = from; s <= to; s += 1000) {
        Tier__ReportViewsRequest req = TIER__REPORT_VIEWS_REQUEST__INIT;
        Tier__ReportViewsReply *rep;
        tier_error err;
        size_t n = 0;
        for (long i = s; i < s + 1000 && i <= to; i++, n++) {
            tier__view_report__init(&v[n]);
            v[n].cid = i;
            v[n].count = target_count(i);
            list[n] = &v[n];
        }
        req.reports = list;
        req.n_reports = n;
        cr_assert_eq(tier_report_views(f->c, &req, &rep, &err), TIER_OK, "%s", err.message);
        for (size_t k = 0; k < rep->n_results; k++)
            cr_assert_eq(rep->results[k]->code, TIER_OK, "cid %lld: %s",
                         (long long)rep->results[k]->cid, rep->results[k]->message);
        tier_free(rep);
    }
    free(v);
    free(list);
}

static void report_one(fx *f, int64_t cid, int64_t count)
{
    Tier__ViewReport v = TIER__VIEW_REPORT__INIT, *list[1] = {&v};
    Tier__ReportViewsRequest req = TIER__REPORT_VIEWS_REQUEST__INIT;
    Tier__ReportViewsReply *rep;
    tier_error err;
    v.cid = cid;
    v.count = count;
    req.reports = list;
    req.n_reports = 1;
    cr_assert_eq(tier_report_views(f->c, &req, &rep, &err), TIER_OK, "%s", err.message);
    cr_assert_eq(rep->results[0]->code, TIER_OK, "%s", rep->results[0]->message);
    tier_free(rep);
}

static long settled(fx *f, long n)
{
    char q[256];
    snprintf(q, sizeof(q),
             "SELECT COUNT(*) FROM contents WHERE cid <= %ld AND ((cid %% 2 = 0 AND "
             "content_level = 'silver') OR (cid %% 2 = 1 AND content_level = 'gold'))",
             n);
    return (long)sqlnum(f, q);
}

static size_t jobs_listed(fx *f, const char *status)
{
    Tier__ListJobsRequest req = TIER__LIST_JOBS_REQUEST__INIT;
    Tier__ListJobsReply *rep;
    tier_error err;
    req.status = (char *)status;
    req.limit = 100000;
    cr_assert_eq(tier_list_jobs(f->c, &req, &rep, &err), TIER_OK, "%s", err.message);
    size_t n = rep->n_jobs;
    tier_free(rep);
    return n;
}

static void dump_logs(fx *f, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int k = -1; k < MAXW && used + 1 < len; k++) {
        const char *p = k < 0 ? f->td.log : f->wlog[k];
        size_t n = 0;
        char *log = p[0] ? tier_test_slurp(p, &n) : NULL;
        if (log == NULL)
            continue;
        const char *tail = n > 1500 ? log + n - 1500 : log;
        used += (size_t)snprintf(buf + used, len - used, "\n--- %s:\n%s", p, tail);
        free(log);
        if (used >= len)
            used = len - 1;
    }
}

/* Waits until contents 1..n are on their target levels. */
static void wait_settled(fx *f, long n, int timeout_ms)
{
    int64_t end = tier_mono_ms() + timeout_ms;
    long got = 0;
    while (tier_mono_ms() < end) {
        if ((got = settled(f, n)) == n)
            return;
        usleep(100 * 1000);
    }
    static char logs[8000];
    dump_logs(f, logs, sizeof(logs));
    cr_assert_fail("%ld of %ld contents on their target after %d ms; jobs: %zu%s", got, n,
                   timeout_ms, jobs_listed(f, ""), logs);
}

/* Every content 1..n: exactly once, in its target directory, byte-identical;
 * one history row bronze>target; no temporaries; no jobs left. */
static void check_all(fx *f, long n, size_t size)
{
    char q[256];
    long files, tmps;

    for (long i = 1; i <= n; i++) {
        char name[32];
        snprintf(name, sizeof(name), "f%06ld.bin", i);
        const char *t = target_level(i), *other = i % 2 == 0 ? "gold" : "silver";
        cr_assert(same_content(f, t, name, i, size), "%s not intact in %s", name, t);
        cr_assert(!exists_in(f, "bronze", name), "%s still in bronze", name);
        cr_assert(!exists_in(f, other, name), "%s also in %s", name, other);
    }
    count_dir(f, "bronze", &files, &tmps);
    cr_assert_eq(files + tmps, 0, "bronze: %ld files, %ld temporaries", files, tmps);
    count_dir(f, "silver", &files, &tmps);
    cr_assert_eq(files, n / 2);
    cr_assert_eq(tmps, 0);
    count_dir(f, "gold", &files, &tmps);
    cr_assert_eq(files, n - n / 2);
    cr_assert_eq(tmps, 0);
    cr_assert_eq(settled(f, n), n);
    snprintf(q, sizeof(q), "SELECT COUNT(*) FROM update_history WHERE cid <= %ld", n);
    cr_assert_eq(sqlnum(f, q), n, "history rows");
    snprintf(q, sizeof(q), "SELECT COUNT(DISTINCT cid) FROM update_history WHERE cid <= %ld", n);
    cr_assert_eq(sqlnum(f, q), n, "one history row per content");
    snprintf(q, sizeof(q),
             "SELECT COUNT(*) FROM update_history WHERE cid <= %ld AND old_content_level = "
             "'bronze' AND new_content_level = IF(cid %% 2 = 0, 'silver', 'gold')",
             n);
    cr_assert_eq(sqlnum(f, q), n, "history rows say bronze > target");
    cr_assert_eq(jobs_listed(f, ""), 0, "jobs left in Redis");
}

/* Lines of the workers' logs containing needle (count), and how many
 * distinct filenames f<i>.bin appear in plain "moves" lines. */
static long log_count(fx *f, const char *needle)
{
    long c = 0;
    for (int k = 0; k < MAXW; k++) {
        char *log = f->wlog[k][0] ? tier_test_slurp(f->wlog[k], NULL) : NULL;
        for (char *p = log; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
            c++;
        free(log);
    }
    return c;
}

/* Per file, how many workers renamed/copied it (lines "<name> moves ..."
 * without the "already" of a re-run that found it moved). */
static void moves_per_file(fx *f, long n, unsigned char *count)
{
    memset(count, 0, (size_t)n + 1);
    for (int k = 0; k < MAXW; k++) {
        char *log = f->wlog[k][0] ? tier_test_slurp(f->wlog[k], NULL) : NULL;
        for (char *line = log; line && *line;) {
            char *nl = strchr(line, '\n');
            if (nl)
                *nl = '\0';
            char *m = strstr(line, " moves bronze to ");
            long i;
            if (m != NULL && strstr(line, "already") == NULL &&
                sscanf(m - 11, "f%06ld.bin", &i) == 1 && i >= 1 && i <= n && count[i] < 255)
                count[i]++;
            line = nl ? nl + 1 : NULL;
        }
        free(log);
    }
}

/* ---------------------------------------------------------- tests */

Test(worker, usage)
{
    char *bin = tier_test_bin("tier-worker");
    char out[4096];
    char *help[] = {bin, "--help", NULL};
    char *none[] = {bin, NULL};
    char *bad[] = {bin, "--tierd", "tcp://127.0.0.1:1", "--pull", "tcp://127.0.0.1:2", "--moves",
                   "0", NULL};
    char *envp[] = {"TIER_URL=", "TIER_PULL=", NULL};
    cr_assert_eq(tier_test_run(help, NULL, out, sizeof(out), 5000), 0);
    cr_assert(strstr(out, "--pull") != NULL);
    cr_assert_eq(tier_test_run(none, envp, out, sizeof(out), 5000), 2, "%s", out);
    cr_assert_eq(tier_test_run(bad, NULL, out, sizeof(out), 5000), 2, "%s", out);
    free(bin);
}

/* --crash-points lists the worker's points in protocol order; an armed
 * name that is not one of them is refused at start. */
Test(worker, crash_points)
{
    char *bin = tier_test_bin("tier-worker");
    char out[4096];
    char *list[] = {bin, "--crash-points", NULL};
    char *help[] = {bin, "--help", NULL};
    char *typo[] = {"TIER_CRASH=move.renamd", NULL};
    cr_assert_eq(tier_test_run(list, NULL, out, sizeof(out), 5000), 0, "%s", out);
    cr_assert_str_eq(out, "worker.after_claim\nmove.renamed\nmove.linked\nmove.copied\n"
                          "move.installed\nmove.src_unlinked\nworker.before_dir_sync\n"
                          "worker.before_complete\nworker.after_complete\n");
    cr_assert_eq(tier_test_run(help, typo, out, sizeof(out), 5000), 2, "%s", out);
    cr_assert(strstr(out, "no such crash point") != NULL, "%s", out);
    free(bin);
}

/* The seed's walk-through: contents 1..6 as in its table (b.mp4 missing on
 * disk), g.mp4 added as cid 7 and reported at 1964 -> silver; d.mp4 and
 * e.mp4 to gold; b.mp4 not exists. */
Test(worker, seed_walkthrough, .timeout = 120)
{
    static const seeded s[] = {{1, "gold", "a.mp4", true},   {2, "bronze", "b.mp4", false},
                               {3, "silver", "c.mp4", true}, {4, "bronze", "d.mp4", true},
                               {5, "silver", "e.mp4", true}, {6, "gold", "f.mp4", true}};
    fx f;
    char q[256], buf[64];

    setup(&f, NULL, false);
    for (size_t i = 0; i < 6; i++) {
        if (s[i].file)
            write_content(&f, s[i].level, s[i].name, s[i].cid, 100 + s[i].cid);
        snprintf(q, sizeof(q),
                 "INSERT INTO contents (cid, content_level, filename) VALUES (%ld, '%s', '%s')",
                 s[i].cid, s[i].level, s[i].name);
        sql(&f, q);
    }
    tierd_start(&f);
    worker_start(&f, 0, NULL);
    worker_start(&f, 1, NULL);

    write_content(&f, "bronze", "g.mp4", 7, 107);
    Tier__AddContentRequest ar = TIER__ADD_CONTENT_REQUEST__INIT;
    Tier__AddContentReply *arep;
    tier_error err;
    ar.filename = "g.mp4";
    ar.cid = 7;
    cr_assert_eq(tier_add_content(f.c, &ar, &arep, &err), TIER_OK, "%s", err.message);
    tier_free(arep);

    report_one(&f, 7, 1964); /* the seed's curl: bronze -> silver */
    report_one(&f, 4, 2342); /* d.mp4 moves bronze to gold */
    report_one(&f, 5, 2500); /* e.mp4 moves silver to gold */
    report_one(&f, 2, 1548); /* b.mp4 not exists */

    int64_t end = tier_mono_ms() + 20000;
    while (tier_mono_ms() < end && sqlnum(&f, "SELECT COUNT(*) FROM update_history") < 3)
        usleep(50 * 1000);
    while (tier_mono_ms() < end && jobs_listed(&f, "failed") < 1)
        usleep(50 * 1000);

    tier_test_sql1(f.my, "SELECT content_level FROM contents WHERE cid = 7", buf, sizeof(buf));
    cr_assert_str_eq(buf, "silver");
    cr_assert(same_content(&f, "silver", "g.mp4", 7, 107));
    cr_assert(!exists_in(&f, "bronze", "g.mp4"));
    cr_assert_eq(sqlnum(&f, "SELECT COUNT(*) FROM update_history WHERE cid = 7"), 1);
    tier_test_sql1(f.my,
                   "SELECT CONCAT(old_content_level, '>', new_content_level) FROM update_history "
                   "WHERE cid = 7",
                   buf, sizeof(buf));
    cr_assert_str_eq(buf, "bronze>silver");
    Tier__GetJobRequest gr = TIER__GET_JOB_REQUEST__INIT;
    Tier__GetJobReply *grep_;
    gr.cid = 7;
    cr_assert_eq(tier_get_job(f.c, &gr, &grep_, &err), TIER_NOT_FOUND);

    tier_test_sql1(f.my, "SELECT content_level FROM contents WHERE cid = 4", buf, sizeof(buf));
    cr_assert_str_eq(buf, "gold");
    cr_assert(same_content(&f, "gold", "d.mp4", 4, 104));
    tier_test_sql1(f.my, "SELECT content_level FROM contents WHERE cid = 5", buf, sizeof(buf));
    cr_assert_str_eq(buf, "gold");
    cr_assert(same_content(&f, "gold", "e.mp4", 5, 105));
    tier_test_sql1(f.my, "SELECT content_level FROM contents WHERE cid = 2", buf, sizeof(buf));
    cr_assert_str_eq(buf, "bronze");

    /* The workers' own words, as in the seed's screen. */
    cr_assert_eq(log_count(&f, "g.mp4 moves bronze to silver"), 1);
    cr_assert_eq(log_count(&f, "d.mp4 moves bronze to gold"), 1);
    cr_assert_eq(log_count(&f, "e.mp4 moves silver to gold"), 1);
    cr_assert_geq(log_count(&f, "b.mp4 not exists"), 1);
    teardown(&f);
}

/* Two workers, 2,000 jobs: each file moved once, all in place. */
Test(worker, two_workers_2000_jobs, .timeout = 300)
{
    const long n = 2000;
    unsigned char *moved = malloc(n + 1);
    fx f;

    setup(&f, NULL, false);
    many_contents(&f, n, 512);
    tierd_start(&f);
    worker_start(&f, 0, NULL);
    worker_start(&f, 1, NULL);
    usleep(300 * 1000); /* both connected, so the push spreads the jobs */
    report_range(&f, 1, n);
    wait_settled(&f, n, 120000);
    check_all(&f, n, 512);

    /* Never moved twice: exactly one "moves" line per file over both logs. */
    moves_per_file(&f, n, moved);
    long per_worker[2] = {log_count(&f, " moves bronze to "), 0};
    for (long i = 1; i <= n; i++)
        cr_assert_eq(moved[i], 1, "f%06ld.bin moved %u times", i, moved[i]);
    cr_assert_eq(per_worker[0], n);
    /* Both took part. */
    for (int k = 0; k < 2; k++) {
        char *log = tier_test_slurp(f.wlog[k], NULL);
        cr_assert(log && strstr(log, " moves bronze to ") != NULL, "worker %d moved nothing", k);
        free(log);
    }
    free(moved);
    teardown(&f);
}

/* The cids claimed by worker id right now. */
static size_t claimed_by(fx *f, const char *id, int64_t *out, size_t max)
{
    Tier__ListJobsRequest req = TIER__LIST_JOBS_REQUEST__INIT;
    Tier__ListJobsReply *rep;
    tier_error err;
    size_t n = 0;
    req.status = "claimed";
    req.limit = 100000;
    if (tier_list_jobs(f->c, &req, &rep, &err) != TIER_OK)
        return 0;
    for (size_t i = 0; i < rep->n_jobs && n < max; i++)
        if (strcmp(rep->jobs[i]->worker_id, id) == 0)
            out[n++] = rep->jobs[i]->cid;
    tier_free(rep);
    return n;
}

/* kill -9 of a worker holding claimed jobs, a replacement started: every
 * job is sent again and every file ends exactly once, intact, in place. */
Test(worker, kill9_worker_mid_moves, .timeout = 300)
{
    const long n = 4000;
    int64_t held[4096];
    size_t nheld = 0;
    fx f;

    setup(&f, "2000", false);
    many_contents(&f, n, 2048);
    tierd_start(&f);
    worker_start(&f, 0, "2");
    worker_start(&f, 1, "2");
    usleep(300 * 1000);
    report_range(&f, 1, n);
    /* Kill w1 while it holds claims, after some moves were committed. */
    int64_t end = tier_mono_ms() + 60000;
    while (tier_mono_ms() < end) {
        /* Freeze w1 first so that the claims we see are still held when
         * it dies (moves are fast enough to finish between a look and a
         * kill otherwise). */
        if (settled(&f, n) >= 50) {
            kill(f.w[1], SIGSTOP);
            if ((nheld = claimed_by(&f, "w1", held, 4096)) > 0)
                break;
            kill(f.w[1], SIGCONT);
        }
        usleep(2000);
    }
    kill(f.w[1], SIGKILL);
    cr_assert_eq(tier_test_wait(f.w[1], 5000), 128 + SIGKILL);
    f.w[1] = 0;
    long at_kill = settled(&f, n);
    cr_assert_gt(nheld, 0, "w1 never held a claim (settled %ld)", at_kill);
    cr_assert_lt(at_kill, n, "everything was done before the kill");
    worker_start(&f, 2, "2");
    wait_settled(&f, n, 120000);
    check_all(&f, n, 2048);
    /* The killed worker's claims were all finished by someone else. */
    for (size_t i = 0; i < nheld; i++) {
        char q[128], buf[32];
        snprintf(q, sizeof(q), "SELECT content_level FROM contents WHERE cid = %lld",
                 (long long)held[i]);
        tier_test_sql1(f.my, q, buf, sizeof(buf));
        cr_assert_str_eq(buf, target_level(held[i]));
    }
    cr_log_info("kill -9 with %zu claims held, %ld of %ld settled at the kill", nheld, at_kill, n);
    teardown(&f);
}

/* The seed's b.mp4: a missing source parks the job as failed with the
 * reason, and the other jobs go on. */
Test(worker, missing_source_fails_job, .timeout = 120)
{
    fx f;
    char buf[64];

    setup(&f, NULL, false);
    sql(&f, "INSERT INTO contents (cid, content_level, filename) VALUES (2, 'bronze', 'b.mp4')");
    sql(&f, "INSERT INTO contents (cid, content_level, filename) VALUES (4, 'bronze', 'd.mp4')");
    write_content(&f, "bronze", "d.mp4", 4, 4000);
    tierd_start(&f);
    worker_start(&f, 0, NULL);
    report_one(&f, 2, 1548);
    report_one(&f, 4, 2342);

    Tier__Job *job = NULL;
    Tier__ListJobsReply *rep = NULL;
    int64_t end = tier_mono_ms() + 20000;
    while (tier_mono_ms() < end && job == NULL) {
        Tier__ListJobsRequest req = TIER__LIST_JOBS_REQUEST__INIT;
        tier_error err;
        req.status = "failed";
        cr_assert_eq(tier_list_jobs(f.c, &req, &rep, &err), TIER_OK);
        if (rep->n_jobs > 0)
            job = rep->jobs[0];
        else {
            tier_free(rep);
            usleep(50 * 1000);
        }
    }
    cr_assert(job != NULL, "no failed job");
    cr_assert_eq(job->cid, 2);
    cr_assert_str_eq(job->status, "failed");
    cr_assert_str_eq(job->reason, "b.mp4 not exists");
    cr_assert_str_eq(job->target, "silver");
    cr_assert_eq(job->attempts, 1, "a permanent failure is not retried");
    tier_free(rep);
    tier_test_sql1(f.my, "SELECT content_level FROM contents WHERE cid = 2", buf, sizeof(buf));
    cr_assert_str_eq(buf, "bronze");
    cr_assert_eq(sqlnum(&f, "SELECT COUNT(*) FROM update_history WHERE cid = 2"), 0);

    while (tier_mono_ms() < end && sqlnum(&f, "SELECT COUNT(*) FROM update_history") < 1)
        usleep(50 * 1000);
    tier_test_sql1(f.my, "SELECT content_level FROM contents WHERE cid = 4", buf, sizeof(buf));
    cr_assert_str_eq(buf, "gold");
    cr_assert(same_content(&f, "gold", "d.mp4", 4, 4000));
    cr_assert_geq(log_count(&f, "b.mp4 not exists"), 1);
    teardown(&f);
}

/* Gold on tmpfs (/dev/shm), bronze on /tmp's filesystem: copies, intact,
 * no temporaries left, sources gone; a big file too (progress callback,
 * lease renewal and hand-back run during its copy). */
Test(worker, cross_filesystem_move, .timeout = 180)
{
    static const size_t sizes[] = {0, 1, 4096, 1000003, 3 << 20, 256 << 20};
    const long n = sizeof(sizes) / sizeof(sizes[0]);
    struct stat a, b;
    char q[512], d[1200];
    fx f;

    setup(&f, "1500", true);
    cr_assert(stat(f.root, &a) == 0 && stat(f.gold, &b) == 0);
    cr_assert_neq(a.st_dev, b.st_dev, "gold must be on another filesystem");
    for (long i = 1; i <= n; i++) {
        char name[32];
        snprintf(name, sizeof(name), "x%ld.bin", i);
        write_content(&f, "bronze", name, i, sizes[i - 1]);
        snprintf(q, sizeof(q),
                 "INSERT INTO contents (cid, content_level, filename) VALUES (%ld, 'bronze', "
                 "'%s')",
                 i, name);
        sql(&f, q);
    }
    /* A stale temporary from a "crashed" attempt, old enough to be removed
     * at start-up (2 leases). */
    snprintf(d, sizeof(d), "%s/%sx9.bin.dead", f.gold, TIER_MOVE_TMP_PREFIX);
    cr_assert(tier_test_write_file(d, "junk", 4));
    sleep(4);
    tierd_start(&f);
    worker_start(&f, 0, "2");
    /* Biggest first; once it is claimed (its copy under way), the small
     * ones: they must not wait for it. */
    report_one(&f, n, 5000);
    int64_t t0 = tier_mono_ms(), small_done = -1;
    for (;;) {
        Tier__GetJobRequest gr = TIER__GET_JOB_REQUEST__INIT;
        Tier__GetJobReply *g;
        tier_error err;
        bool claimed = false;
        gr.cid = n;
        if (tier_get_job(f.c, &gr, &g, &err) == TIER_OK) {
            claimed = strcmp(g->job->status, "claimed") == 0;
            tier_free(g);
        }
        if (claimed)
            break;
        cr_assert_lt(tier_mono_ms() - t0, 10000, "the big job was never claimed");
        usleep(1000);
    }
    for (long i = 1; i < n; i++)
        report_one(&f, i, 5000);
    bool big_running_then = false;
    while (tier_mono_ms() - t0 < 120000) {
        snprintf(q, sizeof(q),
                 "SELECT COUNT(*) FROM contents WHERE content_level = 'gold' AND cid < %ld", n);
        if (small_done < 0 && sqlnum(&f, q) == n - 1) {
            small_done = tier_mono_ms() - t0;
            snprintf(q, sizeof(q), "SELECT content_level FROM contents WHERE cid = %ld", n);
            tier_test_sql1(f.my, q, d, sizeof(d));
            big_running_then = strcmp(d, "gold") != 0;
        }
        if (sqlnum(&f, "SELECT COUNT(*) FROM contents WHERE content_level = 'gold'") == n)
            break;
        usleep(5 * 1000);
    }
    int64_t all_done = tier_mono_ms() - t0;
    cr_assert_eq(sqlnum(&f, "SELECT COUNT(*) FROM contents WHERE content_level = 'gold'"), n);
    for (long i = 1; i <= n; i++) {
        char name[32];
        snprintf(name, sizeof(name), "x%ld.bin", i);
        cr_assert(same_content(&f, "gold", name, i, sizes[i - 1]), "%s differs", name);
        cr_assert(!exists_in(&f, "bronze", name), "%s still in bronze", name);
    }
    long files, tmps;
    count_dir(&f, "gold", &files, &tmps);
    cr_assert_eq(tmps, 0, "temporaries left in %s", level_dir(&f, "gold", d, sizeof(d)));
    cr_assert_eq(files, n);
    cr_assert_eq(sqlnum(&f, "SELECT COUNT(*) FROM update_history"), n);
    cr_assert_geq(log_count(&f, "copied across filesystems"), n - 1);
    cr_log_info("cross-fs: small files done at %lld ms, all at %lld ms", (long long)small_done,
                (long long)all_done);
    cr_assert(big_running_then, "small moves waited for the big copy (%lld vs %lld ms)",
              (long long)small_done, (long long)all_done);
    teardown(&f);
}

/* tierd killed and restarted while two workers run: they carry on. */
Test(worker, tierd_restart, .timeout = 300)
{
    const long n = 2000;
    fx f;

    setup(&f, "5000", false);
    many_contents(&f, n, 256);
    tierd_start(&f);
    worker_start(&f, 0, NULL);
    worker_start(&f, 1, NULL);
    usleep(300 * 1000);
    report_range(&f, 1, n / 2);
    int64_t end = tier_mono_ms() + 30000;
    while (tier_mono_ms() < end && settled(&f, n / 2) < n / 8)
        usleep(2000);
    tierd_stop(&f, SIGKILL);
    long at_kill = settled(&f, n);
    sleep(2); /* workers see tierd away: calls fail and are retried */
    cr_assert(running(f.w[0]) && running(f.w[1]), "a worker exited while tierd was away");
    tierd_start(&f);
    report_range(&f, n / 2 + 1, n);
    wait_settled(&f, n, 120000);
    check_all(&f, n, 256);
    cr_assert(running(f.w[0]) && running(f.w[1]));
    cr_log_info("tierd killed with %ld of %ld settled", at_kill, n);
    teardown(&f);
}

/* ---------------------------------------------------------- in-process */

static void *run_worker(void *arg)
{
    return (void *)(intptr_t)tier_worker_run(arg);
}

/* A tier_worker inside the test process: moves a file, reports its size
 * (the row starts with a stale size of 1, which the size pass leaves alone:
 * only the worker's report can make it 7777), stops on request, closes
 * cleanly; a second open with a bad config is refused. */
Test(worker, in_process, .timeout = 120)
{
    char d1[1024], d2[1024], d3[1024], dirs[3200], buf[64];
    tier_worker_config cfg = {0};
    tier_worker *w = NULL;
    pthread_t t;
    void *ret;
    fx f;

    setup(&f, NULL, false);
    write_content(&f, "bronze", "g.mp4", 7, 7777);
    sql(&f, "INSERT INTO contents (cid, content_level, filename, size_bytes) VALUES (7, 'bronze', "
            "'g.mp4', 1)");
    tierd_start(&f);
    snprintf(dirs, sizeof(dirs), "%s,%s,%s", level_dir(&f, "bronze", d1, sizeof(d1)),
             level_dir(&f, "silver", d2, sizeof(d2)), level_dir(&f, "gold", d3, sizeof(d3)));
    cfg.tierd_url = f.td.listen;
    cfg.pull_url = f.td.push;
    cfg.id = "inproc";
    cfg.moves = 2;
    cfg.dirs = dirs;
    cr_assert_eq(tier_worker_open(&w, &cfg), TIER_OK);
    cr_assert_eq(pthread_create(&t, NULL, run_worker, w), 0);
    usleep(200 * 1000); /* connected, so the push reaches it */
    report_one(&f, 7, 1964);
    int64_t end = tier_mono_ms() + 20000;
    while (tier_mono_ms() < end && sqlnum(&f, "SELECT COUNT(*) FROM update_history") < 1)
        usleep(50 * 1000);
    tier_test_sql1(f.my, "SELECT content_level FROM contents WHERE cid = 7", buf, sizeof(buf));
    cr_assert_str_eq(buf, "silver");
    cr_assert(same_content(&f, "silver", "g.mp4", 7, 7777));
    cr_assert(!exists_in(&f, "bronze", "g.mp4"));
    cr_assert_eq(sqlnum(&f, "SELECT size_bytes FROM contents WHERE cid = 7"), 7777);

    int64_t t0 = tier_mono_ms();
    tier_worker_stop(w, false);
    cr_assert_eq(pthread_join(t, &ret), 0);
    cr_assert_eq((int)(intptr_t)ret, TIER_OK);
    cr_assert_lt(tier_mono_ms() - t0, 5000, "stop took %lld ms", (long long)(tier_mono_ms() - t0));
    cr_assert_eq(tier_worker_run(w), TIER_FAILED_PRECONDITION, "run is once per object");
    tier_worker_close(w);

    cfg.dirs = "relative/dir";
    cr_assert_eq(tier_worker_open(&w, &cfg), TIER_INVALID_ARGUMENT);
    cr_assert_null(w);
    teardown(&f);
}

/* Several tierd addresses, the first of each list dead (a standby that is
 * not the writer does not listen): libtier and tier-worker use the live
 * one. */
Test(worker, several_tierd_urls, .timeout = 120)
{
    char dead[64], dead_push[64], urls[300], pulls[300], buf[64];
    Tier__Rpc__HealthRequest hr = TIER__RPC__HEALTH_REQUEST__INIT;
    Tier__Rpc__HealthReply *h;
    tier_client *c;
    tier_error err;
    fx f;

    setup(&f, NULL, false);
    write_content(&f, "bronze", "g.mp4", 7, 700);
    sql(&f, "INSERT INTO contents (cid, content_level, filename) VALUES (7, 'bronze', 'g.mp4')");
    tierd_start(&f);
    tier_test_dead_url(dead, sizeof(dead));
    tier_test_dead_url(dead_push, sizeof(dead_push));
    snprintf(urls, sizeof(urls), "%s,%s", dead, f.td.listen);
    snprintf(pulls, sizeof(pulls), "%s,%s", dead_push, f.td.push);

    cr_assert_eq(tier_client_open(&c, urls), TIER_OK);
    tier_client_set_timeout(c, 1000);
    cr_assert_eq(tier_health(c, &hr, &h, &err), TIER_OK, "%s", err.message);
    tier_free(h);
    /* The live one is remembered: no timeout on the dead one again. */
    int64_t t0 = tier_mono_ms();
    cr_assert_eq(tier_health(c, &hr, &h, &err), TIER_OK, "%s", err.message);
    tier_free(h);
    cr_assert_lt(tier_mono_ms() - t0, 500);
    tier_client_close(c);
    /* All dead: UNAVAILABLE; a bad list: refused at open. */
    snprintf(urls, sizeof(urls), "%s,%s", dead, dead_push);
    cr_assert_eq(tier_client_open(&c, urls), TIER_OK);
    tier_client_set_timeout(c, 300);
    cr_assert_eq(tier_health(c, &hr, &h, &err), TIER_UNAVAILABLE);
    tier_client_close(c);
    cr_assert_eq(tier_client_open(&c, ","), TIER_INVALID_ARGUMENT);
    cr_assert_eq(tier_client_open(&c, "tcp://127.0.0.1:1,nonsense"), TIER_INVALID_ARGUMENT);

    snprintf(urls, sizeof(urls), "%s,%s", dead, f.td.listen);
    worker_start_at(&f, 0, NULL, urls, pulls);
    usleep(300 * 1000);
    report_one(&f, 7, 1964);
    int64_t end = tier_mono_ms() + 30000;
    while (tier_mono_ms() < end && sqlnum(&f, "SELECT COUNT(*) FROM update_history") < 1)
        usleep(50 * 1000);
    tier_test_sql1(f.my, "SELECT content_level FROM contents WHERE cid = 7", buf, sizeof(buf));
    cr_assert_str_eq(buf, "silver");
    cr_assert(same_content(&f, "silver", "g.mp4", 7, 700));
    teardown(&f);
}

/* ---------------------------------------------------------- crash points */

/* For each point: a worker armed with it gets one job (c<i>.bin, bronze to
 * gold) and dies there (exit 86, like kill -9 at that step); the next one
 * is armed with the next point and may meet the earlier jobs again after
 * their lease.  Then a plain worker finishes everything: each file exactly
 * once, intact, at the destination, one history row, no temporaries. */
static void crash_walk(bool cross_fs, const char *const *points, long n)
{
    char q[256], name[32], *log;
    long files, tmps;
    fx f;

    setup(&f, "1000", cross_fs);
    for (long i = 1; i <= n; i++) {
        snprintf(name, sizeof(name), "c%ld.bin", i);
        write_content(&f, "bronze", name, i, 1000 + (size_t)i);
        snprintf(q, sizeof(q),
                 "INSERT INTO contents (cid, content_level, filename) VALUES (%ld, 'bronze', '%s')",
                 i, name);
        sql(&f, q);
    }
    tierd_start(&f);
    for (long i = 1; i <= n; i++) {
        worker_spawn(&f, 0, "1", f.td.listen, f.td.push, points[i - 1]);
        usleep(300 * 1000);
        report_one(&f, i, 5000);
        int st = tier_test_wait(f.w[0], 30000);
        log = tier_test_slurp(f.wlog[0], NULL);
        cr_assert_eq(st, 86, "%s: exit %d; log:\n%.3000s", points[i - 1], st, log ? log : "");
        cr_assert(log != NULL && strstr(log, "crash point") != NULL);
        free(log);
        f.w[0] = 0;
        unlink(f.wlog[0]);
    }
    /* A temporary left by "move.copied" is removed by a worker's start-up
     * once it is two leases old (it could be a live attempt's before). */
    usleep(2500 * 1000);
    worker_start(&f, 1, NULL);
    int64_t end = tier_mono_ms() + 60000;
    while (tier_mono_ms() < end &&
           sqlnum(&f, "SELECT COUNT(*) FROM contents WHERE content_level = 'gold'") < n)
        usleep(50 * 1000);
    for (long i = 1; i <= n; i++) {
        snprintf(name, sizeof(name), "c%ld.bin", i);
        cr_assert(same_content(&f, "gold", name, i, 1000 + (size_t)i), "%s (%s) not intact", name,
                  points[i - 1]);
        cr_assert(!exists_in(&f, "bronze", name), "%s (%s) still in bronze", name, points[i - 1]);
    }
    count_dir(&f, "gold", &files, &tmps);
    cr_assert_eq(files, n);
    cr_assert_eq(tmps, 0);
    count_dir(&f, "bronze", &files, &tmps);
    cr_assert_eq(files + tmps, 0);
    cr_assert_eq(sqlnum(&f, "SELECT COUNT(*) FROM update_history"), n);
    cr_assert_eq(jobs_listed(&f, ""), 0, "jobs left in Redis");
    teardown(&f);
}

/* Every point reachable with a plain rename ("move.linked" needs a
 * filesystem that refuses RENAME_NOREPLACE: test_move covers that step). */
Test(worker, crash_points_same_fs, .timeout = 240)
{
    static const char *const points[] = {"worker.after_claim", "move.renamed",
                                         "worker.before_dir_sync", "worker.before_complete",
                                         "worker.after_complete"};
    crash_walk(false, points, 5);
}

Test(worker, crash_points_cross_fs, .timeout = 240)
{
    static const char *const points[] = {"move.copied", "move.installed", "move.src_unlinked",
                                         "worker.before_complete"};
    crash_walk(true, points, 4);
}

/* The data-safety hole tier_move_file_any closes: a worker moves the file
 * bronze -> silver and dies before CompleteJob; the job is retargeted to
 * gold (also_dirs: silver); the next worker finds the file in silver. */
Test(worker, retargeted_after_a_dead_move, .timeout = 120)
{
    char buf[64];
    fx f;

    setup(&f, "1000", false);
    write_content(&f, "bronze", "r.mp4", 9, 9000);
    sql(&f, "INSERT INTO contents (cid, content_level, filename) VALUES (9, 'bronze', 'r.mp4')");
    tierd_start(&f);
    worker_spawn(&f, 0, "1", f.td.listen, f.td.push, "worker.before_complete");
    usleep(300 * 1000);
    report_one(&f, 9, 1964); /* silver */
    cr_assert_eq(tier_test_wait(f.w[0], 20000), 86);
    f.w[0] = 0;
    cr_assert(exists_in(&f, "silver", "r.mp4") && !exists_in(&f, "bronze", "r.mp4"));
    /* Lease (1 s) reaped, then a report for gold retargets the job. */
    int64_t end = tier_mono_ms() + 10000;
    for (;;) {
        Tier__GetJobRequest gr = TIER__GET_JOB_REQUEST__INIT;
        Tier__GetJobReply *g;
        tier_error err;
        bool back = false;
        gr.cid = 9;
        if (tier_get_job(f.c, &gr, &g, &err) == TIER_OK) {
            back = strcmp(g->job->status, "update") == 0;
            tier_free(g);
        }
        if (back)
            break;
        cr_assert_lt(tier_mono_ms(), end, "lease never reaped");
        usleep(100 * 1000);
    }
    report_one(&f, 9, 5000);
    worker_start(&f, 1, NULL);
    end = tier_mono_ms() + 20000;
    while (tier_mono_ms() < end && sqlnum(&f, "SELECT COUNT(*) FROM update_history") < 1)
        usleep(50 * 1000);
    tier_test_sql1(f.my, "SELECT content_level FROM contents WHERE cid = 9", buf, sizeof(buf));
    cr_assert_str_eq(buf, "gold");
    cr_assert(same_content(&f, "gold", "r.mp4", 9, 9000));
    cr_assert(!exists_in(&f, "silver", "r.mp4"));
    cr_assert(!exists_in(&f, "bronze", "r.mp4"));
    teardown(&f);
}

/* The hot standby of several_tierd_urls for real: a writer and a standby
 * on one database and prefix; one tier-worker and one libtier client are
 * given both addresses.  The writer is killed; once the standby took over,
 * the same worker and client carry on against it. */
Test(worker, standby_takeover_same_worker, .timeout = 180)
{
    char urls[300], pulls[300], buf[64], *bin = tier_test_bin("tierd");
    tier_test_tierd b;
    tier_client *c;
    fx f;

    setup(&f, "2000", false);
    for (int i = 1; i <= 2; i++) {
        char q[160], name[16];
        snprintf(name, sizeof(name), "s%d.bin", i);
        write_content(&f, "bronze", name, i, 3000);
        snprintf(q, sizeof(q),
                 "INSERT INTO contents (cid, content_level, filename) VALUES (%d, 'bronze', '%s')",
                 i, name);
        sql(&f, q);
    }
    tier_test_tierd_setenv(&f.td, "TIER_WRITER_TTL_MS=1500");
    tierd_start(&f);
    /* The standby: same database and prefix, never answers while a is up,
     * so it is not waited for. */
    char logdir[1100];
    snprintf(logdir, sizeof(logdir), "%s/b", f.root);
    cr_assert_eq(mkdir(logdir, 0755), 0);
    tier_test_tierd_init(&b, logdir, f.m.db, f.prefix);
    tier_test_tierd_setenv(&b, "TIER_THREADS=4");
    tier_test_tierd_setenv(&b, "TIER_WRITER_TTL_MS=1500");
    char *argv[] = {bin, "--listen", b.listen, "--push", b.push, NULL};
    b.pid = tier_test_spawn(argv, b.envp, b.log);
    cr_assert_gt(b.pid, 0);

    snprintf(urls, sizeof(urls), "%s,%s", f.td.listen, b.listen);
    snprintf(pulls, sizeof(pulls), "%s,%s", f.td.push, b.push);
    cr_assert_eq(tier_client_open(&c, urls), TIER_OK);
    tier_client_set_timeout(c, 2000);
    worker_start_at(&f, 0, NULL, urls, pulls);
    usleep(300 * 1000);

    Tier__ViewReport v = TIER__VIEW_REPORT__INIT, *list[1] = {&v};
    Tier__ReportViewsRequest req = TIER__REPORT_VIEWS_REQUEST__INIT;
    Tier__ReportViewsReply *rep;
    tier_error err;
    req.reports = list;
    req.n_reports = 1;
    v.cid = 1;
    v.count = 1964;
    cr_assert_eq(tier_report_views(c, &req, &rep, &err), TIER_OK, "%s", err.message);
    tier_free(rep);
    int64_t end = tier_mono_ms() + 20000;
    while (tier_mono_ms() < end && sqlnum(&f, "SELECT COUNT(*) FROM update_history") < 1)
        usleep(50 * 1000);
    cr_assert_eq(sqlnum(&f, "SELECT COUNT(*) FROM update_history"), 1, "nothing moved on a");

    tierd_stop(&f, SIGKILL);
    /* The same client reaches the standby once it took over (its calls to
     * the dead writer come back UNAVAILABLE, the next address answers). */
    v.cid = 2;
    end = tier_mono_ms() + 30000;
    int rv;
    while ((rv = tier_report_views(c, &req, &rep, &err)) != TIER_OK && tier_mono_ms() < end)
        usleep(100 * 1000);
    cr_assert_eq(rv, TIER_OK, "%s", err.message);
    cr_assert_eq(rep->results[0]->code, TIER_OK, "%s", rep->results[0]->message);
    tier_free(rep);
    end = tier_mono_ms() + 60000;
    while (tier_mono_ms() < end && sqlnum(&f, "SELECT COUNT(*) FROM update_history") < 2)
        usleep(50 * 1000);
    for (int i = 1; i <= 2; i++) {
        char q[128], name[16];
        snprintf(name, sizeof(name), "s%d.bin", i);
        snprintf(q, sizeof(q), "SELECT content_level FROM contents WHERE cid = %d", i);
        tier_test_sql1(f.my, q, buf, sizeof(buf));
        cr_assert_str_eq(buf, "silver", "cid %d", i);
        cr_assert(same_content(&f, "silver", name, i, 3000));
        cr_assert(!exists_in(&f, "bronze", name));
    }
    tier_client_close(c);
    worker_stop(&f, 0);
    cr_assert_neq(tier_test_tierd_stop(&b, SIGTERM, 15000), -1);
    free(bin);
    teardown(&f);
}

/* ------------------------------------------------------------ heartbeats */

static Tier__ListWorkersReply *list_workers(fx *f)
{
    Tier__ListWorkersRequest req = TIER__LIST_WORKERS_REQUEST__INIT;
    Tier__ListWorkersReply *rep = NULL;
    tier_error err;
    cr_assert_eq(tier_list_workers(f->c, &req, &rep, &err), TIER_OK, "%s", err.message);
    return rep;
}

/* The "workers" dependency of Health: its ok flag, its message in msg. */
static bool workers_health(fx *f, char *msg, size_t len)
{
    Tier__Rpc__HealthRequest req = TIER__RPC__HEALTH_REQUEST__INIT;
    Tier__Rpc__HealthReply *rep = NULL;
    bool ok = false, found = false;
    cr_assert_eq(tier_health(f->c, &req, &rep, NULL), TIER_OK);
    for (size_t i = 0; i < rep->n_dependencies; i++)
        if (strcmp(rep->dependencies[i]->name, "workers") == 0) {
            found = true;
            ok = rep->dependencies[i]->ok;
            snprintf(msg, len, "%s", rep->dependencies[i]->message);
        }
    tier_free(rep);
    cr_assert(found, "no workers dependency in Health");
    return ok;
}

/* Workers beat; ListWorkers shows them with what they did; a clean stop is
 * seen at once; jobs that wait with nobody alive make Health say so once
 * the start-up grace (30 s) is over. */
Test(worker, heartbeats_list_workers_and_health, .timeout = 180)
{
    fx f;
    char msg[256];
    setup(&f, NULL, false);
    write_content(&f, "bronze", "g.mp4", 7, 700);
    write_content(&f, "bronze", "h.mp4", 8, 800);
    sql(&f, "INSERT INTO contents (cid, content_level, filename) VALUES (7, 'bronze', 'g.mp4'), "
            "(8, 'bronze', 'h.mp4')");
    tierd_start(&f);
    int64_t started = tier_mono_ms();
    Tier__ListWorkersReply *lw = list_workers(&f);
    cr_assert_eq(lw->n_workers, 0);
    tier_free(lw);

    worker_start(&f, 0, "1");
    bool seen = false;
    for (int i = 0; i < 100 && !seen; i++) {
        lw = list_workers(&f);
        seen = lw->alive == 1;
        if (!seen) {
            tier_free(lw);
            usleep(50 * 1000);
        }
    }
    cr_assert(seen, "the worker never showed up");
    cr_assert_str_eq(lw->workers[0]->worker_id, "w0");
    cr_assert_eq(lw->workers[0]->pid, f.w[0]);
    cr_assert(lw->workers[0]->host[0] != '\0');
    cr_assert_str_eq(lw->workers[0]->version, TIER_VERSION);
    tier_free(lw);
    /* The same through tierctl. */
    char *ctl = tier_test_bin("tierctl"), out[4096];
    char *argv[] = {ctl, "--url", f.td.listen, "--json", "workers", NULL};
    cr_assert_eq(tier_test_run(argv, NULL, out, sizeof(out), 10000), 0, "%s", out);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je), *w0 = json_array_get(json_object_get(j, "workers"), 0);
    cr_assert_not_null(w0, "%s", out);
    cr_assert_str_eq(json_string_value(json_object_get(w0, "worker_id")), "w0");
    cr_assert(json_is_true(json_object_get(w0, "alive")), "%s", out);
    cr_assert_eq(json_integer_value(json_object_get(j, "alive")), 1);
    json_decref(j);
    free(ctl);

    report_one(&f, 7, 1964);
    bool moved = false;
    for (int i = 0; i < 200 && !moved; i++) {
        lw = list_workers(&f);
        moved = lw->n_workers == 1 && lw->workers[0]->moves_done == 1 &&
                lw->workers[0]->bytes_moved == 700;
        tier_free(lw);
        if (!moved)
            usleep(50 * 1000);
    }
    cr_assert(moved, "moves_done / bytes_moved never reached 1 / 700");
    cr_assert(workers_health(&f, msg, sizeof(msg)), "%s", msg);
    cr_assert(strstr(msg, "1 alive") != NULL, "%s", msg);

    worker_stop(&f, 0);
    lw = list_workers(&f);
    cr_assert_eq(lw->n_workers, 1);
    cr_assert_eq(lw->alive, 0, "a clean stop is seen at once");
    cr_assert(!lw->workers[0]->alive);
    tier_free(lw);

    /* A job waits, nobody is alive: fine during the grace, down after. */
    report_one(&f, 8, 2500);
    cr_assert(workers_health(&f, msg, sizeof(msg)) || tier_mono_ms() - started > 30000, "%s", msg);
    while (tier_mono_ms() - started < 31000)
        usleep(200 * 1000);
    cr_assert(!workers_health(&f, msg, sizeof(msg)), "%s", msg);
    cr_assert(strstr(msg, "no worker alive, 1 jobs waiting") != NULL, "%s", msg);
    teardown(&f);
}
