/*
 * crash_points.c -- every step of tierd where a crash leaves work half
 * done (tier_crash.h).  tests/test_crash.c walks this list: each entry
 * needs a scenario there that reaches it, or the test fails.  Keep the
 * order of the protocol; docs/CRASH.md says what each one proves.
 */
#include "tier_crash.h"
#include "tierd.h"

const char *const tierd_crash_points[] = {
    /* start-up */
    "writer.after_acquire", /* lease and MySQL fence taken; state not loaded */
    /* ReportViews slow path (a job is created, retargeted or kept pending) */
    "report.before_script", /* busy held, nothing written yet */
    "report.after_script",  /* Redis changed; no push, no reply yet */
    /* ClaimJob */
    "claim.after_script", /* claimed in Redis (fence + 1); the worker never hears */
    /* CompleteJob */
    "complete.after_done",   /* job "done" in Redis; MySQL not committed */
    "complete.after_commit", /* MySQL committed; the job still "done" in Redis */
    "complete.after_finish", /* job deleted or turned into its follow-up; no reply, no push */
    /* FailJob */
    "fail.after_script", /* job back to update (or failed); its pending not applied yet */
    /* RetryJob / CancelJob */
    "retry.after_script",  /* job back to update; its pending report not applied, no push */
    "cancel.after_script", /* job deleted or aimed home; memory and push not updated */
    /* the reaper */
    "reaper.after_expire", /* expired leases back to update; nothing pushed */
    /* start-up recovery of jobs a crash left "done" */
    "recover.before_commit", /* done jobs read; MySQL not committed */
    "recover.after_commit",  /* committed; jobs not finished in Redis */
    /* SetLevels */
    "setlevels.after_mkdir",  /* directories created; MySQL unchanged */
    "setlevels.after_commit", /* MySQL has the new table; memory the old */
    /* level migrations (tiering_migrate.c) */
    "migrate.after_setlevels_commit", /* new table and migration row committed; memory old */
    "migrate.before_retire",          /* every file moved, no job left; old dir and row kept */
    "migrate.after_rmdir",            /* old directory removed; the row not deleted yet */
    /* the tiering policy (docs/POLICY.md) */
    "views.after_commit", /* increments committed to MySQL; no reply */
    /* comments (ranking_write.c) */
    "comments.after_lock",    /* a flush's changed comments locked; nothing written */
    "comments.after_commit",  /* a group commit of comments in MySQL; no index update, no reply */
    "setpolicy.after_commit", /* the new policy version in MySQL; memory the old, no reply */
    "planner.after_script",   /* the planner's jobs in Redis; their targets not noted */
    NULL,
};
