/*
 * tierd.h -- the coordinator: configuration, the shared dependencies, and
 * the modules that serve the API.
 *
 *   main.c      flags, signals, lifetime
 *   config.c    flags + environment + config file -> tierd_config
 *   server.c    connects Redis and MySQL, becomes the writer (writer.c),
 *               opens the rpc server, registers Health and every module's
 *               methods
 *   writer.c    the writer lease: standby until it is free, renewal, and
 *               stepping down (exit 3) when it is lost
 *   topology.c  cluster_config check, publishing this shard's owner, and
 *               the Topology method
 *   auth.c      bearer tokens, roles, and which role may call which method
 *   workers.c   worker heartbeats, ListWorkers, the "workers" Health probe
 *   metrics.c   every metric tierd exports (docs/METRICS.md)
 *   stats.c     the last hour's activity and GetStats (the dashboard)
 *   dashboard.c the dashboard's static files on the HTTP port
 *   tiering.c   seed 000: levels, contents, view reports, move jobs
 *   ranking.c   seed 003: comments, top contents, latest comments
 *
 * Handlers are thin: they validate, call storage / in-memory state, and
 * fill replies.  Storage code (store/) knows nothing of sockets; the rpc
 * layer (rpc/) nothing of tiers.
 */
#ifndef TIERD_H
#define TIERD_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "tier_db.h"
#include "tier_kv.h"
#include "tier_metrics.h"
#include "tier_options.h"
#include "tier_pool.h"
#include "tier_rpc.h"

#define TIERD_MAX_ROOTS 16

