/*
 * test_watch.c -- WatchTop (live top lists, a long poll) against a real
 * tierd process on a fresh MariaDB database:
 *
 *   - version 0 is answered at once with the list; the same version is
 *     held, and a posted comment that changes the list wakes the hold;
 *   - a hold that sees no change ends with changed = false, no rows and
 *     the version sent; a huge wait_ms is cut to the call's deadline;
 *   - hostile fields are refused INVALID_ARGUMENT (or clamped, as
 *     tier.proto says);
 *   - --watch-max held calls: the next one is RESOURCE_EXHAUSTED, and
 *     TopContents is still served meanwhile;
 *   - watchers of one list share its computation (Health's counters);
 *   - SIGTERM with held calls: they are answered UNAVAILABLE and tierd
 *     exits without waiting for their holds;
 *   - `tierctl top --watch --count 2 --json` prints two lists;
 *   - with two shards, a watch on shard 0 sees a comment posted on shard 1.
 *
 * No timed assertions: a hold that should be woken is given 20 s or more,
 * so only a hold that is never woken fails.  The minute may roll during a
 * test, which legitimately wakes a hold (a new version): the checks allow
 * for it by looking again.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tier.pb-c.h"
#include "ranking_fixture.h"
#include "tier_client.h"
#include "tier_methods.h"
#include "tier_rpc.h"
#include "tier_slot.h"
#include "tier_testenv.h"

/* Like ranking_fixture_teardown, and also kills any child a test left. */
static void teardown(ranking_fixture *f)
{
    tier_client_close(f->c);
    if (f->td.pid > 0)
        tier_test_tierd_stop(&f->td, SIGTERM, 20000);
    tier_test_kill_children();
    tier_test_db_drop(&f->m);
    tier_test_rmtree(f->dir);
    free(f->dir);
}

static void post(ranking_fixture *f, const char *service, int64_t cid)
{
    Tier__PostCommentRequest q = TIER__POST_COMMENT_REQUEST__INIT;
    Tier__PostCommentReply *rep = NULL;
    tier_error err;

    q.service = (char *)service;
    q.cid = cid;
    q.author = "ann";
    q.body = "hi";
    cr_assert_eq(tier_post_comment(f->c, &q, &rep, &err), TIER_OK, "%s", err.message);
    tier_free(rep);
}

/* One step: TIER_OK with *rep, or the error code. */
static int watch(ranking_fixture *f, Tier__TopContentsRequest *top, uint32_t window,
                 uint64_t version, uint32_t wait_ms, Tier__WatchTopReply **rep)
{
    Tier__WatchTopRequest q = TIER__WATCH_TOP_REQUEST__INIT;
    tier_error err;

    q.top = top;
    q.window_min = window;
    q.version = version;
    q.wait_ms = wait_ms;
    *rep = NULL;
    return tier_watch_top(f->c, &q, rep, &err);
}

static bool has_cid(const Tier__WatchTopReply *rep, int64_t cid)
{
    for (size_t i = 0; i < rep->n_rows; i++)
        if (rep->rows[i]->cid == cid)
            return true;
    return false;
}

/* ------------------------------------------------------------ basics */

typedef struct {
    ranking_fixture *f;
    uint64_t version;
    Tier__WatchTopReply *rep;
    int rv;
} held;

/* Holds until cid shows up (a minute roll may wake the hold before). */
static void *hold_for_cid(void *arg)
{
    held *h = arg;

    for (int i = 0; i < 10; i++) {
        h->rv = watch(h->f, NULL, 10, h->version, 30000, &h->rep);
        if (h->rv != TIER_OK || has_cid(h->rep, 7))
            return NULL;
        h->version = h->rep->version;
        tier_free(h->rep);
        h->rep = NULL;
    }
    return NULL;
}

Test(watch, answers_at_once_then_wakes_on_a_change)
{
    ranking_fixture f;
    Tier__WatchTopReply *rep;

    ranking_fixture_setup(&f, NULL);
    post(&f, "web", 5);
    cr_assert_eq(watch(&f, NULL, 10, 0, 30000, &rep), TIER_OK);
    cr_assert(rep->changed);
    cr_assert_neq(rep->version, 0);
    cr_assert_eq(rep->n_rows, 1);
    cr_assert_eq(rep->rows[0]->cid, 5);
    cr_assert_eq(rep->minute_ms % 60000, 0);
    /* Another version (say, one from another list) is answered at once. */
    Tier__WatchTopReply *again;
    cr_assert_eq(watch(&f, NULL, 10, rep->version ^ 1, 30000, &again), TIER_OK);
    cr_assert(again->changed && again->n_rows == 1);
    tier_free(again);

    /* The same version is held until cid 7's comment changes the list. */
    held h = {.f = &f, .version = rep->version};
    pthread_t th;
    tier_free(rep);
    cr_assert_eq(pthread_create(&th, NULL, hold_for_cid, &h), 0);
    usleep(300 * 1000);
    post(&f, "web", 7);
    pthread_join(th, NULL);
    cr_assert_eq(h.rv, TIER_OK);
    cr_assert(h.rep->changed && has_cid(h.rep, 7), "woken without cid 7");
    tier_free(h.rep);
    teardown(&f);
}

