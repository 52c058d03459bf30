/*
 * fuzz_sigv4.c - libFuzzer target for the SigV4 signer (sync/sigv4.c), in
 * header and presign mode.
 *
 * Input layout: byte 0 = flags (TN__SIGV4_* bits, presign forced on or off by
 * bit 7 so both modes are reached from every input), byte 1 = which clock and
 * token to use, then NUL-separated fields: method, path, query, payload hash
 * ("" = hash the body), body, then header name/value pairs.  The signer must
 * never crash, and when it signs, the canonical request must have exactly the
 * documented shape:
 *   method \n uri \n query \n (name:value \n)* \n signed-names \n payload-hash
 * with no CR anywhere, one line per signed header name (in the same order as
 * SignedHeaders), and no control byte other than the line breaks; so no
 * header value (or query, or path) can have smuggled in a line of its own.
 */
#include "sigv4.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXF (4 + 2 * TN__SIGV4_MAX_HEADERS + 2)

static void trap(const char *why, const char *creq) {
    fprintf(stderr, "fuzz_sigv4: %s\n--- canonical request ---\n%.2000s\n---\n", why,
            creq ? creq : "(none)");
    abort();
}

static void check_result(const tn__sigv4_result *r, int presign) {
    const char *c = r->canonical_request;
    if (!c || !r->string_to_sign) trap("signed without a canonical request", c);
    if (strchr(c, '\r')) trap("a CR in the canonical request", c);
    for (const unsigned char *p = (const unsigned char *)c; *p; p++)
        if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f)
            trap("a control byte in the canonical request", c);
    if (strlen(r->signature) != 64) trap("a signature that is not 64 hex digits", c);
    for (int i = 0; i < 64; i++)
        if (!strchr("0123456789abcdef", r->signature[i])) trap("a non-hex signature", c);

    /* Split into lines. */
    const char *line[4 + TN__SIGV4_MAX_HEADERS + 8];
    size_t len[4 + TN__SIGV4_MAX_HEADERS + 8], n = 0;
    for (const char *p = c;;) {
        const char *e = strchr(p, '\n');
        if (n == sizeof line / sizeof line[0]) trap("too many lines", c);
        line[n] = p;
        len[n++] = e ? (size_t)(e - p) : strlen(p);
        if (!e) break;
        p = e + 1;
    }
    /* method, uri, query, >= 1 header (host), blank, names, hash */
    if (n < 7) trap("too few lines", c);
    size_t blank = n - 3;
    if (len[blank] != 0) trap("no blank line before the signed names", c);
    size_t nh = blank - 3;
    /* The signed names line must list exactly the header lines' names, in order. */
    const char *names = line[n - 2], *ne = names + len[n - 2];
    for (size_t i = 0; i < nh; i++) {
        const char *h = line[3 + i];
        const char *colon = memchr(h, ':', len[3 + i]);
        if (!colon || colon == h) trap("a header line without a name", c);
        size_t hn = (size_t)(colon - h);
        if ((size_t)(ne - names) < hn || memcmp(names, h, hn) != 0)
            trap("header lines and SignedHeaders disagree", c);
        names += hn;
        if (i + 1 < nh) {
            if (names >= ne || *names != ';') trap("header lines and SignedHeaders disagree", c);
            names++;
        }
    }
    if (names != ne) trap("SignedHeaders names a header with no line", c);
    /* The query line is fully encoded: no raw space, '+' never a space. */
    for (size_t i = 0; i < len[2]; i++)
        if (line[2][i] == ' ') trap("a raw space in the canonical query", c);
    if (presign) {
        if (!r->query || r->authorization) trap("presign without a query", c);
        for (const unsigned char *p = (const unsigned char *)r->query; *p; p++)
            if (*p <= 0x20 || *p >= 0x7f || *p == '#')
                trap("a byte in the presigned query that must be encoded", c);
    } else {
        if (!r->authorization || r->query) trap("header mode without Authorization", c);
        if (strpbrk(r->authorization, "\r\n")) trap("CR/LF in Authorization", c);
        for (size_t i = 0; i < r->nadd; i++)
            if (strpbrk(r->add[i].value, "\r\n")) trap("CR/LF in an added header", c);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2 || size > 16384) return 0;
    unsigned flags = data[0] & 0x1f;
    unsigned opt = data[1];
    /* Fields are the NUL-separated pieces of the rest, in one NUL-terminated copy. */
    char *buf = malloc(size - 1);
    if (!buf) return 0;
    memcpy(buf, data + 2, size - 2);
    buf[size - 2] = '\0';
    const char *f[MAXF];
    size_t nf = 0;
    for (char *p = buf; nf < MAXF;) {
        f[nf++] = p;
        char *e = memchr(p, '\0', (size_t)(buf + size - 2 - p));
        if (!e || e == buf + size - 2) break;
        p = e + 1;
    }
    while (nf < 5) f[nf++] = "";

    tn__sigv4_header hdrs[TN__SIGV4_MAX_HEADERS + 1];
    size_t nh = 0;
    for (size_t i = 5; i + 1 < nf && nh < sizeof hdrs / sizeof hdrs[0]; i += 2)
        hdrs[nh++] = (tn__sigv4_header){f[i], f[i + 1]};

    static const time_t clocks[4] = {1440938160, 0, 253402300799, 253402300800};
    tn__sigv4_request req = {f[0], f[1], (opt & 4) ? NULL : f[2], hdrs, nh,
                             f[4], strlen(f[4]), f[3][0] ? f[3] : NULL};
    tn__sigv4_signer s = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                          (opt & 8) ? "session token\twith tab" : NULL,
                          "us-east-1", "service", clocks[opt & 3], flags, 0};
    for (int presign = 0; presign <= 1; presign++) {
        s.flags = presign ? (flags | TN__SIGV4_PRESIGN) : (flags & ~TN__SIGV4_PRESIGN);
        s.expires = presign ? 1 + (long)(opt >> 4) * 40000 : 0;
        tn__sigv4_result r;
        int rc = tn__sigv4_sign(&s, &req, &r);
        if (rc == TN__SIGV4_OK) check_result(&r, presign);
        else if (r.canonical_request || r.authorization || r.query)
            trap("a failed signature left output behind", NULL);
        tn__sigv4_result_free(&r);
    }
    free(buf);
    return 0;
}
