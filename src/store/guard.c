/*
 * guard.c - what a tenant session may do in SQL: an SQLite authorizer plus a
 * check of the statement text.
 *
 * The authorizer (installed on every connection, active unless c->trusted):
 *   - top-level SQL may read and write the tenant views (items, files) and
 *     read json_each/json_tree; nothing else;
 *   - the private tables the views and triggers work on (_items, _files,
 *     _outbox, _tenant_usage) may be touched only with an authorizer
 *     context that names one of the schema's own views or triggers;
 *   - functions: only those in allowed_functions[] below, an allow-list, so a
 *     function this SQLite was built with (fts3_tokenizer(), which returns
 *     and takes pointers into the process), one a later SQLite adds, or one
 *     a program registers is refused until someone decides it is safe; the
 *     store's own functions only inside the schema's views and triggers;
 *   - no ATTACH/DETACH (hence no VACUUM), no CREATE/DROP/ALTER, no REINDEX or
 *     ANALYZE, PRAGMAs only from a short read-only list.
 *
 * Why the text check too: SQLite reports a common table expression with the
 * CTE's name as the context, so `WITH items AS (SELECT * FROM _items) ...`
 * would look like the real view.  A tenant can reach a private table only by
 * naming it, so tn__guard_text() refuses any statement that names a private
 * table (any schema table whose name starts with '_') or an internal function
 * as a whole word, wherever the name appears: quoted, bracketed, in a string
 * literal (SQLite takes 'x' for an identifier where one is expected) or in a
 * comment.  With that, an authorizer context naming a view or trigger can only
 * be the schema's own.  The text is read once: it is cut into words (maximal
 * runs of identifier bytes), and each word is looked up in a set of the
 * forbidden names, so the check costs one pass however many names there are.
 *
 * The name sets (views and triggers, forbidden words) are built at open and
 * only read afterwards, by any thread.
 */
#include "store_int.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Names a tenant's SQL may not contain: internal functions and the schema
 * table.  Keeping the schema table out of the text is what makes the one
 * authorizer exception below safe. */
static const char *const internal_names[] = {
    "current_tenant", "tn_version", "tn_now", "tn_new_id", "tn_file_writer",
    "tn_file_row_valid", "tn_item_id_valid", "tn_json_valid", "load_extension",
    "sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_temp_schema",
};

/* The store's own functions (src/store/hlc.c): the schema's views and
 * triggers may call them, tenant SQL may not even name them. */
static const char *const internal_functions[] = {
    "current_tenant", "tn_version", "tn_now", "tn_new_id", "tn_file_writer",
    "tn_file_row_valid", "tn_item_id_valid", "tn_json_valid",
};

/* The functions tenant SQL may call, sorted (bsearch): SQLite's core scalar,
 * aggregate, window, math, date and JSON functions, each a pure computation
 * on its arguments whose output is bounded by the console's limits.  Left
 * out on purpose: load_extension and fts3_tokenizer (process pointers and
 * code), changes, total_changes and last_insert_rowid (a pooled connection's
 * history, and rowids counted across all tenants), the sqlite_* functions
 * (build details, sqlite_log writes the log), subtype, and the FTS and
 * R-tree helpers.  A few names of later SQLite versions (concat, unhex, ...)
 * are here already; anything else a later SQLite adds is refused. */
static const char *const allowed_functions[] = {
    "->", "->>", "abs", "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "avg",
    "ceil", "ceiling", "char", "coalesce", "concat", "concat_ws", "cos", "cosh", "count",
    "cume_dist", "current_date", "current_time", "current_timestamp", "date", "datetime",
    "degrees", "dense_rank", "exp", "first_value", "floor", "format", "glob", "group_concat",
    "hex", "ifnull", "iif", "instr", "json", "json_array", "json_array_length",
    "json_error_position", "json_extract", "json_group_array", "json_group_object",
    "json_insert", "json_object", "json_patch", "json_pretty", "json_quote", "json_remove",
    "json_replace", "json_set", "json_type", "json_valid", "julianday", "lag", "last_value",
    "lead", "length", "like", "likelihood", "likely", "ln", "log", "log10", "log2", "lower",
    "ltrim", "max", "min", "mod", "nth_value", "ntile", "nullif", "octet_length",
    "percent_rank", "pi", "pow", "power", "printf", "quote", "radians", "random", "randomblob",
    "rank", "replace", "round", "row_number", "rtrim", "sign", "sin", "sinh", "soundex",
    "sqrt", "strftime", "string_agg", "substr", "substring", "sum", "tan", "tanh", "time",
    "timediff", "total", "trim", "trunc", "typeof", "unhex", "unicode", "unixepoch",
    "unlikely", "upper", "zeroblob",
};

static const char *const readable_tables[] = {"items", "files", "usage", "json_each", "json_tree"};

/* The private tables that the schema's views and triggers work on. */
static const char *const view_tables[] = {"_items", "_files", "_outbox", "_tenant_usage"};

