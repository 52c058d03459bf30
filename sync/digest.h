/*
 * digest.h - SHA-256 of the bytes sync moves (uploads, downloads, restores,
 * verify), through OpenSSL's libcrypto: it uses the CPU's SHA extensions,
 * about five times the speed of the portable code the store hashes its small
 * values with (1.8 GB/s against 0.35 GB/s here), and a large file's hash was
 * two thirds of an upload's CPU.
 */
#ifndef TN_SYNC_DIGEST_H
#define TN_SYNC_DIGEST_H

#include <stddef.h>

/* 64 lowercase hex digits of data[0..len).  TN_OK or TN_NOMEM. */
int tn__digest_hex(const void *data, size_t len, char out[65]);
/* The same over the whole file fd (read from offset 0 with pread; the file
 * position is left alone).  TN_OK, TN_IO or TN_NOMEM. */
int tn__digest_fd_hex(int fd, char out[65]);
/* The raw 32 bytes of data[0..len).  TN_OK or TN_NOMEM. */
int tn__digest(const void *data, size_t len, unsigned char out[32]);

#endif
