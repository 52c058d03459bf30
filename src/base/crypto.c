/*
 * crypto.c - SHA-256, HMAC-SHA256, hex and base64url shared by the store (list
 * cursors, key hashes), the HTTP API (JWTs) and the sync engine (SigV4).
 *
 * The hashing is libsodium's, which every process loads anyway: a daemon that
 * checks a JWT on every request then never maps OpenSSL unless it syncs
 * (see src/lazylib.c).
 */
#include "crypto.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

void tn__sha256(const void *data, size_t len, unsigned char out[TN_SHA256_LEN]) {
    crypto_hash_sha256(out, data, len);
}

void tn__hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                     unsigned char out[TN_SHA256_LEN]) {
    /* Any key length is legal in HMAC (a longer one is hashed first), an empty
     * one too; memcpy wants a non-NULL pointer for it. */
    static const unsigned char nokey[1];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, keylen ? key : nokey, keylen);
    crypto_auth_hmacsha256_update(&st, data, len);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof st);
}

void tn__hex(const unsigned char *in, size_t len, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

void tn__sha256_hex(const void *data, size_t len, char out[2 * TN_SHA256_LEN + 1]) {
    unsigned char h[TN_SHA256_LEN];
    tn__sha256(data, len, h);
    tn__hex(h, sizeof h, out);
}

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t tn__b64url_encoded_len(size_t len) {
    return len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
}

void tn__b64url_encode(const unsigned char *in, size_t len, char *out) {
    size_t i = 0, o = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
        out[o++] = b64url[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
    }
    out[o] = '\0';
}

static int b64url_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

int tn__b64url_decode(const char *in, size_t len, unsigned char *out, size_t *outlen) {
    if (len % 4 == 1) return -1;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0) return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Left-over bits must be zero, or two strings would decode to one value. */
    if (acc != 0) return -1;
    *outlen = o;
    return 0;
}

int tn__ct_equal(const void *a, const void *b, size_t len) {
    return sodium_memcmp(a, b, len) == 0;
}

void tn__b64_std(const unsigned char *in, size_t len, char *out) {
    sodium_bin2base64(out, sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL), in, len,
                      sodium_base64_VARIANT_ORIGINAL);
}

void tn__key_hash(const unsigned char salt[TN__KEY_SALT_LEN], const char *key,
                  unsigned char out[TN__KEY_HASH_LEN]) {
    crypto_generichash(out, TN__KEY_HASH_LEN, (const unsigned char *)key, strlen(key), salt,
                       TN__KEY_SALT_LEN);
}
