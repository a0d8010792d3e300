/*
 * tierctl.c -- the command-line client of tier: global options, command
 * dispatch, help, --version, the completion helper, errors, and the
 * `health` command.  Commands of each system live in tierctl_tiering.c,
 * tierctl_policy.c, tierctl_ranking.c, tierctl_fsck.c and tierctl_import.c.
 *
 * Global options may come anywhere (`tierctl levels --json` and `tierctl
 * --json levels` are the same).  They are matched exactly, not with
 * getopt_long: its unambiguous-prefix rule would take `top --to now` for
 * `--token-file now`.  Everything that is not a global option goes to the
 * command in order; `--` ends the global options (for a comment body that
 * reads "--json").
 *
 * Exit codes: 0 on success, 1 when `fsck` found disagreements, 2 on a usage
 * error, 64 + the gRPC status code otherwise (69 = NOT_FOUND, 78 =
 * UNAVAILABLE, ...), so scripts can tell failures apart.
 */
#include "tierctl.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tier_token.h"

#ifndef TIER_VERSION
#define TIER_VERSION "unknown"
#endif

/* Fail fast: calls would wait their whole timeout for a connection that
 * never comes; libtier says "nothing listening" after this instead, at the
 * first call -- so a usage error is still found first, without a server. */
#define CONNECT_WAIT_MS 1000

int tierctl_usage(tierctl *t, const char *fmt, ...)
{
    va_list ap;
    t->err.code = TIER_INVALID_ARGUMENT;
    va_start(ap, fmt);
    vsnprintf(t->err.message, sizeof(t->err.message), fmt, ap);
    va_end(ap);
    return TIERCTL_USAGE;
}

int tierctl_fail(tierctl *t, int code, const char *fmt, ...)
{
    va_list ap;
    t->err.code = code;
    va_start(ap, fmt);
    vsnprintf(t->err.message, sizeof(t->err.message), fmt, ap);
    va_end(ap);
    return code;
}

static int cmd_health(tierctl *t, int argc, char **argv)
{
    Tier__Rpc__HealthRequest req = TIER__RPC__HEALTH_REQUEST__INIT;
    Tier__Rpc__HealthReply *rep;
    int rv;
    (void)argv;

    if (argc != 1)
        return tierctl_usage(t, "usage: tierctl health");
    if ((rv = tier_health(t->client, &req, &rep, &t->err)) != TIER_OK)
        return rv;
    bool serving = rep->status == TIER__RPC__HEALTH_REPLY__STATUS__SERVING;
    if (t->json) {
        json_t *deps = json_array();
        for (size_t i = 0; i < rep->n_dependencies; i++)
            json_array_append_new(deps, json_pack("{s:o, s:b, s:o}", "name",
                                                  tierctl_jstr(rep->dependencies[i]->name), "ok",
                                                  rep->dependencies[i]->ok, "message",
                                                  tierctl_jstr(rep->dependencies[i]->message)));
        tierctl_emit(stdout, json_pack("{s:s, s:o}", "status", serving ? "SERVING" : "NOT_SERVING",
                                       "dependencies", deps));
    } else {
        printf("%s\n", serving ? "SERVING" : "NOT_SERVING");
        for (size_t i = 0; i < rep->n_dependencies; i++) {
            const Tier__Rpc__HealthReply__Dependency *d = rep->dependencies[i];
            printf("  %-8s %s%s%s\n", d->name, d->ok ? "ok" : "DOWN", d->message[0] ? ": " : "",
                   d->message);
        }
    }
    tier_free(rep);
    if (!serving)
        return tierctl_fail(t, TIER_UNAVAILABLE, "not serving");
    return TIER_OK;
}

