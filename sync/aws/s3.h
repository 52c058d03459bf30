/*
 * s3.h - the S3 calls the engine makes: a GET (download) through a presigned
 * URL, a PUT through a presigned URL signed
 * for exactly one key with a short lifetime and the object's SHA-256
 * (x-amz-checksum-sha256, a signed header, so S3 verifies the bytes), and
 * DeleteObject / HeadBucket signed in header mode.  Keys come from
 * remote_key.h only.  Path-style URLs when an endpoint is configured,
 * virtual-hosted ones for AWS itself.
 */
#ifndef TN_S3_H
#define TN_S3_H

#include "aws.h"
#include "http_client.h"
#include "sigv4.h"

#include <stdint.h>

#define TN__S3_PRESIGN_TTL 900 /* seconds: 15 minutes */

/* A presigned URL for method on key; signed headers host, and when given
 * x-amz-checksum-sha256 (base64) and content-type.  *url is malloc'd. */
int tn__s3_presign(tn__aws *a, tn__http *h, const char *method, const char *key,
                   const char *checksum_b64, const char *content_type, long ttl_s, char **url);

/* The same with a raw query (already URI-encoded) and any headers to sign. */
int tn__s3_presign_q(tn__aws *a, tn__http *h, const char *method, const char *key,
                     const char *query, const tn__sigv4_header *extra, size_t nextra, long ttl_s,
                     char **url);
/* A header-signed request (key NULL: the bucket); query already encoded. */
int tn__s3_request(tn__aws *a, tn__http *h, const char *method, const char *key,
                   const char *query, const void *body, size_t len, tn__http_resp *out);

/* Multipart: CreateMultipartUpload, CompleteMultipartUpload and
 * AbortMultipartUpload are header-signed; each part goes up through a
 * presigned UploadPart URL with a signed Content-MD5 that S3 verifies. */
int tn__s3_mp_create(tn__aws *a, tn__http *h, const char *key, char *upload_id, size_t n);
int tn__s3_mp_part(tn__aws *a, tn__http *h, const char *key, const char *upload_id, int part,
                   const void *data, size_t len, char *etag, size_t etag_n);
int tn__s3_mp_complete(tn__aws *a, tn__http *h, const char *key, const char *upload_id,
                       const char (*etags)[72], int nparts);
int tn__s3_mp_abort(tn__aws *a, tn__http *h, const char *key, const char *upload_id);
/* Aborts every unfinished multipart upload of exactly this key (those whose
 * ids a crash lost between creating and recording them). */
int tn__s3_mp_abort_all(tn__aws *a, tn__http *h, const char *key);

/* Uploads data (the whole object) to key through a presigned PUT.
 * sha256_hex is the recorded digest: bytes that do not match it are refused
 * (TN_IO) before anything is sent.  TN_OK, a retryable code (network, 5xx),
 * TN_INVALID (S3 refused the request or a digest), or TN_DENIED /
 * TN_NOTFOUND (credentials, bucket). */
int tn__s3_put(tn__aws *a, tn__http *h, const char *key, const void *data, size_t len,
               const char *sha256_hex, const char *content_type);
int tn__s3_delete(tn__aws *a, tn__http *h, const char *key);
/* Downloads key through a presigned GET into fd (from its current offset),
 * at most max bytes (TN_TOOBIG beyond: the object is not the one recorded).
 * Errors as for the PUT; 404 is TN_NOTFOUND.  On failure fd may hold part
 * of the bytes. */
int tn__s3_get(tn__aws *a, tn__http *h, const char *key, int fd, int64_t max);
int tn__s3_head_bucket(tn__aws *a, tn__http *h);

/* Maps an S3 status to a tn code. */
int tn__s3_status(long status);
/* Maps an S3 answer to a tn code: the status, except that the error codes S3
 * asks to retry (RequestTimeout, SlowDown, InternalError, ...) are
 * TN_THROTTLED, and a 4xx whose body is not S3's error document TN_NETWORK
 * (both retryable).  body may be NULL. */
int tn__s3_answer(long status, const char *body);

#endif
