/*
 * fuzz_ddb_response.c - libFuzzer target for what the sync engine reads from
 * DynamoDB (sync/dynamo.c): tn__ddb_response (the answer of every call:
 * PutItem and its ConditionalCheckFailed refusal, GetItem, BatchWriteItem and
 * its UnprocessedItems, TransactWriteItems and its cancellation, CreateTable,
 * DescribeTable, UpdateTimeToLive; error documents of any status), the
 * version of a GetItem answer, and the JSON-to-AttributeValue conversion.
 *
 * Input layout: byte 0 = which call (low 3 bits), or the conversion (bit 3),
 * or the cancellation reasons of a transaction of (byte 1 & 127) items
 * (bit 4); byte 1 = the HTTP status (from a table of the ones DynamoDB and proxies
 * send, or 100 + the byte), then the body.
 * Invariants:
 *   - a 2xx is TN_OK or TN_NETWORK (retryable: nothing says the write
 *     happened), never a permanent error; any other status is never TN_OK;
 *     5xx and 429 without an error type are retryable;
 *   - the short error type is NUL-terminated, without '#', and the answer is
 *     the same when asked twice (no state);
 *   - a BatchWriteItem answer taken as TN_OK names in UnprocessedItems only
 *     the request's table, each entry with pk and sk strings (checked here
 *     independently), so every unprocessed row can be matched and resent;
 *   - cancellation reasons are read only from a body listing exactly as many
 *     as the transaction had items; "None" (or no code) means send again, a
 *     failed condition is one, and only it carries a version;
 *   - a GetItem version is 0 (absent) or exactly the number its N spells in
 *     plain decimal digits (so never negative, never a clamped overflow);
 *   - the conversion turns every valid JSON text (what the store holds) into
 *     valid JSON, and never crashes on anything else.
 */
#include "dynamo.h"
#include "json_check.h"
#include "tenantry.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const targets[] = {"PutItem", "GetItem", "BatchWriteItem",
                                      "TransactWriteItems", "CreateTable", "DescribeTable",
                                      "UpdateTimeToLive", "BatchWriteItem"};
static const long statuses[] = {200, 200, 200, 400, 400, 400, 403, 404, 413, 429, 500, 503, 504, 302};

static const char batch_request[] =
    "{\"RequestItems\":{\"tenantry\":[{\"PutRequest\":{\"Item\":{\"pk\":{\"S\":\"TENANT#a\"},"
    "\"sk\":{\"S\":\"ITEM#1\"},\"version\":{\"N\":\"5\"}}}},{\"DeleteRequest\":{\"Key\":{\"pk\":"
    "{\"S\":\"TENANT#a\"},\"sk\":{\"S\":\"ITEM#2\"}}}}]}}";

static void trap(const char *why, const char *body) {
    fprintf(stderr, "fuzz_ddb_response: %s: \"%.400s\"\n", why, body);
    abort();
}

/* The oracle for a BatchWriteItem answer accepted as written. */
static int unprocessed_readable(const char *body, size_t len) {
    cJSON *j = cJSON_ParseWithLength(body, len);
    const cJSON *un = cJSON_GetObjectItemCaseSensitive(j, "UnprocessedItems"), *t, *e;
    int ok = cJSON_IsObject(un);
    cJSON_ArrayForEach(t, un) {
        if (!t->string || strcmp(t->string, "tenantry") != 0 || !cJSON_IsArray(t)) ok = 0;
        cJSON_ArrayForEach(e, t) {
            const cJSON *put = cJSON_GetObjectItemCaseSensitive(e, "PutRequest");
            const cJSON *item = put ? cJSON_GetObjectItemCaseSensitive(put, "Item")
                                    : cJSON_GetObjectItemCaseSensitive(
                                          cJSON_GetObjectItemCaseSensitive(e, "DeleteRequest"),
                                          "Key");
            const cJSON *pk = cJSON_GetObjectItemCaseSensitive(item, "pk");
            const cJSON *sk = cJSON_GetObjectItemCaseSensitive(item, "sk");
            if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(pk, "S")) ||
                !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(sk, "S")))
                ok = 0;
        }
    }
    cJSON_Delete(j);
    return ok;
}

