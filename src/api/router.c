/*
 * router.c - the route table, the one authentication entry point, CORS, body
 * limits, dispatch to the handlers and the response on the wire.
 *
 * For each request server.c calls (always on the worker thread that owns
 * the connection):
 *   tn__route_begin     once the headers are in: route, authenticate (admin
 *                       key, or bearer token -> API key -> tenant, looked up
 *                       on every request), scopes, rate limits, body limits,
 *                       content type.  Errors are recorded (r->err_*), not
 *                       queued: libmicrohttpd 0.9.75 answers "Connection:
 *                       close" to a response queued on the first call, which
 *                       ruins keep-alive.
 *   tn__route_body      JSON bodies are buffered up to the item limit; file
 *                       uploads are streamed to a temp file by api_files.c.
 *   tn__route_dispatch  for tenant routes open a session of the key's
 *                       tenant, run the handler, close the session.
 *   tn__route_respond   the response (or the early error) with its headers.
 *   tn__route_end       audit of operator requests.
 *
 * Tenant ids never leave through here: handlers of tenant routes see only
 * their session; errors are fixed generic words.
 */
#include "clock.h"
#include "router.h"

#include "admin.h"
#include "handlers.h"

#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- routes --------------------------------------------------------------- */

/* AUTH_OPERATOR: a bearer token that an operator key got (src/operator.h). */
enum { AUTH_NONE, AUTH_ADMIN, AUTH_ADMIN_OR_UNIX, AUTH_TENANT, AUTH_KEY_IN_BODY, AUTH_OPERATOR };
enum { BODY_NONE, BODY_JSON, BODY_FILE };

typedef struct tn__route {
    int method;
    const char *pattern; /* segments; "*" one segment, "**" the rest (>= 1) */
    int auth;
    unsigned scope;
    int body;
    tn__handler fn;
} tn__route;

static const tn__route routes[] = {
    {TN__M_GET, "/healthz", AUTH_NONE, 0, BODY_NONE, tn__health},
    {TN__M_GET, "/metrics", AUTH_ADMIN_OR_UNIX, 0, BODY_NONE, tn__metrics},
    {TN__M_POST, "/v1/auth", AUTH_KEY_IN_BODY, 0, BODY_JSON, tn__api_auth},
    {TN__M_GET, "/v1/me", AUTH_TENANT, 0, BODY_NONE, tn__api_me},
    {TN__M_GET, "/v1/items", AUTH_TENANT, TN__SCOPE_ITEMS_READ, BODY_NONE, tn__api_items_list},
    {TN__M_POST, "/v1/items", AUTH_TENANT, TN__SCOPE_ITEMS_WRITE, BODY_JSON, tn__api_item_create},
    {TN__M_GET, "/v1/items/*", AUTH_TENANT, TN__SCOPE_ITEMS_READ, BODY_NONE, tn__api_item_get},
    {TN__M_PUT, "/v1/items/*", AUTH_TENANT, TN__SCOPE_ITEMS_WRITE, BODY_JSON, tn__api_item_put},
    {TN__M_DELETE, "/v1/items/*", AUTH_TENANT, TN__SCOPE_ITEMS_WRITE, BODY_NONE,
     tn__api_item_delete},
    {TN__M_GET, "/v1/files", AUTH_TENANT, TN__SCOPE_FILES_READ, BODY_NONE, tn__api_files_list},
    {TN__M_GET, "/v1/files/**", AUTH_TENANT, TN__SCOPE_FILES_READ, BODY_NONE, tn__api_file_get},
    {TN__M_PUT, "/v1/files/**", AUTH_TENANT, TN__SCOPE_FILES_WRITE, BODY_FILE, tn__api_file_put},
    {TN__M_DELETE, "/v1/files/**", AUTH_TENANT, TN__SCOPE_FILES_WRITE, BODY_NONE,
     tn__api_file_delete},
    {TN__M_GET, "/v1/sync/status", AUTH_TENANT, 0, BODY_NONE, tn__api_sync_status},
    {TN__M_POST, "/v1/admin/tenants", AUTH_ADMIN, 0, BODY_JSON, tn__api_tenants_create},
    {TN__M_GET, "/v1/admin/tenants", AUTH_ADMIN, 0, BODY_NONE, tn__api_tenants_list},
    {TN__M_PATCH, "/v1/admin/tenants/*", AUTH_ADMIN, 0, BODY_JSON, tn__api_tenant_patch},
    {TN__M_DELETE, "/v1/admin/tenants/*", AUTH_ADMIN, 0, BODY_NONE, tn__api_tenant_delete},
    {TN__M_POST, "/v1/admin/tenants/*/keys", AUTH_ADMIN, 0, BODY_JSON, tn__api_keys_create},
    {TN__M_GET, "/v1/admin/tenants/*/keys", AUTH_ADMIN, 0, BODY_NONE, tn__api_keys_list},
    {TN__M_POST, "/v1/admin/keys/*/rotate", AUTH_ADMIN, 0, BODY_JSON, tn__api_key_rotate},
    {TN__M_DELETE, "/v1/admin/keys/*", AUTH_ADMIN, 0, BODY_NONE, tn__api_key_delete},
    {TN__M_GET, "/v1/admin/audit", AUTH_ADMIN, 0, BODY_NONE, tn__api_audit},
    {TN__M_GET, "/v1/admin/sync", AUTH_ADMIN, 0, BODY_NONE, tn__api_admin_sync},
    {TN__M_POST, "/v1/admin/sync/run", AUTH_ADMIN_OR_UNIX, 0, BODY_NONE, tn__api_sync_run},
    {TN__M_POST, "/v1/admin/operators", AUTH_ADMIN, 0, BODY_JSON, tn__api_operators_create},
    {TN__M_GET, "/v1/admin/operators", AUTH_ADMIN, 0, BODY_NONE, tn__api_operators_list},
    {TN__M_DELETE, "/v1/admin/operators/*", AUTH_ADMIN, 0, BODY_NONE, tn__api_operator_revoke},
    {TN__M_PUT, "/v1/admin/operators/*/grants/*", AUTH_ADMIN, 0, BODY_JSON,
     tn__api_operator_grant},
    {TN__M_DELETE, "/v1/admin/operators/*/grants/*", AUTH_ADMIN, 0, BODY_NONE,
     tn__api_operator_ungrant},
    {TN__M_GET, "/v1/operator/audit", AUTH_OPERATOR, 0, BODY_NONE, tn__api_operator_audit},
};
#define NROUTES (sizeof routes / sizeof routes[0])

