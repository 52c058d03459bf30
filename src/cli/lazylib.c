/*
 * lazylib.c - libcurl and OpenSSL's libcrypto for the tenantry binary, loaded
 * on first use.
 *
 * Only the sync engine and the commands that talk to AWS need them; serving
 * HTTP from SQLite does not.  Mapped at start, libcurl with its own
 * dependencies (Kerberos, LDAP, SSH, RTMP, HTTP/2, ...) and libcrypto cost an
 * idle daemon about 3 MiB of resident pages (see docs/operations.md).  So the
 * binary is linked without them: every function the library calls is defined
 * here under its own name, and the first call of any of them opens both
 * libraries (dlopen, once, under pthread_once) and resolves them all.  The
 * library libtenantry itself links them as usual; this file goes into the
 * binary only.
 *
 * When a library cannot be loaded, its functions fail the way the library
 * reports failure (curl_easy_init NULL, CURLE_FAILED_INIT, EVP_* 0 or NULL),
 * so the caller's error paths apply, and one line on stderr says why.
 *
 * A function the library starts to use and this file lacks is an undefined
 * symbol when the binary is linked: add it to the list below.
 */
#define CURL_DISABLE_TYPECHECK 1 /* curl_easy_setopt is defined here, not a macro */
#include <curl/curl.h>
#include <dlfcn.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#ifndef TN_LIBCURL_SONAME
#define TN_LIBCURL_SONAME "libcurl.so.4"
#endif
#ifndef TN_LIBCRYPTO_SONAME
#define TN_LIBCRYPTO_SONAME "libcrypto.so.3"
#endif

/* X(library, return type, name, (parameters), (arguments), value on failure);
 * V(...) for the functions that return nothing. */
#define TN_LAZY_FUNCS(X, V)                                                                  \
    X(curl, CURLcode, curl_global_init, (long flags), (flags), CURLE_FAILED_INIT)             \
    X(curl, CURL *, curl_easy_init, (void), (), NULL)                                         \
    X(curl, const char *, curl_easy_strerror, (CURLcode e), (e), "libcurl is not loaded")       \
    X(curl, CURLcode, curl_easy_perform, (CURL * h), (h), CURLE_FAILED_INIT)                 \
    V(curl, curl_easy_cleanup, (CURL * h), (h))                                              \
    V(curl, curl_easy_reset, (CURL * h), (h))                                                \
    X(curl, struct curl_slist *, curl_slist_append, (struct curl_slist * l, const char *s),   \
      (l, s), NULL)                                                                          \
    V(curl, curl_slist_free_all, (struct curl_slist * l), (l))                               \
    X(crypto, int, EVP_Digest,                                                               \
      (const void *d, size_t n, unsigned char *md, unsigned int *len, const EVP_MD *t,       \
       ENGINE *e),                                                                           \
      (d, n, md, len, t, e), 0)                                                              \
    X(crypto, int, EVP_DigestInit_ex, (EVP_MD_CTX * c, const EVP_MD *t, ENGINE *e),           \
      (c, t, e), 0)                                                                          \
    X(crypto, int, EVP_DigestUpdate, (EVP_MD_CTX * c, const void *d, size_t n), (c, d, n), 0) \
    X(crypto, int, EVP_DigestFinal_ex, (EVP_MD_CTX * c, unsigned char *md, unsigned int *n),  \
      (c, md, n), 0)                                                                         \
    X(crypto, EVP_MD_CTX *, EVP_MD_CTX_new, (void), (), NULL)                                 \
    V(crypto, EVP_MD_CTX_free, (EVP_MD_CTX * c), (c))                                        \
    X(crypto, const EVP_MD *, EVP_md5, (void), (), NULL)                                      \
    X(crypto, const EVP_MD *, EVP_sha256, (void), (), NULL)                                   \
    X(crypto, int, EVP_EncodeBlock, (unsigned char *t, const unsigned char *f, int n),        \
      (t, f, n), -1)

