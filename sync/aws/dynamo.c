/*
 * dynamo.c - DynamoDB JSON protocol calls, the JSON <-> AttributeValue
 * conversions, and reading rows back from Query and Scan answers (see
 * dynamo.h).
 */
#include "clock.h"
#include "dynamo.h"

#include "sigv4.h"
#include "tenantry.h"

#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- JSON -> AttributeValue --------------------------------------------- */

typedef struct cur {
    const char *p, *end;
} cur;

static void ws(cur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* Copies the string token at c->p (quotes and escapes kept: a valid JSON
 * string is a valid JSON string in the output too). */
static int str_token(cur *c, tn__sbuf *out) {
    const char *s = c->p;
    if (s >= c->end || *s != '"') return TN_INVALID;
    const char *q = s + 1;
    while (q < c->end && *q != '"') {
        if (*q == '\\') q++;
        q++;
    }
    if (q >= c->end) return TN_INVALID;
    q++;
    tn__sb_add(out, s, (size_t)(q - s));
    c->p = q;
    return TN_OK;
}

static int value(cur *c, tn__sbuf *out, int depth) {
    if (depth > 64) return TN_INVALID;
    ws(c);
    if (c->p >= c->end) return TN_INVALID;
    char ch = *c->p;
    int rc = TN_OK;
    if (ch == '{') {
        c->p++;
        tn__sb_str(out, "{\"M\":{");
        ws(c);
        int first = 1;
        if (c->p < c->end && *c->p == '}') c->p++;
        else
            for (;;) {
                ws(c);
                if (!first) tn__sb_add(out, ",", 1);
                first = 0;
                if ((rc = str_token(c, out)) != TN_OK) return rc;
                ws(c);
                if (c->p >= c->end || *c->p != ':') return TN_INVALID;
                c->p++;
                tn__sb_add(out, ":", 1);
                if ((rc = value(c, out, depth + 1)) != TN_OK) return rc;
                ws(c);
                if (c->p < c->end && *c->p == ',') { c->p++; continue; }
                if (c->p < c->end && *c->p == '}') { c->p++; break; }
                return TN_INVALID;
            }
        tn__sb_str(out, "}}");
    } else if (ch == '[') {
        c->p++;
        tn__sb_str(out, "{\"L\":[");
        ws(c);
        int first = 1;
        if (c->p < c->end && *c->p == ']') c->p++;
        else
            for (;;) {
                if (!first) tn__sb_add(out, ",", 1);
                first = 0;
                if ((rc = value(c, out, depth + 1)) != TN_OK) return rc;
                ws(c);
                if (c->p < c->end && *c->p == ',') { c->p++; continue; }
                if (c->p < c->end && *c->p == ']') { c->p++; break; }
                return TN_INVALID;
            }
        tn__sb_str(out, "]}");
    } else if (ch == '"') {
        tn__sb_str(out, "{\"S\":");
        if ((rc = str_token(c, out)) != TN_OK) return rc;
        tn__sb_add(out, "}", 1);
    } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
        const char *s = c->p;
        while (c->p < c->end && strchr("+-.eE0123456789", *c->p)) c->p++;
        tn__sb_str(out, "{\"N\":\"");
        tn__sb_add(out, s, (size_t)(c->p - s));
        tn__sb_str(out, "\"}");
    } else if (c->end - c->p >= 4 && memcmp(c->p, "true", 4) == 0) {
        c->p += 4;
        tn__sb_str(out, "{\"BOOL\":true}");
    } else if (c->end - c->p >= 5 && memcmp(c->p, "false", 5) == 0) {
        c->p += 5;
        tn__sb_str(out, "{\"BOOL\":false}");
    } else if (c->end - c->p >= 4 && memcmp(c->p, "null", 4) == 0) {
        c->p += 4;
        tn__sb_str(out, "{\"NULL\":true}");
    } else {
        return TN_INVALID;
    }
    return out->failed ? TN_NOMEM : TN_OK;
}

int tn__ddb_json_to_av(const char *json, size_t len, tn__sbuf *out) {
    cur c = {json, json + len};
    int rc = value(&c, out, 0);
    if (rc != TN_OK) return rc;
    ws(&c);
    return c.p == c.end ? TN_OK : TN_INVALID;
}

int tn__ddb_item(const tn_remote_row *r, const tn__remote_key *k, int64_t feed_ms, tn__sbuf *out) {
    char ts[32];
    tn__rfc3339(r->updated_at, ts);
    tn__sb_str(out, "{\"pk\":{\"S\":");
    tn__sb_json_str(out, k->part);
    tn__sb_str(out, "},\"sk\":{\"S\":");
    tn__sb_json_str(out, k->sort);
    tn__sb_fmt(out, "},\"version\":{\"N\":\"%lld\"},\"updated_at\":{\"S\":\"%s\"}",
               (long long)r->version, ts);
    if (feed_ms > 0) tn__sb_fmt(out, ",\"feed\":{\"N\":\"%lld\"}", (long long)feed_ms);
    if (r->deleted) {
        tn__sb_fmt(out, ",\"deleted\":{\"BOOL\":true},\"expires_at\":{\"N\":\"%lld\"}",
                   (long long)r->expires_at);
    } else {
        tn__sb_str(out, ",\"deleted\":{\"BOOL\":false}");
        if (r->kind == TN__REMOTE_FILE) {
            tn__sb_str(out, ",\"s3_key\":{\"S\":");
            tn__sb_json_str(out, k->object);
            tn__sb_fmt(out, "},\"size\":{\"N\":\"%lld\"},\"sha256\":{\"S\":\"%s\"}",
                       (long long)r->size, r->sha256 ? r->sha256 : "");
            tn__sb_str(out, ",\"content_type\":{\"S\":");
            tn__sb_json_str(out, r->content_type ? r->content_type : "application/octet-stream");
            tn__sb_str(out, "}");
        } else {
            tn__sb_str(out, ",\"data\":");
            int rc = tn__ddb_json_to_av(r->data ? r->data : "null", r->data ? strlen(r->data) : 4,
                                        out);
            if (rc != TN_OK) return rc;
        }
    }
    tn__sb_str(out, "}");
    return out->failed ? TN_NOMEM : TN_OK;
}

