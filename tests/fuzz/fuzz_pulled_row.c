/*
 * fuzz_pulled_row.c - libFuzzer target for what a pull reads from DynamoDB
 * (sync/aws/dynamo.c): one item into a row (tn__ddb_row_parse), a whole
 * Query answer (tn__ddb_page_parse) and the AttributeValue -> JSON
 * conversion (tn__ddb_av_to_json).  Remote rows are untrusted input.
 *
 * Input layout: byte 0 picks the mode (value % 4): 0 an item of tenant T,
 * 1 an item for the tenant list (any tenant), 2 a Query answer for T, 3 the
 * conversion both ways; the rest is the text.
 * Invariants:
 *   - an item is either one more row (TN_OK) or one more refusal
 *     (TN_INVALID), never both, never half a row (TN_NOMEM aside);
 *   - an accepted row is well-formed, checked here independently: its text
 *     was JSON (cJSON parses it) and its pk names the row's tenant (T when
 *     asked for T; any valid uuid for the tenant list, and then only tenant
 *     rows); its key builds with remote_key.c; version >= 1; times and feed
 *     >= 0; a live item's or tenant row's data is JSON the store accepts
 *     (tn__json_valid, depth 64, at most 4 MiB; a tenant row's an object);
 *     a live file's sha256 is 64 lowercase hex digits, its content type 1 to
 *     255 printable characters, its size >= 0; a tombstone has no data;
 *   - a Query answer taken as TN_OK is JSON whose Items array has exactly
 *     rows + refused elements, and its LastEvaluatedKey span is an object;
 *   - the conversion's output, when it succeeds, is JSON the store accepts;
 *     and for every JSON text the store accepts (valid, depth 64, valid
 *     UTF-8) the way there and back (tn__ddb_json_to_av, then
 *     tn__ddb_av_to_json) gives the text again without its white space.
 */
#include "dynamo.h"
#include "json_check.h"
#include "remote_key.h"
#include "tenantry.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"

static void trap(const char *why, const char *text, size_t n) {
    fprintf(stderr, "fuzz_pulled_row: %s: \"%.*s\"\n", why, (int)(n > 400 ? 400 : n), text);
    abort();
}

static int hex64(const char *s) {
    if (!s || strlen(s) != 64) return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

/* Independent of the code under test: RFC 3629 well-formedness. */
static int utf8_ok(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (!len || i + len > n) return 0;
        unsigned cp = len == 1 ? c : len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        static const unsigned min[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += len;
    }
    return 1;
}

static void check_row(const tn_remote_row *r, const char *tenant, const char *text, size_t n) {
    cJSON *j = cJSON_ParseWithLength(text, n);
    if (!j) trap("a row from text that is not JSON", text, n);
    const char *pk = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "pk"), "S"));
    char want[64];
    snprintf(want, sizeof want, "TENANT#%s", r->tenant);
    if (!pk || strcmp(pk, want) != 0) trap("the row's tenant is not its pk", text, n);
    cJSON_Delete(j);
    if (tenant && strcmp(r->tenant, tenant) != 0) trap("a row of another tenant", text, n);
    if (!tenant && r->kind != TN_REMOTE_TENANT) trap("the tenant list took a non-tenant row", text, n);
    tn__remote_key k;
    if (tn__remote_key_build(r->tenant, r->kind, r->kind == TN_REMOTE_TENANT ? NULL : r->key, &k) != TN_OK)
        trap("a row whose key remote_key.c refuses", text, n);
    tn__remote_key_free(&k);
    if (!r->key || (r->kind == TN_REMOTE_TENANT && *r->key)) trap("a key", text, n);
    if (r->version < 1 || r->updated_at < 0 || r->feed < 0 || r->expires_at < 0)
        trap("a negative number", text, n);
    if (r->deleted) {
        if (r->data) trap("a tombstone with data", text, n);
    } else if (r->kind == TN_REMOTE_FILE) {
        size_t cl = r->content_type ? strlen(r->content_type) : 0;
        if (!hex64(r->sha256) || cl < 1 || cl > 255 || r->size < 0 || r->data)
            trap("a file row", text, n);
        for (size_t i = 0; i < cl; i++)
            if (r->content_type[i] < 0x20 || r->content_type[i] > 0x7e) trap("a content type", text, n);
    } else {
        size_t dl = r->data ? strlen(r->data) : 0;
        if (!r->data || !tn__json_valid(r->data, dl, 64) || dl > TN__DDB_MAX_JSON ||
            !utf8_ok((const unsigned char *)r->data, dl))
            trap("data the store would refuse", text, n);
        if (r->kind == TN_REMOTE_TENANT && r->data[0] != '{') trap("a tenant row's data", text, n);
    }
}

