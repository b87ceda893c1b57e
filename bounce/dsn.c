/*
 * dsn - compose one delivery status notification (RFC 3464, RFC 3462
 * multipart/report) from a dsn_notice: a human-readable part, a
 * message/delivery-status part with one block per recipient, and the
 * original message (message/rfc822) or its headers (text/rfc822-headers).
 *
 * Trusts: the entries were validated by bounce_log_read (no control
 * characters); the original content is copied verbatim, never interpreted
 * beyond finding the end of its header.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bounce.h"
#include "deliver.h"
#include "mymalloc.h"
#include "qfile.h"
#include "vbuf.h"

/* dsn_format_date - RFC 5322 §3.3 date-time of a time stamp */
void dsn_format_date(char *buf, size_t len, time_t when)
{
    struct tm tm;

    if (localtime_r(&when, &tm) == NULL || strftime(buf, len, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
        (void) snprintf(buf, len, "Thu, 01 Jan 1970 00:00:00 +0000");
}

/* dsn_entry_wanted - whether a notice of KIND reports this recipient (RFC 3461 §4.1) */
static int dsn_entry_wanted(int kind, const bounce_log_entry *e)
{
    int notify = e->rcpt.notify;

    /* A probe's report (sendmail -bv) lists every recipient: the report is what was asked for. */
    if (kind == DSN_KIND_VERIFY)
        return 1;
    /* The log a record sits in says what happened; NOTIFY says who wants to hear it. */
    if (notify & QF_NOTIFY_NEVER)
        return 0;
    switch (kind) {
    case DSN_KIND_FAILURE:
        return notify == 0 || (notify & QF_NOTIFY_FAILURE);
    case DSN_KIND_DELAY:
        return e->result.status != DELIVER_OK && (notify == 0 || (notify & QF_NOTIFY_DELAY));
    case DSN_KIND_SUCCESS:
        return e->result.status == DELIVER_OK && (notify & QF_NOTIFY_SUCCESS);
    }
    return 0;
}

/* dsn_entry_release - free one entry's strings */
void dsn_entry_release(bounce_log_entry *e)
{
    xfree(e->rcpt.address);
    xfree(e->rcpt.orcpt);
    xfree(e->rcpt.orig);
    xfree(e->result.action);
    xfree(e->result.reason);
    xfree(e->result.relay);
    xfree(e->result.remote_mta);
    xfree(e->result.diag);
}

/* dsn_select - keep the entries a notice of KIND owes (NOTIFY, latest per recipient) */
size_t dsn_select(int kind, bounce_log_entry *entries, size_t count)
{
    size_t out = 0;

    for (size_t i = 0; i < count; i++) {
        int keep = dsn_entry_wanted(kind, &entries[i]);

        /* A recipient tried several times has several records: the last one counts. */
        for (size_t j = i + 1; keep && j < count; j++)
            if (entries[j].rcpt.index == entries[i].rcpt.index)
                keep = 0;
        if (keep)
            entries[out++] = entries[i];
        else
            dsn_entry_release(&entries[i]);
    }
    return out;
}

/* Output with a sticky error. */
typedef struct dsn_out {
    dsn_write_fn fn;
    void *ctx;
    vbuf buf;
    int err;
} dsn_out;

/* dsn_flush - hand buffered text to the writer */
static void dsn_flush(dsn_out *o)
{
    if (!o->err && o->buf.len && o->fn(o->ctx, o->buf.data, o->buf.len) != 0)
        o->err = 1;
    vbuf_reset(&o->buf);
}

/* dsn_put - buffer text; flush in pieces */
static void dsn_put(dsn_out *o, const char *text)
{
    (void) vbuf_puts(&o->buf, text);
    if (o->buf.len >= 8192)
        dsn_flush(o);
}

/* dsn_line - one output line, with CRLF */
static void dsn_line(dsn_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void dsn_line(dsn_out *o, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void) vbuf_vprintf(&o->buf, fmt, ap);
    va_end(ap);
    dsn_put(o, "\r\n");
}

/* dsn_ascii - TEXT with 8-bit and control bytes made '?' (RFC 3464 fields are US-ASCII) */
static const char *dsn_ascii(vbuf *tmp, const char *text)
{
    vbuf_reset(tmp);
    for (const unsigned char *p = (const unsigned char *) text; *p; p++)
        (void) vbuf_putc(tmp, (*p < 0x20 || *p > 0x7e) ? '?' : *p);
    return vbuf_str(tmp);
}

/* dsn_addr_type - RFC 3464 §2.3.2 address type: rfc822, or utf-8 (RFC 6533) */
static const char *dsn_addr_type(const char *addr)
{
    for (const unsigned char *p = (const unsigned char *) addr; *p; p++)
        if (*p > 0x7e)
            return "utf-8";
    return "rfc822";
}

/* dsn_human - the first, human-readable part */
static void dsn_human(dsn_out *o, const dsn_notice *n)
{
    char date[64];
    vbuf tmp;

    vbuf_init(&tmp, 0);
    dsn_line(o, "Content-Description: Notification");
    dsn_line(o, "Content-Type: text/plain; charset=us-ascii");
    dsn_line(o, "%s", "");
    dsn_line(o, "This is the mail system at host %s.", n->myhostname);
    dsn_line(o, "%s", "");
    if (n->postmaster_copy) {
        dsn_line(o, "A delivery status notification sent by this system could not");
        dsn_line(o, "be delivered either. It is reported to you as the postmaster;");
        dsn_line(o, "the undeliverable notice is attached.");
    } else if (n->kind == DSN_KIND_FAILURE) {
        dsn_line(o, "Your message could not be delivered to one or more of its");
        dsn_line(o, "recipients. The details follow, and the message (or its header)");
        dsn_line(o, "is attached.");
    } else if (n->kind == DSN_KIND_DELAY) {
        dsn_format_date(date, sizeof(date), n->retry_until);
        dsn_line(o, "Your message has not been delivered yet to the recipients listed");
        dsn_line(o, "below. There is no need to send it again: delivery will be");
        dsn_line(o, "retried until %s.", date);
    } else if (n->kind == DSN_KIND_VERIFY) {
        dsn_line(o, "Enclosed is the mail delivery report that you requested. No mail");
        dsn_line(o, "was delivered: each recipient was only checked for deliverability.");
    } else {
        dsn_line(o, "Your message was delivered to the recipients listed below, as");
        dsn_line(o, "you asked to be told.");
    }
    dsn_line(o, "%s", "");
    if (n->kind != DSN_KIND_SUCCESS) {
        dsn_line(o, "If you need help, write to the postmaster of this system and");
        dsn_line(o, "include this report.");
        dsn_line(o, "%s", "");
    }
    for (size_t i = 0; i < n->nentries; i++) {
        const bounce_log_entry *e = &n->entries[i];

        (void) vbuf_printf(&o->buf, "<%s>", dsn_ascii(&tmp, e->rcpt.address));
        if (e->rcpt.orig && strcmp(e->rcpt.orig, e->rcpt.address) != 0)
            (void) vbuf_printf(&o->buf, " (expanded from <%s>)", dsn_ascii(&tmp, e->rcpt.orig));
        dsn_line(o, ": %s", dsn_ascii(&tmp, e->result.reason));
    }
    dsn_line(o, "%s", "");
    vbuf_release(&tmp);
}

/* dsn_action - the Action field: the agent's, or what the kind implies */
static const char *dsn_action(const dsn_notice *n, const bounce_log_entry *e)
{
    /* A recipient in a failure notice failed, whatever the last attempt said (e.g. expiry). */
    if (n->kind == DSN_KIND_FAILURE)
        return "failed";
    if (n->kind == DSN_KIND_VERIFY)
        return e->result.status == DELIVER_OK       ? "deliverable"
               : e->result.status == DELIVER_DEFER ? "delayed"
                                                   : "undeliverable";
    if (e->result.action && *e->result.action && strcmp(e->result.action, "failed") != 0)
        return e->result.action;
    return n->kind == DSN_KIND_FAILURE ? "failed" : n->kind == DSN_KIND_DELAY ? "delayed" : "delivered";
}

/* dsn_status_part - the message/delivery-status part (RFC 3464 §2.2, §2.3) */
static void dsn_status_part(dsn_out *o, const dsn_notice *n)
{
    char date[64];
    vbuf tmp;

    vbuf_init(&tmp, 0);
    dsn_line(o, "Content-Description: Delivery report");
    dsn_line(o, "Content-Type: message/delivery-status");
    dsn_line(o, "%s", "");
    /* Per-message fields, §2.2. */
    dsn_line(o, "Reporting-MTA: dns; %s", n->myhostname);
    dsn_line(o, "X-Kite-Queue-ID: %s", n->queue_id);
    dsn_line(o, "X-Kite-Sender: %s; %s", dsn_addr_type(n->orig_sender), dsn_ascii(&tmp, n->orig_sender));
    if (n->envid)
        dsn_line(o, "Original-Envelope-Id: %s", dsn_ascii(&tmp, n->envid));
    dsn_format_date(date, sizeof(date), (time_t) n->arrival);
    dsn_line(o, "Arrival-Date: %s", date);
    /* Per-recipient fields, §2.3, each block after a blank line. */
    for (size_t i = 0; i < n->nentries; i++) {
        const bounce_log_entry *e = &n->entries[i];

        dsn_line(o, "%s", "");
        dsn_line(o, "Final-Recipient: %s; %s", dsn_addr_type(e->rcpt.address), dsn_ascii(&tmp, e->rcpt.address));
        /* ORCPT is stored decoded as "type;address" (RFC 3461 §4.2). */
        if (e->rcpt.orcpt && strchr(e->rcpt.orcpt, ';'))
            dsn_line(o, "Original-Recipient: %s", dsn_ascii(&tmp, e->rcpt.orcpt));
        dsn_line(o, "Action: %s", dsn_action(n, e));
        dsn_line(o, "Status: %s", e->result.dsn);
        if (e->result.remote_mta)
            dsn_line(o, "Remote-MTA: %s", dsn_ascii(&tmp, e->result.remote_mta));
        if (e->result.diag)
            dsn_line(o, "Diagnostic-Code: %s", dsn_ascii(&tmp, e->result.diag));
        else if (n->kind != DSN_KIND_SUCCESS && e->result.reason)
            dsn_line(o, "Diagnostic-Code: X-Kite; %s", dsn_ascii(&tmp, e->result.reason));
        dsn_format_date(date, sizeof(date), (time_t) e->when);
        dsn_line(o, "Last-Attempt-Date: %s", date);
        if (n->kind == DSN_KIND_DELAY) {
            dsn_format_date(date, sizeof(date), n->retry_until);
            dsn_line(o, "Will-Retry-Until: %s", date);
        }
    }
    dsn_line(o, "%s", "");
    vbuf_release(&tmp);
}

/* dsn_header_only - copy CHUNK up to the empty line ending the header; 1 when found */
static int dsn_header_only(dsn_out *o, const char *data, size_t len, int *bol, int *pending_cr)
{
    for (size_t i = 0; i < len; i++) {
        char c = data[i];

        if (*bol) {
            if (c == '\n')
                return 1; /* RFC 5322 §2.1: the header ends here */
            if (c == '\r' && !*pending_cr) {
                *pending_cr = 1; /* maybe the start of the empty line */
                continue;
            }
            if (*pending_cr)
                (void) vbuf_putc(&o->buf, '\r');
            *pending_cr = 0;
        }
        (void) vbuf_putc(&o->buf, c);
        *bol = c == '\n';
    }
    if (o->buf.len >= 8192)
        dsn_flush(o);
    return 0;
}

/* dsn_original - the third part: the message or its header (RFC 3462 §2) */
static void dsn_original(dsn_out *o, const dsn_notice *n)
{
    const char *data;
    ssize_t len = 0;
    int bol = 1, pending_cr = 0, last_lf = 1;

    if (n->ret_hdrs) {
        dsn_line(o, n->kind == DSN_KIND_FAILURE ? "Content-Description: Undelivered Message Headers"
                                                : "Content-Description: Message Headers");
        dsn_line(o, "Content-Type: text/rfc822-headers");
    } else {
        dsn_line(o, n->kind == DSN_KIND_FAILURE ? "Content-Description: Undelivered Message"
                                                : "Content-Description: Message");
        dsn_line(o, "Content-Type: message/rfc822");
    }
    if (n->body_8bit)
        dsn_line(o, "Content-Transfer-Encoding: 8bit");
    dsn_line(o, "%s", "");
    dsn_flush(o);
    while (!o->err && (len = n->content(n->content_ctx, &data)) > 0) {
        if (n->ret_hdrs) {
            int end = dsn_header_only(o, data, (size_t) len, &bol, &pending_cr);

            last_lf = bol;
            if (end)
                break;
            continue;
        }
        if (o->fn(o->ctx, data, (size_t) len) != 0)
            o->err = 1;
        last_lf = data[len - 1] == '\n';
    }
    if (len < 0)
        o->err = 1;
    if (!last_lf)
        dsn_put(o, "\r\n");
}

/* dsn_write - the whole notice (headers and body, CRLF lines); 0 or -1 */
int dsn_write(const dsn_notice *n, dsn_write_fn fn, void *ctx)
{
    dsn_out o = {fn, ctx, {0}, 0};
    char date[64];
    struct tm tm;
    char stamp[32];

    vbuf_init(&o.buf, 0);
    dsn_format_date(date, sizeof(date), n->now);
    if (gmtime_r(&n->now, &tm) == NULL || strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm) == 0)
        stamp[0] = 0;
    /* RFC 3462 §1: the notice's own header. */
    dsn_line(&o, "Date: %s", date);
    dsn_line(&o, "From: %s (Mail Delivery System)", n->from);
    if (n->postmaster_copy)
        dsn_line(&o, "Subject: Undeliverable delivery status notification");
    else if (n->kind == DSN_KIND_FAILURE)
        dsn_line(&o, "Subject: Undelivered mail returned to sender");
    else if (n->kind == DSN_KIND_DELAY)
        dsn_line(&o, "Subject: Delayed mail (delivery is still being tried)");
    else if (n->kind == DSN_KIND_VERIFY)
        dsn_line(&o, "Subject: Mail Delivery Status Report");
    else
        dsn_line(&o, "Subject: Mail delivery report");
    dsn_line(&o, "To: %s", n->to);
    dsn_line(&o, "Message-Id: <%s.%s@%s>", stamp, n->message_id, n->myhostname);
    /* RFC 3834 §5: a notice is an automatic reply. */
    dsn_line(&o, "Auto-Submitted: auto-replied");
    dsn_line(&o, "MIME-Version: 1.0");
    dsn_line(&o, "Content-Type: multipart/report; report-type=delivery-status;");
    dsn_line(&o, "\tboundary=\"%s\"", n->boundary);
    dsn_line(&o, "Content-Transfer-Encoding: %s", n->body_8bit ? "8bit" : "7bit");
    dsn_line(&o, "%s", "");
    dsn_line(&o, "This is a MIME-encapsulated message.");
    dsn_line(&o, "%s", "");
    dsn_line(&o, "--%s", n->boundary);
    dsn_human(&o, n);
    dsn_line(&o, "--%s", n->boundary);
    dsn_status_part(&o, n);
    dsn_line(&o, "--%s", n->boundary);
    dsn_original(&o, n);
    dsn_line(&o, "%s", "");
    dsn_line(&o, "--%s--", n->boundary);
    dsn_flush(&o);
    vbuf_release(&o.buf);
    return o.err ? -1 : 0;
}
