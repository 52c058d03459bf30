/*
 * api_admin.c - POST /v1/auth (API key -> token) and the admin API
 * (/v1/admin/...): tenants, their keys, the audit log.
 *
 * Admin handlers run only after http.c verified X-Admin-Key; tenant ids are
 * visible here because only the admin sees these responses.  Key secrets
 * appear in exactly two responses: key creation and rotation.
 */
#include "api_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUDIT_DEFAULT 100
#define AUDIT_MAX 1000
#define MAX_SECONDS (100LL * 365 * 24 * 3600)

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A non-negative whole number of seconds from JSON: -1 absent, -2 bad. */
static int64_t seconds(const cJSON *body, const char *name, int64_t min) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
    if (!v) return -1;
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int64_t)v->valuedouble ||
        v->valuedouble < (double)min || v->valuedouble > (double)MAX_SECONDS)
        return -2;
    return (int64_t)v->valuedouble;
}

/* Request bodies that may be empty (rotate): {} then. */
static cJSON *body_or_empty(tn__req *r, tn__resp *out) {
    if (r->len == 0) return cJSON_CreateObject();
    return tn__req_json(r, out);
}

static cJSON *scopes_json(unsigned mask) {
    cJSON *a = cJSON_CreateArray();
    for (unsigned b = 1; a && b <= TN__SCOPE_FILES_WRITE; b <<= 1)
        if (mask & b) cJSON_AddItemToArray(a, cJSON_CreateString(tn__scope_name(b)));
    return a;
}

/* ---- POST /v1/auth --------------------------------------------------------- */

void tn__api_auth(tn__req *r, tn__resp *out) {
    cJSON *body = tn__req_json(r, out);
    if (!body) return;
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(body, "api_key");
    if (!cJSON_IsString(k)) {
        cJSON_Delete(body);
        tn__resp_error(out, 400, "bad request");
        return;
    }
    tn__key_info key;
    const char *why = "";
    int rc = tn__key_verify(r->srv->st, k->valuestring, &key, &why);
    cJSON_Delete(body);
    if (rc == TN_DENIED) {
        tn__auth_failed(r, why);
        tn__resp_error(out, 401, "unauthorized");
        return;
    }
    if (rc != TN_OK) {
        tn__resp_code(out, rc);
        return;
    }
    int wait = tn__rl_take(r->srv->key_rl, key.key_id, now_ms());
    if (wait) {
        atomic_fetch_add(&r->srv->rate_limited, 1);
        tn__resp_error(out, 429, "too many requests");
        out->retry_after = wait;
        return;
    }
    char *token = NULL;
    rc = tn__token_mint(r->srv->auth, key.key_id, r->srv->cfg.token_ttl, &token);
    if (rc != TN_OK) {
        tn__resp_code(out, rc);
        return;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "token", token);
    cJSON_AddStringToObject(j, "token_type", "Bearer");
    cJSON_AddItemToObject(j, "expires_in", tn__json_int(r->srv->cfg.token_ttl));
    sodium_memzero(token, strlen(token));
    free(token);
    tn__resp_json(out, 200, j);
}

/* ---- tenants --------------------------------------------------------------- */

static cJSON *tenant_json(tn__srv *srv, const tn_tenant *t, int with_items) {
    cJSON *j = cJSON_CreateObject(), *q = cJSON_CreateObject();
    if (!j || !q) {
        cJSON_Delete(j);
        cJSON_Delete(q);
        return NULL;
    }
    cJSON_AddStringToObject(j, "id", t->id);
    cJSON_AddStringToObject(j, "name", t->name);
    cJSON_AddItemToObject(j, "created_at", tn__json_time(t->created_at));
    if (with_items) cJSON_AddItemToObject(j, "items", tn__json_int(t->items));
    int64_t mi = -1, mf = -1;
    tn__tenant_quotas_get(srv->st, t->id, &mi, &mf);
    cJSON_AddItemToObject(q, "max_items", mi < 0 ? cJSON_CreateNull() : tn__json_int(mi));
    cJSON_AddItemToObject(q, "max_file_bytes", mf < 0 ? cJSON_CreateNull() : tn__json_int(mf));
    cJSON_AddItemToObject(j, "quotas", q);
    return j;
}

