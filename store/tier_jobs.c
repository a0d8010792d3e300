/*
 * tier_jobs.c -- see tier_jobs.h.  The Lua scripts of every job transition.
 *
 * Conventions shared by the scripts: ARGV[1] is the key prefix, ARGV[2] the
 * caller's clock (ms since the epoch; one clock, tierd's, decides leases),
 * the rest are the script's items.  Fences are compared as decimal strings,
 * exactly as HINCRBY writes them.  A job's hash and its index entries are
 * changed together in one script, so an index never names a job in another
 * state for longer than a script runs (the reaper also drops stale entries).
 */
#include "tier_jobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier_log.h"
#include "tier_status.h"
#include "tier_writer.h"

/* The scripts, one per transition. */
typedef enum {
    TIER_JOBS_REPORT,  /* create / retarget / cancel / remember a report */
    TIER_JOBS_CLAIM,   /* update -> claimed, fence + 1 */
    TIER_JOBS_RENEW,   /* extend a live lease */
    TIER_JOBS_DONE,    /* claimed -> done (the worker finished) */
    TIER_JOBS_FINISH,  /* done -> deleted or follow-up, after the MySQL commit */
    TIER_JOBS_FAIL,    /* claimed -> failed or back to update */
    TIER_JOBS_REAP,    /* expired leases -> update; due pushes; trim finished */
    TIER_JOBS_RETRY,   /* operator: failed / backing off -> update now */
    TIER_JOBS_CANCEL,  /* operator: delete, or aim a once-claimed job home */
    TIER_JOBS_REQUEUE, /* fsck: a stuck update / long-expired claimed job -> update, due now */
    TIER_JOBS_NSCRIPTS
} tier_jobs_script;

/* ARGV[3] is the writer's fencing token ("" when no writer lease is in
 * use): a script run by a tierd that is no longer the writer changes
 * nothing and fails with FENCED (store/tier_jobs.h).  No lease at all
 * (Redis restarted empty, the key was flushed) is NOWRITER: nothing is
 * changed either, but the caller is not fenced off -- its lease renewal
 * sets the key again or finds it taken (store/tier_writer.h). */
#define PRELUDE                                                                                    \
    "local P = ARGV[1]\n"                                                                          \
    "local now = tonumber(ARGV[2])\n"                                                              \
    "local writer = redis.call('GET', P .. 'writer')\n"                                            \
    "if ARGV[3] ~= '' and writer ~= ARGV[3] then\n"                                                \
    "  if not writer then return redis.error_reply('NOWRITER no writer lease (yet)') end\n"        \
    "  return redis.error_reply('FENCED this tierd is not the writer')\n"                          \
    "end\n"                                                                                        \
    "local function jk(cid) return P .. 'job:' .. cid end\n"                                       \
    "local function unindex(cid)\n"                                                                \
    "  redis.call('ZREM', P .. 'jobs:update', cid)\n"                                              \
    "  redis.call('ZREM', P .. 'jobs:claimed', cid)\n"                                             \
    "  redis.call('SREM', P .. 'jobs:done', cid)\n"                                                \
    "  redis.call('SREM', P .. 'jobs:failed', cid)\n"                                              \
    "end\n"                                                                                        \
    "local function live(k, worker, fence)\n"                                                      \
    "  local v = redis.call('HMGET', k, 'status', 'worker_id', 'fence', 'lease_expires_ms')\n"     \
    "  return v[1] == 'claimed' and v[2] == worker and v[3] == fence and\n"                        \
    "         tonumber(v[4]) > now\n"                                                              \
    "end\n" /* Fences only grow, per content, forever: every job hash that goes                    \
             * away leaves its fence in <P>fences, and a new job starts there. */                  \
    "local function keep_fence(cid, fence)\n"                                                      \
    "  local old = tonumber(redis.call('HGET', P .. 'fences', cid) or '0')\n"                      \
    "  if tonumber(fence) > old then redis.call('HSET', P .. 'fences', cid, fence) end\n"          \
    "end\n" /* A finished job stays listed for `ret` ms as one member of the                       \
             * <P>jobs:finished zset (score = finish time): "cid|fence|attempts|                   \
             * created_ms|db_level|target|filename" -- one ZADD per job, no key                    \
             * of its own (the reaper trims by score and by count). */                             \
    "local function archive(k, cid, ret)\n"                                                        \
    "  if ret <= 0 then return end\n"                                                              \
    "  local v = redis.call('HMGET', k, 'fence', 'attempts', 'created_ms', 'db_level',\n"          \
    "                       'target', 'filename')\n"                                               \
    "  redis.call('ZADD', P .. 'jobs:finished', now, table.concat({cid, v[1] or '0',\n"            \
    "    v[2] or '0', v[3] or '0', v[4] or '', v[5] or '', v[6] or ''}, '|'))\n"                   \
    "end\n"                                                                                        \
    "local function drop(k, cid)\n"                                                                \
    "  keep_fence(cid, redis.call('HGET', k, 'fence') or '0')\n"                                   \
    "  redis.call('DEL', k); unindex(cid)\n"                                                       \
    "end\n" /* Directories where the file of a once-claimed job may be: its source,                \
             * the also list, its destination -- minus the new destination. */                     \
    "local function where(k, newdst)\n"                                                            \
    "  local v = redis.call('HMGET', k, 'src_dir', 'dst_dir', 'also_dirs')\n"                      \
    "  local seen, out = {}, {}\n"                                                                 \
    "  seen[newdst] = true\n"                                                                      \
    "  seen[v[1] or ''] = true\n"                                                                  \
    "  local cand = {v[2] or ''}\n"                                                                \
    "  for d in string.gmatch(v[3] or '', '[^\\n]+') do cand[#cand+1] = d end\n"                   \
    "  for _, d in ipairs(cand) do\n"                                                              \
    "    if d ~= '' and not seen[d] then seen[d] = true; out[#out+1] = d end\n"                    \
    "  end\n"                                                                                      \
    "  return table.concat(out, '\\n')\n"                                                          \
    "end\n"

/* ARGV[4] = first re-push delay; items of 8: cid count target db_level
 * filename src_dir dst_dir migrate ('1': a level migration's move, target
 * == db_level but another directory: treated like a move to another level,
 * never as "already there").  Result per item: {what[, job]} with what one
 * of none (no job, none needed), created, retargeted, cancelled, pending
 * (job claimed or done: the count is kept in `pending` for later).
 *
 * The rule that keeps files where MySQL says (docs/CRASH.md, hole 1): a job
 * that was ever claimed (attempts > 0) may have moved its file already,
 * even if it is back in "update" or "failed" now.  Such a job is never
 * deleted or restarted by a report: it is retargeted, and every directory
 * the file may be in goes into also_dirs, so the next worker finds it
 * wherever it is.  A report for its own db level retargets it back there. */