/* ---- calls ---------------------------------------------------------------- */

/* Every UnprocessedItems entry names a table of the request and is a
 * PutRequest or DeleteRequest with the key's pk and sk: the caller matches
 * them against the rows it sent, and one it cannot read must not count as
 * written. */
static int unprocessed_ok(const cJSON *unprocessed, const cJSON *request_items) {
    const cJSON *table, *e;
    cJSON_ArrayForEach(table, unprocessed) {
        if (!cJSON_IsArray(table) || !table->string ||
            !cJSON_GetObjectItemCaseSensitive(request_items, table->string))
            return 0;
        cJSON_ArrayForEach(e, table) {
            const cJSON *item = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(e, "PutRequest"), "Item");
            if (!item)
                item = cJSON_GetObjectItemCaseSensitive(
                    cJSON_GetObjectItemCaseSensitive(e, "DeleteRequest"), "Key");
            const cJSON *pk = cJSON_GetObjectItemCaseSensitive(item, "pk");
            const cJSON *sk = cJSON_GetObjectItemCaseSensitive(item, "sk");
            if (!cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pk, "S")) ||
                !cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sk, "S")))
                return 0;
        }
    }
    return 1;
}

int tn__ddb_answer_ok(const char *target, const char *request, size_t len, const cJSON *answer) {
    if (!cJSON_IsObject(answer)) return 0;
    if (strcmp(target, "BatchWriteItem") != 0) return 1;
    const cJSON *un = cJSON_GetObjectItemCaseSensitive(answer, "UnprocessedItems");
    if (!cJSON_IsObject(un)) return 0;
    if (!un->child) return 1;
    cJSON *req = cJSON_ParseWithLength(request, len);
    int ok = unprocessed_ok(un, cJSON_GetObjectItemCaseSensitive(req, "RequestItems"));
    cJSON_Delete(req);
    return ok;
}

int tn__ddb_error(long status, const char *type, const char *message) {
    if (status >= 200 && status < 300) return TN_OK;
    /* An error without DynamoDB's error document did not come from DynamoDB
     * (a proxy, a load balancer, a cut connection): it says nothing about
     * the request, so it is retried rather than dead-lettered. */
    if (!*type && status < 500 && status != 429 && status != 403) return TN_NETWORK;
    if (strstr(type, "ConditionalCheckFailed")) return TN_CONFLICT;
    if (status >= 500 || status == 429 || strstr(type, "Throttl") ||
        strstr(type, "ProvisionedThroughputExceeded") || strstr(type, "RequestLimitExceeded") ||
        strstr(type, "TransactionConflict") || strstr(type, "TransactionInProgress") ||
        strstr(type, "InternalServerError"))
        return TN_THROTTLED;
    if (strstr(type, "ResourceNotFound")) return TN_NOTFOUND;
    if (strstr(type, "TransactionCanceled")) return TN_CONFLICT;
    if (strstr(type, "ValidationException") || strstr(type, "SerializationException")) {
        if (message && (strstr(message, "size") || strstr(message, "too large") ||
                        strstr(message, "Size")))
            return TN_TOOBIG;
        return TN_INVALID;
    }
    if (strstr(type, "AccessDenied") || strstr(type, "UnrecognizedClient") ||
        strstr(type, "Signature") || strstr(type, "Token") || status == 403)
        return TN_DENIED;
    return TN_REMOTE;
}

int tn__ddb_call(tn__aws *a, tn__http *h, const char *target, const char *body, size_t len,
                 tn__ddb_resp *r) {
    memset(r, 0, sizeof *r);
    char host[300], amz_target[96], url[600];
    if (tn__aws_host(a->ep_dynamodb, host, sizeof host) != TN_OK) return TN_INVALID;
    snprintf(amz_target, sizeof amz_target, "DynamoDB_20120810.%s", target);
    snprintf(url, sizeof url, "%s/", a->ep_dynamodb);
    tn__aws_creds cr;
    int rc = tn__aws_creds_get(a, h, time(NULL), &cr);
    if (rc != TN_OK) return rc;
    tn__sigv4_header sh[] = {{"host", host},
                             {"content-type", "application/x-amz-json-1.0"},
                             {"x-amz-target", amz_target}};
    tn__sigv4_request req = {"POST", "/", NULL, sh, 3, body, len, NULL};
    tn__sigv4_signer s = {cr.akid, cr.secret, cr.token, a->region, "dynamodb",
                          time(NULL), TN__SIGV4_AWS, 0};
    tn__sigv4_result sr;
    rc = tn__sigv4_sign(&s, &req, &sr) == 0 ? TN_OK : TN_INVALID;
    tn__aws_creds_wipe(&cr);
    if (rc != TN_OK) return rc;
    tn__sbuf hb[6] = {{0}};
    const char *hv[6];
    size_t nh = 0;
    tn__sb_str(&hb[nh], "Content-Type: application/x-amz-json-1.0");
    hv[nh] = hb[nh].p, nh++;
    tn__sb_fmt(&hb[nh], "X-Amz-Target: %s", amz_target);
    hv[nh] = hb[nh].p, nh++;
    tn__sb_fmt(&hb[nh], "Authorization: %s", sr.authorization);
    hv[nh] = hb[nh].p, nh++;
    for (size_t i = 0; i < sr.nadd; i++) {
        tn__sb_fmt(&hb[nh], "%s: %s", sr.add[i].name, sr.add[i].value);
        hv[nh] = hb[nh].p, nh++;
    }
    int failed = 0;
    for (size_t i = 0; i < nh; i++) failed |= hb[i].failed || !hv[i];
    tn__http_resp resp;
    rc = failed ? TN_NOMEM : tn__http_do(h, "POST", url, hv, nh, body, len, &resp);
    for (size_t i = 0; i < nh; i++) {
        if (hb[i].p) sodium_memzero(hb[i].p, hb[i].len);
        tn__sb_free(&hb[i]);
    }
    tn__sigv4_result_free(&sr);
    if (rc != TN_OK) return rc;
    r->status = resp.status;
    r->body = resp.body;
    return tn__ddb_response(target, body, len, resp.status, resp.body, resp.len, r->type);
}

