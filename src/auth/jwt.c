/*
 * jwt.c - HS256 JWT signing and verification (see jwt.h for the format).
 *
 * Verification order matters:
 *   1. length bound and exactly three parts, before any decoding;
 *   2. the header (small, bounded) is decoded and checked, so alg confusion
 *      ("none", "HS512", ...) is reported as such and never picks the MAC;
 *   3. the MAC over the first two parts, as sent, is compared in constant time;
 *   4. only then is the payload decoded and parsed, so unauthenticated payload
 *      JSON never reaches cJSON.
 * Headers and payloads with duplicate member names or a "\u0000" escape are
 * refused: both make one token mean different things to different parsers
 * (cJSON keeps the first duplicate; C strings stop at the NUL).
 */
#include "jwt.h"

#include "crypto.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * 2^53 - 1: every integer up to it is exact in a double (cJSON parses numbers
 * into doubles), and a literal just past it cannot round down into range.
 */
#define MAX_TIME 9007199254740991.0
#define RAW_MAX (TN__JWT_MAX_LEN / 4 * 3 + 1)

static const char header_json[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

const char *tn__jwt_errname(int rc) {
    switch (rc) {
#define TN__JWT_NAME_(name, value) \
    case value:                    \
        return "TN__JWT_" #name;
        TN__JWT_ERRORS(TN__JWT_NAME_)
#undef TN__JWT_NAME_
    }
    return "TN__JWT_?";
}

/* 1 when s is 1..max bytes of printable non-space ASCII (NUL-terminated). */
static int good_id(const char *s, size_t max) {
    size_t n = 0;
    for (; s[n]; n++) {
        if (n >= max) return 0;
        if ((unsigned char)s[n] < 0x21 || (unsigned char)s[n] > 0x7e) return 0;
    }
    return n > 0;
}

static int good_time(int64_t t) {
    return t >= 0 && t <= (int64_t)MAX_TIME;
}

static int good_claims(const tn__jwt_claims *c) {
    return good_id(c->sub, TN__JWT_SUB_MAX) && good_id(c->jti, TN__JWT_JTI_MAX) &&
           good_time(c->iat) && good_time(c->nbf) && good_time(c->exp) && c->exp > c->nbf;
}

int tn__jwt_claims_init(tn__jwt_claims *c, const char *sub, int64_t now, int ttl) {
    if (!c || !sub || ttl <= 0 || !good_time(now)) return TN__JWT_EINVAL;
    memset(c, 0, sizeof *c);
    size_t n = strnlen(sub, TN__JWT_SUB_MAX + 1);
    if (n > TN__JWT_SUB_MAX) return TN__JWT_EINVAL;
    memcpy(c->sub, sub, n);
    if (sodium_init() < 0) return TN__JWT_ESYS;
    unsigned char r[TN__JWT_JTI_MAX / 2];
    randombytes_buf(r, sizeof r);
    tn__hex(r, sizeof r, c->jti);
    c->iat = c->nbf = now;
    c->exp = now + ttl;
    return good_claims(c) ? TN__JWT_OK : TN__JWT_EINVAL;
}

/* Adds an integer claim as raw text: cJSON would print it through a double. */
static int add_time(cJSON *o, const char *name, int64_t v) {
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return cJSON_AddRawToObject(o, name, buf) != NULL;
}

static char *payload_json(const tn__jwt_claims *c) {
    cJSON *o = cJSON_CreateObject();
    char *s = NULL;
    if (!o) return NULL;
    if (cJSON_AddStringToObject(o, "sub", c->sub) && add_time(o, "iat", c->iat) &&
        add_time(o, "nbf", c->nbf) && add_time(o, "exp", c->exp) &&
        cJSON_AddStringToObject(o, "jti", c->jti))
        s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

int tn__jwt_sign(const unsigned char *key, size_t keylen, const tn__jwt_claims *c, char **out) {
    if (out) *out = NULL;
    if (!c || !out) return TN__JWT_EINVAL;
    if (keylen < TN__JWT_MIN_KEY) return TN__JWT_EKEY;
    if (!key || !good_claims(c)) return TN__JWT_EINVAL;

    char *payload = payload_json(c);
    if (!payload) return TN__JWT_ENOMEM;
    size_t plen = strlen(payload);
    size_t hb = tn__b64url_encoded_len(sizeof header_json - 1);
    size_t pb = tn__b64url_encoded_len(plen);
    size_t sb = tn__b64url_encoded_len(TN_SHA256_LEN);
    size_t total = hb + 1 + pb + 1 + sb;
    /* Cannot happen with the claim limits above; keeps sign and verify in step. */
    if (total > TN__JWT_MAX_LEN) {
        free(payload);
        return TN__JWT_ETOOBIG;
    }
    char *tok = malloc(total + 1);
    if (!tok) {
        free(payload);
        return TN__JWT_ENOMEM;
    }
    tn__b64url_encode((const unsigned char *)header_json, sizeof header_json - 1, tok);
    tok[hb] = '.';
    tn__b64url_encode((const unsigned char *)payload, plen, tok + hb + 1);
    free(payload);

    unsigned char mac[TN_SHA256_LEN];
    tn__hmac_sha256(key, keylen, tok, hb + 1 + pb, mac);
    tok[hb + 1 + pb] = '.';
    tn__b64url_encode(mac, sizeof mac, tok + hb + 1 + pb + 1);
    *out = tok;
    return TN__JWT_OK;
}

/*
 * Decodes one base64url part and parses it as a JSON object.  raw must hold
 * RAW_MAX bytes.  Returns TN__JWT_OK, TN__JWT_EFORMAT (bad base64url) or bad
 * (the caller's code for "not a clean JSON object").
 */
static int parse_part(const char *seg, size_t len, unsigned char *raw, int bad, cJSON **obj) {
    size_t n;
    *obj = NULL;
    if (tn__b64url_decode(seg, len, raw, &n) != 0) return TN__JWT_EFORMAT;
    if (memchr(raw, '\0', n)) return bad;
    raw[n] = '\0';
    if (memmem(raw, n, "\\u0000", 6)) return bad;
    /* Length n + 1 with require_null_terminated: trailing garbage is an error. */
    cJSON *o = cJSON_ParseWithLengthOpts((const char *)raw, n + 1, NULL, 1);
    if (!cJSON_IsObject(o)) goto fail;
    for (const cJSON *a = o->child; a; a = a->next)
        for (const cJSON *b = o->child; b != a; b = b->next)
            if (strcmp(a->string, b->string) == 0) goto fail;
    *obj = o;
    return TN__JWT_OK;
fail:
    cJSON_Delete(o);
    return bad;
}

static int check_header(const char *seg, size_t len, unsigned char *raw) {
    cJSON *h;
    int rc = parse_part(seg, len, raw, TN__JWT_EHEADER, &h);
    if (rc) return rc;
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(h, "alg");
    const cJSON *typ = cJSON_GetObjectItemCaseSensitive(h, "typ");
    if (!cJSON_IsString(alg) || strcmp(alg->valuestring, "HS256") != 0)
        rc = TN__JWT_EALG;
    else if (typ && (!cJSON_IsString(typ) || strcmp(typ->valuestring, "JWT") != 0))
        rc = TN__JWT_EHEADER;
    /* We understand no extension, so RFC 7515 4.1.11 says: reject. */
    else if (cJSON_GetObjectItemCaseSensitive(h, "crit"))
        rc = TN__JWT_EHEADER;
    cJSON_Delete(h);
    return rc;
}

static int check_mac(const unsigned char *key, size_t keylen, const char *signed_part,
                     size_t signed_len, const char *seg, size_t len, unsigned char *raw) {
    size_t n;
    unsigned char mac[TN_SHA256_LEN];
    if (tn__b64url_decode(seg, len, raw, &n) != 0) return TN__JWT_EFORMAT;
    /* The length is public (always 32 for us), so this early exit leaks nothing. */
    if (n != TN_SHA256_LEN) return TN__JWT_ESIG;
    tn__hmac_sha256(key, keylen, signed_part, signed_len, mac);
    int ok = tn__ct_equal(mac, raw, sizeof mac);
    /* For a forged token, mac is the valid signature of the attacker's input. */
    sodium_memzero(mac, sizeof mac);
    return ok ? TN__JWT_OK : TN__JWT_ESIG;
}

int tn__jws_hs256_verify(const unsigned char *key, size_t keylen, const char *token,
                         cJSON **payload) {
    unsigned char raw[RAW_MAX];
    if (payload) *payload = NULL;
    if (!token) return TN__JWT_EINVAL;
    if (keylen < TN__JWT_MIN_KEY) return TN__JWT_EKEY;
    if (!key) return TN__JWT_EINVAL;

    size_t len = strnlen(token, TN__JWT_MAX_LEN + 1);
    if (len > TN__JWT_MAX_LEN) return TN__JWT_ETOOBIG;
    const char *d1 = memchr(token, '.', len);
    if (!d1) return TN__JWT_EFORMAT;
    const char *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token));
    if (!d2) return TN__JWT_EFORMAT;
    const char *sig = d2 + 1;
    size_t slen = len - (size_t)(sig - token);
    if (memchr(sig, '.', slen)) return TN__JWT_EFORMAT;
    size_t hlen = (size_t)(d1 - token), plen = (size_t)(d2 - d1 - 1);
    if (!hlen || !plen) return TN__JWT_EFORMAT;

    int rc = check_header(token, hlen, raw);
    if (!rc) rc = check_mac(key, keylen, token, (size_t)(d2 - token), sig, slen, raw);
    if (rc) return rc;

    cJSON *p;
    rc = parse_part(d1 + 1, plen, raw, TN__JWT_EPAYLOAD, &p);
    if (rc) return rc;
    if (payload)
        *payload = p;
    else
        cJSON_Delete(p);
    return TN__JWT_OK;
}

