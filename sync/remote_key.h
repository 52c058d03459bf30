/*
 * remote_key.h - THE one place that turns a tenant's id and a local key into
 * remote names (a contract other tools read; every backend uses it):
 *
 *   partition  "TENANT#<tenant uuid>"          (DynamoDB: pk)
 *   sort key   "ITEM#<item id>", "FILE#<file name>" or "TENANT"  (DynamoDB: sk)
 *   object     "<tenant uuid>/files/<file name>"  (S3: the object key)
 *
 * Every builder validates again what the store already validated (a UUID of
 * the store's form, an item id, a file name per tn_file_name_valid), so a
 * name that could escape the tenant's prefix ("..", a leading '/', a
 * backslash, a control character) is refused even if an upper layer let it
 * through.
 */
#ifndef TN_REMOTE_KEY_H
#define TN_REMOTE_KEY_H

enum { TN__REMOTE_ITEM = 1, TN__REMOTE_FILE = 2, TN__REMOTE_TENANT = 3 };

/* A remote name is at most this long (the AWS backend's object and sort
 * keys: 1,024 bytes), so a file name is at most 1024 - strlen("<uuid>/files/") = 981. */
#define TN__REMOTE_NAME_MAX 1024
#define TN__REMOTE_FILE_NAME_MAX (TN__REMOTE_NAME_MAX - 43)

typedef struct tn__remote_key {
    char *part;   /* TENANT#<uuid> */
    char *sort;   /* ITEM#<id> / FILE#<name> / TENANT */
    char *object; /* files only: <uuid>/files/<name>; NULL otherwise */
} tn__remote_key;

/* kind TN__REMOTE_ITEM, _FILE or _TENANT (key ignored).  TN_OK, TN_INVALID
 * (also for a name longer than the remote can hold) or TN_NOMEM; on failure
 * *out is zeroed. */
int tn__remote_key_build(const char *tenant_uuid, int kind, const char *key,
                         tn__remote_key *out);
void tn__remote_key_free(tn__remote_key *k);

#endif
