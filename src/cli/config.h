/*
 * config.h - the configuration file, <data dir>/tenantry.conf (or --config
 * PATH): settings for `serve`, `sync`, `remote init` and `status` that would
 * otherwise be flags or environment variables.
 *
 * Format (strict; anything else is an error naming the file, line and key):
 *
 *   # a comment (also after a value, following a space)
 *   port = 8787
 *   s3_bucket = appliance-backup
 *   external_id = "with # or spaces, quoted"     \" and \\ are the escapes
 *
 * One `key = value` per line, keys from the list in config.c, each at most
 * once; lines of at most TN__CONF_LINE_MAX bytes of UTF-8 without control
 * characters (tab aside, and no tab inside a value) or NUL; CRLF line ends
 * are fine.  Numbers are plain
 * decimal (no sign, no exponent) within each key's range.
 *
 * Precedence: command-line flag > environment > file > built-in default.
 * Keys with an environment variable are applied by exporting the file's value
 * to that variable when the environment does not set it (before any thread
 * starts), so every reader of the variable sees the same answer; the other
 * keys (listen, port, threads, the rate limits, sync) are read by `serve`.
 *
 * Error messages name the key, never a value: a value may be a secret.
 */
#ifndef TN_CONFIG_H
#define TN_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define TN__CONF_LINE_MAX 1024     /* bytes per line, without the line end */
#define TN__CONF_FILE_MAX (1 << 20) /* bytes per file */
#define TN__CONF_NAME "tenantry.conf"

/* Every value, or its "unset" mark: "" for strings, -1 for numbers. */
typedef struct tn__config {
    char file[512]; /* the file read ("" when none) */
    /* serve */
    char listen[TN__CONF_LINE_MAX]; /* "HOST:PORT" or "unix:/path"; port = N sets
                                       "127.0.0.1:N" here too */
    int64_t port;
    int64_t threads;
    double rate, burst;                     /* per API key */
    double auth_fail_rate, auth_fail_burst; /* failed authentications per client */
    double tenant_rate, tenant_burst;       /* a tenant's share while others are active
                                               (tenant_rate 0: none) */
    /* Allowed CORS origins, as `--cors-origin` takes them: comma-separated
     * scheme://host[:port] entries (http or https, no path), or "*" alone.
     * Exported as TENANTRY_CORS_ORIGINS. */
    char cors_origins[TN__CONF_LINE_MAX];
    int sync; /* serve's background engine: 1 on, 0 off, -1 unset (on when a
                 bucket is set) */
    /* sync and remote init (exported to the environment variables) */
    char remote[1001];   /* TENANTRY_REMOTE: aws (default) or dir:/path */
    char s3_bucket[64];
    char dynamodb_table[256];
    char table_prefix[65];
    char region[33];
    char role_arn[512];
    char external_id[256];
    int64_t sync_interval;          /* seconds */
    int64_t sync_bandwidth;         /* bytes per second, 0 = no cap */
    int64_t sync_early_rows;
    int64_t sync_connections;
    int64_t multipart_threshold_mb;
    int64_t part_size_mb;
    int64_t tombstone_ttl;          /* seconds */
} tn__config;

typedef struct tn__config_err {
    int line;      /* 1-based; 0 when the error is not about one line */
    char key[48];  /* the key it is about ("" when none); printable ASCII only */
    char msg[160]; /* what is wrong, never quoting a value */
} tn__config_err;

void tn__config_init(tn__config *c);

/* Parses the file text buf[0..len) into c (initialized here).  Pure: no
 * environment, no I/O, nothing allocated.  TN_OK, or TN_INVALID with *err
 * filled (c then holds what came before the bad line). */
int tn__config_parse(const char *buf, size_t len, tn__config *c, tn__config_err *err);

/* Reads and parses the file at path.  TN_OK; TN_NOTFOUND when it does not
 * exist; TN_IO when it cannot be read (a directory, no permission, too
 * large); TN_INVALID for bad content.  On failure msg gets one line:
 * "PATH:LINE: KEY: what is wrong". */
int tn__config_load(const char *path, tn__config *c, char *msg, size_t msglen);

/* Exports every environment-backed key of c that the environment does not
 * set (empty counts as not set).  Call before starting threads.  TN_OK or
 * TN_NOMEM. */
int tn__config_export(const tn__config *c);

/* The environment variable a key is exported to, or NULL (for docs and tests). */
const char *tn__config_env_name(const char *key);

#endif
