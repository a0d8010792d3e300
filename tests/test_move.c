/*
 * test_move.c -- worker/tier_move: moves within and across filesystems,
 * every retry state, crashes at every step (fork + _exit from the test
 * hook, the in-process equivalent of kill -9), hostile names, errors, and
 * many concurrent attempts at the same job.
 *
 * Level directories live under /tmp (disk) and /dev/shm (tmpfs) so that a
 * move between them really crosses filesystems; setup fails loudly if they
 * turn out to be the same filesystem rather than silently testing less.
 */
#include "tier_move.h"
#include "tier_name.h"
#include "tier_status.h"

#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char root_tmp[PATH_MAX], root_shm[PATH_MAX];
static char bronze[PATH_MAX]; /* source, on /tmp */
static char silver[PATH_MAX]; /* same filesystem as bronze */
static char gold[PATH_MAX];   /* /dev/shm: another filesystem */

/* ---- helpers */

static void make_root(char *out, const char *base)
{
    snprintf(out, PATH_MAX, "%s/tier-move-XXXXXX", base);
    cr_assert_not_null(mkdtemp(out), "mkdtemp %s: %s", out, strerror(errno));
    cr_assert_eq(chmod(out, 0755), 0);
}

static void make_dir(char *out, const char *root, const char *name)
{
    snprintf(out, PATH_MAX, "%s/%s", root, name);
    cr_assert_eq(mkdir(out, 0755), 0, "mkdir %s: %s", out, strerror(errno));
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rmtree(const char *path)
{
    if (path[0] != '\0')
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
    struct stat a, b;

    make_root(root_tmp, "/tmp");
    make_root(root_shm, "/dev/shm");
    make_dir(bronze, root_tmp, "bronze");
    make_dir(silver, root_tmp, "silver");
    make_dir(gold, root_shm, "gold");
    cr_assert_eq(stat(bronze, &a), 0);
    cr_assert_eq(stat(gold, &b), 0);
    cr_assert_neq(a.st_dev, b.st_dev,
                  "/tmp and /dev/shm are the same filesystem here: the cross-filesystem "
                  "tests would not cross anything");
}

static void teardown(void)
{
    tier_move_test_hook = NULL;
    rmtree(root_tmp);
    rmtree(root_shm);
}

TestSuite(move, .init = setup, .fini = teardown, .timeout = 300);

static char *path_of(const char *dir, const char *name)
{
    static char buf[4][PATH_MAX + 300];
    static int next;
    char *p = buf[next++ % 4];

    snprintf(p, sizeof(buf[0]), "%s/%s", dir, name);
    return p;
}

static int exists(const char *dir, const char *name)
{
    struct stat st;

    return fstatat(AT_FDCWD, path_of(dir, name), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* A file of pseudo-random bytes (xorshift from seed); returns the bytes. */
static unsigned char *make_file(const char *dir, const char *name, size_t size, uint64_t seed)
{
    unsigned char *buf = malloc(size ? size : 1);
    uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
    FILE *f;

    cr_assert_not_null(buf);
    for (size_t i = 0; i < size; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (unsigned char)(x >> 24);
    }
    f = fopen(path_of(dir, name), "wb");
    cr_assert_not_null(f, "create %s/%s: %s", dir, name, strerror(errno));
    cr_assert_eq(fwrite(buf, 1, size, f), size);
    cr_assert_eq(fclose(f), 0);
    return buf;
}

static void assert_file(const char *dir, const char *name, const unsigned char *want, size_t size)
{
    FILE *f = fopen(path_of(dir, name), "rb");
    unsigned char *got = malloc(size + 1);
    size_t n;

    cr_assert_not_null(f, "%s/%s missing", dir, name);
    n = fread(got, 1, size + 1, f);
    fclose(f);
    cr_assert_eq(n, size, "%s/%s has %zu bytes, want %zu", dir, name, n, size);
    cr_assert_eq(memcmp(got, want, size), 0, "%s/%s bytes differ", dir, name);
    free(got);
}

/* Number of entries in dir other than . and ..; temporaries counted apart. */
static int count_entries(const char *dir, int *temps)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    cr_assert_not_null(d);
    if (temps)
        *temps = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        n++;
        if (temps && strncmp(de->d_name, TIER_MOVE_TMP_PREFIX, strlen(TIER_MOVE_TMP_PREFIX)) == 0)
            (*temps)++;
    }
    closedir(d);
    return n;
}

static int temps_in(const char *dir)
{
    int t;

    count_entries(dir, &t);
    return t;
}

static int move(const char *src, const char *dst, const char *name, tier_move_result *res)
{
    tier_move_spec spec = {.src_dir = src, .dst_dir = dst, .filename = name};
    int rc = tier_move_file(&spec, NULL, NULL, res);

    cr_assert_eq(rc, res->code, "return value %d but result code %d", rc, res->code);
    return rc;
}

#define assert_code(res, want, perm)                                                               \
    do {                                                                                           \
        cr_assert_eq((res).code, (want), "code %s (%s), want %s", tier_status_name((res).code),    \
                     (res).reason, tier_status_name(want));                                        \
        cr_assert_eq((res).permanent, (perm), "permanent=%d for %s", (res).permanent,              \
                     (res).reason);                                                                \
    } while (0)

/* ---- the test hook: fault injection, crash simulation, side effects */

static struct {
    const char *step;
    int err;
} faults[4];
static const char *crash_at;
static const char *act_at;
static void (*act)(void);

static int test_hook(const char *step)
{
    if (crash_at != NULL && strcmp(step, crash_at) == 0)
        _exit(42); /* like kill -9: no cleanup, no unwinding */
    if (act_at != NULL && strcmp(step, act_at) == 0 && act != NULL)
        act();
    for (int i = 0; i < 4; i++)
        if (faults[i].step != NULL && strcmp(step, faults[i].step) == 0)
            return faults[i].err;
    return 0;
}

static void inject(const char *step, int err)
{
    for (int i = 0; i < 4; i++)
        if (faults[i].step == NULL) {
            faults[i].step = step;
            faults[i].err = err;
            tier_move_test_hook = test_hook;
            return;
        }
    cr_assert_fail("too many faults");
}

static void clear_faults(void)
{
    memset(faults, 0, sizeof(faults));
    crash_at = NULL;
    act_at = NULL;
    act = NULL;
}

/* ---- plain moves */

Test(move, same_fs_move)
{
    tier_move_result res;
    unsigned char *data = make_file(bronze, "a.mp4", 100000, 1);

    cr_assert_eq(move(bronze, silver, "a.mp4", &res), TIER_OK, "%s", res.reason);
    cr_assert_eq(res.crossed_fs, 0);
    cr_assert_not(exists(bronze, "a.mp4"));
    assert_file(silver, "a.mp4", data, 100000);
    cr_assert_eq(count_entries(silver, NULL), 1);
    free(data);
}

/* defer_dir_sync: a plain rename leaves the directory fsyncs to the caller
 * and says so; a copy across filesystems never does. */
Test(move, deferred_directory_sync)
{
    tier_move_result res;
    unsigned char *a = make_file(bronze, "a.mp4", 1000, 11);
    unsigned char *b = make_file(bronze, "b.mp4", 1000, 12);
    tier_move_spec spec = {bronze, silver, "a.mp4", 1};
    char why[256];

    cr_assert_eq(tier_move_file(&spec, NULL, NULL, &res), TIER_OK, "%s", res.reason);
    cr_assert_eq(res.dirs_unsynced, 1);
    assert_file(silver, "a.mp4", a, 1000);
    cr_assert_eq(tier_move_sync_dir(silver, why, sizeof(why)), TIER_OK, "%s", why);
    cr_assert_eq(tier_move_sync_dir(bronze, why, sizeof(why)), TIER_OK, "%s", why);
    cr_assert_eq(tier_move_sync_dir(path_of(bronze, "missing"), why, sizeof(why)),
                 TIER_FAILED_PRECONDITION);

    tier_move_spec cross = {bronze, gold, "b.mp4", 1};
    cr_assert_eq(tier_move_file(&cross, NULL, NULL, &res), TIER_OK, "%s", res.reason);
    cr_assert_eq(res.crossed_fs, 1);
    cr_assert_eq(res.dirs_unsynced, 0, "a copy syncs its directories itself");
    assert_file(gold, "b.mp4", b, 1000);
    free(a);
    free(b);
}

Test(move, cross_fs_move_keeps_bytes)
{
    tier_move_result res;
    size_t size = (5u << 20) + 12345;
    unsigned char *data = make_file(bronze, "big.mp4", size, 2);
    struct stat before, after;

    cr_assert_eq(chmod(path_of(bronze, "big.mp4"), 0640), 0);
    cr_assert_eq(stat(path_of(bronze, "big.mp4"), &before), 0);
    cr_assert_eq(move(bronze, gold, "big.mp4", &res), TIER_OK, "%s", res.reason);
    cr_assert_eq(res.crossed_fs, 1);
    cr_assert_not(exists(bronze, "big.mp4"));
    assert_file(gold, "big.mp4", data, size);
    cr_assert_eq(count_entries(gold, NULL), 1, "temporary left behind");
    cr_assert_eq(stat(path_of(gold, "big.mp4"), &after), 0);
    cr_assert_eq(after.st_mode & 07777, 0640);
    cr_assert_eq(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
    free(data);
}

Test(move, cross_fs_empty_file)
{
    tier_move_result res;
    unsigned char *data = make_file(bronze, "empty", 0, 3);

    cr_assert_eq(move(bronze, gold, "empty", &res), TIER_OK, "%s", res.reason);
    assert_file(gold, "empty", data, 0);
    cr_assert_not(exists(bronze, "empty"));
    free(data);
}

Test(move, cross_fs_read_write_fallback)
{
    tier_move_result res;
    size_t size = (3u << 20) + 7;
    unsigned char *data = make_file(bronze, "f", size, 4);

    inject("copy_file_range", EXDEV); /* what older kernels say across filesystems */
    cr_assert_eq(move(bronze, gold, "f", &res), TIER_OK, "%s", res.reason);
    assert_file(gold, "f", data, size);
    cr_assert_not(exists(bronze, "f"));
    cr_assert_eq(temps_in(gold), 0);
    free(data);
}

Test(move, rename_flag_refused_falls_back_to_link)
{
    tier_move_result res;
    unsigned char *data = make_file(bronze, "f", 4096, 5);

    inject("rename", EINVAL); /* filesystem without RENAME_NOREPLACE */
    cr_assert_eq(move(bronze, silver, "f", &res), TIER_OK, "%s", res.reason);
    cr_assert(strstr(res.reason, "link") != NULL, "%s", res.reason);
    assert_file(silver, "f", data, 4096);
    cr_assert_not(exists(bronze, "f"));

    /* and the link fallback still refuses to overwrite */
    free(data);
    data = make_file(bronze, "g", 10, 6);
    free(make_file(silver, "g", 11, 7));
    cr_assert_eq(move(bronze, silver, "g", &res), TIER_ALREADY_EXISTS, "%s", res.reason);
    assert_file(bronze, "g", data, 10);
    free(data);
}

Test(move, install_flag_refused_falls_back_to_link)
{
    tier_move_result res;
    unsigned char *data = make_file(bronze, "f", 70000, 8);

    inject("install", EINVAL);
    cr_assert_eq(move(bronze, gold, "f", &res), TIER_OK, "%s", res.reason);
    assert_file(gold, "f", data, 70000);
    cr_assert_eq(count_entries(gold, NULL), 1, "temporary left as a second link");
    cr_assert_not(exists(bronze, "f"));
    free(data);
}

Test(move, longest_name_cross_fs)
{
    tier_move_result res;
    char name[256];
    unsigned char *data;

    memset(name, 'n', 255);
    name[255] = '\0';
    data = make_file(bronze, name, 1000, 9);
    cr_assert_eq(move(bronze, gold, name, &res), TIER_OK, "%s", res.reason);
    assert_file(gold, name, data, 1000);
    free(data);
}

/* ---- progress */

struct prog {
    int calls;
    int stop_at; /* return 1 on this call (1-based); 0 = never */
};

static int on_progress(void *arg)
{
    struct prog *p = arg;

    p->calls++;
    return p->stop_at != 0 && p->calls >= p->stop_at;
}

static void make_sparse(const char *dir, const char *name, off_t size)
{
    free(make_file(dir, name, 4096, 10));
    cr_assert_eq(truncate(path_of(dir, name), size), 0);
}

Test(move, progress_called_during_copy)
{
    tier_move_spec spec = {.src_dir = bronze, .dst_dir = gold, .filename = "p"};
    struct prog p = {0, 0};
    tier_move_result res;

    make_sparse(bronze, "p", (66 << 20));
    cr_assert_eq(tier_move_file(&spec, on_progress, &p, &res), TIER_OK, "%s", res.reason);
    cr_assert_geq(p.calls, 2, "progress called %d times for 66 MiB copied + compared", p.calls);
    cr_assert_not(exists(bronze, "p"));
}

Test(move, progress_abort_leaves_source_and_no_temporary)
{
    tier_move_spec spec = {.src_dir = bronze, .dst_dir = gold, .filename = "p"};
    tier_move_result res;
    struct stat st;

    for (int stop = 1; stop <= 2; stop++) { /* during the copy, during the verification */
        struct prog p = {0, stop};
        make_sparse(bronze, "p", (66 << 20));
        cr_assert_eq(tier_move_file(&spec, on_progress, &p, &res), TIER_ABORTED, "%s", res.reason);
        cr_assert_eq(res.permanent, 0);
        cr_assert_eq(stat(path_of(bronze, "p"), &st), 0);
        cr_assert_eq(st.st_size, 66 << 20);
        cr_assert_eq(count_entries(gold, NULL), 0, "abort left something in the destination");
    }
}

/* ---- retry states */

Test(move, already_at_destination)
{
    tier_move_result res;
    unsigned char *data = make_file(gold, "b.mp4", 500, 11);

    cr_assert_eq(move(bronze, gold, "b.mp4", &res), TIER_OK, "%s", res.reason);
    cr_assert(strstr(res.reason, "already at destination") != NULL, "%s", res.reason);
    assert_file(gold, "b.mp4", data, 500);
    free(data);
}

Test(move, neither_present_is_not_found)
{
    tier_move_result res;

    cr_assert_eq(move(bronze, gold, "b.mp4", &res), TIER_NOT_FOUND);
    assert_code(res, TIER_NOT_FOUND, 1);
    cr_assert_str_eq(res.reason, "b.mp4 not exists");
}

Test(move, hard_link_leftover)
{
    tier_move_result res;
    unsigned char *data = make_file(bronze, "h", 3000, 12);

    cr_assert_eq(link(path_of(bronze, "h"), path_of(silver, "h")), 0);
    cr_assert_eq(move(bronze, silver, "h", &res), TIER_OK, "%s", res.reason);
    cr_assert_not(exists(bronze, "h"));
    assert_file(silver, "h", data, 3000);
    free(data);
}

Test(move, identical_copy_leftover)
{
    tier_move_result res;
    unsigned char *data = make_file(bronze, "c", 200000, 13);

    free(make_file(gold, "c", 200000, 13));
    cr_assert_eq(move(bronze, gold, "c", &res), TIER_OK, "%s", res.reason);
    cr_assert(strstr(res.reason, "identical") != NULL, "%s", res.reason);
    cr_assert_not(exists(bronze, "c"));
    assert_file(gold, "c", data, 200000);
    free(data);
}

Test(move, destination_taken_by_different_file)
{
    tier_move_result res;
    unsigned char *s1 = make_file(bronze, "d", 1000, 14);
    unsigned char *d1 = make_file(gold, "d", 1000, 15); /* same size, other bytes */
    unsigned char *s2 = make_file(bronze, "e", 1000, 16);
    unsigned char *d2 = make_file(silver, "e", 999, 16); /* other size */

    cr_assert_eq(move(bronze, gold, "d", &res), TIER_ALREADY_EXISTS);
    assert_code(res, TIER_ALREADY_EXISTS, 1);
    cr_assert(strstr(res.reason, "destination taken by a different file") != NULL, "%s",
              res.reason);
    assert_file(bronze, "d", s1, 1000);
    assert_file(gold, "d", d1, 1000);
    cr_assert_eq(move(bronze, silver, "e", &res), TIER_ALREADY_EXISTS);
    assert_code(res, TIER_ALREADY_EXISTS, 1);
    assert_file(bronze, "e", s2, 1000);
    assert_file(silver, "e", d2, 999);
    free(s1);
    free(d1);
    free(s2);
    free(d2);
}

/* A concurrent attempt installs the destination between our verification
 * and our rename into place: our NOREPLACE rename gets EEXIST. */
static unsigned char *race_data;
static size_t race_size;
static int race_same;

static void install_competitor(void)
{
    FILE *f = fopen(path_of(gold, "r"), "wb");

    if (race_same)
        fwrite(race_data, 1, race_size, f);
    else
        fputs("someone else", f);
    fclose(f);
}

Test(move, lost_install_race_to_identical_copy)
{
    tier_move_result res;

    race_size = 300000;
    race_data = make_file(bronze, "r", race_size, 17);
    race_same = 1;
    act_at = "verified";
    act = install_competitor;
    tier_move_test_hook = test_hook;
    cr_assert_eq(move(bronze, gold, "r", &res), TIER_OK, "%s", res.reason);
    cr_assert_not(exists(bronze, "r"));
    assert_file(gold, "r", race_data, race_size);
    cr_assert_eq(count_entries(gold, NULL), 1);
    free(race_data);
}

Test(move, lost_install_race_to_different_file)
{
    tier_move_result res;

    race_size = 300000;
    race_data = make_file(bronze, "r", race_size, 18);
    race_same = 0;
    act_at = "verified";
    act = install_competitor;
    tier_move_test_hook = test_hook;
    cr_assert_eq(move(bronze, gold, "r", &res), TIER_ALREADY_EXISTS, "%s", res.reason);
    assert_code(res, TIER_ALREADY_EXISTS, 1);
    assert_file(bronze, "r", race_data, race_size);
    cr_assert_eq(count_entries(gold, NULL), 1, "temporary left after losing the race");
    free(race_data);
}

/* ---- crash at every step, then retry */

static const char *const steps[] = {
    "rename",      "renamed",         "link",         "linked",         "open_tmp",
    "tmp_created", "copy_file_range", "write",        "copied",         "fsync_tmp",
    "verified",    "install",         "install_link", "install_linked", "installed",
    "fsync_dir",   "dst_synced",      "unlink_src",   "src_unlinked",
};

enum { MODE_RENAME, MODE_LINK, MODE_COPY, MODE_COPY_FALLBACKS };

static void set_mode_faults(int mode)
{
    if (mode == MODE_LINK)
        inject("rename", EINVAL);
    if (mode == MODE_COPY_FALLBACKS) {
        inject("copy_file_range", EOPNOTSUPP);
        inject("install", EINVAL);
    }
}

static void crash_and_retry(int mode)
{
    const char *dst = mode == MODE_RENAME || mode == MODE_LINK ? silver : gold;
    size_t size = (1u << 20) + 3;
    int crashed = 0;

    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        tier_move_result res;
        unsigned char *data;
        int status;
        pid_t pid;

        rmtree(path_of(dst, "x"));
        data = make_file(bronze, "x", size, 100 + i);
        clear_faults();
        set_mode_faults(mode);
        crash_at = steps[i];
        tier_move_test_hook = test_hook;
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            tier_move_result r;
            tier_move_spec spec = {.src_dir = bronze, .dst_dir = dst, .filename = "x"};
            _exit(tier_move_file(&spec, NULL, NULL, &r) == TIER_OK ? 0 : 1);
        }
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status));
        cr_assert(WEXITSTATUS(status) == 42 || WEXITSTATUS(status) == 0,
                  "mode %d step %s: child exit %d", mode, steps[i], WEXITSTATUS(status));
        crashed += WEXITSTATUS(status) == 42;

        /* The file is somewhere, whole, at every crash point. */
        cr_assert(exists(bronze, "x") || exists(dst, "x"), "mode %d step %s: file lost", mode,
                  steps[i]);

        /* Retry (same filesystem quirks, no crash) finishes cleanly. */
        crash_at = NULL;
        cr_assert_eq(move(bronze, dst, "x", &res), TIER_OK, "mode %d step %s: retry: %s", mode,
                     steps[i], res.reason);
        cr_assert_not(exists(bronze, "x"), "mode %d step %s: duplicated", mode, steps[i]);
        assert_file(dst, "x", data, size);

        /* Start-up cleanup removes what the crash left; the file stays. */
        cr_assert_eq(tier_move_cleanup_dir(dst, 0), TIER_OK);
        cr_assert_eq(count_entries(dst, NULL), 1, "mode %d step %s", mode, steps[i]);
        assert_file(dst, "x", data, size);
        free(data);
    }
    cr_assert_geq(crashed, 2, "mode %d: only %d crash points reached", mode, crashed);
}

