/*
 * tier_batch.c -- see tier_batch.h.
 *
 * Submitters append to a queue and wait on a per-submission record; a
 * flusher takes up to max_batch queued items, applies them, fills in the
 * status of every record they belong to, and wakes the owners.  With
 * several flushers each takes its own batch from the one queue.  A record
 * counts its items not yet applied; it is done when that reaches zero.
 */
#include "tier_batch.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "tier_status.h"
#include "tier_time.h"

typedef struct {
    size_t pending; /* items not yet applied */
    int status;     /* first non-OK status among them */
} record;

typedef struct {
    void *item;
    int64_t queued_us;       /* monotonic, when it was submitted */
    record *rec;             /* a waiting submitter, or NULL when async */
    tier_batch_done_fn done; /* async: called with the status */
    void *done_arg;
} slot;

struct tier_batcher {
    pthread_mutex_t mu;
    pthread_cond_t work; /* flusher waits for items */
    pthread_cond_t done; /* submitters wait for their record */
    slot *q;
    size_t qcap, qhead, qlen;
    size_t max_batch;
    unsigned waiting; /* submitters inside submit_many: free waits for them */
    bool stopping;
    tier_batch_fn fn;
    void *arg;
    unsigned nflushers;
    struct flusher *flushers;
    /* tier_batcher_set_metrics; NULL: none */
    tier_metric *m_size, *m_wait, *m_flush;
    char name[32];
};

static bool grow(tier_batcher *b)
{
    size_t cap = b->qcap ? b->qcap * 2 : 1024;
    slot *q = malloc(cap * sizeof(slot));
    if (q == NULL)
        return false;
    for (size_t i = 0; i < b->qlen; i++)
        q[i] = b->q[(b->qhead + i) % b->qcap];
    free(b->q);
    b->q = q;
    b->qcap = cap;
    b->qhead = 0;
    return true;
}

/* One flusher thread and its batch buffers (allocated up front: it has no
 * way to report running out of memory later). */
typedef struct flusher {
    tier_batcher *b;
    unsigned index;
    pthread_t tid;
    void **items;
    slot *taken;
} flusher;

static void observe(tier_batcher *b, size_t n, int64_t waited_us, int64_t flush_us)
{
    if (b->m_size == NULL)
        return;
    tier_metric_observe(b->m_size, (double)n, b->name);
    tier_metric_observe(b->m_wait, (double)waited_us / 1e6, b->name);
    tier_metric_observe(b->m_flush, (double)flush_us / 1e6, b->name);
}

void tier_batcher_set_metrics(tier_batcher *b, const char *name, tier_metric *size,
                              tier_metric *wait, tier_metric *flush)
{
    snprintf(b->name, sizeof(b->name), "%s", name);
    b->m_wait = wait;
    b->m_flush = flush;
    b->m_size = size; /* last: observe() tests it */
}

