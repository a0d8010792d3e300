/*
 * options.c -- every option of tierd, once: its config file key,
 * environment variable, flag, type, bounds, default and help line, and
 * where it lands in tierd_config.  config.c feeds this table to the common
 * parser (common/tier_options.h); --help, --help-markdown (docs/CONFIG.md)
 * and --print-config are generated from it.
 *
 * Bounds are what a working tierd can use, not what fits the field: a
 * value outside them is a typo or an attack on a config file, refused at
 * start with the range.  Secrets (passwords) have no flag.
 */
#include "tierd.h"

#include <stddef.h>

#define F(m) offsetof(tierd_config, m), sizeof(((tierd_config *)0)->m)

/* Either one replaces the other from a lower source (file < env <
 * flags); both in one source is refused (tier_opt.excludes). */
static void tokens_set(void *cfg)
{
    ((tierd_config *)cfg)->no_auth = false;
}

static void no_auth_set(void *cfg)
{
    tierd_config *c = cfg;
    if (c->no_auth)
        c->auth_tokens[0] = '\0';
}

static const tier_opt opts[] = {
    {.key = NULL,
     .env = "TIER_CONFIG",
     .flag = "config",
     .type = TIER_OPT_PATH,
     F(config),
     .arg = "FILE",
     .help = "config file: key = value lines, no section or [tierd]"},
    {"listen", "TIER_LISTEN", "listen", TIER_OPT_URL, F(listen), .def = "tcp://127.0.0.1:7400",
     .arg = "URL", .help = "rpc address (tcp://, tls+tcp://, ipc://)"},
    {"push", "TIER_PUSH", "push", TIER_OPT_URL, F(push), .def = "tcp://127.0.0.1:7401",
     .arg = "URL", .help = "move-job push address"},
    {"http_listen", "TIER_HTTP_LISTEN", "http", TIER_OPT_STRING, F(http_listen), .def = "",
     .arg = "URL",
     .help = "HTTP port: JSON gateway, /metrics, dashboard, e.g. http://127.0.0.1:7480 "
             "(docs/HTTP.md); empty = none"},
    {"threads", "TIER_THREADS", "threads", TIER_OPT_INT, F(threads), .min = 1, .max = 1024,
     .def = "16", .arg = "N", .help = "rpc worker threads"},
    {"contexts", "TIER_CONTEXTS", "contexts", TIER_OPT_INT, F(contexts), .min = 1, .max = 65536,
     .def = "256", .arg = "N", .help = "calls served at once"},
    {"watch_max", "TIER_WATCH_MAX", "watch-max", TIER_OPT_INT, F(watch_max), .min = 0, .max = 65536,
     .def = "0", .arg = "N",
     .help = "WatchTop calls held at once, each holding one of the contexts; 0 = contexts / 2"},
    {"lease_ms", "TIER_LEASE_MS", "lease-ms", TIER_OPT_MS, F(lease_ms), .min = 200, .max = 3600000,
     .def = "30000", .arg = "MS", .help = "move-job lease when a worker asks none"},
    {"writer_ttl_ms", "TIER_WRITER_TTL_MS", "writer-ttl-ms", TIER_OPT_MS, F(writer_ttl_ms),
     .min = 100, .max = 600000, .def = "3000", .arg = "MS",
     .help = "writer lease: a standby takes over about this long after the writer dies"},
    {"retention_min", "TIER_RETENTION_MIN", "retention-min", TIER_OPT_MIN, F(retention_min),
     .min = 1, .max = 5256000, .def = "43200", .arg = "N", .help = "ranking retention"},
    {"hot_half_life_s", "TIER_HOT_HALF_LIFE_S", "hot-half-life-s", TIER_OPT_S, F(hot_half_life_s),
     .min = 60, .max = 315360000, .def = "21600", .arg = "N",
     .help = "half-life of TopContents' HOT order (lowered to retention_min * 60 / 64 when "
             "above it, 60 at least)"},
    {"rank_detail_min", "TIER_RANK_DETAIL_MIN", "rank-detail-min", TIER_OPT_MIN, F(rank_detail_min),
     .min = 0, .max = 5256000, .def = "360", .arg = "N",
     .help = "ranking keeps minute detail this long, granules before (0: always minutes; "
             "docs/RANKING_MEMORY.md)"},
    {"rank_coarse_level", "TIER_RANK_COARSE_LEVEL", "rank-coarse-level", TIER_OPT_INT,
     F(rank_coarse_level), .min = 1, .max = 12, .def = "4", .arg = "L",
     .help = "ranking granule before the detail horizon: 4^L minutes"},
    {"done_retention_s", "TIER_DONE_RETENTION_S", "done-retention-s", TIER_OPT_S,
     F(done_retention_s), .min = 0, .max = 31536000, .def = "3600", .arg = "N",
     .help = "finished move jobs stay listed (0: not kept)"},
    {"scrub_interval_s", "TIER_SCRUB_INTERVAL_S", "scrub-interval-s", TIER_OPT_S,
     F(scrub_interval_s), .min = 0, .max = 2592000, .def = "3600", .arg = "N",
     .help = "background fsck period (0: off)"},
    {"scrub_rate", "TIER_SCRUB_RATE", "scrub-rate", TIER_OPT_INT, F(scrub_rate), .min = 0,
     .max = 10000000, .def = "2000", .arg = "N",
     .help = "background fsck: directory entries + stats a second (0: no limit)"},
    {"storage_root", "TIER_STORAGE_ROOT", "storage-root", TIER_OPT_LIST, F(storage_roots[0]),
     .off2 = offsetof(tierd_config, n_storage_roots), .max = TIERD_MAX_ROOTS, .arg = "DIR",
     .help = "SetLevels accepts level directories only under these (flag and file key "
             "repeat; none: the parents of the current levels)"},
    {"redis", NULL, "redis", TIER_OPT_HOSTPORT, F(kv.host), .off2 = offsetof(tierd_config, kv.port),
     .arg = "HOST:PORT", .flags = TIER_OPT_ALIAS, .help = "Redis: sets redis_host and redis_port"},
    {"redis_host", "TIER_REDIS_HOST", "redis-host", TIER_OPT_STRING, F(kv.host), .def = "127.0.0.1",
     .arg = "HOST", .help = "Redis host"},
    {"redis_port", "TIER_REDIS_PORT", "redis-port", TIER_OPT_INT, F(kv.port), .min = 1,
     .max = 65535, .def = "6379", .arg = "PORT", .help = "Redis port"},
    {"redis_db", "TIER_REDIS_DB", "redis-db", TIER_OPT_INT, F(kv.db), .min = 0, .max = 1023,
     .def = "0", .arg = "N",
     .help = "Redis database number every connection SELECTs (below the server's databases)"},
    {"redis_prefix", "TIER_REDIS_PREFIX", "redis-prefix", TIER_OPT_STRING, F(redis_prefix),
     .def = "tier:", .arg = "PREFIX",
     .help = "key prefix of every job and writer key: tierds sharing one elect one writer"},
    {"redis_password", "TIER_REDIS_PASSWORD", NULL, TIER_OPT_STRING, F(kv.password),
     .flags = TIER_OPT_SECRET, .help = "Redis AUTH password"},
    {"redis_sentinels", "TIER_REDIS_SENTINELS", "redis-sentinels", TIER_OPT_STRING, F(kv.sentinels),
     .def = "", .arg = "HOST:PORT,...",
     .help = "find the Redis master through these sentinels (redis_host/port unused; "
             "docs/CLUSTER.md); empty = none"},
    {"redis_master_name", "TIER_REDIS_MASTER_NAME", "redis-master-name", TIER_OPT_STRING,
     F(kv.master_name), .def = "", .arg = "NAME",
     .help = "the master's name in the sentinels' configuration (with redis_sentinels)"},
    {"redis_sentinel_password", "TIER_REDIS_SENTINEL_PASSWORD", NULL, TIER_OPT_STRING,
     F(kv.sentinel_password), .flags = TIER_OPT_SECRET,
     .help = "AUTH password of the sentinels (their requirepass), when they have one"},
    {"redis_wait_replicas", "TIER_REDIS_WAIT_REPLICAS", "redis-wait-replicas", TIER_OPT_INT,
     F(kv.wait_replicas), .min = 0, .max = 64, .def = "1", .arg = "N",
     .help = "with sentinels: every job script waits (WAIT) for N replicas, or the call is "
             "UNAVAILABLE (0: no WAIT)"},
    {"redis_wait_ms", "TIER_REDIS_WAIT_MS", "redis-wait-ms", TIER_OPT_MS, F(kv.wait_ms), .min = 1,
     .max = 600000, .def = "1000", .arg = "MS", .help = "how long that WAIT waits"},
    {"mysql", NULL, "mysql", TIER_OPT_HOSTPORT, F(db.host), .off2 = offsetof(tierd_config, db.port),
     .arg = "HOST:PORT", .flags = TIER_OPT_ALIAS,
     .help = "MariaDB: sets mysql_host and mysql_port"},
    {"mysql_host", "TIER_MYSQL_HOST", "mysql-host", TIER_OPT_STRING, F(db.host), .def = "127.0.0.1",
     .arg = "HOST", .help = "MariaDB host"},
    {"mysql_port", "TIER_MYSQL_PORT", "mysql-port", TIER_OPT_INT, F(db.port), .min = 1,
     .max = 65535, .def = "3306", .arg = "PORT", .help = "MariaDB port"},
    {"mysql_user", "TIER_MYSQL_USER", "mysql-user", TIER_OPT_STRING, F(db.user), .def = "tier",
     .arg = "USER", .help = "MariaDB user"},
    {"mysql_db", "TIER_MYSQL_DB", "mysql-db", TIER_OPT_STRING, F(db.db), .def = "tier",
     .arg = "NAME", .help = "MariaDB database"},
    {"mysql_password", "TIER_MYSQL_PASSWORD", NULL, TIER_OPT_STRING, F(db.password),
     .flags = TIER_OPT_SECRET, .help = "MariaDB password"},
    {"rpc_idle_timeout_ms", "TIER_RPC_IDLE_TIMEOUT_MS", "rpc-idle-timeout-ms", TIER_OPT_MS,
     F(rpc_idle_timeout_ms), .min = 100, .max = 86400000, .def = "10000", .arg = "MS",
     .help = "close connections with no request for this long"},
    {"rpc_max_conns", "TIER_RPC_MAX_CONNS", "rpc-max-conns", TIER_OPT_INT, F(rpc_max_conns),
     .min = 1, .max = 1000000, .def = "512", .arg = "N", .help = "rpc connections at once"},
    {"rpc_max_conns_per_addr", "TIER_RPC_MAX_CONNS_PER_ADDR", "rpc-max-conns-per-addr",
     TIER_OPT_INT, F(rpc_max_conns_per_addr), .min = 1, .max = 1000000, .def = "128", .arg = "N",
     .help = "rpc connections from one IP address"},
    {"rpc_dedupe_mb", "TIER_RPC_DEDUPE_MB", "rpc-dedupe-mb", TIER_OPT_MIB, F(rpc_dedupe_mb),
     .min = 1, .max = 65536, .def = "64", .arg = "N",
     .help = "replies kept to answer resends (docs/LIMITS.md)"},
    {"auth_tokens", "TIER_AUTH_TOKENS", "auth-tokens", TIER_OPT_PATH, F(auth_tokens), .arg = "FILE",
     .after = tokens_set,
     .help = "who may call what: one \"name roles hash\" line per token (docs/SECURITY.md); "
             "re-read on SIGHUP"},
    {"no_auth", "TIER_NO_AUTH", "no-auth", TIER_OPT_BOOL, F(no_auth), .def = "0",
     .excludes = "auth_tokens", .after = no_auth_set,
     .help = "no tokens: every caller may do everything; loopback or ipc:// addresses only"},
    {"tls_cert", "TIER_TLS_CERT", "tls-cert", TIER_OPT_PATH, F(tls_cert), .arg = "FILE",
     .help = "PEM certificate for tls+tcp:// addresses"},
    {"tls_key", "TIER_TLS_KEY", "tls-key", TIER_OPT_PATH, F(tls_key), .arg = "FILE",
     .help = "its private key, mode 600"},
    {"insecure_plaintext", "TIER_INSECURE_PLAINTEXT", "insecure-plaintext", TIER_OPT_BOOL,
     F(insecure_plaintext), .def = "0", .help = "allow tokens over plain tcp:// to other machines"},
    {"shards", "TIER_SHARDS", "shards", TIER_OPT_INT, F(shards), .min = 1, .max = 128, .def = "1",
     .arg = "N",
     .help = "several coordinators: the slots split into N shards, the same N everywhere "
             "(docs/CLUSTER.md)"},
    {"shard", "TIER_SHARD", "shard", TIER_OPT_INT, F(shard), .min = 0, .max = 127, .def = "0",
     .arg = "K", .help = "the shard this process serves (0 .. shards-1) or waits for as standby"},
    {"node", "TIER_NODE", "node", TIER_OPT_STRING, F(node), .def = "", .arg = "NAME",
     .help = "this host's name in the topology (default: the host name)"},
    {"home", "TIER_HOME", "home", TIER_OPT_BOOL, F(home), .def = "0",
     .help = "this host is the shard's home: a writer elsewhere hands the shard back to it"},
    {"peer_token", "TIER_PEER_TOKEN", NULL, TIER_OPT_STRING, F(peer_token),
     .flags = TIER_OPT_SECRET,
     .help = "bearer token this tierd sends other shards' writers (role admin: fsck spans shards)"},
    {"peer_tls_ca", "TIER_PEER_TLS_CA", "peer-tls-ca", TIER_OPT_PATH, F(peer_tls_ca), .arg = "FILE",
     .help = "CA of the other shards' certificates (tls+tcp://; default: the system's)"},
    {"advertise", "TIER_ADVERTISE", "advertise", TIER_OPT_STRING, F(advertise), .def = "",
     .arg = "URL", .help = "rpc address other hosts use (default: listen)"},
    {"advertise_push", "TIER_ADVERTISE_PUSH", "advertise-push", TIER_OPT_STRING, F(advertise_push),
     .def = "", .arg = "URL", .help = "push address workers on other hosts dial (default: push)"},
    {"advertise_http", "TIER_ADVERTISE_HTTP", "advertise-http", TIER_OPT_STRING, F(advertise_http),
     .def = "", .arg = "URL", .help = "HTTP address other hosts use (default: http)"},
    {.flag = "print-config",
     .type = TIER_OPT_ACTION,
     .min = TIERD_ACTION_PRINT,
     .help = "print the effective configuration (secrets masked) and exit"},
    {.flag = "crash-points",
     .type = TIER_OPT_ACTION,
     .min = TIERD_ACTION_CRASH_POINTS,
     .help = "list the crash points (TIER_CRASH=point[:n] arms one)"},
    {.flag = "help-markdown",
     .type = TIER_OPT_ACTION,
     .min = TIERD_ACTION_MARKDOWN,
     .help = "this list as docs/CONFIG.md's table"},
    {.flag = "help", .type = TIER_OPT_ACTION, .min = TIERD_ACTION_HELP, .help = "this list"},
};

static const tier_opts table = {
    .prog = "tierd",
    .section = "tierd",
    .usage = "tierd [options]",
    .about = "The tier coordinator: serves the tier API (tiering and ranking) over nng.",
    .epilog = "One writer: tierds sharing a MySQL database and a Redis key prefix (and\n"
              "database) elect one writer with a lease in Redis.  The others wait as hot\n"
              "standbys, without listening, and take over within about the ttl when the\n"
              "writer dies.  A tierd that loses the lease exits with status 3.\n"
              "\n"
              "Passwords: TIER_MYSQL_PASSWORD / TIER_REDIS_PASSWORD in the environment, or\n"
              "mysql_password / redis_password in the config file. Never on the command line.\n"
              "Logs go to stderr; TIER_LOG=debug|info|warn|error sets the level.\n",
    .opts = opts,
    .n = sizeof(opts) / sizeof(opts[0]),
};

const tier_opts *tierd_options(void)
{
    return &table;
}
