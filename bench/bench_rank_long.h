/*
 * bench_rank_long.h -- bench_rank_index's long mode: 30 days (or --days)
 * of compressed time into an index with compacted history (issue 12 item
 * 2), included by bench_rank_index.c (one program per benchmark).
 *
 * Workload: `rate` events per second of one service over 200,000 Zipf
 * (s=1) contents, 10% deletes, generated per minute from a seed derived
 * from the minute alone, so any minute can be generated again: that is
 * both the fringe provider (in tierd the fringe is a comment_minute read)
 * and the brute force that spot-checks answers.  Deletes here do not track
 * live comments (that would make a minute depend on its history); counts
 * may go negative, which the index does not care about.
 *
 * Reported: ingest rate (time inside tier_rank_add_batch only), index
 * memory, process RSS (current and peak), and top-100 latency for windows
 * ending now, old windows on granule boundaries (no fringe) and old
 * windows with unaligned edges (fringe).  For the latter the time spent in
 * the provider (regenerating minutes, which stands in for the database) is
 * measured apart and subtracted: "index ms" is what the index itself costs,
 * "fringe rows" how many rows the database would return (per provider
 * call summed per content, as the sink keeps them).  "fringe min" is the
 * minutes the index asked the provider for, per query; "direct min" the
 * minutes of the fringe itself, what reading the needed side of each
 * granule (instead of the shorter side) would have asked for.
 */
#ifndef BENCH_RANK_LONG_H
#define BENCH_RANK_LONG_H

typedef struct {
    int days, rate, detail, clevel, queries, checks;
} long_cfg;

typedef struct {
    const double *cdf;
    int rate;
    int32_t *acc; /* per cid: delta, created, deleted (restores: none) */
    uint8_t *touched;
    double spent;
    uint64_t rows;
    uint64_t minutes; /* minutes the index asked the provider for */
} long_gen;

static uint64_t minute_seed(int64_t minute)
{
    uint64_t z = (uint64_t)minute * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return z ? z : 1;
}

/* The k-th event of `minute` (events are drawn in order from its seed). */
static void long_event(tier_rank_event *e, const double *cdf, int64_t minute)
{
    memset(e, 0, sizeof(*e));
    e->service = "news";
    e->minute = minute;
    int del = next_unit() < 0.10;
    e->cid = zipf_cid(cdf);
    e->delta = del ? -1 : 1;
    e->created = !del;
    e->deleted = del;
}

/* Adds minute m's events into g->acc. */
static void long_minute_sum(long_gen *g, int64_t m)
{
    rng = minute_seed(m);
    for (int i = 0; i < g->rate * 60; i++) {
        tier_rank_event e;
        long_event(&e, g->cdf, m);
        int32_t *a = &g->acc[e.cid * 3];
        a[0] += e.delta;
        a[1] += e.created;
        a[2] += e.deleted;
        g->touched[e.cid] = 1;
    }
}

static int long_provider(void *ctx, const char *service, int64_t from, int64_t to,
                         tier_rank_fringe *sink)
{
    long_gen *g = ctx;
    (void)service; /* one service */
    double t0 = now_sec();
    uint64_t saved = rng;
    g->minutes += (uint64_t)(to - from);
    for (int64_t m = from; m < to; m++)
        long_minute_sum(g, m);
    rng = saved;
    int rc = TIER_OK;
    for (int64_t cid = 1; cid <= NCID; cid++) {
        if (!g->touched[cid])
            continue;
        int32_t *a = &g->acc[cid * 3];
        tier_rank_event e = {"news", cid, 0, a[0], a[1], a[2], 0};
        if (rc == TIER_OK)
            rc = tier_rank_fringe_add(sink, &e);
        g->rows++;
        a[0] = a[1] = a[2] = 0;
        g->touched[cid] = 0;
    }
    g->spent += now_sec() - t0;
    return rc;
}

static double long_ingest(tier_rank *r, const long_cfg *c, const double *cdf, int64_t minutes)
{
    tier_rank_event *batch = malloc(BATCH * sizeof(tier_rank_event));
    double spent = 0, t_start = now_sec();
    for (int64_t m = BASE_MINUTE; m < BASE_MINUTE + minutes; m++) {
        rng = minute_seed(m);
        for (int done = 0; done < c->rate * 60;) {
            size_t n = c->rate * 60 - done < BATCH ? (size_t)(c->rate * 60 - done) : BATCH;
            for (size_t i = 0; i < n; i++)
                long_event(&batch[i], cdf, m);
            double t0 = now_sec();
            if (tier_rank_add_batch(r, batch, n) != TIER_OK) {
                fprintf(stderr, "add_batch failed\n");
                exit(1);
            }
            spent += now_sec() - t0;
            done += (int)n;
        }
        if ((m - BASE_MINUTE + 1) % 1440 == 0)
            fprintf(stderr, "day %lld: %.0f s, index %.0f MiB\n",
                    (long long)((m - BASE_MINUTE + 1) / 1440), now_sec() - t_start,
                    tier_rank_memory(r) / 1048576.0);
    }
    free(batch);
    return (double)minutes * 60 * c->rate / spent;
}

