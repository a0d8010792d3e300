/*
 * test_tierctl.c -- tierctl as a user meets it, against a real tierd,
 * Redis, MariaDB and tier-worker: global options anywhere, --version,
 * help, bash completion, failing fast when nothing listens, JSON that is
 * JSON (numbers, RFC 3339 times, valid UTF-8, errors on stderr), "(none)",
 * `import` of a level directory through AddContents, and `wait` on a
 * moving content.
 *
 * No timing is asserted: "fails fast" is checked as "returns within a
 * budget smaller than the 10 s call timeout it would otherwise wait".
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
    tier_client *c;
    pid_t worker;
    char wlog[600];
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
    cr_assert_eq(tier_client_open(&f->c, f->td.listen), TIER_OK);
}

static void teardown(fx *f)
{
    tier_test_kill_children();
    tier_client_close(f->c);
    tier_test_db_drop(&f->m);
    if (getenv("TIER_TEST_KEEP") == NULL)
        tier_test_rmtree(f->root);
    free(f->root);
}

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

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    cr_assert_not_null(v, "not JSON (%s at %d): %s", e.text, e.position, text);
    return v;
}

static void write_in(fx *f, const char *level, const char *name)
{
    char path[1400];
    snprintf(path, sizeof(path), "%s/%s/%s", f->root, level, name);
    cr_assert(tier_test_write_file(path, name, strlen(name)), "%s", path);
}

/* ------------------------------------------------------------ no server */

Test(tierctl, version_help_and_completion)
{
    char out[16384], url[64];

    tier_test_dead_url(url, sizeof(url));
    cr_assert_eq(ctl(out, sizeof(out), "--version", NULL), 0);
    cr_assert(strncmp(out, "tierctl ", 8) == 0 && strchr(out, '.') != NULL, "%s", out);
    cr_assert_eq(ctl(out, sizeof(out), "help", NULL), 0);
    cr_assert(strstr(out, "import [DIR]") && strstr(out, "--local"), "%s", out);
    /* help COMMAND and COMMAND --help: top documents its default limit. */
    cr_assert_eq(ctl(out, sizeof(out), "help", "top", NULL), 0);
    cr_assert(strstr(out, "default 100") != NULL, "%s", out);
    cr_assert_eq(ctl(out, sizeof(out), "top", "--help", NULL), 0);
    cr_assert(strstr(out, "default 100") != NULL, "%s", out);
    cr_assert_eq(ctl(out, sizeof(out), "help", "nosuch", NULL), 2);
    cr_assert_eq(ctl(out, sizeof(out), "nosuch", "--url", url, NULL), 2);

    /* The bash completion, sourced in bash: "tierctl le" -> levels. */
    char *bin = tier_test_bin("tierctl"), script[4096];
    snprintf(script, sizeof(script),
             ". '%s/client/completion/tierctl.bash'; COMP_WORDS=('%s' le); COMP_CWORD=1; "
             "_tierctl; echo \"${COMPREPLY[*]}\"; COMP_WORDS=('%s' --js); _tierctl; "
             "echo \"${COMPREPLY[*]}\"",
             TIER_SOURCE_DIR, bin, bin);
    char *argv[] = {"/bin/bash", "-c", script, NULL};
    cr_assert_eq(tier_test_run(argv, NULL, out, sizeof(out), 10000), 0, "%s", out);
    cr_assert_str_eq(out, "levels\n--json\n");
    free(bin);
}

/* Nothing listens: UNAVAILABLE (exit 78) at once, not after the default
 * 10 s timeout -- the run's own budget (8 s) would kill a slow one. */
