/*
 * bench_rank_index.c -- ingest and top-100 latency of the ranking index.
 *
 * Workload (the one the targets are stated for): 200,000 contents of one
 * service chosen with Zipf s=1.0, 500 events/s for 6 simulated hours
 * (10.8M events over 360 minutes); 10% of the events delete an earlier
 * live comment (a Zipf-chosen content with live comments; live comments
 * are tracked per content as counts).  Events are fed in batches of 1,000;
 * only the time inside tier_rank_add_batch is counted as ingest.
 *
 * Then top-100 over 1 / 60 / 360 / 1440-minute windows, for windows ending
 * now (they include the open, still filling minute) and windows placed at
 * random in the past, INCREASE and DECREASE, all services and one service;
 * median and p99 over QUERIES queries each.
 *
 * Then (issue 12) the hot order and paging: top-100 HOT (6 h half-life)
 * at the open minute; page 10 of 100 rows and page 11 of 1000 rows (the
 * key of the row just before, found by walking the pages first) for each
 * order, over windows ending now.
 *
 * usage: bench_rank_index [minutes (360)] [events per second (500)]
 *
 * Long mode (issue 12 item 2, compacted history; bench_rank_long.h):
 *   bench_rank_index --days 30 --rate 500 --detail-min 360 --coarse-level 4
 * streams days x 1440 compressed-time minutes into an index with compaction
 * on and reports ingest rate, index memory, process RSS and top-100
 * latency of windows now / old aligned / old unaligned.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tier_rank.h"
#include "tier_status.h"

#define NCID 200000
#define BATCH 1000
#define QUERIES 300
#define BASE_MINUTE 29000013 /* deliberately not aligned to any block */

#include "bench_zipf.h"

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void make_event(tier_rank_event *e, const double *cdf, uint32_t *live, int64_t minute)
{
    memset(e, 0, sizeof(*e));
    e->service = "news";
    e->minute = minute;
    if (next_unit() < 0.10) {
        for (int tries = 0; tries < 16; tries++) {
            int64_t cid = zipf_cid(cdf);
            if (live[cid] > 0) {
                live[cid]--;
                e->cid = cid;
                e->delta = -1;
                e->deleted = 1;
                return;
            }
        }
    }
    e->cid = zipf_cid(cdf);
    live[e->cid]++;
    e->delta = 1;
    e->created = 1;
}

static double ingest(tier_rank *r, int minutes, int per_sec)
{
    double *cdf = zipf_cdf();
    uint32_t *live = calloc(NCID + 1, sizeof(uint32_t));
    tier_rank_event *batch = malloc(BATCH * sizeof(tier_rank_event));
    int64_t total = (int64_t)minutes * 60 * per_sec, done = 0;
    double spent = 0;
    while (done < total) {
        size_t n = total - done < BATCH ? (size_t)(total - done) : BATCH;
        for (size_t i = 0; i < n; i++)
            make_event(&batch[i], cdf, live, BASE_MINUTE + (done + (int64_t)i) / (60 * per_sec));
        double t0 = now_sec();
        if (tier_rank_add_batch(r, batch, n) != TIER_OK) {
            fprintf(stderr, "add_batch failed\n");
            exit(1);
        }
        spent += now_sec() - t0;
        done += (int64_t)n;
    }
    free(cdf);
    free(live);
    free(batch);
    return total / spent;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    double median, p99, max;
} lat_stats;

static lat_stats measure(tier_rank *r, const char *svc, int64_t len, int past, int dec,
                         int64_t open, int minutes)
{
    static double lat[QUERIES];
    static tier_rank_row rows[100];
    for (int i = 0; i < QUERIES; i++) {
        int64_t to = open + 1;
        if (past) /* ends strictly before the open minute, anywhere in the data */
            to = BASE_MINUTE + 1 + (int64_t)(next_u64() % (uint64_t)(minutes - 1));
        size_t n = 0;
        double t0 = now_sec();
        int rc = tier_rank_top(r, svc, to - len, to, dec, 100, rows, &n);
        lat[i] = (now_sec() - t0) * 1e3;
        if (rc != TIER_OK || n == 0) {
            fprintf(stderr, "query failed rc=%d n=%zu\n", rc, n);
            exit(1);
        }
    }
    qsort(lat, QUERIES, sizeof(double), cmp_double);
    lat_stats s = {lat[QUERIES / 2], lat[(int)ceil(QUERIES * 0.99) - 1], lat[QUERIES - 1]};
    return s;
}

/* ---- hot order and paging (issue 12) ---- */

#define PAGE_QUERIES 100

/* order 0/1: INCREASE/DECREASE over [to - len, to); 2: HOT at to - 1. */
static int page_query(tier_rank *r, const char *svc, int order, int64_t len, int64_t to,
                      const tier_rank_key *after, uint32_t limit, tier_rank_row *rows, size_t *n)
{
    if (order == 2)
        return tier_rank_hot(r, svc, to - 1, after, limit, rows, n);
    return tier_rank_top_after(r, svc, to - len, to, order, after, limit, rows, n);
}

/* Latency of page `page` (1-based) of `limit` rows: the key of the row
 * before it is found by walking the earlier pages (not timed). */
