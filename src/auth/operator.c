/*
 * operator.c - operator keys, their grants and their tokens (see operator.h).
 *
 * Locking: none of its own; every call borrows a trusted pooled connection
 * for one statement or one transaction.  A change and its audit row commit
 * together.  The per-request check (tn__op_token_lookup) is one indexed
 * SELECT joining the token row, the operator, the grant and the tenant.
 */
#include "operator.h"

#include "conn.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char SQL_OP_INSERT[] =
    "INSERT INTO _operators (op_id, name, hash, salt, created_at) VALUES (?1, ?2, ?3, ?4, ?5)";
static const char SQL_OP_ROW[] =
    "SELECT op_id, name, created_at, revoked_at, hash, salt FROM _operators "
    " WHERE op_id = ?1 OR name = ?1";
static const char SQL_OP_LIST[] =
    "SELECT o.op_id, o.name, o.created_at, o.revoked_at, t.id, t.name, g.scopes, g.created_at "
    "  FROM _operators o LEFT JOIN _operator_grants g ON g.op_id = o.op_id "
    "  LEFT JOIN _tenants t ON t.tid = g.tenant "
    " ORDER BY o.created_at, o.op_id, t.name";
/* A new grant's generation is above every token the pair was ever issued
 * (schema/005_grant_generations.sql); changing the scopes keeps it. */
static const char SQL_GRANT_PUT[] =
    "INSERT INTO _operator_grants (op_id, tenant, scopes, created_at, gen) "
    "VALUES (?1, ?2, ?3, ?4, "
    "        (SELECT coalesce(max(gen), 0) + 1 FROM _operator_tokens "
    "          WHERE op_id = ?1 AND tenant = ?2)) "
    "ON CONFLICT (op_id, tenant) DO UPDATE SET scopes = excluded.scopes";
static const char SQL_GRANT_HAS[] =
    "SELECT 1 FROM _operator_grants WHERE op_id = ?1 AND tenant = ?2";
static const char SQL_GRANT_DEL[] = "DELETE FROM _operator_grants WHERE op_id = ?1 AND tenant = ?2";
static const char SQL_OP_REVOKE[] =
    "UPDATE _operators SET revoked_at = ?2 WHERE op_id = ?1 AND revoked_at IS NULL";
/* The grant of a live operator on the tenant with this name. */
static const char SQL_GRANT_BY_NAME[] =
    "SELECT t.tid, t.id, g.scopes, g.gen FROM _tenants t "
    "  JOIN _operator_grants g ON g.tenant = t.tid AND g.op_id = ?1 "
    "  JOIN _operators o ON o.op_id = g.op_id AND o.revoked_at IS NULL "
    " WHERE t.name = ?2";
static const char SQL_TOKEN_INSERT[] =
    "INSERT INTO _operator_tokens (jti, op_id, tenant, scopes, issued_at, expires_at, gen) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
/* Everything a request needs, and nothing when any link is gone: the token
 * must be of the grant that is there now, not of an earlier one. */
static const char SQL_TOKEN_CHECK[] =
    "SELECT t.id, t.name, k.scopes, g.scopes, k.issued_at, k.expires_at, "
    "       s.max_items, s.max_file_bytes, s.rate_limit, s.burst "
    "  FROM _operator_tokens k "
    "  JOIN _operators o ON o.op_id = k.op_id AND o.revoked_at IS NULL "
    "  JOIN _operator_grants g ON g.op_id = k.op_id AND g.tenant = k.tenant AND g.gen = k.gen "
    "  JOIN _tenants t ON t.tid = k.tenant "
    "  LEFT JOIN _tenant_settings s ON s.tenant = k.tenant "
    " WHERE k.jti = ?1 AND k.op_id = ?2";
/* Tokens that expired a day ago are of no use even to the audit. */
static const char SQL_TOKEN_PURGE[] = "DELETE FROM _operator_tokens WHERE expires_at < ?1";

