/*
 * remote_aws.c - the remote interface (sync/remote.h) over DynamoDB and S3.
 *
 * Rows are DynamoDB items (dynamo.h builds them), written in one of three
 * modes chosen from the environment when the remote is opened:
 *   - one conditional PutItem per row (the default; the engine keeps several
 *     in flight on its connections): batch_rows 1;
 *   - TENANTRY_SYNC_TRANSACT=1: TransactWriteItems of <= 100 conditional Puts
 *     (a hundredth of the requests, twice the write units).  A cancelled
 *     transaction settles each row by its reason: a failed condition answers
 *     that row with the remote's version, a validation error sends the row
 *     alone, and the rows not at fault go again (bounded);
 *   - TENANTRY_SYNC_SINGLE_WRITER=1: BatchWriteItem of <= 25 without the
 *     condition, for an appliance that is its tenants' only writer;
 *     UnprocessedItems go again with backoff, a refused batch row by row.
 * A refusal carries the remote's old item (ReturnValuesOnConditionCheckFailure),
 * so its version needs no GetItem.
 *
 * Objects go up through presigned PUT URLs (s3.h), multipart through
 * presigned UploadPart URLs, and come down through presigned GET URLs.
 * Every name comes from remote_key.c.
 *
 * The change feed.  Every row written carries "feed" (N): the writer's wall
 * clock in ms when the request is built (again on each attempt), made
 * strictly increasing per remote object, so one appliance's rows never tie.
 * The global secondary index "feed" (hash pk, range feed, all attributes)
 * orders a tenant's rows by it; changes() walks it with
 *   Query IndexName=feed, pk = :p AND feed > (cursor - OVERLAP_MS)
 * and pages with the LastEvaluatedKey.  The overlap re-reads the last five
 * minutes on every call, so a row is still seen when its writer's clock was
 * up to five minutes behind, or when it reached the index (eventually
 * consistent) or the table (a slow request) up to five minutes late.  A row
 * seen twice is harmless: the engine applies by version.  The cursor's time
 * never passes the reader's own clock, so a writer whose clock runs ahead
 * cannot make everyone skip the rows of the others; once a walk reaches the
 * end it is the reader's clock when the last page was asked for (the feed
 * was read up to then).  Cost: one Query per call when nothing changed, plus
 * the rows written in the five minutes before it.
 *
 * Cursor ("" from the start):
 *   c<high>                  caught up; high = the reader's clock when the
 *                            walk's last page was asked for, or the
 *                            highest feed seen when that is later (ms)
 *   w<high>!<feed>!<sk>      pages remain: resume after (feed, sk), the
 *                            last evaluated key (sk %-encoded, cut at a
 *                            character boundary when over 255 characters:
 *                            the walk resumes a little earlier)
 * list() pages a consistent Query of the partition: "l<sk>"; tenants()
 * a consistent Scan for sort key TENANT: "s<pk>!<sk>".
 */
#include "remote_aws.h"

#include "aws.h"
#include "clock.h"
#include "dynamo.h"
#include "http_client.h"
#include "remote.h"
#include "s3.h"
#include "sbuf.h"
#include "tenantry.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdatomic.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_TRANSACT 100
#define MAX_BATCH_WRITE 25
#define MAX_BATCH_GET 100
/* One TransactWriteItems carries at most 4 MB; stay well under it. */
#define MAX_TX_BYTES ((size_t)3 << 20)
/* An item JSON this large may be over DynamoDB's 400 KB: it goes alone. */
#define MAX_TX_ITEM ((size_t)350 << 10)
/* A JSON body this large cannot be one DynamoDB item (400 KB) in any encoding. */
#define MAX_ITEM_JSON ((size_t)4 << 20)

/* The change feed's overlap window (see the top of the file). */
#define OVERLAP_MS 300000
/* remote init waits this long at most for the feed index to be built. */
#define INDEX_WAIT_MS 300000

enum { MODE_PUT, MODE_TX, MODE_BATCH };

typedef struct aws_remote {
    tn_remote base;
    tn__aws aws;
    int mode;
    int no_batch_get;         /* BatchGetItem was refused: versions are asked one by one */
    _Atomic int64_t last_feed; /* the last feed value given to a row */
    int page_rows;            /* list and tenants: Limit per request (0: DynamoDB's 1 MB) */
    tn__pace pace;            /* the bandwidth cap, shared by the connections opened with one */
} aws_remote;

struct tn_remote_conn {
    aws_remote *r;
    tn__http *h;
};

static int stopping(const aws_remote *r) { return r->base.stop && *r->base.stop; }

