/*
 * tier_rpc_arena.c -- bump allocator for one call's memory.
 *
 * A server thread unpacks the request, builds the reply and packs it out of
 * one arena, then resets it: no malloc/free per field, and handlers cannot
 * leak what they put in a reply.  The first block stays allocated across
 * calls so a steady stream of small calls allocates nothing at all.
 */
#include "tier_rpc_int.h"

#include <stdlib.h>
#include <string.h>

#define ARENA_BLOCK 65536

struct tier_rpc_arena_block {
    tier_rpc_arena_block *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
};

static void *pbc_alloc(void *data, size_t size)
{
    return tier_rpc_arena_alloc(data, size);
}

static void pbc_free(void *data, void *ptr)
{
    (void)data; /* freed with the arena */
    (void)ptr;
}

static tier_rpc_arena_block *block_new(size_t size, tier_rpc_arena_block *next)
{
    tier_rpc_arena_block *b;
    size_t total;

    /* size may come from a peer's count (n items * their size): checked. */
    if (__builtin_add_overflow(sizeof(*b), size, &total) || (b = malloc(total)) == NULL)
        return NULL;
    b->next = next;
    b->used = 0;
    b->size = size;
    return b;
}

void tier_rpc_arena_init(tier_rpc_arena *a)
{
    a->head = NULL;
    a->pbc.alloc = pbc_alloc;
    a->pbc.free = pbc_free;
    a->pbc.allocator_data = a;
}

void *tier_rpc_arena_alloc(tier_rpc_arena *a, size_t size)
{
    size_t need = (size + 15) & ~(size_t)15;
    tier_rpc_arena_block *b = a->head;
    void *p;

    if (need < size)
        return NULL;
    if (b == NULL || b->size - b->used < need) {
        size_t bs = need > ARENA_BLOCK ? need : ARENA_BLOCK;
        b = block_new(bs, a->head);
        if (b == NULL)
            return NULL;
        a->head = b;
    }
    p = b->data + b->used;
    b->used += need;
    memset(p, 0, size);
    return p;
}

void tier_rpc_arena_reset(tier_rpc_arena *a)
{
    tier_rpc_arena_block *b = a->head;

    /* Keep the oldest block (the tail): it is the common case's whole need. */
    while (b != NULL && b->next != NULL) {
        tier_rpc_arena_block *next = b->next;
        free(b);
        b = next;
    }
    if (b != NULL) {
        if (b->size > ARENA_BLOCK) { /* a one-off large call: give it back */
            free(b);
            b = NULL;
        } else {
            b->used = 0;
        }
    }
    a->head = b;
}

void tier_rpc_arena_fini(tier_rpc_arena *a)
{
    tier_rpc_arena_reset(a);
    free(a->head);
    a->head = NULL;
}
