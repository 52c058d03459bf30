/*
 * keys.c - scopes, secrets and API keys (see auth.h).
 *
 * Locking: none of its own; every call borrows a trusted pooled connection
 * (tn__conn_get) for the duration of one statement or transaction.  Writes
 * that change keys append their audit event in the same transaction, so a key
 * change and its audit row commit together or not at all.
 */
#include "auth.h"

#include "conn.h"
#include "crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SALT_LEN TN__SALT_LEN
#define HASH_LEN TN__HASH_LEN
#define SECRET_LEN 32
#define JWT_KEY_LEN 32

/* ---- scopes --------------------------------------------------------------- */

static const char *const scope_names[] = {"items:read", "items:write", "files:read",
                                          "files:write"};

const char *tn__scope_name(unsigned bit) {
    for (unsigned i = 0; i < 4; i++)
        if (bit == 1u << i) return scope_names[i];
    return NULL;
}

int tn__scopes_parse(const char *text, unsigned *mask) {
    *mask = 0;
    if (!text) return TN_INVALID;
    const char *p = text;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        size_t n = strcspn(p, " ,");
        unsigned bit = 0;
        for (unsigned i = 0; i < 4; i++)
            if (strlen(scope_names[i]) == n && memcmp(p, scope_names[i], n) == 0) bit = 1u << i;
        if (!bit) return TN_INVALID;
        *mask |= bit;
        p += n;
    }
    return *mask ? TN_OK : TN_INVALID;
}

void tn__scopes_format(unsigned mask, char buf[TN__SCOPES_TEXT_MAX]) {
    size_t at = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < 4; i++) {
        if (!(mask & (1u << i))) continue;
        at += (size_t)snprintf(buf + at, TN__SCOPES_TEXT_MAX - at, "%s%s", at ? " " : "",
                               scope_names[i]);
    }
}

/* ---- key text -------------------------------------------------------------- */

