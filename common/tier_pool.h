/*
 * tier_pool.h -- a fixed-size pool of connections (MySQL, Redis) shared by
 * threads.  One connection is not thread-safe; a pool hands each caller a
 * connection of its own and takes it back.
 *
 * Slots open lazily: a caller that finds a connection broken returns NULL
 * with tier_pool_put(), and the next tier_pool_get() opens a fresh one.  So
 * a dependency that went away and came back heals without a restart.
 */
#ifndef TIER_POOL_H
#define TIER_POOL_H

#include <stddef.h>

typedef struct tier_pool tier_pool;

/* open(arg) returns a new connection or NULL; close(conn) frees one. */
typedef void *(*tier_pool_open_fn)(void *arg);
typedef void (*tier_pool_close_fn)(void *conn);

tier_pool *tier_pool_alloc(size_t size, tier_pool_open_fn open, tier_pool_close_fn close,
                           void *arg);
void tier_pool_free(tier_pool *p);

/* Waits for a free slot; returns its connection, opening one if needed;
 * NULL when it cannot be opened (the slot stays free). */
void *tier_pool_get(tier_pool *p);
/* Gives the connection back; NULL (or a connection the caller closed)
 * means "this one is broken". */
void tier_pool_put(tier_pool *p, void *conn);

#endif
