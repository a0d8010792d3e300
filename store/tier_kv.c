/*
 * tier_kv.c -- see tier_kv.h.  A sentinel's answer is a peer's: its host
 * and port are checked (length, characters, range) before they are used,
 * and every sentinel connection has connect and read timeouts.
 */
#include "tier_kv.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "tier_log.h"
#include "tier_status.h"

struct tier_kv {
    redisContext *c;
    bool broken;
    tier_kv_addr addr;
    int wait_replicas; /* 0: tier_kv_wait does nothing */
    int wait_ms;
};

/* Sentinel connections: short, since another sentinel can answer. */
#define SENTINEL_CONNECT_MS 1000
#define SENTINEL_READ_MS 1000

void tier_kv_config_from_env(tier_kv_config *cfg)
{
    const char *host = getenv("TIER_REDIS_HOST");
    const char *port = getenv("TIER_REDIS_PORT");
    const char *pw = getenv("TIER_REDIS_PASSWORD");
    const char *db = getenv("TIER_REDIS_DB");
    const char *sent = getenv("TIER_REDIS_SENTINELS");
    const char *name = getenv("TIER_REDIS_MASTER_NAME");
    const char *spw = getenv("TIER_REDIS_SENTINEL_PASSWORD");
    const char *wr = getenv("TIER_REDIS_WAIT_REPLICAS");
    const char *wms = getenv("TIER_REDIS_WAIT_MS");
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
    if (sent != NULL)
        snprintf(cfg->sentinels, sizeof(cfg->sentinels), "%s", sent);
    if (name != NULL)
        snprintf(cfg->master_name, sizeof(cfg->master_name), "%s", name);
    if (spw != NULL)
        snprintf(cfg->sentinel_password, sizeof(cfg->sentinel_password), "%s", spw);
    cfg->wait_replicas = 1;
    cfg->wait_ms = 1000;
    if (wr != NULL && *wr != '\0') {
        long n = strtol(wr, &end, 10);
        if (*end == '\0' && n >= 0 && n <= 64)
            cfg->wait_replicas = (int)n;
    }
    if (wms != NULL && *wms != '\0') {
        long n = strtol(wms, &end, 10);
        if (*end == '\0' && n >= 1 && n <= 600000)
            cfg->wait_ms = (int)n;
    }
}

/* ------------------------------------------------------------ addresses */

static bool host_char(int c)
{
    return isalnum(c) || c == '.' || c == '-' || c == '_' || c == ':' || c == '%';
}

int tier_kv_addr_check(const char *host, size_t hostlen, const char *port, size_t portlen,
                       tier_kv_addr *out)
{
    long p = 0;

    if (hostlen == 0 || hostlen >= sizeof(out->host) || portlen == 0 || portlen > 5)
        return TIER_INVALID_ARGUMENT;
    for (size_t i = 0; i < hostlen; i++)
        if (!host_char((unsigned char)host[i]))
            return TIER_INVALID_ARGUMENT;
    for (size_t i = 0; i < portlen; i++) {
        if (!isdigit((unsigned char)port[i]))
            return TIER_INVALID_ARGUMENT;
        p = p * 10 + (port[i] - '0');
    }
    if (p < 1 || p > 65535)
        return TIER_INVALID_ARGUMENT;
    memcpy(out->host, host, hostlen);
    out->host[hostlen] = '\0';
    out->port = (int)p;
    return TIER_OK;
}