static long proc_status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, key, kl) == 0)
            v = atol(line + kl + 1);
    if (f != NULL)
        fclose(f);
    return v;
}

/* Brute force over [from, to) by regenerating its minutes; compares the
 * top 100 (change desc, cid asc) with rows.  Returns 0 when equal. */
static int long_check(long_gen *g, int64_t from, int64_t to, int dec, const tier_rank_row *rows,
                      size_t n)
{
    uint64_t saved = rng;
    for (int64_t m = from; m < to; m++)
        long_minute_sum(g, m);
    rng = saved;
    /* selection of the best 100 by repeated scans: simple, n is small */
    int bad = 0;
    int64_t prev_v = 0, prev_c = 0;
    for (size_t k = 0; k < n && !bad; k++) {
        int64_t best_c = -1, best_v = 0;
        for (int64_t cid = 1; cid <= NCID; cid++) {
            if (!g->touched[cid])
                continue;
            int64_t v = g->acc[cid * 3];
            if (k > 0 && (dec ? (v < prev_v || (v == prev_v && cid <= prev_c))
                              : (v > prev_v || (v == prev_v && cid <= prev_c))))
                continue; /* already taken */
            if (best_c < 0 || (dec ? v < best_v : v > best_v))
                best_c = cid, best_v = v;
        }
        if (best_c != rows[k].cid || best_v != rows[k].change)
            bad = 1;
        prev_v = best_v;
        prev_c = best_c;
    }
    memset(g->acc, 0, (NCID + 1) * 3 * sizeof(int32_t));
    memset(g->touched, 0, NCID + 1);
    return bad;
}

typedef struct {
    double med, p99, fringe_med;
    double rows, minutes, direct;
} long_stats;

/* The fringe minutes of [from, to) if each part were read itself rather
 * than through its complement (the index reads the shorter side of a
 * granule, rank_compact.c): the "before" of the fringe min column.  The
 * horizon is floor_G(open - detail), as the index keeps it. */
static int64_t long_direct_minutes(int64_t from, int64_t to, int64_t open, int64_t detail,
                                   int64_t gran)
{
    int64_t horizon = (open - detail) / gran * gran, a = from, n = 0;
    if (from < horizon && from % gran != 0) {
        a = (from / gran + 1) * gran < to ? (from / gran + 1) * gran : to;
        n += a - from;
    }
    if (a < to && to < horizon && to % gran != 0)
        n += to - to / gran * gran;
    return n;
}

/* kind 0: ending now; 1: old, granule-aligned edges; 2: old, unaligned. */
static long_stats long_measure(tier_rank *r, long_gen *g, const long_cfg *c, int64_t len, int kind,
                               int dec, int64_t minutes, int *bad)
{
    int64_t open = BASE_MINUTE + minutes - 1, gran = (int64_t)1 << (2 * c->clevel);
    int64_t old_end = open - c->detail - gran; /* surely compacted before it */
    double *lat = malloc(c->queries * sizeof(double)), *fr = malloc(c->queries * sizeof(double));
    static tier_rank_row rows[100];
    uint64_t rows0 = g->rows, min0 = g->minutes, direct = 0;
    for (int i = 0; i < c->queries; i++) {
        int64_t to = open + 1;
        if (kind > 0) {
            int64_t span = old_end - BASE_MINUTE - len;
            to = BASE_MINUTE + len + (int64_t)(next_u64() % (uint64_t)(span > 1 ? span : 1));
        }
        int64_t from = to - len;
        if (kind == 1) {
            from = (from + gran - 1) / gran * gran;
            to = from + (len + gran - 1) / gran * gran;
        }
        direct += (uint64_t)long_direct_minutes(from, to, open, c->detail, gran);
        size_t n = 0;
        double sp = g->spent, t0 = now_sec();
        int rc = tier_rank_top(r, NULL, from, to, dec, 100, rows, &n);
        fr[i] = (g->spent - sp) * 1e3;
        lat[i] = (now_sec() - t0) * 1e3 - fr[i];
        if (rc != TIER_OK || n == 0) {
            fprintf(stderr, "query failed rc=%d n=%zu\n", rc, n);
            exit(1);
        }
        if (i < c->checks && to - from <= 240 && long_check(g, from, to, dec, rows, n) != 0) {
            fprintf(stderr, "MISMATCH window [%lld, %lld) dec %d\n", (long long)from, (long long)to,
                    dec);
            (*bad)++;
        }
    }
    qsort(lat, c->queries, sizeof(double), cmp_double);
    qsort(fr, c->queries, sizeof(double), cmp_double);
    long_stats s = {lat[c->queries / 2],
                    lat[(int)ceil(c->queries * 0.99) - 1],
                    fr[c->queries / 2],
                    (double)(g->rows - rows0) / c->queries,
                    (double)(g->minutes - min0) / c->queries,
                    (double)direct / c->queries};
    free(lat);
    free(fr);
    return s;
}

