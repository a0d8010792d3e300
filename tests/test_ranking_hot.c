/*
 * test_ranking_hot.c -- TopContents' HOT order and paging end to end: a
 * real tierd (spawned per test, fresh MariaDB database) driven through
 * libtier.
 *
 *   - comments posted with backfilled times over 300 minutes in 3
 *     services, deleted and restored at backfilled times too; HOT (at an
 *     explicit minute and at "now") equals the formula of tier.proto summed
 *     by brute force over the events the test made, rows swapped only where
 *     the two scores agree to 1e-9 relative; again after kill -9 (the index
 *     is rebuilt from comment_minute);
 *   - walking every page with next_cursor (HOT and INCREASE/DECREASE
 *     windows, several page sizes) gives exactly the one-page answer, and
 *     the last page's next_cursor is "";
 *   - bad cursors, half-lives and HOT windows are INVALID_ARGUMENT;
 *   - tierctl top --order hot, --cursor and --all.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ranking_fixture.h"
#include "ranking_model.h"
#include "tier_client.h"
#include "tier_testenv.h"
#include "tier_time.h"

#define HALF_LIFE_S 1800

/* tierd's arguments at every start (ranking_fixture.h). */
static char *const TIERD_ARGS[] = {"--hot-half-life-s", "1800", NULL};

/* ------------------------------------------------------------ the model (ranking_model.h) */

/* Posts n comments in [lo_min, hi_min], half of them in the last 20 minutes. */
static void post_recent(tier_client *c, model *m, size_t n, int64_t lo_min, int64_t hi_min,
                        unsigned *seed)
{
    Tier__PostCommentRequest *cs = calloc(n, sizeof(*cs));

    for (size_t i = 0; i < n; i++) {
        tier__post_comment_request__init(&cs[i]);
        cs[i].service = (char *)SVCS[rand_r(seed) % NSVC];
        cs[i].cid = 1 + (rand_r(seed) % MAXCID) * (rand_r(seed) % MAXCID) / MAXCID;
        cs[i].author = "tester";
        cs[i].body = "hot";
        /* recent minutes more often: they decide the hot order */
        int64_t span = hi_min - lo_min + 1;
        int64_t minute = rand_r(seed) % 2 ? hi_min - rand_r(seed) % (span < 20 ? span : 20)
                                          : lo_min + rand_r(seed) % span;
        cs[i].time_ms = minute * 60000 + rand_r(seed) % 60000;
    }
    post_built(c, m, cs, n);
    free(cs);
}

/* Backfilled deletes and restores, each after the comment's last change. */
static void change_random(tier_client *c, model *m, size_t n, int64_t hi_ms, unsigned *seed)
{
    for (size_t i = 0; i < n; i++) {
        live *l = &m->cm[rand_r(seed) % m->ncm];
        if (l->last_ms >= hi_ms)
            continue;
        int64_t t = l->last_ms + (int64_t)rand_r(seed) % (hi_ms - l->last_ms);
        Tier__DeleteCommentRequest d = TIER__DELETE_COMMENT_REQUEST__INIT;
        Tier__RestoreCommentRequest r = TIER__RESTORE_COMMENT_REQUEST__INIT;
        Tier__CommentReply *rep = NULL;
        tier_error err;
        d.id = r.id = l->id;
        d.time_ms = r.time_ms = t;
        int rv = l->deleted ? tier_restore_comment(c, &r, &rep, &err)
                            : tier_delete_comment(c, &d, &rep, &err);
        cr_assert_eq(rv, TIER_OK, "%s", err.message);
        tier_free(rep);
        l->deleted = !l->deleted;
        l->last_ms = t;
        add_event(m, l->svc, l->cid, t / 60000, l->deleted ? 1 : 2);
    }
}

/* ------------------------------------------------------------ brute force */

typedef struct {
    bool seen;
    int64_t change;
    double hot, mag; /* mag: sum of |terms|, the scale of rounding errors */
} score;

static score table[NSVC][MAXCID + 1];

