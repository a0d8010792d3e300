/*
 * bench_e2e.c -- tiering end to end: reports -> tierd -> Redis jobs -> push
 * -> tier-worker processes move files -> CompleteJob -> level and history
 * row committed in MySQL.
 *
 *   . .run/env; bench_e2e [--files N] [--size BYTES] [--workers W] [--moves M]
 *                         [--runs R] [--rate PER_S] [--mode burst|latency|both]
 *                         [--storage DIR] [--shards N] [--route]
 *
 * Needs the services (scripts/services.sh start; their env exported) and
 * tierd and tier-worker next to this program.  Every run is fresh: its own
 * database tier_bench_e2e_<pid>_<run> (scripts/migrate.sh, sample levels
 * under a new storage directory in DIR, default $TMPDIR or /tmp, so every
 * level is on one filesystem), its own Redis key prefix, N files of BYTES
 * in bronze (20,000 x 1 KiB), one tierd and W workers (2) with M moves
 * each (the worker's default, 4).
 *
 * burst:   one report per file, sent in batches of 1,000 as fast as tierd
 *          takes them, even cids to silver (count 1500), odd to gold (5000).
 *          Time from the first report to the moment MySQL holds a history
 *          row for every file (polled every 5 ms) -> files/s.
 * latency: the same reports at a steady PER_S (5,000/s, batches of 50 every
 *          10 ms); latency of a file = its update_time in MySQL (stamped by
 *          the commit) - the time its report was sent; p50/p90/p99/max.
 *
 * --shards N (1): N tierd processes (--shards N --shard K) on the same
 * database and Redis prefix, each its own listen and push port, and W
 * workers per shard (each connected to its shard's tierd).  The reports go
 * through libtier's routing (tier_cluster_open with every shard's URL as
 * seeds, tier_cluster_report_views), so the routing cost is included;
 * --route does the same with one shard (otherwise one shard is called
 * straight with tier_report_views, as before).
 *
 * Cost per operation (burst): utime+stime of every tierd and of every
 * worker from /proc/<pid>/stat, before the first report, when the last
 * report is answered and when the last move is committed, divided by the
 * files (one report and one move each); also net of idle: the processes'
 * CPU over 2 s of doing nothing just before the reports (leases, topology,
 * planner rounds, heartbeats, polls; more of it with more processes) is
 * taken as a rate and subtracted for the run's span.  Right after the
 * start the tierds still do start-up work for a few seconds (more than
 * idle): --settle S waits S s first, so that neither the idle window nor
 * the run counts it.  Redis commands (INFO stats
 * total_commands_processed) and MariaDB commits, rows written and fsyncs
 * (SHOW GLOBAL STATUS: Handler_commit, Handler_write + _update + _delete,
 * Innodb_data_fsyncs) over the same span, per file.  The services are
 * the checkout's private ones, so nothing else counts in them -- except
 * this program's own polling of MySQL (every 5 ms, a few queries).
 *
 * After each run: every file exactly once, byte-identical, in its target
 * directory (none left in bronze, no temporaries), its level in MySQL, one
 * history row bronze -> target, no job left in Redis.  A failed check fails
 * the run (exit 1).  Prints one row per run and the median of the runs.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <mysql.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tier_client.h"
#include "tier_time.h"

#define BATCH 1000
#define MAXW 16
#define MAXS 8

static long nfiles = 20000;
static size_t fsize = 1024;
static int nworkers = 2, runs = 3, rate = 5000;
static const char *moves = "4";
static const char *mode = "both";
static int report_threads = 4; /* ReportViews calls in flight (burst) */
static bool late_workers;      /* diagnostic: start the workers after the reports */
static int nshards = 1;        /* tierd processes (--shards N --shard K) */
static bool route;             /* reports through tier_cluster_report_views */
static int settle_s;           /* burst: seconds to wait after the start (start-up work) */
static char storage_parent[1024];
static char bindir[1024], srcdir[1024];

/* ------------------------------------------------------------ helpers */

static void die(const char *fmt, const char *a)
{
    fprintf(stderr, "bench_e2e: ");
    fprintf(stderr, fmt, a);
    fprintf(stderr, "\n");
    exit(1);
}

static MYSQL *connect_db(const char *db)
{
    MYSQL *m = mysql_init(NULL);
    const char *port = getenv("TIER_MYSQL_PORT");
    if (!mysql_real_connect(m, getenv("TIER_MYSQL_HOST"), getenv("TIER_MYSQL_USER"),
                            getenv("TIER_MYSQL_PASSWORD"), db, port ? (unsigned)atoi(port) : 3306,
                            NULL, 0))
        die("MySQL: %s", mysql_error(m));
    return m;
}

