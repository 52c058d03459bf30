/*
 * remote_key.h - THE one place that turns a tenant's id and a local key into
 * remote names (a contract other tools read):
 *
 *   DynamoDB  pk = "TENANT#<tenant uuid>"
 *             sk = "ITEM#<item id>"  or  "FILE#<file name>"
 *   S3        key = "<tenant uuid>/files/<file name>"
 *
 * Every builder validates again what the store already validated (a UUID of
 * the store's form, an item id, a file name per tn_file_name_valid), so a
 * name that could escape the tenant's prefix ("..", a leading '/', a
 * backslash, a control character) is refused even if an upper layer let it
 * through.
 */
#ifndef TN_REMOTE_KEY_H
#define TN_REMOTE_KEY_H

enum { TN__REMOTE_ITEM = 1, TN__REMOTE_FILE = 2 };

typedef struct tn__remote_key {
    char *pk;     /* TENANT#<uuid> */
    char *sk;     /* ITEM#<id> / FILE#<name> */
    char *s3_key; /* files only: <uuid>/files/<name>; NULL for items */
} tn__remote_key;

/* kind TN__REMOTE_ITEM or TN__REMOTE_FILE.  TN_OK, TN_INVALID or TN_NOMEM;
 * on failure *out is zeroed. */
int tn__remote_key_build(const char *tenant_uuid, int kind, const char *key,
                         tn__remote_key *out);
void tn__remote_key_free(tn__remote_key *k);

#endif
