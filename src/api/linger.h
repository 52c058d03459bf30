/*
 * linger.h - closing a connection without losing the answer (server.c).
 *
 * When a request is refused before its body was read (a 413 for a declared
 * Content-Length over the limit, a 401 on an upload), the answer goes out at
 * once with "Connection: close".  A client that writes its whole body before
 * reading would then meet a closed socket, and the kernel answers the bytes
 * still arriving with a reset that also throws away the answer waiting in the
 * client's buffer: the client sees a network error instead of the 413.  So
 * such a connection is handed over here as it closes (a duplicate of its
 * descriptor): its sending side is shut after the answer, and what the
 * client still sends is read and thrown away until it stops, for at most
 * LINGER_MS and LINGER_BYTES, with at most LINGER_MAX such connections at
 * once (past that, a connection is closed as before).  Nothing read here is
 * kept or parsed.
 */
#ifndef TN_LINGER_H
#define TN_LINGER_H

typedef struct tn__linger tn__linger;

/* A drainer with its thread; NULL when it cannot start (then connections
 * simply close). */
tn__linger *tn__linger_start(void);
/* Takes ownership of fd (a duplicate of a connection's descriptor whose
 * answer was sent in full). */
void tn__linger_add(tn__linger *l, int fd);
/* Closes everything still lingering, joins the thread, frees. */
void tn__linger_stop(tn__linger *l);

#endif