Test(move, crash_at_every_step_rename)
{
    crash_and_retry(MODE_RENAME);
}

Test(move, crash_at_every_step_link_fallback)
{
    crash_and_retry(MODE_LINK);
}

Test(move, crash_at_every_step_cross_fs)
{
    crash_and_retry(MODE_COPY);
}

Test(move, crash_at_every_step_cross_fs_fallbacks)
{
    crash_and_retry(MODE_COPY_FALLBACKS);
}

/* ---- bad input */

Test(move, hostile_names_refused)
{
    static const char *const bad[] = {"../x", "a/b", "", ".", "..", "/etc/passwd", "x/"};
    char longname[257];
    tier_move_result res;

    free(make_file(bronze, "x", 10, 19));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(move(bronze, gold, bad[i], &res), TIER_INVALID_ARGUMENT, "\"%s\": %s", bad[i],
                     res.reason);
        assert_code(res, TIER_INVALID_ARGUMENT, 1);
    }
    memset(longname, 'a', 256);
    longname[256] = '\0';
    cr_assert_eq(move(bronze, gold, longname, &res), TIER_INVALID_ARGUMENT);
    assert_code(res, TIER_INVALID_ARGUMENT, 1);

    /* The spec holds C strings; a NUL inside a name received over the wire
     * is caught by the length-aware check the callers run first. */
    cr_assert_not(tier_name_valid("a\0b", 3));
    cr_assert_not(tier_name_valid("x\0", 2));
    cr_assert(tier_name_valid("x", 1));
    cr_assert_eq(count_entries(gold, NULL), 0);
    cr_assert(exists(bronze, "x"));
}

