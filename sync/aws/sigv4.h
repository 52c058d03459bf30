/*
 * sigv4.h - AWS Signature Version 4 (AWS4-HMAC-SHA256): the one signer the sync
 * engine uses, both for Authorization headers (DynamoDB, STS) and for presigned
 * URLs (S3 GET, PUT, UploadPart).
 *
 * Use:
 *   tn__sigv4_request req = {"POST", "/", NULL, hdrs, nhdrs, body, body_len, NULL};
 *   tn__sigv4_signer s = {akid, secret, token, "us-east-1", "dynamodb", now,
 *                         TN__SIGV4_AWS, 0};
 *   tn__sigv4_result r;
 *   if (tn__sigv4_sign(&s, &req, &r) == 0) {
 *       send hdrs, r.add[0 .. r.nadd-1] and "Authorization: " r.authorization
 *       tn__sigv4_result_free(&r);
 *   }
 * For a presigned URL set TN__SIGV4_PRESIGN and expires; the URL is
 *   scheme "://" host req.path "?" r.query
 * (req.path is sent as given; r.query replaces req.query).
 *
 * Path and query (the part of SigV4 that differs between services):
 *   - req->path is the path exactly as it goes on the request line, without the
 *     query.  "" means "/"; anything else must start with '/'.
 *   - Default (every service but S3): the path is URI-encoded once more to make
 *     the canonical URI.  That is AWS's "double encoding": a client that sends
 *     /a%20b signs /a%2520b.  aws-c-auth's test suite gives raw paths
 *     ("/example space/"), which therefore sign as "/example%20space/".
 *     TN__SIGV4_NORMALIZE_PATH first removes "." and ".." segments and
 *     duplicate slashes (RFC 3986 5.2.4), as AWS does for these services.
 *   - TN__SIGV4_PATH_ENCODED (S3): the path is already URI-encoded (build it
 *     with tn__sigv4_uri_encode(key, keep_slash = 1)) and is the canonical URI
 *     byte for byte: no second encoding, no normalization.  It may then hold
 *     only unreserved characters, '/' and %XX; anything else is TN__SIGV4_EINVAL,
 *     because S3 would sign a different string than the one we send.
 *   - req->query is the raw query string without '?'.  Each name and value is
 *     percent-decoded and re-encoded (unreserved kept, all else %XX, so '+' is
 *     a plus sign, never a space); a malformed %-escape is TN__SIGV4_EINVAL.
 *     "a" signs as "a=".  Pairs sort by encoded name, then value.
 *
 * Headers: every header passed is signed, so pass only the ones to sign, and
 * host must be one of them.  Names are compared case-insensitively and
 * lower-cased; values are trimmed and runs of spaces/tabs become one space;
 * repeated names are joined with ',' in the order given.  CR, LF and other
 * control characters are refused (they would forge canonical-request lines).
 * Headers the signer adds itself (x-amz-date, x-amz-security-token,
 * x-amz-content-sha256 when asked) and authorization must not be passed.
 *
 * Payload: req->payload_hash when set (e.g. "UNSIGNED-PAYLOAD" or 64 hex
 * digits computed while streaming a file), otherwise SHA-256 of req->body.
 * S3 presigned URLs must pass "UNSIGNED-PAYLOAD": the body is not known yet.
 *
 * Session token: signed as x-amz-security-token (header mode) or
 * X-Amz-Security-Token (presign) unless TN__SIGV4_OMIT_TOKEN, which still
 * sends it but leaves it out of the canonical request (aws-c-auth's
 * omit_session_token; S3 presigned URLs need it signed).  NULL or "" means
 * long-term keys.
 *
 * Time comes in as signer->now and is never read from the system clock, so
 * tests pin exact bytes.  Nothing here keeps state; all functions are
 * thread-safe.  The secret key is used only inside tn__sigv4_sign, wiped from
 * the stack afterwards and never written to any output or log; the results
 * (canonical request, string to sign) contain the session token, as the
 * request itself does.
 */
#ifndef TN_SIGV4_H
#define TN_SIGV4_H

#include <stddef.h>
#include <time.h>

/* Longest path, query, header value, session token or payload hash accepted. */
#define TN__SIGV4_MAX_FIELD 65536
/* Most headers accepted in one request. */
#define TN__SIGV4_MAX_HEADERS 64
/* Longest access key id, secret key, region, service, method, header name
 * and payload hash (bytes). */
#define TN__SIGV4_MAX_ID 128
/* X-Amz-Expires range (SigV4 allows at most 7 days). */
#define TN__SIGV4_MAX_EXPIRES 604800

