/*
 * tiering_shared.c -- what every shard shares: the level table and the
 * tiering policy (docs/CLUSTER.md).
 *
 * Both live in MySQL and every shard's writer keeps a copy in memory.  A
 * change goes through one writer (SetLevels, SetPolicy), which commits it
 * and installs it at once; the others notice within a second: with
 * shards > 1 the planner thread calls tiering_shared_poll() every second,
 * which reads the level table and the policy's version from MySQL (two
 * small queries) and installs whatever differs.  Polling MySQL rather
 * than a notification through Redis means a follower can never miss a
 * change: MySQL is where the change is, so whatever it says is current.
 *
 * What a writer of several may change (tiering_shared_check): ranges and
 * new levels.  It may not remove a level or give one a new directory (a
 * level migration): both need to know every shard's contents of that
 * level, which no single writer holds -- refused with FAILED_PRECONDITION
 * until migrations run per shard (planned, docs/CLUSTER.md).
 */
#include "tiering_int.h"

#include <stdlib.h>
#include <string.h>

#include "tier_log.h"

/* The table in memory is rows (same names, ranges, directories). */
static bool same_table(const level_table *lt, const tier_level_row *rows, size_t n)
{
    if (lt->n != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        size_t pl = strlen(rows[i].path), ml = strlen(lt->v[i].path);
        if (pl > 0 && rows[i].path[pl - 1] != '/')
            pl++; /* memory's ends in '/' */
        if (strcmp(lt->v[i].name, rows[i].name) != 0 || lt->v[i].min != rows[i].min_counts ||
            lt->v[i].max != rows[i].max_counts || ml != pl ||
            strncmp(lt->v[i].path, rows[i].path, ml - 1) != 0)
            return false;
    }
    return true;
}

/* Installs rows as the table another writer committed. */
static void follow_levels(tiering *t, const tier_level_row *rows, size_t n)
{
    level_table *old, *lt = tiering_table_new(t, rows, n);

    if (lt == NULL)
        return;
    pthread_mutex_lock(&t->admin_mu);
    pthread_rwlock_wrlock(&t->levels_rw);
    old = atomic_load(&t->levels);
    lt->retired = old; /* readers may still hold it: freed at close */
    atomic_store(&t->levels, lt);
    tiering_policy_retable(t);
    pthread_rwlock_unlock(&t->levels_rw);
    pthread_mutex_unlock(&t->admin_mu);
    tier_info("tiering: level table changed by another shard's writer: %zu levels", n);
}

void tiering_shared_poll(tiering *t)
{
    tier_db *db = tier_pool_get(t->deps->db);
    tier_level_row *rows = NULL;
    size_t n = 0;

    if (db == NULL)
        return;
    if (tier_contents_levels(db, &rows, &n) == TIER_OK &&
        !same_table(atomic_load(&t->levels), rows, n))
        follow_levels(t, rows, n);
    free(rows);
    tier_db_pool_put(t->deps->db, db);
    tiering_policy_follow(t);
}

int tiering_shared_check(tiering *t, tier_rpc_ctx *call, const tier_level_row *v, size_t n)
{
    const level_table *lt = atomic_load(&t->levels);

    if (t->deps->cfg->shards <= 1)
        return TIER_OK;
    for (size_t i = 0; i < lt->n; i++) {
        size_t k = 0, ml = strlen(lt->v[i].path);
        while (k < n && strcmp(v[k].name, lt->v[i].name) != 0)
            k++;
        if (k == n)
            return tier_rpc_set_message(call, TIER_FAILED_PRECONDITION,
                                        "level %s: with several shards a level cannot be removed "
                                        "(docs/CLUSTER.md)",
                                        lt->v[i].name);
        if (strncmp(v[k].path, lt->v[i].path, ml - 1) != 0 ||
            (v[k].path[ml - 1] != '\0' && strcmp(v[k].path + ml - 1, "/") != 0))
            return tier_rpc_set_message(call, TIER_FAILED_PRECONDITION,
                                        "level %s: with several shards a level keeps its "
                                        "directory %s (migrations are planned, docs/CLUSTER.md)",
                                        lt->v[i].name, lt->v[i].path);
    }
    return TIER_OK;
}
