/*
 * fuzz_jwt.c - libFuzzer target for HS256 token verification (src/jwt.c).
 *
 * The first input byte picks how the rest becomes a token:
 *   even   the bytes are the token itself (structure, base64url, header checks);
 *   odd    the bytes are "HEADER\nPAYLOAD" as raw JSON (or any bytes): they are
 *          base64url-encoded and signed here with key K1, so the fuzzer reaches
 *          the header, payload and claim checks behind the MAC;
 * and bits 1-7 give the leeway.  Time is fixed (NOW).
 * Invariants, for every token accepted under K1:
 *   - it verifies again to the same claims (verification keeps no state);
 *   - it is refused under K2 (a different 32-byte key);
 *   - its signed part re-signed with K2 verifies under K2 to the same claims
 *     and is refused under K1; when its claims are ones tn__jwt_sign would
 *     issue (exp > nbf), the same holds for a token signed from the claims;
 *   - tn__jwt_verify_payload accepts it too (the layers only add checks).
 */
#include "crypto.h"
#include "jwt.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1700000000

static const unsigned char K1[32] = "fuzz-key-one-0123456789abcdefghi";
static const unsigned char K2[32] = "fuzz-key-two-0123456789abcdefghi";

static void trap(const char *why, const char *tok) {
    fprintf(stderr, "fuzz_jwt: %s: \"%.300s\"\n", why, tok);
    abort();
}

static int same_claims(const tn__jwt_claims *a, const tn__jwt_claims *b) {
    return strcmp(a->sub, b->sub) == 0 && strcmp(a->jti, b->jti) == 0 && a->iat == b->iat &&
           a->nbf == b->nbf && a->exp == b->exp;
}

/* base64url(h) "." base64url(p) "." base64url(HMAC(K1, first two parts)). */
static char *sign_raw(const uint8_t *h, size_t hl, const uint8_t *p, size_t pl) {
    size_t a = tn__b64url_encoded_len(hl), b = tn__b64url_encoded_len(pl);
    size_t c = tn__b64url_encoded_len(TN_SHA256_LEN);
    char *tok = malloc(a + b + c + 3);
    if (!tok) return NULL;
    tn__b64url_encode(h, hl, tok);
    tok[a] = '.';
    tn__b64url_encode(p, pl, tok + a + 1);
    unsigned char mac[TN_SHA256_LEN];
    tn__hmac_sha256(K1, sizeof K1, tok, a + 1 + b, mac);
    tok[a + 1 + b] = '.';
    tn__b64url_encode(mac, sizeof mac, tok + a + b + 2);
    tok[a + b + c + 2] = '\0';
    return tok;
}

/* tok's first two parts signed with K2 instead (malloc'd), or NULL. */
static char *resign_k2(const char *tok) {
    const char *d2 = strrchr(tok, '.');
    if (!d2) return NULL;
    size_t sl = (size_t)(d2 - tok), c = tn__b64url_encoded_len(TN_SHA256_LEN);
    char *out = malloc(sl + c + 2);
    if (!out) return NULL;
    memcpy(out, tok, sl + 1);
    unsigned char mac[TN_SHA256_LEN];
    tn__hmac_sha256(K2, sizeof K2, tok, sl, mac);
    tn__b64url_encode(mac, sizeof mac, out + sl + 1);
    out[sl + 1 + c] = '\0';
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int leeway = data[0] >> 1;
    const uint8_t *rest = data + 1;
    size_t n = size - 1;
    char *tok;
    if (data[0] & 1) {
        const uint8_t *nl = memchr(rest, '\n', n);
        size_t hl = nl ? (size_t)(nl - rest) : n;
        tok = nl ? sign_raw(rest, hl, nl + 1, n - hl - 1) : sign_raw(rest, hl, NULL, 0);
    } else {
        tok = malloc(n + 1);
        if (tok) {
            memcpy(tok, rest, n);
            tok[n] = '\0';
        }
    }
    if (!tok) return 0;

    tn__jwt_claims c1, again, c2;
    int rc = tn__jwt_verify(K1, sizeof K1, tok, NOW, leeway, &c1);
    cJSON *p = NULL;
    int rcp = tn__jwt_verify_payload(K1, sizeof K1, tok, NOW, leeway, &p);
    cJSON_Delete(p);
    if (rc == TN__JWT_OK) {
        if (rcp != TN__JWT_OK) trap("verify accepts what verify_payload refuses", tok);
        if (tn__jwt_verify(K1, sizeof K1, tok, NOW, leeway, &again) != TN__JWT_OK ||
            !same_claims(&c1, &again))
            trap("a second verification disagrees", tok);
        if (tn__jwt_verify(K2, sizeof K2, tok, NOW, leeway, &c2) == TN__JWT_OK)
            trap("accepted under the wrong key", tok);
        /* The same signed part with a K2 signature: valid under K2 only. */
        char *tok2 = resign_k2(tok);
        if (!tok2) trap("an accepted token has no signed part", tok);
        if (tn__jwt_verify(K1, sizeof K1, tok2, NOW, leeway, &c2) == TN__JWT_OK)
            trap("a token signed with K2 passed under K1", tok2);
        if (tn__jwt_verify(K2, sizeof K2, tok2, NOW, leeway, &c2) != TN__JWT_OK ||
            !same_claims(&c1, &c2))
            trap("re-signed token does not verify to the same claims under K2", tok2);
        free(tok2);
        /* Claims we would issue ourselves (sign requires exp > nbf; verify does
         * not, and need not: only our key makes a valid MAC) survive a round trip. */
        if (c1.exp > c1.nbf) {
            if (tn__jwt_sign(K2, sizeof K2, &c1, &tok2) != TN__JWT_OK)
                trap("claims it accepted cannot be signed", tok);
            if (tn__jwt_verify(K1, sizeof K1, tok2, NOW, leeway, &c2) == TN__JWT_OK)
                trap("a token signed with K2 passed under K1", tok2);
            if (tn__jwt_verify(K2, sizeof K2, tok2, NOW, leeway, &c2) != TN__JWT_OK ||
                !same_claims(&c1, &c2))
                trap("re-signed claims do not verify to the same claims", tok2);
            free(tok2);
        }
    } else {
        for (size_t i = 0; i < sizeof c1; i++)
            if (((unsigned char *)&c1)[i]) trap("claims not zeroed on failure", tok);
    }
    if (tn__jws_hs256_verify(K2, sizeof K2, tok, NULL) == TN__JWT_OK && (data[0] & 1))
        trap("a token signed with K1 passed the MAC check under K2", tok);
    free(tok);
    return 0;
}