static void sql(MYSQL *m, const char *q)
{
    if (mysql_query(m, q) != 0)
        die("MySQL: %s", mysql_error(m));
    MYSQL_RES *r = mysql_store_result(m);
    if (r)
        mysql_free_result(r);
}

static long long sqlnum(MYSQL *m, const char *q)
{
    if (mysql_query(m, q) != 0)
        die("MySQL: %s", mysql_error(m));
    MYSQL_RES *r = mysql_store_result(m);
    MYSQL_ROW row = r ? mysql_fetch_row(r) : NULL;
    long long v = row && row[0] ? atoll(row[0]) : -1;
    if (r)
        mysql_free_result(r);
    return v;
}

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Bytes of file i (deterministic). */
static void fill_bytes(long i, unsigned char *b, size_t n)
{
    uint64_t x = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
    for (size_t k = 0; k < n; k++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b[k] = (unsigned char)x;
    }
}

static const char *target_of(long i)
{
    return i % 2 == 0 ? "silver" : "gold";
}

static int64_t count_of(long i)
{
    return i % 2 == 0 ? 1500 : 5000;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static pid_t spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static void loadavg(char *buf, size_t len)
{
    FILE *f = fopen("/proc/loadavg", "r");
    buf[0] = '\0';
    if (f != NULL) {
        if (fgets(buf, (int)len, f) == NULL)
            buf[0] = '\0';
        fclose(f);
    }
    buf[strcspn(buf, " ")] = '\0'; /* 1-minute load */
}

/* ------------------------------------------------------------ one run */

typedef struct {
    char db[64], root[PATH_MAX], url[MAXS][64], push[MAXS][64], prefix[64];
    pid_t tierd[MAXS], w[MAXS][MAXW];
    tier_client *c;   /* shard 0's tierd (ListJobs there merges every shard) */
    tier_cluster *cl; /* the reports' route (route) */
    MYSQL *my;
} run_env;

/* ------------------------------------------------------------ costs */

/* utime + stime of a process in seconds, from /proc/<pid>/stat. */
static double cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the name may hold spaces */
    if (p == NULL)
        return 0;
    unsigned long ut = 0, st = 0;
    /* after ")": state(3) ... utime is field 14, stime 15 */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

typedef struct {
    double tierd_s, workers_s, at_s; /* at_s: monotonic time of the reading */
    long long redis_cmds, my_commits, my_rows, my_fsyncs, my_questions;
} costs;

static long long redis_stat(const char *name)
{
    char cmd[256], line[256];
    long long v = -1;
    snprintf(cmd, sizeof(cmd), "redis-cli -h %s -p %s info stats 2>/dev/null",
             getenv("TIER_REDIS_HOST") ? getenv("TIER_REDIS_HOST") : "127.0.0.1",
             getenv("TIER_REDIS_PORT"));
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        return -1;
    size_t nl = strlen(name);
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, name, nl) == 0 && line[nl] == ':')
            v = atoll(line + nl + 1);
    pclose(f);
    return v;
}

static long long my_status(MYSQL *m, const char *like)
{
    char q[256];
    long long sum = 0;
    snprintf(q, sizeof(q), "SHOW GLOBAL STATUS WHERE Variable_name IN (%s)", like);
    if (mysql_query(m, q) != 0)
        return -1;
    MYSQL_RES *r = mysql_store_result(m);
    MYSQL_ROW row;
    while (r && (row = mysql_fetch_row(r)) != NULL)
        sum += atoll(row[1]);
    if (r)
        mysql_free_result(r);
    return sum;
}

static void costs_read(run_env *e, costs *c)
{
    memset(c, 0, sizeof(*c));
    c->at_s = (double)tier_mono_us() / 1e6;
    for (int k = 0; k < nshards; k++) {
        c->tierd_s += cpu_s(e->tierd[k]);
        for (int w = 0; w < nworkers; w++)
            if (e->w[k][w] > 0)
                c->workers_s += cpu_s(e->w[k][w]);
    }
    c->redis_cmds = redis_stat("total_commands_processed");
    c->my_commits = my_status(e->my, "'Handler_commit'");
    c->my_rows = my_status(e->my, "'Handler_write','Handler_update','Handler_delete'");
    c->my_fsyncs = my_status(e->my, "'Innodb_data_fsyncs'");
    c->my_questions = my_status(e->my, "'Questions'");
}