static int method_of(const char *m) {
    for (int i = 0; i < TN__NMETHODS; i++)
        if (strcmp(m, tn__method_name(1 << i)) == 0) return 1 << i;
    return 0;
}

/* Matches the raw (still percent-encoded) path against pattern; captured
 * segments are stored as [start, end) offsets into path. */
static int match(const char *pattern, const char *path, size_t cap[2][2]) {
    const char *p = pattern, *u = path;
    int n = 0;
    while (*p && *u) {
        if (*p != '/' || *u != '/') return 0;
        p++, u++;
        size_t pl = strcspn(p, "/"), ul = strcspn(u, "/");
        if (pl == 2 && p[0] == '*' && p[1] == '*') {
            if (!*u) return 0;
            cap[n][0] = (size_t)(u - path);
            cap[n][1] = strlen(path);
            return 1;
        }
        if (pl == 1 && p[0] == '*') {
            if (ul == 0 || n == 2) return 0;
            cap[n][0] = (size_t)(u - path);
            cap[n][1] = (size_t)(u - path) + ul;
            n++;
        } else if (pl != ul || memcmp(p, u, pl) != 0) {
            return 0;
        }
        p += pl, u += ul;
    }
    return !*p && !*u;
}

/* ---- the authentication entry point --------------------------------------- */

/*
 * The one place a caller becomes someone: the admin (X-Admin-Key), or a
 * tenant key reached through a bearer token, or an operator acting in one
 * granted tenant through an operator token (its token row, operator and grant
 * are looked up again here on every request).  The tenant always comes from
 * the key or token row in the store, never from the request.
 */
/* The bucket a failed bearer token is charged to (throttle.c): a token we
 * signed that no longer holds is "stale"; anything forged, malformed or
 * absent is "anon".  Allow-list: only the reasons that come after the
 * signature held are stale. */
