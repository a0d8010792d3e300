/*
 * tier_batch.h -- group commit: many threads submit items, one flusher
 * thread applies them in batches (one transaction per batch), and each
 * submitter returns only once its item's batch has been applied.
 *
 * Why: with innodb_flush_log_at_trx_commit=1 every COMMIT waits for an
 * fsync.  One commit per comment or per finished move caps a writer at a
 * few thousand per second; one commit per batch of whatever arrived while
 * the previous fsync ran keeps the same durability (an acknowledged item is
 * committed) at a hundred times the rate.  The batch size adapts by itself:
 * under light load a batch is one item and adds no delay.
 *
 * Used by the tiering CompleteJob path and the ranking write path: one
 * mechanism for both.
 */
#ifndef TIER_BATCH_H
#define TIER_BATCH_H

#include <stddef.h>

#include "tier_metrics.h"

typedef struct tier_batcher tier_batcher;

/*
 * Applies items[0..n) in one go; returns a status (common/tier_status.h)
 * that every submitter of the batch receives.  Per-item results, if any,
 * are written by fn into the items themselves.  Runs on flusher thread
 * number `flusher` (0..nflushers-1), so it may keep a connection per
 * flusher in arg.
 */
typedef int (*tier_batch_fn)(void *arg, unsigned flusher, void **items, size_t n);

/* max_batch: most items per call of fn.  nflushers: batches applied at
 * once (1 keeps them strictly one after another; 2 lets one batch fill
 * while the previous one waits for its fsync -- the caller must then cope
 * with concurrent batches, e.g. lock rows in a consistent order). */
tier_batcher *tier_batcher_alloc(size_t max_batch, unsigned nflushers, tier_batch_fn fn, void *arg);
/* Stops the flusher after applying everything already submitted. */
void tier_batcher_free(tier_batcher *b);

/* Blocks until item's batch is applied; returns fn's status for it. */
int tier_batcher_submit(tier_batcher *b, void *item);
/* Submits n items together (they may still be split across batches);
 * returns the first non-OK status, or OK. */
int tier_batcher_submit_many(tier_batcher *b, void **items, size_t n);

/* Without waiting: done(arg, status) runs on the flusher thread once the
 * item's batch is applied (paired with rpc's deferred replies, a request
 * waiting for its commit then holds no thread at all).  done must be quick.
 * Returns UNAVAILABLE (and never calls done) if the batcher is stopping. */
typedef void (*tier_batch_done_fn)(void *arg, int status);
int tier_batcher_submit_async(tier_batcher *b, void *item, tier_batch_done_fn done, void *arg);

/* Observes every flush in three histograms (label "batcher" = name): its
 * item count, how long its oldest item waited, how long fn took.  Before
 * the first submit. */
void tier_batcher_set_metrics(tier_batcher *b, const char *name, tier_metric *size,
                              tier_metric *wait, tier_metric *flush);

#endif
