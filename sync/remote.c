/*
 * remote.c - opening a remote by name, and the page helpers backends use to
 * hand rows back (see remote.h).
 */
#include "remote.h"

#include "tenantry.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SCHEMES 8

static struct {
    char scheme[16];
    tn_remote_open_fn open;
} schemes[MAX_SCHEMES];
static int nschemes;
static pthread_mutex_t schemes_mu = PTHREAD_MUTEX_INITIALIZER;

int tn_remote_register(const char *scheme, tn_remote_open_fn open) {
    if (!scheme || !open || strlen(scheme) >= sizeof schemes[0].scheme) return TN_INVALID;
    pthread_mutex_lock(&schemes_mu);
    int rc = TN_OK, i;
    for (i = 0; i < nschemes && strcmp(schemes[i].scheme, scheme) != 0; i++) {}
    if (i == nschemes && nschemes == MAX_SCHEMES) {
        rc = TN_TOOBIG;
    } else {
        snprintf(schemes[i].scheme, sizeof schemes[i].scheme, "%s", scheme);
        schemes[i].open = open;
        if (i == nschemes) nschemes++;
    }
    pthread_mutex_unlock(&schemes_mu);
    return rc;
}

int tn_remote_open(const char *spec, tn_remote **out, char *err, size_t errlen) {
    *out = NULL;
    if (!spec || !*spec) spec = "aws";
    const char *colon = strchr(spec, ':');
    size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *arg = colon ? colon + 1 : "";
    tn_remote_open_fn open = NULL;
    pthread_mutex_lock(&schemes_mu);
    for (int i = 0; i < nschemes; i++)
        if (strlen(schemes[i].scheme) == n && strncmp(schemes[i].scheme, spec, n) == 0)
            open = schemes[i].open;
    pthread_mutex_unlock(&schemes_mu);
    if (!open) {
        snprintf(err, errlen, "TENANTRY_REMOTE: unknown kind of remote (use aws or dir:PATH)");
        return TN_INVALID;
    }
    int rc = open(arg, out, err, errlen);
    if (rc == TN_OK && (!*out || !(*out)->m || (*out)->m->version < 1 || (*out)->batch_rows < 1)) {
        tn_remote_close(*out);
        *out = NULL;
        snprintf(err, errlen, "the remote backend is not usable");
        rc = TN_ERROR;
    }
    return rc;
}

void tn_remote_close(tn_remote *r) {
    if (r && r->m && r->m->close) r->m->close(r);
}

/* ---- pages ------------------------------------------------------------------ */

/* A page's memory: the strings its rows point at, in one list of blocks. */
typedef struct page_block {
    struct page_block *next;
    char data[];
} page_block;

typedef struct page_mem {
    page_block *blocks;
    int cap; /* rows allocated */
} page_mem;

static page_mem *mem_of(tn_remote_page *p) {
    if (!p->mem) p->mem = calloc(1, sizeof(page_mem));
    return p->mem;
}

const char *tn_remote_page_str(tn_remote_page *p, const char *s, size_t n) {
    page_mem *m = mem_of(p);
    page_block *b = m ? malloc(sizeof *b + n + 1) : NULL;
    if (!b) return NULL;
    memcpy(b->data, s, n);
    b->data[n] = '\0';
    b->next = m->blocks;
    m->blocks = b;
    return b->data;
}

tn_remote_row *tn_remote_page_add(tn_remote_page *p) {
    page_mem *m = mem_of(p);
    if (!m) return NULL;
    if (p->n == m->cap) {
        int cap = m->cap ? m->cap * 2 : 64;
        tn_remote_row *rows = realloc(p->rows, (size_t)cap * sizeof *rows);
        if (!rows) return NULL;
        p->rows = rows;
        m->cap = cap;
    }
    tn_remote_row *r = &p->rows[p->n++];
    memset(r, 0, sizeof *r);
    return r;
}

void tn_remote_page_free(tn_remote_page *p) {
    if (!p) return;
    page_mem *m = p->mem;
    for (page_block *b = m ? m->blocks : NULL, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(m);
    free(p->rows);
    memset(p, 0, sizeof *p);
}