static const char REPORT[] = PRELUDE
    "local repush = tonumber(ARGV[4])\n"
    "local out = {}\n"
    "for i = 5, #ARGV, 8 do\n"
    "  local cid, count, target, dbl = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3]\n"
    "  local dst, migrate = ARGV[i+6], ARGV[i+7] == '1'\n"
    "  local k = jk(cid)\n"
    "  local v = redis.call('HMGET', k, 'status', 'attempts', 'target')\n"
    "  local st, claimed_once = v[1], tonumber(v[2] or '0') > 0\n"
    "  local what\n"
    "  if st == 'claimed' or st == 'done' then\n"
    "    redis.call('HSET', k, 'pending', count)\n"
    "    what = 'pending'\n"
    "  elseif st and claimed_once then\n"
    "    if v[3] ~= target or migrate then\n"
    "      redis.call('HSET', k, 'also_dirs', where(k, dst), 'target', target, 'dst_dir', dst)\n"
    "    end\n"
    "    redis.call('HSET', k, 'count', count, 'status', 'update', 'updated_ms', now,\n"
    "               'pushes', 1)\n"
    "    redis.call('HDEL', k, 'pending')\n"
    "    redis.call('SREM', P .. 'jobs:failed', cid)\n"
    "    redis.call('ZADD', P .. 'jobs:update', now + repush, cid)\n"
    "    what = 'retargeted'\n"
    "  elseif target == dbl and not migrate then\n"
    "    if st then drop(k, cid); what = 'cancelled'\n"
    "    else what = 'none' end\n"
    "  elseif st == 'update' then\n"
    "    redis.call('HSET', k, 'count', count, 'target', target, 'dst_dir', dst,\n"
    "               'updated_ms', now)\n"
    "    redis.call('HDEL', k, 'pending')\n"
    "    what = 'retargeted'\n"
    "  else\n"
    "    local fence = redis.call('HGET', k, 'fence') or\n"
    "                  redis.call('HGET', P .. 'fences', cid) or '0'\n"
    "    if st then drop(k, cid) end\n"
    "    redis.call('HSET', k, 'cid', cid, 'count', count, 'target', target, 'db_level', dbl,\n"
    "      'filename', ARGV[i+4], 'worker_id', '', 'status', 'update', 'fence', fence,\n"
    "      'lease_expires_ms', 0, 'attempts', 0, 'reason', '', 'src_dir', ARGV[i+5],\n"
    "      'dst_dir', dst, 'also_dirs', '', 'created_ms', now, 'updated_ms', now, 'pushes', 1)\n"
    "    redis.call('ZADD', P .. 'jobs:update', now + repush, cid)\n"
    "    what = 'created'\n"
    "  end\n"
    "  if what == 'none' or what == 'cancelled' then out[#out+1] = {what}\n"
    "  else out[#out+1] = {what, redis.call('HGETALL', k)} end\n"
    "end\n"
    "return out\n";

/* ARGV[4] worker, ARGV[5] lease ms, then cids.  Result per cid: {code[, job]}.
 * A claimed job whose lease ran out (the reaper has not seen it yet) may be
 * claimed again: its holder can no longer complete it anyway. */
static const char CLAIM[] = PRELUDE
    "local w, lease = ARGV[4], tonumber(ARGV[5])\n"
    "local out = {}\n"
    "for i = 6, #ARGV do\n"
    "  local cid = ARGV[i]\n"
    "  local k = jk(cid)\n"
    "  local v = redis.call('HMGET', k, 'status', 'lease_expires_ms')\n"
    "  local st = v[1]\n"
    "  if not st then out[#out+1] = {'NOT_FOUND'}\n"
    "  elseif st == 'claimed' and tonumber(v[2]) > now then out[#out+1] = {'ALREADY_EXISTS'}\n"
    "  elseif st == 'update' or st == 'claimed' then\n"
    "    local exp = now + lease\n"
    "    redis.call('HINCRBY', k, 'fence', 1)\n"
    "    redis.call('HINCRBY', k, 'attempts', 1)\n"
    "    redis.call('HSET', k, 'status', 'claimed', 'worker_id', w, 'lease_expires_ms', exp,\n"
    "               'updated_ms', now)\n"
    "    redis.call('ZREM', P .. 'jobs:update', cid)\n"
    "    redis.call('ZADD', P .. 'jobs:claimed', exp, cid)\n"
    "    out[#out+1] = {'OK', redis.call('HGETALL', k)}\n"
    "  else out[#out+1] = {'FAILED_PRECONDITION'} end\n"
    "end\n"
    "return out\n";

/* ARGV[4] worker, ARGV[5] lease ms, then cid fence pairs.  Result: codes. */
static const char RENEW[] =
    PRELUDE "local w, lease = ARGV[4], tonumber(ARGV[5])\n"
            "local out = {}\n"
            "for i = 6, #ARGV, 2 do\n"
            "  local cid, k = ARGV[i], jk(ARGV[i])\n"
            "  if live(k, w, ARGV[i+1]) then\n"
            "    redis.call('HSET', k, 'lease_expires_ms', now + lease, 'updated_ms', now)\n"
            "    redis.call('ZADD', P .. 'jobs:claimed', now + lease, cid)\n"
            "    out[#out+1] = 'OK'\n"
            "  else out[#out+1] = 'FAILED_PRECONDITION' end\n"
            "end\n"
            "return out\n";

/* ARGV[4] worker, then cid fence pairs.  Result per item: {OK, target,
 * db_level, pending or ''} (now done: commit it), {COMMITTED} (this fence
 * was committed already) or {FAILED_PRECONDITION}.  A job already done by
 * the same worker and fence is OK again: a retry after a lost reply. */
static const char DONE[] = PRELUDE
    "local w = ARGV[4]\n"
    "local out = {}\n"
    "for i = 5, #ARGV, 2 do\n"
    "  local cid, fence = ARGV[i], ARGV[i+1]\n"
    "  local k = jk(cid)\n"
    "  local v = redis.call('HMGET', k, 'status', 'worker_id', 'fence', 'target', 'db_level',\n"
    "                       'pending')\n"
    "  if live(k, w, fence) then\n"
    "    redis.call('HSET', k, 'status', 'done', 'updated_ms', now)\n"
    "    redis.call('ZREM', P .. 'jobs:claimed', cid)\n"
    "    redis.call('SADD', P .. 'jobs:done', cid)\n"
    "    out[#out+1] = {'OK', v[4], v[5], v[6] or ''}\n"
    "  elseif v[1] == 'done' and v[2] == w and v[3] == fence then\n"
    "    out[#out+1] = {'OK', v[4], v[5], v[6] or ''}\n"
    "  elseif redis.call('HGET', P .. 'fences', cid) == fence then\n"
    "    out[#out+1] = {'COMMITTED'}\n"
    "  else out[#out+1] = {'FAILED_PRECONDITION'} end\n"
    "end\n"
    "return out\n";

/* ARGV[4] = first re-push delay, ARGV[5] = retention of finished jobs
 * (ms, 0 = none); items of 6: cid fence pending-seen
 * next-target next-src-dir next-dst-dir, for jobs whose level is now
 * committed in MySQL.  Result per item: {OK} (deleted), {NEXT, job} (turned
 * into its follow-up job), {PENDING, count} (the pending count is not the
 * one the caller planned for: plan again) or {GONE}.
 *
 * Hole 2 of docs/CRASH.md: a report kept as `pending` while the job ran is
 * acknowledged to its client already, so it must survive the job.  The
 * caller classifies the pending count (levels live in tierd) and names the
 * follow-up; this script deletes the finished job and creates the follow-up
 * as one atomic step -- there is no moment where the report exists nowhere.
 * The follow-up keeps the fence (claims raise it), was never claimed
 * (attempts 0) and starts from the directory just committed. */
static const char FINISH[] =
    PRELUDE "local repush, ret = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
            "local out = {}\n"
            "for i = 6, #ARGV, 6 do\n"
            "  local cid, fence, seen, nt = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3]\n"
            "  local k = jk(cid)\n"
            "  local v = redis.call('HMGET', k, 'status', 'fence', 'pending', 'target')\n"
            "  if v[1] ~= 'done' or v[2] ~= fence then out[#out+1] = {'GONE'}\n"
            "  elseif (v[3] or '') ~= seen then out[#out+1] = {'PENDING', v[3] or ''}\n"
            "  elseif nt == '' then\n"
            "    archive(k, cid, ret)\n"
            "    drop(k, cid)\n"
            "    out[#out+1] = {'OK'}\n"
            "  else\n"
            "    archive(k, cid, ret)\n"
            "    keep_fence(cid, fence)\n"
            "    redis.call('SREM', P .. 'jobs:done', cid)\n"
            "    redis.call('HSET', k, 'count', v[3], 'target', nt, 'db_level', v[4],\n"
            "      'worker_id', '', 'status', 'update', 'lease_expires_ms', 0, 'attempts', 0,\n"
            "      'reason', '', 'src_dir', ARGV[i+4], 'dst_dir', ARGV[i+5], 'also_dirs', '',\n"
            "      'created_ms', now, 'updated_ms', now, 'pushes', 1)\n"
            "    redis.call('HDEL', k, 'pending')\n"
            "    redis.call('ZADD', P .. 'jobs:update', now + repush, cid)\n"
            "    out[#out+1] = {'NEXT', redis.call('HGETALL', k)}\n"
            "  end\n"
            "end\n"
            "return out\n";

