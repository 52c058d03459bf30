/*
 * remote_key.c - builds every remote name from a tenant's id (see
 * remote_key.h).  Nothing else in the sync layer concatenates them.
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
    if (!tn__uuid_valid(tenant_uuid) || (!key && kind != TN__REMOTE_TENANT)) return TN_INVALID;
    if (kind == TN__REMOTE_TENANT) {
        key = "";
    } else if (kind == TN__REMOTE_ITEM) {
        if (!tn__item_id_valid(key)) return TN_INVALID;
    } else if (kind == TN__REMOTE_FILE) {
        /* tn_file_name_valid refuses "", "..", ".", empty segments, a leading
         * '/', backslashes and control characters: nothing can leave
         * <uuid>/files/. */
        if (!tn_file_name_valid(key) || strlen(key) > TN__REMOTE_FILE_NAME_MAX) return TN_INVALID;
    } else {
        return TN_INVALID;
    }
    out->part = join("TENANT#", tenant_uuid, "");
    out->sort = join(kind == TN__REMOTE_ITEM ? "ITEM#" : kind == TN__REMOTE_FILE ? "FILE#" : "TENANT",
                     key, "");
    if (kind == TN__REMOTE_FILE) out->object = join(tenant_uuid, "/files/", key);
    if (!out->part || !out->sort || (kind == TN__REMOTE_FILE && !out->object)) {
        tn__remote_key_free(out);
        return TN_NOMEM;
    }
    return TN_OK;
}

void tn__remote_key_free(tn__remote_key *k) {
    if (!k) return;
    free(k->part);
    free(k->sort);
    free(k->object);
    memset(k, 0, sizeof *k);
}
