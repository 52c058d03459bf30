/*
 * auth.h - tenant API keys, the tokens minted from them (and from operator
 * keys, src/operator.h), and the tenant settings (_tenant_settings: rate,
 * quotas, sync) the HTTP layer and the sync engine apply.
 *
 * API key format: "tnk_" <key id: 24 lowercase hex digits> "_" <secret: 43
 * base64url characters = 256 bits from libsodium's CSPRNG>.  The key id is
 * public (it names the key in listings, audit rows and tokens); only a keyed
 * BLAKE2b-256 of the whole key (key = a random 16-byte salt per API key) is
 * stored in _api_keys, and the check compares hashes in constant time.
 *
 * Tokens are HS256 JWTs (src/jwt.h) whose subject is the key id.  The signing
 * secret is 32 random bytes in <data dir>/jwt.key (mode 0600), never in the
 * database.  A token names no tenant: every request maps the key id to its
 * tenant through the store, and a revoked or expired key fails that lookup,
 * so revocation takes effect on the next request.
 *
 * Rotation issues a new key with the old one's tenant and scopes and cuts the
 * old key's lifetime down to now + overlap (default 14 days).
 *
 * Every function borrows a trusted connection; none keeps state between
 * calls except the tn__auth handle (read-only after tn__auth_open).
 */
#ifndef TN_AUTH_H
#define TN_AUTH_H

#include "tenantry.h"

#define TN__KEY_PREFIX "tnk_"
#define TN__KEY_ID_LEN 24
/* "tnk_" + id + "_" + 43 + NUL */
#define TN__API_KEY_LEN (4 + TN__KEY_ID_LEN + 1 + 43 + 1)
#define TN__OVERLAP_DEFAULT_S (14 * 24 * 3600)

enum {
    TN__SCOPE_ITEMS_READ = 1,
    TN__SCOPE_ITEMS_WRITE = 2,
    TN__SCOPE_FILES_READ = 4,
    TN__SCOPE_FILES_WRITE = 8,
    TN__SCOPE_ALL = 15
};
#define TN__SCOPES_TEXT_MAX 64

/* Parses scope names separated by spaces or commas into a mask.  TN_INVALID
 * on an unknown name or none at all. */
int tn__scopes_parse(const char *text, unsigned *mask);
/* The name of single scope bit `bit`, or NULL. */
const char *tn__scope_name(unsigned bit);
/* Space-separated names of mask into buf (TN__SCOPES_TEXT_MAX bytes). */
void tn__scopes_format(unsigned mask, char buf[TN__SCOPES_TEXT_MAX]);

/* Splits an API key into its id; 1 when the text has the key format. */
int tn__key_parse(const char *api_key, char id[TN__KEY_ID_LEN + 1]);

typedef struct tn__key_info {
    char key_id[TN__KEY_ID_LEN + 1];
    char tenant_id[37];
    char tenant_name[TN_TENANT_NAME_MAX + 1];
    unsigned scopes;
    int64_t created_at, expires_at, revoked_at; /* ms; 0 = never / live */
    int64_t max_items, max_file_bytes;          /* tenant quotas; -1 = none */
    double rate_limit, burst;                   /* tenant rate; 0 = the server's */
    /* Set for a request made with an operator token (src/operator.h): the
     * operator acting in this tenant; key_id then holds the operator id too. */
    char operator_id[TN__KEY_ID_LEN + 1];
} tn__key_info;

typedef int (*tn__key_fn)(const tn__key_info *k, void *arg); /* non-zero stops */

/* A new key for the tenant with id tenant_id; expires_at 0 = never.  The key
 * text (shown once) goes to key. */
int tn__key_create(tn_store *st, const char *tenant_id, unsigned scopes, int64_t expires_at,
                   tn__key_info *out, char key[TN__API_KEY_LEN]);
/* Every key of a tenant (revoked and expired ones too), oldest first. */
int tn__key_list(tn_store *st, const char *tenant_id, tn__key_fn fn, void *arg);
/* Issues a replacement for a live key; the old key stays valid for
 * overlap_ms more (0: it ends now).  new_expires_at 0 = never.  *old_expires
 * gets the old key's new end.  TN_NOTFOUND for an absent, revoked or
 * expired key. */
int tn__key_rotate(tn_store *st, const char *key_id, int64_t overlap_ms, int64_t new_expires_at,
                   tn__key_info *out, char key[TN__API_KEY_LEN], int64_t *old_expires);
/* Revokes at once.  TN_NOTFOUND for an absent or already revoked key. */
int tn__key_revoke(tn_store *st, const char *key_id);
/* Metadata of a key by id, whatever its state (admin use). */
int tn__key_get(tn_store *st, const char *key_id, tn__key_info *out);

/* The caller of a request.  TN_DENIED for a wrong, revoked or expired key;
 * *why gets a short reason for the audit log (never shown to the client). */
int tn__key_verify(tn_store *st, const char *api_key, tn__key_info *out, const char **why);
/* The live key with this id (a token's subject).  TN_DENIED otherwise. */
int tn__key_lookup(tn_store *st, const char *key_id, tn__key_info *out, const char **why);

/* ---- secrets shared by API keys and operator keys --------------------------- */

#define TN__SALT_LEN 16
#define TN__HASH_LEN 32
/* A fresh key "<prefix (4 chars)>" <id> "_" <secret> with a random salt and the
 * keyed hash of the whole text. */
int tn__secret_new(const char *prefix, char key[TN__API_KEY_LEN], char id[TN__KEY_ID_LEN + 1],
                   unsigned char salt[TN__SALT_LEN], unsigned char hash[TN__HASH_LEN]);
