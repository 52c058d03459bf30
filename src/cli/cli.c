/*
 * cli.c - what the command modules share: exit codes, one-line errors, option
 * parsing and opening the store.  Linked into the tenantry binary only, never
 * into the library.
 */
#include "cli.h"

#include "remote.h"
#include "remote_aws.h"
#include "dir.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


int tn__cli_exit(int rc) {
    switch (rc) {
    case TN_OK: return EX_OK;
    case TN_INVALID: return EX_USAGE;
    case TN_NOTFOUND: return EX_NOTFOUND;
    case TN_EXISTS:
    case TN_CONFLICT: return EX_EXISTS;
    case TN_CORRUPT: return EX_CHECK;
    case TN_DENIED: return EX_DENIED;
    default: return EX_FAIL;
    }
}

int tn__cli_error(const char *what, const char *detail, int rc) {
    fprintf(stderr, "tenantry: %s: %s\n", what, detail && *detail ? detail : tn_strerror(rc));
    return tn__cli_exit(rc);
}

int tn__cli_usage(const char *msg) {
    fprintf(stderr, "tenantry: %s (see --help)\n", msg);
    return EX_USAGE;
}

/* ---- options -------------------------------------------------------------- */

/* Parses argv[from..] into o; positional arguments are kept in o->args. */
int tn__cli_parse(int argc, char **argv, int from, tn__cli_opts *o) {
    memset(o, 0, sizeof *o);
    o->limit = -1;
    for (int i = from; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { o->help = 1; continue; }
        if (strcmp(a, "--json") == 0) { o->json = 1; continue; }
        if (strcmp(a, "--data") == 0) slot = &o->data;
        else if (strcmp(a, "--tenant") == 0) slot = &o->tenant;
        else if (strcmp(a, "-c") == 0) slot = &o->command;
        else if (strcmp(a, "--cursor") == 0) slot = &o->cursor;
        else if (strcmp(a, "--id") == 0) slot = &o->id;
        else if (strcmp(a, "--listen") == 0) slot = &o->listen;
        else if (strcmp(a, "--synchronous") == 0) slot = &o->synchronous;
        else if (strcmp(a, "--scopes") == 0) slot = &o->scopes;
        else if (strcmp(a, "--expires-in") == 0) slot = &o->expires_in;
        else if (strcmp(a, "--overlap") == 0) slot = &o->overlap;
        else if (strcmp(a, "--config") == 0) slot = &o->config;
        else if (strcmp(a, "--limit") == 0) {
            if (i + 1 >= argc) return tn__cli_usage("--limit needs a number");
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 10000) return tn__cli_usage("--limit takes 1 to 10000");
            o->limit = (int)v;
            continue;
        } else if (strcmp(a, "--allow-remote") == 0) { o->allow_remote = 1; continue; }
        else if (strcmp(a, "--once") == 0) { o->once = 1; continue; }
        else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "tenantry: unknown option %s (see --help)\n", a);
            return EX_USAGE;
        } else {
            if (o->nargs == TN__CLI_MAXARGS) return tn__cli_usage("too many arguments");
            o->args[o->nargs++] = a;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "tenantry: %s needs a value (see --help)\n", a);
            return EX_USAGE;
        }
        *slot = argv[++i];
    }
    if (!o->data) o->data = getenv("TENANTRY_DATA");
    if (!o->data || !*o->data) o->data = "data";
    return EX_OK;
}

int tn__cli_open(const tn__cli_opts *o, int flags, tn_store **st) {
    tn_options opt;
    tn_options_init(&opt);
    opt.create = (flags & TN__OPEN_CREATE) != 0;
    opt.readonly = (flags & TN__OPEN_READONLY) != 0;
    if (o->synchronous) {
        static const char *const modes[] = {"off", "normal", "full", "extra"};
        int m = -1;
        for (int i = 0; i < 4; i++)
            if (strcmp(o->synchronous, modes[i]) == 0) m = i;
        if (m < 0) return tn__cli_usage("--synchronous takes off, normal, full or extra");
        opt.synchronous = m;
    }
    int rc = tn_open(o->data, &opt, st);
    if (rc != TN_OK) return tn__cli_error("cannot open the store", tn_errmsg(NULL), rc);
    return EX_OK;
}

int tn__cli_config(const tn__cli_opts *o, tn__config *c) {
    char path[4096], msg[1024 + 512];
    int rc;
    if (o->config) {
        rc = tn__config_load(o->config, c, msg, sizeof msg);
    } else {
        snprintf(path, sizeof path, "%s/%s", o->data, TN__CONF_NAME);
        rc = tn__config_load(path, c, msg, sizeof msg);
        if (rc == TN_NOTFOUND) rc = TN_OK; /* the file is optional */
    }
    if (rc == TN_OK) rc = tn__config_export(c);
    if (rc == TN_OK) return EX_OK;
    fprintf(stderr, "tenantry: %s\n", msg);
    return rc == TN_INVALID || rc == TN_NOTFOUND ? EX_USAGE : EX_FAIL;
}

void tn__cli_print_json(cJSON *j) {
    char *text = cJSON_PrintUnformatted(j);
    if (text) puts(text);
    free(text);
    cJSON_Delete(j);
}

void tn__cli_remotes(void) {
    tn_remote_register("aws", tn_remote_aws_open);
    tn_remote_register("dir", tn_remote_dir_open);
}
