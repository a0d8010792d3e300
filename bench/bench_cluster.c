/*
 * bench_cluster.c -- what several coordinators cost (issue 11, item 7;
 * docs/CLUSTER.md, docs/BENCHMARKS.md section 11).
 *
 *   . .run/env; bench_cluster [--mode routing|top|mem|all] [--runs R]
 *                             [--seconds S] [--contents N] [--events E]
 *                             [--queries Q]
 *
 * Needs the services (scripts/services.sh start; their env exported) and
 * tierd next to this program.  Every cluster is fresh: its own database
 * (scripts/migrate.sh), Redis prefix and storage directory, and S tierd
 * processes started with --shards S --shard K (--no-auth, tcp://).
 *
 * routing: libtier's routing cost.  N contents (100,000) on bronze; batches
 *     of 1,000 absolute counts that stay in bronze (nothing moves, answered
 *     from memory), for S seconds (3) with 1 and 8 calls in flight, R runs
 *     (3), in three ways:
 *       - one shard, tier_report_views straight to the tierd;
 *       - the same tierd through tier_cluster_report_views (cut by shard,
 *         reassembled: one part);
 *       - three shards through tier_cluster_report_views (three parts, sent
 *         one after the other, results put back in request order).
 *     Before them, in process: a copy of libtier's cut and reassembly
 *     (static in tier_cluster_batch.c) timed over 20,000 batches.
 *     Per row: reports/s, and CPU per batch of 1,000 of this process
 *     (getrusage: the caller threads and libtier's nng threads) and of the
 *     tierd processes (/proc/<pid>/stat utime+stime).
 * top: TopContents with 3 owners vs 1.  The same comment stream (E events,
 *     360,000: 100/s for 1 simulated hour, cids 1..20,000 chosen Zipf s=1,
 *     service cid % 3, no deletes) is posted through
 *     tier_cluster_post_comments (so routed by cid) into a one-shard and a
 *     three-shard cluster.  Then Q (300) TopContents top-100 calls with
 *     random windows (1, 10 or 60 minutes, placed at random in the hour;
 *     INCREASE and DECREASE alternating; every service or one) go to both,
 *     the three-shard ones to shard (q % 3)'s tierd, which fans out to the
 *     two others and merges.  Every reply of the three-shard cluster must
 *     hold the same rows (service, cid, change, created, deleted,
 *     restored, in order) as the one-shard one: otherwise the run fails.
 *     p50/p99 per window length, per cluster, the median of R runs.
 * mem: memory per content and a shard's load time.  A one-shard tierd on
 *     an empty database and one on N (200,000 unless --contents) contents
 *     (started R times: each is a writer taking the lease and loading its
 *     shard, as a takeover does): VmRSS once it answers, and the time from
 *     its log's "writer: lease and MySQL fence taken" to "serving on".
 *     Then shard 0 of a three-shard cluster over 3N contents (it holds
 *     about N): the same, to see what the other shards' rows cost its load.
 *
 * Exit status 1 when a check fails.
 */
#include <arpa/inet.h>
#include <ftw.h>
#include <limits.h>
#include <mysql.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tier_client.h"
#include "tier_slot.h"
#include "tier_time.h"

#define BATCH 1000
#define MAXS 8
#define NCID 20000
#define NREQ 64
#define MAXQ 2000

#include "bench_zipf.h"

static long long ncontents = -1; /* -1: the mode's default */
static int seconds = 3, runs = 3, queries = 300;
static long events = 360000;
static const char *mode = "all";
static char bindir[1024], srcdir[1024];
static long failures;

/* ------------------------------------------------------------ helpers */

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "bench_cluster: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

static MYSQL *connect_db(const char *db)
{
    MYSQL *m = mysql_init(NULL);
    const char *port = getenv("TIER_MYSQL_PORT");
    if (!mysql_real_connect(m, getenv("TIER_MYSQL_HOST"), getenv("TIER_MYSQL_USER"),
                            getenv("TIER_MYSQL_PASSWORD"), db, port ? (unsigned)atoi(port) : 3306,
                            NULL, 0))
        die("MySQL", mysql_error(m));
    return m;
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

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    qsort(v, n, sizeof(double), cmp_double);
    return v[(size_t)(p * (double)(n - 1) + 0.5)];
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return v[n / 2];
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
    buf[strcspn(buf, " ")] = '\0';
}