int tn__ddb_response(const char *target, const char *request, size_t reqlen, long status,
                     const char *body, size_t len, char type[TN__DDB_TYPE_MAX]) {
    type[0] = '\0';
    cJSON *j = body ? cJSON_ParseWithLength(body, len) : NULL;
    int rc;
    if (status >= 200 && status < 300) {
        rc = tn__ddb_answer_ok(target, request, reqlen, j) ? TN_OK : TN_NETWORK;
        cJSON_Delete(j);
        return rc;
    }
    /* {"__type":"com.amazonaws.dynamodb.v20120810#ValidationException","message":"..."} */
    const char *t = j ? cJSON_GetStringValue(cJSON_GetObjectItem(j, "__type")) : NULL;
    const char *msg = j ? cJSON_GetStringValue(cJSON_GetObjectItem(j, "message")) : NULL;
    if (!msg && j) msg = cJSON_GetStringValue(cJSON_GetObjectItem(j, "Message"));
    if (t) {
        const char *hash = strrchr(t, '#');
        snprintf(type, TN__DDB_TYPE_MAX, "%s", hash ? hash + 1 : t);
    }
    rc = tn__ddb_error(status, type, msg);
    cJSON_Delete(j);
    return rc;
}

int tn__ddb_index_error(int rc, const char *body) {
    if (rc != TN_INVALID || !body) return rc;
    if (strstr(body, "backfilling global secondary index")) return TN_THROTTLED;
    if (strstr(body, "does not have the specified index")) return TN_NOTFOUND;
    return rc;
}

void tn__ddb_resp_free(tn__ddb_resp *r) {
    if (!r) return;
    free(r->body);
    r->body = NULL;
}

/* The version in item's {"version":{"N":"..."}}, or -1 when absent or not
 * plain decimal digits that fit: strtoll would take "12abc" as 12, "-5" as
 * -5 and too many digits as the largest version (a conflict loss for every
 * local write). */
int64_t tn__ddb_item_version(const cJSON *item) {
    const char *s = cJSON_GetStringValue(
        cJSON_GetObjectItem(cJSON_GetObjectItem(item, "version"), "N"));
    if (!s || !*s) return -1;
    int64_t v = 0;
    for (size_t i = 0; s[i]; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (INT64_MAX - (s[i] - '0')) / 10) return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int64_t tn__ddb_version_of(const char *body) {
    cJSON *j = body ? cJSON_Parse(body) : NULL;
    int64_t v = tn__ddb_item_version(cJSON_GetObjectItem(j, "Item"));
    cJSON_Delete(j);
    return v < 0 ? 0 : v;
}

int64_t tn__ddb_refusal_version(const char *body) {
    cJSON *j = body ? cJSON_Parse(body) : NULL;
    int64_t v = tn__ddb_item_version(cJSON_GetObjectItem(j, "Item"));
    cJSON_Delete(j);
    return v;
}

int tn__ddb_cancel_reasons(const char *body, int n, int *why, int64_t *ver) {
    cJSON *j = body ? cJSON_Parse(body) : NULL;
    const cJSON *list = cJSON_GetObjectItem(j, "CancellationReasons"), *e;
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) != n) {
        cJSON_Delete(j);
        return -1;
    }
    int k = 0;
    cJSON_ArrayForEach(e, list) {
        const char *code = cJSON_GetStringValue(cJSON_GetObjectItem(e, "Code"));
        ver[k] = -1;
        if (!code || strcmp(code, "None") == 0 || strstr(code, "TransactionConflict") ||
            strstr(code, "Throttl") || strstr(code, "ProvisionedThroughput")) {
            why[k] = TN__DDB_REASON_RETRY;
        } else if (strcmp(code, "ConditionalCheckFailed") == 0) {
            why[k] = TN__DDB_REASON_CONDITION;
            ver[k] = tn__ddb_item_version(cJSON_GetObjectItem(e, "Item"));
        } else {
            why[k] = TN__DDB_REASON_ALONE;
        }
        k++;
    }
    cJSON_Delete(j);
    return 0;
}

/* ---- reading rows back --------------------------------------------------------
 *
 * Everything below reads what the remote answers: untrusted text.  A small
 * walker validates JSON as it goes (RFC 8259 strings with valid UTF-8 and
 * paired surrogates, numbers, bounded nesting) and hands out spans of the
 * text, so string tokens can be copied verbatim (exactly what DynamoDB sent,
 * U+0000 included) and numbers keep every digit. */

typedef struct jx {
    const char *p, *end;
} jx;

/* Nesting the walker follows: an item's data of TN__DDB_MAX_DEPTH JSON
 * levels is twice that in AttributeValues, plus the answer and the item. */
#define JX_MAX_DEPTH (2 * TN__DDB_MAX_DEPTH + 8)

