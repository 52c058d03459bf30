/*
 * admin.c - the admin key.  _meta.admin_key holds salt (16 bytes) followed by
 * BLAKE2b-256(key = salt, message = the key's secret part); the key itself is
 * never stored.  Keys are 256 random bits, so a fast keyed hash is enough.
 */
#include "admin.h"

#include "crypto.h"
#include "conn.h"

#include <sodium.h>
#include <string.h>

#define SALT_LEN TN__KEY_SALT_LEN
#define HASH_LEN TN__KEY_HASH_LEN
#define PREFIX "tna_"

static const char SQL_PUT[] =
    "INSERT INTO _meta (key, value) VALUES ('admin_key', ?1) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value";
static const char SQL_GET[] = "SELECT value FROM _meta WHERE key = 'admin_key'";

static int put_body(tn__conn *c, void *arg) {
    sqlite3_stmt *s;
    int rc = tn__stmt(c, SQL_PUT, &s);
    if (rc != TN_OK) return rc;
    sqlite3_bind_blob(s, 1, arg, SALT_LEN + HASH_LEN, SQLITE_STATIC);
    if ((rc = tn__step_done(c, s)) != TN_OK) return rc;
    return tn__audit(c, "admin", 0, "admin_key.rotate", NULL);
}

int tn_admin_key_rotate(tn_store *st, char out[TN_ADMIN_KEY_LEN]) {
    unsigned char secret[32], blob[SALT_LEN + HASH_LEN];
    randombytes_buf(secret, sizeof secret);
    memcpy(out, PREFIX, 4);
    tn__b64url_encode(secret, sizeof secret, out + 4);
    sodium_memzero(secret, sizeof secret);
    randombytes_buf(blob, SALT_LEN);
    tn__key_hash(blob, out, blob + SALT_LEN);

    int rc = tn__trusted_tx(st, put_body, blob);
    if (rc != TN_OK) sodium_memzero(out, TN_ADMIN_KEY_LEN);
    return rc;
}

static int load(tn_store *st, unsigned char blob[SALT_LEN + HASH_LEN]) {
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    sqlite3_stmt *s;
    if ((rc = tn__stmt(c, SQL_GET, &s)) == TN_OK) {
        int src = sqlite3_step(s);
        if (src == SQLITE_ROW && sqlite3_column_bytes(s, 0) == SALT_LEN + HASH_LEN)
            memcpy(blob, sqlite3_column_blob(s, 0), SALT_LEN + HASH_LEN);
        else
            rc = src == SQLITE_ROW || src == SQLITE_DONE ? TN_NOTFOUND : tn__fail_db(st, c, src);
        sqlite3_reset(s);
    }
    tn__conn_put(st, c);
    return rc;
}

int tn_admin_key_verify(tn_store *st, const char *key) {
    unsigned char blob[SALT_LEN + HASH_LEN], got[HASH_LEN];
    if (!key || strlen(key) != TN_ADMIN_KEY_LEN - 1 || strncmp(key, PREFIX, 4) != 0)
        return TN_DENIED;
    if (load(st, blob) != TN_OK) return TN_DENIED;
    tn__key_hash(blob, key, got);
    return tn__ct_equal(got, blob + SALT_LEN, HASH_LEN) ? TN_OK : TN_DENIED;
}

int tn_admin_key_exists(tn_store *st) {
    unsigned char blob[SALT_LEN + HASH_LEN];
    return load(st, blob) == TN_OK;
}