Test(move, bad_directories)
{
    tier_move_result res;
    tier_move_spec spec = {.src_dir = bronze, .dst_dir = NULL, .filename = "x"};
    char missing[PATH_MAX + 10], notdir[PATH_MAX + 10], samedir[PATH_MAX + 10];
    char link_dir[PATH_MAX + 10];

    free(make_file(bronze, "x", 10, 20));
    cr_assert_eq(tier_move_file(&spec, NULL, NULL, &res), TIER_INVALID_ARGUMENT);
    cr_assert_eq(tier_move_file(NULL, NULL, NULL, NULL), TIER_INVALID_ARGUMENT);

    cr_assert_eq(move("tmp/bronze", gold, "x", &res), TIER_INVALID_ARGUMENT);
    assert_code(res, TIER_INVALID_ARGUMENT, 1);

    snprintf(missing, sizeof(missing), "%s/nope", root_shm);
    cr_assert_eq(move(bronze, missing, "x", &res), TIER_FAILED_PRECONDITION, "%s", res.reason);
    assert_code(res, TIER_FAILED_PRECONDITION, 1);

    snprintf(notdir, sizeof(notdir), "%s/x/sub", bronze); /* inside a file: ENOTDIR */
    cr_assert_eq(move(bronze, notdir, "x", &res), TIER_FAILED_PRECONDITION, "%s", res.reason);
    assert_code(res, TIER_FAILED_PRECONDITION, 1);

    /* A level directory that is a symlink is not followed. */
    snprintf(link_dir, sizeof(link_dir), "%s/gold-link", root_shm);
    cr_assert_eq(symlink(gold, link_dir), 0);
    cr_assert_eq(move(bronze, link_dir, "x", &res), TIER_FAILED_PRECONDITION, "%s", res.reason);
    assert_code(res, TIER_FAILED_PRECONDITION, 1);

    /* Same directory under another spelling: would delete the file. */
    snprintf(samedir, sizeof(samedir), "%s/.", bronze);
    cr_assert_eq(move(bronze, samedir, "x", &res), TIER_INVALID_ARGUMENT, "%s", res.reason);
    cr_assert(exists(bronze, "x"));
    cr_assert_eq(count_entries(gold, NULL), 0);
}

