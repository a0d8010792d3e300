/*
 * auth.c -- who may call what: bearer tokens, their roles, and the table
 * of methods each role may call.  docs/SECURITY.md is the user's side of
 * this file.
 *
 * Tokens.  The tokens file (auth_tokens) holds one line per token:
 *
 *     # name      roles          BLAKE2b-256 of the token, hex
 *     ops         admin          3f5a...64 hex digits
 *     worker-a    worker         91c0...
 *
 * Only hashes are stored, so the file (and its backups) gives no token
 * away.  A token is 32 random bytes (scripts/services.sh makes them), not a
 * password: a fast unsalted hash (libsodium's crypto_generichash, which is
 * BLAKE2b, the same as `b2sum -l 256`) is as safe as a slow one for it, and
 * costs under a microsecond per call.  A presented token is hashed and its
 * hash looked up by binary search in the table sorted by hash, so a
 * thousand tokens cost what three do.  The search's timing can only tell
 * how a hash the caller chose compares with stored hashes -- and a stored
 * hash leads to no token (finding a BLAKE2b preimage is hopeless); this is
 * how services that keep token hashes in an indexed column work too.  The
 * final equality is checked with sodium_memcmp all the same.
 *
 * Roles.  admin: configuration and job control, plus everything a client
 * may do; worker: claiming and finishing move jobs, nothing else, so a
 * storage host holds a credential that can only do a worker's part; client:
 * reports, comments and reads.  A method missing from the table below is
 * refused to everyone (fail closed); tests/test_auth.c walks every method
 * against every role.
 *
 * The file is read at start-up and again on SIGHUP (revoking a token =
 * deleting its line + kill -HUP); a file that does not parse keeps the old
 * table in force.
 */
#include "tierd.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier_log.h"
#include "tier_methods.h"

#define HASH_LEN crypto_generichash_BYTES /* 32 */
#define MAX_TOKENS 4096

/* Who may call each method.  Health is open to all, in the rpc layer. */
#define R_ADMIN TIERD_ROLE_ADMIN
#define R_WORKER TIERD_ROLE_WORKER
#define R_CLIENT TIERD_ROLE_CLIENT
#define R_READ (R_CLIENT | R_ADMIN)

static const struct {
    const char *method;
    unsigned roles;
} access_table[] = {
    /* configuration and job control */
    {TIER_M_ADD_CONTENT, R_ADMIN},
    {TIER_M_ADD_CONTENTS, R_ADMIN},
    {TIER_M_SET_LEVELS, R_ADMIN},
    {TIER_M_RETRY_JOB, R_ADMIN},
    {TIER_M_CANCEL_JOB, R_ADMIN},
    {TIER_M_SCRUB, R_ADMIN},
    {TIER_M_SET_POLICY, R_ADMIN},
    {TIER_M_MOVE_CONTENT, R_ADMIN},
    /* the worker's part of a move */
    {TIER_M_CLAIM_JOB, R_WORKER},
    {TIER_M_RENEW_LEASE, R_WORKER},
    {TIER_M_COMPLETE_JOB, R_WORKER},
    {TIER_M_FAIL_JOB, R_WORKER},
    {TIER_M_HEARTBEAT, R_WORKER},
    /* reports, comments, reads */
    {TIER_M_REPORT_VIEWS, R_READ},
    {TIER_M_GET_CONTENT, R_READ},
    {TIER_M_GET_HISTORY, R_READ},
    {TIER_M_LIST_LEVELS, R_READ},
    {TIER_M_LIST_JOBS, R_READ},
    /* Readable by workers too: the seed's workers commit through
     * /update_sentence, which looks the job up first (tierd/http.c); a
     * worker knows its jobs anyway. */
    {TIER_M_GET_JOB, R_READ | R_WORKER},
    {TIER_M_POST_COMMENT, R_READ},
    {TIER_M_POST_COMMENTS, R_READ},
    {TIER_M_EDIT_COMMENT, R_READ},
    {TIER_M_DELETE_COMMENT, R_READ},
    {TIER_M_DELETE_COMMENTS, R_READ},
    {TIER_M_RESTORE_COMMENTS, R_READ},
    {TIER_M_EDIT_COMMENTS, R_READ},
    {TIER_M_DELETE_BY_AUTHOR, R_READ},
    {TIER_M_RESTORE_COMMENT, R_READ},
    {TIER_M_TOP_CONTENTS, R_READ},
    {TIER_M_WATCH_TOP, R_READ},
    {TIER_M_LATEST_COMMENTS, R_READ},
    {TIER_M_LIST_WORKERS, R_READ},
    {TIER_M_GET_STATS, R_READ},
    {TIER_M_GET_POLICY, R_READ},
    {TIER_M_PLAN_MOVES, R_READ},
    /* Workers find every shard's push address in it. */
    {TIER_M_TOPOLOGY, R_READ | R_WORKER},
};