typedef struct {
    char config[1024]; /* the config file read (--config, TIER_CONFIG), or "" */
    char listen[256];  /* rpc url (TIER_LISTEN), default tcp://127.0.0.1:7400 */
    char push[256];    /* push0 url for move jobs (TIER_PUSH), default tcp://127.0.0.1:7401 */
    /* HTTP port: JSON gateway, /metrics, the dashboard and the seed's
     * endpoints (docs/HTTP.md); http_listen, "" (the default) = none. */
    char http_listen[256];
    tier_db_config db; /* TIER_MYSQL_* */
    tier_kv_config kv; /* TIER_REDIS_* */
    /* Key prefix of every job and writer key (TIER_REDIS_PREFIX, default
     * "tier:"): tests and side-by-side deployments on one Redis use their own. */
    char redis_prefix[64];
    unsigned threads;      /* rpc pool threads (TIER_THREADS), default 16 */
    unsigned contexts;     /* calls served at once, deferred writes included (TIER_CONTEXTS),
                              default 256 */
    unsigned watch_max;    /* WatchTop calls held at once (TIER_WATCH_MAX); 0 = contexts / 2 */
    unsigned db_conns;     /* MySQL connections, default threads + 4 */
    uint32_t lease_ms;     /* default job lease (TIER_LEASE_MS), default 30000 */
    int64_t retention_min; /* ranking retention in minutes (TIER_RETENTION_MIN), default 30 days */
    uint32_t hot_half_life_s; /* TopContents HOT half-life (TIER_HOT_HALF_LIFE_S), 6 h */
    /* ranking history compaction (rank/rank_compact.c): minute detail for the last
     * rank_detail_min minutes (TIER_RANK_DETAIL_MIN, 360; 0 = off), granules of
     * 4^rank_coarse_level minutes before (TIER_RANK_COARSE_LEVEL, 4) */
    int64_t rank_detail_min;
    unsigned rank_coarse_level;
    uint32_t done_retention_s; /* finished jobs stay listed (TIER_DONE_RETENTION_S), default 1 h */
    /* fsck (tierd/tiering_scrub.c) */
    uint32_t scrub_interval_s; /* background scrub period (TIER_SCRUB_INTERVAL_S), 3600; 0 off */
    uint32_t scrub_rate;    /* its directory entries + stats per second (TIER_SCRUB_RATE), 2000 */
    uint32_t writer_ttl_ms; /* writer lease (TIER_WRITER_TTL_MS), default 3000 */
    /* rpc caps (docs/LIMITS.md); 0 = the rpc layer's default */
    uint32_t rpc_idle_timeout_ms;    /* TIER_RPC_IDLE_TIMEOUT_MS, 10000 */
    unsigned rpc_max_conns;          /* TIER_RPC_MAX_CONNS, 512 */
    unsigned rpc_max_conns_per_addr; /* TIER_RPC_MAX_CONNS_PER_ADDR, 128 */
    unsigned rpc_dedupe_mb;          /* TIER_RPC_DEDUPE_MB, 64 */
    /* SetLevels accepts only level directories under one of these
     * (--storage-root, several allowed; TIER_STORAGE_ROOT, ':'-separated;
     * storage_root in the file).  None given: the parent directories of
     * the levels in MySQL at start-up (tiering.c). */
    char storage_roots[TIERD_MAX_ROOTS][1024];
    unsigned n_storage_roots;
    /* Access (auth.c, docs/SECURITY.md).  Exactly one of: a tokens file
     * (--auth-tokens, TIER_AUTH_TOKENS, auth_tokens), or no_auth
     * (--no-auth, TIER_NO_AUTH=1, no_auth = 1), which only loopback
     * addresses may use. */
    char auth_tokens[1024];
    bool no_auth;
    /* tls+tcp:// listen and push addresses: --tls-cert / --tls-key
     * (TIER_TLS_CERT, TIER_TLS_KEY, tls_cert, tls_key), PEM files. */
    char tls_cert[1024];
    char tls_key[1024];
    /* Tokens over plain tcp to a non-loopback address are refused unless
     * this is set (--insecure-plaintext, insecure_plaintext = 1). */
    bool insecure_plaintext;
    /* Several coordinators (docs/CLUSTER.md).  `shards` equal ranges of the
     * 1024 slots (common/tier_slot.h); this process serves shard `shard`
     * when it holds that shard's writer lease, and waits as its standby
     * otherwise.  shards = 1 is the single coordinator of before. */
    unsigned shards; /* TIER_SHARDS, --shards, 1 */
    unsigned shard;  /* TIER_SHARD, --shard, 0 */
    /* Who this process is and where others reach it, published in the
     * topology while it is a shard's writer: node (a host name; default
     * gethostname()), and the rpc, push and HTTP addresses as seen from
     * other hosts (default: listen, push, http_listen). */
    char node[64];
    char advertise[256];
    char advertise_push[256];
    char advertise_http[256];
    /* This host is the shard's home (--home): it takes the shard whenever
     * it is up, and a writer elsewhere hands it back (writer.c). */
    bool home;
    /* Calls to other shards' writers (peers.c): the bearer token they
     * accept (peer_token, TIER_PEER_TOKEN; a secret: file or environment
     * only; none with --no-auth) and the CA of their certificates for
     * tls+tcp:// (peer_tls_ca, TIER_PEER_TLS_CA; default: the system's). */
    char peer_token[257];
    char peer_tls_ca[1024];
    /* Derived: the key prefix of this shard's writer lease and job keys,
     * redis_prefix itself when shards = 1, else redis_prefix "s<K>:". */
    char shard_prefix[80];
} tierd_config;

/* Fills cfg from defaults, then the config file (--config FILE or
 * TIER_CONFIG: "key = value" lines, e.g. mysql_password = ...), then the
 * environment, then flags (options.c has them all; docs/CONFIG.md).
 * Returns 0, 1 when an action flag (--help, --print-config...) was done,
 * -1 on a bad value or flag (message printed). */
int tierd_config_load(tierd_config *cfg, int argc, char **argv);

/* Every option of tierd (options.c), and the action flags' codes. */
const tier_opts *tierd_options(void);
#define TIERD_ACTION_HELP 1
#define TIERD_ACTION_MARKDOWN 2
#define TIERD_ACTION_PRINT 3
#define TIERD_ACTION_CRASH_POINTS 4

