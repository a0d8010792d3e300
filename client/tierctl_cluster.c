/*
 * tierctl_cluster.c -- tierctl and several coordinators (docs/CLUSTER.md):
 * `tierctl topology` (which tierd serves which shard), and tierctl_for,
 * which sends a per-cid command to the owner of the cid's shard when the
 * tierd given (TIER_URL / --url: any tierd of the cluster) says there are
 * several shards.
 */
#include "tierctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One Topology call, once: a cluster handle only when shards > 1. */
static void learn_routing(tierctl *t)
{
    Tier__TopologyRequest req = TIER__TOPOLOGY_REQUEST__INIT;
    Tier__TopologyReply *rep;
    unsigned shards = 0;

    t->routing = 1;
    /* A tierd without Topology, or one that cannot answer now: the
     * command's own call says what is wrong, if anything. */
    if (tier_topology(t->client, &req, &rep, NULL) != TIER_OK)
        return;
    shards = rep->shards;
    tier_free(rep);
    if (shards > 1 && tier_cluster_open(&t->cluster, t->url, &t->opts, NULL) == TIER_OK)
        t->routing = 2;
}

tier_client *tierctl_for(tierctl *t, int64_t cid)
{
    tier_client *c;

    if (t->routing == 0)
        learn_routing(t);
    if (t->routing != 2 || (c = tier_cluster_client_for(t->cluster, cid)) == NULL)
        return t->client;
    return c;
}

tier_cluster *tierctl_cluster(tierctl *t)
{
    if (t->routing == 0)
        learn_routing(t);
    return t->routing == 2 ? t->cluster : NULL;
}

static json_t *shard_json(const Tier__ShardInfo *o)
{
    json_t *j = json_object();

    json_object_set_new(j, "shard", tierctl_jint(o->shard));
    json_object_set_new(j, "first_slot", tierctl_jint(o->first_slot));
    json_object_set_new(j, "last_slot", tierctl_jint(o->last_slot));
    json_object_set_new(j, "node", tierctl_jstr(o->node));
    json_object_set_new(j, "rpc_url", tierctl_jstr(o->rpc_url));
    json_object_set_new(j, "push_url", tierctl_jstr(o->push_url));
    json_object_set_new(j, "http_url", tierctl_jstr(o->http_url));
    json_object_set_new(j, "alive", json_boolean(o->alive));
    json_object_set_new(j, "token", tierctl_jint(o->token));
    json_object_set_new(j, "since", tierctl_jtime(o->since_ms));
    return j;
}

static void print_topology(tierctl *t, const Tier__TopologyReply *r)
{
    char since[64], slots[24];

    printf("%u slots, %u shard%s\n", r->slots, r->shards, r->shards == 1 ? "" : "s");
    printf("%-5s %-9s %-16s %-28s %-28s %-5s %s\n", "SHARD", "SLOTS", "NODE", "RPC URL", "PUSH URL",
           "ALIVE", "SINCE");
    for (size_t i = 0; i < r->n_owners; i++) {
        const Tier__ShardInfo *o = r->owners[i];
        snprintf(slots, sizeof(slots), "%u-%u", o->first_slot, o->last_slot);
        printf("%-5u %-9s %-16s %-28s %-28s %-5s %s\n", o->shard, slots, o->node[0] ? o->node : "-",
               o->rpc_url[0] ? o->rpc_url : "-", o->push_url[0] ? o->push_url : "-",
               o->alive ? "yes" : "no", tierctl_time(t, o->since_ms, since, sizeof(since)));
    }
}

static int cmd_topology(tierctl *t, int argc, char **argv)
{
    Tier__TopologyRequest req = TIER__TOPOLOGY_REQUEST__INIT;
    Tier__TopologyReply *rep;
    int rv;
    (void)argv;

    if (argc != 1)
        return tierctl_usage(t, "usage: tierctl topology");
    if ((rv = tier_topology(t->client, &req, &rep, &t->err)) != TIER_OK)
        return rv;
    if (t->json) {
        json_t *o = json_object(), *a = json_array();
        for (size_t i = 0; i < rep->n_owners; i++)
            json_array_append_new(a, shard_json(rep->owners[i]));
        json_object_set_new(o, "slots", tierctl_jint(rep->slots));
        json_object_set_new(o, "shards", tierctl_jint(rep->shards));
        json_object_set_new(o, "owners", a);
        tierctl_emit(stdout, o);
    } else {
        print_topology(t, rep);
    }
    tier_free(rep);
    return TIER_OK;
}

const tierctl_cmd tierctl_cluster_cmds[] = {
    {"topology", "topology", "which tierd serves which shard of the cids", cmd_topology,
     "  From any tierd of the cluster.  Per-cid commands (views, content, history,\n"
     "  job, move, complete, wait, watch, comment post, comments) go to the owner of\n"
     "  the cid's shard by themselves when there are several shards."},
    {NULL, NULL, NULL, NULL, NULL},
};