static void check_version(const char *body, size_t len) {
    int64_t v = tn__ddb_version_of(body);
    if (v == 0) return;
    if (v < 0) trap("a negative version", body);
    cJSON *j = cJSON_ParseWithLength(body, len);
    const char *n = cJSON_GetStringValue(cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "Item"), "version"), "N"));
    char want[24];
    snprintf(want, sizeof want, "%lld", (long long)v);
    while (n && n[0] == '0' && n[1]) n++; /* the same number */
    if (!n || strcmp(n, want) != 0) trap("a version that is not the N text", body);
    cJSON_Delete(j);
}

static void check_conversion(const char *body, size_t len) {
    tn__sbuf out = {0};
    int valid = tn__json_valid(body, len, 64);
    int rc = tn__ddb_json_to_av(body, len, &out);
    if (rc == TN_NOMEM) {
        tn__sb_free(&out);
        return;
    }
    if (valid && rc != TN_OK) trap("valid JSON refused by the conversion", body);
    if (valid) { /* its contract covers valid JSON (what the store holds) */
        cJSON *j = cJSON_ParseWithLength(out.p, out.len);
        if (!j) trap("the conversion made invalid JSON", body);
        cJSON_Delete(j);
    }
    tn__sb_free(&out);
}

static void check_reasons(const char *body, size_t len, int n) {
    int why[128];
    int64_t ver[128];
    if (tn__ddb_cancel_reasons(body, n, why, ver) != 0) return;
    cJSON *j = cJSON_ParseWithLength(body, len);
    const cJSON *list = cJSON_GetObjectItem(j, "CancellationReasons"), *e;
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) != n)
        trap("reasons read from a body without n of them", body);
    int k = 0;
    cJSON_ArrayForEach(e, list) {
        const char *code = cJSON_GetStringValue(cJSON_GetObjectItem(e, "Code"));
        if (why[k] < TN__DDB_REASON_RETRY || why[k] > TN__DDB_REASON_ALONE)
            trap("an unknown reason", body);
        if (ver[k] < -1 || (ver[k] != -1 && why[k] != TN__DDB_REASON_CONDITION))
            trap("a version outside a failed condition", body);
        if ((!code || strcmp(code, "None") == 0) && why[k] != TN__DDB_REASON_RETRY)
            trap("an item without a reason is not simply sent again", body);
        if (code && strcmp(code, "ConditionalCheckFailed") == 0 &&
            why[k] != TN__DDB_REASON_CONDITION)
            trap("a failed condition not read as one", body);
        k++;
    }
    cJSON_Delete(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const char *target = targets[data[0] & 7];
    long status = data[1] < sizeof statuses / sizeof statuses[0] ? statuses[data[1]]
                                                                   : 100 + data[1];
    size_t len = size - 2;
    char *body = malloc(len + 1);
    if (!body) return 0;
    memcpy(body, data + 2, len);
    body[len] = '\0';
    if (data[0] & 16) {
        check_reasons(body, len, data[1] & 127);
        free(body);
        return 0;
    }
    if (data[0] & 8) {
        check_conversion(body, len);
        free(body);
        return 0;
    }

    char type[TN__DDB_TYPE_MAX], again[TN__DDB_TYPE_MAX];
    const char *req = strcmp(target, "BatchWriteItem") == 0 ? batch_request : "{}";
    int rc = tn__ddb_response(target, req, strlen(req), status, body, len, type);
    if (memchr(type, '\0', sizeof type) == NULL) trap("type not terminated", body);
    if (strchr(type, '#')) trap("type keeps its namespace", body);
    if (tn__ddb_response(target, req, strlen(req), status, body, len, again) != rc ||
        strcmp(type, again) != 0)
        trap("a second reading differs", body);
    if (status >= 200 && status < 300) {
        if (rc != TN_OK && rc != TN_NETWORK) trap("a 2xx read as a permanent error", body);
        if (rc == TN_OK && strcmp(target, "BatchWriteItem") == 0 && !unprocessed_readable(body, len))
            trap("unreadable UnprocessedItems taken as written", body);
    } else {
        if (rc == TN_OK) trap("an error status read as success", body);
        if ((status >= 500 || status == 429) && !type[0] && !tn_err_retryable(rc))
            trap("a 5xx or 429 without a type is not retried", body);
    }
    /* The same body without its length (what a GetItem reader sees). */
    check_version(body, len);
    int64_t rv = tn__ddb_refusal_version(body);
    if (rv < -1 || (rv >= 0 && tn__ddb_version_of(body) != rv && rv != 0))
        trap("a refusal version that is not the item's", body);
    free(body);
    return 0;
}
