/*
 * crypto.h - the few primitives every layer shares: SHA-256, HMAC-SHA256, hex,
 * base64url, and constant-time comparison, all on libsodium.  Nothing here
 * allocates except the *_alloc helpers.
 */
#ifndef TN_CRYPTO_H
#define TN_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define TN_SHA256_LEN 32

void tn__sha256(const void *data, size_t len, unsigned char out[TN_SHA256_LEN]);
void tn__hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                     unsigned char out[TN_SHA256_LEN]);
/* Lowercase hex of len bytes into out, which must hold 2*len+1 bytes. */
void tn__hex(const unsigned char *in, size_t len, char *out);
/* SHA-256 of data as 64 lowercase hex digits plus NUL. */
void tn__sha256_hex(const void *data, size_t len, char out[2 * TN_SHA256_LEN + 1]);

/* base64url without padding.  Encode writes 4*ceil(len/3) bytes at most plus NUL. */
size_t tn__b64url_encoded_len(size_t len);
void tn__b64url_encode(const unsigned char *in, size_t len, char *out);
/*
 * Decodes strict unpadded base64url: rejects '=', characters outside the
 * alphabet, a length of 1 mod 4, and non-zero trailing bits (so each value has
 * exactly one encoding).  out must hold len*3/4 bytes.  Returns 0 or -1.
 */
int tn__b64url_decode(const char *in, size_t len, unsigned char *out, size_t *outlen);


/* Standard base64 with padding of len bytes into out (4*ceil(len/3)+1 bytes). */
void tn__b64_std(const unsigned char *in, size_t len, char *out);

/* The stored form of a secret key: BLAKE2b-256 keyed with a 16-byte salt,
 * over the key's text.  Keys are 256 random bits, so a fast hash suffices. */
#define TN__KEY_SALT_LEN 16
#define TN__KEY_HASH_LEN 32
void tn__key_hash(const unsigned char salt[TN__KEY_SALT_LEN], const char *key,
                  unsigned char out[TN__KEY_HASH_LEN]);

/* Constant-time equality of two byte strings of the same length: 1 if equal. */
int tn__ct_equal(const void *a, const void *b, size_t len);

#endif
