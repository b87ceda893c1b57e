/*
 * cleanup_client - how smtpd, pickup and bounce hand a message to cleanup.
 *
 * cleanup_open connects to public/cleanup (master.cf runs cleanup with
 * private = n, as Postfix does; private/cleanup is tried too); cleanup greets with
 * {protocol = "cleanup", queue_id = ID} (the ID is fixed from then on, so
 * smtpd can log it and put it in Received:). The client sends the envelope
 * (attributes, then recipients), the content in chunks exactly as received
 * (CRLF line ends, no dot-stuffing; local submissions may use bare LF, which
 * cleanup turns into CRLF), then "end". cleanup answers with its status only
 * after the queue file is fsync'd and renamed into incoming/.
 */
#ifndef KITE_CLEANUP_CLIENT_H
#define KITE_CLEANUP_CLIENT_H

#include <stddef.h>

#include "queue_id.h"
#include "vbuf.h"

#define CLEANUP_FLAG_LOCAL       (1 << 0)  /* local submission: add From/Date/Message-ID, LF ends */
#define CLEANUP_FLAG_EXTRACT     (1 << 1)  /* sendmail -t: recipients from headers, drop Bcc */
#define CLEANUP_FLAG_BOUNCE      (1 << 2)  /* a notice from bounce: no header/body checks */
#define CLEANUP_FLAG_HOLD        (1 << 3)  /* put straight into hold/ */
#define CLEANUP_FLAG_NO_REWRITE  (1 << 4)  /* skip canonical/virtual mapping */

/* Status classes in cleanup_finish's result. */
#define CLEANUP_OK     0
#define CLEANUP_DEFER  4                /* 4xx: try again */
#define CLEANUP_REJECT 5                /* 5xx: permanent */

typedef struct cleanup_client cleanup_client;

/* cleanup_open - connect and read the greeting; NULL with err set */
cleanup_client *cleanup_open(const char *service_path, int flags, vbuf *err);
const char *cleanup_queue_id(const cleanup_client *c);
void cleanup_attr(cleanup_client *c, const char *name, const char *value);
void cleanup_rcpt(cleanup_client *c, const char *address, const char *orcpt, int notify);
int cleanup_content(cleanup_client *c, const void *data, size_t len);  /* 0 or -1 */
/*
 * cleanup_finish - end the message, wait for the verdict; returns CLEANUP_*
 * and the reply text ("5.7.1 message content rejected", or for CLEANUP_OK
 * the queue ID) in reason. The client is freed.
 */
int cleanup_finish(cleanup_client *c, vbuf *reason);
void cleanup_abort(cleanup_client *c);  /* nothing gets queued */
/*
 * The same in two steps, for event-driven clients: cleanup_send_end sends the
 * rest and "end" (0, or -1: the verdict will be a deferral); the verdict
 * then arrives on cleanup_verdict_fd(); cleanup_verdict reads it (returns as
 * cleanup_finish does) and frees the client.
 */
int cleanup_send_end(cleanup_client *c);
int cleanup_verdict_fd(const cleanup_client *c);
int cleanup_verdict(cleanup_client *c, vbuf *reason);

#endif
