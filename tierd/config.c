/*
 * config.c -- tierd's configuration: defaults < config file < environment
 * < flags, every option from the one table in options.c, parsed strictly
 * by common/tier_options.c (units, bounds, sources: docs/CONFIG.md).
 * Passwords are accepted from the file and the environment only, never as
 * flags: a command line is visible to every user of the machine.  What is
 * checked here is what spans options: the access rules.
 */
#include "tierd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tier_crash.h"
#include "tier_rpc_net.h"
#include "tier_topology.h"

/* Access must be chosen, not fallen into (docs/SECURITY.md): tokens, or
 * --no-auth on addresses no other machine can reach; and tokens do not
 * cross a network in clear unless the operator says so. */
static int check_access(const tierd_config *c)
{
    const char *urls[3] = {c->listen, c->push, c->http_listen};

    if (!c->no_auth && c->auth_tokens[0] == '\0') {
        fprintf(stderr, "tierd: say who may call: --auth-tokens FILE (docs/SECURITY.md), or\n"
                        "       --no-auth for a tierd that only this machine can reach\n");
        return -1;
    }
    if (c->http_listen[0] != '\0' && strncmp(c->http_listen, "http://", 7) != 0 &&
        strncmp(c->http_listen, "https://", 8) != 0) {
        fprintf(stderr, "tierd: http_listen is http://HOST:PORT or https://HOST:PORT, not %s\n",
                c->http_listen);
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        if (urls[i][0] == '\0') /* no HTTP port */
            continue;
        if (c->no_auth && !tier_rpc_net_is_loopback(urls[i])) {
            fprintf(stderr,
                    "tierd: --no-auth listens on loopback or ipc:// addresses only, not %s\n",
                    urls[i]);
            return -1;
        }
        if ((c->tls_cert[0] == '\0') != (c->tls_key[0] == '\0')) {
            fprintf(stderr, "tierd: --tls-cert and --tls-key go together\n");
            return -1;
        }
        if ((tier_rpc_net_is_tls(urls[i]) || strncmp(urls[i], "https://", 8) == 0) &&
            c->tls_cert[0] == '\0') {
            fprintf(stderr, "tierd: %s needs --tls-cert and --tls-key\n", urls[i]);
            return -1;
        }
    }
    if (!c->no_auth && !c->insecure_plaintext && !tier_rpc_net_is_tls(c->listen) &&
        !tier_rpc_net_is_loopback(c->listen)) {
        fprintf(stderr,
                "tierd: tokens would cross the network in clear on %s: listen on tls+tcp:// "
                "(--tls-cert, --tls-key), or pass --insecure-plaintext\n",
                c->listen);
        return -1;
    }
    if (!c->no_auth && !c->insecure_plaintext && c->http_listen[0] != '\0' &&
        strncmp(c->http_listen, "https://", 8) != 0 && !tier_rpc_net_is_loopback(c->http_listen)) {
        fprintf(stderr,
                "tierd: tokens would cross the network in clear on %s: use https:// "
                "(--tls-cert, --tls-key), or pass --insecure-plaintext\n",
                c->http_listen);
        return -1;
    }
    return 0;
}

/* A shard of the shards, and the addresses published in the topology
 * (docs/CLUSTER.md): defaults are this process's own. */
static int check_cluster(tierd_config *c)
{
    if (c->shard >= c->shards) {
        fprintf(stderr, "tierd: --shard %u is not one of the %u shards (0 .. %u)\n", c->shard,
                c->shards, c->shards - 1);
        return -1;
    }
    if (c->node[0] == '\0' && gethostname(c->node, sizeof(c->node)) != 0)
        snprintf(c->node, sizeof(c->node), "localhost");
    c->node[sizeof(c->node) - 1] = '\0';
    tier_shard_prefix(c->shard_prefix, sizeof(c->shard_prefix), c->redis_prefix, c->shard,
                      c->shards);
    c->db.shard = c->shard;
    c->db.shards = c->shards;
    if (c->advertise[0] == '\0')
        snprintf(c->advertise, sizeof(c->advertise), "%s", c->listen);
    if (c->advertise_push[0] == '\0')
        snprintf(c->advertise_push, sizeof(c->advertise_push), "%s", c->push);
    if (c->advertise_http[0] == '\0')
        snprintf(c->advertise_http, sizeof(c->advertise_http), "%s", c->http_listen);
    return 0;
}

/* Sentinels: a list that parses and a master name to ask them for. */
static int check_redis(const tierd_config *c)
{
    tier_kv_addr s[TIER_KV_MAX_SENTINELS];
    char err[256];
    size_t n;

    if (c->kv.sentinels[0] == '\0') {
        if (c->kv.master_name[0] != '\0') {
            fprintf(stderr, "tierd: redis_master_name needs redis_sentinels\n");
            return -1;
        }
        return 0;
    }
    if (tier_kv_sentinels_parse(c->kv.sentinels, s, TIER_KV_MAX_SENTINELS, &n, err, sizeof(err)) !=
        TIER_OK) {
        fprintf(stderr, "tierd: redis_sentinels: %s\n", err);
        return -1;
    }
    if (c->kv.master_name[0] == '\0') {
        fprintf(stderr, "tierd: redis_sentinels needs redis_master_name\n");
        return -1;
    }
    return 0;
}

/* The action flags: done, and tierd exits 0 (1 returned). */
static int action(const tier_opts *t, int what)
{
    if (what == TIERD_ACTION_HELP)
        tier_opts_help(t, stdout);
    else if (what == TIERD_ACTION_MARKDOWN)
        tier_opts_markdown(t, stdout);
    else
        tier_crash_list(stdout, tierd_crash_points);
    return 1;
}

int tierd_config_load(tierd_config *c, int argc, char **argv)
{
    const tier_opts *t = tierd_options();
    const char *file = getenv("TIER_CONFIG");
    int what;

    memset(c, 0, sizeof(*c));
    if (tier_opts_defaults(t, c) != 0)
        return -1;
    /* First pass: only --config and the actions, so the file sits below
     * the environment and the flags. */
    tier_opts_load_flags(t, c, argc, argv, false, &what, &file);
    if (what != 0 && what != TIERD_ACTION_PRINT)
        return action(t, what);
    if (file != NULL && *file != '\0' && tier_opts_load_file(t, c, file) != 0)
        return -1;
    if (tier_opts_load_env(t, c) != 0 || tier_opts_load_flags(t, c, argc, argv, true, NULL, NULL))
        return -1;
    c->db_conns = c->threads + 4;
    if (what == TIERD_ACTION_PRINT) {
        /* Printed first: what is wrong with it is easier to see. */
        tier_opts_print(t, c, stdout);
        fflush(stdout);
        return check_access(c) == 0 && check_cluster(c) == 0 && check_redis(c) == 0 ? 1 : -1;
    }
    return check_access(c) == 0 && check_redis(c) == 0 ? check_cluster(c) : -1;
}
