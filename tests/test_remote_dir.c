/*
 * test_remote_dir.c - what only the directory backend can be asked: its
 * layout on disk (names written out by hand), hostile files planted in the
 * tree, a writer killed mid-write, init's refusals, the tenant lock, and the
 * bandwidth cap.  The conformance suite (test_remote.c) covers the rest.
 */
#include "remote_fixture.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>

/* The directory remote at <tmp>/<name>, created and initialised. */
static tn_remote *dir_remote(const char *name, char root[4200]) {
    tn_remote *r = NULL;
    char err[256] = "";
    const char *what = "";
    snprintf(root, 4200, "%s/%s", tn_test_tmpdir(), name);
    ASSERT(mkdir(root, 0755) == 0 || errno == EEXIST);
    int rc = tn_remote_dir_open(root, &r, err, sizeof err);
    if (rc != TN_OK) TN_FAIL_("open: %s", err);
    if ((rc = r->m->init(r, &what)) != TN_OK) TN_FAIL_("init: %s (%s)", what, tn_errname(rc));
    return r;
}

static int exists(const char *root, const char *rel) {
    char p[8192];
    struct stat st;
    ASSERT(snprintf(p, sizeof p, "%s/%s", root, rel) < (int)sizeof p);
    return lstat(p, &st) == 0;
}

static void plant(const char *root, const char *rel, const char *text, size_t n) {
    char p[8192];
    ASSERT(snprintf(p, sizeof p, "%s/%s", root, rel) < (int)sizeof p);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT(fd >= 0);
    ASSERT(write(fd, text, n) == (ssize_t)n);
    close(fd);
}

static void append(const char *root, const char *rel, const char *text) {
    char p[8192];
    ASSERT(snprintf(p, sizeof p, "%s/%s", root, rel) < (int)sizeof p);
    int fd = open(p, O_WRONLY | O_APPEND);
    ASSERT(fd >= 0);
    ASSERT(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
}

/* SHA-256 of sort keys, computed outside tenantry. */
#define H_ITEM_X "6fa1d2df6690156f699d6498158e98d3d7b3f9ac3c2f6e5ff3d3515c3e00d54a"
#define H_TENANT "81376011d0e5ec31353689a29def6c4d9aa6b2935f3c170f05ff3689c513b57b"
#define H_ITEM_ZZZ "f977c382c6acea0e8bb1a387c4576324e9ae857f865b7f88c5e68c310a929634"
#define H_ITEM_JUNK "e4541b03a659c9c8504c6bdb14e350cf37a5c027ca52ea8570bfa2a62f30552c"
#define H_ITEM_A "e35c3e1f3bfbeca1019fc65d8993ea633606353dc874bbc9aacbfee4784d0886"

TEST(dir_layout_on_disk) {
    char root[4200], t[37], rel[8192], sha[65];
    tn_remote *r = dir_remote("nas", root);
    tn_remote_conn *c = open_conn(r);
    new_tenant(t);
    size_t n;
    char *format = NULL;
    snprintf(rel, sizeof rel, "%s/FORMAT", root);
    ASSERT((format = tn_test_slurp(rel, &n)) != NULL);
    ASSERT_STR_EQ(format, "tenantry directory remote 1\n");
    free(format);

    int64_t v = 123456789012345678LL;
    tn_remote_row row = item_row(t, "x", v, "{\"a\":1}");
    ASSERT_INT_EQ(put1(r, c, &row).code, TN_OK);
    snprintf(rel, sizeof rel, "%s/tenants/%s/rows/" H_ITEM_X ".json", root, t);
    char *text = tn_test_slurp(rel, &n);
    ASSERT(text);
    cJSON *j = cJSON_Parse(text);
    char pk[64];
    snprintf(pk, sizeof pk, "TENANT#%s", t);
    ASSERT_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(j, "pk")), pk);
    ASSERT_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(j, "sk")), "ITEM#x");
    ASSERT_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(j, "version")), "123456789012345678");
    ASSERT_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(j, "data")), "{\"a\":1}");
    cJSON_Delete(j);
    free(text);

    /* The feed: a header, then one line per accepted write. */
    snprintf(rel, sizeof rel, "%s/tenants/%s/feed", root, t);
    text = tn_test_slurp(rel, &n);
    ASSERT(text && n == 44 + strlen("{\"sk\":\"ITEM#x\",\"version\":\"123456789012345678\"}\n"));
    ASSERT_MEM_EQ(text, "{\"feed\":\"", 9);
    ASSERT_STR_EQ(text + 44, "{\"sk\":\"ITEM#x\",\"version\":\"123456789012345678\"}\n");
    free(text);
    ASSERT(exists(root, "tenants") && exists(root, "objects") && exists(root, "uploads"));

    tn_remote_row tr = item_row(t, "", v, "{\"name\":\"n\",\"settings\":{}}");
    tr.kind = TN_REMOTE_TENANT;
    ASSERT_INT_EQ(put1(r, c, &tr).code, TN_OK);
    snprintf(rel, sizeof rel, "tenants/%s/rows/" H_TENANT ".json", t);
    ASSERT(exists(root, rel));

    /* Objects: encoded names; "a" and "a/b" side by side. */
    const char *names[] = {"a", "a/b", ".hidden", "x/.y", "a+", "\xc3\xa9t\xc3\xa9.png"};
    const char *files[] = {"a", "a%2Fb", "%2Ehidden", "x%2F.y", "a%2B", "%C3%A9t%C3%A9.png"};
    for (int i = 0; i < 6; i++) {
        tn_remote_row f = file_row(t, names[i], v, "z", 1, sha);
        ASSERT_INT_EQ(r->m->put_object(c, &f, "z", 1), TN_OK);
        snprintf(rel, sizeof rel, "objects/%s/files/%s", t, files[i]);
        if (!exists(root, rel)) TN_FAIL_("%s is not at %s", names[i], rel);
    }
    /* 981 bytes: components of at most 200, folders marked with '+'. */
    char longest[982], want[2000];
    memset(longest, 'x', 981);
    longest[981] = '\0';
    tn_remote_row f = file_row(t, longest, v, "z", 1, sha);
    ASSERT_INT_EQ(r->m->put_object(c, &f, "z", 1), TN_OK);
    int w = snprintf(want, sizeof want, "objects/%s/files/", t);
    for (int k = 0; k < 4; k++) {
        memset(want + w, 'x', 200);
        memcpy(want + w + 200, "+/", 2);
        w += 202;
    }
    memset(want + w, 'x', 181);
    want[w + 181] = '\0';
    ASSERT(exists(root, want));

    /* An upload lives in its own folder until it completes. */
    char id[256];
    ASSERT_INT_EQ(r->m->mp_create(c, &f, id, sizeof id), TN_OK);
    snprintf(rel, sizeof rel, "uploads/%s/object", id);
    ASSERT(exists(root, rel));
    char etag[1][72];
    ASSERT_INT_EQ(r->m->mp_part(c, &f, id, 1, "tail", 4, etag[0], sizeof etag[0]), TN_OK);
    ASSERT_STR_EQ(etag[0], "0c62f876ef1dea830de9f32c2f4b46dd6d74d50d15896e09ef5a2fcd4ac7e1d7"); /* the part's SHA-256 */
    snprintf(rel, sizeof rel, "uploads/%s/part-00001", id);
    ASSERT(exists(root, rel));
    ASSERT_INT_EQ(r->m->mp_complete(c, &f, id, (const char (*)[72])etag, 1), TN_OK);
    snprintf(rel, sizeof rel, "uploads/%s", id);
    ASSERT(!exists(root, rel));
    close_all(r, c);
}

