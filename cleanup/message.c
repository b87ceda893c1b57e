/*
 * message.c - cleanup's content processing.
 *
 * Input arrives in arbitrary chunks; it is cut into lines (LF ends a line,
 * a CR before it is dropped; every queued line ends in CRLF, so local
 * submissions with bare LF come out right). The header section is
 * collected as logical headers (RFC 5322 §2.2.3 folding), each inspected
 * with header_checks, counted (hop limit), searched for Message-ID, Date,
 * From and the destination headers, and for -t mined for recipients; Bcc
 * is dropped. At the end of the headers the missing ones are added, the
 * envelope is rewritten and written, and the headers follow. Body lines
 * go through body_checks. message_size_limit and header_size_limit hold
 * throughout.
 *
 * Trusts: nothing in the content. Line and header lengths are bounded;
 * a line longer than the limit is passed on in pieces.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "addr.h"
#include "cleanup.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "strutil.h"

#define CLEANUP_LINE_MAX (64 * 1024)
#define CLEANUP_PENDING_MAX                                                                                            \
    (1024 * 1024) /* content held back while the body type is unknown */ /* longer lines are handled in pieces */

/* cleanup_state_init - a fresh state for one message */
void cleanup_state_init(cleanup_state *st, const char *queue_id, int flags, const cleanup_maps *tables,
                        const cleanup_output *out)
{
    memset(st, 0, sizeof(*st));
    snprintf(st->queue_id, sizeof(st->queue_id), "%s", queue_id);
    st->flags = flags;
    st->maps = tables;
    st->out = *out;
    st->status = CLEANUP_OK;
    st->phase = CLEANUP_PHASE_HEADERS;
    vbuf_init(&st->reason, 0);
    vbuf_init(&st->line, 0);
    vbuf_init(&st->header, 0);
    vbuf_init(&st->headers, 0);
    vbuf_init(&st->pending, 0);
}

/* cleanup_state_free - release everything the state holds */
void cleanup_state_free(cleanup_state *st)
{
    for (size_t i = 0; i < st->nattr; i++) {
        xfree(st->attr_names[i]);
        xfree(st->attr_values[i]);
    }
    xfree(st->attr_names);
    xfree(st->attr_values);
    xfree(st->sender);
    xfree(st->message_id);
    cleanup_rcpt_list_free(&st->in_rcpts);
    cleanup_rcpt_list_free(&st->rcpts);
    cleanup_rcpt_list_free(&st->extracted);
    cleanup_rcpt_list_free(&st->extracted_resent);
    vbuf_release(&st->reason);
    vbuf_release(&st->line);
    vbuf_release(&st->header);
    vbuf_release(&st->headers);
    vbuf_release(&st->pending);
}

/* cleanup_add_attr - an envelope attribute from the client (later duplicates are ignored) */
void cleanup_add_attr(cleanup_state *st, const char *name, const char *value)
{
    if (cleanup_get_attr(st, name) != NULL) {
        msg_warn("%s: duplicate envelope attribute %s ignored", st->queue_id, name);
        return;
    }
    if (strcmp(name, "sender") == 0) {
        xfree(st->sender);
        st->sender = xstrdup(value);
    }
    if (strcmp(name, "body") == 0 && str_case_eq(value, "binarymime"))
        st->binary_body = 1;
    st->attr_names = xreallocarray(st->attr_names, st->nattr + 1, sizeof(char *));
    st->attr_values = xreallocarray(st->attr_values, st->nattr + 1, sizeof(char *));
    st->attr_names[st->nattr] = xstrdup(name);
    st->attr_values[st->nattr] = xstrdup(value);
    st->nattr++;
}

/* cleanup_get_attr - an envelope attribute's value, NULL if absent */
const char *cleanup_get_attr(const cleanup_state *st, const char *name)
{
    for (size_t i = 0; i < st->nattr; i++)
        if (strcmp(st->attr_names[i], name) == 0)
            return st->attr_values[i];
    return NULL;
}

/* cleanup_add_rcpt - an envelope recipient from the client */
void cleanup_add_rcpt(cleanup_state *st, const char *addr, const char *orcpt, int notify)
{
    cleanup_rcpt_list_add(&st->in_rcpts, addr, orcpt, addr, notify);
}

