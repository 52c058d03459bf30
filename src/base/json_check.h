/*
 * json_check.h - a strict RFC 8259 syntax check that allocates nothing, with a
 * nesting limit.  The schema calls it as tn_json_valid() (SQLite 3.40's own
 * json_valid() is not innocuous, so a schema cannot use it with
 * trusted_schema OFF), and the HTTP layer bounds request nesting with it.
 */
#ifndef TN_JSON_CHECK_H
#define TN_JSON_CHECK_H

#include <stddef.h>

#define TN_JSON_MAX_DEPTH 64

/* 1 when s[0..n) is exactly one JSON value (surrounding white space allowed)
 * nested no deeper than max_depth. */
int tn__json_valid(const char *s, size_t n, int max_depth);

#endif