Test(tierctl, fails_fast_when_nothing_listens)
{
    char out[4096], url[64];

    tier_test_dead_url(url, sizeof(url));
    cr_assert_eq(ctl(out, sizeof(out), "levels", "--url", url, NULL), 64 + 14, "%s", out);
    cr_assert(strstr(out, "cannot connect to") && strstr(out, "nothing listening"), "%s", out);
    /* Under --json the error is JSON on stderr. */
    char *bin = tier_test_bin("tierctl");
    char *argv[] = {bin, "--json", "--url", url, "levels", NULL};
    cr_assert_eq(tier_test_run(argv, NULL, out, sizeof(out), 8000), 64 + 14, "%s", out);
    json_t *v = parse(out);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(v, "error"), "code")),
                     "UNAVAILABLE");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(v, "error"), "code_number")),
                 14);
    json_decref(v);
    free(bin);
    /* A usage error is found before any connection is needed. */
    cr_assert_eq(ctl(out, sizeof(out), "top", "--from", "2026-13-01 10:00", "--to", "now", "--url",
                     url, NULL),
                 2, "%s", out);
    cr_assert(strstr(out, "--from") != NULL, "names the argument: %s", out);
    cr_assert_eq(ctl(out, sizeof(out), "top", "--from", "now", "--to", "-1h", "--url", url, NULL),
                 2, "%s", out);
    cr_assert(strstr(out, "must be before --to") != NULL, "%s", out);
}

/* ------------------------------------------------------------ a tierd */

Test(tierctl, flags_anywhere_json_and_none)
{
    fx f;
    char a[16384], b[16384];

    setup(&f);
    cr_assert_eq(ctl(a, sizeof(a), "--url", f.td.listen, "--json", "levels", NULL), 0, "%s", a);
    cr_assert_eq(ctl(b, sizeof(b), "levels", "--json", "--url", f.td.listen, NULL), 0, "%s", b);
    cr_assert_str_eq(a, b);
    json_t *v = parse(a);
    cr_assert_eq(json_array_size(v), 3);
    cr_assert(json_is_integer(json_object_get(json_array_get(v, 1), "min_counts")));
    json_decref(v);
    cr_assert_eq(ctl(a, sizeof(a), "levels", "--url=", NULL), 2, "%s", a); /* empty: refused */

    /* (none) for empty lists. */
    cr_assert_eq(ctl(a, sizeof(a), "jobs", "--url", f.td.listen, NULL), 0, "%s", a);
    cr_assert_str_eq(a, "(none)\n");

    /* views: numbers as numbers; content: RFC 3339 UTC times. */
    write_in(&f, "bronze", "a.mp4");
    cr_assert_eq(ctl(a, sizeof(a), "--url", f.td.listen, "add", "a.mp4", NULL), 0, "%s", a);
    cr_assert(strstr(a, " UTC") != NULL, "human times say UTC: %s", a);
    cr_assert(strstr(a, "size 5 bytes") != NULL, "the size (\"a.mp4\"): %s", a);
    cr_assert_eq(ctl(a, sizeof(a), "--url", f.td.listen, "views", "1", "5", NULL), 0, "%s", a);
    v = parse(a);
    cr_assert(json_is_integer(json_object_get(v, "cid")) &&
                  json_integer_value(json_object_get(v, "cid")) == 1,
              "%s", a);
    cr_assert(json_is_integer(json_object_get(v, "count")), "%s", a);
    json_decref(v);
    cr_assert_eq(ctl(a, sizeof(a), "--url", f.td.listen, "content", "1", "--json", NULL), 0, "%s",
                 a);
    v = parse(a);
    const char *g = json_string_value(json_object_get(v, "generate_time"));
    int y, mo, d, h, mi, s, ms;
    char z = 0;
    cr_assert(g != NULL && strlen(g) == 24 &&
                  sscanf(g, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &y, &mo, &d, &h, &mi, &s, &ms, &z) ==
                      8 &&
                  z == 'Z',
              "%s", a);
    cr_assert(json_is_null(json_object_get(v, "job")), "%s", a);
    cr_assert(json_integer_value(json_object_get(v, "size_bytes")) == 5, "%s", a);
    json_decref(v);
    cr_assert_eq(ctl(a, sizeof(a), "--url", f.td.listen, "history", "1", NULL), 0, "%s", a);
    cr_assert_str_eq(a, "(none)\n");

    /* A comment body with invalid UTF-8: --json is still valid JSON, the
     * bad bytes replaced by U+FFFD, the record kept. */
    Tier__PostCommentRequest pr = TIER__POST_COMMENT_REQUEST__INIT;
    Tier__PostCommentReply *prep;
    tier_error err;
    pr.service = "news";
    pr.cid = 1;
    pr.author = "mallory";
    pr.body = "ok \xff\xfe end \xe2\x82";
    int rv = tier_post_comment(f.c, &pr, &prep, &err);
    cr_assert_eq(rv, TIER_OK, "%s", err.message);
    tier_free(prep);
    cr_assert_eq(ctl(a, sizeof(a), "comments", "1", "--json", "--url", f.td.listen, NULL), 0, "%s",
                 a);
    v = parse(a);
    json_t *c = json_array_get(json_object_get(v, "comments"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(c, "body")),
                     "ok \xEF\xBF\xBD\xEF\xBF\xBD end \xEF\xBF\xBD\xEF\xBF\xBD");
    cr_assert(json_is_integer(json_object_get(c, "id")));
    cr_assert(json_is_string(json_object_get(c, "created")));
    json_decref(v);
    /* --local shows an offset instead of UTC. */
    cr_assert_eq(ctl(a, sizeof(a), "comments", "1", "--local", "--url", f.td.listen, NULL), 0, "%s",
                 a);
    cr_assert(strstr(a, " UTC") == NULL && strstr(a, " +") != NULL, "%s", a);
    teardown(&f);
}