/* A HOT list has no window: it is TopContents HOT at tierd's minute, and
 * a second comment on cid 9 puts it above cid 8 (same minute, more weight). */
Test(watch, hot_lists_follow_the_decayed_order)
{
    ranking_fixture f;
    Tier__TopContentsRequest top = TIER__TOP_CONTENTS_REQUEST__INIT;
    Tier__WatchTopReply *rep, *next;

    ranking_fixture_setup(&f, NULL);
    top.order = TIER__ORDER__HOT;
    post(&f, "web", 8);
    post(&f, "web", 9);
    cr_assert_eq(watch(&f, &top, 0, 0, 30000, &rep), TIER_OK);
    cr_assert(rep->changed && rep->n_rows == 2);
    cr_assert_gt(rep->rows[1]->hot, 0.5);
    /* Same minute: a tie, broken by cid (a minute roll between the posts
     * would make cid 9 newer, so heavier). */
    if (rep->rows[0]->hot == rep->rows[1]->hot)
        cr_assert_eq(rep->rows[0]->cid, 8, "a tie is broken by cid");
    else
        cr_assert(rep->rows[0]->cid == 9 && rep->rows[0]->hot > rep->rows[1]->hot);
    post(&f, "web", 9);
    /* Held on the old version until the post (or a minute roll) changes it. */
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(watch(&f, &top, 0, rep->version, 30000, &next), TIER_OK);
        tier_free(rep);
        rep = next;
        if (rep->n_rows == 2 && rep->rows[0]->cid == 9)
            break;
    }
    cr_assert_eq(rep->rows[0]->cid, 9);
    cr_assert_gt(rep->rows[0]->hot, rep->rows[1]->hot);
    tier_free(rep);
    teardown(&f);
}

Test(watch, unchanged_hold_ends_with_changed_false)
{
    ranking_fixture f;
    Tier__WatchTopReply *rep;
    uint64_t v;
    bool seen = false;

    ranking_fixture_setup(&f, NULL);
    post(&f, "web", 5);
    cr_assert_eq(watch(&f, NULL, 10, 0, 0, &rep), TIER_OK);
    v = rep->version;
    tier_free(rep);
    for (int i = 0; i < 10 && !seen; i++) {
        cr_assert_eq(watch(&f, NULL, 10, v, 300, &rep), TIER_OK);
        if (!rep->changed) { /* else the minute rolled: a new version */
            cr_assert_eq(rep->version, v);
            cr_assert_eq(rep->n_rows, 0);
            seen = true;
        }
        v = rep->version;
        tier_free(rep);
    }
    cr_assert(seen);

    /* wait_ms far beyond 60 s, and a client deadline of 2 s: the hold is
     * cut to the deadline, so the call ends OK (not DEADLINE_EXCEEDED). */
    tier_rpc_client *rc;
    tier_rpc_error err;
    cr_assert_eq(tier_rpc_client_open(&rc, f.td.listen, NULL, &err), TIER_OK);
    Tier__WatchTopRequest q = TIER__WATCH_TOP_REQUEST__INIT;
    q.window_min = 10;
    q.wait_ms = UINT32_MAX;
    ProtobufCMessage *out = NULL;
    for (int i = 0; i < 10; i++) {
        q.version = v;
        cr_assert_eq(tier_rpc_call(rc, TIER_M_WATCH_TOP, &q.base,
                                   &tier__watch_top_reply__descriptor, &out, 2000, &err),
                     TIER_OK, "%s", err.message);
        Tier__WatchTopReply *r = (Tier__WatchTopReply *)out;
        bool done = !r->changed;
        v = r->version;
        protobuf_c_message_free_unpacked(out, NULL);
        if (done)
            break;
    }
    tier_rpc_client_close(rc);
    teardown(&f);
}

