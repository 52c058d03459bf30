/*
 * sbuf.h - a growable text buffer for the sync layer's request builders.
 *
 * A buffer remembers its first allocation failure, so builders append without
 * checking every step and check sb.failed (or call tn__sb_take) once at the end.
 */
#ifndef TN_SBUF_H
#define TN_SBUF_H

#include <stddef.h>

typedef struct tn__sbuf {
    char *p;
    size_t len, cap;
    int failed;
} tn__sbuf;

void tn__sb_add(tn__sbuf *b, const void *data, size_t n);
void tn__sb_str(tn__sbuf *b, const char *s);
void tn__sb_fmt(tn__sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included. */
void tn__sb_json_str(tn__sbuf *b, const char *s);
/* Returns the NUL-terminated text (caller frees) or NULL after a failure. */
char *tn__sb_take(tn__sbuf *b);
void tn__sb_free(tn__sbuf *b);

#endif
