/*
 * test_jwt.c - HMAC-SHA256 (RFC 4231) and the HS256 JWT module (src/jwt.c).
 *
 * Expected results come from the vector files in tests/vectors (see their
 * READMEs) or are written out by hand here; none is computed by jwt.c.  Tokens
 * with odd headers or payloads are built by make_token() below from
 * tn__b64url_encode and tn__hmac_sha256, which the RFC vectors check first, so
 * a bug in jwt.c's signing cannot hide one in its verifying.
 *
 * The RFC 7515 A.1 token has iss/exp and no sub, so it goes through the lower
 * layers (tn__jws_hs256_verify, tn__jwt_verify_payload); tn__jwt_verify must
 * refuse it for the missing claims.
 */
#include "harness.h"

#include "crypto.h"
#include "jwt.h"

#include <cjson/cJSON.h>

#define A1_EXP 1300819380

/* A 32-byte server secret: 00 01 02 ... 1f. */
static unsigned char test_key[32];

static void init_key(void) {
    for (size_t i = 0; i < sizeof test_key; i++) test_key[i] = (unsigned char)i;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes hex into out (max bytes); returns the byte count, failing the test on bad input. */
static size_t unhex(const char *hex, unsigned char *out, size_t max) {
    size_t n = strlen(hex);
    ASSERT(n % 2 == 0 && n / 2 <= max);
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        ASSERT(hi >= 0 && lo >= 0);
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return n / 2;
}

static cJSON *load_json(const char *rel) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tn_test_vectors(), rel);
    size_t len;
    char *text = tn_test_slurp(path, &len);
    if (!text) TN_FAIL_("cannot read %s", path);
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!j) TN_FAIL_("%s is not JSON", path);
    return j;
}

static const char *jstr(const cJSON *o, const char *name) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsString(it)) TN_FAIL_("vector field %s missing", name);
    return it->valuestring;
}

/* header.payload.HMAC for arbitrary header and payload bytes; malloc'd. */
static char *make_token_n(const unsigned char *key, size_t keylen, const char *hdr,
                          const char *pay, size_t paylen) {
    size_t hb = tn__b64url_encoded_len(strlen(hdr)), pb = tn__b64url_encoded_len(paylen);
    size_t total = hb + 1 + pb + 1 + tn__b64url_encoded_len(TN_SHA256_LEN) + 1;
    char *t = malloc(total);
    ASSERT(t != NULL);
    tn__b64url_encode((const unsigned char *)hdr, strlen(hdr), t);
    t[hb] = '.';
    tn__b64url_encode((const unsigned char *)pay, paylen, t + hb + 1);
    unsigned char mac[TN_SHA256_LEN];
    tn__hmac_sha256(key, keylen, t, hb + 1 + pb, mac);
    t[hb + 1 + pb] = '.';
    tn__b64url_encode(mac, sizeof mac, t + hb + 1 + pb + 1);
    return t;
}

static char *make_token(const char *hdr, const char *pay) {
    init_key();
    return make_token_n(test_key, sizeof test_key, hdr, pay, strlen(pay));
}

static const char std_header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
#define GOOD_PAYLOAD \
    "{\"sub\":\"key_abc\",\"iat\":1700000000,\"nbf\":1700000000,\"exp\":1700000900,\"jti\":\"j1\"}"
#define NOW 1700000100

/* ---- RFC 4231 ------------------------------------------------------------- */

TEST(hmac_sha256_rfc4231) {
    cJSON *v = load_json("hmac-sha256/rfc4231.json");
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(v, "cases");
    ASSERT(cJSON_IsArray(cases));
    int n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        unsigned char key[256], data[256], want[TN_SHA256_LEN], got[TN_SHA256_LEN];
        size_t kl = unhex(jstr(c, "key_hex"), key, sizeof key);
        size_t dl = unhex(jstr(c, "data_hex"), data, sizeof data);
        size_t wl = unhex(jstr(c, "hmac_sha256_hex"), want, sizeof want);
        ASSERT_INT_EQ(kl, cJSON_GetObjectItemCaseSensitive(c, "key_len")->valueint);
        ASSERT_INT_EQ(dl, cJSON_GetObjectItemCaseSensitive(c, "data_len")->valueint);
        const cJSON *trunc = cJSON_GetObjectItemCaseSensitive(c, "truncate_to_bits");
        /* Case 5: the RFC prints only the leftmost 128 bits. */
        ASSERT_INT_EQ(wl, trunc ? (size_t)trunc->valueint / 8 : TN_SHA256_LEN);
        tn__hmac_sha256(key, kl, data, dl, got);
        if (memcmp(got, want, wl) != 0)
            TN_FAIL_("RFC 4231 test case %d", cJSON_GetObjectItemCaseSensitive(c, "test_case")->valueint);
        n++;
    }
    ASSERT_INT_EQ(n, 7);
    cJSON_Delete(v);
}

/* ---- RFC 7515 A.1 ----------------------------------------------------------- */

static size_t octets(const cJSON *arr, unsigned char *out, size_t max) {
    size_t n = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, arr) {
        ASSERT(n < max && cJSON_IsNumber(x) && x->valueint >= 0 && x->valueint < 256);
        out[n++] = (unsigned char)x->valueint;
    }
    return n;
}

