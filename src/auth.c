/*
 * auth.c - API keys, tokens, tenant quotas and audit helpers (see auth.h).
 *
 * Locking: none of its own; every call borrows a trusted pooled connection
 * (tn__conn_get) for the duration of one statement or transaction.  Writes
 * that change keys append their audit event in the same transaction, so a key
 * change and its audit row commit together or not at all.
 */
#include "auth.h"

#include "crypto.h"
#include "jwt.h"
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SALT_LEN 16
#define HASH_LEN 32
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

int tn__key_parse(const char *k, char id[TN__KEY_ID_LEN + 1]) {
    id[0] = '\0';
    if (!k || strlen(k) != TN__API_KEY_LEN - 1 || memcmp(k, TN__KEY_PREFIX, 4) != 0 ||
        k[4 + TN__KEY_ID_LEN] != '_' || !is_hex_lower(k + 4, TN__KEY_ID_LEN))
        return 0;
    memcpy(id, k + 4, TN__KEY_ID_LEN);
    id[TN__KEY_ID_LEN] = '\0';
    return 1;
}

static void key_hash(const unsigned char salt[SALT_LEN], const char *key, unsigned char out[HASH_LEN]) {
    crypto_generichash(out, HASH_LEN, (const unsigned char *)key, strlen(key), salt, SALT_LEN);
}

/* A fresh key: id and secret random, salt random, hash of the whole text. */
static int key_new(char key[TN__API_KEY_LEN], char id[TN__KEY_ID_LEN + 1],
                   unsigned char salt[SALT_LEN], unsigned char hash[HASH_LEN]) {
    if (sodium_init() < 0) return TN_ERROR;
    unsigned char rid[TN__KEY_ID_LEN / 2], secret[SECRET_LEN];
    randombytes_buf(rid, sizeof rid);
    randombytes_buf(secret, sizeof secret);
    randombytes_buf(salt, SALT_LEN);
    tn__hex(rid, sizeof rid, id);
    memcpy(key, TN__KEY_PREFIX, 4);
    memcpy(key + 4, id, TN__KEY_ID_LEN);
    key[4 + TN__KEY_ID_LEN] = '_';
    tn__b64url_encode(secret, sizeof secret, key + 5 + TN__KEY_ID_LEN);
    sodium_memzero(secret, sizeof secret);
    key_hash(salt, key, hash);
    return TN_OK;
}

/* ---- key rows ------------------------------------------------------------- */

static const char SQL_KEY_INSERT[] =
    "INSERT INTO _api_keys (key_id, tenant, hash, salt, scopes, created_at, expires_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
static const char SQL_KEY_ROW[] =
    "SELECT k.key_id, t.id, t.name, k.scopes, k.created_at, k.expires_at, k.revoked_at, "
    "       json_extract(t.settings, '$.max_items'), json_extract(t.settings, '$.max_file_bytes'), "
    "       k.hash, k.salt, k.tenant "
    "  FROM _api_keys k JOIN _tenants t ON t.tid = k.tenant WHERE k.key_id = ?1";
static const char SQL_KEY_LIST[] =
    "SELECT k.key_id, t.id, t.name, k.scopes, k.created_at, k.expires_at, k.revoked_at, "
    "       json_extract(t.settings, '$.max_items'), json_extract(t.settings, '$.max_file_bytes') "
    "  FROM _api_keys k JOIN _tenants t ON t.tid = k.tenant WHERE t.id = ?1 "
    " ORDER BY k.created_at, k.key_id";
static const char SQL_KEY_EXPIRE[] =
    "UPDATE _api_keys SET expires_at = ?2 WHERE key_id = ?1";
static const char SQL_KEY_REVOKE[] =
    "UPDATE _api_keys SET revoked_at = ?2 WHERE key_id = ?1 AND revoked_at IS NULL";

static int64_t col_quota(sqlite3_stmt *q, int i) {
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
    k->max_items = col_quota(q, 7);
    k->max_file_bytes = col_quota(q, 8);
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
            if (sqlite3_column_bytes(q, 9) == HASH_LEN && sqlite3_column_bytes(q, 10) == SALT_LEN) {
                memcpy(hash, sqlite3_column_blob(q, 9), HASH_LEN);
                memcpy(salt, sqlite3_column_blob(q, 10), SALT_LEN);
            } else {
                rc = TN_CORRUPT;
            }
        }
        if (tid) *tid = sqlite3_column_int64(q, 11);
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
    int rc = key_new(key, n.id, n.salt, n.hash);
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
    int rc = key_new(key, n.id, n.salt, n.hash);
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
    unsigned char hash[HASH_LEN], salt[SALT_LEN], got[HASH_LEN];
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
        key_hash(salt, api_key, got);
        if (!tn__ct_equal(got, hash, HASH_LEN)) {
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
    if (!key_id || strlen(key_id) != TN__KEY_ID_LEN || !is_hex_lower(key_id, TN__KEY_ID_LEN))
        return TN_DENIED;
    int rc = check_key(st, key_id, NULL, out, why);
    if (rc != TN_OK) memset(out, 0, sizeof *out);
    return rc;
}

