/*
 * bench_metrics.c -- what one metric update costs (common/tier_metrics.h):
 * the rpc server makes two per call (tier_rpc_calls_total and the duration
 * histogram), each a mutex and a hash lookup.
 *
 *   bench_metrics [--runs R]
 *
 * Prints ns per update for a counter with two labels and for a histogram
 * with one, from 1 and from 2 threads (the machine has 2 cores), the
 * median of R runs of 2,000,000 updates per thread.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier_metrics.h"
#include "tier_time.h"

#define N 2000000

typedef struct {
    tier_metric *f;
    int hist;
} job;

static const char *const methods[] = {"tier.Tier/ReportViews", "tier.Tier/GetContent",
                                      "tier.Tier/PostComment", "tier.Tier/ListLevels"};

static void *run(void *arg)
{
    job *j = arg;
    for (int i = 0; i < N; i++) {
        if (j->hist)
            tier_metric_observe(j->f, 0.0001 * (i & 63), methods[i & 3]);
        else
            tier_metric_add(j->f, 1, methods[i & 3], "OK");
    }
    return NULL;
}

static double once(int hist, int threads)
{
    tier_metrics *m = tier_metrics_alloc();
    tier_metric *f = hist ? tier_metrics_histogram(m, "h_seconds", "", "method",
                                                   tier_metrics_seconds, tier_metrics_nseconds)
                          : tier_metrics_counter(m, "c_total", "", "method,code");
    pthread_t t[2];
    job j = {f, hist};
    int64_t t0 = tier_mono_us();
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, run, &j);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    double ns = (double)(tier_mono_us() - t0) * 1000.0 / N; /* per update of one thread */
    tier_metrics_free(m);
    return ns;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int runs = 5;
    if (argc == 3 && strcmp(argv[1], "--runs") == 0)
        runs = atoi(argv[2]);
    if (runs < 1 || runs > 50)
        runs = 5;
    printf("%-28s %8s %14s\n", "update", "threads", "ns per update");
    for (int hist = 0; hist < 2; hist++)
        for (int threads = 1; threads <= 2; threads++) {
            double v[50];
            for (int r = 0; r < runs; r++)
                v[r] = once(hist, threads);
            qsort(v, (size_t)runs, sizeof(double), cmp);
            printf("%-28s %8d %14.0f\n",
                   hist ? "histogram observe (1 label)" : "counter add (2 labels)", threads,
                   v[runs / 2]);
        }
    return 0;
}