static int is_hex_lower(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

int tn__key_id_valid(const char *s) {
    return s && strlen(s) == TN__KEY_ID_LEN && is_hex_lower(s, TN__KEY_ID_LEN);
}

int tn__secret_parse(const char *prefix, const char *k, char id[TN__KEY_ID_LEN + 1]) {
    id[0] = '\0';
    if (!k || strlen(k) != TN__API_KEY_LEN - 1 || memcmp(k, prefix, 4) != 0 ||
        k[4 + TN__KEY_ID_LEN] != '_' || !is_hex_lower(k + 4, TN__KEY_ID_LEN))
        return 0;
    memcpy(id, k + 4, TN__KEY_ID_LEN);
    id[TN__KEY_ID_LEN] = '\0';
    return 1;
}

int tn__key_parse(const char *k, char id[TN__KEY_ID_LEN + 1]) {
    return tn__secret_parse(TN__KEY_PREFIX, k, id);
}

int tn__secret_check(const char *key, const unsigned char salt[SALT_LEN],
                     const unsigned char hash[HASH_LEN]) {
    unsigned char got[HASH_LEN];
    tn__key_hash(salt, key, got);
    int ok = tn__ct_equal(got, hash, HASH_LEN);
    sodium_memzero(got, sizeof got);
    return ok;
}

/* A fresh key: id and secret random, salt random, hash of the whole text. */
int tn__secret_new(const char *prefix, char key[TN__API_KEY_LEN], char id[TN__KEY_ID_LEN + 1],
                   unsigned char salt[SALT_LEN], unsigned char hash[HASH_LEN]) {
    if (sodium_init() < 0 || strlen(prefix) != 4) return TN_ERROR;
    unsigned char rid[TN__KEY_ID_LEN / 2], secret[SECRET_LEN];
    randombytes_buf(rid, sizeof rid);
    randombytes_buf(secret, sizeof secret);
    randombytes_buf(salt, SALT_LEN);
    tn__hex(rid, sizeof rid, id);
    memcpy(key, prefix, 4);
    memcpy(key + 4, id, TN__KEY_ID_LEN);
    key[4 + TN__KEY_ID_LEN] = '_';
    tn__b64url_encode(secret, sizeof secret, key + 5 + TN__KEY_ID_LEN);
    sodium_memzero(secret, sizeof secret);
    tn__key_hash(salt, key, hash);
    return TN_OK;
}

/* ---- key rows ------------------------------------------------------------- */

static const char SQL_KEY_INSERT[] =
    "INSERT INTO _api_keys (key_id, tenant, hash, salt, scopes, created_at, expires_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
/* Columns 7-10 are the tenant's quotas and rate (tn__key_row_settings); a
 * tenant's settings are read with its key on every request, so a change made
 * by another process applies to the next request without a restart. */
static const char SQL_KEY_ROW[] =
    "SELECT k.key_id, t.id, t.name, k.scopes, k.created_at, k.expires_at, k.revoked_at, "
    "       s.max_items, s.max_file_bytes, s.rate_limit, s.burst, "
    "       k.hash, k.salt, k.tenant "
    "  FROM _api_keys k JOIN _tenants t ON t.tid = k.tenant "
    "  LEFT JOIN _tenant_settings s ON s.tenant = t.tid WHERE k.key_id = ?1";
static const char SQL_KEY_LIST[] =
    "SELECT k.key_id, t.id, t.name, k.scopes, k.created_at, k.expires_at, k.revoked_at, "
    "       s.max_items, s.max_file_bytes, s.rate_limit, s.burst "
    "  FROM _api_keys k JOIN _tenants t ON t.tid = k.tenant "
    "  LEFT JOIN _tenant_settings s ON s.tenant = t.tid WHERE t.id = ?1 "
    " ORDER BY k.created_at, k.key_id";
static const char SQL_KEY_EXPIRE[] =
    "UPDATE _api_keys SET expires_at = ?2 WHERE key_id = ?1";
static const char SQL_KEY_REVOKE[] =
    "UPDATE _api_keys SET revoked_at = ?2 WHERE key_id = ?1 AND revoked_at IS NULL";

int64_t tn__col_quota(sqlite3_stmt *q, int i) {
    if (sqlite3_column_type(q, i) != SQLITE_INTEGER) return -1;
    int64_t v = sqlite3_column_int64(q, i);
    return v < 0 ? -1 : v;
}

static void key_row(sqlite3_stmt *q, tn__key_info *k) {
    memset(k, 0, sizeof *k);
    snprintf(k->key_id, sizeof k->key_id, "%s", (const char *)sqlite3_column_text(q, 0));
    snprintf(k->tenant_id, sizeof k->tenant_id, "%s", (const char *)sqlite3_column_text(q, 1));
    snprintf(k->tenant_name, sizeof k->tenant_name, "%s", (const char *)sqlite3_column_text(q, 2));
    if (tn__scopes_parse((const char *)sqlite3_column_text(q, 3), &k->scopes) != TN_OK)
        k->scopes = 0;
    k->created_at = sqlite3_column_int64(q, 4);
    k->expires_at = sqlite3_column_int64(q, 5); /* NULL reads as 0 = never */
    k->revoked_at = sqlite3_column_int64(q, 6);
    tn__key_row_settings(q, 7, k);
}

void tn__key_row_settings(sqlite3_stmt *q, int col, tn__key_info *k) {
    k->max_items = tn__col_quota(q, col);
    k->max_file_bytes = tn__col_quota(q, col + 1);
    /* NULL reads as 0: the server's default. */
    k->rate_limit = sqlite3_column_double(q, col + 2);
    k->burst = sqlite3_column_double(q, col + 3);
}

static int insert_key(tn__conn *c, int64_t tid, unsigned scopes, int64_t expires_at,
                      const char *id, const unsigned char *salt, const unsigned char *hash) {
    char text[TN__SCOPES_TEXT_MAX];
    tn__scopes_format(scopes, text);
    sqlite3_stmt *q;
    int rc = tn__stmt(c, SQL_KEY_INSERT, &q);
    if (rc != TN_OK) return rc;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, tid);
    sqlite3_bind_blob(q, 3, hash, HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(q, 4, salt, SALT_LEN, SQLITE_STATIC);
    sqlite3_bind_text(q, 5, text, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 6, tn__now_ms(c->st));
    if (expires_at > 0) sqlite3_bind_int64(q, 7, expires_at);
    int src = sqlite3_step(q);
    sqlite3_reset(q);
    return src == SQLITE_DONE ? TN_OK : tn__fail_db(c->st, c, src);
}

/* Reads the key row by id on c; TN_NOTFOUND when absent.  tid optional. */
static int read_key(tn__conn *c, const char *key_id, tn__key_info *k, unsigned char *hash,
                    unsigned char *salt, int64_t *tid) {
    sqlite3_stmt *q;
    int rc = tn__stmt(c, SQL_KEY_ROW, &q);
    if (rc != TN_OK) return rc;
    sqlite3_bind_text(q, 1, key_id, -1, SQLITE_STATIC);
    int src = sqlite3_step(q);
    if (src == SQLITE_ROW) {
        key_row(q, k);
        if (hash && salt) {
            if (sqlite3_column_bytes(q, 11) == HASH_LEN &&
                sqlite3_column_bytes(q, 12) == SALT_LEN) {
                memcpy(hash, sqlite3_column_blob(q, 11), HASH_LEN);
                memcpy(salt, sqlite3_column_blob(q, 12), SALT_LEN);
            } else {
                rc = TN_CORRUPT;
            }
        }
        if (tid) *tid = sqlite3_column_int64(q, 13);
    } else {
        rc = src == SQLITE_DONE ? tn__fail(c->st, TN_NOTFOUND, "no such key")
                                : tn__fail_db(c->st, c, src);
    }
    sqlite3_reset(q);
    return rc;
}

/* What a new key's row needs, for the transaction bodies below. */
typedef struct new_key {
    const char *tenant_id, *old_id; /* old_id: the key being rotated */
    unsigned scopes;
    int64_t expires_at, overlap_ms, old_end;
    char id[TN__KEY_ID_LEN + 1];
    unsigned char salt[SALT_LEN], hash[HASH_LEN];
    tn__key_info *out;
} new_key;

static int create_body(tn__conn *c, void *arg) {
    new_key *n = arg;
    int64_t tid = 0;
    int rc = tn__tenant_tid(c, n->tenant_id, &tid);
    if (rc == TN_OK) rc = insert_key(c, tid, n->scopes, n->expires_at, n->id, n->salt, n->hash);
    if (rc == TN_OK) rc = tn__audit(c, "admin", tid, "key.create", n->id);
    if (rc == TN_OK && n->out) rc = read_key(c, n->id, n->out, NULL, NULL, NULL);
    return rc;
}

int tn__key_create(tn_store *st, const char *tenant_id, unsigned scopes, int64_t expires_at,
                   tn__key_info *out, char key[TN__API_KEY_LEN]) {
    if (!scopes || (scopes & ~(unsigned)TN__SCOPE_ALL) || expires_at < 0)
        return tn__fail(st, TN_INVALID, "bad scopes or expiry");
    new_key n = {.tenant_id = tenant_id, .scopes = scopes, .expires_at = expires_at, .out = out};
    int rc = tn__secret_new(TN__KEY_PREFIX, key, n.id, n.salt, n.hash);
    if (rc != TN_OK) return tn__fail(st, rc, "no random source");
    rc = tn__trusted_tx(st, create_body, &n);
    if (rc != TN_OK) sodium_memzero(key, TN__API_KEY_LEN);
    return rc;
}

int tn__key_list(tn_store *st, const char *tenant_id, tn__key_fn fn, void *arg) {
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    int64_t tid;
    sqlite3_stmt *q;
    if ((rc = tn__tenant_tid(c, tenant_id, &tid)) == TN_OK &&
        (rc = tn__stmt(c, SQL_KEY_LIST, &q)) == TN_OK) {
        sqlite3_bind_text(q, 1, tenant_id, -1, SQLITE_STATIC);
        int src;
        while ((src = sqlite3_step(q)) == SQLITE_ROW) {
            tn__key_info k;
            key_row(q, &k);
            if (fn(&k, arg)) break;
        }
        if (src != SQLITE_ROW && src != SQLITE_DONE) rc = tn__fail_db(st, c, src);
        sqlite3_reset(q);
    }
    tn__conn_put(st, c);
    return rc;
}

static int key_live(const tn__key_info *k, int64_t now) {
    return k->revoked_at == 0 && (k->expires_at == 0 || k->expires_at > now);
}

/* The old key stays valid until now + overlap (or its own earlier expiry). */
static int rotate_body(tn__conn *c, void *arg) {
    new_key *n = arg;
    tn__key_info old;
    int64_t tid = 0, now = tn__now_ms(c->st);
    sqlite3_stmt *q;
    int rc = read_key(c, n->old_id, &old, NULL, NULL, &tid);
    if (rc != TN_OK) return rc;
    if (!key_live(&old, now)) return tn__fail(c->st, TN_NOTFOUND, "the key is revoked or expired");
    n->old_end = now + n->overlap_ms;
    if (old.expires_at && old.expires_at < n->old_end) n->old_end = old.expires_at;
    if ((rc = tn__stmt(c, SQL_KEY_EXPIRE, &q)) != TN_OK) return rc;
    sqlite3_bind_text(q, 1, n->old_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, n->old_end);
    if ((rc = tn__step_done(c, q)) != TN_OK) return rc;
    rc = insert_key(c, tid, old.scopes, n->expires_at, n->id, n->salt, n->hash);
    char detail[2 * TN__KEY_ID_LEN + 16];
    snprintf(detail, sizeof detail, "%s -> %s", n->old_id, n->id);
    if (rc == TN_OK) rc = tn__audit(c, "admin", tid, "key.rotate", detail);
    if (rc == TN_OK && n->out) rc = read_key(c, n->id, n->out, NULL, NULL, NULL);
    return rc;
}

int tn__key_rotate(tn_store *st, const char *key_id, int64_t overlap_ms, int64_t new_expires_at,
                   tn__key_info *out, char key[TN__API_KEY_LEN], int64_t *old_expires) {
    if (overlap_ms < 0 || new_expires_at < 0) return tn__fail(st, TN_INVALID, "bad overlap");
    new_key n = {.old_id = key_id, .expires_at = new_expires_at, .overlap_ms = overlap_ms,
                 .out = out};
    int rc = tn__secret_new(TN__KEY_PREFIX, key, n.id, n.salt, n.hash);
    if (rc != TN_OK) return tn__fail(st, rc, "no random source");
    rc = tn__trusted_tx(st, rotate_body, &n);
    if (rc != TN_OK) sodium_memzero(key, TN__API_KEY_LEN);
    else if (old_expires) *old_expires = n.old_end;
    return rc;
}

static int revoke_body(tn__conn *c, void *arg) {
    const char *key_id = arg;
    tn__key_info k;
    int64_t tid = 0;
    sqlite3_stmt *q;
    int rc = read_key(c, key_id, &k, NULL, NULL, &tid);
    if (rc == TN_OK) rc = tn__stmt(c, SQL_KEY_REVOKE, &q);
    if (rc != TN_OK) return rc;
    sqlite3_bind_text(q, 1, key_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, tn__now_ms(c->st));
    if ((rc = tn__step_done(c, q)) != TN_OK) return rc;
    if (!sqlite3_changes(c->db)) return tn__fail(c->st, TN_NOTFOUND, "the key is already revoked");
    return tn__audit(c, "admin", tid, "key.revoke", key_id);
}

int tn__key_revoke(tn_store *st, const char *key_id) {
    return tn__trusted_tx(st, revoke_body, (void *)key_id);
}

int tn__key_get(tn_store *st, const char *key_id, tn__key_info *out) {
    if (!key_id || strlen(key_id) != TN__KEY_ID_LEN || !is_hex_lower(key_id, TN__KEY_ID_LEN))
        return tn__fail(st, TN_NOTFOUND, "no such key");
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    rc = read_key(c, key_id, out, NULL, NULL, NULL);
    tn__conn_put(st, c);
    return rc;
}

/* ---- verification --------------------------------------------------------- */

/* Looks key_id up; with api_key also checks its hash.  Every outcome but a
 * store failure is TN_OK or TN_DENIED. */
static int check_key(tn_store *st, const char *key_id, const char *api_key, tn__key_info *out,
                     const char **why) {
    unsigned char hash[HASH_LEN], salt[SALT_LEN];
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    rc = read_key(c, key_id, out, api_key ? hash : NULL, api_key ? salt : NULL, NULL);
    tn__conn_put(st, c);
    if (rc == TN_NOTFOUND) {
        *why = "unknown key";
        return TN_DENIED;
    }
    if (rc != TN_OK) return rc;
    if (api_key) {
        if (!tn__secret_check(api_key, salt, hash)) {
            *why = "wrong secret";
            return TN_DENIED;
        }
    }
    int64_t now = tn__now_ms(st);
    if (out->revoked_at) {
        *why = "revoked key";
        return TN_DENIED;
    }
    if (out->expires_at && out->expires_at <= now) {
        *why = "expired key";
        return TN_DENIED;
    }
    return TN_OK;
}

int tn__key_verify(tn_store *st, const char *api_key, tn__key_info *out, const char **why) {
    char id[TN__KEY_ID_LEN + 1];
    const char *dummy;
    if (!why) why = &dummy;
    *why = "malformed key";
    if (!tn__key_parse(api_key, id)) return TN_DENIED;
    int rc = check_key(st, id, api_key, out, why);
    if (rc != TN_OK) memset(out, 0, sizeof *out);
    return rc;
}

int tn__key_lookup(tn_store *st, const char *key_id, tn__key_info *out, const char **why) {
    const char *dummy;
    if (!why) why = &dummy;
    *why = "malformed key id";
    if (!tn__key_id_valid(key_id)) return TN_DENIED;
    int rc = check_key(st, key_id, NULL, out, why);
    if (rc != TN_OK) memset(out, 0, sizeof *out);
    return rc;
}

