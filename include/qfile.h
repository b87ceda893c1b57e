/*
 * qfile - the queue file: typed, length-prefixed records.
 *
 * Every record is: type (1 byte), length (4 bytes, big-endian), data.
 * A file is, in order:
 *
 *   'V' "KITE1"                     format version (first record)
 *   'Z' 20 decimal digits           content size in bytes (slot, rewritten)
 *   'W' 20 decimal digits           delay warning time, 0 = none/sent (slot)
 *   'A' "name=value"                envelope attributes, any number:
 *         arrival (sec.usec), sender (may be empty), envid, ret (full|hdrs),
 *         body (7bit|8bitmime|binarymime), smtputf8 (0|1), client_name,
 *         client_addr, client_port, helo, protocol, sasl_method,
 *         sasl_username, origin (smtp|local|bounce), ...
 *   recipient groups, before and/or after the content:
 *   'O' orcpt ("rfc822;user@example.com", decoded)      optional
 *   'F' original recipient before rewriting              optional
 *   'N' DSN notify flags, decimal (QF_NOTIFY_*)          optional
 *   'R' status byte + address; the status byte is '-' (pending) and is
 *       rewritten in place to 'D' (done) when the recipient is finished
 *   'M' ""                          content follows
 *   'C' bytes                       content chunks: the message as sent in
 *                                   SMTP, CRLF line ends, no dot-stuffing
 *   'E' ""                          end marker (last record)
 *
 * A file without its end marker is never delivered. The reader validates
 * every record; a damaged file is reported (and moved to corrupt/ by the
 * caller), never trusted.
 */
#ifndef KITE_QFILE_H
#define KITE_QFILE_H

#include <stddef.h>
#include <sys/types.h>

#include "queue_id.h"
#include "vbuf.h"

#define QFILE_VERSION "KITE1"
#define QFILE_MAX_RECORD (1024 * 1024)

/* DSN NOTIFY flags (RFC 3461); none given = 0 = default (FAILURE). */
#define QF_NOTIFY_NEVER   (1 << 0)
#define QF_NOTIFY_SUCCESS (1 << 1)
#define QF_NOTIFY_FAILURE (1 << 2)
#define QF_NOTIFY_DELAY   (1 << 3)

typedef struct qfile_rcpt {
    char *address;
    char *orcpt;                        /* NULL if none */
    char *orig;                         /* NULL if same as address */
    int notify;
    int done;
    off_t slot;                         /* file offset of the status byte */
} qfile_rcpt;

/* ---- writing (cleanup) ---- */

typedef struct qfile_writer qfile_writer;

/*
 * qfile_create - start a new file in queue (e.g. "incoming") under a
 * temporary name; the queue ID is known at once. Paths are relative to the
 * current directory (processes run in queue_directory).
 */
qfile_writer *qfile_create(const char *queue, vbuf *err);
const char *qfile_writer_id(const qfile_writer *w);
/*
 * qfile_create_reuse - qfile_create that first tries to take a retired
 * queue file from recycle/ (mail_queue_reuse; cleanup's way): it is written
 * over and truncated to the new length, so only the new message remains.
 */
qfile_writer *qfile_create_reuse(const char *queue, vbuf *err);
/* qfile_create_mode - qfile_create with an explicit file mode (kitedrop: 0644) */
qfile_writer *qfile_create_mode(const char *queue, mode_t mode, vbuf *err);
/* qfile_writer_set_queue - finish into another queue (e.g. "hold"; same file system) */
void qfile_writer_set_queue(qfile_writer *w, const char *queue);
int qfile_put_attr(qfile_writer *w, const char *name, const char *value);
int qfile_put_rcpt(qfile_writer *w, const char *address, const char *orcpt, const char *orig, int notify);
int qfile_put_warn_time(qfile_writer *w, long long when);
int qfile_put_content(qfile_writer *w, const void *data, size_t len);  /* after all pre-content rcpts */
/* qfile_finish - size slot, end marker, fsync, rename to ID, fsync dir */
int qfile_finish(qfile_writer *w, vbuf *err);
void qfile_abort(qfile_writer *w);      /* remove the temporary file */

/* ---- reading (qmgr, agents, tools) ---- */

typedef struct qfile {
    int fd;
    char id[QUEUE_ID_SIZE];
    char **attr_names, **attr_values;
    size_t nattr;
    qfile_rcpt *rcpts;
    size_t nrcpt;
    long long size;                     /* from the 'Z' slot */
    long long warn_time;
    off_t warn_slot;
    off_t content_start;                /* offset of the first 'C' record */
} qfile;

#define QFILE_RDWR (1 << 0)             /* open for marking recipients done */

/* qfile_open - read and validate everything but the content */
qfile *qfile_open(const char *path, int flags, vbuf *err);
void qfile_close(qfile *q);
const char *qfile_attr(const qfile *q, const char *name);  /* NULL if absent */

/* qfile_mark_done - rewrite a recipient's status byte; fsync if sync */
int qfile_mark_done(qfile *q, size_t index, int sync);
int qfile_set_warn_time(qfile *q, long long when);
int qfile_sync(qfile *q);
/* qfile_sync_data - fdatasync: enough after in-place slot rewrites (no size change) */
int qfile_sync_data(qfile *q);

/* Content, chunk by chunk: returns bytes (>0), 0 at the end, -1 on error. */
typedef struct qfile_content {
    qfile *q;
    off_t pos;
    int done;
    vbuf chunk;
} qfile_content;
void qfile_content_begin(qfile *q, qfile_content *it);
ssize_t qfile_content_next(qfile_content *it, const char **data);
void qfile_content_end(qfile_content *it);

#endif
