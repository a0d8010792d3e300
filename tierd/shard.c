/*
 * shard.c -- which contents this tierd serves when several do
 * (docs/CLUSTER.md, common/tier_slot.h).
 *
 * A tierd started with --shards N --shard K is the writer of shard K only:
 * it loads the contents, views and comment minutes of K's slots (the
 * store's loaders filter by the connection's shard, store/tier_db.h),
 * picks new cids and comment ids that are K's, and refuses any call that
 * names a cid of another shard with FAILED_PRECONDITION, naming the
 * owner (Redis Cluster's MOVED), so that nothing it does in memory can
 * disagree with another shard's writer: no two writers ever hold the same
 * content.  With N = 1 every cid is ours and nothing here costs anything.
 */
#include "tierd.h"

#include <inttypes.h>

#include "tier_slot.h"

bool tierd_shard_owns(const tierd_config *cfg, int64_t cid)
{
    return cfg->shards <= 1 || tier_shard_of(cid, cfg->shards) == cfg->shard;
}

int tierd_shard_moved(tier_rpc_ctx *call, const tierd_deps *deps, int64_t cid)
{
    const tierd_config *cfg = deps->cfg;
    unsigned slot = tier_slot_of(cid), shard = tier_slot_shard(slot, cfg->shards);
    char url[256] = "";

    if (deps->peers != NULL)
        tierd_peers_owner_url(deps->peers, shard, url, sizeof(url));
    return tier_rpc_set_moved(call, url,
                              "moved: cid %" PRId64 " is in slot %u of shard %u (%s); this "
                              "tierd serves shard %u of %u",
                              cid, slot, shard, url[0] ? url : "no writer now", cfg->shard,
                              cfg->shards);
}

/* Slots are a hash of the cid, so about one cid in N is ours: the search
 * ends within a few N tries; the cap only bounds a pathological run. */
#define NEXT_TRIES 1000000

int64_t tierd_shard_next_cid(const tierd_config *cfg, int64_t above)
{
    int64_t c = above < 0 ? 0 : above;

    for (int i = 0; i < NEXT_TRIES; i++) {
        if (__builtin_add_overflow(c, 1, &c))
            return 0;
        if (tierd_shard_owns(cfg, c))
            return c;
    }
    return 0;
}
