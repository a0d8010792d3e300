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

/* ARGV[4] = first re-push delay; items of 7: cid count target db_level
 * filename src_dir dst_dir.  Result per item: {what[, job]} with what one
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
    "for i = 5, #ARGV, 7 do\n"
    "  local cid, count, target, dbl = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3]\n"
    "  local dst = ARGV[i+6]\n"
    "  local k = jk(cid)\n"
    "  local v = redis.call('HMGET', k, 'status', 'attempts', 'target')\n"
    "  local st, claimed_once = v[1], tonumber(v[2] or '0') > 0\n"
    "  local what\n"
    "  if st == 'claimed' or st == 'done' then\n"
    "    redis.call('HSET', k, 'pending', count)\n"
    "    what = 'pending'\n"
    "  elseif st and claimed_once then\n"
    "    if v[3] ~= target then\n"
    "      redis.call('HSET', k, 'also_dirs', where(k, dst), 'target', target, 'dst_dir', dst)\n"
    "    end\n"
    "    redis.call('HSET', k, 'count', count, 'status', 'update', 'updated_ms', now,\n"
    "               'pushes', 1)\n"
    "    redis.call('HDEL', k, 'pending')\n"
    "    redis.call('SREM', P .. 'jobs:failed', cid)\n"
    "    redis.call('ZADD', P .. 'jobs:update', now + repush, cid)\n"
    "    what = 'retargeted'\n"
    "  elseif target == dbl then\n"
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

/* ARGV[4] = first re-push delay; items of 6: cid fence pending-seen
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
    PRELUDE "local repush = tonumber(ARGV[4])\n"
            "local out = {}\n"
            "for i = 5, #ARGV, 6 do\n"
            "  local cid, fence, seen, nt = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3]\n"
            "  local k = jk(cid)\n"
            "  local v = redis.call('HMGET', k, 'status', 'fence', 'pending', 'target')\n"
            "  if v[1] ~= 'done' or v[2] ~= fence then out[#out+1] = {'GONE'}\n"
            "  elseif (v[3] or '') ~= seen then out[#out+1] = {'PENDING', v[3] or ''}\n"
            "  elseif nt == '' then\n"
            "    drop(k, cid)\n"
            "    out[#out+1] = {'OK'}\n"
            "  else\n"
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

/* ARGV[4] most jobs per index.  Claimed jobs whose lease ran out go back to
 * update (fence unchanged until the next claim), due now; then every due
 * update job is returned for a push and its next push is set, backing off
 * from 1 s to 10 s so a backlog is not re-sent in a loop.  Result:
 * {expired count, {{cid, fence, filename, src_dir, dst_dir, target}...}}. */
static const char REAP[] = PRELUDE
    "local max = tonumber(ARGV[4])\n"
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

static const char *const SCRIPTS[TIER_JOBS_NSCRIPTS] = {REPORT, CLAIM, RENEW, DONE,
                                                        FINISH, FAIL,  REAP};

struct tier_jobs {
    char prefix[64];
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

redisReply *tier_jobs_eval(tier_jobs *j, tier_kv *kv, tier_jobs_script s, int64_t now_ms, int argc,
                           const char **argv, const size_t *lens, int *status)
{
    char now[24];
    redisReply *r;

    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    r = evalsha(j, kv, s, now, argc, argv, lens);
    /* Redis restarted (or SCRIPT FLUSH): the scripts are gone; load again. */
    if (r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(r);
        if (load_script(j, kv, s) != TIER_OK) {
            *status = TIER_UNAVAILABLE;
            return NULL;
        }
        r = evalsha(j, kv, s, now, argc, argv, lens);
    }
    /* Redis lost the lease key: the writer sets it again, then one retry. */
    if (r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOWRITER", 8) == 0 &&
        tier_writer_missing()) {
        freeReplyObject(r);
        r = evalsha(j, kv, s, now, argc, argv, lens);
    }
    if (r == NULL) {
        *status = TIER_UNAVAILABLE;
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        tier_error("redis: job script %d: %s", s, r->str);
        *status = strncmp(r->str, "FENCED", 6) == 0 ? TIER_ABORTED
                  : strncmp(r->str, "NOWRITER", 8) == 0 || strstr(r->str, "LOADING") ||
                          strstr(r->str, "BUSY")
                      ? TIER_UNAVAILABLE
                      : TIER_INTERNAL;
        freeReplyObject(r);
        if (*status == TIER_ABORTED)
            tier_writer_fenced("Redis job script");
        return NULL;
    }
    *status = TIER_OK;
    return r;
}

static int64_t num(const redisReply *r)
{
    char buf[32];
    size_t n = r->len < sizeof(buf) - 1 ? r->len : sizeof(buf) - 1;
    memcpy(buf, r->str, n);
    buf[n] = '\0';
    return strtoll(buf, NULL, 10);
}

static bool is(const redisReply *k, const char *name)
{
    size_t n = strlen(name);
    return k->len == n && memcmp(k->str, name, n) == 0;
}

bool tier_jobs_view_parse(const redisReply *r, tier_jobs_view *v)
{
    memset(v, 0, sizeof(*v));
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 2)
        return false;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *x = r->element[i + 1];
        tier_jobs_str s = {x->str, x->len};
        if (k->type != REDIS_REPLY_STRING || x->type != REDIS_REPLY_STRING)
            continue;
        if (is(k, "cid"))
            v->cid = num(x);
        else if (is(k, "count"))
            v->count = num(x);
        else if (is(k, "target"))
            v->target = s;
        else if (is(k, "db_level"))
            v->db_level = s;
        else if (is(k, "filename"))
            v->filename = s;
        else if (is(k, "worker_id"))
            v->worker_id = s;
        else if (is(k, "status"))
            v->status = s;
        else if (is(k, "fence"))
            v->fence = (uint64_t)num(x);
        else if (is(k, "lease_expires_ms"))
            v->lease_expires_ms = num(x);
        else if (is(k, "attempts"))
            v->attempts = (uint32_t)num(x);
        else if (is(k, "reason"))
            v->reason = s;
        else if (is(k, "src_dir"))
            v->src_dir = s;
        else if (is(k, "dst_dir"))
            v->dst_dir = s;
        else if (is(k, "created_ms"))
            v->created_ms = num(x);
        else if (is(k, "updated_ms"))
            v->updated_ms = num(x);
        else if (is(k, "also_dirs"))
            v->also_dirs = s;
        else if (is(k, "pending")) {
            v->has_pending = true;
            v->pending = num(x);
        }
    }
    return v->status.len > 0;
}

void tier_jobs_key(const tier_jobs *j, char *buf, size_t len, int64_t cid)
{
    snprintf(buf, len, "%sjob:%lld", j->prefix, (long long)cid);
}

void tier_jobs_index(const tier_jobs *j, char *buf, size_t len, const char *status)
{
    snprintf(buf, len, "%sjobs:%s", j->prefix, status);
}