Test(watch, hostile_fields)
{
    char *extra[] = {"--retention-min", "120", NULL};
    ranking_fixture f;
    Tier__WatchTopReply *rep;
    Tier__TopContentsRequest top = TIER__TOP_CONTENTS_REQUEST__INIT;

    ranking_fixture_setup(&f, extra);
    top.limit = 5000;
    cr_assert_eq(watch(&f, &top, 10, 0, 0, &rep), TIER_INVALID_ARGUMENT);
    top.limit = 1000;
    cr_assert_eq(watch(&f, &top, 121, 0, 0, &rep), TIER_INVALID_ARGUMENT);
    cr_assert_eq(watch(&f, &top, UINT32_MAX, 0, 0, &rep), TIER_INVALID_ARGUMENT);
    cr_assert_eq(watch(&f, &top, 120, 0, 0, &rep), TIER_OK); /* the whole retention */
    tier_free(rep);
    cr_assert_eq(watch(&f, &top, 0, 0, 0, &rep), TIER_OK); /* 0 = 60 minutes */
    tier_free(rep);
    top.from_ms = 60000;
    cr_assert_eq(watch(&f, &top, 10, 0, 0, &rep), TIER_INVALID_ARGUMENT);
    top.from_ms = 0;
    top.local = true;
    cr_assert_eq(watch(&f, &top, 10, 0, 0, &rep), TIER_INVALID_ARGUMENT);
    top.local = false;
    top.service = "Not Valid!";
    cr_assert_eq(watch(&f, &top, 10, 0, 0, &rep), TIER_INVALID_ARGUMENT);
    top.service = "web";
    top.limit = 0; /* = 100, as TopContents */
    cr_assert_eq(watch(&f, &top, 10, 0, 0, &rep), TIER_OK);
    cr_assert(rep->changed && rep->n_rows == 0);
    tier_free(rep);
    /* Garbage bytes: INVALID_ARGUMENT from the rpc layer, and tierd lives. */
    tier_rpc_client *rc;
    tier_rpc_error err;
    void *out = NULL;
    size_t outlen = 0;
    cr_assert_eq(tier_rpc_client_open(&rc, f.td.listen, NULL, &err), TIER_OK);
    cr_assert_eq(
        tier_rpc_call_raw(rc, TIER_M_WATCH_TOP, "\x0a\xff\xff\xff", 4, &out, &outlen, 5000, &err),
        TIER_INVALID_ARGUMENT);
    tier_rpc_client_close(rc);
    cr_assert_eq(watch(&f, NULL, 10, 0, 0, &rep), TIER_OK);
    tier_free(rep);
    teardown(&f);
}

/* ------------------------------------------------------------ held calls */

typedef struct {
    atomic_int done;
    atomic_int unavailable;
    atomic_int ok;
    atomic_int exhausted;
} tally;

static void on_done(void *arg, int code, const void *payload, size_t len, const char *message)
{
    tally *t = arg;
    (void)payload, (void)len, (void)message;
    if (code == TIER_UNAVAILABLE)
        atomic_fetch_add(&t->unavailable, 1);
    if (code == TIER_OK)
        atomic_fetch_add(&t->ok, 1);
    if (code == TIER_RESOURCE_EXHAUSTED)
        atomic_fetch_add(&t->exhausted, 1);
    atomic_fetch_add(&t->done, 1);
}

/* n WatchTop calls of version v held for 50 s, sent without waiting. */
static void hold_async(tier_rpc_client *rc, uint64_t v, int n, tally *t)
{
    Tier__WatchTopRequest q = TIER__WATCH_TOP_REQUEST__INIT;
    uint8_t buf[64];

    q.window_min = 10;
    q.version = v;
    q.wait_ms = 50000;
    size_t len = tier__watch_top_request__pack(&q, buf);
    for (int i = 0; i < n; i++)
        cr_assert_eq(tier_rpc_call_async(rc, TIER_M_WATCH_TOP, buf, len, 55000, on_done, t),
                     TIER_OK);
}