TEST(jws_rfc7515_a1_signature) {
    cJSON *v = load_json("jwt-hs256/rfc7515-a1.json");
    unsigned char key[64], k2[64], buf[256], sig[TN_SHA256_LEN], mac[TN_SHA256_LEN];
    char enc[512];
    size_t kl = unhex(jstr(v, "key_hex"), key, sizeof key), k2l;
    ASSERT_INT_EQ(kl, 64);
    /* The key is the decoded JWK "k", not its text. */
    const char *k = jstr(cJSON_GetObjectItemCaseSensitive(v, "jwk"), "k");
    ASSERT_INT_EQ(tn__b64url_decode(k, strlen(k), k2, &k2l), 0);
    ASSERT_INT_EQ(k2l, 64);
    ASSERT_MEM_EQ(k2, key, 64);

    size_t n = octets(cJSON_GetObjectItemCaseSensitive(v, "protected_header_octets"), buf, sizeof buf);
    tn__b64url_encode(buf, n, enc);
    ASSERT_STR_EQ(enc, jstr(v, "protected_header_b64url"));
    n = octets(cJSON_GetObjectItemCaseSensitive(v, "payload_octets"), buf, sizeof buf);
    tn__b64url_encode(buf, n, enc);
    ASSERT_STR_EQ(enc, jstr(v, "payload_b64url"));

    const char *si = jstr(v, "signing_input");
    tn__hmac_sha256(key, kl, si, strlen(si), mac);
    ASSERT_INT_EQ(unhex(jstr(v, "signature_hex"), sig, sizeof sig), TN_SHA256_LEN);
    ASSERT_MEM_EQ(mac, sig, TN_SHA256_LEN);
    tn__b64url_encode(mac, sizeof mac, enc);
    ASSERT_STR_EQ(enc, jstr(v, "signature_b64url"));
    char compact[1024];
    snprintf(compact, sizeof compact, "%s.%s", si, enc);
    ASSERT_STR_EQ(compact, jstr(v, "compact_serialization"));
    cJSON_Delete(v);
}

TEST(jws_rfc7515_a1_verify) {
    cJSON *v = load_json("jwt-hs256/rfc7515-a1.json");
    unsigned char key[64];
    size_t kl = unhex(jstr(v, "key_hex"), key, sizeof key);
    const char *tok = jstr(v, "compact_serialization");

    cJSON *p = NULL;
    ASSERT_INT_EQ(tn__jws_hs256_verify(key, kl, tok, &p), TN__JWT_OK);
    ASSERT_STR_EQ(jstr(p, "iss"), "joe");
    ASSERT_INT_EQ(cJSON_GetObjectItemCaseSensitive(p, "exp")->valuedouble, A1_EXP);
    ASSERT(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "http://example.com/is_root")));
    cJSON_Delete(p);
    ASSERT_INT_EQ(tn__jws_hs256_verify(key, kl, tok, NULL), TN__JWT_OK);

    /* The time layer: valid before exp (plus leeway), expired from then on. */
    ASSERT_INT_EQ(tn__jwt_verify_payload(key, kl, tok, A1_EXP - 1, 0, &p), TN__JWT_OK);
    ASSERT_STR_EQ(jstr(p, "iss"), "joe");
    cJSON_Delete(p);
    ASSERT_INT_EQ(tn__jwt_verify_payload(key, kl, tok, 0, 0, NULL), TN__JWT_OK);
    ASSERT_INT_EQ(tn__jwt_verify_payload(key, kl, tok, A1_EXP, 0, &p), TN__JWT_EEXPIRED);
    ASSERT(p == NULL);
    ASSERT_INT_EQ(tn__jwt_verify_payload(key, kl, tok, A1_EXP + 29, 30, NULL), TN__JWT_OK);
    ASSERT_INT_EQ(tn__jwt_verify_payload(key, kl, tok, A1_EXP + 30, 30, NULL), TN__JWT_EEXPIRED);
    ASSERT_INT_EQ(tn__jwt_verify_payload(key, kl, tok, 1750000000, 30, NULL), TN__JWT_EEXPIRED);

    /* The full check wants our claim set (sub, jti, iat, nbf), which A.1 lacks. */
    tn__jwt_claims c;
    ASSERT_INT_EQ(tn__jwt_verify(key, kl, tok, A1_EXP - 1, 30, &c), TN__JWT_ECLAIMS);
    ASSERT_INT_EQ(c.sub[0], 0);
    ASSERT_INT_EQ(tn__jwt_verify(key, kl, tok, A1_EXP + 30, 30, &c), TN__JWT_EEXPIRED);
    cJSON_Delete(v);
}

/* ---- constructed-cases.json ------------------------------------------------- */

TEST(jwt_constructed_cases) {
    cJSON *a1 = load_json("jwt-hs256/rfc7515-a1.json");
    cJSON *v = load_json("jwt-hs256/constructed-cases.json");
    ASSERT_STR_EQ(jstr(v, "key_hex"), jstr(a1, "key_hex"));
    unsigned char key[64];
    size_t kl = unhex(jstr(v, "key_hex"), key, sizeof key);
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(v, "cases");
    ASSERT(cJSON_IsArray(cases));
    int n = 0, accepts = 0, rejects = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *id = jstr(c, "id"), *tok = jstr(c, "token"), *exp = jstr(c, "expected");
        int accept = strcmp(exp, "accept") == 0;
        ASSERT(accept || strcmp(exp, "reject") == 0);
        /* Signature layer, and the time layer at a moment the A.1 token is valid. */
        int r1 = tn__jws_hs256_verify(key, kl, tok, NULL);
        int r2 = tn__jwt_verify_payload(key, kl, tok, A1_EXP - 1, 30, NULL);
        if ((r1 == 0) != accept || (r2 == 0) != accept)
            TN_FAIL_("%s: expected %s, got %s / %s", id, exp, tn__jwt_errname(r1),
                     tn__jwt_errname(r2));
        accepts += accept;
        rejects += !accept;
        n++;
    }
    ASSERT_INT_EQ(n, cJSON_GetArraySize(cases));
    /* The README: 18 cases, 1 accept and 17 reject. */
    ASSERT_INT_EQ(n, 18);
    ASSERT_INT_EQ(accepts, 1);
    ASSERT_INT_EQ(rejects, 17);
    cJSON_Delete(v);
    cJSON_Delete(a1);
}