static const char *bearer_principal(const char *why) {
    static const char *const after_signature[] = {"TN__JWT_EPAYLOAD", "TN__JWT_ECLAIMS",
                                                  "TN__JWT_EEXPIRED", "TN__JWT_ENOTYET"};
    if (strncmp(why, "TN__JWT_", 8) != 0) /* a lookup after the JWT verified */
        return strcmp(why, "no bearer token") == 0 ? "anon" : "stale";
    for (size_t i = 0; i < sizeof after_signature / sizeof after_signature[0]; i++)
        if (strcmp(why, after_signature[i]) == 0) return "stale";
    return "anon";
}

static void authenticate(tn__req *r) {
    const tn__route *rt = r->route;
    if (rt->auth == AUTH_NONE) return;
    if (rt->auth == AUTH_ADMIN_OR_UNIX && r->is_unix) {
        r->is_admin = 1;
        return;
    }
    if (rt->auth == AUTH_KEY_IN_BODY) return; /* tn__api_auth checks the key */
    /* The credential is checked first: one that holds is never refused for
     * others' failures; only failures are throttled (throttle.c). */
    if (rt->auth == AUTH_ADMIN || rt->auth == AUTH_ADMIN_OR_UNIX) {
        const char *k = tn__req_header(r, "X-Admin-Key");
        if (k && tn_admin_key_verify(r->srv->st, k) == TN_OK) {
            r->is_admin = 1;
            return;
        }
        int formed = k && strlen(k) == TN_ADMIN_KEY_LEN - 1 && strncmp(k, "tna_", 4) == 0;
        tn__auth_refuse(r, k ? "wrong admin key" : "no admin key", formed ? "admin" : "anon");
        return;
    }
    const char *h = tn__req_header(r, "Authorization");
    const char *why = "no bearer token";
    int rc = TN_DENIED;
    if (h && strncasecmp(h, "Bearer ", 7) == 0) {
        const char *tok = h + 7;
        while (*tok == ' ') tok++;
        rc = tn__token_verify(r->srv->auth, tok, &r->key, &why);
    }
    if (rc != TN_OK) {
        if (rc == TN_DENIED) {
            tn__auth_refuse(r, why, bearer_principal(why));
        } else {
            tn__req_fail(r, tn_err_retryable(rc) ? 503 : 500,
                         tn_err_retryable(rc) ? "unavailable" : "internal error", 1);
        }
        return;
    }
    /* An operator token acts as a tenant key on tenant routes; the operator
     * routes take nothing else. */
    if ((r->key.scopes & rt->scope) != rt->scope ||
        (rt->auth == AUTH_OPERATOR && !r->key.operator_id[0])) {
        tn__req_fail(r, 403, "forbidden", 0);
        return;
    }
    tn__tenant_throttled(r);
}

/* ---- CORS -------------------------------------------------------------------
 *
 * For web apps served on the appliance; off unless origins are configured.
 * A preflight (OPTIONS with Origin and Access-Control-Request-Method) is
 * answered by the router without authentication, because browsers send no
 * credentials with it; it reaches no handler and reveals only which methods
 * a path takes.  An allowed origin is answered with the configured spelling,
 * never with the request's bytes; "*" is sent only when configured alone and
 * never together with credentials (tn__cors_check refuses that).  Once CORS
 * is on, every response carries "Vary: Origin" so a cache never hands one
 * origin's answer to another.
 */
#define CORS_ALLOW_HEADERS "Authorization, Content-Type, If-Match, If-None-Match, Range"
#define CORS_EXPOSE_HEADERS "ETag, Retry-After, X-Request-Id, Content-Range, Accept-Ranges"
#define CORS_MAX_AGE "600"

/* "http://host[:port]" or "https://host[:port]": a DNS name or an IPv4 or
 * bracketed IPv6 address, no path, no user info, no trailing slash. */
