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
 * form the next group.  A lone writer is a group of one.  A write's answer is
 * given only once the group's fate is known, and says exactly whether the
 * write is stored, even when an error undoes the whole transaction (lead()).
 *
 * Isolation is unchanged: the leader runs each write with current_tenant()
 * set to that write's own session tenant, through the same views, triggers
 * and guard.  A write's result (and any error detail) goes to its own session.
 *
 * Locking: st->gc_mu guards the queue, its length and the leader flag; a
 * writer sleeps on st->gc_cv until its op is done.
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
    int settled; /* its answer is final (lead()) */
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

static void settle(tn__op *op, int rc, const char *why) {
    op->settled = 1;
    if (rc == TN_OK) return;
    op->rc = rc;
    if (why) snprintf(op->s->errmsg, sizeof op->s->errmsg, "%s", why);
}

/*
 * Runs the batch in one transaction and commits it.  An error that makes
 * SQLite roll back the whole transaction (I/O error, out of memory, an
 * interrupt) also undoes the writes that ran before it in the group, which
 * succeeded in their savepoints, and leaves the connection outside any
 * transaction: a later write's SAVEPOINT would then begin and commit a
 * transaction of its own.  So after every write the leader checks that its
 * transaction is still there; when it is not, the write during which it went
 * fails, and every other unsettled write runs again in a new transaction.
 * Each round settles at least one write, so this ends; every answer then says
 * exactly whether the write is stored.
 */
static void lead(tn_session *me, tn__op *batch) {
    tn__conn *c = me->c;
    int64_t own = c->tenant;
    for (;;) {
        int rc = tn__hlc_ensure(c);
        if (rc == TN_OK) rc = tn__begin(c);
        if (rc != TN_OK) {
            for (tn__op *op = batch; op; op = op->next)
                if (!op->settled) settle(op, rc, tn_errmsg(c->st));
            break;
        }
        tn__op *lost = NULL;
        for (tn__op *op = batch; op && !lost; op = op->next) {
            if (op->settled) continue;
            run_op(c, op);
            if (sqlite3_get_autocommit(c->db)) lost = op;
        }
        if (lost) {
            /* The transaction is gone, with every write of this round. */
            settle(lost, lost->rc != TN_OK ? lost->rc : TN_ERROR,
                   lost->rc != TN_OK ? NULL : "the transaction was rolled back");
            continue;
        }
        rc = tn__commit(c);
        if (rc != TN_OK) tn__rollback(c);
        /* Nothing of a failed commit is stored: its writes fail with it. */
        for (tn__op *op = batch; op; op = op->next)
            if (!op->settled) settle(op, op->rc == TN_OK ? rc : TN_OK, tn_errmsg(c->st));
        break;
    }
    c->tenant = own;
}

int tn__group_write(tn_session *s, tn__op_fn fn, void *arg) {
    /* Inside the caller's own transaction the write is simply part of it. */
    if (!sqlite3_get_autocommit(s->c->db)) return fn(s, arg);

    tn_store *st = s->st;
    tn__op op = {s, fn, arg, TN_OK, 0, 0, NULL};
    pthread_mutex_lock(&st->gc_mu);
    if (st->gc_tail)
        st->gc_tail->next = &op;
    else
        st->gc_head = &op;
    st->gc_tail = &op;
    st->gc_queued++;
    while (!op.done) {
        if (st->gc_leader) {
            pthread_cond_wait(&st->gc_cv, &st->gc_mu);
            continue;
        }
        /* Lead: take up to MAX_BATCH queued writes (ours is among them,
         * since only done ops leave the queue). */
        st->gc_leader = 1;
        tn__op *batch = st->gc_head, *last = batch;
        int n = 1;
        for (; n < MAX_BATCH && last->next; n++) last = last->next;
        st->gc_queued -= n;
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