static void *flusher_main(void *arg)
{
    flusher *f = arg;
    tier_batcher *b = f->b;
    void **items = f->items;
    slot *taken = f->taken;

    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (b->qlen == 0 && !b->stopping)
            pthread_cond_wait(&b->work, &b->mu);
        if (b->qlen == 0)
            break;
        size_t n = b->qlen < b->max_batch ? b->qlen : b->max_batch;
        for (size_t i = 0; i < n; i++) {
            taken[i] = b->q[(b->qhead + i) % b->qcap];
            items[i] = taken[i].item;
        }
        b->qhead = (b->qhead + n) % b->qcap;
        b->qlen -= n;
        pthread_mutex_unlock(&b->mu);
        int64_t t0 = tier_mono_us();
        int st = b->fn(b->arg, f->index, items, n);
        observe(b, n, t0 - taken[0].queued_us, tier_mono_us() - t0);
        for (size_t i = 0; i < n; i++) /* outside the lock: done may submit */
            if (taken[i].rec == NULL)
                taken[i].done(taken[i].done_arg, st);
        pthread_mutex_lock(&b->mu);
        for (size_t i = 0; i < n; i++) {
            record *r = taken[i].rec;
            if (r == NULL)
                continue;
            if (st != TIER_OK && r->status == TIER_OK)
                r->status = st;
            r->pending--;
        }
        pthread_cond_broadcast(&b->done);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

static void flushers_free(tier_batcher *b)
{
    for (unsigned i = 0; b->flushers != NULL && i < b->nflushers; i++) {
        free(b->flushers[i].items);
        free(b->flushers[i].taken);
    }
    free(b->flushers);
}

tier_batcher *tier_batcher_alloc(size_t max_batch, unsigned nflushers, tier_batch_fn fn, void *arg)
{
    tier_batcher *b = calloc(1, sizeof(*b));
    unsigned started = 0;

    if (b == NULL)
        return NULL;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->work, NULL);
    pthread_cond_init(&b->done, NULL);
    b->max_batch = max_batch ? max_batch : 1;
    b->fn = fn;
    b->arg = arg;
    b->nflushers = nflushers ? nflushers : 1;
    b->flushers = calloc(b->nflushers, sizeof(flusher));
    bool ok = b->flushers != NULL && grow(b);
    for (unsigned i = 0; ok && i < b->nflushers; i++) {
        flusher *f = &b->flushers[i];
        *f = (flusher){b, i, 0, malloc(b->max_batch * sizeof(void *)),
                       malloc(b->max_batch * sizeof(slot))};
        ok = f->items != NULL && f->taken != NULL;
    }
    for (; ok && started < b->nflushers; started++)
        ok = pthread_create(&b->flushers[started].tid, NULL, flusher_main, &b->flushers[started]) ==
             0;
    if (!ok) {
        b->nflushers = started; /* free joins the ones that run */
        tier_batcher_free(b);
        return NULL;
    }
    return b;
}

void tier_batcher_free(tier_batcher *b)
{
    if (b == NULL)
        return;
    pthread_mutex_lock(&b->mu);
    b->stopping = true;
    pthread_cond_broadcast(&b->work);
    pthread_mutex_unlock(&b->mu);
    for (unsigned i = 0; i < b->nflushers; i++) /* they apply what is queued first */
        pthread_join(b->flushers[i].tid, NULL);
    /* Woken submitters may still be on their way out of submit_many. */
    pthread_mutex_lock(&b->mu);
    while (b->waiting > 0)
        pthread_cond_wait(&b->done, &b->mu);
    pthread_mutex_unlock(&b->mu);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->work);
    pthread_cond_destroy(&b->done);
    flushers_free(b);
    free(b->q);
    free(b);
}

int tier_batcher_submit_many(tier_batcher *b, void **items, size_t n)
{
    record rec = {n, TIER_OK};

    if (n == 0)
        return TIER_OK;
    int64_t now = tier_mono_us();
    pthread_mutex_lock(&b->mu);
    if (b->stopping) {
        pthread_mutex_unlock(&b->mu);
        return TIER_UNAVAILABLE;
    }
    for (size_t i = 0; i < n; i++) {
        if (b->qlen == b->qcap && !grow(b)) {
            rec.pending -= n - i; /* the rest never went in */
            rec.status = TIER_RESOURCE_EXHAUSTED;
            break;
        }
        b->q[(b->qhead + b->qlen) % b->qcap] = (slot){items[i], now, &rec, NULL, NULL};
        b->qlen++;
    }
    b->waiting++;
    pthread_cond_signal(&b->work);
    while (rec.pending > 0)
        pthread_cond_wait(&b->done, &b->mu);
    if (--b->waiting == 0)
        pthread_cond_broadcast(&b->done);
    pthread_mutex_unlock(&b->mu);
    return rec.status;
}

int tier_batcher_submit(tier_batcher *b, void *item)
{
    return tier_batcher_submit_many(b, &item, 1);
}

int tier_batcher_submit_async(tier_batcher *b, void *item, tier_batch_done_fn done, void *arg)
{
    int rv = TIER_OK;

    pthread_mutex_lock(&b->mu);
    if (b->stopping)
        rv = TIER_UNAVAILABLE;
    else if (b->qlen == b->qcap && !grow(b))
        rv = TIER_RESOURCE_EXHAUSTED;
    if (rv == TIER_OK) {
        b->q[(b->qhead + b->qlen) % b->qcap] = (slot){item, tier_mono_us(), NULL, done, arg};
        b->qlen++;
        pthread_cond_signal(&b->work);
    }
    pthread_mutex_unlock(&b->mu);
    return rv;
}
