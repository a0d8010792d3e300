/*
 * tier_slot.c -- cid -> slot -> shard (see tier_slot.h).
 *
 * The CRC32 is written out rather than taken from zlib so that libtier
 * (built from common/) keeps depending on the C library only; it is the
 * reflected 0xEDB88320 polynomial with a table built once.
 */
#include "tier_slot.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t tier_crc32(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uint32_t c = 0xFFFFFFFFu;

    pthread_once(&crc_once, crc_init);
    for (size_t i = 0; i < len; i++)
        c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

unsigned tier_slot_of(int64_t cid)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%" PRId64, cid);

    assert(n > 0 && (size_t)n < sizeof(buf));
    return tier_crc32(buf, (size_t)n) % TIER_SLOTS;
}

unsigned tier_slot_shard(unsigned slot, unsigned shards)
{
    assert(slot < TIER_SLOTS && shards >= 1 && shards <= TIER_SHARDS_MAX);
    return (unsigned)((uint64_t)slot * shards / TIER_SLOTS);
}

unsigned tier_shard_of(int64_t cid, unsigned shards)
{
    return tier_slot_shard(tier_slot_of(cid), shards);
}

/* The slots s with s*shards/SLOTS == shard: from ceil(shard*SLOTS/shards)
 * to ceil((shard+1)*SLOTS/shards) - 1. */
void tier_shard_slots(unsigned shard, unsigned shards, unsigned *lo, unsigned *hi)
{
    assert(shards >= 1 && shards <= TIER_SHARDS_MAX && shard < shards);
    *lo = (unsigned)(((uint64_t)shard * TIER_SLOTS + shards - 1) / shards);
    *hi = (unsigned)(((uint64_t)(shard + 1) * TIER_SLOTS + shards - 1) / shards) - 1;
}