TEST(dir_hostile_row_files_are_refused) {
    char root[4200], t[37], u[37], rel[8192], p[8192];
    tn_remote *r = dir_remote("nas", root);
    tn_remote_conn *c = open_conn(r);
    new_tenant(t);
    new_tenant(u);
    int64_t b = base_version();
    put_all_ok(r, c, (tn_remote_row[]){item_row(t, "a", b, "{\"ok\":1}"), item_row(t, "b", b, "2")}, 2);
    char rows[64];
    snprintf(rows, sizeof rows, "tenants/%s/rows", t);
    snprintf(p, sizeof p, "%s/%s/" H_ITEM_A ".json", root, rows);
    size_t an;
    char *a_text = tn_test_slurp(p, &an);
    ASSERT(a_text);

    /* Each of these is refused and counted, never returned. */
    char big_name[8192];
    snprintf(rel, sizeof rel, "%s/" H_ITEM_JUNK ".json", rows);
    plant(root, rel, "not json at all", 15);
    snprintf(rel, sizeof rel, "%s/" H_ITEM_ZZZ ".json", rows); /* a's row under zzz's name */
    plant(root, rel, a_text, an);
    char other[512];
    int on = snprintf(other, sizeof other,
                      "{\"pk\":\"TENANT#%s\",\"sk\":\"ITEM#x\",\"version\":\"5\",\"feed\":\"0\","
                      "\"deleted\":false,\"updated_at\":1,\"expires_at\":0,\"data\":\"1\"}", u);
    snprintf(rel, sizeof rel, "%s/" H_ITEM_X ".json", rows); /* another tenant's partition */
    plant(root, rel, other, (size_t)on);
    const char *bad_fields[] = {
        "\"version\":5",                        /* a number: loses bits */
        "\"version\":\"-5\"",
        "\"version\":\"0\"",
        "\"version\":\"99999999999999999999\"", /* past int64 */
        "\"data\":\"{not json\"",
        "\"updated_at\":-1",
        "\"deleted\":\"no\"",
    };
    int nbad = (int)(sizeof bad_fields / sizeof bad_fields[0]);
    for (int i = 0; i < nbad; i++) {
        char key[16], sk[32], hex[65], body[1024];
        snprintf(key, sizeof key, "bad%d", i);
        snprintf(sk, sizeof sk, "ITEM#%s", key);
        tn__sha256_hex(sk, strlen(sk), hex);
        /* The bad field first: of two fields of one name, the first is read. */
        int n = snprintf(body, sizeof body,
                     "{%s,\"pk\":\"TENANT#%s\",\"sk\":\"%s\",\"version\":\"7\",\"feed\":\"0\","
                     "\"deleted\":false,\"updated_at\":1,\"expires_at\":0,\"data\":\"1\"}",
                     bad_fields[i], t, sk);
        snprintf(rel, sizeof rel, "%s/%s.json", rows, hex);
        plant(root, rel, body, (size_t)n);
    }
    /* Over the 4 MiB budget, and a symbolic link. */
    {
        char sk[] = "ITEM#huge", hex[65];
        tn__sha256_hex(sk, strlen(sk), hex);
        /* A well-formed row, only too large: its data is a 4 MiB string. */
        size_t cap = (4 << 20) + 1024, n;
        char *huge = malloc(cap);
        ASSERT(huge);
        n = (size_t)snprintf(huge, cap,
                             "{\"pk\":\"TENANT#%s\",\"sk\":\"%s\",\"version\":\"7\",\"feed\":\"0\","
                             "\"deleted\":false,\"updated_at\":1,\"expires_at\":0,\"data\":\"\\\"",
                             t, sk);
        memset(huge + n, 'h', 4 << 20);
        n += 4 << 20;
        memcpy(huge + n, "\\\"\"}", 5);
        n += 5;
        snprintf(rel, sizeof rel, "%s/%s.json", rows, hex);
        plant(root, rel, huge, n);
        free(huge);
        tn__sha256_hex("ITEM#link", 9, hex);
        snprintf(big_name, sizeof big_name, "%s/%s/%s.json", root, rows, hex);
        ASSERT(symlink(p, big_name) == 0);
    }
    int planted = 3 + nbad + 2;

    got g = list_all(r, c, t);
    ASSERT_INT_EQ(g.n, 2);
    ASSERT_INT_EQ(g.refused, planted);
    ASSERT(got_find(&g, TN_REMOTE_ITEM, "a") && got_find(&g, TN_REMOTE_ITEM, "b"));
    got_free(&g);
    tn_remote_row zzz = item_row(t, "zzz", b, "1");
    ASSERT_INT_EQ(version_of(r, c, &zzz), -1);
    /* A good write over a broken row heals it. */
    tn_remote_row junk = item_row(t, "junk", b, "\"healed\"");
    ASSERT_INT_EQ(put1(r, c, &junk).code, TN_OK);
    g = list_all(r, c, t);
    ASSERT_INT_EQ(g.n, 3);
    ASSERT_INT_EQ(g.refused, planted - 1);
    got_free(&g);

    /* The feed: junk lines, a line far too long, a line naming a row that is
     * not there, and a torn last line. */
    char cursor[256] = "";
    g = (got){0};
    drain(r, c, t, cursor, 100, &g);
    ASSERT_INT_EQ(g.n, 3);
    ASSERT_INT_EQ(g.refused, 0);
    got_free(&g);
    char feed[64];
    snprintf(feed, sizeof feed, "tenants/%s/feed", t);
    append(root, feed, "garbage\n{\"sk\":\"ITEM#a\"}\n{\"sk\":\"ITEM#gone\",\"version\":\"9\"}\n");
    char *longline = malloc(100001);
    ASSERT(longline);
    memset(longline, 'l', 99999);
    longline[99999] = '\n';
    longline[100000] = '\0';
    append(root, feed, longline);
    free(longline);
    append(root, feed, "{\"sk\":\"ITEM#b\",\"version\":\"1\"}\n{\"sk\":\"IT");
    drain(r, c, t, cursor, 100, &g);
    ASSERT_INT_EQ(g.n, 1); /* b, read again: harmless */
    ASSERT_INT_EQ(g.refused, 3);
    got_free(&g);
    /* The next write ends the torn line, which then counts as refused. */
    tn_remote_row next = item_row(t, "after", b, "1");
    ASSERT_INT_EQ(put1(r, c, &next).code, TN_OK);
    drain(r, c, t, cursor, 100, &g);
    ASSERT_INT_EQ(g.n, 1);
    ASSERT(got_find(&g, TN_REMOTE_ITEM, "after"));
    ASSERT_INT_EQ(g.refused, 1);
    got_free(&g);

    /* Cursors: malformed is refused; one of another feed starts at the top. */
    tn_remote_page pg = {0};
    char out[256];
    ASSERT_INT_EQ(r->m->changes(c, t, "zzz", 10, &pg, out), TN_INVALID);
    char foreign[256];
    snprintf(foreign, sizeof foreign, "%032d:%s", 0, strchr(cursor, ':') + 1);
    drain(r, c, t, foreign, 100, &g);
    ASSERT_INT_EQ(g.n, 4);
    got_free(&g);
    free(a_text);
    close_all(r, c);
}