/* The two variadic ones, forwarded by hand below. */
typedef CURLcode (*setopt_fn)(CURL *, CURLoption, ...);
typedef CURLcode (*getinfo_fn)(CURL *, CURLINFO, ...);

#define FIELD(lib, ret, name, params, args, fail) ret(*name) params;
#define VFIELD(lib, name, params, args) void(*name) params;
static struct {
    TN_LAZY_FUNCS(FIELD, VFIELD)
    setopt_fn curl_easy_setopt;
    getinfo_fn curl_easy_getinfo;
} fn;

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void *open_lib(const char *soname) {
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) fprintf(stderr, "tenantry: cannot load %s: %s\n", soname, dlerror());
    return h;
}

/* Stores lib's function name in *slot (a function pointer), or leaves it NULL. */
static void resolve(void *lib, const char *name, void *slot, size_t size) {
    void *p = lib ? dlsym(lib, name) : NULL;
    if (p && size == sizeof p) memcpy(slot, &p, size);
}

/* Resolves every function; one missing from a library that did load leaves
 * only that one failing. */
static void load(void) {
    void *curl = open_lib(TN_LIBCURL_SONAME), *crypto = open_lib(TN_LIBCRYPTO_SONAME);
#define RESOLVE(lib, ret, name, params, args, fail) \
    resolve(lib, #name, &fn.name, sizeof fn.name);
#define VRESOLVE(lib, name, params, args) RESOLVE(lib, void, name, params, args, 0)
    TN_LAZY_FUNCS(RESOLVE, VRESOLVE)
    RESOLVE(curl, CURLcode, curl_easy_setopt, (), (), 0)
    RESOLVE(curl, CURLcode, curl_easy_getinfo, (), (), 0)
}

#define DEFINE(lib, ret, name, params, args, fail) \
    ret name params {                              \
        pthread_once(&once, load);                 \
        return fn.name ? fn.name args : fail;      \
    }
#define VDEFINE(lib, name, params, args) \
    void name params {                   \
        pthread_once(&once, load);       \
        if (fn.name) fn.name args;       \
    }
TN_LAZY_FUNCS(DEFINE, VDEFINE)

/* curl_easy_setopt takes one argument after the option, whose type the
 * option's number range names (curl.h, CURLOPTTYPE_*). */
CURLcode curl_easy_setopt(CURL *h, CURLoption opt, ...) {
    pthread_once(&once, load);
    if (!fn.curl_easy_setopt) return CURLE_FAILED_INIT;
    va_list ap;
    va_start(ap, opt);
    CURLcode rc;
    if (opt < CURLOPTTYPE_OBJECTPOINT) {
        long v = va_arg(ap, long);
        rc = fn.curl_easy_setopt(h, opt, v);
    } else if (opt < CURLOPTTYPE_FUNCTIONPOINT) {
        void *v = va_arg(ap, void *);
        rc = fn.curl_easy_setopt(h, opt, v);
    } else if (opt < CURLOPTTYPE_OFF_T) {
        void (*v)(void) = va_arg(ap, void (*)(void));
        rc = fn.curl_easy_setopt(h, opt, v);
    } else if (opt < CURLOPTTYPE_BLOB) {
        curl_off_t v = va_arg(ap, curl_off_t);
        rc = fn.curl_easy_setopt(h, opt, v);
    } else {
        void *v = va_arg(ap, void *); /* struct curl_blob * */
        rc = fn.curl_easy_setopt(h, opt, v);
    }
    va_end(ap);
    return rc;
}

/* Every curl_easy_getinfo takes a pointer to the result. */
CURLcode curl_easy_getinfo(CURL *h, CURLINFO info, ...) {
    pthread_once(&once, load);
    if (!fn.curl_easy_getinfo) return CURLE_FAILED_INIT;
    va_list ap;
    va_start(ap, info);
    void *out = va_arg(ap, void *);
    va_end(ap);
    return fn.curl_easy_getinfo(h, info, out);
}
