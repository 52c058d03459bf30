/*
 * cmd_restore.c - the way back from the remote, as commands:
 *
 *   tenantry restore --data DIR [--tenant ID]...   rebuild a store from the remote
 *   tenantry tenant join ID                        bring a tenant another appliance holds
 *   tenantry verify --remote [--tenant NAME] [--repair] [--json]
 *
 * They open the remote TENANTRY_REMOTE names (the CLI registered the
 * backends), with one connection, and call sync/pull.c.
 */
#include "cli.h"

#include "engine.h"
#include "outbox.h"
#include "pull.h"
#include "remote.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char RESTORE_HELP[] =
    "usage: tenantry restore [--data DIR] [--tenant ID]... [--config PATH]\n"
    "\n"
    "Builds a store in an empty (or absent) data directory from the remote\n"
    "(TENANTRY_REMOTE: aws, the default, or dir:PATH): the tenants with their ids,\n"
    "names and settings, every row with its version (tombstones too), every file\n"
    "(its bytes checked against the recorded SHA-256).  Without --tenant, every\n"
    "tenant the remote holds, except deleted ones.  Never touches a store that holds\n"
    "data.  Safe to stop at any moment and run again: it continues, and the store\n"
    "counts as usable (`tenantry check` clean) only once it is complete.\n"
    "Secrets are not in the remote: create an admin key (tenantry admin-key) and\n"
    "API keys (tenantry key create) afterwards.  Prints a JSON summary.";

static const char VERIFY_HELP[] =
    "usage: tenantry verify --remote [--tenant NAME] [--repair] [--json] [--data DIR]\n"
    "\n"
    "Compares each tenant's rows and files, local against the remote, and lists what\n"
    "differs: missing on either side, an older version on one side, different\n"
    "content or bytes, an object missing remotely.  Reads every remote row of the\n"
    "tenant once (one paged listing) and each file's object once.  --repair settles\n"
    "each difference by the conflict rule: the newer side wins (pushed again or\n"
    "applied here).  Exit 0 when equal (or all repaired), 5 when they differ.";

static const char JOIN_HELP[] =
    "usage: tenantry tenant join ID [--data DIR] [--config PATH]\n"
    "\n"
    "Brings the tenant ID, which another appliance pushed to the remote, into this\n"
    "store with every row and file, then keeps it in sync like the others.";

/* Opens the remote and one connection. */
static int open_remote(tn_remote **r, tn_remote_conn **c) {
    char err[200] = "";
    *c = NULL;
    int rc = tn_remote_open(getenv("TENANTRY_REMOTE"), r, err, sizeof err);
    if (rc != TN_OK) return tn__cli_error("remote", err[0] ? err : NULL, rc);
    rc = (*r)->m->conn_open(*r, 0, c);
    if (rc != TN_OK) {
        tn_remote_close(*r);
        return tn__cli_error("remote", NULL, rc);
    }
    if ((*r)->m->version < 2) {
        (*r)->m->conn_close(*c);
        tn_remote_close(*r);
        return tn__cli_error("remote", "this remote cannot be read back", TN_INVALID);
    }
    return EX_OK;
}

static void close_remote(tn_remote *r, tn_remote_conn *c) {
    if (c) r->m->conn_close(c);
    tn_remote_close(r);
}

static void add_stats(cJSON *j, const tn__pull_stats *ps) {
    char num[32];
#define RAW(name, v)                                        \
    snprintf(num, sizeof num, "%lld", (long long)(v));     \
    cJSON_AddItemToObject(j, name, cJSON_CreateRaw(num))
    RAW("tenants", ps->tenants);
    RAW("items", ps->items);
    RAW("files", ps->files);
    RAW("bytes", ps->bytes);
    RAW("refused", ps->refused);
#undef RAW
}

/* Takes every "--tenant X" out of argv into ids. */
static int take_tenants(int *argc, char **argv, const char **ids, int max, int *n) {
    int w = 0;
    *n = 0;
    for (int i = 0; i < *argc; i++) {
        if (i >= 2 && strcmp(argv[i], "--tenant") == 0 && i + 1 < *argc) {
            if (*n == max) return -1;
            ids[(*n)++] = argv[++i];
            continue;
        }
        argv[w++] = argv[i];
    }
    *argc = w;
    return 0;
}

typedef struct any_arg {
    int n;
} any_arg;

static int count_tenant(const tn_tenant *t, void *arg) {
    (void)t;
    ((any_arg *)arg)->n++;
    return 0;
}

