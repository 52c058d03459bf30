/*
 * console.c - tenant SQL (tn_session_exec): untrusted statements, run through
 * the guard (guard.c) within a budget, and compiled as few times as possible.
 *
 * Budget (tn_options, see tenantry.h).  A call ends within console_ms: a
 * progress handler interrupts the running statement, the busy wait for the
 * write lock is bounded the same way, and a transaction the call began must
 * end in the call or is rolled back.  The progress handler also stops a
 * statement that grows SQLite's heap by more than console_heap (SQLite's own
 * count, process wide, so it is a budget on the call's peak, measured from
 * its start); tn_version() (hlc.c) and the row loop here count rows written
 * and returned against console_rows.  Statements run under tighter
 * sqlite3_limit values, restored when the call ends.
 *
 * Shapes.  Most of a write's cost through the views is compiling it: each
 * INSERT into items compiles the INSTEAD OF trigger, the upsert and every
 * trigger on _items, 85% of a bulk load's time.  So a statement that changes
 * data (it starts with INSERT, REPLACE, UPDATE or DELETE) and differs from an
 * earlier one of the same call only in its string literals runs as that
 * earlier one's compiled statement, the literals bound as parameters: its
 * shape.  A bound text means exactly what the literal meant wherever SQLite
 * takes a string literal as a value; where it would take it as a name, a
 * parameter does not parse, and the statement is compiled as written.
 * Everything else (numbers, blobs, names, comments) stays in the shape's
 * text, so statements of one shape name the same tables, columns and
 * functions and the authorizer's verdict on the shape is the verdict on each
 * of them.  The text check (tn__guard_text) reads the statements as written.
 * A shape is not used when it does not compile to exactly one statement, when
 * it returns rows (its column names would show the parameters) or when the
 * statement has parameters of its own.  The cache lives for one call.
 */
#include "store_int.h"

#include "clock.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Limits of SQLite's own that a console statement runs under; the store's
 * values come back when the call ends.  LENGTH bounds every string or blob a
 * statement builds or reads, COLUMN how many such values one row can hold. */
static const struct {
    int id, value;
} console_limits[] = {
    {SQLITE_LIMIT_LENGTH, TN_CONSOLE_VALUE_MAX},
    {SQLITE_LIMIT_SQL_LENGTH, TN_CONSOLE_SQL_MAX},
    {SQLITE_LIMIT_COLUMN, 100},
    {SQLITE_LIMIT_EXPR_DEPTH, 100},
    {SQLITE_LIMIT_TRIGGER_DEPTH, 16},
};
#define NLIMITS (sizeof console_limits / sizeof console_limits[0])

#define SHAPES 16       /* compiled shapes kept per call */
#define SHAPE_LITS 1000 /* a statement with more literals is compiled as written */

/* ---- budget --------------------------------------------------------------- */

/* Every 1000 virtual-machine steps: is the call over its time or heap budget?
 * Returning non-zero interrupts the statement, which SQLite then undoes (for
 * a write, the whole transaction). */
static int console_progress(void *arg) {
    tn__console *b = arg;
    if (tn__mono_ms() > b->deadline_ms)
        b->over = TN__OVER_TIME;
    else if (sqlite3_memory_used() > b->heap_limit)
        b->over = TN__OVER_HEAP;
    return b->over != TN__OVER_NONE;
}

static int over_budget(tn_session *s, const tn__console *b) {
    const tn_options *o = &s->st->opt;
    switch (b->over) {
    case TN__OVER_TIME:
        return tn__sfail(s, TN_TIMEOUT, "stopped: over the console's time budget of %d ms",
                         o->console_ms);
    case TN__OVER_HEAP:
        return tn__sfail(s, TN_TOOBIG, "stopped: over the console's memory budget of %lld MiB",
                         (long long)(o->console_heap >> 20));
    case TN__OVER_ROWS:
        return tn__sfail(s, TN_TOOBIG, "stopped: over the console's budget of %lld rows",
                         (long long)o->console_rows);
    default: return TN_OK;
    }
}

/* ---- shapes --------------------------------------------------------------- */

typedef struct shape {
    char *text;          /* the statement with '?' for each string literal */
    uint64_t hash;
    sqlite3_stmt *stmt;  /* NULL: this shape is not used */
} shape;

typedef struct shapes {
    shape v[SHAPES];
    int n, next; /* entries in use; the one to replace when full */
} shapes;

