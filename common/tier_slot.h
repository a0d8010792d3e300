/*
 * tier_slot.h -- which coordinator owns a content: cid -> slot -> shard.
 *
 * Several tierds split the contents the way Redis Cluster splits keys:
 *
 *   slot   = CRC32(decimal text of cid) % TIER_SLOTS
 *   shard  = the contiguous range of slots it falls in, of `shards`
 *            equal ranges (tier_slot_shard)
 *
 * CRC32 is the IEEE polynomial, the one MariaDB's CRC32() computes, so a
 * shard loads its own rows by the stored slot column (sql/012, computed by
 * MariaDB) and agrees with this file bit for bit (tests/test_shards.c: a
 * new writer loads exactly the contents whose cids this file gave its
 * shard).  Hashing the decimal text rather than taking cid modulo
 * spreads cids a client picks in strides (multiples of 1024) evenly.
 *
 * Invariant: the mapping is a pure function of (cid, shards).  Every tierd
 * and every client of one cluster must use the same `shards`; tierd
 * refuses to start when MySQL's cluster row says otherwise (sql/009).
 * Only shard -> host changes at run time (docs/CLUSTER.md).
 */
#ifndef TIER_SLOT_H
#define TIER_SLOT_H

#include <stddef.h>
#include <stdint.h>

#define TIER_SLOTS 1024
#define TIER_SHARDS_MAX 128 /* writer_fence ids are 1..128 */

/* The IEEE CRC32 of buf (zlib's and MariaDB's crc32). */
uint32_t tier_crc32(const void *buf, size_t len);

/* 0 .. TIER_SLOTS-1. */
unsigned tier_slot_of(int64_t cid);

/* The shard of slot among shards (1..TIER_SHARDS_MAX): slot*shards/SLOTS. */
unsigned tier_slot_shard(unsigned slot, unsigned shards);

/* tier_slot_shard(tier_slot_of(cid), shards). */
unsigned tier_shard_of(int64_t cid, unsigned shards);

/* The first and last slot of shard (inclusive). */
void tier_shard_slots(unsigned shard, unsigned shards, unsigned *lo, unsigned *hi);

#endif
