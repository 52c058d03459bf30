/*
 * api_admin.c - POST /v1/auth (API key or operator key -> token), the admin
 * API (/v1/admin/...): tenants and their settings, keys, operators, the audit
 * log; and the operator's own audit view (/v1/operator/audit).
 *
 * Admin handlers run only after router.c verified X-Admin-Key; tenant ids are
 * visible here because only the admin sees these responses.  The operator
 * handler names tenants by name only.  Key secrets appear in exactly three
 * responses: key creation, key rotation and operator creation.
 */
#include "clock.h"
#include "handlers.h"
#include "operator.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUDIT_DEFAULT 100
#define AUDIT_MAX 1000
#define MAX_SECONDS (100LL * 365 * 24 * 3600)


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

static int scopes_of(const cJSON *a, unsigned *mask);

/* The answer to POST /v1/auth once the credential was checked (rc, why; a
 * failure is charged to principal, see throttle.c) and, when it held, a
 * token minted; wipes and frees token. */
static void token_answer(tn__req *r, int rc, const char *why, const char *principal, char *token,
                         tn__resp *out) {
    if (rc == TN_DENIED) {
        int wait = tn__auth_failed(r, why, principal);
        tn__resp_error(out, wait ? 429 : 401, wait ? "too many requests" : "unauthorized");
        out->retry_after = wait;
    } else if (rc != TN_OK) {
        tn__resp_code(out, rc);
    } else {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "token", token);
        cJSON_AddStringToObject(j, "token_type", "Bearer");
        cJSON_AddItemToObject(j, "expires_in", tn__json_int(r->srv->cfg.token_ttl));
        tn__resp_json(out, 200, j);
    }
    if (token) sodium_memzero(token, strlen(token));
    free(token);
}

/* The bucket of a failed key: its own when the id exists ("k:<id>",
 * "o:<id>"), else "anon", so made-up ids share one budget. */
static const char *key_principal(char buf[8 + TN__KEY_ID_LEN], const char *kind, const char *id,
                                 int known) {
    if (!known || !id[0]) return "anon";
    snprintf(buf, 8 + TN__KEY_ID_LEN, "%s:%s", kind, id);
    return buf;
}

/* {"operator_key": "tno_…", "tenant": NAME, "scopes": [...] (optional)}. */
static void operator_auth(tn__req *r, cJSON *body, tn__resp *out) {
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(body, "operator_key");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "tenant");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(body, "scopes");
    unsigned want = 0;
    if (!cJSON_IsString(k) || !cJSON_IsString(t) || (sc && scopes_of(sc, &want) != TN_OK)) {
        tn__resp_error(out, 400, "bad request");
        return;
    }
    char id[TN__KEY_ID_LEN + 1] = "";
    if (tn__secret_parse(TN__OP_PREFIX, k->valuestring, id) && tn__key_throttled(r, id, out)) return;
    char *token = NULL;
    const char *why = "";
    int rc = tn__op_token_issue(r->srv->auth, k->valuestring, t->valuestring, want,
                                r->srv->cfg.token_ttl, &token, &why);
    char pb[8 + TN__KEY_ID_LEN];
    int known = strcmp(why, "unknown operator") != 0 && strcmp(why, "malformed operator key") != 0;
    token_answer(r, rc, why, key_principal(pb, "o", id, known), token, out);
}