/* 1 when key hashes to hash under salt (constant-time compare). */
int tn__secret_check(const char *key, const unsigned char salt[TN__SALT_LEN],
                     const unsigned char hash[TN__HASH_LEN]);
/* Splits "<prefix>" <24 hex> "_" <43 chars> into its id; 1 when it has that form. */
int tn__secret_parse(const char *prefix, const char *key, char id[TN__KEY_ID_LEN + 1]);
/* 1 when s is TN__KEY_ID_LEN lowercase hex digits. */
int tn__key_id_valid(const char *s);

/* ---- tokens --------------------------------------------------------------- */

typedef struct tn__auth tn__auth;

/* Loads <dir>/jwt.key, creating it (32 random bytes, mode 0600, atomically)
 * when absent.  Refuses a key file readable by group or others. */
int tn__auth_open(tn_store *st, tn__auth **out);
void tn__auth_close(tn__auth *a);
/* A token for key_id valid for ttl seconds; *token is malloc'd. */
int tn__token_mint(tn__auth *a, const char *key_id, int ttl, char **token);
/* The same with any subject; the token's jti goes to jti (33 bytes). */
int tn__token_mint_sub(tn__auth *a, const char *sub, int ttl, char jti[33], char **token);
/* Verifies the token and looks its key up (an API key, or for an operator
 * token its token row, operator and grant).  TN_DENIED on any failure. */
int tn__token_verify(tn__auth *a, const char *token, tn__key_info *out, const char **why);
tn_store *tn__auth_store(tn__auth *a);

/* ---- tenant settings and audit -------------------------------------------- */

/* A tenant's settings (_tenant_settings); every one has a "default" value
 * that means the server's or the engine's own setting applies. */
typedef struct tn__tenant_settings {
    double rate_limit, burst;          /* requests/s and bucket size; 0 = default */
    int64_t max_items, max_file_bytes; /* quotas; -1 = none */
    int sync_enabled;                  /* 1 on (default), 0 off: rows stay queued */
    int sync_priority;                 /* 1..100 (default 1): weight in the round robin */
    int tombstone_days;                /* 1..3650; 0 = the engine's TTL */
} tn__tenant_settings;

enum {
    TN__SET_RATE = 1, TN__SET_BURST = 2, TN__SET_MAX_ITEMS = 4, TN__SET_MAX_FILE_BYTES = 8,
    TN__SET_SYNC = 16, TN__SET_PRIORITY = 32, TN__SET_TOMBSTONE = 64, TN__SET_ALL = 127
};
#define TN__PRIORITY_MAX 100
#define TN__TOMBSTONE_DAYS_MAX 3650

void tn__tenant_settings_default(tn__tenant_settings *s);
/* 1 when every field of s is in range. */
int tn__tenant_settings_valid(const tn__tenant_settings *s);
int tn__tenant_settings_get(tn_store *st, const char *tenant_id, tn__tenant_settings *out);
/* Sets the fields of v named in mask, in one transaction with its audit event
 * (tenant.settings, actor "admin"); *out (optional) gets the result.
 * TN_INVALID when a field is out of range (nothing written). */
int tn__tenant_settings_update(tn_store *st, const char *tenant_id, const tn__tenant_settings *v,
                               unsigned mask, tn__tenant_settings *out);

/* Quotas (the max_items and max_file_bytes settings); -1 = none. */
int tn__tenant_quotas_get(tn_store *st, const char *tenant_id, int64_t *max_items,
                          int64_t *max_file_bytes);
/* Sets both quotas (-1 removes one), audited as tenant.settings. */
int tn__tenant_quotas_set(tn_store *st, const char *tenant_id, int64_t max_items,
                          int64_t max_file_bytes);

/* Appends an audit event in its own transaction.  tenant_id may be NULL. */
int tn__auth_audit(tn_store *st, const char *actor, const char *tenant_id, const char *action,
                   const char *detail);
/* The same for an event with an operator behind it (operator_id non-NULL). */
int tn__auth_audit_op(tn_store *st, const char *actor, const char *operator_id,
                      const char *tenant_id, const char *action, const char *detail);
/* The same; with lazy, the row is committed without an fsync of its own and
 * reaches the disk with the next durable commit (for requests that changed
 * nothing: a power cut may lose the newest such rows, in order). */
int tn__auth_audit_op_lazy(tn_store *st, const char *actor, const char *operator_id,
                           const char *tenant_id, const char *action, const char *detail,
                           int lazy);

/* One audit event, for GET /v1/admin/audit. */
typedef struct tn__audit_event {
    int64_t seq, at;
    const char *actor, *tenant_id, *action, *detail; /* tenant_id/detail may be NULL */
    const char *operator_id;                         /* NULL: no operator */
} tn__audit_event;
typedef int (*tn__audit_fn)(const tn__audit_event *e, void *arg);
/* Events with seq > after, oldest first, at most limit; *last gets the last
 * seq seen and *more whether more events follow.  tenant_id non-NULL: only
 * that tenant's events (TN_NOTFOUND for an unknown tenant). */
int tn__audit_list(tn_store *st, const char *tenant_id, int64_t after, int limit, tn__audit_fn fn,
                   void *arg, int64_t *last, int *more);

/* keys.c: fills a key's tenant settings from 4 columns starting at col
 * (max_items, max_file_bytes, rate_limit, burst). */
struct sqlite3_stmt;
void tn__key_row_settings(struct sqlite3_stmt *q, int col, tn__key_info *k);
/* A quota column: its value, or -1 (no limit) when NULL or negative. */
int64_t tn__col_quota(struct sqlite3_stmt *q, int i);

#endif
