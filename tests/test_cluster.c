/*
 * test_cluster.c -- several coordinators (docs/CLUSTER.md, Routing): three
 * real tierd processes started with --shards 3 --shard 0/1/2 on one Redis
 * prefix and one MariaDB database, and libtier's tier_cluster_* routing.
 *
 *   topology     every tierd's Topology lists all three owners, alive, with
 *                their URLs and slot ranges; a single tierd answers with
 *                itself
 *   routing      tier_cluster_* sends each cid to its shard's owner: checked
 *                by the effect (a ReportViews that starts a move creates the
 *                job under the receiving tierd's shard prefix, so only the
 *                owner's GetJob finds it), results come back in order
 *   replaced     an owner is killed and a replacement for its shard starts
 *                on new ports: the cluster handle's stale owner is followed
 *                after a refresh, within the call
 *   config       a tierd started with another --shards than the database's
 *                cluster_config refuses to start
 *
 * Until per-shard loading lands, every tierd loads every content, so
 * routing is told from which process answered, not from refusals.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tier_client.h"
#include "tier_slot.h"
#include "tier_testenv.h"

#define NCONTENTS 30

TestSuite(cluster, .fini = tier_test_kill_children);

typedef struct {
    tier_test_mysql m;
    char *root;
    char prefix[64];
    tier_test_tierd t[4]; /* t[3]: a replacement */
} fx;

static int seq;

static void setup(fx *f)
{
    char p[1024], q[256];
    MYSQL *my;

    memset(f, 0, sizeof(*f));
    f->root = tier_test_tmpdir();
    tier_test_mysql_env(&f->m);
    tier_test_db_create(&f->m, f->root);
    my = mysql_init(NULL);
    cr_assert(mysql_real_connect(my, f->m.host, f->m.user, f->m.password, f->m.db,
                                 (unsigned)f->m.port, NULL, 0) != NULL,
              "%s", mysql_error(my));
    for (int i = 1; i <= NCONTENTS; i++) {
        snprintf(p, sizeof(p), "%s/bronze/c%d.mp4", f->root, i);
        cr_assert(tier_test_write_file(p, "x", 1), "%s", p);
        snprintf(q, sizeof(q),
                 "INSERT INTO contents (cid, content_level, filename) VALUES (%d, 'bronze', "
                 "'c%d.mp4')",
                 i, i);
        cr_assert(mysql_query(my, q) == 0, "%s", mysql_error(my));
    }
    mysql_close(my);
    snprintf(f->prefix, sizeof(f->prefix), "tc%d_%d:", (int)getpid(), seq++);
}

static void teardown(fx *f)
{
    for (int i = 0; i < 4; i++)
        if (f->t[i].pid > 0)
            tier_test_tierd_stop(&f->t[i], SIGTERM, 10000);
    tier_test_db_drop(&f->m);
    tier_test_rmtree(f->root);
    free(f->root);
}

/* Starts f->t[i] as shard k of shards. */
static void start_shard(fx *f, int i, unsigned k, unsigned shards)
{
    char dir[1024], ks[8], ns[8];

    snprintf(dir, sizeof(dir), "%s/tierd%d", f->root, i);
    mkdir(dir, 0755);
    tier_test_tierd_init(&f->t[i], dir, f->m.db, f->prefix);
    tier_test_tierd_setenv(&f->t[i], "TIER_THREADS=4");
    tier_test_tierd_setenv(&f->t[i], "TIER_NODE=node%d", i);
    snprintf(ks, sizeof(ks), "%u", k);
    snprintf(ns, sizeof(ns), "%u", shards);
    char *extra[] = {"--shards", ns, "--shard", ks, NULL};
    tier_test_tierd_start(&f->t[i], extra);
}

static void start_three(fx *f)
{
    for (int k = 0; k < 3; k++)
        start_shard(f, k, (unsigned)k, 3);
}

static tier_client *client(const tier_test_tierd *t)
{
    tier_client *c;
    cr_assert_eq(tier_client_open(&c, t->listen), TIER_OK);
    return c;
}

static Tier__TopologyReply *topology(const tier_test_tierd *t)
{
    Tier__TopologyRequest req = TIER__TOPOLOGY_REQUEST__INIT;
    Tier__TopologyReply *rep;
    tier_client *c = client(t);
    tier_error err;

    cr_assert_eq(tier_topology(c, &req, &rep, &err), TIER_OK, "%s", err.message);
    tier_client_close(c);
    return rep;
}

