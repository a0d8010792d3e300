/*
 * tier_testenv.h -- what the tests share: real services, free ports,
 * temporary directories and child processes.
 *
 * The services (redis-server, mariadbd) are started by scripts/services.sh
 * for the whole test run; their addresses reach the tests through the
 * environment (TIER_REDIS_HOST/PORT, TIER_MYSQL_HOST/PORT/USER/PASSWORD/DB),
 * which scripts/test.sh exports.  A test that needs a service and finds no
 * address fails: it never skips.
 */
#ifndef TIER_TESTENV_H
#define TIER_TESTENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tier_client.h"
#include <sys/types.h>

/* ---- ports, directories, processes (testenv.c) */

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int tier_test_free_port(void);
/* "tcp://127.0.0.1:<port>" of a port nobody listens on, held (bound, not
 * listening) for the rest of the process: a dead address that stays dead. */
void tier_test_dead_url(char *buf, size_t len);
/* "tcp://127.0.0.1:<free port>" into buf. */
void tier_test_tcp_url(char *buf, size_t len);
/* "ipc:///tmp/tier-test-<pid>-<n>.sock" into buf. */
void tier_test_ipc_url(char *buf, size_t len);
/* mkdtemp under $TMPDIR (or /tmp); the path is malloc'ed. */
char *tier_test_tmpdir(void);
/* rm -rf path (used on tmpdirs only). */
void tier_test_rmtree(const char *path);
/* Path of a built binary: TIER_BIN_DIR "/" name, malloc'ed. */
char *tier_test_bin(const char *name);
/* fork+exec argv (argv[0] a path); stdout/stderr go to logpath if not NULL
 * (appended).  Extra environment "K=V" strings in envp (NULL-terminated) are
 * added.  Returns the pid or -1. */
pid_t tier_test_spawn(char *const argv[], char *const envp[], const char *logpath);
/* The first sanitizer report (ASan, LSan, UBSan) in text, or NULL.  Every
 * child spawned with a log, and every tier_test_run, is checked with it when
 * reaped: a report fails the test. */
const char *tier_test_sanitizer_report(const char *text);
/* Remembers a child the test forked itself (tier_test_spawn does this for
 * its own), with its log (may be NULL), until tier_test_wait reaps it. */
void tier_test_track_child(pid_t pid, const char *log);
/* SIGKILLs and reaps every child still remembered: a suite's .fini, so no
 * tierd or worker outlives a test that failed before its teardown. */
void tier_test_kill_children(void);
/* Wait up to timeout_ms for pid to exit; returns its exit status
 * (0..255), 128+signal if killed, or -1 on timeout. */
int tier_test_wait(pid_t pid, int timeout_ms);
/* Run argv to completion (timeout_ms), capturing stdout+stderr into out
 * (NUL-terminated, truncated to outlen).  Returns the exit status as above. */
int tier_test_run(char *const argv[], char *const envp[], char *out, size_t outlen, int timeout_ms);
/* Read a whole file; malloc'ed, NUL-terminated; NULL if missing. */
char *tier_test_slurp(const char *path, size_t *len);
/* Write a file with the given bytes. */
bool tier_test_write_file(const char *path, const void *data, size_t len);

/* ---- databases (testenv_db.c) */

typedef struct {
    char host[64];
    int port;
    char user[64];
    char password[128];
    char db[64];
} tier_test_mysql;

/* Fills from the environment; fails the test (cr_assert) if unset. */
void tier_test_mysql_env(tier_test_mysql *out);
/* Creates a fresh database named tier_t_<pid>_<counter>, applies sql/
 * with scripts/migrate.sh (storage root as given, may be NULL) and writes
 * its name into m->db. */
void tier_test_db_create(tier_test_mysql *m, const char *storage_root);
void tier_test_db_drop(const tier_test_mysql *m);
/* Runs scripts/migrate.sh against m->db; returns its exit status. */
int tier_test_db_migrate(const tier_test_mysql *m, const char *storage_root);
/* First column of the first row of query q on my (a MYSQL *), as a
 * string ("" if none); a failing query fails the test. */
void tier_test_sql1(void *my, const char *q, char *out, size_t len);
/* Redis address from the environment (cr_assert if unset). */
void tier_test_redis_env(char *host, size_t hostlen, int *port);

/* ---- a tierd under test (testenv_tierd.c) */

/* One tierd process with its own URLs, log and environment.  The "K=V"
 * strings in env are added to the inherited environment (tier_test_spawn),
 * so a test only names what differs from the services' defaults. */
