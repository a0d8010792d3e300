/*
 * server.c -- puts tierd together: checks that Redis and MySQL answer,
 * becomes the writer (waiting as a standby while another tierd is: a
 * standby loads nothing and listens nowhere, so clients and workers only
 * ever reach the writer), opens the connection pools, opens the modules,
 * registers Health probes and every module's methods, and starts serving.
 */
#include "tierd.h"

#include <stdio.h>
#include <stdlib.h>

#include "tier_crash.h"
#include "tier_http.h"
#include "tier_jobs.h"
#include "tier_log.h"
#include "tier_time.h"

struct tierd {
    tierd_config cfg;
    tierd_deps deps;
    tier_rpc_server *srv;
    tierd_writer *writer;
    tiering *tiering;
    ranking *ranking;
    tierd_auth *auth; /* NULL with no_auth */
    workers *workers;
    tierd_metrics *metrics;
    tierd_stats *stats;
    tierd_http *http; /* NULL without http_listen */
    tierd_topology *topology;
};

static int probe_mysql(void *arg, char *msg, size_t len)
{
    tier_pool *pool = arg;
    tier_db *db = tier_pool_get(pool);
    int rv;

    if (db == NULL) {
        snprintf(msg, len, "cannot connect");
        return TIER_UNAVAILABLE;
    }
    rv = tier_db_ping(db, msg, len);
    tier_db_pool_put(pool, db);
    return rv;
}

static int probe_redis(void *arg, char *msg, size_t len)
{
    tier_pool *pool = arg;
    tier_kv *kv = tier_pool_get(pool);
    int rv;

    if (kv == NULL) {
        snprintf(msg, len, "cannot connect");
        return TIER_UNAVAILABLE;
    }
    rv = tier_kv_ping(kv, msg, len);
    tier_kv_pool_put(pool, kv);
    return rv;
}

/* Gauges only known by asking: set before every scrape. */
static void on_scrape(void *arg)
{
    tierd *d = arg;
    tierd_metrics *m = d->metrics;
    uint64_t counts[TIER_JOB_STATES];
    char msg[256];

    if (tiering_jobs_counts(d->tiering, counts) == TIER_OK)
        tierd_metrics_jobs(m, counts);
    tier_metric_set(m->dep_up, probe_redis(d->deps.kv, msg, sizeof(msg)) == TIER_OK, "redis");
    tier_metric_set(m->dep_up, probe_mysql(d->deps.db, msg, sizeof(msg)) == TIER_OK, "mysql");
    tier_metric_set(m->rank_bytes, (double)ranking_index_bytes(d->ranking));
    tier_metric_set(m->workers_alive, workers_alive(d->workers));
}

/* Connects once to each dependency so that a misconfigured or dead one
 * stops start-up with a message naming it. */
static int check_dependencies(const tierd_config *cfg)
{
    char err[512];
    tier_kv *kv;
    tier_db *db;
    int rv;

    if ((rv = tier_kv_open(&kv, &cfg->kv, err, sizeof(err))) != TIER_OK) {
        tier_error("cannot reach Redis: %s", err);
        return rv;
    }
    tier_kv_close(kv);
    if ((rv = tier_db_open(&db, &cfg->db, err, sizeof(err))) != TIER_OK) {
        tier_error("cannot reach MySQL: %s", err);
        return rv;
    }
    tier_db_close(db);
    return TIER_OK;
}

