/*
 * main.c - the tenantry command line.
 *
 *   tenantry init --data DIR
 *   tenantry tenant create|list|rename|delete ...
 *   tenantry item put|get|list|delete --tenant NAME ...
 *   tenantry sql --tenant NAME [-c SQL] [--json]
 *   tenantry check | status
 *
 * Every command takes --help.  The data directory is --data DIR, else
 * $TENANTRY_DATA, else ./data.  Errors are one line on stderr.
 *
 * Exit codes (documented in `tenantry --help` and README):
 *   0 success, 1 failure, 2 usage error, 3 not found, 4 already exists or
 *   version conflict, 5 check found problems, 6 not authorized.
 */
#include "admin.h"
#include "cli.h"
#include "engine.h"
#include "tenantry.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef TENANTRY_VERSION /* the Makefile's VERSION */
#define TENANTRY_VERSION "unknown"
#endif

/* Opens the store and a session for --tenant NAME. */
static int open_session(const tn__cli_opts *o, tn_store **st, tn_session **s) {
    if (!o->tenant) return tn__cli_usage("--tenant NAME is required");
    int ex = tn__cli_open(o, 0, st);
    if (ex != EX_OK) return ex;
    tn_tenant t;
    int rc = tn_tenant_find(*st, o->tenant, &t);
    if (rc == TN_OK) rc = tn_session_open(*st, t.id, s);
    if (rc != TN_OK) {
        ex = tn__cli_error(o->tenant, rc == TN_NOTFOUND ? "no such tenant" : tn_errmsg(*st), rc);
        tn_close(*st);
        return ex;
    }
    return EX_OK;
}

/* ---- init ----------------------------------------------------------------- */

static int cmd_init(int argc, char **argv) {
    tn__cli_opts o;
    int ex = tn__cli_parse(argc, argv, 2, &o);
    if (ex != EX_OK) return ex;
    if (o.help) {
        puts("usage: tenantry init [--data DIR] [--synchronous off|normal|full|extra]\n"
             "\n"
             "Creates the data directory and its database, and prints a new admin key\n"
             "once (only its hash is kept).  On an existing store with an admin key it\n"
             "changes nothing and prints no key (rotate with `tenantry admin-key rotate`).");
        return EX_OK;
    }
    tn_store *st;
    if ((ex = tn__cli_open(&o, TN__OPEN_CREATE, &st)) != EX_OK) return ex;
    if (tn_admin_key_exists(st)) {
        fprintf(stderr, "tenantry: store in %s is ready (admin key already set)\n", o.data);
        tn_close(st);
        return EX_OK;
    }
    char key[TN_ADMIN_KEY_LEN];
    int rc = tn_admin_key_rotate(st, key);
    tn_close(st);
    if (rc != TN_OK) return tn__cli_error("cannot create the admin key", tn_errmsg(NULL), rc);
    fprintf(stderr, "tenantry: created the store in %s.  The admin key follows; it is shown "
                    "only this once:\n", o.data);
    printf("%s\n", key);
    return EX_OK;
}

/* ---- tenant --------------------------------------------------------------- */

/* Versions are 57-bit integers: print them exactly, not through a double. */
static cJSON *int64_json(int64_t v) {
    char buf[24];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    return cJSON_CreateRaw(buf);
}

static int print_tenant(const tn_tenant *t, void *arg) {
    cJSON *list = arg;
    if (list) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "id", t->id);
        cJSON_AddStringToObject(j, "name", t->name);
        cJSON_AddItemToObject(j, "created_at", int64_json(t->created_at));
        cJSON_AddItemToObject(j, "items", int64_json(t->items));
        cJSON_AddItemToArray(list, j);
    } else {
        printf("%-36s  %-24s  %lld\n", t->id, t->name, (long long)t->items);
    }
    return 0;
}