static void start_workers(run_env *e);

static void run_setup(run_env *e, int run)
{
    char cmd[PATH_MAX * 2], path[PATH_MAX + 64];
    unsigned char *buf = malloc(fsize + 1);
    char *q = malloc(64 * BATCH + 128);

    memset(e, 0, sizeof(*e));
    snprintf(e->db, sizeof(e->db), "tier_bench_e2e_%d_%d", (int)getpid(), run);
    snprintf(e->root, sizeof(e->root), "%s/tier-bench-e2e-%d-%d", storage_parent, (int)getpid(),
             run);
    if (mkdir(e->root, 0755) != 0)
        die("mkdir %s failed", e->root);
    snprintf(cmd, sizeof(cmd),
             "TIER_MYSQL_DB=%s TIER_STORAGE_ROOT=%s bash %s/scripts/migrate.sh >/dev/null 2>&1",
             e->db, e->root, srcdir);
    if (system(cmd) != 0)
        die("migrate failed: %s", cmd);
    for (const char *const *l = (const char *const[]){"bronze", "silver", "gold", NULL}; *l; l++) {
        snprintf(path, sizeof(path), "%s/%s", e->root, *l);
        mkdir(path, 0755);
    }
    e->my = connect_db(e->db);
    for (long s = 1; s <= nfiles; s += BATCH) {
        size_t len =
            (size_t)sprintf(q, "INSERT INTO contents (cid, content_level, filename) VALUES ");
        for (long i = s; i < s + BATCH && i <= nfiles; i++) {
            int fd;
            snprintf(path, sizeof(path), "%s/bronze/f%06ld.bin", e->root, i);
            fill_bytes(i, buf, fsize);
            if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0 ||
                write(fd, buf, fsize) != (ssize_t)fsize)
                die("cannot write %s", path);
            close(fd);
            len +=
                (size_t)sprintf(q + len, "%s(%ld,'bronze','f%06ld.bin')", i > s ? "," : "", i, i);
        }
        if (mysql_real_query(e->my, q, len) != 0)
            die("MySQL: %s", mysql_error(e->my));
    }
    free(q);
    free(buf);
    /* Make the files durable now, so the run measures moves, not writeback. */
    sync();

    snprintf(e->prefix, sizeof(e->prefix), "be2e%d_%d:", (int)getpid(), run);
    setenv("TIER_MYSQL_DB", e->db, 1);
    setenv("TIER_REDIS_PREFIX", e->prefix, 1);
    if (getenv("TIER_LOG") == NULL)
        setenv("TIER_LOG", "warn", 1);
    char tierd[PATH_MAX + 16], log[PATH_MAX + 32];
    snprintf(tierd, sizeof(tierd), "%s/tierd", bindir);
    char shards[16], shard[16], seeds[MAXS * 64 + 8] = "";
    snprintf(shards, sizeof(shards), "%d", nshards);
    for (int k = 0; k < nshards; k++) {
        snprintf(e->url[k], sizeof(e->url[k]), "tcp://127.0.0.1:%d", free_port());
        snprintf(e->push[k], sizeof(e->push[k]), "tcp://127.0.0.1:%d", free_port());
        snprintf(shard, sizeof(shard), "%d", k);
        snprintf(log, sizeof(log), "%s/tierd%d.log", e->root, k);
        char *targv[] = {tierd,      "--listen", e->url[k], "--push", e->push[k], "--no-auth",
                         "--shards", shards,     "--shard", shard,    NULL};
        e->tierd[k] = spawn(targv, log);
        snprintf(seeds + strlen(seeds), sizeof(seeds) - strlen(seeds), "%s%s", k ? "," : "",
                 e->url[k]);
    }
    for (int k = nshards - 1; k >= 0; k--) {
        tier_client *c;
        tier_client_open(&c, e->url[k]);
        tier_client_set_timeout(c, 30000);
        for (int i = 0;; i++) {
            Tier__ListLevelsRequest req = TIER__LIST_LEVELS_REQUEST__INIT;
            Tier__ListLevelsReply *rep;
            tier_error err;
            if (tier_list_levels(c, &req, &rep, &err) == TIER_OK) {
                tier_free(rep);
                break;
            }
            if (i > 1200)
                die("tierd did not start (see %s)", e->root);
            usleep(50 * 1000);
        }
        if (k == 0)
            e->c = c;
        else
            tier_client_close(c);
    }
    if (route) {
        tier_client_opts o = {.timeout_ms = 30000};
        tier_error err;
        /* Every shard published in the topology (once a second). */
        for (int i = 0;; i++) {
            char owner[256];
            int ok = 0;
            if (tier_cluster_open(&e->cl, seeds, &o, &err) == TIER_OK) {
                ok = tier_cluster_shards(e->cl) == (unsigned)nshards;
                for (long cid = 1; ok && cid <= 64; cid++)
                    ok = tier_cluster_owner_url(e->cl, cid, owner, sizeof(owner)) == TIER_OK;
                if (ok)
                    break;
                tier_cluster_close(e->cl);
                e->cl = NULL;
            }
            if (i > 100)
                die("no full topology from %s", seeds);
            usleep(100 * 1000);
        }
    }
    if (!late_workers)
        start_workers(e);
}

