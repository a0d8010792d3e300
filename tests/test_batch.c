/*
 * test_batch.c -- unit test of store/tier_batch (group commit): many
 * threads submit; every item is applied exactly once; batches of more than
 * one item happen under load; the batch function's status reaches every
 * submitter of that batch and only them; per-item results written by the
 * function are seen by the submitter; under light load a batch is one item.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "tier_batch.h"
#include "tier_status.h"

#define THREADS 16
#define PER_THREAD 2000

typedef struct {
    atomic_int applied; /* times fn saw it */
    bool poison;        /* its batch fails */
    long batch;         /* the batch that carried it (written by fn) */
    int result;         /* per-item result written by fn */
} item;

typedef struct {
    atomic_long batches;
    atomic_long multi; /* batches of more than one item */
    long batch_failed[1u << 20];
    atomic_size_t max_n;
} world;

static world *W;

static int apply(void *arg, unsigned flusher, void **items, size_t n)
{
    world *w = arg;
    (void)flusher;
    long b = atomic_fetch_add(&w->batches, 1);
    bool fail = false;

    if (n > 1)
        atomic_fetch_add(&w->multi, 1);
    if (n > atomic_load(&w->max_n))
        atomic_store(&w->max_n, n);
    for (size_t i = 0; i < n; i++) {
        item *it = items[i];
        atomic_fetch_add(&it->applied, 1);
        it->batch = b;
        it->result = 7;
        fail |= it->poison;
    }
    w->batch_failed[b] = fail;
    usleep(300); /* like an fsync: lets the queue fill up */
    return fail ? TIER_ABORTED : TIER_OK;
}

typedef struct {
    tier_batcher *b;
    item *items;
    int status[PER_THREAD];
} worker;

static void *submitter(void *arg)
{
    worker *wk = arg;
    for (int i = 0; i < PER_THREAD; i++)
        wk->status[i] = tier_batcher_submit(wk->b, &wk->items[i]);
    return NULL;
}

Test(batch, many_threads_exactly_once_with_statuses, .timeout = 120)
{
    W = calloc(1, sizeof(*W));
    tier_batcher *b = tier_batcher_alloc(64, 3, apply, W); /* 3 flushers at once */
    item *items = calloc(THREADS * PER_THREAD, sizeof(*items));
    worker wk[THREADS];
    pthread_t th[THREADS];

    cr_assert_not_null(b);
    for (int i = 0; i < THREADS * PER_THREAD; i++)
        items[i].poison = i % 97 == 0;
    for (int t = 0; t < THREADS; t++) {
        wk[t].b = b;
        wk[t].items = &items[t * PER_THREAD];
        pthread_create(&th[t], NULL, submitter, &wk[t]);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);

    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < PER_THREAD; i++) {
            item *it = &wk[t].items[i];
            cr_assert_eq(atomic_load(&it->applied), 1, "applied exactly once");
            cr_assert_eq(it->result, 7, "per-item result visible to the submitter");
            int want = W->batch_failed[it->batch] ? TIER_ABORTED : TIER_OK;
            cr_assert_eq(wk[t].status[i], want, "the status of its own batch");
        }
    cr_assert_gt(atomic_load(&W->multi), 0, "group commit: batches of more than one");
    cr_assert_leq(atomic_load(&W->max_n), 64, "max_batch respected");
    cr_assert_lt(atomic_load(&W->batches), THREADS * PER_THREAD);
    tier_batcher_free(b);
    free(items);
    free(W);
}

Test(batch, submit_many_splits_and_reports_first_error)
{
    W = calloc(1, sizeof(*W));
    tier_batcher *b = tier_batcher_alloc(10, 1, apply, W);
    item *items = calloc(95, sizeof(*items));
    void *ptrs[95];

    for (int i = 0; i < 95; i++)
        ptrs[i] = &items[i];
    cr_assert_eq(tier_batcher_submit_many(b, ptrs, 95), TIER_OK);
    for (int i = 0; i < 95; i++)
        cr_assert_eq(atomic_load(&items[i].applied), 1);
    cr_assert_geq(atomic_load(&W->batches), 10, "split into batches of at most 10");
    cr_assert_eq(tier_batcher_submit_many(b, ptrs, 0), TIER_OK);

    items[50].poison = true;
    cr_assert_eq(tier_batcher_submit_many(b, ptrs, 95), TIER_ABORTED);
    for (int i = 0; i < 95; i++)
        cr_assert_eq(atomic_load(&items[i].applied), 2, "the others still applied");
    tier_batcher_free(b);
    free(items);
    free(W);
}

Test(batch, light_load_batches_of_one)
{
    W = calloc(1, sizeof(*W));
    tier_batcher *b = tier_batcher_alloc(64, 1, apply, W);
    item items[20] = {0};

    for (int i = 0; i < 20; i++)
        cr_assert_eq(tier_batcher_submit(b, &items[i]), TIER_OK);
    cr_assert_eq(atomic_load(&W->batches), 20, "one submitter: nothing to wait for");
    cr_assert_eq(atomic_load(&W->multi), 0);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(items[i].batch, i, "applied in order");
    tier_batcher_free(b);
    free(W);
}

/* ---- asynchronous submission */

/* A batch fails when its first item is poisoned; each item notes (in
 * `batch`) whether its batch failed, for the check. */
static int apply_leader_decides(void *arg, unsigned flusher, void **items, size_t n)
{
    (void)flusher;
    bool fail = ((item *)items[0])->poison;
    (void)arg;
    for (size_t i = 0; i < n; i++) {
        atomic_fetch_add(&((item *)items[i])->applied, 1);
        ((item *)items[i])->batch = fail;
    }
    return fail ? TIER_ABORTED : TIER_OK;
}

static void async_done(void *arg, int status)
{
    ((item *)arg)->result = status;
}

Test(batch, async_items_each_get_their_status)
{
    tier_batcher *b = tier_batcher_alloc(8, 2, apply_leader_decides, NULL);
    enum { N = 5000 };
    item *items = calloc(N, sizeof(item));

    for (int i = 0; i < N; i++) {
        items[i].poison = (i % 7) == 0;
        items[i].result = -1;
        cr_assert_eq(tier_batcher_submit_async(b, &items[i], async_done, &items[i]), TIER_OK);
    }
    tier_batcher_free(b); /* applies everything queued before returning */
    for (int i = 0; i < N; i++) {
        cr_assert_eq(atomic_load(&items[i].applied), 1, "item %d applied %d times", i,
                     atomic_load(&items[i].applied));
        cr_assert_eq(items[i].result, items[i].batch ? TIER_ABORTED : TIER_OK,
                     "item %d got its own batch's status", i);
    }
    free(items);
}