int tier_kv_sentinels_parse(const char *list, tier_kv_addr *out, size_t max, size_t *n, char *err,
                            size_t errlen)
{
    const char *p = list;

    *n = 0;
    while (*p != '\0') {
        const char *end = strchr(p, ','), *colon, *h = p;
        size_t len = end ? (size_t)(end - p) : strlen(p), hl;

        /* "[v6]:port" or "host:port": the port follows the last colon. */
        colon = NULL;
        for (size_t i = 0; i < len; i++)
            if (p[i] == ':')
                colon = p + i;
        if (*n == max) {
            snprintf(err, errlen, "more than %zu sentinels", max);
            return TIER_INVALID_ARGUMENT;
        }
        hl = colon ? (size_t)(colon - p) : 0;
        if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
            h++, hl -= 2;
        if (colon == NULL || tier_kv_addr_check(h, hl, colon + 1, len - (size_t)(colon + 1 - p),
                                                &out[*n]) != TIER_OK) {
            snprintf(err, errlen, "sentinel \"%.*s\" is not HOST:PORT", (int)(len > 80 ? 80 : len),
                     p);
            return TIER_INVALID_ARGUMENT;
        }
        (*n)++;
        p += len;
        if (*p == ',' && *++p == '\0') {
            snprintf(err, errlen, "empty sentinel entry at the end of the list");
            return TIER_INVALID_ARGUMENT;
        }
    }
    return TIER_OK;
}

static struct timeval ms_tv(int ms)
{
    return (struct timeval){ms / 1000, (ms % 1000) * 1000};
}

/* SENTINEL get-master-addr-by-name on one sentinel (AUTH first when the
 * sentinels have a password). */
static int ask_sentinel(const tier_kv_addr *s, const char *name, const char *password,
                        tier_kv_addr *out, char *err, size_t errlen)
{
    const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", name};
    const char *auth[2] = {"AUTH", password};
    redisContext *c = redisConnectWithTimeout(s->host, s->port, ms_tv(SENTINEL_CONNECT_MS));
    redisReply *r;
    int rv = TIER_UNAVAILABLE;

    if (c == NULL || c->err) {
        snprintf(err, errlen, "sentinel %.255s:%d: %.127s", s->host, s->port,
                 c ? c->errstr : "out of memory");
        if (c != NULL)
            redisFree(c);
        return TIER_UNAVAILABLE;
    }
    redisSetTimeout(c, ms_tv(SENTINEL_READ_MS));
    if (password[0] != '\0') {
        r = redisCommandArgv(c, 2, auth, NULL);
        bool answered = r != NULL, ok = answered && r->type == REDIS_REPLY_STATUS;
        if (r != NULL)
            freeReplyObject(r);
        if (!ok) {
            snprintf(err, errlen, "sentinel %.255s:%d: AUTH %s", s->host, s->port,
                     answered ? "refused" : "unanswered");
            redisFree(c);
            return TIER_UNAVAILABLE;
        }
    }
    r = redisCommandArgv(c, 3, argv, NULL);
    if (r == NULL) {
        snprintf(err, errlen, "sentinel %.255s:%d: %.127s", s->host, s->port,
                 c->errstr[0] ? c->errstr : "no answer");
    } else if (r->type == REDIS_REPLY_NIL) {
        snprintf(err, errlen, "sentinel %.255s:%d: no master named \"%.127s\"", s->host, s->port,
                 name);
    } else if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "sentinel %.255s:%d: %.200s", s->host, s->port, r->str);
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
               r->element[0]->type != REDIS_REPLY_STRING ||
               r->element[1]->type != REDIS_REPLY_STRING ||
               tier_kv_addr_check(r->element[0]->str, r->element[0]->len, r->element[1]->str,
                                  r->element[1]->len, out) != TIER_OK) {
        snprintf(err, errlen, "sentinel %.255s:%d: not an address for master \"%.127s\"", s->host,
                 s->port, name);
    } else {
        rv = TIER_OK;
    }
    if (r != NULL)
        freeReplyObject(r);
    redisFree(c);
    return rv;
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
        snprintf(err, errlen, "Redis at %s:%d: SELECT %d: connection lost", kv->addr.host,
                 kv->addr.port, cfg->db);
        return TIER_UNAVAILABLE;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        /* ERR DB index is out of range: the server's "databases" is smaller. */
        snprintf(err, errlen, "Redis at %s:%d: SELECT %d: %s", kv->addr.host, kv->addr.port,
                 cfg->db, r->str);
        rv = TIER_INVALID_ARGUMENT;
    }
    freeReplyObject(r);
    return rv;
}