typedef struct {
    char name[64];
    unsigned roles;
    unsigned char hash[HASH_LEN];
} token;

struct tierd_auth {
    pthread_rwlock_t lock; /* guards toks/ntoks: a reload swaps them */
    token *toks;
    size_t ntoks;
};

static const struct {
    const char *name;
    unsigned bit;
} role_names[] = {{"admin", R_ADMIN}, {"worker", R_WORKER}, {"client", R_CLIENT}};

static unsigned method_roles(const char *method)
{
    for (size_t i = 0; i < sizeof(access_table) / sizeof(access_table[0]); i++)
        if (strcmp(access_table[i].method, method) == 0)
            return access_table[i].roles;
    return 0;
}

const char *tierd_role_names(unsigned roles, char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(role_names) / sizeof(role_names[0]); i++)
        if (roles & role_names[i].bit)
            snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", buf[0] ? "," : "",
                     role_names[i].name);
    return buf;
}

/* "admin,client" -> bits; 0 when a word is not a role. */
static unsigned parse_roles(char *words)
{
    unsigned roles = 0;
    char *save = NULL;

    for (char *w = strtok_r(words, ",", &save); w != NULL; w = strtok_r(NULL, ",", &save)) {
        unsigned bit = 0;
        for (size_t i = 0; i < sizeof(role_names) / sizeof(role_names[0]); i++)
            if (strcmp(w, role_names[i].name) == 0)
                bit = role_names[i].bit;
        if (bit == 0)
            return 0;
        roles |= bit;
    }
    return roles;
}

/* One line of the file into t; -1 with a reason when it is not one. */
static int parse_line(char *line, token *t, char *why, size_t len)
{
    char name[256], roles[256], hex[256];
    size_t hlen;

    if (sscanf(line, "%255s %255s %255s", name, roles, hex) != 3) {
        snprintf(why, len, "expected: name roles hash");
        return -1;
    }
    if (strlen(name) >= sizeof(t->name)) {
        snprintf(why, len, "name longer than %zu bytes", sizeof(t->name) - 1);
        return -1;
    }
    if ((t->roles = parse_roles(roles)) == 0) {
        snprintf(why, len, "roles are admin, worker or client, comma-separated");
        return -1;
    }
    if (strlen(hex) != 2 * HASH_LEN ||
        sodium_hex2bin(t->hash, HASH_LEN, hex, strlen(hex), NULL, &hlen, NULL) != 0 ||
        hlen != HASH_LEN) {
        snprintf(why, len, "the hash is 64 hex digits (b2sum -l 256 of the token)");
        return -1;
    }
    memcpy(t->name, name, strlen(name) + 1); /* fits: checked above */
    return 0;
}

static int hash_cmp(const void *a, const void *b)
{
    return memcmp(((const token *)a)->hash, ((const token *)b)->hash, HASH_LEN);
}

/* Reads the whole file, or nothing: a table half read would lock out
 * whoever's line came after the bad one. */