/* Per-item results of AddContents, and its cap. */
Test(tierctl, add_contents_items)
{
    fx f;
    setup(&f);
    write_in(&f, "bronze", "x.mp4");
    write_in(&f, "bronze", "y.mp4");
    write_in(&f, "bronze", "z.mp4");
    Tier__AddContentRequest it[6], *p[6];
    const char *names[6] = {"x.mp4", "../etc", "missing.mp4", "x.mp4", "y.mp4", "z.mp4"};
    const int64_t cids[6] = {0, 0, 0, 0, 50, 50};
    for (int i = 0; i < 6; i++) {
        tier__add_content_request__init(&it[i]);
        it[i].filename = (char *)names[i];
        it[i].cid = cids[i];
        p[i] = &it[i];
    }
    Tier__AddContentsRequest req = TIER__ADD_CONTENTS_REQUEST__INIT;
    Tier__AddContentsReply *rep;
    tier_error err;
    req.items = p;
    req.n_items = 6;
    cr_assert_eq(tier_add_contents(f.c, &req, &rep, &err), TIER_OK, "%s", err.message);
    cr_assert_eq(rep->n_results, 6);
    const int want[6] = {
        TIER_OK, TIER_INVALID_ARGUMENT, TIER_FAILED_PRECONDITION, TIER_ALREADY_EXISTS,
        TIER_OK, TIER_ALREADY_EXISTS};
    for (int i = 0; i < 6; i++)
        cr_expect_eq((int)rep->results[i]->code, want[i], "item %d: %d %s", i,
                     rep->results[i]->code, rep->results[i]->message);
    /* cids: the picked one is above every cid the call names. */
    cr_assert_eq(rep->results[4]->content->cid, 50);
    cr_assert_eq(rep->results[0]->content->cid, 51);
    cr_assert_gt(rep->results[0]->content->generate_time_ms, 0);
    tier_free(rep);
    /* Again: the names are taken now. */
    req.n_items = 1;
    cr_assert_eq(tier_add_contents(f.c, &req, &rep, &err), TIER_OK, "%s", err.message);
    cr_assert_eq((int)rep->results[0]->code, TIER_ALREADY_EXISTS);
    tier_free(rep);
    /* Over the cap: refused whole. */
    Tier__AddContentRequest **many = calloc(5001, sizeof(*many));
    for (int i = 0; i < 5001; i++)
        many[i] = &it[0];
    req.items = many;
    req.n_items = 5001;
    cr_assert_eq(tier_add_contents(f.c, &req, &rep, &err), TIER_INVALID_ARGUMENT);
    cr_assert(strstr(err.message, "at most 5000") != NULL, "%s", err.message);
    free(many);
    teardown(&f);
}

