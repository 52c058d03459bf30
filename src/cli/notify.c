/*
 * notify.c - the sd_notify protocol, without libsystemd (see notify.h).
 *
 * The service manager passes the address of a unix datagram socket in
 * $NOTIFY_SOCKET: a file system path ("/run/systemd/notify"), or an abstract
 * name, written with '@' in place of the leading NUL byte.  Each notification
 * is one datagram of newline-separated VAR=VALUE assignments.  The socket is
 * opened per call and closed again: the daemon notifies a handful of times in
 * its life, and nothing stays open for a forked child to inherit.
 */
#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int tn__notify(const char *state) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path) return 0;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t n = strlen(path);
    /* Only the two forms the protocol defines; a relative path could name a
     * socket in whatever directory the daemon happens to run in. */
    if ((path[0] != '/' && path[0] != '@') || n < 2 || n >= sizeof sa.sun_path) {
        errno = EINVAL;
        return -1;
    }
    memcpy(sa.sun_path, path, n);
    if (path[0] == '@') sa.sun_path[0] = '\0'; /* abstract: the length counts, no NUL */
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
                                (path[0] == '/' ? 1 : 0));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    size_t want = strlen(state);
    ssize_t sent = sendto(fd, state, want, MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
    int saved = errno;
    close(fd);
    if (sent < 0 || (size_t)sent != want) {
        errno = sent < 0 ? saved : EMSGSIZE;
        return -1;
    }
    return 1;
}