static unsigned scopes_of(sqlite3_stmt *q, int col) {
    unsigned m = 0;
    const char *t = (const char *)sqlite3_column_text(q, col);
    return t && tn__scopes_parse(t, &m) == TN_OK ? m : 0;
}

static int name_valid(const char *n) {
    size_t len = n ? strlen(n) : 0;
    /* A name never looks like an id: lookups take either. */
    if (len < 1 || len > TN__OP_NAME_MAX || tn__key_id_valid(n)) return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = n[i];
        int alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9');
        if (!alnum && (i == 0 || (ch != '.' && ch != '_' && ch != '-'))) return 0;
    }
    return 1;
}

static void op_row(sqlite3_stmt *q, tn__op_info *o) {
    memset(o, 0, sizeof *o);
    snprintf(o->op_id, sizeof o->op_id, "%s", (const char *)sqlite3_column_text(q, 0));
    snprintf(o->name, sizeof o->name, "%s", (const char *)sqlite3_column_text(q, 1));
    o->created_at = sqlite3_column_int64(q, 2);
    o->revoked_at = sqlite3_column_int64(q, 3);
}

/* The operator by id or name on c; hash and salt optional. */
static int read_op(tn__conn *c, const char *id_or_name, tn__op_info *o, unsigned char *hash,
                   unsigned char *salt) {
    sqlite3_stmt *q;
    int rc = tn__stmt(c, SQL_OP_ROW, &q);
    if (rc != TN_OK) return rc;
    sqlite3_bind_text(q, 1, id_or_name, -1, SQLITE_STATIC);
    int src = sqlite3_step(q);
    if (src == SQLITE_ROW) {
        op_row(q, o);
        if (hash && salt) {
            if (sqlite3_column_bytes(q, 4) == TN__HASH_LEN &&
                sqlite3_column_bytes(q, 5) == TN__SALT_LEN) {
                memcpy(hash, sqlite3_column_blob(q, 4), TN__HASH_LEN);
                memcpy(salt, sqlite3_column_blob(q, 5), TN__SALT_LEN);
            } else {
                rc = TN_CORRUPT;
            }
        }
    } else {
        rc = src == SQLITE_DONE ? tn__fail(c->st, TN_NOTFOUND, "no such operator")
                                : tn__fail_db(c->st, c, src);
    }
    sqlite3_reset(q);
    return rc;
}

static int put_grant(tn__conn *c, const char *op_id, int64_t tid, unsigned scopes) {
    char text[TN__SCOPES_TEXT_MAX];
    tn__scopes_format(scopes, text);
    sqlite3_stmt *q;
    int rc = tn__stmt(c, SQL_GRANT_PUT, &q);
    if (rc != TN_OK) return rc;
    sqlite3_bind_text(q, 1, op_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, tid);
    sqlite3_bind_text(q, 3, text, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 4, tn__now_ms(c->st));
    return tn__step_done(c, q);
}

static int audit(tn__conn *c, int64_t tid, const char *action, const char *op_id,
                 const char *detail) {
    static const char sql[] = "INSERT INTO _audit (at, actor, tenant, action, detail, operator) "
                              "VALUES (?1, 'admin', ?2, ?3, ?4, ?5)";
    sqlite3_stmt *q;
    int rc = tn__stmt(c, sql, &q);
    if (rc != TN_OK) return rc;
    sqlite3_bind_int64(q, 1, tn__now_ms(c->st));
    if (tid > 0) sqlite3_bind_int64(q, 2, tid);
    sqlite3_bind_text(q, 3, action, -1, SQLITE_STATIC);
    if (detail) sqlite3_bind_text(q, 4, detail, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 5, op_id, -1, SQLITE_STATIC);
    return tn__step_done(c, q);
}

/* ---- create ----------------------------------------------------------------- */

typedef struct create_args {
    const char *name;
    const tn__op_grant *g;
    int n;
    char id[TN__KEY_ID_LEN + 1];
    unsigned char salt[TN__SALT_LEN], hash[TN__HASH_LEN];
    tn__op_info *out;
} create_args;

