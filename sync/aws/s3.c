/*
 * s3.c - presigned PUT and GET, DeleteObject, HeadBucket and multipart
 * uploads (see s3.h).
 */
#include "s3.h"

#include "crypto.h"
#include "digest.h"
#include "sbuf.h"
#include "sigv4.h"
#include "tenantry.h"

#include <openssl/evp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int tn__s3_status(long st) {
    if (st >= 200 && st < 300) return TN_OK;
    if (st == 0 || st >= 500 || st == 429) return TN_THROTTLED;
    if (st == 403) return TN_DENIED;
    if (st == 404) return TN_NOTFOUND;
    if (st == 400) return TN_INVALID;
    return TN_REMOTE;
}

/* Error codes S3 asks to retry (the AWS SDKs retry them too); RequestTimeout
 * comes with a 400. */
static const char *const retry_codes[] = {"<Code>RequestTimeout</Code>", "<Code>SlowDown</Code>",
                                          "<Code>InternalError</Code>",
                                          "<Code>ServiceUnavailable</Code>",
                                          "<Code>OperationAborted</Code>"};

int tn__s3_answer(long st, const char *body) {
    if (st >= 200 && st < 300) return TN_OK;
    int doc = body && strstr(body, "<Error>") != NULL;
    for (size_t i = 0; doc && i < sizeof retry_codes / sizeof *retry_codes; i++)
        if (strstr(body, retry_codes[i])) return TN_THROTTLED;
    /* A body that is not S3's error document did not come from S3 (a proxy,
     * a cut connection): it says nothing about the request itself. */
    if (!doc && body && *body && st >= 400 && st < 500 && st != 403 && st != 404)
        return TN_NETWORK;
    return tn__s3_status(st);
}

/* Host and request path of key in the bucket (path already URI-encoded). */
static int target(tn__aws *a, const char *key, char *host, size_t hn, tn__sbuf *path) {
    char eph[300];
    if (!a->bucket[0] || tn__aws_host(a->ep_s3, eph, sizeof eph) != TN_OK) return TN_INVALID;
    char *enc = NULL;
    if (key && tn__sigv4_uri_encode(key, strlen(key), 1, &enc) != 0) return TN_INVALID;
    if (a->path_style) {
        snprintf(host, hn, "%s", eph);
        tn__sb_fmt(path, "/%s/%s", a->bucket, enc ? enc : "");
    } else {
        snprintf(host, hn, "%s.%s", a->bucket, eph);
        tn__sb_fmt(path, "/%s", enc ? enc : "");
    }
    free(enc);
    return path->failed ? TN_NOMEM : TN_OK;
}

static const char *scheme_of(const tn__aws *a) {
    return strncmp(a->ep_s3, "http://", 7) == 0 ? "http" : "https";
}

int tn__s3_presign(tn__aws *a, tn__http *h, const char *method, const char *key,
                   const char *checksum_b64, const char *content_type, long ttl_s, char **url) {
    tn__sigv4_header sh[2];
    size_t nh = 0;
    if (checksum_b64) sh[nh++] = (tn__sigv4_header){"x-amz-checksum-sha256", checksum_b64};
    if (content_type) sh[nh++] = (tn__sigv4_header){"content-type", content_type};
    return tn__s3_presign_q(a, h, method, key, NULL, sh, nh, ttl_s, url);
}