static const tierctl_cmd base_cmds[] = {
    {"health", "health", "is tierd serving; which dependency is down", cmd_health, NULL},
    {"help", "help [COMMAND]", "this list, or one command's usage and details", NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static const tierctl_cmd *const tables[] = {
    base_cmds,           tierctl_tiering_cmds, tierctl_policy_cmds,
    tierctl_import_cmds, tierctl_ranking_cmds, tierctl_fsck_cmds,
    tierctl_cluster_cmds};
#define NTABLES (sizeof(tables) / sizeof(tables[0]))

/* ------------------------------------------------------------ global options */

enum { G_URL, G_JSON, G_TIMEOUT, G_TOKEN, G_CA, G_SNI, G_LOCAL, G_HELP, G_VERSION };

static const struct {
    const char *name, *alias;
    const char *arg; /* its value's name, NULL for a flag */
    const char *help;
} globals[] = {
    [G_URL] = {"--url", NULL, "URL,...",
               "tierd's address (TIER_URL, tcp://127.0.0.1:7400); several (a writer\n"
               "and its standby): the one that answers is used"},
    [G_JSON] = {"--json", NULL, NULL, "machine-readable output (errors too, on stderr)"},
    [G_TIMEOUT] = {"--timeout", NULL, "MS", "per-call timeout (10000)"},
    [G_TOKEN] = {"--token-file", NULL, "F",
                 "your bearer token, a mode-600 file (TIER_TOKEN_FILE; or the\n"
                 "token itself in TIER_TOKEN)"},
    [G_CA] = {"--tls-ca", NULL, "F",
              "CAs to verify a tls+tcp:// tierd with (TIER_TLS_CA; default the\nsystem's)"},
    [G_SNI] = {"--tls-server-name", NULL, "NAME",
               "the name on tierd's certificate (TIER_TLS_SERVER_NAME;\n"
               "default the address's host)"},
    [G_LOCAL] = {"--local", NULL, NULL, "show times in local time with its offset (default UTC)"},
    [G_HELP] = {"--help", "-h", NULL, "this help; after a command: that command's"},
    [G_VERSION] = {"--version", "-V", NULL, "tierctl's version"},
};
#define NGLOBALS (sizeof(globals) / sizeof(globals[0]))

typedef struct {
    const char *val[NGLOBALS]; /* value, or "" for a flag given; NULL not given */
    int argc;                  /* what is left for the command */
    char **argv;
} parsed;

/* Index of the global option arg names ("--url" or "--url=..."), or -1. */
static int global_of(const char *arg, const char **inline_val)
{
    *inline_val = NULL;
    for (size_t g = 0; g < NGLOBALS; g++) {
        size_t n = strlen(globals[g].name);
        if (strcmp(arg, globals[g].name) == 0 ||
            (globals[g].alias && strcmp(arg, globals[g].alias) == 0))
            return (int)g;
        if (globals[g].arg != NULL && strncmp(arg, globals[g].name, n) == 0 && arg[n] == '=') {
            *inline_val = arg + n + 1;
            return (int)g;
        }
    }
    return -1;
}

/* Pulls the global options out of argv (anywhere before "--"). */
static int parse_globals(int argc, char **argv, parsed *p, char *why, size_t len)
{
    bool rest = false;
    const char *iv;

    memset(p, 0, sizeof(*p));
    if ((p->argv = calloc((size_t)argc + 1, sizeof(char *))) == NULL)
        return snprintf(why, len, "out of memory"), -1;
    for (int i = 1; i < argc; i++) {
        int g = rest ? -1 : global_of(argv[i], &iv);
        if (!rest && strcmp(argv[i], "--") == 0) {
            rest = true;
        } else if (g < 0) {
            p->argv[p->argc++] = argv[i];
        } else if (globals[g].arg == NULL) {
            p->val[g] = "";
        } else if (iv != NULL) {
            p->val[g] = iv;
        } else if (i + 1 < argc) {
            p->val[g] = argv[++i];
        } else {
            snprintf(why, len, "%s needs a value", globals[g].name);
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------ help */

static void usage(FILE *f)
{
    fprintf(f, "usage: tierctl [OPTIONS] COMMAND [ARGS]   (options may also follow the command)"
               "\n\n");
    for (size_t g = 0; g < NGLOBALS; g++) {
        char head[64];
        snprintf(head, sizeof(head), "%s%s%s%s%s", globals[g].alias ? globals[g].alias : "",
                 globals[g].alias ? ", " : "", globals[g].name, globals[g].arg ? " " : "",
                 globals[g].arg ? globals[g].arg : "");
        fprintf(f, "  %-24s ", head);
        for (const char *h = globals[g].help; *h; h++) { /* indent continuation lines */
            fputc(*h, f);
            if (*h == '\n')
                fprintf(f, "%27s", "");
        }
        fputc('\n', f);
    }
    fprintf(f, "\ncommands:\n");
    for (size_t t = 0; t < NTABLES; t++)
        for (const tierctl_cmd *c = tables[t]; c->name != NULL; c++)
            fprintf(f, "  %-44s %s\n", c->usage, c->help);
    fprintf(f, "\ntimes are shown in UTC (--local: local time with its offset); `tierctl help "
               "COMMAND` for details\n"
               "exit code: 0 ok, 1 fsck found disagreements, 2 usage, 64 + gRPC status code "
               "otherwise\n");
}

static const tierctl_cmd *find(const char *name)
{
    for (size_t t = 0; t < NTABLES; t++)
        for (const tierctl_cmd *c = tables[t]; c->name != NULL; c++)
            if (strcmp(c->name, name) == 0)
                return c;
    return NULL;
}

/* Every table row of the command (`comment` has two). */
static void command_help(FILE *f, const char *name)
{
    for (size_t t = 0; t < NTABLES; t++)
        for (const tierctl_cmd *c = tables[t]; c->name != NULL; c++)
            if (strcmp(c->name, name) == 0) {
                fprintf(f, "usage: tierctl %s\n  %s\n", c->usage, c->help);
                if (c->more)
                    fprintf(f, "%s\n", c->more);
            }
}

/* `tierctl __complete`: commands and global options, one per line, for
 * client/completion/tierctl.bash -- generated from the tables, so the
 * completion never falls behind the commands. */
static int complete(void)
{
    const char *last = "";
    for (size_t t = 0; t < NTABLES; t++)
        for (const tierctl_cmd *c = tables[t]; c->name != NULL; c++)
            if (strcmp(c->name, last) != 0)
                printf("%s\n", last = c->name);
    for (size_t g = 0; g < NGLOBALS; g++)
        printf("%s\n", globals[g].name);
    return 0;
}

/* ------------------------------------------------------------ errors */

static int report(const tierctl *t, int rv)
{
    int code = rv == TIERCTL_USAGE ? TIER_INVALID_ARGUMENT : rv;
    int exit_code = rv == TIERCTL_USAGE ? 2 : tier_status_exit_code(rv);

    if (t->json)
        tierctl_emit(stderr,
                     json_pack("{s:{s:s, s:i, s:o}}", "error", "code", tier_status_name(code),
                               "code_number", code, "message", tierctl_jstr(t->err.message)));
    else if (rv == TIERCTL_USAGE)
        fprintf(stderr, "tierctl: %s\n", t->err.message);
    else
        fprintf(stderr, "tierctl: %s: %s\n", tier_status_name(rv), t->err.message);
    return exit_code;
}

/* ------------------------------------------------------------ main */

static int open_client(tierctl *t, const parsed *p)
{
    const char *token_file = p->val[G_TOKEN];
    char token[TIER_TOKEN_MAX + 1];
    tier_client_opts opts = {.tls_ca_file = getenv("TIER_TLS_CA"),
                             .tls_server_name = getenv("TIER_TLS_SERVER_NAME"),
                             .timeout_ms = t->timeout_ms,
                             .connect_timeout_ms = CONNECT_WAIT_MS};
    int rv;

    if (p->val[G_CA])
        opts.tls_ca_file = p->val[G_CA];
    if (p->val[G_SNI])
        opts.tls_server_name = p->val[G_SNI];
    if (tier_token_find(token_file, token, sizeof(token), t->err.message, sizeof(t->err.message)) !=
        TIER_OK)
        return TIERCTL_USAGE;
    snprintf(t->token, sizeof(t->token), "%s", token);
    opts.token = t->token[0] != '\0' ? t->token : NULL;
    if (opts.tls_ca_file != NULL && *opts.tls_ca_file == '\0')
        opts.tls_ca_file = NULL;
    if (opts.tls_server_name != NULL && *opts.tls_server_name == '\0')
        opts.tls_server_name = NULL;
    t->opts = opts;
    if ((rv = tier_client_open_opts(&t->client, t->url, &opts, &t->err)) != TIER_OK) {
        char m[sizeof(t->err.message)];
        snprintf(m, sizeof(m), "%s", t->err.message);
        tierctl_usage(t, "%s: %s", t->url, m);
        return TIERCTL_USAGE;
    }
    return TIER_OK;
}

static int run(tierctl *t, const parsed *p)
{
    const tierctl_cmd *cmd;
    int64_t timeout = 10000;

    if (p->val[G_VERSION]) {
        printf("tierctl %s\n", TIER_VERSION);
        return 0;
    }
    if (p->argc >= 1 && strcmp(p->argv[0], "__complete") == 0)
        return complete();
    if (p->argc == 0 || (p->val[G_HELP] && p->argc == 0) ||
        (p->argc == 1 && strcmp(p->argv[0], "help") == 0)) {
        usage(p->argc == 0 && !p->val[G_HELP] ? stderr : stdout);
        return p->argc == 0 && !p->val[G_HELP] ? 2 : 0;
    }
    const char *name = strcmp(p->argv[0], "help") == 0 ? p->argv[1] : p->argv[0];
    if ((cmd = find(name)) == NULL || strcmp(name, "help") == 0) {
        if (strcmp(name, "help") == 0) {
            command_help(stdout, "help");
            return 0;
        }
        return report(t, tierctl_usage(t, "unknown command \"%s\" (tierctl help: the list)", name));
    }
    if (p->val[G_HELP] || strcmp(p->argv[0], "help") == 0) {
        command_help(stdout, name);
        return 0;
    }
    if (p->val[G_TIMEOUT] &&
        (!tierctl_int(p->val[G_TIMEOUT], &timeout) || timeout <= 0 || timeout > 86400000))
        return report(t, tierctl_usage(t, "--timeout: milliseconds, 1..86400000 (got \"%s\")",
                                       p->val[G_TIMEOUT]));
    t->timeout_ms = (uint32_t)timeout;
    int rv = open_client(t, p);
    if (rv == TIER_OK)
        rv = cmd->run(t, p->argc, p->argv);
    tier_cluster_close(t->cluster);
    tier_client_close(t->client);
    if (rv == TIERCTL_FOUND)
        return 1;
    return rv == TIER_OK ? 0 : report(t, rv);
}

int main(int argc, char **argv)
{
    tierctl t = {0};
    parsed p;
    int rv;

    if (parse_globals(argc, argv, &p, t.err.message, sizeof(t.err.message)) != 0) {
        fprintf(stderr, "tierctl: %s\n", t.err.message);
        free(p.argv);
        return 2;
    }
    t.json = p.val[G_JSON] != NULL;
    t.local = p.val[G_LOCAL] != NULL;
    if (p.val[G_URL] != NULL && *p.val[G_URL] == '\0') {
        fprintf(stderr, "tierctl: --url: empty (give tierd's address, e.g. tcp://host:7400)\n");
        free(p.argv);
        return 2;
    }
    t.url = p.val[G_URL] ? p.val[G_URL] : getenv("TIER_URL");
    if (t.url == NULL || *t.url == '\0')
        t.url = "tcp://127.0.0.1:7400";
    rv = run(&t, &p);
    free(p.argv);
    return rv;
}