/* ARGV[4] worker, [5] cid, [6] fence, [7] reason, [8] '1' permanent,
 * [9] retry after ms ('0': backoff 500 ms * 2^(attempts-1), capped 30 s).
 * Result: {OK, pending or ''} or {FAILED_PRECONDITION}.  The pending count
 * stays on the job until a report script replaces it (the caller applies
 * it next; a crash before that leaves it for the job's FINISH). */
static const char FAIL[] =
    PRELUDE "local w, cid, fence = ARGV[4], ARGV[5], ARGV[6]\n"
            "local k = jk(cid)\n"
            "if not live(k, w, fence) then return {'FAILED_PRECONDITION'} end\n"
            "redis.call('ZREM', P .. 'jobs:claimed', cid)\n"
            "if ARGV[8] == '1' then\n"
            "  redis.call('HSET', k, 'status', 'failed', 'reason', ARGV[7], 'worker_id', '',\n"
            "             'lease_expires_ms', 0, 'updated_ms', now)\n"
            "  redis.call('SADD', P .. 'jobs:failed', cid)\n"
            "else\n"
            "  local delay = tonumber(ARGV[9])\n"
            "  if delay == 0 then\n"
            "    local a = tonumber(redis.call('HGET', k, 'attempts') or '1')\n"
            "    delay = math.min(30000, 500 * 2 ^ math.min(a - 1, 16))\n"
            "  end\n"
            "  redis.call('HSET', k, 'status', 'update', 'reason', ARGV[7], 'worker_id', '',\n"
            "             'lease_expires_ms', 0, 'updated_ms', now, 'pushes', 0)\n"
            "  redis.call('ZADD', P .. 'jobs:update', now + delay, cid)\n"
            "end\n"
            "return {'OK', redis.call('HGET', k, 'pending') or ''}\n";

/* ARGV[4] most jobs per index, ARGV[5] retention of finished jobs (ms),
 * ARGV[6] most finished jobs kept.  Claimed jobs whose lease ran out go back to
 * update (fence unchanged until the next claim), due now; then every due
 * update job is returned for a push and its next push is set, backing off
 * from 1 s to 10 s so a backlog is not re-sent in a loop.  Result:
 * {expired count, {{cid, fence, filename, src_dir, dst_dir, target}...}}. */
static const char REAP[] = PRELUDE
    "local max = tonumber(ARGV[4])\n"
    "redis.call('ZREMRANGEBYSCORE', P .. 'jobs:finished', '-inf', now - tonumber(ARGV[5]))\n"
    "redis.call('ZREMRANGEBYRANK', P .. 'jobs:finished', 0, -1 - tonumber(ARGV[6]))\n"
    "local exp = redis.call('ZRANGEBYSCORE', P .. 'jobs:claimed', '-inf', now, 'LIMIT', 0, max)\n"
    "local n = 0\n"
    "for _, cid in ipairs(exp) do\n"
    "  local k = jk(cid)\n"
    "  local v = redis.call('HMGET', k, 'status', 'lease_expires_ms')\n"
    "  if v[1] ~= 'claimed' then redis.call('ZREM', P .. 'jobs:claimed', cid)\n"
    "  elseif tonumber(v[2]) <= now then\n"
    "    redis.call('HSET', k, 'status', 'update', 'worker_id', '', 'lease_expires_ms', 0,\n"
    "               'updated_ms', now, 'pushes', 0)\n"
    "    redis.call('ZREM', P .. 'jobs:claimed', cid)\n"
    "    redis.call('ZADD', P .. 'jobs:update', now, cid)\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "local due = redis.call('ZRANGEBYSCORE', P .. 'jobs:update', '-inf', now, 'LIMIT', 0, max)\n"
    "local out = {}\n"
    "for _, cid in ipairs(due) do\n"
    "  local k = jk(cid)\n"
    "  local v = redis.call('HMGET', k, 'status', 'fence', 'filename', 'src_dir', 'dst_dir',\n"
    "                       'target', 'pushes')\n"
    "  if v[1] ~= 'update' then redis.call('ZREM', P .. 'jobs:update', cid)\n"
    "  else\n"
    "    local p = tonumber(v[7] or '0') + 1\n"
    "    redis.call('HSET', k, 'pushes', p)\n"
    "    redis.call('ZADD', P .. 'jobs:update', now + math.min(10000, 1000 * 2 ^ math.min(p - 1, "
    "8)), cid)\n"
    "    out[#out+1] = {cid, v[2], v[3], v[4], v[5], v[6]}\n"
    "  end\n"
    "end\n"
    "return {n, out}\n";

/* ARGV[4] cid.  An operator's "try again now" for a failed job (or one
 * waiting in its backoff).  Result: {OK, pending or '', job},
 * {NOT_FOUND} or {FAILED_PRECONDITION, why}.  A pending report is handed
 * back for the caller to apply (as after FAIL). */
static const char RETRY[] = PRELUDE
    "local cid = ARGV[4]\n"
    "local k = jk(cid)\n"
    "local st = redis.call('HGET', k, 'status')\n"
    "if not st then return {'NOT_FOUND'} end\n"
    "if st == 'claimed' then return {'FAILED_PRECONDITION', 'a worker holds it'} end\n"
    "if st == 'done' then return {'FAILED_PRECONDITION', 'its level is being committed'} end\n"
    "redis.call('HSET', k, 'status', 'update', 'worker_id', '', 'lease_expires_ms', 0,\n"
    "           'updated_ms', now, 'pushes', 1)\n"
    "redis.call('SREM', P .. 'jobs:failed', cid)\n"
    "redis.call('ZADD', P .. 'jobs:update', now, cid)\n"
    "return {'OK', redis.call('HGET', k, 'pending') or '', redis.call('HGETALL', k)}\n";

/* ARGV[4] cid.  An operator's "leave this content where MySQL says".  A
 * job no worker ever claimed is deleted: {DELETED}.  A once-claimed one
 * may have moved the file, so it is aimed back at its db level (the same
 * rule as REPORT): {HOME, job}.  {NOT_FOUND} or {FAILED_PRECONDITION,
 * why} otherwise.  A pending report is dropped: the operator overrides it. */
static const char CANCEL[] = PRELUDE
    "local cid = ARGV[4]\n"
    "local k = jk(cid)\n"
    "local v = redis.call('HMGET', k, 'status', 'attempts', 'src_dir', 'db_level')\n"
    "if not v[1] then return {'NOT_FOUND'} end\n"
    "if v[1] == 'claimed' then return {'FAILED_PRECONDITION', 'a worker holds it'} end\n"
    "if v[1] == 'done' then return {'FAILED_PRECONDITION', 'its level is being committed'} end\n"
    "if tonumber(v[2] or '0') == 0 then drop(k, cid); return {'DELETED'} end\n"
    "redis.call('HSET', k, 'also_dirs', where(k, v[3]), 'target', v[4], 'dst_dir', v[3],\n"
    "           'status', 'update', 'worker_id', '', 'lease_expires_ms', 0,\n"
    "           'reason', 'cancelled: back to ' .. v[4], 'updated_ms', now, 'pushes', 1)\n"
    "redis.call('HDEL', k, 'pending')\n"
    "redis.call('SREM', P .. 'jobs:failed', cid)\n"
    "redis.call('ZADD', P .. 'jobs:update', now, cid)\n"
    "return {'HOME', redis.call('HGETALL', k)}\n";

