/*
 * token.c - the token signing key (<data>/jwt.key) and the tokens it signs:
 * minted for an API key or an operator, verified back to the key or the
 * operator's grant they stand for (see auth.h).
 */
#include "auth.h"

#include "conn.h"
#include "crypto.h"
#include "jwt.h"
#include "operator.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SALT_LEN TN__SALT_LEN
#define HASH_LEN TN__HASH_LEN
#define SECRET_LEN 32
#define JWT_KEY_LEN 32

/* ---- tokens --------------------------------------------------------------- */

struct tn__auth {
    tn_store *st;
    unsigned char key[JWT_KEY_LEN];
};

static int read_key_file(const char *path, unsigned char key[JWT_KEY_LEN]) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return errno == ENOENT ? TN_NOTFOUND : TN_IO;
    struct stat sb;
    int rc = TN_OK;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size != JWT_KEY_LEN)
        rc = TN_CORRUPT;
    else if (sb.st_mode & 077)
        rc = TN_DENIED;
    else if (read(fd, key, JWT_KEY_LEN) != JWT_KEY_LEN)
        rc = TN_IO;
    close(fd);
    return rc;
}

/* Temp file, fsync, then link(): never replaces a key another process made. */
static int write_key_file(const char *path, unsigned char key[JWT_KEY_LEN]) {
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    if (!tmp) return TN_NOMEM;
    snprintf(tmp, n, "%s.%ld", path, (long)getpid());
    randombytes_buf(key, JWT_KEY_LEN);
    int rc = TN_IO;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        if (write(fd, key, JWT_KEY_LEN) == JWT_KEY_LEN && fsync(fd) == 0) rc = TN_OK;
        close(fd);
        if (rc == TN_OK && link(tmp, path) != 0) rc = errno == EEXIST ? TN_EXISTS : TN_IO;
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

int tn__auth_open(tn_store *st, tn__auth **out) {
    *out = NULL;
    if (sodium_init() < 0) return tn__fail(st, TN_ERROR, "libsodium failed to start");
    tn__auth *a = sodium_malloc(sizeof *a);
    if (!a) return tn__fail(st, TN_NOMEM, "out of memory");
    a->st = st;
    const char *dir = tn_store_dir(st);
    size_t n = strlen(dir) + 16;
    char *path = malloc(n);
    if (!path) {
        sodium_free(a);
        return tn__fail(st, TN_NOMEM, "out of memory");
    }
    snprintf(path, n, "%s/jwt.key", dir);
    int rc = read_key_file(path, a->key);
    if (rc == TN_NOTFOUND) {
        rc = write_key_file(path, a->key);
        if (rc == TN_EXISTS) rc = read_key_file(path, a->key);
    }
    if (rc != TN_OK) {
        tn__fail(st, rc, "%s: %s", path,
                 rc == TN_DENIED ? "the token key must not be readable by group or others "
                                   "(chmod 600)"
                 : rc == TN_CORRUPT ? "not a 32-byte token key"
                                    : "cannot read or create the token key");
        free(path);
        sodium_free(a);
        return rc;
    }
    free(path);
    *out = a;
    return TN_OK;
}

void tn__auth_close(tn__auth *a) {
    if (a) sodium_free(a); /* sodium_free wipes the memory */
}

tn_store *tn__auth_store(tn__auth *a) {
    return a->st;
}

int tn__token_mint_sub(tn__auth *a, const char *sub, int ttl, char jti[33], char **token) {
    tn__jwt_claims c;
    *token = NULL;
    int64_t now = tn__now_ms(a->st) / 1000;
    if (tn__jwt_claims_init(&c, sub, now, ttl) != TN__JWT_OK) return TN_INVALID;
    if (jti) snprintf(jti, 33, "%s", c.jti);
    int rc = tn__jwt_sign(a->key, sizeof a->key, &c, token);
    return rc == TN__JWT_OK ? TN_OK : rc == TN__JWT_ENOMEM ? TN_NOMEM : TN_ERROR;
}

int tn__token_mint(tn__auth *a, const char *key_id, int ttl, char **token) {
    return tn__token_mint_sub(a, key_id, ttl, NULL, token);
}

int tn__token_verify(tn__auth *a, const char *token, tn__key_info *out, const char **why) {
    tn__jwt_claims c;
    const char *dummy;
    if (!why) why = &dummy;
    memset(out, 0, sizeof *out);
    int rc = tn__jwt_verify(a->key, sizeof a->key, token, tn__now_ms(a->st) / 1000, 0, &c);
    if (rc != TN__JWT_OK) {
        *why = tn__jwt_errname(rc);
        return TN_DENIED;
    }
    /* An operator token's subject is "tno." <operator id>; an API key id
     * never contains a dot. */
    if (strncmp(c.sub, TN__OP_SUB_PREFIX, strlen(TN__OP_SUB_PREFIX)) == 0)
        return tn__op_token_lookup(a->st, c.jti, c.sub + strlen(TN__OP_SUB_PREFIX), out, why);
    return tn__key_lookup(a->st, c.sub, out, why);
}

