/*
 * deliver - the delivery request between qmgr and the delivery agents
 * (local, smtp, lmtp, virtual, ...), and how agents report and log.
 *
 * qmgr connects to private/<transport>; the agent greets {protocol =
 * "delivery"}; qmgr writes one request frame; the agent opens the queue file
 * read-only (queue_name/queue_id) for the content, delivers, writes one
 * result frame per recipient and then a final {request = "done"} frame.
 * Before it reports, the agent marks the recipients it delivered for good
 * done in the queue file itself, without a sync (deliver_mark_done); such
 * results carry marked=1. The sync happens in qmgr before removal: finished
 * files are removed in batches after one syncfs of the queue file system,
 * run by a worker thread beside qmgr's event loop (qmgr/remove.c), one
 * sync per batch instead of one per message. qmgr records the rest in the
 * queue file and the defer/bounce/trace logs (a status record must be
 * durable before its recipient is marked done, so the agent never marks
 * those).
 * Agents write the Postfix-format "to=<...>, relay=..., delay=...,
 * delays=a/b/c/d, dsn=..., status=..." log line with deliver_log().
 */
#ifndef KITE_DELIVER_H
#define KITE_DELIVER_H

#include <stddef.h>

#include "stream.h"

typedef struct deliver_rcpt {
    long index;                         /* position in the queue file */
    char *address;
    char *orcpt;                        /* NULL if none */
    char *orig;                         /* NULL if none */
    int notify;                         /* QF_NOTIFY_* */
} deliver_rcpt;

typedef struct deliver_request {
    char *queue_name;
    char *queue_id;
    char *transport;                    /* master.cf service name */
    char *nexthop;                      /* domain, [host]:port, unix:/path ... */
    char *sender;
    char *envid;                        /* NULL if none */
    int ret;                            /* 0, DELIVER_RET_FULL, DELIVER_RET_HDRS */
    int body;                           /* DELIVER_BODY_* */
    int smtputf8;
    long long size;
    double arrival;                     /* seconds since the epoch */
    double active;                      /* when qmgr took it (delays a/b) */
    char *client_name, *client_addr;    /* for logging/headers; may be NULL */
    int flags;                          /* DELIVER_FLAG_* */
    deliver_rcpt *rcpts;
    size_t nrcpt;
} deliver_request;

#define DELIVER_RET_FULL 1
#define DELIVER_RET_HDRS 2

#define DELIVER_BODY_7BIT       0
#define DELIVER_BODY_8BITMIME   1
#define DELIVER_BODY_BINARYMIME 2

#define DELIVER_FLAG_VERIFY   (1 << 0)  /* sendmail -bv: probe, don't deliver */
#define DELIVER_FLAG_BOUNCE   (1 << 1)  /* this message is itself a notice */

/* Per-recipient outcome. */
#define DELIVER_OK     0
#define DELIVER_DEFER  1
#define DELIVER_BOUNCE 2

typedef struct deliver_result {
    long index;                         /* deliver_rcpt.index */
    int status;                         /* DELIVER_OK / DEFER / BOUNCE */
    char dsn[16];                       /* "2.0.0", "4.4.1", "5.1.1" */
    char *action;                       /* delivered relayed expanded failed delayed */
    char *reason;                       /* human text, e.g. "delivered to maildir" */
    char *relay;                        /* "local", "mx.example.com[192.0.2.1]:25" */
    char *remote_mta;                   /* "dns; mx.example.com" or NULL */
    char *diag;                         /* "smtp; 550 5.1.1 no such user" or NULL */
    int relayed_no_dsn;                 /* next hop took it without DSN support */
    int marked;                         /* the agent marked it done in the queue file (qmgr syncs) */
} deliver_result;

/* Agent side. */
int deliver_request_read(stream *s, deliver_request *req);   /* 0 or -1 (logged) */
void deliver_request_free(deliver_request *req);
int deliver_result_write(stream *s, const deliver_result *res);
int deliver_done_write(stream *s);

/* qmgr side. */
int deliver_request_write(stream *s, const deliver_request *req);
/*
 * deliver_mark_done - agent side, before reporting: mark done in the queue
 * file every result that needs nothing more from qmgr (DELIVER_OK, not a
 * probe, no NOTIFY=SUCCESS, not relayed without DSN), without a sync (qmgr
 * syncs the file system before it removes the file), and set marked on
 * those results. q is the request's queue file
 * opened with QFILE_RDWR, or NULL to open it here. Every result is checked
 * against the request and the file (the recipient index must be in the
 * request, inside the file, with the same address), so a result can only
 * mark a recipient of this message that this request delivered. Returns
 * how many were marked, or -1 (none marked; qmgr then marks them itself).
 */
struct qfile;
int deliver_mark_done(struct qfile *q, const deliver_request *req, deliver_result *res, size_t n);

/* deliver_result_read - 1 result read, 0 final "done", -1 error */
int deliver_result_read(stream *s, deliver_result *res);
void deliver_result_free(deliver_result *res);

/*
 * deliver_log - the Postfix-format status line:
 * "ID: to=<rcpt>, orig_to=<orig>, relay=R, delay=T, delays=a/b/c/d, dsn=X, status=sent (reason)"
 * conn_start/xfer_start are when the agent began setting up and began
 * transmission (0: unknown).
 */
void deliver_log(const deliver_request *req, const deliver_rcpt *rcpt, const deliver_result *res,
                 double conn_start, double xfer_start);

/*
 * Additions for callers doing their own (non-blocking) I/O, and helpers.
 * Request/result frames are attr lists (see lib/deliver.c for the layout).
 */
#include "attr.h"
#include "vbuf.h"

#define DELIVER_MAX_TEXT   (64 * 1024)  /* reason, diagnostic */
#define DELIVER_RESULT_MAX (512 * 1024) /* one result frame */

void deliver_request_encode(const deliver_request *req, attr_list *list);
int deliver_request_decode(const attr_list *list, deliver_request *req);   /* 0 or -1 (logged) */
void deliver_result_encode(const deliver_result *res, attr_list *list);
/* deliver_result_decode - 1 result, 0 "done", -1 bad frame (logged) */
int deliver_result_decode(const attr_list *list, deliver_result *res);

/* deliver_log_format - deliver_log's line, for a given "now" */
void deliver_log_format(vbuf *out, const deliver_request *req, const deliver_rcpt *rcpt, const deliver_result *res,
                        double conn_start, double xfer_start, double now);
void deliver_format_delay(vbuf *out, double secs);
double deliver_now(void);                       /* wall clock, sub-second */
int deliver_dsn_ok(const char *dsn);            /* RFC 3463 "X.Y.Z" */
int deliver_text_ok(const char *s, size_t max); /* no control chars, < max bytes */

#endif
