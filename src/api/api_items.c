/*
 * api_items.c - the tenant's own endpoints: /v1/me, /v1/items.
 *
 * Every handler runs with r->s, a session of the caller's tenant opened by
 * router.c from the key row, so there is no tenant id here to leak or confuse:
 * another tenant's item is simply absent (404).
 *
 * Item JSON: {"id","data","version","created_at","updated_at"}; version is
 * an integer of up to 57 bits written as a decimal string ("1177...": a JSON
 * number that large is rounded by JavaScript's JSON.parse), also the ETag in
 * quotes; times are RFC 3339 UTC strings.
 * "data" is stored as the client sent it (its raw text, re-validated by the
 * store), so large integers keep every digit.
 */
#include "handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_DEFAULT 50
#define LIST_MAX 1000

/* ---- JSON helpers ---------------------------------------------------------- */

static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static const char *skip_string(const char *p, const char *end) {
    for (p++; p < end && *p != '"'; p++)
        if (*p == '\\') p++;
    return p < end ? p + 1 : end;
}

/* Skips one value of an already validated JSON text. */
static const char *skip_value(const char *p, const char *end) {
    if (p >= end) return end;
    if (*p == '"') return skip_string(p, end);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < end) {
            if (*p == '"') {
                p = skip_string(p, end);
                continue;
            }
            if (*p == '{' || *p == '[') depth++;
            if (*p == '}' || *p == ']') {
                if (--depth == 0) return p + 1;
            }
            p++;
        }
        return end;
    }
    while (p < end && !strchr(",}] \t\r\n", *p)) p++;
    return p;
}

/* The raw text of the first top-level member spelled exactly `name` (no
 * escapes) in a validated JSON object, or 0.  Also 0 once a member name with
 * an escape comes first: it may spell `name` ("d\u0061ta"), and cJSON, which
 * validated the body, reads the first such member, so the caller must use
 * cJSON's value rather than a later duplicate's text. */
static int member_raw(const char *s, size_t n, const char *name, const char **v, size_t *vl) {
    const char *p = s, *end = s + n;
    size_t nl = strlen(name);
    p = skip_ws(p, end);
    if (p >= end || *p != '{') return 0;
    p = skip_ws(p + 1, end);
    while (p < end && *p == '"') {
        const char *k = p + 1, *ke = skip_string(p, end);
        if (ke <= k || memchr(k, '\\', (size_t)(ke - 1 - k))) return 0;
        int hit = (size_t)(ke - 1 - k) == nl && memcmp(k, name, nl) == 0;
        p = skip_ws(ke, end);
        if (p >= end || *p != ':') return 0;
        p = skip_ws(p + 1, end);
        const char *ve = skip_value(p, end);
        if (hit) {
            *v = p;
            *vl = (size_t)(ve - p);
            return 1;
        }
        p = skip_ws(ve, end);
        if (p < end && *p == ',') p = skip_ws(p + 1, end);
    }
    return 0;
}

/* The "data" member's text (malloc'd), or NULL after a 400. */
static char *data_text(tn__req *r, cJSON *body, tn__resp *out) {
    cJSON *data = cJSON_GetObjectItemCaseSensitive(body, "data");
    if (!data) {
        tn__resp_error(out, 400, "bad request");
        return NULL;
    }
    const char *v;
    size_t vl;
    char *text;
    if (member_raw(r->body, r->len, "data", &v, &vl)) {
        text = malloc(vl + 1);
        if (text) {
            memcpy(text, v, vl);
            text[vl] = '\0';
        }
    } else {
        text = cJSON_PrintUnformatted(data); /* an escaped member name */
    }
    if (!text) tn__resp_error(out, 503, "unavailable");
    return text;
}

/* An item's JSON into b. */
static void item_json(tn__sbuf *b, const tn_item *it) {
    tn__sb_str(b, "{\"id\":");
    tn__sb_json_str(b, it->id);
    tn__sb_str(b, ",\"data\":");
    tn__sb_str(b, it->data);
    tn__sb_fmt(b, ",\"version\":\"%lld\",\"created_at\":", (long long)it->version);
    tn__sb_time(b, it->created_at);
    tn__sb_str(b, ",\"updated_at\":");
    tn__sb_time(b, it->updated_at);
    tn__sb_add(b, "}", 1);
}

static void item_resp(tn__resp *out, int status, const tn_item *it) {
    tn__sbuf b = {0};
    item_json(&b, it);
    tn__resp_sbuf(out, status, &b);
    if (out->status == status)
        snprintf(out->etag, sizeof out->etag, "\"%lld\"", (long long)it->version);
}

/* If-Match: absent -> 0 and *given = 0; "*" -> 0; "\"N\"" (or W/"N", or N)
 * -> N.  -1 for anything else. */