int tn__s3_presign_q(tn__aws *a, tn__http *h, const char *method, const char *key,
                     const char *query, const tn__sigv4_header *extra, size_t nextra, long ttl_s,
                     char **url) {
    *url = NULL;
    if (nextra > 4) return TN_INVALID;
    char host[600];
    tn__sbuf path = {0};
    int rc = target(a, key, host, sizeof host, &path);
    if (rc != TN_OK) {
        tn__sb_free(&path);
        return rc;
    }
    tn__sigv4_header sh[5] = {{"host", host}};
    size_t nh = 1;
    for (size_t i = 0; i < nextra; i++) sh[nh++] = extra[i];
    tn__aws_creds cr;
    if ((rc = tn__aws_creds_get(a, h, time(NULL), &cr)) != TN_OK) {
        tn__sb_free(&path);
        return rc;
    }
    tn__sigv4_request req = {method, path.p, query, sh, nh, NULL, 0, "UNSIGNED-PAYLOAD"};
    tn__sigv4_signer s = {cr.akid, cr.secret, cr.token, a->region, "s3", time(NULL),
                          TN__SIGV4_PRESIGN | TN__SIGV4_PATH_ENCODED, ttl_s};
    tn__sigv4_result r;
    rc = tn__sigv4_sign(&s, &req, &r) == 0 ? TN_OK : TN_INVALID;
    tn__aws_creds_wipe(&cr);
    if (rc == TN_OK) {
        tn__sbuf u = {0};
        tn__sb_fmt(&u, "%s://%s%s?%s", scheme_of(a), host, path.p, r.query);
        *url = tn__sb_take(&u);
        if (!*url) rc = TN_NOMEM;
    }
    tn__sigv4_result_free(&r);
    tn__sb_free(&path);
    return rc;
}

int tn__s3_put(tn__aws *a, tn__http *h, const char *key, const void *data, size_t len,
               const char *sha256_hex, const char *content_type) {
    /* The bytes must be the ones recorded: a file changed or damaged on disk
     * is refused here rather than mirrored. */
    unsigned char sha[32], md5[16];
    unsigned int mdlen = 0;
    char hex[65], b64[48], md5b64[32];
    if (tn__digest(data, len, sha) != TN_OK) return TN_NOMEM;
    tn__hex(sha, 32, hex);
    if (!sha256_hex || strcmp(hex, sha256_hex) != 0) return TN_IO;
    if (!EVP_Digest(data, len, md5, &mdlen, EVP_md5(), NULL)) return TN_ERROR;
    tn__b64_std(sha, 32, b64);
    tn__b64_std(md5, 16, md5b64);
    const char *ct = content_type && *content_type ? content_type : "application/octet-stream";
    /* Both digests are signed: S3 verifies x-amz-checksum-sha256, and
     * Content-MD5 is checked by every S3 implementation. */
    tn__sigv4_header sh[] = {{"x-amz-checksum-sha256", b64}, {"content-type", ct},
                             {"content-md5", md5b64}};
    char *url = NULL;
    int rc = tn__s3_presign_q(a, h, "PUT", key, NULL, sh, 3, TN__S3_PRESIGN_TTL, &url);
    if (rc != TN_OK) return rc;
    tn__sbuf h1 = {0}, h2 = {0}, h3 = {0};
    tn__sb_fmt(&h1, "x-amz-checksum-sha256: %s", b64);
    tn__sb_str(&h2, "Content-Type: ");
    tn__sb_str(&h2, ct);
    tn__sb_fmt(&h3, "Content-MD5: %s", md5b64);
    const char *hv[] = {h1.p, h2.p, h3.p};
    tn__http_resp resp;
    if (h1.failed || h2.failed || h3.failed) rc = TN_NOMEM;
    else rc = tn__http_do(h, "PUT", url, hv, 3, data, len, &resp);
    if (rc == TN_OK) {
        rc = tn__s3_answer(resp.status, resp.body);
        /* S3 answers every stored PUT with the object's ETag: a 2xx without
         * one is not S3's answer, and nothing says the bytes are there. */
        if (rc == TN_OK && !resp.etag[0]) rc = TN_NETWORK;
        tn__http_resp_free(&resp);
    }
    /* The URL is a bearer credential for this key until it expires. */
    sodium_memzero(url, strlen(url));
    free(url);
    tn__sb_free(&h1);
    tn__sb_free(&h2);
    tn__sb_free(&h3);
    return rc;
}