static void jx_ws(jx *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int jx_peek(jx *c, char ch) {
    jx_ws(c);
    return c->p < c->end && *c->p == ch;
}

static int jx_eat(jx *c, char ch) {
    if (!jx_peek(c, ch)) return 0;
    c->p++;
    return 1;
}

static int jx_lit(jx *c, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return 0;
    c->p += n;
    return 1;
}

/* The length of the valid UTF-8 sequence at s (n bytes there), 0 if none:
 * no overlong forms, no surrogates, nothing past U+10FFFF. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef) len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, cp = c & 0x07;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static long hex4(const char *p) {
    long v = 0;
    for (int i = 0; i < 4; i++) {
        char h = p[i];
        int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
              : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static void put_utf8(tn__sbuf *b, uint32_t u) {
    unsigned char o[4];
    size_t n;
    if (u < 0x80) o[0] = (unsigned char)u, n = 1;
    else if (u < 0x800) o[0] = (unsigned char)(0xc0 | (u >> 6)), o[1] = (unsigned char)(0x80 | (u & 0x3f)), n = 2;
    else if (u < 0x10000)
        o[0] = (unsigned char)(0xe0 | (u >> 12)), o[1] = (unsigned char)(0x80 | ((u >> 6) & 0x3f)),
        o[2] = (unsigned char)(0x80 | (u & 0x3f)), n = 3;
    else
        o[0] = (unsigned char)(0xf0 | (u >> 18)), o[1] = (unsigned char)(0x80 | ((u >> 12) & 0x3f)),
        o[2] = (unsigned char)(0x80 | ((u >> 6) & 0x3f)), o[3] = (unsigned char)(0x80 | (u & 0x3f)),
        n = 4;
    tn__sb_add(b, o, n);
}

/* Validates the string token at c->p and moves past it; *tok and *toklen (may
 * be NULL) get the token, quotes included; dec (may be NULL) gets the
 * decoded bytes appended. */
static int jx_str(jx *c, const char **tok, size_t *toklen, tn__sbuf *dec) {
    jx_ws(c);
    const char *s = c->p, *q = s + 1;
    if (s >= c->end || *s != '"') return 0;
    while (q < c->end && *q != '"') {
        unsigned char ch = (unsigned char)*q;
        if (ch < 0x20) return 0;
        if (ch != '\\') {
            size_t l = utf8_len((const unsigned char *)q, (size_t)(c->end - q));
            if (!l) return 0;
            if (dec) tn__sb_add(dec, q, l);
            q += l;
            continue;
        }
        if (c->end - q < 2) return 0;
        char e = q[1];
        if (e == 'u') {
            long u = c->end - q >= 6 ? hex4(q + 2) : -1;
            if (u < 0 || (u >= 0xdc00 && u <= 0xdfff)) return 0;
            q += 6;
            if (u >= 0xd800 && u <= 0xdbff) {
                long lo = c->end - q >= 6 && q[0] == '\\' && q[1] == 'u' ? hex4(q + 2) : -1;
                if (lo < 0xdc00 || lo > 0xdfff) return 0;
                q += 6;
                u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
            }
            if (dec) put_utf8(dec, (uint32_t)u);
            continue;
        }
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *k = e ? strchr(from, e) : NULL;
        if (!k) return 0;
        if (dec) tn__sb_add(dec, &to[k - from], 1);
        q += 2;
    }
    if (q >= c->end) return 0;
    q++;
    if (tok) *tok = s, *toklen = (size_t)(q - s);
    c->p = q;
    return 1;
}

/* Whether s[0..n) is exactly one JSON number (RFC 8259). */
static int json_number(const char *s, size_t n) {
    size_t i = 0;
    if (i < n && s[i] == '-') i++;
    if (i < n && s[i] == '0') i++;
    else if (i < n && s[i] >= '1' && s[i] <= '9')
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    else return 0;
    if (i < n && s[i] == '.') {
        size_t d = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        if (i == d) return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        if (i == d) return 0;
    }
    return i == n;
}

/* Validates and skips one value. */
static int jx_skip(jx *c, int depth) {
    jx_ws(c);
    if (c->p >= c->end || depth > JX_MAX_DEPTH) return 0;
    char ch = *c->p;
    if (ch == '"') return jx_str(c, NULL, NULL, NULL);
    if (ch == '{' || ch == '[') {
        char close = ch == '{' ? '}' : ']';
        c->p++;
        if (jx_eat(c, close)) return 1;
        do {
            if (close == '}' && (!jx_str(c, NULL, NULL, NULL) || !jx_eat(c, ':'))) return 0;
            if (!jx_skip(c, depth + 1)) return 0;
        } while (jx_eat(c, ','));
        return jx_eat(c, close);
    }
    if (jx_lit(c, "true") || jx_lit(c, "false") || jx_lit(c, "null")) return 1;
    const char *s = c->p;
    while (c->p < c->end && strchr("+-.eE0123456789", *c->p) && *c->p) c->p++;
    return json_number(s, (size_t)(c->p - s));
}

/* Skips one value, giving its span. */
static int jx_span(jx *c, int depth, const char **s, size_t *n) {
    jx_ws(c);
    *s = c->p;
    if (!jx_skip(c, depth)) return 0;
    *n = (size_t)(c->p - *s);
    return 1;
}

/* ---- AttributeValue -> JSON ---- */

typedef struct keyref {
    const char *p;
    size_t n;
} keyref;

static int keyref_cmp(const void *a, const void *b) {
    const keyref *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int d = memcmp(x->p, y->p, n);
    return d ? d : (x->n > y->n) - (x->n < y->n);
}

/* Whether the decoded keys (at offs[i] of dec, lens[i] long) are all distinct. */
static int keys_distinct(const tn__sbuf *dec, const size_t *offs, size_t n) {
    if (n < 2) return 1;
    if (!dec->p) return 0; /* every key empty: the same key twice */
    keyref *k = malloc(n * sizeof *k);
    if (!k) return -1;
    for (size_t i = 0; i < n; i++)
        k[i] = (keyref){dec->p + offs[2 * i], offs[2 * i + 1]};
    qsort(k, n, sizeof *k, keyref_cmp);
    int ok = 1;
    for (size_t i = 1; i < n && ok; i++) ok = keyref_cmp(&k[i - 1], &k[i]) != 0;
    free(k);
    return ok;
}

static int av_conv(jx *c, tn__sbuf *out, size_t start, int depth);

/* The members of an M, from after its '{'. */
static int av_map(jx *c, tn__sbuf *out, size_t start, int depth) {
    tn__sbuf dec = {0};
    size_t *offs = NULL, n = 0, cap = 0;
    int rc = TN_OK;
    tn__sb_add(out, "{", 1);
    if (!jx_eat(c, '}')) {
        do {
            const char *t;
            size_t tl, at = dec.len;
            if (!jx_str(c, &t, &tl, &dec) || !jx_eat(c, ':')) {
                rc = TN_INVALID;
                break;
            }
            if (n == cap) {
                size_t *no = realloc(offs, (cap = cap ? cap * 2 : 16) * 2 * sizeof *offs);
                if (!no) {
                    rc = TN_NOMEM;
                    break;
                }
                offs = no;
            }
            offs[2 * n] = at;
            offs[2 * n + 1] = dec.len - at;
            n++;
            if (n > 1) tn__sb_add(out, ",", 1);
            tn__sb_add(out, t, tl);
            tn__sb_add(out, ":", 1);
            if ((rc = av_conv(c, out, start, depth)) != TN_OK) break;
        } while (jx_eat(c, ','));
        if (rc == TN_OK && !jx_eat(c, '}')) rc = TN_INVALID;
    }
    if (rc == TN_OK && dec.failed) rc = TN_NOMEM;
    if (rc == TN_OK) {
        /* DynamoDB never answers a map with a key twice; two readers of
         * such JSON could disagree about which value counts. */
        int d = keys_distinct(&dec, offs, n);
        rc = d < 0 ? TN_NOMEM : d ? TN_OK : TN_INVALID;
    }
    tn__sb_add(out, "}", 1);
    free(offs);
    tn__sb_free(&dec);
    return rc;
}

/* One AttributeValue {"<type>": value}, appended to out as JSON. */
static int av_conv(jx *c, tn__sbuf *out, size_t start, int depth) {
    const char *t;
    size_t tl;
    if (depth > JX_MAX_DEPTH || !jx_eat(c, '{') || !jx_str(c, &t, &tl, NULL) || !jx_eat(c, ':'))
        return TN_INVALID;
    int rc = TN_OK;
#define IS(name) (tl == sizeof(name) + 1 && memcmp(t + 1, name, sizeof(name) - 1) == 0)
    if (IS("M") || IS("L")) {
        if (depth + 1 > TN__DDB_MAX_DEPTH) return TN_INVALID;
        if (IS("M")) {
            if (!jx_eat(c, '{')) return TN_INVALID;
            rc = av_map(c, out, start, depth + 1);
        } else {
            if (!jx_eat(c, '[')) return TN_INVALID;
            tn__sb_add(out, "[", 1);
            if (!jx_eat(c, ']')) {
                int first = 1;
                do {
                    if (!first) tn__sb_add(out, ",", 1);
                    first = 0;
                    if ((rc = av_conv(c, out, start, depth + 1)) != TN_OK) return rc;
                } while (jx_eat(c, ','));
                if (!jx_eat(c, ']')) return TN_INVALID;
            }
            tn__sb_add(out, "]", 1);
        }
        if (rc != TN_OK) return rc;
    } else if (IS("S")) {
        const char *s;
        size_t sl;
        if (!jx_str(c, &s, &sl, NULL)) return TN_INVALID;
        tn__sb_add(out, s, sl); /* validated: a JSON string as it stands */
    } else if (IS("N")) {
        tn__sbuf num = {0};
        if (!jx_str(c, NULL, NULL, &num)) {
            tn__sb_free(&num);
            return TN_INVALID;
        }
        rc = num.failed ? TN_NOMEM : num.len && json_number(num.p, num.len) ? TN_OK : TN_INVALID;
        if (rc == TN_OK) tn__sb_add(out, num.p, num.len);
        tn__sb_free(&num);
        if (rc != TN_OK) return rc;
    } else if (IS("BOOL")) {
        jx_ws(c);
        if (jx_lit(c, "true")) tn__sb_str(out, "true");
        else if (jx_lit(c, "false")) tn__sb_str(out, "false");
        else return TN_INVALID;
    } else if (IS("NULL")) {
        jx_ws(c);
        if (!jx_lit(c, "true")) return TN_INVALID;
        tn__sb_str(out, "null");
    } else {
        return TN_INVALID; /* B, SS, NS, BS, anything else */
    }
#undef IS
    if (!jx_eat(c, '}')) return TN_INVALID; /* exactly one member */
    if (out->failed) return TN_NOMEM;
    return out->len - start > TN__DDB_MAX_JSON ? TN_TOOBIG : TN_OK;
}

int tn__ddb_av_to_json(const char *av, size_t len, tn__sbuf *out) {
    jx c = {av, av + len};
    int rc = av_conv(&c, out, out->len, 0);
    if (rc != TN_OK) return rc;
    jx_ws(&c);
    return c.p == c.end ? TN_OK : TN_INVALID;
}

/* ---- one item -> one row ---- */

int64_t tn__ddb_plain_int(const char *s, size_t n) {
    if (!s || n == 0 || n > 19) return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (INT64_MAX - (s[i] - '0')) / 10) return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int digits(const char *s, int n, int *v) {
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        *v = *v * 10 + (s[i] - '0');
    }
    return 1;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int64_t tn__ddb_time_parse(const char *s, size_t n) {
    /* YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM) */
    int y, mo, d, h, mi, se;
    if (n < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &h) ||
        s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &se))
        return -1;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap) ||
        h > 23 || mi > 59 || se > 60)
        return -1;
    size_t i = 19;
    int64_t ms = 0;
    if (i < n && s[i] == '.') {
        size_t f = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (i - f < 3) ms = ms * 10 + (s[i] - '0');
            i++;
        }
        if (i == f || i - f > 9) return -1;
        for (size_t k = i - f; k < 3; k++) ms *= 10;
    }
    int64_t off = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == n && (s[i] == '+' || s[i] == '-')) {
        int oh, om;
        if (!digits(s + i + 1, 2, &oh) || s[i + 3] != ':' || !digits(s + i + 4, 2, &om) ||
            oh > 23 || om > 59)
            return -1;
        off = (s[i] == '+' ? 1 : -1) * (int64_t)(oh * 60 + om) * 60000;
        i += 6;
    } else {
        return -1;
    }
    if (i != n) return -1;
    int64_t t = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + se;
    t = t * 1000 + ms - off;
    return t < 0 ? -1 : t;
}

