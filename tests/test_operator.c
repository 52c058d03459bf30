/*
 * test_operator.c - operator keys, grants and tokens (src/operator.c), tenant
 * settings (auth.c) and what applies them: the outbox leaving out tenants
 * whose sync is off and weighing the others by priority, per-tenant tombstone
 * retention, per-bucket rates in the limiter, and the migration that moves
 * quotas out of _tenants.settings.
 */
#include "auth.h"
#include "fixture.h"
#include "jwt.h"
#include "operator.h"
#include "outbox.h"
#include "ratelimit.h"
#include "schema.h"

#include <sodium.h>
#include <stdlib.h>
#include <sys/stat.h>

/* The payload of a token, decoded (a test-local base64url decoder). */
static void token_payload(const char *tok, char *out, size_t cap) {
    const char *p = strchr(tok, '.') + 1, *e = strchr(p, '.');
    size_t n = 0;
    ASSERT(sodium_base642bin((unsigned char *)out, cap - 1, p, (size_t)(e - p), NULL, &n, NULL,
                             sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0);
    out[n] = '\0';
}

static tn__op_grant grant_of(const tn_tenant *t, unsigned scopes) {
    tn__op_grant g;
    memset(&g, 0, sizeof g);
    memcpy(g.tenant_id, t->id, sizeof g.tenant_id);
    g.scopes = scopes;
    return g;
}

TEST(operator_key_format_and_stored_hash) {
    fixture f;
    fixture_init(&f);
    tn__op_grant g = grant_of(&f.acme, TN__SCOPE_ITEMS_READ);
    tn__op_info o;
    char key[TN__API_KEY_LEN];
    ASSERT_OK(tn__op_create(f.st, "msp", &g, 1, &o, key));
    char id[TN__KEY_ID_LEN + 1];
    ASSERT(tn__secret_parse(TN__OP_PREFIX, key, id));
    ASSERT_STR_EQ(id, o.op_id);
    ASSERT(!tn__key_parse(key, id)); /* not an API key */
    /* Only the hash is stored: the secret part appears nowhere in the file. */
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM _operators WHERE instr(hash, '%s') OR "
                              "instr(name, '%s')", key + 29, key + 29);
    ASSERT_INT_EQ(raw_scalar(f.dir, sql), 0);
    ASSERT_INT_EQ(raw_scalar(f.dir, "SELECT length(hash) FROM _operators"), TN__HASH_LEN);
    /* Names: unique regardless of case, never shaped like an id. */
    ASSERT_INT_EQ(tn__op_create(f.st, "MSP", NULL, 0, &o, key), TN_EXISTS);
    ASSERT_INT_EQ(tn__op_create(f.st, "", NULL, 0, &o, key), TN_INVALID);
    ASSERT_INT_EQ(tn__op_create(f.st, "a b", NULL, 0, &o, key), TN_INVALID);
    ASSERT_INT_EQ(tn__op_create(f.st, "0123456789abcdef01234567", NULL, 0, &o, key), TN_INVALID);
    tn__op_grant bad = grant_of(&f.acme, 0);
    ASSERT_INT_EQ(tn__op_create(f.st, "noscope", &bad, 1, &o, key), TN_INVALID);
    ASSERT_INT_EQ(raw_scalar(f.dir, "SELECT count(*) FROM _operators"), 1);
    fixture_done(&f);
}

