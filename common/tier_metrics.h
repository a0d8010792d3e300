/*
 * tier_metrics.h -- counters, gauges and histograms, rendered in
 * Prometheus's text exposition format (version 0.0.4) for /metrics.
 *
 *   tier_metrics *m = tier_metrics_alloc();
 *   tier_metric *calls = tier_metrics_counter(m, "tier_rpc_calls_total",
 *                                             "Calls answered.", "method,code");
 *   tier_metric_add(calls, 1, "tier.Tier/ReportViews", "OK");
 *   ...
 *   size_t len; char *text = tier_metrics_render(m, &len);   (free() it)
 *
 * Debian has no Prometheus client library for C, hence this small one.
 * Families are registered once, at start-up (not thread-safe against
 * rendering); updates are thread-safe (one mutex per family: an update is a
 * hash lookup and an add, tens of nanoseconds).  Label values are copied;
 * each family keeps at most TIER_METRICS_MAX_SERIES label combinations, and
 * updates for more are dropped and counted in tier_metrics_dropped_total,
 * so a label fed from outside (a method name, a level) cannot grow memory
 * without end.  Values computed only when scraped (jobs by state, memory
 * in use) are set by on-scrape callbacks, which run at the start of every
 * render.
 */
#ifndef TIER_METRICS_H
#define TIER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define TIER_METRICS_MAX_LABELS 4
#define TIER_METRICS_MAX_SERIES 2048 /* label combinations per family */

typedef struct tier_metrics tier_metrics;
typedef struct tier_metric tier_metric;

tier_metrics *tier_metrics_alloc(void);
void tier_metrics_free(tier_metrics *m); /* NULL is fine */

/* A family.  labels: comma-separated label names ("method,code"), NULL or
 * "" for none, at most TIER_METRICS_MAX_LABELS.  Returns NULL on a bad
 * name or no memory; every update function accepts NULL and does nothing,
 * so a registration that failed costs nothing later. */
tier_metric *tier_metrics_counter(tier_metrics *m, const char *name, const char *help,
                                  const char *labels);
tier_metric *tier_metrics_gauge(tier_metrics *m, const char *name, const char *help,
                                const char *labels);
/* bounds: the buckets' upper bounds, ascending (+Inf is added). */
tier_metric *tier_metrics_histogram(tier_metrics *m, const char *name, const char *help,
                                    const char *labels, const double *bounds, size_t nbounds);

/* Updates; the label values follow, one const char * per label name. */
void tier_metric_add(tier_metric *f, double v, ...);     /* counter, gauge */
void tier_metric_set(tier_metric *f, double v, ...);     /* gauge */
void tier_metric_observe(tier_metric *f, double v, ...); /* histogram */

/* fn(arg) runs at the start of each render (on the scraping thread) to set
 * gauges whose value is only known by asking (Redis, an index). */
typedef void (*tier_metrics_scrape_fn)(void *arg);
int tier_metrics_on_scrape(tier_metrics *m, tier_metrics_scrape_fn fn, void *arg);

/* The text exposition of every family, malloc'ed, NUL-terminated; NULL
 * when out of memory. */
char *tier_metrics_render(tier_metrics *m, size_t *len);

/* Buckets for durations in seconds, 0.5 ms .. 10 s. */
extern const double tier_metrics_seconds[];
extern const size_t tier_metrics_nseconds;

#endif
