/*
 * bench_ranking.c -- the ranking system end to end, through the RPC, against
 * a running tierd (its MySQL durable: innodb_flush_log_at_trx_commit=1).
 *
 * Workload (issue 4): 200,000 contents chosen with Zipf s=1.0 (content c
 * belongs to service c % 3), 500 comments/s for 6 simulated hours (10.8M
 * events) ending now, 10% of the events deleting an earlier live comment,
 * bodies of about 100 bytes.  Times are simulated, nothing sleeps.
 *
 *   1. load: the creates through PostComments batches of 1,000 with
 *      backfilled time_ms (LOAD_STREAMS calls in flight) -> comments/s;
 *      then the deletes, each with a backfilled time_ms drawn between its
 *      comment's creation and the end of the timeline, so deletes are
 *      spread over the hours as in the workload (not piled up in the
 *      minute the bench runs in): the first half through DeleteComment,
 *      64 in flight, the second half through DeleteComments batches of
 *      1,000 (LOAD_STREAMS calls in flight) -> deletes/s of each.
 *   2. TopContents top-100 over 1 / 60 / 360 / 1440-minute windows, ending
 *      now and placed at random in the past: median and p99 of QUERIES
 *      calls each, the median of RUNS runs of that.
 *   3. PostComment one at a time, 64 calls in flight -> comments/s
 *      (answered by deferred replies: tierd's default 256 contexts suffice).
 *   4. LatestComments(n = 20) of Zipf-chosen contents: median and p99.
 *   5. (issue 12) HOT top-100 at now, and pages: page 10 of 100 rows and
 *      page 11 of 1000 rows (the cursor found by walking the pages before
 *      it, not timed) for INCREASE/DECREASE windows ending now and HOT.
 *      --only-hot runs just this (on data already loaded).
 *   The rank index's memory comes from Health ("ranking" dependency), and
 *   tierd's RSS from /proc when --pid is given.
 *
 * usage: bench_ranking --url URL [--hours H (6)] [--rate R (500)]
 *                      [--pid TIERD_PID] [--no-load] [--only-hot]
 */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tier_client.h"
#include "tier_methods.h"
#include "tier_rpc.h"
#include "tier_time.h"

#define NCID 200000
#define BATCH 1000
#define LOAD_STREAMS 4
#define INFLIGHT 64
#define QUERIES 200
#define RUNS 3

static const char *const SVCS[] = {"news", "sports", "blog"};

/* ------------------------------------------------------------ random */

#include "bench_zipf.h"

/* ------------------------------------------------------------ async calls */

/* Counts replies of async calls; wait_all() blocks until all are in. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long sent, done, failed;
    int first_error;
    char msg[256];
} tally;

static tally T = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, ""};

static void on_done(void *arg, int code, const void *payload, size_t len, const char *message)
{
    (void)arg;
    (void)payload;
    (void)len;
    pthread_mutex_lock(&T.mu);
    T.done++;
    if (code != TIER_OK && T.failed++ == 0) {
        T.first_error = code;
        snprintf(T.msg, sizeof(T.msg), "%s", message ? message : "");
    }
    pthread_cond_broadcast(&T.cv);
    pthread_mutex_unlock(&T.mu);
}

static void tally_reset(void)
{
    pthread_mutex_lock(&T.mu);
    T.sent = T.done = T.failed = 0;
    pthread_mutex_unlock(&T.mu);
}

static void wait_all(void)
{
    pthread_mutex_lock(&T.mu);
    while (T.done < T.sent)
        pthread_cond_wait(&T.cv, &T.mu);
    if (T.failed > 0)
        fprintf(stderr, "  %ld calls failed, first: %s: %s\n", T.failed,
                tier_status_name(T.first_error), T.msg);
    pthread_mutex_unlock(&T.mu);
}

static void send_async(tier_rpc_client *c, const char *method, const void *buf, size_t len)
{
    pthread_mutex_lock(&T.mu);
    T.sent++;
    pthread_mutex_unlock(&T.mu);
    if (tier_rpc_call_async(c, method, buf, len, 60000, on_done, NULL) != TIER_OK)
        on_done(NULL, TIER_UNAVAILABLE, NULL, 0, "call_async failed");
}

/* ------------------------------------------------------------ 1. load */