TEST(operator_token_bound_to_grant_and_checked_every_time) {
    fixture f;
    fixture_init(&f);
    tn__auth *a;
    ASSERT_OK(tn__auth_open(f.st, &a));
    tn__op_grant g = grant_of(&f.acme, TN__SCOPE_ITEMS_READ | TN__SCOPE_ITEMS_WRITE);
    tn__op_info o;
    char key[TN__API_KEY_LEN];
    ASSERT_OK(tn__op_create(f.st, "msp", &g, 1, &o, key));
    char *tok = NULL;
    const char *why = NULL;
    ASSERT_OK(tn__op_token_issue(a, key, "ACME", 0, 60, &tok, &why)); /* names: any case */
    char pl[512];
    token_payload(tok, pl, sizeof pl);
    ASSERT(strstr(pl, f.acme.id) == NULL && strstr(pl, f.globex.id) == NULL);
    char sub[64];
    snprintf(sub, sizeof sub, "\"sub\":\"tno.%s\"", o.op_id);
    ASSERT(strstr(pl, sub) != NULL);

    tn__key_info k;
    ASSERT_OK(tn__token_verify(a, tok, &k, &why));
    ASSERT_STR_EQ(k.tenant_id, f.acme.id);
    ASSERT_STR_EQ(k.operator_id, o.op_id);
    ASSERT_INT_EQ(k.scopes, TN__SCOPE_ITEMS_READ | TN__SCOPE_ITEMS_WRITE);

    /* Narrowing the grant narrows a token already issued. */
    ASSERT_OK(tn__op_grant_set(f.st, o.op_id, f.acme.id, TN__SCOPE_ITEMS_READ, NULL));
    ASSERT_OK(tn__token_verify(a, tok, &k, &why));
    ASSERT_INT_EQ(k.scopes, TN__SCOPE_ITEMS_READ);
    /* Removing it ends the token, and granting again does not bring it back:
     * tokens belong to the grant they were issued under. */
    ASSERT_OK(tn__op_grant_remove(f.st, o.op_id, f.acme.id));
    ASSERT_INT_EQ(tn__token_verify(a, tok, &k, &why), TN_DENIED);
    ASSERT(k.tenant_id[0] == '\0');
    ASSERT_INT_EQ(tn__op_grant_remove(f.st, o.op_id, f.acme.id), TN_NOTFOUND);
    ASSERT_OK(tn__op_grant_set(f.st, o.op_id, f.acme.id, TN__SCOPE_ITEMS_READ, NULL));
    ASSERT_INT_EQ(tn__token_verify(a, tok, &k, &why), TN_DENIED);
    /* A token issued under the new grant works; changing the grant's scopes
     * keeps it (narrowing narrows it, as above); removing and granting again
     * ends it too, however often. */
    char *tok2 = NULL;
    ASSERT_OK(tn__op_token_issue(a, key, "acme", 0, 60, &tok2, &why));
    ASSERT_OK(tn__token_verify(a, tok2, &k, &why));
    ASSERT_OK(tn__op_grant_set(f.st, o.op_id, f.acme.id,
                               TN__SCOPE_ITEMS_READ | TN__SCOPE_ITEMS_WRITE, NULL));
    ASSERT_OK(tn__token_verify(a, tok2, &k, &why));
    ASSERT_INT_EQ(k.scopes, TN__SCOPE_ITEMS_READ);
    for (int round = 0; round < 3; round++) {
        ASSERT_OK(tn__op_grant_remove(f.st, o.op_id, f.acme.id));
        ASSERT_OK(tn__op_grant_set(f.st, o.op_id, f.acme.id, TN__SCOPE_ITEMS_READ, NULL));
        ASSERT_INT_EQ(tn__token_verify(a, tok, &k, &why), TN_DENIED);
        ASSERT_INT_EQ(tn__token_verify(a, tok2, &k, &why), TN_DENIED);
    }
    free(tok2);

    /* No grant, unknown tenant, too many scopes, wrong secret: denied. */
    char *t2 = NULL;
    ASSERT_INT_EQ(tn__op_token_issue(a, key, "globex", 0, 60, &t2, &why), TN_DENIED);
    ASSERT_INT_EQ(tn__op_token_issue(a, key, "nobody", 0, 60, &t2, &why), TN_DENIED);
    ASSERT_INT_EQ(tn__op_token_issue(a, key, "acme", TN__SCOPE_FILES_READ, 60, &t2, &why),
                  TN_DENIED);
    char wrong[TN__API_KEY_LEN];
    memcpy(wrong, key, sizeof wrong);
    wrong[40] = wrong[40] == 'A' ? 'B' : 'A';
    ASSERT_INT_EQ(tn__op_token_issue(a, wrong, "acme", 0, 60, &t2, &why), TN_DENIED);
    ASSERT(t2 == NULL);
    /* A token for globex's items cannot be had by forging the subject. */
    ASSERT_INT_EQ(tn__op_token_lookup(f.st, "00000000000000000000000000000000", o.op_id, &k, &why),
                  TN_DENIED);

    /* Revocation ends every token and every new issue. */
    ASSERT_OK(tn__op_revoke(f.st, o.op_id));
    ASSERT_INT_EQ(tn__token_verify(a, tok, &k, &why), TN_DENIED);
    ASSERT_INT_EQ(tn__op_token_issue(a, key, "acme", 0, 60, &t2, &why), TN_DENIED);
    ASSERT_INT_EQ(tn__op_revoke(f.st, o.op_id), TN_NOTFOUND);
    ASSERT_INT_EQ(tn__op_grant_set(f.st, o.op_id, f.acme.id, TN__SCOPE_ITEMS_READ, NULL),
                  TN_NOTFOUND);
    free(tok);
    tn__auth_close(a);
    fixture_done(&f);
}