static int create_body(tn__conn *c, void *arg) {
    create_args *a = arg;
    sqlite3_stmt *q;
    int rc = tn__stmt(c, SQL_OP_INSERT, &q);
    if (rc != TN_OK) return rc;
    sqlite3_bind_text(q, 1, a->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, a->name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(q, 3, a->hash, TN__HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(q, 4, a->salt, TN__SALT_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(q, 5, tn__now_ms(c->st));
    int src = sqlite3_step(q);
    sqlite3_reset(q);
    if ((src & 0xff) == SQLITE_CONSTRAINT)
        return tn__fail(c->st, TN_EXISTS, "an operator with that name exists");
    if (src != SQLITE_DONE) return tn__fail_db(c->st, c, src);
    if ((rc = audit(c, 0, "operator.create", a->id, a->name)) != TN_OK) return rc;
    for (int i = 0; rc == TN_OK && i < a->n; i++) {
        int64_t tid = 0;
        char scopes[TN__SCOPES_TEXT_MAX];
        tn__scopes_format(a->g[i].scopes, scopes);
        rc = tn__tenant_tid(c, a->g[i].tenant_id, &tid);
        if (rc == TN_OK) rc = put_grant(c, a->id, tid, a->g[i].scopes);
        if (rc == TN_OK) rc = audit(c, tid, "operator.grant", a->id, scopes);
    }
    if (rc == TN_OK && a->out) rc = read_op(c, a->id, a->out, NULL, NULL);
    return rc;
}

int tn__op_create(tn_store *st, const char *name, const tn__op_grant *g, int n,
                  tn__op_info *out, char key[TN__API_KEY_LEN]) {
    if (!name_valid(name) || n < 0)
        return tn__fail(st, TN_INVALID,
                        "an operator name is 1-128 characters of A-Z a-z 0-9 . _ -");
    for (int i = 0; i < n; i++)
        if (!g[i].scopes || (g[i].scopes & ~(unsigned)TN__SCOPE_ALL))
            return tn__fail(st, TN_INVALID, "bad scopes");
    create_args a = {.name = name, .g = g, .n = n, .out = out};
    int rc = tn__secret_new(TN__OP_PREFIX, key, a.id, a.salt, a.hash);
    if (rc != TN_OK) return tn__fail(st, rc, "no random source");
    rc = tn__trusted_tx(st, create_body, &a);
    if (rc != TN_OK) sodium_memzero(key, TN__API_KEY_LEN);
    return rc;
}

int tn__op_get(tn_store *st, const char *id_or_name, tn__op_info *out) {
    if (!id_or_name) return tn__fail(st, TN_NOTFOUND, "no such operator");
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    rc = read_op(c, id_or_name, out, NULL, NULL);
    tn__conn_put(st, c);
    return rc;
}

int tn__op_list(tn_store *st, tn__opr_fn fn, void *arg) {
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    sqlite3_stmt *q;
    if ((rc = tn__stmt(c, SQL_OP_LIST, &q)) == TN_OK) {
        int src;
        tn__op_info o, prev;
        memset(&prev, 0, sizeof prev);
        while ((src = sqlite3_step(q)) == SQLITE_ROW) {
            op_row(q, &o);
            if (strcmp(o.op_id, prev.op_id) != 0) {
                prev = o;
                if (fn(&o, NULL, arg)) break;
            }
            if (sqlite3_column_type(q, 4) == SQLITE_NULL) continue;
            tn__op_grant g = {.scopes = scopes_of(q, 6), .created_at = sqlite3_column_int64(q, 7)};
            snprintf(g.tenant_id, sizeof g.tenant_id, "%s",
                     (const char *)sqlite3_column_text(q, 4));
            snprintf(g.tenant_name, sizeof g.tenant_name, "%s",
                     (const char *)sqlite3_column_text(q, 5));
            if (fn(&o, &g, arg)) break;
        }
        if (src != SQLITE_ROW && src != SQLITE_DONE) rc = tn__fail_db(st, c, src);
        sqlite3_reset(q);
    }
    tn__conn_put(st, c);
    return rc;
}

/* ---- grants and revocation --------------------------------------------------- */

typedef struct grant_args {
    const char *op_id, *tenant_id;
    unsigned scopes;
    int remove, created;
} grant_args;

static int grant_body(tn__conn *c, void *arg) {
    grant_args *a = arg;
    tn__op_info o;
    int64_t tid = 0;
    int rc = read_op(c, a->op_id, &o, NULL, NULL);
    if (rc == TN_OK && (o.revoked_at || strcmp(o.op_id, a->op_id) != 0))
        rc = tn__fail(c->st, TN_NOTFOUND, "no such operator");
    if (rc == TN_OK) rc = tn__tenant_tid(c, a->tenant_id, &tid);
    if (rc != TN_OK) return rc;
    sqlite3_stmt *q;
    if ((rc = tn__stmt(c, a->remove ? SQL_GRANT_DEL : SQL_GRANT_HAS, &q)) != TN_OK) return rc;
    sqlite3_bind_text(q, 1, a->op_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, tid);
    int src = sqlite3_step(q);
    sqlite3_reset(q);
    if (src != SQLITE_ROW && src != SQLITE_DONE) return tn__fail_db(c->st, c, src);
    if (a->remove) {
        if (!sqlite3_changes(c->db)) return tn__fail(c->st, TN_NOTFOUND, "no such grant");
        return audit(c, tid, "operator.ungrant", a->op_id, NULL);
    }
    a->created = src == SQLITE_DONE;
    char scopes[TN__SCOPES_TEXT_MAX];
    tn__scopes_format(a->scopes, scopes);
    if ((rc = put_grant(c, a->op_id, tid, a->scopes)) != TN_OK) return rc;
    return audit(c, tid, "operator.grant", a->op_id, scopes);
}

int tn__op_grant_set(tn_store *st, const char *op_id, const char *tenant_id, unsigned scopes,
                     int *created) {
    if (!scopes || (scopes & ~(unsigned)TN__SCOPE_ALL))
        return tn__fail(st, TN_INVALID, "bad scopes");
    if (!tn__key_id_valid(op_id)) return tn__fail(st, TN_NOTFOUND, "no such operator");
    grant_args a = {.op_id = op_id, .tenant_id = tenant_id, .scopes = scopes};
    int rc = tn__trusted_tx(st, grant_body, &a);
    if (created) *created = a.created;
    return rc;
}

int tn__op_grant_remove(tn_store *st, const char *op_id, const char *tenant_id) {
    if (!tn__key_id_valid(op_id)) return tn__fail(st, TN_NOTFOUND, "no such operator");
    grant_args a = {.op_id = op_id, .tenant_id = tenant_id, .remove = 1};
    return tn__trusted_tx(st, grant_body, &a);
}

static int revoke_body(tn__conn *c, void *arg) {
    const char *op_id = arg;
    sqlite3_stmt *q;
    int rc = tn__stmt(c, SQL_OP_REVOKE, &q);
    if (rc != TN_OK) return rc;
    sqlite3_bind_text(q, 1, op_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, tn__now_ms(c->st));
    if ((rc = tn__step_done(c, q)) != TN_OK) return rc;
    if (!sqlite3_changes(c->db)) return tn__fail(c->st, TN_NOTFOUND, "no such operator");
    return audit(c, 0, "operator.revoke", op_id, NULL);
}

int tn__op_revoke(tn_store *st, const char *op_id) {
    if (!tn__key_id_valid(op_id)) return tn__fail(st, TN_NOTFOUND, "no such operator");
    return tn__trusted_tx(st, revoke_body, (void *)op_id);
}

/* ---- tokens ------------------------------------------------------------------- */

typedef struct issue_args {
    const char *op_id, *tenant_name;
    unsigned want, scopes;
    const char *jti;
    int64_t now, expires_at;
    int64_t tid, gen;
    const char *why;
} issue_args;

/* Checks the grant and records the token in one transaction, so a grant
 * removed concurrently either precedes the token (refused) or ends it. */
static int issue_body(tn__conn *c, void *arg) {
    issue_args *a = arg;
    sqlite3_stmt *q;
    int rc = tn__stmt(c, SQL_GRANT_BY_NAME, &q);
    if (rc != TN_OK) return rc;
    sqlite3_bind_text(q, 1, a->op_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, a->tenant_name, -1, SQLITE_STATIC);
    int src = sqlite3_step(q);
    unsigned grant = 0;
    if (src == SQLITE_ROW) {
        a->tid = sqlite3_column_int64(q, 0);
        grant = scopes_of(q, 2);
        a->gen = sqlite3_column_int64(q, 3);
    }
    sqlite3_reset(q);
    if (src != SQLITE_ROW && src != SQLITE_DONE) return tn__fail_db(c->st, c, src);
    if (src == SQLITE_DONE || !grant) {
        a->why = "no grant for that tenant";
        return TN_DENIED;
    }
    a->scopes = a->want ? a->want : grant;
    if (a->scopes & ~grant) {
        a->why = "scopes outside the grant";
        return TN_DENIED;
    }
    /* Keep the table small: expired tokens are dead weight. */
    if ((rc = tn__stmt(c, SQL_TOKEN_PURGE, &q)) != TN_OK) return rc;
    sqlite3_bind_int64(q, 1, a->now - 86400 * 1000LL);
    if ((rc = tn__step_done(c, q)) != TN_OK) return rc;
    char text[TN__SCOPES_TEXT_MAX];
    tn__scopes_format(a->scopes, text);
    if ((rc = tn__stmt(c, SQL_TOKEN_INSERT, &q)) != TN_OK) return rc;
    sqlite3_bind_text(q, 1, a->jti, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, a->op_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, a->tid);
    sqlite3_bind_text(q, 4, text, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 5, a->now);
    sqlite3_bind_int64(q, 6, a->expires_at);
    sqlite3_bind_int64(q, 7, a->gen);
    if ((rc = tn__step_done(c, q)) != TN_OK) return rc;
    static const char sql[] = "INSERT INTO _audit (at, actor, tenant, action, detail, operator) "
                              "VALUES (?1, ?2, ?3, 'operator.token', ?4, ?5)";
    if ((rc = tn__stmt(c, sql, &q)) != TN_OK) return rc;
    char actor[8 + TN__KEY_ID_LEN + 1];
    snprintf(actor, sizeof actor, "operator:%s", a->op_id);
    sqlite3_bind_int64(q, 1, a->now);
    sqlite3_bind_text(q, 2, actor, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 3, a->tid);
    sqlite3_bind_text(q, 4, text, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 5, a->op_id, -1, SQLITE_STATIC);
    return tn__step_done(c, q);
}

int tn__op_token_issue(tn__auth *a, const char *op_key, const char *tenant_name, unsigned want,
                       int ttl, char **token, const char **why) {
    tn_store *st = tn__auth_store(a);
    *token = NULL;
    *why = "malformed operator key";
    char id[TN__KEY_ID_LEN + 1];
    if (!tn__secret_parse(TN__OP_PREFIX, op_key, id)) return TN_DENIED;
    if (want & ~(unsigned)TN__SCOPE_ALL) return TN_INVALID;
    unsigned char hash[TN__HASH_LEN], salt[TN__SALT_LEN];
    tn__op_info o;
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    rc = read_op(c, id, &o, hash, salt);
    tn__conn_put(st, c);
    if (rc == TN_NOTFOUND) {
        *why = "unknown operator";
        return TN_DENIED;
    }
    if (rc != TN_OK) return rc;
    if (strcmp(o.op_id, id) != 0 || !tn__secret_check(op_key, salt, hash)) {
        *why = "wrong operator secret";
        return TN_DENIED;
    }
    if (o.revoked_at) {
        *why = "revoked operator";
        return TN_DENIED;
    }
    char sub[sizeof TN__OP_SUB_PREFIX + TN__KEY_ID_LEN], jti[33];
    snprintf(sub, sizeof sub, "%s%s", TN__OP_SUB_PREFIX, id);
    if ((rc = tn__token_mint_sub(a, sub, ttl, jti, token)) != TN_OK) return rc;
    int64_t now = tn__now_ms(st);
    issue_args ia = {.op_id = id, .tenant_name = tenant_name, .want = want, .jti = jti,
                     .now = now, .expires_at = (now / 1000 + ttl) * 1000};
    rc = tn__trusted_tx(st, issue_body, &ia);
    if (rc != TN_OK) {
        if (rc == TN_DENIED) *why = ia.why;
        sodium_memzero(*token, strlen(*token));
        free(*token);
        *token = NULL;
    }
    return rc;
}

int tn__op_token_lookup(tn_store *st, const char *jti, const char *op_id, tn__key_info *out,
                        const char **why) {
    memset(out, 0, sizeof *out);
    *why = "malformed operator token";
    if (!tn__key_id_valid(op_id) || !jti || strlen(jti) != 32) return TN_DENIED;
    tn__conn *c;
    int rc = tn__conn_get(st, 1, &c);
    if (rc != TN_OK) return rc;
    sqlite3_stmt *q;
    if ((rc = tn__stmt(c, SQL_TOKEN_CHECK, &q)) == TN_OK) {
        sqlite3_bind_text(q, 1, jti, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, op_id, -1, SQLITE_STATIC);
        int src = sqlite3_step(q);
        if (src == SQLITE_ROW) {
            snprintf(out->tenant_id, sizeof out->tenant_id, "%s",
                     (const char *)sqlite3_column_text(q, 0));
            snprintf(out->tenant_name, sizeof out->tenant_name, "%s",
                     (const char *)sqlite3_column_text(q, 1));
            out->scopes = scopes_of(q, 2) & scopes_of(q, 3);
            out->created_at = sqlite3_column_int64(q, 4);
            out->expires_at = sqlite3_column_int64(q, 5);
            tn__key_row_settings(q, 6, out);
            snprintf(out->key_id, sizeof out->key_id, "%s", op_id);
            snprintf(out->operator_id, sizeof out->operator_id, "%s", op_id);
        } else if (src == SQLITE_DONE) {
            *why = "operator revoked, grant removed or token unknown";
            rc = TN_DENIED;
        } else {
            rc = tn__fail_db(st, c, src);
        }
        sqlite3_reset(q);
    }
    tn__conn_put(st, c);
    if (rc == TN_OK && out->expires_at <= tn__now_ms(st)) {
        *why = "expired operator token";
        rc = TN_DENIED;
    }
    if (rc == TN_OK && !out->scopes) {
        *why = "no scopes left in the grant";
        rc = TN_DENIED;
    }
    if (rc != TN_OK) memset(out, 0, sizeof *out);
    return rc;
}

int tn__op_granted(tn_store *st, const char *op_id, const char *name, char tenant_id[37]) {
    tenant_id[0] = '\0';
    tn__conn *c;
    if (!name || tn__conn_get(st, 1, &c) != TN_OK) return 0;
    sqlite3_stmt *q;
    int ok = 0;
    if (tn__stmt(c, SQL_GRANT_BY_NAME, &q) == TN_OK) {
        sqlite3_bind_text(q, 1, op_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW) {
            snprintf(tenant_id, 37, "%s", (const char *)sqlite3_column_text(q, 1));
            ok = 1;
        }
        sqlite3_reset(q);
    }
    tn__conn_put(st, c);
    return ok;
}
