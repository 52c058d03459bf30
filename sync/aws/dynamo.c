/*
 * dynamo.c - DynamoDB JSON protocol calls and the JSON -> AttributeValue
 * conversion (see dynamo.h).
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
