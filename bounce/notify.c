/*
 * notify - turn one {request, queue_id, queue_name} into at most one notice:
 * read the status log and the queue file, pick the recipients the notice
 * owes (NOTIFY), decide who gets it (the sender; the postmaster for a
 * notice about a notice; nobody for a failed postmaster notice), and hand
 * the RFC 3464 report to cleanup with the null sender.
 *
 * Trusts: nothing in the log or queue file beyond what bounce_log_read and
 * qfile_open validated; the queue name was checked by the caller.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bounce.h"
#include "bounce_log.h"
#include "cleanup_client.h"
#include "conf.h"
#include "mail_queue.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "qfile.h"
#include "strutil.h"
#include "vbuf.h"

/* notify_content - the original message's chunks from the queue file */
static ssize_t notify_content(void *ctx, const char **data)
{
    return qfile_content_next((qfile_content *) ctx, data);
}

/* notify_to_cleanup - the notice's bytes into the cleanup stream */
static int notify_to_cleanup(void *ctx, const void *data, size_t len)
{
    return cleanup_content((cleanup_client *) ctx, data, len);
}

/* notify_is_double_bounce_sender - SENDER is the address postmaster notices come from */
static int notify_is_double_bounce_sender(const char *sender)
{
    size_t n = strlen(var_double_bounce_sender);

    return strncasecmp(sender, var_double_bounce_sender, n) == 0 && (sender[n] == 0 || sender[n] == '@');
}

/* notify_log_queue - which status log a request kind reads */
static const char *notify_log_queue(int kind)
{
    return kind == DSN_KIND_FAILURE ? MAIL_QUEUE_BOUNCE : kind == DSN_KIND_DELAY ? MAIL_QUEUE_DEFER : MAIL_QUEUE_TRACE;
}

/* notify_finish - what a request's completion removes */
static int notify_finish(int kind, const char *queue_id)
{
    if (kind == DSN_KIND_FAILURE)
        return bounce_log_remove(MAIL_QUEUE_BOUNCE, queue_id);
    if (kind == DSN_KIND_SUCCESS || kind == DSN_KIND_VERIFY)
        return bounce_log_remove(MAIL_QUEUE_TRACE, queue_id);
    return 0;
}

/* notify_send - build the notice and queue it via cleanup; 0 or -1 */
static int notify_send(dsn_notice *n, qfile *q, const char *env_sender)
{
    cleanup_client *c;
    qfile_content it;
    vbuf err, boundary, mid;
    int status, ret = -1;

    vbuf_init(&err, 0);
    vbuf_init(&boundary, 0);
    vbuf_init(&mid, 0);
    c = cleanup_open("public/cleanup", CLEANUP_FLAG_BOUNCE, &err);
    if (c == NULL) {
        msg_warn("%s: cannot queue notice: %s", n->queue_id, vbuf_str(&err));
        goto out;
    }
    (void) vbuf_printf(&boundary, "%s.%lld/%s", cleanup_queue_id(c), (long long) n->now, n->myhostname);
    (void) vbuf_set(&mid, cleanup_queue_id(c));
    n->boundary = vbuf_str(&boundary);
    n->message_id = vbuf_str(&mid);
    cleanup_attr(c, "sender", env_sender);
    cleanup_attr(c, "origin", "bounce");
    cleanup_attr(c, "body", n->body_8bit ? "8bitmime" : "7bit");
    cleanup_rcpt(c, n->to, NULL, 0);
    qfile_content_begin(q, &it);
    n->content = notify_content;
    n->content_ctx = &it;
    if (dsn_write(n, notify_to_cleanup, c) != 0) {
        qfile_content_end(&it);
        msg_warn("%s: cannot queue notice: content write failed", n->queue_id);
        cleanup_abort(c);
        goto out;
    }
    qfile_content_end(&it);
    status = cleanup_finish(c, &err);
    if (status != CLEANUP_OK) {
        msg_warn("%s: cannot queue notice: %s", n->queue_id, vbuf_str(&err));
        goto out;
    }
    msg_info("%s: %s %s notification: %s", n->queue_id, n->postmaster_copy ? "postmaster" : "sender",
             n->kind == DSN_KIND_FAILURE ? "non-delivery"
             : n->kind == DSN_KIND_DELAY ? "delay"
                                         : "delivery status",
             vbuf_str(&mid));
    ret = 0;
out:
    vbuf_release(&err);
    vbuf_release(&boundary);
    vbuf_release(&mid);
    return ret;
}