static void one_item(const char *text, size_t n, const char *tenant) {
    tn_remote_page p = {0};
    int64_t feed;
    int rc = tn__ddb_row_parse(text, n, tenant, &p, &feed);
    if (rc == TN_OK) {
        if (p.n != 1 || p.refused != 0) trap("TN_OK without exactly one row", text, n);
        check_row(&p.rows[0], tenant, text, n);
        if (feed != p.rows[0].feed && !(feed == -1 && p.rows[0].feed == 0)) trap("feed", text, n);
    } else if (rc == TN_INVALID) {
        if (p.n != 0 || p.refused != 1) trap("a refusal not counted once", text, n);
    } else if (rc != TN_NOMEM) {
        trap("an unexpected code", text, n);
    }
    tn_remote_page_free(&p);
}

static void answer(const char *text, size_t n) {
    tn_remote_page p = {0};
    const char *lek;
    size_t lek_len;
    int64_t maxf;
    int rc = tn__ddb_page_parse(text, n, T, &p, &lek, &lek_len, &maxf);
    if (rc == TN_OK) {
        cJSON *j = cJSON_ParseWithLength(text, n);
        if (!j) trap("an answer that is not JSON", text, n);
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "Items");
        if (!cJSON_IsArray(items) || cJSON_GetArraySize(items) != p.n + p.refused)
            trap("rows + refused is not the number of Items", text, n);
        for (int i = 0; i < p.n; i++) {
            if (strcmp(p.rows[i].tenant, T) != 0) trap("a row of another tenant", text, n);
            if (p.rows[i].feed > 0 && p.rows[i].feed > maxf) trap("max feed below a row's", text, n);
        }
        if (lek) {
            cJSON *l = cJSON_ParseWithLength(lek, lek_len);
            if (!cJSON_IsObject(l)) trap("a LastEvaluatedKey that is not an object", text, n);
            cJSON_Delete(l);
            tn__ddb_key k;
            if (tn__ddb_key_parse(lek, lek_len, &k) == TN_OK) tn__ddb_key_free(&k);
        }
        cJSON_Delete(j);
    } else if (rc != TN_NETWORK && rc != TN_NOMEM) {
        trap("an unexpected code", text, n);
    }
    tn_remote_page_free(&p);
}

/* text without the white space between tokens */
static char *strip_ws(const char *s, size_t n) {
    char *o = malloc(n + 1), *w = o;
    int in = 0;
    for (size_t i = 0; o && i < n; i++) {
        char c = s[i];
        if (in) {
            *w++ = c;
            if (c == '\\' && i + 1 < n) *w++ = s[++i];
            else if (c == '"') in = 0;
        } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            *w++ = c;
            if (c == '"') in = 1;
        }
    }
    if (o) *w = '\0';
    return o;
}

static void conversion(const char *text, size_t n) {
    tn__sbuf out = {0};
    int rc = tn__ddb_av_to_json(text, n, &out);
    if (rc == TN_OK && (!tn__json_valid(out.p, out.len, 64) ||
                        !utf8_ok((const unsigned char *)out.p, out.len)))
        trap("the conversion made JSON the store refuses", text, n);
    tn__sb_free(&out);
    if (!tn__json_valid(text, n, 64) || !utf8_ok((const unsigned char *)text, n)) return;
    tn__sbuf av = {0}, back = {0};
    rc = tn__ddb_json_to_av(text, n, &av);
    if (rc == TN_OK) rc = tn__ddb_av_to_json(av.p, av.len, &back);
    if (rc == TN_OK) {
        char *want = strip_ws(text, n);
        if (want && (back.len != strlen(want) || memcmp(back.p, want, back.len) != 0))
            trap("there and back changed the document", text, n);
        free(want);
    } else if (rc != TN_NOMEM) {
        /* A document the store accepts may have a key twice; nothing else is refused. */
        cJSON *j = cJSON_ParseWithLength(text, n);
        if (rc != TN_INVALID || !j) trap("a document the store holds could not come back", text, n);
        cJSON_Delete(j);
    }
    tn__sb_free(&av);
    tn__sb_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t n = size - 1;
    char *text = malloc(n + 1);
    if (!text) return 0;
    memcpy(text, data + 1, n);
    text[n] = '\0';
    switch (data[0] % 4) {
    case 0: one_item(text, n, T); break;
    case 1: one_item(text, n, NULL); break;
    case 2: answer(text, n); break;
    default: conversion(text, n); break;
    }
    free(text);
    return 0;
}
