/*
 * remote_aws.h - the AWS backend of the remote interface: DynamoDB rows and
 * S3 objects (see remote_aws.c), configured from the environment (aws.h).
 */
#ifndef TN_REMOTE_AWS_H
#define TN_REMOTE_AWS_H

#include "remote.h"

/* A tn_remote_open_fn: arg is ignored.  Register it as "aws". */
int tn_remote_aws_open(const char *arg, tn_remote **out, char *err, size_t errlen);

/* Tests: list() and tenants() ask for at most n rows per request (0, the
 * default: DynamoDB's 1 MB pages), so paging is exercised on small data. */
void tn__remote_aws_page_rows(tn_remote *r, int n);
/* Requests a connection has made (what a call costs). */
int64_t tn__remote_aws_requests(const tn_remote_conn *c);

#endif
