/*
 * test_tierctl_policy.c -- tierctl's policy commands as a user meets them:
 * `policy`, `policy set` (flags, a JSON file, --dry-run), `plan`, `levels
 * set --dry-run` and `views CID +N`.
 *
 * Two suites:
 *   tierctl_policy_cli  no server: help, completion, usage errors found
 *                       before any connection (exit 2, the argument named).
 *   tierctl_policy      against a real tierd, Redis and MariaDB: tierd's
 *                       GetPolicy/SetPolicy/PlanMoves, the SetLevels dry run
 *                       and ViewReport.views (issue 10's tierd side).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tier_client.h"
#include "tier_testenv.h"

typedef struct {
    tier_test_mysql m;
    char *root;
    tier_test_tierd td;
} fx;

static void setup(fx *f)
{
    char dir[1100];

    memset(f, 0, sizeof(*f));
    f->root = tier_test_tmpdir();
    cr_assert(f->root != NULL);
    tier_test_mysql_env(&f->m);
    tier_test_db_create(&f->m, f->root);
    for (const char *const *l = (const char *const[]){"bronze", "silver", "gold", NULL}; *l; l++) {
        snprintf(dir, sizeof(dir), "%s/%s", f->root, *l);
        cr_assert(mkdir(dir, 0755) == 0 || errno == EEXIST);
    }
    tier_test_tierd_init(&f->td, f->root, f->m.db, NULL);
    tier_test_tierd_start(&f->td, NULL);
}

static void teardown(fx *f)
{
    tier_test_kill_children();
    tier_test_db_drop(&f->m);
    if (getenv("TIER_TEST_KEEP") == NULL)
        tier_test_rmtree(f->root);
    free(f->root);
}

/* tierctl ARGS... (NULL-terminated); exit status, stdout+stderr in out. */
static int ctl(char *out, size_t len, ...)
{
    char *argv[40], *bin = tier_test_bin("tierctl");
    va_list ap;
    int n = 0;

    argv[n++] = bin;
    va_start(ap, len);
    for (char *a; n < 39 && (a = va_arg(ap, char *)) != NULL;)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    int st = tier_test_run(argv, NULL, out, len, 60000);
    free(bin);
    return st;
}

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    cr_assert_not_null(v, "not JSON (%s at %d): %s", e.text, e.position, text);
    return v;
}

static int64_t jint(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    cr_assert(json_is_integer(v), "%s is not an integer", k);
    return json_integer_value(v);
}

/* ------------------------------------------------------------ no server */

Test(tierctl_policy_cli, help_and_completion)
{
    char out[16384];

    cr_assert_eq(ctl(out, sizeof(out), "help", NULL), 0);
    cr_assert(strstr(out, "policy [get]") && strstr(out, "policy set FILE") &&
                  strstr(out, "plan [--policy F]") && strstr(out, "views CID COUNT|+N") &&
                  strstr(out, "[--dry-run]]"),
              "%s", out);
    cr_assert_eq(ctl(out, sizeof(out), "help", "policy", NULL), 0);
    cr_assert(strstr(out, "--budget FROM>TO") && strstr(out, "--mode seed"), "%s", out);
    cr_assert_eq(ctl(out, sizeof(out), "plan", "--help", NULL), 0);
    cr_assert(strstr(out, "default 100") != NULL, "%s", out);

    char *bin = tier_test_bin("tierctl"), script[4096];
    snprintf(script, sizeof(script),
             ". '%s/client/completion/tierctl.bash'; COMP_WORDS=('%s' pol); COMP_CWORD=1; "
             "_tierctl; echo \"${COMPREPLY[*]}\"; COMP_WORDS=('%s' pla); _tierctl; "
             "echo \"${COMPREPLY[*]}\"",
             TIER_SOURCE_DIR, bin, bin);
    char *argv[] = {"/bin/bash", "-c", script, NULL};
    cr_assert_eq(tier_test_run(argv, NULL, out, sizeof(out), 10000), 0, "%s", out);
    cr_assert_str_eq(out, "policy\nplan\n");
    free(bin);
}

/* Bad arguments are found before a connection is needed: exit 2, the
 * argument named, even with nothing listening. */
