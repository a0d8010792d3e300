/*
 * crash_points.c -- every step of tier-worker where a crash leaves a move
 * half done (tier_crash.h).  The move.* points are in tier_move.c, the
 * worker.* ones in the worker.  Keep the order of the protocol: a crash
 * test walks this list and needs a scenario for each entry.
 */
#include <stddef.h>

#include "tier_worker.h"

const char *const tier_worker_crash_points[] = {
    "worker.after_claim",     /* ClaimJob answered OK; no file touched */
    "move.renamed",           /* same-fs rename done; directories not synced */
    "move.linked",            /* link() fallback done; source not unlinked */
    "move.copied",            /* cross-fs temporary durable and verified; not installed */
    "move.installed",         /* cross-fs copy under the real name; source still there */
    "move.src_unlinked",      /* source unlinked; its directory not synced */
    "worker.before_dir_sync", /* batch moved; deferred directory syncs not done */
    "worker.before_complete", /* moves durable; CompleteJob not sent */
    "worker.after_complete",  /* CompleteJob answered; the worker still holds the jobs */
    NULL,
};
