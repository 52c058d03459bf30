/*
 * test_remote.c - the remote conformance suite: what every backend of
 * remote.h must do, tested through the method table only.
 *
 * TN_REMOTE_SPEC names the remote (as TENANTRY_REMOTE does); unset, each
 * test gets the directory backend in its own fresh temp folder.  Every test
 * works in tenants of its own (fresh UUIDs) and asserts only about them, so
 * the same tests run against a shared remote (AWS through moto).  Backends
 * are registered in open_remote() only.
 *
 * Versions are realistic (the wall clock in ms << 16, 57 bits), so a backend
 * that keeps them as doubles loses the low bits and fails.  Expected values
 * are what the test wrote, never what the backend computed.
 */
#include "remote_fixture.h"

#include <pthread.h>
#include <sys/wait.h>

/* ---- conditional writes ------------------------------------------------------- */

TEST(remote_new_row_lands) {
    tn_remote *r = open_remote();
    tn_remote_conn *c = open_conn(r);
    char t[37];
    new_tenant(t);
    int64_t v = base_version() + 12345;
    tn_remote_row row = item_row(t, "order:17", v, "{\"qty\":3,\"note\":\"caf\\u00e9\"}");
    tn_remote_put o = put1(r, c, &row);
    ASSERT_INT_EQ(o.code, TN_OK);
    ASSERT_INT_EQ(version_of(r, c, &row), v);
    tn_remote_row never = item_row(t, "never-written", v, "{}");
    ASSERT_INT_EQ(version_of(r, c, &never), 0);

    got g = list_all(r, c, t);
    ASSERT_INT_EQ(g.n, 1);
    ASSERT_INT_EQ(g.refused, 0);
    ASSERT_STR_EQ(g.r[0].tenant, t);
    ASSERT_INT_EQ(g.r[0].kind, TN_REMOTE_ITEM);
    ASSERT_STR_EQ(g.r[0].key, "order:17");
    ASSERT_INT_EQ(g.r[0].version, v);
    ASSERT_INT_EQ(g.r[0].deleted, 0);
    ASSERT_INT_EQ(g.r[0].updated_at, row.updated_at);
    ASSERT(json_same(g.r[0].data, "{\"note\":\"café\",\"qty\":3}"));
    got_free(&g);
    close_all(r, c);
}

TEST(remote_older_or_equal_version_refused_with_the_held_one) {
    tn_remote *r = open_remote();
    tn_remote_conn *c = open_conn(r);
    char t[37];
    new_tenant(t);
    int64_t b = base_version();
    tn_remote_row ten = item_row(t, "k", b + 10, "{\"v\":\"ten\"}");
    ASSERT_INT_EQ(put1(r, c, &ten).code, TN_OK);

    /* Older: refused, and the answer names what the remote holds. */
    tn_remote_row five = item_row(t, "k", b + 5, "{\"v\":\"five\"}");
    tn_remote_put o = put1(r, c, &five);
    ASSERT_INT_EQ(o.code, TN_CONFLICT);
    ASSERT_INT_EQ(o.remote, b + 10);
    /* Equal (another writer's row with the same version): refused too. */
    tn_remote_row other = item_row(t, "k", b + 10, "{\"v\":\"other\"}");
    o = put1(r, c, &other);
    ASSERT_INT_EQ(o.code, TN_CONFLICT);
    ASSERT_INT_EQ(o.remote, b + 10);
    got g = list_all(r, c, t);
    ASSERT_INT_EQ(g.n, 1);
    ASSERT(json_same(g.r[0].data, "{\"v\":\"ten\"}"));
    got_free(&g);

    /* Newer by one unit in the 57th bit's range: replaces. */
    tn_remote_row eleven = item_row(t, "k", b + 11, "{\"v\":\"eleven\"}");
    ASSERT_INT_EQ(put1(r, c, &eleven).code, TN_OK);
    ASSERT_INT_EQ(version_of(r, c, &eleven), b + 11);
    g = list_all(r, c, t);
    ASSERT_INT_EQ(g.n, 1);
    ASSERT_INT_EQ(g.r[0].version, b + 11);
    ASSERT(json_same(g.r[0].data, "{\"v\":\"eleven\"}"));
    got_free(&g);
    close_all(r, c);
}

