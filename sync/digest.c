/*
 * digest.c - SHA-256 for sync through libcrypto (see digest.h).
 */
#include "digest.h"

#include "crypto.h"
#include "tenantry.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <unistd.h>

#define CHUNK ((size_t)1 << 20)

int tn__digest(const void *data, size_t len, unsigned char out[32]) {
    unsigned int n = 0;
    return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) && n == 32 ? TN_OK : TN_NOMEM;
}

int tn__digest_hex(const void *data, size_t len, char out[65]) {
    unsigned char md[32];
    int rc = tn__digest(data, len, md);
    if (rc == TN_OK) tn__hex(md, sizeof md, out);
    return rc;
}

int tn__digest_fd_hex(int fd, char out[65]) {
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    unsigned char *buf = malloc(CHUNK), md[32];
    int rc = !h || !buf || !EVP_DigestInit_ex(h, EVP_sha256(), NULL) ? TN_NOMEM : TN_OK;
    off_t off = 0;
    while (rc == TN_OK) {
        ssize_t got = pread(fd, buf, CHUNK, off);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) rc = TN_IO;
        if (got <= 0) break;
        if (!EVP_DigestUpdate(h, buf, (size_t)got)) rc = TN_NOMEM;
        off += got;
    }
    if (rc == TN_OK && !EVP_DigestFinal_ex(h, md, NULL)) rc = TN_NOMEM;
    if (rc == TN_OK) tn__hex(md, sizeof md, out);
    EVP_MD_CTX_free(h);
    free(buf);
    return rc;
}