/* ---- tokens --------------------------------------------------------------- */

struct tn__auth {
    tn_store *st;
    unsigned char key[JWT_KEY_LEN];
};

static int read_key_file(const char *path, unsigned char key[JWT_KEY_LEN]) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return errno == ENOENT ? TN_NOTFOUND : TN_IO;
    struct stat sb;
    int rc = TN_OK;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size != JWT_KEY_LEN)
        rc = TN_CORRUPT;
    else if (sb.st_mode & 077)
        rc = TN_DENIED;
    else if (read(fd, key, JWT_KEY_LEN) != JWT_KEY_LEN)
        rc = TN_IO;
    close(fd);
    return rc;
}

/* Temp file, fsync, then link(): never replaces a key another process made. */
static int write_key_file(const char *path, unsigned char key[JWT_KEY_LEN]) {
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    if (!tmp) return TN_NOMEM;
    snprintf(tmp, n, "%s.%ld", path, (long)getpid());
    randombytes_buf(key, JWT_KEY_LEN);
    int rc = TN_IO;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        if (write(fd, key, JWT_KEY_LEN) == JWT_KEY_LEN && fsync(fd) == 0) rc = TN_OK;
        close(fd);
        if (rc == TN_OK && link(tmp, path) != 0) rc = errno == EEXIST ? TN_EXISTS : TN_IO;
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

int tn__auth_open(tn_store *st, tn__auth **out) {
    *out = NULL;
    if (sodium_init() < 0) return tn__fail(st, TN_ERROR, "libsodium failed to start");
    tn__auth *a = sodium_malloc(sizeof *a);
    if (!a) return tn__fail(st, TN_NOMEM, "out of memory");
    a->st = st;
    const char *dir = tn_store_dir(st);
    size_t n = strlen(dir) + 16;
    char *path = malloc(n);
    if (!path) {
        sodium_free(a);
        return tn__fail(st, TN_NOMEM, "out of memory");
    }
    snprintf(path, n, "%s/jwt.key", dir);
    int rc = read_key_file(path, a->key);
    if (rc == TN_NOTFOUND) {
        rc = write_key_file(path, a->key);
        if (rc == TN_EXISTS) rc = read_key_file(path, a->key);
    }
    if (rc != TN_OK) {
        tn__fail(st, rc, "%s: %s", path,
                 rc == TN_DENIED ? "the token key must not be readable by group or others "
                                   "(chmod 600)"
                 : rc == TN_CORRUPT ? "not a 32-byte token key"
                                    : "cannot read or create the token key");
        free(path);
        sodium_free(a);
        return rc;
    }
    free(path);
    *out = a;
    return TN_OK;
}

void tn__auth_close(tn__auth *a) {
    if (a) sodium_free(a); /* sodium_free wipes the memory */
}

int tn__token_mint(tn__auth *a, const char *key_id, int ttl, char **token) {
    tn__jwt_claims c;
    *token = NULL;
    int64_t now = tn__now_ms(a->st) / 1000;
    if (tn__jwt_claims_init(&c, key_id, now, ttl) != TN__JWT_OK) return TN_INVALID;
    int rc = tn__jwt_sign(a->key, sizeof a->key, &c, token);
    return rc == TN__JWT_OK ? TN_OK : rc == TN__JWT_ENOMEM ? TN_NOMEM : TN_ERROR;
}

int tn__token_verify(tn__auth *a, const char *token, tn__key_info *out, const char **why) {
    tn__jwt_claims c;
    const char *dummy;
    if (!why) why = &dummy;
    memset(out, 0, sizeof *out);
    int rc = tn__jwt_verify(a->key, sizeof a->key, token, tn__now_ms(a->st) / 1000, 0, &c);
    if (rc != TN__JWT_OK) {
        *why = tn__jwt_errname(rc);
        return TN_DENIED;
    }
    return tn__key_lookup(a->st, c.sub, out, why);
}

/* ---- quotas and audit ----------------------------------------------------- */

int tn__tenant_quotas_get(tn_store *st, const char *tenant_id, int64_t *max_items,
                          int64_t *max_file_bytes) {
    static const char sql[] =
        "SELECT json_extract(settings, '$.max_items'), json_extract(settings, '$.max_file_bytes') "
        "  FROM _tenants WHERE id = ?1";
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    sqlite3_stmt *q;
    if ((rc = tn__stmt(c, sql, &q)) == TN_OK) {
        sqlite3_bind_text(q, 1, tenant_id, -1, SQLITE_STATIC);
        int src = sqlite3_step(q);
        if (src == SQLITE_ROW) {
            *max_items = col_quota(q, 0);
            *max_file_bytes = col_quota(q, 1);
        } else {
            rc = src == SQLITE_DONE ? tn__fail(st, TN_NOTFOUND, "no such tenant")
                                    : tn__fail_db(st, c, src);
        }
        sqlite3_reset(q);
    }
    tn__conn_put(st, c);
    return rc;
}

typedef struct quota_args {
    const char *tenant_id;
    char patch[96];
} quota_args;

static int quotas_body(tn__conn *c, void *arg) {
    /* A JSON merge patch: null removes a member. */
    static const char sql[] = "UPDATE _tenants SET settings = json_patch(settings, ?2) WHERE tid = ?1";
    const quota_args *a = arg;
    int64_t tid = 0;
    sqlite3_stmt *q;
    int rc = tn__tenant_tid(c, a->tenant_id, &tid);
    if (rc == TN_OK) rc = tn__stmt(c, sql, &q);
    if (rc != TN_OK) return rc;
    sqlite3_bind_int64(q, 1, tid);
    sqlite3_bind_text(q, 2, a->patch, -1, SQLITE_STATIC);
    if ((rc = tn__step_done(c, q)) != TN_OK) return rc;
    return tn__audit(c, "admin", tid, "tenant.quotas", a->patch);
}

int tn__tenant_quotas_set(tn_store *st, const char *tenant_id, int64_t max_items,
                          int64_t max_file_bytes) {
    quota_args a = {.tenant_id = tenant_id};
    char x[24], y[24];
    snprintf(x, sizeof x, "%lld", (long long)max_items);
    snprintf(y, sizeof y, "%lld", (long long)max_file_bytes);
    snprintf(a.patch, sizeof a.patch, "{\"max_items\":%s,\"max_file_bytes\":%s}",
             max_items < 0 ? "null" : x, max_file_bytes < 0 ? "null" : y);
    return tn__trusted_tx(st, quotas_body, &a);
}

int tn__auth_audit(tn_store *st, const char *actor, const char *tenant_id, const char *action,
                   const char *detail) {
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    int64_t tid = 0;
    if (tenant_id) rc = tn__tenant_tid(c, tenant_id, &tid);
    if (rc == TN_OK) rc = tn__audit(c, actor, tid, action, detail);
    tn__conn_put(st, c);
    return rc;
}

int tn__audit_list(tn_store *st, int64_t after, int limit, tn__audit_fn fn, void *arg,
                   int64_t *last, int *more) {
    static const char sql[] =
        "SELECT a.seq, a.at, a.actor, t.id, a.action, a.detail "
        "  FROM _audit a LEFT JOIN _tenants t ON t.tid = a.tenant "
        " WHERE a.seq > ?1 ORDER BY a.seq LIMIT ?2";
    *last = after;
    *more = 0;
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    sqlite3_stmt *q;
    if ((rc = tn__stmt(c, sql, &q)) == TN_OK) {
        sqlite3_bind_int64(q, 1, after);
        sqlite3_bind_int(q, 2, limit + 1);
        int src, n = 0;
        while ((src = sqlite3_step(q)) == SQLITE_ROW) {
            if (n == limit) {
                *more = 1;
                break;
            }
            tn__audit_event e = {
                .seq = sqlite3_column_int64(q, 0),
                .at = sqlite3_column_int64(q, 1),
                .actor = (const char *)sqlite3_column_text(q, 2),
                .tenant_id = (const char *)sqlite3_column_text(q, 3),
                .action = (const char *)sqlite3_column_text(q, 4),
                .detail = (const char *)sqlite3_column_text(q, 5),
            };
            *last = e.seq;
            n++;
            if (fn(&e, arg)) break;
        }
        if (src != SQLITE_ROW && src != SQLITE_DONE) rc = tn__fail_db(st, c, src);
        sqlite3_reset(q);
    }
    tn__conn_put(st, c);
    return rc;
}