static char BODY[128];

/* One PostComments stream: a slice of the timeline, batches of BATCH,
 * one call at a time; keeps the ids it got. */
typedef struct {
    tier_client *cl;
    const double *cdf;
    int64_t start_ms;
    long from, to;
    int rate;
    uint64_t seed;
    int64_t *ids;
    int64_t *times; /* created_ms of each id */
    size_t nids;
} stream;

static void *stream_main(void *arg)
{
    stream *s = arg;
    Tier__PostCommentRequest *cs = calloc(BATCH, sizeof(*cs));
    Tier__PostCommentRequest **ps = calloc(BATCH, sizeof(*ps));
    uint64_t r = s->seed;
    size_t k = 0;

    s->ids = malloc((size_t)(s->to - s->from + 1) * sizeof(int64_t));
    s->times = malloc((size_t)(s->to - s->from + 1) * sizeof(int64_t));
    for (long i = s->from; i < s->to; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        if (r % 10 == 0)
            continue;
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
            if (tier_post_comments(s->cl, &q, &rep, &err) != TIER_OK) {
                fprintf(stderr, "PostComments: %s\n", err.message);
                exit(1);
            }
            for (size_t j = 0; j < rep->n_results; j++) {
                s->times[s->nids] = cs[j].time_ms;
                s->ids[s->nids++] = rep->results[j]->id;
            }
            tier_free(rep);
            k = 0;
        }
    }
    free(cs);
    free(ps);
    return NULL;
}

/* LOAD_STREAMS streams over consecutive slices of the timeline. */
static double load_parallel(tier_client *cl, const double *cdf, int64_t start_ms, long events,
                            int rate, int64_t **ids, int64_t **times, size_t *nids)
{
    stream s[LOAD_STREAMS];
    pthread_t th[LOAD_STREAMS];
    double t0 = (double)tier_mono_us();
    size_t total = 0;

    for (int i = 0; i < LOAD_STREAMS; i++) {
        s[i] = (stream){cl,
                        cdf,
                        start_ms,
                        events * i / LOAD_STREAMS,
                        events * (i + 1) / LOAD_STREAMS,
                        rate,
                        0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1),
                        NULL,
                        NULL,
                        0};
        pthread_create(&th[i], NULL, stream_main, &s[i]);
    }
    for (int i = 0; i < LOAD_STREAMS; i++) {
        pthread_join(th[i], NULL);
        total += s[i].nids;
    }
    double secs = ((double)tier_mono_us() - t0) / 1e6;
    *ids = malloc(total * sizeof(int64_t));
    *times = malloc(total * sizeof(int64_t));
    *nids = 0;
    for (int i = 0; i < LOAD_STREAMS; i++) {
        memcpy(*ids + *nids, s[i].ids, s[i].nids * sizeof(int64_t));
        memcpy(*times + *nids, s[i].times, s[i].nids * sizeof(int64_t));
        *nids += s[i].nids;
        free(s[i].ids);
        free(s[i].times);
    }
    return (double)total / secs;
}

/* Deletes ndel distinct random comments, INFLIGHT calls in flight, each at a
 * time between its creation and end_ms. */
static double load_deletes(tier_rpc_client *rc, int64_t *ids, int64_t *times, size_t nids,
                           size_t ndel, int64_t end_ms)
{
    uint8_t buf[64];
    double t0 = (double)tier_mono_us();

    tally_reset();
    for (size_t i = 0; i < ndel && i < nids; i++) {
        size_t j = i + next_u64() % (nids - i); /* partial Fisher-Yates: distinct */
        int64_t id = ids[j], t = times[j];
        ids[j] = ids[i];
        ids[i] = id;
        times[j] = times[i];
        times[i] = t;
        Tier__DeleteCommentRequest q = TIER__DELETE_COMMENT_REQUEST__INIT;
        q.id = id;
        q.time_ms = t + (int64_t)(next_u64() % (uint64_t)(end_ms - t + 1));
        size_t len = tier__delete_comment_request__pack(&q, buf);
        send_async(rc, TIER_M_DELETE_COMMENT, buf, len);
    }
    wait_all();
    return (double)T.done / (((double)tier_mono_us() - t0) / 1e6);
}

/* One DeleteComments stream: batches of BATCH of its slice, one call at
 * a time. */
