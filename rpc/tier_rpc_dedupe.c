/*
 * tier_rpc_dedupe.c -- answer a resent request from the first answer.
 *
 * Why: nng's req0 resends a request when its pipe drops (and on a timer,
 * which the client disables).  A request that reached the server, ran, and
 * lost its reply with the pipe therefore arrives a second time.  For
 * non-idempotent calls (PostComment, AddContent) running it again would be
 * wrong, so the server remembers the packed reply of each recent call by
 * (client id, request id) and sends that instead.
 *
 * The key includes the caller's credential (tier_rpc_caller.id), so a
 * resend is only ever answered to the credential that made the call: ids
 * seen on the wire do not let another token read someone's replies.
 *
 * The entry remembers the method: a client that reuses a request id for another
 * method must not get the first method's reply (it would unpack as garbage,
 * or worse, as a plausible answer), so that is refused instead.
 *
 * A fixed ring of `capacity` entries, oldest overwritten first, indexed by a
 * chained hash.  Replies can be large (up to the message limit), so the
 * cache also has a byte budget: when the replies it holds exceed it, the
 * oldest finished entries are dropped, whatever the entry count.  A duplicate of a call still
 * running waits for it on a condition variable.  Invariant: an entry is in its bucket chain iff its
 * `used` flag is set.
 */
#include "tier_rpc_int.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tier_time.h"

typedef struct {
    uint64_t client, request, caller;
    const char *method;
    int32_t next; /* next entry in the bucket chain, -1 = end */
    bool used, done;
    void *reply;
    size_t len;
} entry;

struct tier_rpc_dedupe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned cap, nbuckets, ring;
    size_t budget, bytes; /* bytes: sum of the cached replies' len */
    unsigned nused;
    entry *entries;
    int32_t *buckets;
};

