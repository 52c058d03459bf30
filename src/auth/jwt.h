/*
 * jwt.h - HS256 JSON Web Tokens for the local HTTP API (POST /v1/auth).
 *
 * Wire format (RFC 7515 compact serialization, RFC 7519 claims):
 *   base64url(header) "." base64url(payload) "." base64url(HMAC-SHA256(key, first two parts))
 * base64url is strict and unpadded.  Our tokens have the header
 * {"alg":"HS256","typ":"JWT"} and the payload
 * {"sub":<api key id>,"iat":N,"nbf":N,"exp":N,"jti":<32 hex digits>}.
 * A token never names a tenant: the HTTP layer maps sub (the key id) to its
 * tenant through the store, so a token cannot outlive its key's revocation.
 *
 * Verification is layered so that foreign tokens (the RFC 7515 A.1 example,
 * which has iss/exp and no sub) can be checked as far as they go:
 *   tn__jws_hs256_verify   structure, header (alg pinned to HS256), MAC; no clock
 *   tn__jwt_verify_payload + exp (required), nbf and iat (optional) against now
 *   tn__jwt_verify         + our claim set: sub, jti, iat, nbf all required
 * The algorithm always comes from the caller, never from the header.
 *
 * Every failure has its own code for tests and the audit log; the HTTP layer
 * must answer all of them with the same 401 so a client learns nothing.
 * The key must be at least 32 bytes (RFC 7518 3.2: no shorter than the hash).
 * Nothing here keeps state; all functions are thread-safe.
 */
#ifndef TN_JWT_H
#define TN_JWT_H

#include <stddef.h>
#include <stdint.h>

struct cJSON;

/* Longest token accepted or produced, in bytes (excluding the NUL). */
#define TN__JWT_MAX_LEN 4096
/* Shortest HMAC key accepted. */
#define TN__JWT_MIN_KEY 32
#define TN__JWT_SUB_MAX 64
#define TN__JWT_JTI_MAX 32

/* X(name, value).  Append only; never renumber (codes may be in audit rows). */
#define TN__JWT_ERRORS(X)                                                        \
    X(OK, 0)        /* valid */                                                  \
    X(EINVAL, -1)   /* bad argument to sign/verify (NULL, negative leeway) */   \
    X(EKEY, -2)     /* key shorter than TN__JWT_MIN_KEY */                       \
    X(ETOOBIG, -3)  /* token longer than TN__JWT_MAX_LEN */                      \
    X(EFORMAT, -4)  /* not three parts, empty header/payload, bad base64url */   \
    X(EHEADER, -5)  /* header not a JSON object, typ not "JWT", crit, dups */    \
    X(EALG, -6)     /* alg missing, not a string, or not exactly "HS256" */      \
    X(ESIG, -7)     /* MAC missing, wrong length or mismatch */                  \
    X(EPAYLOAD, -8) /* payload not a JSON object, or duplicate names */          \
    X(ECLAIMS, -9)  /* a claim missing, of the wrong type or out of range */     \
    X(EEXPIRED, -10) /* now >= exp + leeway */                                   \
    X(ENOTYET, -11) /* now < nbf - leeway, or iat > now + leeway */              \
    X(ENOMEM, -12)                                                               \
    X(ESYS, -13)    /* libsodium failed to initialise (no random source) */

enum {
#define TN__JWT_ENUM_(name, value) TN__JWT_##name = value,
    TN__JWT_ERRORS(TN__JWT_ENUM_)
#undef TN__JWT_ENUM_
};

/* "TN__JWT_ESIG" for TN__JWT_ESIG; "TN__JWT_?" for an unknown code. */
const char *tn__jwt_errname(int rc);

typedef struct tn__jwt_claims {
    char sub[TN__JWT_SUB_MAX + 1]; /* API key id: 1-64 bytes of ASCII 0x21-0x7e */
    char jti[TN__JWT_JTI_MAX + 1]; /* token id: 1-32 bytes, same alphabet */
    int64_t iat, nbf, exp;         /* seconds since the epoch, 0 .. 2^53 - 1 */
} tn__jwt_claims;

/*
 * Fills c for a fresh token: iat = nbf = now, exp = now + ttl, and a random
 * 128-bit jti (libsodium randombytes) in hex.  ttl must be > 0.
 */
int tn__jwt_claims_init(tn__jwt_claims *c, const char *sub, int64_t now, int ttl);

/*
 * Signs {"alg":"HS256","typ":"JWT"} + c; *out is a malloc'd NUL-terminated
 * token the caller frees.  Deterministic: the same key and claims give the
 * same bytes.  TN__JWT_EINVAL when c does not satisfy the limits above.
 */
int tn__jwt_sign(const unsigned char *key, size_t keylen, const tn__jwt_claims *c, char **out);

/*
 * Checks structure, header and MAC only; the clock and the claims are not
 * looked at.  On success, and when payload is not NULL, *payload is the parsed
 * payload object (free with cJSON_Delete).  The MAC is compared in constant
 * time before the payload is decoded or parsed.
 */
int tn__jws_hs256_verify(const unsigned char *key, size_t keylen, const char *token,
                         struct cJSON **payload);

/*
 * tn__jws_hs256_verify plus the registered time claims: exp must be present;
 * exp, nbf and iat, when present, must be integers in 0 .. 2^53 - 1; valid when
 * nbf - leeway <= now < exp + leeway and iat <= now + leeway.  leeway >= 0.
 */
int tn__jwt_verify_payload(const unsigned char *key, size_t keylen, const char *token,
                           int64_t now, int leeway, struct cJSON **payload);

/* Full check of one of our tokens; *out is filled on success, zeroed on failure. */
int tn__jwt_verify(const unsigned char *key, size_t keylen, const char *token, int64_t now,
                   int leeway, tn__jwt_claims *out);

#endif
