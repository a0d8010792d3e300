/*
 * test_install.c -- `cmake --install` and what it installs, used the way an
 * outside user would: into a DESTDIR with prefix /usr, then an external
 * program built against it with pkg-config (libtier.so and libtier.a) and
 * a CMake project with find_package(tier); the exports of libtier.so
 * against its installed headers; the systemd units (systemd-analyze
 * verify).  And the daemons' side of systemd: a tierd under a fake
 * NOTIFY_SOCKET says READY=1, pings the watchdog and says STOPPING=1.
 *
 * The build tree under test is the one this program was built in
 * (TIER_BIN_DIR/..); the install steps only copy, they build nothing.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "tier_testenv.h"

/* The sanitizer build's libtier is instrumented: programs built against
 * it must be too (tests/CMakeLists.txt sets this under TIER_SANITIZE). */
#ifndef EXT_CFLAGS
#define EXT_CFLAGS ""
#endif

#define OUT_MAX 65536

static char out[OUT_MAX];

/* Runs cmd with /bin/sh; its output in out.  Returns the exit status. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    cr_assert(n > 0 && (size_t)n < sizeof(cmd), "command too long");
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    return tier_test_run(argv, NULL, out, sizeof(out), 300000);
}

/* A fresh DESTDIR with the build tree installed under /usr in it. */
static char *install_tree(void)
{
    char *dest = tier_test_tmpdir();
    int st = sh("DESTDIR='%s/root' cmake --install '%s/..' --prefix /usr", dest, TIER_BIN_DIR);
    cr_assert_eq(st, 0, "cmake --install: %d: %s", st, out);
    return dest;
}

static void assert_exists(const char *dest, const char *rel)
{
    char path[1024];
    struct stat sb;

    snprintf(path, sizeof(path), "%s/root%s", dest, rel);
    cr_assert_eq(lstat(path, &sb), 0, "not installed: %s", rel);
}

static void write_text(const char *dest, const char *name, const char *text)
{
    char path[1024];

    snprintf(path, sizeof(path), "%s/%s", dest, name);
    cr_assert(tier_test_write_file(path, text, strlen(text)), "cannot write %s", path);
}

/* The environment that makes pkg-config and the dynamic linker look into
 * the DESTDIR first (and the system for libprotobuf-c). */
#define PKGENV                                                                                     \
    "export PKG_CONFIG_PATH='%1$s/root/usr/lib/pkgconfig' PKG_CONFIG_SYSROOT_DIR='%1$s/root' "     \
    "LD_LIBRARY_PATH='%1$s/root/usr/lib'; cd '%1$s' && "

Test(install, installs_programs_library_headers_and_package_files)
{
    static const char *const files[] = {
        "/usr/sbin/tierd",
        "/usr/sbin/tier-worker",
        "/usr/bin/tierctl",
        "/usr/lib/libtier.so",
        "/usr/lib/libtier.so.1",
        "/usr/lib/libtier.so.0.9.0",
        "/usr/lib/libtier.a",
        "/usr/include/tier/tier_client.h",
        "/usr/include/tier/tier_rpc.h",
        "/usr/include/tier/tier_status.h",
        "/usr/include/tier/tier_token.h",
        "/usr/include/tier/rpc.pb-c.h",
        "/usr/include/tier/tier.pb-c.h",
        "/usr/lib/pkgconfig/tier.pc",
        "/usr/lib/cmake/tier/tierConfig.cmake",
        "/usr/lib/cmake/tier/tierConfigVersion.cmake",
        "/usr/lib/cmake/tier/tierTargets.cmake",
        "/usr/lib/systemd/system/tierd.service",
        "/usr/lib/systemd/system/tier-worker@.service",
        "/usr/lib/sysusers.d/tier.conf",
        "/usr/share/man/man8/tierd.8",
        "/usr/share/man/man8/tier-worker.8",
        "/usr/share/man/man1/tierctl.1",
        "/usr/share/doc/tier/tierd.conf.example",
        "/usr/share/doc/tier/INSTALL.md",
    };
    char *dest = install_tree();

    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        assert_exists(dest, files[i]);
    cr_assert_eq(sh("readelf -d '%s/root/usr/lib/libtier.so'", dest), 0, "%s", out);
    cr_assert(strstr(out, "Library soname: [libtier.so.1]") != NULL, "SONAME: %s", out);
    cr_assert_eq(sh("readlink '%s/root/usr/lib/libtier.so'", dest), 0);
    cr_assert(strncmp(out, "libtier.so.1", 12) == 0, "libtier.so -> %s", out);
    cr_assert_eq(
        sh("grep -q '^ExecStart=/usr/sbin/tierd ' '%s/root/usr/lib/systemd/system/"
           "tierd.service' && grep -q '^Version: 0.9.0' '%s/root/usr/lib/pkgconfig/tier.pc'",
           dest, dest),
        0, "units and tier.pc name the install prefix");
    cr_assert_eq(sh("grep -q 'EXIT STATUS' '%s/root/usr/share/man/man8/tierd.8'", dest), 0,
                 "tierd.8 has its EXIT STATUS section");
    tier_test_rmtree(dest);
    free(dest);
}

