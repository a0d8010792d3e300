/*
 * tier_kv.h -- Redis connections (hiredis 0.14): connect with a timeout,
 * run commands, and report a dead connection as UNAVAILABLE so the pool
 * reopens it.  Arguments always go through %b / argv: never concatenated.
 */
#ifndef TIER_KV_H
#define TIER_KV_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#include "tier_pool.h"

typedef struct {
    char host[256];
    int port;
    char password[256]; /* optional (TIER_REDIS_PASSWORD) */
    int db;             /* SELECTed on connect when not 0 (TIER_REDIS_DB) */
} tier_kv_config;

/* 127.0.0.1:6379 db 0 overridden by TIER_REDIS_HOST, TIER_REDIS_PORT,
 * TIER_REDIS_DB (a bad number is ignored: tools and tests only; tierd
 * parses its own strictly). */
void tier_kv_config_from_env(tier_kv_config *cfg);

typedef struct tier_kv tier_kv;

int tier_kv_open(tier_kv **out, const tier_kv_config *cfg, char *err, size_t errlen);
void tier_kv_close(tier_kv *kv);
redisContext *tier_kv_handle(tier_kv *kv);
int tier_kv_ping(tier_kv *kv, char *err, size_t errlen);

/* redisCommandArgv; NULL reply (dead connection) marks kv broken.  An error
 * reply is returned as is (type REDIS_REPLY_ERROR). */
redisReply *tier_kv_argv(tier_kv *kv, int argc, const char **argv, const size_t *lens);
bool tier_kv_broken(const tier_kv *kv);

/* Pipelining: append commands, then read their replies in order. */
int tier_kv_append(tier_kv *kv, int argc, const char **argv, const size_t *lens);
redisReply *tier_kv_read(tier_kv *kv);

tier_pool *tier_kv_pool_alloc(size_t size, const tier_kv_config *cfg);
void tier_kv_pool_put(tier_pool *p, tier_kv *kv);

#endif
