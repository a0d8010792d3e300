/*
 * tierctl.c -- the command-line client of tier: global options, command
 * dispatch, and the `health` command.  Commands of each system live in
 * tierctl_tiering.c and tierctl_ranking.c.
 *
 * Exit codes: 0 on success, 1 when `fsck` found disagreements, 2 on a usage
 * error, 64 + the gRPC status code otherwise (69 = NOT_FOUND, 78 =
 * UNAVAILABLE, ...), so scripts can tell failures apart.
 */
#include "tierctl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tier_token.h"

int tierctl_usage(tierctl *t, const char *fmt, ...)
{
    va_list ap;
    t->err.code = TIER_INVALID_ARGUMENT;
    va_start(ap, fmt);
    vsnprintf(t->err.message, sizeof(t->err.message), fmt, ap);
    va_end(ap);
    return TIERCTL_USAGE;
}

void tierctl_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

const char *tierctl_time(int64_t ms, char *buf, size_t len)
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0) {
        snprintf(buf, len, "-");
        return buf;
    }
    gmtime_r(&sec, &tm);
    snprintf(buf, len, "%04d-%02d-%02d %02d:%02d:%02d.%03d", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    return buf;
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
        printf("{\"status\": \"%s\", \"dependencies\": [", serving ? "SERVING" : "NOT_SERVING");
        for (size_t i = 0; i < rep->n_dependencies; i++) {
            printf("%s{\"name\": ", i ? ", " : "");
            tierctl_json_str(stdout, rep->dependencies[i]->name);
            printf(", \"ok\": %s, \"message\": ", rep->dependencies[i]->ok ? "true" : "false");
            tierctl_json_str(stdout, rep->dependencies[i]->message);
            printf("}");
        }
        printf("]}\n");
    } else {
        printf("%s\n", serving ? "SERVING" : "NOT_SERVING");
        for (size_t i = 0; i < rep->n_dependencies; i++) {
            const Tier__Rpc__HealthReply__Dependency *d = rep->dependencies[i];
            printf("  %-8s %s%s%s\n", d->name, d->ok ? "ok" : "DOWN", d->message[0] ? ": " : "",
                   d->message);
        }
    }
    tier_free(rep);
    if (!serving) {
        t->err.code = TIER_UNAVAILABLE;
        snprintf(t->err.message, sizeof(t->err.message), "not serving");
        return TIER_UNAVAILABLE;
    }
    return TIER_OK;
}

static const tierctl_cmd base_cmds[] = {
    {"health", "health", "is tierd serving; which dependency is down", cmd_health},
    {NULL, NULL, NULL, NULL},
};

static const tierctl_cmd *const tables[] = {base_cmds, tierctl_tiering_cmds, tierctl_ranking_cmds,
                                            tierctl_fsck_cmds};

static void usage(FILE *f)
{
    fprintf(f, "usage: tierctl [--url URL[,URL...]] [--json] [--timeout MS] [--token-file F]\n"
               "               [--tls-ca F] [--tls-server-name NAME] COMMAND [ARGS]\n\n"
               "  --url URL,...  tierd's address (TIER_URL, tcp://127.0.0.1:7400); several\n"
               "                 (a writer and its standby): the one that answers is used\n"
               "  --json         machine-readable output\n"
               "  --timeout MS   per-call timeout (10000)\n"
               "  --token-file F your bearer token, a mode-600 file (TIER_TOKEN_FILE; or the\n"
               "                 token itself in TIER_TOKEN)\n"
               "  --tls-ca F     CAs to verify a tls+tcp:// tierd with (TIER_TLS_CA; default\n"
               "                 the system's)\n"
               "  --tls-server-name NAME  the name on tierd's certificate\n"
               "                 (TIER_TLS_SERVER_NAME; default the address's host)\n\n"
               "commands:\n");
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
        for (const tierctl_cmd *c = tables[t]; c->name != NULL; c++)
            fprintf(f, "  %-44s %s\n", c->usage, c->help);
    fprintf(f, "\nexit code: 0 ok, 1 fsck found disagreements, 2 usage, 64 + gRPC status code "
               "otherwise\n");
}

static const tierctl_cmd *find(const char *name)
{
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
        for (const tierctl_cmd *c = tables[t]; c->name != NULL; c++)
            if (strcmp(c->name, name) == 0)
                return c;
    return NULL;
}

int main(int argc, char **argv)
{
    const char *url = getenv("TIER_URL") ? getenv("TIER_URL") : "tcp://127.0.0.1:7400";
    const char *token_file = NULL;
    char token[TIER_TOKEN_MAX + 1];
    tier_client_opts opts = {.tls_ca_file = getenv("TIER_TLS_CA"),
                             .tls_server_name = getenv("TIER_TLS_SERVER_NAME")};
    tierctl t = {0};
    int64_t timeout = 10000;
    const tierctl_cmd *cmd;
    int i, rv;

    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--json") == 0)
            t.json = true;
        else if (strcmp(argv[i], "--url") == 0 && i + 1 < argc)
            url = argv[++i];
        else if (strcmp(argv[i], "--token-file") == 0 && i + 1 < argc)
            token_file = argv[++i];
        else if (strcmp(argv[i], "--tls-ca") == 0 && i + 1 < argc)
            opts.tls_ca_file = argv[++i];
        else if (strcmp(argv[i], "--tls-server-name") == 0 && i + 1 < argc)
            opts.tls_server_name = argv[++i];
        else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc &&
                 tierctl_int(argv[i + 1], &timeout) && timeout > 0 && timeout <= 86400000)
            i++;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    if ((cmd = find(argv[i])) == NULL) {
        fprintf(stderr, "tierctl: unknown command \"%s\"\n", argv[i]);
        usage(stderr);
        return 2;
    }
    if (argc - i > 1 && strcmp(argv[i + 1], "--help") == 0) {
        printf("usage: tierctl %s\n  %s\n", cmd->usage, cmd->help);
        return 0;
    }
    if (tier_token_find(token_file, token, sizeof(token), t.err.message, sizeof(t.err.message)) !=
        TIER_OK) {
        fprintf(stderr, "tierctl: %s\n", t.err.message);
        return 2;
    }
    opts.token = token[0] != '\0' ? token : NULL;
    if (opts.tls_ca_file != NULL && *opts.tls_ca_file == '\0')
        opts.tls_ca_file = NULL;
    if (opts.tls_server_name != NULL && *opts.tls_server_name == '\0')
        opts.tls_server_name = NULL;
    opts.timeout_ms = (uint32_t)timeout;
    if ((rv = tier_client_open_opts(&t.client, url, &opts, &t.err)) != TIER_OK) {
        fprintf(stderr, "tierctl: %s: %s\n", url, t.err.message);
        return 2;
    }
    rv = cmd->run(&t, argc - i, argv + i);
    tier_client_close(t.client);
    if (rv == TIERCTL_USAGE) {
        fprintf(stderr, "tierctl: %s\n", t.err.message);
        return 2;
    }
    if (rv == TIERCTL_FOUND)
        return 1;
    if (rv != TIER_OK) {
        fprintf(stderr, "tierctl: %s: %s\n", tier_status_name(rv), t.err.message);
        return tier_status_exit_code(rv);
    }
    return 0;
}