/* Every function the installed headers declare (that libtier implements)
 * is exported; the internal layers are not. */
Test(install, libtier_exports_its_headers_and_nothing_internal)
{
    char *dest = install_tree();
    int st = sh("cd '%s/root/usr' && nm -D --defined-only lib/libtier.so | awk '{print $3}' | "
                "sed 's/@.*//' | sort -u > exported && "
                "cat include/tier/tier_client.h include/tier/tier_status.h "
                "include/tier/tier_token.h | grep -oE '^[a-z_ ]+[ *]tier_[a-z_]+\\(' | "
                "grep -oE 'tier_[a-z_]+\\($' | tr -d '(' | sort -u > declared && "
                "comm -23 declared exported",
                dest);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert_str_empty(out, "declared but not exported: %s", out);
    cr_assert_eq(
        sh("cd '%s/root/usr' && grep -c . declared && grep -q '^tier__rpc__health_request__"
           "descriptor$' exported && ! grep -E '^tier_(rpc|log|pool|wire|crash)' exported",
           dest),
        0, "exports: %s", out);
    cr_assert_gt(atoi(out), 30, "the header check saw the declarations: %s", out);
    tier_test_rmtree(dest);
    free(dest);
}

/* The external program: the header's example, against a dead address. */
static const char prog_c[] =
    "#include <stdio.h>\n"
    "#include <string.h>\n"
    "#include <tier_client.h>\n"
    "#include <tier_token.h>\n"
    "int main(int argc, char **argv)\n"
    "{\n"
    "    tier_client *c;\n"
    "    tier_error err = {0};\n"
    "    Tier__Rpc__HealthRequest req = TIER__RPC__HEALTH_REQUEST__INIT;\n"
    "    Tier__Rpc__HealthReply *rep = NULL;\n"
    "    char tok[TIER_TOKEN_MAX + 1], msg[256];\n"
    "    if (argc != 2 || strcmp(tier_status_name(TIER_NOT_FOUND), \"NOT_FOUND\") != 0)\n"
    "        return 10;\n"
    "    if (tier_token_find(NULL, tok, sizeof(tok), msg, sizeof(msg)) != TIER_OK)\n"
    "        return 11;\n"
    "    if (tier_client_open(&c, argv[1]) != TIER_OK)\n"
    "        return 12;\n"
    "    tier_client_set_timeout(c, 300);\n"
    "    int rv = tier_health(c, &req, &rep, &err);\n"
    "    printf(\"health: %s: %s\\n\", tier_status_name(rv), err.message);\n"
    "    tier_client_close(c);\n"
    "    return rv == TIER_UNAVAILABLE ? 0 : 13;\n"
    "}\n";