enum { A_PK, A_SK, A_VERSION, A_DELETED, A_UPDATED, A_EXPIRES, A_FEED, A_DATA, A_SIZE,
       A_SHA, A_CT, A_S3KEY, A_COUNT };
static const char *const attr_names[A_COUNT] = {"pk", "sk", "version", "deleted", "updated_at",
                                                "expires_at", "feed", "data", "size", "sha256",
                                                "content_type", "s3_key"};

/* The value of a scalar AttributeValue span of type want ("S", "N" or
 * "BOOL"): S and N decoded into dec, BOOL into *b.  0 when it is not one. */
static int av_scalar(const char *s, size_t n, const char *want, tn__sbuf *dec, int *b) {
    jx c = {s, s + n};
    const char *t;
    size_t tl;
    if (!jx_eat(&c, '{') || !jx_str(&c, &t, &tl, NULL) || !jx_eat(&c, ':')) return 0;
    if (tl != strlen(want) + 2 || memcmp(t + 1, want, tl - 2) != 0) return 0;
    if (strcmp(want, "BOOL") == 0) {
        jx_ws(&c);
        if (jx_lit(&c, "true")) *b = 1;
        else if (jx_lit(&c, "false")) *b = 0;
        else return 0;
    } else if (!jx_str(&c, NULL, NULL, dec) || dec->failed) {
        return 0;
    }
    if (!jx_eat(&c, '}')) return 0;
    jx_ws(&c);
    return c.p == c.end;
}