/* The crash points of tierd (crash_points.c; see tier_crash.h). */
extern const char *const tierd_crash_points[];

/* The metric families of tierd (metrics.c); the rpc layer adds its own to
 * reg.  Every pointer may be NULL (a registration that failed): updating
 * NULL does nothing. */
typedef struct {
    tier_metrics *reg;
    tier_metric *jobs, *moves, *lease_expiries, *retries, *failures;
    tier_metric *batch_size, *batch_wait, *batch_flush;
    tier_metric *comments, *rank_bytes, *dep_up, *workers_alive;
    /* the planner of window policies (tiering_planner.c) */
    tier_metric *plan_backlog, *plan_throttled, *plan_waiting, *plan_started, *plan_held;
    tier_metric *level_bytes, *level_capacity;
    /* level migrations (tiering_migrate.c) */
    tier_metric *migrate_left, *migrate_started;
} tierd_metrics;
int tierd_metrics_open(tierd_metrics **out);
void tierd_metrics_close(tierd_metrics *m);
/* Sets tier_jobs{state} from counts[TIER_JOB_STATES]. */
void tierd_metrics_jobs(tierd_metrics *m, const uint64_t counts[]);

/* The last hour's activity in 10 s steps, for GetStats (stats.c). */
typedef struct tierd_stats tierd_stats;
enum { TIERD_STAT_REPORTS, TIERD_STAT_MOVES, TIERD_STAT_COMMENTS, TIERD_STAT_N };
#define TIERD_STATS_STEP_MS 10000
#define TIERD_STATS_STEPS 360
int tierd_stats_open(tierd_stats **out);
void tierd_stats_close(tierd_stats *s);
/* Counts n events of a series now; s may be NULL (does nothing). */
void tierd_stats_add(tierd_stats *s, int series, uint64_t n);

typedef struct tierd_peers tierd_peers;

/* What every module gets. */
typedef struct {
    const tierd_config *cfg; /* cfg->db.writer_token: the MySQL fence's token */
    tier_pool *db;           /* of tier_db * */
    tier_pool *kv;           /* of tier_kv * */
    char writer_token[24];   /* the same, decimal, for tier_jobs_set_token */
    tierd_metrics *metrics;
    tierd_stats *stats;
    tierd_peers *peers; /* the other shards' writers (peers.c); NULL with one shard */
} tierd_deps;

/* ---- several coordinators (shard.c, docs/CLUSTER.md) */

/* cid belongs to the shard this tierd serves (always, with one shard). */
bool tierd_shard_owns(const tierd_config *cfg, int64_t cid);
/* Refuses a call that names cid of another shard: FAILED_PRECONDITION
 * with a message naming its slot and shard, and the reply's moved_to set
 * to the shard owner's rpc URL (Redis Cluster's MOVED); returns the code. */
int tierd_shard_moved(tier_rpc_ctx *call, const tierd_deps *deps, int64_t cid);
/* The first cid > above that is ours; 0 when none fits an int64. */
int64_t tierd_shard_next_cid(const tierd_config *cfg, int64_t above);

/* ---- the other shards' writers (peers.c) */

int tierd_peers_open(tierd_peers **out, const tierd_deps *deps);
void tierd_peers_close(tierd_peers *p);
/* Sends req to every other shard's owner at once and waits for them all
 * (each up to timeout_ms): replies[K] for each K != cfg->shard, unpacked
 * with rd into call's arena (they live until call's reply is sent; NULL
 * for our own shard).  TIER_OK when every shard answered OK; else
 * UNAVAILABLE or DEADLINE_EXCEEDED with err naming the first shard that
 * did not.  Called from a handler of call only (the arena is the call's). */
int tierd_peers_fanout(tierd_peers *p, tier_rpc_ctx *call, const char *method,
                       const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd,
                       ProtobufCMessage **replies, uint32_t timeout_ms, char *err, size_t errlen);
