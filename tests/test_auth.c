/*
 * test_auth.c - API keys (format, stored hash, verification, expiry,
 * rotation, revocation), tokens minted from them, scope parsing, quotas and
 * the token-bucket rate limiter (with an injected clock).
 */
#include "auth.h"
#include "fixture.h"
#include "jwt.h"
#include "ratelimit.h"

#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

static int all_chars_in(const char *s, size_t n, const char *set) {
    for (size_t i = 0; i < n; i++)
        if (!s[i] || !strchr(set, s[i])) return 0;
    return 1;
}

/* ---- scopes ---- */

TEST(auth_scopes_parse_and_format) {
    unsigned m;
    ASSERT_INT_EQ(tn__scopes_parse("items:read", &m), TN_OK);
    ASSERT_INT_EQ(m, TN__SCOPE_ITEMS_READ);
    ASSERT_INT_EQ(tn__scopes_parse("files:write, items:write  items:read", &m), TN_OK);
    ASSERT_INT_EQ(m, TN__SCOPE_FILES_WRITE | TN__SCOPE_ITEMS_WRITE | TN__SCOPE_ITEMS_READ);
    ASSERT_INT_EQ(tn__scopes_parse("", &m), TN_INVALID);
    ASSERT_INT_EQ(tn__scopes_parse(" , ", &m), TN_INVALID);
    ASSERT_INT_EQ(tn__scopes_parse("items:read admin", &m), TN_INVALID);
    ASSERT_INT_EQ(tn__scopes_parse("items:readx", &m), TN_INVALID);
    ASSERT_INT_EQ(tn__scopes_parse("ITEMS:READ", &m), TN_INVALID);
    ASSERT_INT_EQ(tn__scopes_parse(NULL, &m), TN_INVALID);
    char buf[TN__SCOPES_TEXT_MAX];
    tn__scopes_format(TN__SCOPE_ALL, buf);
    ASSERT_STR_EQ(buf, "items:read items:write files:read files:write");
    tn__scopes_format(TN__SCOPE_FILES_READ, buf);
    ASSERT_STR_EQ(buf, "files:read");
}

TEST(auth_key_parse_accepts_only_the_format) {
    char id[TN__KEY_ID_LEN + 1];
    const char *good = "tnk_0123456789abcdef01234567_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    ASSERT(tn__key_parse(good, id));
    ASSERT_STR_EQ(id, "0123456789abcdef01234567");
    ASSERT(!tn__key_parse("tnk_0123456789ABCDEF01234567_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", id));
    ASSERT(!tn__key_parse("tna_0123456789abcdef01234567_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", id));
    ASSERT(!tn__key_parse("tnk_0123456789abcdef01234567_AAAA", id));
    ASSERT(!tn__key_parse("tnk_0123456789abcdef01234567-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", id));
    ASSERT(!tn__key_parse("", id));
    ASSERT(!tn__key_parse(NULL, id));
}

/* ---- keys in a store ---- */