static int lower_hex64(const char *s, size_t n) {
    if (n != 64) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

/* The checks of tn__ddb_row_parse; TN_OK, TN_INVALID or TN_NOMEM. */
static int row_check(const char *item, size_t len, const char *tenant, tn_remote_page *page,
                     int64_t *feed_out) {
    const char *span[A_COUNT] = {0};
    size_t slen[A_COUNT] = {0};
    jx c = {item, item + len};
    if (!jx_eat(&c, '{')) return TN_INVALID;
    if (!jx_eat(&c, '}')) {
        do {
            char name[16];
            tn__sbuf nb = {0};
            int ok = jx_str(&c, NULL, NULL, &nb) && jx_eat(&c, ':');
            size_t nl = nb.len;
            if (ok && !nb.failed && nl < sizeof name) {
                if (nl) memcpy(name, nb.p, nl);
            } else {
                nl = sizeof name; /* no attribute of ours */
            }
            tn__sb_free(&nb);
            const char *vs;
            size_t vl;
            if (!ok || !jx_span(&c, 2, &vs, &vl)) return TN_INVALID;
            for (int a = 0; a < A_COUNT; a++)
                if (nl == strlen(attr_names[a]) && memcmp(name, attr_names[a], nl) == 0) {
                    if (span[a]) return TN_INVALID; /* an attribute twice */
                    span[a] = vs;
                    slen[a] = vl;
                }
        } while (jx_eat(&c, ','));
        if (!jx_eat(&c, '}')) return TN_INVALID;
    }
    jx_ws(&c);
    if (c.p != c.end) return TN_INVALID;

    tn__sbuf v[A_COUNT];
    memset(v, 0, sizeof v);
    int deleted = 0, dummy, rc = TN_INVALID;
    int64_t version, feed = 0, expires = 0, updated, size = 0;
    tn__remote_key k = {0};
    tn__sbuf data = {0};
    if (span[A_FEED]) {
        if (!av_scalar(span[A_FEED], slen[A_FEED], "N", &v[A_FEED], &dummy)) goto out;
        feed = tn__ddb_plain_int(v[A_FEED].p, v[A_FEED].len);
        if (feed_out) *feed_out = feed;
        if (feed < 0) goto out;
    }
    if (!span[A_PK] || !span[A_SK] || !span[A_VERSION] || !span[A_DELETED] || !span[A_UPDATED] ||
        !av_scalar(span[A_PK], slen[A_PK], "S", &v[A_PK], &dummy) ||
        !av_scalar(span[A_SK], slen[A_SK], "S", &v[A_SK], &dummy) ||
        !av_scalar(span[A_VERSION], slen[A_VERSION], "N", &v[A_VERSION], &dummy) ||
        !av_scalar(span[A_DELETED], slen[A_DELETED], "BOOL", NULL, &deleted) ||
        !av_scalar(span[A_UPDATED], slen[A_UPDATED], "S", &v[A_UPDATED], &dummy))
        goto out;
    if (span[A_EXPIRES]) {
        if (!av_scalar(span[A_EXPIRES], slen[A_EXPIRES], "N", &v[A_EXPIRES], &dummy) ||
            (expires = tn__ddb_plain_int(v[A_EXPIRES].p, v[A_EXPIRES].len)) < 0)
            goto out;
    }
    version = tn__ddb_plain_int(v[A_VERSION].p, v[A_VERSION].len);
    updated = tn__ddb_time_parse(v[A_UPDATED].p, v[A_UPDATED].len);
    if (version < 1 || updated < 0) goto out;

    /* The key: TENANT#<uuid> (the tenant asked for, when one is), and a sort
     * key remote_key.c would build from it: nothing else names a row. */
    const char *pk = v[A_PK].p, *sk = v[A_SK].p;
    size_t pkl = v[A_PK].len, skl = v[A_SK].len;
    char uuid[37];
    if (pkl != 7 + 36 || memcmp(pk, "TENANT#", 7) != 0) goto out;
    memcpy(uuid, pk + 7, 36);
    uuid[36] = '\0';
    if (tenant && strcmp(uuid, tenant) != 0) goto out;
    if (skl == 0 || memchr(sk, '\0', skl)) goto out;
    int kind;
    const char *key;
    if (skl == 6 && memcmp(sk, "TENANT", 6) == 0) kind = TN__REMOTE_TENANT, key = "";
    else if (skl > 5 && memcmp(sk, "ITEM#", 5) == 0) kind = TN__REMOTE_ITEM, key = sk + 5;
    else if (skl > 5 && memcmp(sk, "FILE#", 5) == 0) kind = TN__REMOTE_FILE, key = sk + 5;
    else goto out;
    if (!tenant && kind != TN__REMOTE_TENANT) goto out;
    int krc = tn__remote_key_build(uuid, kind, kind == TN__REMOTE_TENANT ? NULL : key, &k);
    if (krc == TN_NOMEM) rc = TN_NOMEM;
    if (krc != TN_OK || strcmp(k.part, pk) != 0 || strlen(k.sort) != skl ||
        memcmp(k.sort, sk, skl) != 0)
        goto out;

    if (!deleted && kind == TN__REMOTE_FILE) {
        if (!span[A_SIZE] || !span[A_SHA] || !span[A_CT] || !span[A_S3KEY] ||
            !av_scalar(span[A_SIZE], slen[A_SIZE], "N", &v[A_SIZE], &dummy) ||
            !av_scalar(span[A_SHA], slen[A_SHA], "S", &v[A_SHA], &dummy) ||
            !av_scalar(span[A_CT], slen[A_CT], "S", &v[A_CT], &dummy) ||
            !av_scalar(span[A_S3KEY], slen[A_S3KEY], "S", &v[A_S3KEY], &dummy))
            goto out;
        size = tn__ddb_plain_int(v[A_SIZE].p, v[A_SIZE].len);
        if (size < 0 || !lower_hex64(v[A_SHA].p, v[A_SHA].len)) goto out;
        if (v[A_CT].len < 1 || v[A_CT].len > 255) goto out;
        for (size_t i = 0; i < v[A_CT].len; i++)
            if (v[A_CT].p[i] < 0x20 || v[A_CT].p[i] > 0x7e) goto out;
        if (strlen(k.object) != v[A_S3KEY].len ||
            memcmp(k.object, v[A_S3KEY].p, v[A_S3KEY].len) != 0)
            goto out;
    } else if (!deleted) {
        /* An item's document; the tenant row's {"name":..,"settings":{..}}. */
        if (!span[A_DATA]) goto out;
        int drc = tn__ddb_av_to_json(span[A_DATA], slen[A_DATA], &data);
        if (drc != TN_OK) {
            rc = drc == TN_NOMEM ? TN_NOMEM : TN_INVALID;
            goto out;
        }
        if (kind == TN__REMOTE_TENANT && (data.len == 0 || data.p[0] != '{')) goto out;
    }

    tn_remote_row *row = tn_remote_page_add(page);
    rc = TN_NOMEM;
    if (!row) goto out;
    memcpy(row->tenant, uuid, sizeof row->tenant);
    row->kind = kind;
    row->version = version;
    row->deleted = deleted;
    row->updated_at = updated;
    row->expires_at = expires;
    row->feed = feed;
    row->key = tn_remote_page_str(page, key, strlen(key));
    int ok = row->key != NULL;
    if (!deleted && kind == TN__REMOTE_FILE) {
        row->size = size;
        row->sha256 = tn_remote_page_str(page, v[A_SHA].p, v[A_SHA].len);
        row->content_type = tn_remote_page_str(page, v[A_CT].p, v[A_CT].len);
        ok = ok && row->sha256 && row->content_type;
    } else if (!deleted) {
        row->data = tn_remote_page_str(page, data.p, data.len);
        ok = ok && row->data;
    }
    if (ok) {
        rc = TN_OK;
    } else {
        page->n--; /* the row just added: nothing half-filled is returned */
    }
out:
    for (int a = 0; a < A_COUNT; a++) tn__sb_free(&v[a]);
    tn__sb_free(&data);
    tn__remote_key_free(&k);
    return rc;
}

int tn__ddb_row_parse(const char *item, size_t len, const char *tenant, tn_remote_page *page,
                      int64_t *feed) {
    if (feed) *feed = -1;
    int rc = row_check(item, len, tenant, page, feed);
    if (rc == TN_INVALID) page->refused++;
    return rc;
}

int tn__ddb_page_parse(const char *body, size_t len, const char *tenant, tn_remote_page *page,
                       const char **lek, size_t *lek_len, int64_t *max_feed) {
    *lek = NULL;
    *lek_len = 0;
    *max_feed = -1;
    jx c = {body, body + (body ? len : 0)};
    int items = 0;
    if (!body || !jx_eat(&c, '{')) return TN_NETWORK;
    if (!jx_eat(&c, '}')) {
        do {
            const char *t;
            size_t tl;
            if (!jx_str(&c, &t, &tl, NULL) || !jx_eat(&c, ':')) return TN_NETWORK;
            if (tl == 7 && memcmp(t, "\"Items\"", 7) == 0) {
                if (items++ || !jx_eat(&c, '[')) return TN_NETWORK;
                if (jx_eat(&c, ']')) continue;
                do {
                    const char *s;
                    size_t n;
                    int64_t f;
                    if (!jx_span(&c, 1, &s, &n)) return TN_NETWORK;
                    int rc = tn__ddb_row_parse(s, n, tenant, page, &f);
                    if (rc == TN_NOMEM) return rc;
                    if (f > *max_feed) *max_feed = f;
                } while (jx_eat(&c, ','));
                if (!jx_eat(&c, ']')) return TN_NETWORK;
            } else if (tl == 18 && memcmp(t, "\"LastEvaluatedKey\"", 18) == 0) {
                if (*lek || !jx_peek(&c, '{') || !jx_span(&c, 1, lek, lek_len)) return TN_NETWORK;
            } else if (!jx_skip(&c, 1)) {
                return TN_NETWORK;
            }
        } while (jx_eat(&c, ','));
        if (!jx_eat(&c, '}')) return TN_NETWORK;
    }
    jx_ws(&c);
    return c.p == c.end && items == 1 ? TN_OK : TN_NETWORK;
}

int tn__ddb_key_parse(const char *lek, size_t len, tn__ddb_key *k) {
    memset(k, 0, sizeof *k);
    jx c = {lek, lek + len};
    const char *span[3] = {0};
    size_t slen[3] = {0};
    static const char *const names[3] = {"pk", "sk", "feed"};
    if (!jx_eat(&c, '{')) return TN_INVALID;
    if (!jx_eat(&c, '}')) {
        do {
            const char *t, *vs;
            size_t tl, vl;
            if (!jx_str(&c, &t, &tl, NULL) || !jx_eat(&c, ':') || !jx_span(&c, 2, &vs, &vl))
                return TN_INVALID;
            for (int a = 0; a < 3; a++)
                if (tl == strlen(names[a]) + 2 && memcmp(t + 1, names[a], tl - 2) == 0) {
                    if (span[a]) return TN_INVALID;
                    span[a] = vs;
                    slen[a] = vl;
                }
        } while (jx_eat(&c, ','));
        if (!jx_eat(&c, '}')) return TN_INVALID;
    }
    int dummy, rc = TN_INVALID;
    if (span[0] && span[1] && av_scalar(span[0], slen[0], "S", &k->pk, &dummy) &&
        av_scalar(span[1], slen[1], "S", &k->sk, &dummy) &&
        (!span[2] || av_scalar(span[2], slen[2], "N", &k->feed, &dummy))) {
        rc = TN_OK;
        /* A feed N is copied back as it came: it must at least be a number. */
        if (span[2] && (k->feed.len == 0 || k->feed.len > TN__DDB_FEED_TEXT ||
                        !json_number(k->feed.p, k->feed.len)))
            rc = TN_INVALID;
    }
    if (k->pk.failed || k->sk.failed || k->feed.failed) rc = TN_NOMEM;
    if (rc != TN_OK) tn__ddb_key_free(k);
    return rc;
}

void tn__ddb_key_free(tn__ddb_key *k) {
    tn__sb_free(&k->pk);
    tn__sb_free(&k->sk);
    tn__sb_free(&k->feed);
}

/* ---- tokens: cursors and page tokens ---- */

static int tok_raw(unsigned char ch) { return ch > 0x20 && ch < 0x7f && ch != '%' && ch != '!'; }

size_t tn__ddb_tok_enc(const char *s, size_t n, tn__sbuf *out, size_t room) {
    size_t i = 0, used = 0;
    while (i < n) {
        size_t l = utf8_len((const unsigned char *)s + i, n - i);
        if (!l) l = 1;
        size_t need = 0;
        for (size_t j = 0; j < l; j++) need += tok_raw((unsigned char)s[i + j]) ? 1 : 3;
        if (used + need > room) break;
        for (size_t j = 0; j < l; j++) {
            unsigned char ch = (unsigned char)s[i + j];
            if (tok_raw(ch)) tn__sb_add(out, &s[i + j], 1);
            else tn__sb_fmt(out, "%%%02X", ch);
        }
        used += need;
        i += l;
    }
    return i;
}

int tn__ddb_tok_dec(const char *t, size_t n, tn__sbuf *out) {
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)t[i];
        if (tok_raw(ch)) {
            tn__sb_add(out, &t[i], 1);
            continue;
        }
        if (ch != '%' || n - i < 3) return TN_INVALID;
        char h[4] = {'0', '0', t[i + 1], t[i + 2]};
        long v = hex4(h);
        /* One spelling per byte: uppercase hex, and only for a byte that
         * needs it. */
        if (v < 0 || tok_raw((unsigned char)v) || (h[2] >= 'a' && h[2] <= 'f') ||
            (h[3] >= 'a' && h[3] <= 'f'))
            return TN_INVALID;
        unsigned char b = (unsigned char)v;
        tn__sb_add(out, &b, 1);
        i += 2;
    }
    return out->failed ? TN_NOMEM : TN_OK;
}

