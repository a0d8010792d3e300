/*
 * tier_client.h -- libtier, the C client library of tier.
 *
 *   tier_client *c;
 *   tier_error err;
 *   if (tier_client_open(&c, "tcp://127.0.0.1:7400") != TIER_OK) ...
 *   Tier__ReportViewsRequest req = TIER__REPORT_VIEWS_REQUEST__INIT;
 *   Tier__ReportViewsReply *rep;
 *   if (tier_report_views(c, &req, &rep, &err) == TIER_OK) {
 *       ...
 *       tier_free(rep);
 *   } else
 *       fprintf(stderr, "%s: %s\n", tier_status_name(err.code), err.message);
 *   tier_client_close(c);
 *
 * One function per method of proto/tier.proto.  Each returns a status code
 * (common/tier_status.h); on TIER_OK *reply holds the reply, to be freed
 * with tier_free(); otherwise *reply is NULL and err (may be NULL) says why.
 * A tier_client is safe to use from many threads at once.
 */
#ifndef TIER_CLIENT_H
#define TIER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "rpc.pb-c.h"
#include "tier.pb-c.h"
#include "tier_rpc.h"
#include "tier_status.h"

typedef struct tier_client tier_client;
typedef tier_rpc_error tier_error;

/* url: tierd's address, e.g. "tcp://127.0.0.1:7400", or several separated
 * by commas (at most TIER_CLIENT_MAX_URLS), e.g. a writer and its hot
 * standby, which listens only while it is the writer:
 * "tcp://10.0.0.1:7400,tcp://10.0.0.2:7400".  Returns at once; connections
 * are made (and remade) in the background.  INVALID_ARGUMENT for a bad or
 * empty address.
 *
 * All are dialled on one socket: a call goes to whichever is connected and
 * is resent at once to another when its connection drops, so a call can
 * reach a second server after the first got it and died, like any resend
 * (tierd's calls are safe to repeat: tier.proto says how). */
#define TIER_CLIENT_MAX_URLS TIER_RPC_MAX_URLS
int tier_client_open(tier_client **out, const char *url);

/* The same with credentials and TLS (docs/SECURITY.md):
 *
 *   tier_client_opts o = {.token = tok, .tls_ca_file = "/etc/tier/ca.pem"};
 *   tier_client_open_opts(&c, "tls+tcp://tier.example:7400", &o, &err);
 *
 * A tierd with tokens answers UNAUTHENTICATED to calls without a valid
 * token, PERMISSION_DENIED to a token whose role may not call the method.
 * Read a token from a file with tier_token_read (tier_token.h).  Strings
 * are copied; opts may be NULL. */
typedef struct {
    const char *token;           /* bearer token, NULL = none */
    const char *tls_ca_file;     /* tls+tcp://: CAs to verify tierd with, NULL = the system's */
    const char *tls_server_name; /* tls+tcp://: name on tierd's certificate, NULL = URL host */
    uint32_t timeout_ms;         /* per call, 0 = 10 s */
    /* Fail fast: while no connection was ever made, a call that sees none
     * within this many ms fails UNAVAILABLE ("cannot connect to URL:
     * nothing listening") instead of waiting its whole timeout.  0 = off. */
    uint32_t connect_timeout_ms;
} tier_client_opts;
int tier_client_open_opts(tier_client **out, const char *url, const tier_client_opts *opts,
                          tier_error *err);
void tier_client_close(tier_client *c);
/* Per-call timeout for later calls (default 10 s). */
void tier_client_set_timeout(tier_client *c, uint32_t timeout_ms);
/* Waits up to ms for a connection to any of the addresses: TIER_OK, or
 * TIER_UNAVAILABLE when none came (nothing listening, or TLS refused).
 * Optional -- calls wait for a connection by themselves -- but it lets a
 * tool fail fast instead of after a whole call timeout. */
int tier_client_wait_connected(tier_client *c, uint32_t ms);

/* Frees any reply returned by the functions below. */
void tier_free(void *reply);

