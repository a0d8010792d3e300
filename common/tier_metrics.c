/*
 * tier_metrics.c -- the metric registry and its text exposition (see
 * tier_metrics.h).
 *
 * A family is a name, a type, label names and a hash table of series, one
 * per combination of label values.  A series holds a value (counter,
 * gauge) or bucket counts, a sum and a count (histogram).  One mutex per
 * family guards its table and values: updates of different families never
 * contend, and an update is short.  Series are never removed (their number
 * is capped), so rendering walks stable memory under the same mutex.
 */
#include "tier_metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 256 /* hash buckets per family (a power of two) */

typedef enum { COUNTER, GAUGE, HISTOGRAM } kind;

typedef struct series {
    struct series *next;  /* hash chain */
    struct series *order; /* in creation order, for rendering */
    char *values[TIER_METRICS_MAX_LABELS];
    double value;      /* counter, gauge */
    uint64_t *buckets; /* histogram: per bound, not cumulative; [nbounds] = +Inf */
    double sum;
    uint64_t count;
} series;

struct tier_metric {
    tier_metrics *owner;
    char *name, *help;
    kind type;
    char *labels[TIER_METRICS_MAX_LABELS];
    size_t nlabels;
    double *bounds;
    size_t nbounds;
    pthread_mutex_t mu; /* guards everything below */
    series *table[NBUCKETS];
    series *first, *last;
    size_t nseries;
    struct tier_metric *next;
};

typedef struct hook {
    tier_metrics_scrape_fn fn;
    void *arg;
    struct hook *next;
} hook;

struct tier_metrics {
    tier_metric *first, *last;
    hook *hooks;
    tier_metric *dropped; /* updates refused for want of a series */
};

const double tier_metrics_seconds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                       0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const size_t tier_metrics_nseconds = sizeof(tier_metrics_seconds) / sizeof(double);

/* [a-zA-Z_:][a-zA-Z0-9_:]*, Prometheus's rule for metric and label names. */
static bool valid_name(const char *s)
{
    if (s == NULL || *s == '\0' || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == ':'))
            return false;
    return true;
}

static void family_free(tier_metric *f)
{
    series *s = f->first;
    while (s != NULL) {
        series *n = s->order;
        for (size_t i = 0; i < f->nlabels; i++)
            free(s->values[i]);
        free(s->buckets);
        free(s);
        s = n;
    }
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->labels[i]);
    pthread_mutex_destroy(&f->mu);
    free(f->bounds);
    free(f->name);
    free(f->help);
    free(f);
}

tier_metrics *tier_metrics_alloc(void)
{
    tier_metrics *m = calloc(1, sizeof(*m));
    if (m != NULL)
        m->dropped = tier_metrics_counter(
            m, "tier_metrics_dropped_total",
            "Metric updates dropped: their family had too many label combinations.", "metric");
    return m;
}

void tier_metrics_free(tier_metrics *m)
{
    if (m == NULL)
        return;
    for (tier_metric *f = m->first; f != NULL;) {
        tier_metric *n = f->next;
        family_free(f);
        f = n;
    }
    for (hook *h = m->hooks; h != NULL;) {
        hook *n = h->next;
        free(h);
        h = n;
    }
    free(m);
}

/* Splits "a,b" into f->labels; false on a bad or too long list. */
static bool set_labels(tier_metric *f, const char *labels)
{
    char buf[256], *save = NULL;

    if (labels == NULL || *labels == '\0')
        return true;
    if (strlen(labels) >= sizeof(buf))
        return false;
    snprintf(buf, sizeof(buf), "%s", labels);
    for (char *l = strtok_r(buf, ",", &save); l != NULL; l = strtok_r(NULL, ",", &save)) {
        if (f->nlabels == TIER_METRICS_MAX_LABELS || !valid_name(l) || strcmp(l, "le") == 0 ||
            (f->labels[f->nlabels] = strdup(l)) == NULL)
            return false;
        f->nlabels++;
    }
    return true;
}

