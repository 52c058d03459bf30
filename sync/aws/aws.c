/*
 * aws.c - configuration and the credentials chain (see aws.h).
 *
 * STS AssumeRole is called only when there are no temporary credentials yet
 * or they expire within REFRESH_EARLY seconds, under the lock, so many
 * concurrent requests cause one call.
 */
#include "aws.h"

#include "http_client.h"
#include "sbuf.h"
#include "sigv4.h"
#include "tenantry.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REFRESH_EARLY 300
#define ASSUME_SECONDS 3600

static const char *env_get(const char *(*env)(const char *), const char *name) {
    const char *v = env ? env(name) : getenv(name);
    return v && *v ? v : NULL;
}

/* Copies src (truncated to n - 1 bytes) into dst. */
static void copy(char *dst, size_t n, const char *src) {
    size_t len = src ? strlen(src) : 0;
    if (len >= n) len = n - 1;
    if (len) memcpy(dst, src, len);
    dst[len] = '\0';
}

static void trim_slash(char *s) {
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '/') s[--n] = '\0';
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    tn__sbuf b = {0};
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0 && b.len < (1u << 20)) tn__sb_add(&b, tmp, n);
    fclose(f);
    return tn__sb_take(&b);
}

/* Trims spaces in place; returns s. */
static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = '\0';
    return s;
}

int tn__aws_parse_credentials(const char *text, const char *profile, tn__aws_creds *out) {
    memset(out, 0, sizeof *out);
    char *copy_ = strdup(text);
    if (!copy_) return TN_NOMEM;
    int in = 0, found = 0;
    char *save = NULL;
    for (char *line = strtok_r(copy_, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *l = trim(line);
        if (*l == '#' || *l == ';' || !*l) continue;
        if (*l == '[') {
            char *end = strchr(l, ']');
            if (!end) { in = 0; continue; }
            *end = '\0';
            char *name = trim(l + 1);
            /* The config file spells sections "profile NAME"; accept both. */
            if (strncmp(name, "profile ", 8) == 0) name = trim(name + 8);
            in = strcmp(name, profile) == 0;
            if (in) found = 1;
            continue;
        }
        if (!in) continue;
        char *eq = strchr(l, '=');
        if (!eq) continue;
        *eq = '\0';
        char *k = trim(l), *v = trim(eq + 1);
        if (strcasecmp(k, "aws_access_key_id") == 0) copy(out->akid, sizeof out->akid, v);
        else if (strcasecmp(k, "aws_secret_access_key") == 0) copy(out->secret, sizeof out->secret, v);
        else if (strcasecmp(k, "aws_session_token") == 0) copy(out->token, sizeof out->token, v);
    }
    sodium_memzero(copy_, strlen(text));
    free(copy_);
    if (!found || !out->akid[0] || !out->secret[0]) {
        tn__aws_creds_wipe(out);
        return TN_NOTFOUND;
    }
    return TN_OK;
}

/* The text of <tag>...</tag> in xml, into out. */
static int xml_field(const char *xml, const char *tag, char *out, size_t n) {
    char open[64], close[64];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *a = strstr(xml, open);
    if (!a) return -1;
    a += strlen(open);
    const char *b = strstr(a, close);
    if (!b || (size_t)(b - a) >= n) return -1;
    memcpy(out, a, (size_t)(b - a));
    out[b - a] = '\0';
    return 0;
}

/* 2026-11-24T13:05:35Z (fractional seconds allowed) to epoch seconds. */
static time_t parse_iso(const char *s) {
    struct tm tm = {0};
    int y, mo, d, h, mi, se;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &se) != 6) return 0;
    /* sscanf takes signs and spaces, timegm any field: an expiry before 1970
     * (or month 13) would read as "expired", and every request would call
     * STS again. */
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 ||
        mi > 59 || se < 0 || se > 60)
        return 0;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    return timegm(&tm);
}

int tn__aws_parse_assume_role(const char *xml, tn__aws_creds *out) {
    memset(out, 0, sizeof *out);
    char exp[64];
    const char *cr = xml ? strstr(xml, "<Credentials>") : NULL;
    if (!cr || xml_field(cr, "AccessKeyId", out->akid, sizeof out->akid) != 0 ||
        xml_field(cr, "SecretAccessKey", out->secret, sizeof out->secret) != 0 ||
        xml_field(cr, "SessionToken", out->token, sizeof out->token) != 0 ||
        xml_field(cr, "Expiration", exp, sizeof exp) != 0 || (out->expires = parse_iso(exp)) == 0 ||
        /* An empty field would be cached and sign every request until it expires. */
        !out->akid[0] || !out->secret[0] || !out->token[0]) {
        tn__aws_creds_wipe(out);
        return TN_REMOTE;
    }
    return TN_OK;
}

