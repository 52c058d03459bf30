/*
 * fuzz_config.c - libFuzzer target for the configuration file parser
 * (src/config.c), which is pure: bytes in, struct and error out.
 *
 * Invariants:
 *   - an error names a line of the input (or 0 for the whole file), a key of
 *     printable ASCII only, and says something;
 *   - an accepted file is written back out here as `key = "value"` lines
 *     (quotes and backslashes escaped) and parses to the same values: what
 *     the parser accepted it keeps exactly, whatever the spelling;
 *   - every string value is NUL-terminated and free of control bytes, and
 *     every number within its key's range (the parser's own table is not
 *     consulted: the ranges below are the documented ones).
 */
#include "config.h"
#include "tenantry.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void trap(const char *why, const uint8_t *data, size_t size) {
    fprintf(stderr, "fuzz_config: %s: \"%.*s\"\n", why, (int)(size > 400 ? 400 : size),
            (const char *)data);
    abort();
}

typedef struct sfield {
    const char *name;
    size_t off, cap;
} sfield;

#define S(f) {#f, offsetof(tn__config, f), sizeof(((tn__config *)0)->f)}
static const sfield strs[] = {S(cors_origins), S(s3_bucket), S(dynamodb_table),
                              S(table_prefix), S(region), S(role_arn), S(external_id)};

typedef struct nfield {
    const char *name;
    size_t off;
    double lo, hi;
} nfield;

#define N(f, lo, hi) {#f, offsetof(tn__config, f), lo, hi}
static const nfield ints[] = {
    N(threads, 1, 256), N(sync_interval, 1, 604800), N(sync_bandwidth, 0, 1e12),
    N(sync_early_rows, 1, 1e9), N(sync_connections, 1, 64), N(multipart_threshold_mb, 5, 1024), N(part_size_mb, 5, 5120),
    N(tombstone_ttl, 1, 316224000)};
static const nfield reals[] = {N(rate, 0.001, 1e6), N(burst, 1, 1e6),
                               N(auth_fail_rate, 0.001, 1e6), N(auth_fail_burst, 1, 1e6),
                               N(tenant_rate, 0, 1e6), N(tenant_burst, 1, 1e6)};

/* Written as `key = "value"  # again`, or as short a form as fits the line
 * limit the parser keeps: a value accepted from a line of at most the limit
 * fits as `key="value"` when it came quoted (the same escapes), and as
 * `key=value` when it came unquoted (no quote, no outer space, no " #"). */
static void put_str(char **p, const char *key, const char *v) {
    size_t esc = 0, klen = strlen(key);
    for (const char *q = v; *q; q++) esc += 1 + (*q == '"' || *q == '\\');
    if (klen + esc + 3 > TN__CONF_LINE_MAX && !strchr(v, '"')) {
        *p += sprintf(*p, "%s=%s\n", key, v);
        return;
    }
    int roomy = klen + esc + 14 <= TN__CONF_LINE_MAX;
    *p += sprintf(*p, roomy ? "%s = \"" : "%s=\"", key);
    for (; *v; v++) {
        if (*v == '"' || *v == '\\') *(*p)++ = '\\';
        *(*p)++ = *v;
    }
    *p += sprintf(*p, roomy ? "\"  # again\n" : "\"\n");
}

/* c written back as a file (malloc'd). */
static char *write_back(const tn__config *c) {
    char *out = malloc(64 * 1024), *p = out;
    if (!out) return NULL;
    if (c->port >= 0) p += sprintf(p, "port = %lld\n", (long long)c->port);
    else if (c->listen[0]) put_str(&p, "listen", c->listen);
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        const char *v = (const char *)c + strs[i].off;
        if (*v) put_str(&p, strs[i].name, v);
    }
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int64_t v = *(const int64_t *)(const void *)((const char *)c + ints[i].off);
        if (v >= 0) p += sprintf(p, "\r\n%s=%lld\r\n", ints[i].name, (long long)v);
    }
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++) {
        double v = *(const double *)(const void *)((const char *)c + reals[i].off);
        if (v >= 0) p += sprintf(p, "%s = %.17g\n", reals[i].name, v);
    }
    if (c->sync >= 0) p += sprintf(p, "sync = %s\n", c->sync ? "on" : "off");
    *p = '\0';
    return out;
}

static void check_values(const tn__config *c, const uint8_t *data, size_t size) {
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        const char *v = (const char *)c + strs[i].off;
        if (!memchr(v, 0, strs[i].cap)) trap("a string not terminated", data, size);
        for (; *v; v++)
            if ((unsigned char)*v < 0x20 || *v == 0x7f) trap("a control byte kept", data, size);
    }
    if (!memchr(c->listen, 0, sizeof c->listen)) trap("listen not terminated", data, size);
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int64_t v = *(const int64_t *)(const void *)((const char *)c + ints[i].off);
        if (v != -1 && (v < ints[i].lo || v > ints[i].hi)) trap("an integer out of range", data, size);
    }
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++) {
        double v = *(const double *)(const void *)((const char *)c + reals[i].off);
        if (v != -1 && !(v >= reals[i].lo && v <= reals[i].hi)) trap("a number out of range", data, size);
    }
    if (c->port != -1 && (c->port < 1 || c->port > 65535)) trap("a port out of range", data, size);
    if (c->sync < -1 || c->sync > 1) trap("sync not -1, 0 or 1", data, size);
}

static int same(const tn__config *a, const tn__config *b) {
    if (strcmp(a->listen, b->listen) != 0 || a->port != b->port || a->sync != b->sync) return 0;
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (strcmp((const char *)a + strs[i].off, (const char *)b + strs[i].off) != 0) return 0;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (*(const int64_t *)(const void *)((const char *)a + ints[i].off) !=
            *(const int64_t *)(const void *)((const char *)b + ints[i].off))
            return 0;
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++) {
        double x = *(const double *)(const void *)((const char *)a + reals[i].off);
        double y = *(const double *)(const void *)((const char *)b + reals[i].off);
        if (x != y) return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static tn__config c, again; /* large: not on the stack */
    tn__config_err e;
    int rc = tn__config_parse((const char *)data, size, &c, &e);
    if (rc != TN_OK) {
        if (rc != TN_INVALID) trap("neither TN_OK nor TN_INVALID", data, size);
        size_t lines = 1;
        for (size_t i = 0; i < size; i++) lines += data[i] == '\n';
        if (e.line < 0 || (size_t)e.line > lines) trap("an error on a line that is not there", data, size);
        if (!e.msg[0]) trap("an error without a message", data, size);
        if (!memchr(e.key, 0, sizeof e.key)) trap("key not terminated", data, size);
        for (const char *k = e.key; *k; k++)
            if (*k < 0x21 || *k > 0x7e) trap("a key with a non-printable byte", data, size);
        return 0;
    }
    check_values(&c, data, size);
    char *text = write_back(&c);
    if (!text) return 0;
    if (tn__config_parse(text, strlen(text), &again, &e) != TN_OK) {
        fprintf(stderr, "written back:\n%s\nrefused at %d: %s: %s\n", text, e.line, e.key, e.msg);
        trap("what it accepted does not parse when written back", data, size);
    }
    if (!same(&c, &again)) {
        fprintf(stderr, "written back:\n%s\n", text);
        trap("written back, it parses to other values", data, size);
    }
    free(text);
    return 0;
}
