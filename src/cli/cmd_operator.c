/*
 * cmd_operator.c - the CLI commands for operators and tenant settings:
 *
 *   tenantry operator create|list|grant|ungrant|revoke ...
 *   tenantry tenant set NAME|ID [--rate-limit N] [--max-items N] ...
 *
 * Both write the store directly; a running `tenantry serve` sees the change
 * on its next request (it reads grants and settings on every request) and its
 * sync engine on its next batch, without a restart.
 */
#include "cli.h"
#include "operator.h"

#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A tenant by name, else by id. */
static int find_tenant(tn_store *st, const char *name_or_id, tn_tenant *t) {
    int rc = tn_tenant_find(st, name_or_id, t);
    if (rc == TN_NOTFOUND || rc == TN_INVALID) rc = tn_tenant_get(st, name_or_id, t);
    return rc == TN_INVALID ? TN_NOTFOUND : rc;
}

static int tenant_error(tn_store *st, const char *what, int rc) {
    return tn__cli_error(what, rc == TN_NOTFOUND ? "no such tenant" : tn_errmsg(st), rc);
}

/* ---- operator ----------------------------------------------------------------- */

static const char operator_help[] =
    "usage: tenantry operator create NAME [--tenant NAME[,NAME...] --scopes SCOPES]\n"
    "       tenantry operator list [--json]\n"
    "       tenantry operator grant OPERATOR --tenant NAME --scopes SCOPES\n"
    "       tenantry operator ungrant OPERATOR --tenant NAME\n"
    "       tenantry operator revoke OPERATOR\n"
    "\n"
    "An operator (a service provider) acts for the tenants it is granted, each\n"
    "with its own scopes (items:read items:write files:read files:write).  create\n"
    "prints the operator key (tno_...) once; POST /v1/auth with that key and a\n"
    "tenant's name gives a token for that tenant.  grant adds a tenant or replaces\n"
    "its scopes; ungrant and revoke take effect on the operator's next request.\n"
    "OPERATOR is the operator's id or name.  All take --data DIR.";

static int print_op(const tn__op_info *o, const tn__op_grant *g, void *arg) {
    cJSON *list = arg;
    char scopes[TN__SCOPES_TEXT_MAX];
    if (list) {
        cJSON *cur = cJSON_GetArrayItem(list, cJSON_GetArraySize(list) - 1);
        if (!g) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "operator_id", o->op_id);
            cJSON_AddStringToObject(j, "name", o->name);
            cJSON_AddBoolToObject(j, "active", !o->revoked_at);
            cJSON_AddItemToObject(j, "grants", cJSON_CreateArray());
            cJSON_AddItemToArray(list, j);
            return 0;
        }
        cJSON *gj = cJSON_CreateObject();
        cJSON_AddStringToObject(gj, "tenant", g->tenant_name);
        tn__scopes_format(g->scopes, scopes);
        cJSON_AddStringToObject(gj, "scopes", scopes);
        cJSON_AddItemToArray(cJSON_GetObjectItem(cur, "grants"), gj);
        return 0;
    }
    if (!g) {
        printf("%s  %-24s  %s\n", o->op_id, o->name, o->revoked_at ? "revoked" : "active");
    } else {
        tn__scopes_format(g->scopes, scopes);
        printf("    %-24s  %s\n", g->tenant_name, scopes);
    }
    return 0;
}

/* Grants for each tenant of a comma-separated list of names. */
static int grants_of(tn_store *st, const char *list, unsigned scopes, tn__op_grant **out, int *n) {
    *out = NULL;
    *n = 0;
    if (!list) return TN_OK;
    size_t cnt = 1;
    for (const char *p = list; *p; p++) cnt += *p == ',';
    tn__op_grant *g = calloc(cnt, sizeof *g);
    char *copy = strdup(list);
    if (!g || !copy) {
        free(g);
        free(copy);
        return TN_NOMEM;
    }
    int rc = TN_OK, k = 0;
    for (char *save = NULL, *name = strtok_r(copy, ",", &save); name && rc == TN_OK;
         name = strtok_r(NULL, ",", &save)) {
        tn_tenant t;
        rc = find_tenant(st, name, &t);
        if (rc != TN_OK) {
            tenant_error(st, name, rc);
            break;
        }
        memcpy(g[k].tenant_id, t.id, sizeof g[k].tenant_id);
        g[k++].scopes = scopes;
    }
    free(copy);
    if (rc != TN_OK) {
        free(g);
        return rc;
    }
    *out = g;
    *n = k;
    return TN_OK;
}

