/*
 * sigv4.c - AWS Signature Version 4: canonical request, string to sign,
 * signature, and the Authorization header or presigned query built from them
 * (the rules callers rely on are in sigv4.h).
 *
 * All text is built in a growable buffer (struct buf) that remembers its first
 * failure, so builders append without checking every step and the caller
 * checks once.  Every input is validated before anything is built, and every
 * buffer is bounded (MAX_TEXT), so hostile input ends in an error code, never
 * in an overflow.  The secret key and the derived keys live only in
 * derive_and_sign()'s stack frame and are wiped before it returns.
 */
#include "sigv4.h"

#include "crypto.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ALGORITHM "AWS4-HMAC-SHA256"
/* Far above any legal request (64 headers of 64 KiB, fields encoded 3x). */
#define MAX_TEXT ((size_t)32 << 20)
/* The parameters a presigned query gets from the signer. */
#define N_AMZ_PARAMS 6

const char *tn__sigv4_errname(int rc) {
    switch (rc) {
#define TN__SIGV4_NAME_(name, value) \
    case value:                      \
        return "TN__SIGV4_" #name;
        TN__SIGV4_ERRORS(TN__SIGV4_NAME_)
#undef TN__SIGV4_NAME_
    }
    return "TN__SIGV4_?";
}

/* ---- growable text ------------------------------------------------------ */

typedef struct buf {
    char *p;
    size_t len, cap;
    int err; /* first failure; later appends do nothing */
} buf;

static void put(buf *b, const void *s, size_t n) {
    if (b->err) return;
    if (n > MAX_TEXT - b->len) {
        b->err = TN__SIGV4_ETOOBIG;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->err = TN__SIGV4_ENOMEM;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }
static void putc_(buf *b, char c) { put(b, &c, 1); }

/* Hands the text over (never NULL on success: an empty text is ""). */
static int take(buf *b, char **out) {
    put(b, "", 0);
    if (b->err) {
        free(b->p);
        *b = (buf){0};
        return b->err;
    }
    *out = b->p;
    *b = (buf){0};
    return TN__SIGV4_OK;
}

/* ---- character classes and escapes ------------------------------------- */

static int is_unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

/* RFC 7230 tchar: header names, methods, and ids that go into Credential=. */
static int is_tchar(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void put_encoded(buf *b, const char *s, size_t n, int keep_slash) {
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c) || (keep_slash && c == '/')) {
            putc_(b, (char)c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            put(b, e, 3);
        }
    }
}

/* Decodes s[0..n) (%XX escapes) into b.  A '%' not followed by two hex digits
 * is refused: guessing would sign a different string than the server reads. */
static int put_decoded(buf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            putc_(b, s[i]);
            continue;
        }
        if (n - i < 3) return TN__SIGV4_EINVAL;
        int hi = hexval((unsigned char)s[i + 1]), lo = hexval((unsigned char)s[i + 2]);
        if (hi < 0 || lo < 0) return TN__SIGV4_EINVAL;
        putc_(b, (char)(hi << 4 | lo));
        i += 2;
    }
    return TN__SIGV4_OK;
}

int tn__sigv4_uri_encode(const char *in, size_t len, int keep_slash, char **out) {
    if (!out) return TN__SIGV4_EINVAL;
    *out = NULL;
    if (!in) return TN__SIGV4_EINVAL;
    if (len > TN__SIGV4_MAX_FIELD) return TN__SIGV4_ETOOBIG;
    buf b = {0};
    put_encoded(&b, in, len, keep_slash);
    return take(&b, out);
}

/* ---- input checks -------------------------------------------------------- */

/* Length of s if it is at most max bytes. */
static int bounded(const char *s, size_t max, size_t *len) {
    if (!s) return TN__SIGV4_EINVAL;
    *len = strnlen(s, max + 1);
    return *len > max ? TN__SIGV4_ETOOBIG : TN__SIGV4_OK;
}

/* 1..TN__SIGV4_MAX_ID bytes of tchar: methods, header names, key id, region,
 * service.  tchar excludes '/', ',', ';', '=' and spaces, which would make the
 * Credential and SignedHeaders fields ambiguous. */
static int check_token(const char *s) {
    size_t n;
    int rc = bounded(s, TN__SIGV4_MAX_ID, &n);
    if (rc) return rc;
    if (n == 0) return TN__SIGV4_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i])) return TN__SIGV4_EINVAL;
    return TN__SIGV4_OK;
}

