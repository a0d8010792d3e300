/*
 * testenv.c -- free ports, temporary directories and child processes for
 * the tests (see tier_testenv.h).  Every name a test makes carries its pid
 * and a counter, so two test runs on one machine never collide.
 */
#include "tier_testenv.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

static atomic_int counter;

int tier_test_free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port = -1;

    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

void tier_test_dead_url(char *buf, size_t len)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    /* Bound, never listening, never closed: connections are refused, and no
     * other test can listen there while this process lives (a port merely
     * free a moment ago could become another test's tierd). */
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        snprintf(buf, len, "tcp://127.0.0.1:1");
        return;
    }
    snprintf(buf, len, "tcp://127.0.0.1:%d", ntohs(a.sin_port));
}

void tier_test_tcp_url(char *buf, size_t len)
{
    snprintf(buf, len, "tcp://127.0.0.1:%d", tier_test_free_port());
}

void tier_test_ipc_url(char *buf, size_t len)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(buf, len, "ipc://%s/tier-test-%d-%d.sock", tmp ? tmp : "/tmp", (int)getpid(),
             atomic_fetch_add(&counter, 1));
}

char *tier_test_tmpdir(void)
{
    const char *tmp = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof(path), "%s/tier-test-%d-XXXXXX", tmp ? tmp : "/tmp", (int)getpid());
    if (mkdtemp(path) == NULL)
        return NULL;
    return strdup(path);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void tier_test_rmtree(const char *path)
{
    if (path != NULL)
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *tier_test_bin(const char *name)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", TIER_BIN_DIR, name);
    return strdup(path);
}

/* A test talks to servers that tests kill: a write to a socket whose peer
 * died must be an error (EPIPE) the test sees, not a SIGPIPE that kills the
 * test process ("CRASH!").  hiredis does not ask for MSG_NOSIGNAL. */
__attribute__((constructor)) static void ignore_sigpipe(void)
{
    signal(SIGPIPE, SIG_IGN);
}

/* ---- children
 *
 * Every child a test spawns is remembered until tier_test_wait reaps it:
 * tier_test_kill_children (a suite's .fini) kills what a failed test left
 * running.  A pid stays in the table until it is reaped, so it cannot have
 * been reused by another process when it is killed.
 *
 * In the ASan+UBSan build a child that hits a sanitizer report writes it to
 * its log and aborts; the log then vanishes with the test's temporary
 * directory and the test may pass anyway.  So each child's log is looked at
 * when it is reaped: a report there fails the test, quoting it. */

#define CHILDREN 512

static struct {
    pid_t pid;
    char log[512];
} children[CHILDREN];
static pthread_mutex_t children_mu = PTHREAD_MUTEX_INITIALIZER;

void tier_test_track_child(pid_t pid, const char *log)
{
    pthread_mutex_lock(&children_mu);
    for (size_t i = 0; i < CHILDREN; i++) {
        if (children[i].pid == 0) {
            children[i].pid = pid;
            snprintf(children[i].log, sizeof(children[i].log), "%s", log ? log : "");
            break;
        }
    }
    pthread_mutex_unlock(&children_mu);
}

/* The log of pid (forgotten), or "" if it had none. */
static void child_take(pid_t pid, char *log, size_t len)
{
    log[0] = '\0';
    pthread_mutex_lock(&children_mu);
    for (size_t i = 0; i < CHILDREN; i++) {
        if (children[i].pid == pid) {
            snprintf(log, len, "%s", children[i].log);
            children[i].pid = 0;
            break;
        }
    }
    pthread_mutex_unlock(&children_mu);
}

static const char *const SANITIZER_MARKS[] = {
    "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
    "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer", "WARNING: ThreadSanitizer"};

/* The first sanitizer report in text, or NULL. */
const char *tier_test_sanitizer_report(const char *text)
{
    const char *first = NULL;
    for (size_t i = 0; text != NULL && i < sizeof(SANITIZER_MARKS) / sizeof(*SANITIZER_MARKS);
         i++) {
        const char *p = strstr(text, SANITIZER_MARKS[i]);
        if (p != NULL && (first == NULL || p < first))
            first = p;
    }
    return first;
}

void tier_test_kill_children(void)
{
    pid_t pids[CHILDREN];
    size_t n = 0;

    pthread_mutex_lock(&children_mu);
    for (size_t i = 0; i < CHILDREN; i++)
        if (children[i].pid > 0)
            pids[n++] = children[i].pid;
    pthread_mutex_unlock(&children_mu);
    for (size_t i = 0; i < n; i++) {
        kill(pids[i], SIGKILL);
        tier_test_wait(pids[i], 5000);
    }
}

static void check_child_log(pid_t pid)
{
    char log[512];
    char *text;
    const char *rep;

    child_take(pid, log, sizeof(log));
    if (log[0] == '\0' || (text = tier_test_slurp(log, NULL)) == NULL)
        return;
    if ((rep = tier_test_sanitizer_report(text)) != NULL) {
        const char *from = rep - text > 200 ? rep - 200 : text;
        cr_assert_fail("sanitizer report in child %d (%s):\n%.3000s", (int)pid, log, from);
    }
    free(text);
}

pid_t tier_test_spawn(char *const argv[], char *const envp[], const char *logpath)
{
    pid_t pid = fork();

    if (pid > 0)
        tier_test_track_child(pid, logpath);
    if (pid != 0)
        return pid;
    /* A test that fails (or crashes) mid-way must not leave its servers
     * running: they die with the test process. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (logpath != NULL) {
        int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
    }
    for (size_t i = 0; envp != NULL && envp[i] != NULL; i++)
        putenv(envp[i]);
    execv(argv[0], argv);
    _exit(127);
}

int tier_test_wait(pid_t pid, int timeout_ms)
{
    for (int waited = 0;; waited += 5) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            check_child_log(pid);
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        if (r < 0 || waited >= timeout_ms)
            return -1;
        struct timespec ts = {0, 5 * 1000000};
        nanosleep(&ts, NULL);
    }
}

int tier_test_run(char *const argv[], char *const envp[], char *out, size_t outlen, int timeout_ms)
{
    int fds[2];
    pid_t pid;
    size_t used = 0;
    int st;

    if (pipe(fds) != 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        for (size_t i = 0; envp != NULL && envp[i] != NULL; i++)
            putenv(envp[i]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    for (;;) {
        char buf[4096];
        ssize_t n = read(fds[0], buf, sizeof(buf));
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n && used + 1 < outlen; i++)
            out[used++] = buf[i];
    }
    if (outlen > 0)
        out[used] = '\0';
    close(fds[0]);
    st = tier_test_wait(pid, timeout_ms);
    if (st < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    const char *rep = tier_test_sanitizer_report(out);
    cr_assert(rep == NULL, "sanitizer report in %s:\n%.3000s", argv[0], rep ? rep : "");
    return st;
}

char *tier_test_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf != NULL) {
        buf[n] = '\0';
        if (len != NULL)
            *len = (size_t)n;
    }
    return buf;
}

bool tier_test_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    bool ok;

    if (f == NULL)
        return false;
    ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}
