/*
 * showq - the queue listing service (public/showq) behind kitequeue -p/-j
 * and mailq, so that users never read queue files themselves.
 *
 * After the greeting {protocol = "showq"} it writes one frame per message
 *   {queue_name, queue_id, arrival (seconds), size, sender,
 *    rcpt*, reason* (parallel: the deferral reason or "")}
 * for maildrop, incoming, active, deferred and hold, and ends with
 * {done = number of messages}. Only pending recipients are listed;
 * reasons come from the defer/ logs (bounce_log.h). Damaged files are
 * skipped (the queue manager and kitesuper -s deal with them).
 *
 * Trusts: queue files only through the strict reader.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "attr.h"
#include "bounce_log.h"
#include "mail_queue.h"
#include "mail_server.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "qfile.h"

typedef struct showq_ctx {
    stream *client;
    long count;
    int failed;
} showq_ctx;

/* showq_reason - the latest deferral reason for recipient i, or "" */
static const char *showq_reason(const bounce_log_entry *e, int n, const qfile_rcpt *r, size_t i)
{
    const char *found = "";

    for (int k = 0; k < n; k++) {
        if (e[k].rcpt.index == (long) i || (e[k].rcpt.address && strcmp(e[k].rcpt.address, r->address) == 0))
            found = e[k].result.reason ? e[k].result.reason : "";
    }
    return found;
}

/* showq_one - one message as one frame */
static void showq_one(const char *queue, const char *id, void *ctx)
{
    showq_ctx *c = ctx;
    bounce_log_entry *entries = NULL;
    const char *arrival;
    attr_list *f;
    vbuf path, err;
    qfile *q;
    int n = 0;

    if (c->failed)
        return;
    vbuf_init(&path, 0);
    vbuf_init(&err, 0);
    mail_queue_path(&path, queue, id);
    if ((q = qfile_open(path.data, 0, &err)) == NULL) {
        if (errno != ENOENT && msg_verbose)
            msg_info("skipping %s", err.data);
        vbuf_release(&path);
        vbuf_release(&err);
        return;
    }
    if (strcmp(queue, MAIL_QUEUE_DEFERRED) == 0 && (n = bounce_log_read(MAIL_QUEUE_DEFER, id, &entries)) < 0)
        n = 0;
    arrival = qfile_attr(q, "arrival");
    f = attr_new();
    attr_put_str(f, "queue_name", queue);
    attr_put_str(f, "queue_id", id);
    attr_put_int(f, "arrival", arrival ? strtoll(arrival, NULL, 10) : 0);
    attr_put_int(f, "size", q->size);
    attr_put_str(f, "sender", qfile_attr(q, "sender") ? qfile_attr(q, "sender") : "");
    for (size_t i = 0; i < q->nrcpt; i++)
        if (!q->rcpts[i].done)
            attr_put_str(f, "rcpt", q->rcpts[i].address);
    for (size_t i = 0; i < q->nrcpt; i++)
        if (!q->rcpts[i].done)
            attr_put_str(f, "reason", showq_reason(entries, n, q->rcpts + i, i));
    if (attr_write(c->client, f) < 0)
        c->failed = 1;
    else
        c->count++;
    attr_free(f);
    if (entries)
        bounce_log_free(entries, (size_t) n);
    qfile_close(q);
    vbuf_release(&path);
    vbuf_release(&err);
}

/* showq_service - list the queue to one client */
static void showq_service(stream *client, const char *service, char **argv)
{
    static const char *const queues[] = {MAIL_QUEUE_MAILDROP, MAIL_QUEUE_INCOMING, MAIL_QUEUE_ACTIVE,
                                         MAIL_QUEUE_DEFERRED, MAIL_QUEUE_HOLD,     NULL};
    showq_ctx c = {client, 0, 0};
    attr_list *f;

    (void) service;
    (void) argv;
    stream_set_timeout(client, 60);
    if (attr_greet(client, "showq") < 0)
        return;
    for (int i = 0; queues[i] && !c.failed; i++)
        if (mail_queue_scan(queues[i], showq_one, &c) < 0 && errno != ENOENT)
            msg_warn("scan %s: %m", queues[i]);
    if (c.failed)
        return;
    f = attr_new();
    attr_put_int(f, "done", c.count);
    (void) attr_write(client, f);
    attr_free(f);
}

int main(int argc, char **argv)
{
    single_server_main(argc, argv, showq_service, NULL);
}