/*
 * Rejected for the right reason: alg-none with the original MAC would also
 * fail on the MAC, so only the code shows that the alg pin did its job.
 * The codes are ours (written from each case's description), not the file's.
 */
TEST(jwt_constructed_reasons) {
    static const struct { const char *id; int rc; } want[] = {
        {"valid-rfc7515-a1", TN__JWT_OK},
        {"alg-none-empty-signature", TN__JWT_EALG},
        {"alg-none-original-signature", TN__JWT_EALG},
        {"alg-none-crlf-header", TN__JWT_EALG},
        {"alg-None-casing", TN__JWT_EALG},
        {"alg-NONE-casing", TN__JWT_EALG},
        {"alg-nOnE-casing", TN__JWT_EALG},
        {"alg-hs512-same-signature", TN__JWT_EALG},
        {"alg-hs512-valid-hs512-signature", TN__JWT_EALG},
        {"tampered-payload-iss", TN__JWT_ESIG},
        {"tampered-payload-exp", TN__JWT_ESIG},
        {"signature-stripped-empty", TN__JWT_ESIG},
        {"signature-stripped-two-segments", TN__JWT_EFORMAT},
        {"signature-bitflip", TN__JWT_ESIG},
        {"signature-truncated-16", TN__JWT_ESIG},
        {"signature-std-base64", TN__JWT_EFORMAT},
        {"signature-padded", TN__JWT_EFORMAT},
        {"wrong-key-ascii-k", TN__JWT_ESIG},
    };
    cJSON *v = load_json("jwt-hs256/constructed-cases.json");
    unsigned char key[64];
    size_t kl = unhex(jstr(v, "key_hex"), key, sizeof key);
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(v, "cases");
    size_t seen = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *id = jstr(c, "id");
        size_t i = 0;
        while (i < sizeof want / sizeof want[0] && strcmp(want[i].id, id) != 0) i++;
        if (i == sizeof want / sizeof want[0]) TN_FAIL_("no expected code for case %s", id);
        int rc = tn__jws_hs256_verify(key, kl, jstr(c, "token"), NULL);
        if (rc != want[i].rc)
            TN_FAIL_("%s: got %s, want %s", id, tn__jwt_errname(rc), tn__jwt_errname(want[i].rc));
        seen++;
    }
    ASSERT_INT_EQ(seen, sizeof want / sizeof want[0]);
    cJSON_Delete(v);
}

/* ---- our tokens --------------------------------------------------------------- */

static void decode_part(const char *tok, int which, char *out, size_t max) {
    const char *s = tok;
    for (int i = 0; i < which; i++) {
        s = strchr(s, '.');
        ASSERT(s != NULL);
        s++;
    }
    const char *e = strchr(s, '.');
    size_t len = e ? (size_t)(e - s) : strlen(s), n;
    ASSERT(len / 4 * 3 + 3 < max);
    ASSERT_INT_EQ(tn__b64url_decode(s, len, (unsigned char *)out, &n), 0);
    out[n] = '\0';
}

TEST(jwt_sign_exact_bytes) {
    init_key();
    tn__jwt_claims c = {.sub = "key_abc", .jti = "0123456789abcdef0123456789abcdef",
                        .iat = 1700000000, .nbf = 1700000000, .exp = 1700000900};
    char *tok = NULL, *tok2 = NULL;
    ASSERT_INT_EQ(tn__jwt_sign(test_key, sizeof test_key, &c, &tok), TN__JWT_OK);
    char part[512];
    decode_part(tok, 0, part, sizeof part);
    ASSERT_STR_EQ(part, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}");
    decode_part(tok, 1, part, sizeof part);
    ASSERT_STR_EQ(part, "{\"sub\":\"key_abc\",\"iat\":1700000000,\"nbf\":1700000000,"
                        "\"exp\":1700000900,\"jti\":\"0123456789abcdef0123456789abcdef\"}");
    /* The signature is HMAC-SHA256 of the first two parts, as RFC 7515 says. */
    char *want = make_token_n(test_key, sizeof test_key, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
                              part, strlen(part));
    ASSERT_STR_EQ(tok, want);
    ASSERT_INT_EQ(tn__jwt_sign(test_key, sizeof test_key, &c, &tok2), TN__JWT_OK);
    ASSERT_STR_EQ(tok, tok2);
    ASSERT(strstr(part, "tenant") == NULL);

    /* Integers up to 2^53 - 1 must survive exactly (no detour through %g). */
    c.exp = 9007199254740991;
    free(tok);
    ASSERT_INT_EQ(tn__jwt_sign(test_key, sizeof test_key, &c, &tok), TN__JWT_OK);
    decode_part(tok, 1, part, sizeof part);
    ASSERT(strstr(part, "\"exp\":9007199254740991,") != NULL);
    tn__jwt_claims out;
    ASSERT_INT_EQ(tn__jwt_verify(test_key, sizeof test_key, tok, NOW, 30, &out), TN__JWT_OK);
    ASSERT_INT_EQ(out.exp, 9007199254740991);
    free(tok);
    free(tok2);
    free(want);
}