/* Sleeps ms in short steps, ending early when the engine stops. */
static void nap(const aws_remote *r, int64_t ms) {
    while (ms > 0 && !stopping(r)) {
        int64_t step = ms < 100 ? ms : 100;
        struct timespec ts = {0, step * 1000000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
        ms -= step;
    }
}

static int64_t backoff(int attempt) {
    int64_t ceil_ms = 50;
    for (int i = 0; i < attempt && ceil_ms < 2000; i++) ceil_ms *= 2;
    if (ceil_ms > 2000) ceil_ms = 2000;
    return (int64_t)(randombytes_random() % (uint32_t)(ceil_ms + 1));
}

/* ---- rows --------------------------------------------------------------------- */

/* The feed value of a row about to be sent: the wall clock in ms, or one
 * more than the last value given, so no two rows of this appliance tie. */
static int64_t next_feed(aws_remote *r) {
    int64_t now = tn__wall_ms(), last = atomic_load(&r->last_feed), want;
    do {
        want = now > last ? now : last + 1;
    } while (!atomic_compare_exchange_weak(&r->last_feed, &last, want));
    return want;
}

/* Appends item (an Item map built without feed) with a fresh feed value. */
static void add_item(aws_remote *r, tn__sbuf *b, const char *item) {
    size_t n = strlen(item);
    tn__sb_add(b, item, n ? n - 1 : 0); /* without its closing brace */
    tn__sb_fmt(b, ",\"feed\":{\"N\":\"%lld\"}}", (long long)next_feed(r));
}

/* A conditional Put of item, for PutItem or one TransactItems entry; the
 * caller closes the object. */
static void put_body(aws_remote *r, const char *item, int64_t version, tn__sbuf *b) {
    tn__sb_str(b, "{\"TableName\":");
    tn__sb_json_str(b, r->aws.table);
    tn__sb_str(b, ",\"Item\":");
    add_item(r, b, item);
    tn__sb_fmt(b, ",\"ConditionExpression\":\"attribute_not_exists(pk) OR #v < :v\","
                  "\"ExpressionAttributeNames\":{\"#v\":\"version\"},"
                  "\"ExpressionAttributeValues\":{\":v\":{\"N\":\"%lld\"}},"
                  "\"ReturnValuesOnConditionCheckFailure\":\"ALL_OLD\"",
               (long long)version);
}

/* One row alone, with a conditional PutItem. */
static void put_one(tn_remote_conn *c, const tn_remote_row *row, const char *item,
                    tn_remote_put *out) {
    tn__sbuf b = {0};
    put_body(c->r, item, row->version, &b);
    tn__sb_str(&b, "}");
    if (b.failed) {
        tn__sb_free(&b);
        *out = (tn_remote_put){TN_NOMEM, -1};
        return;
    }
    tn__ddb_resp resp;
    int rc = tn__ddb_call(&c->r->aws, c->h, "PutItem", b.p, b.len, &resp);
    tn__sb_free(&b);
    out->code = rc;
    out->remote = rc == TN_CONFLICT ? tn__ddb_refusal_version(resp.body) : -1;
    tn__ddb_resp_free(&resp);
}

static int blocking(int code) { return code == TN_DENIED || code == TN_NOTFOUND; }

/* Rows idx[0..n) with TransactWriteItems (see the top of the file). */
static void write_tx(tn_remote_conn *c, const tn_remote_row *rows, char **items, const int *idx,
                     int n, tn_remote_put *out) {
    aws_remote *r = c->r;
    int left[MAX_TRANSACT], nleft = n;
    memcpy(left, idx, (size_t)n * sizeof *left);
    for (int attempt = 0; nleft > 0 && attempt < 6 && !stopping(r); attempt++) {
        if (attempt) nap(r, backoff(attempt));
        if (nleft == 1) {
            put_one(c, &rows[left[0]], items[left[0]], &out[left[0]]);
            return;
        }
        tn__sbuf body = {0};
        tn__sb_str(&body, "{\"TransactItems\":[");
        for (int j = 0; j < nleft; j++) {
            tn__sb_str(&body, j ? ",{\"Put\":" : "{\"Put\":");
            put_body(r, items[left[j]], rows[left[j]].version, &body);
            tn__sb_str(&body, "}}");
        }
        tn__sb_str(&body, "]}");
        tn__ddb_resp resp;
        int rc = body.failed ? TN_NOMEM
                             : tn__ddb_call(&r->aws, c->h, "TransactWriteItems", body.p, body.len,
                                            &resp);
        tn__sb_free(&body);
        if (rc == TN_OK || rc == TN_NOMEM || tn_err_retryable(rc) || blocking(rc)) {
            if (rc != TN_NOMEM) tn__ddb_resp_free(&resp);
            for (int j = 0; j < nleft; j++) out[left[j]] = (tn_remote_put){rc, -1};
            return;
        }
        int why[MAX_TRANSACT];
        int64_t ver[MAX_TRANSACT];
        int listed = strcmp(resp.type, "TransactionCanceledException") == 0 &&
                     tn__ddb_cancel_reasons(resp.body, nleft, why, ver) == 0;
        tn__ddb_resp_free(&resp);
        if (!listed) {
            /* Refused as a whole (a validation error): settle each row alone. */
            for (int k = 0; k < nleft && !stopping(r); k++)
                put_one(c, &rows[left[k]], items[left[k]], &out[left[k]]);
            return;
        }
        int keep = 0;
        for (int k = 0; k < nleft; k++) {
            int i = left[k];
            if (why[k] == TN__DDB_REASON_RETRY) left[keep++] = i;
            else if (why[k] == TN__DDB_REASON_CONDITION) out[i] = (tn_remote_put){TN_CONFLICT, ver[k]};
            else put_one(c, &rows[i], items[i], &out[i]);
        }
        nleft = keep;
    }
    for (int j = 0; j < nleft; j++) out[left[j]] = (tn_remote_put){TN_THROTTLED, -1};
}

/* The pk/sk pairs listed under UnprocessedItems, as "pk\nsk" strings. */
static int unprocessed(const char *body, const char *table, char ***out) {
    *out = NULL;
    cJSON *j = cJSON_Parse(body);
    cJSON *list = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "UnprocessedItems"), table), *e;
    int n = 0, cap = cJSON_GetArraySize(list);
    if (cap > 0) *out = calloc((size_t)cap, sizeof **out);
    cJSON_ArrayForEach(e, list) {
        cJSON *item = cJSON_GetObjectItem(cJSON_GetObjectItem(e, "PutRequest"), "Item");
        const char *pk = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(item, "pk"), "S"));
        const char *sk = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(item, "sk"), "S"));
        if (!*out || !pk || !sk || n >= cap) continue;
        tn__sbuf b = {0};
        tn__sb_fmt(&b, "%s\n%s", pk, sk);
        (*out)[n] = tn__sb_take(&b);
        if ((*out)[n]) n++;
    }
    cJSON_Delete(j);
    return n;
}

