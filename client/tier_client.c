/*
 * tier_client.c -- libtier: one function per method, all the same shape,
 * so they are stamped out by one macro over tier_rpc_call().
 *
 * Several addresses ("URL,URL,..."): one rpc client per address, each
 * connecting (and reconnecting) in the background.  A call goes to the
 * address that answered last; when that one has no connection (the rpc
 * layer's UNAVAILABLE "no connection to ..." after the call's timeout), the
 * call is sent to the next address, and so on once round the list, and the
 * address that answers is remembered.  Only that moves on: whatever a
 * server says (its own UNAVAILABLE too) and a connected server that is slow
 * (DEADLINE_EXCEEDED) are the answer.  The rpc layer can only
 * tell "no connection" when a call times out, so an address that is down
 * costs its calls one timeout before the next is tried.
 */
#include "tier_client.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tier_methods.h"

struct tier_client {
    tier_rpc_client *rpc[TIER_CLIENT_MAX_URLS];
    unsigned n;      /* addresses */
    atomic_uint cur; /* the one that answered last */
    uint32_t timeout_ms;
};

/* Opens one rpc client per comma-separated address of list. */
static int open_all(tier_client *c, const char *list)
{
    char *copy = strdup(list), *save = NULL;
    int rv = TIER_OK;

    if (copy == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    for (char *u = strtok_r(copy, ",", &save); u != NULL && rv == TIER_OK;
         u = strtok_r(NULL, ",", &save)) {
        if (c->n == TIER_CLIENT_MAX_URLS)
            rv = TIER_INVALID_ARGUMENT;
        else if ((rv = tier_rpc_client_open(&c->rpc[c->n], u, NULL)) == TIER_OK)
            c->n++;
    }
    free(copy);
    if (rv == TIER_OK && c->n == 0)
        rv = TIER_INVALID_ARGUMENT; /* "" or "," */
    return rv;
}

int tier_client_open(tier_client **out, const char *url)
{
    tier_client *c;
    int rv;

    if (url == NULL)
        return TIER_INVALID_ARGUMENT;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    atomic_init(&c->cur, 0);
    if ((rv = open_all(c, url)) != TIER_OK) {
        tier_client_close(c);
        return rv;
    }
    *out = c;
    return TIER_OK;
}

void tier_client_close(tier_client *c)
{
    if (c == NULL)
        return;
    for (unsigned i = 0; i < c->n; i++)
        tier_rpc_client_close(c->rpc[i]);
    free(c);
}

/* Whether a failed call never reached a server: the rpc layer's words for
 * a call that timed out with no connection (tier_rpc_client.c).  A server's
 * own UNAVAILABLE (say, Redis down) is its answer, not a reason to move on. */
static bool no_connection(int rv, const tier_error *err)
{
    static const char prefix[] = "no connection to ";

    return rv == TIER_UNAVAILABLE && strncmp(err->message, prefix, sizeof(prefix) - 1) == 0;
}

/* One call, moving on to the next address while the current one has no
 * connection. */
static int call(tier_client *c, const char *method, const ProtobufCMessage *req,
                const ProtobufCMessageDescriptor *desc, ProtobufCMessage **reply, tier_error *err)
{
    unsigned first = atomic_load(&c->cur), i = first;
    tier_error local;
    int rv;

    if (err == NULL)
        err = &local;
    for (unsigned k = 0;; k++) {
        i = (first + k) % c->n;
        rv = tier_rpc_call(c->rpc[i], method, req, desc, reply, c->timeout_ms, err);
        if (!no_connection(rv, err) || k + 1 == c->n)
            break;
    }
    if (!no_connection(rv, err) && i != first)
        atomic_store(&c->cur, i);
    return rv;
}

void tier_client_set_timeout(tier_client *c, uint32_t timeout_ms)
{
    c->timeout_ms = timeout_ms;
}

void tier_free(void *reply)
{
    if (reply != NULL)
        protobuf_c_message_free_unpacked(reply, NULL);
}

#define TIER_METHOD(fn, name, Req, Rep, desc)                                                      \
    int fn(tier_client *c, const Req *req, Rep **reply, tier_error *err)                           \
    {                                                                                              \
        return call(c, name, &req->base, &desc, (ProtobufCMessage **)reply, err);                  \
    }

TIER_METHOD(tier_health, TIER_RPC_HEALTH_METHOD, Tier__Rpc__HealthRequest, Tier__Rpc__HealthReply,
            tier__rpc__health_reply__descriptor)
TIER_METHOD(tier_add_content, TIER_M_ADD_CONTENT, Tier__AddContentRequest, Tier__AddContentReply,
            tier__add_content_reply__descriptor)
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
TIER_METHOD(tier_top_contents, TIER_M_TOP_CONTENTS, Tier__TopContentsRequest,
            Tier__TopContentsReply, tier__top_contents_reply__descriptor)
TIER_METHOD(tier_latest_comments, TIER_M_LATEST_COMMENTS, Tier__LatestCommentsRequest,
            Tier__LatestCommentsReply, tier__latest_comments_reply__descriptor)

/* fsck */
TIER_METHOD(tier_scrub, TIER_M_SCRUB, Tier__ScrubRequest, Tier__ScrubReply,
            tier__scrub_reply__descriptor)