/* Read-only PRAGMAs a console may run, and only without a value. */
static const char *const safe_pragmas[] = {"data_version", "encoding"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int in_list(const char *name, const char *const *list, size_t n) {
    if (!name) return 0;
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(name, list[i]) == 0) return 1;
    return 0;
}

static int cmp_name(const void *key, const void *elem) {
    return strcasecmp(key, *(const char *const *)elem);
}

static int function_allowed(const char *name) {
    return name && bsearch(name, allowed_functions, COUNT(allowed_functions),
                           sizeof allowed_functions[0], cmp_name) != NULL;
}

const char *const *tn__guard_allowed_functions(size_t *n) {
    *n = COUNT(allowed_functions);
    return allowed_functions;
}

/* ---- name sets ------------------------------------------------------------ */

static unsigned char lower(unsigned char ch) {
    return ch >= 'A' && ch <= 'Z' ? (unsigned char)(ch + 32) : ch;
}

/* FNV-1a over the ASCII-lowercased bytes. */
static uint64_t name_hash(const char *p, size_t n) {
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) h = (h ^ lower((unsigned char)p[i])) * 1099511628211ull;
    return h;
}

static int name_eq(const char *stored, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)stored[i] != lower((unsigned char)p[i])) return 0;
    return stored[n] == '\0';
}

static int set_has(const tn__nameset *set, const char *p, size_t n) {
    if (!set->slot || n > set->maxlen) return 0;
    for (size_t i = name_hash(p, n) & set->mask;; i = (i + 1) & set->mask) {
        if (!set->slot[i]) return 0;
        if (name_eq(set->slot[i], p, n)) return 1;
    }
}

static int set_add(tn__nameset *set, const char *name) {
    size_t n = strlen(name);
    if (set_has(set, name, n)) return TN_OK;
    char *copy = malloc(n + 1);
    if (!copy) return TN_NOMEM;
    for (size_t i = 0; i <= n; i++) copy[i] = (char)lower((unsigned char)name[i]);
    size_t i = name_hash(name, n) & set->mask;
    while (set->slot[i]) i = (i + 1) & set->mask;
    set->slot[i] = copy;
    if (n > set->maxlen) set->maxlen = n;
    set->first[lower((unsigned char)name[0])] = 1;
    set->first[(unsigned char)toupper((unsigned char)name[0])] = 1;
    return TN_OK;
}

/* A set for up to n names, at most half full. */
static int set_init(tn__nameset *set, size_t n) {
    memset(set, 0, sizeof *set);
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    set->slot = calloc(cap, sizeof *set->slot);
    set->mask = cap - 1;
    return set->slot ? TN_OK : TN_NOMEM;
}

static void set_free(tn__nameset *set) {
    for (size_t i = 0; set->slot && i <= set->mask; i++) free(set->slot[i]);
    free(set->slot);
    memset(set, 0, sizeof *set);
}

static int is_schema_context(const tn_store *st, const char *ctx) {
    return ctx && set_has(&st->guard_ctx, ctx, strlen(ctx));
}

static int main_db(const char *db) {
    return db == NULL || strcmp(db, "main") == 0;
}

static int guard(void *arg, int action, const char *a, const char *b, const char *db,
                 const char *ctx) {
    tn__conn *c = arg;
    if (c->trusted) return SQLITE_OK;

    switch (action) {
    case SQLITE_SELECT:
    case SQLITE_RECURSIVE:
    case SQLITE_TRANSACTION:
    case SQLITE_SAVEPOINT:
        return SQLITE_OK;
    case SQLITE_READ:
        if (in_list(a, readable_tables, COUNT(readable_tables))) return SQLITE_OK;
        /* Part of registering an eponymous virtual table; see SQLITE_UPDATE. */
        if (strcmp(a, "sqlite_master") == 0 && ctx == NULL && b && strcmp(b, "ROWID") == 0)
            return SQLITE_OK;
        if (main_db(db) && in_list(a, view_tables, COUNT(view_tables)) &&
            is_schema_context(c->st, ctx))
            return SQLITE_OK;
        /* The foreign-key check of a trigger's insert reads the parent key. */
        if (main_db(db) && strcmp(a, "_tenants") == 0 && b && strcmp(b, "tid") == 0 &&
            is_schema_context(c->st, ctx))
            return SQLITE_OK;
        return SQLITE_DENY;
    case SQLITE_UPDATE:
        /* Using a table-valued function (json_each) registers an eponymous
         * virtual table, which SQLite authorizes as an UPDATE of the schema
         * table.  Tenant SQL cannot name the schema table (tn__guard_text),
         * so this can only be that step; real schema writes are also blocked
         * by SQLITE_DBCONFIG_DEFENSIVE. */
        if (strcmp(a, "sqlite_master") == 0 && ctx == NULL) return SQLITE_OK;
        /* fall through */
    case SQLITE_INSERT:
    case SQLITE_DELETE:
        if (!main_db(db)) return SQLITE_DENY;
        if (strcasecmp(a, "items") == 0 || strcasecmp(a, "files") == 0) return SQLITE_OK;
        if (in_list(a, view_tables, COUNT(view_tables)) && is_schema_context(c->st, ctx))
            return SQLITE_OK;
        return SQLITE_DENY;
    case SQLITE_FUNCTION:
        if (function_allowed(b)) return SQLITE_OK;
        /* Internal functions serve the schema's views and triggers only. */
        if (in_list(b, internal_functions, COUNT(internal_functions)) &&
            is_schema_context(c->st, ctx))
            return SQLITE_OK;
        return SQLITE_DENY;
    case SQLITE_PRAGMA:
        return b == NULL && in_list(a, safe_pragmas, COUNT(safe_pragmas)) ? SQLITE_OK
                                                                          : SQLITE_DENY;
    default:
        /* ATTACH, DETACH, CREATE_*, DROP_*, ALTER_TABLE, REINDEX, ANALYZE,
         * CREATE_VTABLE, DROP_VTABLE, and anything newer SQLite adds. */
        return SQLITE_DENY;
    }
}