/* utime + stime of a process in seconds. */
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
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* VmRSS of a process in KiB. */
static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    long v = -1;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0)
            v = atol(line + 6);
    if (f != NULL)
        fclose(f);
    return v;
}

/* ------------------------------------------------------------ a cluster */

typedef struct {
    int shards;
    char db[64], root[PATH_MAX], prefix[64], seeds[MAXS * 64];
    char url[MAXS][64], push[MAXS][64], log[MAXS][PATH_MAX + 32];
    pid_t pid[MAXS];
    tier_client *c[MAXS];
    tier_cluster *cl;
} cluster;

static int serial;

/* N contents on bronze, 1,000 rows per statement (numbers only). */
static void fill(const char *db, long long n)
{
    MYSQL *m = connect_db(db);
    char *q = malloc(64 * BATCH + 128);
    for (long long c = 1; c <= n; c += BATCH) {
        size_t len =
            (size_t)sprintf(q, "INSERT INTO contents (cid, content_level, filename) VALUES ");
        for (long long i = c; i < c + BATCH && i <= n; i++)
            len +=
                (size_t)sprintf(q + len, "%s(%lld,'bronze','f%lld.mp4')", i > c ? "," : "", i, i);
        if (mysql_real_query(m, q, len) != 0)
            die("MySQL", mysql_error(m));
    }
    free(q);
    mysql_close(m);
}

static void db_create(cluster *e, long long n)
{
    char cmd[PATH_MAX * 2];
    snprintf(e->db, sizeof(e->db), "tier_bench_cl_%d_%d", (int)getpid(), serial);
    snprintf(e->root, sizeof(e->root), "%s/tier-bench-cl-%d-%d",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid(), serial);
    snprintf(e->prefix, sizeof(e->prefix), "bcl%d_%d:", (int)getpid(), serial);
    serial++;
    if (mkdir(e->root, 0755) != 0)
        die("mkdir failed", e->root);
    snprintf(cmd, sizeof(cmd),
             "TIER_MYSQL_DB=%s TIER_STORAGE_ROOT=%s bash %s/scripts/migrate.sh >/dev/null 2>&1",
             e->db, e->root, srcdir);
    if (system(cmd) != 0)
        die("migrate failed", cmd);
    fill(e->db, n);
}

/* Starts shard k's tierd and waits until it answers. */
static void tierd_start(cluster *e, int k)
{
    char tierd[PATH_MAX + 16], shards[16], shard[16];
    snprintf(tierd, sizeof(tierd), "%s/tierd", bindir);
    snprintf(shards, sizeof(shards), "%d", e->shards);
    snprintf(shard, sizeof(shard), "%d", k);
    if (e->url[k][0] == '\0') {
        snprintf(e->url[k], sizeof(e->url[k]), "tcp://127.0.0.1:%d", free_port());
        snprintf(e->push[k], sizeof(e->push[k]), "tcp://127.0.0.1:%d", free_port());
    }
    snprintf(e->log[k], sizeof(e->log[k]), "%s/tierd%d.log", e->root, k);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *lf = freopen(e->log[k], "a", stderr);
        (void)lf;
        dup2(2, 1);
        setenv("TIER_MYSQL_DB", e->db, 1);
        setenv("TIER_REDIS_PREFIX", e->prefix, 1);
        setenv("TIER_STORAGE_ROOT", e->root, 1);
        setenv("TIER_LOG", "info", 1);
        execl(tierd, tierd, "--listen", e->url[k], "--push", e->push[k], "--no-auth", "--shards",
              shards, "--shard", shard, (char *)NULL);
        _exit(127);
    }
    e->pid[k] = pid;
    if (e->c[k] == NULL) {
        tier_client_open(&e->c[k], e->url[k]);
        tier_client_set_timeout(e->c[k], 30000);
    }
    for (int i = 0;; i++) {
        Tier__ListLevelsRequest req = TIER__LIST_LEVELS_REQUEST__INIT;
        Tier__ListLevelsReply *rep;
        tier_error err;
        if (tier_list_levels(e->c[k], &req, &rep, &err) == TIER_OK) {
            tier_free(rep);
            return;
        }
        if (i > 2400)
            die("tierd did not start, see", e->log[k]);
        usleep(25 * 1000);
    }
}