static void brute_hot(const model *m, int64_t now)
{
    memset(table, 0, sizeof(table));
    for (size_t i = 0; i < m->nev; i++) {
        const event *e = &m->ev[i];
        score *s = &table[e->svc][e->cid];
        int sign = e->kind == 1 ? -1 : 1;
        double term = sign * exp2(-(double)(now - e->minute) * 60.0 / HALF_LIFE_S);
        s->seen = true;
        s->change += sign;
        s->hot += term;
        s->mag += fabs(term);
    }
}

static int svc_of(const char *name)
{
    for (int i = 0; i < NSVC; i++)
        if (strcmp(SVCS[i], name) == 0)
            return i;
    cr_assert_fail("unknown service %s", name);
    return -1;
}

static double tol(const score *a, const score *b)
{
    return 1e-9 * (a->mag + b->mag) + 1e-300;
}

static Tier__TopContentsReply *top(tier_client *c, int order, int64_t from_ms, int64_t to_ms,
                                   int svc, uint32_t limit, const char *cursor)
{
    Tier__TopContentsRequest q = TIER__TOP_CONTENTS_REQUEST__INIT;
    Tier__TopContentsReply *rep;
    tier_error err;

    q.order = order;
    q.from_ms = from_ms;
    q.to_ms = to_ms;
    q.limit = limit;
    q.service = svc >= 0 ? (char *)SVCS[svc] : "";
    q.cursor = (char *)cursor;
    cr_assert_eq(tier_top_contents(c, &q, &rep, &err), TIER_OK, "%s", err.message);
    return rep;
}

/* HOT at minute now (to_ms; 0 = tierd's now, which the caller knows). */
static void check_hot(tier_client *c, const model *m, int64_t now, int64_t to_ms, int svc,
                      uint32_t limit)
{
    Tier__TopContentsReply *rep = top(c, TIER__ORDER__HOT, 0, to_ms, svc, limit, "");
    size_t want = 0;

    brute_hot(m, now);
    for (int s = 0; s < NSVC; s++)
        for (int k = 0; k <= MAXCID; k++)
            want += table[s][k].seen && (svc < 0 || s == svc);
    cr_assert_eq(rep->n_rows, want < limit ? want : limit, "svc %d limit %u: %zu rows, want %zu",
                 svc, limit, rep->n_rows, want);
    const score *prev = NULL;
    for (size_t i = 0; i < rep->n_rows; i++) {
        const Tier__TopRow *r = rep->rows[i];
        cr_assert(r->cid >= 1 && r->cid <= MAXCID);
        score *s = &table[svc_of(r->service)][r->cid];
        cr_assert(s->seen, "row %zu: %s/%lld twice or unknown", i, r->service, (long long)r->cid);
        cr_assert(fabs(r->hot - s->hot) <= tol(s, s), "row %zu %s/%lld: hot %.17g want %.17g", i,
                  r->service, (long long)r->cid, r->hot, s->hot);
        cr_assert_eq(r->change, s->change);
        cr_assert(prev == NULL || prev->hot >= s->hot - tol(prev, s),
                  "row %zu %s/%lld (%.17g) after a lower score (%.17g)", i, r->service,
                  (long long)r->cid, s->hot, prev->hot);
        s->seen = false;
        prev = s;
    }
    for (int s = 0; s < NSVC && prev != NULL; s++)
        for (int k = 0; k <= MAXCID; k++)
            cr_assert(!table[s][k].seen || (svc >= 0 && s != svc) ||
                          table[s][k].hot <= prev->hot + tol(&table[s][k], prev),
                      "%s/%d (%.17g) left out", SVCS[s], k, table[s][k].hot);
    tier_free(rep);
}

/* Every page of a ranking, page rows at a time, equals the one-page
 * answer. */