/* tierd_peers_fanout again every 250 ms while a shard does not answer
 * (a takeover takes about the writer ttl), until call's deadline or 8 s:
 * a call that spans contents is answered whole or not at all. */
int tierd_peers_fanout_wait(tierd_peers *p, tier_rpc_ctx *call, const char *method,
                            const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd,
                            ProtobufCMessage **replies, char *err, size_t errlen);
/* The largest per-call timeout a fan-out of call may use: what is left of
 * its deadline, or fallback_ms when it has none. */
uint32_t tierd_peers_time_left(tier_rpc_ctx *call, uint32_t fallback_ms);
/* Shard's owner's rpc URL into buf ("" when it has none now). */
void tierd_peers_owner_url(tierd_peers *p, unsigned shard, char *buf, size_t len);

/* ---- the writer lease (writer.c; store/tier_writer.h says how it fences) */

/* Exit status of a tierd that is not (or no longer) the writer: a
 * supervisor restarts it, and it comes back as a standby. */
#define TIERD_EXIT_NOT_WRITER 3

typedef struct tierd_writer tierd_writer;

/* Waits as a standby until the lease of cfg's key prefix is free, takes it
 * and raises the MySQL fence.  CANCELLED when a signal of `stop` (may be
 * NULL) arrived meanwhile. */
int tierd_writer_acquire(tierd_writer **out, const tierd_config *cfg, const sigset_t *stop);
int64_t tierd_writer_token(const tierd_writer *w);
/* The writer handed its shard back to the shard's home host (--home):
 * main exits TIERD_EXIT_NOT_WRITER after stopping, so it restarts as a
 * standby. */
bool tierd_writer_handed_over(void);
/* Starts renewing every ttl/3; from then on, losing the lease exits the
 * process (TIERD_EXIT_NOT_WRITER), and so does any fenced script or commit. */
int tierd_writer_start(tierd_writer *w);
/* OK while the lease is surely ours; else logs and exits.  A gate in front
 * of every call: memory is answered from only while it can be trusted. */
int tierd_writer_gate(void *w, char *msg, size_t len);
/* Health probe: "token N". */
int tierd_writer_probe(void *w, char *msg, size_t len);
/* Stops renewing and deletes the lease if still ours (clean shutdown,
 * after everything that writes has stopped). */
void tierd_writer_release(tierd_writer *w);

/* ---- the cluster's topology (topology.c, docs/CLUSTER.md) */

/* cluster_config must say cfg->shards (written by the first tierd of the
 * database): TIER_OK, else logged and FAILED_PRECONDITION (or the MySQL
 * error).  After the writer lease, before loading. */
int tierd_topology_check_cluster(const tierd_config *cfg);

typedef struct tierd_topology tierd_topology;
/* Us as shard cfg->shard's owner: writer token, since (Unix ms); the
 * Topology handler reads the others through kv_pool. */
int tierd_topology_open(tierd_topology **out, const tierd_config *cfg, tier_pool *kv_pool,
                        int64_t token, int64_t since_ms);
int tierd_topology_register(tierd_topology *t, tier_rpc_server *srv);
/* Publishes now (once listening) and every second after. */
int tierd_topology_start(tierd_topology *t);
void tierd_topology_close(tierd_topology *t);

/* ---- access control (auth.c) */

#define TIERD_ROLE_ADMIN 1u
#define TIERD_ROLE_WORKER 2u
#define TIERD_ROLE_CLIENT 4u

typedef struct tierd_auth tierd_auth;

/* Reads the tokens file; a tier_status with the reason in err. */
int tierd_auth_open(tierd_auth **out, const char *path, char *err, size_t errlen);
/* Reads it again (SIGHUP); on error the old table stays in force. */
int tierd_auth_reload(tierd_auth *a, const char *path, char *err, size_t errlen);
size_t tierd_auth_count(tierd_auth *a);
void tierd_auth_close(tierd_auth *a);
/* The rpc server's auth hook (tier_rpc_auth_fn), arg a tierd_auth. */
int tierd_auth_check(void *arg, const char *method, const uint8_t *tok, size_t len,
                     tier_rpc_caller *who, char *msg, size_t msglen);