int tn__cmd_restore(int argc, char **argv) {
    const char *ids_opt[64];
    int nopt;
    if (take_tenants(&argc, argv, ids_opt, 64, &nopt) != 0)
        return tn__cli_usage("at most 64 --tenant options");
    tn__cli_opts o;
    int ex = tn__cli_parse(argc, argv, 2, &o);
    if (ex != EX_OK) return ex;
    if (o.help) {
        puts(RESTORE_HELP);
        return EX_OK;
    }
    if (o.nargs) return tn__cli_usage("restore takes no arguments (tenants go with --tenant)");
    for (int i = 0; i < nopt; i++)
        if (strlen(ids_opt[i]) != 36) return tn__cli_usage("--tenant takes a tenant id (a UUID)");
    tn__config conf;
    if ((ex = tn__cli_config(&o, &conf)) != EX_OK) return ex;
    tn_store *st;
    if ((ex = tn__cli_open(&o, TN__OPEN_CREATE, &st)) != EX_OK) return ex;
    /* Never over a store that holds data, unless it is our own unfinished restore. */
    any_arg any = {0};
    tn_tenant_list(st, count_tenant, &any);
    if (any.n && !tn__restore_marked(st)) {
        tn_close(st);
        return tn__cli_error("restore", "the data directory holds a store with tenants; restore "
                             "needs an empty one", TN_EXISTS);
    }
    tn_remote *r;
    tn_remote_conn *c;
    if ((ex = open_remote(&r, &c)) != EX_OK) {
        tn_close(st);
        return ex;
    }
    int rc = tn__restore_mark(st, 1);
    char (*ids)[37] = NULL;
    int n = 0;
    if (rc == TN_OK && nopt) {
        ids = calloc((size_t)nopt, sizeof *ids);
        if (!ids) rc = TN_NOMEM;
        for (int i = 0; ids && i < nopt; i++) snprintf(ids[i], 37, "%s", ids_opt[i]);
        n = nopt;
    } else if (rc == TN_OK) {
        rc = tn__remote_tenants(r, c, &ids, &n);
    }
    tn__pull_stats ps;
    memset(&ps, 0, sizeof ps);
    const char *why = NULL;
    for (int i = 0; rc == TN_OK && i < n; i++) {
        int64_t before = ps.items + ps.files;
        rc = tn__join_tenant(st, r, c, ids[i], &ps);
        if (rc == TN_NOTFOUND) why = "the remote holds no such tenant";
        if (rc == TN_EXISTS) why = "that tenant was deleted";
        if (rc == TN_OK)
            fprintf(stderr, "tenantry: restore: tenant %d of %d: %lld rows\n", i + 1, n,
                    (long long)(ps.items + ps.files - before));
    }
    if (rc == TN_OK) rc = tn__restore_mark(st, 0);
    free(ids);
    close_remote(r, c);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "ok", rc == TN_OK);
    add_stats(j, &ps);
    if (rc != TN_OK) cJSON_AddStringToObject(j, "error", why ? why : tn_strerror(rc));
    else cJSON_AddNullToObject(j, "error");
    tn__cli_print_json(j);
    ex = rc == TN_OK ? EX_OK : tn__cli_error("restore", why, rc);
    tn_close(st);
    return ex;
}

int tn__cmd_tenant_join(int argc, char **argv) {
    tn__cli_opts o;
    int ex = tn__cli_parse(argc, argv, 3, &o);
    if (ex != EX_OK) return ex;
    if (o.help) {
        puts(JOIN_HELP);
        return EX_OK;
    }
    if (o.nargs != 1 || strlen(o.args[0]) != 36) return tn__cli_usage("tenant join takes a tenant id");
    tn__config conf;
    if ((ex = tn__cli_config(&o, &conf)) != EX_OK) return ex;
    tn_store *st;
    if ((ex = tn__cli_open(&o, 0, &st)) != EX_OK) return ex;
    tn_remote *r;
    tn_remote_conn *c;
    if ((ex = open_remote(&r, &c)) != EX_OK) {
        tn_close(st);
        return ex;
    }
    tn__pull_stats ps;
    memset(&ps, 0, sizeof ps);
    int rc = tn__join_tenant(st, r, c, o.args[0], &ps);
    close_remote(r, c);
    const char *why = rc == TN_NOTFOUND ? "the remote holds no such tenant"
                      : rc == TN_EXISTS ? "that tenant was deleted" : NULL;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "ok", rc == TN_OK);
    add_stats(j, &ps);
    tn__cli_print_json(j);
    ex = rc == TN_OK ? EX_OK : tn__cli_error("tenant join", why, rc);
    tn_close(st);
    return ex;
}

