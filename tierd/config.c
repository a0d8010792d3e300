/*
 * config.c -- tierd's configuration: defaults < config file < environment
 * < flags.  Passwords are accepted from the file and the environment only,
 * never as flags: a command line is visible to every user of the machine.
 */
#include "tierd.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier_crash.h"
#include "tier_rpc_net.h"

/* getopt codes of the --rpc-* and access flags: past every character code. */
#define OPT_RPC 0x100
#define OPT_ACCESS 0x200

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tierd [options]\n"
            "\n"
            "The tier coordinator: serves the tier API (tiering and ranking) over nng.\n"
            "\n"
            "  --listen URL        rpc address            (TIER_LISTEN, tcp://127.0.0.1:7400)\n"
            "  --push URL          move-job push address  (TIER_PUSH, tcp://127.0.0.1:7401)\n"
            "  --http URL          HTTP/JSON address, e.g. http://127.0.0.1:7480\n"
            "                      (TIER_HTTP_LISTEN, none; docs/HTTP.md)\n"
            "  --redis HOST:PORT   Redis                  (TIER_REDIS_HOST, TIER_REDIS_PORT)\n"
            "  --mysql HOST:PORT   MySQL/MariaDB          (TIER_MYSQL_HOST, TIER_MYSQL_PORT)\n"
            "  --mysql-user USER                          (TIER_MYSQL_USER, tier)\n"
            "  --mysql-db NAME                            (TIER_MYSQL_DB, tier)\n"
            "  --threads N         rpc worker threads     (TIER_THREADS, 16)\n"
            "  --contexts N        calls served at once   (TIER_CONTEXTS, 256)\n"
            "  --lease-ms MS       move-job lease         (TIER_LEASE_MS, 30000)\n"
            "  --retention-min N   ranking retention      (TIER_RETENTION_MIN, 43200)\n"
            "  --done-retention-s N  finished move jobs stay listed (TIER_DONE_RETENTION_S, 3600;\n"
            "                      0 = not kept)\n"
            "  --writer-ttl-ms MS  writer lease           (TIER_WRITER_TTL_MS, 3000)\n"
            "  --config FILE       key = value file       (TIER_CONFIG)\n"
            "  --storage-root DIR  SetLevels accepts level directories only under DIR;\n"
            "                      repeat for several  (TIER_STORAGE_ROOT, ':'-separated;\n"
            "                      default: the parent directories of the current levels)\n"
            "  --scrub-interval-s N  background fsck     (TIER_SCRUB_INTERVAL_S, 3600; 0 off)\n"
            "  --scrub-rate N      its entries+stats/s    (TIER_SCRUB_RATE, 2000)\n"
            "  --rpc-idle-timeout-ms MS  close connections with no request for this long\n"
            "                      (TIER_RPC_IDLE_TIMEOUT_MS, 10000)\n"
            "  --rpc-max-conns N   rpc connections at once (TIER_RPC_MAX_CONNS, 512)\n"
            "  --rpc-max-conns-per-addr N  from one IP address (TIER_RPC_MAX_CONNS_PER_ADDR, 128)\n"
            "  --rpc-dedupe-mb N   replies kept to answer resends (TIER_RPC_DEDUPE_MB, 64)\n"
            "  --auth-tokens FILE  who may call what: one \"name roles hash\" line per token\n"
            "                      (TIER_AUTH_TOKENS; docs/SECURITY.md); re-read on SIGHUP\n"
            "  --no-auth           no tokens: every caller may do everything. Only with\n"
            "                      loopback or ipc:// addresses (TIER_NO_AUTH=1)\n"
            "  --tls-cert FILE     PEM certificate for tls+tcp:// addresses (TIER_TLS_CERT)\n"
            "  --tls-key FILE      its private key, mode 600 (TIER_TLS_KEY)\n"
            "  --insecure-plaintext  allow tokens over plain tcp:// to other machines\n"
            "  --crash-points      list the crash points (TIER_CRASH=point[:n] arms one)\n"
            "  --help\n"
            "\n"
            "One writer: tierds sharing a MySQL database and a Redis key prefix\n"
            "(TIER_REDIS_PREFIX, tier:) elect one writer with a lease in Redis. The others\n"
            "wait as hot standbys, without listening, and take over within about the ttl\n"
            "when the writer dies. A tierd that loses the lease exits with status 3.\n"
            "\n"
            "Passwords: TIER_MYSQL_PASSWORD / TIER_REDIS_PASSWORD in the environment, or\n"
            "mysql_password / redis_password in the config file. Never on the command line.\n"
            "Logs go to stderr; TIER_LOG=debug|info|warn|error sets the level.\n");
}