static void check_pages(tier_client *c, int order, int64_t from_ms, int64_t to_ms, int svc,
                        uint32_t page)
{
    Tier__TopContentsReply *full = top(c, order, from_ms, to_ms, svc, 1000, "");
    char cursor[300] = "";
    size_t at = 0;

    cr_assert_str_eq(full->next_cursor, "", "900 contents at most: one page");
    for (int pages = 0;; pages++) {
        cr_assert_leq((size_t)pages, full->n_rows / page + 1);
        Tier__TopContentsReply *p = top(c, order, from_ms, to_ms, svc, page, cursor);
        for (size_t i = 0; i < p->n_rows; i++) {
            const Tier__TopRow *a = p->rows[i], *b = full->rows[at + i];
            cr_assert(at + i < full->n_rows && a->cid == b->cid &&
                          strcmp(a->service, b->service) == 0 && a->change == b->change &&
                          a->hot == b->hot,
                      "order %d page %u: row %zu differs", order, page, at + i);
        }
        at += p->n_rows;
        bool more = p->next_cursor[0] != '\0';
        cr_assert_eq(more, at < full->n_rows, "order %d page %u at %zu: next_cursor \"%s\"", order,
                     page, at, p->next_cursor);
        cr_assert_lt(strlen(p->next_cursor), sizeof(cursor));
        strcpy(cursor, p->next_cursor);
        tier_free(p);
        if (!more)
            break;
    }
    cr_assert_eq(at, full->n_rows);
    tier_free(full);
}

/* Waits until the wall clock is at least 2 s away from a minute's end. */
static int64_t safe_minute(void)
{
    for (;;) {
        int64_t now = tier_now_ms();
        if (now % 60000 < 58000)
            return now / 60000;
        usleep(100 * 1000);
    }
}

static void check_all(tier_client *c, const model *m, int64_t now_min, unsigned *seed)
{
    static const uint32_t limits[] = {1, 5, 100, 1000};
    for (int i = 0; i < 40; i++)
        check_hot(c, m, now_min, now_min * 60000, (int)(rand_r(seed) % (NSVC + 1)) - 1,
                  limits[rand_r(seed) % 4]);
    int64_t wall = safe_minute();
    check_hot(c, m, wall, 0, -1, 1000);
    static const uint32_t pages[] = {1, 7, 64, 333};
    for (int i = 0; i < 8; i++) {
        int svc = (int)(rand_r(seed) % (NSVC + 1)) - 1;
        uint32_t page = pages[rand_r(seed) % 4];
        check_pages(c, TIER__ORDER__HOT, 0, now_min * 60000, svc, page);
        int64_t from = now_min - 1 - rand_r(seed) % 300, to = from + 1 + rand_r(seed) % 200;
        check_pages(c, i % 2 ? TIER__ORDER__DECREASE : TIER__ORDER__INCREASE, from * 60000,
                    to * 60000, svc, page);
    }
}

Test(ranking_hot, hot_and_pages_equal_brute_force_and_survive_restart, .timeout = 600)
{
    ranking_fixture f;
    model m = {0};
    unsigned seed = 20261201;

    ranking_fixture_setup(&f, TIERD_ARGS);
    int64_t now_min = tier_now_ms() / 60000, lo = now_min - 300;
    for (int round = 0; round < 4; round++) {
        post_recent(f.c, &m, 600, lo, now_min - 1, &seed);
        change_random(f.c, &m, 300, (now_min - 1) * 60000, &seed);
    }
    check_all(f.c, &m, now_min, &seed);
    ranking_fixture_kill(&f, SIGKILL);
    ranking_fixture_start(&f);
    check_all(f.c, &m, now_min, &seed);
    free(m.ev);
    free(m.cm);
    ranking_fixture_teardown(&f);
}

static int top_code(tier_client *c, int order, int64_t from_ms, int64_t to_ms, uint32_t half_life,
                    const char *cursor, char *msg, size_t len)
{
    Tier__TopContentsRequest q = TIER__TOP_CONTENTS_REQUEST__INIT;
    Tier__TopContentsReply *rep = NULL;
    tier_error err;

    q.order = order;
    q.from_ms = from_ms;
    q.to_ms = to_ms;
    q.half_life_s = half_life;
    q.cursor = (char *)cursor;
    int rv = tier_top_contents(c, &q, &rep, &err);
    snprintf(msg, len, "%s", rv == TIER_OK ? "" : err.message);
    tier_free(rep);
    return rv;
}