TEST(jwt_round_trip) {
    init_key();
    tn__jwt_claims c, c2, out;
    ASSERT_INT_EQ(tn__jwt_claims_init(&c, "key_01HXYZ", 1700000000, 900), TN__JWT_OK);
    ASSERT_INT_EQ(tn__jwt_claims_init(&c2, "key_01HXYZ", 1700000000, 900), TN__JWT_OK);
    ASSERT_STR_EQ(c.sub, "key_01HXYZ");
    ASSERT_INT_EQ(c.iat, 1700000000);
    ASSERT_INT_EQ(c.nbf, 1700000000);
    ASSERT_INT_EQ(c.exp, 1700000900);
    ASSERT_INT_EQ(strlen(c.jti), 32);
    ASSERT_INT_EQ(strspn(c.jti, "0123456789abcdef"), 32);
    ASSERT(strcmp(c.jti, c2.jti) != 0);

    char *tok;
    ASSERT_INT_EQ(tn__jwt_sign(test_key, sizeof test_key, &c, &tok), TN__JWT_OK);
    ASSERT(strlen(tok) <= TN__JWT_MAX_LEN);
    ASSERT_INT_EQ(tn__jwt_verify(test_key, sizeof test_key, tok, 1700000000, 30, &out), TN__JWT_OK);
    ASSERT_STR_EQ(out.sub, c.sub);
    ASSERT_STR_EQ(out.jti, c.jti);
    ASSERT_INT_EQ(out.iat, c.iat);
    ASSERT_INT_EQ(out.nbf, c.nbf);
    ASSERT_INT_EQ(out.exp, c.exp);

    /* A sub of exactly 64 bytes round-trips; 65 is refused. */
    char sub[80];
    memset(sub, 'k', 64);
    sub[64] = '\0';
    free(tok);
    ASSERT_INT_EQ(tn__jwt_claims_init(&c, sub, 1700000000, 900), TN__JWT_OK);
    ASSERT_INT_EQ(tn__jwt_sign(test_key, sizeof test_key, &c, &tok), TN__JWT_OK);
    ASSERT_INT_EQ(tn__jwt_verify(test_key, sizeof test_key, tok, 1700000000, 0, &out), TN__JWT_OK);
    ASSERT_STR_EQ(out.sub, sub);
    free(tok);
    sub[64] = 'k';
    sub[65] = '\0';
    ASSERT_INT_EQ(tn__jwt_claims_init(&c, sub, 1700000000, 900), TN__JWT_EINVAL);
}

TEST(jwt_time_window) {
    init_key();
    tn__jwt_claims c = {.sub = "k", .jti = "j", .iat = 1000, .nbf = 1000, .exp = 2000}, out;
    char *tok;
    const unsigned char *k = test_key;
    ASSERT_INT_EQ(tn__jwt_sign(k, 32, &c, &tok), TN__JWT_OK);
    ASSERT_INT_EQ(tn__jwt_verify(k, 32, tok, 999, 0, &out), TN__JWT_ENOTYET);
    ASSERT_INT_EQ(out.sub[0], 0);
    ASSERT_INT_EQ(tn__jwt_verify(k, 32, tok, 1000, 0, &out), TN__JWT_OK);
    ASSERT_INT_EQ(tn__jwt_verify(k, 32, tok, 1999, 0, &out), TN__JWT_OK);
    ASSERT_INT_EQ(tn__jwt_verify(k, 32, tok, 2000, 0, &out), TN__JWT_EEXPIRED);
    ASSERT_INT_EQ(tn__jwt_verify(k, 32, tok, 970, 30, &out), TN__JWT_OK);
    ASSERT_INT_EQ(tn__jwt_verify(k, 32, tok, 969, 30, &out), TN__JWT_ENOTYET);
    ASSERT_INT_EQ(tn__jwt_verify(k, 32, tok, 2029, 30, &out), TN__JWT_OK);
    ASSERT_INT_EQ(tn__jwt_verify(k, 32, tok, 2030, 30, &out), TN__JWT_EEXPIRED);
    ASSERT_INT_EQ(tn__jwt_verify(k, 32, tok, INT64_MAX, 30, &out), TN__JWT_EEXPIRED);
    ASSERT_INT_EQ(tn__jwt_verify(k, 32, tok, INT64_MIN, 30, &out), TN__JWT_ENOTYET);
    ASSERT_INT_EQ(tn__jwt_verify(k, 32, tok, 1500, -1, &out), TN__JWT_EINVAL);
    free(tok);

    /* iat in the future (beyond leeway) is refused even when nbf allows it. */
    c.iat = 1500;
    ASSERT_INT_EQ(tn__jwt_sign(k, 32, &c, &tok), TN__JWT_OK);
    ASSERT_INT_EQ(tn__jwt_verify(k, 32, tok, 1469, 30, &out), TN__JWT_ENOTYET);
    ASSERT_INT_EQ(tn__jwt_verify(k, 32, tok, 1470, 30, &out), TN__JWT_OK);
    free(tok);
}