int tn__s3_get(tn__aws *a, tn__http *h, const char *key, int fd, int64_t max) {
    char *url = NULL;
    int rc = tn__s3_presign(a, h, "GET", key, NULL, NULL, TN__S3_PRESIGN_TTL, &url);
    if (rc != TN_OK) return rc;
    tn__http_resp resp;
    int64_t written = 0;
    rc = tn__http_get_fd(h, url, NULL, 0, fd, max, &written, &resp);
    /* The URL is a bearer credential for this key until it expires. */
    sodium_memzero(url, strlen(url));
    free(url);
    if (rc != TN_OK) return rc;
    rc = tn__s3_answer(resp.status, resp.body);
    tn__http_resp_free(&resp);
    return rc;
}

int tn__s3_request(tn__aws *a, tn__http *h, const char *method, const char *key,
                   const char *query, const void *body, size_t len, tn__http_resp *out) {
    memset(out, 0, sizeof *out);
    char host[600];
    tn__sbuf path = {0};
    int rc = target(a, key, host, sizeof host, &path);
    if (rc == TN_OK && !key && a->path_style && path.len > 1 && path.p[path.len - 1] == '/')
        path.p[--path.len] = '\0'; /* "/bucket" rather than "/bucket/" */
    tn__aws_creds cr;
    if (rc == TN_OK) rc = tn__aws_creds_get(a, h, time(NULL), &cr);
    if (rc != TN_OK) {
        tn__sb_free(&path);
        return rc;
    }
    tn__sigv4_header sh[] = {{"host", host}};
    tn__sigv4_request req = {method, path.p, query, sh, 1, body ? body : "", len, NULL};
    tn__sigv4_signer s = {cr.akid, cr.secret, cr.token, a->region, "s3", time(NULL),
                          TN__SIGV4_S3, 0};
    tn__sigv4_result r;
    rc = tn__sigv4_sign(&s, &req, &r) == 0 ? TN_OK : TN_INVALID;
    tn__aws_creds_wipe(&cr);
    if (rc == TN_OK) {
        tn__sbuf hb[5] = {{0}}, u = {0};
        const char *hv[5];
        size_t nh = 0;
        tn__sb_fmt(&hb[nh], "Authorization: %s", r.authorization);
        hv[nh] = hb[nh].p, nh++;
        for (size_t i = 0; i < r.nadd; i++) {
            tn__sb_fmt(&hb[nh], "%s: %s", r.add[i].name, r.add[i].value);
            hv[nh] = hb[nh].p, nh++;
        }
        /* The only request with a body is CompleteMultipartUpload (XML);
         * without a type curl would call it a form. */
        if (len) {
            tn__sb_str(&hb[nh], "Content-Type: application/xml");
            hv[nh] = hb[nh].p, nh++;
        }
        tn__sb_fmt(&u, "%s://%s%s%s%s", scheme_of(a), host, path.p, query ? "?" : "",
                   query ? query : "");
        int bad = u.failed;
        for (size_t i = 0; i < nh; i++) bad |= hb[i].failed;
        rc = bad ? TN_NOMEM : tn__http_do(h, method, u.p, hv, nh, body, len, out);
        for (size_t i = 0; i < nh; i++) {
            if (hb[i].p) sodium_memzero(hb[i].p, hb[i].len);
            tn__sb_free(&hb[i]);
        }
        tn__sb_free(&u);
    }
    tn__sigv4_result_free(&r);
    tn__sb_free(&path);
    return rc;
}

/* A header-signed request without a body on key (NULL: the bucket); the
 * answer mapped by tn__s3_answer. */
static int signed_call(tn__aws *a, tn__http *h, const char *method, const char *key) {
    tn__http_resp r;
    int rc = tn__s3_request(a, h, method, key, NULL, NULL, 0, &r);
    if (rc == TN_OK) {
        rc = tn__s3_answer(r.status, r.body);
        tn__http_resp_free(&r);
    }
    return rc;
}

int tn__s3_delete(tn__aws *a, tn__http *h, const char *key) {
    /* Deleting an absent object is success (204), so a replay is harmless;
     * 404 means the bucket is missing. */
    return signed_call(a, h, "DELETE", key);
}

int tn__s3_head_bucket(tn__aws *a, tn__http *h) { return signed_call(a, h, "HEAD", NULL); }