static int origin_valid(const char *o, size_t n) {
    size_t k;
    if (n > 7 && strncmp(o, "http://", 7) == 0) k = 7;
    else if (n > 8 && strncmp(o, "https://", 8) == 0) k = 8;
    else return 0;
    size_t h0 = k;
    if (o[k] == '[') {
        for (k++; k < n && o[k] != ']'; k++)
            if (!isxdigit((unsigned char)o[k]) && o[k] != ':' && o[k] != '.') return 0;
        if (k == n || k == h0 + 1) return 0;
        k++;
    } else {
        while (k < n && (isalnum((unsigned char)o[k]) || o[k] == '-' || o[k] == '.')) k++;
        if (k == h0 || o[h0] == '.' || o[k - 1] == '.') return 0;
    }
    if (k < n && o[k] == ':') {
        size_t p0 = ++k;
        while (k < n && isdigit((unsigned char)o[k])) k++;
        if (k == p0 || k - p0 > 5 || atoi(o + p0) > 65535) return 0;
    }
    return k == n;
}

/* Calls fn on each trimmed entry of a comma-separated list; stops at and
 * returns fn's first non-zero result. */
static int each_entry(const char *list, int (*fn)(const char *e, size_t n, void *arg), void *arg) {
    const char *p = list;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        const char *a = p;
        while (n && (*a == ' ' || *a == '\t')) a++, n--;
        while (n && (a[n - 1] == ' ' || a[n - 1] == '\t')) n--;
        int rc = fn(a, n, arg);
        if (rc) return rc;
        if (!e) return 0;
        p = e + 1;
    }
}

typedef struct cors_scan {
    int count, star, bad;
    char **out; /* when set: receives copies */
} cors_scan;

static int cors_entry(const char *e, size_t n, void *arg) {
    cors_scan *cs = arg;
    if (n == 1 && e[0] == '*') cs->star = 1;
    else if (!origin_valid(e, n)) return cs->bad = 1;
    if (cs->out && !(cs->out[cs->count] = strndup(e, n))) return cs->bad = 2;
    cs->count++;
    return 0;
}

int tn__cors_check(const char *origins, int credentials, const char **err) {
    *err = NULL;
    if (!origins || !*origins) return credentials ? (*err = "CORS credentials need allowed "
                                                            "origins", TN_INVALID) : TN_OK;
    cors_scan cs = {0, 0, 0, NULL};
    each_entry(origins, cors_entry, &cs);
    if (cs.bad) *err = "a CORS origin must be scheme://host[:port] (http or https, no path), or *";
    else if (cs.star && cs.count > 1) *err = "the CORS origin * must stand alone";
    else if (cs.star && credentials) *err = "the CORS origin * cannot be used with credentials";
    return *err ? TN_INVALID : TN_OK;
}

int tn__cors_setup(tn__srv *s, const char **err) {
    const char *list = s->cfg.cors_origins;
    int rc = tn__cors_check(list, s->cfg.cors_credentials, err);
    if (rc != TN_OK || !list || !*list) return rc;
    cors_scan cs = {0, 0, 0, NULL};
    each_entry(list, cors_entry, &cs);
    cs.out = calloc((size_t)cs.count + 1, sizeof *cs.out);
    *err = "out of memory";
    if (!cs.out) return TN_NOMEM;
    s->cors = cs.out; /* freed by tn__http_stop, even half filled */
    cs.count = 0;
    if (each_entry(list, cors_entry, &cs)) return TN_NOMEM;
    s->cors_any = cs.star;
    *err = NULL;
    return TN_OK;
}

/* The configured spelling of the request's origin, or NULL. */
static const char *cors_origin(tn__req *r) {
    tn__srv *s = r->srv;
    const char *o = s->cors ? tn__req_header(r, "Origin") : NULL;
    if (!o) return NULL;
    if (s->cors_any) return "*";
    for (char **c = s->cors; *c; c++)
        if (strcasecmp(*c, o) == 0) return *c;
    return NULL;
}

static int header_allowed(const char *e, size_t n, void *arg) {
    (void)arg;
    static const char *const ok[] = {"authorization", "content-type", "if-match",
                                     "if-none-match", "range"};
    if (n == 0) return 0;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strlen(ok[i]) == n && strncasecmp(ok[i], e, n) == 0) return 0;
    return 1;
}

/* The methods in the mask, "GET, HEAD, ..." into resp.allow. */
static void allow_list(tn__req *r, int allowed) {
    size_t n = 0;
    r->resp.allow[0] = '\0';
    for (int i = 0; i < TN__NMETHODS; i++)
        if (allowed & (1 << i))
            n += (size_t)snprintf(r->resp.allow + n, sizeof r->resp.allow - n, "%s%s",
                                  n ? ", " : "", tn__method_name(1 << i));
}

