/*
 * http.c - the HTTP server of `tenantry serve`: listening, libmicrohttpd's
 * thread pool on epoll, the one authentication entry point, routing, JSON
 * responses, metrics and request logs.
 *
 * A request's life (on_request, called by libmicrohttpd, always on the one
 * worker thread that owns the connection):
 *   1st call  begin(): route, authenticate (admin key, or bearer token ->
 *             API key -> tenant, looked up on every request), scopes, rate
 *             limits, body limits, content type.  Nothing is queued here:
 *             libmicrohttpd 0.9.75 answers "Connection: close" to a response
 *             queued on the first call, which ruins keep-alive.  The exception
 *             is an error on a request with a body still to come: closing is
 *             then what we want.
 *   body      JSON bodies are buffered up to the item limit; file uploads are
 *             streamed to a temp file by api_files.c.
 *   last call dispatch(): for tenant routes open a session of the key's
 *             tenant, run the handler, close the session, queue the response.
 *   completed on_completed(): metrics, one JSON log line, cleanup.
 *
 * Tenant ids never leave through here: handlers of tenant routes see only
 * their session; errors are fixed generic words; logs carry the method, the
 * path without its query, the status and the duration, never a header value,
 * key, token or body.
 */
#include "clock.h"
#include "http.h"

#include "admin.h"
#include "api_int.h"
#include "json_check.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define JSON_DEPTH 32
/* Bytes of a refused body read and discarded so the error can be sent. */
#define DRAIN_MAX (8 * 1024 * 1024)

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

static const char *const method_names[] = {"GET",   "HEAD",   "POST",   "PUT",
                                            "PATCH", "DELETE", "OPTIONS"};
#define NMETHODS (sizeof method_names / sizeof method_names[0])

static int method_of(const char *m) {
    for (size_t i = 0; i < NMETHODS; i++)
        if (strcmp(m, method_names[i]) == 0) return 1 << i;
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

/* ---- small helpers --------------------------------------------------------- */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into a malloc'd string.  -1 for a bad escape or an
 * encoded NUL (a C string would end there and mean something else). */
static int pct_decode(const char *s, size_t n, char **out) {
    *out = NULL;
    char *d = malloc(n + 1);
    if (!d) return -2;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            d[j++] = s[i];
            continue;
        }
        if (i + 2 >= n) { /* fewer than two characters follow */
            free(d);
            return -1;
        }
        int a = hexval(s[i + 1]), b = hexval(s[i + 2]);
        if (a < 0 || b < 0 || (a == 0 && b == 0)) {
            free(d);
            return -1;
        }
        d[j++] = (char)(a * 16 + b);
        i += 2;
    }
    d[j] = '\0';
    *out = d;
    return 0;
}

cJSON *tn__json_int(int64_t v) {
    char buf[24];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    return cJSON_CreateRaw(buf);
}


cJSON *tn__json_time(int64_t ms) {
    if (ms <= 0) return cJSON_CreateNull();
    char buf[32];
    tn__rfc3339(ms, buf);
    return cJSON_CreateString(buf);
}


/* JSON string escaping for log fields we build ourselves. */
static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

void tn__log(const char *level, const char *msg) {
    char ts[32];
    tn__rfc3339(tn__wall_ms(), ts);
    flockfile(stderr);
    fprintf(stderr, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level);
    json_str(stderr, msg);
    fputs("}\n", stderr);
    funlockfile(stderr);
}

static void mhd_logger(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    tn__log("warn", msg);
}

/* ---- responses ------------------------------------------------------------- */

static void resp_reset(tn__resp *o) {
    free(o->body);
    if (o->fd >= 0) close(o->fd);
    memset(o, 0, sizeof *o);
    o->fd = -1;
}

void tn__resp_json(tn__resp *o, int status, cJSON *j) {
    resp_reset(o);
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!text) {
        tn__resp_error(o, 500, "internal error");
        return;
    }
    o->status = status;
    o->body = text;
    o->len = strlen(text);
    o->ctype = "application/json";
}

void tn__resp_error(tn__resp *o, int status, const char *msg) {
    resp_reset(o);
    size_t n = strlen(msg) + 16;
    o->body = malloc(n);
    if (o->body) {
        snprintf(o->body, n, "{\"error\":\"%s\"}", msg); /* msg: our fixed words */
        o->len = strlen(o->body);
    }
    o->status = status;
    o->ctype = "application/json";
}