/* Rows idx[0..n) (n <= 25) with BatchWriteItem, without the condition. */
static void batch_write(tn_remote_conn *c, const tn_remote_row *rows, const tn__remote_key *keys,
                        char **items, const int *idx, int n, tn_remote_put *out) {
    aws_remote *r = c->r;
    int left[MAX_BATCH_WRITE], nleft = n;
    memcpy(left, idx, (size_t)n * sizeof *left);
    for (int attempt = 0; nleft > 0 && attempt < 6 && !stopping(r); attempt++) {
        if (attempt) nap(r, backoff(attempt));
        tn__sbuf body = {0};
        tn__sb_str(&body, "{\"RequestItems\":{");
        tn__sb_json_str(&body, r->aws.table);
        tn__sb_str(&body, ":[");
        for (int j = 0; j < nleft; j++) {
            tn__sb_str(&body, j ? ",{\"PutRequest\":{\"Item\":" : "{\"PutRequest\":{\"Item\":");
            add_item(r, &body, items[left[j]]);
            tn__sb_str(&body, "}}");
        }
        tn__sb_str(&body, "]}}");
        tn__ddb_resp resp;
        int rc = body.failed ? TN_NOMEM
                             : tn__ddb_call(&r->aws, c->h, "BatchWriteItem", body.p, body.len, &resp);
        tn__sb_free(&body);
        if (rc != TN_OK) {
            if (rc != TN_NOMEM) tn__ddb_resp_free(&resp);
            if (rc == TN_NOMEM || tn_err_retryable(rc) || blocking(rc)) {
                for (int j = 0; j < nleft; j++) out[left[j]] = (tn_remote_put){rc, -1};
            } else {
                for (int j = 0; j < nleft && !stopping(r); j++)
                    put_one(c, &rows[left[j]], items[left[j]], &out[left[j]]);
            }
            return;
        }
        char **un = NULL;
        int nu = unprocessed(resp.body, r->aws.table, &un);
        tn__ddb_resp_free(&resp);
        int keep = 0;
        for (int j = 0; j < nleft; j++) {
            int i = left[j], again = 0;
            size_t pl = strlen(keys[i].part);
            for (int u = 0; u < nu && !again; u++)
                again = strncmp(un[u], keys[i].part, pl) == 0 && un[u][pl] == '\n' &&
                        strcmp(un[u] + pl + 1, keys[i].sort) == 0;
            if (again) left[keep++] = i;
            else out[i] = (tn_remote_put){TN_OK, -1};
        }
        for (int u = 0; u < nu; u++) free(un[u]);
        free(un);
        nleft = keep;
    }
    for (int j = 0; j < nleft; j++) out[left[j]] = (tn_remote_put){TN_THROTTLED, -1};
}

static void aws_put_rows(tn_remote_conn *c, const tn_remote_row *rows, int n, tn_remote_put *out) {
    aws_remote *r = c->r;
    tn__remote_key *keys = calloc((size_t)n, sizeof *keys);
    char **items = calloc((size_t)n, sizeof *items);
    int *idx = calloc((size_t)n, sizeof *idx), m = 0;
    for (int i = 0; i < n; i++) out[i] = (tn_remote_put){TN_NOMEM, -1};
    for (int i = 0; keys && items && idx && i < n; i++) {
        int rc = tn__remote_key_build(rows[i].tenant, rows[i].kind, rows[i].key, &keys[i]);
        tn__sbuf b = {0};
        /* feed is added when each request is built (add_item). */
        if (rc == TN_OK) rc = tn__ddb_item(&rows[i], &keys[i], 0, &b);
        if (rc == TN_OK && b.len > MAX_ITEM_JSON) rc = TN_TOOBIG;
        if (rc == TN_OK) {
            items[i] = tn__sb_take(&b);
            idx[m++] = i;
        } else {
            tn__sb_free(&b);
            out[i].code = rc;
        }
    }
    if (m && r->mode == MODE_PUT) {
        for (int k = 0; k < m && !stopping(r); k++) put_one(c, &rows[idx[k]], items[idx[k]], &out[idx[k]]);
    } else if (m && r->mode == MODE_TX) {
        write_tx(c, rows, items, idx, m, out);
    } else if (m) {
        batch_write(c, rows, keys, items, idx, m, out);
    }
    for (int i = 0; keys && i < n; i++) tn__remote_key_free(&keys[i]);
    for (int i = 0; items && i < n; i++) free(items[i]);
    free(keys);
    free(items);
    free(idx);
}

static int64_t get_version(tn_remote_conn *c, const tn__remote_key *k, int *rc) {
    aws_remote *r = c->r;
    tn__sbuf b = {0};
    tn__sb_str(&b, "{\"TableName\":");
    tn__sb_json_str(&b, r->aws.table);
    tn__sb_str(&b, ",\"Key\":{\"pk\":{\"S\":");
    tn__sb_json_str(&b, k->part);
    tn__sb_str(&b, "},\"sk\":{\"S\":");
    tn__sb_json_str(&b, k->sort);
    tn__sb_str(&b, "}},\"ConsistentRead\":true,\"ProjectionExpression\":\"#v\","
                   "\"ExpressionAttributeNames\":{\"#v\":\"version\"}}");
    if (b.failed) {
        tn__sb_free(&b);
        *rc = TN_NOMEM;
        return -1;
    }
    tn__ddb_resp resp;
    *rc = tn__ddb_call(&r->aws, c->h, "GetItem", b.p, b.len, &resp);
    int64_t v = *rc == TN_OK ? tn__ddb_version_of(resp.body) : -1;
    tn__ddb_resp_free(&resp);
    tn__sb_free(&b);
    return v;
}

/* BatchGetItem of consistent reads for keys[0..n) (n <= 100). */
static void batch_versions(tn_remote_conn *c, const tn__remote_key *keys, int n, int64_t *ver) {
    aws_remote *r = c->r;
    tn__sbuf b = {0};
    tn__sb_str(&b, "{\"RequestItems\":{");
    tn__sb_json_str(&b, r->aws.table);
    tn__sb_str(&b, ":{\"Keys\":[");
    for (int j = 0; j < n; j++) {
        if (!keys[j].part) continue;
        tn__sb_str(&b, b.p[b.len - 1] == '[' ? "{\"pk\":{\"S\":" : ",{\"pk\":{\"S\":");
        tn__sb_json_str(&b, keys[j].part);
        tn__sb_str(&b, "},\"sk\":{\"S\":");
        tn__sb_json_str(&b, keys[j].sort);
        tn__sb_str(&b, "}}");
    }
    tn__sb_str(&b, "],\"ConsistentRead\":true,\"ProjectionExpression\":\"pk,sk,#v\","
                   "\"ExpressionAttributeNames\":{\"#v\":\"version\"}}}}");
    tn__ddb_resp resp;
    int rc = b.failed ? TN_NOMEM : tn__ddb_call(&r->aws, c->h, "BatchGetItem", b.p, b.len, &resp);
    tn__sb_free(&b);
    if (rc == TN_NOMEM) return;
    /* A role without dynamodb:BatchGetItem: ask row by row from now on. */
    if (rc == TN_DENIED) r->no_batch_get = 1;
    cJSON *j = rc == TN_OK ? cJSON_Parse(resp.body) : NULL;
    tn__ddb_resp_free(&resp);
    cJSON *got = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "Responses"), r->aws.table);
    cJSON *un = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "UnprocessedKeys"), r->aws.table);
    if (cJSON_IsArray(got) && (!un || cJSON_GetArraySize(cJSON_GetObjectItem(un, "Keys")) == 0)) {
        for (int q = 0; q < n; q++)
            if (keys[q].part) ver[q] = 0;
        cJSON *e;
        cJSON_ArrayForEach(e, got) {
            const char *pk = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(e, "pk"), "S"));
            const char *sk = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(e, "sk"), "S"));
            for (int q = 0; pk && sk && q < n; q++)
                if (keys[q].part && strcmp(keys[q].sort, sk) == 0 && strcmp(keys[q].part, pk) == 0)
                    ver[q] = tn__ddb_item_version(e);
        }
    }
    cJSON_Delete(j);
}

