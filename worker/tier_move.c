/*
 * tier_move.c -- crash-safe, retry-safe move of one content file between
 * level directories (see tier_move.h for the contract).
 *
 * Crash-safety argument.  Write S for the source name, D for the
 * destination name, T for a temporary in the destination directory.  Two
 * invariants hold at every instant, whatever crashes or runs concurrently:
 *
 *   (1) never lost: S or D names a complete copy of the file;
 *   (2) never duplicated for good: if S and D both exist, they are the same
 *       inode or hold the same bytes, and every attempt that sees this
 *       removes S.
 *
 * Same filesystem: renameat2(S, D, RENAME_NOREPLACE) is one atomic step from
 * "S only" to "D only"; NOREPLACE means an attempt can never clobber a D
 * some other attempt (or anybody) put there.  Where the filesystem refuses
 * the flag (EINVAL) we link(S, D) -- which also fails with EEXIST, so still
 * no overwrite -- fsync D's directory, then unlink(S).  A crash between the
 * two leaves S and D as the same inode: case (2).
 *
 * Different filesystems (EXDEV):
 *   a. copy S into a fresh T (O_CREAT|O_EXCL, unique name) -- S untouched;
 *   b. fsync T, then compare T with S byte for byte -- a crash before this
 *      point leaves only an unreachable T (cleanup removes it);
 *   c. renameat2(T, D, NOREPLACE): D appears atomically and only ever as a
 *      complete, durable, verified copy -- never a half-written D;
 *   d. fsync D's directory -- D now survives a machine crash;
 *   e. unlink(S), fsync S's directory.
 *   A crash between c and e leaves S and D with the same bytes: case (2).
 *   Because S is removed only after d, there is no order in which the disk
 *   can hold "no S" without "D" (the two directories may sit on different
 *   filesystems with independent journals, so this explicit ordering is the
 *   only thing that makes it so).
 *
 * Looking at the state: we stat S first and D second.  D always appears
 * before S disappears, so "S missing" seen first implies D is present when
 * we look next: "both missing" really means the file never was there.
 *
 * Concurrent attempts: each uses its own T (pid + random, O_EXCL); the
 * NOREPLACE install lets exactly one win, the others get EEXIST and fall into
 * case (2).  Any step that finds the state changed under it (ENOENT, EEXIST,
 * a different inode) starts over from "look at the state", a bounded number
 * of times.  Before removing S in case (2) we fsync D and its directory, so
 * an attempt that crashed before its own step d cannot make us delete the
 * only durable copy.  A slow copier re-checks, just before step c, that S
 * is still the inode it copied (and asks progress() once more): if another
 * attempt finished meanwhile and the file has since moved on, it discards T
 * instead of resurrecting a second copy under D.  Rename and link need S to
 * exist, so the same-filesystem paths cannot resurrect anything.
 *
 * Several possible sources (tier_move_file_any).  A retargeted job may have
 * its file in its source, in any directory an earlier claim moved it to, or
 * at the destination.  Each candidate source is handed to tier_move_file
 * with the same destination, so every step is one of the moves above and
 * (1) and (2) hold for each pair (source, D).  Never lost: a source copy is
 * only removed by tier_move_file, after D durably holds the same bytes.
 * Never duplicated: after any source was acted on, every source is looked at
 * again, until a round finds none holding the file, so an identical
 * leftover (a cross-filesystem attempt that died after installing D, or two
 * earlier claims) is removed before OK is returned; a differing copy stops
 * the job (ALREADY_EXISTS) with nothing deleted, and any other error of any
 * source is the result, so the job is retried rather than completed with a
 * leftover.  NOT_FOUND needs every source and D missing: each source is
 * asked once more without the cheap presence check, so the answer comes
 * from tier_move_file's "S first, D second" look (see below).
 *
 * Every error path after T was created unlinks T.  Symlinks are never
 * followed: the directories are opened O_NOFOLLOW, the file with O_NOFOLLOW
 * and fstatat(AT_SYMLINK_NOFOLLOW); anything but a regular file is refused.
 */
#include "tier_move.h"

#include "tier_crash.h"
#include "tier_log.h"
#include "tier_name.h"
#include "tier_status.h"
#include "tier_time.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

#define COPY_CHUNK (8 << 20)        /* bytes per copy_file_range call */
#define BUF_SIZE (1 << 20)          /* read/write fallback and compare buffers */
#define PROGRESS_BYTES (64LL << 20) /* call progress() at least this often ... */
#define PROGRESS_MS 1000            /* ... or this often, whichever comes first */
#define MAX_ROUNDS 8                /* re-looks at a state that keeps changing */
#define AGAIN (-1)                  /* internal: state changed, look again */
#define CROSS (-2)                  /* internal: rename says EXDEV, copy instead */

tier_move_hook_fn tier_move_test_hook = NULL;