typedef struct audit_rows {
    int n, with_op, other_tenant;
    const char *tenant, *op;
} audit_rows;

static int count_event(const tn__audit_event *e, void *arg) {
    audit_rows *r = arg;
    r->n++;
    if (e->operator_id && strcmp(e->operator_id, r->op) == 0) r->with_op++;
    if (!e->tenant_id || strcmp(e->tenant_id, r->tenant) != 0) r->other_tenant++;
    return 0;
}

TEST(operator_audit_rows_carry_both_identities_and_filter_by_tenant) {
    fixture f;
    fixture_init(&f);
    tn__op_grant g[2] = {grant_of(&f.acme, TN__SCOPE_ALL), grant_of(&f.globex, TN__SCOPE_ALL)};
    tn__op_info o;
    char key[TN__API_KEY_LEN];
    ASSERT_OK(tn__op_create(f.st, "msp", g, 2, &o, key));
    ASSERT_OK(tn__auth_audit_op(f.st, "operator:x", o.op_id, f.acme.id, "operator.request", "GET"));
    audit_rows r = {.tenant = f.acme.id, .op = o.op_id};
    int64_t last;
    int more;
    ASSERT_OK(tn__audit_list(f.st, f.acme.id, 0, 1000, count_event, &r, &last, &more));
    ASSERT_INT_EQ(r.other_tenant, 0);
    ASSERT(r.with_op >= 2); /* the grant and the request */
    audit_rows all = {.tenant = f.acme.id, .op = o.op_id};
    ASSERT_OK(tn__audit_list(f.st, NULL, 0, 1000, count_event, &all, &last, &more));
    ASSERT(all.other_tenant > 0 && all.n > r.n);
    ASSERT_INT_EQ(tn__audit_list(f.st, "0c7e3f9a-1b2c-4d5e-8f90-123456789abc", 0, 10, count_event,
                                 &r, &last, &more),
                  TN_NOTFOUND);
    fixture_done(&f);
}

TEST(tenant_settings_validate_and_write_all_or_nothing) {
    fixture f;
    fixture_init(&f);
    tn__tenant_settings s, now;
    tn__tenant_settings_default(&s);
    s.rate_limit = 5;
    s.max_items = 10;
    s.sync_enabled = 0;
    s.sync_priority = 3;
    s.tombstone_days = 2;
    ASSERT_OK(tn__tenant_settings_update(f.st, f.acme.id, &s,
                                         TN__SET_RATE | TN__SET_MAX_ITEMS | TN__SET_SYNC |
                                             TN__SET_PRIORITY | TN__SET_TOMBSTONE,
                                         &now));
    ASSERT_OK(tn__tenant_settings_get(f.st, f.acme.id, &now));
    ASSERT(now.rate_limit == 5 && now.burst == 0);
    ASSERT_INT_EQ(now.max_items, 10);
    ASSERT_INT_EQ(now.max_file_bytes, -1);
    ASSERT_INT_EQ(now.sync_enabled, 0);
    ASSERT_INT_EQ(now.sync_priority, 3);
    ASSERT_INT_EQ(now.tombstone_days, 2);
    /* Only the masked fields change. */
    tn__tenant_settings v;
    tn__tenant_settings_default(&v);
    v.max_file_bytes = 99;
    ASSERT_OK(tn__tenant_settings_update(f.st, f.acme.id, &v, TN__SET_MAX_FILE_BYTES, &now));
    ASSERT_INT_EQ(now.max_file_bytes, 99);
    ASSERT_INT_EQ(now.sync_priority, 3);
    /* Out of range: refused, nothing written, not even the valid part. */
    int bad_priority[] = {0, TN__PRIORITY_MAX + 1};
    for (int i = 0; i < 2; i++) {
        v.max_items = 1;
        v.sync_priority = bad_priority[i];
        ASSERT_INT_EQ(tn__tenant_settings_update(f.st, f.acme.id, &v,
                                                 TN__SET_MAX_ITEMS | TN__SET_PRIORITY, NULL),
                      TN_INVALID);
    }
    v.sync_priority = 1;
    v.tombstone_days = TN__TOMBSTONE_DAYS_MAX + 1;
    ASSERT_INT_EQ(tn__tenant_settings_update(f.st, f.acme.id, &v, TN__SET_MAX_ITEMS |
                                             TN__SET_TOMBSTONE, NULL), TN_INVALID);
    ASSERT_OK(tn__tenant_settings_get(f.st, f.acme.id, &now));
    ASSERT_INT_EQ(now.max_items, 10);
    ASSERT_INT_EQ(now.tombstone_days, 2);
    /* The other tenant keeps the defaults; the key lookup sees the quotas. */
    ASSERT_OK(tn__tenant_settings_get(f.st, f.globex.id, &now));
    ASSERT(now.rate_limit == 0 && now.max_items == -1 && now.sync_enabled == 1);
    /* Deleting the tenant removes its settings and grants. */
    tn__op_grant g = grant_of(&f.acme, TN__SCOPE_ALL);
    tn__op_info o;
    char key[TN__API_KEY_LEN];
    ASSERT_OK(tn__op_create(f.st, "msp", &g, 1, &o, key));
    tn_session_close(f.a);
    f.a = NULL;
    ASSERT_OK(tn_tenant_delete(f.st, f.acme.id));
    ASSERT_INT_EQ(raw_scalar(f.dir, "SELECT count(*) FROM _tenant_settings"), 0);
    ASSERT_INT_EQ(raw_scalar(f.dir, "SELECT count(*) FROM _operator_grants"), 0);
    fixture_done(&f);
}