Test(install, external_program_builds_with_pkg_config_shared_and_static)
{
    char *dest = install_tree(), url[128];

    tier_test_dead_url(url, sizeof(url));
    write_text(dest, "prog.c", prog_c);
    int st = sh(PKGENV "cc " EXT_CFLAGS " -std=c11 -Wall -Werror -o prog prog.c "
                       "$(pkg-config --cflags --libs tier) "
                       "&& ./prog '%2$s' && readelf -d prog | grep -q 'NEEDED.*libtier.so.1'",
                dest, url);
    cr_assert_eq(st, 0, "shared: %d: %s", st, out);
    cr_assert(strstr(out, "health: UNAVAILABLE") != NULL, "%s", out);
    /* libtier.a with Libs.private: no libtier.so needed at run time. */
    st = sh(PKGENV "cc " EXT_CFLAGS " -std=c11 -o prog_static prog.c $(pkg-config --cflags tier) "
                   "$(pkg-config --static --libs tier | sed 's/-ltier /-l:libtier.a /') && "
                   "! readelf -d prog_static | grep -q libtier && unset LD_LIBRARY_PATH && "
                   "./prog_static '%2$s'",
            dest, url);
    cr_assert_eq(st, 0, "static: %d: %s", st, out);
    tier_test_rmtree(dest);
    free(dest);
}

static const char cmake_lists[] = "cmake_minimum_required(VERSION 3.18)\n"
                                  "project(uses_tier C)\n"
                                  "find_package(tier 0.9 REQUIRED)\n"
                                  "add_executable(prog prog.c)\n"
                                  "target_link_libraries(prog PRIVATE tier::tier)\n"
                                  "add_executable(prog_static prog.c)\n"
                                  "target_link_libraries(prog_static PRIVATE tier::tier_static)\n";

Test(install, external_cmake_project_finds_the_package)
{
    char *dest = install_tree(), url[128];

    tier_test_dead_url(url, sizeof(url));
    write_text(dest, "prog.c", prog_c);
    write_text(dest, "CMakeLists.txt", cmake_lists);
    int st = sh(PKGENV "cmake -S . -B b -DCMAKE_PREFIX_PATH='%1$s/root/usr' "
                       "-DCMAKE_C_FLAGS='" EXT_CFLAGS "' >/dev/null && "
                       "cmake --build b >/dev/null && ./b/prog '%2$s' && ./b/prog_static '%2$s'",
                dest, url);
    cr_assert_eq(st, 0, "find_package(tier): %d: %s", st, out);
    tier_test_rmtree(dest);
    free(dest);
}

/* The units as systemd reads them, pointed at the installed binaries. */
Test(install, systemd_units_verify)
{
    char *dest = install_tree();
    int st = sh("cd '%1$s' && sed 's#/usr/sbin/#%1$s/root/usr/sbin/#' "
                "root/usr/lib/systemd/system/tierd.service > tierd.service && "
                "sed 's#/usr/sbin/#%1$s/root/usr/sbin/#' "
                "root/usr/lib/systemd/system/tier-worker@.service > tier-worker@w1.service && "
                "systemd-analyze verify --man=no ./tierd.service ./tier-worker@w1.service",
                dest);
    cr_assert_eq(st, 0, "systemd-analyze verify: %d: %s", st, out);
    cr_assert(strstr(out, "tier") == NULL, "warnings: %s", out);
    tier_test_rmtree(dest);
    free(dest);
}

/* ---- sd_notify: a unix datagram socket standing in for systemd */

static int notify_socket(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct timeval tv = {.tv_sec = 1};
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    cr_assert(fd >= 0 && strlen(path) < sizeof(sa.sun_path), "socket %s", path);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "bind %s", path);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Reads messages until one holds want, for at most about 60 s; every
 * message read is appended to seen.  Whether want came. */
static bool wait_for(int fd, const char *want, char *seen, size_t len)
{
    char msg[1024];

    for (int i = 0; i < 600; i++) {
        ssize_t n = recv(fd, msg, sizeof(msg) - 1, 0);
        if (n < 0) {
            i += 9; /* a second without a message */
            continue;
        }
        msg[n] = '\0';
        size_t used = strlen(seen);
        snprintf(seen + used, len - used, "[%s]", msg);
        if (strstr(msg, want) != NULL)
            return true;
    }
    return false;
}