/* X(name, value).  Append only; never renumber. */
#define TN__SIGV4_ERRORS(X)                                                     \
    X(OK, 0)                                                                    \
    X(EINVAL, -1)  /* NULL or malformed input, clock out of range */           \
    X(ETOOBIG, -2) /* a field longer than its limit, too many headers */       \
    X(ENOMEM, -3)

enum {
#define TN__SIGV4_ENUM_(name, value) TN__SIGV4_##name = value,
    TN__SIGV4_ERRORS(TN__SIGV4_ENUM_)
#undef TN__SIGV4_ENUM_
};

/* "TN__SIGV4_EINVAL" for TN__SIGV4_EINVAL; "TN__SIGV4_?" for an unknown code. */
const char *tn__sigv4_errname(int rc);

/* Flags for tn__sigv4_signer.flags. */
#define TN__SIGV4_PRESIGN 0x01        /* presigned query string, else Authorization header */
#define TN__SIGV4_NORMALIZE_PATH 0x02 /* remove dot segments and duplicate slashes */
#define TN__SIGV4_PATH_ENCODED 0x04   /* path is already encoded: sign it as is (S3) */
#define TN__SIGV4_CONTENT_SHA256 0x08 /* header mode: add and sign x-amz-content-sha256 */
#define TN__SIGV4_OMIT_TOKEN 0x10     /* send the session token but leave it unsigned */

/* Ready-made sets: every AWS service except S3, and S3. */
#define TN__SIGV4_AWS TN__SIGV4_NORMALIZE_PATH
#define TN__SIGV4_S3 (TN__SIGV4_PATH_ENCODED | TN__SIGV4_CONTENT_SHA256)

typedef struct tn__sigv4_header {
    const char *name;
    const char *value;
} tn__sigv4_header;

typedef struct tn__sigv4_request {
    const char *method;               /* "GET", "PUT", ... */
    const char *path;                 /* request-line path, no query (see above) */
    const char *query;                /* raw query without '?'; NULL or "" for none */
    const tn__sigv4_header *headers;  /* the headers to sign, host included */
    size_t nheaders;
    const void *body;                 /* hashed when payload_hash is NULL */
    size_t body_len;
    const char *payload_hash;         /* NULL, or used as the payload hash as is */
} tn__sigv4_request;

typedef struct tn__sigv4_signer {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL or "" for long-term keys */
    const char *region;        /* "us-east-1" */
    const char *service;       /* "s3", "dynamodb", "sts" */
    time_t now;                /* signing time: seconds since 1970, up to year 9999 */
    unsigned flags;            /* TN__SIGV4_* */
    long expires;              /* presign only: X-Amz-Expires, 1..604800 */
} tn__sigv4_signer;

typedef struct tn__sigv4_result {
    char signature[65];        /* 64 lowercase hex digits */
    char amz_date[17];         /* YYYYMMDDTHHMMSSZ */
    /* Header mode: the Authorization value and the headers to add to the
     * request (x-amz-date, then x-amz-security-token and x-amz-content-sha256
     * when they apply); values point into this struct.  Presign mode: NULL/0. */
    char *authorization;
    tn__sigv4_header add[3];
    size_t nadd;
    /* Presign mode: the whole query to send (the request's own parameters,
     * encoded, in their order, then X-Amz-Algorithm, -Credential, -Date,
     * -Expires, -SignedHeaders, -Security-Token, -Signature).  Header: NULL. */
    char *query;
    /* What was signed, for tests and debugging. */
    char *canonical_request;
    char *string_to_sign;
    /* Private storage behind add[]. */
    char *token_;
    char *payload_hash_;
} tn__sigv4_result;

/*
 * Signs req.  On success fills *out (free with tn__sigv4_result_free) and
 * returns TN__SIGV4_OK; on failure returns a negative TN__SIGV4_* code and
 * leaves *out zeroed (freeing it is then harmless).
 */
int tn__sigv4_sign(const tn__sigv4_signer *s, const tn__sigv4_request *req,
                   tn__sigv4_result *out);
void tn__sigv4_result_free(tn__sigv4_result *out); /* NULL is fine */

/*
 * AWS URI encoding of len bytes: A-Za-z0-9 - . _ ~ are kept, '/' is kept when
 * keep_slash, every other byte becomes %XX (uppercase hex).  *out is a
 * malloc'd NUL-terminated string.  len at most TN__SIGV4_MAX_FIELD.
 */
int tn__sigv4_uri_encode(const char *in, size_t len, int keep_slash, char **out);

#endif
