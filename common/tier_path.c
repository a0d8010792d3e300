/*
 * tier_path.c -- see tier_path.h.
 */
#include "tier_path.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tier_name.h"

/* Appends "/comp" to out (length *n), or pops the last component for "..". */
static bool push_comp(char *out, size_t cap, size_t *n, const char *comp, size_t clen)
{
    if (clen == 2 && comp[0] == '.' && comp[1] == '.') {
        while (*n > 0 && out[*n - 1] != '/')
            (*n)--;
        if (*n > 0)
            (*n)--; /* the '/' too; "/" alone is length 0 here */
        out[*n] = '\0';
        return true;
    }
    if (*n + 1 + clen + 1 > cap)
        return false;
    out[(*n)++] = '/';
    memcpy(out + *n, comp, clen);
    *n += clen;
    out[*n] = '\0';
    return true;
}

/* Resolves out (length *n) through realpath; false when it does not exist. */
static bool resolve(char *out, size_t cap, size_t *n)
{
    char real[PATH_MAX];
    if (realpath(*n ? out : "/", real) == NULL)
        return false;
    size_t rl = strcmp(real, "/") == 0 ? 0 : strlen(real);
    if (rl + 1 > cap)
        return false;
    memcpy(out, real, rl);
    out[rl] = '\0';
    *n = rl;
    return true;
}

static const char *is_dir(const char *p)
{
    struct stat sb;
    if (stat(*p ? p : "/", &sb) != 0)
        return "cannot be read";
    return S_ISDIR(sb.st_mode)   ? NULL
           : S_ISREG(sb.st_mode) ? "is a regular file"
                                 : "is not a directory";
}

const char *tier_path_canon(const char *in, char *out, size_t outlen)
{
    size_t len = strlen(in), n = 0;
    bool exists = true;

    if (len == 0 || in[0] != '/')
        return "must be absolute";
    if (len >= TIER_PATH_MAX || outlen < 2)
        return "is too long";
    if (!tier_utf8_valid(in, len))
        return "is not UTF-8";
    if (tier_has_control(in, len))
        return "holds a control character";
    out[0] = '\0';
    for (const char *p = in; *p;) {
        while (*p == '/')
            p++;
        size_t cl = strcspn(p, "/");
        if (cl == 0 || (cl == 1 && p[0] == '.')) {
            p += cl;
            continue;
        }
        char prev[TIER_PATH_MAX];
        memcpy(prev, out, n + 1);
        if (!push_comp(out, outlen, &n, p, cl))
            return "is too long";
        p += cl;
        /* Once a component is missing, the rest is only a name: it holds
         * no symlink, and mkdir will create it. */
        if (exists && !resolve(out, outlen, &n)) {
            const char *why = is_dir(prev);
            if (why != NULL)
                return why; /* "/a/file/x": a file where a directory must be */
            exists = false;
        }
    }
    if (exists && is_dir(out) != NULL)
        return is_dir(out);
    if (n == 0)
        snprintf(out, outlen, "/");
    return NULL;
}

bool tier_path_under(const char *path, const char *dir)
{
    size_t dl = strlen(dir);
    if (strcmp(dir, "/") == 0)
        return strcmp(path, "/") != 0;
    return strncmp(path, dir, dl) == 0 && path[dl] == '/';
}

const char *tier_path_forbidden(const char *canon)
{
    /* Where the system lives: a level there could overwrite or delete what
     * the machine runs on.  /var/lib and /var/log hold other services'
     * state; /tmp and /var/tmp are fine (tests use them). */
    static const char *const sys[] = {"/etc",     "/proc",      "/sys",  "/dev",     "/boot",
                                      "/usr",     "/bin",       "/sbin", "/lib",     "/lib32",
                                      "/lib64",   "/libx32",    "/run",  "/var/run", "/var/lib",
                                      "/var/log", "/var/spool", "/snap", NULL};
    if (strcmp(canon, "/") == 0)
        return "is the root directory";
    for (size_t i = 0; sys[i] != NULL; i++)
        if (strcmp(canon, sys[i]) == 0 || tier_path_under(canon, sys[i]))
            return "is in a system directory";
    return NULL;
}
