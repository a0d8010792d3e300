/*
 * test_topology.c -- store/tier_topology.h against a real Redis and
 * MariaDB: the topology hash is written only by a shard's current writer,
 * read back with its alive flag, survives hostile stored values, and the
 * cluster_config row pins the shard count.
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tier.pb-c.h"
#include "tier_testenv.h"
#include "tier_topology.h"
#include "tier_writer.h"

typedef struct {
    char base[64];
    tier_kv *kv;
    redisContext *rd;
} fx;

static int seq;

static void setup(fx *f)
{
    tier_kv_config kc;
    char err[512], host[64];
    int port;

    memset(f, 0, sizeof(*f));
    snprintf(f->base, sizeof(f->base), "tier_t_topo_%d_%d:", (int)getpid(), ++seq);
    tier_kv_config_from_env(&kc);
    cr_assert_eq(tier_kv_open(&f->kv, &kc, err, sizeof(err)), TIER_OK, "%s", err);
    tier_test_redis_env(host, sizeof(host), &port);
    f->rd = redisConnect(host, port);
    cr_assert(f->rd != NULL && f->rd->err == 0);
}

static void cmd(fx *f, const char *fmt, const char *a, const void *b, size_t blen)
{
    redisReply *r = redisCommand(f->rd, fmt, a, b, blen);
    cr_assert(r != NULL && r->type != REDIS_REPLY_ERROR, "%s", r ? r->str : "no reply");
    freeReplyObject(r);
}

static void teardown(fx *f)
{
    redisReply *r = redisCommand(f->rd, "EVAL %s 0 %s",
                                 "for _, k in ipairs(redis.call('KEYS', ARGV[1] .. '*')) do "
                                 "redis.call('DEL', k) end return 0",
                                 f->base);
    freeReplyObject(r);
    redisFree(f->rd);
    tier_kv_close(f->kv);
}

/* Takes shard's writer lease; returns the token. */
static int64_t lease(fx *f, unsigned shard, unsigned shards)
{
    char prefix[128];
    int64_t tok;

    tier_shard_prefix(prefix, sizeof(prefix), f->base, shard, shards);
    cr_assert_eq(tier_writer_acquire(f->kv, prefix, 60000, 0, &tok), TIER_WRITER_HELD);
    return tok;
}

static tier_shard_owner owner(unsigned shard, int64_t token, const char *url)
{
    tier_shard_owner o;

    memset(&o, 0, sizeof(o));
    o.shard = shard;
    o.token = token;
    o.since_ms = 1700000000000 + shard;
    snprintf(o.node, sizeof(o.node), "host%u", shard);
    snprintf(o.rpc_url, sizeof(o.rpc_url), "%s", url);
    snprintf(o.push_url, sizeof(o.push_url), "tcp://127.0.0.1:%u", 7500 + shard);
    return o;
}

static int publish(fx *f, unsigned shards, const tier_shard_owner *o)
{
    char prefix[128];

    tier_shard_prefix(prefix, sizeof(prefix), f->base, o->shard, shards);
    return tier_topology_publish(f->kv, f->base, prefix, o);
}

Test(topology, shard_prefix)
{
    char buf[64];

    tier_shard_prefix(buf, sizeof(buf), "tier:", 0, 1);
    cr_assert_str_eq(buf, "tier:");
    tier_shard_prefix(buf, sizeof(buf), "tier:", 2, 3);
    cr_assert_str_eq(buf, "tier:s2:");
}