/* ROLE: the node a sentinel named must be a master now.  A replica (the
 * old master, demoted; or a sentinel that has not seen the failover yet)
 * is refused: writes there fail, reads are stale. */
static int check_master(tier_kv *kv, char *err, size_t errlen)
{
    const char *argv[1] = {"ROLE"};
    redisReply *r = tier_kv_argv(kv, 1, argv, NULL);
    int rv = TIER_UNAVAILABLE;

    if (r == NULL)
        snprintf(err, errlen, "Redis at %s:%d: ROLE: connection lost", kv->addr.host,
                 kv->addr.port);
    else if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
             (r->element[0]->type == REDIS_REPLY_STRING ||
              r->element[0]->type == REDIS_REPLY_STATUS) &&
             r->element[0]->len == 6 && memcmp(r->element[0]->str, "master", 6) == 0)
        rv = TIER_OK;
    else
        snprintf(err, errlen, "Redis at %s:%d is not a master (a failover under way?)",
                 kv->addr.host, kv->addr.port);
    if (r != NULL)
        freeReplyObject(r);
    return rv;
}

/* Connects to addr: AUTH, ROLE when found through sentinels, SELECT. */
static int connect_to(tier_kv **out, const tier_kv_addr *addr, const tier_kv_config *cfg,
                      bool sentinel, char *err, size_t errlen)
{
    struct timeval tv = {2, 0};
    tier_kv *kv = calloc(1, sizeof(*kv));
    int rv;

    if (kv == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    kv->addr = *addr;
    if (sentinel && cfg->wait_replicas > 0) {
        kv->wait_replicas = cfg->wait_replicas;
        kv->wait_ms = cfg->wait_ms > 0 ? cfg->wait_ms : 1000;
    }
    kv->c = redisConnectWithTimeout(addr->host, addr->port, tv);
    if (kv->c == NULL || kv->c->err) {
        snprintf(err, errlen, "Redis at %s:%d: %s", addr->host, addr->port,
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
            snprintf(err, errlen, "Redis at %s:%d: AUTH refused", addr->host, addr->port);
            tier_kv_close(kv);
            return TIER_PERMISSION_DENIED;
        }
    }
    if ((sentinel && (rv = check_master(kv, err, errlen)) != TIER_OK) ||
        (rv = select_db(kv, cfg, err, errlen)) != TIER_OK) {
        tier_kv_close(kv);
        return rv;
    }
    *out = kv;
    return TIER_OK;
}

int tier_kv_open(tier_kv **out, const tier_kv_config *cfg, char *err, size_t errlen)
{
    tier_kv_addr s[TIER_KV_MAX_SENTINELS], m;
    size_t n;
    int rv;

    if (cfg->sentinels[0] == '\0') {
        snprintf(m.host, sizeof(m.host), "%s", cfg->host);
        m.port = cfg->port;
        return connect_to(out, &m, cfg, false, err, errlen);
    }
    if ((rv = tier_kv_sentinels_parse(cfg->sentinels, s, TIER_KV_MAX_SENTINELS, &n, err, errlen)) !=
        TIER_OK)
        return rv;
    if (n == 0 || cfg->master_name[0] == '\0') {
        snprintf(err, errlen, "Redis sentinels need a master name");
        return TIER_INVALID_ARGUMENT;
    }
    /* In turn: the first sentinel that names a master we can reach and
     * that says it is one.  A sentinel that is down, or behind a
     * failover, costs its timeouts and nothing else.  An address that
     * failed already in this round is not tried again (during a failover
     * every sentinel names the dead master for a while).  The details go
     * to the debug log; the caller logs err. */
    tier_kv_addr failed[TIER_KV_MAX_SENTINELS];
    size_t nfailed = 0;
    for (size_t i = 0; i < n; i++) {
        char why[1024];
        bool seen = false;
        if (ask_sentinel(&s[i], cfg->master_name, cfg->sentinel_password, &m, why, sizeof(why)) !=
            TIER_OK) {
            tier_debug("redis: %s", why);
            snprintf(err, errlen, "%s", why);
            continue;
        }
        for (size_t k = 0; k < nfailed && !seen; k++)
            seen = failed[k].port == m.port && strcmp(failed[k].host, m.host) == 0;
        if (seen)
            continue;
        rv = connect_to(out, &m, cfg, true, why, sizeof(why));
        if (rv == TIER_OK)
            return TIER_OK;
        tier_debug("redis: master \"%s\" from sentinel %s:%d: %s", cfg->master_name, s[i].host,
                   s[i].port, why);
        snprintf(err, errlen, "master \"%.127s\" from sentinel %.255s:%d: %.600s", cfg->master_name,
                 s[i].host, s[i].port, why);
        if (rv == TIER_PERMISSION_DENIED || rv == TIER_INVALID_ARGUMENT)
            return rv;
        failed[nfailed++] = m;
    }
    return TIER_UNAVAILABLE;
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

const tier_kv_addr *tier_kv_addr_of(const tier_kv *kv)
{
    return &kv->addr;
}

/* An error that says this node is no master (any more): READONLY from a
 * replica (also inside a script's error), MASTERDOWN from a replica that
 * lost its master, and (with sentinels) NOREPLICAS from a master cut off
 * from its replicas -- maybe on the losing side of a partition.  The
 * connection is dropped, so the next open asks the sentinels again. */
static void check_role_error(tier_kv *kv, const redisReply *r)
{
    if (r == NULL || r->type != REDIS_REPLY_ERROR || r->str == NULL)
        return;
    if (strstr(r->str, "READONLY") != NULL || strncmp(r->str, "MASTERDOWN", 10) == 0 ||
        (kv->wait_replicas > 0 && strstr(r->str, "NOREPLICAS") != NULL)) {
        if (!kv->broken)
            tier_warn("redis at %s:%d: %.120s: reconnecting", kv->addr.host, kv->addr.port, r->str);
        kv->broken = true;
    }
}

redisReply *tier_kv_argv(tier_kv *kv, int argc, const char **argv, const size_t *lens)
{
    redisReply *r = redisCommandArgv(kv->c, argc, argv, lens);
    if (r == NULL) {
        kv->broken = true;
        tier_error("redis: %s", kv->c->errstr[0] ? kv->c->errstr : "connection lost");
    }
    check_role_error(kv, r);
    return r;
}

int tier_kv_wait(tier_kv *kv)
{
    char n[16], ms[16];
    const char *argv[3] = {"WAIT", n, ms};
    redisReply *r;
    int rv = TIER_UNAVAILABLE;

    if (kv->wait_replicas <= 0)
        return TIER_OK;
    snprintf(n, sizeof(n), "%d", kv->wait_replicas);
    snprintf(ms, sizeof(ms), "%d", kv->wait_ms);
    if ((r = tier_kv_argv(kv, 3, argv, NULL)) == NULL)
        return TIER_UNAVAILABLE;
    if (r->type == REDIS_REPLY_INTEGER && r->integer >= kv->wait_replicas) {
        rv = TIER_OK;
    } else if (r->type == REDIS_REPLY_INTEGER) {
        /* Replicas down, or this master cut off from them while the
         * sentinels promote one on the other side: the next open asks
         * the sentinels again (and gets this master back if it still is). */
        tier_warn("redis at %s:%d: WAIT: %lld of %d replicas in %d ms: the write may not "
                  "survive a failover; reconnecting",
                  kv->addr.host, kv->addr.port, (long long)r->integer, kv->wait_replicas,
                  kv->wait_ms);
        kv->broken = true;
    } else {
        /* "ERR WAIT cannot be used with replica instances": not a master. */
        tier_warn("redis at %s:%d: WAIT: %.120s", kv->addr.host, kv->addr.port,
                  r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        kv->broken = true;
    }
    freeReplyObject(r);
    return rv;
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
    check_role_error(kv, r);
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