static int cmd_tenant(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[2], "set") == 0) return tn__cmd_tenant_set(argc, argv);
    if (argc > 2 && strcmp(argv[2], "join") == 0) return tn__cmd_tenant_join(argc, argv);
    tn__cli_opts o;
    int ex = tn__cli_parse(argc, argv, 2, &o);
    if (ex != EX_OK) return ex;
    const char *sub = o.nargs > 0 ? o.args[0] : NULL;
    if (o.help || !sub) {
        puts("usage: tenantry tenant create NAME [--id UUID]\n"
             "       tenantry tenant list [--json]\n"
             "       tenantry tenant rename NAME NEW-NAME\n"
             "       tenantry tenant delete NAME\n"
             "       tenantry tenant set NAME|ID [--rate-limit N] [--max-items N] ...  (see set --help)\n"
             "       tenantry tenant join ID   (a tenant another appliance pushed; see join --help)\n"
             "\n"
             "Names are 1-128 characters of A-Z a-z 0-9 . _ - starting with a letter or\n"
             "digit, unique regardless of case.  The store generates each tenant's id;\n"
             "--id provisions a tenant another appliance of the fleet already holds,\n"
             "under the id that appliance's store generated (see `tenant list --json`),\n"
             "so both sync into the same remote partition.\n"
             "delete removes the tenant's items, files and keys here, and (with sync on)\n"
             "its rows and objects from the remote, leaving a marker there so no restore,\n"
             "join or pull brings it back.  All take --data DIR.");
        return o.help ? EX_OK : EX_USAGE;
    }
    int want = strcmp(sub, "list") == 0 ? 1 : strcmp(sub, "rename") == 0 ? 3 : 2;
    if (strcmp(sub, "create") && strcmp(sub, "list") && strcmp(sub, "rename") &&
        strcmp(sub, "delete"))
        return tn__cli_usage("tenant takes create, list, rename or delete");
    if (o.nargs != want) return tn__cli_usage("wrong number of arguments");

    tn_store *st;
    if ((ex = tn__cli_open(&o, 0, &st)) != EX_OK) return ex;
    int rc;
    tn_tenant t;
    if (strcmp(sub, "create") == 0) {
        rc = tn_tenant_provision(st, o.args[1], o.id, &t);
        if (rc == TN_OK) printf("%s\n", t.name);
    } else if (strcmp(sub, "list") == 0) {
        cJSON *list = o.json ? cJSON_CreateArray() : NULL;
        rc = tn_tenant_list(st, print_tenant, list);
        if (list) tn__cli_print_json(list);
    } else {
        rc = tn_tenant_find(st, o.args[1], &t);
        if (rc == TN_OK && strcmp(sub, "rename") == 0)
            rc = tn_tenant_rename(st, t.id, o.args[2]);
        else if (rc == TN_OK)
            rc = tn_tenant_delete(st, t.id);
    }
    if (rc != TN_OK) ex = tn__cli_error(o.nargs > 1 ? o.args[1] : sub, tn_errmsg(st), rc);
    tn_close(st);
    return ex;
}

/* ---- item ----------------------------------------------------------------- */

/* All of f as a C string; NULL when it cannot be read, or when it holds a NUL
 * byte (*nul set): the text after one would be silently dropped. */
static char *read_all(FILE *f, int *nul) {
    size_t cap = 4096, n = 0, r;
    char *buf = malloc(cap);
    while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 == cap) {
            char *nb = cap > (64u << 20) ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
    }
    *nul = buf && memchr(buf, '\0', n) != NULL;
    if (*nul) {
        free(buf);
        return NULL;
    }
    if (buf) buf[n] = '\0';
    return buf;
}