/* Reads an integer NumericDate: 1 absent, 0 read, -1 present but not one. */
static int get_time(const cJSON *o, const char *name, int64_t *v) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!it) return 1;
    if (!cJSON_IsNumber(it)) return -1;
    double d = it->valuedouble;
    /* RFC 7519 allows fractions; we never issue them, so refuse rather than round. */
    if (!(d >= 0 && d <= MAX_TIME) || d != (double)(int64_t)d) return -1;
    *v = (int64_t)d;
    return 0;
}

/*
 * The time part of verification.  t receives iat/nbf/exp; *missing gets bit 1
 * for a missing iat and bit 2 for a missing nbf (exp is always required).
 */
static int verify_times(const unsigned char *key, size_t keylen, const char *token, int64_t now,
                        int leeway, cJSON **payload, tn__jwt_claims *t, unsigned *missing) {
    cJSON *p;
    *payload = NULL;
    if (leeway < 0) return TN__JWT_EINVAL;
    int rc = tn__jws_hs256_verify(key, keylen, token, &p);
    if (rc) return rc;
    int ri = get_time(p, "iat", &t->iat), rn = get_time(p, "nbf", &t->nbf);
    int re = get_time(p, "exp", &t->exp);
    if (ri < 0 || rn < 0 || re != 0)
        rc = TN__JWT_ECLAIMS;
    else if (now >= t->exp + leeway)
        rc = TN__JWT_EEXPIRED;
    else if ((rn == 0 && now < t->nbf - leeway) || (ri == 0 && t->iat - leeway > now))
        rc = TN__JWT_ENOTYET;
    if (rc) {
        cJSON_Delete(p);
        return rc;
    }
    *missing = (ri ? 1u : 0u) | (rn ? 2u : 0u);
    *payload = p;
    return TN__JWT_OK;
}

