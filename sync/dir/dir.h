/*
 * dir.h - the directory backend of the remote interface (remote.h): a local
 * or mounted directory (a NAS share, a removable disk) that holds the same
 * rows and objects, with the same guarantees, as the AWS backend.  An
 * air-gapped site syncs to it; the engine's tests run against it without a
 * network.  The on-disk layout is described at the top of dir.c.
 */
#ifndef TN_DIR_H
#define TN_DIR_H

#include "remote.h"

#include <stddef.h>

/* Opens the directory remote rooted at path, an absolute path (the part
 * after "dir:" of TENANTRY_REMOTE).  A tn_remote_open_fn: the program
 * registers it with tn_remote_register("dir", tn_remote_dir_open).  Nothing
 * is touched until a method runs; the directory must exist before init,
 * which creates the tree inside it.  TN_INVALID (a relative or too long
 * path) or TN_NOMEM, with a generic line in err. */
int tn_remote_dir_open(const char *path, tn_remote **out, char *err, size_t errlen);

#endif