/* bounce_notify - serve one request; 0 done (or nothing owed), -1 try later */
int bounce_notify(int kind, const char *queue_name, const char *queue_id)
{
    bounce_log_entry *entries = NULL;
    dsn_notice n;
    qfile *q = NULL;
    vbuf path, err, from, dbl;
    const char *sender, *v;
    int count, ret = -1;
    size_t keep = 0;

    vbuf_init(&path, 0);
    vbuf_init(&err, 0);
    vbuf_init(&from, 0);
    vbuf_init(&dbl, 0);
    count = bounce_log_read(notify_log_queue(kind), queue_id, &entries);
    if (count < 0)
        goto out;
    if (count == 0) {
        ret = notify_finish(kind, queue_id);
        goto out;
    }
    mail_queue_path(&path, queue_name, queue_id);
    if ((q = qfile_open(vbuf_str(&path), 0, &err)) == NULL) {
        msg_warn("%s: cannot read queue file %s: %s", queue_id, vbuf_str(&path), vbuf_str(&err));
        goto out;
    }
    keep = dsn_select(kind, entries, (size_t) count);
    count = 0;
    if (kind == DSN_KIND_DELAY) {
        /* Recipients finished since their last deferral are no longer delayed. */
        size_t w = 0;

        for (size_t i = 0; i < keep; i++) {
            long idx = entries[i].rcpt.index;

            if (idx >= 0 && (size_t) idx < q->nrcpt && q->rcpts[idx].done)
                dsn_entry_release(&entries[i]);
            else
                entries[w++] = entries[i];
        }
        keep = w;
    }
    sender = qfile_attr(q, "sender");
    if (sender == NULL)
        sender = "";
    memset(&n, 0, sizeof(n));
    n.kind = kind;
    n.myhostname = var_myhostname;
    (void) vbuf_printf(&from, "%s@%s", var_empty_address_recipient, var_myorigin);
    n.from = vbuf_str(&from);
    n.queue_id = queue_id;
    n.orig_sender = sender;
    n.envid = qfile_attr(q, "envid");
    n.arrival = (v = qfile_attr(q, "arrival")) ? strtod(v, NULL) : 0;
    n.now = time(NULL);
    n.retry_until = (time_t) n.arrival + var_maximal_queue_lifetime;
    n.ret_hdrs = (v = qfile_attr(q, "ret")) != NULL && strcmp(v, "hdrs") == 0;
    v = qfile_attr(q, "body");
    n.body_8bit = v != NULL && strcmp(v, "7bit") != 0;
    if (kind != DSN_KIND_FAILURE || q->size > var_bounce_size_limit)
        n.ret_hdrs = 1; /* RFC 3461 §4.3: full content only with failures */
    if (v != NULL && strcmp(v, "binarymime") == 0)
        n.ret_hdrs = 1; /* binary content cannot ride in message/rfc822 */
    n.entries = entries;
    n.nentries = keep;

    if (keep == 0) {
        ret = notify_finish(kind, queue_id);
    } else if (*sender == 0 && kind != DSN_KIND_FAILURE) {
        /* RFC 3461 §6.2: no delay or success notices about notices. */
        ret = notify_finish(kind, queue_id);
    } else if (notify_is_double_bounce_sender(sender)) {
        msg_info("%s: undeliverable postmaster notification discarded", queue_id);
        ret = notify_finish(kind, queue_id);
    } else if (*sender == 0) {
        /* A notice failed: tell the postmaster, from an address whose failures end here. */
        n.postmaster_copy = 1;
        n.to = var_2bounce_notice_recipient;
        (void) vbuf_printf(&dbl, "%s@%s", var_double_bounce_sender, var_myorigin);
        if ((ret = notify_send(&n, q, vbuf_str(&dbl))) == 0)
            ret = notify_finish(kind, queue_id);
    } else {
        n.to = sender;
        if ((ret = notify_send(&n, q, "")) == 0)
            ret = notify_finish(kind, queue_id);
    }
out:
    if (q)
        qfile_close(q);
    bounce_log_free(entries, count > 0 ? (size_t) count : keep);
    vbuf_release(&path);
    vbuf_release(&err);
    vbuf_release(&from);
    vbuf_release(&dbl);
    return ret;
}