/* fsck (tierd/tiering_scrub.c).  ARGV[4] cid, [5] status and [6] fence as
 * the caller judged them.  A job still in that state (and, if claimed, with
 * its lease expired) goes back to update, due now with pushes 0, so the
 * reaper's next round pushes it; the fence is left for the next claim to
 * raise.  Result: {OK} or {CHANGED} (someone moved it on first). */
static const char REQUEUE[] =
    PRELUDE "local cid, st, fence = ARGV[4], ARGV[5], ARGV[6]\n"
            "local k = jk(cid)\n"
            "local v = redis.call('HMGET', k, 'status', 'fence', 'lease_expires_ms')\n"
            "if v[1] ~= st or v[2] ~= fence or (st ~= 'update' and st ~= 'claimed') or\n"
            "   (st == 'claimed' and tonumber(v[3] or '0') > now) then\n"
            "  return {'CHANGED'}\n"
            "end\n"
            "redis.call('HSET', k, 'status', 'update', 'worker_id', '', 'lease_expires_ms', 0,\n"
            "           'updated_ms', now, 'pushes', 0)\n"
            "redis.call('ZREM', P .. 'jobs:claimed', cid)\n"
            "redis.call('ZADD', P .. 'jobs:update', now, cid)\n"
            "return {'OK'}\n";

static const char *const SCRIPTS[TIER_JOBS_NSCRIPTS] = {REPORT, CLAIM, RENEW, DONE,   FINISH,
                                                        FAIL,   REAP,  RETRY, CANCEL, REQUEUE};

struct tier_jobs {
    char prefix[80];
    char token[32]; /* the writer's fencing token, "" when none */
    char sha[TIER_JOBS_NSCRIPTS][41];
};

