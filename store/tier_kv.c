/*
 * tier_kv.c -- see tier_kv.h.
 */
#include "tier_kv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "tier_log.h"
#include "tier_status.h"

struct tier_kv {
    redisContext *c;
    bool broken;
};

void tier_kv_config_from_env(tier_kv_config *cfg)
{
    const char *host = getenv("TIER_REDIS_HOST");
    const char *port = getenv("TIER_REDIS_PORT");
    const char *pw = getenv("TIER_REDIS_PASSWORD");
    const char *db = getenv("TIER_REDIS_DB");
    char *end;

    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->host, sizeof(cfg->host), "%s", host && *host ? host : "127.0.0.1");
    cfg->port = port ? atoi(port) : 6379;
    if (pw != NULL)
        snprintf(cfg->password, sizeof(cfg->password), "%s", pw);
    if (db != NULL && *db != '\0') {
        long n = strtol(db, &end, 10);
        if (*end == '\0' && n >= 0 && n <= 1023)
            cfg->db = (int)n;
    }
}

/* SELECT cfg->db: every key of this connection lands in that database, so
 * deployments (or tests) sharing a Redis server never see each other's. */
static int select_db(tier_kv *kv, const tier_kv_config *cfg, char *err, size_t errlen)
{
    char n[16];
    const char *argv[2] = {"SELECT", n};
    redisReply *r;
    int rv = TIER_OK;

    if (cfg->db == 0)
        return TIER_OK;
    snprintf(n, sizeof(n), "%d", cfg->db);
    if ((r = tier_kv_argv(kv, 2, argv, NULL)) == NULL) {
        snprintf(err, errlen, "Redis at %s:%d: SELECT %d: connection lost", cfg->host, cfg->port,
                 cfg->db);
        return TIER_UNAVAILABLE;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        /* ERR DB index is out of range: the server's "databases" is smaller. */
        snprintf(err, errlen, "Redis at %s:%d: SELECT %d: %s", cfg->host, cfg->port, cfg->db,
                 r->str);
        rv = TIER_INVALID_ARGUMENT;
    }
    freeReplyObject(r);
    return rv;
}

int tier_kv_open(tier_kv **out, const tier_kv_config *cfg, char *err, size_t errlen)
{
    struct timeval tv = {2, 0};
    tier_kv *kv = calloc(1, sizeof(*kv));

    if (kv == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    kv->c = redisConnectWithTimeout(cfg->host, cfg->port, tv);
    if (kv->c == NULL || kv->c->err) {
        snprintf(err, errlen, "Redis at %s:%d: %s", cfg->host, cfg->port,
                 kv->c ? kv->c->errstr : "out of memory");
        tier_kv_close(kv);
        return TIER_UNAVAILABLE;
    }
    tv.tv_sec = 10;
    redisSetTimeout(kv->c, tv);
    if (cfg->password[0] != '\0') {
        const char *argv[2] = {"AUTH", cfg->password};
        redisReply *r = tier_kv_argv(kv, 2, argv, NULL);
        bool ok = r != NULL && r->type != REDIS_REPLY_ERROR;
        if (r != NULL)
            freeReplyObject(r);
        if (!ok) {
            snprintf(err, errlen, "Redis at %s:%d: AUTH refused", cfg->host, cfg->port);
            tier_kv_close(kv);
            return TIER_PERMISSION_DENIED;
        }
    }
    int rv = select_db(kv, cfg, err, errlen);
    if (rv != TIER_OK) {
        tier_kv_close(kv);
        return rv;
    }
    *out = kv;
    return TIER_OK;
}

void tier_kv_close(tier_kv *kv)
{
    if (kv == NULL)
        return;
    if (kv->c != NULL)
        redisFree(kv->c);
    free(kv);
}

redisContext *tier_kv_handle(tier_kv *kv)
{
    return kv->c;
}

bool tier_kv_broken(const tier_kv *kv)
{
    return kv->broken;
}

redisReply *tier_kv_argv(tier_kv *kv, int argc, const char **argv, const size_t *lens)
{
    redisReply *r = redisCommandArgv(kv->c, argc, argv, lens);
    if (r == NULL) {
        kv->broken = true;
        tier_error("redis: %s", kv->c->errstr[0] ? kv->c->errstr : "connection lost");
    }
    return r;
}

int tier_kv_append(tier_kv *kv, int argc, const char **argv, const size_t *lens)
{
    if (redisAppendCommandArgv(kv->c, argc, argv, lens) != REDIS_OK) {
        kv->broken = true;
        return TIER_UNAVAILABLE;
    }
    return TIER_OK;
}

redisReply *tier_kv_read(tier_kv *kv)
{
    void *r = NULL;
    if (redisGetReply(kv->c, &r) != REDIS_OK || r == NULL) {
        kv->broken = true;
        tier_error("redis: %s", kv->c->errstr[0] ? kv->c->errstr : "connection lost");
        return NULL;
    }
    return r;
}

int tier_kv_ping(tier_kv *kv, char *err, size_t errlen)
{
    const char *argv[1] = {"PING"};
    redisReply *r = tier_kv_argv(kv, 1, argv, NULL);
    int rv = r != NULL && r->type != REDIS_REPLY_ERROR ? TIER_OK : TIER_UNAVAILABLE;

    if (rv != TIER_OK)
        snprintf(err, errlen, "%s", r ? r->str : kv->c->errstr);
    if (r != NULL)
        freeReplyObject(r);
    return rv;
}

static void *pool_open(void *arg)
{
    tier_kv *kv;
    char err[512];
    if (tier_kv_open(&kv, arg, err, sizeof(err)) != TIER_OK) {
        tier_error("%s", err);
        return NULL;
    }
    return kv;
}

static void pool_close(void *conn)
{
    tier_kv_close(conn);
}

tier_pool *tier_kv_pool_alloc(size_t size, const tier_kv_config *cfg)
{
    return tier_pool_alloc(size, pool_open, pool_close, (void *)cfg);
}

void tier_kv_pool_put(tier_pool *p, tier_kv *kv)
{
    if (kv != NULL && kv->broken) {
        tier_kv_close(kv);
        kv = NULL;
    }
    tier_pool_put(p, kv);
}
