/*
 * metrics.c -- every metric tierd exports, in one place (docs/METRICS.md
 * lists them for operators).  The families are created here, at start-up;
 * the modules update them through tierd_deps.metrics where things happen
 * (a move finished, a lease expired, a batch committed, a comment posted),
 * and the on-scrape hook below asks Redis, MySQL and the rank index for
 * what is only known by asking.
 *
 * Labels come only from bounded sets: method names registered at start-up,
 * status names, level names (the level table, at most 64), job states,
 * batcher names.  Never from a free-text field a peer sends (a worker's
 * failure reason, a filename): those would grow the series without end.
 */
#include "tierd.h"

#include <stdlib.h>
#include <string.h>

#include "tier_jobs.h"

/* Group-commit batch sizes: 1 .. the largest batch (1024). */
static const double batch_sizes[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

int tierd_metrics_open(tierd_metrics **out)
{
    tierd_metrics *m = calloc(1, sizeof(*m));
    tier_metrics *r;

    if (m == NULL || (m->reg = r = tier_metrics_alloc()) == NULL) {
        free(m);
        return TIER_RESOURCE_EXHAUSTED;
    }
    m->jobs = tier_metrics_gauge(r, "tier_jobs", "Move jobs by state, now.", "state");
    m->moves = tier_metrics_counter(r, "tier_moves_total",
                                    "Moves committed to MySQL, by level pair.", "from,to");
    m->lease_expiries = tier_metrics_counter(
        r, "tier_lease_expiries_total", "Claimed jobs whose lease ran out (back to update).", NULL);
    m->retries = tier_metrics_counter(
        r, "tier_job_retries_total",
        "Jobs tried again: transient failures from workers, and RetryJob.", "source");
    m->failures = tier_metrics_counter(r, "tier_job_failures_total",
                                       "FailJob calls from workers, by kind.", "kind");
    m->batch_size = tier_metrics_histogram(
        r, "tier_batch_size", "Items per group commit (MySQL transaction).", "batcher", batch_sizes,
        sizeof(batch_sizes) / sizeof(batch_sizes[0]));
    m->batch_wait =
        tier_metrics_histogram(r, "tier_batch_wait_seconds",
                               "How long the oldest item of a group commit waited for its flusher.",
                               "batcher", tier_metrics_seconds, tier_metrics_nseconds);
    m->batch_flush =
        tier_metrics_histogram(r, "tier_batch_flush_seconds", "How long a group commit took.",
                               "batcher", tier_metrics_seconds, tier_metrics_nseconds);
    m->comments = tier_metrics_counter(r, "tier_comments_total",
                                       "Comment operations committed, by kind.", "op");
    m->rank_bytes =
        tier_metrics_gauge(r, "tier_rank_index_bytes", "Memory of the rank index, now.", NULL);
    m->dep_up = tier_metrics_gauge(r, "tier_dependency_up",
                                   "1 when the dependency answers, 0 when not.", "name");
    m->workers_alive =
        tier_metrics_gauge(r, "tier_workers_alive", "Workers heard from in the last 10 s.", NULL);
    m->plan_backlog = tier_metrics_gauge(
        r, "tier_plan_backlog", "Moves the policy wants that have not started, by level pair.",
        "from,to");
    m->plan_throttled =
        tier_metrics_gauge(r, "tier_plan_throttled",
                           "Moves held back by a budget or max_inflight in the last round.", NULL);
    m->plan_waiting =
        tier_metrics_gauge(r, "tier_plan_waiting_capacity",
                           "Moves waiting for room in their target level in the last round.", NULL);
    m->plan_started =
        tier_metrics_counter(r, "tier_plan_started_total",
                             "Move jobs started by the planner, by level pair.", "from,to");
    m->migrate_left = tier_metrics_gauge(
        r, "tier_migration_remaining",
        "Contents still in a migrating level's old directory, by level (last round).", "level");
    m->migrate_started = tier_metrics_counter(r, "tier_migration_moves_started_total",
                                              "Level-migration move jobs started.", NULL);
    m->plan_held = tier_metrics_gauge(
        r, "tier_plan_held", "Contents kept from their level, by reason (dwell, capacity).",
        "reason");
    m->level_bytes = tier_metrics_gauge(
        r, "tier_level_bytes_planned",
        "Bytes on each level or moving to it, as the planner last counted.", "level");
    m->level_capacity =
        tier_metrics_gauge(r, "tier_level_capacity_bytes",
                           "Each level's capacity under the policy (0: none).", "level");
    *out = m;
    return TIER_OK;
}

void tierd_metrics_close(tierd_metrics *m)
{
    if (m == NULL)
        return;
    tier_metrics_free(m->reg);
    free(m);
}

void tierd_metrics_jobs(tierd_metrics *m, const uint64_t counts[])
{
    for (int st = TIER_JOB_UPDATE; st < TIER_JOB_STATES; st++)
        tier_metric_set(m->jobs, (double)counts[st], tier_job_state_name((tier_job_state)st));
}