void tn__api_auth(tn__req *r, tn__resp *out) {
    cJSON *body = tn__req_json(r, out);
    if (!body) return;
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(body, "api_key");
    if (!k && cJSON_GetObjectItemCaseSensitive(body, "operator_key")) {
        operator_auth(r, body, out);
        cJSON_Delete(body);
        return;
    }
    if (!cJSON_IsString(k)) {
        cJSON_Delete(body);
        tn__resp_error(out, 400, "bad request");
        return;
    }
    tn__key_info key;
    const char *why = "";
    char id[TN__KEY_ID_LEN + 1] = "";
    tn__key_parse(k->valuestring, id);
    int rc = tn__key_verify(r->srv->st, k->valuestring, &key, &why);
    cJSON_Delete(body);
    if (rc == TN_OK && tn__key_throttled(r, key.key_id, out)) return;
    char *token = NULL;
    if (rc == TN_OK) {
        rc = tn__token_mint(r->srv->auth, key.key_id, r->srv->cfg.token_ttl, &token);
        if (rc == TN_DENIED) rc = TN_ERROR; /* minting never means "unauthorized" */
    }
    char pb[8 + TN__KEY_ID_LEN];
    int known = strcmp(why, "unknown key") != 0 && strcmp(why, "malformed key") != 0;
    token_answer(r, rc, why, key_principal(pb, "k", id, known), token, out);
}

/* ---- tenants --------------------------------------------------------------- */

static cJSON *settings_json(const tn__tenant_settings *s) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddItemToObject(j, "rate_limit", s->rate_limit > 0 ? cJSON_CreateNumber(s->rate_limit)
                                                             : cJSON_CreateNull());
    cJSON_AddItemToObject(j, "burst", s->burst > 0 ? cJSON_CreateNumber(s->burst)
                                                   : cJSON_CreateNull());
    cJSON_AddItemToObject(j, "max_items",
                          s->max_items < 0 ? cJSON_CreateNull() : tn__json_int(s->max_items));
    cJSON_AddItemToObject(j, "max_file_bytes", s->max_file_bytes < 0
                                                   ? cJSON_CreateNull()
                                                   : tn__json_int(s->max_file_bytes));
    cJSON_AddBoolToObject(j, "sync", s->sync_enabled);
    cJSON_AddItemToObject(j, "sync_priority", tn__json_int(s->sync_priority));
    cJSON_AddItemToObject(j, "tombstone_days", s->tombstone_days > 0
                                                   ? tn__json_int(s->tombstone_days)
                                                   : cJSON_CreateNull());
    return j;
}

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
    tn__tenant_settings s;
    tn__tenant_settings_get(srv->st, t->id, &s);
    cJSON_AddItemToObject(q, "max_items",
                          s.max_items < 0 ? cJSON_CreateNull() : tn__json_int(s.max_items));
    cJSON_AddItemToObject(q, "max_file_bytes", s.max_file_bytes < 0
                                                   ? cJSON_CreateNull()
                                                   : tn__json_int(s.max_file_bytes));
    cJSON_AddItemToObject(j, "quotas", q);
    cJSON_AddItemToObject(j, "settings", settings_json(&s));
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

/*
 * One member of "settings" (or of the older "quotas"): null resets it to the
 * default.  Whole numbers must be exact; every bound is checked here, so a
 * body that passes is written in full or (on a store failure) not at all.
 * Returns the field's TN__SET_ bit, 0 for an unknown name, -1 for a bad value.
 */
static int setting(const cJSON *v, tn__tenant_settings *s) {
    const char *n = v->string;
    int null = cJSON_IsNull(v), num = cJSON_IsNumber(v);
    double d = num ? v->valuedouble : 0;
    int whole = num && d == (double)(int64_t)d;
    if (strcmp(n, "rate_limit") == 0 || strcmp(n, "burst") == 0) {
        int rate = n[0] == 'r';
        if (!null && !(num && d >= (rate ? 0.001 : 1) && d <= 1e6)) return -1;
        *(rate ? &s->rate_limit : &s->burst) = null ? 0 : d;
        return rate ? TN__SET_RATE : TN__SET_BURST;
    }
    if (strcmp(n, "max_items") == 0 || strcmp(n, "max_file_bytes") == 0) {
        int items = n[4] == 'i';
        if (!null && !(whole && d >= 0 && d <= 9007199254740991.0)) return -1;
        *(items ? &s->max_items : &s->max_file_bytes) = null ? -1 : (int64_t)d;
        return items ? TN__SET_MAX_ITEMS : TN__SET_MAX_FILE_BYTES;
    }
    if (strcmp(n, "sync") == 0) {
        if (!cJSON_IsBool(v)) return -1;
        s->sync_enabled = cJSON_IsTrue(v);
        return TN__SET_SYNC;
    }
    if (strcmp(n, "sync_priority") == 0) {
        if (!null && !(whole && d >= 1 && d <= TN__PRIORITY_MAX)) return -1;
        s->sync_priority = null ? 1 : (int)d;
        return TN__SET_PRIORITY;
    }
    if (strcmp(n, "tombstone_days") == 0) {
        if (!null && !(whole && d >= 1 && d <= TN__TOMBSTONE_DAYS_MAX)) return -1;
        s->tombstone_days = null ? 0 : (int)d;
        return TN__SET_TOMBSTONE;
    }
    return 0;
}