Test(cluster, topology_from_every_tierd)
{
    fx f;

    setup(&f);
    start_three(&f);
    for (int i = 0; i < 3; i++) {
        Tier__TopologyReply *r = topology(&f.t[i]);
        cr_assert_eq(r->slots, 1024);
        cr_assert_eq(r->shards, 3);
        cr_assert_eq(r->n_owners, 3);
        for (unsigned k = 0; k < 3; k++) {
            const Tier__ShardInfo *o = r->owners[k];
            unsigned lo, hi;
            char node[16];
            tier_shard_slots(k, 3, &lo, &hi);
            snprintf(node, sizeof(node), "node%u", k);
            cr_assert_eq(o->shard, k);
            cr_assert_str_eq(o->rpc_url, f.t[k].listen, "asked %d, shard %u", i, k);
            cr_assert_str_eq(o->push_url, f.t[k].push);
            cr_assert_str_eq(o->node, node);
            cr_assert(o->alive, "asked %d, shard %u", i, k);
            cr_assert_gt(o->token, 0);
            cr_assert_gt(o->since_ms, 0);
            cr_assert_eq(o->first_slot, lo);
            cr_assert_eq(o->last_slot, hi);
        }
        tier_free(r);
    }
    teardown(&f);
}

static void report_all(tier_cluster *cl, int n);
static tier_cluster *cluster_open(const char *seeds);

Test(cluster, a_single_tierd_answers_with_itself)
{
    fx f;

    setup(&f);
    start_shard(&f, 0, 0, 1);
    Tier__TopologyReply *r = topology(&f.t[0]);
    cr_assert_eq(r->shards, 1);
    cr_assert_eq(r->n_owners, 1);
    cr_assert_str_eq(r->owners[0]->rpc_url, f.t[0].listen);
    cr_assert(r->owners[0]->alive);
    cr_assert_eq(r->owners[0]->first_slot, 0);
    cr_assert_eq(r->owners[0]->last_slot, 1023);
    tier_free(r);
    /* A one-shard cluster handle is served through its seeds. */
    char url[256];
    tier_cluster *cl = cluster_open(f.t[0].listen);
    cr_assert_eq(tier_cluster_shards(cl), 1);
    cr_assert_eq(tier_cluster_owner_url(cl, 5, url, sizeof(url)), TIER_OK);
    cr_assert_str_eq(url, "the seeds");
    report_all(cl, NCONTENTS);
    tier_cluster_close(cl);
    teardown(&f);
}

/* Reports count 1964 (bronze -> silver: a move job) for cids 1..n through
 * the cluster; the results come back in request order. */
static void report_all(tier_cluster *cl, int n)
{
    Tier__ViewReport v[NCONTENTS], *pv[NCONTENTS];
    Tier__ReportViewsRequest req = TIER__REPORT_VIEWS_REQUEST__INIT;
    Tier__ReportViewsReply *rep;
    tier_error err;

    for (int i = 0; i < n; i++) {
        tier__view_report__init(&v[i]);
        v[i].cid = n - i; /* shards interleaved, not sorted */
        v[i].count = 1964;
        pv[i] = &v[i];
    }
    req.n_reports = (size_t)n;
    req.reports = pv;
    int rv = tier_cluster_report_views(cl, &req, &rep, &err);
    cr_assert_eq(rv, TIER_OK, "%s: %s", tier_status_name(rv), err.message);
    cr_assert_eq(rep->n_results, (size_t)n);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(rep->results[i]->cid, n - i, "result %d in request order", i);
        cr_assert_eq(rep->results[i]->code, TIER__RPC__CODE__OK, "%s", rep->results[i]->message);
        cr_assert_str_eq(rep->results[i]->target, "silver");
    }
    tier_free(rep);
}

/* Whether t holds a move job for cid (its shard's keys, its memory); a
 * tierd of another shard refuses the call (moved). */
static bool has_job(const tier_test_tierd *t, int64_t cid)
{
    Tier__GetJobRequest req = TIER__GET_JOB_REQUEST__INIT;
    Tier__GetJobReply *rep;
    tier_client *c = client(t);
    int rv;

    req.cid = cid;
    rv = tier_get_job(c, &req, &rep, NULL);
    tier_client_close(c);
    if (rv == TIER_OK)
        tier_free(rep);
    cr_assert(rv == TIER_OK || rv == TIER_NOT_FOUND || rv == TIER_FAILED_PRECONDITION, "GetJob: %s",
              tier_status_name(rv));
    return rv == TIER_OK;
}