void tn__api_tenants_create(tn__req *r, tn__resp *out) {
    cJSON *body = tn__req_json(r, out);
    if (!body) return;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(body, "name");
    tn_tenant t;
    int rc = cJSON_IsString(name) ? tn_tenant_create(r->srv->st, name->valuestring, &t)
                                  : TN_INVALID;
    cJSON_Delete(body);
    if (rc == TN_OK) tn__resp_json(out, 201, tenant_json(r->srv, &t, 0));
    else tn__resp_code(out, rc);
}

typedef struct tenant_list {
    tn__srv *srv;
    tn_tenant *v;
    size_t n, cap;
} tenant_list;

/* Collected first: tenant_json queries the store, which must not happen
 * while tn_tenant_list holds its connection mid-statement. */
static int collect_tenant(const tn_tenant *t, void *arg) {
    tenant_list *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        tn_tenant *v = realloc(l->v, cap * sizeof *v);
        if (!v) return 1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *t;
    return 0;
}

void tn__api_tenants_list(tn__req *r, tn__resp *out) {
    tenant_list l = {.srv = r->srv};
    int rc = tn_tenant_list(r->srv->st, collect_tenant, &l);
    if (rc != TN_OK) {
        free(l.v);
        tn__resp_code(out, rc);
        return;
    }
    cJSON *j = cJSON_CreateObject(), *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < l.n; i++) cJSON_AddItemToArray(a, tenant_json(r->srv, &l.v[i], 1));
    free(l.v);
    cJSON_AddItemToObject(j, "tenants", a);
    tn__resp_json(out, 200, j);
}

/* A quota member: -1 absent (keep), -2 bad, -3 null (remove), else N >= 0. */
static int64_t quota(const cJSON *q, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(q, name);
    if (!v) return -1;
    if (cJSON_IsNull(v)) return -3;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9007199254740991.0 ||
        v->valuedouble != (double)(int64_t)v->valuedouble)
        return -2;
    return (int64_t)v->valuedouble;
}

/* The tenant the path names and the request's JSON body; NULL once *out
 * holds the error (404 for an unknown tenant, 400/415 for the body). */
static cJSON *tenant_and_body(tn__req *r, tn__resp *out, tn_tenant *t) {
    int rc = tn_tenant_get(r->srv->st, r->arg[0], t);
    if (rc != TN_OK) {
        tn__resp_code(out, rc);
        return NULL;
    }
    return tn__req_json(r, out);
}

void tn__api_tenant_patch(tn__req *r, tn__resp *out) {
    tn_tenant t;
    cJSON *body = tenant_and_body(r, out, &t);
    if (!body) return;
    int rc = TN_OK;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(body, "name");
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(body, "quotas");
    int64_t mi = q ? quota(q, "max_items") : -1, mf = q ? quota(q, "max_file_bytes") : -1;
    if ((name && !cJSON_IsString(name)) || (q && !cJSON_IsObject(q)) || mi == -2 || mf == -2) {
        cJSON_Delete(body);
        tn__resp_error(out, 400, "bad request");
        return;
    }
    if (name && strcmp(name->valuestring, t.name) != 0)
        rc = tn_tenant_rename(r->srv->st, t.id, name->valuestring);
    if (rc == TN_OK && q) {
        int64_t cur_i, cur_f;
        rc = tn__tenant_quotas_get(r->srv->st, t.id, &cur_i, &cur_f);
        if (mi != -1) cur_i = mi == -3 ? -1 : mi;
        if (mf != -1) cur_f = mf == -3 ? -1 : mf;
        if (rc == TN_OK) rc = tn__tenant_quotas_set(r->srv->st, t.id, cur_i, cur_f);
    }
    cJSON_Delete(body);
    if (rc == TN_OK) rc = tn_tenant_get(r->srv->st, t.id, &t);
    if (rc == TN_OK) tn__resp_json(out, 200, tenant_json(r->srv, &t, 0));
    else tn__resp_code(out, rc);
}

