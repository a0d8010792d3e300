/*
 * test_metrics.c -- the metric registry (common/tier_metrics.h): the exact
 * text exposition of counters, gauges and histograms, escaping, the series
 * cap, on-scrape hooks, and exact totals under concurrent updates.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier_metrics.h"

static char *render(tier_metrics *m)
{
    size_t len;
    char *t = tier_metrics_render(m, &len);
    cr_assert_not_null(t);
    cr_assert_eq(strlen(t), len);
    return t;
}

static void has(const char *text, const char *line)
{
    cr_assert(strstr(text, line) != NULL, "missing \"%s\" in:\n%s", line, text);
}

Test(metrics, counters_gauges_and_escaping)
{
    tier_metrics *m = tier_metrics_alloc();
    tier_metric *c =
        tier_metrics_counter(m, "t_calls_total", "Calls.\nSecond line \\ here", "method,code");
    tier_metric *g = tier_metrics_gauge(m, "t_jobs", "Jobs by state.", "state");
    tier_metric *plain = tier_metrics_counter(m, "t_plain_total", "No labels.", NULL);
    cr_assert_not_null(c);
    tier_metric_add(c, 1, "a/B", "OK");
    tier_metric_add(c, 2, "a/B", "OK");
    tier_metric_add(c, 1, "quote\"back\\slash\nnl", "NOT_FOUND");
    tier_metric_add(c, -5, "a/B", "OK"); /* counters never go down */
    tier_metric_set(g, 7, "update");
    tier_metric_add(g, -2, "update");
    tier_metric_add(plain, 0.5);
    char *t = render(m);
    has(t, "# HELP t_calls_total Calls.\\nSecond line \\\\ here\n# TYPE t_calls_total counter\n");
    has(t, "t_calls_total{method=\"a/B\",code=\"OK\"} 3\n");
    has(t, "t_calls_total{method=\"quote\\\"back\\\\slash\\nnl\",code=\"NOT_FOUND\"} 1\n");
    has(t, "# TYPE t_jobs gauge\nt_jobs{state=\"update\"} 5\n");
    has(t, "t_plain_total 0.5\n");
    free(t);
    /* Bad names are refused, and updating NULL is harmless. */
    cr_assert_null(tier_metrics_counter(m, "9bad", "", NULL));
    cr_assert_null(tier_metrics_counter(m, "ok_total", "", "a,le"));
    cr_assert_null(tier_metrics_counter(m, "ok_total", "", "a,b,c,d,e"));
    tier_metric_add(NULL, 1, "x");
    tier_metrics_free(m);
}

Test(metrics, histogram)
{
    static const double b[] = {0.1, 1, 10};
    tier_metrics *m = tier_metrics_alloc();
    tier_metric *h = tier_metrics_histogram(m, "t_seconds", "Durations.", "method", b, 3);
    cr_assert_null(tier_metrics_histogram(m, "t_bad", "", NULL, (double[]){1, 1}, 2));
    tier_metric_observe(h, 0.05, "x");
    tier_metric_observe(h, 0.1, "x"); /* le is inclusive */
    tier_metric_observe(h, 5, "x");
    tier_metric_observe(h, 50, "x");
    char *t = render(m);
    has(t, "# TYPE t_seconds histogram\n");
    has(t, "t_seconds_bucket{method=\"x\",le=\"0.10000000000000001\"} 2\n");
    has(t, "t_seconds_bucket{method=\"x\",le=\"1\"} 2\n");
    has(t, "t_seconds_bucket{method=\"x\",le=\"10\"} 3\n");
    has(t, "t_seconds_bucket{method=\"x\",le=\"+Inf\"} 4\n");
    has(t, "t_seconds_sum{method=\"x\"} 55.149999999999999\n");
    has(t, "t_seconds_count{method=\"x\"} 4\n");
    free(t);
    tier_metrics_free(m);
}

static int scrapes;
static void on_scrape(void *arg)
{
    tier_metric_set(arg, ++scrapes);
}

Test(metrics, series_cap_and_scrape_hooks)
{
    tier_metrics *m = tier_metrics_alloc();
    tier_metric *c = tier_metrics_counter(m, "t_many_total", "", "id");
    tier_metric *g = tier_metrics_gauge(m, "t_scrapes", "", NULL);
    tier_metrics_on_scrape(m, on_scrape, g);
    for (int i = 0; i < TIER_METRICS_MAX_SERIES + 10; i++) {
        char id[16];
        snprintf(id, sizeof(id), "%d", i);
        tier_metric_add(c, 1, id);
    }
    char *t = render(m);
    has(t, "tier_metrics_dropped_total{metric=\"t_many_total\"} 10\n");
    has(t, "t_scrapes 1\n");
    free(t);
    t = render(m);
    has(t, "t_scrapes 2\n");
    free(t);
    tier_metrics_free(m);
}

static void *adder(void *arg)
{
    for (int i = 0; i < 100000; i++)
        tier_metric_add(arg, 1, i % 2 ? "odd" : "even");
    return NULL;
}

Test(metrics, concurrent_updates_are_exact)
{
    tier_metrics *m = tier_metrics_alloc();
    tier_metric *c = tier_metrics_counter(m, "t_total", "", "kind");
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, adder, c);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    char *t = render(m);
    has(t, "t_total{kind=\"even\"} 200000\n");
    has(t, "t_total{kind=\"odd\"} 200000\n");
    free(t);
    tier_metrics_free(m);
}