/* Every cid's job is at its owner's, t[map[shard]], and nowhere else. */
static void assert_jobs_at_owners(fx *f, const int map[3], int n)
{
    for (int64_t cid = 1; cid <= n; cid++) {
        int owner = map[tier_shard_of(cid, 3)];
        for (int i = 0; i < 4; i++) {
            if (f->t[i].pid <= 0)
                continue;
            cr_assert_eq(has_job(&f->t[i], cid), i == owner, "cid %lld at tierd %d (owner %d)",
                         (long long)cid, i, owner);
        }
    }
}

static tier_cluster *cluster_open(const char *seeds)
{
    tier_client_opts o = {.timeout_ms = 8000};
    tier_cluster *cl;
    tier_error err;

    cr_assert_eq(tier_cluster_open(&cl, seeds, &o, &err), TIER_OK, "%s", err.message);
    return cl;
}

Test(cluster, routing_picks_the_owner)
{
    fx f;
    const int map[3] = {0, 1, 2};
    char url[256];
    bool seen[3] = {false};

    setup(&f);
    start_three(&f);
    tier_cluster *cl = cluster_open(f.t[1].listen); /* any one seed */
    cr_assert_eq(tier_cluster_shards(cl), 3);
    for (int64_t cid = 1; cid <= NCONTENTS; cid++) {
        unsigned k = tier_shard_of(cid, 3);
        cr_assert_eq(tier_cluster_owner_url(cl, cid, url, sizeof(url)), TIER_OK);
        cr_assert_str_eq(url, f.t[k].listen, "cid %lld", (long long)cid);
        cr_assert_not_null(tier_cluster_client_for(cl, cid));
        seen[k] = true;
    }
    cr_assert(seen[0] && seen[1] && seen[2], "the cids span every shard");
    report_all(cl, NCONTENTS);
    assert_jobs_at_owners(&f, map, NCONTENTS);

    /* A per-cid call goes to the owner too. */
    Tier__GetJobRequest gj = TIER__GET_JOB_REQUEST__INIT;
    Tier__GetJobReply *job;
    tier_error err;
    for (int64_t cid = 1; cid <= 6; cid++) {
        gj.cid = cid;
        cr_assert_eq(tier_cluster_get_job(cl, &gj, &job, &err), TIER_OK, "%s", err.message);
        cr_assert_eq(job->job->cid, cid);
        tier_free(job);
    }
    tier_cluster_close(cl);
    teardown(&f);
}

Test(cluster, a_replaced_owner_is_followed)
{
    fx f;
    const int map[3] = {0, 3, 2}; /* shard 1 is served by t[3] in the end */
    char url[256], seeds[512];

    setup(&f);
    start_three(&f);
    /* The only seed is the tierd about to die: the topology then comes
     * from the owners the handle knows. */
    snprintf(seeds, sizeof(seeds), "%s", f.t[1].listen);
    tier_cluster *cl = cluster_open(seeds);
    tier_test_tierd_stop(&f.t[1], SIGKILL, 5000);
    start_shard(&f, 3, 1, 3); /* new ports; takes the lease once it expires */
    cr_assert_str_neq(f.t[3].listen, f.t[1].listen);
    int64_t cid1 = 0;
    for (int64_t cid = 1; cid <= NCONTENTS && cid1 == 0; cid++)
        if (tier_shard_of(cid, 3) == 1)
            cid1 = cid;
    cr_assert_eq(tier_cluster_owner_url(cl, cid1, url, sizeof(url)), TIER_OK);
    cr_assert_str_eq(url, f.t[1].listen, "the handle still has the dead owner");
    report_all(cl, NCONTENTS); /* followed within the call */
    cr_assert_eq(tier_cluster_owner_url(cl, cid1, url, sizeof(url)), TIER_OK);
    cr_assert_str_eq(url, f.t[3].listen);
    assert_jobs_at_owners(&f, map, NCONTENTS);
    tier_cluster_close(cl);
    teardown(&f);
}

