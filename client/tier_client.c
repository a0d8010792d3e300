/*
 * tier_client.c -- libtier: one function per method, all the same shape,
 * so they are stamped out by one macro over tier_rpc_call().
 *
 * Several addresses ("URL,URL,..."): the rpc layer dials them all on one
 * REQ socket (tier_rpc_client_open), so a call goes to whichever tierd is
 * connected -- a standby listens only once it is the writer -- and is
 * resent at once to another when its connection drops.
 */
#include "tier_client.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "tier_client_internal.h"
#include "tier_methods.h"

struct tier_client {
    tier_rpc_client *rpc;
    uint32_t timeout_ms;
    uint32_t connect_timeout_ms; /* 0: no fail-fast check */
    atomic_bool connected;       /* a connection was seen once: no more checks */
    char url[1024];              /* for messages */
};

/* The fail-fast check (tier_client_opts.connect_timeout_ms). */
static int first_connection(tier_client *c, uint32_t timeout_ms, tier_error *err)
{
    uint32_t wait = c->connect_timeout_ms;

    if (wait == 0 || atomic_load(&c->connected))
        return TIER_OK;
    if (timeout_ms != 0 && timeout_ms < wait)
        wait = timeout_ms;
    if (tier_rpc_client_wait_connected(c->rpc, wait) != TIER_OK) {
        if (err != NULL) {
            err->code = TIER_UNAVAILABLE;
            snprintf(err->message, sizeof(err->message),
                     "cannot connect to %.190s: nothing listening (or TLS refused)", c->url);
            err->moved_to[0] = '\0';
        }
        return TIER_UNAVAILABLE;
    }
    atomic_store(&c->connected, true);
    return TIER_OK;
}

int tier_client_open_opts(tier_client **out, const char *url, const tier_client_opts *opts,
                          tier_error *err)
{
    tier_rpc_client_opts ro = {0};
    tier_client *c;
    int rv;

    if (url == NULL)
        return TIER_INVALID_ARGUMENT;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    if (opts != NULL) {
        ro.bearer_token = opts->token;
        ro.tls.ca_file = opts->tls_ca_file;
        ro.tls.server_name = opts->tls_server_name;
        c->timeout_ms = opts->timeout_ms;
        c->connect_timeout_ms = opts->connect_timeout_ms;
    }
    snprintf(c->url, sizeof(c->url), "%s", url);
    if ((rv = tier_rpc_client_open(&c->rpc, url, &ro, err)) != TIER_OK) {
        free(c);
        return rv;
    }
    *out = c;
    return TIER_OK;
}

int tier_client_open(tier_client **out, const char *url)
{
    return tier_client_open_opts(out, url, NULL, NULL);
}

void tier_client_close(tier_client *c)
{
    if (c == NULL)
        return;
    tier_rpc_client_close(c->rpc);
    free(c);
}

void tier_client_set_timeout(tier_client *c, uint32_t timeout_ms)
{
    c->timeout_ms = timeout_ms;
}

int tier_client_wait_connected(tier_client *c, uint32_t ms)
{
    return tier_rpc_client_wait_connected(c->rpc, ms);
}

void tier_free(void *reply)
{
    if (reply != NULL)
        protobuf_c_message_free_unpacked(reply, NULL);
}

int tier_client_call(tier_client *c, const char *method, const ProtobufCMessage *req,
                     const ProtobufCMessageDescriptor *reply_desc, ProtobufCMessage **reply,
                     tier_error *err)
{
    int rv = first_connection(c, c->timeout_ms, err);

    if (rv != TIER_OK) {
        *reply = NULL;
        return rv;
    }
    return tier_rpc_call(c->rpc, method, req, reply_desc, reply, c->timeout_ms, err);
}

uint32_t tier_client_timeout(const tier_client *c)
{
    return c->timeout_ms != 0 ? c->timeout_ms : TIER_RPC_TIMEOUT_DEFAULT_MS;
}

