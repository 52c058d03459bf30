/*
 * fuzz_http_json.c - libFuzzer target for the request-body path of
 * POST /v1/items: tn__req_json (src/api/respond.c: NUL check, tn__json_valid with
 * the HTTP depth bound, cJSON parse, must be an object) and the handler
 * tn__api_item_create (src/api/api_items.c: "id" must be a string, the raw text
 * of "data" is cut out of the body by its own scanner and stored as sent).
 *
 * The handler is called directly, as router.c calls it after authentication,
 * with a request holding only what it reads: the body, a tenant session and
 * the key's quota (none).  The store is opened once, under $TMPDIR, with two
 * tenants; B holds a marker item.  Invariants:
 *   - 201 only for a body that is one JSON object (no NUL), with "data" and
 *     with "id" absent or a string; anything else is a 4xx, never a 5xx;
 *   - on 201 the stored data means the same JSON as the body's "data" (as
 *     cJSON reads it): the raw cut-out and the parsed value agree;
 *   - no response contains a tenant id or B's data.
 */
#include "handlers.h"
#include "json_check.h"

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static tn_store *st;
static tn_session *sa, *sb;
static tn_tenant ta, tb;
static char dir[4096];

static void die(const char *what, int rc) {
    fprintf(stderr, "fuzz_http_json: %s: %s\n", what, tn_errname(rc));
    abort();
}

static void trap(const char *why, const uint8_t *data, size_t size, const char *resp) {
    fprintf(stderr, "fuzz_http_json: %s\n  body (%zu bytes): %.*s\n  response: %.300s\n", why,
            size, (int)(size > 300 ? 300 : size), (const char *)data, resp ? resp : "(none)");
    abort();
}

static int rm_one(const char *path, const struct stat *sb_, int flag, struct FTW *ftw) {
    (void)sb_, (void)flag, (void)ftw;
    return remove(path);
}

static void cleanup(void) {
    tn_session_close(sa);
    tn_session_close(sb);
    tn_close(st);
    if (dir[0]) nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/tn-fuzz-http.XXXXXX", tmp && *tmp ? tmp : P_tmpdir);
    if (!mkdtemp(dir)) abort();
    atexit(cleanup);
    char data_dir[4200];
    snprintf(data_dir, sizeof data_dir, "%s/data", dir);
    tn_options o;
    tn_options_init(&o);
    o.create = 1;
    o.synchronous = TN_SYNC_OFF; /* a scratch store: speed over durability */
    int rc = tn_open(data_dir, &o, &st);
    if (rc != TN_OK) die("tn_open", rc);
    if ((rc = tn_tenant_create(st, "tenant-a", &ta)) != TN_OK) die("tenant a", rc);
    if ((rc = tn_tenant_create(st, "tenant-b", &tb)) != TN_OK) die("tenant b", rc);
    if ((rc = tn_session_open(st, ta.id, &sa)) != TN_OK) die("session a", rc);
    if ((rc = tn_session_open(st, tb.id, &sb)) != TN_OK) die("session b", rc);
    if ((rc = tn_item_put(sa, "marker", "{\"owner\":\"A\"}", NULL)) != TN_OK) die("put", rc);
    if ((rc = tn_item_put(sb, "marker", "{\"owner\":\"B-SECRET\"}", NULL)) != TN_OK)
        die("put", rc);
    return 0;
}

/* What the endpoint should accept, decided without the handler's code. */
static int acceptable(const char *body, size_t len, cJSON **parsed) {
    *parsed = NULL;
    if (len == 0 || memchr(body, 0, len) || !tn__json_valid(body, len, 32)) return 0;
    cJSON *j = cJSON_ParseWithLength(body, len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return 0;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    *parsed = j;
    return cJSON_GetObjectItemCaseSensitive(j, "data") && (!id || cJSON_IsString(id));
}

/* secret is in the response without having been in the request. */
static int leaked(const char *resp, const char *secret, const uint8_t *body, size_t n) {
    return strstr(resp, secret) && !memmem(body, n, secret, strlen(secret));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 65536) return 0;
    tn__req r;
    memset(&r, 0, sizeof r);
    r.fd = -1;
    r.body = malloc(size ? size : 1); /* exact size: ASan sees any over-read */
    if (!r.body) return 0;
    memcpy(r.body, data, size);
    r.len = size;
    r.has_body = 1;
    r.s = sa;
    r.key.max_items = -1;
    r.key.max_file_bytes = -1;
    tn__resp out;
    memset(&out, 0, sizeof out);
    out.fd = -1;

    tn__api_item_create(&r, &out);

    cJSON *model;
    int ok = acceptable(r.body, r.len, &model);
    const char *resp = out.body;
    if (!resp) trap("no response body", data, size, NULL);
    /* (The fuzzer learns these strings from the comparisons below and puts
     * them in bodies; a client's own data echoed back is no leak.) */
    if (leaked(resp, ta.id, data, size) || leaked(resp, tb.id, data, size) ||
        leaked(resp, "B-SECRET", data, size))
        trap("a tenant id or B's data in the response", data, size, resp);
    if (out.status >= 500) trap("a 5xx for a request body", data, size, resp);
    if (out.status == 201) {
        if (!ok) trap("201 for a body that should be refused", data, size, resp);
        cJSON *j = cJSON_Parse(resp);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
        if (!cJSON_IsString(id)) trap("201 without an id", data, size, resp);
        tn_item it = {0};
        int rc = tn_item_get(sa, id->valuestring, &it);
        if (rc != TN_OK) trap("the created item is not there", data, size, resp);
        cJSON *stored = cJSON_Parse(it.data);
        const cJSON *sent = cJSON_GetObjectItemCaseSensitive(model, "data");
        /* Compared as cJSON prints them, not with cJSON_Compare, which calls
         * two overflowing numbers (inf) different. */
        char *a = stored ? cJSON_PrintUnformatted(stored) : NULL;
        char *b = cJSON_PrintUnformatted(sent);
        if (!a || !b || strcmp(a, b) != 0)
            trap("stored data differs from the body's \"data\"", data, size, it.data);
        free(a);
        free(b);
        cJSON_Delete(stored);
        if ((rc = tn_item_delete(sa, id->valuestring, 0)) != TN_OK) die("delete", rc);
        tn_item_clear(&it);
        cJSON_Delete(j);
    } else if (out.status < 400) {
        trap("neither 201 nor an error", data, size, resp);
    }
    cJSON_Delete(model);
    free(out.body);
    free(r.body);
    return 0;
}