int tierd_open(tierd **out, const tierd_config *cfg, const sigset_t *stop)
{
    tierd *d = calloc(1, sizeof(*d));
    tier_rpc_server_opts opts = {.nthreads = cfg->threads,
                                 .ncontexts = cfg->contexts,
                                 .idle_timeout_ms = cfg->rpc_idle_timeout_ms,
                                 .max_conns = cfg->rpc_max_conns,
                                 .max_conns_per_addr = cfg->rpc_max_conns_per_addr,
                                 .dedupe_bytes = (size_t)cfg->rpc_dedupe_mb << 20,
                                 .tls = {.cert_file = cfg->tls_cert[0] ? cfg->tls_cert : NULL,
                                         .key_file = cfg->tls_key[0] ? cfg->tls_key : NULL}};
    char err[512];
    int rv;

    if (d == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    d->cfg = *cfg;
    /* Tokens first: a bad file should stop us before we wait to be the
     * writer, not after. */
    if (!cfg->no_auth &&
        (rv = tierd_auth_open(&d->auth, cfg->auth_tokens, err, sizeof(err))) != TIER_OK) {
        tier_error("%s", err);
        free(d);
        return rv;
    }
    if ((rv = check_dependencies(&d->cfg)) != TIER_OK) {
        tierd_close(d);
        return rv;
    }
    /* Before any state is read: what we load must be what the previous
     * writer left, and nothing it sends after this is accepted. */
    if ((rv = tierd_writer_acquire(&d->writer, &d->cfg, stop)) != TIER_OK ||
        (rv = tierd_writer_start(d->writer)) != TIER_OK) {
        tierd_close(d);
        return rv;
    }
    TIER_CRASH_AT("writer.after_acquire");
    int64_t since_ms = tier_now_ms();
    if ((rv = tierd_topology_check_cluster(&d->cfg)) != TIER_OK) {
        tierd_close(d);
        return rv;
    }
    /* Every pooled and ranking connection checks the fence with it. */
    d->cfg.db.writer_token = tierd_writer_token(d->writer);
    snprintf(d->deps.writer_token, sizeof(d->deps.writer_token), "%lld", d->cfg.db.writer_token);
    d->deps.cfg = &d->cfg;
    if ((rv = tierd_metrics_open(&d->metrics)) != TIER_OK ||
        (rv = tierd_stats_open(&d->stats)) != TIER_OK) {
        tierd_close(d);
        return rv;
    }
    d->deps.metrics = d->metrics;
    d->deps.stats = d->stats;
    if (d->cfg.shards > 1 && (rv = tierd_peers_open(&d->deps.peers, &d->deps)) != TIER_OK) {
        tierd_close(d);
        return rv;
    }
    d->deps.db = tier_db_pool_alloc(d->cfg.db_conns, &d->cfg.db);
    d->deps.kv = tier_kv_pool_alloc(d->cfg.threads + 4, &d->cfg.kv);
    if (d->deps.db == NULL || d->deps.kv == NULL) {
        tierd_close(d);
        return TIER_RESOURCE_EXHAUSTED;
    }
    if ((rv = tierd_topology_open(&d->topology, &d->cfg, d->deps.kv, d->cfg.db.writer_token,
                                  since_ms)) != TIER_OK ||
        (rv = tiering_open(&d->tiering, &d->deps)) != TIER_OK ||
        (rv = ranking_open(&d->ranking, &d->deps)) != TIER_OK ||
        (rv = workers_open(&d->workers, tiering_jobs_waiting, d->tiering)) != TIER_OK) {
        tier_error("cannot load state (%s)", tier_status_name(rv));
        tierd_close(d);
        return rv;
    }
    opts.metrics = d->metrics->reg;
    if ((rv = tier_rpc_server_open(&d->srv, d->cfg.listen, &opts)) != TIER_OK) {
        tier_error("cannot listen on %s", d->cfg.listen);
        tierd_close(d);
        return rv;
    }
    tier_metrics_on_scrape(d->metrics->reg, on_scrape, d);
    tier_rpc_server_add_health(d->srv, "redis", probe_redis, d->deps.kv);
    tier_rpc_server_add_health(d->srv, "mysql", probe_mysql, d->deps.db);
    tier_rpc_server_add_health(d->srv, "writer", tierd_writer_probe, d->writer);
    tier_rpc_server_set_gate(d->srv, tierd_writer_gate, d->writer);
    if (d->auth != NULL)
        tier_rpc_server_set_auth(d->srv, tierd_auth_check, d->auth);
    if ((rv = tiering_register(d->tiering, d->srv)) != TIER_OK ||
        (rv = ranking_register(d->ranking, d->srv)) != TIER_OK ||
        (rv = workers_register(d->workers, d->srv)) != TIER_OK ||
        (rv = tierd_stats_register(d->stats, d->srv, d->tiering, d->workers, d->deps.peers)) !=
            TIER_OK ||
        (rv = tierd_topology_register(d->topology, d->srv)) != TIER_OK ||
        (rv = tier_rpc_server_start(d->srv)) != TIER_OK ||
        (rv = tierd_topology_start(d->topology)) != TIER_OK) {
        tierd_close(d);
        return rv;
    }
    if (d->cfg.http_listen[0] != '\0') {
        /* /metrics needs no token, like Health: counts only (METRICS.md).
         * Nor do the dashboard's files: they hold no data, the page asks
         * /v1 for it with the user's token (DASHBOARD.md). */
        if ((rv = tierd_http_open(&d->http, d->cfg.http_listen, d->srv, &opts.tls, err,
                                  sizeof(err))) != TIER_OK ||
            (rv = tier_http_add_metrics(tierd_http_server(d->http), d->metrics->reg)) != TIER_OK ||
            (rv = tierd_dashboard_add(tierd_http_server(d->http))) != TIER_OK ||
            (rv = tierd_http_start(d->http)) != TIER_OK) {
            tier_error("http: %s", d->http != NULL ? "cannot listen" : err);
            tierd_close(d);
            return rv;
        }
        tier_info("http on %s", d->cfg.http_listen);
    }
    tier_info("serving on %s (redis %s:%d, mysql %s:%d/%s, writer token %lld)", d->cfg.listen,
              d->cfg.kv.host, d->cfg.kv.port, d->cfg.db.host, d->cfg.db.port, d->cfg.db.db,
              d->cfg.db.writer_token);
    if (d->auth != NULL)
        tier_info("access: %zu tokens from %s", tierd_auth_count(d->auth), d->cfg.auth_tokens);
    else
        tier_warn("access: --no-auth: every caller may call every method");
    *out = d;
    return TIER_OK;
}

void tierd_reload(tierd *d)
{
    char err[512];

    if (d->auth == NULL)
        return;
    if (tierd_auth_reload(d->auth, d->cfg.auth_tokens, err, sizeof(err)) == TIER_OK)
        tier_info("access: reloaded, %zu tokens from %s", tierd_auth_count(d->auth),
                  d->cfg.auth_tokens);
    else
        tier_error("access: %s (the previous tokens stay in force)", err);
}

void tierd_close(tierd *d)
{
    if (d == NULL)
        return;
    ranking_stop_watches(d->ranking); /* held calls would hold up the closes below */
    tierd_http_close(d->http);        /* first: it feeds the rpc server */
    tier_rpc_server_close(d->srv);    /* then: no handler runs after this */
    tierd_topology_close(d->topology);
    tiering_close(d->tiering);
    ranking_close(d->ranking);
    workers_close(d->workers);
    tierd_peers_close(d->deps.peers);
    tier_pool_free(d->deps.db);
    tier_pool_free(d->deps.kv);
    tierd_writer_release(d->writer); /* last: nothing writes any more */
    tierd_auth_close(d->auth);
    tierd_metrics_close(d->metrics);
    tierd_stats_close(d->stats);
    free(d);
}
