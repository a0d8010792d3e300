/*
 * tierd.h -- the coordinator: configuration, the shared dependencies, and
 * the modules that serve the API.
 *
 *   main.c      flags, signals, lifetime
 *   config.c    flags + environment + config file -> tierd_config
 *   server.c    connects Redis and MySQL, opens the rpc server, registers
 *               Health and every module's methods
 *   tiering.c   seed 000: levels, contents, view reports, move jobs
 *   ranking.c   seed 003: comments, top contents, latest comments
 *
 * Handlers are thin: they validate, call storage / in-memory state, and
 * fill replies.  Storage code (store/) knows nothing of sockets; the rpc
 * layer (rpc/) nothing of tiers.
 */
#ifndef TIERD_H
#define TIERD_H

#include <stdint.h>

#include "tier_db.h"
#include "tier_kv.h"
#include "tier_pool.h"
#include "tier_rpc.h"

typedef struct {
    char listen[256];      /* rpc url (TIER_LISTEN), default tcp://127.0.0.1:7400 */
    char push[256];        /* push0 url for move jobs (TIER_PUSH), default tcp://127.0.0.1:7401 */
    tier_db_config db;     /* TIER_MYSQL_* */
    tier_kv_config kv;     /* TIER_REDIS_* */
    unsigned threads;      /* rpc pool threads (TIER_THREADS), default 16 */
    unsigned contexts;     /* calls served at once, deferred writes included (TIER_CONTEXTS),
                              default 256 */
    unsigned db_conns;     /* MySQL connections, default threads + 4 */
    uint32_t lease_ms;     /* default job lease (TIER_LEASE_MS), default 30000 */
    int64_t retention_min; /* ranking retention in minutes (TIER_RETENTION_MIN), default 30 days */
    uint32_t done_retention_s; /* finished jobs stay listed (TIER_DONE_RETENTION_S), default 1 h */
} tierd_config;

/* Fills cfg from defaults, then the config file (--config FILE or
 * TIER_CONFIG: "key = value" lines, e.g. mysql_password = ...), then the
 * environment, then flags.  Returns 0, 1 when --help was printed, -1 on a
 * bad flag (message printed). */
int tierd_config_load(tierd_config *cfg, int argc, char **argv);

/* The crash points of tierd (crash_points.c; see tier_crash.h). */
extern const char *const tierd_crash_points[];

/* What every module gets. */
typedef struct {
    const tierd_config *cfg;
    tier_pool *db; /* of tier_db * */
    tier_pool *kv; /* of tier_kv * */
} tierd_deps;

typedef struct tierd tierd;

/* Connects to Redis and MySQL (a clear error naming the one unreachable,
 * and TIER_UNAVAILABLE), loads the modules, starts serving. */
int tierd_open(tierd **out, const tierd_config *cfg);
void tierd_close(tierd *d);

/* Modules.  Each opens with the shared deps, registers its methods on the
 * server, and is closed after the server stops. */
typedef struct tiering tiering;
int tiering_open(tiering **out, const tierd_deps *deps);
int tiering_register(tiering *t, tier_rpc_server *srv);
void tiering_close(tiering *t);

typedef struct ranking ranking;
int ranking_open(ranking **out, const tierd_deps *deps);
int ranking_register(ranking *r, tier_rpc_server *srv);
void ranking_close(ranking *r);

#endif