/* ---- multipart ---------------------------------------------------------------- */

/* "uploadId=<encoded id>" (plus a prefix) into q. */
static int upload_query(const char *prefix, const char *upload_id, tn__sbuf *q) {
    char *enc = NULL;
    if (tn__sigv4_uri_encode(upload_id, strlen(upload_id), 0, &enc) != 0) return TN_INVALID;
    tn__sb_fmt(q, "%suploadId=%s", prefix, enc);
    free(enc);
    return q->failed ? TN_NOMEM : TN_OK;
}

int tn__s3_mp_create(tn__aws *a, tn__http *h, const char *key, char *upload_id, size_t n) {
    tn__http_resp r;
    int rc = tn__s3_request(a, h, "POST", key, "uploads=", NULL, 0, &r);
    if (rc != TN_OK) return rc;
    rc = tn__s3_answer(r.status, r.body);
    if (rc == TN_OK) {
        /* An answer without an upload id is unreadable, not a refusal. */
        const char *p = strstr(r.body, "<UploadId>"), *e = p ? strstr(p, "</UploadId>") : NULL;
        if (!p || !e || (size_t)(e - p - 10) >= n || e - p - 10 == 0) rc = TN_NETWORK;
        else {
            memcpy(upload_id, p + 10, (size_t)(e - p - 10));
            upload_id[e - p - 10] = '\0';
        }
    }
    tn__http_resp_free(&r);
    return rc;
}

int tn__s3_mp_part(tn__aws *a, tn__http *h, const char *key, const char *upload_id, int part,
                   const void *data, size_t len, char *etag, size_t etag_n) {
    unsigned char md5[16];
    unsigned int mdlen = 0;
    char md5b64[32];
    if (!EVP_Digest(data, len, md5, &mdlen, EVP_md5(), NULL)) return TN_ERROR;
    tn__b64_std(md5, 16, md5b64);
    tn__sbuf q = {0};
    tn__sb_fmt(&q, "partNumber=%d", part);
    int rc = upload_query("&", upload_id, &q);
    char *url = NULL;
    tn__sigv4_header sh[] = {{"content-md5", md5b64}};
    if (rc == TN_OK) rc = tn__s3_presign_q(a, h, "PUT", key, q.p, sh, 1, TN__S3_PRESIGN_TTL, &url);
    tn__sb_free(&q);
    if (rc != TN_OK) return rc;
    char hdr[64];
    snprintf(hdr, sizeof hdr, "Content-MD5: %s", md5b64);
    const char *hv[] = {hdr};
    tn__http_resp r;
    rc = tn__http_do(h, "PUT", url, hv, 1, data, len, &r);
    sodium_memzero(url, strlen(url));
    free(url);
    if (rc != TN_OK) return rc;
    rc = tn__s3_answer(r.status, r.body);
    if (rc == TN_OK) {
        if (!r.etag[0] || strlen(r.etag) >= etag_n) rc = TN_NETWORK;
        else snprintf(etag, etag_n, "%s", r.etag);
    }
    tn__http_resp_free(&r);
    return rc;
}