TEST(remote_batch_settles_every_row_on_its_own) {
    tn_remote *r = open_remote();
    tn_remote_conn *c = open_conn(r);
    char t1[37], t2[37];
    new_tenant(t1);
    new_tenant(t2);
    int64_t b = base_version();
    tn_remote_row pre[] = {item_row(t1, "a", b + 100, "1"), item_row(t2, "b", b + 100, "2")};
    put_all_ok(r, c, pre, 2);

    tn_remote_row rows[] = {
        item_row(t1, "a", b + 50, "\"older\""),   /* lost condition */
        item_row(t2, "b", b + 200, "\"newer\""),  /* wins */
        item_row(t1, "c", b + 1, "\"new\""),      /* new */
        item_row(t1, "bad key!", b + 1, "{}"),    /* not a key the remote can hold */
        item_row(t2, "d", b + 7, "\"new\""),      /* new, other tenant */
        item_row(t1, "a", b + 100, "\"equal\""),  /* equal: a replay */
    };
    /* Two different rows under one key in one call would be ambiguous; "a"
     * appears twice, so the batch goes in two calls when it must. */
    tn_remote_put out[6];
    for (int i = 0; i < 6; i++) out[i] = (tn_remote_put){-99, -99};
    int first = r->batch_rows >= 5 ? 5 : r->batch_rows;
    for (int i = 0; i < 5; i += first) r->m->put_rows(c, rows + i, 5 - i < first ? 5 - i : first, out + i);
    r->m->put_rows(c, rows + 5, 1, out + 5);

    ASSERT_INT_EQ(out[0].code, TN_CONFLICT);
    ASSERT_INT_EQ(out[0].remote, b + 100);
    ASSERT_INT_EQ(out[1].code, TN_OK);
    ASSERT_INT_EQ(out[2].code, TN_OK);
    ASSERT_INT_EQ(out[3].code, TN_INVALID);
    ASSERT_INT_EQ(out[4].code, TN_OK);
    ASSERT_INT_EQ(out[5].code, TN_CONFLICT);
    ASSERT_INT_EQ(out[5].remote, b + 100);

    int64_t ver[5] = {-99, -99, -99, -99, -99};
    tn_remote_row ask[] = {rows[0], rows[1], rows[2], rows[4], item_row(t2, "zz", 1, "1")};
    ASSERT_INT_EQ(r->m->versions(c, ask, 5, ver), TN_OK);
    ASSERT_INT_EQ(ver[0], b + 100);
    ASSERT_INT_EQ(ver[1], b + 200);
    ASSERT_INT_EQ(ver[2], b + 1);
    ASSERT_INT_EQ(ver[3], b + 7);
    ASSERT_INT_EQ(ver[4], 0);
    close_all(r, c);
}

TEST(remote_versions_of_a_hundred_rows) {
    tn_remote *r = open_remote();
    tn_remote_conn *c = open_conn(r);
    char t[37], ids[100][24];
    new_tenant(t);
    int64_t b = base_version();
    tn_remote_row rows[100];
    for (int i = 0; i < 100; i++) {
        snprintf(ids[i], sizeof ids[i], "id-%d", i);
        rows[i] = item_row(t, ids[i], b + i, "{}");
    }
    /* Every third row is written; the others are absent. */
    tn_remote_row some[34];
    int n = 0;
    for (int i = 0; i < 100; i += 3) some[n++] = rows[i];
    put_all_ok(r, c, some, n);
    int64_t ver[100];
    ASSERT_INT_EQ(r->m->versions(c, rows, 100, ver), TN_OK);
    for (int i = 0; i < 100; i++) ASSERT_INT_EQ(ver[i], i % 3 == 0 ? b + i : 0);
    close_all(r, c);
}

/* ---- keys ---------------------------------------------------------------------- */

TEST(remote_odd_and_long_keys) {
    tn_remote *r = open_remote();
    tn_remote_conn *c = open_conn(r);
    char t[37];
    new_tenant(t);
    /* The longest name the remote holds: 981 bytes, 2-byte characters. */
    char longest[TN__REMOTE_FILE_NAME_MAX + 1], longest_ascii[TN__REMOTE_FILE_NAME_MAX + 1],
        too_long[TN__REMOTE_FILE_NAME_MAX + 2];
    size_t ln = 5;
    memcpy(longest, "long/", 5);
    for (; ln + 2 <= TN__REMOTE_FILE_NAME_MAX; ln += 2) memcpy(longest + ln, "\xc3\xa9", 2);
    longest[ln] = '\0';
    ASSERT_INT_EQ(strlen(longest), 981);
    memset(longest_ascii, 'x', 981);
    longest_ascii[981] = '\0';
    memset(too_long, 'y', 982);
    too_long[982] = '\0';
    const char *names[] = {
        "a", "a/b", "a/b/c", "a+", "dir with spaces/file name.txt",
        "\xc3\xbc" "n\xc3\xaf" "c\xc3\xb8" "d\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe3\x83\x95.txt",
        ".hidden", "x/.y", "100%/%2F", "semi;colon&amp=\"quoted\"'s", "tab\x7e~", longest, longest_ascii,
    };
    int nn = (int)(sizeof names / sizeof names[0]);
    int64_t b = base_version();
    char sha[16][65];
    tn_remote_row rows[16];
    for (int i = 0; i < nn; i++) {
        char body[64];
        int bn = snprintf(body, sizeof body, "bytes of name %d", i);
        rows[i] = file_row(t, names[i], b + i, body, (size_t)bn, sha[i]);
        ASSERT_INT_EQ(r->m->put_object(c, &rows[i], body, (size_t)bn), TN_OK);
    }
    put_all_ok(r, c, rows, nn);
    const char *ids[] = {"order:17", "a.b_c-d:e", "Z", NULL};
    char id256[257];
    memset(id256, 'q', 256);
    id256[256] = '\0';
    ids[3] = id256;
    tn_remote_row items[4];
    for (int i = 0; i < 4; i++) items[i] = item_row(t, ids[i], b + 100 + i, "{\"i\":1}");
    put_all_ok(r, c, items, 4);

    /* Every object reads back as its own bytes: "a" and "a/b" are distinct. */
    for (int i = 0; i < nn; i++) {
        char path[4200], want[64];
        snprintf(path, sizeof path, "%s/obj-%d", tn_test_tmpdir(), i);
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        ASSERT(fd >= 0);
        ASSERT_INT_EQ(r->m->get_object(c, &rows[i], fd), TN_OK);
        close(fd);
        size_t len = 0;
        char *text = tn_test_slurp(path, &len);
        int wn = snprintf(want, sizeof want, "bytes of name %d", i);
        ASSERT_INT_EQ(len, wn);
        ASSERT_MEM_EQ(text, want, len);
        free(text);
    }
    got g = list_all(r, c, t);
    ASSERT_INT_EQ(g.n, nn + 4);
    ASSERT_INT_EQ(g.refused, 0);
    for (int i = 0; i < nn; i++) {
        const got_row *f = got_find(&g, TN_REMOTE_FILE, names[i]);
        if (!f) TN_FAIL_("file %d (%.40s...) not listed", i, names[i]);
        ASSERT_INT_EQ(f->version, b + i);
        ASSERT_STR_EQ(f->sha256, sha[i]);
    }
    for (int i = 0; i < 4; i++) {
        const got_row *f = got_find(&g, TN_REMOTE_ITEM, ids[i]);
        ASSERT(f && f->version == b + 100 + i);
    }
    got_free(&g);

    /* One byte more, or a name that could leave the tenant's prefix: refused
     * for rows and objects alike. */
    const char *bad[] = {too_long, "..", "a/../b", "/abs", "a//b", "back\\slash", "trail/", "ctl\x01"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char s[65];
        tn_remote_row f = file_row(t, bad[i], b, "x", 1, s);
        ASSERT_INT_EQ(put1(r, c, &f).code, TN_INVALID);
        ASSERT(r->m->put_object(c, &f, "x", 1) != TN_OK);
    }
    tn_remote_row bad_item = item_row(t, "no/slash", b, "{}");
    ASSERT_INT_EQ(put1(r, c, &bad_item).code, TN_INVALID);
    close_all(r, c);
}