/* Health: SERVING, or NOT_SERVING naming the dependency that is down. */
int tier_health(tier_client *c, const Tier__Rpc__HealthRequest *req, Tier__Rpc__HealthReply **reply,
                tier_error *err);

/* ---- tiering */

/* Registers a file already in the default level's directory.
 * INVALID_ARGUMENT bad name, FAILED_PRECONDITION file missing,
 * ALREADY_EXISTS cid or filename taken. */
int tier_add_content(tier_client *c, const Tier__AddContentRequest *req,
                     Tier__AddContentReply **reply, tier_error *err);
/* Registers many files of the default level at once (tierctl import): one
 * result per item, in request order, each OK with its content or its own
 * error -- the same as AddContent's, ALREADY_EXISTS for a taken filename or
 * cid.  At most 5000 items (INVALID_ARGUMENT for the whole call beyond). */
int tier_add_contents(tier_client *c, const Tier__AddContentsRequest *req,
                      Tier__AddContentsReply **reply, tier_error *err);
/* Reports view counts; one result per report (NOT_FOUND per unknown cid). */
int tier_report_views(tier_client *c, const Tier__ReportViewsRequest *req,
                      Tier__ReportViewsReply **reply, tier_error *err);
/* A content and its active move job, if any.  NOT_FOUND for unknown cids. */
int tier_get_content(tier_client *c, const Tier__GetContentRequest *req,
                     Tier__GetContentReply **reply, tier_error *err);
/* Level changes of a content, newest first. */
int tier_get_history(tier_client *c, const Tier__GetHistoryRequest *req,
                     Tier__GetHistoryReply **reply, tier_error *err);
/* The level table. */
int tier_list_levels(tier_client *c, const Tier__ListLevelsRequest *req,
                     Tier__ListLevelsReply **reply, tier_error *err);
/* Replaces the level table (INVALID_ARGUMENT on gaps, overlaps, ...). */
int tier_set_levels(tier_client *c, const Tier__SetLevelsRequest *req,
                    Tier__ListLevelsReply **reply, tier_error *err);
/* Move jobs, optionally of one status. */
int tier_list_jobs(tier_client *c, const Tier__ListJobsRequest *req, Tier__ListJobsReply **reply,
                   tier_error *err);
/* The active job of a content.  NOT_FOUND when it has none. */
int tier_get_job(tier_client *c, const Tier__GetJobRequest *req, Tier__GetJobReply **reply,
                 tier_error *err);
/* Operator control (tier.proto, JobControlRequest): a failed job again now;
 * or leave the content on its MySQL level. */
int tier_retry_job(tier_client *c, const Tier__JobControlRequest *req,
                   Tier__JobControlReply **reply, tier_error *err);
int tier_cancel_job(tier_client *c, const Tier__JobControlRequest *req,
                    Tier__JobControlReply **reply, tier_error *err);

/* ---- worker protocol (used by tier-worker) */

/* Claims jobs; per job OK (yours, with a lease) or why not. */
int tier_claim_job(tier_client *c, const Tier__ClaimJobRequest *req, Tier__ClaimJobReply **reply,
                   tier_error *err);
/* Extends the leases of jobs being worked on. */
int tier_renew_lease(tier_client *c, const Tier__RenewLeaseRequest *req,
                     Tier__RenewLeaseReply **reply, tier_error *err);
/* Reports moves done; OK per job once its level is durable in MySQL. */
int tier_complete_job(tier_client *c, const Tier__CompleteJobRequest *req,
                      Tier__CompleteJobReply **reply, tier_error *err);
/* Reports a failed move (permanent: parked; else retried later). */
int tier_fail_job(tier_client *c, const Tier__FailJobRequest *req, Tier__FailJobReply **reply,
                  tier_error *err);

/* ---- ranking */

/* Posts one comment (server time); durable when OK. */
int tier_post_comment(tier_client *c, const Tier__PostCommentRequest *req,
                      Tier__PostCommentReply **reply, tier_error *err);
/* Posts a batch (imports, backfill with time_ms); one result per comment. */
int tier_post_comments(tier_client *c, const Tier__PostCommentsRequest *req,
                       Tier__PostCommentsReply **reply, tier_error *err);
