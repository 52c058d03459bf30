/*
 * fuzz_file_name.c - libFuzzer target for tn_file_name_valid, the one check
 * that keeps a tenant's file inside <data>/files/<tenant id>/.
 *
 * Every name it accepts is re-checked here against the documented rules by a
 * second, deliberately simple implementation: 1-1024 bytes, no leading '/',
 * no empty, "." or ".." segment, no backslash, no control byte (< 0x20, 0x7f),
 * and well-formed UTF-8 (shortest form, no surrogates, at most U+10FFFF).
 */
#include "tenantry.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void trap(const char *why, const char *name) {
    fprintf(stderr, "fuzz_file_name: accepted a name with %s: \"%.200s\"\n", why, name);
    abort();
}

/* Length of the UTF-8 sequence at p (RFC 3629 table), 0 when malformed. */
static size_t utf8_len(const unsigned char *p, size_t n) {
    unsigned c = p[0];
    size_t k;
    unsigned lo = 0x80, hi = 0xbf;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) k = 2;
    else if (c == 0xe0) k = 3, lo = 0xa0;
    else if (c == 0xed) k = 3, hi = 0x9f;
    else if (c >= 0xe1 && c <= 0xef) k = 3;
    else if (c == 0xf0) k = 4, lo = 0x90;
    else if (c == 0xf4) k = 4, hi = 0x8f;
    else if (c >= 0xf1 && c <= 0xf3) k = 4;
    else return 0;
    if (n < k) return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < k; i++)
        if (p[i] < 0x80 || p[i] > 0xbf) return 0;
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *name = malloc(size + 1);
    if (!name) return 0;
    memcpy(name, data, size);
    name[size] = '\0';
    if (tn_file_name_valid(name)) {
        size_t n = strlen(name);
        const unsigned char *p = (const unsigned char *)name;
        if (n < 1 || n > 1024) trap("a bad length", name);
        if (name[0] == '/') trap("a leading '/'", name);
        if (name[n - 1] == '/') trap("a trailing '/'", name);
        if (strstr(name, "//")) trap("an empty segment", name);
        if (strchr(name, '\\')) trap("a backslash", name);
        for (size_t i = 0; i < n; i++)
            if (p[i] < 0x20 || p[i] == 0x7f) trap("a control byte", name);
        for (size_t i = 0; i < n;) {
            size_t k = utf8_len(p + i, n - i);
            if (k == 0) trap("malformed UTF-8", name);
            i += k;
        }
        /* Segments: none may be "." or "..". */
        const char *seg = name;
        for (;;) {
            const char *e = strchr(seg, '/');
            size_t len = e ? (size_t)(e - seg) : strlen(seg);
            if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
                trap("a dot segment", name);
            if (!e) break;
            seg = e + 1;
        }
    }
    free(name);
    return 0;
}
