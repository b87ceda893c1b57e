/*
 * queue.c - smtpd's hand-off to cleanup (include/cleanup_client.h).
 *
 * Offers the smtpd_queue_* calls the protocol code uses; the fuzz target
 * replaces this file with an in-memory stand-in. cleanup is a local
 * service, so these calls block briefly; cleanup answers the final status
 * only after the queue file is fsync'd, and only then does smtpd say 250.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cleanup_client.h"
#include "msg.h"
#include "smtpd.h"

/* master.cf's sample runs cleanup as a public service (private = n), as Postfix does. */
#define CLEANUP_PUBLIC  "public/cleanup"
#define CLEANUP_PRIVATE "private/cleanup"

struct smtpd_queue {
    cleanup_client *client;
};

/* smtpd_queue_open - connect to cleanup; learn the queue ID */
int smtpd_queue_open(smtpd_session *s, vbuf *err)
{
    cleanup_client *c = cleanup_open(CLEANUP_PUBLIC, 0, err);

    if (c == NULL && access(CLEANUP_PUBLIC, F_OK) < 0) {
        vbuf_reset(err);
        c = cleanup_open(CLEANUP_PRIVATE, 0, err);
    }
    if (c == NULL)
        return -1;
    s->queue = (smtpd_queue *) c;
    snprintf(s->queue_id, sizeof(s->queue_id), "%s", cleanup_queue_id(c));
    return 0;
}

/* smtpd_queue_attr - one envelope attribute */
void smtpd_queue_attr(smtpd_session *s, const char *name, const char *value)
{
    cleanup_attr((cleanup_client *) s->queue, name, value);
}

/* smtpd_queue_rcpt - one recipient with its DSN data */
void smtpd_queue_rcpt(smtpd_session *s, const char *addr, const char *orcpt, int notify)
{
    cleanup_rcpt((cleanup_client *) s->queue, addr, orcpt, notify);
}

/* smtpd_queue_content - a piece of the message as received */
int smtpd_queue_content(smtpd_session *s, const void *data, size_t len)
{
    if (s->queue == NULL)
        return -1;
    return cleanup_content((cleanup_client *) s->queue, data, len);
}

/* smtpd_queue_finish - end the message; CLEANUP_* with the reason */
int smtpd_queue_finish(smtpd_session *s, vbuf *reason)
{
    cleanup_client *c = (cleanup_client *) s->queue;

    s->queue = NULL;
    if (c == NULL)
        return CLEANUP_DEFER;
    return cleanup_finish(c, reason);
}

/* smtpd_queue_abort - drop the message; nothing is queued */
void smtpd_queue_abort(smtpd_session *s)
{
    cleanup_client *c = (cleanup_client *) s->queue;

    s->queue = NULL;
    if (c)
        cleanup_abort(c);
}