static lat_stats measure_page(tier_rank *r, const char *svc, int order, int64_t len, int64_t to,
                              uint32_t limit, int page, int queries)
{
    static double lat[QUERIES];
    static tier_rank_row rows[TIER_RANK_LIMIT_MAX];
    static char name[80];
    tier_rank_key key, *after = NULL;
    size_t n = 0;
    for (int p = 1; p < page; p++) {
        if (page_query(r, svc, order, len, to, after, limit, rows, &n) != TIER_OK || n < limit) {
            lat_stats none = {-1, -1, -1}; /* fewer rows than the page needs */
            return none;
        }
        snprintf(name, sizeof(name), "%s", rows[n - 1].service);
        key = (tier_rank_key){rows[n - 1].change, rows[n - 1].hot, rows[n - 1].cid, name};
        after = &key;
    }
    for (int i = 0; i < queries; i++) {
        double t0 = now_sec();
        int rc = page_query(r, svc, order, len, to, after, limit, rows, &n);
        lat[i] = (now_sec() - t0) * 1e3;
        if (rc != TIER_OK || n == 0) {
            fprintf(stderr, "page query failed rc=%d n=%zu\n", rc, n);
            exit(1);
        }
    }
    qsort(lat, (size_t)queries, sizeof(double), cmp_double);
    lat_stats s = {lat[queries / 2], lat[(int)ceil(queries * 0.99) - 1], lat[queries - 1]};
    return s;
}

static void hot_and_pages(tier_rank *r, int64_t open)
{
    static const char *const orders[] = {"INCREASE", "DECREASE", "HOT"};
    static const int64_t lens[] = {1, 60, 360, 1440};
    printf("\nhot order and paging, ms (%d queries for top-100 HOT, %d per page row; "
           "windows end now; HOT at the open minute, half-life %lld s)\n",
           QUERIES, PAGE_QUERIES, (long long)tier_rank_half_life(r));
    printf("%-9s %-6s %-5s %-14s | %8s %8s %8s\n", "order", "svc", "win", "page", "median", "p99",
           "max");
    for (int sv = 0; sv < 2; sv++) {
        lat_stats s = measure_page(r, sv ? "news" : NULL, 2, 0, open + 1, 100, 1, QUERIES);
        printf("%-9s %-6s %-5s %-14s | %8.3f %8.3f %8.3f\n", "HOT", sv ? "news" : "all", "-",
               "top-100", s.median, s.p99, s.max);
    }
    for (int order = 0; order < 3; order++)
        for (int k = 0; k < (order == 2 ? 1 : 4); k++) {
            lat_stats a = measure_page(r, NULL, order, lens[k], open + 1, 100, 10, PAGE_QUERIES);
            lat_stats b = measure_page(r, NULL, order, lens[k], open + 1, 1000, 11, PAGE_QUERIES);
            char win[16] = "-";
            if (order != 2)
                snprintf(win, sizeof(win), "%lld", (long long)lens[k]);
            printf("%-9s %-6s %-5s %-14s | %8.3f %8.3f %8.3f\n", orders[order], "all", win,
                   "10th of 100", a.median, a.p99, a.max);
            printf("%-9s %-6s %-5s %-14s | %8.3f %8.3f %8.3f\n", orders[order], "all", win,
                   "11th of 1000", b.median, b.p99, b.max);
        }
}

#include "bench_rank_long.h"

int main(int argc, char **argv)
{
    if (argc > 1 && strncmp(argv[1], "--", 2) == 0)
        return long_main(argc, argv);
    int minutes = argc > 1 ? atoi(argv[1]) : 360;
    int per_sec = argc > 2 ? atoi(argv[2]) : 500;
    tier_rank *r = NULL;
    if (minutes < 2 || per_sec < 1 || tier_rank_alloc(&r, 43200) != TIER_OK)
        return 2;
    printf("workload: %d minutes x %d events/s = %lld events, %d cids Zipf s=1.0, 10%% deletes\n",
           minutes, per_sec, (long long)minutes * 60 * per_sec, NCID);
    double rate = ingest(r, minutes, per_sec);
    printf("ingest: %.0f events/s into the index (batches of %d, single thread)\n", rate, BATCH);
    printf("index memory: %.1f MiB\n", tier_rank_memory(r) / 1048576.0);
    int64_t open = BASE_MINUTE + minutes - 1;
    static const int64_t lens[] = {1, 60, 360, 1440};
    printf("\ntop-100 latency, ms (%d queries each; 'now' windows include the open minute)\n",
           QUERIES);
    printf("%-9s %-6s %-8s %-5s | %8s %8s %8s\n", "order", "svc", "placed", "win", "median", "p99",
           "max");
    for (int dec = 0; dec < 2; dec++)
        for (int sv = 0; sv < 2; sv++)
            for (int past = 0; past < 2; past++)
                for (int k = 0; k < 4; k++) {
                    lat_stats s = measure(r, sv ? "news" : NULL, lens[k], past, dec, open, minutes);
                    printf("%-9s %-6s %-8s %-5lld | %8.3f %8.3f %8.3f\n",
                           dec ? "DECREASE" : "INCREASE", sv ? "news" : "all",
                           past ? "random" : "now", (long long)lens[k], s.median, s.p99, s.max);
                }
    hot_and_pages(r, open);
    tier_rank_free(r);
    return 0;
}
