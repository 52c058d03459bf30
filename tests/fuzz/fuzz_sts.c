/*
 * fuzz_sts.c - libFuzzer target for the credential parsers of sync/aws.c:
 * the STS AssumeRole XML answer and the shared credentials/config file.
 *
 * Input layout: byte 0 even = the rest is an AssumeRole answer; odd = the
 * rest is "PROFILE\nFILE TEXT" for the shared credentials file.
 * Invariants:
 *   - on success every field is NUL-terminated inside its buffer, the key id
 *     and secret are not empty and appear in the input as written; an STS
 *     answer has a session token and an expiry after 1970;
 *   - on failure nothing is left in the output (it is wiped);
 *   - parsing is repeatable (same answer twice).
 */
#include "aws.h"
#include "tenantry.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void trap(const char *why, const char *text) {
    fprintf(stderr, "fuzz_sts: %s: \"%.400s\"\n", why, text);
    abort();
}

static void check_creds(const tn__aws_creds *c, const char *text, int rc, int sts) {
    if (rc != TN_OK) {
        for (size_t i = 0; i < sizeof *c; i++)
            if (((const unsigned char *)c)[i]) trap("credentials left after a failure", text);
        return;
    }
    if (!memchr(c->akid, 0, sizeof c->akid) || !memchr(c->secret, 0, sizeof c->secret) ||
        !memchr(c->token, 0, sizeof c->token))
        trap("a field not terminated", text);
    if (!c->akid[0] || !c->secret[0]) trap("empty key id or secret accepted", text);
    if (!strstr(text, c->akid) || !strstr(text, c->secret)) trap("a field not from the input", text);
    if (c->token[0] && !strstr(text, c->token)) trap("a token not from the input", text);
    if (sts && (!c->token[0] || c->expires <= 0)) trap("STS credentials without token or expiry", text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    char *text = malloc(size);
    if (!text) return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0'; /* the parsers take C strings: stop at a NUL */
    tn__aws_creds a, b;
    if ((data[0] & 1) == 0) {
        int rc = tn__aws_parse_assume_role(text, &a);
        check_creds(&a, text, rc, 1);
        if (tn__aws_parse_assume_role(text, &b) != rc || memcmp(&a, &b, sizeof a) != 0)
            trap("a second reading differs", text);
    } else {
        char *nl = strchr(text, '\n');
        const char *profile = "default", *file = text;
        if (nl) {
            *nl = '\0';
            profile = text;
            file = nl + 1;
        }
        int rc = tn__aws_parse_credentials(file, profile, &a);
        if (rc == TN_NOMEM) {
            free(text);
            return 0;
        }
        check_creds(&a, file, rc, 0);
        if (tn__aws_parse_credentials(file, profile, &b) != rc || memcmp(&a, &b, sizeof a) != 0)
            trap("a second reading differs", file);
    }
    tn__aws_creds_wipe(&a);
    tn__aws_creds_wipe(&b);
    free(text);
    return 0;
}