static int64_t if_match(tn__req *r, int *given) {
    const char *h = tn__req_header(r, "If-Match");
    *given = h != NULL;
    if (!h) return 0;
    while (*h == ' ') h++;
    if (strcmp(h, "*") == 0) return 0;
    if (strncmp(h, "W/", 2) == 0) h += 2;
    char buf[24];
    size_t n = strlen(h);
    if (n >= 2 && h[0] == '"' && h[n - 1] == '"') h++, n -= 2;
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, h, n);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (buf[i] < '0' || buf[i] > '9') return -1;
    char *end;
    long long v = strtoll(buf, &end, 10);
    return v > 0 ? v : -1;
}

/* ---- handlers -------------------------------------------------------------- */

void tn__api_me(tn__req *r, tn__resp *out) {
    cJSON *j = cJSON_CreateObject(), *scopes = cJSON_CreateArray();
    if (!j || !scopes) {
        cJSON_Delete(j);
        cJSON_Delete(scopes);
        tn__resp_code(out, TN_NOMEM);
        return;
    }
    cJSON_AddStringToObject(j, "key_id", r->key.key_id);
    cJSON_AddStringToObject(j, "tenant", r->key.tenant_name);
    for (unsigned b = 1; b <= TN__SCOPE_FILES_WRITE; b <<= 1)
        if (r->key.scopes & b) cJSON_AddItemToArray(scopes, cJSON_CreateString(tn__scope_name(b)));
    cJSON_AddItemToObject(j, "scopes", scopes);
    cJSON_AddItemToObject(j, "expires_at", tn__json_time(r->key.expires_at));
    tn__resp_json(out, 200, j);
}

static int add_item(const tn_item *it, void *arg) {
    tn__page *p = arg;
    tn__page_begin(p);
    item_json(&p->b, it);
    return tn__page_end(p);
}

static int item_page(tn_session *s, const char *cursor, int limit, tn__page *p, char **next) {
    return tn_item_list(s, cursor, limit, add_item, p, next);
}

void tn__api_items_list(tn__req *r, tn__resp *out) {
    tn__list(r, "items", LIST_DEFAULT, LIST_MAX, item_page, out);
}

void tn__api_item_create(tn__req *r, tn__resp *out) {
    cJSON *body = tn__req_json(r, out);
    if (!body) return;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(body, "id");
    if (id && !cJSON_IsString(id)) {
        cJSON_Delete(body);
        tn__resp_error(out, 400, "bad request");
        return;
    }
    char *data = data_text(r, body, out);
    /* The tenant's item quota is the schema's (004_quotas.sql): checked in
     * the insert itself, under the write lock, answered 507. */
    if (data) {
        tn_item it = {0};
        int rc = tn_item_create(r->s, id ? id->valuestring : NULL, data, &it);
        if (rc == TN_OK) item_resp(out, 201, &it);
        else tn__resp_code(out, rc);
        tn_item_clear(&it);
    }
    free(data);
    cJSON_Delete(body);
}

void tn__api_item_get(tn__req *r, tn__resp *out) {
    tn_item it = {0};
    int rc = tn_item_get(r->s, r->arg[0], &it);
    if (rc == TN_OK) item_resp(out, 200, &it);
    else tn__resp_code(out, rc);
    tn_item_clear(&it);
}

void tn__api_item_put(tn__req *r, tn__resp *out) {
    int given;
    int64_t expected = if_match(r, &given);
    if (expected < 0) {
        tn__resp_error(out, 412, "precondition failed");
        return;
    }
    cJSON *body = tn__req_json(r, out);
    if (!body) return;
    char *data = data_text(r, body, out);
    cJSON_Delete(body);
    if (!data) return;
    tn_item it = {0};
    int status = 200;
    int rc = tn_item_update(r->s, r->arg[0], data, expected, &it);
    if (rc == TN_NOTFOUND && given) {
        rc = TN_CONFLICT; /* If-Match on an absent item: 412 */
    } else if (rc == TN_NOTFOUND) {
        status = 201;
        rc = tn_item_create(r->s, r->arg[0], data, &it);
        if (rc == TN_EXISTS) { /* created by someone else meanwhile */
            status = 200;
            rc = tn_item_update(r->s, r->arg[0], data, 0, &it);
        }
    }
    if (rc == TN_OK) item_resp(out, status, &it);
    else tn__resp_code(out, rc);
    tn_item_clear(&it);
    free(data);
}

void tn__api_item_delete(tn__req *r, tn__resp *out) {
    int given;
    int64_t expected = if_match(r, &given);
    if (expected < 0) {
        tn__resp_error(out, 412, "precondition failed");
        return;
    }
    int rc = tn_item_delete(r->s, r->arg[0], expected);
    if (rc == TN_OK) tn__resp_empty(out, 204);
    else tn__resp_code(out, rc);
}