Test(move, symlinks_never_followed)
{
    tier_move_result res;
    unsigned char *target = make_file(root_tmp, "target", 100, 21);

    /* planted as the source */
    cr_assert_eq(symlink(path_of(root_tmp, "target"), path_of(bronze, "s")), 0);
    cr_assert_eq(move(bronze, gold, "s", &res), TIER_FAILED_PRECONDITION, "%s", res.reason);
    assert_code(res, TIER_FAILED_PRECONDITION, 1);
    cr_assert_eq(move(bronze, silver, "s", &res), TIER_FAILED_PRECONDITION, "%s", res.reason);
    cr_assert_eq(count_entries(gold, NULL), 0);
    cr_assert_eq(count_entries(silver, NULL), 0);

    /* planted as the destination */
    free(make_file(bronze, "t", 100, 22));
    cr_assert_eq(symlink(path_of(root_tmp, "target"), path_of(gold, "t")), 0);
    cr_assert_eq(move(bronze, gold, "t", &res), TIER_ALREADY_EXISTS, "%s", res.reason);
    assert_code(res, TIER_ALREADY_EXISTS, 1);
    assert_file(root_tmp, "target", target, 100);
    cr_assert(exists(bronze, "t"));
    free(target);
}

/* ---- errors */

Test(move, permission_denied)
{
    /* Root ignores directory modes, so the attempt runs in a child that
     * drops to nobody when we are root. */
    const char *dsts[2] = {silver, gold};

    cr_assert_eq(chmod(bronze, 0777), 0);
    cr_assert_eq(chmod(silver, 0555), 0);
    cr_assert_eq(chmod(gold, 0555), 0);
    free(make_file(bronze, "x", 5000, 23));
    cr_assert_eq(chmod(path_of(bronze, "x"), 0644), 0);
    for (int i = 0; i < 2; i++) {
        int status;
        pid_t pid = fork();

        cr_assert_geq(pid, 0);
        if (pid == 0) {
            tier_move_result r;
            if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
                _exit(100);
            move(bronze, dsts[i], "x", &r);
            _exit(r.code * 2 + r.permanent);
        }
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status));
        cr_assert_neq(WEXITSTATUS(status), 100, "could not drop privileges");
        cr_assert_eq(WEXITSTATUS(status), TIER_PERMISSION_DENIED * 2 + 1, "%s: got %s", dsts[i],
                     tier_status_name(WEXITSTATUS(status) / 2));
        cr_assert(exists(bronze, "x"));
        cr_assert_eq(count_entries(dsts[i], NULL), 0);
    }
}

