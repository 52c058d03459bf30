/*
 * schema.h - the embedded schema migrations (build/schema_gen.c, generated from
 * the files in schema/) and the runner that applies them.
 */
#ifndef TN_SCHEMA_H
#define TN_SCHEMA_H

#include <sqlite3.h>
#include <stddef.h>

typedef struct tn__migration {
    int version;      /* becomes PRAGMA user_version once applied */
    const char *name; /* file name, for messages */
    const char *sql;
} tn__migration;

extern const tn__migration tn__migrations[];
extern const int tn__migration_count;

/*
 * Brings db to the last of migs[0..n): every missing migration and the new
 * user_version in one IMMEDIATE transaction, so a failure leaves the file as it
 * was.  Returns a tn_code; TN_VERSION when the file is newer than migs.
 * errbuf gets a one-line reason.
 */
int tn__migrate(sqlite3 *db, const tn__migration *migs, int n, char *errbuf, size_t errlen);

#endif