typedef struct literal {
    const char *p; /* the text between the quotes, '' not yet undone */
    size_t len;
} literal;

/* A statement cut into its shape: the text up to its end with each string
 * literal replaced by '?', and the literals. */
typedef struct cut {
    char *text;
    size_t len;
    literal *lits;
    int nlits;
    const char *end; /* where the next statement begins */
} cut;

static int ident_byte(unsigned char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '$' || ch >= 0x80;
}

static uint64_t text_hash(const char *p, size_t n) {
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

/* Skips white space and comments. */
static const char *skip_space(const char *p) {
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f') p++;
        if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n') p++;
        } else if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            if (!e) return p + strlen(p);
            p = e + 2;
        } else {
            return p;
        }
    }
}

/* The end of the quoted token that starts at p (its closing quote doubled
 * inside it, as SQLite reads it), or NULL when it is not closed. */
static const char *quoted_end(const char *p, char close) {
    for (p++; *p; p++) {
        if (*p != close) continue;
        if (close != ']' && p[1] == close) {
            p++;
            continue;
        }
        return p + 1;
    }
    return NULL;
}

static int starts_with_word(const char *p, const char *word) {
    size_t n = strlen(word);
    return strncasecmp(p, word, n) == 0 && !ident_byte((unsigned char)p[n]);
}

/* Cuts the statement at sql into a shape.  0 when it is no candidate: not a
 * data change, a parameter of its own, an unclosed token, too many literals
 * or too long. */
static int cut_statement(const char *sql, cut *out) {
    memset(out, 0, sizeof *out);
    if (!starts_with_word(sql, "insert") && !starts_with_word(sql, "replace") &&
        !starts_with_word(sql, "update") && !starts_with_word(sql, "delete"))
        return 0;
    const char *p = sql;
    size_t cap = 0;
    while (*p && *p != ';') {
        unsigned char ch = (unsigned char)*p;
        if (ch == '\'') {
            const char *e = quoted_end(p, '\'');
            /* After a name byte: a blob (x'00') or a name and a string. */
            if (!e || (p > sql && ident_byte((unsigned char)p[-1]))) goto no;
            if ((size_t)out->nlits == cap) {
                if (cap == SHAPE_LITS) goto no;
                cap = cap ? cap * 4 : 8;
                if (cap > SHAPE_LITS) cap = SHAPE_LITS;
                literal *nl = realloc(out->lits, cap * sizeof *nl);
                if (!nl) goto no;
                out->lits = nl;
            }
            out->lits[out->nlits++] = (literal){p + 1, (size_t)(e - p - 2)};
            p = e;
        } else if (ch == '"' || ch == '`' || ch == '[') {
            p = quoted_end(p, ch == '[' ? ']' : (char)ch);
            if (!p) goto no;
        } else if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n') p++;
        } else if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            if (!e) goto no;
            p = e + 2;
        } else if (ch == '?' || ch == ':' || ch == '@' || ch == '#' ||
                   (ch == '$' && (p == sql || !ident_byte((unsigned char)p[-1])))) {
            goto no; /* a parameter: SQLite binds it NULL; keep that as written */
        } else {
            p++;
        }
    }
    if ((size_t)(p - sql) > TN_CONSOLE_SQL_MAX) goto no;
    /* The shape: the statement with each literal (quotes included) as '?'. */
    size_t len = (size_t)(p - sql), o = 0;
    char *text = malloc(len + 1);
    if (!text) goto no;
    const char *from = sql;
    for (int i = 0; i < out->nlits; i++) {
        const char *q = out->lits[i].p - 1;
        memcpy(text + o, from, (size_t)(q - from));
        o += (size_t)(q - from);
        text[o++] = '?';
        from = out->lits[i].p + out->lits[i].len + 1;
    }
    memcpy(text + o, from, (size_t)(p - from));
    o += (size_t)(p - from);
    text[o] = '\0';
    out->text = text;
    out->len = o;
    out->end = *p == ';' ? p + 1 : p;
    return 1;
no:
    free(out->lits);
    memset(out, 0, sizeof *out);
    return 0;
}

static void cut_free(cut *c) {
    free(c->text);
    free(c->lits);
}

static void shapes_free(shapes *sh) {
    for (int i = 0; i < sh->n; i++) {
        sqlite3_finalize(sh->v[i].stmt);
        free(sh->v[i].text);
    }
    sh->n = 0;
}