Test(topology, publish_and_read)
{
    fx f;
    tier_shard_owner got[3];

    setup(&f);
    int64_t t0 = lease(&f, 0, 3), t2 = lease(&f, 2, 3);
    tier_shard_owner a = owner(0, t0, "tcp://127.0.0.1:7400");
    tier_shard_owner c = owner(2, t2, "tcp://127.0.0.1:7402");
    cr_assert_eq(publish(&f, 3, &a), TIER_OK);
    cr_assert_eq(publish(&f, 3, &c), TIER_OK);
    cr_assert_eq(tier_topology_read(f.kv, f.base, 3, got), TIER_OK);
    cr_assert_str_eq(got[0].rpc_url, "tcp://127.0.0.1:7400");
    cr_assert_str_eq(got[0].node, "host0");
    cr_assert_str_eq(got[0].push_url, "tcp://127.0.0.1:7500");
    cr_assert_eq(got[0].token, t0);
    cr_assert_eq(got[0].since_ms, 1700000000000);
    cr_assert(got[0].alive);
    cr_assert_eq(got[1].shard, 1);
    cr_assert_str_eq(got[1].node, "", "no entry: no owner");
    cr_assert(!got[1].alive);
    cr_assert_str_eq(got[2].rpc_url, "tcp://127.0.0.1:7402");
    cr_assert(got[2].alive);
    teardown(&f);
}

Test(topology, stale_writer_refused)
{
    fx f;
    tier_shard_owner got[2];
    char prefix[128];

    setup(&f);
    int64_t old = lease(&f, 1, 2);
    tier_shard_owner o = owner(1, old, "tcp://old:1");
    cr_assert_eq(publish(&f, 2, &o), TIER_OK);
    /* The lease passes to a newer writer (the old one was deposed). */
    tier_shard_prefix(prefix, sizeof(prefix), f.base, 1, 2);
    cr_assert_eq(tier_writer_release(f.kv, prefix, old), TIER_OK);
    cr_assert_eq(tier_topology_read(f.kv, f.base, 2, got), TIER_OK);
    cr_assert_str_eq(got[1].rpc_url, "tcp://old:1");
    cr_assert(!got[1].alive, "its lease is gone: not alive");
    int64_t cur = lease(&f, 1, 2);
    tier_shard_owner n = owner(1, cur, "tcp://new:1");
    cr_assert_eq(publish(&f, 2, &n), TIER_OK);
    cr_assert_eq(publish(&f, 2, &o), TIER_ABORTED, "a deposed writer cannot overwrite it");
    o.token = 0;
    cr_assert_eq(publish(&f, 2, &o), TIER_ABORTED);
    cr_assert_eq(tier_topology_read(f.kv, f.base, 2, got), TIER_OK);
    cr_assert_str_eq(got[1].rpc_url, "tcp://new:1");
    cr_assert_eq(got[1].token, cur);
    cr_assert(got[1].alive);
    /* No lease at all: nobody may publish. */
    tier_shard_owner z = owner(0, 1, "tcp://z:1");
    cr_assert_eq(publish(&f, 2, &z), TIER_ABORTED);
    teardown(&f);
}

/* A ShardInfo with a string field of n bytes of c, packed. */
static uint8_t *packed_with(unsigned shard, size_t n, char c, size_t *len)
{
    Tier__ShardInfo si = TIER__SHARD_INFO__INIT;
    char *s = malloc(n + 1);
    uint8_t *buf;

    memset(s, c, n);
    s[n] = '\0';
    si.shard = shard;
    si.rpc_url = s;
    si.node = "n";
    *len = tier__shard_info__get_packed_size(&si);
    buf = malloc(*len);
    tier__shard_info__pack(&si, buf);
    free(s);
    return buf;
}

