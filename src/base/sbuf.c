/*
 * sbuf.c - the growable text buffer (see sbuf.h).
 */
#include "sbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int grow(tn__sbuf *b, size_t n) {
    if (b->failed) return -1;
    if (b->len + n + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) {
        if (cap > ((size_t)1 << 40)) { b->failed = 1; return -1; }
        cap *= 2;
    }
    char *np = realloc(b->p, cap);
    if (!np) { b->failed = 1; return -1; }
    b->p = np;
    b->cap = cap;
    return 0;
}

void tn__sb_add(tn__sbuf *b, const void *data, size_t n) {
    if (grow(b, n) != 0) return;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void tn__sb_str(tn__sbuf *b, const char *s) { tn__sb_add(b, s, strlen(s)); }

void tn__sb_fmt(tn__sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) { b->failed = 1; return; }
    if ((size_t)n < sizeof tmp) { tn__sb_add(b, tmp, (size_t)n); return; }
    if (grow(b, (size_t)n) != 0) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void tn__sb_json_str(tn__sbuf *b, const char *s) {
    tn__sb_add(b, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        tn__sb_add(b, run, (size_t)(s - run));
        if (c == '"') tn__sb_str(b, "\\\"");
        else if (c == '\\') tn__sb_str(b, "\\\\");
        else tn__sb_fmt(b, "\\u%04x", c);
        run = s + 1;
    }
    tn__sb_add(b, run, (size_t)(s - run));
    tn__sb_add(b, "\"", 1);
}

char *tn__sb_take(tn__sbuf *b) {
    if (!b->failed && !b->p) grow(b, 0);
    if (b->failed) { tn__sb_free(b); return NULL; }
    char *p = b->p;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

void tn__sb_free(tn__sbuf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