#define KILL_KEYS 10

/* Writes rows until killed, telling the parent each acknowledged version. */
static void kill_writer(const char *root, const char *t, int64_t b, int fd) {
    tn_remote *r = NULL;
    char err[256];
    if (tn_remote_dir_open(root, &r, err, sizeof err) != TN_OK) _exit(2);
    tn_remote_conn *c = NULL;
    if (r->m->conn_open(r, 0, &c) != TN_OK) _exit(2);
    char ids[KILL_KEYS][16], data[5][64];
    for (int k = 0; k < KILL_KEYS; k++) snprintf(ids[k], sizeof ids[k], "k%d", k);
    for (int64_t i = 0; i < 1000000; i += 5) {
        tn_remote_row rows[5];
        tn_remote_put out[5];
        for (int k = 0; k < 5; k++) {
            snprintf(data[k], sizeof data[k], "{\"v\":%lld}", (long long)(i + k));
            rows[k] = item_row(t, ids[(i + k) % KILL_KEYS], b + i + k, data[k]);
        }
        r->m->put_rows(c, rows, 5, out);
        for (int k = 0; k < 5; k++) {
            if (out[k].code != TN_OK) _exit(3);
            int64_t ack = b + i + k;
            if (write(fd, &ack, sizeof ack) != sizeof ack) _exit(4);
        }
    }
    _exit(0);
}