static int cmd_operator(int argc, char **argv) {
    tn__cli_opts o;
    int ex = tn__cli_parse(argc, argv, 2, &o);
    if (ex != EX_OK) return ex;
    const char *sub = o.nargs ? o.args[0] : NULL;
    if (o.help || !sub) {
        puts(operator_help);
        return o.help ? EX_OK : EX_USAGE;
    }
    int is_create = strcmp(sub, "create") == 0, is_list = strcmp(sub, "list") == 0;
    int is_grant = strcmp(sub, "grant") == 0, is_ungrant = strcmp(sub, "ungrant") == 0;
    int is_revoke = strcmp(sub, "revoke") == 0;
    if (!is_create && !is_list && !is_grant && !is_ungrant && !is_revoke)
        return tn__cli_usage("operator takes create, list, grant, ungrant or revoke");
    if (o.nargs != (is_list ? 1 : 2)) return tn__cli_usage("wrong number of arguments");
    unsigned scopes = 0;
    if ((is_grant || (is_create && o.tenant)) && tn__scopes_parse(o.scopes, &scopes) != TN_OK)
        return tn__cli_usage("--scopes takes items:read items:write files:read files:write");
    if ((is_grant || is_ungrant) && !o.tenant) return tn__cli_usage("--tenant NAME is required");
    if (is_create && o.scopes && !o.tenant) return tn__cli_usage("--scopes needs --tenant");

    tn_store *st;
    if ((ex = tn__cli_open(&o, 0, &st)) != EX_OK) return ex;
    int rc = TN_OK;
    tn__op_info op;
    tn_tenant t;
    if (is_create) {
        tn__op_grant *g = NULL;
        int n = 0;
        char key[TN__API_KEY_LEN];
        rc = grants_of(st, o.tenant, scopes, &g, &n);
        if (rc != TN_OK) {
            free(g);
            tn_close(st);
            return tn__cli_exit(rc);
        }
        rc = tn__op_create(st, o.args[1], g, n, &op, key);
        free(g);
        if (rc == TN_OK) {
            fprintf(stderr, "tenantry: operator %s (%s) created; its key is shown only this "
                            "once:\n", op.name, op.op_id);
            printf("%s\n", key);
        }
        sodium_memzero(key, sizeof key);
    } else if (is_list) {
        cJSON *list = o.json ? cJSON_CreateArray() : NULL;
        rc = tn__op_list(st, print_op, list);
        if (list) tn__cli_print_json(list);
    } else {
        rc = tn__op_get(st, o.args[1], &op);
        if (rc == TN_OK && (is_grant || is_ungrant)) {
            rc = find_tenant(st, o.tenant, &t);
            if (rc != TN_OK) {
                ex = tenant_error(st, o.tenant, rc);
                tn_close(st);
                return ex;
            }
        }
        if (rc == TN_OK && is_grant) rc = tn__op_grant_set(st, op.op_id, t.id, scopes, NULL);
        else if (rc == TN_OK && is_ungrant) rc = tn__op_grant_remove(st, op.op_id, t.id);
        else if (rc == TN_OK) rc = tn__op_revoke(st, op.op_id);
        if (rc == TN_OK)
            printf("%s %s\n", is_grant ? "granted" : is_ungrant ? "ungranted" : "revoked",
                   op.name);
    }
    if (rc != TN_OK) ex = tn__cli_error(sub, tn_errmsg(st), rc);
    tn_close(st);
    return ex;
}

/* ---- tenant set --------------------------------------------------------------- */

static const char set_help[] =
    "usage: tenantry tenant set NAME|ID [--rate-limit N|default] [--burst N|default]\n"
    "           [--max-items N|none] [--max-file-bytes N|none] [--sync on|off]\n"
    "           [--sync-priority N] [--tombstone-days N|default] [--data DIR]\n"
    "\n"
    "Changes a tenant's settings; the others keep their values.  --rate-limit is\n"
    "requests per second for all the tenant's keys and operators together (burst:\n"
    "twice that unless --burst); --max-items and --max-file-bytes are quotas;\n"
    "--sync off keeps the tenant's changes queued locally; --sync-priority 1-100\n"
    "weighs its share of each sync batch; --tombstone-days 1-3650 is how long\n"
    "DynamoDB keeps its deleted items.  A running server applies a change on its\n"
    "next request, the sync engine on its next batch.";

typedef struct set_opt {
    const char *name, *reset; /* reset: the word that restores the default */
    unsigned bit;
    double min, max;
    int whole;
} set_opt;

static const set_opt set_opts[] = {
    {"--rate-limit", "default", TN__SET_RATE, 0.001, 1e6, 0},
    {"--burst", "default", TN__SET_BURST, 1, 1e6, 0},
    {"--max-items", "none", TN__SET_MAX_ITEMS, 0, 9007199254740991.0, 1},
    {"--max-file-bytes", "none", TN__SET_MAX_FILE_BYTES, 0, 9007199254740991.0, 1},
    {"--sync", NULL, TN__SET_SYNC, 0, 0, 0},
    {"--sync-priority", NULL, TN__SET_PRIORITY, 1, TN__PRIORITY_MAX, 1},
    {"--tombstone-days", "default", TN__SET_TOMBSTONE, 1, TN__TOMBSTONE_DAYS_MAX, 1},
};