static int count_of(const tn__batch *b, const char *tenant_id) {
    int n = 0;
    for (int i = 0; i < b->n; i++) n += strcmp(b->changes[i].tenant_id, tenant_id) == 0;
    return n;
}

static void put_many(tn_session *s, const char *prefix, int n) {
    char id[32];
    ASSERT_OK(tn_session_begin(s));
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "%s%03d", prefix, i);
        ASSERT_OK(tn_item_put(s, id, "{}", NULL));
    }
    ASSERT_OK(tn_session_commit(s));
}

TEST(outbox_skips_tenants_with_sync_off_and_weighs_priority) {
    fixture f;
    fixture_init(&f);
    put_many(f.a, "a", 60);
    put_many(f.g, "g", 60);
    tn__tenant_settings v;
    tn__tenant_settings_default(&v);
    v.sync_enabled = 0;
    ASSERT_OK(tn__tenant_settings_update(f.st, f.acme.id, &v, TN__SET_SYNC, NULL));
    tn__batch b;
    ASSERT_OK(tn__outbox_fetch(f.st, 200, 1000, &b));
    ASSERT_INT_EQ(count_of(&b, f.acme.id), 0);
    ASSERT_INT_EQ(count_of(&b, f.globex.id), 62);
    tn__batch_free(&b);
    int64_t rows = 0;
    ASSERT_OK(tn__outbox_pending_tenant(f.st, NULL, &rows));
    ASSERT_INT_EQ(rows, 62); /* what the engine can send */
    ASSERT_OK(tn__outbox_pending_tenant(f.st, f.acme.id, &rows));
    ASSERT_INT_EQ(rows, 61); /* still queued */

    /* Sync on again, acme at priority 3: three quarters of a batch. */
    v.sync_enabled = 1;
    v.sync_priority = 3;
    ASSERT_OK(tn__tenant_settings_update(f.st, f.acme.id, &v, TN__SET_SYNC | TN__SET_PRIORITY,
                                         NULL));
    ASSERT_OK(tn__outbox_fetch(f.st, 20, 1000, &b));
    ASSERT_INT_EQ(b.n, 20);
    ASSERT_INT_EQ(count_of(&b, f.acme.id), 15);
    ASSERT_INT_EQ(count_of(&b, f.globex.id), 5);
    tn__batch_free(&b);
    v.sync_priority = 1;
    ASSERT_OK(tn__tenant_settings_update(f.st, f.acme.id, &v, TN__SET_PRIORITY, NULL));
    ASSERT_OK(tn__outbox_fetch(f.st, 20, 1000, &b));
    ASSERT_INT_EQ(count_of(&b, f.acme.id), 10);
    tn__batch_free(&b);
    fixture_done(&f);
}

