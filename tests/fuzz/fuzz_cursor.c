/*
 * fuzz_cursor.c - libFuzzer target for the opaque list cursors of tn_item_list
 * and tn_file_list (src/session.c).
 *
 * One store is opened for the whole run, in a fresh directory under $TMPDIR,
 * with two tenants: A holds a few items, B holds its own, each with a marker
 * that names its owner.  Before fuzzing, every cursor the store can mint for A
 * and for B is collected by paging with limit 1.  Then each input is used as a
 * cursor in A's session, either as is (first byte even) or, so the fuzzer
 * also reaches the MAC check with well-formed cursors, as a minted cursor
 * (A's or B's, chosen by the input) with bytes of the input xor'ed into it.
 * Invariants:
 *   - TN_OK only for "" or a cursor the store minted for A's item list;
 *   - never a row of B (B's marker data, or an id only B has);
 *   - a file-list cursor can never be valid (A has no files: none was minted).
 */
#include "tenantry.h"

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NITEMS 6
#define MAXCUR 16

static tn_store *st;
static tn_session *sa, *sb;
static char dir[4096];
static char *minted_a[MAXCUR], *minted_b[MAXCUR];
static int nmint_a, nmint_b;

static void die(const char *what, int rc) {
    fprintf(stderr, "fuzz_cursor: %s: %s\n", what, tn_errname(rc));
    abort();
}

static int rm_one(const char *path, const struct stat *sb_, int flag, struct FTW *ftw) {
    (void)sb_, (void)flag, (void)ftw;
    return remove(path);
}

static void cleanup(void) {
    tn_session_close(sa);
    tn_session_close(sb);
    tn_close(st);
    for (int i = 0; i < nmint_a; i++) free(minted_a[i]);
    for (int i = 0; i < nmint_b; i++) free(minted_b[i]);
    if (dir[0]) nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int ignore_row(const tn_item *it, void *arg) {
    (void)it, (void)arg;
    return 0;
}

/* Every cursor s can mint for its item list: page through with limit 1. */
static int mint_all(tn_session *s, char **out) {
    int n = 0;
    char *cur = NULL;
    for (;;) {
        char *next = NULL;
        int rc = tn_item_list(s, cur, 1, ignore_row, NULL, &next);
        if (rc != TN_OK) die("minting cursors", rc);
        if (!next) break;
        if (n == MAXCUR) abort();
        out[n++] = next;
        cur = next;
    }
    return n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/tn-fuzz-cursor.XXXXXX", tmp && *tmp ? tmp : P_tmpdir);
    if (!mkdtemp(dir)) abort();
    atexit(cleanup);
    char data_dir[4200];
    snprintf(data_dir, sizeof data_dir, "%s/data", dir);
    tn_options o;
    tn_options_init(&o);
    o.create = 1;
    o.synchronous = TN_SYNC_OFF; /* a scratch store: speed over durability */
    int rc = tn_open(data_dir, &o, &st);
    if (rc != TN_OK) die("tn_open", rc);
    tn_tenant a, b;
    if ((rc = tn_tenant_create(st, "tenant-a", &a)) != TN_OK) die("tenant a", rc);
    if ((rc = tn_tenant_create(st, "tenant-b", &b)) != TN_OK) die("tenant b", rc);
    if ((rc = tn_session_open(st, a.id, &sa)) != TN_OK) die("session a", rc);
    if ((rc = tn_session_open(st, b.id, &sb)) != TN_OK) die("session b", rc);
    if ((rc = tn_item_put(sa, "marker", "{\"owner\":\"A\"}", NULL)) != TN_OK) die("put", rc);
    if ((rc = tn_item_put(sb, "marker", "{\"owner\":\"B-SECRET\"}", NULL)) != TN_OK)
        die("put", rc);
    char id[32];
    for (int i = 0; i < NITEMS; i++) {
        snprintf(id, sizeof id, "a-%02d", i);
        if ((rc = tn_item_put(sa, id, "{\"owner\":\"A\"}", NULL)) != TN_OK) die("put", rc);
        snprintf(id, sizeof id, "b-only-%02d", i);
        if ((rc = tn_item_put(sb, id, "{\"owner\":\"B-SECRET\"}", NULL)) != TN_OK)
            die("put", rc);
    }
    nmint_a = mint_all(sa, minted_a);
    nmint_b = mint_all(sb, minted_b);
    if (nmint_a != NITEMS || nmint_b != NITEMS) abort(); /* 7 items, 1 per page */
    return 0;
}

static int check_row(const tn_item *it, void *arg) {
    int *rows = arg;
    (*rows)++;
    if (strstr(it->data, "B-SECRET") || strncmp(it->id, "b-only-", 7) == 0) {
        fprintf(stderr, "fuzz_cursor: tenant A's list returned B's row %s\n", it->id);
        abort();
    }
    return 0;
}

static int file_row(const tn_file *f, void *arg) {
    (void)arg;
    fprintf(stderr, "fuzz_cursor: tenant A has no files, yet one was listed: %s\n", f->name);
    abort();
}

static int minted(const char *c) {
    for (int i = 0; i < nmint_a; i++)
        if (strcmp(c, minted_a[i]) == 0) return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *cur;
    if (size > 0 && (data[0] & 1)) {
        /* A minted cursor with the rest of the input xor'ed into it. */
        int pick = size > 1 ? data[1] : 0;
        const char *base = (pick & 1) ? minted_b[(pick >> 1) % nmint_b]
                                      : minted_a[(pick >> 1) % nmint_a];
        size_t n = strlen(base);
        cur = malloc(n + 1);
        if (!cur) return 0;
        memcpy(cur, base, n + 1);
        for (size_t i = 2; i + 1 < size; i += 2) cur[data[i] % n] ^= (char)data[i + 1];
    } else {
        size_t n = size > 0 ? size - 1 : 0;
        cur = malloc(n + 1);
        if (!cur) return 0;
        if (n) memcpy(cur, data + 1, n);
        cur[n] = '\0';
    }
    int rows = 0;
    char *next = NULL;
    int rc = tn_item_list(sa, cur, 10, check_row, &rows, &next);
    if (rc == TN_OK && cur[0] != '\0' && !minted(cur)) {
        fprintf(stderr, "fuzz_cursor: accepted a cursor the store never minted: \"%.300s\"\n",
                cur);
        abort();
    }
    if (rc != TN_OK && (cur[0] == '\0' || minted(cur))) {
        fprintf(stderr, "fuzz_cursor: refused a minted cursor: %s\n", tn_errname(rc));
        abort();
    }
    if (rc != TN_OK && (rows != 0 || next)) {
        fprintf(stderr, "fuzz_cursor: a refused cursor still produced rows or a cursor\n");
        abort();
    }
    free(next);
    next = NULL;
    rc = tn_file_list(sa, cur, 10, file_row, NULL, &next);
    if (rc == TN_OK && cur[0] != '\0') {
        fprintf(stderr, "fuzz_cursor: a file list accepted the cursor \"%.300s\"\n", cur);
        abort();
    }
    free(next);
    free(cur);
    return 0;
}
