/*
 * tier_topology.h -- which tierd serves which shard (docs/CLUSTER.md), as
 * stored in Redis, and the cluster's shard count, as stored in MySQL.
 *
 *   <base>topology   hash: field "<K>" -> a packed tier.ShardInfo of shard
 *                    K's writer.  Written only by a script that first checks
 *                    <shard prefix of K>writer still holds the writer's
 *                    token, so a deposed writer cannot overwrite it.
 *   cluster_config   (sql/009) row id 1: the shard count every tierd of the
 *                    database must be started with.
 *
 * Storage code: no sockets.  What is read back is treated as hostile (a
 * value anyone with Redis access could have written): sizes are capped,
 * strings that do not fit are dropped, never truncated into another URL.
 */
#ifndef TIER_TOPOLOGY_H
#define TIER_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tier_db.h"
#include "tier_kv.h"

#define TIER_TOPOLOGY_VALUE_MAX 4096 /* bytes of one stored ShardInfo */

typedef struct {
    unsigned shard;
    char node[64];
    char rpc_url[256], push_url[256], http_url[256];
    int64_t token, since_ms;
    bool alive;
} tier_shard_owner;

/* buf = base when shards == 1, else base "s<K>:" (tierd's shard_prefix). */
void tier_shard_prefix(char *buf, size_t len, const char *base, unsigned shard, unsigned shards);

/* Publishes o as shard o->shard's owner in <base>topology, in one script
 * that first checks GET <shard_prefix>writer == o->token.  TIER_OK,
 * TIER_ABORTED when o->token is not the writer's, TIER_INVALID_ARGUMENT for
 * strings that do not fit, TIER_UNAVAILABLE when Redis did not answer. */
int tier_topology_publish(tier_kv *kv, const char *base, const char *shard_prefix,
                          const tier_shard_owner *o);

/* Reads shards 0..shards-1 (1..TIER_SHARDS_MAX) into out[0..shards): each
 * entry and its shard's writer key in one script, so out[K].alive = the
 * writer key still holds out[K].token.  A shard with no (or an unreadable)
 * entry: node "" and alive false.  TIER_OK, TIER_INVALID_ARGUMENT,
 * TIER_UNAVAILABLE. */
int tier_topology_read(tier_kv *kv, const char *base, unsigned shards, tier_shard_owner *out);

/* The cluster_config check: records shards if no row is there yet (the
 * first tierd of the database), then reads the row.  TIER_OK when it says
 * shards, TIER_FAILED_PRECONDITION (*stored = what it says) when not, or
 * the MySQL error. */
int tier_cluster_config_check(tier_db *db, unsigned shards, unsigned *stored);

#endif
