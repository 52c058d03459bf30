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
#include "outbox.h"
#include "remote_key.h"
#include "sbuf.h"

#include <time.h>

/* Appends the AttributeValue of the JSON text json[0..len) to out.
 * TN_OK, TN_INVALID (not JSON) or TN_NOMEM. */
int tn__ddb_json_to_av(const char *json, size_t len, tn__sbuf *out);

/* Appends the Item map for change ch ({"pk":...,"sk":...,...}).
 * tombstone_ttl_s: seconds a tombstone lives (expires_at). */
int tn__ddb_item(const tn__change *ch, const tn__remote_key *k, int64_t tombstone_ttl_s,
                 tn__sbuf *out);

typedef struct tn__ddb_resp {
    long status;
    char type[96]; /* short error type: "ConditionalCheckFailedException" */
    char *body;
} tn__ddb_resp;

/* Calls target (e.g. "PutItem") with a JSON body.  TN_OK when the call
 * succeeded (2xx); otherwise the mapped error (see tn__ddb_error). */
int tn__ddb_call(tn__aws *a, tn__http *h, const char *target, const char *body, size_t len,
                 tn__ddb_resp *r);
void tn__ddb_resp_free(tn__ddb_resp *r);

/* Maps an HTTP status and an error type to a tn code: TN_CONFLICT for a
 * failed condition, TN_THROTTLED for throttling, 5xx and transaction
 * conflicts (retryable), TN_TOOBIG / TN_INVALID for validation errors and
 * TN_DENIED / TN_NOTFOUND / TN_REMOTE for the rest (permanent). */
int tn__ddb_error(long status, const char *type, const char *message);

/* The 57-bit version in an Item's "version" attribute of a GetItem answer;
 * 0 when absent. */
int64_t tn__ddb_version_of(const char *getitem_body);

/* RFC 3339 UTC of ms since the epoch: 2026-11-24T13:05:35.123Z */
void tn__rfc3339(int64_t ms, char out[32]);

#endif