static int load_script(tier_jobs *j, tier_kv *kv, int i)
{
    const char *argv[3] = {"SCRIPT", "LOAD", SCRIPTS[i]};
    redisReply *r = tier_kv_argv(kv, 3, argv, NULL);
    int rv = TIER_OK;

    if (r == NULL)
        return TIER_UNAVAILABLE;
    if (r->type != REDIS_REPLY_STRING || r->len != 40) {
        tier_error("redis: SCRIPT LOAD of script %d: %s", i,
                   r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        rv = TIER_INTERNAL;
    } else {
        memcpy(j->sha[i], r->str, 41);
    }
    freeReplyObject(r);
    return rv;
}

int tier_jobs_open(tier_jobs **out, tier_kv *kv, const char *prefix, char *err, size_t errlen)
{
    tier_jobs *j = calloc(1, sizeof(*j));
    int rv;

    if (j == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    snprintf(j->prefix, sizeof(j->prefix), "%s", prefix);
    for (int i = 0; i < TIER_JOBS_NSCRIPTS; i++) {
        if ((rv = load_script(j, kv, i)) != TIER_OK) {
            snprintf(err, errlen, "Redis: cannot load the job scripts (%s)", tier_status_name(rv));
            free(j);
            return rv;
        }
    }
    *out = j;
    return TIER_OK;
}

void tier_jobs_close(tier_jobs *j)
{
    free(j);
}

const char *tier_jobs_prefix(const tier_jobs *j)
{
    return j->prefix;
}

void tier_jobs_set_token(tier_jobs *j, const char *token)
{
    snprintf(j->token, sizeof(j->token), "%s", token);
}

#define EVAL_STACK 64

static redisReply *evalsha(tier_jobs *j, tier_kv *kv, tier_jobs_script s, const char *now, int argc,
                           const char **argv, const size_t *lens)
{
    const char *sv[EVAL_STACK], **v = sv;
    size_t sl[EVAL_STACK], *l = sl;
    int n = argc + 6;
    redisReply *r;

    if (n > EVAL_STACK) {
        v = malloc((size_t)n * sizeof(*v));
        l = malloc((size_t)n * sizeof(*l));
        if (v == NULL || l == NULL) {
            free(v);
            free(l);
            return NULL;
        }
    }
    v[0] = "EVALSHA", v[1] = j->sha[s], v[2] = "0", v[3] = j->prefix, v[4] = now;
    v[5] = j->token;
    for (int i = 0; i < 6; i++)
        l[i] = strlen(v[i]);
    for (int i = 0; i < argc; i++) {
        v[6 + i] = argv[i];
        l[6 + i] = lens ? lens[i] : strlen(argv[i]);
    }
    r = tier_kv_argv(kv, n, v, l);
    if (v != sv) {
        free(v);
        free(l);
    }
    return r;
}

/* Runs script s with ARGV = prefix, now, token, argv[0..argc).  NULL with
 * *status UNAVAILABLE (Redis away), ABORTED (fenced) or INTERNAL. */
static redisReply *eval(tier_jobs *j, tier_kv *kv, tier_jobs_script s, int64_t now_ms, int argc,
                        const char **argv, int *status)
{
    char now[24];
    redisReply *r;

    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    r = evalsha(j, kv, s, now, argc, argv, NULL);
    /* Redis restarted (or SCRIPT FLUSH): the scripts are gone; load again. */
    if (r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(r);
        if (load_script(j, kv, s) != TIER_OK) {
            *status = TIER_UNAVAILABLE;
            return NULL;
        }
        r = evalsha(j, kv, s, now, argc, argv, NULL);
    }
    /* Redis lost the lease key: the writer sets it again, then one retry. */
    if (r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOWRITER", 8) == 0 &&
        tier_writer_missing()) {
        freeReplyObject(r);
        r = evalsha(j, kv, s, now, argc, argv, NULL);
    }
    if (r == NULL) {
        *status = TIER_UNAVAILABLE;
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        tier_error("redis: job script %d: %s", s, r->str);
        /* READONLY / MASTERDOWN: a replica now (failover); NOREPLICAS:
         * min-replicas-to-write refused it.  Retryable: nothing changed. */
        *status = strncmp(r->str, "FENCED", 6) == 0 ? TIER_ABORTED
                  : strncmp(r->str, "NOWRITER", 8) == 0 || strstr(r->str, "LOADING") ||
                          strstr(r->str, "BUSY") || strstr(r->str, "READONLY") ||
                          strstr(r->str, "MASTERDOWN") || strstr(r->str, "NOREPLICAS")
                      ? TIER_UNAVAILABLE
                      : TIER_INTERNAL;
        freeReplyObject(r);
        if (*status == TIER_ABORTED)
            tier_writer_fenced("Redis job script");
        return NULL;
    }
    /* Durability across a failover (sentinels configured): the script's
     * writes must be on a replica before the caller is told they happened.
     * Not in time: UNAVAILABLE, the client retries (every script is safe
     * to run again, docs/CLUSTER.md "The shared engines"). */
    if (tier_kv_wait(kv) != TIER_OK) {
        freeReplyObject(r);
        *status = TIER_UNAVAILABLE;
        return NULL;
    }
    *status = TIER_OK;
    return r;
}

/* ------------------------------------------------------------ replies */

struct tier_jobs_reply {
    size_t n, cap;
    redisReply **r; /* r[0] the script's reply; more for tier_jobs_list */
    redisReply *one;
    void *mem; /* arrays handed out with the replies */
};

void tier_jobs_reply_free(tier_jobs_reply *k)
{
    if (k == NULL)
        return;
    for (size_t i = 0; i < k->n; i++)
        freeReplyObject(k->r[i]);
    if (k->r != &k->one)
        free(k->r);
    free(k->mem);
    free(k);
}

/* Takes r (freed on failure). */
static tier_jobs_reply *keep_new(redisReply *r)
{
    tier_jobs_reply *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        freeReplyObject(r);
        return NULL;
    }
    k->r = &k->one;
    k->cap = 1;
    k->r[k->n++] = r;
    return k;
}

/* One more reply for k to own; false (r not taken) when out of memory. */
static bool add_page(tier_jobs_reply *k, redisReply *r)
{
    if (k->n == k->cap) {
        size_t cap = k->cap * 2 + 8;
        redisReply **v = malloc(cap * sizeof(*v));
        if (v == NULL)
            return false;
        memcpy(v, k->r, k->n * sizeof(*v));
        if (k->r != &k->one)
            free(k->r);
        k->r = v;
        k->cap = cap;
    }
    k->r[k->n++] = r;
    return true;
}

/* A reply that is not the shape its script promises: logged, INTERNAL. */
static int bad_shape(redisReply *r, tier_jobs_script s)
{
    tier_error("redis: job script %d answered an unexpected shape", s);
    freeReplyObject(r);
    return TIER_INTERNAL;
}

static bool is_str(const redisReply *r)
{
    return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

static bool is_arr(const redisReply *r, size_t min)
{
    return r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= min;
}

/* element i of an array if it is a string, else NULL */
static const redisReply *str_at(const redisReply *r, size_t i)
{
    return is_arr(r, i + 1) && is_str(r->element[i]) ? r->element[i] : NULL;
}

static bool eq(const redisReply *r, const char *s)
{
    size_t n = strlen(s);
    return is_str(r) && r->len == n && memcmp(r->str, s, n) == 0;
}

static int64_t num_of(const char *p, size_t len)
{
    char buf[32];
    size_t n = len < sizeof(buf) - 1 ? len : sizeof(buf) - 1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    return strtoll(buf, NULL, 10);
}

static int64_t num(const redisReply *r)
{
    return is_str(r) ? num_of(r->str, r->len) : 0;
}

/* "" -> no pending, else its count. */
static void pending_of(const redisReply *r, bool *has, int64_t *count)
{
    *has = is_str(r) && r->len > 0;
    *count = *has ? num(r) : 0;
}

static tier_jobs_str str_of(const redisReply *r)
{
    return is_str(r) ? (tier_jobs_str){r->str, r->len} : (tier_jobs_str){NULL, 0};
}

static const char *const STATE_NAMES[] = {"", "update", "claimed", "done", "failed", "finished"};

const char *tier_job_state_name(tier_job_state s)
{
    return (size_t)s < sizeof(STATE_NAMES) / sizeof(STATE_NAMES[0]) ? STATE_NAMES[s] : "";
}

tier_job_state tier_job_state_parse(const char *s, size_t len)
{
    for (size_t i = 1; i < sizeof(STATE_NAMES) / sizeof(STATE_NAMES[0]); i++)
        if (strlen(STATE_NAMES[i]) == len && memcmp(STATE_NAMES[i], s, len) == 0)
            return (tier_job_state)i;
    return TIER_JOB_NONE;
}

static bool field(const redisReply *k, const char *name)
{
    return eq(k, name);
}

/* Reads an HGETALL-shaped array (field, value, ...).  False when it is
 * empty (no such job) or not a job. */
static bool view_parse(const redisReply *r, tier_jobs_view *v)
{
    memset(v, 0, sizeof(*v));
    if (!is_arr(r, 2))
        return false;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *x = r->element[i + 1];
        tier_jobs_str s = str_of(x);
        if (!is_str(k) || !is_str(x))
            continue;
        if (field(k, "cid"))
            v->cid = num(x);
        else if (field(k, "count"))
            v->count = num(x);
        else if (field(k, "target"))
            v->target = s;
        else if (field(k, "db_level"))
            v->db_level = s;
        else if (field(k, "filename"))
            v->filename = s;
        else if (field(k, "worker_id"))
            v->worker_id = s;
        else if (field(k, "status"))
            v->status = s;
        else if (field(k, "fence"))
            v->fence = (uint64_t)num(x);
        else if (field(k, "lease_expires_ms"))
            v->lease_expires_ms = num(x);
        else if (field(k, "attempts"))
            v->attempts = (uint32_t)num(x);
        else if (field(k, "reason"))
            v->reason = s;
        else if (field(k, "src_dir"))
            v->src_dir = s;
        else if (field(k, "dst_dir"))
            v->dst_dir = s;
        else if (field(k, "also_dirs"))
            v->also_dirs = s;
        else if (field(k, "created_ms"))
            v->created_ms = num(x);
        else if (field(k, "updated_ms"))
            v->updated_ms = num(x);
        else if (field(k, "pending"))
            pending_of(x, &v->has_pending, &v->pending);
        else if (field(k, "pushes"))
            v->pushes = num(x);
    }
    v->state = v->status.p ? tier_job_state_parse(v->status.p, v->status.len) : TIER_JOB_NONE;
    return v->state != TIER_JOB_NONE;
}

/* A fixed-width decimal for argv. */
typedef struct {
    char s[24];
} dec;

static const char *d64(dec *b, long long v)
{
    snprintf(b->s, sizeof(b->s), "%lld", v);
    return b->s;
}

static const char *du64(dec *b, unsigned long long v)
{
    snprintf(b->s, sizeof(b->s), "%llu", v);
    return b->s;
}

/* argv + decimals for a call of n items of w arguments and h header ones. */
typedef struct {
    const char **v;
    dec *d;
} args;

static int args_alloc(args *a, size_t h, size_t n, size_t w)
{
    a->v = malloc((h + n * w + 1) * sizeof(*a->v));
    a->d = malloc((h + n * w + 1) * sizeof(*a->d));
    if (a->v == NULL || a->d == NULL) {
        free(a->v);
        free(a->d);
        return TIER_RESOURCE_EXHAUSTED;
    }
    return TIER_OK;
}

static void args_free(args *a)
{
    free(a->v);
    free(a->d);
}

/* Runs a script whose reply must be an array of n items. */
static int run_items(tier_jobs *j, tier_kv *kv, tier_jobs_script s, int64_t now, args *a,
                     size_t argc, size_t n, redisReply **out)
{
    int rv;
    redisReply *r = eval(j, kv, s, now, (int)argc, a->v, &rv);

    args_free(a);
    if (r == NULL)
        return rv;
    if (!is_arr(r, n) || r->elements != n)
        return bad_shape(r, s);
    for (size_t i = 0; i < n; i++)
        if (r->element[i]->type != REDIS_REPLY_ARRAY && !is_str(r->element[i]))
            return bad_shape(r, s);
    *out = r;
    return TIER_OK;
}

/* ------------------------------------------------------------ calls */

int tier_jobs_report(tier_jobs *j, tier_kv *kv, int64_t now, uint32_t repush_ms,
                     const tier_jobs_report_in *in, size_t n, tier_jobs_report_out *out,
                     tier_jobs_reply **keep)
{
    static const char *const what[] = {"none", "created", "retargeted", "cancelled", "pending"};
    redisReply *r;
    args a;
    int rv;

    *keep = NULL;
    if ((rv = args_alloc(&a, 1, n, 8)) != TIER_OK)
        return rv;
    a.v[0] = d64(&a.d[0], repush_ms);
    for (size_t i = 0; i < n; i++) {
        const char **v = a.v + 1 + 8 * i;
        v[0] = d64(&a.d[1 + 8 * i], in[i].cid);
        v[1] = d64(&a.d[2 + 8 * i], in[i].count);
        v[2] = in[i].target, v[3] = in[i].db_level, v[4] = in[i].filename;
        v[5] = in[i].src_dir, v[6] = in[i].dst_dir;
        v[7] = in[i].migrate ? "1" : "0";
    }
    if ((rv = run_items(j, kv, TIER_JOBS_REPORT, now, &a, 1 + 8 * n, n, &r)) != TIER_OK)
        return rv;
    for (size_t i = 0; i < n; i++) {
        const redisReply *w = str_at(r->element[i], 0);
        size_t k = 0;
        while (k < 5 && !eq(w, what[k]))
            k++;
        if (k == 5)
            return bad_shape(r, TIER_JOBS_REPORT);
        out[i].what = (tier_jobs_report_what)k;
        out[i].has_job =
            r->element[i]->elements > 1 && view_parse(r->element[i]->element[1], &out[i].job);
    }
    return (*keep = keep_new(r)) ? TIER_OK : TIER_RESOURCE_EXHAUSTED;
}

int tier_jobs_claim(tier_jobs *j, tier_kv *kv, int64_t now, const char *worker, uint32_t lease_ms,
                    const int64_t *cids, size_t n, tier_jobs_claim_out *out, tier_jobs_reply **keep)
{
    redisReply *r;
    args a;
    int rv;

    *keep = NULL;
    if ((rv = args_alloc(&a, 2, n, 1)) != TIER_OK)
        return rv;
    a.v[0] = worker;
    a.v[1] = d64(&a.d[0], lease_ms);
    for (size_t i = 0; i < n; i++)
        a.v[2 + i] = d64(&a.d[1 + i], cids[i]);
    if ((rv = run_items(j, kv, TIER_JOBS_CLAIM, now, &a, 2 + n, n, &r)) != TIER_OK)
        return rv;
    for (size_t i = 0; i < n; i++) {
        const redisReply *code = str_at(r->element[i], 0);
        memset(&out[i], 0, sizeof(out[i]));
        if (eq(code, "OK") && r->element[i]->elements > 1 &&
            view_parse(r->element[i]->element[1], &out[i].job))
            out[i].code = TIER_OK;
        else if (eq(code, "NOT_FOUND"))
            out[i].code = TIER_NOT_FOUND;
        else if (eq(code, "ALREADY_EXISTS"))
            out[i].code = TIER_ALREADY_EXISTS;
        else
            out[i].code = TIER_FAILED_PRECONDITION;
    }
    return (*keep = keep_new(r)) ? TIER_OK : TIER_RESOURCE_EXHAUSTED;
}

int tier_jobs_renew(tier_jobs *j, tier_kv *kv, int64_t now, const char *worker, uint32_t lease_ms,
                    const tier_jobs_ref *refs, size_t n, int *codes)
{
    redisReply *r;
    args a;
    int rv;

    if ((rv = args_alloc(&a, 2, n, 2)) != TIER_OK)
        return rv;
    a.v[0] = worker;
    a.v[1] = d64(&a.d[0], lease_ms);
    for (size_t i = 0; i < n; i++) {
        a.v[2 + 2 * i] = d64(&a.d[1 + 2 * i], refs[i].cid);
        a.v[3 + 2 * i] = du64(&a.d[2 + 2 * i], refs[i].fence);
    }
    if ((rv = run_items(j, kv, TIER_JOBS_RENEW, now, &a, 2 + 2 * n, n, &r)) != TIER_OK)
        return rv;
    for (size_t i = 0; i < n; i++)
        codes[i] = eq(r->element[i], "OK") ? TIER_OK : TIER_FAILED_PRECONDITION;
    freeReplyObject(r);
    return TIER_OK;
}

int tier_jobs_done(tier_jobs *j, tier_kv *kv, int64_t now, const char *worker,
                   const tier_jobs_ref *refs, size_t n, tier_jobs_done_out *out,
                   tier_jobs_reply **keep)
{
    redisReply *r;
    args a;
    int rv;

    *keep = NULL;
    if ((rv = args_alloc(&a, 1, n, 2)) != TIER_OK)
        return rv;
    a.v[0] = worker;
    for (size_t i = 0; i < n; i++) {
        a.v[1 + 2 * i] = d64(&a.d[2 * i], refs[i].cid);
        a.v[2 + 2 * i] = du64(&a.d[2 * i + 1], refs[i].fence);
    }
    if ((rv = run_items(j, kv, TIER_JOBS_DONE, now, &a, 1 + 2 * n, n, &r)) != TIER_OK)
        return rv;
    for (size_t i = 0; i < n; i++) {
        const redisReply *it = r->element[i], *code = str_at(it, 0);
        memset(&out[i], 0, sizeof(out[i]));
        if (eq(code, "OK") && str_at(it, 1) && str_at(it, 3)) {
            out[i].what = TIER_JOBS_DONE_NOW;
            out[i].target = str_of(it->element[1]);
            pending_of(it->element[3], &out[i].has_pending, &out[i].pending);
        } else if (eq(code, "COMMITTED")) {
            out[i].what = TIER_JOBS_DONE_COMMITTED;
        } else {
            out[i].what = TIER_JOBS_DONE_REFUSED;
        }
    }
    return (*keep = keep_new(r)) ? TIER_OK : TIER_RESOURCE_EXHAUSTED;
}

int tier_jobs_fail(tier_jobs *j, tier_kv *kv, int64_t now, const char *worker, tier_jobs_ref ref,
                   const char *reason, bool permanent, uint32_t retry_after_ms, bool *has_pending,
                   int64_t *pending)
{
    dec d[3];
    const char *argv[6] = {worker, d64(&d[0], ref.cid),   du64(&d[1], ref.fence),
                           reason, permanent ? "1" : "0", d64(&d[2], retry_after_ms)};
    int rv;
    redisReply *r = eval(j, kv, TIER_JOBS_FAIL, now, 6, argv, &rv);

    *has_pending = false;
    *pending = 0;
    if (r == NULL)
        return rv;
    if (!str_at(r, 0))
        return bad_shape(r, TIER_JOBS_FAIL);
    if (!eq(r->element[0], "OK")) {
        freeReplyObject(r);
        return TIER_FAILED_PRECONDITION;
    }
    pending_of(str_at(r, 1), has_pending, pending);
    freeReplyObject(r);
    return TIER_OK;
}

int tier_jobs_finish(tier_jobs *j, tier_kv *kv, int64_t now, uint32_t repush_ms,
                     uint32_t retention_s, const tier_jobs_finish_in *in, size_t n,
                     tier_jobs_finish_out *out, tier_jobs_reply **keep)
{
    redisReply *r;
    args a;
    int rv;

    *keep = NULL;
    if ((rv = args_alloc(&a, 2, n, 6)) != TIER_OK)
        return rv;
    a.v[0] = d64(&a.d[0], repush_ms);
    a.v[1] = d64(&a.d[1], (long long)retention_s * 1000);
    for (size_t i = 0; i < n; i++) {
        const char **v = a.v + 2 + 6 * i;
        dec *d = a.d + 2 + 6 * i;
        v[0] = d64(&d[0], in[i].ref.cid);
        v[1] = du64(&d[1], in[i].ref.fence);
        v[2] = in[i].has_pending ? d64(&d[2], in[i].pending) : "";
        v[3] = in[i].next_target ? in[i].next_target : "";
        v[4] = in[i].next_target ? in[i].next_src_dir : "";
        v[5] = in[i].next_target ? in[i].next_dst_dir : "";
    }
    if ((rv = run_items(j, kv, TIER_JOBS_FINISH, now, &a, 2 + 6 * n, n, &r)) != TIER_OK)
        return rv;
    for (size_t i = 0; i < n; i++) {
        const redisReply *it = r->element[i], *code = str_at(it, 0);
        memset(&out[i], 0, sizeof(out[i]));
        if (eq(code, "OK"))
            out[i].what = TIER_JOBS_FINISH_DELETED;
        else if (eq(code, "NEXT") && is_arr(it, 2) && view_parse(it->element[1], &out[i].job))
            out[i].what = TIER_JOBS_FINISH_NEXT;
        else if (eq(code, "PENDING") && str_at(it, 1)) {
            out[i].what = TIER_JOBS_FINISH_REPLAN;
            pending_of(it->element[1], &out[i].has_pending, &out[i].pending);
        } else
            out[i].what = TIER_JOBS_FINISH_GONE;
    }
    return (*keep = keep_new(r)) ? TIER_OK : TIER_RESOURCE_EXHAUSTED;
}

int tier_jobs_reap(tier_jobs *j, tier_kv *kv, int64_t now, size_t max, uint32_t retention_s,
                   size_t keep_finished, size_t *expired, tier_jobs_view **due, size_t *ndue,
                   tier_jobs_reply **keep)
{
    dec d[3];
    const char *argv[3] = {d64(&d[0], (long long)max), d64(&d[1], (long long)retention_s * 1000),
                           d64(&d[2], (long long)keep_finished)};
    redisReply *r;
    tier_jobs_view *v;
    int rv;

    *keep = NULL, *due = NULL, *ndue = 0, *expired = 0;
    if ((r = eval(j, kv, TIER_JOBS_REAP, now, 3, argv, &rv)) == NULL)
        return rv;
    if (!is_arr(r, 2) || r->element[0]->type != REDIS_REPLY_INTEGER ||
        r->element[1]->type != REDIS_REPLY_ARRAY)
        return bad_shape(r, TIER_JOBS_REAP);
    if ((*keep = keep_new(r)) == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    *expired = (size_t)r->element[0]->integer;
    if ((v = calloc(r->element[1]->elements + 1, sizeof(*v))) == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    (*keep)->mem = v;
    for (size_t i = 0; i < r->element[1]->elements; i++) {
        const redisReply *e = r->element[1]->element[i];
        if (!is_arr(e, 6) || !str_at(e, 0) || !str_at(e, 5))
            continue;
        v[*ndue] = (tier_jobs_view){.cid = num(e->element[0]),
                                    .fence = (uint64_t)num(e->element[1]),
                                    .state = TIER_JOB_UPDATE,
                                    .filename = str_of(e->element[2]),
                                    .src_dir = str_of(e->element[3]),
                                    .dst_dir = str_of(e->element[4]),
                                    .target = str_of(e->element[5])};
        (*ndue)++;
    }
    *due = v;
    return TIER_OK;
}

static int control(tier_jobs *j, tier_kv *kv, tier_jobs_script s, int64_t now, int64_t cid,
                   tier_jobs_ctl_out *out, tier_jobs_reply **keep)
{
    dec d;
    const char *argv[1] = {d64(&d, cid)};
    const redisReply *w;
    redisReply *r;
    int rv;

    *keep = NULL;
    memset(out, 0, sizeof(*out));
    if ((r = eval(j, kv, s, now, 1, argv, &rv)) == NULL)
        return rv;
    if ((w = str_at(r, 0)) == NULL)
        return bad_shape(r, s);
    if (eq(w, "NOT_FOUND")) {
        out->what = TIER_JOBS_CTL_NO_JOB;
    } else if (eq(w, "FAILED_PRECONDITION") && str_at(r, 1)) {
        out->what = TIER_JOBS_CTL_BUSY;
        out->why = r->element[1]->str; /* NUL-terminated by hiredis */
    } else if (eq(w, "DELETED")) {
        out->what = TIER_JOBS_CTL_DELETED;
    } else if (eq(w, "HOME") && is_arr(r, 2) && view_parse(r->element[1], &out->job)) {
        out->what = TIER_JOBS_CTL_HOME;
    } else if (eq(w, "OK") && str_at(r, 1) && is_arr(r, 3) &&
               view_parse(r->element[2], &out->job)) {
        out->what = TIER_JOBS_CTL_RETRIED;
        pending_of(r->element[1], &out->has_pending, &out->pending);
    } else {
        return bad_shape(r, s);
    }
    return (*keep = keep_new(r)) ? TIER_OK : TIER_RESOURCE_EXHAUSTED;
}

int tier_jobs_retry(tier_jobs *j, tier_kv *kv, int64_t now, int64_t cid, tier_jobs_ctl_out *out,
                    tier_jobs_reply **keep)
{
    return control(j, kv, TIER_JOBS_RETRY, now, cid, out, keep);
}

int tier_jobs_cancel(tier_jobs *j, tier_kv *kv, int64_t now, int64_t cid, tier_jobs_ctl_out *out,
                     tier_jobs_reply **keep)
{
    return control(j, kv, TIER_JOBS_CANCEL, now, cid, out, keep);
}

/* ------------------------------------------------------------ reads */

static void job_key(const tier_jobs *j, char *buf, size_t len, int64_t cid)
{
    snprintf(buf, len, "%sjob:%lld", j->prefix, (long long)cid);
}

int tier_jobs_get(tier_jobs *j, tier_kv *kv, int64_t cid, tier_jobs_view *out,
                  tier_jobs_reply **keep)
{
    char key[128];
    const char *argv[2] = {"HGETALL", key};
    redisReply *r;

    *keep = NULL;
    job_key(j, key, sizeof(key), cid);
    if ((r = tier_kv_argv(kv, 2, argv, NULL)) == NULL)
        return TIER_UNAVAILABLE;
    if (!view_parse(r, out)) {
        freeReplyObject(r);
        return TIER_NOT_FOUND;
    }
    return (*keep = keep_new(r)) ? TIER_OK : TIER_RESOURCE_EXHAUSTED;
}

/* The index of a state: its key and whether it is a sorted set. */
static bool index_key(const tier_jobs *j, tier_job_state st, char *buf, size_t len)
{
    snprintf(buf, len, "%sjobs:%s", j->prefix, tier_job_state_name(st));
    return st == TIER_JOB_UPDATE || st == TIER_JOB_CLAIMED || st == TIER_JOB_FINISHED;
}

static redisReply *index_read(tier_jobs *j, tier_kv *kv, tier_job_state st, size_t limit)
{
    char key[128], lim[24];
    bool zset = index_key(j, st, key, sizeof(key));
    /* finished: newest first */
    const char *zargv[4] = {st == TIER_JOB_FINISHED ? "ZREVRANGE" : "ZRANGE", key, "0", lim};
    const char *sargv[2] = {"SMEMBERS", key};
    redisReply *r;

    snprintf(lim, sizeof(lim), "%lld", limit == 0 ? -1LL : (long long)limit - 1);
    r = zset ? tier_kv_argv(kv, 4, zargv, NULL) : tier_kv_argv(kv, 2, sargv, NULL);
    if (r != NULL && r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

int tier_jobs_count(tier_jobs *j, tier_kv *kv, uint64_t counts[TIER_JOB_STATES])
{
    /* One ZCARD/SCARD per state's index: O(1) each, so cheap enough for
     * every Health call and every metrics scrape. */
    memset(counts, 0, TIER_JOB_STATES * sizeof(counts[0]));
    for (int st = TIER_JOB_UPDATE; st < TIER_JOB_STATES; st++) {
        char key[128];
        bool zset = index_key(j, (tier_job_state)st, key, sizeof(key));
        const char *argv[2] = {zset ? "ZCARD" : "SCARD", key};
        redisReply *r = tier_kv_argv(kv, 2, argv, NULL);
        if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
            if (r != NULL)
                freeReplyObject(r);
            return TIER_UNAVAILABLE;
        }
        counts[st] = r->integer > 0 ? (uint64_t)r->integer : 0;
        freeReplyObject(r);
    }
    return TIER_OK;
}

int tier_jobs_index_cids(tier_jobs *j, tier_kv *kv, tier_job_state st, int64_t **cids, size_t *n)
{
    redisReply *r = index_read(j, kv, st, 0);

    *cids = NULL, *n = 0;
    if (r == NULL)
        return TIER_UNAVAILABLE;
    if ((*cids = malloc((r->elements + 1) * sizeof(**cids))) == NULL) {
        freeReplyObject(r);
        return TIER_RESOURCE_EXHAUSTED;
    }
    for (size_t i = 0; i < r->elements; i++)
        if (is_str(r->element[i]))
            (*cids)[(*n)++] = num(r->element[i]);
    freeReplyObject(r);
    return TIER_OK;
}

/* The next '|'-separated field of [*p, end); the last one takes the rest
 * (a filename may hold '|'). */
static tier_jobs_str next_field(const char **p, const char *end, bool last)
{
    const char *s = *p, *bar = last ? NULL : memchr(s, '|', (size_t)(end - s));
    const char *e = bar ? bar : end;

    *p = bar ? bar + 1 : end;
    return (tier_jobs_str){s, (size_t)(e - s)};
}

/* Finished jobs: the members of <prefix>jobs:finished, newest first. */
static int list_finished(tier_jobs *j, tier_kv *kv, size_t limit, tier_jobs_view **out, size_t *n,
                         tier_jobs_reply **keep)
{
    char key[128], lim[24];
    const char *argv[5] = {"ZREVRANGE", key, "0", lim, "WITHSCORES"};
    redisReply *r;
    tier_jobs_view *v;

    index_key(j, TIER_JOB_FINISHED, key, sizeof(key));
    snprintf(lim, sizeof(lim), "%lld", limit == 0 ? -1LL : (long long)limit - 1);
    if ((r = tier_kv_argv(kv, 5, argv, NULL)) == NULL)
        return TIER_UNAVAILABLE;
    if (!is_arr(r, 0))
        return bad_shape(r, TIER_JOBS_REAP);
    if ((*keep = keep_new(r)) == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    if ((v = calloc(r->elements / 2 + 1, sizeof(*v))) == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    (*keep)->mem = v;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *m = r->element[i];
        tier_jobs_str f[7];
        const char *p, *end;
        if (!is_str(m) || !is_str(r->element[i + 1]))
            continue;
        p = m->str, end = m->str + m->len;
        for (int k = 0; k < 7; k++)
            f[k] = next_field(&p, end, k == 6);
        tier_jobs_view *x = &v[(*n)++];
        x->state = TIER_JOB_FINISHED;
        x->status = (tier_jobs_str){"finished", 8};
        x->cid = num_of(f[0].p, f[0].len);
        x->fence = (uint64_t)num_of(f[1].p, f[1].len);
        x->attempts = (uint32_t)num_of(f[2].p, f[2].len);
        x->created_ms = num_of(f[3].p, f[3].len);
        x->db_level = f[4], x->target = f[5], x->filename = f[6];
        x->updated_ms = num(r->element[i + 1]);
    }
    *out = v;
    return TIER_OK;
}

int tier_jobs_list(tier_jobs *j, tier_kv *kv, tier_job_state st, size_t limit, tier_jobs_view **out,
                   size_t *n, tier_jobs_reply **keep)
{
    redisReply *idx, *page;
    tier_jobs_view *v;
    tier_jobs_reply *k;

    *out = NULL, *n = 0, *keep = NULL;
    if (st == TIER_JOB_FINISHED)
        return list_finished(j, kv, limit, out, n, keep);
    if ((idx = index_read(j, kv, st, limit)) == NULL)
        return TIER_UNAVAILABLE;
    if ((k = keep_new(idx)) == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    if ((v = calloc(idx->elements + 1, sizeof(*v))) == NULL) {
        tier_jobs_reply_free(k);
        return TIER_RESOURCE_EXHAUSTED;
    }
    k->mem = v;
    /* One pipelined HGETALL per job; k owns every reply. */
    for (size_t i = 0; i < idx->elements; i++) {
        char key[160];
        const char *argv[2] = {"HGETALL", key};
        if (!is_str(idx->element[i]))
            continue;
        snprintf(key, sizeof(key), "%sjob:%.*s", j->prefix, (int)idx->element[i]->len,
                 idx->element[i]->str);
        tier_kv_append(kv, 2, argv, NULL);
    }
    for (size_t i = 0; i < idx->elements; i++) {
        if (!is_str(idx->element[i]))
            continue;
        if ((page = tier_kv_read(kv)) == NULL) {
            tier_jobs_reply_free(k);
            return TIER_UNAVAILABLE;
        }
        /* Jobs whose state changed since the index was read are skipped. */
        if (view_parse(page, &v[*n]) && v[*n].state == st && add_page(k, page))
            (*n)++;
        else
            freeReplyObject(page);
    }
    *out = v;
    *keep = k;
    return TIER_OK;
}

/* ------------------------------------------------------------ fsck */

int tier_jobs_requeue(tier_jobs *j, tier_kv *kv, int64_t now, const tier_jobs_view *seen,
                      bool *requeued)
{
    dec d[2];
    const char *argv[3] = {d64(&d[0], seen->cid), tier_job_state_name(seen->state),
                           du64(&d[1], seen->fence)};
    int rv;
    redisReply *r = eval(j, kv, TIER_JOBS_REQUEUE, now, 3, argv, &rv);

    *requeued = false;
    if (r == NULL)
        return rv;
    if (!str_at(r, 0))
        return bad_shape(r, TIER_JOBS_REQUEUE);
    *requeued = eq(r->element[0], "OK");
    freeReplyObject(r);
    return TIER_OK;
}

int tier_jobs_indexed(tier_jobs *j, tier_kv *kv, const tier_jobs_view *v, bool *indexed)
{
    char idx[128], id[24];
    bool zset = index_key(j, v->state, idx, sizeof(idx));
    const char *argv[3] = {zset ? "ZSCORE" : "SISMEMBER", idx, id};
    redisReply *r;

    snprintf(id, sizeof(id), "%lld", (long long)v->cid);
    if ((r = tier_kv_argv(kv, 3, argv, NULL)) == NULL)
        return TIER_UNAVAILABLE;
    *indexed =
        zset ? r->type == REDIS_REPLY_STRING : r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return TIER_OK;
}

int tier_jobs_scan_cids(tier_jobs *j, tier_kv *kv, const atomic_bool *stop, int64_t **cids,
                        size_t *n)
{
    char cursor[32] = "0", match[128];
    size_t cap = 0, pl = strlen(j->prefix) + 4; /* "<prefix>job:" */

    *cids = NULL, *n = 0;
    snprintf(match, sizeof(match), "%sjob:*", j->prefix);
    do {
        const char *argv[6] = {"SCAN", cursor, "MATCH", match, "COUNT", "1000"};
        redisReply *r = tier_kv_argv(kv, 6, argv, NULL);
        if (r == NULL || !is_arr(r, 2) || !str_at(r, 0) || !is_arr(r->element[1], 0)) {
            if (r != NULL)
                freeReplyObject(r);
            return TIER_UNAVAILABLE;
        }
        snprintf(cursor, sizeof(cursor), "%.*s", (int)r->element[0]->len, r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            const redisReply *k = r->element[1]->element[i];
            char *end;
            if (!is_str(k) || k->len <= pl)
                continue;
            long long cid = strtoll(k->str + pl, &end, 10);
            if (end != k->str + k->len)
                continue; /* not a job hash of ours */
            if (*n == cap) {
                int64_t *v = realloc(*cids, (cap = cap ? cap * 2 : 256) * sizeof(*v));
                if (v == NULL) {
                    freeReplyObject(r);
                    return TIER_RESOURCE_EXHAUSTED;
                }
                *cids = v;
            }
            (*cids)[(*n)++] = cid;
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0 && (stop == NULL || !atomic_load(stop)));
    return TIER_OK;
}