/* The compiled statement of the shape, compiling it the first time; NULL
 * when the shape is not to be used (see the top of the file). */
static sqlite3_stmt *shape_stmt(shapes *sh, sqlite3 *db, cut *c) {
    uint64_t h = text_hash(c->text, c->len);
    for (int i = 0; i < sh->n; i++)
        if (sh->v[i].hash == h && strcmp(sh->v[i].text, c->text) == 0) return sh->v[i].stmt;
    sqlite3_stmt *q = NULL;
    const char *tail = NULL;
    if (sqlite3_prepare_v2(db, c->text, (int)c->len + 1, &q, &tail) != SQLITE_OK || !q ||
        *skip_space(tail) != '\0' || sqlite3_column_count(q) != 0 ||
        sqlite3_bind_parameter_count(q) != c->nlits) {
        sqlite3_finalize(q);
        q = NULL;
    }
    int slot = sh->n < SHAPES ? sh->n++ : sh->next;
    if (slot == sh->next && sh->n == SHAPES) {
        sqlite3_finalize(sh->v[slot].stmt);
        free(sh->v[slot].text);
        sh->next = (sh->next + 1) % SHAPES;
    }
    sh->v[slot] = (shape){c->text, h, q};
    c->text = NULL; /* the cache owns it now */
    return q;
}

/* Binds the literals, undoing their doubled quotes. */
static int shape_bind(sqlite3_stmt *q, const cut *c) {
    for (int i = 0; i < c->nlits; i++) {
        const literal *l = &c->lits[i];
        int src;
        if (!memchr(l->p, '\'', l->len)) {
            src = sqlite3_bind_text(q, i + 1, l->p, (int)l->len, SQLITE_STATIC);
        } else {
            char *v = malloc(l->len + 1);
            if (!v) return SQLITE_NOMEM;
            size_t n = 0;
            for (size_t k = 0; k < l->len; k++) {
                v[n++] = l->p[k];
                if (l->p[k] == '\'') k++; /* '' inside the literal is one ' */
            }
            src = sqlite3_bind_text(q, i + 1, v, (int)n, free);
        }
        if (src != SQLITE_OK) return src;
    }
    return SQLITE_OK;
}

/* ---- running -------------------------------------------------------------- */

/* Steps q to its end, handing each row to fn. */
static int step_all(tn_session *s, sqlite3_stmt *q, int index, tn_row_fn fn, void *arg,
                    tn__console *b) {
    int ncol = sqlite3_column_count(q), rc = TN_OK, src;
    const char **names = calloc((size_t)ncol + 1, sizeof *names);
    const char **vals = calloc((size_t)ncol + 1, sizeof *vals);
    if (!names || !vals) {
        free(names);
        free(vals);
        return tn__sfail(s, TN_NOMEM, "out of memory");
    }
    for (int i = 0; i < ncol; i++) names[i] = sqlite3_column_name(q, i);
    while ((src = sqlite3_step(q)) == SQLITE_ROW) {
        if (--b->rows_left < 0) {
            b->over = TN__OVER_ROWS;
            break;
        }
        for (int i = 0; i < ncol; i++) vals[i] = (const char *)sqlite3_column_text(q, i);
        if (fn && fn(arg, index, ncol, names, vals)) break;
    }
    if (b->over != TN__OVER_NONE)
        rc = over_budget(s, b);
    else if (src != SQLITE_ROW && src != SQLITE_DONE)
        rc = tn__sfail_db(s, src);
    free(names);
    free(vals);
    return rc;
}