TEST(jwt_tampered_and_wrong_key) {
    init_key();
    tn__jwt_claims c = {.sub = "key_abc", .jti = "j1", .iat = 1700000000, .nbf = 1700000000,
                        .exp = 1700000900}, out;
    char *tok;
    ASSERT_INT_EQ(tn__jwt_sign(test_key, 32, &c, &tok), TN__JWT_OK);
    ASSERT_INT_EQ(tn__jwt_verify(test_key, 32, tok, NOW, 30, &out), TN__JWT_OK);

    unsigned char other[32];
    memcpy(other, test_key, 32);
    other[31] ^= 1;
    ASSERT_INT_EQ(tn__jwt_verify(other, 32, tok, NOW, 30, &out), TN__JWT_ESIG);
    /*
     * A longer key with the right prefix is a different key.  (Not a zero
     * byte: HMAC pads short keys with zeros, so key and key||00 are one key.)
     */
    unsigned char longer[33];
    memcpy(longer, test_key, 32);
    longer[32] = 1;
    ASSERT_INT_EQ(tn__jwt_verify(longer, 33, tok, NOW, 30, &out), TN__JWT_ESIG);
    ASSERT_INT_EQ(tn__jwt_verify(test_key, 31, tok, NOW, 30, &out), TN__JWT_EKEY);
    ASSERT_INT_EQ(tn__jwt_verify(NULL, 32, tok, NOW, 30, &out), TN__JWT_EINVAL);
    ASSERT_INT_EQ(tn__jwt_verify(test_key, 32, NULL, NOW, 30, &out), TN__JWT_EINVAL);
    ASSERT_INT_EQ(tn__jwt_verify(test_key, 32, tok, NOW, 30, NULL), TN__JWT_EINVAL);

    /* Swap in a different, well-formed header or payload under the old MAC. */
    const char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
    char *forged = make_token("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"x\":1}",
                              "{\"sub\":\"admin\",\"iat\":1700000000,\"nbf\":1700000000,"
                              "\"exp\":1700000900,\"jti\":\"j1\"}");
    char buf[1024];
    const char *f1 = strchr(forged, '.');
    snprintf(buf, sizeof buf, "%.*s%s", (int)(f1 - forged), forged, d1);
    ASSERT_INT_EQ(tn__jwt_verify(test_key, 32, buf, NOW, 30, &out), TN__JWT_ESIG);
    const char *f2 = strchr(f1 + 1, '.');
    snprintf(buf, sizeof buf, "%.*s%.*s%s", (int)(d1 - tok), tok, (int)(f2 - f1), f1, d2);
    ASSERT_INT_EQ(tn__jwt_verify(test_key, 32, buf, NOW, 30, &out), TN__JWT_ESIG);
    /* The other token's (valid) MAC on our header and payload. */
    snprintf(buf, sizeof buf, "%.*s%s", (int)(d2 - tok), tok, f2);
    ASSERT_INT_EQ(tn__jwt_verify(test_key, 32, buf, NOW, 30, &out), TN__JWT_ESIG);
    free(forged);

    /*
     * Every single-character change anywhere is refused: the MAC covers the
     * text of the first two parts, and strict base64url gives the signature
     * exactly one spelling.
     */
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";
    size_t len = strlen(tok);
    for (size_t i = 0; i < len; i++) {
        char saved = tok[i];
        for (const char *a = alphabet; *a; a++) {
            if (*a == saved) continue;
            tok[i] = *a;
            int rc = tn__jwt_verify(test_key, 32, tok, NOW, 30, &out);
            if (rc == TN__JWT_OK) TN_FAIL_("accepted with byte %zu changed to '%c'", i, *a);
        }
        tok[i] = saved;
    }
    /* Every proper prefix is refused, and so is a cut at a NUL. */
    for (size_t i = 0; i < len; i++) {
        char saved = tok[i];
        tok[i] = '\0';
        ASSERT(tn__jwt_verify(test_key, 32, tok, NOW, 30, &out) != TN__JWT_OK);
        tok[i] = saved;
    }
    ASSERT_INT_EQ(tn__jwt_verify(test_key, 32, tok, NOW, 30, &out), TN__JWT_OK);
    free(tok);
}