static int aws_versions(tn_remote_conn *c, const tn_remote_row *rows, int n, int64_t *ver) {
    aws_remote *r = c->r;
    tn__remote_key *keys = calloc((size_t)(n ? n : 1), sizeof *keys);
    if (!keys) return TN_NOMEM;
    int rc = TN_OK, nkeys = 0;
    for (int i = 0; i < n; i++) {
        ver[i] = -1;
        if (tn__remote_key_build(rows[i].tenant, rows[i].kind, rows[i].key, &keys[i]) == TN_OK) nkeys++;
    }
    if (nkeys > 1 && !r->no_batch_get) batch_versions(c, keys, n, ver);
    /* Whatever the batch did not answer, row by row. */
    for (int i = 0; i < n && rc == TN_OK && !stopping(r); i++)
        if (ver[i] < 0 && keys[i].part) ver[i] = get_version(c, &keys[i], &rc);
    for (int i = 0; i < n; i++) tn__remote_key_free(&keys[i]);
    free(keys);
    return rc;
}

/* ---- objects ---------------------------------------------------------------------- */

/* The object name of file f, into k; TN_INVALID when f cannot name one. */
static int object_of(const tn_remote_row *f, tn__remote_key *k) {
    return tn__remote_key_build(f->tenant, TN__REMOTE_FILE, f->key, k);
}

static int aws_put_object(tn_remote_conn *c, const tn_remote_row *f, const void *data, size_t len) {
    tn__remote_key k;
    int rc = object_of(f, &k);
    if (rc == TN_OK)
        rc = tn__s3_put(&c->r->aws, c->h, k.object, data, len, f->sha256, f->content_type);
    tn__remote_key_free(&k);
    return rc;
}

static int aws_mp_create(tn_remote_conn *c, const tn_remote_row *f, char *upload_id, size_t n) {
    tn__remote_key k;
    int rc = object_of(f, &k);
    if (rc == TN_OK) rc = tn__s3_mp_create(&c->r->aws, c->h, k.object, upload_id, n);
    tn__remote_key_free(&k);
    return rc;
}

static int aws_mp_part(tn_remote_conn *c, const tn_remote_row *f, const char *upload_id, int part,
                       const void *data, size_t len, char *etag, size_t etag_n) {
    tn__remote_key k;
    int rc = object_of(f, &k);
    if (rc == TN_OK)
        rc = tn__s3_mp_part(&c->r->aws, c->h, k.object, upload_id, part, data, len, etag, etag_n);
    tn__remote_key_free(&k);
    return rc;
}

static int aws_mp_complete(tn_remote_conn *c, const tn_remote_row *f, const char *upload_id,
                           const char (*etags)[72], int nparts) {
    tn__remote_key k;
    int rc = object_of(f, &k);
    if (rc == TN_OK) rc = tn__s3_mp_complete(&c->r->aws, c->h, k.object, upload_id, etags, nparts);
    tn__remote_key_free(&k);
    return rc;
}

static int aws_mp_abort(tn_remote_conn *c, const tn_remote_row *f, const char *upload_id) {
    tn__remote_key k;
    int rc = object_of(f, &k);
    if (rc == TN_OK) rc = tn__s3_mp_abort(&c->r->aws, c->h, k.object, upload_id);
    tn__remote_key_free(&k);
    return rc;
}

static int aws_mp_abort_all(tn_remote_conn *c, const tn_remote_row *f) {
    tn__remote_key k;
    int rc = object_of(f, &k);
    if (rc == TN_OK) rc = tn__s3_mp_abort_all(&c->r->aws, c->h, k.object);
    tn__remote_key_free(&k);
    return rc;
}

static int aws_delete_object(tn_remote_conn *c, const tn_remote_row *f) {
    tn__remote_key k;
    int rc = object_of(f, &k);
    if (rc == TN_OK) rc = tn__s3_delete(&c->r->aws, c->h, k.object);
    tn__remote_key_free(&k);
    return rc;
}

static int aws_get_object(tn_remote_conn *c, const tn_remote_row *f, int fd) {
    if (f->size < 0) return TN_INVALID;
    tn__remote_key k;
    int rc = object_of(f, &k);
    if (rc == TN_OK) rc = tn__s3_get(&c->r->aws, c->h, k.object, fd, f->size);
    tn__remote_key_free(&k);
    return rc;
}

/* ---- reading rows back ------------------------------------------------------------- */

/* Sends a Query or Scan (body), reads its rows into out (tenant: the
 * partition asked for, NULL for the tenant list) and its LastEvaluatedKey
 * into *lek (*have_lek).  On failure out is emptied. */
static int read_page(tn_remote_conn *c, const char *target, tn__sbuf *body, const char *tenant,
                     tn_remote_page *out, tn__ddb_key *lek, int *have_lek, int64_t *max_feed) {
    *have_lek = 0;
    *max_feed = -1;
    out->next[0] = '\0';
    if (body->failed) return TN_NOMEM;
    tn__ddb_resp resp;
    int rc = tn__ddb_call(&c->r->aws, c->h, target, body->p, body->len, &resp);
    if (rc == TN_OK) {
        const char *l = NULL;
        size_t ll = 0;
        rc = tn__ddb_page_parse(resp.body, strlen(resp.body), tenant, out, &l, &ll, max_feed);
        if (rc == TN_OK && l) {
            rc = tn__ddb_key_parse(l, ll, lek);
            if (rc == TN_INVALID) rc = TN_NETWORK; /* not DynamoDB's answer */
            *have_lek = rc == TN_OK;
        }
    } else {
        rc = tn__ddb_index_error(rc, resp.body);
    }
    tn__ddb_resp_free(&resp);
    if (rc != TN_OK) tn_remote_page_free(out);
    return rc;
}