void tn__api_tenant_delete(tn__req *r, tn__resp *out) {
    int rc = tn_tenant_delete(r->srv->st, r->arg[0]);
    if (rc == TN_OK) tn__resp_empty(out, 204);
    else tn__resp_code(out, rc);
}

/* ---- keys ------------------------------------------------------------------ */

static cJSON *key_json(const tn__key_info *k, const char *secret) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddStringToObject(j, "key_id", k->key_id);
    if (secret) cJSON_AddStringToObject(j, "api_key", secret);
    cJSON_AddItemToObject(j, "scopes", scopes_json(k->scopes));
    cJSON_AddItemToObject(j, "created_at", tn__json_time(k->created_at));
    cJSON_AddItemToObject(j, "expires_at", tn__json_time(k->expires_at));
    if (!secret) {
        cJSON_AddItemToObject(j, "revoked_at", tn__json_time(k->revoked_at));
        int live = !k->revoked_at && (!k->expires_at || k->expires_at > now_ms());
        cJSON_AddBoolToObject(j, "active", live);
    }
    return j;
}

/* Scopes from a JSON array of names. */
static int scopes_of(const cJSON *a, unsigned *mask) {
    *mask = 0;
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) == 0) return TN_INVALID;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        unsigned m;
        if (!cJSON_IsString(e) || strchr(e->valuestring, ' ') || strchr(e->valuestring, ',') ||
            tn__scopes_parse(e->valuestring, &m) != TN_OK)
            return TN_INVALID;
        *mask |= m;
    }
    return TN_OK;
}

void tn__api_keys_create(tn__req *r, tn__resp *out) {
    tn_tenant t;
    cJSON *body = tenant_and_body(r, out, &t);
    if (!body) return;
    int rc = TN_OK;
    unsigned mask;
    int64_t exp = seconds(body, "expires_in", 1);
    rc = scopes_of(cJSON_GetObjectItemCaseSensitive(body, "scopes"), &mask);
    cJSON_Delete(body);
    if (rc != TN_OK || exp == -2) {
        tn__resp_error(out, 400, "bad request");
        return;
    }
    char key[TN__API_KEY_LEN];
    tn__key_info k;
    rc = tn__key_create(r->srv->st, t.id, mask, exp > 0 ? now_ms() + exp * 1000 : 0, &k, key);
    if (rc == TN_OK) tn__resp_json(out, 201, key_json(&k, key));
    else tn__resp_code(out, rc);
    sodium_memzero(key, sizeof key);
}

static int add_key(const tn__key_info *k, void *arg) {
    cJSON *j = key_json(k, NULL);
    if (!j) return 1;
    cJSON_AddItemToArray(arg, j);
    return 0;
}

void tn__api_keys_list(tn__req *r, tn__resp *out) {
    cJSON *j = cJSON_CreateObject(), *a = cJSON_CreateArray();
    int rc = j && a ? tn__key_list(r->srv->st, r->arg[0], add_key, a) : TN_NOMEM;
    if (rc != TN_OK) {
        cJSON_Delete(j);
        cJSON_Delete(a);
        tn__resp_code(out, rc);
        return;
    }
    cJSON_AddItemToObject(j, "keys", a);
    tn__resp_json(out, 200, j);
}