#define TIER_METHOD(fn, name, Req, Rep, desc)                                                      \
    int fn(tier_client *c, const Req *req, Rep **reply, tier_error *err)                           \
    {                                                                                              \
        return tier_client_call(c, name, &req->base, &desc, (ProtobufCMessage **)reply, err);      \
    }

TIER_METHOD(tier_health, TIER_RPC_HEALTH_METHOD, Tier__Rpc__HealthRequest, Tier__Rpc__HealthReply,
            tier__rpc__health_reply__descriptor)
TIER_METHOD(tier_add_content, TIER_M_ADD_CONTENT, Tier__AddContentRequest, Tier__AddContentReply,
            tier__add_content_reply__descriptor)
TIER_METHOD(tier_add_contents, TIER_M_ADD_CONTENTS, Tier__AddContentsRequest,
            Tier__AddContentsReply, tier__add_contents_reply__descriptor)
TIER_METHOD(tier_report_views, TIER_M_REPORT_VIEWS, Tier__ReportViewsRequest,
            Tier__ReportViewsReply, tier__report_views_reply__descriptor)
TIER_METHOD(tier_get_content, TIER_M_GET_CONTENT, Tier__GetContentRequest, Tier__GetContentReply,
            tier__get_content_reply__descriptor)
TIER_METHOD(tier_get_history, TIER_M_GET_HISTORY, Tier__GetHistoryRequest, Tier__GetHistoryReply,
            tier__get_history_reply__descriptor)
TIER_METHOD(tier_list_levels, TIER_M_LIST_LEVELS, Tier__ListLevelsRequest, Tier__ListLevelsReply,
            tier__list_levels_reply__descriptor)
TIER_METHOD(tier_set_levels, TIER_M_SET_LEVELS, Tier__SetLevelsRequest, Tier__ListLevelsReply,
            tier__list_levels_reply__descriptor)
TIER_METHOD(tier_list_jobs, TIER_M_LIST_JOBS, Tier__ListJobsRequest, Tier__ListJobsReply,
            tier__list_jobs_reply__descriptor)
TIER_METHOD(tier_get_job, TIER_M_GET_JOB, Tier__GetJobRequest, Tier__GetJobReply,
            tier__get_job_reply__descriptor)
TIER_METHOD(tier_retry_job, TIER_M_RETRY_JOB, Tier__JobControlRequest, Tier__JobControlReply,
            tier__job_control_reply__descriptor)
TIER_METHOD(tier_cancel_job, TIER_M_CANCEL_JOB, Tier__JobControlRequest, Tier__JobControlReply,
            tier__job_control_reply__descriptor)
TIER_METHOD(tier_claim_job, TIER_M_CLAIM_JOB, Tier__ClaimJobRequest, Tier__ClaimJobReply,
            tier__claim_job_reply__descriptor)
TIER_METHOD(tier_renew_lease, TIER_M_RENEW_LEASE, Tier__RenewLeaseRequest, Tier__RenewLeaseReply,
            tier__renew_lease_reply__descriptor)
TIER_METHOD(tier_complete_job, TIER_M_COMPLETE_JOB, Tier__CompleteJobRequest,
            Tier__CompleteJobReply, tier__complete_job_reply__descriptor)
TIER_METHOD(tier_fail_job, TIER_M_FAIL_JOB, Tier__FailJobRequest, Tier__FailJobReply,
            tier__fail_job_reply__descriptor)
TIER_METHOD(tier_post_comment, TIER_M_POST_COMMENT, Tier__PostCommentRequest,
            Tier__PostCommentReply, tier__post_comment_reply__descriptor)
TIER_METHOD(tier_post_comments, TIER_M_POST_COMMENTS, Tier__PostCommentsRequest,
            Tier__PostCommentsReply, tier__post_comments_reply__descriptor)
TIER_METHOD(tier_edit_comment, TIER_M_EDIT_COMMENT, Tier__EditCommentRequest, Tier__CommentReply,
            tier__comment_reply__descriptor)