Test(move, transient_errors_leave_nothing_behind)
{
    static const struct {
        const char *step;
        int err;
        int force_rw;
    } cases[] = {
        {"open_tmp", EMFILE, 0}, {"copy_file_range", EIO, 0}, {"write", ENOSPC, 1},
        {"fsync_tmp", EIO, 0},   {"install", ENOSPC, 0},
    };
    tier_move_result res;
    unsigned char *data = make_file(bronze, "x", 200000, 24);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        clear_faults();
        if (cases[i].force_rw)
            inject("copy_file_range", EXDEV);
        inject(cases[i].step, cases[i].err);
        cr_assert_eq(move(bronze, gold, "x", &res), TIER_UNAVAILABLE, "%s: %s", cases[i].step,
                     res.reason);
        assert_code(res, TIER_UNAVAILABLE, 0);
        assert_file(bronze, "x", data, 200000);
        cr_assert_eq(count_entries(gold, NULL), 0, "%s left a temporary", cases[i].step);
    }

    /* A failing directory fsync after the rename: reported, and the retry
     * finishes (already at destination). */
    clear_faults();
    inject("fsync_dir", EIO);
    cr_assert_eq(move(bronze, silver, "x", &res), TIER_UNAVAILABLE, "%s", res.reason);
    assert_code(res, TIER_UNAVAILABLE, 0);
    clear_faults();
    cr_assert_eq(move(bronze, silver, "x", &res), TIER_OK, "%s", res.reason);
    assert_file(silver, "x", data, 200000);
    cr_assert_not(exists(bronze, "x"));
    free(data);
}