TEST(outbox_changes_carry_the_tenants_tombstone_retention) {
    fixture f;
    fixture_init(&f);
    tn__tenant_settings v;
    tn__tenant_settings_default(&v);
    v.tombstone_days = 2;
    ASSERT_OK(tn__tenant_settings_update(f.st, f.acme.id, &v, TN__SET_TOMBSTONE, NULL));
    ASSERT_OK(tn_item_delete(f.a, "shared-id", 0));
    ASSERT_OK(tn_item_delete(f.g, "shared-id", 0));
    tn__batch b;
    ASSERT_OK(tn__outbox_fetch(f.st, 100, 1000, &b));
    int seen = 0;
    for (int i = 0; i < b.n; i++) {
        const tn__change *ch = &b.changes[i];
        if (strcmp(ch->key, "shared-id") != 0) continue;
        seen++;
        ASSERT_INT_EQ(ch->deleted, 1);
        ASSERT_INT_EQ(ch->tombstone_ttl_s,
                      strcmp(ch->tenant_id, f.acme.id) == 0 ? 2 * 86400 : 0);
    }
    ASSERT_INT_EQ(seen, 2);
    tn__batch_free(&b);
    fixture_done(&f);
}

TEST(ratelimit_bucket_with_its_own_rate) {
    tn__rl *rl = tn__rl_new(100, 100, 64);
    ASSERT(rl != NULL);
    int64_t t = 1000000;
    /* rate 1/s, burst 2: two now, then one a second. */
    ASSERT_INT_EQ(tn__rl_take_at(rl, "t:x", 1, 2, t), 0);
    ASSERT_INT_EQ(tn__rl_take_at(rl, "t:x", 1, 2, t), 0);
    ASSERT_INT_EQ(tn__rl_take_at(rl, "t:x", 1, 2, t), 1);
    ASSERT_INT_EQ(tn__rl_take_at(rl, "t:x", 1, 2, t + 1000), 0);
    /* A smaller burst clamps what was saved up. */
    ASSERT_INT_EQ(tn__rl_take_at(rl, "t:y", 1, 5, t), 0); /* 4 left */
    ASSERT_INT_EQ(tn__rl_take_at(rl, "t:y", 1, 1, t), 0); /* clamped to 1 */
    ASSERT_INT_EQ(tn__rl_take_at(rl, "t:y", 1, 1, t), 1);
    /* The table's own rate still applies to other keys. */
    for (int i = 0; i < 100; i++) ASSERT_INT_EQ(tn__rl_take(rl, "key", t), 0);
    ASSERT(tn__rl_take(rl, "key", t) >= 1);
    tn__rl_free(rl);
}

static void stub_fn(sqlite3_context *c, int n, sqlite3_value **v) {
    (void)n, (void)v;
    sqlite3_result_int(c, 1);
}

/* A store made by the previous schema, quotas in _tenants.settings JSON. */
TEST(migration_moves_quotas_into_tenant_settings) {
    char dir[3800], path[4000], err[256] = "";
    snprintf(dir, sizeof dir, "%s/v2", tn_test_tmpdir());
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/tenantry.db", dir);
    sqlite3 *db;
    ASSERT_INT_EQ(sqlite3_open(path, &db), SQLITE_OK);
    /* The schema names the store's SQL functions; stand-ins let it load. */
    static const char *const fns[] = {"tn_json_valid", "tn_item_id_valid", "current_tenant",
                                      "tn_version", "tn_now", "tn_new_id"};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
        ASSERT_INT_EQ(sqlite3_create_function(db, fns[i], -1, SQLITE_UTF8, NULL, stub_fn, NULL,
                                              NULL),
                      SQLITE_OK);
    ASSERT(tn__migration_count >= 3);
    int mrc = tn__migrate(db, tn__migrations, 2, err, sizeof err);
    if (mrc != TN_OK) TN_FAIL_("migrate to 2: %s", err);
    ASSERT_INT_EQ(sqlite3_exec(db,
                               "INSERT INTO _tenants (id, name, created_at, settings) VALUES "
                               "('0c7e3f9a-1b2c-4d5e-8f90-123456789abc', 'old', 1, "
                               "'{\"max_items\":7,\"max_file_bytes\":100,\"other\":1}'),"
                               "('1c7e3f9a-1b2c-4d5e-8f90-123456789abc', 'plain', 1, '{}')",
                               NULL, NULL, NULL),
                  SQLITE_OK);
    sqlite3_close(db);
    tn_store *st;
    ASSERT_OK(tn_open(dir, NULL, &st));
    tn__tenant_settings s;
    ASSERT_OK(tn__tenant_settings_get(st, "0c7e3f9a-1b2c-4d5e-8f90-123456789abc", &s));
    ASSERT_INT_EQ(s.max_items, 7);
    ASSERT_INT_EQ(s.max_file_bytes, 100);
    ASSERT_INT_EQ(s.sync_enabled, 1);
    ASSERT_OK(tn__tenant_settings_get(st, "1c7e3f9a-1b2c-4d5e-8f90-123456789abc", &s));
    ASSERT_INT_EQ(s.max_items, -1);
    tn_close(st);
    ASSERT_INT_EQ(raw_scalar(dir, "SELECT count(*) FROM _tenant_settings"), 1);
    ASSERT_INT_EQ(raw_scalar(dir, "SELECT count(*) FROM _tenants WHERE settings = '{\"other\":1}'"),
                  1);
    ASSERT_INT_EQ(raw_scalar(dir, "SELECT count(*) FROM pragma_table_info('_audit') "
                                  "WHERE name = 'operator'"), 1);
}