/* Replaces a comment's body; NOT_FOUND for unknown ids. */
int tier_edit_comment(tier_client *c, const Tier__EditCommentRequest *req,
                      Tier__CommentReply **reply, tier_error *err);
/* Soft-deletes a comment; FAILED_PRECONDITION if already deleted. */
int tier_delete_comment(tier_client *c, const Tier__DeleteCommentRequest *req,
                        Tier__CommentReply **reply, tier_error *err);
/* Restores a deleted comment; FAILED_PRECONDITION if it is live. */
int tier_restore_comment(tier_client *c, const Tier__RestoreCommentRequest *req,
                         Tier__CommentReply **reply, tier_error *err);
/* Batches of up to 10000 changes (tier.proto says how each item is
 * judged): one result per item, in order; OK when the batch was applied
 * (then look at each result's code). */
int tier_delete_comments(tier_client *c, const Tier__DeleteCommentsRequest *req,
                         Tier__CommentsReply **reply, tier_error *err);
int tier_restore_comments(tier_client *c, const Tier__RestoreCommentsRequest *req,
                          Tier__CommentsReply **reply, tier_error *err);
int tier_edit_comments(tier_client *c, const Tier__EditCommentsRequest *req,
                       Tier__CommentsReply **reply, tier_error *err);
/* Deletes up to req->limit of an author's live comments (every shard);
 * call again until reply->remaining is 0. */
int tier_delete_by_author(tier_client *c, const Tier__DeleteByAuthorRequest *req,
                          Tier__DeleteByAuthorReply **reply, tier_error *err);
/* Contents by comment-count change over [from, to): exact. */
int tier_top_contents(tier_client *c, const Tier__TopContentsRequest *req,
                      Tier__TopContentsReply **reply, tier_error *err);
/* Newest live comments of a content, paged with a cursor. */
int tier_latest_comments(tier_client *c, const Tier__LatestCommentsRequest *req,
                         Tier__LatestCommentsReply **reply, tier_error *err);
/*
 * One step of following a top list (WatchTop, a long poll): answered at
 * once when tierd's list is not req->version, else when it changes or
 * after req->wait_ms (changed = false, no rows).  The call's timeout is
 * the hold (wait_ms, 0 = 30 s, at most 60 s) plus the client's timeout, so
 * a held call is never cut short.  Loop, sending the version got back:
 *
 *   req.version = 0;
 *   for (;;) {
 *       if (tier_watch_top(c, &req, &rep, &err) != TIER_OK) break;
 *       if (rep->changed) show(rep->rows, rep->n_rows);
 *       req.version = rep->version;
 *       tier_free(rep);
 *   }
 *
 * With several shards any owner answers with the merged list (use
 * tier_cluster_client_for(cl, 0) for a cluster handle).  A held call
 * keeps one of the client's calls in flight (64 at once) for its hold: a
 * program that watches many lists and makes other calls on the same client
 * should count them in.
 */
int tier_watch_top(tier_client *c, const Tier__WatchTopRequest *req, Tier__WatchTopReply **reply,
                   tier_error *err);

/* ---- workers */

/* A worker's beat (tier-worker sends them; a worker token is needed). */
int tier_heartbeat(tier_client *c, const Tier__HeartbeatRequest *req, Tier__HeartbeatReply **reply,
                   tier_error *err);
/* The workers tierd heard from: alive first. */
int tier_list_workers(tier_client *c, const Tier__ListWorkersRequest *req,
                      Tier__ListWorkersReply **reply, tier_error *err);

/* ---- the dashboard */

/* Levels (contents, bytes), jobs by state, workers alive and the last
 * hour's reports, moves and comments in 10 s steps (docs/DASHBOARD.md). */
int tier_get_stats(tier_client *c, const Tier__GetStatsRequest *req, Tier__GetStatsReply **reply,
                   tier_error *err);

/* ---- the tiering policy (docs/POLICY.md) */