int tn__s3_mp_complete(tn__aws *a, tn__http *h, const char *key, const char *upload_id,
                       const char (*etags)[72], int nparts) {
    tn__sbuf body = {0}, q = {0};
    tn__sb_str(&body, "<CompleteMultipartUpload>");
    for (int i = 0; i < nparts; i++) {
        /* ETags are quoted hex from S3; escape the quotes for XML. */
        tn__sb_fmt(&body, "<Part><PartNumber>%d</PartNumber><ETag>", i + 1);
        for (const char *c = etags[i]; *c; c++) {
            if (*c == '"') tn__sb_str(&body, "&quot;");
            else if (*c == '<' || *c == '>' || *c == '&') continue;
            else tn__sb_add(&body, c, 1);
        }
        tn__sb_str(&body, "</ETag></Part>");
    }
    tn__sb_str(&body, "</CompleteMultipartUpload>");
    int rc = body.failed ? TN_NOMEM : upload_query("", upload_id, &q);
    tn__http_resp r;
    if (rc == TN_OK) rc = tn__s3_request(a, h, "POST", key, q.p, body.p, body.len, &r);
    tn__sb_free(&body);
    tn__sb_free(&q);
    if (rc != TN_OK) return rc;
    rc = tn__s3_answer(r.status, r.body);
    /* S3 may answer 200 with an <Error> document; anything but its result
     * document (with the object's ETag) leaves the upload's fate unknown: ask again (a
     * repeated complete of a finished upload is answered NoSuchUpload, and
     * the file starts over). */
    if (rc == TN_OK && strstr(r.body, "<Error>")) {
        rc = tn__s3_answer(500, r.body) == TN_THROTTLED ? TN_THROTTLED : TN_INVALID;
    } else if (rc == TN_OK && (!strstr(r.body, "<CompleteMultipartUpload") ||
                               !strstr(r.body, "<ETag>"))) {
        rc = TN_NETWORK;
    }
    tn__http_resp_free(&r);
    return rc;
}

int tn__s3_mp_abort(tn__aws *a, tn__http *h, const char *key, const char *upload_id) {
    tn__sbuf q = {0};
    int rc = upload_query("", upload_id, &q);
    tn__http_resp r;
    if (rc == TN_OK) rc = tn__s3_request(a, h, "DELETE", key, q.p, NULL, 0, &r);
    tn__sb_free(&q);
    if (rc != TN_OK) return rc;
    rc = r.status == 404 ? TN_OK : tn__s3_answer(r.status, r.body); /* already gone */
    tn__http_resp_free(&r);
    return rc;
}

/* The text between <tag> and </tag> in [p, end), XML entities undone
 * (malloc'd); NULL when absent. */
static char *xml_text(const char *p, const char *end, const char *tag) {
    char open[32], close[32];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *a = strstr(p, open), *b = a ? strstr(a, close) : NULL;
    if (!a || !b || b > end) return NULL;
    a += strlen(open);
    char *out = malloc((size_t)(b - a) + 1), *o = out;
    if (!out) return NULL;
    static const char *const ent[][2] = {{"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"},
                                         {"&quot;", "\""}, {"&apos;", "'"}};
    while (a < b) {
        size_t k = 0;
        while (k < 5 && strncmp(a, ent[k][0], strlen(ent[k][0])) != 0) k++;
        if (k < 5) {
            *o++ = ent[k][1][0];
            a += strlen(ent[k][0]);
        } else {
            *o++ = *a++;
        }
    }
    *o = '\0';
    return out;
}

int tn__s3_mp_abort_all(tn__aws *a, tn__http *h, const char *key) {
    char *enc = NULL;
    if (tn__sigv4_uri_encode(key, strlen(key), 0, &enc) != 0) return TN_INVALID;
    tn__sbuf q = {0};
    tn__sb_fmt(&q, "prefix=%s&uploads=", enc);
    free(enc);
    tn__http_resp r;
    int rc = q.failed ? TN_NOMEM : tn__s3_request(a, h, "GET", NULL, q.p, NULL, 0, &r);
    tn__sb_free(&q);
    if (rc != TN_OK) return rc;
    rc = tn__s3_answer(r.status, r.body);
    /* The appliance's role (`tenantry remote template`) may not list the
     * bucket's uploads: that would show other appliances' tenants.  Then the
     * bucket's lifecycle rule aborts the lost upload after 7 days instead. */
    if (rc == TN_DENIED) rc = TN_OK;
    for (const char *p = r.body; rc == TN_OK && p && (p = strstr(p, "<Upload>")) != NULL;) {
        const char *end = strstr(p, "</Upload>");
        if (!end) break;
        char *k = xml_text(p, end, "Key"), *id = xml_text(p, end, "UploadId");
        if (k && id && strcmp(k, key) == 0) rc = tn__s3_mp_abort(a, h, key, id);
        free(k);
        free(id);
        p = end;
    }
    tn__http_resp_free(&r);
    return rc;
}
