/*
 * tier_methods.h -- the wire names of tier's methods, shared by tierd
 * (which registers them) and libtier (which calls them).
 */
#ifndef TIER_METHODS_H
#define TIER_METHODS_H

#define TIER_M_ADD_CONTENT "tier.Tier/AddContent"
#define TIER_M_ADD_CONTENTS "tier.Tier/AddContents"
#define TIER_M_REPORT_VIEWS "tier.Tier/ReportViews"
#define TIER_M_GET_CONTENT "tier.Tier/GetContent"
#define TIER_M_GET_HISTORY "tier.Tier/GetHistory"
#define TIER_M_LIST_LEVELS "tier.Tier/ListLevels"
#define TIER_M_SET_LEVELS "tier.Tier/SetLevels"
#define TIER_M_LIST_JOBS "tier.Tier/ListJobs"
#define TIER_M_GET_JOB "tier.Tier/GetJob"
#define TIER_M_RETRY_JOB "tier.Tier/RetryJob"
#define TIER_M_CANCEL_JOB "tier.Tier/CancelJob"
#define TIER_M_CLAIM_JOB "tier.Tier/ClaimJob"
#define TIER_M_RENEW_LEASE "tier.Tier/RenewLease"
#define TIER_M_COMPLETE_JOB "tier.Tier/CompleteJob"
#define TIER_M_FAIL_JOB "tier.Tier/FailJob"
#define TIER_M_POST_COMMENT "tier.Tier/PostComment"
#define TIER_M_POST_COMMENTS "tier.Tier/PostComments"
#define TIER_M_EDIT_COMMENT "tier.Tier/EditComment"
#define TIER_M_DELETE_COMMENT "tier.Tier/DeleteComment"
#define TIER_M_RESTORE_COMMENT "tier.Tier/RestoreComment"
#define TIER_M_DELETE_COMMENTS "tier.Tier/DeleteComments"
#define TIER_M_RESTORE_COMMENTS "tier.Tier/RestoreComments"
#define TIER_M_EDIT_COMMENTS "tier.Tier/EditComments"
#define TIER_M_DELETE_BY_AUTHOR "tier.Tier/DeleteByAuthor"
#define TIER_M_TOP_CONTENTS "tier.Tier/TopContents"
#define TIER_M_LATEST_COMMENTS "tier.Tier/LatestComments"
#define TIER_M_WATCH_TOP "tier.Tier/WatchTop"

/* fsck */
#define TIER_M_SCRUB "tier.Tier/Scrub"

/* workers */
#define TIER_M_HEARTBEAT "tier.Tier/Heartbeat"
#define TIER_M_LIST_WORKERS "tier.Tier/ListWorkers"

/* the dashboard */
#define TIER_M_GET_STATS "tier.Tier/GetStats"

/* the tiering policy */
#define TIER_M_GET_POLICY "tier.Tier/GetPolicy"
#define TIER_M_SET_POLICY "tier.Tier/SetPolicy"
#define TIER_M_PLAN_MOVES "tier.Tier/PlanMoves"
#define TIER_M_MOVE_CONTENT "tier.Tier/MoveContent"

/* several coordinators (docs/CLUSTER.md) */
#define TIER_M_TOPOLOGY "tier.Tier/Topology"

#endif