/* Tokens with a valid MAC but a header we must refuse. */
TEST(jwt_header_rules) {
    static const struct { const char *hdr; int rc; } cases[] = {
        {"{\"alg\":\"HS256\",\"typ\":\"JWT\"}", TN__JWT_OK},
        {"{\"alg\":\"HS256\"}", TN__JWT_OK},
        {"{\"typ\":\"JWT\"}", TN__JWT_EALG},
        {"{\"alg\":null}", TN__JWT_EALG},
        {"{\"alg\":256}", TN__JWT_EALG},
        {"{\"alg\":[\"HS256\"]}", TN__JWT_EALG},
        {"{\"alg\":\"none\"}", TN__JWT_EALG},
        {"{\"alg\":\"HS512\"}", TN__JWT_EALG},
        {"{\"alg\":\"RS256\"}", TN__JWT_EALG},
        {"{\"alg\":\"ES256\"}", TN__JWT_EALG},
        {"{\"alg\":\"hs256\"}", TN__JWT_EALG},
        {"{\"alg\":\"HS256 \"}", TN__JWT_EALG},
        {"{\"alg\":\"\"}", TN__JWT_EALG},
        {"{\"ALG\":\"HS256\"}", TN__JWT_EALG},
        {"{\"alg\":\"HS256\\u0000\"}", TN__JWT_EHEADER},
        {"{\"alg\":\"HS256\",\"alg\":\"none\"}", TN__JWT_EHEADER},
        {"{\"alg\":\"none\",\"alg\":\"HS256\"}", TN__JWT_EHEADER},
        {"{\"alg\":\"HS256\",\"typ\":\"jwt\"}", TN__JWT_EHEADER},
        {"{\"alg\":\"HS256\",\"typ\":\"JWS\"}", TN__JWT_EHEADER},
        {"{\"alg\":\"HS256\",\"typ\":1}", TN__JWT_EHEADER},
        {"{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", TN__JWT_EHEADER},
        {"{\"alg\":\"HS256\",\"crit\":[]}", TN__JWT_EHEADER},
        {"{\"alg\":\"HS256\"} ", TN__JWT_OK},
        {"{\"alg\":\"HS256\"}x", TN__JWT_EHEADER},
        {"{\"alg\":\"HS256\"}{}", TN__JWT_EHEADER},
        {"[\"HS256\"]", TN__JWT_EHEADER},
        {"\"HS256\"", TN__JWT_EHEADER},
        {"{", TN__JWT_EHEADER},
        {"null", TN__JWT_EHEADER},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *tok = make_token(cases[i].hdr, GOOD_PAYLOAD);
        int rc = tn__jws_hs256_verify(test_key, 32, tok, NULL);
        if (rc != cases[i].rc)
            TN_FAIL_("header %s: got %s, want %s", cases[i].hdr, tn__jwt_errname(rc),
                     tn__jwt_errname(cases[i].rc));
        free(tok);
    }
    /* A NUL byte inside the decoded header. */
    static const char nul_hdr[] = "{\"alg\":\"HS256\"}\0junk";
    init_key();
    size_t hb = tn__b64url_encoded_len(sizeof nul_hdr - 1);
    char *ok = make_token(std_header, GOOD_PAYLOAD);
    char *tok = malloc(hb + strlen(ok) + 1);
    ASSERT(tok != NULL);
    tn__b64url_encode((const unsigned char *)nul_hdr, sizeof nul_hdr - 1, tok);
    memcpy(tok + hb, strchr(ok, '.'), strlen(strchr(ok, '.')) + 1);
    ASSERT_INT_EQ(tn__jws_hs256_verify(test_key, 32, tok, NULL), TN__JWT_EHEADER);
    free(tok);
    free(ok);
}

/* Tokens with a valid MAC and header but a payload tn__jwt_verify must refuse. */
TEST(jwt_payload_rules) {
#define P(s) "{\"sub\":\"key_abc\",\"jti\":\"j1\"," s "}"
#define T3 "\"iat\":1700000000,\"nbf\":1700000000,\"exp\":1700000900"
    static const struct { const char *pay; int rc; } cases[] = {
        {P(T3), TN__JWT_OK},
        {"{\"iat\":1700000000,\"nbf\":1700000000,\"exp\":1700000900,\"jti\":\"j1\"}", TN__JWT_ECLAIMS},
        {"{\"sub\":\"key_abc\"," T3 "}", TN__JWT_ECLAIMS},
        {P("\"nbf\":1700000000,\"exp\":1700000900"), TN__JWT_ECLAIMS},
        {P("\"iat\":1700000000,\"exp\":1700000900"), TN__JWT_ECLAIMS},
        {P("\"iat\":1700000000,\"nbf\":1700000000"), TN__JWT_ECLAIMS},
        {P("\"iat\":1700000000,\"nbf\":1700000000,\"exp\":\"1700000900\""), TN__JWT_ECLAIMS},
        {P("\"iat\":1700000000,\"nbf\":1700000000,\"exp\":null"), TN__JWT_ECLAIMS},
        {P("\"iat\":1700000000,\"nbf\":1700000000,\"exp\":1700000900.5"), TN__JWT_ECLAIMS},
        {P("\"iat\":1700000000,\"nbf\":1700000000,\"exp\":1.7000009e9"), TN__JWT_OK},
        {P("\"iat\":1700000000,\"nbf\":1700000000,\"exp\":1e300"), TN__JWT_ECLAIMS},
        {P("\"iat\":1700000000,\"nbf\":1700000000,\"exp\":1e999"), TN__JWT_ECLAIMS},
        {P("\"iat\":1700000000,\"nbf\":1700000000,\"exp\":9007199254740991"), TN__JWT_OK},
        {P("\"iat\":1700000000,\"nbf\":1700000000,\"exp\":9007199254740992"), TN__JWT_ECLAIMS},
        /* Rounds to 2^53 as a double: must not sneak back into range. */
        {P("\"iat\":1700000000,\"nbf\":1700000000,\"exp\":9007199254740993"), TN__JWT_ECLAIMS},
        {P("\"iat\":-1,\"nbf\":1700000000,\"exp\":1700000900"), TN__JWT_ECLAIMS},
        {P("\"iat\":1700000000,\"nbf\":true,\"exp\":1700000900"), TN__JWT_ECLAIMS},
        {P(T3 ",\"exp\":4102444800"), TN__JWT_EPAYLOAD},
        {"{\"sub\":\"key_abc\",\"sub\":\"other\",\"jti\":\"j1\"," T3 "}", TN__JWT_EPAYLOAD},
        {"{\"sub\":1,\"jti\":\"j1\"," T3 "}", TN__JWT_ECLAIMS},
        {"{\"sub\":\"\",\"jti\":\"j1\"," T3 "}", TN__JWT_ECLAIMS},
        {"{\"sub\":\"key abc\",\"jti\":\"j1\"," T3 "}", TN__JWT_ECLAIMS},
        {"{\"sub\":\"key\\nabc\",\"jti\":\"j1\"," T3 "}", TN__JWT_ECLAIMS},
        {"{\"sub\":\"k\\u00e9y\",\"jti\":\"j1\"," T3 "}", TN__JWT_ECLAIMS},
        {"{\"sub\":\"key\\u0000abc\",\"jti\":\"j1\"," T3 "}", TN__JWT_EPAYLOAD},
        {"{\"sub\":\"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk\","
         "\"jti\":\"j1\"," T3 "}", TN__JWT_ECLAIMS},
        {"{\"sub\":\"key_abc\",\"jti\":\"012345678901234567890123456789012\"," T3 "}",
         TN__JWT_ECLAIMS},
        {"{\"sub\":\"key_abc\",\"jti\":7," T3 "}", TN__JWT_ECLAIMS},
        {"{\"sub\":\"key_abc\",\"jti\":\"j1\"," T3 ",\"tenant\":\"x\"}", TN__JWT_OK},
        {P(T3) " ", TN__JWT_OK},
        {P(T3) "x", TN__JWT_EPAYLOAD},
        {"[" P(T3) "]", TN__JWT_EPAYLOAD},
        {"\"" T3 "\"", TN__JWT_EPAYLOAD},
        {"1700000900", TN__JWT_EPAYLOAD},
        {"{}", TN__JWT_ECLAIMS},
        {"{", TN__JWT_EPAYLOAD},
    };
#undef P
#undef T3
    tn__jwt_claims out;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *tok = make_token(std_header, cases[i].pay);
        int rc = tn__jwt_verify(test_key, 32, tok, NOW, 30, &out);
        if (rc != cases[i].rc)
            TN_FAIL_("payload %s: got %s, want %s", cases[i].pay, tn__jwt_errname(rc),
                     tn__jwt_errname(cases[i].rc));
        free(tok);
    }
    /* A NUL byte inside the decoded payload, correctly signed. */
    static const char nul_pay[] = "{\"sub\":\"key_abc\",\"jti\":\"j1\",\"iat\":1700000000,"
                                  "\"nbf\":1700000000,\"exp\":1700000900}\0{}";
    char *tok = make_token_n(test_key, 32, std_header, nul_pay, sizeof nul_pay - 1);
    ASSERT_INT_EQ(tn__jwt_verify(test_key, 32, tok, NOW, 30, &out), TN__JWT_EPAYLOAD);
    free(tok);
    /* A deeply nested payload is refused without blowing the stack. */
    char deep[3001];
    memset(deep, '[', 3000);
    deep[3000] = '\0';
    tok = make_token(std_header, deep);
    ASSERT(tn__jwt_verify(test_key, 32, tok, NOW, 30, &out) != TN__JWT_OK);
    free(tok);
}