TEST(remote_item_of_350_kb) {
    tn_remote *r = open_remote();
    tn_remote_conn *c = open_conn(r);
    char t[37];
    new_tenant(t);
    size_t n = 350 * 1000;
    char *data = malloc(n + 100);
    ASSERT(data);
    int h = snprintf(data, n + 100, "{\"u\":\"\xc3\xbc\xe6\x97\xa5\",\"n\":[1,2.5,-3],\"blob\":\"");
    for (size_t i = (size_t)h; i < n; i++) data[i] = (char)('a' + i % 26);
    memcpy(data + n, "\"}", 3);
    int64_t v = base_version();
    tn_remote_row row = item_row(t, "big", v, data);
    ASSERT_INT_EQ(put1(r, c, &row).code, TN_OK);
    got g = list_all(r, c, t);
    ASSERT_INT_EQ(g.n, 1);
    ASSERT(json_same(g.r[0].data, data));
    got_free(&g);
    char cursor[256] = "";
    drain(r, c, t, cursor, 10, &g);
    const got_row *f = got_find(&g, TN_REMOTE_ITEM, "big");
    ASSERT(f && f->version == v && json_same(f->data, data));
    got_free(&g);
    free(data);
    close_all(r, c);
}

/* ---- tombstones ------------------------------------------------------------- */

TEST(remote_tombstones_hold_their_version) {
    tn_remote *r = open_remote();
    tn_remote_conn *c = open_conn(r);
    char t[37], sha[65];
    new_tenant(t);
    int64_t b = base_version();
    tn_remote_row live = item_row(t, "doc", b + 1, "{\"x\":1}");
    tn_remote_row file = file_row(t, "f.txt", b + 1, "hello", 5, sha);
    ASSERT_INT_EQ(put1(r, c, &live).code, TN_OK);
    ASSERT_INT_EQ(put1(r, c, &file).code, TN_OK);
    tn_remote_row dead = tomb_row(t, TN_REMOTE_ITEM, "doc", b + 2);
    tn_remote_row fdead = tomb_row(t, TN_REMOTE_FILE, "f.txt", b + 2);
    ASSERT_INT_EQ(put1(r, c, &dead).code, TN_OK);
    ASSERT_INT_EQ(put1(r, c, &fdead).code, TN_OK);

    got g = list_all(r, c, t);
    ASSERT_INT_EQ(g.n, 2);
    const got_row *d = got_find(&g, TN_REMOTE_ITEM, "doc");
    ASSERT(d && d->deleted && d->version == b + 2 && d->data == NULL);
    ASSERT_INT_EQ(d->expires_at, dead.expires_at);
    const got_row *fd = got_find(&g, TN_REMOTE_FILE, "f.txt");
    ASSERT(fd && fd->deleted && fd->version == b + 2);
    got_free(&g);

    /* A late live row older than the tombstone does not resurrect it. */
    tn_remote_put o = put1(r, c, &live);
    ASSERT_INT_EQ(o.code, TN_CONFLICT);
    ASSERT_INT_EQ(o.remote, b + 2);
    /* A newer one does. */
    tn_remote_row again = item_row(t, "doc", b + 3, "{\"x\":3}");
    ASSERT_INT_EQ(put1(r, c, &again).code, TN_OK);
    g = list_all(r, c, t);
    d = got_find(&g, TN_REMOTE_ITEM, "doc");
    ASSERT(d && !d->deleted && d->version == b + 3 && json_same(d->data, "{\"x\":3}"));
    got_free(&g);
    close_all(r, c);
}

/* ---- objects ------------------------------------------------------------------ */