static tier_metric *family(tier_metrics *m, const char *name, const char *help, kind type,
                           const char *labels, const double *bounds, size_t nbounds)
{
    tier_metric *f;

    if (m == NULL || !valid_name(name) || (f = calloc(1, sizeof(*f))) == NULL)
        return NULL;
    f->owner = m;
    f->type = type;
    pthread_mutex_init(&f->mu, NULL);
    f->name = strdup(name);
    f->help = strdup(help != NULL ? help : "");
    if (nbounds > 0 && (f->bounds = malloc(nbounds * sizeof(double))) != NULL) {
        memcpy(f->bounds, bounds, nbounds * sizeof(double));
        f->nbounds = nbounds;
    }
    if (f->name == NULL || f->help == NULL || (nbounds > 0 && f->bounds == NULL) ||
        !set_labels(f, labels)) {
        family_free(f);
        return NULL;
    }
    if (m->last != NULL)
        m->last->next = f;
    else
        m->first = f;
    m->last = f;
    return f;
}

tier_metric *tier_metrics_counter(tier_metrics *m, const char *name, const char *help,
                                  const char *labels)
{
    return family(m, name, help, COUNTER, labels, NULL, 0);
}

tier_metric *tier_metrics_gauge(tier_metrics *m, const char *name, const char *help,
                                const char *labels)
{
    return family(m, name, help, GAUGE, labels, NULL, 0);
}

tier_metric *tier_metrics_histogram(tier_metrics *m, const char *name, const char *help,
                                    const char *labels, const double *bounds, size_t nbounds)
{
    for (size_t i = 1; i < nbounds; i++)
        if (!(bounds[i - 1] < bounds[i]))
            return NULL;
    return family(m, name, help, HISTOGRAM, labels, bounds, nbounds);
}

int tier_metrics_on_scrape(tier_metrics *m, tier_metrics_scrape_fn fn, void *arg)
{
    hook *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return -1;
    h->fn = fn;
    h->arg = arg;
    h->next = m->hooks;
    m->hooks = h;
    return 0;
}

/* ------------------------------------------------------------- updates */

static unsigned hash_values(const char *const *v, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        for (const char *p = v[i]; *p; p++)
            h = (h ^ (unsigned char)*p) * 16777619u;
        h = (h ^ 0x1f) * 16777619u;
    }
    return h & (NBUCKETS - 1);
}

/* The series of values, created when new; NULL when the family is full
 * (or out of memory).  f->mu held. */
static series *find(tier_metric *f, const char *const *v)
{
    unsigned b = hash_values(v, f->nlabels);
    series *s;

    for (s = f->table[b]; s != NULL; s = s->next) {
        size_t i = 0;
        while (i < f->nlabels && strcmp(s->values[i], v[i]) == 0)
            i++;
        if (i == f->nlabels)
            return s;
    }
    if (f->nseries == TIER_METRICS_MAX_SERIES || (s = calloc(1, sizeof(*s))) == NULL)
        return NULL;
    if (f->type == HISTOGRAM && (s->buckets = calloc(f->nbounds + 1, sizeof(uint64_t))) == NULL) {
        free(s);
        return NULL;
    }
    for (size_t i = 0; i < f->nlabels; i++)
        if ((s->values[i] = strdup(v[i])) == NULL) {
            for (size_t k = 0; k < i; k++)
                free(s->values[k]);
            free(s->buckets);
            free(s);
            return NULL;
        }
    s->next = f->table[b];
    f->table[b] = s;
    if (f->last != NULL)
        f->last->order = s;
    else
        f->first = s;
    f->last = s;
    f->nseries++;
    return s;
}

typedef enum { OP_ADD, OP_SET, OP_OBSERVE } op;

static void update(tier_metric *f, op o, double v, va_list ap)
{
    const char *vals[TIER_METRICS_MAX_LABELS];
    series *s;

    for (size_t i = 0; i < f->nlabels; i++) {
        vals[i] = va_arg(ap, const char *);
        if (vals[i] == NULL)
            vals[i] = "";
    }
    pthread_mutex_lock(&f->mu);
    if ((s = find(f, vals)) == NULL) {
        pthread_mutex_unlock(&f->mu);
        if (f != f->owner->dropped)
            tier_metric_add(f->owner->dropped, 1, f->name);
        return;
    }
    if (o == OP_ADD)
        s->value += v;
    else if (o == OP_SET)
        s->value = v;
    else {
        size_t b = 0;
        while (b < f->nbounds && v > f->bounds[b])
            b++;
        s->buckets[b]++;
        s->sum += v;
        s->count++;
    }
    pthread_mutex_unlock(&f->mu);
}