static int long_args(int argc, char **argv, long_cfg *c)
{
    *c = (long_cfg){30, 500, 360, 4, 30, 3};
    for (int i = 1; i + 1 < argc; i += 2) {
        int v = atoi(argv[i + 1]);
        if (strcmp(argv[i], "--days") == 0)
            c->days = v;
        else if (strcmp(argv[i], "--rate") == 0)
            c->rate = v;
        else if (strcmp(argv[i], "--detail-min") == 0)
            c->detail = v;
        else if (strcmp(argv[i], "--coarse-level") == 0)
            c->clevel = v;
        else if (strcmp(argv[i], "--queries") == 0)
            c->queries = v;
        else if (strcmp(argv[i], "--checks") == 0)
            c->checks = v;
        else
            return -1;
    }
    return c->days >= 1 && c->days <= 30 && c->rate >= 1 && c->queries >= 1 ? 0 : -1;
}

static int long_main(int argc, char **argv)
{
    long_cfg c;
    tier_rank *r = NULL;
    if (long_args(argc, argv, &c) != 0) {
        fprintf(stderr, "usage: bench_rank_index --days N --rate R --detail-min D "
                        "--coarse-level L [--queries Q] [--checks C]\n");
        return 2;
    }
    int64_t minutes = (int64_t)c.days * 1440;
    if (tier_rank_alloc(&r, 43200) != TIER_OK ||
        tier_rank_set_compaction(r, c.detail, c.clevel) != TIER_OK)
        return 2;
    double *cdf = zipf_cdf();
    long_gen g = {cdf, c.rate, calloc((NCID + 1) * 3, sizeof(int32_t)), calloc(NCID + 1, 1), 0,
                  0,   0};
    tier_rank_set_fringe_provider(r, long_provider, &g);
    printf("workload: %d days x %d events/s = %lld events, %d cids Zipf s=1.0, 10%% deletes; "
           "detail %d min, granule 4^%d = %d min\n",
           c.days, c.rate, (long long)minutes * 60 * c.rate, NCID, c.detail, c.clevel,
           1 << (2 * c.clevel));
    double t0 = now_sec();
    double rate = long_ingest(r, &c, cdf, minutes);
    printf("ingest: %.0f events/s into the index (%.0f s wall incl. generation)\n", rate,
           now_sec() - t0);
    printf("index memory: %.1f MiB; RSS %.1f MiB, peak RSS %.1f MiB\n",
           tier_rank_memory(r) / 1048576.0, proc_status_kib("VmRSS:") / 1024.0,
           proc_status_kib("VmHWM:") / 1024.0);
    static const int64_t lens[] = {1, 60, 1440, 10080, 43200};
    static const char *kinds[] = {"now", "old-aligned", "old-unaligned"};
    int bad = 0;
    printf("\ntop-100 latency, ms (%d queries each; index time, fringe fetch excluded)\n",
           c.queries);
    printf("%-9s %-14s %-6s | %8s %8s | %12s %11s | %10s %10s\n", "order", "placed", "win",
           "median", "p99", "fringe rows", "fetch ms", "fringe min", "direct min");
    for (int dec = 0; dec < 2; dec++)
        for (int kind = 0; kind < 3; kind++)
            for (int k = 0; k < 5; k++) {
                int64_t len = lens[k] < minutes ? lens[k] : minutes;
                if (kind > 0 && len + c.detail + 2 * 1024 >= minutes)
                    continue; /* no old window of that length in the data */
                long_stats s = long_measure(r, &g, &c, len, kind, dec, minutes, &bad);
                printf("%-9s %-14s %-6lld | %8.3f %8.3f | %12.0f %11.1f | %10.1f %10.1f\n",
                       dec ? "DECREASE" : "INCREASE", kinds[kind], (long long)len, s.med, s.p99,
                       s.rows, s.fringe_med, s.minutes, s.direct);
            }
    printf("brute-force spot checks (windows <= 240 min): %s\n", bad ? "MISMATCH" : "all equal");
    printf("peak RSS %.1f MiB\n", proc_status_kib("VmHWM:") / 1024.0);
    tier_rank_free(r);
    free(cdf);
    free(g.acc);
    free(g.touched);
    return bad ? 1 : 0;
}

#endif