TEST(remote_multipart_resumes_across_a_restart) {
    tn_remote *r = open_remote();
    tn_remote_conn *c = open_conn(r);
    char t[37], sha[65], id[256] = "", etags[3][72];
    new_tenant(t);
    size_t sizes[3] = {5 << 20, 5 << 20, 1234}, total = sizes[0] + sizes[1] + sizes[2];
    unsigned char *all = random_bytes(total);
    const unsigned char *part[3] = {all, all + sizes[0], all + sizes[0] + sizes[1]};
    tn_remote_row f = file_row(t, "big/video.bin", base_version(), all, total, sha);
    memset(etags, 0, sizeof etags);

    ASSERT_INT_EQ(r->m->mp_create(c, &f, id, sizeof id), TN_OK);
    ASSERT(id[0]);
    ASSERT_INT_EQ(r->m->mp_part(c, &f, id, 1, part[0], sizes[0], etags[0], sizeof etags[0]), TN_OK);
    ASSERT_INT_EQ(r->m->mp_part(c, &f, id, 3, part[2], sizes[2], etags[2], sizeof etags[2]), TN_OK);
    /* A restart: everything in memory but the id and the etags is gone. */
    close_all(r, c);
    r = open_remote();
    c = open_conn(r);
    ASSERT_INT_EQ(r->m->mp_part(c, &f, id, 2, part[1], sizes[1], etags[1], sizeof etags[1]), TN_OK);
    ASSERT(etags[0][0] && etags[1][0] && etags[2][0]);
    ASSERT(strcmp(etags[0], etags[1]) != 0);
    ASSERT_INT_EQ(r->m->mp_complete(c, &f, id, (const char (*)[72])etags, 3), TN_OK);

    size_t len = 0;
    int rc;
    char *back = fetch(r, c, &f, &len, &rc);
    ASSERT_INT_EQ(rc, TN_OK);
    ASSERT_INT_EQ(len, total);
    ASSERT_MEM_EQ(back, all, total);
    free(back);

    /* A wrong etag, or a short part before the last: refused, the object
     * stays as it was. */
    char id2[256] = "", e2[2][72];
    memset(e2, 0, sizeof e2);
    unsigned char *other = random_bytes(sizes[0]);
    ASSERT_INT_EQ(r->m->mp_create(c, &f, id2, sizeof id2), TN_OK);
    ASSERT(strcmp(id, id2) != 0);
    ASSERT_INT_EQ(r->m->mp_part(c, &f, id2, 1, other, sizes[0], e2[0], sizeof e2[0]), TN_OK);
    char wrong[1][72];
    snprintf(wrong[0], sizeof wrong[0], "%s", etags[0]); /* part 1 of the first upload */
    ASSERT(r->m->mp_complete(c, &f, id2, (const char (*)[72])wrong, 1) != TN_OK);
    ASSERT_INT_EQ(r->m->mp_part(c, &f, id2, 1, other, 100, e2[0], sizeof e2[0]), TN_OK);
    ASSERT_INT_EQ(r->m->mp_part(c, &f, id2, 2, other, 100, e2[1], sizeof e2[1]), TN_OK);
    ASSERT(r->m->mp_complete(c, &f, id2, (const char (*)[72])e2, 2) != TN_OK);

    /* abort_all drops every unfinished upload of the object. */
    char id3[256] = "", e3[1][72];
    ASSERT_INT_EQ(r->m->mp_create(c, &f, id3, sizeof id3), TN_OK);
    ASSERT_INT_EQ(r->m->mp_part(c, &f, id3, 1, other, 10, e3[0], sizeof e3[0]), TN_OK);
    ASSERT_INT_EQ(r->m->mp_abort_all(c, &f), TN_OK);
    ASSERT(r->m->mp_complete(c, &f, id3, (const char (*)[72])e3, 1) != TN_OK);
    ASSERT(r->m->mp_part(c, &f, id2, 3, other, 10, e3[0], sizeof e3[0]) != TN_OK);
    /* And abort drops one. */
    char id4[256] = "", e4[1][72];
    ASSERT_INT_EQ(r->m->mp_create(c, &f, id4, sizeof id4), TN_OK);
    ASSERT_INT_EQ(r->m->mp_part(c, &f, id4, 1, other, 10, e4[0], sizeof e4[0]), TN_OK);
    ASSERT_INT_EQ(r->m->mp_abort(c, &f, id4), TN_OK);
    ASSERT(r->m->mp_complete(c, &f, id4, (const char (*)[72])e4, 1) != TN_OK);

    back = fetch(r, c, &f, &len, &rc);
    ASSERT_INT_EQ(rc, TN_OK);
    ASSERT_INT_EQ(len, total);
    ASSERT_MEM_EQ(back, all, total);
    free(back);
    free(other);
    free(all);
    close_all(r, c);
}

TEST(remote_get_object_writes_from_the_current_offset) {
    tn_remote *r = open_remote();
    tn_remote_conn *c = open_conn(r);
    char t[37], sha[65], esha[65], path[4200];
    new_tenant(t);
    size_t n = (3 << 20) + 17;
    unsigned char *bytes = random_bytes(n);
    tn_remote_row f = file_row(t, "photos/cat.jpg", base_version(), bytes, n, sha);
    ASSERT_INT_EQ(r->m->put_object(c, &f, bytes, n), TN_OK);
    snprintf(path, sizeof path, "%s/out", tn_test_tmpdir());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ASSERT(fd >= 0);
    ASSERT_INT_EQ(write(fd, "HDR", 3), 3);
    ASSERT_INT_EQ(r->m->get_object(c, &f, fd), TN_OK);
    close(fd);
    size_t len = 0;
    char *back = tn_test_slurp(path, &len);
    ASSERT_INT_EQ(len, n + 3);
    ASSERT_MEM_EQ(back, "HDR", 3);
    ASSERT_MEM_EQ(back + 3, bytes, n);
    free(back);

    /* Bytes that do not match the row's SHA-256 are not stored. */
    tn_remote_row liar = f;
    liar.key = "photos/liar.jpg";
    ASSERT(r->m->put_object(c, &liar, "not the bytes", 13) != TN_OK);
    int rc;
    back = fetch(r, c, &liar, &len, &rc);
    ASSERT_INT_EQ(rc, TN_NOTFOUND);
    free(back);

    /* An empty object is an object. */
    tn_remote_row empty = file_row(t, "empty", base_version(), "", 0, esha);
    ASSERT_INT_EQ(r->m->put_object(c, &empty, "", 0), TN_OK);
    back = fetch(r, c, &empty, &len, &rc);
    ASSERT_INT_EQ(rc, TN_OK);
    ASSERT_INT_EQ(len, 0);
    free(back);
    free(bytes);
    close_all(r, c);
}