void tn__guard_install(tn__conn *c) {
    sqlite3_set_authorizer(c->db, guard, c);
}

static int ident_byte(unsigned char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '$' || ch >= 0x80;
}

/* Does sql contain name as a whole word, ignoring ASCII case?  Only for a
 * forbidden name that is not made of identifier bytes alone (the shipped
 * schema has none), which no word can equal. */
static int names(const char *sql, size_t len, const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i + n <= len; i++) {
        if (strncasecmp(sql + i, name, n) != 0) continue;
        if (i > 0 && ident_byte((unsigned char)sql[i - 1])) continue;
        if (i + n < len && ident_byte((unsigned char)sql[i + n])) continue;
        return 1;
    }
    return 0;
}

/* A whole-word occurrence of a name made of identifier bytes is exactly a
 * maximal run of identifier bytes equal to it, so one pass over the words
 * finds every name the old search for each name at every byte found. */
int tn__guard_text(const tn_store *st, const char *sql) {
    const tn__nameset *words = &st->guard_words;
    const unsigned char *p = (const unsigned char *)sql;
    size_t i = 0;
    while (p[i]) {
        if (!ident_byte(p[i])) {
            i++;
            continue;
        }
        size_t start = i;
        while (p[i] && ident_byte(p[i])) i++;
        if (words->first[p[start]] && set_has(words, sql + start, i - start)) return TN_DENIED;
    }
    for (int k = 0; k < st->guard_nodd; k++)
        if (names(sql, i, st->guard_odd[k])) return TN_DENIED;
    return TN_OK;
}

static int all_ident(const char *name) {
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (!ident_byte(*p)) return 0;
    return *name != '\0';
}

/* Adds every name the query returns to set, or (odd != NULL) the names not
 * made of identifier bytes to *odd. */
static int load_names(tn_store *st, sqlite3 *db, const char *sql, tn__nameset *set,
                      char ***odd, int *nodd) {
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK)
        return tn__fail(st, tn__code(rc), "loading the schema: %s", sqlite3_errmsg(db));
    int src;
    rc = TN_OK;
    while (rc == TN_OK && (src = sqlite3_step(s)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(s, 0);
        if (!name) continue;
        if (!odd || all_ident(name)) {
            rc = set_add(set, name);
            continue;
        }
        char **nv = realloc(*odd, (size_t)(*nodd + 1) * sizeof *nv);
        if (!nv || !(nv[*nodd] = strdup(name))) {
            if (nv) *odd = nv;
            rc = TN_NOMEM;
            break;
        }
        *odd = nv;
        (*nodd)++;
    }
    sqlite3_finalize(s);
    if (rc == TN_OK && src != SQLITE_DONE) rc = tn__code(src);
    return rc == TN_OK ? TN_OK : tn__fail(st, rc, "loading the schema: %s", sqlite3_errmsg(db));
}

int tn__guard_load(tn_store *st, sqlite3 *db) {
    int rc = set_init(&st->guard_ctx, 256);
    if (rc == TN_OK) rc = set_init(&st->guard_words, 256);
    for (size_t i = 0; rc == TN_OK && i < COUNT(internal_names); i++)
        rc = set_add(&st->guard_words, internal_names[i]);
    if (rc != TN_OK) return tn__fail(st, rc, "loading the schema: out of memory");
    rc = load_names(st, db, "SELECT name FROM sqlite_schema WHERE type IN ('view', 'trigger')",
                    &st->guard_ctx, NULL, NULL);
    if (rc == TN_OK)
        rc = load_names(st, db,
                        "SELECT name FROM sqlite_schema WHERE type = 'table' "
                        "AND substr(name, 1, 1) = '_'",
                        &st->guard_words, &st->guard_odd, &st->guard_nodd);
    return rc;
}

void tn__guard_free(tn_store *st) {
    set_free(&st->guard_ctx);
    set_free(&st->guard_words);
    for (int i = 0; i < st->guard_nodd; i++) free(st->guard_odd[i]);
    free(st->guard_odd);
    st->guard_odd = NULL;
    st->guard_nodd = 0;
}
