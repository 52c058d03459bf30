/*
 * aws.h - where the sync engine talks to and as whom: region, endpoints,
 * table and bucket names, and the credentials chain.
 *
 * Configuration comes from the AWS-standard environment variables:
 *   AWS_REGION (else AWS_DEFAULT_REGION, else us-east-1),
 *   AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_S3,
 *   AWS_ENDPOINT_URL_STS (an endpoint set means path-style S3 addressing),
 * and tenantry's own:
 *   TENANTRY_DYNAMODB_TABLE (default "tenantry"), TENANTRY_ENV_PREFIX
 *   (prepended to the table name, e.g. "prod_"), TENANTRY_S3_BUCKET.
 *
 * Credentials, in order: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
 * AWS_SESSION_TOKEN; then the shared credentials file
 * (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials) section
 * AWS_PROFILE (else "default").  When AWS_ROLE_ARN (or TENANTRY_AWS_ROLE_ARN)
 * is set, those base credentials call STS AssumeRole (with
 * TENANTRY_AWS_EXTERNAL_ID as ExternalId when set) and the temporary
 * credentials are cached and refreshed five minutes before they expire.
 *
 * Secrets are held only in this struct; nothing here prints them and
 * tn__aws_free wipes them.  A tn__aws is shared by the engine's threads:
 * tn__aws_creds copies the current credentials out under a lock.
 */
#ifndef TN_AWS_H
#define TN_AWS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define TN__AWS_FIELD 256
#define TN__AWS_TOKEN 4096

typedef struct tn__aws_creds {
    char akid[TN__AWS_FIELD];
    char secret[TN__AWS_FIELD];
    char token[TN__AWS_TOKEN];
    time_t expires; /* 0: long-term */
} tn__aws_creds;

struct tn__http;

typedef struct tn__aws {
    char region[64];
    char ep_dynamodb[512], ep_s3[512], ep_sts[512]; /* "https://host[:port]" */
    int path_style;                                 /* S3 path-style addressing */
    char table[256];
    char bucket[256];
    char role_arn[512];
    char external_id[256];

    pthread_mutex_t mu; /* guards base, cur, sts_calls */
    tn__aws_creds base; /* from the environment or the file */
    tn__aws_creds cur;  /* what requests sign with (base, or the assumed role) */
    int have_creds;
    long sts_calls;     /* AssumeRole calls made (tests check caching) */
} tn__aws;

/* Reads the environment (getenv-like lookup fn, NULL = getenv) and files.
 * TN_OK, or TN_INVALID with a generic message in err (no secrets). */
int tn__aws_load(tn__aws *a, const char *(*env)(const char *), char *err, size_t errlen);
void tn__aws_free(tn__aws *a);

/* Parses a shared credentials file text for profile; TN_OK or TN_NOTFOUND. */
int tn__aws_parse_credentials(const char *text, const char *profile, tn__aws_creds *out);
/* Parses an STS AssumeRole XML response; TN_OK or TN_REMOTE. */
int tn__aws_parse_assume_role(const char *xml, tn__aws_creds *out);

/* Current credentials, assuming the role first when needed (h for STS). */
int tn__aws_creds_get(tn__aws *a, struct tn__http *h, time_t now, tn__aws_creds *out);
/* Wipes a credentials copy. */
void tn__aws_creds_wipe(tn__aws_creds *c);

/* "host[:port]" of an endpoint URL, into out. */
int tn__aws_host(const char *endpoint, char *out, size_t outlen);

#endif