TEST(dir_a_killed_writer_loses_no_acknowledged_row) {
    char root[4200], t[37];
    tn_remote *r = dir_remote("nas", root);
    tn_remote_conn *c = open_conn(r);
    new_tenant(t);
    int64_t b = base_version(), acked[KILL_KEYS] = {0};
    char cursor[256] = "";
    for (int cycle = 0; cycle < 4; cycle++) {
        int pfd[2];
        ASSERT(pipe(pfd) == 0);
        int64_t cb = b + (int64_t)cycle * 1000000;
        pid_t pid = fork();
        ASSERT(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            kill_writer(root, t, cb, pfd[1]);
        }
        close(pfd[1]);
        /* Killed a while after its first acknowledgement, mid-stream. */
        int64_t ack;
        int n = 0;
        ASSERT(read(pfd[0], &ack, sizeof ack) == sizeof ack);
        acked[(ack - cb) % KILL_KEYS] = ack;
        n++;
        struct timespec ts = {0, (50 + 70 * cycle) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int st;
        ASSERT(waitpid(pid, &st, 0) == pid);
        ASSERT(WIFSIGNALED(st)); /* killed, not finished or failed */
        while (read(pfd[0], &ack, sizeof ack) == sizeof ack) {
            acked[(ack - cb) % KILL_KEYS] = ack;
            n++;
        }
        close(pfd[0]);
        ASSERT(n > 1);
        /* Every acknowledged row is there, at its version or later; nothing torn. */
        got g = list_all(r, c, t);
        ASSERT_INT_EQ(g.refused, 0);
        for (int k = 0; k < KILL_KEYS; k++) {
            char id[16];
            snprintf(id, sizeof id, "k%d", k);
            const got_row *f = got_find(&g, TN_REMOTE_ITEM, id);
            if (acked[k] && (!f || f->version < acked[k]))
                TN_FAIL_("cycle %d: k%d acknowledged at %lld, holds %lld", cycle, k,
                         (long long)acked[k], f ? (long long)f->version : -1LL);
        }
        got_free(&g);
        /* And the feed names each of them after the last cycle's cursor. */
        drain(r, c, t, cursor, 100, &g);
        ASSERT_INT_EQ(g.refused, 0);
        for (int k = 0; k < KILL_KEYS; k++) {
            char id[16];
            snprintf(id, sizeof id, "k%d", k);
            const got_row *f = got_find(&g, TN_REMOTE_ITEM, id);
            if (acked[k] >= cb && (!f || f->version < acked[k]))
                TN_FAIL_("cycle %d: the feed missed k%d", cycle, k);
        }
        got_free(&g);
    }
    close_all(r, c);
}

TEST(dir_init_refuses_what_is_not_its_own) {
    tn_remote *r = NULL;
    char err[256], root[4200];
    const char *what = "";
    ASSERT_INT_EQ(tn_remote_dir_open("relative/path", &r, err, sizeof err), TN_INVALID);
    ASSERT(r == NULL);

    snprintf(root, sizeof root, "%s/absent", tn_test_tmpdir());
    ASSERT_INT_EQ(tn_remote_dir_open(root, &r, err, sizeof err), TN_OK);
    ASSERT_INT_EQ(r->m->init(r, &what), TN_NOTFOUND);
    tn_remote_conn *c = open_conn(r);
    char t[37], cur[256];
    new_tenant(t);
    tn_remote_row row = item_row(t, "x", 1, "1");
    ASSERT_INT_EQ(put1(r, c, &row).code, TN_NOTFOUND); /* not set up */
    tn_remote_page pg = {0};
    ASSERT_INT_EQ(r->m->list(c, t, "", &pg), TN_NOTFOUND);
    ASSERT_INT_EQ(r->m->changes(c, t, "", 10, &pg, cur), TN_NOTFOUND);
    close_all(r, c);

    /* A folder holding something else is not spread over. */
    snprintf(root, sizeof root, "%s/home", tn_test_tmpdir());
    ASSERT(mkdir(root, 0755) == 0);
    plant(root, "notes.txt", "mine", 4);
    ASSERT_INT_EQ(tn_remote_dir_open(root, &r, err, sizeof err), TN_OK);
    ASSERT_INT_EQ(r->m->init(r, &what), TN_EXISTS);
    ASSERT(!exists(root, "tenants") && !exists(root, "FORMAT"));
    tn_remote_close(r);

    /* A fresh disk (lost+found) is fine, twice; another format is not. */
    snprintf(root, sizeof root, "%s/disk", tn_test_tmpdir());
    ASSERT(mkdir(root, 0755) == 0);
    char lf[8192];
    snprintf(lf, sizeof lf, "%s/lost+found", root);
    ASSERT(mkdir(lf, 0700) == 0);
    ASSERT_INT_EQ(tn_remote_dir_open(root, &r, err, sizeof err), TN_OK);
    ASSERT_INT_EQ(r->m->init(r, &what), TN_OK);
    ASSERT_INT_EQ(r->m->init(r, &what), TN_OK);
    plant(root, "FORMAT", "tenantry directory remote 9\n", 28);
    ASSERT_INT_EQ(r->m->init(r, &what), TN_VERSION);
    tn_remote_close(r);
}

typedef struct lock_arg {
    tn_remote *r;
    const char *t;
    volatile int done, code;
} lock_arg;

static void *locked_put(void *p) {
    lock_arg *a = p;
    tn_remote_conn *c = NULL;
    ASSERT_INT_EQ(a->r->m->conn_open(a->r, 0, &c), TN_OK);
    tn_remote_row row = item_row(a->t, "x", base_version(), "1");
    tn_remote_put o = {-99, -99};
    a->r->m->put_rows(c, &row, 1, &o);
    a->code = o.code;
    a->done = 1;
    a->r->m->conn_close(c);
    return NULL;
}

TEST(dir_writers_wait_for_the_tenant_lock) {
    char root[4200], t[37], p[8192];
    tn_remote *r = dir_remote("nas", root);
    tn_remote_conn *c = open_conn(r);
    new_tenant(t);
    tn_remote_row first = item_row(t, "first", base_version(), "1");
    ASSERT_INT_EQ(put1(r, c, &first).code, TN_OK);
    snprintf(p, sizeof p, "%s/tenants/%s/lock", root, t);
    int fd = open(p, O_RDWR);
    ASSERT(fd >= 0);
    ASSERT(flock(fd, LOCK_EX) == 0); /* another process's writer, as far as r can tell */
    lock_arg a = {r, t, 0, -99};
    pthread_t th;
    ASSERT(pthread_create(&th, NULL, locked_put, &a) == 0);
    struct timespec ts = {0, 300 * 1000000L};
    nanosleep(&ts, NULL);
    ASSERT_INT_EQ(a.done, 0);
    ASSERT(flock(fd, LOCK_UN) == 0);
    ASSERT(pthread_join(th, NULL) == 0);
    ASSERT_INT_EQ(a.code, TN_OK);

    /* The engine's stop flag ends a wait early, with a retryable code. */
    ASSERT(flock(fd, LOCK_EX) == 0);
    volatile int stop = 1;
    r->stop = &stop;
    tn_remote_row late = item_row(t, "late", base_version(), "1");
    int64_t t0 = now_ms();
    tn_remote_put o = put1(r, c, &late);
    ASSERT_INT_EQ(o.code, TN_TIMEOUT);
    ASSERT(now_ms() - t0 < 10000);
    close(fd);
    close_all(r, c);
}

TEST(dir_bandwidth_caps_object_writes) {
    char root[4200], t[37], sha[65];
    tn_remote *r = dir_remote("nas", root);
    new_tenant(t);
    tn_remote_conn *c = NULL;
    ASSERT_INT_EQ(r->m->conn_open(r, 4 << 20, &c), TN_OK); /* 4 MiB/s */
    size_t n = 2 << 20;
    unsigned char *bytes = random_bytes(n);
    tn_remote_row f = file_row(t, "capped.bin", base_version(), bytes, n, sha);
    int64_t t0 = now_ms();
    ASSERT_INT_EQ(r->m->put_object(c, &f, bytes, n), TN_OK);
    int64_t took = now_ms() - t0;
    if (took < 400) TN_FAIL_("2 MiB at 4 MiB/s took %lld ms", (long long)took);
    free(bytes);
    close_all(r, c);
}

typedef struct capped_writer {
    tn_remote *r;
    const char *tenant;
    int k;
    int rc;
} capped_writer;

static void *write_capped(void *arg) {
    capped_writer *w = arg;
    tn_remote_conn *c = NULL;
    char name[32], sha[65];
    size_t n = 1 << 20;
    unsigned char *bytes = random_bytes(n);
    snprintf(name, sizeof name, "shared-%d.bin", w->k);
    tn_remote_row f = file_row(w->tenant, name, base_version(), bytes, n, sha);
    w->rc = w->r->m->conn_open(w->r, 4 << 20, &c);
    if (w->rc == TN_OK) w->rc = w->r->m->put_object(c, &f, bytes, n);
    w->r->m->conn_close(c);
    free(bytes);
    return NULL;
}

/* Four connections opened with a cap of 4 MiB/s share it: 4 MiB at once
 * take about a second, not the quarter second four caps of their own would. */
TEST(dir_connections_share_one_bandwidth_cap) {
    char root[4200], t[37];
    tn_remote *r = dir_remote("nas", root);
    new_tenant(t);
    capped_writer w[4];
    pthread_t th[4];
    int64_t t0 = now_ms();
    for (int k = 0; k < 4; k++) {
        w[k] = (capped_writer){r, t, k, -1};
        ASSERT(pthread_create(&th[k], NULL, write_capped, &w[k]) == 0);
    }
    for (int k = 0; k < 4; k++) pthread_join(th[k], NULL);
    int64_t took = now_ms() - t0;
    for (int k = 0; k < 4; k++) ASSERT_INT_EQ(w[k].rc, TN_OK);
    if (took < 800) TN_FAIL_("4 MiB through a shared 4 MiB/s cap took %lld ms", (long long)took);
    tn_remote_close(r);
}

/* Sets the modification time of root/rel `ago` seconds back. */
static void age(const char *root, const char *rel, time_t ago) {
    char p[8192];
    ASSERT(snprintf(p, sizeof p, "%s/%s", root, rel) < (int)sizeof p);
    struct timespec ts[2] = {{time(NULL) - ago, 0}, {time(NULL) - ago, 0}};
    ASSERT(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW) == 0);
}

