/*
 * main.c -- tier-worker: moves content files between level directories for
 * tierd (seed 000's worker).  The engine is tier_worker.c (its top comment
 * has the design); this file is the flags, the environment and the signals.
 *
 *   tier-worker --tierd URL[,URL...] --pull URL[,URL...] [--id NAME]
 *               [--moves N] [--lease-ms MS] [--dirs DIR,...] [--token-file F]
 *               [--tls-ca F] [--tls-server-name NAME] [--crash-points]
 *
 * SIGINT / SIGTERM: a clean stop (tier_worker_stop), exit 0.  A second
 * signal exits at once (1); whatever was claimed comes back after its lease.
 *
 * Under systemd (packaging/systemd/tier-worker@.service, Type=notify):
 * READY=1 once it runs, STOPPING=1 on the first signal, watchdog pings
 * (common/tier_notify.h).
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tier_crash.h"
#include "tier_log.h"
#include "tier_notify.h"
#include "tier_status.h"
#include "tier_token.h"
#include "tier_worker.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: tier-worker --tierd URL[,URL...] --pull URL[,URL...] [options]\n"
               "\n"
               "Moves content files between level directories for tierd: pulls move jobs,\n"
               "claims them, moves the files (crash-safe), reports them done.\n"
               "\n"
               "  --tierd URL,...   tierd's rpc address(es)   (TIER_URL)\n"
               "  --pull URL,...    tierd's push address(es)  (TIER_PULL)\n"
               "                    several: each is dialled (a hot standby listens only\n"
               "                    while it is the writer); whichever is up is used\n"
               "  --id NAME         worker id                 (TIER_WORKER_ID, hostname-pid)\n"
               "  --moves N         moves at once             (TIER_WORKER_MOVES, 4)\n"
               "  --lease-ms MS     lease asked for per job   (TIER_WORKER_LEASE_MS, 30000)\n"
               "  --dirs DIR,...    level directories whose stale temporaries are removed\n"
               "                    at start (others: when first met in a job)\n"
               "  --token-file F    the worker's bearer token, a mode-600 file\n"
               "                    (TIER_TOKEN_FILE; or the token itself in TIER_TOKEN)\n"
               "  --tls-ca F        CAs to verify tierd's certificate with, for tls+tcp://\n"
               "                    addresses (TIER_TLS_CA; default the system's)\n"
               "  --tls-server-name NAME  the name on tierd's certificate\n"
               "                    (TIER_TLS_SERVER_NAME; default the address's host)\n"
               "  --crash-points    list the crash points (TIER_CRASH=point[:n] arms one)\n"
               "  --help\n"
               "\n"
               "Logs go to stderr; TIER_LOG=debug|info|warn|error sets the level.\n"
               "SIGINT/SIGTERM stop it cleanly; unfinished jobs go back to tierd.\n");
}

/* Parses a number in lo..hi; -1 and a message if it is not one. */
static int parse_num(const char *flag, const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "tier-worker: --%s: %ld..%ld\n", flag, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* Fills cfg from the environment and argv.  Returns 0, 1 (done: --help,
 * --crash-points) or -1 (usage error). */
static int parse(int argc, char **argv, tier_worker_config *cfg)
{
    static const struct option opts[] = {
        {"tierd", required_argument, NULL, 't'},
        {"pull", required_argument, NULL, 'p'},
        {"id", required_argument, NULL, 'i'},
        {"moves", required_argument, NULL, 'm'},
        {"lease-ms", required_argument, NULL, 'l'},
        {"dirs", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {"crash-points", no_argument, NULL, 'X'},
        {"token-file", required_argument, NULL, 'T'},
        {"tls-ca", required_argument, NULL, 'A'},
        {"tls-server-name", required_argument, NULL, 'N'},
        {NULL, 0, NULL, 0},
    };
    const char *token_file = NULL;
    const char *moves = getenv("TIER_WORKER_MOVES"), *lease = getenv("TIER_WORKER_LEASE_MS");
    long v;
    int c;

    cfg->tierd_url = getenv("TIER_URL");
    cfg->pull_url = getenv("TIER_PULL");
    cfg->id = getenv("TIER_WORKER_ID");
    cfg->tls_ca_file = getenv("TIER_TLS_CA");
    cfg->tls_server_name = getenv("TIER_TLS_SERVER_NAME");
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            cfg->tierd_url = optarg;
            break;
        case 'p':
            cfg->pull_url = optarg;
            break;
        case 'i':
            cfg->id = optarg;
            break;
        case 'm':
            moves = optarg;
            break;
        case 'l':
            lease = optarg;
            break;
        case 'd':
            cfg->dirs = optarg;
            break;
        case 'T':
            token_file = optarg;
            break;
        case 'A':
            cfg->tls_ca_file = optarg;
            break;
        case 'N':
            cfg->tls_server_name = optarg;
            break;
        case 'h':
            usage(stdout);
            return 1;
        case 'X':
            tier_crash_list(stdout, tier_worker_crash_points);
            return 1;
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc || cfg->tierd_url == NULL || cfg->pull_url == NULL || !*cfg->tierd_url ||
        !*cfg->pull_url) {
        fprintf(stderr, "tier-worker: --tierd and --pull (or TIER_URL, TIER_PULL) are required\n");
        usage(stderr);
        return -1;
    }
    if (moves != NULL && *moves) {
        if (parse_num("moves", moves, 1, 256, &v) != 0)
            return -1;
        cfg->moves = (unsigned)v;
    }
    if (lease != NULL && *lease) {
        if (parse_num("lease-ms", lease, 200, 3600000, &v) != 0)
            return -1;
        cfg->lease_ms = (uint32_t)v;
    }
    static char token[TIER_TOKEN_MAX + 1];
    char err[512];
    if (tier_token_find(token_file, token, sizeof(token), err, sizeof(err)) != TIER_OK) {
        fprintf(stderr, "tier-worker: %s\n", err);
        return -1;
    }
    cfg->token = token[0] != '\0' ? token : NULL;
    if (cfg->tls_ca_file != NULL && *cfg->tls_ca_file == '\0')
        cfg->tls_ca_file = NULL;
    if (cfg->tls_server_name != NULL && *cfg->tls_server_name == '\0')
        cfg->tls_server_name = NULL;
    if (cfg->id != NULL && strlen(cfg->id) > 128) {
        fprintf(stderr, "tier-worker: --id: at most 128 bytes\n");
        return -1;
    }
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

int main(int argc, char **argv)
{
    tier_worker_config cfg = {0};
    sig_arg sa;
    pthread_t sig_t;
    int rv;

    tier_log_init("tier-worker", TIER_LOG_INFO);
    if (tier_crash_init(tier_worker_crash_points) != 0)
        return 2;
    if ((rv = parse(argc, argv, &cfg)) != 0)
        return rv > 0 ? 0 : 2;
    sigemptyset(&sa.set);
    sigaddset(&sa.set, SIGINT);
    sigaddset(&sa.set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sa.set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (tier_worker_open(&sa.w, &cfg) != TIER_OK)
        return 2;
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
    tier_worker_close(sa.w);
    return rv == TIER_OK ? 0 : 1;
}