void tn__resp_empty(tn__resp *o, int status) {
    resp_reset(o);
    o->status = status;
}

void tn__resp_code(tn__resp *o, int rc) {
    switch (rc) {
    case TN_INVALID: tn__resp_error(o, 400, "bad request"); break;
    case TN_NOTFOUND: tn__resp_error(o, 404, "not found"); break;
    case TN_EXISTS: tn__resp_error(o, 409, "already exists"); break;
    case TN_CONFLICT: tn__resp_error(o, 412, "precondition failed"); break;
    case TN_DENIED: tn__resp_error(o, 403, "forbidden"); break;
    case TN_TOOBIG: tn__resp_error(o, 413, "too large"); break;
    case TN_THROTTLED: tn__resp_error(o, 429, "too many requests"); o->retry_after = 1; break;
    case TN_FULL: tn__resp_error(o, 507, "insufficient storage"); break;
    case TN_QUOTA: tn__resp_error(o, 507, "quota exceeded"); break;
    case TN_BUSY:
    case TN_NOMEM:
    case TN_TIMEOUT:
    case TN_READONLY:
        tn__resp_error(o, 503, "unavailable");
        o->retry_after = 1;
        break;
    default: tn__resp_error(o, 500, "internal error"); break;
    }
}

const char *tn__req_header(tn__req *r, const char *name) {
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

int tn__req_query(tn__req *r, const char *name, char **out) {
    *out = NULL;
    const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
    if (!v) return 0;
    int rc = pct_decode(v, strlen(v), out);
    return rc == 0 ? 1 : -1;
}

int tn__req_limit(tn__req *r, int def, int max) {
    char *v;
    int rc = tn__req_query(r, "limit", &v);
    if (rc == 0) return def;
    long n = -1;
    if (rc > 0 && v[0] >= '0' && v[0] <= '9' && strlen(v) <= 6) {
        char *end;
        n = strtol(v, &end, 10);
        if (*end) n = -1;
    }
    free(v);
    return n >= 1 && n <= max ? (int)n : -1;
}

cJSON *tn__req_json(tn__req *r, tn__resp *out) {
    cJSON *j = NULL;
    if (r->len > 0 && !memchr(r->body, 0, r->len) && tn__json_valid(r->body, r->len, JSON_DEPTH))
        j = cJSON_ParseWithLength(r->body, r->len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        tn__resp_error(out, 400, "bad request");
        return NULL;
    }
    return j;
}

/* ---- health and metrics --------------------------------------------------- */

void tn__health(tn__req *r, tn__resp *out) {
    (void)r;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", "ok");
    tn__resp_json(out, 200, j);
}

void tn__metrics(tn__req *r, tn__resp *out) {
    tn__srv *s = r->srv;
    char buf[2048];
    size_t n = 0;
    n += (size_t)snprintf(buf + n, sizeof buf - n,
                          "# HELP tenantry_http_requests_total Requests answered, by status class.\n"
                          "# TYPE tenantry_http_requests_total counter\n");
    for (int c = 1; c <= 5; c++)
        n += (size_t)snprintf(buf + n, sizeof buf - n,
                              "tenantry_http_requests_total{class=\"%dxx\"} %lld\n", c,
                              (long long)atomic_load(&s->by_class[c]));
    n += (size_t)snprintf(
        buf + n, sizeof buf - n,
        "# HELP tenantry_http_auth_failures_total Failed authentications.\n"
        "# TYPE tenantry_http_auth_failures_total counter\n"
        "tenantry_http_auth_failures_total %lld\n"
        "# HELP tenantry_http_rate_limited_total Requests refused by a rate limit.\n"
        "# TYPE tenantry_http_rate_limited_total counter\n"
        "tenantry_http_rate_limited_total %lld\n"
        "# HELP tenantry_http_in_flight Requests being processed.\n"
        "# TYPE tenantry_http_in_flight gauge\n"
        "tenantry_http_in_flight %lld\n",
        (long long)atomic_load(&s->auth_failures), (long long)atomic_load(&s->rate_limited),
        (long long)atomic_load(&s->in_flight));
    resp_reset(out);
    out->body = strdup(buf);
    out->len = out->body ? strlen(out->body) : 0;
    out->status = out->body ? 200 : 500;
    out->ctype = "text/plain; version=0.0.4";
}

/* ---- the authentication entry point --------------------------------------- */

static void early_error(tn__req *r, int status, const char *msg, int retry) {
    if (r->err_status) return;
    r->err_status = status;
    r->err_msg = msg;
    r->err_retry = retry;
}

void tn__auth_failed(tn__req *r, const char *why) {
    atomic_fetch_add(&r->srv->auth_failures, 1);
    tn__rl_take(r->srv->fail_rl, r->client, tn__wall_ms());
    char detail[160];
    snprintf(detail, sizeof detail, "%s %s: %s", method_names[__builtin_ctz((unsigned)r->method)],
             r->route ? r->route->pattern : "?", why);
    char actor[80];
    snprintf(actor, sizeof actor, "client:%s", r->client);
    tn__auth_audit(r->srv->st, actor, NULL, "auth.failure", detail);
}

/* Throttled clients get 429 before any credential is even looked at. */
static int throttled(tn__req *r) {
    int wait = tn__rl_check(r->srv->fail_rl, r->client, tn__wall_ms());
    if (!wait) return 0;
    atomic_fetch_add(&r->srv->rate_limited, 1);
    early_error(r, 429, "too many requests", wait);
    return 1;
}

/*
 * The one place a caller becomes someone: the admin (X-Admin-Key), or a
 * tenant key reached through a bearer token, or an operator acting in one
 * granted tenant through an operator token (its token row, operator and grant
 * are looked up again here on every request).  The tenant always comes from
 * the key or token row in the store, never from the request.
 */
static void authenticate(tn__req *r) {
    const tn__route *rt = r->route;
    if (rt->auth == AUTH_NONE) return;
    if (rt->auth == AUTH_ADMIN_OR_UNIX && r->is_unix) {
        r->is_admin = 1;
        return;
    }
    if (throttled(r)) return;
    if (rt->auth == AUTH_KEY_IN_BODY) return; /* tn__api_auth checks the key */
    if (rt->auth == AUTH_ADMIN || rt->auth == AUTH_ADMIN_OR_UNIX) {
        const char *k = tn__req_header(r, "X-Admin-Key");
        if (k && tn_admin_key_verify(r->srv->st, k) == TN_OK) {
            r->is_admin = 1;
            return;
        }
        tn__auth_failed(r, k ? "wrong admin key" : "no admin key");
        early_error(r, 401, "unauthorized", 0);
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
            tn__auth_failed(r, why);
            early_error(r, 401, "unauthorized", 0);
        } else {
            early_error(r, tn_err_retryable(rc) ? 503 : 500,
                        tn_err_retryable(rc) ? "unavailable" : "internal error", 1);
        }
        return;
    }
    /* An operator token acts as a tenant key on tenant routes; the operator
     * routes take nothing else. */
    if ((r->key.scopes & rt->scope) != rt->scope ||
        (rt->auth == AUTH_OPERATOR && !r->key.operator_id[0])) {
        early_error(r, 403, "forbidden", 0);
        return;
    }
    int wait = tn__rl_take(r->srv->key_rl, r->key.key_id, tn__wall_ms());
    /* The tenant's own rate (its settings, read with the key on this very
     * request), shared by all its keys and operators.  The bucket is named
     * after the rate too, so a changed setting starts from a full bucket. */
    if (!wait && r->key.rate_limit > 0) {
        double burst = r->key.burst >= 1 ? r->key.burst : fmax(1, 2 * r->key.rate_limit);
        char k[96];
        /* Valid settings keep this within the limiter's key length; past it
         * (a hand-edited row), one bucket per tenant. */
        if (snprintf(k, sizeof k, "t:%s:%g:%g", r->key.tenant_id, r->key.rate_limit, burst) >
            TN__RL_KEY_MAX)
            snprintf(k, sizeof k, "t:%s", r->key.tenant_id);
        wait = tn__rl_take_at(r->srv->key_rl, k, r->key.rate_limit, burst, tn__wall_ms());
    }
    if (wait) {
        atomic_fetch_add(&r->srv->rate_limited, 1);
        early_error(r, 429, "too many requests", wait);
    }
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

static int cors_setup(tn__srv *s, const char **err) {
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
    for (size_t i = 0; i < NMETHODS; i++)
        if (allowed & (1 << i))
            n += (size_t)snprintf(r->resp.allow + n, sizeof r->resp.allow - n, "%s%s",
                                  n ? ", " : "", method_names[i]);
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
            return early_error(r, 403, "forbidden", 0);
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

static void client_of(tn__req *r) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    snprintf(r->client, sizeof r->client, "unknown");
    if (!sa) return;
    if (sa->sa_family == AF_UNIX) {
        r->is_unix = 1;
        snprintf(r->client, sizeof r->client, "unix");
    } else if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->client,
                  sizeof r->client);
    } else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, r->client,
                  sizeof r->client);
    }
}