Test(cluster, another_shard_count_refuses_to_start)
{
    fx f;
    char dir[1024], out[8192];

    setup(&f);
    start_shard(&f, 0, 0, 3);
    snprintf(dir, sizeof(dir), "%s/other", f.root);
    mkdir(dir, 0755);
    tier_test_tierd t;
    tier_test_tierd_init(&t, dir, f.m.db, "tc_other:");
    char *bin = tier_test_bin("tierd");
    char *argv[] = {bin, "--listen", t.listen, "--push", t.push, "--shards", "2", NULL};
    int st = tier_test_run(argv, t.envp, out, sizeof(out), 30000);
    free(bin);
    cr_assert_neq(st, 0, "%s", out);
    cr_assert(strstr(out, "cluster has 3 shards") != NULL, "%s", out);
    teardown(&f);
}

/* ------------------------------------------------------------ tierctl */

/* tierctl ARGS... (NULL-terminated); exit status, stdout+stderr in out. */
static int ctl(char *out, size_t len, ...)
{
    char *argv[32], *bin = tier_test_bin("tierctl");
    va_list ap;
    int n = 0;

    argv[n++] = bin;
    va_start(ap, len);
    for (char *a; n < 31 && (a = va_arg(ap, char *)) != NULL;)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    int st = tier_test_run(argv, NULL, out, len, 60000);
    free(bin);
    return st;
}

Test(cluster, tierctl_topology_and_routing)
{
    fx f;
    char out[16384], cid[16];
    json_error_t e;

    setup(&f);
    start_three(&f);
    cr_assert_eq(ctl(out, sizeof(out), "--url", f.t[0].listen, "topology", NULL), 0, "%s", out);
    cr_assert(strstr(out, "3 shards") != NULL, "%s", out);
    for (int k = 0; k < 3; k++)
        cr_assert(strstr(out, f.t[k].listen) != NULL, "%s", out);
    cr_assert_eq(ctl(out, sizeof(out), "--url", f.t[1].listen, "--json", "topology", NULL), 0, "%s",
                 out);
    json_t *j = json_loads(out, 0, &e);
    cr_assert_not_null(j, "%s", out);
    cr_assert_eq(json_integer_value(json_object_get(j, "shards")), 3);
    json_t *owners = json_object_get(j, "owners");
    cr_assert_eq(json_array_size(owners), 3);
    for (size_t k = 0; k < 3; k++) {
        json_t *o = json_array_get(owners, k);
        cr_assert_str_eq(json_string_value(json_object_get(o, "rpc_url")), f.t[k].listen);
        cr_assert(json_is_true(json_object_get(o, "alive")));
    }
    json_decref(j);

    /* views through tierd 0 for a cid of every shard: the job is at the
     * owner only; content answers through any tierd. */
    const int map[3] = {0, 1, 2};
    for (int64_t c = 1; c <= 6; c++) {
        snprintf(cid, sizeof(cid), "%lld", (long long)c);
        cr_assert_eq(ctl(out, sizeof(out), "--url", f.t[0].listen, "views", cid, "1964", NULL), 0,
                     "%s", out);
        cr_assert_eq(ctl(out, sizeof(out), "--url", f.t[2].listen, "job", "show", cid, NULL), 0,
                     "cid %s: %s", cid, out);
        for (int i = 0; i < 3; i++)
            cr_assert_eq(has_job(&f.t[i], c), i == map[tier_shard_of(c, 3)], "cid %s at %d", cid,
                         i);
    }
    teardown(&f);
}

/* ------------------------------------------------------------ hostile */

/* A Topology peer that lies in one way per mode. */
static int lie_mode;

static int lying_topology(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                          ProtobufCMessage *reply)
{
    Tier__TopologyReply *out = (Tier__TopologyReply *)reply;
    unsigned n = lie_mode == 1 ? 200 : 2;

    (void)arg, (void)req;
    out->slots = lie_mode == 0 ? 1000 : 1024;
    out->shards = n;
    out->n_owners = lie_mode == 2 ? 1 : n; /* mode 2: fewer owners than shards */
    out->owners = tier_rpc_alloc(call, n * sizeof(*out->owners));
    for (unsigned k = 0; k < n; k++) {
        Tier__ShardInfo *o = tier_rpc_alloc(call, sizeof(*o));
        tier__shard_info__init(o);
        o->shard = lie_mode == 3 && k == 1 ? 0 : k; /* mode 3: shard 0 twice */
        o->alive = true;
        /* mode 4: well-formed, but shard 1's URL is no URL */
        o->rpc_url = lie_mode == 4 && k == 1 ? "tcp://a b:1" : "tcp://127.0.0.1:1";
        out->owners[k] = o;
    }
    return TIER_OK;
}