TEST(jwt_garbage_inputs) {
    init_key();
    static const struct { const char *tok; int rc; } cases[] = {
        {"", TN__JWT_EFORMAT},
        {".", TN__JWT_EFORMAT},
        {"..", TN__JWT_EFORMAT},
        {"...", TN__JWT_EFORMAT},
        {"abc", TN__JWT_EFORMAT},
        {"a.b", TN__JWT_EFORMAT},
        {"a.b.c.d", TN__JWT_EFORMAT},
        {"eyJhbGciOiJIUzI1NiJ9..", TN__JWT_EFORMAT},
        {".eyJhbGciOiJIUzI1NiJ9.", TN__JWT_EFORMAT},
        {"a.b.c", TN__JWT_EFORMAT},          /* length 1 mod 4 */
        {"eyJhbGciOiJIUzI1NiJ9=.e30.", TN__JWT_EFORMAT},
        {"e30.e30.", TN__JWT_EALG},          /* {} has no alg */
        {"eyJhbGciOiJIUzI1NiJ9.e30.", TN__JWT_ESIG},
        {"eyJhbGciOiJIUzI1NiJ9.e30.AAAA", TN__JWT_ESIG},
        {" eyJhbGciOiJIUzI1NiJ9.e30.", TN__JWT_EFORMAT},
        {"Bearer eyJhbGciOiJIUzI1NiJ9.e30.", TN__JWT_EFORMAT},
        {"\xff\xfe.\x80.\x01", TN__JWT_EFORMAT},
    };
    tn__jwt_claims out;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = tn__jwt_verify(test_key, 32, cases[i].tok, NOW, 30, &out);
        if (rc != cases[i].rc)
            TN_FAIL_("token \"%s\": got %s, want %s", cases[i].tok, tn__jwt_errname(rc),
                     tn__jwt_errname(cases[i].rc));
    }

    /* Length bound: a valid token of exactly TN__JWT_MAX_LEN passes, one more byte does not. */
    size_t fixed = tn__b64url_encoded_len(strlen(std_header)) + 2 + 43;
    char *pay = malloc(TN__JWT_MAX_LEN);
    ASSERT(pay != NULL);
    char *tok = NULL;
    for (size_t pad = 0; pad < TN__JWT_MAX_LEN; pad++) {
        snprintf(pay, TN__JWT_MAX_LEN, "{\"sub\":\"key_abc\",\"jti\":\"j1\",\"iat\":1700000000,"
                 "\"nbf\":1700000000,\"exp\":1700000900,\"pad\":\"%*s\"}", (int)pad, "");
        if (fixed + tn__b64url_encoded_len(strlen(pay)) == TN__JWT_MAX_LEN) {
            tok = make_token(std_header, pay);
            break;
        }
    }
    ASSERT(tok != NULL);
    ASSERT_INT_EQ(strlen(tok), TN__JWT_MAX_LEN);
    ASSERT_INT_EQ(tn__jwt_verify(test_key, 32, tok, NOW, 30, &out), TN__JWT_OK);
    char *big = malloc(TN__JWT_MAX_LEN + 2);
    ASSERT(big != NULL);
    memcpy(big, tok, TN__JWT_MAX_LEN);
    big[TN__JWT_MAX_LEN] = 'A';
    big[TN__JWT_MAX_LEN + 1] = '\0';
    ASSERT_INT_EQ(tn__jwt_verify(test_key, 32, big, NOW, 30, &out), TN__JWT_ETOOBIG);
    free(big);
    free(tok);
    free(pay);

    /* A huge token is refused on length without reading it all. */
    size_t huge = 1u << 20;
    big = malloc(huge + 1);
    ASSERT(big != NULL);
    memset(big, 'A', huge);
    big[100] = big[200] = '.';
    big[huge] = '\0';
    ASSERT_INT_EQ(tn__jwt_verify(test_key, 32, big, NOW, 30, &out), TN__JWT_ETOOBIG);
    ASSERT_INT_EQ(tn__jws_hs256_verify(test_key, 32, big, NULL), TN__JWT_ETOOBIG);
    free(big);

    /* Pseudo-random bytes (fixed seed): never accepted, never a crash. */
    uint32_t x = 12345;
    char buf[300];
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)(round % 299);
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            uint32_t r = x >> 16;
            if (r % 5 == 0)
                buf[i] = '.';
            else if (r % 7 == 0)
                buf[i] = (char)(r >> 3 & 0xff);
            else
                buf[i] = "eyJ0AZaz09-_"[r % 12];
            if (buf[i] == '\0') buf[i] = 'Q';
        }
        buf[n] = '\0';
        ASSERT(tn__jwt_verify(test_key, 32, buf, NOW, 30, &out) != TN__JWT_OK);
    }
}