int tn__jwt_verify_payload(const unsigned char *key, size_t keylen, const char *token,
                           int64_t now, int leeway, cJSON **payload) {
    tn__jwt_claims t;
    unsigned missing;
    cJSON *p;
    if (payload) *payload = NULL;
    int rc = verify_times(key, keylen, token, now, leeway, &p, &t, &missing);
    if (rc) return rc;
    if (payload)
        *payload = p;
    else
        cJSON_Delete(p);
    return TN__JWT_OK;
}

int tn__jwt_verify(const unsigned char *key, size_t keylen, const char *token, int64_t now,
                   int leeway, tn__jwt_claims *out) {
    tn__jwt_claims c;
    unsigned missing;
    cJSON *p;
    if (!out) return TN__JWT_EINVAL;
    memset(out, 0, sizeof *out);
    memset(&c, 0, sizeof c);
    int rc = verify_times(key, keylen, token, now, leeway, &p, &c, &missing);
    if (rc) return rc;
    const cJSON *sub = cJSON_GetObjectItemCaseSensitive(p, "sub");
    const cJSON *jti = cJSON_GetObjectItemCaseSensitive(p, "jti");
    if (missing || !cJSON_IsString(sub) || !good_id(sub->valuestring, TN__JWT_SUB_MAX) ||
        !cJSON_IsString(jti) || !good_id(jti->valuestring, TN__JWT_JTI_MAX)) {
        cJSON_Delete(p);
        return TN__JWT_ECLAIMS;
    }
    /* good_id bounded both lengths, so these copies fit with their NUL. */
    memcpy(c.sub, sub->valuestring, strlen(sub->valuestring) + 1);
    memcpy(c.jti, jti->valuestring, strlen(jti->valuestring) + 1);
    cJSON_Delete(p);
    *out = c;
    return TN__JWT_OK;
}
