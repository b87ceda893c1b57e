/*
 * bounce_log - per-recipient status logs and requests to the bounce service.
 *
 * qmgr appends one record per recipient outcome to bounce/ID (hard
 * failures), defer/ID (temporary failures, for delay notices and mailq
 * reasons) or trace/ID (successes the sender asked to hear about:
 * NOTIFY=SUCCESS, and "relayed" to a next hop without DSN). Each record
 * is one attr frame (attr.h payload encoding, length-prefixed) holding the
 * deliver_result fields and the recipient (address, orcpt, orig, notify,
 * index), so the bounce service can write RFC 3464 reports from them.
 * Files live under the hashed queue paths of mail_queue.h.
 *
 * When qmgr is done with a message it asks the bounce service
 * (private/bounce, greeting {protocol = "bounce"}) for the notices owed:
 * {request = "bounce" | "delay" | "success", queue_id = ID, queue_name = Q}
 * and gets {status = 0} once the notice is queued via cleanup (or nothing
 * was owed), non-zero if it must try again later. "bounce" also removes
 * bounce/ID; "success" removes trace/ID.
 */
#ifndef KITE_BOUNCE_LOG_H
#define KITE_BOUNCE_LOG_H

#include <stddef.h>

#include "deliver.h"

typedef struct bounce_log_entry {
    deliver_rcpt rcpt;
    deliver_result result;
    long long when;                     /* time of the attempt */
} bounce_log_entry;

/* bounce_log_append - add one record to LOGQUEUE/ID and fsync it; 0 or -1 */
int bounce_log_append(const char *log_queue, const char *queue_id, const deliver_rcpt *rcpt,
                      const deliver_result *res);

/* bounce_log_read - all records of LOGQUEUE/ID; count or -1 (ENOENT: 0) */
int bounce_log_read(const char *log_queue, const char *queue_id, bounce_log_entry **entries);
void bounce_log_free(bounce_log_entry *entries, size_t count);
/* bounce_log_parse - validate and split a whole log's bytes; count or -1 */
int bounce_log_parse(const void *data, size_t len, bounce_log_entry **entries);
int bounce_log_remove(const char *log_queue, const char *queue_id);

/* bounce_request - ask the bounce service for a notice; 0 done, -1 try later */
int bounce_request(const char *kind, const char *queue_name, const char *queue_id);

#endif
