/*
 * options.c -- every option of tier-worker, once (see worker_options.h and
 * common/tier_options.h).  The flag and variable names are the ones the
 * worker always had; the config file keys are new.  The token itself
 * (TIER_TOKEN) is not here: common/tier_token.c reads it, after
 * token_file, so that it is never printed.
 */
#include "worker_options.h"

#include <stddef.h>

#define F(m) offsetof(worker_opts, m), sizeof(((worker_opts *)0)->m)

static const tier_opt opts[] = {
    {.key = NULL,
     .env = "TIER_WORKER_CONFIG",
     .flag = "config",
     .type = TIER_OPT_PATH,
     F(config),
     .arg = "FILE",
     .help = "config file: key = value lines, no section or [worker]"},
    {"tierd", "TIER_URL", "tierd", TIER_OPT_STRING, F(tierd), .arg = "URL,...",
     .help = "tierd's rpc address(es) (with --cluster: any tierd of the cluster); required "
             "unless --lane is given"},
    {"pull", "TIER_PULL", "pull", TIER_OPT_STRING, F(pull), .arg = "URL,...",
     .help = "tierd's push address(es); each is dialled, a standby listens only as the "
             "writer; required with --tierd (with --cluster: used only if that tierd has no "
             "Topology)"},
    {"lane", "TIER_WORKER_LANES", "lane", TIER_OPT_STRING, F(lanes), .flags = TIER_OPT_REPEAT,
     .arg = "RPC=PUSH",
     .help = "one more coordinator: its rpc and push address(es), each URL[,URL...] as for "
             "--tierd and --pull; repeat for more (the variable: specs separated by spaces)"},
    {"cluster", "TIER_WORKER_CLUSTER", "cluster", TIER_OPT_BOOL, F(cluster), .def = "0",
     .help = "several coordinators: --tierd is any tierd of the cluster; one lane per shard of "
             "its topology, followed as shards change hosts (docs/CLUSTER.md)"},
    {"mount", "TIER_WORKER_MOUNTS", "mount", TIER_OPT_LIST, F(mounts[0]),
     .off2 = offsetof(worker_opts, n_mounts), .max = 64, .arg = "DIR",
     .help = "a directory this host can reach; jobs naming a directory under none are left to "
             "other workers (repeat, or DIR:DIR; none: every directory)"},
    {"id", "TIER_WORKER_ID", "id", TIER_OPT_STRING, F(id), .arg = "NAME",
     .help = "worker id (none: hostname-pid)"},
    {"moves", "TIER_WORKER_MOVES", "moves", TIER_OPT_INT, F(moves), .min = 1, .max = 256,
     .def = "4", .arg = "N", .help = "moves at once"},
    {"lease_ms", "TIER_WORKER_LEASE_MS", "lease-ms", TIER_OPT_MS, F(lease_ms), .min = 200,
     .max = 3600000, .def = "30000", .arg = "MS", .help = "lease asked for per job"},
    {"dirs", "TIER_WORKER_DIRS", "dirs", TIER_OPT_STRING, F(dirs), .arg = "DIR,...",
     .help = "level directories whose stale temporaries are removed at start (others: when "
             "first met in a job)"},
    {"token_file", "TIER_TOKEN_FILE", "token-file", TIER_OPT_PATH, F(token_file), .arg = "FILE",
     .help = "the worker's bearer token, a mode-600 file (or the token itself in TIER_TOKEN)"},
    {"tls_ca", "TIER_TLS_CA", "tls-ca", TIER_OPT_PATH, F(tls_ca), .arg = "FILE",
     .help = "CAs to verify tierd's certificate with, for tls+tcp:// (none: the system's)"},
    {"tls_server_name", "TIER_TLS_SERVER_NAME", "tls-server-name", TIER_OPT_STRING,
     F(tls_server_name), .arg = "NAME",
     .help = "the name on tierd's certificate (none: the address's host)"},
    {"http", "TIER_WORKER_HTTP", "http", TIER_OPT_STRING, F(http), .arg = "URL",
     .help = "serve /metrics here, e.g. http://127.0.0.1:7481 (docs/METRICS.md); empty = none"},
    {.flag = "print-config",
     .type = TIER_OPT_ACTION,
     .min = WORKER_ACTION_PRINT,
     .help = "print the effective configuration and exit"},
    {.flag = "crash-points",
     .type = TIER_OPT_ACTION,
     .min = WORKER_ACTION_CRASH_POINTS,
     .help = "list the crash points (TIER_CRASH=point[:n] arms one)"},
    {.flag = "help-markdown",
     .type = TIER_OPT_ACTION,
     .min = WORKER_ACTION_MARKDOWN,
     .help = "this list as docs/CONFIG.md's table"},
    {.flag = "help", .type = TIER_OPT_ACTION, .min = WORKER_ACTION_HELP, .help = "this list"},
};

static const tier_opts table = {
    .prog = "tier-worker",
    .section = "worker",
    .usage = "tier-worker {--tierd URL[,URL...] --pull URL[,URL...] | --lane RPC=PUSH ... | "
             "--cluster --tierd URL[,URL...]} [options]",
    .about = "Moves content files between level directories for tierd: pulls move jobs,\n"
             "claims them, moves the files (crash-safe), reports them done.",
    .epilog = "Logs go to stderr; TIER_LOG=debug|info|warn|error sets the level.\n"
              "SIGINT/SIGTERM stop it cleanly; unfinished jobs go back to tierd.\n",
    .opts = opts,
    .n = sizeof(opts) / sizeof(opts[0]),
};

const tier_opts *worker_options(void)
{
    return &table;
}