Test(tierctl_policy_cli, usage_errors_without_a_server)
{
    static const struct {
        const char *a[8];
        const char *says;
    } bad[] = {
        {{"policy", "set", "--mode", "window", "--window", "7x"}, "--window"},
        {{"policy", "set", "--mode", "window", "--window", "99999999999999999999d"}, "--window"},
        {{"policy", "set", "--mode", "window", "--level", "gold:capacity=-1G"}, "capacity"},
        {{"policy", "set", "--mode", "seed", "--dwell", "1h"}, "--mode seed"},
        {{"policy", "set", "/nonexistent/p.json"}, "/nonexistent/p.json"},
        {{"policy", "frob"}, "usage"},
        {{"plan", "--limit", "0"}, "--limit"},
        {{"plan", "--levels"}, "--levels"},
        {{"plan", "--levels", "gold"}, "NAME:MIN:MAX:PATH"},
        {{"levels", "set", "--dry-run"}, "usage"},
        {{"views", "1", "+0"}, "usage"},
        {{"views", "1", "+x"}, "usage"},
        {{"views", "1", "+-3"}, "usage"},
        {{"views", "1", "--add", "0"}, "usage"},
    };
    char out[4096], url[64];

    tier_test_dead_url(url, sizeof(url));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *argv[16], *bin = tier_test_bin("tierctl");
        int n = 0;
        argv[n++] = bin;
        argv[n++] = "--url";
        argv[n++] = url;
        for (int k = 0; k < 8 && bad[i].a[k]; k++)
            argv[n++] = (char *)bad[i].a[k];
        argv[n] = NULL;
        cr_assert_eq(tier_test_run(argv, NULL, out, sizeof(out), 8000), 2, "%s %s: %s", bad[i].a[0],
                     bad[i].a[1], out);
        cr_assert(strstr(out, bad[i].says) != NULL, "%s %s: %s", bad[i].a[0], bad[i].a[1], out);
        free(bin);
    }
    /* A JSON file with an unknown field: refused by name, before sending. */
    char path[] = "/tmp/tierctl_policy_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    const char *bad_json = "{\"mode\": \"window\", \"windw_s\": 60}";
    cr_assert(write(fd, bad_json, strlen(bad_json)) == (ssize_t)strlen(bad_json));
    close(fd);
    cr_assert_eq(ctl(out, sizeof(out), "--url", url, "policy", "set", path, NULL), 2, "%s", out);
    cr_assert(strstr(out, "windw_s") != NULL, "%s", out);
    unlink(path);
}

/* ------------------------------------------------------------ a tierd */

Test(tierctl_policy, get_shows_the_seed_policy)
{
    fx f;
    char out[16384];

    setup(&f);
    cr_assert_eq(ctl(out, sizeof(out), "--url", f.td.listen, "policy", NULL), 0, "%s", out);
    cr_assert(strstr(out, "version        0") && strstr(out, "mode           seed"), "%s", out);
    cr_assert_eq(ctl(out, sizeof(out), "--url", f.td.listen, "policy", "get", "--json", NULL), 0,
                 "%s", out);
    json_t *v = parse(out);
    cr_assert_str_eq(json_string_value(json_object_get(v, "mode")), "seed");
    cr_assert_eq(jint(v, "version"), 0);
    json_decref(v);
    teardown(&f);
}

Test(tierctl_policy, set_window_then_get_and_round_trip)
{
    fx f;
    char out[16384], path[1200];

    setup(&f);
    cr_assert_eq(ctl(out, sizeof(out), "--url", f.td.listen, "policy", "set", "--mode", "window",
                     "--window", "1d", "--bucket", "1h", "--dwell", "0", "--level",
                     "gold:min_views=5000", "--budget", "bronze>gold:files=5:bytes=100M", NULL),
                 0, "%s", out);
    cr_assert(strstr(out, "version        1") && strstr(out, "mode           window") &&
                  strstr(out, "1d in buckets of 1h") && strstr(out, "100 MiB"),
              "%s", out);
    /* Under a window policy, jobs ends with the planner's last round. */
    bool planner = false;
    for (int i = 0; i < 50 && !planner; i++) {
        cr_assert_eq(ctl(out, sizeof(out), "--url", f.td.listen, "jobs", NULL), 0, "%s", out);
        if (!(planner = strstr(out, "planner (round at") != NULL))
            usleep(100 * 1000);
    }
    cr_assert(planner && strstr(out, "backlog 0"), "%s", out);

    cr_assert_eq(ctl(out, sizeof(out), "--url", f.td.listen, "--json", "policy", NULL), 0, "%s",
                 out);
    json_t *v = parse(out);
    cr_assert_str_eq(json_string_value(json_object_get(v, "mode")), "window");
    cr_assert_eq(jint(v, "window_s"), 86400);
    cr_assert_eq(jint(v, "version"), 1);
    json_t *l = json_array_get(json_object_get(v, "levels"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(l, "level")), "gold");
    cr_assert_eq(jint(l, "min_views"), 5000);
    json_decref(v);

    /* What --json printed is a file policy set reads: version 2, same rule. */
    snprintf(path, sizeof(path), "%s/policy.json", f.root);
    cr_assert(tier_test_write_file(path, out, strlen(out)));
    cr_assert_eq(ctl(out, sizeof(out), "--url", f.td.listen, "--json", "policy", "set", path, NULL),
                 0, "%s", out);
    v = parse(out);
    cr_assert_eq(jint(v, "version"), 2);
    cr_assert_eq(jint(v, "window_s"), 86400);
    json_decref(v);

    /* A dry run changes nothing; --mode seed restores the seed's rule. */
    cr_assert_eq(ctl(out, sizeof(out), "--url", f.td.listen, "policy", "set", "--mode", "window",
                     "--dry-run", NULL),
                 0, "%s", out);
    cr_assert(strstr(out, "dry run: the policy was not changed"), "%s", out);
    cr_assert_eq(ctl(out, sizeof(out), "--url", f.td.listen, "--json", "policy", NULL), 0, "%s",
                 out);
    v = parse(out);
    cr_assert_eq(jint(v, "version"), 2);
    json_decref(v);
    cr_assert_eq(
        ctl(out, sizeof(out), "--url", f.td.listen, "policy", "set", "--mode", "seed", NULL), 0,
        "%s", out);
    cr_assert(strstr(out, "mode           seed") && strstr(out, "version        3"), "%s", out);

    /* tierd's own validation comes back as INVALID_ARGUMENT (exit 67). */
    cr_assert_eq(ctl(out, sizeof(out), "--url", f.td.listen, "policy", "set", "--mode", "window",
                     "--level", "nosuchlevel", NULL),
                 64 + 3, "%s", out);
    teardown(&f);
}

