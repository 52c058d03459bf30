/*
 * group.c - group commit: concurrent writes share one transaction and one
 * fsync.
 *
 * With synchronous=FULL every commit waits for the disk, so one transaction
 * per write caps a busy appliance at the disk's fsync rate.  Instead, a write
 * made outside an explicit transaction joins a queue.  The first writer to
 * find no leader becomes the leader: it takes everything queued (up to
 * MAX_BATCH writes), runs each on its own connection inside its own SAVEPOINT,
 * so one write's failure never touches another's, then commits once and wakes
 * the writers with their results.  Writers that arrive during that commit
 * form the next group.  A lone writer is a group of one.
 *
 * Isolation is unchanged: the leader runs each write with current_tenant()
 * set to that write's own session tenant, through the same views, triggers
 * and guard.  A write's result (and any error detail) goes to its own session.
 *
 * Locking: st->gc_mu guards the queue and the leader flag; a writer sleeps on
 * st->gc_cv until its op is done.
 */
#include "store_int.h"

#include <stdio.h>
#include <string.h>

#define MAX_BATCH 256

static const char SQL_SAVEPOINT[] = "SAVEPOINT tn_write";
static const char SQL_RELEASE[] = "RELEASE tn_write";
static const char SQL_ROLLBACK_TO[] = "ROLLBACK TO tn_write";

typedef struct tn__op {
    tn_session *s;
    tn__op_fn fn;
    void *arg;
    int rc;
    int done;
    struct tn__op *next;
} tn__op;

/* Runs one queued write on the leader's connection, as the write's tenant. */
static void run_op(tn__conn *c, tn__op *op) {
    tn_session view = *op->s; /* the writer's tenant, the leader's connection */
    view.c = c;
    view.errmsg[0] = '\0';
    c->tenant = op->s->tid;
    int rc = tn__exec(c, SQL_SAVEPOINT);
    if (rc == TN_OK) {
        rc = op->fn(&view, op->arg);
        if (rc != TN_OK) tn__exec(c, SQL_ROLLBACK_TO);
        tn__exec(c, SQL_RELEASE);
    } else {
        snprintf(view.errmsg, sizeof view.errmsg, "%s", tn_errmsg(c->st));
    }
    op->rc = rc;
    /* The writer is asleep until done is set, so its session is ours. */
    memcpy(op->s->errmsg, view.errmsg, sizeof view.errmsg);
}

static void lead(tn_session *me, tn__op *batch) {
    tn__conn *c = me->c;
    int64_t own = c->tenant;
    int rc = tn__hlc_ensure(c);
    if (rc == TN_OK) rc = tn__begin(c);
    if (rc == TN_OK) {
        for (tn__op *op = batch; op; op = op->next) run_op(c, op);
        rc = tn__commit(c);
        if (rc != TN_OK) tn__rollback(c);
    }
    c->tenant = own;
    if (rc == TN_OK) return;
    /* Nothing of this group committed: every write fails with the reason. */
    for (tn__op *op = batch; op; op = op->next) {
        if (op->rc == TN_OK) {
            op->rc = rc;
            snprintf(op->s->errmsg, sizeof op->s->errmsg, "%s", tn_errmsg(c->st));
        }
    }
}

int tn__group_write(tn_session *s, tn__op_fn fn, void *arg) {
    /* Inside the caller's own transaction the write is simply part of it. */
    if (!sqlite3_get_autocommit(s->c->db)) return fn(s, arg);

    tn_store *st = s->st;
    tn__op op = {s, fn, arg, TN_OK, 0, NULL};
    pthread_mutex_lock(&st->gc_mu);
    if (st->gc_tail)
        st->gc_tail->next = &op;
    else
        st->gc_head = &op;
    st->gc_tail = &op;
    while (!op.done) {
        if (st->gc_leader) {
            pthread_cond_wait(&st->gc_cv, &st->gc_mu);
            continue;
        }
        /* Lead: take up to MAX_BATCH queued writes (ours is among them,
         * since only done ops leave the queue). */
        st->gc_leader = 1;
        tn__op *batch = st->gc_head, *last = batch;
        for (int n = 1; n < MAX_BATCH && last->next; n++) last = last->next;
        st->gc_head = last->next;
        if (!st->gc_head) st->gc_tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&st->gc_mu);

        lead(s, batch);

        pthread_mutex_lock(&st->gc_mu);
        st->gc_groups++;
        for (tn__op *o = batch; o; o = o->next) {
            o->done = 1;
            st->gc_writes++;
        }
        st->gc_leader = 0;
        pthread_cond_broadcast(&st->gc_cv);
    }
    pthread_mutex_unlock(&st->gc_mu);
    return op.rc;
}
