/*
 * test_group.c - group commit when one write of a group fails in a way that
 * makes SQLite roll the whole transaction back (an I/O error).
 *
 * A VFS shim, registered as the default VFS for the test, passes everything
 * to the real one and fails the one write of the write-ahead log whose page
 * holds a marker.  The write that carries the marker is large enough to
 * overflow the page cache, so SQLite spills its pages to the log in the
 * middle of the group, and the spill fails.  Afterwards every writer's
 * answer must match whether its row is stored.
 */
#include "fixture.h"

#include <pthread.h>
#include <unistd.h>

/* ---- the fault-injecting VFS --------------------------------------------- */

typedef struct shim_file {
    sqlite3_file base;
    sqlite3_file *real; /* follows this struct in the same allocation */
} shim_file;

static sqlite3_vfs shim_vfs, *real_vfs;
static sqlite3_io_methods shim_io;
static const char *fault_marker; /* a write holding these bytes fails, once */
static int faults;               /* writes failed so far */
static pthread_mutex_t fault_mu = PTHREAD_MUTEX_INITIALIZER;

#define REAL(f) (((shim_file *)(f))->real)

static int shim_close(sqlite3_file *f) { return REAL(f)->pMethods->xClose(REAL(f)); }
static int shim_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o) {
    return REAL(f)->pMethods->xRead(REAL(f), b, n, o);
}
static int shim_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o) {
    pthread_mutex_lock(&fault_mu);
    int fail = fault_marker && memmem(b, (size_t)n, fault_marker, strlen(fault_marker));
    if (fail) {
        fault_marker = NULL;
        faults++;
    }
    pthread_mutex_unlock(&fault_mu);
    if (fail) return SQLITE_IOERR_WRITE;
    return REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}