/* Reads an object of settings into s and *mask; an error message or NULL.
 * quotas_only: the older "quotas" object (max_items, max_file_bytes). */
static const char *settings_of(const cJSON *o, int quotas_only, tn__tenant_settings *s,
                               unsigned *mask) {
    if (!cJSON_IsObject(o)) return "bad value";
    const cJSON *v;
    cJSON_ArrayForEach(v, o) {
        int bit = setting(v, s);
        if (bit == 0 || (quotas_only && bit != TN__SET_MAX_ITEMS && bit != TN__SET_MAX_FILE_BYTES))
            return "unknown field";
        if (bit < 0) return "bad value";
        if (*mask & (unsigned)bit) return "duplicate field";
        *mask |= (unsigned)bit;
    }
    return NULL;
}

/* PATCH /v1/admin/tenants/{id}: {"name", "settings": {...}, "quotas": {...}}.
 * Everything is validated before anything is written. */
void tn__api_tenant_patch(tn__req *r, tn__resp *out) {
    tn_tenant t;
    cJSON *body = tenant_and_body(r, out, &t);
    if (!body) return;
    tn__tenant_settings s;
    tn__tenant_settings_default(&s);
    unsigned mask = 0;
    const char *bad = NULL;
    const cJSON *name = NULL, *v;
    cJSON_ArrayForEach(v, body) {
        if (bad) break;
        if (strcmp(v->string, "name") == 0) name = v;
        else if (strcmp(v->string, "settings") == 0) bad = settings_of(v, 0, &s, &mask);
        else if (strcmp(v->string, "quotas") == 0) bad = settings_of(v, 1, &s, &mask);
        else bad = "unknown field";
    }
    if (!bad && name && !cJSON_IsString(name)) bad = "bad value";
    if (bad) {
        cJSON_Delete(body);
        tn__resp_error(out, 400, bad);
        return;
    }
    int rc = TN_OK;
    /* The rename first: it is the only part that can still be refused (a
     * name in use), and then nothing at all has changed. */
    if (name && strcmp(name->valuestring, t.name) != 0)
        rc = tn_tenant_rename(r->srv->st, t.id, name->valuestring);
    if (rc == TN_OK && mask) rc = tn__tenant_settings_update(r->srv->st, t.id, &s, mask, NULL);
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
        int live = !k->revoked_at && (!k->expires_at || k->expires_at > tn__wall_ms());
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
    rc = tn__key_create(r->srv->st, t.id, mask, exp > 0 ? tn__wall_ms() + exp * 1000 : 0, &k, key);
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
                            exp > 0 ? tn__wall_ms() + exp * 1000 : 0, &k, key, &old_end);
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

typedef struct event_list {
    cJSON *a;
    int with_tenant; /* admin view: tenant ids; operator view: none */
} event_list;

