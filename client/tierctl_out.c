/*
 * tierctl_out.c -- how tierctl shows things: times for people (UTC unless
 * --local, always saying which) and JSON through jansson (tierctl.h has the
 * contract).  JSON goes through one library so every document is valid:
 * the old printf JSON broke on a comment body with invalid UTF-8 and gave
 * cids as strings.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tier_name.h"
#include "tier_rpc_json.h"
#include "tierctl.h"

/* floor division, so times before 1970 (never from tierd) stay sane */
static void split_ms(int64_t ms, time_t *sec, int *milli)
{
    int64_t s = ms / 1000, m = ms % 1000;
    if (m < 0)
        m += 1000, s -= 1;
    *sec = (time_t)s;
    *milli = (int)m;
}

const char *tierctl_time(const tierctl *t, int64_t ms, char *buf, size_t len)
{
    struct tm tm;
    time_t sec;
    int milli;

    if (ms <= 0) {
        snprintf(buf, len, "-");
        return buf;
    }
    split_ms(ms, &sec, &milli);
    if (t->local && localtime_r(&sec, &tm) != NULL) {
        long off = tm.tm_gmtoff / 60;
        snprintf(buf, len, "%04d-%02d-%02d %02d:%02d:%02d.%03d %c%02ld:%02ld", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, milli,
                 off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60);
    } else if (gmtime_r(&sec, &tm) != NULL) {
        snprintf(buf, len, "%04d-%02d-%02d %02d:%02d:%02d.%03d UTC", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, milli);
    } else {
        snprintf(buf, len, "%lld ms", (long long)ms);
    }
    return buf;
}

json_t *tierctl_jtime(int64_t ms)
{
    char buf[48];
    struct tm tm;
    time_t sec;
    int milli;

    if (ms <= 0)
        return json_null();
    split_ms(ms, &sec, &milli);
    if (gmtime_r(&sec, &tm) == NULL)
        return json_integer(ms); /* beyond struct tm: the raw number */
    snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, milli);
    return json_string(buf);
}

json_t *tierctl_jint(int64_t v)
{
    return json_integer((json_int_t)v);
}

json_t *tierctl_jstr(const char *s)
{
    size_t len, i = 0, o = 0, n;
    char *buf;
    json_t *v;

    s = s ? s : "";
    len = strlen(s);
    if (tier_utf8_valid(s, len))
        return json_stringn(s, len);
    /* Each byte that starts no well-formed sequence becomes U+FFFD (3
     * bytes): at most 3 * len, which cannot overflow for a C string. */
    if ((buf = malloc(3 * len + 1)) == NULL)
        return NULL;
    while (i < len) {
        if ((n = tier_utf8_seq(s + i, len - i)) == 0) {
            memcpy(buf + o, "\xEF\xBF\xBD", 3);
            o += 3, i++;
        } else {
            memcpy(buf + o, s + i, n);
            o += n, i += n;
        }
    }
    v = json_stringn(buf, o);
    free(buf);
    return v;
}

void tierctl_emit(FILE *f, json_t *v)
{
    /* Insertion order, ", " and ": " separators: what the printf JSON
     * looked like, so scripts matching on text keep working. */
    if (v != NULL && json_dumpf(v, f, JSON_PRESERVE_ORDER | JSON_ENCODE_ANY) == 0)
        fputc('\n', f);
    json_decref(v);
}

void tierctl_none(void)
{
    printf("(none)\n");
}

json_t *tierctl_job_json(const Tier__Job *j)
{
    json_t *also = json_array();
    for (size_t i = 0; i < j->n_also_dirs; i++)
        json_array_append_new(also, tierctl_jstr(j->also_dirs[i]));
    int64_t pending = 0;
    bool has_pending = j->pending[0] && tierctl_int(j->pending, &pending);
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, "
                     "s:o, s:o, s:o}",
                     "cid", tierctl_jint(j->cid), "count", tierctl_jint(j->count), "target",
                     tierctl_jstr(j->target), "db_level", tierctl_jstr(j->db_level), "filename",
                     tierctl_jstr(j->filename), "worker_id",
                     j->worker_id[0] ? tierctl_jstr(j->worker_id) : json_null(), "status",
                     tierctl_jstr(j->status), "fence", json_integer((json_int_t)j->fence),
                     "lease_expires", tierctl_jtime(j->lease_expires_ms), "attempts",
                     json_integer(j->attempts), "reason", tierctl_jstr(j->reason), "src_dir",
                     tierctl_jstr(j->src_dir), "dst_dir", tierctl_jstr(j->dst_dir), "also_dirs",
                     also, "pending", has_pending ? tierctl_jint(pending) : json_null(), "created",
                     tierctl_jtime(j->created_ms), "updated", tierctl_jtime(j->updated_ms));
}

/* size_bytes: null while tierd does not know it (-1), like an unset time. */
json_t *tierctl_content_json(const Tier__Content *c)
{
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "cid", tierctl_jint(c->cid), "level",
                     tierctl_jstr(c->level), "filename", tierctl_jstr(c->filename), "generate_time",
                     tierctl_jtime(c->generate_time_ms), "update_time",
                     tierctl_jtime(c->update_time_ms), "size_bytes",
                     c->size_bytes < 0 ? json_null() : tierctl_jint(c->size_bytes));
}

/* ------------------------------------------------------------ any message */

/* .proto field names, integers as numbers: what `policy set FILE` reads back. */
json_t *tierctl_pb_json(const ProtobufCMessage *m)
{
    return tier_rpc_json_encode_as(m, TIER_RPC_JSON_PLAIN);
}