static void key_json(tn__sbuf *b, const char *name, const char *s, size_t n) {
    tn__sb_fmt(b, "\"%s\":{\"S\":", name);
    tn__ddb_json_str_n(b, s, n);
    tn__sb_str(b, "}");
}

static int aws_changes(tn_remote_conn *c, const char *tenant, const char *cursor, int max,
                       tn_remote_page *out, char cursor_out[256]) {
    aws_remote *r = c->r;
    out->next[0] = '\0';
    cursor_out[0] = '\0';
    if (max < 1 || !cursor) return TN_INVALID;
    tn__remote_key k;
    int rc = tn__remote_key_build(tenant, TN__REMOTE_TENANT, NULL, &k);
    if (rc != TN_OK) return rc;
    tn__ddb_cursor cur;
    if ((rc = tn__ddb_cursor_parse(cursor, &cur)) != TN_OK) {
        tn__remote_key_free(&k);
        return rc;
    }
    /* On any failure the caller keeps where it was. */
    snprintf(cursor_out, 256, "%s", cursor);
    tn__sbuf b = {0};
    tn__sb_str(&b, "{\"TableName\":");
    tn__sb_json_str(&b, r->aws.table);
    tn__sb_fmt(&b, ",\"IndexName\":\"feed\",\"ScanIndexForward\":true,\"Limit\":%d", max);
    if (cur.walking) {
        /* The next page of the walk: after (feed, sk), whatever the start. */
        tn__sb_str(&b, ",\"KeyConditionExpression\":\"pk = :p\",\"ExpressionAttributeValues\":{\":p\":{\"S\":");
        tn__sb_json_str(&b, k.part);
        tn__sb_str(&b, "}},\"ExclusiveStartKey\":{");
        key_json(&b, "pk", k.part, strlen(k.part));
        tn__sb_str(&b, ",");
        key_json(&b, "sk", cur.sk.p, cur.sk.len);
        tn__sb_fmt(&b, ",\"feed\":{\"N\":\"%s\"}}}", cur.feed);
    } else {
        int64_t from = cur.high > OVERLAP_MS ? cur.high - OVERLAP_MS : 0;
        tn__sb_str(&b, ",\"KeyConditionExpression\":\"pk = :p AND #f > :from\","
                       "\"ExpressionAttributeNames\":{\"#f\":\"feed\"},"
                       "\"ExpressionAttributeValues\":{\":p\":{\"S\":");
        tn__sb_json_str(&b, k.part);
        tn__sb_fmt(&b, "},\":from\":{\"N\":\"%lld\"}}}", (long long)from);
    }
    tn__ddb_key lek;
    int have = 0;
    int64_t maxf, asked = tn__wall_ms();
    rc = read_page(c, "Query", &b, tenant, out, &lek, &have, &maxf);
    tn__sb_free(&b);
    if (rc == TN_OK) {
        /* The highest feed seen, never past this reader's own clock.  At the
         * end of the walk the feed was read up to when this page was asked
         * for, so the high mark moves there: an idle pull then re-reads the
         * overlap before now, not the rows before the last write for ever. */
        int64_t now = tn__wall_ms();
        if (maxf > now) maxf = now;
        if (maxf > cur.high) cur.high = maxf;
        if (!have && asked > cur.high) cur.high = asked;
        tn__ddb_cursor next = {.high = cur.high};
        if (have) {
            if (lek.pk.len != strlen(k.part) || memcmp(lek.pk.p, k.part, lek.pk.len) != 0 ||
                !lek.feed.len || lek.sk.len == 0) {
                rc = TN_NETWORK; /* a key outside the partition asked for: not the answer */
            } else {
                next.walking = 1;
                memcpy(next.feed, lek.feed.p, lek.feed.len);
                next.feed[lek.feed.len] = '\0';
                next.sk = lek.sk;
            }
        }
        char text[TN__DDB_CURSOR_MAX + 1];
        if (rc == TN_OK && (rc = tn__ddb_cursor_format(&next, text)) == TN_OK) {
            memcpy(cursor_out, text, strlen(text) + 1);
            snprintf(out->next, sizeof out->next, "%s", have ? "more" : "");
        }
        if (have) tn__ddb_key_free(&lek);
        if (rc != TN_OK) {
            tn_remote_page_free(out);
            snprintf(cursor_out, 256, "%s", cursor);
        }
    }
    tn__ddb_cursor_free(&cur);
    tn__remote_key_free(&k);
    return rc;
}

/* The end of the feed now: caught up to this reader's clock (the next call
 * still re-reads the overlap). */
static int aws_feed_end(tn_remote_conn *c, const char *tenant, char cursor_out[256]) {
    (void)c;
    (void)tenant;
    tn__ddb_cursor now = {.high = tn__wall_ms()};
    char text[TN__DDB_CURSOR_MAX + 1];
    int rc = tn__ddb_cursor_format(&now, text);
    if (rc == TN_OK) snprintf(cursor_out, 256, "%s", text);
    return rc;
}

/* A page token's keys: "l<sk>" (list) or "s<pk>!<sk>" (tenants). */
static int token_parse(const char *t, char kind, tn__sbuf *pk, tn__sbuf *sk) {
    if (!t || !*t) return TN_OK;
    if (t[0] != kind) return TN_INVALID;
    const char *s = t + 1, *bang = kind == 's' ? strchr(s, '!') : NULL;
    int rc = TN_OK;
    if (kind == 's') {
        if (!bang || bang == s) return TN_INVALID;
        rc = tn__ddb_tok_dec(s, (size_t)(bang - s), pk);
        s = bang + 1;
    }
    if (rc == TN_OK) rc = tn__ddb_tok_dec(s, strlen(s), sk);
    if (rc == TN_OK && (sk->len == 0 || (kind == 's' && pk->len == 0))) rc = TN_INVALID;
    return rc;
}