static cJSON *item_json(const tn_item *it) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", it->id);
    cJSON *data = cJSON_Parse(it->data);
    cJSON_AddItemToObject(j, "data", data ? data : cJSON_CreateNull());
    /* A decimal string, as the HTTP API gives it: versions pass 2^53, and a
     * script that parses this output in JavaScript must read them exactly. */
    char v[24];
    snprintf(v, sizeof v, "%lld", (long long)it->version);
    cJSON_AddStringToObject(j, "version", v);
    cJSON_AddItemToObject(j, "created_at", int64_json(it->created_at));
    cJSON_AddItemToObject(j, "updated_at", int64_json(it->updated_at));
    return j;
}

static int list_item(const tn_item *it, void *arg) {
    cJSON *list = arg;
    if (list)
        cJSON_AddItemToArray(list, item_json(it));
    else
        printf("%s\t%s\n", it->id, it->data);
    return 0;
}

static int cmd_item(int argc, char **argv) {
    tn__cli_opts o;
    int ex = tn__cli_parse(argc, argv, 2, &o);
    if (ex != EX_OK) return ex;
    const char *sub = o.nargs > 0 ? o.args[0] : NULL;
    if (o.help || !sub) {
        puts("usage: tenantry item put --tenant NAME [--id ID] [JSON]   (JSON from stdin if absent)\n"
             "       tenantry item get --tenant NAME ID\n"
             "       tenantry item list --tenant NAME [--limit N] [--cursor C] [--json]\n"
             "       tenantry item delete --tenant NAME ID\n"
             "\n"
             "Item ids are 1-256 characters of A-Z a-z 0-9 . _ : - (put generates one\n"
             "when --id is absent); data is a JSON text.  put prints the item as JSON.\n"
             "list prints a next cursor on stderr when there are more items.");
        return o.help ? EX_OK : EX_USAGE;
    }
    int is_put = strcmp(sub, "put") == 0, is_list = strcmp(sub, "list") == 0;
    if (!is_put && !is_list && strcmp(sub, "get") && strcmp(sub, "delete"))
        return tn__cli_usage("item takes put, get, list or delete");
    if ((is_list && o.nargs != 1) || (is_put && o.nargs > 2) ||
        (!is_put && !is_list && o.nargs != 2))
        return tn__cli_usage("wrong number of arguments");

    char *input = NULL;
    if (is_put && o.nargs == 1) {
        int nul;
        input = read_all(stdin, &nul);
        if (nul) return tn__cli_usage("the JSON on stdin contains a NUL byte");
        if (!input) return tn__cli_error("stdin", "cannot read the JSON", TN_IO);
    }
    tn_store *st;
    tn_session *s;
    if ((ex = open_session(&o, &st, &s)) != EX_OK) {
        free(input);
        return ex;
    }
    int rc;
    tn_item it = {0};
    if (is_put) {
        rc = tn_item_put(s, o.id, input ? input : o.args[1], &it);
        if (rc == TN_OK) tn__cli_print_json(item_json(&it));
    } else if (strcmp(sub, "get") == 0) {
        rc = tn_item_get(s, o.args[1], &it);
        if (rc == TN_OK) tn__cli_print_json(item_json(&it));
    } else if (is_list) {
        cJSON *list = o.json ? cJSON_CreateArray() : NULL;
        char *next = NULL;
        rc = tn_item_list(s, o.cursor, o.limit > 0 ? o.limit : 100, list_item, list, &next);
        if (list) tn__cli_print_json(list);
        if (rc == TN_OK && next) fprintf(stderr, "next cursor: %s\n", next);
        free(next);
    } else {
        rc = tn_item_delete(s, o.args[1], 0);
    }
    tn_item_clear(&it);
    if (rc != TN_OK) ex = tn__cli_error(sub, tn_session_errmsg(s), rc);
    free(input);
    tn_session_close(s);
    tn_close(st);
    return ex;
}

/* ---- sql ------------------------------------------------------------------ */

typedef struct table {
    int stmt, ncol, nrows, cap;
    char **cells; /* nrows * ncol, row-major; row 0 holds the names */
    int json;
    cJSON *out;
} table;

