/*
 * error.c - names, messages and retry advice for tn_code, all generated from
 * the single TN_ERRNO_MAP list in tenantry.h.
 */
#include "tenantry.h"

const char *tn_strerror(int code) {
    switch (code) {
#define TN_MSG_(name, value, msg, retry) case value: return msg;
        TN_ERRNO_MAP(TN_MSG_)
#undef TN_MSG_
    }
    return "unknown error";
}

const char *tn_errname(int code) {
    switch (code) {
#define TN_NAME_(name, value, msg, retry) case value: return "TN_" #name;
        TN_ERRNO_MAP(TN_NAME_)
#undef TN_NAME_
    }
    return "TN_UNKNOWN";
}

int tn_err_retryable(int code) {
    switch (code) {
#define TN_RETRY_(name, value, msg, retry) case value: return retry;
        TN_ERRNO_MAP(TN_RETRY_)
#undef TN_RETRY_
    }
    return 0;
}