/* "admin,client" for a role set. */
const char *tierd_role_names(unsigned roles, char *buf, size_t len);

/* The HTTP port (http.c, docs/HTTP.md): /v1/<Method> as JSON and the
 * seed's /post_sentence and /update_sentence, all through srv's
 * in-process calls.  Open it after srv starts; more handlers may be added
 * to tierd_http_server(h) with tier_http_add before tierd_http_start; close
 * it before srv (it waits for the calls it started). */
typedef struct tierd_http tierd_http;
int tierd_http_open(tierd_http **out, const char *url, tier_rpc_server *srv,
                    const tier_rpc_tls *tls, char *err, size_t errlen);
struct tier_http_server *tierd_http_server(tierd_http *h);
int tierd_http_start(tierd_http *h);
void tierd_http_close(tierd_http *h);

typedef struct tierd tierd;

/* Connects to Redis and MySQL (a clear error naming the one unreachable,
 * and TIER_UNAVAILABLE), waits to be the writer (CANCELLED when a signal of
 * `stop` came first), loads the modules, starts serving. */
int tierd_open(tierd **out, const tierd_config *cfg, const sigset_t *stop);
/* SIGHUP: reads the tokens file again. */
void tierd_reload(tierd *d);
void tierd_close(tierd *d);

/* Modules.  Each opens with the shared deps, registers its methods on the
 * server, and is closed after the server stops. */
typedef struct tiering tiering;
int tiering_open(tiering **out, const tierd_deps *deps);
int tiering_register(tiering *t, tier_rpc_server *srv);
void tiering_close(tiering *t);

/* How many jobs wait for a worker (tiering.c); a tier_status. */
int tiering_jobs_waiting(void *tiering, uint64_t *n);
/* Jobs by state, counts[TIER_JOB_STATES] (store/tier_jobs.h). */
int tiering_jobs_counts(tiering *t, uint64_t counts[]);
/* One level for GetStats (tiering_sizes.c): contents counted in memory
 * now; bytes, files and missing from the last background size pass. */
typedef struct {
    const char *name, *path; /* valid until tiering_close */
    int64_t min_counts, max_counts;
    uint64_t contents, bytes, files, missing;
} tierd_level_stat;
/* The levels (at most max) by min_counts; *as_of_ms: when the size pass
 * ended (0: none yet). */
size_t tiering_level_stats(tiering *t, tierd_level_stat *out, size_t max, int64_t *as_of_ms);
/* The current policy's capacity of a level (0: none). */
int64_t tiering_level_capacity(tiering *t, const char *level);

/* Workers (workers.c): the last heartbeat of each, in memory. */
typedef int (*tierd_waiting_fn)(void *arg, uint64_t *n);
typedef struct workers workers;
/* waiting(arg) tells the Health probe how many jobs wait for a worker. */
int workers_open(workers **out, tierd_waiting_fn waiting, void *arg);
int workers_register(workers *ws, tier_rpc_server *srv);
unsigned workers_alive(workers *ws);
void workers_close(workers *ws);

typedef struct ranking ranking;
int ranking_open(ranking **out, const tierd_deps *deps);
int ranking_register(ranking *r, tier_rpc_server *srv);
size_t ranking_index_bytes(ranking *r);
/* Answers WatchTop's held calls UNAVAILABLE and takes no more: before the
 * rpc server (and the HTTP gateway that feeds it) close. */
void ranking_stop_watches(ranking *r);
void ranking_close(ranking *r);

/* GetStats (stats.c): levels, jobs by state, workers alive and the series. */
int tierd_stats_register(tierd_stats *s, tier_rpc_server *srv, tiering *t, workers *ws,
                         tierd_peers *peers);

/* The dashboard's files (dashboard.c): GET / and GET /ui/<file>. */
struct tier_http_server;
int tierd_dashboard_add(struct tier_http_server *h);

#endif
