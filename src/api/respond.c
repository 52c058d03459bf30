/*
 * respond.c - the helpers every handler uses: responses (JSON, errors, the
 * generic words for a store code), request headers, query parameters, the
 * JSON body, percent-decoding and JSON values.
 *
 * Error bodies are {"error":"<fixed words>"}: a message never carries input,
 * a tenant id, or a lower layer's text.
 */
#include "clock.h"
#include "api_int.h"
#include "json_check.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JSON_DEPTH 32

static const char *const method_names[TN__NMETHODS] = {"GET",   "HEAD",   "POST",   "PUT",
                                                       "PATCH", "DELETE", "OPTIONS"};

const char *tn__method_name(int method) {
    if (method <= 0 || (method & (method - 1)) || method >= (1 << TN__NMETHODS)) return "other";
    return method_names[__builtin_ctz((unsigned)method)];
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int tn__pct_decode(const char *s, size_t n, char **out) {
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

cJSON *tn__json_version(int64_t v) {
    char buf[24];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    return cJSON_CreateString(buf);
}

cJSON *tn__json_time(int64_t ms) {
    if (ms <= 0) return cJSON_CreateNull();
    char buf[32];
    tn__rfc3339(ms, buf);
    return cJSON_CreateString(buf);
}

void tn__sb_time(tn__sbuf *b, int64_t ms) {
    if (ms <= 0) {
        tn__sb_str(b, "null");
        return;
    }
    char buf[32];
    tn__rfc3339(ms, buf);
    tn__sb_add(b, "\"", 1);
    tn__sb_str(b, buf);
    tn__sb_add(b, "\"", 1);
}

/* ---- responses ------------------------------------------------------------- */

void tn__resp_sbuf(tn__resp *o, int status, tn__sbuf *b) {
    tn__resp_reset(o);
    size_t len = b->len;
    char *text = tn__sb_take(b);
    if (!text) {
        tn__resp_code(o, TN_NOMEM);
        return;
    }
    o->status = status;
    o->body = text;
    o->len = len;
    o->ctype = "application/json";
}

void tn__resp_reset(tn__resp *o) {
    free(o->body);
    if (o->fd >= 0) close(o->fd);
    if (o->stream) tn__stream_release(o->stream);
    memset(o, 0, sizeof *o);
    o->fd = -1;
}

void tn__resp_json(tn__resp *o, int status, cJSON *j) {
    tn__resp_reset(o);
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
    tn__resp_reset(o);
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
    tn__resp_reset(o);
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

/* ---- requests -------------------------------------------------------------- */

void tn__req_fail(tn__req *r, int status, const char *msg, int retry_after) {
    if (r->err_status) return;
    r->err_status = status;
    r->err_msg = msg;
    r->err_retry = retry_after;
}

const char *tn__req_header(tn__req *r, const char *name) {
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

int tn__req_query(tn__req *r, const char *name, char **out) {
    *out = NULL;
    const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
    if (!v) return 0;
    int rc = tn__pct_decode(v, strlen(v), out);
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

/* ---- list pages ------------------------------------------------------------ */

void tn__page_begin(tn__page *p) {
    p->mark = p->b.len;
    if (p->n) tn__sb_add(&p->b, ",", 1);
}

int tn__page_end(tn__page *p) {
    if (p->b.failed) return 1;
    if (p->n > 0 && p->b.len > p->cap) {
        p->b.len = p->mark; /* this entry starts the next page */
        p->b.p[p->mark] = '\0';
        p->full = 1;
        return 1;
    }
    p->n++;
    return 0;
}

void tn__list(tn__req *r, const char *member, int def, int max, tn__page_fn fn, tn__resp *out) {
    int limit = tn__req_limit(r, def, max);
    char *cursor = NULL;
    if (limit < 0 || tn__req_query(r, "cursor", &cursor) < 0) {
        tn__resp_error(out, 400, "bad request");
        return;
    }
    /* A page that reached the byte cap is listed again with the count that
     * fitted, so that the store's cursor continues right after its last
     * entry.  Should rows grow in between, the count shrinks once more; it
     * never goes below one, so this ends. */
    int rc = TN_OK;
    for (int round = 0; round < 8; round++) {
        tn__page p;
        memset(&p, 0, sizeof p);
        p.cap = TN__PAGE_BYTES;
        char *next = NULL;
        tn__sb_str(&p.b, "{\"");
        tn__sb_str(&p.b, member);
        tn__sb_str(&p.b, "\":[");
        rc = fn(r->s, cursor, limit, &p, &next);
        if (rc == TN_OK && p.b.failed) rc = TN_NOMEM;
        if (rc != TN_OK || p.full) {
            free(next);
            tn__sb_free(&p.b);
            if (rc != TN_OK) break;
            limit = p.n;
            continue;
        }
        tn__sb_str(&p.b, "],\"next_cursor\":");
        if (next) tn__sb_json_str(&p.b, next);
        else tn__sb_str(&p.b, "null");
        tn__sb_add(&p.b, "}", 1);
        free(next);
        free(cursor);
        tn__resp_sbuf(out, 200, &p.b);
        return;
    }
    free(cursor);
    tn__resp_code(out, rc == TN_OK ? TN_BUSY : rc); /* a cursor from elsewhere: 400 */
}