/* ---- replays and deletes ---------------------------------------------------------- */

TEST(remote_replays_are_idempotent) {
    tn_remote *r = open_remote();
    tn_remote_conn *c = open_conn(r);
    char t[37], sha[65], ids[5][16];
    new_tenant(t);
    int64_t b = base_version();
    tn_remote_row row = item_row(t, "same", b, "{\"n\":1}");
    ASSERT_INT_EQ(put1(r, c, &row).code, TN_OK);
    tn_remote_put o = put1(r, c, &row);
    ASSERT_INT_EQ(o.code, TN_CONFLICT);
    ASSERT_INT_EQ(o.remote, b); /* equal: the engine's own write, acknowledged late */

    tn_remote_row batch[5];
    for (int i = 0; i < 5; i++) {
        snprintf(ids[i], sizeof ids[i], "r%d", i);
        batch[i] = item_row(t, ids[i], b + i, "[]");
    }
    put_all_ok(r, c, batch, 5);
    tn_remote_put out[5];
    for (int i = 0; i < 5; i += r->batch_rows)
        r->m->put_rows(c, batch + i, 5 - i < r->batch_rows ? 5 - i : r->batch_rows, out + i);
    for (int i = 0; i < 5; i++) {
        ASSERT_INT_EQ(out[i].code, TN_CONFLICT);
        ASSERT_INT_EQ(out[i].remote, b + i);
    }

    tn_remote_row f = file_row(t, "twice.txt", b, "twice", 5, sha);
    ASSERT_INT_EQ(r->m->put_object(c, &f, "twice", 5), TN_OK);
    ASSERT_INT_EQ(r->m->put_object(c, &f, "twice", 5), TN_OK);
    size_t len;
    int rc;
    char *back = fetch(r, c, &f, &len, &rc);
    ASSERT_INT_EQ(rc, TN_OK);
    ASSERT_INT_EQ(len, 5);
    ASSERT_MEM_EQ(back, "twice", 5);
    free(back);
    got g = list_all(r, c, t);
    ASSERT_INT_EQ(g.n, 6);
    got_free(&g);
    close_all(r, c);
}

TEST(remote_deletes) {
    tn_remote *r = open_remote();
    tn_remote_conn *c = open_conn(r);
    char t[37], sa[65], sab[65], sn[65];
    new_tenant(t);
    int64_t b = base_version();
    tn_remote_row a = file_row(t, "a", b, "A", 1, sa);
    tn_remote_row ab = file_row(t, "a/b", b, "AB", 2, sab);
    ASSERT_INT_EQ(r->m->put_object(c, &a, "A", 1), TN_OK);
    ASSERT_INT_EQ(r->m->put_object(c, &ab, "AB", 2), TN_OK);
    ASSERT_INT_EQ(r->m->delete_object(c, &a), TN_OK);
    ASSERT_INT_EQ(r->m->delete_object(c, &a), TN_OK); /* already gone */
    tn_remote_row never = file_row(t, "never/there", b, "", 0, sn);
    ASSERT_INT_EQ(r->m->delete_object(c, &never), TN_OK);
    size_t len;
    int rc;
    char *back = fetch(r, c, &a, &len, &rc);
    ASSERT_INT_EQ(rc, TN_NOTFOUND);
    free(back);
    back = fetch(r, c, &ab, &len, &rc); /* "a/b" is not under "a" */
    ASSERT_INT_EQ(rc, TN_OK);
    ASSERT(len == 2 && memcmp(back, "AB", 2) == 0);
    free(back);

    tn_remote_row row = item_row(t, "gone", b + 10, "{}");
    tn_remote_row keep = item_row(t, "kept", b + 10, "{}");
    put_all_ok(r, c, (tn_remote_row[]){row, keep}, 2);
    ASSERT_INT_EQ(r->m->delete_row(c, &row), TN_OK);
    ASSERT_INT_EQ(r->m->delete_row(c, &row), TN_OK);
    ASSERT_INT_EQ(version_of(r, c, &row), 0);
    got g = list_all(r, c, t);
    ASSERT_INT_EQ(g.n, 1);
    ASSERT_STR_EQ(g.r[0].key, "kept");
    got_free(&g);
    /* A purged row holds no version: any write lands again. */
    tn_remote_row older = item_row(t, "gone", b + 1, "{}");
    ASSERT_INT_EQ(put1(r, c, &older).code, TN_OK);
    ASSERT_INT_EQ(version_of(r, c, &older), b + 1);
    close_all(r, c);
}

/* ---- two writers ---------------------------------------------------------------- */

#define RACE_KEYS 24
#define RACE_ROUNDS 6

/* Writer w writes every key with versions b + 2*j + w (j < RACE_ROUNDS), in
 * a shuffled order, batched.  Returns how many answers broke the contract:
 * an error, or a refusal naming a version below the row's own (the writers'
 * versions never tie, and no writer replays its own). */
