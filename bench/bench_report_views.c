/*
 * bench_report_views.c -- ReportViews throughput where nothing moves (pure
 * classification, answered from tierd's memory).
 *
 *   . .run/env; bench_report_views [--contents N] [--seconds S] [--runs R]
 *                                  [--tierd PATH] [--views]
 *
 * Needs the services (scripts/services.sh start; their env exported).
 * Creates a fresh database tier_bench_<pid> (scripts/migrate.sh), puts N
 * contents on bronze, starts tierd on it (PATH, or tierd next to this
 * program), then for 8 and 32 calls in flight (threads doing synchronous
 * calls) sends batches of 1,000 reports whose counts stay in bronze for S
 * seconds, R times.  Prints the median reports/s per row, then drops the
 * database.  --views sends increments (ViewReport.views, 1 to 3 views)
 * instead of absolute counts: each is committed to MySQL (group commit)
 * before its reply, so the rows measure the durable path.
 */
#include <limits.h>
#include <mysql.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tier.pb-c.h"
#include "tier_methods.h"
#include "tier_rpc.h"
#include "tier_time.h"

#define BATCH 1000

static long long ncontents = 100000;
static int seconds = 3, runs = 3;
static bool views_mode;
static atomic_llong done_reports;
static atomic_bool stop;
static uint8_t *reqbuf[64];
static size_t reqlen[64];
static char url[64];

static MYSQL *connect_db(const char *db)
{
    MYSQL *m = mysql_init(NULL);
    const char *port = getenv("TIER_MYSQL_PORT");
    if (!mysql_real_connect(m, getenv("TIER_MYSQL_HOST"), getenv("TIER_MYSQL_USER"),
                            getenv("TIER_MYSQL_PASSWORD"), db, port ? (unsigned)atoi(port) : 3306,
                            NULL, 0)) {
        fprintf(stderr, "bench: MySQL: %s\n", mysql_error(m));
        exit(1);
    }
    return m;
}

/* N contents on bronze, inserted 1,000 rows per statement (numbers only). */
static void fill(const char *db)
{
    MYSQL *m = connect_db(db);
    char *q = malloc(64 * BATCH + 128);
    for (long long c = 1; c <= ncontents; c += BATCH) {
        size_t len =
            (size_t)sprintf(q, "INSERT INTO contents (cid, content_level, filename) VALUES ");
        for (long long i = c; i < c + BATCH && i <= ncontents; i++)
            len +=
                (size_t)sprintf(q + len, "%s(%lld,'bronze','f%lld.mp4')", i > c ? "," : "", i, i);
        if (mysql_real_query(m, q, len) != 0) {
            fprintf(stderr, "bench: %s\n", mysql_error(m));
            exit(1);
        }
    }
    free(q);
    mysql_close(m);
}

static void make_requests(void)
{
    Tier__ViewReport v[BATCH], *list[BATCH];
    Tier__ReportViewsRequest req = TIER__REPORT_VIEWS_REQUEST__INIT;
    for (int r = 0; r < 64; r++) {
        for (int i = 0; i < BATCH; i++) {
            tier__view_report__init(&v[i]);
            v[i].cid = 1 + (long long)(((unsigned long long)r * BATCH + (unsigned)i) * 7919ull %
                                       (unsigned long long)ncontents);
            if (views_mode)
                v[i].views = 1 + i % 3; /* a few per content and run: stays on bronze */
            else
                v[i].count = (r * 31 + i) % 1000; /* bronze: nothing moves */
            list[i] = &v[i];
        }
        req.reports = list;
        req.n_reports = BATCH;
        reqlen[r] = tier__report_views_request__get_packed_size(&req);
        reqbuf[r] = malloc(reqlen[r]);
        tier__report_views_request__pack(&req, reqbuf[r]);
    }
}

static void *sender(void *arg)
{
    tier_rpc_client *c = arg;
    unsigned i = (unsigned)(uintptr_t)pthread_self();
    while (!atomic_load(&stop)) {
        void *out;
        size_t outlen;
        tier_rpc_error err;
        int r = (int)(i++ % 64);
        if (tier_rpc_call_raw(c, TIER_M_REPORT_VIEWS, reqbuf[r], reqlen[r], &out, &outlen, 10000,
                              &err) != 0) {
            fprintf(stderr, "bench: %s\n", err.message);
            continue;
        }
        Tier__ReportViewsReply *rep = tier__report_views_reply__unpack(NULL, outlen, out);
        if (rep == NULL || rep->n_results != BATCH || strcmp(rep->results[0]->status, "done") != 0)
            fprintf(stderr, "bench: unexpected reply\n");
        else
            atomic_fetch_add(&done_reports, BATCH);
        tier__report_views_reply__free_unpacked(rep, NULL);
        free(out);
    }
    return NULL;
}

