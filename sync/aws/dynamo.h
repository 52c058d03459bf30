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
 *
 * Reading back (tn__ddb_av_to_json, tn__ddb_row_parse, tn__ddb_page_parse)
 * treats every answer as untrusted: a row that fails a check is counted and
 * left out, never half-returned.
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

/* A Query's error rc with its answer body: a ValidationException about the
 * index becomes TN_THROTTLED while DynamoDB builds it ("Cannot read from
 * backfilling global secondary index": later) and TN_NOTFOUND when the table
 * has none ("does not have the specified index": remote init has not run;
 * moto answers ResourceNotFoundException, TN_NOTFOUND already). */
int tn__ddb_index_error(int rc, const char *body);

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

/* ---- reading rows back (untrusted text) ----------------------------------- */

#define TN__DDB_MAX_DEPTH 64               /* JSON containers, as the store allows */
#define TN__DDB_MAX_JSON ((size_t)4 << 20) /* an item is 400 KB; its JSON is less */

/* Appends the JSON text of the AttributeValue av[0..len) to out, the inverse
 * of tn__ddb_json_to_av: M -> object, L -> array, S -> string (the token as
 * DynamoDB sent it, once checked), N -> number (its exact digits; it must be
 * a JSON number), BOOL, NULL.  Refused (TN_INVALID): B, SS, NS, BS or any
 * other type, an AttributeValue with more or less than one member, invalid
 * JSON or UTF-8, a map with the same key twice, more than TN__DDB_MAX_DEPTH
 * nested containers; TN_TOOBIG past TN__DDB_MAX_JSON of output; TN_NOMEM.
 * On failure out may hold part of a text. */
int tn__ddb_av_to_json(const char *av, size_t len, tn__sbuf *out);

/* s[0..n) as plain decimal digits that fit in 63 bits; -1 otherwise. */
int64_t tn__ddb_plain_int(const char *s, size_t n);
/* An RFC 3339 date-time (2026-11-24T13:05:35.123Z, any fraction of 1 to 9
 * digits, Z or a +hh:mm offset) as ms since the epoch; -1 if not one or
 * before 1970. */
int64_t tn__ddb_time_parse(const char *s, size_t n);

/* One item (its attribute map, item[0..len)) as a row appended to page.
 * tenant: the uuid whose partition was read; NULL: any tenant (the tenant
 * list), and then only tenant rows (sort key "TENANT") are taken.  Checked:
 * pk "TENANT#<uuid>", a sort key remote_key.c builds (ITEM#, FILE#, TENANT),
 * version N of plain digits >= 1, deleted BOOL, updated_at RFC 3339,
 * expires_at and feed N plain digits when present; live items and tenant
 * rows a data attribute tn__ddb_av_to_json accepts (a tenant row's an
 * object); live files size N, sha256 of 64 lowercase hex digits,
 * content_type of 1..255 printable ASCII characters and s3_key equal to the
 * object name remote_key.c builds.  Other attributes are ignored.  A row
 * failing a check is left out and counted in page->refused: TN_INVALID.
 * *feed (may be NULL): the item's feed when it is plain digits, else -1
 * (refused items too).  TN_OK, TN_INVALID or TN_NOMEM. */
int tn__ddb_row_parse(const char *item, size_t len, const char *tenant, tn_remote_page *page,
                      int64_t *feed);

/* A Query or Scan answer body[0..len): each of its Items through
 * tn__ddb_row_parse; *lek the text of its LastEvaluatedKey (NULL when
 * none), pointing into body; *max_feed the highest feed of any item (-1
 * none).  TN_OK, TN_NETWORK (not such an answer: nothing says what the
 * remote holds) or TN_NOMEM. */
int tn__ddb_page_parse(const char *body, size_t len, const char *tenant, tn_remote_page *page,
                       const char **lek, size_t *lek_len, int64_t *max_feed);

/* A LastEvaluatedKey: pk and sk (S, decoded bytes), feed (N as sent, when
 * present, at most TN__DDB_FEED_TEXT characters of a JSON number). */
#define TN__DDB_FEED_TEXT 48
typedef struct tn__ddb_key {
    tn__sbuf pk, sk, feed;
} tn__ddb_key;
int tn__ddb_key_parse(const char *lek, size_t len, tn__ddb_key *k);
void tn__ddb_key_free(tn__ddb_key *k);

/* Appends s[0..n) (any bytes, NUL included) as a JSON string literal. */
void tn__ddb_json_str_n(tn__sbuf *b, const char *s, size_t n);

/* Token text for key bytes: 0x21..0x7e but '%' and '!' as they are, any
 * other byte %XX (uppercase).  Encodes the longest prefix of whole UTF-8
 * characters of s[0..n) that fits in room characters; returns the bytes
 * of s taken.  tok_dec accepts exactly what tok_enc writes. */
size_t tn__ddb_tok_enc(const char *s, size_t n, tn__sbuf *out, size_t room);
int tn__ddb_tok_dec(const char *t, size_t n, tn__sbuf *out);

/* The change feed's cursor (remote_aws.c): "" from the start; "c<high>"
 * caught up; "w<high>!<feed>!<sk>" while a query's pages are walked, to
 * resume after the last evaluated key (feed, sk).  high is the highest feed
 * seen (ms, capped at the reader's clock). */
#define TN__DDB_CURSOR_MAX 255
typedef struct tn__ddb_cursor {
    int64_t high;
    int walking;
    char feed[TN__DDB_FEED_TEXT + 1];
    tn__sbuf sk;
} tn__ddb_cursor;
/* TN_OK, TN_INVALID (not a cursor this backend wrote) or TN_NOMEM. */
int tn__ddb_cursor_parse(const char *text, tn__ddb_cursor *c);
/* A sort key that does not fit is cut at a character boundary (the walk
 * resumes a little earlier: a row may come back twice, none is skipped). */
int tn__ddb_cursor_format(const tn__ddb_cursor *c, char out[TN__DDB_CURSOR_MAX + 1]);
void tn__ddb_cursor_free(tn__ddb_cursor *c);

#endif