static int race_writer(tn_remote *r, tn_remote_conn *c, const char *tenant, int64_t b, int w) {
    enum { N = RACE_KEYS * RACE_ROUNDS };
    char ids[RACE_KEYS][16], data[N][64];
    int order[N], bad = 0;
    for (int k = 0; k < RACE_KEYS; k++) snprintf(ids[k], sizeof ids[k], "k%d", k);
    for (int i = 0; i < N; i++) order[i] = i;
    unsigned seed = (unsigned)now_ms() ^ (unsigned)(w * 7919 + getpid() * 31);
    for (int i = N - 1; i > 0; i--) {
        int j = (int)(rand_r(&seed) % (unsigned)(i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    int cap = r->batch_rows < 8 ? r->batch_rows : 8;
    tn_remote_row rows[8];
    tn_remote_put out[8];
    int m = 0;
    for (int i = 0; i <= N; i++) {
        int key = i < N ? order[i] % RACE_KEYS : -1;
        int dup = 0;
        for (int y = 0; y < m && key >= 0; y++) dup |= rows[y].key == ids[key];
        /* A call takes one key at most once. */
        if (m > 0 && (i == N || dup || m == cap)) {
            r->m->put_rows(c, rows, m, out);
            for (int y = 0; y < m; y++) {
                if (out[y].code == TN_OK) continue;
                if (out[y].code == TN_CONFLICT && out[y].remote > rows[y].version) continue;
                fprintf(stderr, "    writer %d: row v=%lld answered %s remote=%lld\n", w,
                        (long long)rows[y].version, tn_errname(out[y].code), (long long)out[y].remote);
                bad++;
            }
            m = 0;
        }
        if (i == N) break;
        int64_t v = b + 2 * (order[i] / RACE_KEYS) + w;
        snprintf(data[i], sizeof data[i], "{\"v\":\"%lld\",\"w\":%d}", (long long)v, w);
        rows[m++] = item_row(tenant, ids[key], v, data[i]);
    }
    return bad;
}

/* The highest version won every key, with its own data. */
static void race_check(tn_remote *r, tn_remote_conn *c, const char *tenant, int64_t b) {
    got g = list_all(r, c, tenant);
    ASSERT_INT_EQ(g.n, RACE_KEYS);
    ASSERT_INT_EQ(g.refused, 0);
    int64_t top = b + 2 * (RACE_ROUNDS - 1) + 1;
    char want[64];
    snprintf(want, sizeof want, "{\"v\":\"%lld\",\"w\":1}", (long long)top);
    for (int i = 0; i < g.n; i++) {
        if (g.r[i].version != top) TN_FAIL_("key %s holds %lld, not %lld", g.r[i].key,
                                            (long long)g.r[i].version, (long long)top);
        ASSERT(json_same(g.r[i].data, want));
    }
    got_free(&g);
}

TEST(remote_two_processes_write_the_same_keys) {
    char t[37];
    new_tenant(t);
    int64_t b = base_version();
    remote_spec(); /* the temp folder exists before the fork, for both */
    pid_t pid[2];
    for (int w = 0; w < 2; w++) {
        pid[w] = fork();
        ASSERT(pid[w] >= 0);
        if (pid[w] == 0) {
            tn_remote *r = open_remote();
            tn_remote_conn *c = open_conn(r);
            int bad = race_writer(r, c, t, b, w);
            close_all(r, c);
            _exit(bad ? 1 : 0); /* _exit: the test's atexit cleanup is the parent's */
        }
    }
    for (int w = 0; w < 2; w++) {
        int st = 0;
        ASSERT(waitpid(pid[w], &st, 0) == pid[w]);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) TN_FAIL_("writer %d failed (status %d)", w, st);
    }
    tn_remote *r = open_remote();
    tn_remote_conn *c = open_conn(r);
    race_check(r, c, t, b);
    close_all(r, c);
}

typedef struct race_arg {
    tn_remote *r;
    const char *tenant;
    int64_t b;
    int w, bad;
} race_arg;

static void *race_thread(void *p) {
    race_arg *a = p;
    tn_remote_conn *c = NULL;
    if (a->r->m->conn_open(a->r, 0, &c) != TN_OK) {
        a->bad = 1;
        return NULL;
    }
    a->bad = race_writer(a->r, c, a->tenant, a->b, a->w);
    a->r->m->conn_close(c);
    return NULL;
}

TEST(remote_two_threads_write_the_same_keys) {
    tn_remote *r = open_remote();
    char t[37];
    new_tenant(t);
    race_arg a[2] = {{r, t, base_version(), 0, 0}, {r, t, 0, 1, 0}};
    a[1].b = a[0].b;
    pthread_t th[2];
    for (int w = 0; w < 2; w++) ASSERT(pthread_create(&th[w], NULL, race_thread, &a[w]) == 0);
    for (int w = 0; w < 2; w++) ASSERT(pthread_join(th[w], NULL) == 0);
    ASSERT_INT_EQ(a[0].bad, 0);
    ASSERT_INT_EQ(a[1].bad, 0);
    tn_remote_conn *c = open_conn(r);
    race_check(r, c, t, a[0].b);
    close_all(r, c);
}

/* ---- the change feed (version 2) ---------------------------------------------------- */

TEST(remote_feed_returns_what_came_after_the_cursor) {
    tn_remote *r = open_remote();
    tn_remote_conn *c = open_conn(r);
    char t[37], other[37], cursor[256] = "";
    new_tenant(t);
    new_tenant(other);
    int64_t b = base_version();
    got g = {0};
    drain(r, c, t, cursor, 100, &g);
    ASSERT_INT_EQ(g.n, 0);
    got_free(&g);

    put_all_ok(r, c, (tn_remote_row[]){item_row(t, "A", b + 1, "1"), item_row(t, "B", b + 1, "2"),
                                       item_row(other, "X", b + 1, "3")}, 3);
    drain(r, c, t, cursor, 100, &g);
    ASSERT_INT_EQ(g.n, 2);
    ASSERT(got_find(&g, TN_REMOTE_ITEM, "A") && got_find(&g, TN_REMOTE_ITEM, "B"));
    ASSERT(!got_find(&g, TN_REMOTE_ITEM, "X"));
    got_free(&g);

    /* Nothing new: nothing that was not seen before (a backend may read an
     * overlap again), and the cursor still resumes. */
    drain(r, c, t, cursor, 100, &g);
    for (int i = 0; i < g.n; i++)
        ASSERT((strcmp(g.r[i].key, "A") == 0 || strcmp(g.r[i].key, "B") == 0) &&
               g.r[i].version == b + 1);
    got_free(&g);

    put_all_ok(r, c, (tn_remote_row[]){item_row(t, "C", b + 1, "3"), item_row(t, "A", b + 2, "4")}, 2);
    tn_remote_row dead = tomb_row(t, TN_REMOTE_ITEM, "B", b + 3);
    ASSERT_INT_EQ(put1(r, c, &dead).code, TN_OK);
    drain(r, c, t, cursor, 100, &g);
    const got_row *a = got_find(&g, TN_REMOTE_ITEM, "A"), *bb = got_find(&g, TN_REMOTE_ITEM, "B"),
                  *cc = got_find(&g, TN_REMOTE_ITEM, "C");
    ASSERT(a && a->version == b + 2 && json_same(a->data, "4"));
    ASSERT(bb && bb->deleted && bb->version == b + 3);
    ASSERT(cc && cc->version == b + 1);
    got_free(&g);

    /* A page of one at a time from the top still brings every row. */
    char top[256] = "";
    drain(r, c, t, top, 1, &g);
    ASSERT(got_find(&g, TN_REMOTE_ITEM, "A") && got_find(&g, TN_REMOTE_ITEM, "B") &&
           got_find(&g, TN_REMOTE_ITEM, "C"));
    ASSERT(g.pages >= 3); /* a page a row: max was 1 */
    got_free(&g);
    close_all(r, c);
}

TEST(remote_feed_every_write_appears_after_its_cursor) {
    tn_remote *r = open_remote();
    tn_remote_conn *c = open_conn(r);
    char t[37], cursor[256] = "", ids[4][4] = {"p", "q", "r", "s"};
    new_tenant(t);
    int64_t b = base_version();
    for (int i = 0; i < 24; i++) {
        got g = {0};
        drain(r, c, t, cursor, 50, &g); /* to the end: the cursor the write comes after */
        got_free(&g);
        char before[256];
        snprintf(before, sizeof before, "%s", cursor);
        tn_remote_row row = item_row(t, ids[i % 4], b + i, "{}");
        ASSERT_INT_EQ(put1(r, c, &row).code, TN_OK);
        drain(r, c, t, cursor, 50, &g);
        const got_row *f = got_find(&g, TN_REMOTE_ITEM, ids[i % 4]);
        if (!f || f->version < b + i) TN_FAIL_("write %d is not after its cursor", i);
        got_free(&g);
        /* The cursor from before the write still finds it. */
        drain(r, c, t, before, 50, &g);
        ASSERT(got_find(&g, TN_REMOTE_ITEM, ids[i % 4]));
        got_free(&g);
    }
    close_all(r, c);
}

#define FEED_WRITERS 2
#define FEED_KEYS 150

TEST(remote_feed_skips_nothing_with_two_writers) {
    char t[37];
    new_tenant(t);
    int64_t b = base_version();
    remote_spec();
    pid_t pid[FEED_WRITERS];
    for (int w = 0; w < FEED_WRITERS; w++) {
        pid[w] = fork();
        ASSERT(pid[w] >= 0);
        if (pid[w] == 0) {
            tn_remote *r = open_remote();
            tn_remote_conn *c = open_conn(r);
            char ids[FEED_KEYS][32];
            tn_remote_row rows[FEED_KEYS];
            for (int i = 0; i < FEED_KEYS; i++) {
                snprintf(ids[i], sizeof ids[i], "w%d-%d", w, i);
                rows[i] = item_row(t, ids[i], b + i, "{}");
            }
            int bad = 0;
            /* Small batches, so the two writers' lines interleave. */
            for (int i = 0; i < FEED_KEYS; i += 3) {
                tn_remote_put out[3];
                int m = FEED_KEYS - i < 3 ? FEED_KEYS - i : 3;
                r->m->put_rows(c, rows + i, m, out);
                for (int k = 0; k < m; k++) bad += out[k].code != TN_OK;
            }
            close_all(r, c);
            _exit(bad ? 1 : 0);
        }
    }
    /* Read while they write, then to the end once both are done. */
    tn_remote *r = open_remote();
    tn_remote_conn *c = open_conn(r);
    char cursor[256] = "";
    got g = {0};
    int running = FEED_WRITERS, polls = 0;
    int64_t deadline = now_ms() + 60000;
    while (running > 0 && now_ms() < deadline) {
        drain(r, c, t, cursor, 7, &g);
        polls++;
        for (int w = 0; w < FEED_WRITERS; w++) {
            int st;
            if (pid[w] > 0 && waitpid(pid[w], &st, WNOHANG) == pid[w]) {
                if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) TN_FAIL_("writer %d failed", w);
                pid[w] = 0;
                running--;
            }
        }
    }
    ASSERT_INT_EQ(running, 0);
    drain(r, c, t, cursor, 7, &g);
    for (int w = 0; w < FEED_WRITERS; w++)
        for (int i = 0; i < FEED_KEYS; i++) {
            char id[32];
            snprintf(id, sizeof id, "w%d-%d", w, i);
            const got_row *f = got_find(&g, TN_REMOTE_ITEM, id);
            if (!f || f->version != b + i) TN_FAIL_("the feed skipped %s (after %d polls)", id, polls);
        }
    ASSERT_INT_EQ(g.refused, 0);
    got_free(&g);
    close_all(r, c);
}

/* ---- listing and tenants --------------------------------------------------------------- */

TEST(remote_list_pages_through_every_row) {
    tn_remote *r = open_remote();
    tn_remote_conn *c = open_conn(r);
    char t[37], u[37];
    new_tenant(t);
    new_tenant(u);
    enum { N = 1100 };
    int64_t b = base_version();
    /* 2 KB a row, 2.2 MB in all: more than a page of a DynamoDB Query (1 MB)
     * and of the directory backend (1000 rows). */
    char *data = malloc(2100);
    ASSERT(data);
    memset(data, 'd', 2100);
    memcpy(data, "\"", 1);
    memcpy(data + 2000, "\"", 2);
    static char ids[N][24];
    static tn_remote_row rows[N];
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "row-%04d", i);
        rows[i] = i % 10 == 3 ? tomb_row(t, TN_REMOTE_ITEM, ids[i], b + i) : item_row(t, ids[i], b + i, data);
    }
    put_all_ok(r, c, rows, N);
    tn_remote_row others[5];
    for (int i = 0; i < 5; i++) others[i] = item_row(u, ids[i], b, "{}");
    put_all_ok(r, c, others, 5);

    got g = list_all(r, c, t);
    ASSERT_INT_EQ(g.n, N);
    ASSERT_INT_EQ(g.refused, 0);
    ASSERT(g.pages > 1);
    char *seen = calloc(N, 1);
    ASSERT(seen);
    for (int i = 0; i < g.n; i++) {
        int k = -1;
        ASSERT_STR_EQ(g.r[i].tenant, t);
        ASSERT(sscanf(g.r[i].key, "row-%d", &k) == 1 && k >= 0 && k < N);
        if (seen[k]) TN_FAIL_("%s listed twice", g.r[i].key);
        seen[k] = 1;
        ASSERT_INT_EQ(g.r[i].version, b + k);
        ASSERT_INT_EQ(g.r[i].deleted, k % 10 == 3);
        if (k % 10 != 3) ASSERT_STR_EQ(g.r[i].data, data);
    }
    free(seen);
    got_free(&g);
    g = list_all(r, c, u);
    ASSERT_INT_EQ(g.n, 5);
    got_free(&g);
    char empty[37];
    new_tenant(empty);
    g = list_all(r, c, empty);
    ASSERT_INT_EQ(g.n, 0);
    got_free(&g);
    free(data);
    close_all(r, c);
}