/* out->next for the key lek: kind, then the keys; a sort key too long is cut
 * at a character boundary (the next page repeats a row or two: never skips,
 * since a partition is ordered by sort key).  A partition key that does not
 * fit cannot be cut: TN_REMOTE. */
static int token_format(tn_remote_page *out, char kind, const tn__ddb_key *lek) {
    tn__sbuf b = {0};
    size_t room = sizeof out->next - 1;
    tn__sb_add(&b, &kind, 1);
    if (kind == 's') {
        if (tn__ddb_tok_enc(lek->pk.p, lek->pk.len, &b, room - 3) != lek->pk.len) {
            tn__sb_free(&b);
            return TN_REMOTE;
        }
        tn__sb_add(&b, "!", 1);
    }
    size_t took = b.failed ? 0 : tn__ddb_tok_enc(lek->sk.p, lek->sk.len, &b, room - b.len);
    int rc = b.failed ? TN_NOMEM : took == 0 ? TN_REMOTE : TN_OK;
    if (rc == TN_OK) memcpy(out->next, b.p, b.len + 1);
    tn__sb_free(&b);
    return rc;
}

static int aws_list(tn_remote_conn *c, const char *tenant, const char *page_token,
                    tn_remote_page *out) {
    aws_remote *r = c->r;
    out->next[0] = '\0';
    tn__remote_key k;
    int rc = tn__remote_key_build(tenant, TN__REMOTE_TENANT, NULL, &k);
    if (rc != TN_OK) return rc;
    tn__sbuf pk = {0}, sk = {0}, b = {0};
    if ((rc = token_parse(page_token, 'l', &pk, &sk)) == TN_OK) {
        tn__sb_str(&b, "{\"TableName\":");
        tn__sb_json_str(&b, r->aws.table);
        tn__sb_str(&b, ",\"ConsistentRead\":true,\"KeyConditionExpression\":\"pk = :p\","
                       "\"ExpressionAttributeValues\":{\":p\":{\"S\":");
        tn__sb_json_str(&b, k.part);
        tn__sb_str(&b, "}}");
        if (r->page_rows > 0) tn__sb_fmt(&b, ",\"Limit\":%d", r->page_rows);
        if (sk.len) {
            tn__sb_str(&b, ",\"ExclusiveStartKey\":{");
            key_json(&b, "pk", k.part, strlen(k.part));
            tn__sb_str(&b, ",");
            key_json(&b, "sk", sk.p, sk.len);
            tn__sb_str(&b, "}");
        }
        tn__sb_str(&b, "}");
        tn__ddb_key lek;
        int have;
        int64_t maxf;
        rc = read_page(c, "Query", &b, tenant, out, &lek, &have, &maxf);
        if (rc == TN_OK && have) {
            if (lek.pk.len != strlen(k.part) || memcmp(lek.pk.p, k.part, lek.pk.len) != 0)
                rc = TN_NETWORK;
            else
                rc = token_format(out, 'l', &lek);
            tn__ddb_key_free(&lek);
            if (rc != TN_OK) tn_remote_page_free(out);
        }
    }
    tn__sb_free(&b);
    tn__sb_free(&pk);
    tn__sb_free(&sk);
    tn__remote_key_free(&k);
    return rc;
}

static int aws_tenants(tn_remote_conn *c, const char *page_token, tn_remote_page *out) {
    aws_remote *r = c->r;
    out->next[0] = '\0';
    tn__sbuf pk = {0}, sk = {0}, b = {0};
    int rc = token_parse(page_token, 's', &pk, &sk);
    if (rc == TN_OK) {
        /* A Scan reads the whole table (every tenant's rows, counted in read
         * units): only a full restore lists the tenants, with credentials
         * that may (the appliance role may not). */
        tn__sb_str(&b, "{\"TableName\":");
        tn__sb_json_str(&b, r->aws.table);
        tn__sb_str(&b, ",\"ConsistentRead\":true,\"FilterExpression\":\"sk = :t\","
                       "\"ExpressionAttributeValues\":{\":t\":{\"S\":\"TENANT\"}}");
        if (r->page_rows > 0) tn__sb_fmt(&b, ",\"Limit\":%d", r->page_rows);
        if (sk.len) {
            tn__sb_str(&b, ",\"ExclusiveStartKey\":{");
            key_json(&b, "pk", pk.p, pk.len);
            tn__sb_str(&b, ",");
            key_json(&b, "sk", sk.p, sk.len);
            tn__sb_str(&b, "}");
        }
        tn__sb_str(&b, "}");
        tn__ddb_key lek;
        int have;
        int64_t maxf;
        rc = read_page(c, "Scan", &b, NULL, out, &lek, &have, &maxf);
        if (rc == TN_OK && have) {
            rc = token_format(out, 's', &lek);
            tn__ddb_key_free(&lek);
            if (rc != TN_OK) tn_remote_page_free(out);
        }
    }
    tn__sb_free(&b);
    tn__sb_free(&pk);
    tn__sb_free(&sk);
    return rc;
}

static int aws_delete_row(tn_remote_conn *c, const tn_remote_row *row) {
    tn__remote_key k;
    int rc = tn__remote_key_build(row->tenant, row->kind, row->key, &k);
    if (rc != TN_OK) return rc;
    tn__sbuf b = {0};
    tn__sb_str(&b, "{\"TableName\":");
    tn__sb_json_str(&b, c->r->aws.table);
    tn__sb_str(&b, ",\"Key\":{\"pk\":{\"S\":");
    tn__sb_json_str(&b, k.part);
    tn__sb_str(&b, "},\"sk\":{\"S\":");
    tn__sb_json_str(&b, k.sort);
    tn__sb_str(&b, "}}}");
    tn__ddb_resp resp;
    /* Deleting what is not there succeeds: a replay is harmless. */
    rc = b.failed ? TN_NOMEM : tn__ddb_call(&c->r->aws, c->h, "DeleteItem", b.p, b.len, &resp);
    if (rc != TN_NOMEM) tn__ddb_resp_free(&resp);
    tn__sb_free(&b);
    tn__remote_key_free(&k);
    return rc;
}

int64_t tn__remote_aws_requests(const tn_remote_conn *c) { return c ? tn__http_calls(c->h) : 0; }

void tn__remote_aws_page_rows(tn_remote *base, int n) {
    if (base && base->m && strcmp(base->m->name, "aws") == 0) ((aws_remote *)base)->page_rows = n;
}

