/*
 * tier_rpc_int.h -- pieces of the RPC layer shared by its own files only:
 * the per-thread arena, the cache that dedupes resent requests and the
 * table of the server's connections.
 */
#ifndef TIER_RPC_INT_H
#define TIER_RPC_INT_H

#include <nng/nng.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

/* ---- arena: bump allocation, freed all at once after each call. */

typedef struct tier_rpc_arena_block tier_rpc_arena_block;
typedef struct {
    tier_rpc_arena_block *head; /* newest block; the first one is kept on reset */
    ProtobufCAllocator pbc;     /* protobuf-c allocator drawing from this arena */
} tier_rpc_arena;

void tier_rpc_arena_init(tier_rpc_arena *a);
void *tier_rpc_arena_alloc(tier_rpc_arena *a, size_t size); /* zeroed, NULL if out of memory */
void tier_rpc_arena_reset(tier_rpc_arena *a);
void tier_rpc_arena_fini(tier_rpc_arena *a);

/* ---- dedupe: replies of recent calls by (client id, request id, caller
 * id), each remembered with its method.  The caller id (tier_rpc_caller.id)
 * keeps one credential from being answered with another's reply. */

typedef struct tier_rpc_dedupe tier_rpc_dedupe;

typedef enum {
    TIER_DEDUPE_NEW,      /* first time seen: run it, then tier_rpc_dedupe_finish */
    TIER_DEDUPE_CACHED,   /* already answered: *reply holds a malloc'ed copy */
    TIER_DEDUPE_BUSY,     /* still running elsewhere past the wait: answer UNAVAILABLE */
    TIER_DEDUPE_MISMATCH, /* the ids were used for another method: INVALID_ARGUMENT */
} tier_dedupe_result;

/* At most `capacity` entries holding at most `budget` bytes of replies,
 * oldest evicted first. */
tier_rpc_dedupe *tier_rpc_dedupe_alloc(unsigned capacity, size_t budget);
void tier_rpc_dedupe_free(tier_rpc_dedupe *d);
/* Looks the call up, registering it as running when new.  A call running
 * elsewhere is waited for until wait_until_us (monotonic).  `method` must
 * outlive the cache (the server's method table). */
tier_dedupe_result tier_rpc_dedupe_begin(tier_rpc_dedupe *d, uint64_t client, uint64_t request,
                                         uint64_t caller, const char *method, int64_t wait_until_us,
                                         void **reply, size_t *len);
/* Stores the packed reply envelope of a call begun with NEW. */
void tier_rpc_dedupe_finish(tier_rpc_dedupe *d, uint64_t client, uint64_t request, uint64_t caller,
                            const void *reply, size_t len);
/* What the cache holds now. */
void tier_rpc_dedupe_stats(tier_rpc_dedupe *d, uint64_t *bytes, uint64_t *entries);

/* ---- conns: caps on a server's connections, and closing idle ones. */

typedef struct tier_rpc_conns tier_rpc_conns;

tier_rpc_conns *tier_rpc_conns_alloc(unsigned max, unsigned max_per_addr, uint32_t idle_ms);
/* Hooks into sock's pipe notifications: before it listens. */
int tier_rpc_conns_watch(tier_rpc_conns *c, nng_socket sock);
int tier_rpc_conns_start(tier_rpc_conns *c); /* the thread closing idle pipes */
/* Unhooks: before the socket is closed, so its last pipes leave c alone. */
void tier_rpc_conns_unwatch(tier_rpc_conns *c);
void tier_rpc_conns_free(tier_rpc_conns *c); /* stops the thread */
/* A complete request came in on the pipe; its reply went out. */
void tier_rpc_conns_recv(tier_rpc_conns *c, uint32_t pipe_id);
void tier_rpc_conns_sent(tier_rpc_conns *c, uint32_t pipe_id);
void tier_rpc_conns_stats(tier_rpc_conns *c, uint64_t *open, uint64_t *refused,
                          uint64_t *timed_out);

#endif
