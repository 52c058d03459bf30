/*
 * admin.h - the admin key: created by `tenantry init`, shown once, stored only
 * as a salted BLAKE2b hash in _meta, checked in constant time.
 */
#ifndef TN_ADMIN_H
#define TN_ADMIN_H

#include "tenantry.h"

/* "tna_" + 43 base64url characters (256 random bits) + NUL. */
#define TN_ADMIN_KEY_LEN 48

/* Makes a new admin key, replacing any old one; the key is written to out. */
int tn_admin_key_rotate(tn_store *st, char out[TN_ADMIN_KEY_LEN]);
/* TN_OK when key is the current admin key, else TN_DENIED. */
int tn_admin_key_verify(tn_store *st, const char *key);
/* 1 when the store has an admin key. */
int tn_admin_key_exists(tn_store *st);

#endif