/* Waits (up to timeout_ms) for pid to exit while reading and dropping
 * notifications: like systemd, which always reads, so the watchdog thread
 * never finds the socket's short queue full.  Its exit status, or -1. */
static int wait_draining(int fd, pid_t pid, int timeout_ms)
{
    char msg[1024];
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        int st = tier_test_wait(pid, 0);
        if (st != -1)
            return st;
        while (recv(fd, msg, sizeof(msg), MSG_DONTWAIT) > 0)
            ;
        usleep(50 * 1000);
    }
    return -1;
}

typedef struct {
    tier_test_mysql m;
    char *dir;
    char sock[256];
    int fd;
    char seen[OUT_MAX];
} notify_env;

static void notify_env_init(notify_env *e)
{
    memset(e, 0, sizeof(*e));
    tier_test_mysql_env(&e->m);
    tier_test_db_create(&e->m, NULL);
    e->dir = tier_test_tmpdir();
    snprintf(e->sock, sizeof(e->sock), "%s/notify", e->dir);
    e->fd = notify_socket(e->sock);
}

static void notify_env_fini(notify_env *e)
{
    close(e->fd);
    tier_test_db_drop(&e->m);
    tier_test_rmtree(e->dir);
    free(e->dir);
}

Test(notify, tierd_says_ready_pings_the_watchdog_and_says_stopping)
{
    notify_env e;
    tier_test_tierd t;

    notify_env_init(&e);
    tier_test_tierd_init(&t, e.dir, e.m.db, NULL);
    tier_test_tierd_setenv_services(&t, &e.m, -1, -1);
    tier_test_tierd_setenv(&t, "NOTIFY_SOCKET=%s", e.sock);
    /* No WATCHDOG_PID: the pid is known only after the fork, and
     * sd_watchdog_enabled takes an unset one as "this process". */
    tier_test_tierd_setenv(&t, "WATCHDOG_USEC=400000");
    tier_test_tierd_start(&t, NULL);
    cr_assert(wait_for(e.fd, "READY=1", e.seen, sizeof(e.seen)), "no READY=1: %s", e.seen);
    cr_assert(strstr(e.seen, "STATUS=writer: serving on ") != NULL, "%s", e.seen);
    cr_assert(wait_for(e.fd, "WATCHDOG=1", e.seen, sizeof(e.seen)), "no WATCHDOG=1: %s", e.seen);
    cr_assert(wait_for(e.fd, "WATCHDOG=1", e.seen, sizeof(e.seen)), "one ping only: %s", e.seen);
    cr_assert_eq(tier_test_tierd_stop(&t, SIGTERM, 20000), 0);
    cr_assert(wait_for(e.fd, "STOPPING=1", e.seen, sizeof(e.seen)), "no STOPPING=1: %s", e.seen);
    notify_env_fini(&e);
}

/* A hot standby is not ready: it says what it waits for instead. */
Test(notify, standby_says_so_in_its_status_and_is_not_ready)
{
    notify_env e;
    tier_test_tierd w, s;
    char prefix[64];

    notify_env_init(&e);
    snprintf(prefix, sizeof(prefix), "tn%d:", (int)getpid());
    tier_test_tierd_init(&w, NULL, e.m.db, prefix);
    tier_test_tierd_setenv_services(&w, &e.m, -1, -1);
    tier_test_tierd_start(&w, NULL);
    tier_test_tierd_init(&s, e.dir, e.m.db, prefix);
    tier_test_tierd_setenv_services(&s, &e.m, -1, -1);
    tier_test_tierd_setenv(&s, "NOTIFY_SOCKET=%s", e.sock);
    char *bin = tier_test_bin("tierd");
    char *argv[] = {bin, "--listen", s.listen, "--push", s.push, NULL};
    s.pid = tier_test_spawn(argv, s.envp, s.log);
    cr_assert(s.pid > 0);
    cr_assert(
        wait_for(e.fd, "STATUS=standby: waiting for the writer lease", e.seen, sizeof(e.seen)),
        "no standby status: %s", e.seen);
    cr_assert(strstr(e.seen, "READY=1") == NULL, "a standby said READY=1: %s", e.seen);
    cr_assert_eq(tier_test_tierd_stop(&s, SIGTERM, 20000), 0);
    cr_assert(wait_for(e.fd, "STOPPING=1", e.seen, sizeof(e.seen)), "no STOPPING=1: %s", e.seen);
    cr_assert(strstr(e.seen, "READY=1") == NULL, "a standby said READY=1: %s", e.seen);
    cr_assert_eq(tier_test_tierd_stop(&w, SIGTERM, 20000), 0);
    free(bin);
    notify_env_fini(&e);
}

