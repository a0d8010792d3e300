/*
 * dashboard.c -- the dashboard's static files on tierd's HTTP port:
 * GET / (index.html) and GET /ui/<file>.  docs/DASHBOARD.md describes the
 * page; tierd/ui/ holds its files, which the build embeds into tierd
 * (tierd/ui/embed.cmake -> dashboard_files.c), so tierd serves them with
 * no file to install and the browser fetches nothing from elsewhere.
 *
 * Served without a token: the files hold no data.  The page asks /v1/...
 * for data with the token the user pastes, exactly as any client would.
 * Every answer carries a strict Content-Security-Policy: scripts, styles,
 * images and fetches from this origin only, no inline script, no frames,
 * so an API string that somehow reached the DOM as markup could still not
 * run (the page also only ever sets textContent).
 */
#include "tierd.h"

#include <stdio.h>
#include <string.h>

#include "tier_http.h"

typedef struct {
    const char *name;
    const unsigned char *data;
    size_t len;
} tierd_ui_file;

/* dashboard_files.c, generated */
extern const tierd_ui_file tierd_ui_files[];
extern const size_t tierd_ui_nfiles;

#define CSP                                                                                        \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static const char *content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".png", "image/png"},
    };
    const char *dot = strrchr(name, '.');

    for (size_t i = 0; dot != NULL && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "text/plain; charset=utf-8";
}

static void send_file(tier_http_req *r, const char *name)
{
    for (size_t i = 0; i < tierd_ui_nfiles; i++) {
        if (strcmp(tierd_ui_files[i].name, name) != 0)
            continue;
        tier_http_set_header(r, "Content-Security-Policy", CSP);
        tier_http_set_header(r, "X-Content-Type-Options", "nosniff");
        tier_http_set_header(r, "Referrer-Policy", "no-referrer");
        /* Small, and changed only by a new tierd: revalidating is enough. */
        tier_http_set_header(r, "Cache-Control", "no-cache");
        tier_http_reply(r, 200, content_type(name), tierd_ui_files[i].data, tierd_ui_files[i].len);
        return;
    }
    tier_http_reply(r, 404, "text/plain; charset=utf-8", "not found\n", 10);
}

static void on_index(void *arg, tier_http_req *r)
{
    (void)arg;
    send_file(r, "index.html");
}

/* /ui/<name>: one plain name of the embedded table, nothing else (the
 * table is the whole file system here, so ".." cannot reach anything). */
static void on_ui(void *arg, tier_http_req *r)
{
    const char *p = tier_http_path(r);
    (void)arg;

    if (strncmp(p, "/ui/", 4) != 0 || strchr(p + 4, '/') != NULL) {
        tier_http_reply(r, 404, "text/plain; charset=utf-8", "not found\n", 10);
        return;
    }
    send_file(r, p + 4);
}

int tierd_dashboard_add(struct tier_http_server *h)
{
    int rv;

    if ((rv = tier_http_add(h, "GET", "/", 0, on_index, NULL)) != TIER_OK)
        return rv;
    return tier_http_add(h, "GET", "/ui", TIER_HTTP_PREFIX, on_ui, NULL);
}