static int shim_truncate(sqlite3_file *f, sqlite3_int64 n) {
    return REAL(f)->pMethods->xTruncate(REAL(f), n);
}
static int shim_sync(sqlite3_file *f, int flags) { return REAL(f)->pMethods->xSync(REAL(f), flags); }
static int shim_size(sqlite3_file *f, sqlite3_int64 *n) {
    return REAL(f)->pMethods->xFileSize(REAL(f), n);
}
static int shim_lock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xLock(REAL(f), l); }
static int shim_unlock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int shim_check(sqlite3_file *f, int *out) {
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int shim_fctl(sqlite3_file *f, int op, void *arg) {
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int shim_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int shim_devchar(sqlite3_file *f) {
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int shim_shmmap(sqlite3_file *f, int pg, int sz, int ext, void volatile **p) {
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, ext, p);
}
static int shim_shmlock(sqlite3_file *f, int off, int n, int flags) {
    return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void shim_shmbarrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int shim_shmunmap(sqlite3_file *f, int del) {
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int shim_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **p) {
    return REAL(f)->pMethods->xFetch(REAL(f), o, n, p);
}
static int shim_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p) {
    return REAL(f)->pMethods->xUnfetch(REAL(f), o, p);
}

static int shim_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out) {
    (void)vfs;
    shim_file *sf = (shim_file *)f;
    sf->real = (sqlite3_file *)(sf + 1);
    int rc = real_vfs->xOpen(real_vfs, name, sf->real, flags, out);
    sf->base.pMethods = rc == SQLITE_OK && sf->real->pMethods ? &shim_io : NULL;
    return rc;
}

static void shim_install(void) {
    real_vfs = sqlite3_vfs_find(NULL);
    shim_vfs = *real_vfs;
    shim_vfs.zName = "tn-fault";
    shim_vfs.szOsFile = (int)sizeof(shim_file) + real_vfs->szOsFile;
    shim_vfs.xOpen = shim_open;
    shim_io = (sqlite3_io_methods){3, shim_close, shim_read, shim_write, shim_truncate,
                                   shim_sync, shim_size, shim_lock, shim_unlock, shim_check,
                                   shim_fctl, shim_sector, shim_devchar, shim_shmmap,
                                   shim_shmlock, shim_shmbarrier, shim_shmunmap, shim_fetch,
                                   shim_unfetch};
    ASSERT_INT_EQ(sqlite3_vfs_register(&shim_vfs, 1), SQLITE_OK);
}

/* ---- writers -------------------------------------------------------------- */

typedef struct writer {
    tn_store *st;
    const char *tenant, *id;
    char *json;
    int rc;
} writer;

static void *write_one(void *arg) {
    writer *w = arg;
    tn_session *s;
    w->rc = tn_session_open(w->st, w->tenant, &s);
    if (w->rc != TN_OK) return NULL;
    w->rc = tn_item_put(s, w->id, w->json, NULL);
    tn_session_close(s);
    return NULL;
}

static int64_t groups_led(tn_store *st) {
    pthread_mutex_lock(&st->gc_mu);
    int64_t n = st->gc_groups;
    pthread_mutex_unlock(&st->gc_mu);
    return n;
}

/* Starts w in a thread and waits until it leads (lead) or until `queued`
 * writes wait in the queue, so the groups hold the writes in this order. */
static void start_in_order(pthread_t *t, writer *w, tn_store *st, int lead, int queued) {
    ASSERT(pthread_create(t, NULL, write_one, w) == 0);
    int there = 0;
    for (int i = 0; i < 5000 && !there; i++) {
        pthread_mutex_lock(&st->gc_mu);
        there = lead ? st->gc_leader && st->gc_queued == 0 : st->gc_queued == queued;
        pthread_mutex_unlock(&st->gc_mu);
        if (!there) usleep(1000);
    }
    ASSERT(there);
}

/* Four writers: "lead" alone in a group, then "before", "faulty" and "after"
 * in the next.  The write of "faulty"'s marker page fails; big: its document
 * overflows the page cache, so that happens mid-group (a spill), else at the
 * group's COMMIT.  Returns with the answers checked against the rows. */
static void fault_in_group(int spill, int want[4]) {
    shim_install();
    fixture f;
    fixture_init(&f);
    /* The marker sits 10 KB into the document: on an overflow page that is
     * written early and spilled first. */
    size_t big = spill ? 4u << 20 : 20000;
    char *doc = malloc(big + 1);
    ASSERT(doc != NULL);
    memset(doc, 'x', big);
    doc[0] = '"';
    memcpy(doc + 10000, "FAULT-MARKER-7d1e", 17);
    doc[big - 1] = '"';
    doc[big] = '\0';

    /* Hold the write lock, so the first writer leads a group of one and
     * waits; the next writers queue up behind it and form the next group. */
    char path[4200];
    snprintf(path, sizeof path, "%s/tenantry.db", f.dir);
    sqlite3 *blocker;
    ASSERT_INT_EQ(sqlite3_open(path, &blocker), SQLITE_OK);
    ASSERT_INT_EQ(sqlite3_exec(blocker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

    writer w[4] = {{f.st, f.acme.id, "lead", "{}", -1},
                   {f.st, f.acme.id, "before", "{\"n\":1}", -1},
                   {f.st, f.globex.id, "faulty", doc, -1},
                   {f.st, f.acme.id, "after", "{\"n\":3}", -1}};
    pthread_t t[4];
    for (int i = 0; i < 4; i++) start_in_order(&t[i], &w[i], f.st, i == 0, i);
    int64_t g0 = groups_led(f.st);
    pthread_mutex_lock(&fault_mu);
    fault_marker = "FAULT-MARKER-7d1e";
    pthread_mutex_unlock(&fault_mu);
    ASSERT_INT_EQ(sqlite3_exec(blocker, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(blocker);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    ASSERT_INT_EQ(faults, 1); /* the fault happened */
    ASSERT(groups_led(f.st) - g0 <= 3); /* "before", "faulty", "after" shared groups */

    /* Every answer matches the store: OK exactly when the row is there. */
    for (int i = 0; i < 4; i++) {
        tn_session *s = w[i].tenant == f.acme.id ? f.a : f.g;
        int stored = tn_item_get(s, w[i].id, NULL) == TN_OK;
        if ((w[i].rc == TN_OK) != stored)
            TN_FAIL_("%s: answered %s, row %s", w[i].id, tn_errname(w[i].rc),
                     stored ? "stored" : "absent");
    }
    for (int i = 0; i < 4; i++)
        if (w[i].rc != want[i])
            TN_FAIL_("%s: answered %s, want %s", w[i].id, tn_errname(w[i].rc),
                     tn_errname(want[i]));
    char *report = NULL;
    int rc = tn_check(f.st, &report);
    if (rc != TN_OK) TN_FAIL_("check: %s", report ? report : "");
    int stored = 0;
    for (int i = 1; i < 4; i++) stored += want[i] == TN_OK;
    ASSERT_INT_EQ(raw_scalar(f.dir, "SELECT count(*) FROM _outbox o JOIN _items i "
                                    "ON i.rowid = o.ref AND o.kind = 1 "
                                    "WHERE i.id IN ('before', 'after', 'faulty')"),
                  stored);
    free(doc);
    fixture_done(&f);
    sqlite3_vfs_unregister(&shim_vfs);
}

/* An I/O error inside the group rolls back the writes before it too, and
 * leaves the connection outside a transaction: the others must run again,
 * not be told they failed (before) or commit on their own while told they
 * failed (after). */
TEST(group_commit_answers_match_rows_after_an_io_error_mid_group) {
    int want[4] = {TN_OK, TN_OK, TN_IO, TN_OK};
    fault_in_group(1, want);
}

/* An I/O error at the group's COMMIT: nothing of the group is stored and no
 * writer of it is told otherwise. */
TEST(group_commit_answers_match_rows_after_an_io_error_at_commit) {
    int want[4] = {TN_OK, TN_IO, TN_IO, TN_IO};
    fault_in_group(0, want);
}
