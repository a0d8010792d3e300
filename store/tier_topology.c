/*
 * tier_topology.c -- see tier_topology.h.  Both scripts run with EVAL:
 * one publish a second per shard and a read per Topology call do not need
 * EVALSHA.  Keys are passed in KEYS, never built inside a script.
 */
#include "tier_topology.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier.pb-c.h"
#include "tier_log.h"
#include "tier_slot.h"
#include "tier_status.h"
#include "tier_wire.h"

/* KEYS[1] <shard prefix>writer, KEYS[2] <base>topology; ARGV[1] token,
 * ARGV[2] field, ARGV[3] packed ShardInfo. */
static const char PUBLISH[] = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
                              "redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])\n"
                              "return 1\n";

/* KEYS[1] <base>topology, KEYS[1 + 1 + K] shard K's writer key.  Returns
 * entry, writer value for each shard ("" for none). */
static const char READ[] = "local out = {}\n"
                           "for i = 2, #KEYS do\n"
                           "  out[#out + 1] = redis.call('HGET', KEYS[1], tostring(i - 2)) or ''\n"
                           "  out[#out + 1] = redis.call('GET', KEYS[i]) or ''\n"
                           "end\n"
                           "return out\n";

void tier_shard_prefix(char *buf, size_t len, const char *base, unsigned shard, unsigned shards)
{
    if (shards <= 1)
        snprintf(buf, len, "%s", base);
    else
        snprintf(buf, len, "%ss%u:", base, shard);
}

static bool fits(const char *s, size_t cap)
{
    return s != NULL && strnlen(s, cap) < cap;
}

/* Packs o into a malloc'ed ShardInfo; NULL when a string does not fit. */
static uint8_t *pack_owner(const tier_shard_owner *o, size_t *len)
{
    Tier__ShardInfo si = TIER__SHARD_INFO__INIT;
    uint8_t *buf;

    if (!fits(o->node, sizeof(o->node)) || !fits(o->rpc_url, sizeof(o->rpc_url)) ||
        !fits(o->push_url, sizeof(o->push_url)) || !fits(o->http_url, sizeof(o->http_url)))
        return NULL;
    si.shard = o->shard;
    si.node = (char *)o->node;
    si.rpc_url = (char *)o->rpc_url;
    si.push_url = (char *)o->push_url;
    si.http_url = (char *)o->http_url;
    si.token = o->token;
    si.since_ms = o->since_ms;
    *len = tier__shard_info__get_packed_size(&si);
    if (*len > TIER_TOPOLOGY_VALUE_MAX || (buf = malloc(*len + 1)) == NULL)
        return NULL;
    tier__shard_info__pack(&si, buf);
    return buf;
}