static void tierd_stop(cluster *e, int k)
{
    if (e->pid[k] > 0) {
        kill(e->pid[k], SIGTERM);
        waitpid(e->pid[k], NULL, 0);
        e->pid[k] = 0;
    }
}

static void cluster_start(cluster *e, int shards, long long n)
{
    memset(e, 0, sizeof(*e));
    e->shards = shards;
    db_create(e, n);
    for (int k = 0; k < shards; k++) {
        tierd_start(e, k);
        snprintf(e->seeds + strlen(e->seeds), sizeof(e->seeds) - strlen(e->seeds), "%s%s",
                 k ? "," : "", e->url[k]);
    }
    tier_client_opts o = {.timeout_ms = 30000};
    tier_error err;
    for (int i = 0;; i++) { /* every shard published (once a second) */
        char owner[256];
        int ok = 0;
        if (tier_cluster_open(&e->cl, e->seeds, &o, &err) == TIER_OK) {
            ok = tier_cluster_shards(e->cl) == (unsigned)shards;
            for (long cid = 1; ok && cid <= 64; cid++)
                ok = tier_cluster_owner_url(e->cl, cid, owner, sizeof(owner)) == TIER_OK;
            if (ok)
                return;
            tier_cluster_close(e->cl);
            e->cl = NULL;
        }
        if (i > 100)
            die("no full topology from", e->seeds);
        usleep(100 * 1000);
    }
}