void tn__aws_creds_wipe(tn__aws_creds *c) { sodium_memzero(c, sizeof *c); }

int tn__aws_host(const char *ep, char *out, size_t n) {
    const char *p = strstr(ep, "://");
    p = p ? p + 3 : ep;
    size_t len = strcspn(p, "/");
    if (len == 0 || len >= n) return TN_INVALID;
    memcpy(out, p, len);
    out[len] = '\0';
    return TN_OK;
}

int tn__aws_load(tn__aws *a, const char *(*env)(const char *), char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    pthread_mutex_init(&a->mu, NULL);
    const char *region = env_get(env, "AWS_REGION");
    if (!region) region = env_get(env, "AWS_DEFAULT_REGION");
    copy(a->region, sizeof a->region, region ? region : "us-east-1");
    const char *ep = env_get(env, "AWS_ENDPOINT_URL");
    const char *e;
    char def[600];
    e = env_get(env, "AWS_ENDPOINT_URL_DYNAMODB");
    snprintf(def, sizeof def, "https://dynamodb.%s.amazonaws.com", a->region);
    copy(a->ep_dynamodb, sizeof a->ep_dynamodb, e ? e : ep ? ep : def);
    e = env_get(env, "AWS_ENDPOINT_URL_S3");
    snprintf(def, sizeof def, "https://s3.%s.amazonaws.com", a->region);
    copy(a->ep_s3, sizeof a->ep_s3, e ? e : ep ? ep : def);
    a->path_style = (e || ep) ? 1 : 0;
    e = env_get(env, "AWS_ENDPOINT_URL_STS");
    snprintf(def, sizeof def, "https://sts.%s.amazonaws.com", a->region);
    copy(a->ep_sts, sizeof a->ep_sts, e ? e : ep ? ep : def);
    trim_slash(a->ep_dynamodb);
    trim_slash(a->ep_s3);
    trim_slash(a->ep_sts);

    const char *prefix = env_get(env, "TENANTRY_ENV_PREFIX");
    const char *table = env_get(env, "TENANTRY_DYNAMODB_TABLE");
    snprintf(a->table, sizeof a->table, "%s%s", prefix ? prefix : "", table ? table : "tenantry");
    copy(a->bucket, sizeof a->bucket, env_get(env, "TENANTRY_S3_BUCKET"));
    /* A bucket name with a dot would make a virtual-hosted name
     * (my.bucket.s3.region.amazonaws.com) that the *.s3... certificate does
     * not cover: such buckets are addressed path-style. */
    if (strchr(a->bucket, '.')) a->path_style = 1;
    const char *role = env_get(env, "TENANTRY_AWS_ROLE_ARN");
    copy(a->role_arn, sizeof a->role_arn, role ? role : env_get(env, "AWS_ROLE_ARN"));
    copy(a->external_id, sizeof a->external_id, env_get(env, "TENANTRY_AWS_EXTERNAL_ID"));

    const char *akid = env_get(env, "AWS_ACCESS_KEY_ID");
    const char *secret = env_get(env, "AWS_SECRET_ACCESS_KEY");
    if (akid && secret) {
        copy(a->base.akid, sizeof a->base.akid, akid);
        copy(a->base.secret, sizeof a->base.secret, secret);
        copy(a->base.token, sizeof a->base.token, env_get(env, "AWS_SESSION_TOKEN"));
    } else {
        const char *file = env_get(env, "AWS_SHARED_CREDENTIALS_FILE");
        char path[1024];
        const char *home = env_get(env, "HOME");
        if (!file && home) {
            snprintf(path, sizeof path, "%s/.aws/credentials", home);
            file = path;
        }
        const char *profile = env_get(env, "AWS_PROFILE");
        char *text = file ? slurp(file) : NULL;
        int rc = text ? tn__aws_parse_credentials(text, profile ? profile : "default", &a->base)
                      : TN_NOTFOUND;
        if (text) {
            sodium_memzero(text, strlen(text));
            free(text);
        }
        if (rc != TN_OK) {
            snprintf(err, errlen, "no AWS credentials (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
                                  "or a shared credentials file profile)");
            return TN_INVALID;
        }
    }
    a->have_creds = 1;
    if (!a->role_arn[0]) a->cur = a->base;
    return TN_OK;
}