/* ---- cleanup */

Test(move, cleanup_removes_stale_temporaries_only)
{
    char sub[PATH_MAX + 20];

    free(make_file(gold, ".tier-tmp.0123.1.abcd", 10, 25));
    free(make_file(gold, "keep.mp4", 10, 26));
    free(make_file(gold, ".tier-tmpX", 10, 27));
    snprintf(sub, sizeof(sub), "%s/.tier-tmp.dir", gold);
    cr_assert_eq(mkdir(sub, 0755), 0);

    cr_assert_eq(tier_move_cleanup_dir(gold, 60000), TIER_OK);
    cr_assert(exists(gold, ".tier-tmp.0123.1.abcd"), "fresh temporary removed");
    usleep(30000);
    cr_assert_eq(tier_move_cleanup_dir(gold, 10), TIER_OK);
    cr_assert_not(exists(gold, ".tier-tmp.0123.1.abcd"));
    cr_assert(exists(gold, "keep.mp4"));
    cr_assert(exists(gold, ".tier-tmpX"));
    cr_assert(exists(gold, ".tier-tmp.dir"));

    free(make_file(gold, ".tier-tmp.again", 10, 28));
    cr_assert_eq(tier_move_cleanup_dir(gold, 0), TIER_OK);
    cr_assert_not(exists(gold, ".tier-tmp.again"));

    cr_assert_eq(tier_move_cleanup_dir("relative", 0), TIER_INVALID_ARGUMENT);
    snprintf(sub, sizeof(sub), "%s/missing", root_shm);
    cr_assert_eq(tier_move_cleanup_dir(sub, 0), TIER_FAILED_PRECONDITION);
}

/* ---- concurrency */

#define THREADS 8

struct racer {
    const char *dst;
    pthread_barrier_t *barrier;
    tier_move_result res;
};