TEST(auth_key_create_verify_and_stored_hash) {
    fixture f;
    fixture_init(&f);
    char key[TN__API_KEY_LEN];
    tn__key_info k, v;
    ASSERT_OK(tn__key_create(f.st, f.acme.id, TN__SCOPE_ITEMS_READ | TN__SCOPE_FILES_READ, 0, &k, key));
    ASSERT_INT_EQ(strlen(key), 72);
    ASSERT(strncmp(key, "tnk_", 4) == 0);
    ASSERT(all_chars_in(key + 4, 24, "0123456789abcdef"));
    ASSERT_INT_EQ(key[28], '_');
    ASSERT(all_chars_in(key + 29, 43,
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"));
    ASSERT(memcmp(key + 4, k.key_id, 24) == 0);
    ASSERT_STR_EQ(k.tenant_id, f.acme.id);

    const char *why = NULL;
    ASSERT_OK(tn__key_verify(f.st, key, &v, &why));
    ASSERT_STR_EQ(v.tenant_id, f.acme.id);
    ASSERT_STR_EQ(v.tenant_name, "acme");
    ASSERT_INT_EQ(v.scopes, TN__SCOPE_ITEMS_READ | TN__SCOPE_FILES_READ);
    ASSERT_INT_EQ(v.expires_at, 0);

    /* One changed character of the secret, or of the id, fails. */
    char bad[TN__API_KEY_LEN];
    memcpy(bad, key, sizeof bad);
    bad[50] = bad[50] == 'A' ? 'B' : 'A';
    ASSERT_INT_EQ(tn__key_verify(f.st, bad, &v, &why), TN_DENIED);
    ASSERT_STR_EQ(why, "wrong secret");
    memcpy(bad, key, sizeof bad);
    bad[5] = bad[5] == 'a' ? 'b' : 'a';
    ASSERT_INT_EQ(tn__key_verify(f.st, bad, &v, &why), TN_DENIED);

    /* The secret is not stored: the row holds a 32-byte hash and a 16-byte salt. */
    tn__conn *c;
    ASSERT_OK(tn__conn_get(f.st, 1, &c));
    sqlite3_stmt *q;
    ASSERT_INT_EQ(sqlite3_prepare_v2(c->db, "SELECT hash, salt, scopes FROM _api_keys WHERE key_id = ?1",
                                     -1, &q, NULL), SQLITE_OK);
    sqlite3_bind_text(q, 1, k.key_id, -1, SQLITE_STATIC);
    ASSERT_INT_EQ(sqlite3_step(q), SQLITE_ROW);
    ASSERT_INT_EQ(sqlite3_column_bytes(q, 0), 32);
    ASSERT_INT_EQ(sqlite3_column_bytes(q, 1), 16);
    ASSERT_STR_EQ((const char *)sqlite3_column_text(q, 2), "items:read files:read");
    /* The stored hash is BLAKE2b-256 keyed with the salt, of the whole key. */
    unsigned char want[32];
    crypto_generichash(want, 32, (const unsigned char *)key, strlen(key),
                       sqlite3_column_blob(q, 1), 16);
    ASSERT_MEM_EQ(want, sqlite3_column_blob(q, 0), 32);
    sqlite3_finalize(q);
    tn__conn_put(f.st, c);
    fixture_done(&f);
}

TEST(auth_key_revoke_rotate_expire) {
    fixture f;
    fixture_init(&f);
    char key[TN__API_KEY_LEN], key2[TN__API_KEY_LEN];
    tn__key_info k, k2, v;
    ASSERT_OK(tn__key_create(f.st, f.acme.id, TN__SCOPE_ALL, 0, &k, key));
    ASSERT_OK(tn__key_revoke(f.st, k.key_id));
    ASSERT_INT_EQ(tn__key_verify(f.st, key, &v, NULL), TN_DENIED);
    ASSERT_INT_EQ(tn__key_lookup(f.st, k.key_id, &v, NULL), TN_DENIED);
    ASSERT_INT_EQ(tn__key_revoke(f.st, k.key_id), TN_NOTFOUND);
    ASSERT_INT_EQ(tn__key_revoke(f.st, "000000000000000000000000"), TN_NOTFOUND);

    /* Rotation: overlap 0 ends the old key now; the new one has its scopes. */
    ASSERT_OK(tn__key_create(f.st, f.globex.id, TN__SCOPE_ITEMS_WRITE, 0, &k, key));
    int64_t end = 0;
    ASSERT_OK(tn__key_rotate(f.st, k.key_id, 3600 * 1000, 0, &k2, key2, &end));
    ASSERT(end > 0);
    ASSERT_OK(tn__key_verify(f.st, key, &v, NULL));  /* inside the overlap */
    ASSERT_OK(tn__key_verify(f.st, key2, &v, NULL));
    ASSERT_STR_EQ(v.tenant_id, f.globex.id);
    ASSERT_INT_EQ(v.scopes, TN__SCOPE_ITEMS_WRITE);
    char key3[TN__API_KEY_LEN];
    tn__key_info k3;
    ASSERT_OK(tn__key_rotate(f.st, k2.key_id, 0, 0, &k3, key3, &end));
    ASSERT_INT_EQ(tn__key_verify(f.st, key2, &v, NULL), TN_DENIED);
    ASSERT_INT_EQ(tn__key_rotate(f.st, k2.key_id, 0, 0, &k3, key3, &end), TN_NOTFOUND);

    /* A key that expired a moment ago. */
    ASSERT_OK(tn__key_create(f.st, f.acme.id, TN__SCOPE_ALL, 1, &k, key));
    const char *why;
    ASSERT_INT_EQ(tn__key_verify(f.st, key, &v, &why), TN_DENIED);
    ASSERT_STR_EQ(why, "expired key");

    /* Deleting the tenant removes its keys. */
    ASSERT_OK(tn__key_create(f.st, f.acme.id, TN__SCOPE_ALL, 0, &k, key));
    tn_session_close(f.a);
    f.a = NULL;
    ASSERT_OK(tn_tenant_delete(f.st, f.acme.id));
    ASSERT_INT_EQ(tn__key_verify(f.st, key, &v, NULL), TN_DENIED);
    fixture_done(&f);
}

TEST(auth_tokens_name_the_key_and_die_with_it) {
    fixture f;
    fixture_init(&f);
    tn__auth *a;
    ASSERT_OK(tn__auth_open(f.st, &a));
    char path[4200];
    snprintf(path, sizeof path, "%s/jwt.key", f.dir);
    struct stat sb;
    ASSERT_INT_EQ(stat(path, &sb), 0);
    ASSERT_INT_EQ(sb.st_mode & 0777, 0600);
    ASSERT_INT_EQ(sb.st_size, 32);

    char key[TN__API_KEY_LEN];
    tn__key_info k, v;
    ASSERT_OK(tn__key_create(f.st, f.acme.id, TN__SCOPE_ITEMS_READ, 0, &k, key));
    char *tok = NULL;
    ASSERT_OK(tn__token_mint(a, k.key_id, 60, &tok));
    ASSERT(strstr(tok, f.acme.id) == NULL);
    ASSERT_OK(tn__token_verify(a, tok, &v, NULL));
    ASSERT_STR_EQ(v.tenant_id, f.acme.id);
    ASSERT_STR_EQ(v.key_id, k.key_id);

    /* Same secret on reopen: the token still verifies. */
    tn__auth_close(a);
    ASSERT_OK(tn__auth_open(f.st, &a));
    ASSERT_OK(tn__token_verify(a, tok, &v, NULL));

    ASSERT_OK(tn__key_revoke(f.st, k.key_id));
    const char *why = NULL;
    ASSERT_INT_EQ(tn__token_verify(a, tok, &v, &why), TN_DENIED);
    ASSERT_STR_EQ(why, "revoked key");
    ASSERT_INT_EQ(tn__token_verify(a, "a.b.c", &v, &why), TN_DENIED);
    free(tok);
    tn__auth_close(a);

    /* A key file others can read is refused. */
    ASSERT_INT_EQ(chmod(path, 0644), 0);
    ASSERT_INT_EQ(tn__auth_open(f.st, &a), TN_DENIED);
    fixture_done(&f);
}

TEST(auth_quotas_roundtrip) {
    fixture f;
    fixture_init(&f);
    int64_t mi, mf;
    ASSERT_OK(tn__tenant_quotas_get(f.st, f.acme.id, &mi, &mf));
    ASSERT_INT_EQ(mi, -1);
    ASSERT_INT_EQ(mf, -1);
    ASSERT_OK(tn__tenant_quotas_set(f.st, f.acme.id, 10, 1000));
    ASSERT_OK(tn__tenant_quotas_get(f.st, f.acme.id, &mi, &mf));
    ASSERT_INT_EQ(mi, 10);
    ASSERT_INT_EQ(mf, 1000);
    ASSERT_OK(tn__tenant_quotas_set(f.st, f.acme.id, -1, 5));
    ASSERT_OK(tn__tenant_quotas_get(f.st, f.acme.id, &mi, &mf));
    ASSERT_INT_EQ(mi, -1);
    ASSERT_INT_EQ(mf, 5);
    ASSERT_OK(tn__tenant_quotas_get(f.st, f.globex.id, &mi, &mf));
    ASSERT_INT_EQ(mi, -1);
    /* The key lookup carries the quotas. */
    char key[TN__API_KEY_LEN];
    tn__key_info k;
    ASSERT_OK(tn__key_create(f.st, f.acme.id, TN__SCOPE_ALL, 0, &k, key));
    ASSERT_OK(tn__key_verify(f.st, key, &k, NULL));
    ASSERT_INT_EQ(k.max_items, -1);
    ASSERT_INT_EQ(k.max_file_bytes, 5);
    fixture_done(&f);
}

/* ---- rate limiter ---- */

TEST(ratelimit_token_bucket) {
    tn__rl *rl = tn__rl_new(2.0, 3.0, 64); /* 2 per second, burst 3 */
    ASSERT(rl != NULL);
    int64_t t = 1000000;
    ASSERT_INT_EQ(tn__rl_take(rl, "k", t), 0);
    ASSERT_INT_EQ(tn__rl_take(rl, "k", t), 0);
    ASSERT_INT_EQ(tn__rl_take(rl, "k", t), 0);
    ASSERT_INT_EQ(tn__rl_take(rl, "k", t), 1); /* empty: 0.5 s to the next token -> 1 */
    ASSERT_INT_EQ(tn__rl_check(rl, "k", t), 1);
    ASSERT_INT_EQ(tn__rl_take(rl, "other", t), 0); /* buckets are per key */
    ASSERT_INT_EQ(tn__rl_take(rl, "k", t + 499), 1);
    ASSERT_INT_EQ(tn__rl_check(rl, "k", t + 500), 0);
    ASSERT_INT_EQ(tn__rl_take(rl, "k", t + 500), 0);
    ASSERT_INT_EQ(tn__rl_take(rl, "k", t + 500), 1);
    /* Refill caps at the burst. */
    t += 100000;
    for (int i = 0; i < 3; i++) ASSERT_INT_EQ(tn__rl_take(rl, "k", t), 0);
    ASSERT_INT_EQ(tn__rl_take(rl, "k", t), 1);
    tn__rl_free(rl);

    /* Slow refill: Retry-After rounds up to whole seconds. */
    rl = tn__rl_new(0.1, 1.0, 64);
    ASSERT_INT_EQ(tn__rl_take(rl, "x", 0), 0);
    ASSERT_INT_EQ(tn__rl_take(rl, "x", 0), 10);
    ASSERT_INT_EQ(tn__rl_take(rl, "x", 5000), 5);
    tn__rl_free(rl);
    ASSERT(tn__rl_new(0, 1, 64) == NULL);
    ASSERT(tn__rl_new(1, 0.5, 64) == NULL);
}

TEST(ratelimit_table_is_bounded) {
    tn__rl *rl = tn__rl_new(1.0, 1.0, 16);
    ASSERT(rl != NULL);
    char k[32];
    /* Many more keys than slots: every new key still gets its burst. */
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof k, "key-%d", i);
        ASSERT_INT_EQ(tn__rl_take(rl, k, i), 0);
    }
    /* A recently used key keeps its (empty) bucket. */
    ASSERT_INT_EQ(tn__rl_take(rl, "key-999", 999), 1);
    tn__rl_free(rl);
}