/* ---- set-up --------------------------------------------------------------------- */

static int call(aws_remote *r, tn__http *h, const char *target, const char *body, tn__ddb_resp *resp) {
    return tn__ddb_call(&r->aws, h, target, body, strlen(body), resp);
}

/* The feed index's definition (CreateTable, UpdateTable). */
#define FEED_INDEX                                                                     \
    "\"IndexName\":\"feed\",\"KeySchema\":[{\"AttributeName\":\"pk\",\"KeyType\":\"HASH\"}," \
    "{\"AttributeName\":\"feed\",\"KeyType\":\"RANGE\"}],\"Projection\":{\"ProjectionType\":\"ALL\"}"
#define ATTRIBUTES                                                                           \
    "\"AttributeDefinitions\":[{\"AttributeName\":\"pk\",\"AttributeType\":\"S\"},"          \
    "{\"AttributeName\":\"sk\",\"AttributeType\":\"S\"},{\"AttributeName\":\"feed\",\"AttributeType\":\"N\"}]"

enum { IX_MISSING, IX_BUILDING, IX_ACTIVE, IX_OTHER };

/* What a DescribeTable answer says: the table is ACTIVE (*active), the feed
 * index's state, and for a provisioned table its capacity (*rcu, *wcu;
 * 0 on-demand). */
static int index_state(const char *body, int *active, long *rcu, long *wcu) {
    cJSON *j = cJSON_Parse(body);
    const cJSON *t = cJSON_GetObjectItem(j, "Table"), *ix;
    const char *status = cJSON_GetStringValue(cJSON_GetObjectItem(t, "TableStatus"));
    *active = status && strcmp(status, "ACTIVE") == 0;
    const char *billing = cJSON_GetStringValue(
        cJSON_GetObjectItem(cJSON_GetObjectItem(t, "BillingModeSummary"), "BillingMode"));
    const cJSON *pt = cJSON_GetObjectItem(t, "ProvisionedThroughput");
    *rcu = *wcu = 0;
    if (!billing || strcmp(billing, "PAY_PER_REQUEST") != 0) {
        *rcu = (long)cJSON_GetNumberValue(cJSON_GetObjectItem(pt, "ReadCapacityUnits"));
        *wcu = (long)cJSON_GetNumberValue(cJSON_GetObjectItem(pt, "WriteCapacityUnits"));
        if (*rcu < 1 || *wcu < 1) *rcu = *wcu = 0; /* not said: on-demand */
    }
    int state = IX_MISSING;
    cJSON_ArrayForEach(ix, cJSON_GetObjectItem(t, "GlobalSecondaryIndexes")) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(ix, "IndexName"));
        if (!name || strcmp(name, "feed") != 0) continue;
        const cJSON *ks = cJSON_GetObjectItem(ix, "KeySchema");
        const char *h = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(ks, 0), "AttributeName"));
        const char *hk = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(ks, 0), "KeyType"));
        const char *rg = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(ks, 1), "AttributeName"));
        const char *rk = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(ks, 1), "KeyType"));
        const char *proj = cJSON_GetStringValue(
            cJSON_GetObjectItem(cJSON_GetObjectItem(ix, "Projection"), "ProjectionType"));
        const char *st = cJSON_GetStringValue(cJSON_GetObjectItem(ix, "IndexStatus"));
        const cJSON *backfill = cJSON_GetObjectItem(ix, "Backfilling");
        if (cJSON_GetArraySize(ks) != 2 || !h || !hk || !rg || !rk || !proj ||
            strcmp(h, "pk") != 0 || strcmp(hk, "HASH") != 0 || strcmp(rg, "feed") != 0 ||
            strcmp(rk, "RANGE") != 0 || strcmp(proj, "ALL") != 0)
            state = IX_OTHER;
        else if (st && strcmp(st, "ACTIVE") == 0 && !cJSON_IsTrue(backfill))
            state = IX_ACTIVE;
        else
            state = IX_BUILDING;
    }
    cJSON_Delete(j);
    return state;
}

/* Creates the table (on-demand, TTL on expires_at, the feed index) when
 * missing, adds the feed index to a table without it (and waits, bounded,
 * until DynamoDB has built it), and checks that the bucket is reachable. */