/* cleanup_set_status - record the first non-OK verdict (reject beats defer) */
void cleanup_set_status(cleanup_state *st, int status, const char *reason)
{
    if (status == CLEANUP_OK || st->status == CLEANUP_REJECT)
        return;
    if (st->status == CLEANUP_DEFER && status != CLEANUP_REJECT)
        return;
    st->status = status;
    vbuf_set(&st->reason, reason);
}

/* cleanup_log_action - Postfix's "ID: reject: header TEXT from CLIENT; from=<> to=<> ...: DETAIL" */
void cleanup_log_action(cleanup_state *st, const char *action, const char *where, const char *text, const char *detail)
{
    const char *cname = cleanup_get_attr(st, "client_name");
    const char *caddr = cleanup_get_attr(st, "client_addr");
    const char *proto = cleanup_get_attr(st, "protocol");
    const char *helo = cleanup_get_attr(st, "helo");
    vbuf line;

    vbuf_init(&line, 0);
    vbuf_printf(&line, "%s: %s: %s %.200s", st->queue_id, action, where, text);
    if (caddr)
        vbuf_printf(&line, " from %s[%s];", cname ? cname : "unknown", caddr);
    else
        vbuf_puts(&line, " from local;");
    vbuf_printf(&line, " from=<%s>", st->sender ? st->sender : "");
    if (st->in_rcpts.n > 0)
        vbuf_printf(&line, " to=<%s>", st->in_rcpts.v[0].addr);
    if (proto)
        vbuf_printf(&line, " proto=%s", proto);
    if (helo)
        vbuf_printf(&line, " helo=<%s>", helo);
    if (detail && *detail)
        vbuf_printf(&line, ": %s", detail);
    /* Header text may hold line breaks; a log line must not. */
    for (size_t i = 0; i < line.len; i++)
        if (line.data[i] == '\n' || line.data[i] == '\r')
            line.data[i] = ' ';
    msg_info("%s", line.data);
    vbuf_release(&line);
}

/* cm_emit - content towards the output, counted against message_size_limit */
static void cm_release_envelope(cleanup_state *st, int complete);

static void cm_emit(cleanup_state *st, const char *data, size_t len)
{
    if (st->status != CLEANUP_OK || st->discard)
        return;
    st->out_size += (long long) len;
    if (var_message_size_limit > 0 && st->out_size > var_message_size_limit) {
        msg_info("%s: reject: message too big: %lld bytes (limit %ld)", st->queue_id, st->out_size,
                 var_message_size_limit);
        cleanup_set_status(st, CLEANUP_REJECT, "5.3.4 message file too big");
        return;
    }
    if (st->body_pending) {
        /* The body type is not declared: look at the content before the envelope goes out. */
        for (size_t i = 0; i < len && !st->saw_8bit; i++)
            if ((unsigned char) data[i] & 0x80)
                st->saw_8bit = 1;
        vbuf_append(&st->pending, data, len);
        if (st->pending.len >= CLEANUP_PENDING_MAX)
            cm_release_envelope(st, 0);
        return;
    }
    if (st->out.content(st, data, len, st->out.ctx) < 0)
        cleanup_set_status(st, CLEANUP_DEFER, "4.3.0 queue file write error");
}

/* cm_release_envelope - record the body type seen, write the envelope and what waited */
static void cm_release_envelope(cleanup_state *st, int complete)
{
    st->body_pending = 0;
    /* Undecided (content not all seen) counts as 8-bit: the safe side for a 7-bit next hop. */
    cleanup_add_attr(st, "body", st->saw_8bit || !complete ? "8bitmime" : "7bit");
    if (st->out.envelope(st, st->out.ctx) < 0) {
        cleanup_set_status(st, CLEANUP_DEFER, "4.3.0 queue file write error");
        return;
    }
    st->envelope_done = 1;
    if (st->pending.len > 0 && st->out.content(st, st->pending.data, st->pending.len, st->out.ctx) < 0)
        cleanup_set_status(st, CLEANUP_DEFER, "4.3.0 queue file write error");
    vbuf_reset(&st->pending);
}