static double one_run(int inflight)
{
    tier_rpc_client_opts o = {.max_inflight = (unsigned)inflight};
    tier_rpc_client *c;
    pthread_t th[64];
    tier_rpc_client_open(&c, url, &o, NULL);
    atomic_store(&stop, false);
    atomic_store(&done_reports, 0);
    for (int i = 0; i < inflight; i++)
        pthread_create(&th[i], NULL, sender, c);
    sleep(1); /* warm up */
    long long a = atomic_load(&done_reports);
    int64_t t0 = tier_mono_us();
    sleep((unsigned)seconds);
    long long b = atomic_load(&done_reports);
    int64_t t1 = tier_mono_us();
    atomic_store(&stop, true);
    for (int i = 0; i < inflight; i++)
        pthread_join(th[i], NULL);
    tier_rpc_client_close(c);
    return (double)(b - a) * 1e6 / (double)(t1 - t0);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    char tierd[PATH_MAX], db[64], cmd[PATH_MAX + 256], env_db[96];
    snprintf(tierd, sizeof(tierd), "%.*s/tierd",
             (int)(strrchr(argv[0], '/') ? strrchr(argv[0], '/') - argv[0] : 1),
             strrchr(argv[0], '/') ? argv[0] : ".");
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--views") == 0) {
            views_mode = true;
            memmove(&argv[i], &argv[i + 1], (size_t)(argc - i) * sizeof(*argv));
            argc--;
            break;
        }
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--contents") == 0)
            ncontents = atoll(argv[i + 1]);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--runs") == 0)
            runs = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--tierd") == 0)
            snprintf(tierd, sizeof(tierd), "%s", argv[i + 1]);
    }
    if (getenv("TIER_MYSQL_HOST") == NULL || getenv("TIER_REDIS_PORT") == NULL) {
        fprintf(stderr, "bench: start the services and source their env first\n");
        return 2;
    }
    snprintf(db, sizeof(db), "tier_bench_%d", (int)getpid());
    /* The checkout: this program is <checkout>/<build>/bin/bench_report_views. */
    char src[PATH_MAX];
    if (realpath(argv[0], src) == NULL)
        return 2;
    for (int up = 0; up < 3; up++)
        *strrchr(src, '/') = '\0';
    snprintf(cmd, sizeof(cmd), "TIER_MYSQL_DB=%s bash %s/scripts/migrate.sh >/dev/null 2>&1", db,
             src);
    if (system(cmd) != 0) {
        fprintf(stderr, "bench: migrate failed: %s\n", cmd);
        return 1;
    }
    fill(db);
    int port = 20000 + getpid() % 20000;
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
    char push[64], prefix[64];
    snprintf(push, sizeof(push), "tcp://127.0.0.1:%d", port + 1);
    snprintf(env_db, sizeof(env_db), "TIER_MYSQL_DB=%s", db);
    snprintf(prefix, sizeof(prefix), "TIER_REDIS_PREFIX=bench%d:", (int)getpid());
    putenv(env_db);
    putenv(prefix);
    pid_t pid = fork();
    if (pid == 0) {
        execl(tierd, tierd, "--listen", url, "--push", push, "--no-auth", (char *)NULL);
        _exit(127);
    }
    make_requests();
    sleep(2 + (unsigned)(ncontents / 500000));
    printf("ReportViews (%s), batches of %d, %lld contents, nothing moves (%d runs of %d s)\n",
           views_mode ? "increments, durable" : "absolute counts", BATCH, ncontents, runs, seconds);
    printf("| calls in flight | reports/s (median) | min | max |\n|---:|---:|---:|---:|\n");
    int rows[] = {8, 32};
    for (size_t k = 0; k < 2; k++) {
        double v[16];
        for (int r = 0; r < runs && r < 16; r++)
            v[r] = one_run(rows[k]);
        qsort(v, (size_t)runs, sizeof(double), cmp);
        printf("| %d | %.0f | %.0f | %.0f |\n", rows[k], v[runs / 2], v[0], v[runs - 1]);
        fflush(stdout);
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    MYSQL *m = connect_db(NULL);
    snprintf(cmd, sizeof(cmd), "DROP DATABASE %s", db);
    mysql_query(m, cmd);
    mysql_close(m);
    return 0;
}