/* The current policy: version 0, mode "seed" until one was ever set. */
int tier_get_policy(tier_client *c, const Tier__GetPolicyRequest *req, Tier__GetPolicyReply **reply,
                    tier_error *err);
/* Replaces the policy, validated whole against the level table
 * (INVALID_ARGUMENT naming the field); the reply holds it as stored.  With
 * req->dry_run nothing changes and the reply's plan says what it would move. */
int tier_set_policy(tier_client *c, const Tier__SetPolicyRequest *req, Tier__SetPolicyReply **reply,
                    tier_error *err);
/* What the current (or a proposed) policy and level table would move now;
 * changes nothing. */
int tier_plan_moves(tier_client *c, const Tier__PlanMovesRequest *req, Tier__Plan **reply,
                    tier_error *err);
/* An operator's forced move of one content to a level, now. */
int tier_move_content(tier_client *c, const Tier__MoveContentRequest *req,
                      Tier__MoveContentReply **reply, tier_error *err);

/* ---- several coordinators (docs/CLUSTER.md) */

/* Which tierd serves which shard of the slots now, from any tierd. */
int tier_topology(tier_client *c, const Tier__TopologyRequest *req, Tier__TopologyReply **reply,
                  tier_error *err);

/* ---- routing to the owner of each cid (docs/CLUSTER.md, Routing)
 *
 *   tier_cluster *cl;
 *   tier_cluster_open(&cl, "tcp://10.0.0.1:7400,tcp://10.0.0.2:7400", &opts, &err);
 *   tier_cluster_report_views(cl, &req, &rep, &err);   // cut by shard, merged
 *   tier_get_content(tier_cluster_client_for(cl, 7), &g, &grep, &err);
 *   tier_cluster_close(cl);
 *
 * A cluster handle fetches the Topology from the seeds (any tierds of the
 * cluster, dialled like tier_client_open's URL list) and keeps one
 * tier_client per shard owner, opened with the same opts.  A cluster of
 * one shard (a single tierd, or a writer and its standbys) is served
 * through the seeds themselves.  Safe from many threads.
 *
 * Routed calls (tier_cluster_*) follow moves: when an owner answers
 * FAILED_PRECONDITION with err.moved_to set (the shard is served elsewhere
 * now), or an owner cannot be reached (UNAVAILABLE; a shard with no owner
 * right now counts as unreachable), the topology is fetched again and the
 * call (or the batch's unanswered parts) sent again: at most 3 more times,
 * 50, 100, 200 ms apart, and never past the per-call timeout (opts
 * timeout_ms, 10 s by default), counted from the routed call's start.  The
 * last error is returned.  A batch that fails may have been applied in
 * part (the parts that were answered): like any failed call, send it again
 * (tierd's calls are safe to repeat, tier.proto says how). */
typedef struct tier_cluster tier_cluster;
/* seeds: one URL or several separated by commas.  Fails when no seed
 * answers Topology (UNAVAILABLE, ...) or its reply is malformed (INTERNAL). */
int tier_cluster_open(tier_cluster **out, const char *seeds, const tier_client_opts *opts,
                      tier_error *err);
void tier_cluster_close(tier_cluster *cl);
/* Fetches the topology again (from the seeds, else from any owner known).
 * FAILED_PRECONDITION if the cluster now says another shard count. */
int tier_cluster_refresh(tier_cluster *cl, tier_error *err);
/* The cluster's shard count (1 for a single tierd). */
unsigned tier_cluster_shards(tier_cluster *cl);
/* The client of cid's shard owner as last fetched, NULL when the shard has
 * no owner now; any owner (or the seeds) for tier_cluster_any.  Valid until
 * tier_cluster_close, however the topology changes; calls on them are not
 * routed again. */
tier_client *tier_cluster_client_for(tier_cluster *cl, int64_t cid);
tier_client *tier_cluster_any(tier_cluster *cl);
/* The rpc URL of cid's shard owner into buf ("the seeds" for one shard):
 * TIER_OK, or UNAVAILABLE when it has none now. */
int tier_cluster_owner_url(tier_cluster *cl, int64_t cid, char *buf, size_t len);