/* The ".tmp-" entries of folder root/rel. */
static int temps_in(const char *root, const char *rel) {
    char p[8192];
    ASSERT(snprintf(p, sizeof p, "%s/%s", root, rel) < (int)sizeof p);
    DIR *dh = opendir(p);
    ASSERT(dh);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dh)) != NULL) n += strncmp(e->d_name, ".tmp-", 5) == 0;
    closedir(dh);
    return n;
}

TEST(dir_leftovers_of_killed_writers_are_swept) {
    char root[4200], t[37], rel[8192], rel2[8192], sha[65], sha2[65];
    tn_remote *r = dir_remote("nas", root);
    tn_remote_conn *c = open_conn(r);
    new_tenant(t);
    int64_t v = base_version();
    tn_remote_row a = item_row(t, "a", v, "{}"), b = item_row(t, "b", v, "{}");
    ASSERT_INT_EQ(put1(r, c, &a).code, TN_OK);
    /* Rows: a temp file in the tenant's folder is a killed writer's,
     * however young: only the lock's holder writes there. */
    snprintf(rel, sizeof rel, "tenants/%s/.tmp-0123456789abcdef", t);
    plant(root, rel, "{\"half", 6);
    ASSERT_INT_EQ(put1(r, c, &b).code, TN_OK);
    ASSERT(!exists(root, rel));
    snprintf(rel, sizeof rel, "tenants/%s", t);
    ASSERT_INT_EQ(temps_in(root, rel), 0);
    snprintf(rel, sizeof rel, "tenants/%s/rows", t);
    ASSERT_INT_EQ(temps_in(root, rel), 0);

    /* Objects: temp files untouched for an hour go; a young one (a writer
     * at work on another appliance) stays. */
    tn_remote_row f = file_row(t, "doc.bin", v, "z", 1, sha);
    ASSERT_INT_EQ(r->m->put_object(c, &f, "z", 1), TN_OK);
    snprintf(rel, sizeof rel, "objects/%s/.tmp-old", t);
    snprintf(rel2, sizeof rel2, "objects/%s/.tmp-young", t);
    plant(root, rel, "old", 3);
    plant(root, rel2, "young", 5);
    age(root, rel, 2 * 3600);
    tn_remote_row f2 = file_row(t, "dir/doc2.bin", v, "zz", 2, sha2);
    ASSERT_INT_EQ(r->m->put_object(c, &f2, "zz", 2), TN_OK);
    ASSERT(!exists(root, rel));
    ASSERT(exists(root, rel2));
    snprintf(rel, sizeof rel, "objects/%s/files", t);
    ASSERT_INT_EQ(temps_in(root, rel), 0);

    /* Uploads: one untouched for 8 days goes, and so does what a killed
     * removal left; a young one stays and completes. */
    char old_id[256], new_id[256], etag[1][72];
    ASSERT_INT_EQ(r->m->mp_create(c, &f, old_id, sizeof old_id), TN_OK);
    snprintf(rel, sizeof rel, "uploads/%s/part-00001", old_id);
    plant(root, rel, "part", 4);
    snprintf(rel, sizeof rel, "uploads/%s", old_id);
    age(root, rel, 8 * 86400);
    snprintf(rel2, sizeof rel2, "%s/uploads/.gone-%s-00000000", root, old_id);
    ASSERT(mkdir(rel2, 0755) == 0);
    snprintf(rel2, sizeof rel2, "uploads/.gone-%s-00000000/part-00001", old_id);
    plant(root, rel2, "part", 4);
    snprintf(rel2, sizeof rel2, "uploads/.gone-%s-00000000", old_id);
    age(root, rel2, 8 * 86400);
    char young[256];
    ASSERT_INT_EQ(r->m->mp_create(c, &f, young, sizeof young), TN_OK);
    snprintf(rel, sizeof rel, "uploads/%s", young);
    age(root, rel, 6 * 86400);
    ASSERT_INT_EQ(r->m->mp_create(c, &f, new_id, sizeof new_id), TN_OK);
    snprintf(rel, sizeof rel, "uploads/%s", old_id);
    ASSERT(!exists(root, rel));
    ASSERT(!exists(root, rel2));
    snprintf(rel, sizeof rel, "uploads/%s", young);
    ASSERT(exists(root, rel));
    ASSERT_INT_EQ(r->m->mp_part(c, &f, young, 1, "z", 1, etag[0], sizeof etag[0]), TN_OK);
    ASSERT_INT_EQ(r->m->mp_complete(c, &f, young, (const char (*)[72])etag, 1), TN_OK);
    size_t n;
    int frc;
    char *back = fetch(r, c, &f, &n, &frc);
    ASSERT_INT_EQ(frc, TN_OK);
    ASSERT(n == 1 && back[0] == 'z');
    free(back);
    snprintf(rel, sizeof rel, "objects/%s", t);
    ASSERT_INT_EQ(temps_in(root, rel), 1); /* the young one planted above */
    close_all(r, c);
}