static void cluster_stop(cluster *e)
{
    char q[128];
    if (e->cl)
        tier_cluster_close(e->cl);
    for (int k = 0; k < e->shards; k++) {
        tierd_stop(e, k);
        if (e->c[k])
            tier_client_close(e->c[k]);
    }
    MYSQL *m = connect_db(NULL);
    snprintf(q, sizeof(q), "DROP DATABASE `%s`", e->db);
    mysql_query(m, q);
    mysql_close(m);
    if (getenv("BENCH_KEEP") == NULL)
        nftw(e->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static double cluster_cpu(const cluster *e)
{
    double s = 0;
    for (int k = 0; k < e->shards; k++)
        s += cpu_s(e->pid[k]);
    return s;
}

/* ------------------------------------------------------------ routing */

static Tier__ReportViewsRequest reqs[NREQ];
static atomic_llong done_batches;
static atomic_bool stop;

typedef struct {
    cluster *e;
    bool routed;
    unsigned seed;
} sender_arg;

static void make_requests(long long n)
{
    for (int r = 0; r < NREQ; r++) {
        Tier__ViewReport *v = calloc(BATCH, sizeof(*v));
        Tier__ViewReport **list = calloc(BATCH, sizeof(*list));
        for (int i = 0; i < BATCH; i++) {
            tier__view_report__init(&v[i]);
            v[i].cid = 1 + (long long)(((unsigned long long)r * BATCH + (unsigned)i) * 7919ull %
                                       (unsigned long long)n);
            v[i].count = (r * 31 + i) % 1000; /* bronze: nothing moves */
            list[i] = &v[i];
        }
        tier__report_views_request__init(&reqs[r]);
        reqs[r].reports = list;
        reqs[r].n_reports = BATCH;
    }
}

static void *sender(void *arg)
{
    sender_arg *a = arg;
    unsigned i = a->seed;
    while (!atomic_load(&stop)) {
        Tier__ReportViewsReply *rep;
        tier_error err;
        const Tier__ReportViewsRequest *q = &reqs[i++ % NREQ];
        int rv = a->routed ? tier_cluster_report_views(a->e->cl, q, &rep, &err)
                           : tier_report_views(a->e->c[0], q, &rep, &err);
        if (rv != TIER_OK) {
            fprintf(stderr, "bench_cluster: ReportViews: %s\n", err.message);
            failures++;
            continue;
        }
        if (rep->n_results != BATCH || rep->results[0]->cid != q->reports[0]->cid ||
            rep->results[BATCH - 1]->cid != q->reports[BATCH - 1]->cid ||
            strcmp(rep->results[0]->status, "done") != 0) {
            fprintf(stderr, "bench_cluster: unexpected reply\n");
            failures++;
        }
        tier_free(rep);
        atomic_fetch_add(&done_batches, 1);
    }
    return NULL;
}

typedef struct {
    double rps, client_us, tierd_us;
} routing_fig;

static routing_fig routing_run(cluster *e, bool routed, int inflight)
{
    pthread_t th[64];
    sender_arg a[64];
    atomic_store(&stop, false);
    atomic_store(&done_batches, 0);
    double c0 = self_cpu_s(), t0 = cluster_cpu(e);
    int64_t w0 = tier_mono_us();
    for (int k = 0; k < inflight; k++) {
        a[k] = (sender_arg){e, routed, (unsigned)k * 7u};
        pthread_create(&th[k], NULL, sender, &a[k]);
    }
    usleep((useconds_t)seconds * 1000000u);
    atomic_store(&stop, true);
    for (int k = 0; k < inflight; k++)
        pthread_join(th[k], NULL);
    double secs = (double)(tier_mono_us() - w0) / 1e6;
    double calls = (double)atomic_load(&done_batches);
    routing_fig f = {calls * BATCH / secs, (self_cpu_s() - c0) * 1e6 / calls,
                     (cluster_cpu(e) - t0) * 1e6 / calls};
    return f;
}

static void routing_row(cluster *e, const char *name, bool routed, int inflight)
{
    double rps[16], cu[16], tu[16];
    char load[32];
    loadavg(load, sizeof(load));
    routing_run(e, routed, inflight); /* warm: connections, caches */
    for (int r = 0; r < runs; r++) {
        routing_fig f = routing_run(e, routed, inflight);
        rps[r] = f.rps;
        cu[r] = f.client_us;
        tu[r] = f.tierd_us;
    }
    printf("| %s | %d | %d | %s | %.0f | %.0f | %.0f |\n", name, e->shards, inflight, load,
           median(rps, runs), median(cu, runs), median(tu, runs));
    fflush(stdout);
}

/* In process: the work of libtier's cut and reassembly for one batch
 * (tier_cluster_batch.c's cut() and assemble(), which are static: this is
 * a copy of what they do per item -- the cid looked up by field name,
 * tier_shard_of, part and position; then the results' pointers put back in
 * request order).  ns per batch of 1,000, for `shards`. */
static double split_ns(unsigned shards)
{
    static unsigned part[BATCH];
    static size_t pos[BATCH];
    static void *res[BATCH];
    static void *fake[9][BATCH];
    size_t count[9];
    long iters = 20000;
    volatile size_t sink = 0;
    int64_t t0 = tier_mono_us();
    for (long it = 0; it < iters; it++) {
        const Tier__ReportViewsRequest *q = &reqs[it % NREQ];
        memset(count, 0, sizeof(count));
        for (size_t i = 0; i < q->n_reports; i++) {
            const ProtobufCMessage *item = &q->reports[i]->base;
            const ProtobufCFieldDescriptor *f =
                protobuf_c_message_descriptor_get_field_by_name(item->descriptor, "cid");
            int64_t cid = *(const int64_t *)((const char *)item + f->offset);
            part[i] = shards <= 1 ? 0 : tier_shard_of(cid, shards);
            pos[i] = count[part[i]]++;
        }
        for (size_t i = 0; i < q->n_reports; i++)
            res[i] = fake[part[i]][pos[i]];
        sink += (size_t)res[it % BATCH] + count[0];
    }
    (void)sink;
    return (double)(tier_mono_us() - t0) * 1000.0 / (double)iters;
}

static void mode_routing(void)
{
    long long n = ncontents > 0 ? ncontents : 100000;
    cluster one, three;
    make_requests(n);
    {
        double s1[16], s3[16];
        char load[32];
        loadavg(load, sizeof(load));
        for (int r = 0; r < runs; r++) {
            s1[r] = split_ns(1);
            s3[r] = split_ns(3);
        }
        printf("(in process, a copy of libtier's cut + reassembly: %.1f µs per batch of %d for "
               "1 shard, %.1f µs for 3; load avg %s)\n\n",
               median(s1, runs) / 1000.0, BATCH, median(s3, runs) / 1000.0, load);
    }
    printf("routing: batches of %d reports that stay in bronze (%lld contents), %d s x %d runs "
           "per row (median), after one warm-up run\n",
           BATCH, n, seconds, runs);
    printf("| path | shards | calls in flight | load avg | reports/s | client CPU µs/batch | "
           "tierd CPU µs/batch (all shards) |\n|---|---:|---:|---:|---:|---:|---:|\n");
    cluster_start(&one, 1, n);
    for (int inflight = 1; inflight <= 8; inflight *= 8) {
        routing_row(&one, "tier_report_views (straight)", false, inflight);
        routing_row(&one, "tier_cluster_report_views", true, inflight);
    }
    cluster_stop(&one);
    cluster_start(&three, 3, n);
    for (int inflight = 1; inflight <= 8; inflight *= 8)
        routing_row(&three, "tier_cluster_report_views", true, inflight);
    cluster_stop(&three);
    printf("\n");
}

/* ------------------------------------------------------------ top */

static const char *const SVCS[] = {"news", "sports", "blog"};
static char BODY[101];

typedef struct {
    cluster *e;
    const double *cdf;
    int64_t start_ms;
    long from, to, rate;
} stream;

static void *stream_main(void *arg)
{
    stream *s = arg;
    Tier__PostCommentRequest *cs = calloc(BATCH, sizeof(*cs));
    Tier__PostCommentRequest **ps = calloc(BATCH, sizeof(*ps));
    uint64_t r = 0x9E3779B97F4A7C15ULL * (uint64_t)(s->from + 1);
    size_t k = 0;

    for (long i = s->from; i < s->to; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        double u = (double)(r >> 11) / 9007199254740992.0;
        size_t lo = 0, hi = NCID - 1;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (s->cdf[mid] < u)
                lo = mid + 1;
            else
                hi = mid;
        }
        int64_t cid = (int64_t)lo + 1;
        tier__post_comment_request__init(&cs[k]);
        cs[k].service = (char *)SVCS[cid % 3];
        cs[k].cid = cid;
        cs[k].author = "bench";
        cs[k].body = BODY;
        cs[k].time_ms = s->start_ms + i * 1000 / s->rate;
        ps[k] = &cs[k];
        if (++k == BATCH || i == s->to - 1) {
            Tier__PostCommentsRequest q = TIER__POST_COMMENTS_REQUEST__INIT;
            Tier__PostCommentsReply *rep;
            tier_error err;
            q.n_comments = k;
            q.comments = ps;
            if (tier_cluster_post_comments(s->e->cl, &q, &rep, &err) != TIER_OK)
                die("PostComments", err.message);
            tier_free(rep);
            k = 0;
        }
    }
    free(cs);
    free(ps);
    return NULL;
}

static double load_comments(cluster *e, const double *cdf, int64_t start_ms, long rate)
{
    stream s[4];
    pthread_t th[4];
    int64_t t0 = tier_mono_us();
    for (int i = 0; i < 4; i++) {
        s[i] = (stream){e, cdf, start_ms, events * i / 4, events * (i + 1) / 4, rate};
        pthread_create(&th[i], NULL, stream_main, &s[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    return (double)events * 1e6 / (double)(tier_mono_us() - t0);
}

static bool same_rows(const Tier__TopContentsReply *a, const Tier__TopContentsReply *b)
{
    if (a->n_rows != b->n_rows)
        return false;
    for (size_t i = 0; i < a->n_rows; i++) {
        const Tier__TopRow *x = a->rows[i], *y = b->rows[i];
        if (x->cid != y->cid || strcmp(x->service, y->service) != 0 || x->change != y->change ||
            x->created != y->created || x->deleted != y->deleted || x->restored != y->restored)
            return false;
    }
    return true;
}

static void ranking_mem(cluster *e, const char *name)
{
    for (int k = 0; k < e->shards; k++) {
        Tier__Rpc__HealthRequest q = TIER__RPC__HEALTH_REQUEST__INIT;
        Tier__Rpc__HealthReply *rep;
        if (tier_health(e->c[k], &q, &rep, NULL) != TIER_OK)
            continue;
        for (size_t i = 0; i < rep->n_dependencies; i++)
            if (strcmp(rep->dependencies[i]->name, "ranking") == 0)
                printf("%s, shard %d: ranking %s; VmRSS %ld KiB\n", name, k,
                       rep->dependencies[i]->message, rss_kib(e->pid[k]));
        tier_free(rep);
    }
}

static void mode_top(void)
{
    static const int64_t lens[] = {1, 10, 60};
    static double lat[2][3][MAXQ];
    double p50[2][3][16], p99[2][3][16];
    int nl[3];
    cluster one, three;
    char load[32];
    long rate = events / 3600 > 0 ? events / 3600 : 1;
    int64_t now_min = tier_now_ms() / 60000, start_min = now_min - 61;
    double *cdf = zipf_cdf();
    long mismatches = 0, rows_total = 0;

    memset(BODY, 'x', 100);
    if (queries > MAXQ)
        queries = MAXQ;
    cluster_start(&one, 1, 0);
    cluster_start(&three, 3, 0);
    loadavg(load, sizeof(load));
    double r1 = load_comments(&one, cdf, start_min * 60000, rate);
    double r3 = load_comments(&three, cdf, start_min * 60000, rate);
    printf("top: %ld comments over 1 h (%ld/s simulated) on %d cids (Zipf s=1), posted routed: "
           "%.0f comments/s into 1 shard, %.0f into 3 (load avg %s before)\n",
           events, rate, NCID, r1, r3, load);
    ranking_mem(&one, "1 shard");
    ranking_mem(&three, "3 shards");
    loadavg(load, sizeof(load));
    for (int r = 0; r < runs; r++) {
        memset(nl, 0, sizeof(nl));
        for (int q = 0; q < queries; q++) {
            int li = q % 3;
            int64_t len = lens[li];
            int64_t to = start_min + len + (int64_t)(next_u64() % (uint64_t)(61 - len + 1));
            Tier__TopContentsRequest rq = TIER__TOP_CONTENTS_REQUEST__INIT;
            Tier__TopContentsReply *rep[2];
            tier_error err;
            rq.from_ms = (to - len) * 60000;
            rq.to_ms = to * 60000;
            rq.limit = 100;
            rq.service = (q / 3) % 2 ? (char *)SVCS[q % 3] : "";
            rq.order = (q / 6) % 2 ? TIER__ORDER__DECREASE : TIER__ORDER__INCREASE;
            for (int s = 0; s < 2; s++) {
                tier_client *c = s == 0 ? one.c[0] : three.c[q % 3];
                int64_t t0 = tier_mono_us();
                if (tier_top_contents(c, &rq, &rep[s], &err) != TIER_OK)
                    die("TopContents", err.message);
                lat[s][li][nl[li]] = (double)(tier_mono_us() - t0) / 1000.0;
            }
            nl[li]++;
            rows_total += (long)rep[0]->n_rows;
            if (!same_rows(rep[0], rep[1])) {
                if (mismatches++ < 5)
                    fprintf(stderr,
                            "bench_cluster: TopContents [%lld, %lld) service '%s' order %d: 3 "
                            "shards answer %zu rows, 1 shard %zu, not the same\n",
                            (long long)rq.from_ms, (long long)rq.to_ms, rq.service, rq.order,
                            rep[1]->n_rows, rep[0]->n_rows);
            }
            tier_free(rep[0]);
            tier_free(rep[1]);
        }
        for (int s = 0; s < 2; s++)
            for (int li = 0; li < 3; li++) {
                p50[s][li][r] = pct(lat[s][li], (size_t)nl[li], 0.5);
                p99[s][li][r] = pct(lat[s][li], (size_t)nl[li], 0.99);
            }
    }
    printf("\nTopContents top-100, random windows in the hour, ms: median over %d runs of each "
           "run's p50 / p99 (%d queries per run, a third per window length; load avg %s "
           "before)\n",
           runs, queries, load);
    printf("| window | 1 shard p50 | 1 shard p99 | 3 shards p50 | 3 shards p99 |\n"
           "|---|---:|---:|---:|---:|\n");
    for (int li = 0; li < 3; li++)
        printf("| %lld min | %.3f | %.3f | %.3f | %.3f |\n", (long long)lens[li],
               median(p50[0][li], runs), median(p99[0][li], runs), median(p50[1][li], runs),
               median(p99[1][li], runs));
    printf("exactness: %ld of %d replies of 3 shards differ from 1 shard's (%.1f rows per "
           "reply)\n\n",
           mismatches, runs * queries, (double)rows_total / (double)(runs * queries));
    failures += mismatches;
    cluster_stop(&three);
    cluster_stop(&one);
    free(cdf);
}

/* ------------------------------------------------------------ mem */

/* ms of the day of a log line's "YYYY-MM-DDTHH:MM:SS.mmmZ". */
static long long log_ms(const char *line)
{
    int h, m, s, ms;
    if (sscanf(line + 11, "%d:%d:%d.%d", &h, &m, &s, &ms) != 4)
        return -1;
    return ((h * 60LL + m) * 60 + s) * 1000 + ms;
}

/* Time from the last "writer: lease and MySQL fence taken" to the
 * "serving on" after it, in the log. */
static long long load_time_ms(const char *log)
{
    FILE *f = fopen(log, "r");
    char line[4096];
    long long taken = -1, serving = -1;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strstr(line, "writer: lease and MySQL fence taken") != NULL) {
            taken = log_ms(line);
            serving = -1;
        } else if (strstr(line, "serving on") != NULL && taken >= 0 && serving < 0)
            serving = log_ms(line);
    }
    if (f != NULL)
        fclose(f);
    return taken >= 0 && serving >= 0 ? serving - taken : -1;
}

static void mode_mem(void)
{
    long long n = ncontents > 0 ? ncontents : 200000;
    double rss0[16], rss1[16], l0[16], l1[16];
    char load[32];
    cluster empty, full;
    loadavg(load, sizeof(load));
    cluster_start(&empty, 1, 0);
    cluster_start(&full, 1, n);
    for (int r = 0; r < runs; r++) {
        if (r > 0) { /* a new writer takes the lease and loads the shard */
            tierd_stop(&empty, 0);
            tierd_stop(&full, 0);
            tierd_start(&empty, 0);
            tierd_start(&full, 0);
        }
        usleep(300 * 1000);
        rss0[r] = (double)rss_kib(empty.pid[0]);
        rss1[r] = (double)rss_kib(full.pid[0]);
        l0[r] = (double)load_time_ms(empty.log[0]);
        l1[r] = (double)load_time_ms(full.log[0]);
        printf("mem run %d: empty tierd VmRSS %.0f KiB, load %.0f ms; %lld contents: VmRSS %.0f "
               "KiB, load %.0f ms\n",
               r + 1, rss0[r], l0[r], n, rss1[r], l1[r]);
    }
    double a = median(rss0, runs), b = median(rss1, runs);
    printf("\nmem: one shard, %lld contents on bronze, no comments (load avg %s before), median "
           "of %d starts\n",
           n, load, runs);
    printf("| tierd | VmRSS (KiB) | lease taken -> serving (ms) |\n|---|---:|---:|\n");
    printf("| empty database | %.0f | %.0f |\n", a, median(l0, runs));
    printf("| %lld contents | %.0f | %.0f |\n", n, b, median(l1, runs));
    printf("per content: %.0f bytes of RSS\n\n", (b - a) * 1024.0 / (double)n);
    cluster_stop(&full);
    cluster_stop(&empty);

    /* The same shard size as one of three shards: 3N contents in the
     * database, shard 0's writer keeps about N of them but its loaders'
     * filter (CRC32(cid) % 1024 BETWEEN lo AND hi) has no index to use. */
    cluster part;
    double lp[16], rp[16];
    long long held = 0;
    loadavg(load, sizeof(load));
    cluster_start(&part, 3, 3 * n);
    for (long long cid = 1; cid <= 3 * n; cid++)
        held += tier_shard_of(cid, 3) == 0;
    for (int r = 0; r < runs; r++) {
        if (r > 0) {
            tierd_stop(&part, 0);
            tierd_start(&part, 0);
        }
        usleep(300 * 1000);
        lp[r] = (double)load_time_ms(part.log[0]);
        rp[r] = (double)rss_kib(part.pid[0]);
        printf("mem run %d: shard 0 of 3 over %lld contents (holds %lld): VmRSS %.0f KiB, load "
               "%.0f ms\n",
               r + 1, 3 * n, held, rp[r], lp[r]);
    }
    printf("\n| shard 0 of 3, %lld contents in MySQL, %lld its own (load avg %s before) | %.0f | "
           "%.0f |\n\n",
           3 * n, held, load, median(rp, runs), median(lp, runs));
    cluster_stop(&part);
}

/* ------------------------------------------------------------ main */

static void usage(void)
{
    printf("usage: bench_cluster [--mode routing|top|mem|all] [--runs R (3)] [--seconds S (3)]\n"
           "                     [--contents N] [--events E (360000)] [--queries Q (300)]\n");
}

int main(int argc, char **argv)
{
    char self[PATH_MAX];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) {
            usage();
            return 0;
        }
        if (v == NULL) {
            usage();
            return 2;
        }
        if (strcmp(a, "--mode") == 0)
            mode = v;
        else if (strcmp(a, "--runs") == 0)
            runs = atoi(v);
        else if (strcmp(a, "--seconds") == 0)
            seconds = atoi(v);
        else if (strcmp(a, "--contents") == 0)
            ncontents = atoll(v);
        else if (strcmp(a, "--events") == 0)
            events = atol(v);
        else if (strcmp(a, "--queries") == 0)
            queries = atoi(v);
        else {
            usage();
            return 2;
        }
        i++;
    }
    if (runs < 1 || runs > 15 || seconds < 1 || events < 4 || queries < 3) {
        usage();
        return 2;
    }
    if (getenv("TIER_MYSQL_HOST") == NULL || getenv("TIER_REDIS_PORT") == NULL) {
        fprintf(stderr, "bench_cluster: start the services and source their env first\n");
        return 2;
    }
    if (realpath("/proc/self/exe", self) == NULL)
        return 2;
    snprintf(bindir, sizeof(bindir), "%.1000s", self);
    *strrchr(bindir, '/') = '\0';
    snprintf(srcdir, sizeof(srcdir), "%s", bindir);
    for (int up = 0; up < 2; up++)
        *strrchr(srcdir, '/') = '\0';
    signal(SIGPIPE, SIG_IGN);
    bool all = strcmp(mode, "all") == 0;
    if (all || strcmp(mode, "routing") == 0)
        mode_routing();
    if (all || strcmp(mode, "top") == 0)
        mode_top();
    if (all || strcmp(mode, "mem") == 0)
        mode_mem();
    return failures ? 1 : 0;
}