static int add_event(const tn__audit_event *e, void *arg) {
    event_list *l = arg;
    cJSON *j = cJSON_CreateObject();
    if (!j) return 1;
    cJSON_AddItemToObject(j, "seq", tn__json_int(e->seq));
    cJSON_AddItemToObject(j, "at", tn__json_time(e->at));
    cJSON_AddStringToObject(j, "actor", e->actor ? e->actor : "");
    if (l->with_tenant)
        cJSON_AddItemToObject(j, "tenant_id", e->tenant_id ? cJSON_CreateString(e->tenant_id)
                                                           : cJSON_CreateNull());
    cJSON_AddItemToObject(j, "operator_id", e->operator_id ? cJSON_CreateString(e->operator_id)
                                                           : cJSON_CreateNull());
    cJSON_AddStringToObject(j, "action", e->action ? e->action : "");
    cJSON_AddItemToObject(j, "detail",
                          e->detail ? cJSON_CreateString(e->detail) : cJSON_CreateNull());
    cJSON_AddItemToArray(l->a, j);
    return 0;
}

/* The page of events after ?cursor= (at most ?limit=) of one tenant, or of
 * all when tenant_id is NULL. */
static void audit_page(tn__req *r, const char *tenant_id, int with_tenant, tn__resp *out) {
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
    cJSON *j = cJSON_CreateObject();
    event_list l = {cJSON_CreateArray(), with_tenant};
    int64_t last = 0;
    int more = 0;
    int rc = j && l.a ? tn__audit_list(r->srv->st, tenant_id, after, limit, add_event, &l, &last,
                                       &more)
                      : TN_NOMEM;
    if (rc != TN_OK) {
        cJSON_Delete(j);
        cJSON_Delete(l.a);
        tn__resp_code(out, rc);
        return;
    }
    cJSON_AddItemToObject(j, "events", l.a);
    char next[24];
    snprintf(next, sizeof next, "%lld", (long long)last);
    cJSON_AddItemToObject(j, "next_cursor", more ? cJSON_CreateString(next) : cJSON_CreateNull());
    tn__resp_json(out, 200, j);
}

/* GET /v1/admin/audit[?tenant=ID]: the whole log, or one tenant's. */
void tn__api_audit(tn__req *r, tn__resp *out) {
    char *tenant = NULL;
    int qt = tn__req_query(r, "tenant", &tenant);
    tn_tenant t;
    if (qt < 0 || (qt > 0 && !tenant[0])) {
        free(tenant);
        tn__resp_error(out, 400, "bad request");
        return;
    }
    int rc = qt > 0 ? tn_tenant_get(r->srv->st, tenant, &t) : TN_OK;
    free(tenant);
    if (rc != TN_OK) tn__resp_code(out, rc);
    else audit_page(r, qt > 0 ? t.id : NULL, 1, out);
}

/* GET /v1/operator/audit[?tenant=NAME]: the log of one tenant the operator
 * is granted (default: the tenant its token is bound to).  A tenant it has
 * no grant on, or that does not exist, is the same 404. */
void tn__api_operator_audit(tn__req *r, tn__resp *out) {
    char *name = NULL;
    int qt = tn__req_query(r, "tenant", &name);
    char tenant_id[37];
    if (qt < 0) {
        free(name);
        tn__resp_error(out, 400, "bad request");
        return;
    }
    int ok = tn__op_granted(r->srv->st, r->key.operator_id, qt > 0 ? name : r->key.tenant_name,
                            tenant_id);
    free(name);
    if (!ok) tn__resp_error(out, 404, "not found");
    else audit_page(r, tenant_id, 0, out);
}

/* One audit row per request made with an operator token (router.c calls this
 * when the request ends): who acted, in which tenant, what, and the status. */
