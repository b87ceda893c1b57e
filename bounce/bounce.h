/*
 * bounce - the bounce service's shared state: one delivery status
 * notification (RFC 3464) described as data, and the functions that build
 * and send it.
 */
#ifndef KITE_BOUNCE_BOUNCE_H
#define KITE_BOUNCE_BOUNCE_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "bounce_log.h"

#define DSN_KIND_FAILURE 0 /* request "bounce" */
#define DSN_KIND_DELAY 1   /* request "delay" */
#define DSN_KIND_SUCCESS 2 /* request "success" */
#define DSN_KIND_VERIFY 3  /* request "verify": a sendmail -bv report */

/* Where the original message comes from, chunk by chunk (CRLF lines). */
typedef ssize_t (*dsn_content_fn)(void *ctx, const char **data);
/* Where the notice goes; 0 or -1. */
typedef int (*dsn_write_fn)(void *ctx, const void *data, size_t len);

typedef struct dsn_notice {
    int kind;               /* DSN_KIND_* */
    int postmaster_copy;    /* a double bounce: the notice about a notice */
    const char *myhostname; /* Reporting-MTA */
    const char *from;       /* MAILER-DAEMON@myorigin */
    const char *to;         /* original sender, or the postmaster */
    const char *queue_id;   /* the original message */
    const char *message_id; /* for the notice's Message-Id (without <>) */
    const char *boundary;
    const char *orig_sender; /* the original envelope sender ("" = null) */
    const char *envid;       /* RFC 3461 ENVID, NULL if none */
    double arrival;          /* original arrival time */
    time_t now;
    time_t retry_until;              /* delays: Will-Retry-Until */
    int ret_hdrs;                    /* return only the headers */
    int body_8bit;                   /* original body type is 8BITMIME */
    const bounce_log_entry *entries; /* the recipients this notice covers */
    size_t nentries;
    dsn_content_fn content;
    void *content_ctx;
} dsn_notice;

/* dsn_write - the whole notice (headers and body, CRLF lines); 0 or -1 */
int dsn_write(const dsn_notice *n, dsn_write_fn out, void *ctx);

/* dsn_format_date - RFC 5322 §3.3 date-time of a time stamp */
void dsn_format_date(char *buf, size_t len, time_t when);

/* dsn_select - keep the entries a notice of KIND owes (NOTIFY, latest per recipient) */
size_t dsn_select(int kind, bounce_log_entry *entries, size_t count);

/* dsn_entry_release - free one entry's strings (entries dropped by a filter) */
void dsn_entry_release(bounce_log_entry *e);

/* bounce_notify - serve one request; 0 done (or nothing owed), -1 try later */
int bounce_notify(int kind, const char *queue_name, const char *queue_id);

#endif