typedef struct verify_arg {
    tn_store *st;
    tn_remote *r;
    tn_remote_conn *c;
    const char *only; /* a tenant name, or NULL */
    int repair;
    cJSON *tenants;
    int differ;
    int rc;
    tn__pull_stats ps;
} verify_arg;

static int verify_one(const tn_tenant *t, void *arg) {
    verify_arg *v = arg;
    if (v->only && strcasecmp(v->only, t->name) != 0) return 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "tenant", t->name);
    int rc = tn__verify_tenant(v->st, v->r, v->c, t->id, v->repair, o, &v->ps);
    cJSON *d = cJSON_GetObjectItem(o, "differences");
    int n = cJSON_GetArraySize(d);
    cJSON_AddBoolToObject(o, "equal", rc == TN_OK && n == 0);
    if (n && !v->repair) v->differ = 1;
    if (rc != TN_OK) v->rc = rc;
    cJSON_AddItemToArray(v->tenants, o);
    return rc != TN_OK;
}

int tn__cmd_verify(int argc, char **argv) {
    int remote = 0, repair = 0, w = 0;
    for (int i = 0; i < argc; i++) {
        if (i >= 2 && strcmp(argv[i], "--remote") == 0) remote = 1;
        else if (i >= 2 && strcmp(argv[i], "--repair") == 0) repair = 1;
        else argv[w++] = argv[i];
    }
    argc = w;
    tn__cli_opts o;
    int ex = tn__cli_parse(argc, argv, 2, &o);
    if (ex != EX_OK) return ex;
    if (o.help) {
        puts(VERIFY_HELP);
        return EX_OK;
    }
    if (!remote) return tn__cli_usage("verify compares with the remote: give --remote");
    if (o.nargs) return tn__cli_usage("verify takes no arguments");
    tn__config conf;
    if ((ex = tn__cli_config(&o, &conf)) != EX_OK) return ex;
    tn_store *st;
    if ((ex = tn__cli_open(&o, 0, &st)) != EX_OK) return ex;
    verify_arg v;
    memset(&v, 0, sizeof v);
    v.st = st;
    v.only = o.tenant;
    v.repair = repair;
    v.tenants = cJSON_CreateArray();
    if ((ex = open_remote(&v.r, &v.c)) != EX_OK) {
        tn_close(st);
        return ex;
    }
    int rc = tn_tenant_list(st, verify_one, &v);
    if (rc == TN_OK) rc = v.rc;
    if (rc == TN_OK && o.tenant && cJSON_GetArraySize(v.tenants) == 0) rc = TN_NOTFOUND;
    close_remote(v.r, v.c);
    /* --repair: what is to go up goes now. */
    if (rc == TN_OK && repair) {
        tn_sync_config cfg;
        tn_sync_config_init(&cfg);
        tn_sync_config_from_env(&cfg);
        tn_sync_stats s;
        rc = tn_sync_run_once(st, &cfg, &s);
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "equal", rc == TN_OK && !v.differ);
    cJSON_AddItemToObject(j, "tenants", v.tenants);
    if (o.json) {
        tn__cli_print_json(j);
    } else {
        cJSON *t;
        cJSON_ArrayForEach(t, v.tenants) {
            cJSON *d = cJSON_GetObjectItem(t, "differences"), *e;
            printf("%s: %d local rows, %d remote rows, %d differences\n",
                   cJSON_GetStringValue(cJSON_GetObjectItem(t, "tenant")),
                   (int)cJSON_GetNumberValue(cJSON_GetObjectItem(t, "local_rows")),
                   (int)cJSON_GetNumberValue(cJSON_GetObjectItem(t, "remote_rows")),
                   cJSON_GetArraySize(d));
            cJSON_ArrayForEach(e, d)
                printf("  %s %s: %s\n", cJSON_GetStringValue(cJSON_GetObjectItem(e, "kind")),
                       cJSON_GetStringValue(cJSON_GetObjectItem(e, "key")),
                       cJSON_GetStringValue(cJSON_GetObjectItem(e, "what")));
        }
        cJSON_Delete(j);
    }
    if (rc != TN_OK) ex = tn__cli_error("verify", rc == TN_NOTFOUND ? "no such tenant" : NULL, rc);
    else ex = v.differ ? EX_CHECK : EX_OK;
    tn_close(st);
    return ex;
}
