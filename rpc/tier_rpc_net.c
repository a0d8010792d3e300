/*
 * tier_rpc_net.c -- listening and dialling an nng socket over tcp://,
 * ipc:// or tls+tcp:// (see tier_rpc_net.h).
 *
 * Why one place: the rpc server, the rpc client, tierd's push socket and
 * the workers' pull sockets all need the same TLS setup, and a TLS mistake
 * made in only one of them (a dialer that forgets to verify) is the kind
 * nobody notices.  Debian's nng does TLS with mbedTLS; nng keeps its own
 * reference to a TLS configuration once it is set on a listener or dialer,
 * so ours is dropped right after.
 */
#include "tier_rpc_net.h"

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tier_status.h"

/* Where Debian keeps the system's CA bundle (package ca-certificates). */
#define SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"
#define PEM_MAX (1u << 20) /* a certificate chain or key file larger than this is not one */

static int fail(char *err, size_t len, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* nng_tls_config_free(NULL) crashes in nng 1.5.2. */
static void tls_free(nng_tls_config *cfg)
{
    if (cfg != NULL)
        nng_tls_config_free(cfg);
}

static int fail(char *err, size_t len, int code, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && len > 0) {
        va_start(ap, fmt);
        vsnprintf(err, len, fmt, ap);
        va_end(ap);
    }
    return code;
}

bool tier_rpc_net_is_tls(const char *url)
{
    return strncmp(url, "tls+tcp://", 10) == 0 || strncmp(url, "tls+tcp4://", 11) == 0 ||
           strncmp(url, "tls+tcp6://", 11) == 0;
}

/* The host part of "scheme://host:port" (brackets of an IPv6 host kept). */
static void url_host(const char *url, char *host, size_t len)
{
    const char *h = strstr(url, "://");
    size_t n;

    h = h != NULL ? h + 3 : url;
    if (*h == '[') {
        const char *close = strchr(h, ']');
        n = close != NULL ? (size_t)(close - h) + 1 : strlen(h);
    } else {
        const char *colon = strrchr(h, ':');
        n = colon != NULL ? (size_t)(colon - h) : strlen(h);
    }
    snprintf(host, len, "%.*s", (int)n, h);
}

bool tier_rpc_net_is_loopback(const char *url)
{
    char host[256];

    if (strncmp(url, "ipc://", 6) == 0 || strncmp(url, "inproc://", 9) == 0)
        return true; /* never leaves the machine */
    if (strstr(url, "://") == NULL)
        return false;
    url_host(url, host, sizeof(host));
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "[::1]") == 0 ||
           strcmp(host, "localhost") == 0;
}