typedef struct {
    tier_client *cl;
    const int64_t *ids, *times;
    size_t from, to;
    int64_t end_ms;
    uint64_t seed;
    size_t done;
} del_stream;

static void *del_stream_main(void *arg)
{
    del_stream *s = arg;
    Tier__DeleteCommentRequest *items = calloc(BATCH, sizeof(*items));
    Tier__DeleteCommentRequest **ptrs = calloc(BATCH, sizeof(*ptrs));
    uint64_t r = s->seed;

    for (size_t at = s->from; at < s->to; at += BATCH) {
        size_t k = s->to - at < BATCH ? s->to - at : BATCH;
        Tier__DeleteCommentsRequest q = TIER__DELETE_COMMENTS_REQUEST__INIT;
        Tier__CommentsReply *rep;
        tier_error err;
        for (size_t i = 0; i < k; i++) {
            int64_t t = s->times[at + i];
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            tier__delete_comment_request__init(&items[i]);
            items[i].id = s->ids[at + i];
            items[i].time_ms = t + (int64_t)(r % (uint64_t)(s->end_ms - t + 1));
            ptrs[i] = &items[i];
        }
        q.n_items = k;
        q.items = ptrs;
        if (tier_delete_comments(s->cl, &q, &rep, &err) != TIER_OK) {
            /* A tierd from before issue 12 (UNIMPLEMENTED): the rest of
             * the bench still runs, for comparisons. */
            fprintf(stderr, "DeleteComments: %s\n", err.message);
            break;
        }
        for (size_t i = 0; i < rep->n_results; i++)
            s->done += (int)rep->results[i]->code == TIER_OK;
        tier_free(rep);
    }
    free(items);
    free(ptrs);
    return NULL;
}

/* Deletes ids[0..n) (distinct, shuffled already) through DeleteComments
 * batches, LOAD_STREAMS calls in flight; *done gets how many succeeded. */
static double load_deletes_batched(tier_client *cl, const int64_t *ids, const int64_t *times,
                                   size_t n, int64_t end_ms, size_t *done)
{
    del_stream s[LOAD_STREAMS];
    pthread_t th[LOAD_STREAMS];
    double t0 = (double)tier_mono_us();

    *done = 0;
    for (int i = 0; i < LOAD_STREAMS; i++) {
        s[i] = (del_stream){cl,
                            ids,
                            times,
                            n * (size_t)i / LOAD_STREAMS,
                            n * (size_t)(i + 1) / LOAD_STREAMS,
                            end_ms,
                            0xD1B54A32D192ED03ULL * (uint64_t)(i + 1),
                            0};
        pthread_create(&th[i], NULL, del_stream_main, &s[i]);
    }
    for (int i = 0; i < LOAD_STREAMS; i++) {
        pthread_join(th[i], NULL);
        *done += s[i].done;
    }
    return (double)*done / (((double)tier_mono_us() - t0) / 1e6);
}

/* ------------------------------------------------------------ 2. top */

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

/* One run of QUERIES top-100 calls; median and p99 in ms. */
static void top_run(tier_client *cl, int64_t len, bool at_now, int64_t lo_min, int64_t now_min,
                    const char *svc, double *med, double *p99)
{
    static double lat[QUERIES];

    for (int q = 0; q < QUERIES; q++) {
        Tier__TopContentsRequest r = TIER__TOP_CONTENTS_REQUEST__INIT;
        Tier__TopContentsReply *rep;
        tier_error err;
        int64_t to = at_now ? now_min + 1
                            : lo_min + len + (int64_t)(next_u64() % (uint64_t)(now_min - lo_min));
        r.from_ms = (to - len) * 60000;
        r.to_ms = to * 60000;
        r.limit = 100;
        r.service = (char *)svc;
        r.order = q % 2 ? TIER__ORDER__DECREASE : TIER__ORDER__INCREASE;
        double t0 = (double)tier_mono_us();
        if (tier_top_contents(cl, &r, &rep, &err) != TIER_OK) {
            fprintf(stderr, "TopContents: %s\n", err.message);
            exit(1);
        }
        lat[q] = ((double)tier_mono_us() - t0) / 1000.0;
        tier_free(rep);
    }
    *med = pct(lat, QUERIES, 0.5);
    *p99 = pct(lat, QUERIES, 0.99);
}