void tn__operator_request_audit(tn__req *r, int status) {
    if (!r->key.operator_id[0]) return;
    char actor[16 + TN__KEY_ID_LEN], detail[320];
    snprintf(actor, sizeof actor, "operator:%s", r->key.operator_id);
    snprintf(detail, sizeof detail, "%s %s %d",
             r->method == TN__M_GET ? "GET" : r->method == TN__M_HEAD ? "HEAD"
             : r->method == TN__M_POST ? "POST" : r->method == TN__M_PUT ? "PUT"
             : r->method == TN__M_PATCH ? "PATCH" : r->method == TN__M_DELETE ? "DELETE" : "OTHER",
             r->path, status);
    /* A request that changed nothing (a read, or refused) is audited lazily:
     * one fsync each capped an operator's reads at a tenth of a key's. */
    int changed = status < 400 && r->method != TN__M_GET && r->method != TN__M_HEAD;
    if (tn__auth_audit_op_lazy(r->srv->st, actor, r->key.operator_id, r->key.tenant_id,
                               "operator.request", detail, !changed) != TN_OK)
        tn__log("error", "cannot audit an operator request");
}

/* ---- operators ----------------------------------------------------------------- */

static cJSON *grant_json(const tn__op_grant *g) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddStringToObject(j, "tenant_id", g->tenant_id);
    cJSON_AddStringToObject(j, "tenant_name", g->tenant_name);
    cJSON_AddItemToObject(j, "scopes", scopes_json(g->scopes));
    return j;
}

static cJSON *op_json(const tn__op_info *o, const char *secret) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddStringToObject(j, "operator_id", o->op_id);
    cJSON_AddStringToObject(j, "name", o->name);
    if (secret) cJSON_AddStringToObject(j, "operator_key", secret);
    cJSON_AddItemToObject(j, "created_at", tn__json_time(o->created_at));
    cJSON_AddItemToObject(j, "revoked_at", tn__json_time(o->revoked_at));
    cJSON_AddBoolToObject(j, "active", !o->revoked_at);
    cJSON_AddItemToObject(j, "grants", cJSON_CreateArray());
    return j;
}

typedef struct op_list {
    cJSON *a, *cur;
    const char *only; /* one operator id, or NULL for all */
} op_list;

static int add_op(const tn__op_info *o, const tn__op_grant *g, void *arg) {
    op_list *l = arg;
    if (l->only && strcmp(o->op_id, l->only) != 0) return 0;
    if (!g) {
        l->cur = op_json(o, NULL);
        if (!l->cur) return 1;
        cJSON_AddItemToArray(l->a, l->cur);
        return 0;
    }
    cJSON *gj = grant_json(g);
    if (!gj) return 1;
    cJSON_AddItemToArray(cJSON_GetObjectItem(l->cur, "grants"), gj);
    return 0;
}

/* Grants from [{"tenant": ID, "scopes": [...]}, ...]. */
static int grants_of(tn__srv *srv, const cJSON *a, tn__op_grant **out, int *n) {
    *out = NULL;
    *n = 0;
    if (!a) return TN_OK;
    int cnt = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : -1;
    if (cnt < 0 || cnt > 1000) return TN_INVALID;
    tn__op_grant *g = calloc((size_t)cnt + 1, sizeof *g);
    if (!g) return TN_NOMEM;
    const cJSON *e;
    int i = 0, rc = TN_OK;
    cJSON_ArrayForEach(e, a) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "tenant");
        tn_tenant tt;
        if (!cJSON_IsObject(e) || cJSON_GetArraySize(e) != 2 || !cJSON_IsString(t) ||
            scopes_of(cJSON_GetObjectItemCaseSensitive(e, "scopes"), &g[i].scopes) != TN_OK) {
            rc = TN_INVALID;
            break;
        }
        if ((rc = tn_tenant_get(srv->st, t->valuestring, &tt)) != TN_OK) break;
        memcpy(g[i].tenant_id, tt.id, sizeof g[i].tenant_id);
        i++;
    }
    if (rc != TN_OK) {
        free(g);
        return rc;
    }
    *out = g;
    *n = i;
    return TN_OK;
}