static int load(const char *path, token **out, size_t *n, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    token *toks = NULL;
    char line[1024], why[128];
    size_t ntoks = 0;
    int lineno = 0;

    if (f == NULL) {
        snprintf(err, errlen, "cannot read tokens file %s", path);
        return TIER_NOT_FOUND;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char *p = line;
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#' || *p == '\0')
            continue;
        token *grown = ntoks < MAX_TOKENS ? realloc(toks, (ntoks + 1) * sizeof(*toks)) : NULL;
        if (grown == NULL) {
            snprintf(err, errlen, "%s: more than %d tokens", path, MAX_TOKENS);
            goto fail;
        }
        toks = grown;
        if (parse_line(p, &toks[ntoks], why, sizeof(why)) != 0) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
            goto fail;
        }
        ntoks++;
    }
    fclose(f);
    if (ntoks > 0)
        qsort(toks, ntoks, sizeof(*toks), hash_cmp); /* for the lookup's bsearch */
    for (size_t i = 1; i < ntoks; i++)
        if (memcmp(toks[i - 1].hash, toks[i].hash, HASH_LEN) == 0) {
            snprintf(err, errlen, "%s: \"%s\" and \"%s\" have the same token", path,
                     toks[i - 1].name, toks[i].name);
            free(toks);
            return TIER_INVALID_ARGUMENT;
        }
    *out = toks;
    *n = ntoks;
    return TIER_OK;
fail:
    fclose(f);
    free(toks);
    return TIER_INVALID_ARGUMENT;
}

int tierd_auth_open(tierd_auth **out, const char *path, char *err, size_t errlen)
{
    tierd_auth *a;
    int rv;

    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium does not initialise");
        return TIER_INTERNAL;
    }
    if ((a = calloc(1, sizeof(*a))) == NULL)
        return TIER_RESOURCE_EXHAUSTED;
    if ((rv = load(path, &a->toks, &a->ntoks, err, errlen)) != TIER_OK) {
        free(a);
        return rv;
    }
    pthread_rwlock_init(&a->lock, NULL);
    *out = a;
    return TIER_OK;
}

int tierd_auth_reload(tierd_auth *a, const char *path, char *err, size_t errlen)
{
    token *toks, *old;
    size_t n;
    int rv;

    if ((rv = load(path, &toks, &n, err, errlen)) != TIER_OK)
        return rv;
    pthread_rwlock_wrlock(&a->lock);
    old = a->toks;
    a->toks = toks;
    a->ntoks = n;
    pthread_rwlock_unlock(&a->lock);
    free(old);
    return TIER_OK;
}

size_t tierd_auth_count(tierd_auth *a)
{
    pthread_rwlock_rdlock(&a->lock);
    size_t n = a->ntoks;
    pthread_rwlock_unlock(&a->lock);
    return n;
}

void tierd_auth_close(tierd_auth *a)
{
    if (a == NULL)
        return;
    pthread_rwlock_destroy(&a->lock);
    free(a->toks);
    free(a);
}

/* The rpc layer's hook (tier_rpc_auth_fn). */
int tierd_auth_check(void *arg, const char *method, const uint8_t *tok, size_t len,
                     tier_rpc_caller *who, char *msg, size_t msglen)
{
    tierd_auth *a = arg;
    unsigned char hash[HASH_LEN];
    const token *found = NULL;
    unsigned allowed;
    char have[64], need[64];

    if (tok == NULL) {
        snprintf(msg, msglen, "%s needs a bearer token (authorization metadata)", method);
        return TIER_UNAUTHENTICATED;
    }
    crypto_generichash(hash, sizeof(hash), tok, len, NULL, 0);
    pthread_rwlock_rdlock(&a->lock);
    token key;
    memcpy(key.hash, hash, HASH_LEN);
    found = a->ntoks > 0 ? bsearch(&key, a->toks, a->ntoks, sizeof(token), hash_cmp) : NULL;
    if (found != NULL && sodium_memcmp(hash, found->hash, HASH_LEN) != 0)
        found = NULL;
    if (found == NULL) {
        pthread_rwlock_unlock(&a->lock);
        snprintf(msg, msglen, "unknown or revoked token");
        return TIER_UNAUTHENTICATED;
    }
    who->roles = found->roles;
    snprintf(who->name, sizeof(who->name), "%s", found->name);
    memcpy(&who->id, found->hash, sizeof(who->id));
    who->id |= 1; /* 0 is the anonymous caller */
    pthread_rwlock_unlock(&a->lock);
    allowed = method_roles(method);
    if ((who->roles & allowed) == 0) {
        snprintf(msg, msglen, "token \"%s\" (%s) may not call %s (%s only)", who->name,
                 tierd_role_names(who->roles, have, sizeof(have)), method,
                 allowed ? tierd_role_names(allowed, need, sizeof(need)) : "no role");
        return TIER_PERMISSION_DENIED;
    }
    return TIER_OK;
}