static void top_table(tier_client *cl, int64_t lo_min)
{
    static const int64_t lens[] = {1, 60, 360, 1440};
    static const double tmed[] = {1, 5, 10, 20}, tp99[] = {2, 10, 20, 40};

    printf("\nTopContents top-100 through the RPC, ms (median of %d runs of %d queries, "
           "INCREASE and DECREASE alternating)\n",
           RUNS, QUERIES);
    printf("%-8s %-8s %-7s %9s %9s %14s\n", "window", "placed", "service", "median", "p99",
           "target med/p99");
    for (int w = 0; w < 4; w++)
        for (int place = 0; place < 2; place++)
            for (int s = 0; s < 2; s++) {
                double med[RUNS], p99[RUNS];
                for (int r = 0; r < RUNS; r++) {
                    int64_t now_min = tier_now_ms() / 60000;
                    top_run(cl, lens[w], place == 0, lo_min, now_min, s ? "news" : "", &med[r],
                            &p99[r]);
                }
                printf("%-8lld %-8s %-7s %9.3f %9.3f %7.0f/%-6.0f\n", (long long)lens[w],
                       place == 0 ? "now" : "past", s ? "news" : "all", pct(med, RUNS, 0.5),
                       pct(p99, RUNS, 0.5), tmed[w], tp99[w]);
            }
}

/* ------------------------------------------------------------ 3, 4 */

static double post_one_at_a_time(tier_rpc_client *rc, const double *cdf, long n)
{
    uint8_t buf[512];
    double t0 = (double)tier_mono_us();

    tally_reset();
    for (long i = 0; i < n; i++) {
        Tier__PostCommentRequest q = TIER__POST_COMMENT_REQUEST__INIT;
        int64_t cid = zipf_cid(cdf);
        q.service = (char *)SVCS[cid % 3];
        q.cid = cid;
        q.author = "bench";
        q.body = BODY;
        size_t len = tier__post_comment_request__pack(&q, buf);
        send_async(rc, TIER_M_POST_COMMENT, buf, len);
    }
    wait_all();
    return (double)T.done / (((double)tier_mono_us() - t0) / 1e6);
}

static void latest_table(tier_client *cl, const double *cdf)
{
    enum { N = 2000 };
    static double lat[N];
    size_t rows = 0;

    for (int i = 0; i < N; i++) {
        Tier__LatestCommentsRequest q = TIER__LATEST_COMMENTS_REQUEST__INIT;
        Tier__LatestCommentsReply *rep;
        tier_error err;
        q.cid = zipf_cid(cdf);
        q.n = 20;
        double t0 = (double)tier_mono_us();
        if (tier_latest_comments(cl, &q, &rep, &err) != TIER_OK) {
            fprintf(stderr, "LatestComments: %s\n", err.message);
            exit(1);
        }
        lat[i] = ((double)tier_mono_us() - t0) / 1000.0;
        rows += rep->n_comments;
        tier_free(rep);
    }
    printf("\nLatestComments(n=20), Zipf-chosen contents, %d calls, %.1f rows/call: "
           "median %.3f ms, p99 %.3f ms (target p99 <= 5)\n",
           N, (double)rows / N, pct(lat, N, 0.5), pct(lat, N, 0.99));
}

static void memory(tier_client *cl, int pid)
{
    Tier__Rpc__HealthRequest q = TIER__RPC__HEALTH_REQUEST__INIT;
    Tier__Rpc__HealthReply *rep;

    if (tier_health(cl, &q, &rep, NULL) == TIER_OK) {
        for (size_t i = 0; i < rep->n_dependencies; i++)
            if (strcmp(rep->dependencies[i]->name, "ranking") == 0)
                printf("\ncoordinator: %s\n", rep->dependencies[i]->message);
        tier_free(rep);
    }
    if (pid > 0) {
        char path[64], line[256];
        snprintf(path, sizeof(path), "/proc/%d/status", pid);
        FILE *f = fopen(path, "r");
        while (f != NULL && fgets(line, sizeof(line), f) != NULL)
            if (strncmp(line, "VmRSS:", 6) == 0 || strncmp(line, "VmHWM:", 6) == 0)
                printf("tierd %s", line);
        if (f != NULL)
            fclose(f);
    }
}