Test(cluster, a_lying_topology_is_not_believed)
{
    char url[128], owner[256];
    tier_rpc_server *s;
    tier_cluster *cl;
    tier_error err;

    tier_test_tcp_url(url, sizeof(url));
    cr_assert_eq(tier_rpc_server_open(&s, url, NULL), TIER_OK);
    tier_rpc_server_add(s, "tier.Tier/Topology", &tier__topology_request__descriptor,
                        &tier__topology_reply__descriptor, lying_topology, NULL, 0);
    cr_assert_eq(tier_rpc_server_start(s), TIER_OK);
    for (lie_mode = 0; lie_mode <= 3; lie_mode++)
        cr_assert_eq(tier_cluster_open(&cl, url, NULL, &err), TIER_INTERNAL, "mode %d: %s",
                     lie_mode, err.message);
    lie_mode = 4;
    cr_assert_eq(tier_cluster_open(&cl, url, NULL, &err), TIER_OK, "%s", err.message);
    cr_assert_eq(tier_cluster_shards(cl), 2);
    for (int64_t cid = 1; cid <= 20; cid++)
        cr_assert_eq(tier_cluster_owner_url(cl, cid, owner, sizeof(owner)),
                     tier_shard_of(cid, 2) == 1 ? TIER_UNAVAILABLE : TIER_OK);
    tier_cluster_close(cl);
    tier_rpc_server_close(s);
}

/* ------------------------------------------------------------ moved */

/* A tierd that lost shard 1 but is still asked for it: its Topology first
 * names itself as shard 1's owner (stale), later the real one; it answers
 * ReportViews with a MOVED to the real owner (tier_rpc_set_moved), as a
 * tierd's ownership check will. */
typedef struct {
    const fx *f;
    atomic_int topologies, reports;
    char url[128];
} stale;

static int stale_topology(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                          ProtobufCMessage *reply)
{
    stale *s = arg;
    Tier__TopologyReply *out = (Tier__TopologyReply *)reply;
    bool first = atomic_fetch_add(&s->topologies, 1) == 0;

    (void)req;
    out->slots = 1024;
    out->shards = out->n_owners = 3;
    out->owners = tier_rpc_alloc(call, 3 * sizeof(*out->owners));
    for (unsigned k = 0; k < 3; k++) {
        Tier__ShardInfo *o = tier_rpc_alloc(call, sizeof(*o));
        tier__shard_info__init(o);
        o->shard = k;
        o->alive = true;
        o->rpc_url = k == 1 && first ? s->url : (char *)s->f->t[k].listen;
        out->owners[k] = o;
    }
    return TIER_OK;
}

static int stale_report(void *arg, tier_rpc_ctx *call, const ProtobufCMessage *req,
                        ProtobufCMessage *reply)
{
    stale *s = arg;
    (void)req, (void)reply;
    atomic_fetch_add(&s->reports, 1);
    return tier_rpc_set_moved(call, s->f->t[1].listen, "shard 1 is served by %s",
                              s->f->t[1].listen);
}

Test(cluster, a_moved_reply_is_followed)
{
    fx f;
    const int map[3] = {0, 1, 2};
    stale s = {.f = &f};
    tier_rpc_server *srv;

    setup(&f);
    start_three(&f);
    tier_test_tcp_url(s.url, sizeof(s.url));
    cr_assert_eq(tier_rpc_server_open(&srv, s.url, NULL), TIER_OK);
    tier_rpc_server_add(srv, "tier.Tier/Topology", &tier__topology_request__descriptor,
                        &tier__topology_reply__descriptor, stale_topology, &s, 0);
    tier_rpc_server_add(srv, "tier.Tier/ReportViews", &tier__report_views_request__descriptor,
                        &tier__report_views_reply__descriptor, stale_report, &s, 0);
    cr_assert_eq(tier_rpc_server_start(srv), TIER_OK);
    tier_cluster *cl = cluster_open(s.url);
    report_all(cl, NCONTENTS);
    cr_assert_eq(atomic_load(&s.reports), 1, "the stale owner was asked once");
    cr_assert_geq(atomic_load(&s.topologies), 2, "the topology was fetched again");
    assert_jobs_at_owners(&f, map, NCONTENTS);
    tier_cluster_close(cl);
    tier_rpc_server_close(srv);
    teardown(&f);
}

