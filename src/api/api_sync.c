/*
 * api_sync.c - the sync engine's numbers: GET /v1/sync/status (the caller's
 * tenant only, without its id) and GET /v1/admin/sync (every tenant).
 */
#include "engine.h"
#include "handlers.h"

#include <stdlib.h>

/* Answers with tn_sync_status_json(st, tenant_id) (NULL: the admin view). */
static void sync_json(tn_store *st, const char *tenant_id, tn__resp *out) {
    char *text = NULL;
    int rc = tn_sync_status_json(st, tenant_id, &text);
    cJSON *j = rc == TN_OK ? cJSON_Parse(text) : NULL;
    free(text);
    if (!j) {
        tn__resp_code(out, rc == TN_OK ? TN_ERROR : rc);
        return;
    }
    tn__resp_json(out, 200, j);
}

/* The tenant's own sync numbers (sync/status.c builds them from that
 * tenant's row alone, without its id). */
void tn__api_sync_status(tn__req *r, tn__resp *out) {
    sync_json(r->srv->st, r->key.tenant_id, out);
}

/* GET /v1/admin/sync: every tenant's backlog, failures and last errors. */
void tn__api_admin_sync(tn__req *r, tn__resp *out) {
    sync_json(r->srv->st, NULL, out);
}