TIER_METHOD(tier_delete_comment, TIER_M_DELETE_COMMENT, Tier__DeleteCommentRequest,
            Tier__CommentReply, tier__comment_reply__descriptor)
TIER_METHOD(tier_restore_comment, TIER_M_RESTORE_COMMENT, Tier__RestoreCommentRequest,
            Tier__CommentReply, tier__comment_reply__descriptor)
TIER_METHOD(tier_delete_comments, TIER_M_DELETE_COMMENTS, Tier__DeleteCommentsRequest,
            Tier__CommentsReply, tier__comments_reply__descriptor)
TIER_METHOD(tier_restore_comments, TIER_M_RESTORE_COMMENTS, Tier__RestoreCommentsRequest,
            Tier__CommentsReply, tier__comments_reply__descriptor)
TIER_METHOD(tier_edit_comments, TIER_M_EDIT_COMMENTS, Tier__EditCommentsRequest,
            Tier__CommentsReply, tier__comments_reply__descriptor)
TIER_METHOD(tier_delete_by_author, TIER_M_DELETE_BY_AUTHOR, Tier__DeleteByAuthorRequest,
            Tier__DeleteByAuthorReply, tier__delete_by_author_reply__descriptor)
TIER_METHOD(tier_top_contents, TIER_M_TOP_CONTENTS, Tier__TopContentsRequest,
            Tier__TopContentsReply, tier__top_contents_reply__descriptor)
TIER_METHOD(tier_latest_comments, TIER_M_LATEST_COMMENTS, Tier__LatestCommentsRequest,
            Tier__LatestCommentsReply, tier__latest_comments_reply__descriptor)

int tier_watch_top(tier_client *c, const Tier__WatchTopRequest *req, Tier__WatchTopReply **reply,
                   tier_error *err)
{
    uint32_t hold = req->wait_ms == 0 ? 30000 : req->wait_ms > 60000 ? 60000 : req->wait_ms;
    uint32_t timeout = hold + tier_client_timeout(c);
    int rv = first_connection(c, tier_client_timeout(c), err);

    if (rv != TIER_OK) {
        *reply = NULL;
        return rv;
    }
    return tier_rpc_call(c->rpc, TIER_M_WATCH_TOP, &req->base, &tier__watch_top_reply__descriptor,
                         (ProtobufCMessage **)reply, timeout, err);
}

/* fsck */
TIER_METHOD(tier_heartbeat, TIER_M_HEARTBEAT, Tier__HeartbeatRequest, Tier__HeartbeatReply,
            tier__heartbeat_reply__descriptor)
TIER_METHOD(tier_list_workers, TIER_M_LIST_WORKERS, Tier__ListWorkersRequest,
            Tier__ListWorkersReply, tier__list_workers_reply__descriptor)
TIER_METHOD(tier_get_stats, TIER_M_GET_STATS, Tier__GetStatsRequest, Tier__GetStatsReply,
            tier__get_stats_reply__descriptor)
TIER_METHOD(tier_scrub, TIER_M_SCRUB, Tier__ScrubRequest, Tier__ScrubReply,
            tier__scrub_reply__descriptor)
TIER_METHOD(tier_get_policy, TIER_M_GET_POLICY, Tier__GetPolicyRequest, Tier__GetPolicyReply,
            tier__get_policy_reply__descriptor)
TIER_METHOD(tier_set_policy, TIER_M_SET_POLICY, Tier__SetPolicyRequest, Tier__SetPolicyReply,
            tier__set_policy_reply__descriptor)
TIER_METHOD(tier_plan_moves, TIER_M_PLAN_MOVES, Tier__PlanMovesRequest, Tier__Plan,
            tier__plan__descriptor)
TIER_METHOD(tier_move_content, TIER_M_MOVE_CONTENT, Tier__MoveContentRequest,
            Tier__MoveContentReply, tier__move_content_reply__descriptor)
TIER_METHOD(tier_topology, TIER_M_TOPOLOGY, Tier__TopologyRequest, Tier__TopologyReply,
            tier__topology_reply__descriptor)