static int aws_init(tn_remote *base, const char **what) {
    aws_remote *r = (aws_remote *)base;
    *what = NULL;
    tn__http *h = NULL;
    int rc = tn__http_new(60, NULL, &r->base.stop, &h);
    if (rc != TN_OK) return rc;
    tn__sbuf b = {0};
    tn__sb_str(&b, "{\"TableName\":");
    tn__sb_json_str(&b, r->aws.table);
    tn__sb_str(&b, "," ATTRIBUTES ","
                   "\"KeySchema\":[{\"AttributeName\":\"pk\",\"KeyType\":\"HASH\"},"
                   "{\"AttributeName\":\"sk\",\"KeyType\":\"RANGE\"}],"
                   "\"GlobalSecondaryIndexes\":[{" FEED_INDEX "}],"
                   "\"BillingMode\":\"PAY_PER_REQUEST\"}");
    char *create = tn__sb_take(&b);
    tn__sb_str(&b, "{\"TableName\":");
    tn__sb_json_str(&b, r->aws.table);
    tn__sb_str(&b, "}");
    char *describe = tn__sb_take(&b);
    tn__sb_str(&b, "{\"TableName\":");
    tn__sb_json_str(&b, r->aws.table);
    tn__sb_str(&b, ",\"TimeToLiveSpecification\":{\"Enabled\":true,\"AttributeName\":\"expires_at\"}}");
    char *ttl = tn__sb_take(&b);
    if (!create || !describe || !ttl) {
        rc = TN_NOMEM;
    } else {
        tn__ddb_resp resp;
        rc = call(r, h, "CreateTable", create, &resp);
        if (rc != TN_OK && strcmp(resp.type, "ResourceInUseException") == 0) rc = TN_OK;
        tn__ddb_resp_free(&resp);
        if (rc != TN_OK) *what = "cannot create the DynamoDB table";
        /* Wait (bounded) until the table and its feed index are ACTIVE,
         * adding the index to a table made before it existed. */
        int64_t deadline = tn__mono_ms() + INDEX_WAIT_MS, table_deadline = tn__mono_ms() + 60000;
        int asked = 0;
        while (rc == TN_OK) {
            rc = call(r, h, "DescribeTable", describe, &resp);
            int active = 0, state = IX_MISSING;
            long rcu = 0, wcu = 0;
            if (rc == TN_OK) state = index_state(resp.body, &active, &rcu, &wcu);
            tn__ddb_resp_free(&resp);
            if (rc != TN_OK) {
                *what = "cannot describe the DynamoDB table";
                break;
            }
            if (active && state == IX_ACTIVE) break;
            if (state == IX_OTHER) {
                rc = TN_INVALID;
                *what = "the DynamoDB table has an index named feed that is not the change feed's "
                        "(hash key pk, range key feed N, all attributes)";
                break;
            }
            if (!active && tn__mono_ms() > table_deadline && !asked) {
                rc = TN_TIMEOUT;
                *what = "the DynamoDB table did not become ACTIVE";
                break;
            }
            if (active && state == IX_MISSING && !asked) {
                tn__sb_str(&b, "{\"TableName\":");
                tn__sb_json_str(&b, r->aws.table);
                tn__sb_str(&b, "," ATTRIBUTES ",\"GlobalSecondaryIndexUpdates\":[{\"Create\":{" FEED_INDEX);
                if (rcu > 0)
                    tn__sb_fmt(&b, ",\"ProvisionedThroughput\":{\"ReadCapacityUnits\":%ld,"
                                   "\"WriteCapacityUnits\":%ld}", rcu, wcu);
                tn__sb_str(&b, "}}]}");
                char *update = tn__sb_take(&b);
                rc = update ? call(r, h, "UpdateTable", update, &resp) : TN_NOMEM;
                free(update);
                if (rc != TN_NOMEM) tn__ddb_resp_free(&resp);
                if (rc != TN_OK) {
                    *what = "cannot add the change feed index (feed) to the DynamoDB table";
                    break;
                }
                asked = 1;
            }
            if (tn__mono_ms() > deadline) {
                rc = TN_TIMEOUT;
                *what = "the change feed index (feed) is still being built: run remote init "
                        "again later";
                break;
            }
            usleep(active ? 1000000 : 500000);
        }
        if (rc == TN_OK) {
            /* Already enabled is a ValidationException: not an error here. */
            int trc = call(r, h, "UpdateTimeToLive", ttl, &resp);
            tn__ddb_resp_free(&resp);
            if (trc != TN_OK && !tn_err_retryable(trc) && trc != TN_INVALID) {
                rc = trc;
                *what = "cannot enable TTL on the DynamoDB table";
            }
        }
    }
    free(create);
    free(describe);
    free(ttl);
    if (rc == TN_OK && (rc = tn__s3_head_bucket(&r->aws, h)) != TN_OK)
        *what = rc == TN_NOTFOUND ? "the S3 bucket does not exist" : "cannot reach the S3 bucket";
    tn__http_free(h);
    return rc;
}

static int aws_conn_open(tn_remote *base, int64_t bandwidth, tn_remote_conn **out) {
    *out = NULL;
    tn_remote_conn *c = calloc(1, sizeof *c);
    if (!c) return TN_NOMEM;
    c->r = (aws_remote *)base;
    if (bandwidth > 0) tn__pace_set(&c->r->pace, bandwidth);
    int rc = tn__http_new(300, bandwidth > 0 ? &c->r->pace : NULL, &c->r->base.stop, &c->h);
    if (rc != TN_OK) {
        free(c);
        return rc;
    }
    *out = c;
    return TN_OK;
}

static void aws_conn_close(tn_remote_conn *c) {
    if (!c) return;
    tn__http_free(c->h);
    free(c);
}

static void aws_close(tn_remote *base) {
    aws_remote *r = (aws_remote *)base;
    if (!r) return;
    tn__aws_free(&r->aws);
    tn__pace_destroy(&r->pace);
    free(r);
}

static const tn_remote_methods aws_methods = {
    .version = 2,
    .name = "aws",
    .init = aws_init,
    .conn_open = aws_conn_open,
    .conn_close = aws_conn_close,
    .put_rows = aws_put_rows,
    .versions = aws_versions,
    .put_object = aws_put_object,
    .mp_create = aws_mp_create,
    .mp_part = aws_mp_part,
    .mp_complete = aws_mp_complete,
    .mp_abort = aws_mp_abort,
    .mp_abort_all = aws_mp_abort_all,
    .delete_object = aws_delete_object,
    .close = aws_close,
    .changes = aws_changes,
    .list = aws_list,
    .get_object = aws_get_object,
    .delete_row = aws_delete_row,
    .tenants = aws_tenants,
    .feed_end = aws_feed_end,
};

int tn_remote_aws_open(const char *arg, tn_remote **out, char *err, size_t errlen) {
    (void)arg;
    *out = NULL;
    aws_remote *r = calloc(1, sizeof *r);
    if (!r) return TN_NOMEM;
    int rc = tn__aws_load(&r->aws, NULL, err, errlen);
    if (rc != TN_OK) {
        free(r);
        return rc;
    }
    if (!r->aws.bucket[0]) {
        snprintf(err, errlen, "TENANTRY_S3_BUCKET is not set");
        tn__aws_free(&r->aws);
        free(r);
        return TN_INVALID;
    }
    const char *tr = getenv("TENANTRY_SYNC_TRANSACT");
    const char *sw = getenv("TENANTRY_SYNC_SINGLE_WRITER");
    r->mode = sw && strcmp(sw, "1") == 0 ? MODE_BATCH : tr && strcmp(tr, "1") == 0 ? MODE_TX : MODE_PUT;
    r->base.m = &aws_methods;
    r->base.batch_rows = r->mode == MODE_TX ? MAX_TRANSACT : r->mode == MODE_BATCH ? MAX_BATCH_WRITE : 1;
    r->base.batch_bytes = r->mode == MODE_TX ? MAX_TX_BYTES : 0;
    r->base.alone_bytes = r->mode == MODE_TX ? MAX_TX_ITEM : 0;
    r->base.caps = r->mode == MODE_BATCH ? TN_REMOTE_UNCONDITIONAL : 0;
    tn__pace_init(&r->pace);
    *out = &r->base;
    return TN_OK;
}