/* cm_emit_line - one line with CRLF */
static void cm_emit_line(cleanup_state *st, const char *data, size_t len)
{
    vbuf tmp;

    vbuf_init(&tmp, 0);
    vbuf_append(&tmp, data, len);
    vbuf_append(&tmp, "\r\n", 2);
    cm_emit(st, tmp.data, tmp.len);
    vbuf_release(&tmp);
}

/* cm_header_out - queue a header (may hold "\n" between folded lines) */
static void cm_header_out(cleanup_state *st, const char *text)
{
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t) (nl - p) : strlen(p);

        vbuf_append(&st->headers, p, n);
        vbuf_append(&st->headers, "\r\n", 2);
        p += n;
        if (*p == '\n')
            p++;
    }
}

/* cm_header_name - length of the field name if text is a header line, else 0 */
static size_t cm_header_name(const char *text, size_t len)
{
    size_t i = 0;

    while (i < len && text[i] > 32 && text[i] < 127 && text[i] != ':')
        i++;
    if (i == 0)
        return 0;
    {
        size_t j = i;

        while (j < len && (text[j] == ' ' || text[j] == '\t'))
            j++; /* obsolete "Name :" (RFC 5322 §4.5) */
        if (j >= len || text[j] != ':')
            return 0;
    }
    return i;
}

/* cm_name_is - does the header's field name equal name (ASCII, any case) */
static int cm_name_is(const char *hdr, size_t name_len, const char *name)
{
    return strlen(name) == name_len && strncasecmp(hdr, name, name_len) == 0;
}

/* cm_header_value - the value after the colon */
static const char *cm_header_value(const char *hdr)
{
    const char *colon = strchr(hdr, ':');

    return colon ? colon + 1 : "";
}

typedef struct cm_extract_ctx {
    cleanup_rcpt_list *list;
} cm_extract_ctx;

/* cm_extract_one - addr_parse_list callback: one -t recipient */
static void cm_extract_one(const char *addr, void *ctx)
{
    cm_extract_ctx *x = ctx;

    if (*addr)
        cleanup_rcpt_list_add(x->list, addr, NULL, addr, 0);
}

/* cm_apply_checks - header_checks/body_checks; returns 1 to drop the item, 0 to keep it */
static int cm_apply_checks(cleanup_state *st, maps *m, const char *where, const char *text, vbuf *replacement,
                           vbuf *prepend)
{
    const char *res, *arg;
    char action[32];
    size_t n;
    int status;

    if (m == NULL || maps_empty(m) || (st->flags & CLEANUP_FLAG_BOUNCE) || st->status != CLEANUP_OK || st->discard)
        return 0;
    res = maps_find(m, text, &status);
    if (status == MAP_ERROR) {
        msg_warn("%s: %s_checks lookup failed", st->queue_id, where);
        cleanup_set_status(st, CLEANUP_DEFER, "4.3.0 content inspection table lookup failure");
        return 0;
    }
    if (status != MAP_FOUND || res == NULL)
        return 0;
    n = strcspn(res, " \t");
    if (n >= sizeof(action))
        n = sizeof(action) - 1;
    memcpy(action, res, n);
    action[n] = 0;
    arg = res + strcspn(res, " \t");
    arg += strspn(arg, " \t");

    if (str_case_eq(action, "REJECT")) {
        vbuf why;

        vbuf_init(&why, 0);
        if (*arg == 0)
            vbuf_set(&why, "5.7.1 message content rejected");
        else if ((arg[0] == '5' || arg[0] == '4') && arg[1] == '.')
            vbuf_printf(&why, "5%s", arg + 1); /* a permanent class, whatever was written */
        else
            vbuf_printf(&why, "5.7.1 %s", arg);
        cleanup_log_action(st, "reject", where, text, why.data);
        cleanup_set_status(st, CLEANUP_REJECT, why.data);
        vbuf_release(&why);
        return 0;
    }
    if (str_case_eq(action, "DISCARD")) {
        cleanup_log_action(st, "discard", where, text, *arg ? arg : "");
        st->discard = 1;
        return 0;
    }
    if (str_case_eq(action, "HOLD")) {
        cleanup_log_action(st, "hold", where, text, *arg ? arg : "");
        st->hold = 1;
        return 0;
    }
    if (str_case_eq(action, "WARN")) {
        cleanup_log_action(st, "warning", where, text, *arg ? arg : "");
        return 0;
    }
    if (str_case_eq(action, "IGNORE"))
        return 1;
    if (str_case_eq(action, "REPLACE")) {
        if (*arg == 0) {
            msg_warn("%s: REPLACE action without text in %s_checks", st->queue_id, where);
            return 0;
        }
        cleanup_log_action(st, "replace", where, text, arg);
        vbuf_set(replacement, arg);
        return 1;
    }
    if (str_case_eq(action, "PREPEND")) {
        if (*arg == 0) {
            msg_warn("%s: PREPEND action without text in %s_checks", st->queue_id, where);
            return 0;
        }
        vbuf_set(prepend, arg);
        return 0;
    }
    if (str_case_eq(action, "DUNNO") || str_case_eq(action, "OK"))
        return 0;
    msg_warn("%s: unknown %s_checks action \"%s\" ignored", st->queue_id, where, action);
    return 0;
}