Test(topology, hostile_values)
{
    fx f;
    tier_shard_owner got[4];
    char key[128];
    size_t len;
    uint8_t *v;

    setup(&f);
    snprintf(key, sizeof(key), "%stopology", f.base);
    cmd(&f, "HSET %s 0 %b", key, "\x0a\xff\xff\xff\xff\x0f", 6); /* a length past the end */
    v = packed_with(1, 300, 'u', &len);                          /* a URL too long */
    cmd(&f, "HSET %s 1 %b", key, v, len);
    free(v);
    v = packed_with(1, 10, 'u', &len); /* shard 1's entry under field 2 */
    cmd(&f, "HSET %s 2 %b", key, v, len);
    free(v);
    v = malloc(1 << 20); /* 1 MiB */
    memset(v, 'x', 1 << 20);
    cmd(&f, "HSET %s 3 %b", key, v, 1 << 20);
    free(v);
    cr_assert_eq(tier_topology_read(f.kv, f.base, 4, got), TIER_OK);
    for (unsigned k = 0; k < 4; k++) {
        cr_assert_eq(got[k].shard, k);
        cr_assert_str_eq(got[k].node, "", "shard %u: unreadable entry ignored", k);
        cr_assert_str_eq(got[k].rpc_url, "");
        cr_assert(!got[k].alive);
    }
    /* A URL with a NUL inside is refused, not cut short. */
    Tier__ShardInfo si = TIER__SHARD_INFO__INIT;
    uint8_t buf[64];
    si.shard = 0;
    si.rpc_url = "tcp://a:1";
    len = tier__shard_info__pack(&si, buf);
    for (size_t i = 0; i < len; i++)
        if (buf[i] == ':') {
            buf[i] = '\0';
            break;
        }
    cmd(&f, "HSET %s 0 %b", key, buf, len);
    cr_assert_eq(tier_topology_read(f.kv, f.base, 4, got), TIER_OK);
    cr_assert_str_eq(got[0].rpc_url, "");
    /* A writer key that is not a number. */
    int64_t t = lease(&f, 0, 1);
    tier_shard_owner o = owner(0, t, "tcp://a:1");
    cr_assert_eq(tier_topology_publish(f.kv, f.base, f.base, &o), TIER_OK);
    snprintf(key, sizeof(key), "%swriter", f.base);
    char tok[32];
    snprintf(tok, sizeof(tok), "%lld junk", (long long)t);
    cmd(&f, "SET %s %b", key, tok, strlen(tok));
    cr_assert_eq(tier_topology_read(f.kv, f.base, 1, got), TIER_OK);
    cr_assert_str_eq(got[0].rpc_url, "tcp://a:1");
    cr_assert(!got[0].alive);
    cr_assert_eq(tier_topology_read(f.kv, f.base, 0, got), TIER_INVALID_ARGUMENT);
    cr_assert_eq(tier_topology_read(f.kv, f.base, 129, got), TIER_INVALID_ARGUMENT);
    teardown(&f);
}

Test(topology, oversized_owner_refused)
{
    fx f;

    setup(&f);
    int64_t t = lease(&f, 0, 1);
    tier_shard_owner o = owner(0, t, "tcp://a:1");
    memset(o.rpc_url, 'x', sizeof(o.rpc_url)); /* no terminator */
    cr_assert_eq(tier_topology_publish(f.kv, f.base, f.base, &o), TIER_INVALID_ARGUMENT);
    teardown(&f);
}

Test(topology, cluster_config)
{
    tier_test_mysql m;
    tier_db_config c;
    tier_db *db;
    char err[512];
    unsigned stored = 99;

    tier_test_mysql_env(&m);
    tier_test_db_create(&m, NULL);
    memset(&c, 0, sizeof(c));
    snprintf(c.host, sizeof(c.host), "%s", m.host);
    c.port = m.port;
    snprintf(c.user, sizeof(c.user), "%s", m.user);
    snprintf(c.password, sizeof(c.password), "%s", m.password);
    snprintf(c.db, sizeof(c.db), "%s", m.db);
    cr_assert_eq(tier_db_open(&db, &c, err, sizeof(err)), TIER_OK, "%s", err);
    cr_assert_eq(tier_cluster_config_check(db, 3, &stored), TIER_OK, "the first one records it");
    cr_assert_eq(tier_cluster_config_check(db, 3, &stored), TIER_OK);
    cr_assert_eq(tier_cluster_config_check(db, 4, &stored), TIER_FAILED_PRECONDITION);
    cr_assert_eq(stored, 3);
    tier_db_close(db);
    tier_test_db_drop(&m);
}