void tn__ddb_json_str_n(tn__sbuf *b, const char *s, size_t n) {
    tn__sb_add(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        tn__sb_add(b, s + run, i - run);
        if (c == '"') tn__sb_str(b, "\\\"");
        else if (c == '\\') tn__sb_str(b, "\\\\");
        else tn__sb_fmt(b, "\\u%04x", c);
        run = i + 1;
    }
    tn__sb_add(b, s + run, n - run);
    tn__sb_add(b, "\"", 1);
}

int tn__ddb_cursor_parse(const char *text, tn__ddb_cursor *c) {
    memset(c, 0, sizeof *c);
    if (!text || !*text) return TN_OK;
    size_t n = strlen(text);
    if (n > TN__DDB_CURSOR_MAX || (text[0] != 'c' && text[0] != 'w')) return TN_INVALID;
    const char *p = text + 1, *bang = strchr(p, '!');
    size_t hl = text[0] == 'c' ? n - 1 : bang ? (size_t)(bang - p) : 0;
    if ((c->high = tn__ddb_plain_int(p, hl)) < 0) return TN_INVALID;
    if (text[0] == 'c') return TN_OK;
    const char *f = bang + 1, *bang2 = strchr(f, '!');
    size_t fl = bang2 ? (size_t)(bang2 - f) : 0;
    if (fl == 0 || fl > TN__DDB_FEED_TEXT || !json_number(f, fl) || !bang2[1]) return TN_INVALID;
    memcpy(c->feed, f, fl);
    c->feed[fl] = '\0';
    c->walking = 1;
    int rc = tn__ddb_tok_dec(bang2 + 1, strlen(bang2 + 1), &c->sk);
    if (rc == TN_OK && (c->sk.len == 0 || c->sk.len > TN__REMOTE_NAME_MAX)) rc = TN_INVALID;
    if (rc != TN_OK) tn__ddb_cursor_free(c);
    return rc;
}