/* A feed past its compaction size is rewritten with each key's last line:
 * it stays bounded however many writes go by; a reader from the top gets
 * each key once at its newest; a reader whose cursor is in the old feed
 * starts again from the top (re-reading, never skipping); a reader caught
 * up with the new feed gets only what follows. */
TEST(dir_feed_is_compacted_and_readers_skip_nothing) {
    setenv("TENANTRY_DIR_FEED_COMPACT", "4096", 1);
    char root[4200], t[37], rel[8192];
    tn_remote *r = dir_remote("nas", root);
    unsetenv("TENANTRY_DIR_FEED_COMPACT");
    tn_remote_conn *c = open_conn(r);
    new_tenant(t);
    int64_t b = base_version(), last[5] = {0};
    char early[256] = "", caught[256] = "";
    got g = {0};
    for (int round = 0; round < 400; round++) {
        char id[16];
        int k = round % 5;
        snprintf(id, sizeof id, "k%d", k);
        last[k] = b + round;
        tn_remote_row row = item_row(t, id, last[k], "{\"padding\":\"................................\"}");
        ASSERT_INT_EQ(put1(r, c, &row).code, TN_OK);
        if (round == 20) { /* a reader that stops early, in the first feed */
            drain(r, c, t, early, 100, &g);
            got_free(&g);
            g = (got){0};
        }
    }
    size_t n;
    snprintf(rel, sizeof rel, "%s/tenants/%s/feed", root, t);
    char *feed = tn_test_slurp(rel, &n);
    ASSERT(feed);
    free(feed);
    /* 400 lines of ~48 bytes would be ~19 KB; compacted, it stays near the bound. */
    if (n > 2 * 4096 + 1024) TN_FAIL_("the feed holds %zu bytes after 400 writes of 5 keys", n);
    snprintf(rel, sizeof rel, "tenants/%s/compacted", t);
    ASSERT(exists(root, rel));
    char top[256] = "";
    drain(r, c, t, top, 100, &g);
    ASSERT_INT_EQ(g.n, 5);
    ASSERT_INT_EQ(g.refused, 0);
    for (int k = 0; k < 5; k++) {
        char id[16];
        snprintf(id, sizeof id, "k%d", k);
        const got_row *f = got_find(&g, TN_REMOTE_ITEM, id);
        if (!f || f->version != last[k]) TN_FAIL_("%s: %lld, not its last %lld", id,
                                                 f ? (long long)f->version : -1LL, (long long)last[k]);
    }
    got_free(&g);
    g = (got){0};
    drain(r, c, t, early, 100, &g); /* from a compacted-away feed: the top again */
    for (int k = 0; k < 5; k++) {
        char id[16];
        snprintf(id, sizeof id, "k%d", k);
        const got_row *f = got_find(&g, TN_REMOTE_ITEM, id);
        if (!f || f->version != last[k]) TN_FAIL_("old cursor: %s missed", id);
    }
    got_free(&g);
    g = (got){0};
    snprintf(caught, sizeof caught, "%s", top);
    tn_remote_row after = item_row(t, "after", b + 1000, "1");
    ASSERT_INT_EQ(put1(r, c, &after).code, TN_OK);
    drain(r, c, t, caught, 100, &g);
    ASSERT_INT_EQ(g.n, 1);
    ASSERT(got_find(&g, TN_REMOTE_ITEM, "after"));
    got_free(&g);
    close_all(r, c);
}