/* A store from before grant generations: its grants and tokens are valid
 * after the upgrade, and end for good when the grant is removed, even if it
 * is given again. */
TEST(migration_keeps_tokens_until_their_grant_is_removed) {
    char dir[3800], path[4000], err[256] = "";
    snprintf(dir, sizeof dir, "%s/v4", tn_test_tmpdir());
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/tenantry.db", dir);
    sqlite3 *db;
    ASSERT_INT_EQ(sqlite3_open(path, &db), SQLITE_OK);
    static const char *const fns[] = {"tn_json_valid", "tn_item_id_valid", "current_tenant",
                                      "tn_version", "tn_now", "tn_new_id", "tn_file_writer",
                                      "tn_file_row_valid"};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
        ASSERT_INT_EQ(sqlite3_create_function(db, fns[i], -1, SQLITE_UTF8, NULL, stub_fn, NULL,
                                              NULL),
                      SQLITE_OK);
    ASSERT(tn__migration_count >= 5);
    int mrc = tn__migrate(db, tn__migrations, 4, err, sizeof err);
    if (mrc != TN_OK) TN_FAIL_("migrate to 4: %s", err);
    static const char op[] = "0123456789abcdef01234567", jti[] = "00112233445566778899aabbccddeeff";
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO _tenants (id, name, created_at) VALUES "
             "('0c7e3f9a-1b2c-4d5e-8f90-123456789abc', 'old', 1);"
             "INSERT INTO _operators (op_id, name, hash, salt, created_at) "
             "VALUES ('%s', 'msp', x'00', x'00', 1);"
             "INSERT INTO _operator_grants (op_id, tenant, scopes, created_at) "
             "VALUES ('%s', 1, 'items:read', 1);"
             "INSERT INTO _operator_tokens (jti, op_id, tenant, scopes, issued_at, expires_at) "
             "VALUES ('%s', '%s', 1, 'items:read', 1, 99999999999999)",
             op, op, jti, op);
    ASSERT_INT_EQ(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    tn_store *st;
    ASSERT_OK(tn_open(dir, NULL, &st));
    tn__key_info k;
    const char *why = NULL;
    ASSERT_OK(tn__op_token_lookup(st, jti, op, &k, &why));
    ASSERT_STR_EQ(k.tenant_name, "old");
    ASSERT_OK(tn__op_grant_set(st, op, "0c7e3f9a-1b2c-4d5e-8f90-123456789abc",
                               TN__SCOPE_ITEMS_READ | TN__SCOPE_ITEMS_WRITE, NULL));
    ASSERT_OK(tn__op_token_lookup(st, jti, op, &k, &why)); /* scopes changed: same grant */
    ASSERT_OK(tn__op_grant_remove(st, op, "0c7e3f9a-1b2c-4d5e-8f90-123456789abc"));
    ASSERT_OK(tn__op_grant_set(st, op, "0c7e3f9a-1b2c-4d5e-8f90-123456789abc",
                               TN__SCOPE_ITEMS_READ, NULL));
    ASSERT_INT_EQ(tn__op_token_lookup(st, jti, op, &k, &why), TN_DENIED);
    tn_close(st);
}