/* Runs the statements of sql one after the other until one fails. */
static int console_run(tn_session *s, const char *sql, tn_row_fn fn, void *arg, tn__console *b) {
    shapes sh = {.n = 0};
    const char *tail = sql;
    int index = 0, rc = TN_OK;
    while (rc == TN_OK && tail && *(tail = skip_space(tail))) {
        if (tn__mono_ms() > b->deadline_ms) {
            b->over = TN__OVER_TIME;
            rc = over_budget(s, b);
            break;
        }
        if ((rc = tn__hlc_ensure(s->c)) != TN_OK) {
            rc = tn__sfail(s, rc, "%s", tn_errmsg(s->st));
            break;
        }
        cut c;
        sqlite3_stmt *q = cut_statement(tail, &c) ? shape_stmt(&sh, s->c->db, &c) : NULL;
        if (q) {
            int src = shape_bind(q, &c);
            rc = src == SQLITE_OK ? step_all(s, q, index, fn, arg, b) : tn__sfail_db(s, src);
            sqlite3_reset(q);
            sqlite3_clear_bindings(q);
            __atomic_add_fetch(&s->st->console_shaped, 1, __ATOMIC_RELAXED);
            tail = c.end;
            cut_free(&c);
            index++;
            continue;
        }
        cut_free(&c);
        int src = sqlite3_prepare_v2(s->c->db, tail, -1, &q, &tail);
        if (src != SQLITE_OK) {
            rc = tn__sfail_db(s, src);
            break;
        }
        if (!q) continue; /* a lone ';' */
        rc = step_all(s, q, index, fn, arg, b);
        sqlite3_finalize(q);
        index++;
    }
    shapes_free(&sh);
    return rc;
}

static int exec_text(tn_session *s, const char *sql, tn_row_fn fn, void *arg);

int tn_session_exec(tn_session *s, const char *sql, tn_row_fn fn, void *arg) {
    if (!sql) return tn__sfail(s, TN_INVALID, "no SQL");
    return tn__session_exec_n(s, sql, strlen(sql), fn, arg);
}

int tn__session_exec_n(tn_session *s, const char *text, size_t len, tn_row_fn fn, void *arg) {
    if (!text) return tn__sfail(s, TN_INVALID, "no SQL");
    /* The guard and SQLite both stop reading at a NUL byte: what would run is
     * not what was sent.  Such text is refused whole. */
    if (memchr(text, '\0', len)) return tn__sfail(s, TN_INVALID, "the SQL contains a NUL byte");
    char *sql = strndup(text, len);
    if (!sql) return tn__sfail(s, TN_NOMEM, "out of memory");
    int rc = exec_text(s, sql, fn, arg);
    free(sql);
    return rc;
}

static int exec_text(tn_session *s, const char *sql, tn_row_fn fn, void *arg) {
    if (tn__guard_text(s->st, sql) != TN_OK)
        return tn__sfail(s, TN_DENIED, "not authorized: the statement names a private table "
                                       "or an internal function");
    tn__conn *c = s->c;
    const tn_options *o = &s->st->opt;
    /* Outside a transaction of the caller's, any transaction the SQL begins
     * is this call's to end. */
    int own_tx = sqlite3_get_autocommit(c->db);
    tn__console b = {.deadline_ms = tn__mono_ms() + o->console_ms,
                     .heap_limit = sqlite3_memory_used() + o->console_heap,
                     .rows_left = o->console_rows};
    int saved[NLIMITS];
    for (size_t i = 0; i < NLIMITS; i++)
        saved[i] = sqlite3_limit(c->db, console_limits[i].id, console_limits[i].value);
    sqlite3_busy_timeout(c->db, o->console_ms);
    sqlite3_progress_handler(c->db, 1000, console_progress, &b);
    c->console = &b;

    int rc = console_run(s, sql, fn, arg, &b);

    c->console = NULL;
    sqlite3_progress_handler(c->db, 0, NULL, NULL);
    sqlite3_busy_timeout(c->db, o->busy_timeout_ms);
    for (size_t i = 0; i < NLIMITS; i++) sqlite3_limit(c->db, console_limits[i].id, saved[i]);
    if (own_tx && !sqlite3_get_autocommit(c->db)) {
        tn__rollback(c);
        if (rc == TN_OK)
            rc = tn__sfail(s, TN_INVALID, "a transaction must end in the call that began it: "
                                          "rolled back");
    }
    return rc;
}

int tn_session_begin(tn_session *s) {
    int rc = tn__begin(s->c);
    return rc == TN_OK ? TN_OK : tn__sfail(s, rc, "%s", tn_errmsg(s->st));
}

int tn_session_commit(tn_session *s) {
    int rc = tn__commit(s->c);
    return rc == TN_OK ? TN_OK : tn__sfail(s, rc, "%s", tn_errmsg(s->st));
}

int tn_session_rollback(tn_session *s) {
    if (sqlite3_get_autocommit(s->c->db)) return tn__sfail(s, TN_INVALID, "no transaction");
    tn__rollback(s->c);
    return sqlite3_get_autocommit(s->c->db) ? TN_OK
                                            : tn__sfail(s, TN_ERROR, "%s", tn_errmsg(s->st));
}