/* Reads a whole PEM file into a NUL-terminated buffer. */
static char *read_pem(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char *buf;
    size_t n;

    if (f == NULL) {
        fail(err, errlen, 0, "cannot read %s", path);
        return NULL;
    }
    buf = malloc(PEM_MAX + 1);
    n = buf != NULL ? fread(buf, 1, PEM_MAX + 1, f) : 0;
    fclose(f);
    if (buf == NULL || n == 0 || n > PEM_MAX) {
        free(buf);
        fail(err, errlen, 0, "%s: empty, unreadable or larger than 1 MiB", path);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* A server's TLS configuration: its certificate chain and key. */
int tier_rpc_net_server_tls(nng_tls_config **out, const tier_rpc_tls *tls, char *err, size_t len)
{
    nng_tls_config *cfg;
    char *cert, *key;
    struct stat st;
    int rv;

    if (tls == NULL || tls->cert_file == NULL || tls->key_file == NULL)
        return fail(err, len, TIER_INVALID_ARGUMENT,
                    "a tls+tcp:// or https:// address needs a certificate and a key (tls_cert, "
                    "tls_key)");
    /* Like ssh with its host keys: a key others can read is not secret. */
    if (stat(tls->key_file, &st) == 0 && (st.st_mode & 077) != 0)
        return fail(err, len, TIER_PERMISSION_DENIED,
                    "%s is readable by group or others (mode %03o): chmod 600 it", tls->key_file,
                    (unsigned)(st.st_mode & 0777));
    if ((cert = read_pem(tls->cert_file, err, len)) == NULL)
        return TIER_INVALID_ARGUMENT;
    if ((key = read_pem(tls->key_file, err, len)) == NULL) {
        free(cert);
        return TIER_INVALID_ARGUMENT;
    }
    if ((rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_SERVER)) == 0) {
        if ((rv = nng_tls_config_own_cert(cfg, cert, key, NULL)) != 0) {
            tls_free(cfg);
            fail(err, len, 0, "certificate %s or key %s: %s", tls->cert_file, tls->key_file,
                 nng_strerror(rv));
        }
    } else {
        fail(err, len, 0, "tls: %s", nng_strerror(rv));
    }
    /* The key's text must not linger in freed memory. */
    memset(key, 0, strlen(key));
    free(key);
    free(cert);
    if (rv != 0)
        return TIER_INVALID_ARGUMENT;
    *out = cfg;
    return TIER_OK;
}

/* A client's TLS configuration: whom to trust, and which name the server's
 * certificate must carry.  Verification is always required. */
static int client_config(nng_tls_config **out, const char *url, const tier_rpc_tls *tls, char *err,
                         size_t len)
{
    const char *ca = tls != NULL && tls->ca_file != NULL ? tls->ca_file : SYSTEM_CA_FILE;
    nng_tls_config *cfg;
    char host[256];
    int rv;

    if (tls != NULL && tls->server_name != NULL)
        snprintf(host, sizeof(host), "%s", tls->server_name);
    else
        url_host(url, host, sizeof(host));
    if ((rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT)) != 0)
        return fail(err, len, TIER_INTERNAL, "tls: %s", nng_strerror(rv));
    if ((rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED)) != 0 ||
        (rv = nng_tls_config_ca_file(cfg, ca)) != 0 ||
        (rv = nng_tls_config_server_name(cfg, host)) != 0) {
        tls_free(cfg);
        return fail(err, len, TIER_INVALID_ARGUMENT, "tls: CA file %s: %s", ca, nng_strerror(rv));
    }
    *out = cfg;
    return TIER_OK;
}

int tier_rpc_net_listen(nng_socket s, const char *url, const tier_rpc_tls *tls, char *err,
                        size_t len)
{
    nng_tls_config *cfg = NULL;
    nng_listener l;
    int rv;

    if (tier_rpc_net_is_tls(url) && (rv = tier_rpc_net_server_tls(&cfg, tls, err, len)) != TIER_OK)
        return rv;
    if ((rv = nng_listener_create(&l, s, url)) != 0) {
        tls_free(cfg);
        return fail(err, len, TIER_INVALID_ARGUMENT, "%s: %s", url, nng_strerror(rv));
    }
    if (cfg != NULL) {
        rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, cfg);
        tls_free(cfg); /* the listener holds its own reference */
        if (rv != 0) {
            nng_listener_close(l);
            return fail(err, len, TIER_INTERNAL, "%s: tls: %s", url, nng_strerror(rv));
        }
    }
    if ((rv = nng_listener_start(l, 0)) != 0) {
        nng_listener_close(l);
        return fail(err, len, rv == NNG_EADDRINUSE ? TIER_ALREADY_EXISTS : TIER_INVALID_ARGUMENT,
                    "cannot listen on %s: %s", url, nng_strerror(rv));
    }
    return TIER_OK;
}

int tier_rpc_net_dial(nng_socket s, const char *url, const tier_rpc_tls *tls, char *err, size_t len)
{
    nng_tls_config *cfg = NULL;
    nng_dialer d;
    int rv;

    if (tier_rpc_net_is_tls(url) && (rv = client_config(&cfg, url, tls, err, len)) != TIER_OK)
        return rv;
    if ((rv = nng_dialer_create(&d, s, url)) != 0) {
        tls_free(cfg);
        return fail(err, len, TIER_INVALID_ARGUMENT, "%s: %s", url, nng_strerror(rv));
    }
    if (cfg != NULL) {
        rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg);
        tls_free(cfg);
        if (rv != 0) {
            nng_dialer_close(d);
            return fail(err, len, TIER_INTERNAL, "%s: tls: %s", url, nng_strerror(rv));
        }
    }
    /* Non-blocking: the server may come up later, and nng redials. */
    if ((rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK)) != 0) {
        nng_dialer_close(d);
        return fail(err, len, TIER_INVALID_ARGUMENT, "cannot dial %s: %s", url, nng_strerror(rv));
    }
    return TIER_OK;
}
