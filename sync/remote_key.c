/*
 * remote_key.c - builds every DynamoDB key and S3 key from a tenant's id
 * (see remote_key.h).  Nothing else in the sync layer concatenates them.
 */
#include "remote_key.h"

#include "conn.h"
#include "tenantry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *join(const char *a, const char *b, const char *c) {
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s%s%s", a, b, c);
    return p;
}

int tn__remote_key_build(const char *tenant_uuid, int kind, const char *key,
                         tn__remote_key *out) {
    memset(out, 0, sizeof *out);
    if (!tn__uuid_valid(tenant_uuid) || !key) return TN_INVALID;
    if (kind == TN__REMOTE_ITEM) {
        if (!tn__item_id_valid(key)) return TN_INVALID;
    } else if (kind == TN__REMOTE_FILE) {
        /* tn_file_name_valid refuses "", "..", ".", empty segments, a leading
         * '/', backslashes and control characters: nothing can leave
         * <uuid>/files/. */
        if (!tn_file_name_valid(key)) return TN_INVALID;
    } else {
        return TN_INVALID;
    }
    out->pk = join("TENANT#", tenant_uuid, "");
    out->sk = join(kind == TN__REMOTE_ITEM ? "ITEM#" : "FILE#", key, "");
    if (kind == TN__REMOTE_FILE) out->s3_key = join(tenant_uuid, "/files/", key);
    if (!out->pk || !out->sk || (kind == TN__REMOTE_FILE && !out->s3_key)) {
        tn__remote_key_free(out);
        return TN_NOMEM;
    }
    return TN_OK;
}

void tn__remote_key_free(tn__remote_key *k) {
    if (!k) return;
    free(k->pk);
    free(k->sk);
    free(k->s3_key);
    memset(k, 0, sizeof *k);
}