/* Steps passed to the hook, in the order they run:
 *   same filesystem:  "rename" "renamed" | fallback: "link" "linked" "fsync_dir" "unlink_src"
 *   across:           "open_tmp" "tmp_created" "copy_file_range"/"write" "copied" "fsync_tmp"
 *                     "verified" "install" ("install_link" "install_linked") "installed"
 * "fsync_dir" "unlink_src" "src_unlinked" both present:     "fsync_dir" "unlink_src" Returns the
 * errno to inject, 0 to run the step. */
static int hook(const char *step)
{
    return tier_move_test_hook != NULL ? tier_move_test_hook(step) : 0;
}

typedef struct {
    const tier_move_spec *spec;
    int sfd; /* source level directory */
    int dfd; /* destination level directory */
    tier_move_progress_fn progress;
    void *arg;
    int64_t last_ms;    /* monotonic time of the last progress() call */
    int64_t bytes_left; /* bytes until the next progress() call */
    tier_move_result *res;
} mover;

/* ---- results */

static int set_result(tier_move_result *res, int code, int permanent, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int set_result(tier_move_result *res, int code, int permanent, const char *fmt, ...)
{
    va_list ap;

    res->code = code;
    res->permanent = permanent;
    va_start(ap, fmt);
    vsnprintf(res->reason, sizeof(res->reason), fmt, ap);
    va_end(ap);
    return code;
}

/* The project's meaning of an errno: what it says about retrying. */
static int errno_code(int e, int *permanent)
{
    switch (e) {
    case EACCES:
    case EPERM:
        *permanent = 1;
        return TIER_PERMISSION_DENIED;
    case ENOENT:  /* a level directory is missing ...             */
    case ENOTDIR: /* ... or is not a directory ...                */
    case ELOOP:   /* ... or is a symlink (opened with O_NOFOLLOW) */
    case EROFS:
        *permanent = 1;
        return TIER_FAILED_PRECONDITION;
    case ENAMETOOLONG:
        *permanent = 1;
        return TIER_INVALID_ARGUMENT;
    default: /* ENOSPC, EDQUOT, EIO, EMFILE, ENFILE, ENOMEM, EBUSY, ...: may pass */
        *permanent = 0;
        return TIER_UNAVAILABLE;
    }
}

static int fail_errno(tier_move_result *res, int e, const char *what, const char *name)
{
    int permanent;
    int code = errno_code(e, &permanent);
    char buf[128];

    /* GNU strerror_r (we build with _GNU_SOURCE) returns the message. */
    return set_result(res, code, permanent, "%s %.100s: %s", what, name,
                      strerror_r(e, buf, sizeof(buf)));
}

/* ---- small helpers */

static int open_dir(const char *path, tier_move_result *res, const char *what)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0)
        fail_errno(res, errno, what, path);
    return fd;
}

/* 0 = exists (st filled), ENOENT = missing, other errno = error. */
static int stat_entry(int dirfd, const char *name, struct stat *st)
{
    if (fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) == 0)
        return 0;
    return errno;
}

static int sys_renameat2(int olddir, const char *oldname, int newdir, const char *newname,
                         unsigned flags)
{
    /* Through syscall() so that it builds with any glibc; old kernels say
     * ENOSYS, which callers treat like EINVAL (flag not supported). */
    return (int)syscall(SYS_renameat2, olddir, oldname, newdir, newname, flags);
}

/* fsync a directory so the entries created/removed in it are durable.  Some
 * filesystems cannot fsync a directory (EINVAL): nothing more we can do. */
static int sync_dir(mover *m, int fd, const char *which)
{
    int e = hook("fsync_dir");

    if (e == 0 && fsync(fd) == 0)
        return TIER_OK;
    if (e == 0)
        e = errno;
    if (e == EINVAL)
        return TIER_OK;
    return fail_errno(m->res, e, "fsync directory", which);
}

/* Both directories, destination first: the destination must be durable
 * before a removal of the source can be. */
static int sync_both(mover *m)
{
    int rc = sync_dir(m, m->dfd, m->spec->dst_dir);

    return rc != TIER_OK ? rc : sync_dir(m, m->sfd, m->spec->src_dir);
}

static int progress_tick(mover *m, int64_t bytes)
{
    int64_t now = tier_mono_ms();

    m->bytes_left -= bytes;
    if (m->bytes_left > 0 && now - m->last_ms < PROGRESS_MS)
        return TIER_OK;
    m->bytes_left = PROGRESS_BYTES;
    m->last_ms = now;
    if (m->progress != NULL && m->progress(m->arg) != 0)
        return set_result(m->res, TIER_ABORTED, 0, "%s: stopped by the progress callback",
                          m->spec->filename);
    return TIER_OK;
}