/* OPTIONS: the methods of the path in resp.allow; a preflight from an
 * allowed origin for one of them gets 204 and the CORS headers (queue()),
 * any other preflight 403 without them. */
static void options(tn__req *r, int allowed) {
    r->preflight = 1;
    tn__resp_empty(&r->resp, 204);
    allowed |= TN__M_OPTIONS;
    allow_list(r, allowed);
    const char *want = tn__req_header(r, "Access-Control-Request-Method");
    if (tn__req_header(r, "Origin") && want) {
        const char *hdrs = tn__req_header(r, "Access-Control-Request-Headers");
        if (!cors_origin(r) || !(method_of(want) & allowed & ~TN__M_OPTIONS) ||
            (hdrs && each_entry(hdrs, header_allowed, NULL)))
            return tn__req_fail(r, 403, "forbidden", 0);
    }
}

static void cors_headers(tn__req *r, struct MHD_Response *resp) {
    if (!r->srv->cors) return;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Origin");
    const char *origin = cors_origin(r);
    if (!origin) return;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if (r->srv->cfg.cors_credentials)
        MHD_add_response_header(resp, "Access-Control-Allow-Credentials", "true");
    if (r->preflight && r->resp.status == 204) {
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", r->resp.allow);
        MHD_add_response_header(resp, "Access-Control-Allow-Headers", CORS_ALLOW_HEADERS);
        MHD_add_response_header(resp, "Access-Control-Max-Age", CORS_MAX_AGE);
    } else {
        MHD_add_response_header(resp, "Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS);
    }
}

/* ---- request lifecycle ---------------------------------------------------- */

static int json_content_type(const char *ct) {
    if (!ct) return 0;
    while (*ct == ' ') ct++;
    if (strncasecmp(ct, "application/json", 16) != 0) return 0;
    ct += 16;
    while (*ct == ' ') ct++;
    return *ct == '\0' || *ct == ';';
}

void tn__route_begin(tn__req *r, const char *url, const char *method) {
    r->method = method_of(method);
    const char *cl = tn__req_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = tn__req_header(r, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    r->content_length = -1;
    if (cl) {
        char *end;
        errno = 0;
        long long v = strtoll(cl, &end, 10);
        if (errno || *end || v < 0) return tn__req_fail(r, 400, "bad request", 0);
        r->content_length = v;
    }
    r->has_body = (cl && r->content_length > 0) || te != NULL;

    /* Route on the raw path: an encoded '/' inside a parameter stays inside it. */
    size_t cap[2][2] = {{0, 0}, {0, 0}};
    int allowed = 0, path_found = 0;
    const tn__route *rt = NULL;
    for (size_t i = 0; i < NROUTES; i++) {
        size_t c[2][2] = {{0, 0}, {0, 0}};
        if (!match(routes[i].pattern, url, c)) continue;
        path_found = 1;
        int m = routes[i].method | (routes[i].method == TN__M_GET ? TN__M_HEAD : 0);
        allowed |= m;
        if ((m & r->method) && !rt) {
            rt = &routes[i];
            memcpy(cap, c, sizeof cap);
        }
    }
    if (!path_found) return tn__req_fail(r, 404, "not found", 0);
    if (r->method == TN__M_OPTIONS) return options(r, allowed);
    if (!rt) {
        allow_list(r, allowed);
        return tn__req_fail(r, 405, "method not allowed", 0);
    }
    r->route = rt;
    r->pattern = rt->pattern;
    for (int i = 0; i < 2; i++) {
        if (cap[i][1] <= cap[i][0]) continue;
        int rc = tn__pct_decode(url + cap[i][0], cap[i][1] - cap[i][0], &r->arg[i]);
        if (rc == -2) return tn__req_fail(r, 503, "unavailable", 1);
        /* A file name that is not valid is a client error (400), raw or
         * encoded; any other parameter simply names nothing (404). */
        int is_file = strstr(rt->pattern, "/**") != NULL;
        if (rc != 0 || (is_file && !tn_file_name_valid(r->arg[i])))
            return tn__req_fail(r, is_file ? 400 : 404, is_file ? "bad request" : "not found", 0);
    }

    authenticate(r);
    if (r->err_status) return;

    if (rt->body == BODY_JSON) {
        if (r->has_body && !json_content_type(tn__req_header(r, MHD_HTTP_HEADER_CONTENT_TYPE)))
            return tn__req_fail(r, 415, "unsupported media type", 0);
        if (r->content_length > r->srv->cfg.max_item_bytes)
            return tn__req_fail(r, 413, "too large", 0);
    } else if (rt->body == BODY_NONE) {
        if (r->content_length > r->srv->cfg.max_item_bytes)
            return tn__req_fail(r, 413, "too large", 0);
    } else if (rt->body == BODY_FILE) {
        tn__upload_begin(r);
    }
}

/* Buffers a JSON body up to the item limit (bodies of other routes too:
 * they are bounded and ignored). */
void tn__route_body(tn__req *r, const char *data, size_t n) {
    if (r->route && r->route->body == BODY_FILE) {
        tn__upload_data(r, data, n);
        return;
    }
    if ((int64_t)(r->len + n) > r->srv->cfg.max_item_bytes) {
        tn__req_fail(r, 413, "too large", 0);
        return;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 1024;
        while (cap < r->len + n + 1) cap *= 2;
        char *b = realloc(r->body, cap);
        if (!b) {
            tn__req_fail(r, 503, "unavailable", 1);
            return;
        }
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
}

void tn__route_dispatch(tn__req *r) {
    const tn__route *rt = r->route;
    if (rt->auth == AUTH_TENANT && rt->body != BODY_FILE) {
        int rc = tn_session_open(r->srv->st, r->key.tenant_id, &r->s);
        if (rc != TN_OK) {
            /* The tenant went away between the key lookup and now. */
            if (rc == TN_NOTFOUND) tn__resp_error(&r->resp, 401, "unauthorized");
            else tn__resp_code(&r->resp, rc);
            return;
        }
    }
    /* Concurrent writes are not serialized here: the store groups them into
     * shared transactions (src/group.c), one fsync for many requests. */
    rt->fn(r, &r->resp);
    tn_session_close(r->s);
    r->s = NULL;
    if (r->resp.status == 500) {
        char msg[300];
        snprintf(msg, sizeof msg, "request %s failed: %s", r->rid, tn_errmsg(r->srv->st));
        tn__log("error", msg);
    }
}

int tn__route_respond(tn__req *r) {
    tn__resp *o = &r->resp;
    if (r->err_status) {
        char allow[sizeof o->allow];
        memcpy(allow, o->allow, sizeof allow);
        tn__resp_error(o, r->err_status, r->err_msg);
        memcpy(o->allow, allow, sizeof allow);
        o->retry_after = r->err_retry;
    }
    if (!o->status) tn__resp_error(o, 500, "internal error");
    struct MHD_Response *resp;
    if (o->stream) {
        resp = tn__stream_response(o->stream, r->conn);
        if (resp) o->stream = NULL; /* the response holds it now */
    } else if (o->fd >= 0) {
        resp = MHD_create_response_from_fd_at_offset64(o->flen, o->fd, o->off);
        if (resp) o->fd = -1; /* libmicrohttpd closes it now */
    } else {
        resp = MHD_create_response_from_buffer(o->len, o->body, MHD_RESPMEM_MUST_FREE);
        if (resp) o->body = NULL;
    }
    if (!resp) return MHD_NO;
    if (o->ctype && o->status != 204)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, o->ctype);
    MHD_add_response_header(resp, "X-Request-Id", r->rid);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (o->etag[0]) MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, o->etag);
    if (o->allow[0] && (o->status == 405 || (r->preflight && o->status == 204)))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, o->allow);
    cors_headers(r, resp);
    if (o->content_range[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, o->content_range);
    if (o->ranges) MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    if (o->retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", o->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (o->status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)o->status, resp);
    MHD_destroy_response(resp);
    r->queued = 1;
    r->status = o->status;
    return ret;
}

void tn__route_end(tn__req *r) {
    tn__operator_request_audit(r, r->status);
    tn__upload_abort(r);
}

void tn__cors_free(tn__srv *s) {
    for (char **c = s->cors; c && *c; c++) free(*c);
    free(s->cors);
    s->cors = NULL;
}
