/*
 * tier_kv.h -- Redis connections (hiredis 0.14): connect with a timeout,
 * run commands, and report a dead connection as UNAVAILABLE so the pool
 * reopens it.  Arguments always go through %b / argv: never concatenated.
 *
 * Sentinel: with `sentinels` set, every open asks the sentinels in turn
 * for the master of `master_name` (SENTINEL get-master-addr-by-name),
 * connects to the address the first one gives and checks with ROLE that
 * it is a master: a node just demoted (a sentinel that has not seen the
 * failover yet) is never used.  A connection that dies, answers
 * READONLY (we are talking to a replica now) or MASTERDOWN, or (with
 * sentinels) answers NOREPLICAS or a WAIT that timed out (this master may
 * be cut off while another is promoted), is marked broken, so the pool
 * reopens it and the master is looked up again.
 * Without sentinels, host:port is used as it always was.
 */
#ifndef TIER_KV_H
#define TIER_KV_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#include "tier_pool.h"

#define TIER_KV_MAX_SENTINELS 16

typedef struct {
    char host[256];
    int port;
    char password[256]; /* optional (TIER_REDIS_PASSWORD) */
    int db;             /* SELECTed on connect when not 0 (TIER_REDIS_DB) */
    /* Sentinel (all optional): "host:port,host:port,..." ("" = none: host
     * and port are the server), the master's name, and the durability of
     * job scripts: WAIT for wait_replicas replicas up to wait_ms after
     * each (tier_kv_wait; 0 replicas = no WAIT). */
    char sentinels[1024];
    char master_name[128];
    char sentinel_password[256]; /* AUTH for the sentinels (requirepass) */
    int wait_replicas;
    int wait_ms;
} tier_kv_config;

/* 127.0.0.1:6379 db 0 overridden by TIER_REDIS_HOST, TIER_REDIS_PORT,
 * TIER_REDIS_DB, TIER_REDIS_SENTINELS, TIER_REDIS_MASTER_NAME,
 * TIER_REDIS_SENTINEL_PASSWORD,
 * TIER_REDIS_WAIT_REPLICAS, TIER_REDIS_WAIT_MS (a bad number is ignored:
 * tools and tests only; tierd parses its own strictly). */
void tier_kv_config_from_env(tier_kv_config *cfg);

/* One host:port. */
typedef struct {
    char host[256];
    int port;
} tier_kv_addr;

/* Parses a sentinel list "host:port,host:port" ("[v6]:port" too) into
 * out[0..*n).  TIER_INVALID_ARGUMENT with a message naming the bad entry:
 * an empty entry, a host of other than [A-Za-z0-9.-_:%] or too long, a
 * port not in 1..65535, more than max entries. */
int tier_kv_sentinels_parse(const char *list, tier_kv_addr *out, size_t max, size_t *n, char *err,
                            size_t errlen);

/* Checks a host:port a peer (a sentinel) handed us: the same rules. */
int tier_kv_addr_check(const char *host, size_t hostlen, const char *port, size_t portlen,
                       tier_kv_addr *out);

typedef struct tier_kv tier_kv;

/* Connects to host:port, or with sentinels to the master they name (the
 * first sentinel, in list order, whose answer is a reachable master).
 * UNAVAILABLE when none is; INVALID_ARGUMENT for a bad sentinel list. */
int tier_kv_open(tier_kv **out, const tier_kv_config *cfg, char *err, size_t errlen);
void tier_kv_close(tier_kv *kv);
redisContext *tier_kv_handle(tier_kv *kv);
int tier_kv_ping(tier_kv *kv, char *err, size_t errlen);

/* redisCommandArgv; NULL reply (dead connection) marks kv broken.  An error
 * reply is returned as is (type REDIS_REPLY_ERROR). */
redisReply *tier_kv_argv(tier_kv *kv, int argc, const char **argv, const size_t *lens);
bool tier_kv_broken(const tier_kv *kv);
/* Where this connection is (the master found, or host:port). */
const tier_kv_addr *tier_kv_addr_of(const tier_kv *kv);

/* After a write that must survive a failover: WAIT wait_replicas wait_ms.
 * TIER_OK when no sentinels or no replicas are configured, or when enough
 * replicas acknowledged; UNAVAILABLE when fewer did in time (the write is
 * on the master but may be lost if it dies now: the caller's client
 * retries) or the connection failed. */
int tier_kv_wait(tier_kv *kv);

/* Pipelining: append commands, then read their replies in order. */
int tier_kv_append(tier_kv *kv, int argc, const char **argv, const size_t *lens);
redisReply *tier_kv_read(tier_kv *kv);

tier_pool *tier_kv_pool_alloc(size_t size, const tier_kv_config *cfg);
void tier_kv_pool_put(tier_pool *p, tier_kv *kv);

#endif