Test(tierctl, import_a_directory)
{
    fx f;
    char out[65536], name[64];
    const int n = 2345; /* three batches of 1000 */

    setup(&f);
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "f%05d.bin", i);
        write_in(&f, "bronze", name);
    }
    write_in(&f, "bronze", ".tier-tmp.1"); /* a crashed move's leftover: skipped */
    cr_assert_eq(ctl(out, sizeof(out), "--url", f.td.listen, "add", "f00007.bin", NULL), 0, "%s",
                 out);
    cr_assert_eq(ctl(out, sizeof(out), "--url", f.td.listen, "--json", "import", NULL), 0, "%s",
                 out);
    json_t *v = parse(out);
    cr_assert_eq(json_integer_value(json_object_get(v, "files")), n, "%s", out);
    cr_assert_eq(json_integer_value(json_object_get(v, "added")), n - 1, "%s", out);
    cr_assert_eq(json_integer_value(json_object_get(v, "already")), 1, "%s", out);
    cr_assert_eq(json_integer_value(json_object_get(v, "skipped")), 1, "%s", out);
    json_decref(v);
    /* Every file is a content: cids 2.. follow the sorted names. */
    for (int64_t cid = 1; cid <= n; cid++) {
        Tier__GetContentRequest g = TIER__GET_CONTENT_REQUEST__INIT;
        Tier__GetContentReply *r;
        tier_error err;
        g.cid = cid;
        cr_assert_eq(tier_get_content(f.c, &g, &r, &err), TIER_OK, "cid %lld: %s", (long long)cid,
                     err.message);
        int k = cid == 1 ? 7 : (int)cid - 2 + (cid - 2 >= 7);
        snprintf(name, sizeof(name), "f%05d.bin", k);
        cr_assert_str_eq(r->content->filename, name, "cid %lld", (long long)cid);
        cr_assert_str_eq(r->content->level, "bronze");
        tier_free(r);
    }
    /* Again: nothing new, exit 0. */
    cr_assert_eq(ctl(out, sizeof(out), "--url", f.td.listen, "import", NULL), 0, "%s", out);
    cr_assert(strstr(out, "0 added, 2345 already registered, 0 failed") != NULL, "%s", out);
    teardown(&f);
}

static void worker_start(fx *f)
{
    char *bin = tier_test_bin("tier-worker"), dirs[4000];
    snprintf(dirs, sizeof(dirs), "%s/bronze/,%s/silver/,%s/gold/", f->root, f->root, f->root);
    char *argv[] = {bin,    "--tierd", f->td.listen, "--pull", f->td.push,
                    "--id", "w1",      "--dirs",     dirs,     NULL};
    snprintf(f->wlog, sizeof(f->wlog), "%s/worker.log", f->root);
    f->worker = tier_test_spawn(argv, f->td.envp, f->wlog);
    cr_assert_gt(f->worker, 0);
    free(bin);
}