/* A header value: no control characters but tab, so no CR/LF that could add
 * lines to the canonical request.  Bytes >= 0x80 (UTF-8) are fine. */
static int check_value(const char *s) {
    size_t n;
    int rc = bounded(s, TN__SIGV4_MAX_FIELD, &n);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) return TN__SIGV4_EINVAL;
    }
    return TN__SIGV4_OK;
}

/* An S3 path as sent: only unreserved characters, '/' and %XX. */
static int check_encoded_path(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (is_unreserved(c) || c == '/') continue;
        if (c != '%' || n - i < 3 || hexval((unsigned char)p[i + 1]) < 0 ||
            hexval((unsigned char)p[i + 2]) < 0)
            return TN__SIGV4_EINVAL;
        i += 2;
    }
    return TN__SIGV4_OK;
}

static int check_inputs(const tn__sigv4_signer *s, const tn__sigv4_request *req) {
    size_t n;
    int rc;
    if ((rc = check_token(req->method)) || (rc = check_token(s->access_key_id)) ||
        (rc = check_token(s->region)) || (rc = check_token(s->service)))
        return rc;
    if ((rc = bounded(s->secret_access_key, TN__SIGV4_MAX_ID, &n))) return rc;
    if (n == 0) return TN__SIGV4_EINVAL;
    if (s->session_token && (rc = check_value(s->session_token))) return rc;
    if ((rc = bounded(req->path, TN__SIGV4_MAX_FIELD, &n))) return rc;
    if (n > 0 && req->path[0] != '/') return TN__SIGV4_EINVAL;
    if ((s->flags & TN__SIGV4_PATH_ENCODED) && (rc = check_encoded_path(req->path, n)))
        return rc;
    if (req->query && (rc = bounded(req->query, TN__SIGV4_MAX_FIELD, &n))) return rc;
    if (req->nheaders > TN__SIGV4_MAX_HEADERS) return TN__SIGV4_ETOOBIG;
    if (req->nheaders && !req->headers) return TN__SIGV4_EINVAL;
    if (req->payload_hash) {
        if ((rc = bounded(req->payload_hash, TN__SIGV4_MAX_ID, &n))) return rc;
        if (n == 0) return TN__SIGV4_EINVAL;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)req->payload_hash[i];
            if (c < 0x21 || c > 0x7e) return TN__SIGV4_EINVAL;
        }
    } else if (!req->body && req->body_len) {
        return TN__SIGV4_EINVAL;
    }
    if ((s->flags & TN__SIGV4_PRESIGN) &&
        (s->expires < 1 || s->expires > TN__SIGV4_MAX_EXPIRES))
        return TN__SIGV4_EINVAL;
    return TN__SIGV4_OK;
}

/* ---- canonical URI -------------------------------------------------------- */

/* RFC 3986 5.2.4 remove_dot_segments, also dropping empty segments (duplicate
 * slashes).  ".." above the root stays at the root.  A path that ends in '/',
 * "." or ".." keeps a trailing slash, as the RFC's algorithm does. */
static void put_normalized(buf *b, const char *p, size_t n) {
    size_t start = b->len;
    int dot_last = 0; /* the last segment was "." or ".." */
    size_t i = 0;
    while (i < n) {
        while (i < n && p[i] == '/') i++;
        size_t j = i;
        while (j < n && p[j] != '/') j++;
        const char *seg = p + i;
        size_t seglen = j - i;
        if (seglen == 1 && seg[0] == '.') {
            dot_last = 1;
        } else if (seglen == 2 && seg[0] == '.' && seg[1] == '.') {
            /* Drop the last segment written, with its '/'. */
            while (b->len > start && b->p[b->len - 1] != '/') b->len--;
            if (b->len > start) b->len--;
            if (b->p) b->p[b->len] = '\0';
            dot_last = 1;
        } else if (seglen) {
            putc_(b, '/');
            put(b, seg, seglen);
            dot_last = 0;
        }
        i = j;
    }
    if (b->len == start || dot_last || (n && p[n - 1] == '/')) putc_(b, '/');
}

