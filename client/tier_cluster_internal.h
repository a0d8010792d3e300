/*
 * tier_cluster_internal.h -- what tier_cluster.c lends tier_cluster_batch.c
 * (not installed, not exported): calling one shard's owner and the retry
 * rules of routed calls.
 */
#ifndef TIER_CLUSTER_INTERNAL_H
#define TIER_CLUSTER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "tier_client.h"

/* Calls shard k's owner (k == TIER_SHARDS_MAX: any owner); UNAVAILABLE at
 * once when it has none, or no connection comes within wait_ms. */
int tier_cluster_call_shard(tier_cluster *cl, unsigned k, uint32_t wait_ms, const char *method,
                            const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd,
                            ProtobufCMessage **rep, tier_error *err);

/* Worth a fresh topology and another go: UNAVAILABLE, or moved. */
bool tier_cluster_retryable(int rv, const tier_error *err);

typedef struct {
    int64_t start_ms, budget_ms; /* monotonic; the client's per-call timeout */
    unsigned attempt;
} tier_cluster_retry;

void tier_cluster_retry_begin(tier_cluster *cl, tier_cluster_retry *r);
/* How long to wait for a connection to an owner now. */
uint32_t tier_cluster_connect_wait(const tier_cluster *cl, const tier_cluster_retry *r);
/* Backs off and refreshes the topology; false when no go is left. */
bool tier_cluster_retry_again(tier_cluster *cl, tier_cluster_retry *r);

#endif
