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
    record *rec;
} slot;

struct tier_batcher {
    pthread_mutex_t mu;
    pthread_cond_t work; /* flusher waits for items */
    pthread_cond_t done; /* submitters wait for their record */
    slot *q;
    size_t qcap, qhead, qlen;
    size_t max_batch;
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
    void **items = malloc(b->max_batch * sizeof(void *));
    record **recs = malloc(b->max_batch * sizeof(record *));

    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (b->qlen == 0 && !b->stopping)
            pthread_cond_wait(&b->work, &b->mu);
        if (b->qlen == 0)
            break;
        size_t n = b->qlen < b->max_batch ? b->qlen : b->max_batch;
        for (size_t i = 0; i < n; i++) {
            slot *s = &b->q[(b->qhead + i) % b->qcap];
            items[i] = s->item;
            recs[i] = s->rec;
        }
        b->qhead = (b->qhead + n) % b->qcap;
        b->qlen -= n;
        pthread_mutex_unlock(&b->mu);
        int st = items && recs ? b->fn(b->arg, items, n) : TIER_RESOURCE_EXHAUSTED;
        pthread_mutex_lock(&b->mu);
        for (size_t i = 0; i < n; i++) {
            if (st != TIER_OK && recs[i]->status == TIER_OK)
                recs[i]->status = st;
            recs[i]->pending--;
        }
        pthread_cond_broadcast(&b->done);
    }
    pthread_mutex_unlock(&b->mu);
    free(items);
    free(recs);
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
    if (!grow(b) || pthread_create(&b->flusher, NULL, flusher_main, b) != 0) {
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
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->work);
    pthread_cond_destroy(&b->done);
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
        b->q[(b->qhead + b->qlen) % b->qcap] = (slot){items[i], &rec};
        b->qlen++;
    }
    pthread_cond_signal(&b->work);
    while (rec.pending > 0)
        pthread_cond_wait(&b->done, &b->mu);
    pthread_mutex_unlock(&b->mu);
    return rec.status;
}

int tier_batcher_submit(tier_batcher *b, void *item)
{
    return tier_batcher_submit_many(b, &item, 1);
}
