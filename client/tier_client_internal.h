/*
 * tier_client_internal.h -- what libtier's own files share and programs do
 * not see (not installed, not exported by libtier.map): a call by method
 * name on a tier_client, for the cluster routing of tier_cluster.c.
 */
#ifndef TIER_CLIENT_INTERNAL_H
#define TIER_CLIENT_INTERNAL_H

#include "tier_client.h"

/* tier_rpc_call on c's connection with c's timeout and fail-fast check. */
int tier_client_call(tier_client *c, const char *method, const ProtobufCMessage *req,
                     const ProtobufCMessageDescriptor *reply_desc, ProtobufCMessage **reply,
                     tier_error *err);

/* c's per-call timeout in ms (the default when 0 was set). */
uint32_t tier_client_timeout(const tier_client *c);

#endif