Test(watch, cap_refuses_and_others_are_served)
{
    char *extra[] = {"--watch-max", "3", NULL};
    ranking_fixture f;
    Tier__WatchTopReply *rep;
    tier_rpc_client *rc;
    tier_rpc_error err;
    tally t = {0};
    bool refused = false;

    ranking_fixture_setup(&f, extra);
    cr_assert_eq(watch(&f, NULL, 10, 0, 0, &rep), TIER_OK);
    uint64_t v = rep->version;
    tier_free(rep);
    cr_assert_eq(tier_rpc_client_open(&rc, f.td.listen, NULL, &err), TIER_OK);
    hold_async(rc, v, 3, &t);
    /* Once the three are held, the next is refused (each probe is held
     * 1 ms at most, so it never keeps a place itself for long). */
    for (int i = 0; i < 200 && !refused; i++) {
        int rv = watch(&f, NULL, 10, v, 1, &rep);
        if (rv == TIER_OK) {
            tier_free(rep);
            usleep(20 * 1000);
        } else {
            cr_assert_eq(rv, TIER_RESOURCE_EXHAUSTED);
            refused = true;
        }
    }
    /* A probe may overtake the async calls: then one of those is the one
     * refused, which shows the cap as well. */
    while (!refused && atomic_load(&t.exhausted) == 0 && atomic_load(&t.done) < 3)
        usleep(10 * 1000);
    cr_assert(refused || atomic_load(&t.exhausted) > 0, "never refused with 3 held");
    /* TopContents is served while they are held. */
    Tier__TopContentsRequest q = TIER__TOP_CONTENTS_REQUEST__INIT;
    Tier__TopContentsReply *top;
    tier_error e;
    int64_t now = time(NULL) * 1000LL;
    q.from_ms = (now / 60000 - 5) * 60000;
    q.to_ms = (now / 60000 + 1) * 60000;
    cr_assert_eq(tier_top_contents(f.c, &q, &top, &e), TIER_OK, "%s", e.message);
    tier_free(top);
    /* A change wakes the held ones. */
    post(&f, "web", 9);
    while (atomic_load(&t.done) < 3)
        usleep(10 * 1000);
    cr_assert_eq(atomic_load(&t.ok) + atomic_load(&t.exhausted), 3);
    cr_assert_gt(atomic_load(&t.ok), 0);
    tier_rpc_client_close(rc);
    teardown(&f);
}

/* The Health "ranking" message: "...; N watches held on L lists, C lists
 * computed". */
static void watch_health(ranking_fixture *f, unsigned *held, unsigned long long *computed)
{
    Tier__Rpc__HealthRequest q = TIER__RPC__HEALTH_REQUEST__INIT;
    Tier__Rpc__HealthReply *rep;
    tier_error err;
    unsigned lists;

    cr_assert_eq(tier_health(f->c, &q, &rep, &err), TIER_OK, "%s", err.message);
    bool found = false;
    for (size_t i = 0; i < rep->n_dependencies; i++) {
        const char *m = rep->dependencies[i]->message, *p = m ? strchr(m, ';') : NULL;
        if (strcmp(rep->dependencies[i]->name, "ranking") == 0 && p != NULL)
            found = sscanf(p, "; %u watches held on %u lists, %llu lists computed", held, &lists,
                           computed) == 3;
    }
    cr_assert(found);
    tier_free(rep);
}

/* Twenty watchers of one list, woken by one change: one computation (or
 * two, when the minute rolls meanwhile), not twenty. */
Test(watch, watchers_of_one_list_share_its_computation)
{
    ranking_fixture f;
    Tier__WatchTopReply *rep;
    tier_rpc_client *rc;
    tier_rpc_error err;
    tally t = {0};
    unsigned held = 0;
    unsigned long long c0, c1;

    ranking_fixture_setup(&f, NULL);
    cr_assert_eq(watch(&f, NULL, 10, 0, 0, &rep), TIER_OK);
    uint64_t v = rep->version;
    tier_free(rep);
    cr_assert_eq(tier_rpc_client_open(&rc, f.td.listen, NULL, &err), TIER_OK);
    hold_async(rc, v, 20, &t);
    do {
        usleep(20 * 1000);
        watch_health(&f, &held, &c0);
    } while (held < 20 && atomic_load(&t.done) == 0);
    post(&f, "web", 11);
    while (atomic_load(&t.done) < 20)
        usleep(10 * 1000);
    watch_health(&f, &held, &c1);
    cr_assert_eq(atomic_load(&t.ok), 20);
    cr_assert_lt(c1 - c0, 5, "%llu computations for one change of one list", c1 - c0);
    tier_rpc_client_close(rc);
    teardown(&f);
}

Test(watch, shutdown_answers_held_calls)
{
    ranking_fixture f;
    Tier__WatchTopReply *rep;
    tier_rpc_client *rc;
    tier_rpc_error err;
    tally t = {0};

    ranking_fixture_setup(&f, NULL);
    cr_assert_eq(watch(&f, NULL, 10, 0, 0, &rep), TIER_OK);
    uint64_t v = rep->version;
    tier_free(rep);
    cr_assert_eq(tier_rpc_client_open(&rc, f.td.listen, NULL, &err), TIER_OK);
    hold_async(rc, v, 20, &t);
    usleep(500 * 1000);
    /* 20 s is well under the 50 s holds: a tierd that waited for them
     * would fail here. */
    cr_assert_eq(tier_test_tierd_stop(&f.td, SIGTERM, 20000), 0);
    f.td.pid = 0;
    while (atomic_load(&t.done) < 20)
        usleep(10 * 1000);
    /* UNAVAILABLE from tierd, or (a minute roll) OK before the signal. */
    cr_assert_eq(atomic_load(&t.unavailable) + atomic_load(&t.ok), 20);
    tier_rpc_client_close(rc);
    teardown(&f);
}

