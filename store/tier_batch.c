/*
 * tier_batch.c -- see tier_batch.h.
 *
 * Submitters append to a queue and wait on a per-submission record; the
 * flusher takes up to max_batch queued items, applies them, fills in the
 * status of every record they belong to, and wakes the owners.  A record
 * counts its items not yet applied; it is done when that reaches zero.
 */
#include "tier_batch.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "tier_status.h"

typedef struct {
    size_t pending; /* items not yet applied */
    int status;     /* first non-OK status among them */
} record;

typedef struct {
    void *item;
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
    void **items;     /* the flusher's batch buffers */
    slot *taken;
    bool stopping;
    tier_batch_fn fn;
    void *arg;
    pthread_t flusher;
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

static void *flusher_main(void *arg)
{
    tier_batcher *b = arg;
    void **items = b->items;
    slot *taken = b->taken;

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
        int st = b->fn(b->arg, items, n);
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

tier_batcher *tier_batcher_alloc(size_t max_batch, tier_batch_fn fn, void *arg)
{
    tier_batcher *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->work, NULL);
    pthread_cond_init(&b->done, NULL);
    b->max_batch = max_batch ? max_batch : 1;
    b->fn = fn;
    b->arg = arg;
    /* The flusher's buffers are allocated before it starts: it has no way
     * to report running out of memory later. */
    b->items = malloc(b->max_batch * sizeof(void *));
    b->taken = malloc(b->max_batch * sizeof(slot));
    if (b->items == NULL || b->taken == NULL || !grow(b) ||
        pthread_create(&b->flusher, NULL, flusher_main, b) != 0) {
        free(b->items);
        free(b->taken);
        free(b->q);
        free(b);
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
    pthread_cond_signal(&b->work);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->flusher, NULL);
    /* Woken submitters may still be on their way out of submit_many. */
    pthread_mutex_lock(&b->mu);
    while (b->waiting > 0)
        pthread_cond_wait(&b->done, &b->mu);
    pthread_mutex_unlock(&b->mu);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->work);
    pthread_cond_destroy(&b->done);
    free(b->items);
    free(b->taken);
    free(b->q);
    free(b);
}

int tier_batcher_submit_many(tier_batcher *b, void **items, size_t n)
{
    record rec = {n, TIER_OK};

    if (n == 0)
        return TIER_OK;
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
        b->q[(b->qhead + b->qlen) % b->qcap] = (slot){items[i], &rec, NULL, NULL};
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
        b->q[(b->qhead + b->qlen) % b->qcap] = (slot){item, NULL, done, arg};
        b->qlen++;
        pthread_cond_signal(&b->work);
    }
    pthread_mutex_unlock(&b->mu);
    return rv;
}