/* ------------------------------------------------------------ 5 */

#define PAGE_QUERIES 50

static Tier__TopContentsReply *top_call(tier_client *cl, int order, int64_t from_ms, int64_t to_ms,
                                        uint32_t limit, const char *svc, const char *cursor)
{
    Tier__TopContentsRequest r = TIER__TOP_CONTENTS_REQUEST__INIT;
    Tier__TopContentsReply *rep;
    tier_error err;

    r.order = order;
    r.from_ms = from_ms;
    r.to_ms = to_ms;
    r.limit = limit;
    r.service = (char *)svc;
    r.cursor = (char *)cursor;
    if (tier_top_contents(cl, &r, &rep, &err) != TIER_OK) {
        fprintf(stderr, "TopContents: %s\n", err.message);
        exit(1);
    }
    return rep;
}

/* Median and p99 (ms) of n calls for page `page` of `limit` rows; false
 * when the ranking has fewer rows than that. */
static bool page_run(tier_client *cl, int order, int64_t len, uint32_t limit, int page,
                     const char *svc, int n, double *med, double *p99)
{
    static double lat[QUERIES];
    char cursor[512] = "";
    int64_t to = (tier_now_ms() / 60000 + 1) * 60000;
    int64_t from = order == TIER__ORDER__HOT ? 0 : to - len * 60000;

    if (order == TIER__ORDER__HOT)
        to = 0;
    for (int p = 1; p < page; p++) {
        Tier__TopContentsReply *rep = top_call(cl, order, from, to, limit, svc, cursor);
        bool more = rep->next_cursor[0] != '\0';
        snprintf(cursor, sizeof(cursor), "%s", rep->next_cursor);
        tier_free(rep);
        if (!more)
            return false;
    }
    for (int q = 0; q < n; q++) {
        double t0 = (double)tier_mono_us();
        tier_free(top_call(cl, order, from, to, limit, svc, cursor));
        lat[q] = ((double)tier_mono_us() - t0) / 1000.0;
    }
    *med = pct(lat, (size_t)n, 0.5);
    *p99 = pct(lat, (size_t)n, 0.99);
    return true;
}

static void page_row(tier_client *cl, const char *name, int order, int64_t len, uint32_t limit,
                     int page, const char *svc, int n)
{
    double med[RUNS], p99[RUNS];
    char win[16] = "-", what[24];

    if (order != TIER__ORDER__HOT)
        snprintf(win, sizeof(win), "%lld", (long long)len);
    for (int r = 0; r < RUNS; r++)
        if (!page_run(cl, order, len, limit, page, svc, n, &med[r], &p99[r])) {
            printf("%-9s %-7s %-6s page %d of %u: fewer rows\n", name, svc[0] ? svc : "all", win,
                   page, limit);
            return;
        }
    if (page == 1)
        snprintf(what, sizeof(what), "top-%u", limit);
    else
        snprintf(what, sizeof(what), "page %d of %u", page, limit);
    printf("%-9s %-7s %-6s %-16s %9.3f %9.3f\n", name, svc[0] ? svc : "all", win, what,
           pct(med, RUNS, 0.5), pct(p99, RUNS, 0.5));
}

static void hot_table(tier_client *cl)
{
    static const int64_t lens[] = {1, 60, 1440};

    printf("\nHOT and paging through the RPC, ms (median of %d runs; %d queries for top-100, %d "
           "per page row; windows end now, HOT at now)\n",
           RUNS, QUERIES, PAGE_QUERIES);
    printf("%-9s %-7s %-6s %-16s %9s %9s\n", "order", "service", "window", "rows", "median", "p99");
    page_row(cl, "HOT", TIER__ORDER__HOT, 0, 100, 1, "", QUERIES);
    page_row(cl, "HOT", TIER__ORDER__HOT, 0, 100, 1, "news", QUERIES);
    page_row(cl, "HOT", TIER__ORDER__HOT, 0, 100, 10, "", PAGE_QUERIES);
    page_row(cl, "HOT", TIER__ORDER__HOT, 0, 1000, 11, "", PAGE_QUERIES);
    for (int order = 0; order < 2; order++)
        for (int w = 0; w < 3; w++) {
            const char *name = order ? "DECREASE" : "INCREASE";
            page_row(cl, name, order, lens[w], 100, 10, "", PAGE_QUERIES);
            page_row(cl, name, order, lens[w], 1000, 11, "", PAGE_QUERIES);
        }
}