/* ------------------------------------------------------------ tierctl */

typedef struct {
    ranking_fixture *f;
    atomic_bool stop;
} poster;

static void *keep_posting(void *arg)
{
    poster *p = arg;
    for (int64_t cid = 100; !atomic_load(&p->stop); cid++) {
        post(p->f, "web", cid);
        usleep(200 * 1000);
    }
    return NULL;
}

Test(watch, tierctl_watch_count_json)
{
    ranking_fixture f;
    poster p = {.f = NULL};
    pthread_t th;
    char out[65536];

    ranking_fixture_setup(&f, NULL);
    p.f = &f;
    cr_assert_eq(pthread_create(&th, NULL, keep_posting, &p), 0);
    char *bin = tier_test_bin("tierctl");
    char *argv[] = {bin,         "--json",  "--url", f.td.listen,    "top",
                    "--watch",   "--count", "2",     "--window-min", "5",
                    "--service", "web",     "-n",    "10",           NULL};
    int st = tier_test_run(argv, NULL, out, sizeof(out), 60000);
    atomic_store(&p.stop, true);
    pthread_join(th, NULL);
    free(bin);
    cr_assert_eq(st, 0, "%s", out);
    int lines = 0;
    for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        json_error_t e;
        json_t *v = json_loads(line, 0, &e);
        cr_assert_not_null(v, "not JSON: %s", line);
        cr_assert(json_is_array(json_object_get(v, "rows")));
        cr_assert(json_is_string(json_object_get(v, "version")));
        cr_assert_eq(json_integer_value(json_object_get(v, "window_min")), 5);
        json_decref(v);
        lines++;
    }
    cr_assert_eq(lines, 2);
    teardown(&f);
}

/* ------------------------------------------------------------ two shards */

/* A watch asked of shard 0 follows the merged list: a comment on one of
 * shard 1's contents shows up in it (re-evaluated once a second, as
 * other shards' changes are not signalled). */
Test(watch, follows_other_shards)
{
    tier_test_mysql m;
    tier_test_tierd td[2];
    tier_client *c[2];
    char *dir = tier_test_tmpdir(), prefix[64];
    Tier__WatchTopReply *rep;
    tier_error err;

    tier_test_mysql_env(&m);
    tier_test_db_create(&m, NULL);
    snprintf(prefix, sizeof(prefix), "twatch%d:", (int)getpid());
    for (int k = 0; k < 2; k++) {
        tier_test_tierd_init(&td[k], NULL, m.db, prefix);
        tier_test_tierd_setenv_services(&td[k], &m, -1, -1);
        tier_test_tierd_start(&td[k],
                              (char *const[]){"--shards", "2", "--shard", k ? "1" : "0", NULL});
        cr_assert_eq(tier_client_open(&c[k], td[k].listen), TIER_OK);
        tier_client_set_timeout(c[k], 30000);
    }
    int64_t cid = 1;
    while (tier_shard_of(cid, 2) != 1)
        cid++;
    ranking_fixture f0 = {.c = c[0]}, f1 = {.c = c[1]};
    cr_assert_eq(watch(&f0, NULL, 10, 0, 0, &rep), TIER_OK, "first list");
    uint64_t v = rep->version;
    cr_assert_eq(rep->n_rows, 0);
    tier_free(rep);
    post(&f1, "web", cid);
    bool seen = false;
    for (int i = 0; i < 10 && !seen; i++) {
        Tier__WatchTopRequest q = TIER__WATCH_TOP_REQUEST__INIT;
        q.window_min = 10;
        q.version = v;
        q.wait_ms = 30000;
        cr_assert_eq(tier_watch_top(c[0], &q, &rep, &err), TIER_OK, "%s", err.message);
        seen = has_cid(rep, cid);
        v = rep->version;
        tier_free(rep);
    }
    cr_assert(seen, "shard 1's comment never reached the watch on shard 0");
    for (int k = 0; k < 2; k++) {
        tier_client_close(c[k]);
        tier_test_tierd_stop(&td[k], SIGTERM, 20000);
    }
    tier_test_db_drop(&m);
    tier_test_rmtree(dir);
    free(dir);
}
