/*
 * status - per-target outcomes: setting them, logging them in Postfix's
 * format (deliver_log), and folding them into the one result per recipient
 * that qmgr receives (defer beats bounce beats sent).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "deliver.h"
#include "local.h"
#include "msg.h"
#include "vbuf.h"

/* local_status_init - an empty outcome (sent, 2.0.0) */
void local_status_init(local_status *st)
{
    st->status = DELIVER_OK;
    memcpy(st->dsn, "2.0.0", 6);
    vbuf_init(&st->reason, 0);
}

/* local_status_free - release the reason text */
void local_status_free(local_status *st)
{
    vbuf_release(&st->reason);
}

/* local_status_set - record an outcome; control characters in the text become spaces */
void local_status_set(local_status *st, int status, const char *dsn, const char *fmt, ...)
{
    va_list ap;

    st->status = status;
    (void) snprintf(st->dsn, sizeof(st->dsn), "%s", dsn);
    vbuf_reset(&st->reason);
    va_start(ap, fmt);
    (void) vbuf_vprintf(&st->reason, fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < st->reason.len; i++)
        if ((unsigned char) st->reason.data[i] < 0x20 || st->reason.data[i] == 0x7f)
            st->reason.data[i] = ' ';
    if (st->reason.len > LOCAL_REASON_MAX)
        vbuf_truncate(&st->reason, LOCAL_REASON_MAX);
}

/* local_rank - how bad an outcome is for the recipient as a whole */
static int local_rank(int status)
{
    return status == DELIVER_DEFER ? 2 : status == DELIVER_BOUNCE ? 1 : 0;
}

/* local_result - log one target's outcome and fold it into the recipient's result */
void local_result(local_ctx *c, const char *target, const local_status *st)
{
    local_acc *acc = c->acc;
    deliver_rcpt r = *c->rcpt;
    deliver_result res;
    const char *orig = c->rcpt->orig ? c->rcpt->orig : c->rcpt->address;

    memset(&res, 0, sizeof(res));
    res.index = c->rcpt->index;
    res.status = st->status;
    memcpy(res.dsn, st->dsn, sizeof(res.dsn));
    res.action = st->status == DELIVER_OK ? "delivered" : st->status == DELIVER_DEFER ? "delayed" : "failed";
    res.reason = (char *) vbuf_str(&st->reason);
    res.relay = c->msg->req->transport && *c->msg->req->transport ? c->msg->req->transport : "local";
    /* The log names the target; orig_to names what the sender wrote when it differs. */
    r.address = (char *) target;
    r.orig = strcmp(target, orig) != 0 ? (char *) orig : NULL;
    deliver_log(c->msg->req, &r, &res, c->msg->start, c->msg->start);

    acc->ntargets++;
    if (acc->ntargets == 1 || local_rank(st->status) > local_rank(acc->status)) {
        acc->status = st->status;
        memcpy(acc->dsn, st->dsn, sizeof(acc->dsn));
        (void) vbuf_set(&acc->reason, vbuf_str(&st->reason));
    }
}