/* cm_header_done - one complete logical header: inspect, note, queue */
static void cm_header_done(cleanup_state *st)
{
    char *hdr;
    size_t name_len;
    vbuf replacement, prepend;
    int drop;

    if (st->header.len == 0)
        return;
    hdr = vbuf_steal(&st->header);
    st->header_truncated = 0;
    name_len = cm_header_name(hdr, strlen(hdr));
    vbuf_init(&replacement, 0);
    vbuf_init(&prepend, 0);
    drop = cm_apply_checks(st, st->maps ? st->maps->header_checks : NULL, "header", hdr, &replacement, &prepend);
    if (prepend.len > 0)
        cm_header_out(st, prepend.data);

    if (cm_name_is(hdr, name_len, "Received") || cm_name_is(hdr, name_len, "Delivered-To"))
        st->hops++;
    if (cm_name_is(hdr, name_len, "Message-ID") && !drop) {
        char *v = xstrdup(cm_header_value(hdr));

        st->seen_message_id = 1;
        xfree(st->message_id);
        st->message_id = xstrdup(str_trim(v));
        xfree(v);
    }
    if (cm_name_is(hdr, name_len, "Date") && !drop)
        st->seen_date = 1;
    if (cm_name_is(hdr, name_len, "From") && !drop)
        st->seen_from = 1;
    if (cm_name_is(hdr, name_len, "To") || cm_name_is(hdr, name_len, "Cc") || cm_name_is(hdr, name_len, "Bcc"))
        st->seen_dest = 1;
    if ((st->flags & CLEANUP_FLAG_EXTRACT) && st->status == CLEANUP_OK) {
        cm_extract_ctx x = {NULL};

        if (cm_name_is(hdr, name_len, "To") || cm_name_is(hdr, name_len, "Cc") || cm_name_is(hdr, name_len, "Bcc"))
            x.list = &st->extracted;
        else if (cm_name_is(hdr, name_len, "Resent-To") || cm_name_is(hdr, name_len, "Resent-Cc") ||
                 cm_name_is(hdr, name_len, "Resent-Bcc"))
            x.list = &st->extracted_resent;
        if (x.list && addr_parse_list(cm_header_value(hdr), cm_extract_one, &x) < 0)
            msg_warn("%s: malformed address list in %.*s header ignored", st->queue_id, (int) name_len, hdr);
    }
    /* -t: Bcc is read for recipients, never sent (RFC 5322 §3.6.3). */
    if ((st->flags & CLEANUP_FLAG_EXTRACT) &&
        (cm_name_is(hdr, name_len, "Bcc") || cm_name_is(hdr, name_len, "Resent-Bcc")))
        drop = 1;
    if (replacement.len == 0 && !drop && (st->flags & CLEANUP_FLAG_LOCAL) && st->status == CLEANUP_OK) {
        /* Local submissions: header addresses are qualified and canonicalized like the envelope. */
        int r = cleanup_rewrite_header(st, hdr, name_len, &replacement);

        if (r < 0)
            cleanup_set_status(st, CLEANUP_DEFER, "4.3.0 canonical_maps lookup failure");
        else if (r == 0)
            vbuf_reset(&replacement);
    }
    if (replacement.len > 0)
        cm_header_out(st, replacement.data);
    else if (!drop)
        cm_header_out(st, hdr);
    vbuf_release(&replacement);
    vbuf_release(&prepend);
    xfree(hdr);
}

