/*
 * dynamo.h - DynamoDB over its JSON protocol (X-Amz-Target), signed with
 * SigV4 in header mode: converting a JSON document to DynamoDB's typed form,
 * building item rows of the remote layout, and calling the API with errors
 * mapped to tn codes (retryable or permanent).
 *
 * Conversion (tn__ddb_json_to_av) walks the JSON text itself, so numbers keep
 * their exact digits ({"N":"12345678901234567890"}), never passing through a
 * double: object -> M, array -> L, string -> S, number -> N, true/false ->
 * BOOL, null -> NULL.  The input must be valid JSON (the store guarantees it).
 */
#ifndef TN_DYNAMO_H
#define TN_DYNAMO_H

#include "aws.h"
#include "http_client.h"
#include "remote.h"
#include "sbuf.h"

#include <time.h>

/* Appends the AttributeValue of the JSON text json[0..len) to out.
 * TN_OK, TN_INVALID (not JSON) or TN_NOMEM. */
int tn__ddb_json_to_av(const char *json, size_t len, tn__sbuf *out);

/* Appends the Item map of row r ({"pk":...,"sk":...,...}) under the names in
 * k.  A tombstone's expires_at is r->expires_at; feed_ms is the push time
 * (the change feed's sort key). */
int tn__ddb_item(const tn_remote_row *r, const tn__remote_key *k, int64_t feed_ms, tn__sbuf *out);

#define TN__DDB_TYPE_MAX 96

typedef struct tn__ddb_resp {
    long status;
    char type[TN__DDB_TYPE_MAX]; /* short error type: "ConditionalCheckFailedException" */
    char *body;
} tn__ddb_resp;

/* Calls target (e.g. "PutItem") with a JSON body.  TN_OK when the call
 * succeeded (2xx with an answer tn__ddb_answer_ok accepts); TN_NETWORK
 * (retryable) for a 2xx whose body is not such an answer, since nothing
 * says the write happened; otherwise the mapped error (see tn__ddb_error). */
int tn__ddb_call(tn__aws *a, tn__http *h, const char *target, const char *body, size_t len,
                 tn__ddb_resp *r);
void tn__ddb_resp_free(tn__ddb_resp *r);

/* What tn__ddb_call makes of an answer: status and body[0..len) (body may be
 * NULL) of the response to target called with request[0..reqlen).  The
 * short error type ("" when none) goes to type.  Pure; fuzzed. */
int tn__ddb_response(const char *target, const char *request, size_t reqlen, long status,
                     const char *body, size_t len, char type[TN__DDB_TYPE_MAX]);

/* Whether answer (the parsed 2xx body, may be NULL) is a DynamoDB answer to
 * target: a JSON object; for BatchWriteItem one with an UnprocessedItems
 * object whose every entry names a table of the request and a pk and sk. */
struct cJSON;
int tn__ddb_answer_ok(const char *target, const char *request, size_t len,
                      const struct cJSON *answer);

/* Maps an HTTP status and an error type to a tn code: TN_CONFLICT for a
 * failed condition, TN_THROTTLED for throttling, 5xx and transaction
 * conflicts (retryable), TN_NETWORK (retryable) for a 4xx without an error
 * type (not DynamoDB's answer), TN_TOOBIG / TN_INVALID for validation errors
 * and TN_DENIED / TN_NOTFOUND / TN_REMOTE for the rest (permanent). */
int tn__ddb_error(long status, const char *type, const char *message);

/* The 57-bit version in an Item's "version" attribute of a GetItem answer;
 * 0 when absent. */
int64_t tn__ddb_version_of(const char *getitem_body);
/* The version in an AttributeValue map's "version" attribute (plain digits
 * that fit in 63 bits); -1 when absent or anything else. */
struct cJSON;
int64_t tn__ddb_item_version(const struct cJSON *item);

/* The remote's version in the "Item" of a refusal (a ConditionalCheckFailed
 * PutItem with ReturnValuesOnConditionCheckFailure); -1 when it does not say. */
int64_t tn__ddb_refusal_version(const char *body);

/* What a TransactionCanceledException body says about each of the n items of
 * the transaction, into why[0..n) and ver[0..n): */
enum {
    TN__DDB_REASON_RETRY,     /* not this item's fault ("None"), or throttled: again */
    TN__DDB_REASON_CONDITION, /* its condition failed; ver: the remote version, -1 unknown */
    TN__DDB_REASON_ALONE      /* anything else: send it alone to learn its own error */
};
/* 0, or -1 when the body does not list exactly n reasons (a transaction
 * refused as a whole).  Pure; fuzzed. */
int tn__ddb_cancel_reasons(const char *body, int n, int *why, int64_t *ver);

#endif
