/*
 * tier_pool.c -- see tier_pool.h.  A stack of idle connections plus a
 * count of slots not yet (or no longer) holding one.
 */
#include "tier_pool.h"

#include <pthread.h>
#include <stdlib.h>

struct tier_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void **idle;
    size_t nidle;
    size_t empty; /* slots free to open a new connection */
    tier_pool_open_fn open;
    tier_pool_close_fn close;
    void *arg;
};

tier_pool *tier_pool_alloc(size_t size, tier_pool_open_fn open, tier_pool_close_fn close, void *arg)
{
    tier_pool *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->idle = calloc(size ? size : 1, sizeof(void *));
    if (p->idle == NULL) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->empty = size;
    p->open = open;
    p->close = close;
    p->arg = arg;
    return p;
}

void tier_pool_free(tier_pool *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->nidle; i++)
        p->close(p->idle[i]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->idle);
    free(p);
}

void *tier_pool_get(tier_pool *p)
{
    void *conn;

    pthread_mutex_lock(&p->mu);
    while (p->nidle == 0 && p->empty == 0)
        pthread_cond_wait(&p->cv, &p->mu);
    if (p->nidle > 0) {
        conn = p->idle[--p->nidle];
        pthread_mutex_unlock(&p->mu);
        return conn;
    }
    p->empty--;
    pthread_mutex_unlock(&p->mu);
    conn = p->open(p->arg); /* outside the lock: connecting can be slow */
    if (conn == NULL) {
        pthread_mutex_lock(&p->mu);
        p->empty++;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    return conn;
}

void tier_pool_put(tier_pool *p, void *conn)
{
    pthread_mutex_lock(&p->mu);
    if (conn != NULL)
        p->idle[p->nidle++] = conn;
    else
        p->empty++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}
