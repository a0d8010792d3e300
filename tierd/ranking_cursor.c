/*
 * ranking_cursor.c -- TopContents' paging cursor: the sort key of the last
 * row of a page, as an opaque string the client hands back.
 *
 *   i:<change>:<cid>:<service>              INCREASE
 *   d:<change>:<cid>:<service>              DECREASE
 *   h:<minute>:<hot bits>:<cid>:<service>   HOT evaluated at <minute>,
 *                                           hot as 16 hex digits (IEEE bits)
 *
 * The HOT cursor carries its evaluation minute so every page of a walk is
 * ranked at the same minute (the scores, not only the order, must agree
 * for "strictly after" to mean the same row), and the exact bits of the
 * score so no decimal round trip moves it.  The service comes last: its
 * alphabet has no ':' but has '.', so it cannot be confused with a field.
 * Parsing is strict (every number whole, in range, nothing left over):
 * the cursor comes from the network.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ranking_int.h"

/* Parses a decimal int64 ending at ':'; advances *p past the ':'. */
static bool field_i64(const char **p, int64_t *v)
{
    char *end;

    if (**p != '-' && (**p < '0' || **p > '9'))
        return false;
    errno = 0;
    long long x = strtoll(*p, &end, 10);
    if (errno != 0 || *end != ':')
        return false;
    *v = x;
    *p = end + 1;
    return true;
}

static bool field_bits(const char **p, double *v)
{
    uint64_t bits = 0;
    int i;

    for (i = 0; i < 16; i++) {
        char c = (*p)[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return false;
        bits = bits << 4 | (uint64_t)d;
    }
    if ((*p)[16] != ':')
        return false;
    memcpy(v, &bits, sizeof(*v));
    *p += 17;
    return isfinite(*v);
}

bool ranking_cursor_parse(const char *s, ranking_cursor *c)
{
    const char *p = s + 2;
    size_t len = strlen(s), sl;

    memset(c, 0, sizeof(*c));
    if (len < 2 || len > RANKING_CURSOR_MAX || s[1] != ':')
        return false;
    switch (s[0]) {
    case 'i':
        c->order = TIER__ORDER__INCREASE;
        break;
    case 'd':
        c->order = TIER__ORDER__DECREASE;
        break;
    case 'h':
        c->order = TIER__ORDER__HOT;
        if (!field_i64(&p, &c->minute) || c->minute < 0 || c->minute >= INT32_MAX ||
            !field_bits(&p, &c->key.hot))
            return false;
        break;
    default:
        return false;
    }
    if ((c->order != TIER__ORDER__HOT && !field_i64(&p, &c->key.change)) ||
        !field_i64(&p, &c->key.cid))
        return false;
    sl = strlen(p);
    if (sl == 0 || sl >= sizeof(c->service) || !ranking_service_valid(p, sl))
        return false;
    memcpy(c->service, p, sl + 1);
    c->key.service = c->service;
    return true;
}

char *ranking_cursor_format(tier_rpc_ctx *call, int order, int64_t minute, const tier_rank_row *row)
{
    char buf[RANKING_CURSOR_MAX + 1];
    uint64_t bits;

    if (order == TIER__ORDER__HOT) {
        memcpy(&bits, &row->hot, sizeof(bits));
        snprintf(buf, sizeof(buf), "h:%" PRId64 ":%016" PRIx64 ":%" PRId64 ":%s", minute, bits,
                 row->cid, row->service);
    } else {
        snprintf(buf, sizeof(buf), "%c:%" PRId64 ":%" PRId64 ":%s",
                 order == TIER__ORDER__DECREASE ? 'd' : 'i', row->change, row->cid, row->service);
    }
    return tier_rpc_strdup(call, buf);
}