int tier_topology_publish(tier_kv *kv, const char *base, const char *shard_prefix,
                          const tier_shard_owner *o)
{
    char wkey[160], tkey[160], tok[24], field[16];
    size_t vlen;
    uint8_t *val;
    redisReply *r;
    int rv;

    if (o->shard >= TIER_SHARDS_MAX || (val = pack_owner(o, &vlen)) == NULL)
        return TIER_INVALID_ARGUMENT;
    snprintf(wkey, sizeof(wkey), "%swriter", shard_prefix);
    snprintf(tkey, sizeof(tkey), "%stopology", base);
    snprintf(tok, sizeof(tok), "%lld", (long long)o->token);
    snprintf(field, sizeof(field), "%u", o->shard);
    const char *argv[] = {"EVAL", PUBLISH, "2", wkey, tkey, tok, field, (const char *)val};
    size_t lens[] = {4,           strlen(PUBLISH), 1,   strlen(wkey), strlen(tkey),
                     strlen(tok), strlen(field),   vlen};
    r = tier_kv_argv(kv, 8, argv, lens);
    free(val);
    if (r == NULL)
        return TIER_UNAVAILABLE;
    if (r->type == REDIS_REPLY_INTEGER)
        rv = r->integer == 1 ? TIER_OK : TIER_ABORTED;
    else {
        tier_error("redis: topology publish: %s",
                   r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        rv = TIER_UNAVAILABLE;
    }
    freeReplyObject(r);
    return rv;
}

/* ------------------------------------------------------------------ read */

static void owner_empty(tier_shard_owner *o, unsigned shard)
{
    memset(o, 0, sizeof(*o));
    o->shard = shard;
}

/* A decimal int64 with nothing around it; false otherwise. */
static bool parse_i64(const char *s, size_t len, int64_t *out)
{
    char buf[24], *end;
    long long v;

    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    errno = 0;
    v = strtoll(buf, &end, 10);
    if (errno != 0 || *end != '\0' || buf[0] == ' ' || buf[0] == '+')
        return false;
    *out = v;
    return true;
}

/* Copies s into dst (cap bytes) when it fits; false otherwise. */
static bool copy_str(char *dst, size_t cap, const char *s)
{
    size_t n = s != NULL ? strnlen(s, cap) : 0;

    if (n >= cap)
        return false;
    memcpy(dst, s != NULL ? s : "", n);
    dst[n] = '\0';
    return true;
}

/* Unpacks a stored entry for shard; false when it is not a well-formed
 * ShardInfo of that shard with strings that fit. */
static bool decode_entry(const redisReply *v, unsigned shard, tier_shard_owner *o)
{
    const uint8_t *data = (const uint8_t *)v->str;
    Tier__ShardInfo *si;
    bool ok;

    if (v->type != REDIS_REPLY_STRING || v->len == 0 || v->len > TIER_TOPOLOGY_VALUE_MAX ||
        !tier_wire_strings_clean(&tier__shard_info__descriptor, data, v->len, NULL))
        return false;
    if ((si = tier__shard_info__unpack(NULL, v->len, data)) == NULL)
        return false;
    ok = si->shard == shard && copy_str(o->node, sizeof(o->node), si->node) &&
         copy_str(o->rpc_url, sizeof(o->rpc_url), si->rpc_url) &&
         copy_str(o->push_url, sizeof(o->push_url), si->push_url) &&
         copy_str(o->http_url, sizeof(o->http_url), si->http_url);
    o->token = si->token;
    o->since_ms = si->since_ms;
    tier__shard_info__free_unpacked(si, NULL);
    return ok;
}

/* One shard from the script's pair (entry, writer value). */
static void read_one(const redisReply *entry, const redisReply *writer, unsigned shard,
                     tier_shard_owner *o)
{
    int64_t holder;

    owner_empty(o, shard);
    if (!decode_entry(entry, shard, o)) {
        owner_empty(o, shard);
        return;
    }
    o->alive = writer->type == REDIS_REPLY_STRING && parse_i64(writer->str, writer->len, &holder) &&
               holder == o->token;
}

/* EVAL READ with KEYS = topology, then each shard's writer key. */
static redisReply *run_read(tier_kv *kv, const char *base, unsigned shards)
{
    enum { FIXED = 4 };
    const char *argv[FIXED + TIER_SHARDS_MAX];
    char keys[1 + TIER_SHARDS_MAX][160], nkeys[8], prefix[140];

    snprintf(keys[0], sizeof(keys[0]), "%stopology", base);
    for (unsigned k = 0; k < shards; k++) {
        tier_shard_prefix(prefix, sizeof(prefix), base, k, shards);
        snprintf(keys[1 + k], sizeof(keys[1 + k]), "%swriter", prefix);
    }
    snprintf(nkeys, sizeof(nkeys), "%u", shards + 1);
    argv[0] = "EVAL";
    argv[1] = READ;
    argv[2] = nkeys;
    for (unsigned i = 0; i <= shards; i++)
        argv[3 + i] = keys[i];
    return tier_kv_argv(kv, (int)(shards + FIXED), argv, NULL);
}

int tier_topology_read(tier_kv *kv, const char *base, unsigned shards, tier_shard_owner *out)
{
    redisReply *r;
    int rv = TIER_OK;

    if (shards == 0 || shards > TIER_SHARDS_MAX)
        return TIER_INVALID_ARGUMENT;
    if ((r = run_read(kv, base, shards)) == NULL)
        return TIER_UNAVAILABLE;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 * (size_t)shards) {
        tier_error("redis: topology read: %s",
                   r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        rv = TIER_UNAVAILABLE;
    } else {
        for (unsigned k = 0; k < shards; k++)
            read_one(r->element[2 * k], r->element[2 * k + 1], k, &out[k]);
    }
    freeReplyObject(r);
    return rv;
}

/* ------------------------------------------------------- cluster_config */

static const char SQL_INIT[] = "INSERT IGNORE INTO cluster_config (id, shards) VALUES (1, ?)";
static const char SQL_GET[] = "SELECT shards FROM cluster_config WHERE id = 1";

static int read_shards(tier_db *db, long long *v)
{
    MYSQL_BIND res[1];
    MYSQL_STMT *st;
    int rv;

    if ((rv = tier_db_run(db, SQL_GET, NULL, &st)) != TIER_OK)
        return rv;
    tier_db_bind_i64(&res[0], v);
    if (mysql_stmt_bind_result(st, res) != 0 || mysql_stmt_store_result(st) != 0)
        return tier_db_status(db, st, "cluster_config");
    rv = mysql_stmt_fetch(st);
    mysql_stmt_free_result(st);
    if (rv == MYSQL_NO_DATA)
        return TIER_INTERNAL; /* inserted just before: cannot be */
    return rv == 0 ? TIER_OK : tier_db_status(db, st, "cluster_config");
}

int tier_cluster_config_check(tier_db *db, unsigned shards, unsigned *stored)
{
    MYSQL_BIND p[1];
    long long n = shards, got = 0;
    MYSQL_STMT *st;
    int rv;

    tier_db_bind_i64(&p[0], &n);
    if ((rv = tier_db_run(db, SQL_INIT, p, &st)) != TIER_OK || (rv = read_shards(db, &got)) != 0)
        return rv;
    *stored = got < 0 || got > TIER_SHARDS_MAX ? 0 : (unsigned)got;
    return got == (long long)shards ? TIER_OK : TIER_FAILED_PRECONDITION;
}