static void *racer_main(void *arg)
{
    struct racer *r = arg;
    tier_move_spec spec = {.src_dir = bronze, .dst_dir = r->dst, .filename = "job.mp4"};

    pthread_barrier_wait(r->barrier);
    tier_move_file(&spec, NULL, NULL, &r->res);
    return NULL;
}

static void race(const char *dst, int rounds)
{
    size_t size = (2u << 20) + 99;

    for (int round = 0; round < rounds; round++) {
        pthread_t th[THREADS];
        struct racer r[THREADS];
        pthread_barrier_t barrier;
        unsigned char *data = make_file(bronze, "job.mp4", size, 200 + (uint64_t)round);

        rmtree(path_of(dst, "job.mp4"));
        pthread_barrier_init(&barrier, NULL, THREADS);
        for (int i = 0; i < THREADS; i++) {
            r[i].dst = dst;
            r[i].barrier = &barrier;
            cr_assert_eq(pthread_create(&th[i], NULL, racer_main, &r[i]), 0);
        }
        for (int i = 0; i < THREADS; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&barrier);
        for (int i = 0; i < THREADS; i++)
            cr_assert_eq(r[i].res.code, TIER_OK, "round %d thread %d: %s: %s", round, i,
                         tier_status_name(r[i].res.code), r[i].res.reason);
        cr_assert_not(exists(bronze, "job.mp4"));
        cr_assert_eq(count_entries(bronze, NULL), 0);
        cr_assert_eq(count_entries(dst, NULL), 1, "round %d: extra files at destination", round);
        assert_file(dst, "job.mp4", data, size);
        free(data);
    }
}

Test(move, concurrent_attempts_cross_fs)
{
    race(gold, 5);
}

Test(move, concurrent_attempts_same_fs)
{
    race(silver, 5);
}

Test(move, concurrent_attempts_link_fallback)
{
    inject("rename", EINVAL);
    race(silver, 5);
}

/* Same filesystem but told EXDEV: the copy path runs where copy_file_range
 * really copies (across filesystems this kernel answers EXDEV and the
 * read/write fallback does the work). */
Test(move, copy_path_with_copy_file_range)
{
    tier_move_result res;
    size_t size = (9u << 20) + 1;
    unsigned char *data = make_file(bronze, "f", size, 30);

    inject("rename", EXDEV);
    cr_assert_eq(move(bronze, silver, "f", &res), TIER_OK, "%s", res.reason);
    cr_assert_eq(res.crossed_fs, 1);
    assert_file(silver, "f", data, size);
    cr_assert_not(exists(bronze, "f"));
    cr_assert_eq(count_entries(silver, NULL), 1);
    free(data);
}

/* Another worker's start-up cleanup removes our temporary mid-move: this
 * attempt fails transiently, nothing is lost, and the retry succeeds. */
static void cleanup_everything(void)
{
    cr_assert_eq(tier_move_cleanup_dir(gold, 0), TIER_OK);
}

Test(move, temporary_removed_by_cleanup_mid_move)
{
    tier_move_result res;
    unsigned char *data = make_file(bronze, "f", 123456, 31);

    act_at = "verified";
    act = cleanup_everything;
    tier_move_test_hook = test_hook;
    cr_assert_eq(move(bronze, gold, "f", &res), TIER_UNAVAILABLE, "%s", res.reason);
    assert_code(res, TIER_UNAVAILABLE, 0);
    assert_file(bronze, "f", data, 123456);
    cr_assert_eq(count_entries(gold, NULL), 0);
    clear_faults();
    cr_assert_eq(move(bronze, gold, "f", &res), TIER_OK, "%s", res.reason);
    assert_file(gold, "f", data, 123456);
    cr_assert_not(exists(bronze, "f"));
    free(data);
}

/* A slow attempt whose job was finished by someone else (and the file moved
 * on) while it was copying must not install its copy: that would resurrect
 * the file in a second place. */
static void source_moved_on(void)
{
    cr_assert_eq(unlink(path_of(bronze, "f")), 0);
}

Test(move, slow_attempt_does_not_resurrect_moved_file)
{
    tier_move_result res;

    free(make_file(bronze, "f", 100000, 32));
    act_at = "verified";
    act = source_moved_on;
    tier_move_test_hook = test_hook;
    cr_assert_eq(move(bronze, gold, "f", &res), TIER_NOT_FOUND, "%s", res.reason);
    cr_assert_eq(count_entries(gold, NULL), 0, "copy installed after the source was gone");
}

/* ---- several possible sources (tier_move_file_any) */

static int move_any(const char *src, const char *const *also, size_t n_also, const char *dst,
                    const char *name, tier_move_result *res)
{
    tier_move_spec spec = {.src_dir = src, .dst_dir = dst, .filename = name};
    int rc = tier_move_file_any(&spec, also, n_also, NULL, NULL, res);

    cr_assert_eq(rc, res->code, "return value %d but result code %d", rc, res->code);
    return rc;
}

/* An earlier claim moved the file bronze -> silver, then the job was
 * retargeted to gold: the file is found in the also dir. */
Test(move, any_file_in_also_dir_only)
{
    const char *also[] = {silver};
    tier_move_result res;
    unsigned char *data = make_file(silver, "a", 70000, 40);

    cr_assert_eq(move_any(bronze, also, 1, gold, "a", &res), TIER_OK, "%s", res.reason);
    cr_assert_eq(res.crossed_fs, 1);
    assert_file(gold, "a", data, 70000);
    cr_assert_not(exists(silver, "a"));
    cr_assert_not(exists(bronze, "a"));
    cr_assert_eq(temps_in(gold), 0);
    free(data);
}