static void start_workers(run_env *e)
{
    char worker[PATH_MAX + 16], id[32], log[PATH_MAX + 32];
    snprintf(worker, sizeof(worker), "%s/tier-worker", bindir);
    for (int s = 0; s < nshards; s++)
        for (int k = 0; k < nworkers; k++) {
            snprintf(id, sizeof(id), "bw%d_%d", s, k);
            snprintf(log, sizeof(log), "%s/worker%d_%d.log", e->root, s, k);
            char *wargv[] = {worker, "--tierd", e->url[s], "--pull",      e->push[s],
                             "--id", id,        "--moves", (char *)moves, NULL};
            e->w[s][k] = spawn(wargv, log);
        }
    usleep(500 * 1000); /* workers connected: the pushes spread over them */
}

static void run_teardown(run_env *e)
{
    char q[128];
    for (int s = 0; s < nshards; s++)
        for (int k = 0; k < nworkers; k++)
            if (e->w[s][k] > 0) {
                kill(e->w[s][k], SIGTERM);
                waitpid(e->w[s][k], NULL, 0);
            }
    for (int s = 0; s < nshards; s++)
        if (e->tierd[s] > 0) { /* 0: exited and reaped already (never kill(0)) */
            kill(e->tierd[s], SIGTERM);
            waitpid(e->tierd[s], NULL, 0);
        }
    tier_client_close(e->c);
    if (e->cl)
        tier_cluster_close(e->cl);
    mysql_close(e->my);
    MYSQL *m = connect_db(NULL);
    snprintf(q, sizeof(q), "DROP DATABASE `%s`", e->db);
    sql(m, q);
    mysql_close(m);
    if (getenv("BENCH_KEEP") == NULL)
        nftw(e->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Sends reports for cids [from, to] in one call. */
static void report(run_env *e, long from, long to)
{
    size_t n = (size_t)(to - from + 1);
    Tier__ViewReport *v = calloc(n, sizeof(*v));
    Tier__ViewReport **list = calloc(n, sizeof(*list));
    Tier__ReportViewsRequest req = TIER__REPORT_VIEWS_REQUEST__INIT;
    Tier__ReportViewsReply *rep;
    tier_error err;
    for (size_t k = 0; k < n; k++) {
        tier__view_report__init(&v[k]);
        v[k].cid = from + (long)k;
        v[k].count = count_of(from + (long)k);
        list[k] = &v[k];
    }
    req.reports = list;
    req.n_reports = n;
    int rv, tries = 0;
    while ((rv = e->cl ? tier_cluster_report_views(e->cl, &req, &rep, &err)
                       : tier_report_views(e->c, &req, &rep, &err)) != TIER_OK) {
        /* A tierd that exited (it lost its lease, say) never comes back. */
        if (++tries > 100)
            die("ReportViews failed 100 times, the last: %s (see the tierd logs)", err.message);
        fprintf(stderr, "bench_e2e: ReportViews: %s; retrying\n", err.message);
        usleep(100 * 1000);
    }
    for (size_t k = 0; k < rep->n_results; k++)
        if (rep->results[k]->code != 0 || strcmp(rep->results[k]->status, "update") != 0)
            fprintf(stderr, "bench_e2e: cid %lld: %s %s\n", (long long)rep->results[k]->cid,
                    rep->results[k]->status, rep->results[k]->message);
    tier_free(rep);
    free(v);
    free(list);
}

/* History rows written so far.  Polled every 5 ms: MAX(id) (the primary
 * key, O(1)) first, COUNT(*) (a scan) only once it says all may be there,
 * so polling costs MySQL next to nothing. */
static long history_rows(run_env *e)
{
    long max = (long)sqlnum(e->my, "SELECT COALESCE(MAX(id), 0) FROM update_history");
    if (max < nfiles)
        return max;
    return (long)sqlnum(e->my, "SELECT COUNT(*) FROM update_history");
}

/* Everything in place?  Returns the number of problems (printed). */
static long check(run_env *e)
{
    char path[PATH_MAX + 64], q[256];
    unsigned char *want = malloc(fsize + 1), *got = malloc(fsize + 2);
    long bad = 0, files[3] = {0}, tmps = 0;
    const char *lv[3] = {"bronze", "silver", "gold"};

    for (long i = 1; i <= nfiles; i++) {
        const char *t = target_of(i), *o = i % 2 == 0 ? "gold" : "silver";
        struct stat sb;
        int fd;
        snprintf(path, sizeof(path), "%s/%s/f%06ld.bin", e->root, t, i);
        fill_bytes(i, want, fsize);
        if ((fd = open(path, O_RDONLY)) < 0 || read(fd, got, fsize + 1) != (ssize_t)fsize ||
            memcmp(got, want, fsize) != 0) {
            if (bad++ < 5)
                fprintf(stderr, "check: %s missing or different\n", path);
        }
        if (fd >= 0)
            close(fd);
        snprintf(path, sizeof(path), "%s/bronze/f%06ld.bin", e->root, i);
        if (stat(path, &sb) == 0 && bad++ < 5)
            fprintf(stderr, "check: %s still there\n", path);
        snprintf(path, sizeof(path), "%s/%s/f%06ld.bin", e->root, o, i);
        if (stat(path, &sb) == 0 && bad++ < 5)
            fprintf(stderr, "check: %s also there\n", path);
    }
    for (int l = 0; l < 3; l++) {
        snprintf(path, sizeof(path), "%s/%s", e->root, lv[l]);
        DIR *d = opendir(path);
        struct dirent *de;
        while (d && (de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            if (strncmp(de->d_name, ".tier-tmp.", 10) == 0)
                tmps++;
            else
                files[l]++;
        }
        if (d)
            closedir(d);
    }
    if (files[0] != 0 || files[1] != nfiles / 2 || files[2] != nfiles - nfiles / 2 || tmps) {
        fprintf(stderr, "check: directories hold %ld/%ld/%ld files, %ld temporaries\n", files[0],
                files[1], files[2], tmps);
        bad++;
    }
    snprintf(q, sizeof(q),
             "SELECT COUNT(*) FROM contents WHERE content_level = IF(cid %% 2 = 0, 'silver', "
             "'gold')");
    long long lv_ok = sqlnum(e->my, q);
    long long hist = sqlnum(e->my, "SELECT COUNT(*) FROM update_history");
    long long hist_ok = sqlnum(e->my, "SELECT COUNT(DISTINCT cid) FROM update_history WHERE "
                                      "old_content_level = 'bronze' AND new_content_level = "
                                      "IF(cid % 2 = 0, 'silver', 'gold')");
    if (lv_ok != nfiles || hist != nfiles || hist_ok != nfiles) {
        fprintf(stderr, "check: levels right %lld, history rows %lld (right %lld) of %ld\n", lv_ok,
                hist, hist_ok, nfiles);
        bad++;
    }
    /* Jobs are deleted in Redis right after their commit. */
    size_t jobs = 1;
    for (int i = 0; i < 100 && jobs > 0; i++) {
        Tier__ListJobsRequest req = TIER__LIST_JOBS_REQUEST__INIT;
        Tier__ListJobsReply *rep;
        tier_error err;
        if (tier_list_jobs(e->c, &req, &rep, &err) == TIER_OK) {
            jobs = rep->n_jobs;
            tier_free(rep);
        }
        if (jobs > 0)
            usleep(50 * 1000);
    }
    if (jobs > 0) {
        fprintf(stderr, "check: %zu jobs left in Redis\n", jobs);
        bad++;
    }
    free(want);
    free(got);
    return bad;
}

/* A tierd that exited never comes back (nothing restarts it here): true
 * and says which, once. */
static bool tierd_gone(run_env *e)
{
    for (int k = 0; k < nshards; k++) {
        int st;
        if (e->tierd[k] > 0 && waitpid(e->tierd[k], &st, WNOHANG) == e->tierd[k]) {
            fprintf(stderr, "bench_e2e: shard %d's tierd exited (status %d; see %s/tierd%d.log)\n",
                    k, WIFEXITED(st) ? WEXITSTATUS(st) : -1, e->root, k);
            e->tierd[k] = 0;
            return true;
        }
        if (e->tierd[k] == 0)
            return true;
    }
    return false;
}

/* Waits until every file has its history row; returns the monotonic ms. */
static int64_t wait_all(run_env *e, int64_t t0, int64_t timeout_ms)
{
    for (;;) {
        int64_t now = tier_mono_ms();
        if (history_rows(e) >= nfiles)
            return now;
        if (tierd_gone(e))
            return -1;
        if (now - t0 > timeout_ms) {
            fprintf(stderr, "bench_e2e: only %ld of %ld committed after %lld ms\n", history_rows(e),
                    nfiles, (long long)timeout_ms);
            return -1;
        }
        usleep(5 * 1000);
    }
}

/* ------------------------------------------------------------ modes */

static run_env *burst_env;
static atomic_long next_batch;

/* Sends batches of 1,000 reports until none is left (several at once, as
 * the front ends of a real deployment would). */
static void *burst_sender(void *arg)
{
    (void)arg;
    for (;;) {
        long s = 1 + BATCH * atomic_fetch_add(&next_batch, 1);
        if (s > nfiles)
            return NULL;
        report(burst_env, s, s + BATCH - 1 <= nfiles ? s + BATCH - 1 : nfiles);
    }
}

static double run_burst(int run, double *report_ms, long *bad, costs *idle, costs *c0, costs *c1,
                        costs *c2)
{
    run_env e;
    run_setup(&e, run);
    pthread_t th[16];
    burst_env = &e;
    atomic_store(&next_batch, 0);
    /* What the processes burn doing nothing (leases, topology, planner
     * rounds, heartbeats, polls): 2 s idle, to subtract. */
    sleep((unsigned)settle_s);
    costs_read(&e, idle);
    sleep(2);
    costs_read(&e, c0);
    int64_t t0 = tier_mono_ms();
    for (int k = 0; k < report_threads; k++)
        pthread_create(&th[k], NULL, burst_sender, NULL);
    for (int k = 0; k < report_threads; k++)
        pthread_join(th[k], NULL);
    *report_ms = (double)(tier_mono_ms() - t0);
    costs_read(&e, c1);
    if (late_workers) {
        start_workers(&e);
        t0 = tier_mono_ms() - 500; /* they had 500 ms to connect */
    }
    int64_t t1 = wait_all(&e, t0, 300000);
    costs_read(&e, c2);
    double fps = t1 < 0 ? 0 : (double)nfiles * 1000.0 / (double)(t1 - t0);
    *bad = t1 < 0 || tierd_gone(&e) ? 1 : check(&e);
    run_teardown(&e);
    return fps;
}

typedef struct {
    double p50, p90, p99, max, sent_rate;
} lat;

static lat run_latency(int run, long *bad)
{
    run_env e;
    lat out = {0};
    int64_t *sent = calloc((size_t)nfiles + 1, sizeof(*sent));
    int64_t *l = calloc((size_t)nfiles + 1, sizeof(*l));
    const long per_tick = rate / 100 > 0 ? rate / 100 : 1; /* every 10 ms */
    long n = 0;

    run_setup(&e, run);
    int64_t start = tier_mono_us();
    for (long s = 1, tick = 0; s <= nfiles; s += per_tick, tick++) {
        int64_t due = start + tick * 10000, now = tier_mono_us();
        if (due > now)
            usleep((useconds_t)(due - now));
        long to = s + per_tick - 1 <= nfiles ? s + per_tick - 1 : nfiles;
        int64_t wall = tier_now_ms();
        for (long i = s; i <= to; i++)
            sent[i] = wall;
        report(&e, s, to);
    }
    out.sent_rate = (double)nfiles * 1e6 / (double)(tier_mono_us() - start);
    int64_t t1 = wait_all(&e, tier_mono_ms(), 300000);
    if (t1 >= 0) {
        if (mysql_query(e.my, "SELECT cid, CAST(ROUND(UNIX_TIMESTAMP(update_time) * 1000) AS "
                              "SIGNED) FROM contents") != 0)
            die("MySQL: %s", mysql_error(e.my));
        MYSQL_RES *r = mysql_store_result(e.my);
        MYSQL_ROW row;
        while ((row = mysql_fetch_row(r)) != NULL) {
            long cid = atol(row[0]);
            if (cid >= 1 && cid <= nfiles)
                l[n++] = atoll(row[1]) - sent[cid];
        }
        mysql_free_result(r);
        qsort(l, (size_t)n, sizeof(*l), cmp_i64);
        if (n > 0) {
            out.p50 = (double)l[n / 2];
            out.p90 = (double)l[(size_t)((double)n * 0.90)];
            out.p99 = (double)l[(size_t)((double)n * 0.99)];
            out.max = (double)l[n - 1];
        }
    }
    *bad = t1 < 0 ? 1 : check(&e);
    run_teardown(&e);
    free(sent);
    free(l);
    return out;
}

/* ------------------------------------------------------------ main */

static void usage(void)
{
    printf("usage: bench_e2e [--files N] [--size BYTES] [--workers W] [--moves M] [--runs R]\n"
           "                 [--rate PER_S] [--mode burst|latency|both] [--storage DIR]\n"
           "                 [--report-calls K]  (burst: ReportViews calls in flight, 4)\n"
           "                 [--late-workers]  (burst: start the workers after the reports;\n"
           "                                    the time is then moves + commits only)\n"
           "                 [--shards N]  (N tierds --shards N --shard K, W workers each;\n"
           "                                reports routed by libtier's tier_cluster_*)\n"
           "                 [--route]  (route through tier_cluster_* with one shard too)\n"
           "                 [--settle S]  (burst: wait S s after the start before the 2 s idle\n"
           "                                window and the reports: tierd's start-up work)\n");
}

int main(int argc, char **argv)
{
    char self[PATH_MAX], load[64];
    long failures = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--late-workers") == 0) {
            late_workers = true;
            continue;
        }
        if (strcmp(a, "--route") == 0) {
            route = true;
            continue;
        }
        if (strcmp(a, "--help") == 0) {
            usage();
            return 0;
        }
        if (v == NULL) {
            usage();
            return 2;
        }
        if (strcmp(a, "--files") == 0)
            nfiles = atol(v);
        else if (strcmp(a, "--size") == 0)
            fsize = (size_t)atol(v);
        else if (strcmp(a, "--workers") == 0)
            nworkers = atoi(v);
        else if (strcmp(a, "--moves") == 0)
            moves = v;
        else if (strcmp(a, "--report-calls") == 0)
            report_threads = atoi(v);
        else if (strcmp(a, "--settle") == 0)
            settle_s = atoi(v);
        else if (strcmp(a, "--shards") == 0)
            nshards = atoi(v);
        else if (strcmp(a, "--runs") == 0)
            runs = atoi(v);
        else if (strcmp(a, "--rate") == 0)
            rate = atoi(v);
        else if (strcmp(a, "--mode") == 0)
            mode = v;
        else if (strcmp(a, "--storage") == 0)
            snprintf(storage_parent, sizeof(storage_parent), "%s", v);
        else {
            usage();
            return 2;
        }
        i++;
    }
    if (report_threads < 1 || report_threads > 16 || nfiles < 2 || nworkers < 1 ||
        nworkers > MAXW || nshards < 1 || nshards > MAXS || runs < 1 || runs > 15 || rate < 1) {
        usage();
        return 2;
    }
    if (getenv("TIER_MYSQL_HOST") == NULL || getenv("TIER_REDIS_PORT") == NULL) {
        fprintf(stderr, "bench_e2e: start the services and source their env first\n");
        return 2;
    }
    if (storage_parent[0] == '\0')
        snprintf(storage_parent, sizeof(storage_parent), "%s",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    /* This program is <checkout>/<build>/bin/bench_e2e. */
    if (realpath("/proc/self/exe", self) == NULL)
        return 2;
    snprintf(bindir, sizeof(bindir), "%.1000s", self);
    *strrchr(bindir, '/') = '\0';
    snprintf(srcdir, sizeof(srcdir), "%s", bindir);
    for (int up = 0; up < 2; up++)
        *strrchr(srcdir, '/') = '\0';
    signal(SIGPIPE, SIG_IGN);
    if (nshards > 1)
        route = true;

    printf("bench_e2e: %ld files of %zu bytes in bronze, half to silver, half to gold; "
           "%d shard(s) (tierd processes), %d worker(s) per shard x %s moves; reports %s; "
           "storage under %s\n\n",
           nfiles, fsize, nshards, nworkers, moves,
           route ? "routed (tier_cluster_report_views)" : "straight (tier_report_views)",
           storage_parent);
    if (strcmp(mode, "burst") == 0 || strcmp(mode, "both") == 0) {
        double v[16], cv[8][16];
        costs c[16][4];
        printf("burst: all reports at once (batches of %d, %d calls in flight)\n", BATCH,
               report_threads);
        printf("| run | load avg | reports sent in (ms) | first report -> last commit (ms) | "
               "files/s | check |\n|---:|---:|---:|---:|---:|---|\n");
        for (int r = 0; r < runs; r++) {
            double rep_ms;
            long bad;
            loadavg(load, sizeof(load));
            v[r] = run_burst(2 * r, &rep_ms, &bad, &c[r][3], &c[r][0], &c[r][1], &c[r][2]);
            failures += bad;
            printf("| %d | %s | %.0f | %.0f | %.0f | %s |\n", r + 1, load, rep_ms,
                   v[r] > 0 ? (double)nfiles * 1000.0 / v[r] : 0.0, v[r], bad ? "FAILED" : "ok");
            fflush(stdout);
        }
        qsort(v, (size_t)runs, sizeof(double), cmp_double);
        printf("| median | | | %.0f | **%.0f** | |\n\n", (double)nfiles * 1000.0 / v[runs / 2],
               v[runs / 2]);
        printf("cost per file (one report + one move each), all %d tierd(s) / all %d worker(s):\n"
               "| run | tierd CPU µs/file | of which until the last report answered | "
               "workers CPU µs/move | tierd idle ms/s | workers idle ms/s | tierd net of idle "
               "µs/file | workers net of idle µs/move | Redis cmds/file | MariaDB commits/file "
               "| rows written/file | fsyncs/file |\n"
               "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
               nshards, nshards * nworkers);
        for (int r = 0; r < runs; r++) {
            costs *a = &c[r][0], *b = &c[r][1], *z = &c[r][2], *i0 = &c[r][3];
            double n = (double)nfiles, span = z->at_s - a->at_s, idle_span = a->at_s - i0->at_s;
            double ti = (a->tierd_s - i0->tierd_s) / idle_span,
                   wi = (a->workers_s - i0->workers_s) / idle_span;
            cv[0][r] = (z->tierd_s - a->tierd_s) * 1e6 / n;
            cv[1][r] = (b->tierd_s - a->tierd_s) * 1e6 / n;
            cv[2][r] = (z->workers_s - a->workers_s) * 1e6 / n;
            cv[3][r] = (double)(z->redis_cmds - a->redis_cmds) / n;
            cv[4][r] = (double)(z->my_commits - a->my_commits) / n;
            cv[5][r] = (double)(z->my_rows - a->my_rows) / n;
            cv[6][r] = (z->tierd_s - a->tierd_s - ti * span) * 1e6 / n;
            cv[7][r] = late_workers ? 0 : (z->workers_s - a->workers_s - wi * span) * 1e6 / n;
            printf("| %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f | %.2f | %.2f | "
                   "%.3f |\n",
                   r + 1, cv[0][r], cv[1][r], cv[2][r], ti * 1e3, wi * 1e3, cv[6][r], cv[7][r],
                   cv[3][r], cv[4][r], cv[5][r], (double)(z->my_fsyncs - a->my_fsyncs) / n);
        }
        for (int k = 0; k < 8; k++)
            qsort(cv[k], (size_t)runs, sizeof(double), cmp_double);
        printf("| median | **%.1f** | %.1f | **%.1f** | | | **%.1f** | **%.1f** | %.2f | %.2f | "
               "%.2f | |\n\n",
               cv[0][runs / 2], cv[1][runs / 2], cv[2][runs / 2], cv[6][runs / 2], cv[7][runs / 2],
               cv[3][runs / 2], cv[4][runs / 2], cv[5][runs / 2]);
    }
    if (strcmp(mode, "latency") == 0 || strcmp(mode, "both") == 0) {
        lat v[16];
        double p99[16];
        printf("latency: reports at a steady %d/s (every 10 ms), report sent -> level committed "
               "(MySQL update_time)\n",
               rate);
        printf("| run | load avg | sent/s | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | check "
               "|\n|---:|---:|---:|---:|---:|---:|---:|---|\n");
        for (int r = 0; r < runs; r++) {
            long bad;
            loadavg(load, sizeof(load));
            v[r] = run_latency(2 * r + 1, &bad);
            p99[r] = v[r].p99;
            failures += bad;
            printf("| %d | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %s |\n", r + 1, load,
                   v[r].sent_rate, v[r].p50, v[r].p90, v[r].p99, v[r].max, bad ? "FAILED" : "ok");
            fflush(stdout);
        }
        qsort(p99, (size_t)runs, sizeof(double), cmp_double);
        printf("| median p99 | | | | | **%.0f** | | |\n", p99[runs / 2]);
    }
    return failures ? 1 : 0;
}