static void set_hostport(char *host, size_t hlen, int *port, const char *v)
{
    const char *colon = strrchr(v, ':');
    if (colon == NULL) {
        snprintf(host, hlen, "%s", v);
        return;
    }
    snprintf(host, hlen, "%.*s", (int)(colon - v), v);
    *port = atoi(colon + 1);
}

/* The rpc layer's caps (docs/LIMITS.md). */
static int apply_rpc(tierd_config *c, const char *key, const char *v)
{
    unsigned long n = strtoul(v, NULL, 10);

    if (n > UINT32_MAX)
        n = UINT32_MAX;
    if (strcmp(key, "rpc_idle_timeout_ms") == 0)
        c->rpc_idle_timeout_ms = (uint32_t)n;
    else if (strcmp(key, "rpc_max_conns") == 0)
        c->rpc_max_conns = (unsigned)n;
    else if (strcmp(key, "rpc_max_conns_per_addr") == 0)
        c->rpc_max_conns_per_addr = (unsigned)n;
    else if (strcmp(key, "rpc_dedupe_mb") == 0)
        c->rpc_dedupe_mb = (unsigned)n;
    else
        return -1;
    return 0;
}

/* Appends each ':'-separated directory of v; -1 when one is not absolute
 * or there are too many. */
static int add_roots(tierd_config *c, const char *v)
{
    while (*v != '\0') {
        size_t n = strcspn(v, ":");
        if (n > 0) {
            if (v[0] != '/' || n >= sizeof(c->storage_roots[0]) ||
                c->n_storage_roots == TIERD_MAX_ROOTS) {
                fprintf(stderr, "tierd: storage root \"%.*s\": absolute, at most %d of them\n",
                        (int)n, v, TIERD_MAX_ROOTS);
                return -1;
            }
            snprintf(c->storage_roots[c->n_storage_roots++], sizeof(c->storage_roots[0]), "%.*s",
                     (int)n, v);
        }
        v += n;
        if (*v == ':')
            v++;
    }
    return 0;
}

/* One "key = value" setting, from the file or the environment. */
static int apply(tierd_config *c, const char *key, const char *v)
{
    if (strcmp(key, "listen") == 0)
        snprintf(c->listen, sizeof(c->listen), "%s", v);
    else if (strcmp(key, "push") == 0)
        snprintf(c->push, sizeof(c->push), "%s", v);
    else if (strcmp(key, "http_listen") == 0)
        snprintf(c->http_listen, sizeof(c->http_listen), "%s", v);
    else if (strcmp(key, "redis") == 0)
        set_hostport(c->kv.host, sizeof(c->kv.host), &c->kv.port, v);
    else if (strcmp(key, "redis_prefix") == 0)
        snprintf(c->redis_prefix, sizeof(c->redis_prefix), "%s", v);
    else if (strcmp(key, "redis_password") == 0)
        snprintf(c->kv.password, sizeof(c->kv.password), "%s", v);
    else if (strcmp(key, "mysql") == 0)
        set_hostport(c->db.host, sizeof(c->db.host), &c->db.port, v);
    else if (strcmp(key, "mysql_user") == 0)
        snprintf(c->db.user, sizeof(c->db.user), "%s", v);
    else if (strcmp(key, "mysql_password") == 0)
        snprintf(c->db.password, sizeof(c->db.password), "%s", v);
    else if (strcmp(key, "mysql_db") == 0)
        snprintf(c->db.db, sizeof(c->db.db), "%s", v);
    else if (strcmp(key, "threads") == 0)
        c->threads = (unsigned)atoi(v);
    else if (strcmp(key, "contexts") == 0)
        c->contexts = (unsigned)atoi(v);
    else if (strcmp(key, "lease_ms") == 0)
        c->lease_ms = (uint32_t)atoi(v);
    else if (strcmp(key, "retention_min") == 0)
        c->retention_min = atoll(v);
    else if (strcmp(key, "writer_ttl_ms") == 0)
        c->writer_ttl_ms = (uint32_t)atoi(v);
    else if (strcmp(key, "done_retention_s") == 0)
        c->done_retention_s = (uint32_t)strtoul(v, NULL, 10);
    else if (strcmp(key, "scrub_interval_s") == 0)
        c->scrub_interval_s = (uint32_t)strtoul(v, NULL, 10);
    else if (strcmp(key, "scrub_rate") == 0)
        c->scrub_rate = (uint32_t)strtoul(v, NULL, 10);
    else if (strcmp(key, "storage_root") == 0)
        return add_roots(c, v);
    else if (strcmp(key, "auth_tokens") == 0) {
        /* Either one replaces the other from a lower layer (file < env <
         * flags); both in one layer is refused where the layer is read. */
        snprintf(c->auth_tokens, sizeof(c->auth_tokens), "%s", v);
        c->no_auth = false;
    } else if (strcmp(key, "no_auth") == 0) {
        c->no_auth = strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0;
        if (c->no_auth)
            c->auth_tokens[0] = '\0';
    } else if (strcmp(key, "tls_cert") == 0)
        snprintf(c->tls_cert, sizeof(c->tls_cert), "%s", v);
    else if (strcmp(key, "tls_key") == 0)
        snprintf(c->tls_key, sizeof(c->tls_key), "%s", v);
    else if (strcmp(key, "insecure_plaintext") == 0)
        c->insecure_plaintext =
            strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0;
    else
        return apply_rpc(c, key, v);
    return 0;
}