void tier_metric_add(tier_metric *f, double v, ...)
{
    va_list ap;
    if (f == NULL || f->type == HISTOGRAM || (f->type == COUNTER && !(v >= 0)))
        return; /* a counter only goes up */
    va_start(ap, v);
    update(f, OP_ADD, v, ap);
    va_end(ap);
}

void tier_metric_set(tier_metric *f, double v, ...)
{
    va_list ap;
    if (f == NULL || f->type != GAUGE)
        return;
    va_start(ap, v);
    update(f, OP_SET, v, ap);
    va_end(ap);
}

void tier_metric_observe(tier_metric *f, double v, ...)
{
    va_list ap;
    if (f == NULL || f->type != HISTOGRAM || isnan(v))
        return;
    va_start(ap, v);
    update(f, OP_OBSERVE, v, ap);
    va_end(ap);
}

/* ------------------------------------------------------------- rendering */

typedef struct {
    char *buf;
    size_t len, cap;
    bool failed;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o->failed)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = true;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = (o->cap + (size_t)n + 1) * 2;
        char *b = realloc(o->buf, cap);
        if (b == NULL) {
            o->failed = true;
            return;
        }
        o->buf = b;
        o->cap = cap;
    }
}

/* A label value or help text, escaped as the format wants (\\, \", \n;
 * quotes only inside label values). */
static void put_escaped(out *o, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            put(o, "\\\\");
        else if (*s == '\n')
            put(o, "\\n");
        else if (*s == '"' && quote)
            put(o, "\\\"");
        else
            put(o, "%c", *s);
    }
}

static void put_value(out *o, double v)
{
    if (isinf(v))
        put(o, v > 0 ? "+Inf" : "-Inf");
    else if (isnan(v))
        put(o, "NaN");
    else if (v == (double)(int64_t)v && fabs(v) < 9e15)
        put(o, "%lld", (long long)v);
    else
        put(o, "%.17g", v);
}

/* {a="x",b="y"[,le="..."]} -- nothing when there are no labels at all. */
static void put_labels(out *o, const tier_metric *f, const series *s, const char *le)
{
    if (f->nlabels == 0 && le == NULL)
        return;
    put(o, "{");
    for (size_t i = 0; i < f->nlabels; i++) {
        put(o, "%s%s=\"", i ? "," : "", f->labels[i]);
        put_escaped(o, s->values[i], true);
        put(o, "\"");
    }
    if (le != NULL)
        put(o, "%sle=\"%s\"", f->nlabels ? "," : "", le);
    put(o, "}");
}

static void render_family(out *o, tier_metric *f)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};

    pthread_mutex_lock(&f->mu);
    put(o, "# HELP %s ", f->name);
    put_escaped(o, f->help, false);
    put(o, "\n# TYPE %s %s\n", f->name, types[f->type]);
    for (const series *s = f->first; s != NULL; s = s->order) {
        if (f->type != HISTOGRAM) {
            put(o, "%s", f->name);
            put_labels(o, f, s, NULL);
            put(o, " ");
            put_value(o, s->value);
            put(o, "\n");
            continue;
        }
        uint64_t cum = 0;
        for (size_t b = 0; b <= f->nbounds; b++) {
            char le[32];
            cum += s->buckets[b];
            if (b < f->nbounds)
                snprintf(le, sizeof(le), "%.17g", f->bounds[b]);
            else
                snprintf(le, sizeof(le), "+Inf");
            put(o, "%s_bucket", f->name);
            put_labels(o, f, s, le);
            put(o, " %llu\n", (unsigned long long)cum);
        }
        put(o, "%s_sum", f->name);
        put_labels(o, f, s, NULL);
        put(o, " ");
        put_value(o, s->sum);
        put(o, "\n%s_count", f->name);
        put_labels(o, f, s, NULL);
        put(o, " %llu\n", (unsigned long long)s->count);
    }
    pthread_mutex_unlock(&f->mu);
}

char *tier_metrics_render(tier_metrics *m, size_t *len)
{
    out o = {.buf = malloc(4096), .cap = 4096};

    if (o.buf == NULL)
        return NULL;
    o.buf[0] = '\0';
    for (hook *h = m->hooks; h != NULL; h = h->next)
        h->fn(h->arg);
    for (tier_metric *f = m->first; f != NULL; f = f->next)
        render_family(&o, f);
    if (o.failed) {
        free(o.buf);
        return NULL;
    }
    if (len != NULL)
        *len = o.len;
    return o.buf;
}