static void begin(tn__req *r, const char *url, const char *method) {
    r->method = method_of(method);
    const char *cl = tn__req_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = tn__req_header(r, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    r->content_length = -1;
    if (cl) {
        char *end;
        errno = 0;
        long long v = strtoll(cl, &end, 10);
        if (errno || *end || v < 0) return early_error(r, 400, "bad request", 0);
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
    if (!path_found) return early_error(r, 404, "not found", 0);
    if (r->method == TN__M_OPTIONS) return options(r, allowed);
    if (!rt) {
        allow_list(r, allowed);
        return early_error(r, 405, "method not allowed", 0);
    }
    r->route = rt;
    for (int i = 0; i < 2; i++) {
        if (cap[i][1] <= cap[i][0]) continue;
        int rc = pct_decode(url + cap[i][0], cap[i][1] - cap[i][0], &r->arg[i]);
        if (rc == -2) return early_error(r, 503, "unavailable", 1);
        /* A file name that is not valid is a client error (400), raw or
         * encoded; any other parameter simply names nothing (404). */
        int is_file = strstr(rt->pattern, "/**") != NULL;
        if (rc != 0 || (is_file && !tn_file_name_valid(r->arg[i])))
            return early_error(r, is_file ? 400 : 404, is_file ? "bad request" : "not found", 0);
    }

    authenticate(r);
    if (r->err_status) return;

    if (rt->body == BODY_JSON) {
        if (r->has_body && !json_content_type(tn__req_header(r, MHD_HTTP_HEADER_CONTENT_TYPE)))
            return early_error(r, 415, "unsupported media type", 0);
        if (r->content_length > r->srv->cfg.max_item_bytes)
            return early_error(r, 413, "too large", 0);
    } else if (rt->body == BODY_NONE) {
        if (r->content_length > r->srv->cfg.max_item_bytes)
            return early_error(r, 413, "too large", 0);
    } else if (rt->body == BODY_FILE) {
        tn__upload_begin(r);
    }
}

/* Buffers a JSON body up to the item limit (bodies of other routes too:
 * they are bounded and ignored). */
static void consume(tn__req *r, const char *data, size_t n) {
    if (r->route && r->route->body == BODY_FILE) {
        tn__upload_data(r, data, n);
        return;
    }
    if ((int64_t)(r->len + n) > r->srv->cfg.max_item_bytes) {
        early_error(r, 413, "too large", 0);
        return;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 1024;
        while (cap < r->len + n + 1) cap *= 2;
        char *b = realloc(r->body, cap);
        if (!b) {
            early_error(r, 503, "unavailable", 1);
            return;
        }
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
}

static void dispatch(tn__req *r) {
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

static enum MHD_Result queue(tn__req *r) {
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
    if (o->fd >= 0) {
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

/* ---- header deadline -------------------------------------------------------
 *
 * libmicrohttpd's connection timeout is an idle timeout: a client sending one
 * byte a second never trips it and holds a connection (and a slot of
 * --max-connections) forever.  Every connection is watched from its start,
 * and again from the end of each request, until the next request's headers
 * are complete; a reaper thread shuts down the socket of one that took longer
 * than --timeout.  The list's mutex is also taken on close, and
 * libmicrohttpd reports the close before it closes the descriptor, so the
 * reaper never touches a descriptor that was reused.
 */
typedef struct conn_watch {
    int fd;
    int busy;        /* headers complete, request in progress */
    int64_t since;   /* monotonic ms: the start of the wait for headers */
    struct conn_watch *prev, *next;
} conn_watch;

struct tn__http {
    tn__srv srv; /* first: callbacks get &srv and find the rest from it */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    conn_watch *watched;
    int reaper_started, stopping;
    pthread_t reaper;
};


static conn_watch *watch_of(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* busy 1: headers are in; busy 0: the request ended, the next wait begins. */
static void watch_mark(tn__srv *srv, struct MHD_Connection *conn, int busy) {
    struct tn__http *h = (struct tn__http *)srv;
    conn_watch *w = watch_of(conn);
    if (!w) return;
    pthread_mutex_lock(&h->mu);
    w->busy = busy;
    w->since = tn__mono_ms();
    pthread_mutex_unlock(&h->mu);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    struct tn__http *h = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn_watch *w = ci ? calloc(1, sizeof *w) : NULL;
        if (!w) return; /* unwatched: only the idle timeout applies */
        w->fd = ci->connect_fd;
        w->since = tn__mono_ms();
        pthread_mutex_lock(&h->mu);
        w->next = h->watched;
        if (h->watched) h->watched->prev = w;
        h->watched = w;
        pthread_mutex_unlock(&h->mu);
        *socket_context = w;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        conn_watch *w = *socket_context;
        pthread_mutex_lock(&h->mu);
        if (w->prev) w->prev->next = w->next;
        else h->watched = w->next;
        if (w->next) w->next->prev = w->prev;
        pthread_mutex_unlock(&h->mu);
        free(w);
        *socket_context = NULL;
    }
}

static void *reaper(void *arg) {
    struct tn__http *h = arg;
    int64_t limit = (int64_t)h->srv.cfg.timeout_s * 1000;
    pthread_mutex_lock(&h->mu);
    while (!h->stopping) {
        int64_t now = tn__mono_ms();
        for (conn_watch *w = h->watched; w; w = w->next) {
            if (!w->busy && w->fd >= 0 && now - w->since > limit) {
                shutdown(w->fd, SHUT_RDWR); /* libmicrohttpd then closes it */
                w->fd = -1;
            }
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 250 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->cv, &h->mu, &until);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* libmicrohttpd's timeout is an idle timeout, and the header deadline ends
 * with the headers: a body trickled a byte a second would hold a connection
 * for hours.  Once a request has taken longer than --timeout, its body must
 * have averaged MIN_BODY_RATE; otherwise the connection is closed. */
#define MIN_BODY_RATE 1024 /* bytes per second */
static int body_too_slow(tn__req *r) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ms = (int64_t)(now.tv_sec - r->t0.tv_sec) * 1000 +
                 (now.tv_nsec - r->t0.tv_nsec) / 1000000;
    if (ms <= (int64_t)r->srv->cfg.timeout_s * 1000) return 0;
    if (r->body_bytes * 1000 >= (int64_t)MIN_BODY_RATE * ms) return 0;
    r->status = 408; /* for the log; nothing can be answered mid-body */
    return 1;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls) {
    (void)version;
    tn__srv *srv = cls;
    tn__req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->srv = srv;
        r->conn = conn;
        r->fd = -1;
        r->resp.fd = -1;
        r->quota_left = -1;
        clock_gettime(CLOCK_MONOTONIC, &r->t0);
        snprintf(r->rid, sizeof r->rid, "%08x%08llx", srv->rid_prefix,
                 (unsigned long long)(atomic_fetch_add(&srv->rid_next, 1) & 0xffffffffull));
        atomic_fetch_add(&srv->in_flight, 1);
        *con_cls = r;
        watch_mark(srv, conn, 1);
        client_of(r);
        snprintf(r->path, sizeof r->path, "%s", url);
        begin(r, url, method);
        /* An early error with a body on the way: answer now and let the
         * connection close instead of reading what we will refuse. */
        if (r->err_status && r->has_body) return queue(r);
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        r->body_bytes += (int64_t)n;
        if (body_too_slow(r)) return MHD_NO;
        if (r->queued) return MHD_YES;
        if (!r->err_status) {
            consume(r, upload_data, n);
            if (r->err_status) r->written = 0;
            return MHD_YES;
        }
        /* libmicrohttpd cannot queue a response while a body is arriving
         * (MHD_queue_response fails and the connection just drops, so a
         * 507 for a full disk never reached the client).  Read and discard
         * the rest, then answer on the last call; past DRAIN_MAX, close
         * without an answer.  After an error, r->written counts the bytes
         * discarded. */
        r->written += (int64_t)n;
        return r->written > DRAIN_MAX ? MHD_NO : MHD_YES;
    }
    if (r->queued) return MHD_YES;
    if (!r->err_status && !r->preflight) dispatch(r);
    return queue(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)toe;
    tn__req *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    tn__srv *srv = r->srv;
    watch_mark(srv, conn, 0);
    tn__operator_request_audit(r, r->status);
    int cls_i = r->status >= 100 && r->status < 600 ? r->status / 100 : 0;
    atomic_fetch_add(&srv->by_class[cls_i], 1);
    atomic_fetch_sub(&srv->in_flight, 1);
    tn__upload_abort(r);
    if (!srv->cfg.quiet || r->status >= 500) {
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (double)(t1.tv_sec - r->t0.tv_sec) * 1e3 +
                    (double)(t1.tv_nsec - r->t0.tv_nsec) / 1e6;
        char ts[32];
        tn__rfc3339(tn__wall_ms(), ts);
        flockfile(stderr);
        fprintf(stderr, "{\"time\":\"%s\",\"level\":\"%s\",\"request_id\":\"%s\",\"method\":",
                ts, r->status >= 500 || r->status == 0 ? "error" : "info", r->rid);
        json_str(stderr, r->method ? method_names[__builtin_ctz((unsigned)r->method)] : "other");
        fputs(",\"path\":", stderr);
        json_str(stderr, r->path);
        fprintf(stderr, ",\"status\":%d,\"duration_ms\":%.3f}\n", r->status, ms);
        funlockfile(stderr);
    }
    tn_session_close(r->s);
    free(r->arg[0]);
    free(r->arg[1]);
    free(r->body);
    resp_reset(&r->resp);
    free(r);
}

/* libmicrohttpd would decode %00 into a NUL that silently shortens the path;
 * we keep the raw path and decode each parameter ourselves (pct_decode). */
static size_t keep_escaped(void *cls, struct MHD_Connection *c, char *s) {
    (void)cls, (void)c;
    return strlen(s);
}

/* ---- listening ------------------------------------------------------------- */

static int is_loopback(const struct sockaddr *sa) {
    if (sa->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        return (a >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a)) return 1;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return 0;
}

static int listen_unix(tn__srv *srv, const char *path, const char **err) {
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) == 0 || strlen(path) >= sizeof sa.sun_path) {
        *err = "the unix socket path is empty or too long";
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path));
    struct stat sb;
    if (lstat(path, &sb) == 0) {
        if (!S_ISSOCK(sb.st_mode)) {
            *err = "the unix socket path exists and is not a socket";
            return -1;
        }
        unlink(path); /* a stale socket from an earlier run */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        *err = "cannot create a socket";
        return -1;
    }
    mode_t old = umask(0117); /* the socket is born 0660 */
    int b = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (b != 0 || chmod(path, 0660) != 0 || listen(fd, 1024) != 0) {
        *err = "cannot bind the unix socket";
        close(fd);
        return -1;
    }
    srv->unix_path = strdup(path);
    return fd;
}

static int listen_tcp(const char *spec, int allow_remote, const char **err) {
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || strlen(colon + 1) == 0 || (size_t)(colon - spec) >= sizeof host) {
        *err = "--listen takes HOST:PORT or unix:/path";
        return -1;
    }
    /* getaddrinfo takes "99999" and wraps it to a 16-bit port: check it here. */
    char *pend;
    errno = 0;
    long port = strtol(colon + 1, &pend, 10);
    if (errno || *pend || colon[1] < '0' || colon[1] > '9' || port > 65535) {
        *err = "--listen takes a port from 0 to 65535";
        return -1;
    }
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    char *h = host;
    size_t hl = strlen(h);
    if (h[0] == '[' && h[hl - 1] == ']') {
        h[hl - 1] = '\0';
        h++;
    }
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(h, colon + 1, &hints, &ai) != 0 || !ai) {
        *err = "cannot resolve the --listen address";
        return -1;
    }
    if (!is_loopback(ai->ai_addr) && !allow_remote) {
        freeaddrinfo(ai);
        *err = "refusing to listen on a non-loopback address without --allow-remote "
               "(the API is meant for programs on this machine)";
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        *err = errno == EADDRINUSE ? "the --listen address is in use"
                                   : "cannot bind the --listen address";
        if (fd >= 0) close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

/* ---- start and stop -------------------------------------------------------- */

void tn__http_config_init(tn__http_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->listen = "127.0.0.1:8787";
    cfg->max_connections = 1024;
    cfg->timeout_s = 30;
    cfg->max_item_bytes = 64 * 1024;
    cfg->max_file_bytes = 1024LL * 1024 * 1024;
    cfg->rate = 50;
    cfg->burst = 100;
    cfg->auth_fail_rate = 0.2;
    cfg->auth_fail_burst = 20;
    cfg->token_ttl = 3600;
}

uint64_t tn__http_requests(tn__http *h) {
    return atomic_load(&h->srv.rid_next);
}

void tn__http_stop(tn__http *h) {
    if (!h) return;
    tn__srv *s = &h->srv;
    if (h->reaper_started) {
        pthread_mutex_lock(&h->mu);
        h->stopping = 1;
        pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->reaper, NULL);
    }
    if (s->d) MHD_stop_daemon(s->d); /* closes the rest: on_connection frees them */
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    if (s->listen_fd >= 0) close(s->listen_fd);
    if (s->unix_path) unlink(s->unix_path);
    free(s->unix_path);
    for (char **c = s->cors; c && *c; c++) free(*c);
    free(s->cors);
    tn__rl_free(s->key_rl);
    tn__rl_free(s->fail_rl);
    tn__auth_close(s->auth);
    free(h);
}

int tn__http_start(tn_store *st, const tn__http_config *cfg, tn__http **out, const char **err) {
    *out = NULL;
    *err = "out of memory";
    tn__http *h = calloc(1, sizeof *h);
    if (!h) return TN_NOMEM;
    tn__srv *s = &h->srv;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    s->st = st;
    s->cfg = *cfg;
    s->listen_fd = -1;
    randombytes_buf(&s->rid_prefix, sizeof s->rid_prefix);
    int rc = cors_setup(s, err);
    if (rc != TN_OK) goto fail;
    rc = tn__auth_open(st, &s->auth);
    if (rc != TN_OK) {
        *err = tn_errmsg(st);
        goto fail;
    }
    s->key_rl = tn__rl_new(cfg->rate, cfg->burst, 4096);
    s->fail_rl = tn__rl_new(cfg->auth_fail_rate, cfg->auth_fail_burst, 4096);
    rc = TN_INVALID;
    if (!s->key_rl || !s->fail_rl) {
        *err = "bad rate limit settings";
        goto fail;
    }
    const char *l = cfg->listen ? cfg->listen : "127.0.0.1:8787";
    s->listen_fd = strncmp(l, "unix:", 5) == 0 ? listen_unix(s, l + 5, err)
                                               : listen_tcp(l, cfg->allow_remote, err);
    if (s->listen_fd < 0) goto fail;
    int threads = cfg->threads;
    if (threads <= 0) {
        /* A worker blocks while its write waits for the group commit, so
         * more workers than CPUs let writes share fsyncs: measured on 2 CPUs,
         * 8 workers gave 2.1x the POST and 1.7x the GET rate of 2 (16: less). */
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n = 4 * (n < 1 ? 1 : n);
        threads = n < 4 ? 4 : n > 32 ? 32 : (int)n;
    }
    s->d = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        on_request, s,
        /* The logger first, or libmicrohttpd warns on every start. */
        MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL, MHD_OPTION_LISTEN_SOCKET, s->listen_fd, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)threads, MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32 * 1024, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
        MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, NULL, MHD_OPTION_END);
    if (!s->d) {
        *err = "cannot start the HTTP server";
        rc = TN_ERROR;
        goto fail;
    }
    if (pthread_create(&h->reaper, NULL, reaper, h) != 0) {
        *err = "cannot start the HTTP server";
        rc = TN_ERROR;
        goto fail;
    }
    h->reaper_started = 1;
    *out = h;
    return TN_OK;
fail:
    tn__http_stop(h);
    return rc;
}