Test(tierctl, wait_and_watch_a_move)
{
    fx f;
    char out[16384], dir[1100];

    setup(&f);
    worker_start(&f);
    write_in(&f, "bronze", "m.mp4");
    write_in(&f, "bronze", "n.mp4");
    cr_assert_eq(ctl(out, sizeof(out), "--url", f.td.listen, "add", "m.mp4", NULL), 0, "%s", out);
    cr_assert_eq(ctl(out, sizeof(out), "--url", f.td.listen, "add", "n.mp4", NULL), 0, "%s", out);
    cr_assert_eq(ctl(out, sizeof(out), "--url", f.td.listen, "views", "1", "1500", NULL), 0, "%s",
                 out);
    cr_assert_eq(ctl(out, sizeof(out), "--url", f.td.listen, "wait", "1", "--max-wait", "50",
                     "--json", NULL),
                 0, "%s", out);
    json_t *v = parse(out);
    cr_assert_str_eq(json_string_value(json_object_get(v, "level")), "silver", "%s", out);
    json_decref(v);
    snprintf(dir, sizeof(dir), "%s/silver/m.mp4", f.root);
    cr_assert_eq(access(dir, F_OK), 0, "%s is there", dir);
    /* watch on a settled content: one line, settled. */
    cr_assert_eq(ctl(out, sizeof(out), "--url", f.td.listen, "watch", "1", NULL), 0, "%s", out);
    cr_assert(strstr(out, "settled on silver") != NULL, "%s", out);

    /* A move that cannot happen (its target directory is gone): wait
     * exits FAILED_PRECONDITION with the reason. */
    snprintf(dir, sizeof(dir), "%s/gold", f.root);
    cr_assert_eq(rmdir(dir), 0);
    cr_assert_eq(ctl(out, sizeof(out), "--url", f.td.listen, "views", "2", "5000", NULL), 0, "%s",
                 out);
    cr_assert_eq(ctl(out, sizeof(out), "--url", f.td.listen, "wait", "2", "--max-wait", "50", NULL),
                 64 + 9, "%s", out);
    cr_assert(strstr(out, "failed") != NULL, "%s", out);
    teardown(&f);
}

/* comment delete/restore with several ids (DeleteComments...), and
 * --author (DeleteByAuthor until done). */
Test(tierctl, comment_batches)
{
    fx f;
    char a[8192], ids[3][24];
    setup(&f);
    for (int i = 0; i < 3; i++) {
        Tier__PostCommentRequest pr = TIER__POST_COMMENT_REQUEST__INIT;
        Tier__PostCommentReply *prep;
        pr.service = "news";
        pr.cid = 4;
        pr.author = i < 2 ? "spam" : "ok";
        pr.body = "b";
        cr_assert_eq(tier_post_comment(f.c, &pr, &prep, NULL), TIER_OK);
        snprintf(ids[i], sizeof(ids[i]), "%lld", (long long)prep->id);
        tier_free(prep);
    }
    /* An unknown id: its line says so, the exit status is NOT_FOUND's. */
    int st = ctl(a, sizeof(a), "--url", f.td.listen, "comment", "delete", ids[0], "999999", NULL);
    cr_assert_eq(st, 64 + TIER_NOT_FOUND, "%d: %s", st, a);
    cr_assert(strstr(a, " ok\n") != NULL && strstr(a, "999999  NOT_FOUND") != NULL, "%s", a);
    cr_assert_eq(ctl(a, sizeof(a), "--url", f.td.listen, "--json", "comment", "restore", ids[0],
                     ids[2], NULL),
                 64 + TIER_FAILED_PRECONDITION, "%s", a);
    cr_assert_eq(
        ctl(a, sizeof(a), "--url", f.td.listen, "comment", "delete", "--author", "spam", NULL), 0,
        "%s", a);
    cr_assert(strstr(a, "2 comments of spam deleted") != NULL, "%s", a);
    cr_assert_eq(ctl(a, sizeof(a), "--url", f.td.listen, "comments", "4", NULL), 0, "%s", a);
    char line[64];
    snprintf(line, sizeof(line), "%s  news  cid 4  ok", ids[2]);
    cr_assert(strncmp(a, line, strlen(line)) == 0, "only ok's comment is left: %s", a);
    cr_assert(strstr(a + 1, "  news  ") == strstr(a, "  news  "), "one comment: %s", a);
    cr_assert_eq(
        ctl(a, sizeof(a), "--url", f.td.listen, "comment", "restore", "--author", "x", NULL), 2,
        "%s", a);
    teardown(&f);
}
