/*
 * cli.h - what the command modules share: option parsing, opening the store,
 * error reporting with the documented exit codes.  main.c holds the command
 * table; other layers add their commands through TN__CLI_MORE_COMMANDS.
 */
#ifndef TN_CLI_H
#define TN_CLI_H

#include "config.h"
#include "tenantry.h"

#define TN__CLI_MAXARGS 8

/* Exit codes, documented in `tenantry --help` and README. */
enum { EX_OK = 0, EX_FAIL = 1, EX_USAGE = 2, EX_NOTFOUND = 3, EX_EXISTS = 4, EX_CHECK = 5,
       EX_DENIED = 6 };

typedef struct tn__cli_opts {
    const char *data, *tenant, *command, *cursor, *id, *listen, *synchronous;
    const char *scopes, *expires_in, *overlap;
    const char *config; /* --config PATH */
    int json, help, limit, allow_remote, once;
    const char *args[TN__CLI_MAXARGS];
    int nargs;
} tn__cli_opts;

typedef struct tn__cli_cmd {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} tn__cli_cmd;

int tn__cli_parse(int argc, char **argv, int from, tn__cli_opts *o);
/* Opens the store in o->data; flags: TN__OPEN_CREATE, TN__OPEN_READONLY. */
enum { TN__OPEN_CREATE = 1, TN__OPEN_READONLY = 2 };
int tn__cli_open(const tn__cli_opts *o, int flags, tn_store **st);
/* Reads the configuration file (--config PATH, which must exist, else
 * <data>/tenantry.conf when present) into c and exports its environment keys
 * (see config.h).  EX_OK, or the exit code after a one-line message. */
int tn__cli_config(const tn__cli_opts *o, tn__config *c);
int tn__cli_exit(int tn_rc);
int tn__cli_error(const char *what, const char *detail, int tn_rc);
int tn__cli_usage(const char *msg);
/* Prints j on one line and frees it. */
struct cJSON;
void tn__cli_print_json(struct cJSON *j);
/* Registers the remote backends (sync/aws as "aws", sync/dir as "dir") with
 * tn_remote_open: the one place that names them. */
void tn__cli_remotes(void);

/* Pending outbox rows (src/outbox.c). */
int tn__outbox_pending(tn_store *st, int64_t *rows);

/* Commands of the HTTP layer (src/serve.c). */
int tn__cmd_serve(int argc, char **argv);
int tn__cmd_key(int argc, char **argv);
int tn__cmd_admin_key(int argc, char **argv);

/* The way back from the remote (cmd_restore.c). */
int tn__cmd_restore(int argc, char **argv);
int tn__cmd_verify(int argc, char **argv);
int tn__cmd_tenant_join(int argc, char **argv);

/* Operators and tenant settings (src/cmd_operator.c). */
int tn__cmd_operator(int argc, char **argv);
int tn__cmd_tenant_set(int argc, char **argv); /* tenant set: main.c's cmd_tenant hands over */

/* Commands of the sync layer (src/cmd_sync.c). */
int tn__cmd_sync(int argc, char **argv);
int tn__cmd_remote(int argc, char **argv);
int tn__cmd_remote_template(int argc, char **argv); /* src/cmd_remote.c */
int tn__cmd_sync_status(int argc, char **argv);

/* Commands from other modules: name, function, summary. */
#define TN__CLI_MORE_COMMANDS                                                      \
    {"serve", tn__cmd_serve, "serve the local HTTP API"},                          \
    {"key", tn__cmd_key, "create, list, rotate or revoke a tenant's API keys"},    \
    {"admin-key", tn__cmd_admin_key, "replace the admin key"},                      \
    {"operator", tn__cmd_operator, "operators: keys that act for granted tenants"}, \
    {"sync", tn__cmd_sync, "mirror items to DynamoDB and files to S3"},           \
    {"remote", tn__cmd_remote, "set up the DynamoDB table and check the bucket"}, \
    {"sync-status", tn__cmd_sync_status, "per-tenant sync backlog, failures, errors"},   \
    {"restore", tn__cmd_restore, "rebuild a store from the remote"},                   \
    {"verify", tn__cmd_verify, "compare local rows and files with the remote"},

#endif
