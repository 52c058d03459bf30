/*
 * router.h - what the server (server.c) asks of the router (router.c) for
 * each request: begin once the headers are in, body for each chunk, finish
 * on the last call (dispatches and queues the response), end when the
 * request is over.  And the CORS list, set up once at start.
 */
#ifndef TN_ROUTER_H
#define TN_ROUTER_H

#include "api_int.h"

/* Routes r, authenticates, checks limits; errors land in r->err_*. */
void tn__route_begin(tn__req *r, const char *url, const char *method);
/* Takes a chunk of the body (buffered JSON or a streamed upload). */
void tn__route_body(tn__req *r, const char *data, size_t n);
/* Runs the handler unless an error came first (r->err_status). */
void tn__route_dispatch(tn__req *r);
/* Queues r->resp (or the early error) on the connection: MHD_YES/MHD_NO. */
int tn__route_respond(tn__req *r);
/* After the response went (or the connection ended): audit, cleanup. */
void tn__route_end(tn__req *r);

/* A libmicrohttpd response reading from s (stream.c); its side of s is let
 * go when the response is destroyed. */
struct MHD_Response;
struct MHD_Connection;
struct MHD_Response *tn__stream_response(tn__stream *s, struct MHD_Connection *conn);

/* Reads s->cfg's CORS list into s->cors; tn__cors_free frees it. */
int tn__cors_setup(tn__srv *s, const char **err);
void tn__cors_free(tn__srv *s);

#endif