/* cm_rfc2822_date - "Sun, 29 Nov 2026 04:54:18 +0000 (UTC)" (RFC 5322 §3.3) */
static void cm_rfc2822_date(vbuf *out, time_t when)
{
    struct tm tm;
    char buf[64];
    long off;
    char sign = '+';

    localtime_r(&when, &tm);
    off = tm.tm_gmtoff / 60;
    if (off < 0) {
        sign = '-';
        off = -off;
    }
    strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S", &tm);
    vbuf_printf(out, "%s %c%02ld%02ld (%s)", buf, sign, off / 60, off % 60, tm.tm_zone ? tm.tm_zone : "UTC");
}

/* cm_prepare_sender - rewrite the sender once, before any content is looked at */
static void cm_prepare_sender(cleanup_state *st)
{
    vbuf addr;

    if (st->sender_done)
        return;
    st->sender_done = 1;
    if (st->sender == NULL)
        st->sender = xstrdup("");
    if (*st->sender == 0)
        return;
    vbuf_init(&addr, 0);
    if (cleanup_rewrite_sender(st, st->sender, &addr) < 0) {
        msg_warn("%s: canonical_maps lookup of %s failed", st->queue_id, st->sender);
        cleanup_set_status(st, CLEANUP_DEFER, "4.3.0 canonical_maps lookup failure");
    } else {
        xfree(st->sender);
        st->sender = xstrdup(addr.data);
    }
    vbuf_release(&addr);
}

/* cm_finish_envelope - expand recipients (with -t ones) */
static void cm_finish_envelope(cleanup_state *st)
{
    cleanup_rcpt_list *ex = st->extracted_resent.n > 0 ? &st->extracted_resent : &st->extracted;

    if (st->flags & CLEANUP_FLAG_EXTRACT)
        for (size_t i = 0; i < ex->n; i++)
            cleanup_rcpt_list_add(&st->in_rcpts, ex->v[i].addr, NULL, ex->v[i].addr, 0);
    for (size_t i = 0; i < st->in_rcpts.n && st->status == CLEANUP_OK; i++)
        (void) cleanup_expand_recipient(st, &st->in_rcpts.v[i]);
    if (st->status == CLEANUP_OK && st->rcpts.n == 0) {
        if (st->flags & CLEANUP_FLAG_EXTRACT)
            cleanup_set_status(st, CLEANUP_REJECT, "5.1.3 No recipient addresses found in message header");
        else
            cleanup_set_status(st, CLEANUP_REJECT, "5.1.3 no recipients specified");
    }
}

