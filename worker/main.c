/*
 * main.c -- tier-worker: moves content files between level directories for
 * tierd (seed 000's worker).  The engine is tier_worker.c (its top comment
 * has the design); this file is the options (worker/options.c: flags,
 * environment, config file) and the signals.
 *
 *   tier-worker --tierd URL[,URL...] --pull URL[,URL...] [--lane RPC=PUSH]...
 *               [--cluster] [--mount DIR]... [--id NAME] [--moves N]
 *               [--lease-ms MS] [--dirs DIR,...] [--token-file F]
 *               [--tls-ca F] [--tls-server-name NAME] [--config FILE]
 *               [--print-config] [--crash-points]
 *
 * SIGINT / SIGTERM: a clean stop (tier_worker_stop), exit 0.  A second
 * signal exits at once (1); whatever was claimed comes back after its lease.
 *
 * Under systemd (packaging/systemd/tier-worker@.service, Type=notify):
 * READY=1 once it runs, STOPPING=1 on the first signal, watchdog pings
 * (common/tier_notify.h).
 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tier_crash.h"
#include "tier_http.h"
#include "tier_log.h"
#include "tier_notify.h"
#include "tier_status.h"
#include "tier_token.h"
#include "tier_worker.h"
#include "worker_options.h"

/* The action flags: done, and the worker exits 0 (1 returned). */
static int action(const tier_opts *t, int what)
{
    if (what == WORKER_ACTION_HELP)
        tier_opts_help(t, stdout);
    else if (what == WORKER_ACTION_MARKDOWN)
        tier_opts_markdown(t, stdout);
    else
        tier_crash_list(stdout, tier_worker_crash_points);
    return 1;
}

/* Fills o from defaults < config file < environment < flags
 * (worker/options.c).  0, 1 (an action was done) or -1 (message printed). */
static int load(int argc, char **argv, worker_opts *o)
{
    const tier_opts *t = worker_options();
    const char *file = getenv("TIER_WORKER_CONFIG");
    int what;

    memset(o, 0, sizeof(*o));
    if (tier_opts_defaults(t, o) != 0)
        return -1;
    tier_opts_load_flags(t, o, argc, argv, false, &what, &file);
    if (what != 0 && what != WORKER_ACTION_PRINT)
        return action(t, what);
    if (file != NULL && *file != '\0' && tier_opts_load_file(t, o, file) != 0)
        return -1;
    if (tier_opts_load_env(t, o) != 0 || tier_opts_load_flags(t, o, argc, argv, true, NULL, NULL))
        return -1;
    if (what == WORKER_ACTION_PRINT) {
        tier_opts_print(t, o, stdout);
        return 1;
    }
    return 0;
}

/* The --lane specs of o->lanes ("RPC=PUSH RPC=PUSH ...", split in place)
 * into lanes; 0, or -1 with the message printed. */
static int parse_lanes(char *specs, tier_worker_lane *lanes, size_t *n)
{
    char *save = NULL;

    *n = 0;
    for (char *sp = strtok_r(specs, " ", &save); sp != NULL; sp = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(sp, '=');
        if (eq == NULL || eq == sp || eq[1] == '\0' || strchr(eq + 1, '=') != NULL) {
            fprintf(stderr, "tier-worker: --lane %s: RPC_URL[,...]=PUSH_URL[,...]\n", sp);
            return -1;
        }
        if (*n >= TIER_WORKER_LANES_MAX - 1) {
            fprintf(stderr, "tier-worker: at most %d lanes\n", TIER_WORKER_LANES_MAX - 1);
            return -1;
        }
        *eq = '\0';
        lanes[*n].rpc_url = sp;
        lanes[(*n)++].push_url = eq + 1;
    }
    return 0;
}

/* Which coordinators (tier_worker_open says what is wrong in detail). */
static int check_coordinators(const worker_opts *o, size_t n_lanes)
{
    bool pair = o->tierd[0] != '\0' && o->pull[0] != '\0';

    if (o->cluster ? o->tierd[0] == '\0' : (!pair && n_lanes == 0)) {
        fprintf(stderr, "tier-worker: --tierd and --pull (or TIER_URL, TIER_PULL), --lane, or "
                        "--cluster with --tierd are required; see tier-worker --help\n");
        return -1;
    }
    return 0;
}

/* Fills cfg (pointing into o) from the options.  Returns 0, 1 (done:
 * --help, --crash-points, --print-config) or -1 (usage error). */