typedef struct {
    char listen[128], push[128], log[512];
    char env[24][320];
    char *envp[25]; /* env[0..nenv-1], NULL-terminated */
    int nenv;
    pid_t pid;
    char ca[512]; /* set by tier_test_tierd_secure: the CA of its certificate */
} tier_test_tierd;

/* Free --listen/--push URLs, log "<logdir>/tierd.log" (none if logdir is
 * NULL) and TIER_MYSQL_DB=db, TIER_REDIS_PREFIX=prefix (if NULL, one of
 * this tierd's own: a prefix has one writer), TIER_LOG=info. */
void tier_test_tierd_init(tier_test_tierd *t, const char *logdir, const char *db,
                          const char *prefix);
/* Adds one "K=V" (printf format) to the environment. */
void tier_test_tierd_setenv(tier_test_tierd *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Names the services explicitly: TIER_MYSQL_HOST/PORT/USER/PASSWORD from m
 * and TIER_REDIS_HOST/PORT from the environment; a port >= 0 replaces the
 * real one (a dead port, for the start-up failure tests). */
void tier_test_tierd_setenv_services(tier_test_tierd *t, const tier_test_mysql *m, int mysql_port,
                                     int redis_port);
/* Makes it a tierd as deployed (docs/SECURITY.md): tls+tcp:// URLs with
 * the certificate scripts/services.sh made (TIER_TLS_CERT, TIER_TLS_KEY,
 * TIER_TLS_CA from .run/env), tokens from tokens_file.  After init. */
void tier_test_tierd_secure(tier_test_tierd *t, const char *tokens_file);
/* Client options for it: its CA and server name, and token (may be NULL). */
tier_client_opts tier_test_tierd_opts(const tier_test_tierd *t, const char *token);
/* Spawns tierd --listen L --push P [extra...] (extra NULL-terminated, may
 * be NULL) and waits until it answers Health; fails the test with the log
 * if it does not. */
void tier_test_tierd_start(tier_test_tierd *t, char *const extra[]);
/* kill(sig) and wait up to timeout_ms; returns the exit status as
 * tier_test_wait does (-1: still running). */
int tier_test_tierd_stop(tier_test_tierd *t, int sig, int timeout_ms);
/* Spawns tier-worker --id id against t (its URLs and environment), allowed
 * the comma-separated level directories dirs, logging to logpath. */
pid_t tier_test_worker_start(const tier_test_tierd *t, const char *id, const char *dirs,
                             const char *logpath);

/* ---- invariants of a quiet tiering run (testenv_invariants.c) */

/* What a test knows of one content: what it wrote, what it was told.  The
 * invariants are I1..I7 of docs/CRASH.md. */
#define TIER_TEST_MAX_FENCES 64
typedef struct {
    int64_t cid;
    char filename[64];
    char initial_level[33]; /* its level when the test began */
    uint64_t sum;           /* tier_test_checksum of the bytes written */
    bool reported;          /* a report for it was acknowledged OK ... */
    int64_t last_count;     /* ... and the last such report had this count */
    char held_at[33];       /* "" or the level an acknowledged CancelJob kept it on,
                               after the last report (overrides last_count, I4) */
    char history[128];      /* "" or the exact levels it went through, "bronze>silver" */
    bool may_fail;          /* a "failed" job for it is expected (I6) */
    size_t nfences;         /* fences seen, in the order seen (I7) */
    uint64_t fences[TIER_TEST_MAX_FENCES];
    bool claimed[TIER_TEST_MAX_FENCES]; /* fences[i] came from a ClaimJob reply */
} tier_test_content;

/* FNV-1a 64 of bytes (I2). */
uint64_t tier_test_checksum(const void *p, size_t n);
/* Records a fence seen in a ClaimJob reply (claim) or a GetJob reply. */
void tier_test_saw_fence(tier_test_content *c, uint64_t fence, bool claim);
/* Checks I1..I7 for contents v[0..n) from outside: my (a MYSQL * on the
 * test's database), redis (a redisContext *), the Redis key prefix and the
 * storage root (every directory under it is searched too, beside the level
 * table's).  Returns the number of violations; each is one line in msg
 * ("I1 cid 3: ..."), truncated to len.  Not reentrant (nftw). */
int tier_test_check_invariants(void *my, void *redis, const char *prefix, const char *root,
                               const tier_test_content *v, size_t n, char *msg, size_t len);

#endif
