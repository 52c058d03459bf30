/*
 * cli.h - what the command modules share: option parsing, opening the store,
 * error reporting with the documented exit codes.  main.c holds the command
 * table; other layers add their commands through TN__CLI_MORE_COMMANDS.
 */
#ifndef TN_CLI_H
#define TN_CLI_H

#include "tenantry.h"

#define TN__CLI_MAXARGS 8

typedef struct tn__cli_opts {
    const char *data, *tenant, *command, *cursor, *id, *listen, *synchronous;
    const char *scopes, *expires_in, *overlap;
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
int tn__cli_open(const tn__cli_opts *o, int create, tn_store **st);
int tn__cli_exit(int tn_rc);
int tn__cli_error(const char *what, const char *detail, int tn_rc);
int tn__cli_usage(const char *msg);

/* Pending outbox rows (src/outbox.c). */
int tn__outbox_pending(tn_store *st, int64_t *rows);

/* Commands from other modules: name, function, summary. */
#define TN__CLI_MORE_COMMANDS

#endif
