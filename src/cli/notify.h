/*
 * notify.h - telling the service manager (systemd, Type=notify) how the daemon
 * is doing, without libsystemd: one datagram per call to $NOTIFY_SOCKET.
 */
#ifndef TN_NOTIFY_H
#define TN_NOTIFY_H

/*
 * Sends state (newline-separated assignments such as "READY=1\nSTATUS=...",
 * see sd_notify(3)) to the socket named by $NOTIFY_SOCKET: a path, or an
 * abstract name written with a leading '@'.  Returns 1 when sent, 0 when no
 * service manager asked for notifications (NOTIFY_SOCKET unset), -1 on error
 * (errno set).  Safe to call from any thread; it keeps no state.
 */
int tn__notify(const char *state);

#endif