int tn__ddb_cursor_format(const tn__ddb_cursor *c, char out[TN__DDB_CURSOR_MAX + 1]) {
    out[0] = '\0';
    if (c->high < 0) return TN_INVALID;
    if (!c->walking) {
        snprintf(out, TN__DDB_CURSOR_MAX + 1, "c%lld", (long long)c->high);
        return TN_OK;
    }
    size_t fl = strlen(c->feed);
    if (fl == 0 || fl > TN__DDB_FEED_TEXT || !json_number(c->feed, fl) || c->sk.len == 0)
        return TN_INVALID;
    tn__sbuf b = {0};
    tn__sb_fmt(&b, "w%lld!%s!", (long long)c->high, c->feed);
    /* A sort key too long for the cursor is cut at a character boundary:
     * the query resumes a little earlier and a row comes back twice, which
     * the contract allows (never later, which would skip one). */
    size_t took = b.failed ? 0 : tn__ddb_tok_enc(c->sk.p, c->sk.len, &b, TN__DDB_CURSOR_MAX - b.len);
    int rc = b.failed ? TN_NOMEM : took == 0 ? TN_INVALID : TN_OK;
    if (rc == TN_OK) memcpy(out, b.p, b.len + 1);
    tn__sb_free(&b);
    return rc;
}

void tn__ddb_cursor_free(tn__ddb_cursor *c) { tn__sb_free(&c->sk); }