/* A cross-filesystem leftover: identical copies in two sources.  Both go,
 * whichever is looked at first. */
Test(move, any_identical_copies_in_two_sources)
{
    const char *also[] = {silver};
    tier_move_result res;
    unsigned char *data = make_file(bronze, "b", 300000, 41);

    free(make_file(silver, "b", 300000, 41));
    cr_assert_eq(move_any(bronze, also, 1, gold, "b", &res), TIER_OK, "%s", res.reason);
    assert_file(gold, "b", data, 300000);
    cr_assert_not(exists(bronze, "b"));
    cr_assert_not(exists(silver, "b"));
    /* The other order, with the file already at the destination too. */
    free(make_file(bronze, "b", 300000, 41));
    free(make_file(silver, "b", 300000, 41));
    const char *rev[] = {bronze};
    cr_assert_eq(move_any(silver, rev, 1, gold, "b", &res), TIER_OK, "%s", res.reason);
    assert_file(gold, "b", data, 300000);
    cr_assert_not(exists(bronze, "b"));
    cr_assert_not(exists(silver, "b"));
    free(data);
}

/* Two different files under the name: refused, permanent, no copy
 * deleted. */
Test(move, any_differing_copies_refused)
{
    const char *also[] = {silver};
    tier_move_result res;
    unsigned char *a = make_file(gold, "c", 5000, 42);
    unsigned char *b = make_file(silver, "c", 5000, 43);

    /* At the destination and, different, in an also dir. */
    cr_assert_eq(move_any(bronze, also, 1, gold, "c", &res), TIER_ALREADY_EXISTS, "%s", res.reason);
    assert_code(res, TIER_ALREADY_EXISTS, 1);
    assert_file(gold, "c", a, 5000);
    assert_file(silver, "c", b, 5000);
    /* In two sources, destination empty: one is moved, the other refused;
     * both still exist. */
    cr_assert_eq(unlink(path_of(gold, "c")), 0);
    free(make_file(bronze, "c", 5000, 42));
    cr_assert_eq(move_any(bronze, also, 1, gold, "c", &res), TIER_ALREADY_EXISTS, "%s", res.reason);
    assert_code(res, TIER_ALREADY_EXISTS, 1);
    assert_file(gold, "c", a, 5000);
    assert_file(silver, "c", b, 5000);
    cr_assert_eq(temps_in(gold), 0);
    free(a);
    free(b);
}

Test(move, any_in_none_is_not_found)
{
    char missing[PATH_MAX + 16];
    tier_move_result res;

    snprintf(missing, sizeof(missing), "%s/removed-level", root_tmp);
    const char *also[] = {silver, missing};
    cr_assert_eq(move_any(bronze, also, 2, gold, "d", &res), TIER_NOT_FOUND, "%s", res.reason);
    assert_code(res, TIER_NOT_FOUND, 1);
    cr_assert_str_eq(res.reason, "d not exists");
    /* At the destination only: done (an earlier attempt finished). */
    free(make_file(gold, "d", 10, 44));
    cr_assert_eq(move_any(bronze, also, 2, gold, "d", &res), TIER_OK, "%s", res.reason);
    cr_assert(strstr(res.reason, "already at destination") != NULL, "%s", res.reason);
}

/* An also dir that is the destination (trailing '/' or not) is skipped:
 * the both-present logic would otherwise delete the destination. */
Test(move, any_destination_entry_skipped)
{
    char gold_slash[PATH_MAX + 2];
    tier_move_result res;
    unsigned char *data = make_file(bronze, "e", 4096, 45);

    snprintf(gold_slash, sizeof(gold_slash), "%s/", gold);
    const char *also[] = {gold_slash, gold, silver, bronze};
    cr_assert_eq(move_any(bronze, also, 4, gold, "e", &res), TIER_OK, "%s", res.reason);
    assert_file(gold, "e", data, 4096);
    cr_assert_not(exists(bronze, "e"));
    /* Again: already there, still OK, still one copy. */
    cr_assert_eq(move_any(bronze, also, 4, gold, "e", &res), TIER_OK, "%s", res.reason);
    assert_file(gold, "e", data, 4096);
    cr_assert_eq(count_entries(gold, NULL), 1);
    free(data);
}

/* Deferred directory syncs only ever concern src_dir and dst_dir: a rename
 * out of an also dir syncs on its own. */
Test(move, any_defer_only_for_src_dir)
{
    const char *also[] = {bronze};
    tier_move_spec spec = {
        .src_dir = gold, .dst_dir = silver, .filename = "f", .defer_dir_sync = 1};
    tier_move_result res;

    free(make_file(bronze, "f", 100, 46));
    cr_assert_eq(tier_move_file_any(&spec, also, 1, NULL, NULL, &res), TIER_OK, "%s", res.reason);
    cr_assert_eq(res.dirs_unsynced, 0);
    cr_assert(exists(silver, "f"));
    cr_assert_not(exists(bronze, "f"));
}