Test(tierctl_policy, plan_prints_a_summary)
{
    fx f;
    char out[16384], path[1200];

    setup(&f);
    snprintf(path, sizeof(path), "%s/bronze/a.mp4", f.root);
    cr_assert(tier_test_write_file(path, "a", 1));
    cr_assert_eq(ctl(out, sizeof(out), "--url", f.td.listen, "add", "a.mp4", NULL), 0, "%s", out);
    cr_assert_eq(ctl(out, sizeof(out), "--url", f.td.listen, "plan", NULL), 0, "%s", out);
    cr_assert(strstr(out, "plan at ") && strstr(out, "moves by level pair:") &&
                  strstr(out, "levels:") && strstr(out, "bronze") && strstr(out, "held: "),
              "%s", out);
    cr_assert_eq(
        ctl(out, sizeof(out), "--url", f.td.listen, "--json", "plan", "--limit", "5", NULL), 0,
        "%s", out);
    json_t *v = parse(out);
    cr_assert(jint(v, "total_moves") >= 0);
    cr_assert_eq(json_array_size(json_object_get(v, "levels")), 3, "%s", out);
    cr_assert(json_array_size(json_object_get(v, "moves")) <= 5);
    json_decref(v);
    teardown(&f);
}

Test(tierctl_policy, levels_set_dry_run_changes_nothing)
{
    fx f;
    char before[16384], after[16384], out[16384], l[3][1400];

    setup(&f);
    cr_assert_eq(ctl(before, sizeof(before), "--url", f.td.listen, "--json", "levels", NULL), 0,
                 "%s", before);
    json_t *v = parse(before);
    cr_assert_eq(json_array_size(v), 3, "%s", before);
    /* The same levels and directories, other thresholds. */
    for (size_t i = 0; i < 3; i++) {
        json_t *e = json_array_get(v, i);
        snprintf(l[i], sizeof(l[i]), "%s:%lld:%lld:%s",
                 json_string_value(json_object_get(e, "name")), (long long)i,
                 i == 2 ? (long long)jint(e, "max_counts") : (long long)i,
                 json_string_value(json_object_get(e, "path")));
    }
    json_decref(v);
    cr_assert_eq(ctl(out, sizeof(out), "--url", f.td.listen, "levels", "set", l[0], l[1], l[2],
                     "--dry-run", NULL),
                 0, "%s", out);
    cr_assert(strstr(out, "plan at ") && strstr(out, "dry run: the level table was not changed"),
              "%s", out);
    cr_assert_eq(ctl(after, sizeof(after), "--url", f.td.listen, "--json", "levels", NULL), 0, "%s",
                 after);
    cr_assert_str_eq(before, after);
    teardown(&f);
}

Test(tierctl_policy, views_increments)
{
    fx f;
    char out[16384], path[1200];

    setup(&f);
    snprintf(path, sizeof(path), "%s/bronze/a.mp4", f.root);
    cr_assert(tier_test_write_file(path, "a", 1));
    cr_assert_eq(ctl(out, sizeof(out), "--url", f.td.listen, "add", "a.mp4", NULL), 0, "%s", out);
    cr_assert_eq(ctl(out, sizeof(out), "--url", f.td.listen, "views", "1", "+5", NULL), 0, "%s",
                 out);
    json_t *v = parse(out);
    cr_assert_eq(jint(v, "count"), 5, "%s", out);
    json_decref(v);
    cr_assert_eq(ctl(out, sizeof(out), "--url", f.td.listen, "views", "1", "--add", "3", NULL), 0,
                 "%s", out);
    v = parse(out);
    cr_assert_eq(jint(v, "count"), 8, "%s", out);
    json_decref(v);
    teardown(&f);
}
