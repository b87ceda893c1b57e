/*
 * deliver_mark - the delivery agent's side of "a recipient is marked done
 * in the queue file (and synced) before the message is removed": after
 * delivering, and before reporting to qmgr, the agent rewrites the status
 * byte of each recipient that is finished for good. It does not sync: qmgr
 * removes finished files in batches and makes every mark durable with one
 * syncfs of the queue file system before it removes any of them (see
 * qmgr/remove.c), one sync per batch instead of one per message.
 *
 * Offers deliver_mark_done() (see deliver.h). Only recipients that need no
 * further record are marked: delivered, not a verify probe, no NOTIFY=SUCCESS
 * and not relayed to a next hop without DSN (those need a trace record,
 * and bounces a bounce record, appended by qmgr before the recipient is
 * marked done). A crash between delivery and marking, or a power loss
 * before qmgr's sync, means one duplicate delivery; a mark is never written
 * before the delivery it records.
 *
 * Trusts the queue file as far as qfile_open validated it. Trusts nothing
 * in the request or results beyond their strict decoding: the queue must
 * be active/, the file must be the request's (same queue ID), and each
 * result's recipient index must be a recipient of this request, inside the
 * file, with the address the request gave. Anything else is not marked
 * (and logged); qmgr then does the marking itself.
 */
#include <string.h>

#include "deliver.h"
#include "mail_queue.h"
#include "msg.h"
#include "mymalloc.h"
#include "qfile.h"
#include "vbuf.h"

/* request_rcpt - the request's recipient with this queue file index, or NULL */
static const deliver_rcpt *request_rcpt(const deliver_request *req, long index)
{
    for (size_t i = 0; i < req->nrcpt; i++)
        if (req->rcpts[i].index == index)
            return &req->rcpts[i];
    return NULL;
}

/* markable - a result the agent may mark done by itself */
static const deliver_rcpt *markable(const deliver_request *req, const deliver_result *res)
{
    const deliver_rcpt *r;

    if (res->status != DELIVER_OK || res->relayed_no_dsn || (req->flags & DELIVER_FLAG_VERIFY))
        return NULL;
    if ((r = request_rcpt(req, res->index)) == NULL || (r->notify & QF_NOTIFY_SUCCESS))
        return NULL;
    return r;
}

/* deliver_mark_done - mark finished recipients done in the queue file (qmgr syncs) */
int deliver_mark_done(qfile *q, const deliver_request *req, deliver_result *res, size_t n)
{
    unsigned char *wrote;
    qfile *own = NULL;
    size_t nwrote = 0, candidates = 0;
    int ret = 0;

    for (size_t i = 0; i < n; i++) {
        res[i].marked = 0;
        if (markable(req, &res[i]))
            candidates++;
    }
    if (candidates == 0)
        return 0;
    /* qmgr hands out active/ files only; anything else is not ours to write. */
    if (req->queue_name == NULL || strcmp(req->queue_name, MAIL_QUEUE_ACTIVE) != 0 || req->queue_id == NULL ||
        !mail_queue_id_ok(req->queue_id)) {
        msg_warn("deliver_mark_done: request names queue %.64s, not %s", req->queue_name ? req->queue_name : "(none)",
                 MAIL_QUEUE_ACTIVE);
        return -1;
    }
    if (q == NULL) {
        vbuf path, err;

        vbuf_init(&path, 0);
        vbuf_init(&err, 0);
        mail_queue_path(&path, req->queue_name, req->queue_id);
        if ((own = q = qfile_open(vbuf_str(&path), QFILE_RDWR, &err)) == NULL)
            msg_warn("%s: cannot mark recipients done: %s", req->queue_id, vbuf_str(&err));
        vbuf_release(&path);
        vbuf_release(&err);
        if (q == NULL)
            return -1;
    }
    if (strcmp(q->id, req->queue_id) != 0) {
        msg_warn("%s: queue file %s is not the request's; nothing marked", req->queue_id, q->id);
        qfile_close(own);
        return -1;
    }
    wrote = xcalloc(n, 1);
    for (size_t i = 0; i < n; i++) {
        const deliver_rcpt *r = markable(req, &res[i]);
        size_t idx;

        if (r == NULL)
            continue;
        if (res[i].index < 0 || (size_t) res[i].index >= q->nrcpt) {
            msg_warn("%s: recipient index %ld outside the queue file (%zu recipients); not marked", req->queue_id,
                     res[i].index, q->nrcpt);
            continue;
        }
        idx = (size_t) res[i].index;
        if (strcmp(q->rcpts[idx].address, r->address) != 0) {
            msg_warn("%s: recipient %zu is <%.200s> in the queue file, not <%.200s>; not marked", req->queue_id, idx,
                     q->rcpts[idx].address, r->address);
            continue;
        }
        if (q->rcpts[idx].done)
            continue; /* already done (or reported twice): nothing to write */
        if (qfile_mark_done(q, idx, 0) < 0) {
            msg_warn("%s: mark recipient %zu done: %m", req->queue_id, idx);
            continue;
        }
        wrote[i] = 1;
        nwrote++;
    }
    /* No sync here: qmgr syncs the file system once per batch before removing. */
    for (size_t i = 0; i < n; i++)
        if (wrote[i]) {
            res[i].marked = 1;
            ret++;
        }
    xfree(wrote);
    qfile_close(own);
    return ret;
}
