/*
 * tier_token.c -- reading a bearer token from a file or the environment
 * (see tier_token.h).
 */
#include "tier_token.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tier_status.h"

/* Printable ASCII without spaces: what a bearer token may hold. */
static int check(const char *t, const char *from, char *err, size_t errlen)
{
    size_t n = strlen(t);

    if (n == 0 || n > TIER_TOKEN_MAX) {
        snprintf(err, errlen, "%s: a token is 1 to %d characters", from, TIER_TOKEN_MAX);
        return TIER_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < n; i++)
        if (t[i] <= ' ' || t[i] > '~') {
            snprintf(err, errlen, "%s: a token is printable ASCII without spaces", from);
            return TIER_INVALID_ARGUMENT;
        }
    return TIER_OK;
}

int tier_token_read(const char *path, char *buf, size_t len, char *err, size_t errlen)
{
    char line[TIER_TOKEN_MAX + 2];
    struct stat st;
    ssize_t n;
    int fd;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "cannot read token file %s: %s", path, strerror(errno));
        return TIER_NOT_FOUND;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
        snprintf(err, errlen,
                 "token file %s is not a regular file of mode 600 (mode %03o): "
                 "chmod 600 it",
                 path, (unsigned)(st.st_mode & 0777));
        close(fd);
        return TIER_PERMISSION_DENIED;
    }
    n = read(fd, line, sizeof(line) - 1);
    close(fd);
    if (n < 0)
        n = 0;
    line[n] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    int rv = check(line, path, err, errlen);
    if (rv == TIER_OK && strlen(line) >= len) {
        snprintf(err, errlen, "%s: token too long", path);
        rv = TIER_INVALID_ARGUMENT;
    }
    if (rv == TIER_OK)
        snprintf(buf, len, "%s", line);
    memset(line, 0, sizeof(line));
    return rv;
}

int tier_token_find(const char *file, char *buf, size_t len, char *err, size_t errlen)
{
    const char *v;

    buf[0] = '\0';
    if (file == NULL || *file == '\0')
        file = getenv("TIER_TOKEN_FILE");
    if (file != NULL && *file != '\0')
        return tier_token_read(file, buf, len, err, errlen);
    if ((v = getenv("TIER_TOKEN")) == NULL || *v == '\0')
        return TIER_OK;
    int rv = check(v, "TIER_TOKEN", err, errlen);
    if (rv == TIER_OK && strlen(v) >= len) {
        snprintf(err, errlen, "TIER_TOKEN: too long");
        rv = TIER_INVALID_ARGUMENT;
    }
    if (rv == TIER_OK)
        snprintf(buf, len, "%s", v);
    return rv;
}
