/*
 * fuzz_json_check.c - libFuzzer target for tn__json_valid (src/json_check.c),
 * the syntax check in front of every stored item and every request body.
 *
 * Beyond "never crashes", it cross-checks the answer against cJSON, the parser
 * the HTTP layer runs on a body once tn__json_valid has passed it: a text we
 * accept (no NUL, within the depth bound) must also parse with cJSON, or a
 * stored item could later fail to load.  The other direction (cJSON accepts,
 * we refuse) is expected: cJSON is lenient.  It also checks that the depth
 * bound is monotonic: a text valid at depth d stays valid at depth 64.
 */
#include "json_check.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEPTH 64

static void trap(const char *why, const uint8_t *data, size_t size) {
    fprintf(stderr, "fuzz_json_check: %s (%zu bytes): %.*s\n", why, size,
            (int)(size > 200 ? 200 : size), (const char *)data);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* An exact-size copy, so any read past the end is an ASan report. */
    char *s = malloc(size ? size : 1);
    if (!s) return 0;
    memcpy(s, data, size);
    int ok = tn__json_valid(s, size, DEPTH);
    if (tn__json_valid(s, size, 8) && !ok) trap("valid at depth 8 but not at 64", data, size);
    if (ok && size > 0 && !memchr(s, 0, size)) {
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithLengthOpts(s, size, &end, 0);
        if (!j) trap("tn__json_valid accepts what cJSON refuses", data, size);
        cJSON_Delete(j);
    }
    free(s);
    return 0;
}