static void table_flush(table *t) {
    if (t->ncol == 0) return;
    if (!t->json) {
        int *w = calloc((size_t)t->ncol, sizeof *w);
        for (int r = 0; w && r < t->nrows; r++)
            for (int c = 0; c < t->ncol; c++) {
                int n = (int)strlen(t->cells[r * t->ncol + c]);
                if (n > w[c]) w[c] = n;
            }
        for (int r = 0; w && r < t->nrows; r++) {
            for (int c = 0; c < t->ncol; c++)
                printf("%s%-*s", c ? " | " : "", c == t->ncol - 1 ? 0 : w[c],
                       t->cells[r * t->ncol + c]);
            putchar('\n');
            if (r == 0) {
                for (int c = 0; c < t->ncol; c++) {
                    printf("%s", c ? "-+-" : "");
                    for (int k = 0; k < w[c]; k++) putchar('-');
                }
                putchar('\n');
            }
        }
        free(w);
    }
    for (int i = 0; i < t->nrows * t->ncol; i++) free(t->cells[i]);
    free(t->cells);
    t->cells = NULL;
    t->nrows = t->cap = t->ncol = 0;
}

static int table_row(void *arg, int stmt, int ncol, const char *const *names,
                     const char *const *values) {
    table *t = arg;
    if (stmt != t->stmt || t->ncol == 0) {
        table_flush(t);
        t->stmt = stmt;
        t->ncol = ncol;
        if (t->json) {
            cJSON_AddItemToArray(t->out, cJSON_CreateArray());
        }
    }
    if (t->json) {
        cJSON *rows = cJSON_GetArrayItem(t->out, cJSON_GetArraySize(t->out) - 1);
        cJSON *row = cJSON_CreateObject();
        for (int c = 0; c < ncol; c++)
            cJSON_AddItemToObject(row, names[c],
                                  values[c] ? cJSON_CreateString(values[c]) : cJSON_CreateNull());
        cJSON_AddItemToArray(rows, row);
        return 0;
    }
    int need = (t->nrows == 0 ? 2 : t->nrows + 1) * ncol;
    if (need > t->cap) {
        int cap = need * 2;
        char **nc = realloc(t->cells, (size_t)cap * sizeof *nc);
        if (!nc) return 1;
        t->cells = nc;
        t->cap = cap;
    }
    if (t->nrows == 0) {
        for (int c = 0; c < ncol; c++) t->cells[c] = strdup(names[c]);
        t->nrows = 1;
    }
    for (int c = 0; c < ncol; c++)
        t->cells[t->nrows * ncol + c] = strdup(values[c] ? values[c] : "NULL");
    t->nrows++;
    return 0;
}

static int cmd_sql(int argc, char **argv) {
    tn__cli_opts o;
    int ex = tn__cli_parse(argc, argv, 2, &o);
    if (ex != EX_OK) return ex;
    if (o.help) {
        puts("usage: tenantry sql --tenant NAME [-c SQL] [--json]\n"
             "\n"
             "An SQL console scoped to one tenant: runs -c SQL, or the statements read\n"
             "from stdin.  The tenant sees the views `items` (id, data, version,\n"
             "created_at, updated_at), `files` and `usage` (its quotas and what counts\n"
             "against them, when it has quotas); inserting into items creates or\n"
             "replaces an item, DELETE tombstones it.  Everything else (the private\n"
             "tables, ATTACH, PRAGMA, schema changes, writes to files, functions off the\n"
             "allow-list) is refused.  One run has a budget: 2 s (waits for the write lock\n"
             "included), 1,000,000 rows, 64 MiB of memory; a transaction must end within\n"
             "the input or it is rolled back.  The tenant's quotas hold.  Output is a table,\n"
             "or with --json one JSON array of row objects per statement that returned rows.");
        return EX_OK;
    }
    if (o.nargs) return tn__cli_usage("sql takes no arguments; pass SQL with -c or stdin");
    char *input = NULL;
    if (!o.command) {
        int nul;
        input = read_all(stdin, &nul);
        if (nul) return tn__cli_usage("the SQL on stdin contains a NUL byte");
        if (!input) return tn__cli_error("stdin", "cannot read the SQL", TN_IO);
    }
    tn_store *st;
    tn_session *s;
    if ((ex = open_session(&o, &st, &s)) != EX_OK) {
        free(input);
        return ex;
    }
    table t = {.json = o.json, .out = o.json ? cJSON_CreateArray() : NULL};
    int rc = tn_session_exec(s, input ? input : o.command, table_row, &t);
    table_flush(&t);
    if (t.out) tn__cli_print_json(t.out);
    if (rc != TN_OK) ex = tn__cli_error("sql", tn_session_errmsg(s), rc);
    free(input);
    tn_session_close(s);
    tn_close(st);
    return ex;
}

