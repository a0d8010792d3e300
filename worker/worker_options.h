/*
 * worker_options.h -- tier-worker's options as one table (worker/options.c,
 * read by common/tier_options.c): config file (--config FILE or
 * TIER_WORKER_CONFIG), environment, flags, --help, --help-markdown and
 * --print-config, with the same strict values as tierd's.
 */
#ifndef WORKER_OPTIONS_H
#define WORKER_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "tier_options.h"

/* What the options fill; main.c turns it into a tier_worker_config. */
typedef struct {
    char config[1024];
    char tierd[1024];      /* rpc URL(s), ','-separated */
    char pull[1024];       /* push URL(s) to pull from */
    char lanes[8192];      /* RPC=PUSH specs separated by spaces (--lane repeats) */
    bool cluster;          /* lanes from the topology of --tierd */
    char mounts[64][1024]; /* --mount, repeatable */
    unsigned n_mounts;
    char id[129];      /* at most 128 bytes; "" = hostname-pid */
    unsigned moves;    /* 1..256 */
    uint32_t lease_ms; /* 200..3600000 */
    char dirs[4096];   /* ','-separated level directories */
    char token_file[1024];
    char tls_ca[1024];
    char tls_server_name[256];
    char http[256]; /* /metrics address, "" = none */
} worker_opts;

#define WORKER_ACTION_HELP 1
#define WORKER_ACTION_MARKDOWN 2
#define WORKER_ACTION_PRINT 3
#define WORKER_ACTION_CRASH_POINTS 4

const tier_opts *worker_options(void);

#endif