static unsigned bucket_of(const tier_rpc_dedupe *d, uint64_t client, uint64_t request)
{
    uint64_t h = (client ^ (request * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull;
    return (unsigned)(h >> 32) & (d->nbuckets - 1);
}

tier_rpc_dedupe *tier_rpc_dedupe_alloc(unsigned capacity, size_t budget)
{
    tier_rpc_dedupe *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    d->cap = capacity;
    d->budget = budget;
    d->nbuckets = 1;
    while (d->nbuckets < capacity)
        d->nbuckets <<= 1;
    d->entries = calloc(capacity, sizeof(entry));
    d->buckets = malloc(d->nbuckets * sizeof(int32_t));
    if (d->entries == NULL || d->buckets == NULL) {
        tier_rpc_dedupe_free(d);
        return NULL;
    }
    memset(d->buckets, 0xff, d->nbuckets * sizeof(int32_t));
    pthread_mutex_init(&d->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cv, &ca);
    pthread_condattr_destroy(&ca);
    return d;
}

void tier_rpc_dedupe_free(tier_rpc_dedupe *d)
{
    if (d == NULL)
        return;
    if (d->entries != NULL) {
        for (unsigned i = 0; i < d->cap; i++)
            free(d->entries[i].reply);
        pthread_mutex_destroy(&d->mu);
        pthread_cond_destroy(&d->cv);
    }
    free(d->entries);
    free(d->buckets);
    free(d);
}

static int32_t find(tier_rpc_dedupe *d, uint64_t client, uint64_t request, uint64_t caller)
{
    for (int32_t i = d->buckets[bucket_of(d, client, request)]; i >= 0; i = d->entries[i].next)
        if (d->entries[i].client == client && d->entries[i].request == request &&
            d->entries[i].caller == caller)
            return i;
    return -1;
}

static void unlink_entry(tier_rpc_dedupe *d, int32_t idx)
{
    entry *e = &d->entries[idx];
    int32_t *p = &d->buckets[bucket_of(d, e->client, e->request)];

    while (*p != idx)
        p = &d->entries[*p].next;
    *p = e->next;
    e->used = false;
    d->nused--;
    d->bytes -= e->len;
    e->len = 0;
    free(e->reply);
    e->reply = NULL;
}

static void insert(tier_rpc_dedupe *d, uint64_t client, uint64_t request, uint64_t caller,
                   const char *method)
{
    int32_t idx = (int32_t)d->ring;
    entry *e = &d->entries[idx];
    unsigned b = bucket_of(d, client, request);

    d->ring = (d->ring + 1) % d->cap;
    if (e->used)
        unlink_entry(d, idx);
    e->client = client;
    e->request = request;
    e->caller = caller;
    e->method = method;
    e->used = true;
    d->nused++;
    e->done = false;
    e->len = 0;
    e->next = d->buckets[b];
    d->buckets[b] = idx;
}

/* Drops the oldest finished entries until the replies fit the budget.
 * Running entries hold no reply yet and are skipped. */
static void evict_to_budget(tier_rpc_dedupe *d)
{
    for (unsigned k = 0; k < d->cap && d->bytes > d->budget; k++) {
        int32_t idx = (int32_t)((d->ring + k) % d->cap);
        if (d->entries[idx].used && d->entries[idx].done)
            unlink_entry(d, idx);
    }
}

static bool same_method(const entry *e, const char *method)
{
    return e->method == method || strcmp(e->method, method) == 0;
}

tier_dedupe_result tier_rpc_dedupe_begin(tier_rpc_dedupe *d, uint64_t client, uint64_t request,
                                         uint64_t caller, const char *method, int64_t wait_until_us,
                                         void **reply, size_t *len)
{
    tier_dedupe_result r = TIER_DEDUPE_NEW;
    int32_t i;

    pthread_mutex_lock(&d->mu);
    while ((i = find(d, client, request, caller)) >= 0 && !d->entries[i].done) {
        if (!same_method(&d->entries[i], method)) {
            pthread_mutex_unlock(&d->mu);
            return TIER_DEDUPE_MISMATCH;
        }
        struct timespec ts = {.tv_sec = wait_until_us / 1000000,
                              .tv_nsec = (wait_until_us % 1000000) * 1000};
        if (tier_mono_us() >= wait_until_us || pthread_cond_timedwait(&d->cv, &d->mu, &ts) != 0) {
            if ((i = find(d, client, request, caller)) >= 0 && d->entries[i].done)
                break;
            pthread_mutex_unlock(&d->mu);
            return TIER_DEDUPE_BUSY;
        }
    }
    if (i >= 0 && !same_method(&d->entries[i], method)) {
        r = TIER_DEDUPE_MISMATCH;
    } else if (i >= 0) {
        entry *e = &d->entries[i];
        *reply = malloc(e->len ? e->len : 1);
        if (*reply != NULL) {
            memcpy(*reply, e->reply, e->len);
            *len = e->len;
            r = TIER_DEDUPE_CACHED;
        } else {
            r = TIER_DEDUPE_BUSY;
        }
    } else {
        insert(d, client, request, caller, method);
    }
    pthread_mutex_unlock(&d->mu);
    return r;
}

void tier_rpc_dedupe_finish(tier_rpc_dedupe *d, uint64_t client, uint64_t request, uint64_t caller,
                            const void *reply, size_t len)
{
    void *copy = malloc(len ? len : 1);
    int32_t i;

    if (copy != NULL)
        memcpy(copy, reply, len);
    pthread_mutex_lock(&d->mu);
    i = find(d, client, request, caller);
    if (i >= 0 && !d->entries[i].done) {
        if (copy == NULL || len > d->budget) {
            /* Cannot remember it: forget it rather than lie.  A resend then
             * runs again, as it would after eviction. */
            unlink_entry(d, i);
        } else {
            d->entries[i].reply = copy;
            d->entries[i].len = len;
            d->entries[i].done = true;
            d->bytes += len;
            copy = NULL;
            evict_to_budget(d);
        }
    }
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    free(copy);
}

void tier_rpc_dedupe_stats(tier_rpc_dedupe *d, uint64_t *bytes, uint64_t *entries)
{
    pthread_mutex_lock(&d->mu);
    *bytes = d->bytes;
    *entries = d->nused;
    pthread_mutex_unlock(&d->mu);
}
