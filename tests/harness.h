/*
 * harness.h - the unit-test harness: TEST() registers a test, ASSERT_*() fail it.
 *
 * Every TEST() registers itself through a constructor, so a new test file needs no
 * edit anywhere else: the Makefile globs tests/test_*.c into one binary.  The runner
 * (tests/runner.c) forks once per test, so a crash or a hung test fails that test
 * only, and prints "N passed, N failed" as its last line.
 *
 * An ASSERT that fails prints file:line and the expression and ends the test's
 * child process with status 1; the parent counts it.
 */
#ifndef TN_HARNESS_H
#define TN_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>

typedef struct tn_test {
    const char *name;
    const char *file;
    void (*fn)(void);
    struct tn_test *next;
} tn_test;

void tn_test_register(tn_test *t);
/* A fresh empty directory for this test, removed when the test's process ends. */
const char *tn_test_tmpdir(void);
/* Path to ../shared or the project's own tests/vectors (read-only test data). */
const char *tn_test_vectors(void);
/* Reads a whole file into a NUL-terminated heap buffer (length in *len); NULL on error. */
char *tn_test_slurp(const char *path, size_t *len);

#define TEST(name)                                                          \
    static void test_##name(void);                                          \
    static tn_test tdesc_##name = {#name, __FILE__, test_##name, NULL};     \
    __attribute__((constructor)) static void treg_##name(void) {            \
        tn_test_register(&tdesc_##name);                                   \
    }                                                                       \
    static void test_##name(void)

#define TN_FAIL_(...)                                                       \
    do {                                                                    \
        fprintf(stderr, "    %s:%d: ", __FILE__, __LINE__);                 \
        fprintf(stderr, __VA_ARGS__);                                       \
        fputc('\n', stderr);                                                \
        exit(1);                                                            \
    } while (0)

#define ASSERT(c)                                                           \
    do { if (!(c)) TN_FAIL_("assertion failed: %s", #c); } while (0)

#define ASSERT_INT_EQ(a, b)                                                 \
    do {                                                                    \
        long long a_ = (long long)(a), b_ = (long long)(b);                 \
        if (a_ != b_) TN_FAIL_("%s == %s: %lld != %lld", #a, #b, a_, b_);   \
    } while (0)

#define ASSERT_STR_EQ(a, b)                                                 \
    do {                                                                    \
        const char *a_ = (a), *b_ = (b);                                    \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                              \
            TN_FAIL_("%s == %s: \"%s\" != \"%s\"", #a, #b,                  \
                     a_ ? a_ : "(null)", b_ ? b_ : "(null)");               \
    } while (0)

#define ASSERT_MEM_EQ(a, b, n)                                              \
    do { if (memcmp((a), (b), (n)) != 0) TN_FAIL_("%s == %s (%zu bytes)",   \
                                                  #a, #b, (size_t)(n)); } while (0)

#endif
