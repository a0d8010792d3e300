/*
 * tier_status.h -- the one error vocabulary of the project.
 *
 * Every layer (storage, handlers, rpc, client) reports failure with gRPC's
 * canonical status codes, so an error found deep in MySQL code reaches the
 * caller of libtier with its meaning intact and no translation tables in
 * between.  The numbers equal tier.rpc.Code in proto/rpc.proto.
 */
#ifndef TIER_STATUS_H
#define TIER_STATUS_H

typedef enum {
    TIER_OK = 0,
    TIER_CANCELLED = 1,
    TIER_UNKNOWN = 2,
    TIER_INVALID_ARGUMENT = 3,
    TIER_DEADLINE_EXCEEDED = 4,
    TIER_NOT_FOUND = 5,
    TIER_ALREADY_EXISTS = 6,
    TIER_PERMISSION_DENIED = 7,
    TIER_RESOURCE_EXHAUSTED = 8,
    TIER_FAILED_PRECONDITION = 9,
    TIER_ABORTED = 10,
    TIER_OUT_OF_RANGE = 11,
    TIER_UNIMPLEMENTED = 12,
    TIER_INTERNAL = 13,
    TIER_UNAVAILABLE = 14,
    TIER_DATA_LOSS = 15,
    TIER_UNAUTHENTICATED = 16,
} tier_status;

/* "NOT_FOUND" etc.; "UNKNOWN_CODE" for numbers outside the set. */
const char *tier_status_name(int code);

/* Process exit code for a status, used by the command-line tools:
 * 0 for OK, 64 + code otherwise (so scripts can tell codes apart). */
int tier_status_exit_code(int code);

#endif
