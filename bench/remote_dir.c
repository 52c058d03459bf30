/*
 * remote_dir.c - benchmark (not a test): the directory remote's row writes
 * and reads against the plainest durable way to store the same bytes, in
 * the same run, on the same file system.
 *
 *   bench_remote_dir [N] [ROUNDS] [DIR]   defaults: 5000 rows, 3 rounds, $TMPDIR
 *
 * Baseline: one file per row written durably by itself (temp file,
 * fdatasync, rename, fsync of the folder), no lock, no comparison, no feed;
 * read back by opening each file and parsing it.
 *   put     N new rows through put_rows, batch_rows a call, one tenant
 *   again   the same N rows, each one version newer (a compare per row)
 *   list    every row through list, page by page
 *   feed    the second write of every row through changes, 500 a page
 * Prints the median rate of each side and the ratio remote / baseline
 * (higher is better for the remote; 1.0 is parity).
 */
#include "dir.h"
#include "remote.h"
#include "tenantry.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAXROUNDS 15

static const char *TENANT = "6f1c2a52-4d0e-4c1b-9a7e-1d2c3b4a5f60";
static const char *DOC = "{\"kind\":\"sensor\",\"temp\":21.5,\"tags\":[\"a\",\"b\"],\"ok\":true}";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "bench_remote_dir: %s\n", what);
    exit(1);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f) {
    (void)st; (void)flag; (void)f;
    return remove(p);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return v[n / 2];
}

/* The baseline's row: the bytes the remote stores for one. */
static int row_bytes(char *out, size_t cap, int i, long long v) {
    return snprintf(out, cap,
                    "{\"pk\":\"TENANT#%s\",\"sk\":\"ITEM#id-%d\",\"version\":\"%lld\",\"feed\":\"0\","
                    "\"deleted\":false,\"updated_at\":1,\"expires_at\":0,\"data\":\"%s\"}\n",
                    TENANT, i, v, "{\\\"kind\\\":\\\"sensor\\\",\\\"temp\\\":21.5}");
}

static void base_put(const char *dir, int n, long long v) {
    char p[4096], tmp[4096], row[512];
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd < 0) die("baseline folder");
    for (int i = 0; i < n; i++) {
        int len = row_bytes(row, sizeof row, i, v);
        snprintf(tmp, sizeof tmp, "%s/.tmp-%d", dir, i);
        snprintf(p, sizeof p, "%s/id-%d.json", dir, i);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || write(fd, row, (size_t)len) != len || fdatasync(fd) != 0 || close(fd) != 0 ||
            rename(tmp, p) != 0 || fsync(dfd) != 0)
            die("baseline write");
    }
    close(dfd);
}

static void base_read(const char *dir, int n) {
    char p[4096], buf[1024];
    for (int i = 0; i < n; i++) {
        snprintf(p, sizeof p, "%s/id-%d.json", dir, i);
        int fd = open(p, O_RDONLY);
        ssize_t r = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
        if (r <= 0) die("baseline read");
        close(fd);
        cJSON *j = cJSON_ParseWithLength(buf, (size_t)r);
        if (!j) die("baseline parse");
        cJSON_Delete(j);
    }
}

static void remote_put(tn_remote *r, tn_remote_conn *c, tn_remote_row *rows, int n, long long v) {
    tn_remote_put out[100];
    for (int i = 0; i < n; i += r->batch_rows) {
        int m = n - i < r->batch_rows ? n - i : r->batch_rows;
        for (int k = 0; k < m; k++) rows[i + k].version = v;
        r->m->put_rows(c, rows + i, m, out);
        for (int k = 0; k < m; k++)
            if (out[k].code != TN_OK) die("put_rows");
    }
}

static int remote_list(tn_remote *r, tn_remote_conn *c) {
    char token[1024] = "";
    int total = 0;
    do {
        tn_remote_page p = {0};
        if (r->m->list(c, TENANT, token, &p) != TN_OK) die("list");
        total += p.n;
        snprintf(token, sizeof token, "%s", p.next);
        tn_remote_page_free(&p);
    } while (token[0]);
    return total;
}