/* Batches, cut by shard: each part goes to its shard's owner (all parts at
 * once, a thread each) and the results come back in request order, one per item, as
 * from one tierd.  AddContents items without a cid go to any one owner
 * (which picks a cid). */
int tier_cluster_report_views(tier_cluster *cl, const Tier__ReportViewsRequest *req,
                              Tier__ReportViewsReply **reply, tier_error *err);
int tier_cluster_add_contents(tier_cluster *cl, const Tier__AddContentsRequest *req,
                              Tier__AddContentsReply **reply, tier_error *err);
int tier_cluster_post_comments(tier_cluster *cl, const Tier__PostCommentsRequest *req,
                               Tier__PostCommentsReply **reply, tier_error *err);
/* One cid's calls, sent to req->cid's owner. */
int tier_cluster_get_content(tier_cluster *cl, const Tier__GetContentRequest *req,
                             Tier__GetContentReply **reply, tier_error *err);
int tier_cluster_get_history(tier_cluster *cl, const Tier__GetHistoryRequest *req,
                             Tier__GetHistoryReply **reply, tier_error *err);
int tier_cluster_get_job(tier_cluster *cl, const Tier__GetJobRequest *req,
                         Tier__GetJobReply **reply, tier_error *err);
int tier_cluster_retry_job(tier_cluster *cl, const Tier__JobControlRequest *req,
                           Tier__JobControlReply **reply, tier_error *err);
int tier_cluster_cancel_job(tier_cluster *cl, const Tier__JobControlRequest *req,
                            Tier__JobControlReply **reply, tier_error *err);
int tier_cluster_move_content(tier_cluster *cl, const Tier__MoveContentRequest *req,
                              Tier__MoveContentReply **reply, tier_error *err);
int tier_cluster_post_comment(tier_cluster *cl, const Tier__PostCommentRequest *req,
                              Tier__PostCommentReply **reply, tier_error *err);
int tier_cluster_latest_comments(tier_cluster *cl, const Tier__LatestCommentsRequest *req,
                                 Tier__LatestCommentsReply **reply, tier_error *err);
/* A comment's edit, delete or restore, by its id: to the shard that made
 * it (id % shards), following a MOVED for comments older than the
 * cluster's shards. */
int tier_cluster_edit_comment(tier_cluster *cl, const Tier__EditCommentRequest *req,
                              Tier__CommentReply **reply, tier_error *err);
int tier_cluster_delete_comment(tier_cluster *cl, const Tier__DeleteCommentRequest *req,
                                Tier__CommentReply **reply, tier_error *err);
int tier_cluster_restore_comment(tier_cluster *cl, const Tier__RestoreCommentRequest *req,
                                 Tier__CommentReply **reply, tier_error *err);
/* Batches of comment changes, cut by id % shards and sent in parallel;
 * the results come back in request order (a comment older than the
 * cluster's shards is reported "moved" in its result). */
int tier_cluster_delete_comments(tier_cluster *cl, const Tier__DeleteCommentsRequest *req,
                                 Tier__CommentsReply **reply, tier_error *err);
int tier_cluster_restore_comments(tier_cluster *cl, const Tier__RestoreCommentsRequest *req,
                                  Tier__CommentsReply **reply, tier_error *err);
int tier_cluster_edit_comments(tier_cluster *cl, const Tier__EditCommentsRequest *req,
                               Tier__CommentsReply **reply, tier_error *err);
/* DeleteByAuthor through any tierd (it covers every shard). */
int tier_cluster_delete_by_author(tier_cluster *cl, const Tier__DeleteByAuthorRequest *req,
                                  Tier__DeleteByAuthorReply **reply, tier_error *err);

/* ---- fsck */

/* Compares MySQL, Redis and the level directories; repairs what is safe
 * when req->repair.  req->last: the last background scrub's result
 * (NOT_FOUND when none ran yet). */
int tier_scrub(tier_client *c, const Tier__ScrubRequest *req, Tier__ScrubReply **reply,
               tier_error *err);

#endif
