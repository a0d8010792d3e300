/*
 * tier_move.h -- move one content file from one level directory to another
 * (bronze -> silver -> gold) so that a crash at any point, a retry by any
 * worker, or several attempts running at once never lose the file and never
 * leave it in two places.
 *
 * A worker claims a move job and calls tier_move_file().  The job may be run
 * again after a kill -9 or a machine crash at any instruction, by another
 * worker, possibly while a slow earlier attempt is still running.  Each call
 * therefore starts by looking at what is on disk and finishes whatever an
 * earlier attempt left half done:
 *
 *   source  destination  meaning / action
 *   ------  -----------  ---------------------------------------------------
 *   yes     no           move it (rename, or copy + verify + rename + unlink)
 *   no      yes          an earlier attempt finished: make it durable, OK
 *   yes     yes          same inode or same bytes: an earlier attempt stopped
 *                        between "destination in place" and "source removed",
 *                        so remove the source, OK; different bytes: refuse
 *                        (ALREADY_EXISTS, permanent)
 *   no      no           NOT_FOUND, permanent ("<name> not exists")
 *
 * The crash-safety argument is given step by step in tier_move.c.  In short:
 * the destination name only ever appears atomically (rename/link, never
 * overwriting) and only for a complete, fsynced, verified copy; the source is
 * only removed after the destination is durable.  So at every instant at
 * least one complete copy is reachable under the real name, and the only
 * state with two copies is the one in the table that any retry resolves.
 *
 * Cross-filesystem copies are written to ".tier-tmp.*" temporaries in the
 * destination directory.  A crashed attempt can leave one behind;
 * tier_move_cleanup_dir() removes them at worker start-up.  They are never
 * visible under the real name, so a leftover is only wasted space.
 *
 * Return values are tier_status codes (tier_status.h); the result struct
 * repeats the code and says whether retrying can help.
 */
#ifndef TIER_MOVE_H
#define TIER_MOVE_H

#include <stddef.h>
#include <stdint.h>

/* Every temporary this library creates starts with this prefix. */
#define TIER_MOVE_TMP_PREFIX ".tier-tmp."

/* Called about every 64 MiB or every second while a file is copied or
 * compared.  Return non-zero to stop (e.g. the job's lease was lost): the
 * move then returns TIER_ABORTED (not permanent) and leaves no temporary. */
typedef int (*tier_move_progress_fn)(void *arg);

typedef struct {
    const char *src_dir;  /* absolute path of the source level directory */
    const char *dst_dir;  /* absolute path of the destination level directory */
    const char *filename; /* plain name (tier_name_valid), same in both */
    /* 1: after a plain same-filesystem rename, leave the two directory
     * fsyncs to the caller (res->dirs_unsynced says so), who must call
     * tier_move_sync_dir on both before reporting the move done.  A worker
     * moving a batch then fsyncs each directory once per batch instead of
     * twice per file -- the difference between ~2,000 and ~10,000 small
     * moves a second.  Every other path (copies, leftovers) still syncs. */
    int defer_dir_sync;
} tier_move_spec;

typedef struct {
    int code;          /* tier_status, equal to the return value */
    char reason[256];  /* human-readable detail, also set on success */
    int permanent;     /* 1 = retrying the same job won't help */
    int crossed_fs;    /* 1 = the data was copied across filesystems */
    int dirs_unsynced; /* 1 = renamed, directories not yet fsynced (defer_dir_sync) */
} tier_move_result;

/* Move spec->filename from src_dir to dst_dir.  progress may be NULL; res
 * may be NULL.  Safe to call again for the same job at any time, also
 * concurrently with another call for the same job. */
int tier_move_file(const tier_move_spec *spec, tier_move_progress_fn progress, void *arg,
                   tier_move_result *res);

/* Most other directories tier_move_file_any looks in (one per level). */
#define TIER_MOVE_MAX_ALSO 64

/* Like tier_move_file, for a job whose file may be in any of several
 * directories: spec->src_dir, also_dirs[0..n_also) and spec->dst_dir (a job
 * claimed before, its file moved by that earlier claim whose worker died,
 * then retargeted).  Moves the file into spec->dst_dir from wherever it is
 * and removes every copy left in the other directories that is identical to
 * the one at the destination.  Directories equal to dst_dir (trailing '/'
 * ignored) are skipped.  OK when the file ends up at the destination with no
 * copy left elsewhere; NOT_FOUND only when it is in none of them; a copy
 * elsewhere that differs from the destination's is refused (ALREADY_EXISTS,
 * permanent, nothing deleted); any other error of one directory is the
 * result (retrying finishes the job).  n_also = 0 is exactly tier_move_file.
 * res->dirs_unsynced (defer_dir_sync) only ever concerns src_dir and
 * dst_dir: a move out of an also dir always syncs its directories. */
int tier_move_file_any(const tier_move_spec *spec, const char *const *also_dirs, size_t n_also,
                       tier_move_progress_fn progress, void *arg, tier_move_result *res);

/* Remove TIER_MOVE_TMP_PREFIX files in dir whose last change (ctime) is at
 * least older_than_ms ago; 0 removes all of them.  Pick older_than_ms well
 * above the longest a live attempt can go without writing (its lease): a
 * temporary removed under a live attempt costs that attempt a retry, never
 * data, but is wasted work. */
/* fsync a directory (absolute path), for defer_dir_sync.  TIER_OK, or a
 * status with the reason in reason (may be NULL). */
int tier_move_sync_dir(const char *dir, char *reason, size_t len);

int tier_move_cleanup_dir(const char *dir, int64_t older_than_ms);

/* ---- testing only
 *
 * When set, called with the name of each step just before it is taken (see
 * the list in tier_move.c).  Returning 0 lets the step run; at the steps
 * that are system calls, returning an errno value makes the call fail with
 * it instead (fault injection).  Tests also _exit() from it to simulate a
 * crash at that exact point.  Production code leaves it NULL. */
typedef int (*tier_move_hook_fn)(const char *step);
extern tier_move_hook_fn tier_move_test_hook;

#endif