/* Read up to len bytes at off, looping over short reads; -1 on error. */
static ssize_t pread_full(int fd, char *buf, size_t len, off_t off)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = pread(fd, buf + got, len - got, off + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* *equal = 1 when a and b hold the same bytes.  A full comparison rather
 * than a checksum: it reads exactly as much as checksumming both would and
 * cannot collide. */
static int same_bytes(mover *m, int a, int b, int *equal)
{
    char *ba = malloc(BUF_SIZE);
    char *bb = malloc(BUF_SIZE);
    off_t off = 0;
    int rc = TIER_OK;

    *equal = 0;
    if (ba == NULL || bb == NULL) {
        rc = fail_errno(m->res, ENOMEM, "compare", m->spec->filename);
        goto out;
    }
    for (;;) {
        ssize_t na = pread_full(a, ba, BUF_SIZE, off);
        ssize_t nb = pread_full(b, bb, BUF_SIZE, off);
        if (na < 0 || nb < 0) {
            rc = fail_errno(m->res, errno, "read for compare", m->spec->filename);
            goto out;
        }
        if (na != nb || memcmp(ba, bb, (size_t)na) != 0)
            goto out;
        if (na == 0)
            break;
        off += na;
        if ((rc = progress_tick(m, na)) != TIER_OK)
            goto out;
    }
    *equal = 1;
out:
    free(ba);
    free(bb);
    return rc;
}

/* Unlink the source, but only if it is still the inode we looked at:
 * anything else under that name is not ours to remove. */
static int unlink_source(mover *m, const struct stat *expect)
{
    const char *name = m->spec->filename;
    struct stat st;
    int e = stat_entry(m->sfd, name, &st);

    if (e == ENOENT)
        return TIER_OK; /* a concurrent attempt removed it already */
    if (e != 0)
        return fail_errno(m->res, e, "stat source", name);
    if (st.st_dev != expect->st_dev || st.st_ino != expect->st_ino)
        return AGAIN;
    e = hook("unlink_src");
    if (e == 0 && unlinkat(m->sfd, name, 0) != 0)
        e = errno;
    if (e != 0 && e != ENOENT)
        return fail_errno(m->res, e, "unlink source", name);
    if (e == 0)
        TIER_CRASH_AT("move.src_unlinked"); /* S gone, its directory not yet synced */
    return TIER_OK;
}

/* 16 hex digits of FNV-1a over the name: temporaries of different files
 * are told apart without putting a 255-byte name inside a 255-byte name. */
static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t random64(void)
{
    static atomic_uint_fast64_t counter;
    uint64_t r = 0;

    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
        r = (uint64_t)tier_mono_us() * 0x9e3779b97f4a7c15ULL;
    /* The counter keeps two threads distinct even if getrandom failed. */
    return r ^ (atomic_fetch_add(&counter, 1) * 0xbf58476d1ce4e5b9ULL);
}

/* ---- the state machine */

/* Source and destination both exist. */
static int resolve_both(mover *m, const struct stat *sst, const struct stat *dst)
{
    const char *name = m->spec->filename;
    int sf = -1, df = -1, equal = 0, rc;
    struct stat s2, d2;

    if (!S_ISREG(dst->st_mode))
        return set_result(m->res, TIER_ALREADY_EXISTS, 1,
                          "%s: destination taken by something that is not a regular file", name);
    if (sst->st_dev == dst->st_dev && sst->st_ino == dst->st_ino) {
        /* A link+unlink move stopped between the two: D is already the file. */
        if ((rc = sync_dir(m, m->dfd, m->spec->dst_dir)) != TIER_OK)
            return rc;
        if ((rc = unlink_source(m, sst)) != TIER_OK)
            return rc;
        if ((rc = sync_dir(m, m->sfd, m->spec->src_dir)) != TIER_OK)
            return rc;
        return set_result(m->res, TIER_OK, 0,
                          "%s: removed source hard link left by an earlier "
                          "attempt",
                          name);
    }
    if (sst->st_size != dst->st_size)
        return set_result(m->res, TIER_ALREADY_EXISTS, 1,
                          "%s: destination taken by a different file (size %lld, source %lld)",
                          name, (long long)dst->st_size, (long long)sst->st_size);

    sf = openat(m->sfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (sf < 0) {
        rc = (errno == ENOENT || errno == ELOOP) ? AGAIN : fail_errno(m->res, errno, "open", name);
        goto out;
    }
    df = openat(m->dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (df < 0) {
        rc = (errno == ENOENT || errno == ELOOP)
                 ? AGAIN
                 : fail_errno(m->res, errno, "open destination", name);
        goto out;
    }
    if (fstat(sf, &s2) != 0 || fstat(df, &d2) != 0) {
        rc = fail_errno(m->res, errno, "fstat", name);
        goto out;
    }
    if (s2.st_ino != sst->st_ino || s2.st_dev != sst->st_dev || d2.st_ino != dst->st_ino ||
        d2.st_dev != dst->st_dev) {
        rc = AGAIN; /* replaced between stat and open */
        goto out;
    }
    if ((rc = same_bytes(m, sf, df, &equal)) != TIER_OK)
        goto out;
    if (!equal) {
        rc = set_result(m->res, TIER_ALREADY_EXISTS, 1, "%s: destination taken by a different file",
                        name);
        goto out;
    }
    /* A copy stopped between "D in place" and "S removed".  Make D durable
     * first: the attempt that installed it may have died before its own
     * fsyncs, and after we unlink S, D is the only copy. */
    if (fsync(df) != 0) {
        rc = fail_errno(m->res, errno, "fsync destination", name);
        goto out;
    }
    if ((rc = sync_dir(m, m->dfd, m->spec->dst_dir)) != TIER_OK)
        goto out;
    if ((rc = unlink_source(m, &s2)) != TIER_OK)
        goto out;
    if ((rc = sync_dir(m, m->sfd, m->spec->src_dir)) != TIER_OK)
        goto out;
    rc = set_result(m->res, TIER_OK, 0, "%s: identical copy already at destination, removed source",
                    name);
out:
    if (sf >= 0)
        close(sf);
    if (df >= 0)
        close(df);
    return rc;
}

/* Same filesystem, fallback where RENAME_NOREPLACE is refused: link()
 * refuses to overwrite too. */
static int move_by_link(mover *m, const struct stat *sst)
{
    const char *name = m->spec->filename;
    int e = hook("link"), rc;

    if (e == 0 && linkat(m->sfd, name, m->dfd, name, 0) != 0)
        e = errno;
    if (e == EEXIST || e == ENOENT)
        return AGAIN;
    if (e == EXDEV)
        return CROSS;
    if (e != 0)
        return fail_errno(m->res, e, "link", name);
    hook("linked");
    TIER_CRASH_AT("move.linked"); /* S and D one inode; nothing synced */
    /* D durable before S goes (S and D are one inode, so this also covers
     * the data). */
    if ((rc = sync_dir(m, m->dfd, m->spec->dst_dir)) != TIER_OK)
        return rc;
    if ((rc = unlink_source(m, sst)) != TIER_OK)
        return rc;
    if ((rc = sync_dir(m, m->sfd, m->spec->src_dir)) != TIER_OK)
        return rc;
    return set_result(m->res, TIER_OK, 0, "%s: moved (link + unlink)", name);
}

static int move_by_rename(mover *m, const struct stat *sst)
{
    const char *name = m->spec->filename;
    int e = hook("rename"), rc;

    if (e == 0 && sys_renameat2(m->sfd, name, m->dfd, name, RENAME_NOREPLACE) != 0)
        e = errno;
    switch (e) {
    case 0:
        break;
    case EXDEV:
        return CROSS;
    case EEXIST: /* someone put D there meanwhile: both-present case */
    case ENOENT: /* S went meanwhile (a concurrent attempt moved it) */
        return AGAIN;
    case EINVAL: /* filesystem refuses RENAME_NOREPLACE */
    case ENOSYS: /* kernel without renameat2 */
        return move_by_link(m, sst);
    default:
        return fail_errno(m->res, e, "rename", name);
    }
    hook("renamed");
    TIER_CRASH_AT("move.renamed"); /* D only; neither directory synced */
    /* One atomic metadata operation on one filesystem: syncing the
     * directories makes the completed move durable before we report it
     * (or the caller does, once for a whole batch: defer_dir_sync). */
    if (m->spec->defer_dir_sync) {
        if (m->res != NULL)
            m->res->dirs_unsynced = 1;
    } else if ((rc = sync_both(m)) != TIER_OK) {
        return rc;
    }
    return set_result(m->res, TIER_OK, 0, "%s: moved (rename)", name);
}

/* Copy in to out from offset 0 to EOF, copy_file_range first (in-kernel,
 * reflinks where possible), read/write where the kernel cannot. */
static int copy_data(mover *m, int in, int out, off_t expect_size)
{
    const char *name = m->spec->filename;
    int use_cfr = 1, rc;
    char *buf = NULL;
    off_t off = 0;

    for (;;) {
        ssize_t n;
        int e;

        if (use_cfr) {
            loff_t io = off, oo = off;
            e = hook("copy_file_range");
            n = e != 0 ? -1 : copy_file_range(in, &io, out, &oo, COPY_CHUNK, 0);
            if (n < 0 && e == 0)
                e = errno;
            if (n < 0 && (e == EXDEV || e == EOPNOTSUPP || e == ENOSYS || e == EINVAL)) {
                use_cfr = 0; /* explicit offsets: the fallback resumes at off */
                continue;
            }
            if (n == 0 && off < expect_size) {
                /* Some filesystems report 0 instead of an error: let
                 * read() decide where the end really is. */
                use_cfr = 0;
                continue;
            }
        } else {
            if (buf == NULL && (buf = malloc(BUF_SIZE)) == NULL) {
                rc = fail_errno(m->res, ENOMEM, "copy", name);
                goto out;
            }
            n = pread(in, buf, BUF_SIZE, off);
            e = n < 0 ? errno : 0;
            for (ssize_t done = 0; n > 0 && done < n;) {
                ssize_t w;
                e = hook("write");
                w = e != 0 ? -1 : pwrite(out, buf + done, (size_t)(n - done), off + done);
                if (w < 0 && e == 0)
                    e = errno;
                if (w < 0 && e == EINTR)
                    continue;
                if (w < 0) {
                    rc = fail_errno(m->res, e, "write temporary for", name);
                    goto out;
                }
                done += w;
            }
        }
        if (n < 0 && e == EINTR)
            continue;
        if (n < 0) {
            rc = fail_errno(m->res, e, "copy", name);
            goto out;
        }
        if (n == 0)
            break;
        off += n;
        if ((rc = progress_tick(m, n)) != TIER_OK)
            goto out;
    }
    rc = TIER_OK;
out:
    free(buf);
    return rc;
}

/* Put the verified temporary tmp in place under name without overwriting. */
static int install_tmp(mover *m, const char *tmp, int *linked)
{
    const char *name = m->spec->filename;
    int e = hook("install");

    *linked = 0;
    if (e == 0 && sys_renameat2(m->dfd, tmp, m->dfd, name, RENAME_NOREPLACE) != 0)
        e = errno;
    if (e == EINVAL || e == ENOSYS) {
        e = hook("install_link");
        if (e == 0 && linkat(m->dfd, tmp, m->dfd, name, 0) != 0)
            e = errno;
        *linked = e == 0;
        if (*linked)
            hook("install_linked");
        /* D now names the inode (or not, on error); T is removed by the
         * caller either way.  A crash in between leaves T as a second name
         * of D, which cleanup removes harmlessly. */
    }
    return e;
}

static int move_by_copy(mover *m, const struct stat *sst)
{
    const char *name = m->spec->filename;
    char tmp[TIER_NAME_MAX + 1];
    int in = -1, out = -1, equal = 0, linked = 0, rc, e;
    struct stat ist, ost, cur;
    struct timespec times[2];

    m->res->crossed_fs = 1;
    in = openat(m->sfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (in < 0)
        return errno == ENOENT ? AGAIN : fail_errno(m->res, errno, "open", name);
    if (fstat(in, &ist) != 0) {
        rc = fail_errno(m->res, errno, "fstat", name);
        goto out;
    }
    if (ist.st_dev != sst->st_dev || ist.st_ino != sst->st_ino || !S_ISREG(ist.st_mode)) {
        rc = AGAIN;
        goto out;
    }

    /* ".tier-tmp.<16 hex>.<pid>.<16 hex>": at most 10+16+1+10+1+16 bytes. */
    for (int i = 0; i < 8 && out < 0; i++) {
        snprintf(tmp, sizeof(tmp), TIER_MOVE_TMP_PREFIX "%016llx.%ld.%016llx",
                 (unsigned long long)fnv1a64(name), (long)getpid(), (unsigned long long)random64());
        e = hook("open_tmp");
        out = e != 0
                  ? -1
                  : openat(m->dfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (out < 0 && e == 0)
            e = errno;
        if (out < 0 && e != EEXIST) {
            rc = fail_errno(m->res, e, "create temporary for", name);
            goto out;
        }
    }
    if (out < 0) {
        rc = set_result(m->res, TIER_UNAVAILABLE, 0, "%s: no free temporary name", name);
        goto out;
    }
    hook("tmp_created");

    if ((rc = copy_data(m, in, out, ist.st_size)) != TIER_OK)
        goto fail_tmp;
    hook("copied");
    /* Keep what rename would have kept.  Ownership only works as root and
     * is best effort; chown before chmod because chown clears set-id bits.
     * Setting an old mtime is why cleanup looks at ctime instead. */
    if (fchown(out, ist.st_uid, ist.st_gid) != 0) {
        /* not root: the file stays ours */
    }
    times[0] = ist.st_atim;
    times[1] = ist.st_mtim;
    if (fchmod(out, ist.st_mode & 07777) != 0 || futimens(out, times) != 0) {
        rc = fail_errno(m->res, errno, "set attributes on temporary for", name);
        goto fail_tmp;
    }
    e = hook("fsync_tmp");
    if (e == 0 && fsync(out) != 0)
        e = errno;
    if (e != 0) {
        rc = fail_errno(m->res, e, "fsync temporary for", name);
        goto fail_tmp;
    }

    /* Verify what is now on disk against the source as it is now: catches
     * a short or corrupted copy and a source modified during the copy. */
    if (fstat(in, &ist) != 0 || fstat(out, &ost) != 0) {
        rc = fail_errno(m->res, errno, "fstat", name);
        goto fail_tmp;
    }
    if (ist.st_size == ost.st_size && (rc = same_bytes(m, in, out, &equal)) != TIER_OK)
        goto fail_tmp;
    if (!equal) {
        rc = set_result(m->res, TIER_UNAVAILABLE, 0,
                        "%s: copy differs from source after copying (source changed?)", name);
        goto fail_tmp;
    }
    hook("verified");
    TIER_CRASH_AT("move.copied"); /* T complete and durable; D not there */

    /* Last look before the point of no return.  A slow attempt that lost its
     * lease may reach this point after another attempt finished the move and
     * the file was even moved on; installing now would resurrect a second
     * copy.  So ask the lease once more and check that the source is still
     * the file we copied.  (A window of a few system calls remains; closing
     * it entirely needs fencing by the job layer.) */
    m->bytes_left = 0;
    if ((rc = progress_tick(m, 0)) != TIER_OK)
        goto fail_tmp;
    e = stat_entry(m->sfd, name, &cur);
    if (e == ENOENT || (e == 0 && (cur.st_dev != ist.st_dev || cur.st_ino != ist.st_ino))) {
        rc = AGAIN; /* moved (or replaced) by someone else meanwhile */
        goto fail_tmp;
    }
    if (e != 0) {
        rc = fail_errno(m->res, e, "stat source", name);
        goto fail_tmp;
    }

    e = install_tmp(m, tmp, &linked);
    if (e == ENOENT) {
        /* T vanished: a cleanup_dir() elsewhere took it.  S is intact. */
        rc = set_result(m->res, TIER_UNAVAILABLE, 0,
                        "%s: temporary removed during the move (cleanup?), retry", name);
        goto fail_tmp;
    }
    if (e == EEXIST) {
        rc = AGAIN; /* a concurrent attempt installed D first: both-present case */
        goto fail_tmp;
    }
    if (e != 0) {
        rc = fail_errno(m->res, e, "install", name);
        goto fail_tmp;
    }
    if (linked) /* T is still a second name of D */
        unlinkat(m->dfd, tmp, 0);
    hook("installed");
    TIER_CRASH_AT("move.installed"); /* S and D identical; D's directory not synced */
    close(out);
    out = -1;

    if ((rc = sync_dir(m, m->dfd, m->spec->dst_dir)) != TIER_OK)
        goto out; /* S and D both present and identical: a retry finishes */
    hook("dst_synced");
    if ((rc = unlink_source(m, &ist)) != TIER_OK) {
        if (rc == AGAIN) /* S is now another file: not ours to remove */
            rc = set_result(m->res, TIER_ABORTED, 0, "%s: source replaced during the move", name);
        goto out;
    }
    hook("src_unlinked");
    if ((rc = sync_dir(m, m->sfd, m->spec->src_dir)) != TIER_OK)
        goto out;
    rc = set_result(m->res, TIER_OK, 0, "%s: copied %lld bytes across filesystems, removed source",
                    name, (long long)ist.st_size);
    goto out;

fail_tmp:
    close(out);
    out = -1;
    unlinkat(m->dfd, tmp, 0);
out:
    if (out >= 0)
        close(out);
    close(in);
    return rc;
}

static int run(mover *m)
{
    const char *name = m->spec->filename;

    for (int round = 0; round < MAX_ROUNDS; round++) {
        struct stat sst, dst;
        int s, d, rc;

        /* Source first, destination second: see the argument at the top. */
        s = stat_entry(m->sfd, name, &sst);
        if (s != 0 && s != ENOENT)
            return fail_errno(m->res, s, "stat source", name);
        d = stat_entry(m->dfd, name, &dst);
        if (d != 0 && d != ENOENT)
            return fail_errno(m->res, d, "stat destination", name);

        if (s == ENOENT && d == ENOENT)
            return set_result(m->res, TIER_NOT_FOUND, 1, "%s not exists", name);
        if (s == ENOENT) {
            if (!S_ISREG(dst.st_mode))
                return set_result(m->res, TIER_FAILED_PRECONDITION, 1,
                                  "%s not exists (destination holds a non-regular file)", name);
            /* An earlier attempt finished; it may have died before its
             * fsyncs, so make the result durable before we report it. */
            if ((rc = sync_both(m)) != TIER_OK)
                return rc;
            return set_result(m->res, TIER_OK, 0, "%s: already at destination", name);
        }
        if (!S_ISREG(sst.st_mode))
            return set_result(m->res, TIER_FAILED_PRECONDITION, 1,
                              "%s: source is not a regular file (symlinks are not followed)", name);
        if (d == 0)
            rc = resolve_both(m, &sst, &dst);
        else
            rc = move_by_rename(m, &sst);
        if (rc == CROSS)
            rc = move_by_copy(m, &sst);
        if (rc != AGAIN)
            return rc;
    }
    return set_result(m->res, TIER_UNAVAILABLE, 0,
                      "%s: gave up after %d rounds, the directories kept changing", name,
                      MAX_ROUNDS);
}

int tier_move_file(const tier_move_spec *spec, tier_move_progress_fn progress, void *arg,
                   tier_move_result *res)
{
    tier_move_result scratch;
    mover m = {.spec = spec, .sfd = -1, .dfd = -1, .progress = progress, .arg = arg};
    struct stat a, b;
    int rc;

    if (res == NULL)
        res = &scratch;
    memset(res, 0, sizeof(*res));
    m.res = res;
    if (spec == NULL || spec->src_dir == NULL || spec->dst_dir == NULL || spec->filename == NULL)
        return set_result(res, TIER_INVALID_ARGUMENT, 1, "missing argument");
    if (!tier_name_valid(spec->filename, strlen(spec->filename)))
        return set_result(res, TIER_INVALID_ARGUMENT, 1, "invalid file name \"%.64s\"",
                          spec->filename);
    if (spec->src_dir[0] != '/' || spec->dst_dir[0] != '/')
        return set_result(res, TIER_INVALID_ARGUMENT, 1, "level directories must be absolute");

    if ((m.sfd = open_dir(spec->src_dir, res, "open source directory")) < 0)
        return res->code;
    if ((m.dfd = open_dir(spec->dst_dir, res, "open destination directory")) < 0) {
        rc = res->code;
        goto out;
    }
    if (fstat(m.sfd, &a) != 0 || fstat(m.dfd, &b) != 0) {
        rc = fail_errno(res, errno, "fstat", "level directory");
        goto out;
    }
    /* Same directory: source and destination are one entry, and the
     * both-present logic would delete it. */
    if (a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
        rc = set_result(res, TIER_INVALID_ARGUMENT, 1,
                        "source and destination are the same directory");
        goto out;
    }
    m.last_ms = tier_mono_ms();
    m.bytes_left = PROGRESS_BYTES;
    rc = run(&m);
out:
    if (m.sfd >= 0)
        close(m.sfd);
    if (m.dfd >= 0)
        close(m.dfd);
    return rc;
}

/* ---- several possible sources */

/* Length of dir without trailing '/' ("/" itself stays "/"). */
static size_t dir_len(const char *dir)
{
    size_t n = strlen(dir);

    while (n > 1 && dir[n - 1] == '/')
        n--;
    return n;
}

static int same_dir_name(const char *a, const char *b)
{
    size_t na = dir_len(a), nb = dir_len(b);

    return na == nb && memcmp(a, b, na) == 0;
}

/* What a look at dir/name says, before a tier_move_file call is spent on
 * it: 1 the name may be there (exists, or an error tier_move_file should
 * look at and report), 0 it is not, -1 the directory itself is missing. */
static int look(const char *dir, const char *name)
{
    char path[PATH_MAX];
    struct stat st;

    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
        return 1;
    if (lstat(path, &st) == 0)
        return 1;
    if (errno != ENOENT && errno != ENOTDIR)
        return 1;
    return stat(dir, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

/* The file is in no source: OK if the destination holds it (made durable,
 * an earlier attempt may have died before its fsync), else NOT_FOUND. */
static int at_destination(const tier_move_spec *spec, tier_move_result *res)
{
    const char *name = spec->filename;
    int rc = look(spec->dst_dir, name);

    if (rc < 0)
        return fail_errno(res, ENOENT, "open destination directory", spec->dst_dir);
    if (rc == 0)
        return set_result(res, TIER_NOT_FOUND, 1, "%s not exists", name);
    if ((rc = tier_move_sync_dir(spec->dst_dir, res->reason, sizeof(res->reason))) != TIER_OK)
        return set_result(res, rc, 0, "%s", res->reason);
    return set_result(res, TIER_OK, 0, "%s: already at destination", name);
}

/* The candidate sources of a job: src_dir first, then the also dirs, each
 * once, none equal to dst_dir.  Returns how many, or -1 (res set). */
static int list_sources(const tier_move_spec *spec, const char *const *also, size_t n_also,
                        const char **out, tier_move_result *res)
{
    int n = 0;

    for (size_t i = 0; i <= n_also; i++) {
        const char *d = i == 0 ? spec->src_dir : also[i - 1];
        int dup = 0;

        if (d == NULL || d[0] != '/') {
            set_result(res, TIER_INVALID_ARGUMENT, 1, "level directories must be absolute");
            return -1;
        }
        for (int k = 0; k < n && !dup; k++)
            dup = same_dir_name(out[k], d);
        if (!dup && !same_dir_name(d, spec->dst_dir))
            out[n++] = d;
    }
    return n;
}

/* One round over the sources.  final = 0: skip sources that certainly lack
 * the file; final = 1: ask every source whose directory exists (src_dir
 * even if not, so its absence is reported as tier_move_file always did).
 * Returns TIER_OK with *acted = calls that returned OK and *called = calls
 * made, or the first result that is neither OK nor NOT_FOUND (in res). */
static int any_round(const tier_move_spec *spec, const char **src, int n, int final,
                     tier_move_progress_fn progress, void *arg, tier_move_result *res, int *acted,
                     int *called)
{
    *acted = *called = 0;
    for (int i = 0; i < n; i++) {
        /* Deferred directory syncs are only ever those of src_dir and
         * dst_dir, the pair the caller knows about. */
        tier_move_spec one = *spec;
        tier_move_result r;
        int seen = look(src[i], spec->filename), rc;

        one.src_dir = src[i];
        one.defer_dir_sync = src[i] == spec->src_dir ? spec->defer_dir_sync : 0;
        if (final ? seen < 0 && src[i] != spec->src_dir : seen <= 0)
            continue;
        (*called)++;
        rc = tier_move_file(&one, progress, arg, &r);
        if (rc == TIER_NOT_FOUND)
            continue;
        if (rc != TIER_OK) {
            *res = r;
            return rc;
        }
        /* Keep the words of a call that moved data over "already ...". */
        if (res->code != TIER_OK || strstr(res->reason, "already") != NULL)
            snprintf(res->reason, sizeof(res->reason), "%s", r.reason);
        res->code = TIER_OK;
        res->permanent = 0;
        res->crossed_fs |= r.crossed_fs;
        res->dirs_unsynced |= r.dirs_unsynced;
        (*acted)++;
    }
    return TIER_OK;
}

int tier_move_file_any(const tier_move_spec *spec, const char *const *also_dirs, size_t n_also,
                       tier_move_progress_fn progress, void *arg, tier_move_result *res)
{
    const char *src[1 + TIER_MOVE_MAX_ALSO];
    tier_move_result scratch;
    int n, acted = 0, called, found = 0, rc;

    if (res == NULL)
        res = &scratch;
    /* One source, or arguments tier_move_file refuses: exactly it. */
    if (n_also == 0 || spec == NULL || spec->src_dir == NULL || spec->dst_dir == NULL ||
        spec->filename == NULL || spec->dst_dir[0] != '/' ||
        !tier_name_valid(spec->filename, strlen(spec->filename)))
        return tier_move_file(spec, progress, arg, res);
    memset(res, 0, sizeof(*res));
    if (also_dirs == NULL || n_also > TIER_MOVE_MAX_ALSO)
        return set_result(res, TIER_INVALID_ARGUMENT, 1, "at most %d other directories",
                          TIER_MOVE_MAX_ALSO);
    if ((n = list_sources(spec, also_dirs, n_also, src, res)) < 0)
        return res->code;
    if (n == 0) /* every directory is the destination: tier_move_file says so */
        return tier_move_file(spec, progress, arg, res);
    set_result(res, TIER_NOT_FOUND, 1, "%s not exists", spec->filename);
    /* Until a round finds no source holding the file: a copy acted on may
     * have an identical twin in a source looked at before it. */
    for (int round = 0; round < MAX_ROUNDS; round++) {
        rc = any_round(spec, src, n, 0, progress, arg, res, &acted, &called);
        if (rc != TIER_OK)
            return rc;
        found += acted;
        if (acted == 0)
            break;
    }
    if (acted != 0)
        return set_result(res, TIER_UNAVAILABLE, 0,
                          "%s: gave up after %d rounds, the directories kept changing",
                          spec->filename, MAX_ROUNDS);
    if (found > 0)
        return TIER_OK;
    /* No source seemed to hold it: tier_move_file decides between "already
     * at destination" (made durable) and NOT_FOUND, looking at S first and
     * D second. */
    if ((rc = any_round(spec, src, n, 1, progress, arg, res, &acted, &called)) != TIER_OK)
        return rc;
    return called > 0 ? res->code : at_destination(spec, res);
}

int tier_move_cleanup_dir(const char *dir, int64_t older_than_ms)
{
    const size_t plen = strlen(TIER_MOVE_TMP_PREFIX);
    int64_t now = tier_now_ms();
    int rc = TIER_OK, fd, permanent;
    struct dirent *de;
    DIR *d;

    if (dir == NULL || dir[0] != '/')
        return TIER_INVALID_ARGUMENT;
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno_code(errno, &permanent);
    if ((d = fdopendir(fd)) == NULL) {
        rc = errno_code(errno, &permanent);
        close(fd);
        return rc;
    }
    while ((errno = 0, de = readdir(d)) != NULL) {
        struct stat st;
        int64_t changed_ms;

        if (strncmp(de->d_name, TIER_MOVE_TMP_PREFIX, plen) != 0)
            continue;
        if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || S_ISDIR(st.st_mode))
            continue;
        /* ctime, not mtime: the copy sets the source's (old) mtime on the
         * temporary, while ctime always moves with our writes. */
        changed_ms = (int64_t)st.st_ctim.tv_sec * 1000 + st.st_ctim.tv_nsec / 1000000;
        if (older_than_ms > 0 && now - changed_ms < older_than_ms)
            continue;
        if (unlinkat(fd, de->d_name, 0) != 0) {
            if (errno != ENOENT && rc == TIER_OK)
                rc = errno_code(errno, &permanent);
            continue;
        }
        tier_info("removed stale temporary %s/%s", dir, de->d_name);
    }
    if (errno != 0 && rc == TIER_OK)
        rc = errno_code(errno, &permanent);
    closedir(d);
    return rc;
}

int tier_move_sync_dir(const char *dir, char *reason, size_t len)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int e = 0;

    if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL))
        e = errno;
    if (fd >= 0)
        close(fd);
    if (e == 0)
        return TIER_OK;
    if (reason != NULL)
        snprintf(reason, len, "fsync directory %s: %s", dir, strerror(e));
    return e == ENOENT || e == ENOTDIR ? TIER_FAILED_PRECONDITION : TIER_UNAVAILABLE;
}