Test(ranking_hot, bad_requests_refused)
{
    ranking_fixture f;
    char msg[256];
    model m = {0};
    unsigned seed = 7;

    ranking_fixture_setup(&f, TIERD_ARGS);
    int64_t now_min = tier_now_ms() / 60000, to = now_min * 60000, from = to - 3600000;
    post_recent(f.c, &m, 50, now_min - 30, now_min - 1, &seed);
    cr_assert_eq(top_code(f.c, TIER__ORDER__HOT, 0, 0, 0, "", msg, sizeof(msg)), TIER_OK);
    cr_assert_eq(top_code(f.c, TIER__ORDER__HOT, 0, to, HALF_LIFE_S, "", msg, sizeof(msg)),
                 TIER_OK);
    cr_assert_eq(top_code(f.c, TIER__ORDER__HOT, 0, 0, 3600, "", msg, sizeof(msg)),
                 TIER_INVALID_ARGUMENT);
    cr_assert(strstr(msg, "hot_half_life_s (1800)") != NULL, "%s", msg);
    cr_assert_eq(top_code(f.c, TIER__ORDER__HOT, from, to, 0, "", msg, sizeof(msg)),
                 TIER_INVALID_ARGUMENT);
    cr_assert_eq(top_code(f.c, TIER__ORDER__HOT, 0, to + 1, 0, "", msg, sizeof(msg)),
                 TIER_INVALID_ARGUMENT);
    cr_assert_eq(top_code(f.c, TIER__ORDER__HOT, 0, to - 60000LL * 50000, 0, "", msg, sizeof(msg)),
                 TIER_INVALID_ARGUMENT);
    cr_assert_eq(top_code(f.c, 7, from, to, 0, "", msg, sizeof(msg)), TIER_INVALID_ARGUMENT);
    cr_assert_eq(top_code(f.c, TIER__ORDER__INCREASE, from, to, 1800, "", msg, sizeof(msg)),
                 TIER_INVALID_ARGUMENT);
    static const char *const bad[] = {
        "x",
        "i:",
        "i:1:2:",
        "i:1:2:News",
        "i:1:2:news:x",
        "i:1:2",
        "i:+1:2:news",
        "i: 1:2:news",
        "i:99999999999999999999:2:news",
        "d:1:2:news",
        "h:1:2:news",
        "h:100:3ff000000000000:2:news",
        "h:100:7ff0000000000000:2:news",
        "h:-1:3ff0000000000000:2:news",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rv = top_code(f.c, TIER__ORDER__INCREASE, from, to, 0, bad[i], msg, sizeof(msg));
        cr_assert_eq(rv, TIER_INVALID_ARGUMENT, "cursor \"%s\": %d", bad[i], rv);
    }
    char longc[400];
    memset(longc, 'a', sizeof(longc) - 1);
    longc[sizeof(longc) - 1] = '\0';
    memcpy(longc, "i:1:2:", 6);
    cr_assert_eq(top_code(f.c, TIER__ORDER__INCREASE, from, to, 0, longc, msg, sizeof(msg)),
                 TIER_INVALID_ARGUMENT);
    /* a good INCREASE cursor is refused for HOT, and a HOT cursor of
     * another minute than to_ms */
    cr_assert_eq(top_code(f.c, TIER__ORDER__INCREASE, from, to, 0, "i:1:2:news", msg, sizeof(msg)),
                 TIER_OK);
    cr_assert_eq(top_code(f.c, TIER__ORDER__HOT, 0, 0, 0, "i:1:2:news", msg, sizeof(msg)),
                 TIER_INVALID_ARGUMENT);
    char hc[128];
    snprintf(hc, sizeof(hc), "h:%lld:3ff0000000000000:2:news", (long long)(now_min - 1));
    cr_assert_eq(top_code(f.c, TIER__ORDER__HOT, 0, 0, 0, hc, msg, sizeof(msg)), TIER_OK);
    cr_assert_eq(top_code(f.c, TIER__ORDER__HOT, 0, to, 0, hc, msg, sizeof(msg)),
                 TIER_INVALID_ARGUMENT);
    free(m.ev);
    free(m.cm);
    ranking_fixture_teardown(&f);
}