/* tier-worker: READY=1 at once (it reaches tierd in the background, here
 * never), watchdog pings, STOPPING=1 on SIGTERM.  env -i: none of the
 * test run's TIER_* settings, and the same pid (env execs). */
Test(notify, worker_says_ready_pings_the_watchdog_and_says_stopping)
{
    char *dir = tier_test_tmpdir(), sock[256], log[512], seen[OUT_MAX] = "";
    char url[128], pull[128], env_sock[300];
    char *bin = tier_test_bin("tier-worker");

    snprintf(sock, sizeof(sock), "%s/notify", dir);
    snprintf(log, sizeof(log), "%s/worker.log", dir);
    snprintf(env_sock, sizeof(env_sock), "NOTIFY_SOCKET=%s", sock);
    tier_test_dead_url(url, sizeof(url));
    tier_test_dead_url(pull, sizeof(pull));
    int fd = notify_socket(sock);
    char *argv[] = {
        "/usr/bin/env", "-i", env_sock, "WATCHDOG_USEC=400000", bin, "--tierd", url, "--pull", pull,
        "--id",         "w1", NULL};
    pid_t pid = tier_test_spawn(argv, NULL, log);
    cr_assert(pid > 0);
    cr_assert(wait_for(fd, "READY=1", seen, sizeof(seen)), "no READY=1: %s", seen);
    cr_assert(wait_for(fd, "WATCHDOG=1", seen, sizeof(seen)), "no WATCHDOG=1: %s", seen);
    kill(pid, SIGTERM);
    /* Read on while it stops: the socket's queue is short (10 datagrams),
     * and a full one blocks the sender, as a real systemd never lets it. */
    cr_assert(wait_for(fd, "STOPPING=1", seen, sizeof(seen)), "no STOPPING=1: %s", seen);
    cr_assert_eq(wait_draining(fd, pid, 20000), 0);
    close(fd);
    free(bin);
    tier_test_rmtree(dir);
    free(dir);
}

/* packaging/tierd.conf.example names only keys tierd accepts: with every
 * commented key switched on too (but no_auth, which excludes auth_tokens)
 * tierd gets past its configuration, to the tokens file it names. */
Test(install, example_config_is_accepted)
{
    int st = sh("sed 's/^#\\([a-z_]* =\\)/\\1/' '%s/packaging/tierd.conf.example' | "
                "grep -v '^no_auth' > /tmp/tier-example-%d.conf && "
                "env -i PATH=\"$PATH\" '%s/tierd' --config /tmp/tier-example-%d.conf; "
                "st=$?; rm -f /tmp/tier-example-%d.conf; exit $st",
                TIER_SOURCE_DIR, (int)getpid(), TIER_BIN_DIR, (int)getpid(), (int)getpid());
    cr_assert_eq(st, 1, "tierd: %d: %s", st, out);
    cr_assert(strstr(out, "unknown key") == NULL && strstr(out, "expected key") == NULL, "%s", out);
    cr_assert(strstr(out, "cannot read tokens file /etc/tier/tokens") != NULL, "%s", out);
}