void tn__api_key_rotate(tn__req *r, tn__resp *out) {
    cJSON *body = body_or_empty(r, out);
    if (!body) return;
    int64_t overlap = seconds(body, "overlap_seconds", 0), exp = seconds(body, "expires_in", 1);
    cJSON_Delete(body);
    if (overlap == -2 || exp == -2) {
        tn__resp_error(out, 400, "bad request");
        return;
    }
    if (overlap == -1) overlap = TN__OVERLAP_DEFAULT_S;
    char key[TN__API_KEY_LEN];
    tn__key_info k;
    int64_t old_end = 0;
    int rc = TN_NOTFOUND;
    tn__key_info old;
    if (tn__key_get(r->srv->st, r->arg[0], &old) == TN_OK)
        rc = tn__key_rotate(r->srv->st, r->arg[0], overlap * 1000,
                            exp > 0 ? now_ms() + exp * 1000 : 0, &k, key, &old_end);
    if (rc != TN_OK) {
        tn__resp_code(out, rc);
        return;
    }
    cJSON *j = key_json(&k, key), *prev = cJSON_CreateObject();
    cJSON_AddStringToObject(prev, "key_id", r->arg[0]);
    cJSON_AddItemToObject(prev, "expires_at", tn__json_time(old_end));
    cJSON_AddItemToObject(j, "previous", prev);
    tn__resp_json(out, 201, j);
    sodium_memzero(key, sizeof key);
}

void tn__api_key_delete(tn__req *r, tn__resp *out) {
    tn__key_info k;
    int rc = tn__key_get(r->srv->st, r->arg[0], &k);
    if (rc == TN_OK) rc = tn__key_revoke(r->srv->st, r->arg[0]);
    if (rc == TN_OK) tn__resp_empty(out, 204);
    else tn__resp_code(out, rc);
}

/* ---- audit ----------------------------------------------------------------- */

static int add_event(const tn__audit_event *e, void *arg) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return 1;
    cJSON_AddItemToObject(j, "seq", tn__json_int(e->seq));
    cJSON_AddItemToObject(j, "at", tn__json_time(e->at));
    cJSON_AddStringToObject(j, "actor", e->actor ? e->actor : "");
    cJSON_AddItemToObject(j, "tenant_id",
                          e->tenant_id ? cJSON_CreateString(e->tenant_id) : cJSON_CreateNull());
    cJSON_AddStringToObject(j, "action", e->action ? e->action : "");
    cJSON_AddItemToObject(j, "detail", e->detail ? cJSON_CreateString(e->detail) : cJSON_CreateNull());
    cJSON_AddItemToArray(arg, j);
    return 0;
}

void tn__api_audit(tn__req *r, tn__resp *out) {
    int limit = tn__req_limit(r, AUDIT_DEFAULT, AUDIT_MAX);
    char *cursor = NULL;
    long long after = 0;
    int qc = tn__req_query(r, "cursor", &cursor);
    if (qc > 0) {
        char *end = NULL;
        errno = 0; /* an out-of-range cursor is refused, not clamped */
        after = cursor[0] >= '0' && cursor[0] <= '9' ? strtoll(cursor, &end, 10) : -1;
        if (after < 0 || errno || *end) qc = -1;
    }
    free(cursor);
    if (limit < 0 || qc < 0) {
        tn__resp_error(out, 400, "bad request");
        return;
    }
    cJSON *j = cJSON_CreateObject(), *a = cJSON_CreateArray();
    int64_t last = 0;
    int more = 0;
    int rc = j && a ? tn__audit_list(r->srv->st, after, limit, add_event, a, &last, &more)
                    : TN_NOMEM;
    if (rc != TN_OK) {
        cJSON_Delete(j);
        cJSON_Delete(a);
        tn__resp_code(out, rc);
        return;
    }
    cJSON_AddItemToObject(j, "events", a);
    char next[24];
    snprintf(next, sizeof next, "%lld", (long long)last);
    cJSON_AddItemToObject(j, "next_cursor", more ? cJSON_CreateString(next) : cJSON_CreateNull());
    tn__resp_json(out, 200, j);
}

/* GET /v1/admin/sync: every tenant's backlog, failures and last errors. */
void tn__api_admin_sync(tn__req *r, tn__resp *out) {
    tn__api_sync_json(r->srv->st, NULL, out);
}