/* POST /v1/admin/operators {"name": N, "grants": [{"tenant": ID, "scopes": [...]}]} */
void tn__api_operators_create(tn__req *r, tn__resp *out) {
    cJSON *body = tn__req_json(r, out);
    if (!body) return;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(body, "name"), *v;
    int rc = cJSON_IsString(name) ? TN_OK : TN_INVALID;
    cJSON_ArrayForEach(v, body)
        if (strcmp(v->string, "name") != 0 && strcmp(v->string, "grants") != 0) rc = TN_INVALID;
    tn__op_grant *g = NULL;
    int n = 0;
    if (rc == TN_OK)
        rc = grants_of(r->srv, cJSON_GetObjectItemCaseSensitive(body, "grants"), &g, &n);
    char key[TN__API_KEY_LEN];
    tn__op_info o;
    if (rc == TN_OK) rc = tn__op_create(r->srv->st, name->valuestring, g, n, &o, key);
    cJSON_Delete(body);
    free(g);
    if (rc != TN_OK) {
        tn__resp_code(out, rc);
        return;
    }
    op_list l = {cJSON_CreateArray(), NULL, o.op_id};
    rc = l.a ? tn__op_list(r->srv->st, add_op, &l) : TN_NOMEM;
    cJSON *j = cJSON_DetachItemFromArray(l.a, 0);
    cJSON_Delete(l.a);
    if (rc == TN_OK && j) {
        cJSON_AddStringToObject(j, "operator_key", key);
        tn__resp_json(out, 201, j);
    } else {
        cJSON_Delete(j);
        tn__resp_code(out, rc == TN_OK ? TN_NOMEM : rc);
    }
    sodium_memzero(key, sizeof key);
}

void tn__api_operators_list(tn__req *r, tn__resp *out) {
    cJSON *j = cJSON_CreateObject();
    op_list l = {cJSON_CreateArray(), NULL, NULL};
    int rc = j && l.a ? tn__op_list(r->srv->st, add_op, &l) : TN_NOMEM;
    if (rc != TN_OK) {
        cJSON_Delete(j);
        cJSON_Delete(l.a);
        tn__resp_code(out, rc);
        return;
    }
    cJSON_AddItemToObject(j, "operators", l.a);
    tn__resp_json(out, 200, j);
}

/* PUT /v1/admin/operators/{op}/grants/{tenant id} {"scopes": [...]} */
void tn__api_operator_grant(tn__req *r, tn__resp *out) {
    cJSON *body = tn__req_json(r, out);
    if (!body) return;
    unsigned mask = 0;
    int rc = cJSON_GetArraySize(body) == 1
                 ? scopes_of(cJSON_GetObjectItemCaseSensitive(body, "scopes"), &mask)
                 : TN_INVALID;
    cJSON_Delete(body);
    tn_tenant t;
    int created = 0;
    if (rc == TN_OK) rc = tn_tenant_get(r->srv->st, r->arg[1], &t);
    if (rc == TN_OK) rc = tn__op_grant_set(r->srv->st, r->arg[0], t.id, mask, &created);
    if (rc != TN_OK) {
        tn__resp_code(out, rc);
        return;
    }
    tn__op_grant g = {.scopes = mask};
    memcpy(g.tenant_id, t.id, sizeof g.tenant_id);
    snprintf(g.tenant_name, sizeof g.tenant_name, "%s", t.name);
    tn__resp_json(out, created ? 201 : 200, grant_json(&g));
}

/* DELETE /v1/admin/operators/{op}/grants/{tenant id} */
void tn__api_operator_ungrant(tn__req *r, tn__resp *out) {
    tn_tenant t;
    int rc = tn_tenant_get(r->srv->st, r->arg[1], &t);
    if (rc == TN_OK) rc = tn__op_grant_remove(r->srv->st, r->arg[0], t.id);
    if (rc == TN_OK) tn__resp_empty(out, 204);
    else tn__resp_code(out, rc);
}

/* DELETE /v1/admin/operators/{op}: revokes the key and every token of it. */
void tn__api_operator_revoke(tn__req *r, tn__resp *out) {
    int rc = tn__op_revoke(r->srv->st, r->arg[0]);
    if (rc == TN_OK) tn__resp_empty(out, 204);
    else tn__resp_code(out, rc);
}