/* ---- check and status ----------------------------------------------------- */

static int cmd_check(int argc, char **argv) {
    tn__cli_opts o;
    int ex = tn__cli_parse(argc, argv, 2, &o);
    if (ex != EX_OK) return ex;
    if (o.help) {
        puts("usage: tenantry check [--data DIR]\n"
             "\n"
             "Runs PRAGMA integrity_check, the foreign-key check and the store's own\n"
             "invariants (every row's tenant exists, every pending outbox row points at\n"
             "a real row, no version above the persisted clock).  Prints `ok` and exits\n"
             "0, or lists the problems and exits 5.");
        return EX_OK;
    }
    tn_store *st; /* read-only: check works on a read-only mount and beside a daemon */
    if ((ex = tn__cli_open(&o, TN__OPEN_READONLY, &st)) != EX_OK) return ex;
    char *report = NULL;
    int rc = tn_check(st, &report);
    if (rc == TN_OK) {
        puts("ok");
    } else if (report) {
        fputs(report, stdout);
        ex = tn__cli_exit(rc);
    } else {
        ex = tn__cli_error("check", tn_errmsg(st), rc);
    }
    free(report);
    tn_close(st);
    return ex;
}

static int count_tenant(const tn_tenant *t, void *arg) {
    long long *n = arg;
    n[0]++;
    n[1] += t->items;
    return 0;
}

static long long num_of(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? (long long)v->valuedouble : 0;
}