/* Every row pushed after cursor, which advances. */
static int remote_feed(tn_remote *r, tn_remote_conn *c, char cursor[256]) {
    char next[256];
    int total = 0, n;
    do {
        tn_remote_page p = {0};
        if (r->m->changes(c, TENANT, cursor, 500, &p, next) != TN_OK) die("changes");
        total += n = p.n;
        snprintf(cursor, 256, "%s", next);
        tn_remote_page_free(&p);
    } while (n > 0);
    return total;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 5000;
    int rounds = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 3;
    const char *tmp = argc > 3 ? argv[3] : getenv("TMPDIR");
    if (n < 1 || rounds < 1 || rounds > MAXROUNDS) die("usage: bench_remote_dir [N] [ROUNDS] [DIR]");
    char top[4096], rdir[4200], bdir[4200], err[256];
    snprintf(top, sizeof top, "%s/tn-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(top)) die("mkdtemp");
    tn_remote_row *rows = calloc((size_t)n, sizeof *rows);
    char (*ids)[16] = calloc((size_t)n, sizeof *ids);
    if (!rows || !ids) die("out of memory");
    for (int i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "id-%d", i);
        memcpy(rows[i].tenant, TENANT, 37);
        rows[i].kind = TN_REMOTE_ITEM;
        rows[i].key = ids[i];
        rows[i].updated_at = 1;
        rows[i].data = DOC;
    }
    const char *names[4] = {"put", "again", "list", "feed"};
    double rem[4][MAXROUNDS], base[4][MAXROUNDS];
    for (int round = 0; round < rounds; round++) {
        snprintf(rdir, sizeof rdir, "%s/remote-%d", top, round);
        snprintf(bdir, sizeof bdir, "%s/base-%d", top, round);
        if (mkdir(rdir, 0755) != 0 || mkdir(bdir, 0755) != 0) die("mkdir");
        tn_remote *r;
        tn_remote_conn *c;
        const char *what;
        if (tn_remote_dir_open(rdir, &r, err, sizeof err) != TN_OK || r->m->init(r, &what) != TN_OK ||
            r->m->conn_open(r, 0, &c) != TN_OK)
            die("opening the remote");
        long long v = 1LL << 56;
        double t0 = now_s();
        base_put(bdir, n, v);
        double t1 = now_s();
        remote_put(r, c, rows, n, v);
        double t2 = now_s();
        rem[0][round] = n / (t2 - t1);
        char cursor[256] = ""; /* after the first put: the feed then holds the second */
        remote_feed(r, c, cursor);
        t2 = now_s();
        base_put(bdir, n, v + 1);
        double t3 = now_s();
        remote_put(r, c, rows, n, v + 1);
        double t4 = now_s();
        base_read(bdir, n);
        double t5 = now_s();
        if (remote_list(r, c) != n) die("list: wrong count");
        double t6 = now_s();
        base_read(bdir, n);
        double t7 = now_s();
        if (remote_feed(r, c, cursor) != n) die("feed: wrong count");
        double t8 = now_s();
        base[0][round] = n / (t1 - t0);
        base[1][round] = n / (t3 - t2);
        rem[1][round] = n / (t4 - t3);
        base[2][round] = n / (t5 - t4);
        rem[2][round] = n / (t6 - t5);
        base[3][round] = n / (t7 - t6);
        rem[3][round] = n / (t8 - t7);
        r->m->conn_close(c);
        tn_remote_close(r);
    }
    printf("directory remote: %d rows, %d rounds, median rows/s (baseline: a durable file per row)\n",
           n, rounds);
    printf("%-8s %12s %12s %8s\n", "", "remote", "baseline", "ratio");
    for (int k = 0; k < 4; k++) {
        double a = median(rem[k], rounds), b = median(base[k], rounds);
        printf("%-8s %12.0f %12.0f %8.2f\n", names[k], a, b, a / b);
    }
    free(rows);
    free(ids);
    nftw(top, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