TEST(dir_one_key_twice_in_one_call) {
    char root[4200], t[37];
    tn_remote *r = dir_remote("nas", root);
    tn_remote_conn *c = open_conn(r);
    new_tenant(t);
    int64_t b = base_version();
    tn_remote_row rows[] = {item_row(t, "k", b + 5, "5"), item_row(t, "k", b + 3, "3"),
                            item_row(t, "k", b + 7, "7"), item_row(t, "k", b + 6, "6")};
    tn_remote_put out[4];
    r->m->put_rows(c, rows, 4, out);
    ASSERT_INT_EQ(out[0].code, TN_OK);
    ASSERT_INT_EQ(out[1].code, TN_CONFLICT);
    ASSERT_INT_EQ(out[1].remote, b + 5);
    ASSERT_INT_EQ(out[2].code, TN_OK);
    ASSERT_INT_EQ(out[3].code, TN_CONFLICT);
    ASSERT_INT_EQ(out[3].remote, b + 7);
    got g = list_all(r, c, t);
    ASSERT_INT_EQ(g.n, 1);
    ASSERT(g.r[0].version == b + 7 && json_same(g.r[0].data, "7"));
    got_free(&g);
    close_all(r, c);
}

TEST(dir_readers_never_see_a_half_written_row) {
    char root[4200], t[37];
    tn_remote *r = dir_remote("nas", root);
    tn_remote_conn *c = open_conn(r);
    new_tenant(t);
    int64_t b = base_version();
    /* 256 KB rows, rewritten while the parent lists them. */
    size_t n = 256 << 10;
    char *data = malloc(n + 3);
    ASSERT(data);
    data[0] = '"';
    memset(data + 1, 'w', n);
    memcpy(data + n + 1, "\"", 2);
    char ids[5][4] = {"r0", "r1", "r2", "r3", "r4"};
    tn_remote_row rows[5];
    for (int k = 0; k < 5; k++) rows[k] = item_row(t, ids[k], b, data);
    put_all_ok(r, c, rows, 5);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        int bad = 0;
        for (int i = 1; i <= 60; i++) {
            tn_remote_put out[5];
            for (int k = 0; k < 5; k++) rows[k].version = b + i;
            r->m->put_rows(c, rows, 5, out);
            for (int k = 0; k < 5; k++) bad += out[k].code != TN_OK;
        }
        _exit(bad ? 1 : 0);
    }
    int st = 0, lists = 0;
    for (int64_t end = now_ms() + 30000; now_ms() < end; lists++) {
        got g = list_all(r, c, t);
        if (g.refused || g.n != 5) TN_FAIL_("list %d saw %d rows, %d refused", lists, g.n, g.refused);
        got_free(&g);
        if (waitpid(pid, &st, WNOHANG) == pid) break;
    }
    ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    free(data);
    close_all(r, c);
}