static void put_canonical_uri(buf *b, const char *path, unsigned flags) {
    size_t n = strlen(path);
    if (n == 0) {
        putc_(b, '/');
        return;
    }
    const char *p = path;
    buf norm = {0};
    if (flags & TN__SIGV4_NORMALIZE_PATH) {
        put_normalized(&norm, path, n);
        if (norm.err) {
            b->err = b->err ? b->err : norm.err;
            free(norm.p);
            return;
        }
        p = norm.p;
        n = norm.len;
    }
    if (flags & TN__SIGV4_PATH_ENCODED)
        put(b, p, n);
    else
        put_encoded(b, p, n, 1);
    free(norm.p);
}

/* ---- query parameters ----------------------------------------------------- */

typedef struct param {
    char *name, *value; /* encoded */
    int has_eq;         /* "a=" or "a=b", versus a bare "a" */
    int signed_;        /* part of the canonical query */
} param;

typedef struct params {
    param *v;
    size_t n, cap;
} params;

static void params_free(params *ps) {
    for (size_t i = 0; i < ps->n; i++) {
        free(ps->v[i].name);
        free(ps->v[i].value);
    }
    free(ps->v);
    *ps = (params){0};
}

/* Decodes then encodes s[0..n) into a new string. */
static int reencode(const char *s, size_t n, char **out) {
    buf raw = {0}, enc = {0};
    int rc = put_decoded(&raw, s, n);
    if (rc == TN__SIGV4_OK && !raw.err) put_encoded(&enc, raw.p ? raw.p : "", raw.len, 0);
    if (rc == TN__SIGV4_OK) rc = raw.err;
    free(raw.p);
    if (rc) {
        free(enc.p);
        return rc;
    }
    return take(&enc, out);
}

static const char *const amz_names[] = {
    "X-Amz-Algorithm", "X-Amz-Credential",    "X-Amz-Date",           "X-Amz-Expires",
    "X-Amz-SignedHeaders", "X-Amz-Security-Token", "X-Amz-Signature",
};

/* Splits the raw query into encoded pairs.  In presign mode a parameter the
 * signer sets itself is refused, so a URL never carries two signatures. */
static int parse_query(const char *q, int presign, params *ps) {
    if (!q || !*q) return TN__SIGV4_OK;
    size_t most = 1 + N_AMZ_PARAMS;
    for (const char *c = q; *c; c++) most += *c == '&';
    ps->v = calloc(most, sizeof *ps->v);
    if (!ps->v) return TN__SIGV4_ENOMEM;
    ps->cap = most;
    while (*q) {
        size_t len = strcspn(q, "&");
        if (len) {
            const char *eq = memchr(q, '=', len);
            size_t nlen = eq ? (size_t)(eq - q) : len;
            param *p = &ps->v[ps->n++];
            p->has_eq = eq != NULL;
            p->signed_ = 1;
            int rc = reencode(q, nlen, &p->name);
            if (rc) return rc;
            if (eq)
                rc = reencode(eq + 1, len - nlen - 1, &p->value);
            else
                rc = take(&(buf){0}, &p->value); /* "a" signs as "a=" */
            if (rc) return rc;
            if (presign) {
                for (size_t k = 0; k < sizeof amz_names / sizeof *amz_names; k++)
                    if (strcasecmp(p->name, amz_names[k]) == 0) return TN__SIGV4_EINVAL;
            }
        }
        q += len;
        if (*q == '&') q++;
    }
    return TN__SIGV4_OK;
}

/* Adds a signer parameter; value is encoded here. */
static int add_param(params *ps, const char *name, const char *value, int signed_) {
    if (ps->n >= ps->cap) return TN__SIGV4_EINVAL; /* parse_query sized it */
    param *p = &ps->v[ps->n];
    buf b = {0};
    put_encoded(&b, value, strlen(value), 0);
    int rc = take(&b, &p->value);
    if (rc) return rc;
    p->name = strdup(name);
    if (!p->name) {
        free(p->value);
        p->value = NULL;
        return TN__SIGV4_ENOMEM;
    }
    p->has_eq = 1;
    p->signed_ = signed_;
    ps->n++;
    return TN__SIGV4_OK;
}

