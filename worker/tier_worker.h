/*
 * tier_worker.h -- the tier-worker engine as an object: pulls move jobs
 * from tierd, claims them, moves the files (tier_move.h) and reports them
 * done.  tier-worker (main.c) is flag parsing and signals around it; tests
 * run one inside their own process.
 *
 *   tier_worker_config cfg = {.tierd_url = "tcp://127.0.0.1:7400",
 *                             .pull_url = "tcp://127.0.0.1:7401"};
 *   tier_worker *w;
 *   if (tier_worker_open(&w, &cfg) != TIER_OK) ...
 *   run tier_worker_run(w) on some thread; later, from any thread:
 *   tier_worker_stop(w, false);   (tier_worker_run returns)
 *   tier_worker_close(w);
 *
 * Several coordinators (docs/CLUSTER.md, "Workers"): the worker runs one
 * lane per coordinator -- its own pull socket and rpc client -- and claims,
 * renews and completes each job at the coordinator it came from.  Lanes
 * are the tierd_url/pull_url pair, any number of explicit `lanes`, or, with
 * `cluster`, one per shard of the topology tierd_url answers.
 *
 * The design (threads, the life of a job, stopping) is described at the top
 * of tier_worker.c.
 */
#ifndef TIER_WORKER_H
#define TIER_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tier_worker tier_worker;

/* One coordinator: its rpc and push address(es), each one URL or several
 * separated by commas (a hot standby that listens only while it is the
 * writer); each is dialled, whichever is connected is used. */
typedef struct {
    const char *rpc_url;
    const char *push_url;
} tier_worker_lane;

/* Most lanes of one worker (explicit ones, or shards of a cluster). */
#define TIER_WORKER_LANES_MAX 128
/* Most --mount directories. */
#define TIER_WORKER_MOUNTS_MAX 64

typedef struct {
    /* The first lane: tierd's rpc address(es) and push address(es).  Both
     * may be NULL when `lanes` names every coordinator.  With `cluster`,
     * tierd_url is any tierd of the cluster (the seed of the topology) and
     * pull_url (may be NULL) is used only while that tierd does not know
     * Topology (UNIMPLEMENTED: a single coordinator of an older version). */
    const char *tierd_url;
    const char *pull_url;
    const tier_worker_lane *lanes; /* more coordinators; n_lanes of them */
    size_t n_lanes;
    bool cluster; /* one lane per shard of tierd_url's topology, kept up to date */
    /* Directories this host can reach (absolute).  A job whose source,
     * target or other possible directory lies under none of them is left
     * for another worker.  n_mounts = 0: every directory. */
    const char *const *mounts;
    size_t n_mounts;
    const char *id;    /* worker id, at most 128 bytes; NULL: hostname-pid */
    unsigned moves;    /* moves at once, 1..256; 0: 4 */
    uint32_t lease_ms; /* lease asked for per job, 200..3600000; 0: 30000 */
    /* Level directories whose stale temporaries are removed at start,
     * comma-separated absolute paths (others: when first met); may be NULL. */
    const char *dirs;
    /* Access (docs/SECURITY.md): a worker-role bearer token (NULL = none),
     * and for tls+tcp:// addresses the CA file and server name to verify
     * tierd with (NULL = the system's CAs, the URL's host). */
    const char *token;
    const char *tls_ca_file;
    const char *tls_server_name;
} tier_worker_config;

/* Checks cfg (INVALID_ARGUMENT, with the reason logged), cleans the --dirs
 * and dials tierd (in the background: tierd may come up later).  cfg's
 * strings are copied. */
int tier_worker_open(tier_worker **out, const tier_worker_config *cfg);

/* Runs the worker until tier_worker_stop; returns TIER_OK once every thread
 * has finished (claimed jobs not started are given back, pending
 * completions sent, at most 10 s after a soft stop).  Once per object;
 * TIER_RESOURCE_EXHAUSTED if its threads cannot start; UNAUTHENTICATED or
 * PERMISSION_DENIED when tierd refused its token (it stops by itself then,
 * logging why). */
int tier_worker_run(tier_worker *w);

/* Asks the worker to stop; returns at once.  Callable from any thread (not
 * from a signal handler: use a sigwait thread), any number of times.
 * hard = false: stop taking work, abort copies in progress, give unstarted
 * jobs back, send pending completions.  hard = true: also give up on calls
 * in progress at once; whatever is claimed comes back after its lease. */
void tier_worker_stop(tier_worker *w, bool hard);

/* Its metrics (counters of moves, bytes, failures; tier_metrics.h), to
 * serve on /metrics.  Lives as long as the worker. */
struct tier_metrics;
struct tier_metrics *tier_worker_metrics(tier_worker *w);

/* Frees the worker; tier_worker_run must have returned (or never run). */
void tier_worker_close(tier_worker *w);

/* The crash points of tier-worker, NULL-terminated (crash_points.c; see
 * tier_crash.h). */
extern const char *const tier_worker_crash_points[];

#endif