#define TENANTS 120 /* more than one page of the directory backend's (100) */

TEST(remote_tenants_lists_the_tenant_rows) {
    tn_remote *r = open_remote();
    tn_remote_conn *c = open_conn(r);
    static char t[TENANTS][37], data[TENANTS][96];
    static tn_remote_row rows[TENANTS];
    char bare[37];
    int64_t b = base_version();
    for (int i = 0; i < TENANTS; i++) {
        new_tenant(t[i]);
        snprintf(data[i], sizeof data[i], "{\"name\":\"tenant-%d\",\"settings\":{\"quota\":%d}}", i, i);
        rows[i] = item_row(t[i], "", b + i, data[i]);
        rows[i].kind = TN_REMOTE_TENANT;
    }
    put_all_ok(r, c, rows, TENANTS);
    new_tenant(bare); /* items but no tenant row: not in the list */
    tn_remote_row it = item_row(bare, "x", b, "{}");
    ASSERT_INT_EQ(put1(r, c, &it).code, TN_OK);

    for (int round = 0; round < 2; round++) {
        int found[TENANTS] = {0};
        char token[1024] = "";
        int pages = 0;
        do {
            tn_remote_page p = {0};
            ASSERT_INT_EQ(r->m->tenants(c, token, &p), TN_OK);
            ASSERT(++pages < 100000);
            for (int i = 0; i < p.n; i++) {
                ASSERT_INT_EQ(p.rows[i].kind, TN_REMOTE_TENANT);
                ASSERT(strcmp(p.rows[i].tenant, bare) != 0);
                for (int k = 0; k < TENANTS; k++) {
                    if (strcmp(p.rows[i].tenant, t[k]) != 0) continue;
                    if (found[k]++) TN_FAIL_("tenant %d listed twice", k);
                    ASSERT_STR_EQ(p.rows[i].key, "");
                    ASSERT_INT_EQ(p.rows[i].version, b + k);
                    ASSERT(json_same(p.rows[i].data, data[k]));
                }
            }
            snprintf(token, sizeof token, "%s", p.next);
            tn_remote_page_free(&p);
        } while (token[0]);
        for (int k = 0; k < TENANTS; k++)
            if (found[k] != (round == 1 && k == 0 ? 0 : 1)) /* tenant 0 deleted after round 0 */
                TN_FAIL_("round %d: tenant %d listed %d times", round, k, found[k]);
        ASSERT_INT_EQ(r->m->delete_row(c, &rows[0]), TN_OK);
    }
    close_all(r, c);
}