TEST(jwt_sign_rejects_bad_claims) {
    init_key();
    char *tok = (char *)1;
    tn__jwt_claims good = {.sub = "k", .jti = "j", .iat = 1, .nbf = 1, .exp = 2}, c;
    ASSERT_INT_EQ(tn__jwt_sign(test_key, 32, &good, &tok), TN__JWT_OK);
    free(tok);
    ASSERT_INT_EQ(tn__jwt_sign(test_key, 31, &good, &tok), TN__JWT_EKEY);
    ASSERT(tok == NULL);
    ASSERT_INT_EQ(tn__jwt_sign(NULL, 32, &good, &tok), TN__JWT_EINVAL);
    ASSERT_INT_EQ(tn__jwt_sign(test_key, 32, NULL, &tok), TN__JWT_EINVAL);
    ASSERT_INT_EQ(tn__jwt_sign(test_key, 32, &good, NULL), TN__JWT_EINVAL);
    c = good; c.sub[0] = '\0';
    ASSERT_INT_EQ(tn__jwt_sign(test_key, 32, &c, &tok), TN__JWT_EINVAL);
    c = good; memcpy(c.sub, "a b", 4);
    ASSERT_INT_EQ(tn__jwt_sign(test_key, 32, &c, &tok), TN__JWT_EINVAL);
    c = good; memset(c.sub, 'k', sizeof c.sub); /* no NUL within the array */
    ASSERT_INT_EQ(tn__jwt_sign(test_key, 32, &c, &tok), TN__JWT_EINVAL);
    c = good; c.jti[0] = '\0';
    ASSERT_INT_EQ(tn__jwt_sign(test_key, 32, &c, &tok), TN__JWT_EINVAL);
    c = good; c.exp = 1;
    ASSERT_INT_EQ(tn__jwt_sign(test_key, 32, &c, &tok), TN__JWT_EINVAL);
    c = good; c.iat = -1;
    ASSERT_INT_EQ(tn__jwt_sign(test_key, 32, &c, &tok), TN__JWT_EINVAL);
    c = good; c.exp = 9007199254740992;
    ASSERT_INT_EQ(tn__jwt_sign(test_key, 32, &c, &tok), TN__JWT_EINVAL);
    c = good; c.exp = INT64_MAX;
    ASSERT_INT_EQ(tn__jwt_sign(test_key, 32, &c, &tok), TN__JWT_EINVAL);
    ASSERT(tok == NULL);
    ASSERT_INT_EQ(tn__jwt_claims_init(&c, "k", 1, 0), TN__JWT_EINVAL);
    ASSERT_INT_EQ(tn__jwt_claims_init(&c, "k", -5, 60), TN__JWT_EINVAL);
    ASSERT_INT_EQ(tn__jwt_claims_init(&c, "", 1, 60), TN__JWT_EINVAL);
    ASSERT_INT_EQ(tn__jwt_claims_init(&c, NULL, 1, 60), TN__JWT_EINVAL);
    ASSERT_STR_EQ(tn__jwt_errname(TN__JWT_ESIG), "TN__JWT_ESIG");
    ASSERT_STR_EQ(tn__jwt_errname(TN__JWT_OK), "TN__JWT_OK");
    ASSERT_STR_EQ(tn__jwt_errname(42), "TN__JWT_?");
}
