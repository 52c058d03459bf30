/*
 * log.c - the daemon's log: one JSON object per line on stderr.
 *
 *   {"time":"<RFC 3339>","level":"info|warn|error","msg":"..."}
 *   {"time":...,"level":...,"request_id":"...","method":"GET","path":"/v1/...",
 *    "status":200,"duration_ms":0.123}
 *
 * A request line carries the method, the path without its query, the status
 * and the duration: never a header value, key, token or body.
 */
#include "clock.h"
#include "api_int.h"

#include <stdio.h>

/* JSON string escaping for log fields we build ourselves. */
static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

void tn__log(const char *level, const char *msg) {
    char ts[32];
    tn__rfc3339(tn__wall_ms(), ts);
    flockfile(stderr);
    fprintf(stderr, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level);
    json_str(stderr, msg);
    fputs("}\n", stderr);
    funlockfile(stderr);
}

void tn__log_request(const tn__req *r, double ms) {
    char ts[32];
    tn__rfc3339(tn__wall_ms(), ts);
    flockfile(stderr);
    fprintf(stderr, "{\"time\":\"%s\",\"level\":\"%s\",\"request_id\":\"%s\",\"method\":", ts,
            r->status >= 500 || r->status == 0 ? "error" : "info", r->rid);
    json_str(stderr, r->method ? tn__method_name(r->method) : "other");
    fputs(",\"path\":", stderr);
    json_str(stderr, r->path);
    fprintf(stderr, ",\"status\":%d,\"duration_ms\":%.3f}\n", r->status, ms);
    funlockfile(stderr);
}