static int cmp_param(const void *a, const void *b) {
    const param *x = *(const param *const *)a, *y = *(const param *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

static int put_canonical_query(buf *b, const params *ps) {
    if (ps->n == 0) return TN__SIGV4_OK;
    const param **order = malloc(ps->n * sizeof *order);
    if (!order) return TN__SIGV4_ENOMEM;
    size_t m = 0;
    for (size_t i = 0; i < ps->n; i++)
        if (ps->v[i].signed_) order[m++] = &ps->v[i];
    qsort(order, m, sizeof *order, cmp_param);
    for (size_t i = 0; i < m; i++) {
        if (i) putc_(b, '&');
        puts_(b, order[i]->name);
        putc_(b, '=');
        puts_(b, order[i]->value);
    }
    free(order);
    return TN__SIGV4_OK;
}

/* ---- headers -------------------------------------------------------------- */

typedef struct hdr {
    char *name;  /* lower case */
    char *value; /* trimmed, inner runs of blanks collapsed */
    size_t order;
} hdr;

typedef struct hdrs {
    hdr v[TN__SIGV4_MAX_HEADERS + 3];
    size_t n;
} hdrs;

static void hdrs_free(hdrs *hs) {
    for (size_t i = 0; i < hs->n; i++) {
        free(hs->v[i].name);
        free(hs->v[i].value);
    }
    hs->n = 0;
}

static void put_trimmed(buf *b, const char *v) {
    int seen = 0, blank = 0;
    for (; *v; v++) {
        if (*v == ' ' || *v == '\t') {
            blank = seen;
            continue;
        }
        if (blank) putc_(b, ' ');
        blank = 0;
        seen = 1;
        putc_(b, *v);
    }
}

static int add_hdr(hdrs *hs, const char *name, const char *value) {
    buf nb = {0}, vb = {0};
    for (const char *c = name; *c; c++)
        putc_(&nb, (*c >= 'A' && *c <= 'Z') ? (char)(*c - 'A' + 'a') : *c);
    put_trimmed(&vb, value);
    hdr *h = &hs->v[hs->n];
    int rc = take(&nb, &h->name);
    if (rc) {
        free(vb.p);
        return rc;
    }
    if ((rc = take(&vb, &h->value))) {
        free(h->name);
        h->name = NULL;
        return rc;
    }
    h->order = hs->n++;
    return TN__SIGV4_OK;
}

/* Stable: repeated names keep the caller's order, which joins their values. */
static int cmp_hdr(const void *a, const void *b) {
    const hdr *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

/* Lower-cased names the caller may not pass in this mode. */
static int reserved_header(const char *lname, const tn__sigv4_signer *s) {
    if (strcmp(lname, "authorization") == 0) return 1;
    if (s->flags & TN__SIGV4_PRESIGN) return 0;
    return strcmp(lname, "x-amz-date") == 0 ||
           (s->session_token && *s->session_token &&
            strcmp(lname, "x-amz-security-token") == 0) ||
           ((s->flags & TN__SIGV4_CONTENT_SHA256) && strcmp(lname, "x-amz-content-sha256") == 0);
}

static int collect_headers(const tn__sigv4_signer *s, const tn__sigv4_request *req, hdrs *hs) {
    int rc, host = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        const tn__sigv4_header *h = &req->headers[i];
        if ((rc = check_token(h->name)) || (rc = check_value(h->value))) return rc;
        if ((rc = add_hdr(hs, h->name, h->value))) return rc;
        const char *lname = hs->v[hs->n - 1].name;
        if (reserved_header(lname, s)) return TN__SIGV4_EINVAL;
        host |= strcmp(lname, "host") == 0;
    }
    return host ? TN__SIGV4_OK : TN__SIGV4_EINVAL;
}

/* Canonical header lines and the SignedHeaders list, from sorted headers. */
static void put_headers(buf *lines, buf *names, const hdrs *hs) {
    for (size_t i = 0; i < hs->n; i++) {
        const hdr *h = &hs->v[i];
        int first = i == 0 || strcmp(h->name, hs->v[i - 1].name) != 0;
        int last = i + 1 == hs->n || strcmp(h->name, hs->v[i + 1].name) != 0;
        if (first) {
            if (i) putc_(names, ';');
            puts_(names, h->name);
            puts_(lines, h->name);
            putc_(lines, ':');
        } else {
            putc_(lines, ',');
        }
        puts_(lines, h->value);
        if (last) putc_(lines, '\n');
    }
}

/* ---- signing -------------------------------------------------------------- */

static void hmac_str(const unsigned char *key, size_t keylen, const char *msg,
                     unsigned char out[TN_SHA256_LEN]) {
    tn__hmac_sha256(key, keylen, msg, strlen(msg), out);
}

/* signature = HMAC(HMAC(HMAC(HMAC(HMAC("AWS4" secret, date), region), service),
 * "aws4_request"), string_to_sign), as 64 hex digits. */
static void derive_and_sign(const tn__sigv4_signer *s, const char *date8, const char *sts,
                            char sig[65]) {
    unsigned char kin[4 + TN__SIGV4_MAX_ID];
    /* Two key buffers in turn: HMAC's key and output never alias. */
    unsigned char k1[TN_SHA256_LEN], k2[TN_SHA256_LEN], mac[TN_SHA256_LEN];
    size_t sl = strlen(s->secret_access_key); /* checked <= TN__SIGV4_MAX_ID */
    memcpy(kin, "AWS4", 4);
    memcpy(kin + 4, s->secret_access_key, sl);
    hmac_str(kin, 4 + sl, date8, k1);
    hmac_str(k1, sizeof k1, s->region, k2);
    hmac_str(k2, sizeof k2, s->service, k1);
    hmac_str(k1, sizeof k1, "aws4_request", k2);
    hmac_str(k2, sizeof k2, sts, mac);
    tn__hex(mac, sizeof mac, sig);
    sodium_memzero(kin, sizeof kin);
    sodium_memzero(k1, sizeof k1);
    sodium_memzero(k2, sizeof k2);
}

static int amz_date(time_t now, char out[17]) {
    struct tm tm;
    if (now < 0 || !gmtime_r(&now, &tm) || tm.tm_year + 1900 > 9999) return TN__SIGV4_EINVAL;
    return strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) == 16 ? TN__SIGV4_OK : TN__SIGV4_EINVAL;
}

void tn__sigv4_result_free(tn__sigv4_result *out) {
    if (!out) return;
    free(out->authorization);
    free(out->query);
    free(out->canonical_request);
    free(out->string_to_sign);
    free(out->token_);
    free(out->payload_hash_);
    memset(out, 0, sizeof *out);
}

/* The presigned query to send: the request's parameters in their order, then
 * the signer's in botocore's order, the signature last. */
static int build_query(const params *ps, const char *sig, char **out) {
    buf b = {0};
    for (size_t i = 0; i < ps->n; i++) {
        if (i) putc_(&b, '&');
        puts_(&b, ps->v[i].name);
        if (ps->v[i].has_eq) {
            putc_(&b, '=');
            puts_(&b, ps->v[i].value);
        }
    }
    puts_(&b, "&X-Amz-Signature=");
    puts_(&b, sig);
    return take(&b, out);
}

int tn__sigv4_sign(const tn__sigv4_signer *s, const tn__sigv4_request *req,
                   tn__sigv4_result *out) {
    if (!out) return TN__SIGV4_EINVAL;
    memset(out, 0, sizeof *out);
    if (!s || !req) return TN__SIGV4_EINVAL;
    int rc = check_inputs(s, req);
    if (rc) return rc;
    int presign = (s->flags & TN__SIGV4_PRESIGN) != 0;
    const char *token = s->session_token && *s->session_token ? s->session_token : NULL;
    int sign_token = token && !(s->flags & TN__SIGV4_OMIT_TOKEN);
    if ((rc = amz_date(s->now, out->amz_date))) return rc;
    char date8[9];
    memcpy(date8, out->amz_date, 8);
    date8[8] = '\0';

    hdrs *hs = calloc(1, sizeof *hs);
    params ps = {0};
    buf scope = {0}, cred = {0}, lines = {0}, names = {0}, creq = {0}, sts = {0}, auth = {0};
    if (!hs) return TN__SIGV4_ENOMEM;

    if (req->payload_hash) {
        out->payload_hash_ = strdup(req->payload_hash);
    } else if ((out->payload_hash_ = malloc(2 * TN_SHA256_LEN + 1))) {
        tn__sha256_hex(req->body_len ? req->body : "", req->body_len, out->payload_hash_);
    }
    if (!out->payload_hash_) {
        rc = TN__SIGV4_ENOMEM;
        goto fail;
    }

    if ((rc = collect_headers(s, req, hs))) goto fail;
    if (!presign) {
        if ((rc = add_hdr(hs, "x-amz-date", out->amz_date))) goto fail;
        if (sign_token && (rc = add_hdr(hs, "x-amz-security-token", token))) goto fail;
        if ((s->flags & TN__SIGV4_CONTENT_SHA256) &&
            (rc = add_hdr(hs, "x-amz-content-sha256", out->payload_hash_)))
            goto fail;
    }
    qsort(hs->v, hs->n, sizeof hs->v[0], cmp_hdr);
    put_headers(&lines, &names, hs);
    if ((rc = lines.err ? lines.err : names.err)) goto fail;

    puts_(&scope, date8);
    putc_(&scope, '/');
    puts_(&scope, s->region);
    putc_(&scope, '/');
    puts_(&scope, s->service);
    puts_(&scope, "/aws4_request");
    puts_(&cred, s->access_key_id);
    putc_(&cred, '/');
    put(&cred, scope.p, scope.len);
    if ((rc = scope.err ? scope.err : cred.err)) goto fail;

    if ((rc = parse_query(req->query, presign, &ps))) goto fail;
    if (presign) {
        char expires[24];
        /* Checked 1..604800 above, so six digits at most. */
        size_t e = sizeof expires - 1;
        expires[e] = '\0';
        for (long v = s->expires; v; v /= 10) expires[--e] = (char)('0' + v % 10);
        if (ps.v == NULL) {
            if (!(ps.v = calloc(N_AMZ_PARAMS, sizeof *ps.v))) {
                rc = TN__SIGV4_ENOMEM;
                goto fail;
            }
            ps.cap = N_AMZ_PARAMS;
        }
        if ((rc = add_param(&ps, "X-Amz-Algorithm", ALGORITHM, 1)) ||
            (rc = add_param(&ps, "X-Amz-Credential", cred.p, 1)) ||
            (rc = add_param(&ps, "X-Amz-Date", out->amz_date, 1)) ||
            (rc = add_param(&ps, "X-Amz-Expires", expires + e, 1)) ||
            (rc = add_param(&ps, "X-Amz-SignedHeaders", names.p, 1)) ||
            (token && (rc = add_param(&ps, "X-Amz-Security-Token", token, sign_token))))
            goto fail;
    }

    /* method, URI, query, header lines, blank, signed names, payload hash */
    puts_(&creq, req->method);
    putc_(&creq, '\n');
    put_canonical_uri(&creq, req->path, s->flags);
    putc_(&creq, '\n');
    if ((rc = put_canonical_query(&creq, &ps))) goto fail;
    putc_(&creq, '\n');
    put(&creq, lines.p, lines.len);
    putc_(&creq, '\n');
    put(&creq, names.p, names.len);
    putc_(&creq, '\n');
    puts_(&creq, out->payload_hash_);
    if ((rc = creq.err)) goto fail;

    char creq_hash[2 * TN_SHA256_LEN + 1];
    tn__sha256_hex(creq.p, creq.len, creq_hash);
    puts_(&sts, ALGORITHM "\n");
    puts_(&sts, out->amz_date);
    putc_(&sts, '\n');
    put(&sts, scope.p, scope.len);
    putc_(&sts, '\n');
    puts_(&sts, creq_hash);
    if ((rc = sts.err)) goto fail;
    derive_and_sign(s, date8, sts.p, out->signature);

    if (presign) {
        if ((rc = build_query(&ps, out->signature, &out->query))) goto fail;
    } else {
        puts_(&auth, ALGORITHM " Credential=");
        put(&auth, cred.p, cred.len);
        puts_(&auth, ", SignedHeaders=");
        put(&auth, names.p, names.len);
        puts_(&auth, ", Signature=");
        puts_(&auth, out->signature);
        if ((rc = take(&auth, &out->authorization))) goto fail;
        out->add[out->nadd++] = (tn__sigv4_header){"x-amz-date", out->amz_date};
        if (token) {
            /* Sent even when unsigned (OMIT_TOKEN): the service needs it. */
            if (!(out->token_ = strdup(token))) {
                rc = TN__SIGV4_ENOMEM;
                goto fail;
            }
            out->add[out->nadd++] = (tn__sigv4_header){"x-amz-security-token", out->token_};
        }
        if (s->flags & TN__SIGV4_CONTENT_SHA256)
            out->add[out->nadd++] = (tn__sigv4_header){"x-amz-content-sha256", out->payload_hash_};
    }
    if ((rc = take(&creq, &out->canonical_request)) || (rc = take(&sts, &out->string_to_sign)))
        goto fail;
    rc = TN__SIGV4_OK;
    goto done;

fail:
    tn__sigv4_result_free(out);
done:
    hdrs_free(hs);
    free(hs);
    params_free(&ps);
    free(scope.p);
    free(cred.p);
    free(lines.p);
    free(names.p);
    free(creq.p);
    free(sts.p);
    free(auth.p);
    return rc;
}