int main(int argc, char **argv)
{
    const char *url = "tcp://127.0.0.1:7400";
    double hours = 6;
    int rate = 500, pid = 0;
    bool load = true, only_hot = false;
    tier_client *cl;
    tier_rpc_client *rc;
    tier_rpc_client_opts ro = {.max_inflight = INFLIGHT, .timeout_ms = 60000};

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--url") == 0 && i + 1 < argc)
            url = argv[++i];
        else if (strcmp(argv[i], "--hours") == 0 && i + 1 < argc)
            hours = atof(argv[++i]);
        else if (strcmp(argv[i], "--rate") == 0 && i + 1 < argc)
            rate = atoi(argv[++i]);
        else if (strcmp(argv[i], "--pid") == 0 && i + 1 < argc)
            pid = atoi(argv[++i]);
        else if (strcmp(argv[i], "--no-load") == 0)
            load = false;
        else if (strcmp(argv[i], "--only-hot") == 0)
            only_hot = true, load = false;
        else {
            fprintf(stderr, "usage: bench_ranking --url URL [--hours H] [--rate R] [--pid PID] "
                            "[--no-load] [--only-hot]\n");
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress visible when redirected */
    memset(BODY, 'c', 100);
    memcpy(BODY, "bench comment: ", 15);
    double *cdf = zipf_cdf();
    if (tier_client_open(&cl, url) != TIER_OK ||
        tier_rpc_client_open(&rc, url, &ro, NULL) != TIER_OK)
        return 1;
    tier_client_set_timeout(cl, 60000);
    long events = (long)(hours * 3600 * rate);
    int64_t now = tier_now_ms(), start_ms = now - (int64_t)(hours * 3600000);
    int64_t lo_min = start_ms / 60000;

    if (load) {
        int64_t *ids, *times;
        size_t nids;
        printf("load: %ld events over %.1f simulated hours, %d contents (Zipf 1.0)\n", events,
               hours, NCID);
        double cps = load_parallel(cl, cdf, start_ms, events, rate, &ids, &times, &nids);
        printf("  creates: %zu via PostComments x %d, %d streams: %.0f comments/s (durable)\n",
               nids, BATCH, LOAD_STREAMS, cps);
        size_t ndel = (size_t)(events - (long)nids), half = ndel / 2, bdone;
        if (ndel > nids)
            ndel = nids, half = ndel / 2;
        /* load_deletes shuffles its picks into ids[0..half); the batched
         * half takes the next ndel - half of the shuffled rest. */
        double dps = load_deletes(rc, ids, times, nids, half, now);
        printf("  deletes: %ld via DeleteComment, %d in flight: %.0f deletes/s (target >= "
               "15000)\n",
               T.done, INFLIGHT, dps);
        for (size_t i = half; i < ndel; i++) { /* distinct picks, as load_deletes makes */
            size_t j = i + next_u64() % (nids - i);
            int64_t id = ids[j], t = times[j];
            ids[j] = ids[i], ids[i] = id;
            times[j] = times[i], times[i] = t;
        }
        double bps = load_deletes_batched(cl, ids + half, times + half, ndel - half, now, &bdone);
        printf("  deletes: %zu via DeleteComments x %d, %d streams: %.0f deletes/s (target >= "
               "50000)\n",
               bdone, BATCH, LOAD_STREAMS, bps);
        free(ids);
        free(times);
    }
    memory(cl, pid);
    if (only_hot) {
        hot_table(cl);
        tier_rpc_client_close(rc);
        tier_client_close(cl);
        free(cdf);
        return 0;
    }
    top_table(cl, lo_min);
    double one = post_one_at_a_time(rc, cdf, 200000);
    printf("\nPostComment one at a time, %d in flight: %.0f comments/s (target >= 20000)\n",
           INFLIGHT, one);
    latest_table(cl, cdf);
    hot_table(cl);
    memory(cl, pid);
    tier_rpc_client_close(rc);
    tier_client_close(cl);
    free(cdf);
    return 0;
}