/* Stores one option's value into s; 0, or EX_USAGE after a message. */
static int set_value(const set_opt *o, const char *v, tn__tenant_settings *s) {
    if (o->bit == TN__SET_SYNC) {
        if (strcmp(v, "on") && strcmp(v, "off")) return tn__cli_usage("--sync takes on or off");
        s->sync_enabled = strcmp(v, "on") == 0;
        return 0;
    }
    double d = 0;
    int reset = o->reset && strcmp(v, o->reset) == 0;
    if (!reset) {
        char *end;
        d = strtod(v, &end);
        if (end == v || *end || !(d >= o->min && d <= o->max) ||
            (o->whole && d != (double)(int64_t)d)) {
            fprintf(stderr, "tenantry: %s takes a number from %g to %g%s%s (see --help)\n",
                    o->name, o->min, o->max, o->reset ? " or " : "", o->reset ? o->reset : "");
            return EX_USAGE;
        }
    }
    switch (o->bit) {
    case TN__SET_RATE: s->rate_limit = reset ? 0 : d; break;
    case TN__SET_BURST: s->burst = reset ? 0 : d; break;
    case TN__SET_MAX_ITEMS: s->max_items = reset ? -1 : (int64_t)d; break;
    case TN__SET_MAX_FILE_BYTES: s->max_file_bytes = reset ? -1 : (int64_t)d; break;
    case TN__SET_PRIORITY: s->sync_priority = (int)d; break;
    default: s->tombstone_days = reset ? 0 : (int)d; break;
    }
    return 0;
}

int tn__cmd_tenant_set(int argc, char **argv) {
    /* argv: tenantry tenant set ...; the settings options are taken out
     * here, the rest goes to the shared parser. */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (!rest) return tn__cli_error("tenant set", "out of memory", TN_NOMEM);
    tn__tenant_settings s;
    tn__tenant_settings_default(&s);
    unsigned mask = 0;
    int n = 0, ex = EX_OK;
    for (int i = 0; i < argc && ex == EX_OK; i++) {
        const set_opt *o = NULL;
        for (size_t k = 0; i >= 3 && k < sizeof set_opts / sizeof set_opts[0]; k++)
            if (strcmp(argv[i], set_opts[k].name) == 0) o = &set_opts[k];
        if (!o) {
            rest[n++] = argv[i];
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "tenantry: %s needs a value (see --help)\n", o->name);
            ex = EX_USAGE;
        } else if (mask & o->bit) {
            fprintf(stderr, "tenantry: %s given twice (see --help)\n", o->name);
            ex = EX_USAGE;
        } else {
            ex = set_value(o, argv[++i], &s);
            mask |= o->bit;
        }
    }
    tn__cli_opts o;
    if (ex == EX_OK) ex = tn__cli_parse(n, rest, 3, &o);
    free(rest);
    if (ex != EX_OK) return ex;
    if (o.help) {
        puts(set_help);
        return EX_OK;
    }
    if (o.nargs != 1) return tn__cli_usage("tenant set takes one tenant name or id");
    if (!mask) return tn__cli_usage("tenant set needs at least one setting");
    tn_store *st;
    if ((ex = tn__cli_open(&o, 0, &st)) != EX_OK) return ex;
    tn_tenant t;
    tn__tenant_settings now;
    int rc = find_tenant(st, o.args[0], &t);
    if (rc != TN_OK) {
        ex = tenant_error(st, o.args[0], rc);
    } else if ((rc = tn__tenant_settings_update(st, t.id, &s, mask, &now)) != TN_OK) {
        ex = tn__cli_error(o.args[0], tn_errmsg(st), rc);
    } else {
        char rate[32] = "default", burst[32] = "default", items[32] = "none", bytes[32] = "none",
             days[32] = "default";
        if (now.rate_limit > 0) snprintf(rate, sizeof rate, "%g", now.rate_limit);
        if (now.burst > 0) snprintf(burst, sizeof burst, "%g", now.burst);
        if (now.max_items >= 0) snprintf(items, sizeof items, "%lld", (long long)now.max_items);
        if (now.max_file_bytes >= 0)
            snprintf(bytes, sizeof bytes, "%lld", (long long)now.max_file_bytes);
        if (now.tombstone_days > 0) snprintf(days, sizeof days, "%d", now.tombstone_days);
        printf("%s: rate-limit %s, burst %s, max-items %s, max-file-bytes %s, sync %s, "
               "sync-priority %d, tombstone-days %s\n",
               t.name, rate, burst, items, bytes, now.sync_enabled ? "on" : "off",
               now.sync_priority, days);
    }
    tn_close(st);
    return ex;
}

int tn__cmd_operator(int argc, char **argv) { return cmd_operator(argc, argv); }
