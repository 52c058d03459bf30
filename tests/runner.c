/*
 * runner.c - runs every registered TEST() in its own child process.
 *
 * Usage: unit [substring]   runs the tests whose name contains substring.
 * Each test gets TN_TEST_TIMEOUT seconds (default 120) and a private temporary
 * directory.  The last line printed is "N passed, N failed".
 */
#include "harness.h"

#include <dirent.h>
#include <ftw.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static tn_test *tests;
static char tmpdir[4096];

void tn_test_register(tn_test *t) {
    /* Keep file order stable: append, so tests run in the order written. */
    tn_test **p = &tests;
    while (*p) p = &(*p)->next;
    *p = t;
}

const char *tn_test_tmpdir(void) {
    if (tmpdir[0]) return tmpdir;
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/tn-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        exit(1);
    }
    return tmpdir;
}

const char *tn_test_vectors(void) {
    return "tests/vectors";
}

char *tn_test_slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static void cleanup_tmpdir(void) {
    if (tmpdir[0]) nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int main(int argc, char **argv) {
    const char *filter = argc > 1 ? argv[1] : NULL;
    const char *t = getenv("TN_TEST_TIMEOUT");
    int timeout = t ? atoi(t) : 120;
    int passed = 0, failed = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    for (tn_test *x = tests; x; x = x->next) {
        if (filter && !strstr(x->name, filter)) continue;
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); return 2; }
        if (pid == 0) {
            alarm((unsigned)timeout);
            atexit(cleanup_tmpdir);
            x->fn();
            exit(0);
        }
        int status = 0;
        while (waitpid(pid, &status, 0) < 0) {}
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            passed++;
            printf("ok   %s\n", x->name);
        } else {
            failed++;
            if (WIFSIGNALED(status))
                printf("FAIL %s (%s, signal %d)\n", x->name,
                       WTERMSIG(status) == SIGALRM ? "timeout" : "crashed", WTERMSIG(status));
            else
                printf("FAIL %s (%s)\n", x->name, x->file);
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