static int parse(int argc, char **argv, worker_opts *o, tier_worker_config *cfg)
{
    static char token[TIER_TOKEN_MAX + 1];
    static tier_worker_lane lanes[TIER_WORKER_LANES_MAX];
    static const char *mounts[TIER_WORKER_MOUNTS_MAX];
    size_t n_lanes = 0;
    char err[512];
    int rv = load(argc, argv, o);

    if (rv != 0)
        return rv;
    if (parse_lanes(o->lanes, lanes, &n_lanes) != 0 || check_coordinators(o, n_lanes) != 0)
        return -1;
    for (unsigned i = 0; i < o->n_mounts && i < TIER_WORKER_MOUNTS_MAX; i++)
        mounts[i] = o->mounts[i];
    /* The token file first, then TIER_TOKEN (tier_token_find). */
    if (tier_token_find(o->token_file[0] ? o->token_file : NULL, token, sizeof(token), err,
                        sizeof(err)) != TIER_OK) {
        fprintf(stderr, "tier-worker: %s\n", err);
        return -1;
    }
    cfg->tierd_url = o->tierd[0] ? o->tierd : NULL;
    cfg->pull_url = o->pull[0] ? o->pull : NULL;
    cfg->lanes = lanes;
    cfg->n_lanes = n_lanes;
    cfg->cluster = o->cluster;
    cfg->mounts = mounts;
    cfg->n_mounts = o->n_mounts;
    cfg->id = o->id[0] ? o->id : NULL;
    cfg->moves = o->moves;
    cfg->lease_ms = o->lease_ms;
    cfg->dirs = o->dirs[0] ? o->dirs : NULL;
    cfg->token = token[0] != '\0' ? token : NULL;
    cfg->tls_ca_file = o->tls_ca[0] ? o->tls_ca : NULL;
    cfg->tls_server_name = o->tls_server_name[0] ? o->tls_server_name : NULL;
    return 0;
}

typedef struct {
    sigset_t set;
    tier_worker *w;
} sig_arg;

/* The first stop signal stops cleanly, a second exits at once.  main
 * cancels this thread (at sigwait) before it closes the worker. */
static void *signal_main(void *arg)
{
    sig_arg *a = arg;
    int sig;

    sigwait(&a->set, &sig);
    tier_info("%s: stopping (a second signal exits at once)", sig == SIGINT ? "SIGINT" : "SIGTERM");
    tier_worker_stop(a->w, false);
    tier_notify_stopping();
    sigwait(&a->set, &sig);
    tier_warn("second signal: exiting now; claimed jobs come back after their lease");
    _exit(1);
}

/* /metrics on url.  Counts only, no token needed (docs/METRICS.md); a
 * non-loopback address should be firewalled like any exporter. */
static int open_http(tier_http_server **out, const char *url, tier_worker *w)
{
    char err[256];
    int rv;

    if (strncmp(url, "http://", 7) != 0) {
        tier_error("--http: http://HOST:PORT, not %s", url);
        return TIER_INVALID_ARGUMENT;
    }
    if ((rv = tier_http_open(out, url, NULL, err, sizeof(err))) != TIER_OK ||
        (rv = tier_http_add_metrics(*out, tier_worker_metrics(w))) != TIER_OK ||
        (rv = tier_http_start(*out)) != TIER_OK) {
        tier_error("--http %s: %s", url, rv == TIER_OK ? "" : err);
        tier_http_close(*out);
        *out = NULL;
        return rv;
    }
    tier_info("metrics on %s/metrics", url);
    return TIER_OK;
}

int main(int argc, char **argv)
{
    tier_worker_config cfg = {0};
    static worker_opts opts;
    sig_arg sa;
    pthread_t sig_t;
    int rv;

    tier_log_init("tier-worker", TIER_LOG_INFO);
    if (tier_crash_init(tier_worker_crash_points) != 0)
        return 2;
    if ((rv = parse(argc, argv, &opts, &cfg)) != 0)
        return rv > 0 ? 0 : 2;
    sigemptyset(&sa.set);
    sigaddset(&sa.set, SIGINT);
    sigaddset(&sa.set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sa.set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (tier_worker_open(&sa.w, &cfg) != TIER_OK)
        return 2;
    tier_http_server *http = NULL;
    if (opts.http[0] != '\0' && open_http(&http, opts.http, sa.w) != TIER_OK) {
        tier_worker_close(sa.w);
        return 2;
    }
    if (pthread_create(&sig_t, NULL, signal_main, &sa) != 0 ||
        tier_notify_watchdog_start(NULL, NULL) != TIER_OK) {
        tier_error("cannot start threads");
        return 1;
    }
    tier_notify_ready("working");
    rv = tier_worker_run(sa.w);
    pthread_cancel(sig_t);
    pthread_join(sig_t, NULL);
    tier_notify_watchdog_stop();
    tier_http_close(http); /* before the metrics it serves go */
    tier_worker_close(sa.w);
    return rv == TIER_OK ? 0 : 1;
}