/* cm_headers_end - the header section is complete: add what is missing, write envelope and headers */
static void cm_headers_end(cleanup_state *st)
{
    vbuf h;
    time_t now = time(NULL);

    cm_header_done(st);
    st->phase = CLEANUP_PHASE_BODY;
    if (st->hops > var_hopcount_limit) {
        msg_info("%s: reject: too many hops (%d Received: headers) from=<%s>", st->queue_id, st->hops,
                 st->sender ? st->sender : "");
        cleanup_set_status(st, CLEANUP_REJECT, "5.4.0 too many hops");
    }
    cm_finish_envelope(st);
    vbuf_init(&h, 0);
    if (!(st->flags & CLEANUP_FLAG_BOUNCE)) {
        if ((st->flags & CLEANUP_FLAG_LOCAL) && !st->seen_from) {
            const char *full = cleanup_get_attr(st, "fullname");
            const char *from = st->sender && *st->sender ? st->sender : "MAILER-DAEMON";

            vbuf_reset(&h);
            if (full && *full) {
                /* A display name that is not a plain atom list is quoted (RFC 5322 §3.4). */
                int plain = 1;

                for (const char *p = full; *p; p++)
                    if (strchr("()<>[]:;@\\,.\"", *p) || (unsigned char) *p < 32)
                        plain = 0;
                if (plain) {
                    vbuf_printf(&h, "From: %s <%s>", full, from);
                } else {
                    vbuf_puts(&h, "From: \"");
                    for (const char *p = full; *p; p++) {
                        if ((unsigned char) *p < 32)
                            continue;
                        if (*p == '"' || *p == '\\')
                            vbuf_putc(&h, '\\');
                        vbuf_putc(&h, *p);
                    }
                    vbuf_printf(&h, "\" <%s>", from);
                }
            } else {
                vbuf_printf(&h, "From: %s", from);
            }
            cm_header_out(st, h.data);
        }
        if (!st->seen_date) {
            vbuf_set(&h, "Date: ");
            cm_rfc2822_date(&h, now);
            cm_header_out(st, h.data);
        }
        if (!st->seen_message_id) {
            struct tm tm;
            char stamp[32];

            gmtime_r(&now, &tm);
            strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
            vbuf_reset(&h);
            vbuf_printf(&h, "<%s.%s@%s>", stamp, st->queue_id, var_myhostname ? var_myhostname : "localhost");
            xfree(st->message_id);
            st->message_id = xstrdup(h.data);
            vbuf_reset(&h);
            vbuf_printf(&h, "Message-Id: %s", st->message_id);
            cm_header_out(st, h.data);
        }
        if (!st->seen_dest && var_undisclosed_recipients_header && *var_undisclosed_recipients_header)
            cm_header_out(st, var_undisclosed_recipients_header);
        if ((st->flags & CLEANUP_FLAG_LOCAL) && cleanup_get_attr(st, "uid") != NULL) {
            /* Local mail gets its trace header on top, as Postfix's pickup path does (RFC 5321 §4.4). */
            vbuf all;

            vbuf_init(&all, 0);
            vbuf_printf(&all, "Received: by %s (%s, from userid %s)\r\n\tid %s; ", var_myhostname,
                        var_mail_name ? var_mail_name : "Kite", cleanup_get_attr(st, "uid"), st->queue_id);
            cm_rfc2822_date(&all, now);
            vbuf_puts(&all, "\r\n");
            vbuf_append(&all, st->headers.data, st->headers.len);
            vbuf_setn(&st->headers, all.data, all.len);
            vbuf_release(&all);
        }
    }
    vbuf_release(&h);
    if (st->status != CLEANUP_OK || st->discard)
        return;
    if (cleanup_get_attr(st, "body") == NULL) {
        st->body_pending = 1; /* the envelope waits until the body type is known */
    } else if (st->out.envelope(st, st->out.ctx) < 0) {
        cleanup_set_status(st, CLEANUP_DEFER, "4.3.0 queue file write error");
        return;
    } else {
        st->envelope_done = 1;
    }
    if (st->headers.len > 0)
        cm_emit(st, st->headers.data, st->headers.len);
    cm_emit(st, "\r\n", 2); /* the empty line that ends the headers */
    vbuf_reset(&st->headers);
}

/* cm_header_line - one line while in the header section */
static void cm_header_line(cleanup_state *st, const char *data, size_t len, int continued)
{
    if (len == 0 && !continued) {
        cm_headers_end(st); /* the empty line is emitted by cm_headers_end */
        return;
    }
    if ((data[0] == ' ' || data[0] == '\t') && st->header.len > 0) {
        /* A folded continuation of the current header. */
        if (st->header_truncated)
            return;
        if (st->header.len + 1 + len > (size_t) var_header_size_limit) {
            msg_warn("%s: header too long (more than %ld bytes); the excess is discarded", st->queue_id,
                     var_header_size_limit);
            st->header_truncated = 1;
            return;
        }
        vbuf_putc(&st->header, '\n');
        vbuf_append(&st->header, data, len);
        return;
    }
    if (cm_header_name(data, len) == 0) {
        /* Not a header: the body starts here; cm_headers_end puts the empty line in. */
        cm_headers_end(st);
        return; /* the caller passes the line on as body */
    }
    cm_header_done(st);
    if (len > (size_t) var_header_size_limit) {
        msg_warn("%s: header too long (more than %ld bytes); the excess is discarded", st->queue_id,
                 var_header_size_limit);
        len = (size_t) var_header_size_limit;
        st->header_truncated = 1;
    }
    vbuf_setn(&st->header, data, len);
    /* A NUL would cut the header short in the string functions: make it visible. */
    for (size_t i = 0; i < st->header.len; i++)
        if (st->header.data[i] == 0)
            st->header.data[i] = '?';
}

