/*
 * json_check.c - recursive-descent JSON syntax check; see json_check.h.
 * Recursion depth is bounded by max_depth, so hostile input cannot exhaust the
 * stack.
 */
#include "json_check.h"

typedef struct cur {
    const unsigned char *p, *end;
    int depth, max_depth;
} cur;

static int value(cur *c);

static void ws(cur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int lit(cur *c, const char *word) {
    for (const char *w = word; *w; w++, c->p++)
        if (c->p >= c->end || *c->p != (unsigned char)*w) return 0;
    return 1;
}

static int hex(unsigned char ch) {
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* The 4 hex digits of a \u escape at c->p (after the 'u'), or -1. */
static long u_escape(cur *c) {
    long v = 0;
    for (int i = 0; i < 4; i++, c->p++) {
        if (c->p >= c->end || !hex(*c->p)) return -1;
        unsigned char h = *c->p;
        v = v * 16 + (h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
    }
    return v;
}

static int string(cur *c) {
    c->p++; /* the opening quote */
    while (c->p < c->end) {
        unsigned char ch = *c->p++;
        if (ch == '"') return 1;
        if (ch < 0x20) return 0;
        if (ch != '\\') continue;
        if (c->p >= c->end) return 0;
        ch = *c->p++;
        if (ch == 'u') {
            /* A UTF-16 surrogate must come as a high-low pair: a lone one is no
             * character, and cJSON (which reads these texts back in the HTTP
             * layer and the CLI) refuses it (RFC 8259 8.2, RFC 7493 2.1). */
            long u = u_escape(c);
            if (u < 0 || (u >= 0xdc00 && u <= 0xdfff)) return 0;
            if (u >= 0xd800 && u <= 0xdbff) {
                if (c->end - c->p < 2 || c->p[0] != '\\' || c->p[1] != 'u') return 0;
                c->p += 2;
                u = u_escape(c);
                if (u < 0xdc00 || u > 0xdfff) return 0;
            }
        } else if (!(ch == '"' || ch == '\\' || ch == '/' || ch == 'b' || ch == 'f' ||
                     ch == 'n' || ch == 'r' || ch == 't')) {
            return 0;
        }
    }
    return 0;
}

static int digits(cur *c) {
    const unsigned char *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
    return c->p > start;
}

static int number(cur *c) {
    if (*c->p == '-') c->p++;
    if (c->p >= c->end) return 0;
    if (*c->p == '0')
        c->p++;
    else if (!digits(c))
        return 0;
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (!digits(c)) return 0;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-')) c->p++;
        if (!digits(c)) return 0;
    }
    return 1;
}

/* Object or array: open is '{' or '['. */
static int container(cur *c, unsigned char close) {
    if (++c->depth > c->max_depth) return 0;
    c->p++;
    ws(c);
    if (c->p < c->end && *c->p == close) {
        c->p++;
        c->depth--;
        return 1;
    }
    for (;;) {
        if (close == '}') {
            if (c->p >= c->end || *c->p != '"' || !string(c)) return 0;
            ws(c);
            if (c->p >= c->end || *c->p++ != ':') return 0;
            ws(c);
        }
        if (!value(c)) return 0;
        ws(c);
        if (c->p >= c->end) return 0;
        unsigned char ch = *c->p++;
        if (ch == close) break;
        if (ch != ',') return 0;
        ws(c);
    }
    c->depth--;
    return 1;
}

static int value(cur *c) {
    if (c->p >= c->end) return 0;
    switch (*c->p) {
    case '{': return container(c, '}');
    case '[': return container(c, ']');
    case '"': return string(c);
    case 't': return lit(c, "true");
    case 'f': return lit(c, "false");
    case 'n': return lit(c, "null");
    default:
        if (*c->p == '-' || (*c->p >= '0' && *c->p <= '9')) return number(c);
        return 0;
    }
}

int tn__json_valid(const char *s, size_t n, int max_depth) {
    if (!s) return 0;
    cur c = {(const unsigned char *)s, (const unsigned char *)s + n, 0, max_depth};
    ws(&c);
    if (!value(&c)) return 0;
    ws(&c);
    return c.p == c.end;
}