static int load_file(tierd_config *c, const char *path)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    int lineno = 0;

    if (f == NULL) {
        fprintf(stderr, "tierd: cannot read config file %s\n", path);
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char *eq, *k = line, *v, *end;
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        while (*k == ' ' || *k == '\t')
            k++;
        if (*k == '#' || *k == '\0')
            continue;
        if ((eq = strchr(k, '=')) == NULL) {
            fprintf(stderr, "tierd: %s:%d: expected key = value\n", path, lineno);
            fclose(f);
            return -1;
        }
        for (end = eq; end > k && (end[-1] == ' ' || end[-1] == '\t'); end--)
            ;
        *end = '\0';
        for (v = eq + 1; *v == ' ' || *v == '\t'; v++)
            ;
        if (apply(c, k, v) != 0) {
            fprintf(stderr, "tierd: %s:%d: unknown key \"%s\"\n", path, lineno, k);
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

static int conflict(void)
{
    fprintf(stderr, "tierd: --no-auth and --auth-tokens exclude each other\n");
    return -1;
}

static int load_env(tierd_config *c)
{
    static const struct {
        const char *env, *key;
    } map[] = {
        {"TIER_LISTEN", "listen"},
        {"TIER_PUSH", "push"},
        {"TIER_HTTP_LISTEN", "http_listen"},
        {"TIER_THREADS", "threads"},
        {"TIER_CONTEXTS", "contexts"},
        {"TIER_LEASE_MS", "lease_ms"},
        {"TIER_RETENTION_MIN", "retention_min"},
        {"TIER_WRITER_TTL_MS", "writer_ttl_ms"},
        {"TIER_DONE_RETENTION_S", "done_retention_s"},
        {"TIER_MYSQL_USER", "mysql_user"},
        {"TIER_MYSQL_PASSWORD", "mysql_password"},
        {"TIER_MYSQL_DB", "mysql_db"},
        {"TIER_REDIS_PASSWORD", "redis_password"},
        {"TIER_REDIS_PREFIX", "redis_prefix"},
        {"TIER_RPC_IDLE_TIMEOUT_MS", "rpc_idle_timeout_ms"},
        {"TIER_RPC_MAX_CONNS", "rpc_max_conns"},
        {"TIER_RPC_MAX_CONNS_PER_ADDR", "rpc_max_conns_per_addr"},
        {"TIER_RPC_DEDUPE_MB", "rpc_dedupe_mb"},
        {"TIER_AUTH_TOKENS", "auth_tokens"},
        {"TIER_NO_AUTH", "no_auth"},
        {"TIER_TLS_CERT", "tls_cert"},
        {"TIER_TLS_KEY", "tls_key"},
    };
    const char *v = getenv("TIER_NO_AUTH"), *t = getenv("TIER_AUTH_TOKENS");

    if (v != NULL && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0) && t != NULL && *t != '\0')
        return conflict();
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if ((v = getenv(map[i].env)) != NULL && *v != '\0')
            apply(c, map[i].key, v);
    /* fsck */
    if ((v = getenv("TIER_SCRUB_INTERVAL_S")) != NULL && *v != '\0')
        apply(c, "scrub_interval_s", v);
    if ((v = getenv("TIER_SCRUB_RATE")) != NULL && *v != '\0')
        apply(c, "scrub_rate", v);
    if ((v = getenv("TIER_MYSQL_HOST")) != NULL && *v != '\0')
        snprintf(c->db.host, sizeof(c->db.host), "%s", v);
    if ((v = getenv("TIER_MYSQL_PORT")) != NULL && *v != '\0')
        c->db.port = atoi(v);
    if ((v = getenv("TIER_REDIS_HOST")) != NULL && *v != '\0')
        snprintf(c->kv.host, sizeof(c->kv.host), "%s", v);
    if ((v = getenv("TIER_REDIS_PORT")) != NULL && *v != '\0')
        c->kv.port = atoi(v);
    /* Replaces the file's roots, as any variable overrides the file. */
    if ((v = getenv("TIER_STORAGE_ROOT")) != NULL && *v != '\0') {
        c->n_storage_roots = 0;
        return add_roots(c, v);
    }
    return 0;
}

/* Access must be chosen, not fallen into (docs/SECURITY.md): tokens, or
 * --no-auth on addresses no other machine can reach; and tokens do not
 * cross a network in clear unless the operator says so. */
static int check_access(const tierd_config *c)
{
    const char *urls[3] = {c->listen, c->push, c->http_listen};

    if (!c->no_auth && c->auth_tokens[0] == '\0') {
        fprintf(stderr, "tierd: say who may call: --auth-tokens FILE (docs/SECURITY.md), or\n"
                        "       --no-auth for a tierd that only this machine can reach\n");
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        if (urls[i][0] == '\0') /* no HTTP port */
            continue;
        if (c->no_auth && !tier_rpc_net_is_loopback(urls[i])) {
            fprintf(stderr,
                    "tierd: --no-auth listens on loopback or ipc:// addresses only, not %s\n",
                    urls[i]);
            return -1;
        }
        if ((c->tls_cert[0] == '\0') != (c->tls_key[0] == '\0')) {
            fprintf(stderr, "tierd: --tls-cert and --tls-key go together\n");
            return -1;
        }
        if ((tier_rpc_net_is_tls(urls[i]) || strncmp(urls[i], "https://", 8) == 0) &&
            c->tls_cert[0] == '\0') {
            fprintf(stderr, "tierd: %s needs --tls-cert and --tls-key\n", urls[i]);
            return -1;
        }
    }
    if (!c->no_auth && !c->insecure_plaintext && c->http_listen[0] != '\0' &&
        strncmp(c->http_listen, "https://", 8) != 0 && !tier_rpc_net_is_loopback(c->http_listen)) {
        fprintf(stderr,
                "tierd: tokens would cross the network in clear on %s: use https:// "
                "(--tls-cert, --tls-key), or pass --insecure-plaintext\n",
                c->http_listen);
        return -1;
    }
    if (!c->no_auth && !c->insecure_plaintext && !tier_rpc_net_is_tls(c->listen) &&
        !tier_rpc_net_is_loopback(c->listen)) {
        fprintf(stderr,
                "tierd: tokens would cross the network in clear on %s: listen on tls+tcp:// "
                "(--tls-cert, --tls-key), or pass --insecure-plaintext\n",
                c->listen);
        return -1;
    }
    return 0;
}

int tierd_config_load(tierd_config *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"push", required_argument, NULL, 'p'},
        {"redis", required_argument, NULL, 'r'},
        {"mysql", required_argument, NULL, 'm'},
        {"mysql-user", required_argument, NULL, 'u'},
        {"mysql-db", required_argument, NULL, 'd'},
        {"threads", required_argument, NULL, 't'},
        {"contexts", required_argument, NULL, 'C'},
        {"lease-ms", required_argument, NULL, 'L'},
        {"retention-min", required_argument, NULL, 'R'},
        {"writer-ttl-ms", required_argument, NULL, 'W'},
        {"done-retention-s", required_argument, NULL, 'D'},
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {"crash-points", no_argument, NULL, 'X'},
        {"scrub-interval-s", required_argument, NULL, 'S'},
        {"scrub-rate", required_argument, NULL, 'F'},
        {"rpc-idle-timeout-ms", required_argument, NULL, OPT_RPC + 0},
        {"rpc-max-conns", required_argument, NULL, OPT_RPC + 1},
        {"rpc-max-conns-per-addr", required_argument, NULL, OPT_RPC + 2},
        {"rpc-dedupe-mb", required_argument, NULL, OPT_RPC + 3},
        {"storage-root", required_argument, NULL, 'Z'},
        {"auth-tokens", required_argument, NULL, OPT_ACCESS + 0},
        {"no-auth", no_argument, NULL, OPT_ACCESS + 1},
        {"tls-cert", required_argument, NULL, OPT_ACCESS + 2},
        {"tls-key", required_argument, NULL, OPT_ACCESS + 3},
        {"insecure-plaintext", no_argument, NULL, OPT_ACCESS + 4},
        {"http", required_argument, NULL, OPT_ACCESS + 5},
        {NULL, 0, NULL, 0},
    };
    const char *file = getenv("TIER_CONFIG");
    int o;

    memset(c, 0, sizeof(*c));
    snprintf(c->listen, sizeof(c->listen), "tcp://127.0.0.1:7400");
    snprintf(c->push, sizeof(c->push), "tcp://127.0.0.1:7401");
    c->threads = 16;
    c->contexts = 256;
    c->lease_ms = 30000;
    c->retention_min = 30 * 24 * 60;
    c->writer_ttl_ms = 3000;
    c->done_retention_s = 3600;
    c->scrub_interval_s = 3600;
    c->scrub_rate = 2000;
    snprintf(c->db.host, sizeof(c->db.host), "127.0.0.1");
    c->db.port = 3306;
    snprintf(c->db.user, sizeof(c->db.user), "tier");
    snprintf(c->db.db, sizeof(c->db.db), "tier");
    snprintf(c->kv.host, sizeof(c->kv.host), "127.0.0.1");
    snprintf(c->redis_prefix, sizeof(c->redis_prefix), "tier:");
    c->kv.port = 6379;

    /* First pass: only --config and --help, so the file sits below flags. */
    opterr = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'c')
            file = optarg;
        else if (o == 'X') {
            tier_crash_list(stdout, tierd_crash_points);
            return 1;
        } else if (o == 'h') {
            usage(stdout);
            return 1;
        }
    }
    if (file != NULL && load_file(c, file) != 0)
        return -1;
    if (load_env(c) != 0)
        return -1;
    bool root_flag = false; /* the first --storage-root replaces the others */
    bool tokens_flag = false, no_auth_flag = false;
    optind = 1;
    opterr = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'l':
            apply(c, "listen", optarg);
            break;
        case 'p':
            apply(c, "push", optarg);
            break;
        case 'r':
            apply(c, "redis", optarg);
            break;
        case 'm':
            apply(c, "mysql", optarg);
            break;
        case 'u':
            apply(c, "mysql_user", optarg);
            break;
        case 'd':
            apply(c, "mysql_db", optarg);
            break;
        case 't':
            apply(c, "threads", optarg);
            break;
        case 'C':
            apply(c, "contexts", optarg);
            break;
        case 'L':
            apply(c, "lease_ms", optarg);
            break;
        case 'R':
            apply(c, "retention_min", optarg);
            break;
        case 'W':
            apply(c, "writer_ttl_ms", optarg);
            break;
        case 'D':
            apply(c, "done_retention_s", optarg);
            break;
        case 'S':
            apply(c, "scrub_interval_s", optarg);
            break;
        case 'F':
            apply(c, "scrub_rate", optarg);
            break;
        case 'Z':
            if (!root_flag)
                c->n_storage_roots = 0;
            root_flag = true;
            if (add_roots(c, optarg) != 0)
                return -1;
            break;
        case 'c':
            break;
        case OPT_RPC + 0:
            apply(c, "rpc_idle_timeout_ms", optarg);
            break;
        case OPT_RPC + 1:
            apply(c, "rpc_max_conns", optarg);
            break;
        case OPT_RPC + 2:
            apply(c, "rpc_max_conns_per_addr", optarg);
            break;
        case OPT_RPC + 3:
            apply(c, "rpc_dedupe_mb", optarg);
            break;
        case OPT_ACCESS + 0:
            if (no_auth_flag)
                return conflict();
            tokens_flag = true;
            apply(c, "auth_tokens", optarg);
            break;
        case OPT_ACCESS + 1:
            if (tokens_flag)
                return conflict();
            no_auth_flag = true;
            apply(c, "no_auth", "1");
            break;
        case OPT_ACCESS + 2:
            apply(c, "tls_cert", optarg);
            break;
        case OPT_ACCESS + 3:
            apply(c, "tls_key", optarg);
            break;
        case OPT_ACCESS + 4:
            c->insecure_plaintext = true;
            break;
        case OPT_ACCESS + 5:
            apply(c, "http_listen", optarg);
            break;
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tierd: unexpected argument \"%s\"\n", argv[optind]);
        return -1;
    }
    if (c->threads == 0)
        c->threads = 16;
    if (c->writer_ttl_ms < 100) {
        fprintf(stderr, "tierd: --writer-ttl-ms must be at least 100\n");
        return -1;
    }
    c->db_conns = c->threads + 4;
    return check_access(c);
}