/* cm_body_line - one body line (continued: a piece of an over-long line) */
static void cm_body_line(cleanup_state *st, const char *data, size_t len, int eol, int continued)
{
    vbuf replacement, prepend;
    int drop = 0;

    vbuf_init(&replacement, 0);
    vbuf_init(&prepend, 0);
    if (!continued && st->body_checked < var_body_checks_size_limit && st->maps && st->maps->body_checks) {
        char *text = xstrndup(data, len);

        drop = cm_apply_checks(st, st->maps->body_checks, "body", text, &replacement, &prepend);
        xfree(text);
    }
    st->body_checked += (long long) len;
    if (prepend.len > 0)
        cm_emit_line(st, prepend.data, prepend.len);
    if (replacement.len > 0)
        cm_emit_line(st, replacement.data, replacement.len);
    else if (!drop && eol)
        cm_emit_line(st, data, len);
    else if (!drop)
        cm_emit(st, data, len);
    vbuf_release(&replacement);
    vbuf_release(&prepend);
}

/* cm_line - dispatch one input line (without its LF/CRLF) */
static void cm_line(cleanup_state *st, const char *data, size_t len, int eol)
{
    int continued = st->line_continued;

    st->line_continued = !eol;
    if (st->phase == CLEANUP_PHASE_HEADERS) {
        if (continued)
            return; /* the rest of an over-long header line: dropped */
        cm_header_line(st, data, len, 0);
        if (st->phase == CLEANUP_PHASE_HEADERS || len == 0)
            return;
        /* A non-header line ended the headers: it is the first body line. */
    }
    cm_body_line(st, data, len, eol, continued);
}

/* cleanup_feed - content from the client, in any chunking */
void cleanup_feed(cleanup_state *st, const char *data, size_t len)
{
    cm_prepare_sender(st);
    if (st->phase == CLEANUP_PHASE_BODY && st->binary_body) {
        /* BINARYMIME (RFC 3030 §3): the body is opaque and passes verbatim. */
        cm_emit(st, data, len);
        return;
    }
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl ? (size_t) (nl - data) : len;

        if (st->line.len + n > CLEANUP_LINE_MAX && st->phase == CLEANUP_PHASE_BODY) {
            /* Pass a very long line on in pieces without waiting for its end. */
            size_t take = CLEANUP_LINE_MAX > st->line.len ? CLEANUP_LINE_MAX - st->line.len : 0;

            vbuf_append(&st->line, data, take);
            cm_line(st, st->line.data, st->line.len, 0);
            vbuf_reset(&st->line);
            data += take;
            len -= take;
            continue;
        }
        if (st->line.len + n > CLEANUP_LINE_MAX) {
            /* An over-long header line: keep the start, drop the rest of it. */
            size_t take = CLEANUP_LINE_MAX > st->line.len ? CLEANUP_LINE_MAX - st->line.len : 0;

            vbuf_append(&st->line, data, take);
            cm_line(st, st->line.data, st->line.len, 0);
            vbuf_reset(&st->line);
            data += n;
            len -= n;
            continue;
        }
        vbuf_append(&st->line, data, n);
        data += n;
        len -= n;
        if (nl == NULL)
            break;
        data++; /* the LF */
        len--;
        if (st->line.len > 0 && st->line.data[st->line.len - 1] == '\r')
            vbuf_truncate(&st->line, st->line.len - 1);
        cm_line(st, st->line.data, st->line.len, 1);
        vbuf_reset(&st->line);
        if (st->phase == CLEANUP_PHASE_BODY && st->binary_body) {
            cm_emit(st, data, len);
            return;
        }
    }
}

/* cleanup_end - the content is complete */
void cleanup_end(cleanup_state *st)
{
    cm_prepare_sender(st);
    if (st->line.len > 0) {
        /* A last line without a newline gets one. */
        if (st->line.data[st->line.len - 1] == '\r')
            vbuf_truncate(&st->line, st->line.len - 1);
        cm_line(st, st->line.data, st->line.len, 1);
        vbuf_reset(&st->line);
    }
    if (st->phase == CLEANUP_PHASE_HEADERS)
        cm_headers_end(st); /* headers only, or nothing at all */
    if (st->body_pending && st->status == CLEANUP_OK && !st->discard)
        cm_release_envelope(st, 1);
    if (st->message_id && st->status == CLEANUP_OK)
        msg_info("%s: message-id=%s", st->queue_id, st->message_id);
}