static const char *str_or(const cJSON *o, const char *name, const char *dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

/* A tenant's settings that differ from the defaults, indented under it. */
static void print_settings(const cJSON *s) {
    static const char *const names[] = {"rate_limit", "burst", "max_items", "max_file_bytes",
                                        "sync_priority", "tombstone_days"};
    char line[256];
    size_t n = 0;
    line[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const cJSON *v = cJSON_GetObjectItem(s, names[i]);
        if (!cJSON_IsNumber(v) || (i == 4 && v->valuedouble == 1)) continue;
        n += (size_t)snprintf(line + n, sizeof line - n, "%s%s %g", n ? ", " : "", names[i],
                              v->valuedouble);
        if (n >= sizeof line) break;
    }
    if (line[0]) printf("    settings: %s\n", line);
}

static int cmd_status(int argc, char **argv) {
    tn__cli_opts o;
    int ex = tn__cli_parse(argc, argv, 2, &o);
    if (ex != EX_OK) return ex;
    if (o.help) {
        puts("usage: tenantry status [--data DIR] [--config PATH] [--json]\n"
             "\n"
             "Prints the store's schema version, tenants and live items, and per tenant\n"
             "the sync backlog (rows and bytes), dead letters, conflict losses, last\n"
             "success, last error and current backoff, whether its sync is on, and the\n"
             "settings it has that differ from the defaults (`tenant set`).");
        return EX_OK;
    }
    tn__config conf; /* a bad file fails here too, before anything is shown */
    if ((ex = tn__cli_config(&o, &conf)) != EX_OK) return ex;
    tn_store *st;
    if ((ex = tn__cli_open(&o, TN__OPEN_READONLY, &st)) != EX_OK) return ex;
    long long n[2] = {0, 0};
    int version = 0;
    char *sync = NULL;
    int rc = tn_schema_version(st, &version);
    if (rc == TN_OK) rc = tn_tenant_list(st, count_tenant, n);
    if (rc == TN_OK) rc = tn_sync_status_json(st, NULL, &sync);
    cJSON *sj = sync ? cJSON_Parse(sync) : NULL;
    if (rc == TN_OK && !sj) rc = TN_NOMEM;
    if (rc != TN_OK) {
        ex = tn__cli_error("status", tn_errmsg(st), rc);
    } else if (o.json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "schema_version", version);
        if (conf.file[0]) cJSON_AddStringToObject(j, "config", conf.file);
        else cJSON_AddNullToObject(j, "config");
        cJSON_AddNumberToObject(j, "tenants", (double)n[0]);
        cJSON_AddNumberToObject(j, "items", (double)n[1]);
        cJSON_AddItemReferenceToObject(j, "pending", cJSON_GetObjectItem(sj, "pending"));
        cJSON_AddItemToObject(j, "sync", sj);
        sj = NULL;
        tn__cli_print_json(j);
    } else {
        printf("store      %s\nconfig     %s\nschema     %d\ntenants    %lld\nitems      %lld\n\n",
               o.data, conf.file[0] ? conf.file : "none", version, n[0], n[1]);
        printf("%-24s %4s %9s %12s %7s %9s  %-24s  %s\n", "tenant", "sync", "pending",
               "bytes", "failed", "conflicts", "last success", "last error");
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItem(sj, "tenants")) {
            printf("%-24s %4s %9lld %12lld %7lld %9lld  %-24s  %s\n", str_or(t, "name", "?"),
                   cJSON_IsFalse(cJSON_GetObjectItem(t, "sync")) ? "off" : "on",
                   num_of(t, "pending"), num_of(t, "pending_bytes"), num_of(t, "failed"),
                   num_of(t, "conflicts"), str_or(t, "last_success", "never"),
                   str_or(t, "last_error", "-"));
            print_settings(cJSON_GetObjectItem(t, "settings"));
        }
    }
    cJSON_Delete(sj);
    free(sync);
    tn_close(st);
    return ex;
}

/* ---- dispatch ------------------------------------------------------------- */

static const tn__cli_cmd commands[] = {
    {"init", cmd_init, "create a store and print its admin key once"},
    {"tenant", cmd_tenant, "create, list, rename or delete tenants"},
    {"item", cmd_item, "put, get, list or delete a tenant's items"},
    {"sql", cmd_sql, "an SQL console scoped to one tenant"},
    {"check", cmd_check, "verify the database and the store's invariants"},
    {"status", cmd_status, "show the store's counts and each tenant's sync status"},
    TN__CLI_MORE_COMMANDS
};

static void usage(FILE *f) {
    fputs("usage: tenantry COMMAND [options]   (tenantry COMMAND --help for more)\n\n", f);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fputs("\nThe data directory is --data DIR, else $TENANTRY_DATA, else ./data.\n"
          "Exit codes: 0 ok, 1 failure, 2 usage error, 3 not found, 4 exists or version\n"
          "conflict, 5 check found problems, 6 not authorized.\n"
          "tenantry --version prints the version.\n", f);
}

int main(int argc, char **argv) {
    /* The remotes the sync engine may use (TENANTRY_REMOTE). */
    tn__cli_remotes();
    if (argc < 2) {
        usage(stderr);
        return EX_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return EX_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        puts("tenantry " TENANTRY_VERSION);
        return EX_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc, argv);
    fprintf(stderr, "tenantry: unknown command %s (see tenantry --help)\n", argv[1]);
    return EX_USAGE;
}