/* ------------------------------------------------------------ batches */

/* Whether t knows cid (from its memory: it loaded the contents at start);
 * a tierd of another shard refuses the call (moved). */
static bool knows(const tier_test_tierd *t, int64_t cid)
{
    Tier__GetContentRequest req = TIER__GET_CONTENT_REQUEST__INIT;
    Tier__GetContentReply *rep;
    tier_client *c = client(t);
    int rv;

    req.cid = cid;
    rv = tier_get_content(c, &req, &rep, NULL);
    tier_client_close(c);
    if (rv == TIER_OK)
        tier_free(rep);
    cr_assert(rv == TIER_OK || rv == TIER_NOT_FOUND || rv == TIER_FAILED_PRECONDITION,
              "GetContent: %s", tier_status_name(rv));
    return rv == TIER_OK;
}

Test(cluster, batches_are_cut_by_shard_and_kept_in_order)
{
    enum { NEW = 12 };
    fx f;
    Tier__AddContentRequest items[NEW + 1], *pi[NEW + 1];
    Tier__AddContentsRequest areq = TIER__ADD_CONTENTS_REQUEST__INIT;
    Tier__AddContentsReply *arep;
    char names[NEW + 1][32], path[1200];
    tier_error err;

    setup(&f);
    start_three(&f);
    tier_cluster *cl = cluster_open(f.t[2].listen);
    /* cids 1001..1012 and, in the middle, one without a cid. */
    for (int i = 0; i <= NEW; i++) {
        snprintf(names[i], sizeof(names[i]), "new%d.mp4", i);
        snprintf(path, sizeof(path), "%s/bronze/%s", f.root, names[i]);
        cr_assert(tier_test_write_file(path, "y", 1));
        tier__add_content_request__init(&items[i]);
        items[i].filename = names[i];
        items[i].cid = i == NEW / 2 ? 0 : 1000 + i;
        pi[i] = &items[i];
    }
    areq.n_items = NEW + 1;
    areq.items = pi;
    cr_assert_eq(tier_cluster_add_contents(cl, &areq, &arep, &err), TIER_OK, "%s", err.message);
    cr_assert_eq(arep->n_results, NEW + 1);
    for (int i = 0; i <= NEW; i++) {
        cr_assert_eq(arep->results[i]->code, TIER__RPC__CODE__OK, "%d: %s", i,
                     arep->results[i]->message);
        cr_assert_str_eq(arep->results[i]->content->filename, names[i], "in request order");
        if (items[i].cid != 0)
            cr_assert_eq(arep->results[i]->content->cid, items[i].cid);
    }
    tier_free(arep);
    /* Each new content is in its owner's memory only. */
    for (int i = 0; i <= NEW; i++) {
        if (items[i].cid == 0)
            continue;
        unsigned k = tier_shard_of(items[i].cid, 3);
        for (unsigned j = 0; j < 3; j++)
            cr_assert_eq(knows(&f.t[j], items[i].cid), j == k, "cid %lld at %u (owner %u)",
                         (long long)items[i].cid, j, k);
    }

    /* Comments: one result per comment, in order, across every shard;
     * each id is its shard's (id % shards == shard, docs/CLUSTER.md). */
    Tier__PostCommentRequest cm[9], *pc[9];
    Tier__PostCommentsRequest creq = TIER__POST_COMMENTS_REQUEST__INIT;
    Tier__PostCommentsReply *crep;
    for (int i = 0; i < 9; i++) {
        tier__post_comment_request__init(&cm[i]);
        cm[i].service = "news";
        cm[i].cid = 1 + i;
        cm[i].author = "alice";
        cm[i].body = "hello";
        pc[i] = &cm[i];
    }
    creq.n_comments = 9;
    creq.comments = pc;
    cr_assert_eq(tier_cluster_post_comments(cl, &creq, &crep, &err), TIER_OK, "%s", err.message);
    cr_assert_eq(crep->n_results, 9);
    for (int i = 0; i < 9; i++) {
        cr_assert_eq(crep->results[i]->code, TIER__RPC__CODE__OK, "%s", crep->results[i]->message);
        cr_assert_gt(crep->results[i]->id, 0);
        cr_assert_eq(crep->results[i]->id % 3, (int64_t)tier_shard_of(cm[i].cid, 3),
                     "comment %d's id is its shard's", i);
    }
    tier_free(crep);
    tier_cluster_close(cl);
    teardown(&f);
}