/* ------------------------------------------------------------ tierctl */

/* tierctl --url URL ARGS... (NULL-terminated); exit status, output in out. */
static int ctl(const char *url, char *out, size_t len, ...)
{
    char *argv[32], *bin = tier_test_bin("tierctl");
    va_list ap;
    int n = 0;

    argv[n++] = bin;
    argv[n++] = "--url";
    argv[n++] = (char *)url;
    va_start(ap, len);
    for (char *a; n < 31 && (a = va_arg(ap, char *)) != NULL;)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    int st = tier_test_run(argv, NULL, out, len, 60000);
    free(bin);
    return st;
}

Test(ranking_hot, tierctl_top_hot_cursor_all)
{
    ranking_fixture f;
    model m = {0};
    unsigned seed = 11;
    static char out[1 << 20];

    ranking_fixture_setup(&f, TIERD_ARGS);
    int64_t now_min = tier_now_ms() / 60000;
    post_recent(f.c, &m, 400, now_min - 100, now_min - 1, &seed);
    brute_hot(&m, now_min);
    size_t contents = 0;
    for (int s = 0; s < NSVC; s++)
        for (int k = 0; k <= MAXCID; k++)
            contents += table[s][k].seen;
    cr_assert_gt(contents, 10);

    char at[32];
    snprintf(at, sizeof(at), "%lld", (long long)now_min * 60000);
    cr_assert_eq(ctl(f.td.listen, out, sizeof(out), "--json", "top", "--order", "hot", "--at", at,
                     "-n", "3", NULL),
                 0, "%s", out);
    json_error_t e;
    json_t *v = json_loads(out, 0, &e);
    cr_assert_not_null(v, "%s", out);
    json_t *rows = json_object_get(v, "rows");
    cr_assert_eq(json_array_size(rows), 3);
    cr_assert_str_eq(json_string_value(json_object_get(v, "order")), "hot");
    double h0 = json_number_value(json_object_get(json_array_get(rows, 0), "hot"));
    double h2 = json_number_value(json_object_get(json_array_get(rows, 2), "hot"));
    cr_assert(h0 >= h2 && h0 > 0, "%g %g", h0, h2);
    const char *next = json_string_value(json_object_get(v, "next_cursor"));
    cr_assert(next != NULL && next[0] == 'h', "%s", out);
    char cursor[300];
    snprintf(cursor, sizeof(cursor), "%s", next);
    json_decref(v);

    /* the next page, as text: "(more: --cursor C)" after it */
    cr_assert_eq(ctl(f.td.listen, out, sizeof(out), "top", "--order", "hot", "-n", "2", "--cursor",
                     cursor, NULL),
                 0, "%s", out);
    cr_assert(strstr(out, "hot at") != NULL && strstr(out, "(more: --cursor h:") != NULL, "%s",
              out);

    /* --all walks every page: one row per content, ranks 1..contents */
    cr_assert_eq(
        ctl(f.td.listen, out, sizeof(out), "top", "--order", "hot", "-n", "7", "--all", NULL), 0,
        "%s", out);
    char last[32];
    snprintf(last, sizeof(last), "\n%zu ", contents);
    cr_assert(strstr(out, last) != NULL && strstr(out, "(more:") == NULL, "%s", out);
    size_t lines = 0;
    for (const char *p = out; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    cr_assert_eq(lines, contents + 2, "%s", out); /* "hot at now" and the header */

    /* windows: --all over a window; a window with --order hot is a usage error */
    cr_assert_eq(ctl(f.td.listen, out, sizeof(out), "top", "--from", "-3h", "--to", "now", "-n",
                     "50", "--all", NULL),
                 0, "%s", out);
    cr_assert(strstr(out, last) != NULL, "%s", out);
    cr_assert_eq(ctl(f.td.listen, out, sizeof(out), "top", "--order", "hot", "--from", "-3h", NULL),
                 2, "%s", out);
    cr_assert_eq(ctl(f.td.listen, out, sizeof(out), "top", "--order", "cold", NULL), 2, "%s", out);
    free(m.ev);
    free(m.cm);
    ranking_fixture_teardown(&f);
}
