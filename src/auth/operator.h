/*
 * operator.h - operator keys: a service provider acting for the tenants it
 * manages (schema/003_operators.sql).
 *
 * Key format: "tno_" <operator id: 24 lowercase hex digits> "_" <43 base64url
 * characters>, made and checked exactly like an API key (auth.h: keyed
 * BLAKE2b-256, constant-time compare).  The admin grants an operator tenants,
 * each with a set of scopes.
 *
 * An operator asks for a token with its key and a tenant's *name*; the grant
 * is checked and a token row (_operator_tokens, keyed by the JWT's jti) binds
 * the token to that (operator, tenant) pair and the scopes asked for.  The
 * token's subject is "tno." <operator id>: it names no tenant.  On every
 * request the token row, the operator (not revoked) and the grant (still
 * there) are looked up together, and the request runs as an ordinary tenant
 * session with the scopes of the token that the grant still allows, so
 * removing a grant or revoking the operator takes effect on the next request.
 * A token belongs to the grant it was issued under (its generation): a grant
 * removed and given again does not bring the earlier tokens back.
 *
 * Every function borrows a trusted connection for one statement or
 * transaction; changes append their audit event in the same transaction.
 */
#ifndef TN_OPERATOR_H
#define TN_OPERATOR_H

#include "auth.h"

#define TN__OP_PREFIX "tno_"
#define TN__OP_SUB_PREFIX "tno."
#define TN__OP_NAME_MAX 128

typedef struct tn__op_info {
    char op_id[TN__KEY_ID_LEN + 1];
    char name[TN__OP_NAME_MAX + 1];
    int64_t created_at, revoked_at; /* ms; revoked_at 0 = live */
} tn__op_info;

typedef struct tn__op_grant {
    char tenant_id[37];
    char tenant_name[TN_TENANT_NAME_MAX + 1];
    unsigned scopes;
    int64_t created_at;
} tn__op_grant;

/* A new operator named name (1-128 printable characters, unique regardless
 * of case) with the grants in g[0..n) (tenant_id and scopes are read).  The
 * key text (shown once) goes to key. */
int tn__op_create(tn_store *st, const char *name, const tn__op_grant *g, int n,
                  tn__op_info *out, char key[TN__API_KEY_LEN]);
/* An operator by id or by name, whatever its state. */
int tn__op_get(tn_store *st, const char *id_or_name, tn__op_info *out);
/* Every operator, oldest first; for each, fn once with grant NULL, then
 * once per grant.  Non-zero from fn stops. */
typedef int (*tn__opr_fn)(const tn__op_info *op, const tn__op_grant *grant, void *arg);
int tn__op_list(tn_store *st, tn__opr_fn fn, void *arg);
/* Adds a grant or replaces its scopes.  TN_NOTFOUND for an unknown or
 * revoked operator or an unknown tenant.  *created: 1 when it is new. */
int tn__op_grant_set(tn_store *st, const char *op_id, const char *tenant_id, unsigned scopes,
                     int *created);
/* Removes a grant.  TN_NOTFOUND when there is none. */
int tn__op_grant_remove(tn_store *st, const char *op_id, const char *tenant_id);
/* Revokes the operator at once (its tokens die with it).  TN_NOTFOUND for an
 * unknown or already revoked operator. */
int tn__op_revoke(tn_store *st, const char *op_id);

/* POST /v1/auth with an operator key: checks the key and the grant for the
 * tenant named tenant_name, and mints a token for ttl seconds with scopes
 * want (0: all the grant allows) and records it.  TN_DENIED (reason in *why)
 * for a bad key, an unknown tenant, no grant, or scopes outside the grant. */
int tn__op_token_issue(tn__auth *a, const char *op_key, const char *tenant_name, unsigned want,
                       int ttl, char **token, const char **why);
/* The caller behind an operator token (auth.c's tn__token_verify calls it):
 * *out gets the tenant (with its settings), the effective scopes, and the
 * operator id.  TN_DENIED when anything no longer holds. */
int tn__op_token_lookup(tn_store *st, const char *jti, const char *op_id, tn__key_info *out,
                        const char **why);
/* 1 when the live operator op_id has a grant on the tenant named name; its
 * id then goes to tenant_id. */
int tn__op_granted(tn_store *st, const char *op_id, const char *name, char tenant_id[37]);

#endif
