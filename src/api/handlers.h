/*
 * handlers.h - the handlers router.c dispatches to, one file per resource.
 * Each runs after authentication (see api_int.h) and answers through *out.
 */
#ifndef TN_HANDLERS_H
#define TN_HANDLERS_H

#include "api_int.h"

/* ---- api_health.c ---- */
void tn__health(tn__req *r, tn__resp *out);
void tn__metrics(tn__req *r, tn__resp *out);

/* ---- api_items.c ---- */
void tn__api_me(tn__req *r, tn__resp *out);
void tn__api_items_list(tn__req *r, tn__resp *out);
void tn__api_item_create(tn__req *r, tn__resp *out);
void tn__api_item_get(tn__req *r, tn__resp *out);
void tn__api_item_put(tn__req *r, tn__resp *out);
void tn__api_item_delete(tn__req *r, tn__resp *out);

/* ---- api_files.c ---- */
void tn__api_files_list(tn__req *r, tn__resp *out);
void tn__api_file_get(tn__req *r, tn__resp *out);
void tn__api_file_delete(tn__req *r, tn__resp *out);
/* Streaming upload: begin runs once the caller is authenticated (it may set
 * r->err_status), data for each chunk, finish at the end (opens r->s itself),
 * abort whenever the request ends without finish. */
void tn__upload_begin(tn__req *r);
void tn__upload_data(tn__req *r, const char *data, size_t n);
void tn__api_file_put(tn__req *r, tn__resp *out);
void tn__upload_abort(tn__req *r);

/* ---- api_sync.c ---- */
void tn__api_sync_status(tn__req *r, tn__resp *out);
void tn__api_admin_sync(tn__req *r, tn__resp *out);
void tn__api_sync_run(tn__req *r, tn__resp *out);

/* ---- api_admin.c ---- */
void tn__api_auth(tn__req *r, tn__resp *out);
void tn__api_tenants_create(tn__req *r, tn__resp *out);
void tn__api_tenants_list(tn__req *r, tn__resp *out);
void tn__api_tenant_patch(tn__req *r, tn__resp *out);
void tn__api_tenant_delete(tn__req *r, tn__resp *out);
void tn__api_keys_create(tn__req *r, tn__resp *out);
void tn__api_keys_list(tn__req *r, tn__resp *out);
void tn__api_key_rotate(tn__req *r, tn__resp *out);
void tn__api_key_delete(tn__req *r, tn__resp *out);
void tn__api_audit(tn__req *r, tn__resp *out);
void tn__api_operator_audit(tn__req *r, tn__resp *out);
void tn__api_operators_create(tn__req *r, tn__resp *out);
void tn__api_operators_list(tn__req *r, tn__resp *out);
void tn__api_operator_grant(tn__req *r, tn__resp *out);
void tn__api_operator_ungrant(tn__req *r, tn__resp *out);
void tn__api_operator_revoke(tn__req *r, tn__resp *out);
/* Audits a request made with an operator token (no-op for any other). */
void tn__operator_request_audit(tn__req *r, int status);

#endif
