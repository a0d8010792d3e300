/*
 * tier_writer.h -- the one-writer rule: a writer lease in Redis and a
 * fencing token checked by Redis job scripts and MySQL commits.
 *
 * tierd keeps levels, contents and job flags in memory and answers from
 * there, which is right only while it is the one coordinator of its
 * database and key prefix.  A second tierd (a hot standby) must therefore
 * never write.  Two mechanisms, one token:
 *
 *   lease   <prefix>writer = token, SET NX PX ttl, renewed by its holder.
 *           Tokens come from INCR <prefix>writer:epoch, never below the
 *           MySQL fence (so they keep growing even when Redis lost its
 *           data).  Every job script checks <prefix>writer == its caller's
 *           token (store/tier_jobs.h) and fails with FENCED otherwise.
 *   fence   writer_fence.token in MySQL (sql/004).  A new writer raises it
 *           to its token before loading state; every write transaction
 *           reads it first (LOCK IN SHARE MODE) and rolls back when it is
 *           not the token of its connection (tier_db_config.writer_token).
 *
 * A lease alone cannot stop a writer that was paused past its ttl and
 * resumes mid-write; the fences can: whatever it sends after a newer
 * writer took over is refused.  The lease is what makes the standby wait
 * and the old writer notice and step down.
 */
#ifndef TIER_WRITER_H
#define TIER_WRITER_H

#include <stdbool.h>
#include <stdint.h>

#include "tier_db.h"
#include "tier_kv.h"

typedef enum {
    TIER_WRITER_HELD,  /* the lease (or the fence) is ours */
    TIER_WRITER_TAKEN, /* another tierd holds it (its token reported) */
    TIER_WRITER_LOST,  /* renew: not ours any more; fence: raised past ours */
    TIER_WRITER_ERROR, /* Redis or MySQL did not answer: try again */
} tier_writer_state;

/* The lease, when free: mints a token (> floor, the MySQL fence) and sets
 * <prefix>writer to it for ttl_ms, in one script.  HELD with our token in
 * *token, or TAKEN with the holder's. */
tier_writer_state tier_writer_acquire(tier_kv *kv, const char *prefix, uint32_t ttl_ms,
                                      int64_t floor, int64_t *token);

/* Extends our lease to ttl_ms from now.  HELD (also when the key had
 * vanished -- a Redis restart or flush -- and was set again), LOST when
 * another token holds it, ERROR when Redis did not answer. */
tier_writer_state tier_writer_renew(tier_kv *kv, const char *prefix, int64_t token,
                                    uint32_t ttl_ms);

/* Deletes the lease if it is still ours (a clean stop: the standby need
 * not wait for the ttl). */
int tier_writer_release(tier_kv *kv, const char *prefix, int64_t token);

/* A shard's home (docs/CLUSTER.md): the standby on the host that should
 * serve it says so in <prefix>home = node, for ttl_ms, refreshed while it
 * waits.  Other standbys let it take a free lease first, and a writer on
 * another host hands the shard back.  get: TIER_OK with the node, or
 * TIER_NOT_FOUND; UNAVAILABLE when Redis did not answer. */
int tier_writer_home_set(tier_kv *kv, const char *prefix, const char *node, uint32_t ttl_ms);
int tier_writer_home_get(tier_kv *kv, const char *prefix, char *node, size_t len);

/* Before raising the fence with token: KILLs the MySQL connections of
 * older writers of db's shard still open on the server (sql/010: a
 * writer cut off mid-transaction holds the fence row's lock until the
 * server drops it, hours later), and forgets their rows.  Returns how
 * many were killed, or -1 when MySQL failed (the raise then waits as
 * before). */
int tier_writer_conns_kill(tier_db *db, int64_t token);

/* The MySQL fence's current token (0 when never raised). */
int tier_writer_fence_read(tier_db *db, int64_t *token);

/* Raises the MySQL fence to token in its own transaction.  HELD, LOST when
 * it is already >= token (a newer writer got there first), ERROR. */
tier_writer_state tier_writer_fence_raise(tier_db *db, int64_t token);

/* Inside an open transaction: OK when db has no writer token or the fence
 * holds it; ABORTED when the fence moved on (and tier_writer_fenced() is
 * called); another status when MySQL failed. */
int tier_writer_fence_check(tier_db *db);

/* What to do when a script or a commit finds this process fenced off
 * (tierd exits: it is not the writer any more).  Process-wide, because
 * being the writer is.  Unset: nothing, the caller sees ABORTED. */
typedef void (*tier_writer_fenced_fn)(const char *what);
void tier_writer_on_fenced(tier_writer_fenced_fn fn);
void tier_writer_fenced(const char *what);

/* What to do when a job script finds no lease key at all (Redis restarted
 * empty): the holder may set it again if its lease cannot have expired
 * yet.  Returns true when the key is ours again (run the script again).
 * Unset: false. */
typedef bool (*tier_writer_missing_fn)(void *arg);
void tier_writer_on_missing(tier_writer_missing_fn fn, void *arg);
bool tier_writer_missing(void);

#endif