void tn__aws_free(tn__aws *a) {
    if (!a) return;
    tn__aws_creds_wipe(&a->base);
    tn__aws_creds_wipe(&a->cur);
    pthread_mutex_destroy(&a->mu);
}

static int assume_role(tn__aws *a, tn__http *h, time_t now) {
    tn__sbuf body = {0};
    char *arn = NULL, *ext = NULL;
    tn__sigv4_uri_encode(a->role_arn, strlen(a->role_arn), 0, &arn);
    if (a->external_id[0]) tn__sigv4_uri_encode(a->external_id, strlen(a->external_id), 0, &ext);
    if (!arn || (a->external_id[0] && !ext)) {
        free(arn);
        free(ext);
        return TN_NOMEM;
    }
    tn__sb_fmt(&body, "Action=AssumeRole&Version=2011-06-15&DurationSeconds=%d&RoleArn=%s"
                      "&RoleSessionName=tenantry-sync", ASSUME_SECONDS, arn);
    if (ext) tn__sb_fmt(&body, "&ExternalId=%s", ext);
    free(arn);
    free(ext);
    if (body.failed) return TN_NOMEM;
    char host[300];
    if (tn__aws_host(a->ep_sts, host, sizeof host) != TN_OK) {
        tn__sb_free(&body);
        return TN_INVALID;
    }
    tn__sigv4_header sh[] = {{"host", host},
                             {"content-type", "application/x-www-form-urlencoded"}};
    tn__sigv4_request req = {"POST", "/", NULL, sh, 2, body.p, body.len, NULL};
    tn__sigv4_signer s = {a->base.akid, a->base.secret, a->base.token, a->region, "sts",
                          now, TN__SIGV4_AWS, 0};
    tn__sigv4_result r;
    int rc = tn__sigv4_sign(&s, &req, &r) == 0 ? TN_OK : TN_INVALID;
    if (rc == TN_OK) {
        tn__sbuf hd[5] = {{0}};
        const char *hv[5];
        size_t nh = 0;
        tn__sb_str(&hd[nh], "Content-Type: application/x-www-form-urlencoded");
        hv[nh] = hd[nh].p, nh++;
        tn__sb_fmt(&hd[nh], "Authorization: %s", r.authorization);
        hv[nh] = hd[nh].p, nh++;
        for (size_t i = 0; i < r.nadd; i++) {
            tn__sb_fmt(&hd[nh], "%s: %s", r.add[i].name, r.add[i].value);
            hv[nh] = hd[nh].p, nh++;
        }
        char url[600];
        snprintf(url, sizeof url, "%s/", a->ep_sts);
        tn__http_resp resp;
        rc = tn__http_do(h, "POST", url, hv, nh, body.p, body.len, &resp);
        if (rc == TN_OK) {
            if (resp.status == 200) {
                tn__aws_creds c;
                rc = tn__aws_parse_assume_role(resp.body, &c);
                if (rc == TN_OK) {
                    a->cur = c;
                    a->sts_calls++;
                }
                tn__aws_creds_wipe(&c);
            } else {
                rc = resp.status >= 500 || resp.status == 429 ? TN_THROTTLED : TN_DENIED;
            }
            if (resp.body) sodium_memzero(resp.body, resp.len);
            tn__http_resp_free(&resp);
        }
        for (size_t i = 0; i < nh; i++) {
            if (hd[i].p) sodium_memzero(hd[i].p, hd[i].len);
            tn__sb_free(&hd[i]);
        }
    }
    tn__sigv4_result_free(&r);
    tn__sb_free(&body);
    return rc;
}

int tn__aws_creds_get(tn__aws *a, tn__http *h, time_t now, tn__aws_creds *out) {
    pthread_mutex_lock(&a->mu);
    int rc = TN_OK;
    if (!a->have_creds) rc = TN_DENIED;
    else if (a->role_arn[0] && (!a->cur.akid[0] || a->cur.expires - REFRESH_EARLY <= now))
        rc = h ? assume_role(a, h, now) : TN_INVALID;
    if (rc == TN_OK) *out = a->cur;
    pthread_mutex_unlock(&a->mu);
    return rc;
}