/* Plants n rows item-<i> straight into the tree (no lock, no fsync): the
 * layout written out by hand. */
static void plant_rows(const char *root, const char *t, int from, int n) {
    for (int i = from; i < from + n; i++) {
        char sk[32], hex[65], rel[256], body[512];
        snprintf(sk, sizeof sk, "ITEM#item-%d", i);
        tn__sha256_hex(sk, strlen(sk), hex);
        snprintf(rel, sizeof rel, "tenants/%s/rows/%s.json", t, hex);
        int len = snprintf(body, sizeof body,
                           "{\"pk\":\"TENANT#%s\",\"sk\":\"%s\",\"version\":\"%d\",\"feed\":\"0\","
                           "\"deleted\":false,\"updated_at\":1,\"expires_at\":0,\"data\":\"%d\"}",
                           t, sk, i + 1, i);
        plant(root, rel, body, (size_t)len);
    }
}

TEST(dir_list_reads_the_folder_once_a_chunk) {
    char root[4200], t[37];
    tn_remote *r = dir_remote("nas", root);
    tn_remote_conn *c = open_conn(r), *c2 = open_conn(r);
    new_tenant(t);
    tn_remote_row first = item_row(t, "item-0", 1, "0");
    ASSERT_INT_EQ(put1(r, c, &first).code, TN_OK); /* makes the tenant's folders */
    enum { N = 20500 }; /* more than a connection holds at once (20000) */
    plant_rows(root, t, 1, N - 1);

    /* A listing begun, then abandoned: starting again starts from the top. */
    tn_remote_page p = {0};
    ASSERT_INT_EQ(r->m->list(c, t, "", &p), TN_OK);
    ASSERT(p.n > 0 && p.next[0]);
    int first_page = p.n;
    char token[1024];
    snprintf(token, sizeof token, "%s", p.next);
    tn_remote_page_free(&p);

    got g = list_all(r, c, t);
    ASSERT_INT_EQ(g.n, N);
    ASSERT_INT_EQ(g.refused, 0);
    char *seen = calloc(N, 1);
    ASSERT(seen);
    for (int i = 0; i < g.n; i++) {
        int k = -1;
        ASSERT(sscanf(g.r[i].key, "item-%d", &k) == 1 && k >= 0 && k < N);
        if (seen[k]++) TN_FAIL_("%s listed twice", g.r[i].key);
        ASSERT_INT_EQ(g.r[i].version, k + 1);
    }
    free(seen);
    got_free(&g);

    /* A token taken to another connection, one in the middle of a listing
     * of its own, goes on from where the token was. */
    char own[1024] = "";
    for (int k = 0; k < 2; k++) {
        ASSERT_INT_EQ(r->m->list(c2, t, own, &p), TN_OK);
        snprintf(own, sizeof own, "%s", p.next);
        tn_remote_page_free(&p);
    }
    int rest = 0, pages = 0;
    for (;;) {
        ASSERT_INT_EQ(r->m->list(c2, t, token, &p), TN_OK);
        rest += p.n;
        snprintf(token, sizeof token, "%s", p.next);
        tn_remote_page_free(&p);
        ASSERT(++pages < 1000);
        if (!token[0]) break;
    }
    ASSERT_INT_EQ(rest, N - first_page);
    r->m->conn_close(c2);
    close_all(r, c);
}
