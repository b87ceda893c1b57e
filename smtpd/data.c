/*
 * data.c - the DATA command's message text (RFC 5321 §4.1.1.4, §4.5.2),
 * the Received: header (RFC 5321 §4.4) and the end of a message.
 *
 * Offers the DATA line scanner: only <CRLF>.<CRLF> ends the text; a bare LF
 * or a bare CR never does, and with smtpd_forbid_bare_newline (the default)
 * either one makes the whole message rejected with 5.5.2, so no second,
 * smuggled message can come out of one DATA. Lines are dot-unstuffed, sizes
 * counted against message_size_limit and line lengths against
 * smtpd_max_line_length; a message with any such error is never queued.
 *
 * Trusts nothing from the client; content goes to cleanup unchanged
 * otherwise (CRLF line ends, no dot-stuffing).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cleanup_client.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "smtpd.h"

#define SMTPD_DATA_READ_MAX 4096  /* bytes per stream_getline piece */
#define SMTPD_CONTENT_CHUNK 65536 /* bytes handed to cleanup at once */

/* smtpd_content - buffer message content for cleanup */
void smtpd_content(smtpd_session *s, const void *data, size_t len)
{
    if (s->data_errors)
        return;
    if (vbuf_append(&s->content, data, len) < 0) {
        s->data_errors |= SMTPD_DATA_WRITE_ERR;
        return;
    }
    if (s->content.len >= SMTPD_CONTENT_CHUNK) {
        if (smtpd_queue_content(s, s->content.data, s->content.len) < 0)
            s->data_errors |= SMTPD_DATA_WRITE_ERR;
        vbuf_reset(&s->content);
    }
}

/* smtpd_received_header - RFC 5321 §4.4 trace header, first line of the content */
void smtpd_received_header(smtpd_session *s)
{
    vbuf h;
    char date[64];
    time_t now = time(NULL);
    struct tm tm;

    vbuf_init(&h, 0);
    vbuf_printf(&h, "Received: from %s (%s [%s%s])\r\n", s->helo.len ? vbuf_str(&s->helo) : "unknown", s->name,
                strchr(s->addr, ':') ? "IPv6:" : "", s->addr);
    if (s->tls_active && var_smtpd_tls_received_header)
        vbuf_printf(&h, "\t(using %s)\r\n", smtpd_tls_description(s));
    if (s->sasl_username && var_smtpd_sasl_authenticated_header)
        vbuf_printf(&h, "\t(Authenticated sender: %s)\r\n", s->sasl_username);
    vbuf_printf(&h, "\tby %s (%s) with %s", var_myhostname, var_mail_name, smtpd_protocol(s));
    if (s->queue_id[0])
        vbuf_printf(&h, " id %s", s->queue_id);
    if (s->rcpt_count == 1 && s->first_rcpt)
        vbuf_printf(&h, "\r\n\tfor <%s>", s->first_rcpt);
    if (localtime_r(&now, &tm) == NULL || strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
        date[0] = 0;
    vbuf_printf(&h, "; %s\r\n", date);
    smtpd_content(s, h.data, h.len);
    vbuf_release(&h);
}

/* smtpd_data_start - after 354: reset the scanner and write Received: */
void smtpd_data_start(smtpd_session *s)
{
    s->data_errors = 0;
    s->data_prev_crlf = 1; /* the DATA command's own CRLF */
    s->data_mid_line = 0;
    s->data_line_len = 0;
    s->msg_size = 0;
    vbuf_reset(&s->content);
    smtpd_received_header(s);
    s->mode = SMTPD_MODE_DATA;
    s->flush_now = 1;
}

/*
 * smtpd_data_line - one piece of DATA input as stream_getline returned it;
 * returns 1 when it was the final "." line.
 */
int smtpd_data_line(smtpd_session *s, const char *data, size_t len, int flags)
{
    int at_start = !s->data_mid_line;
    int ended = (flags & (STREAM_LINE_CRLF | STREAM_LINE_LF)) != 0;

    /* RFC 5321 §4.1.1.4: the end is <CRLF>.<CRLF> and nothing else. */
    if (at_start && s->data_prev_crlf && (flags & STREAM_LINE_CRLF) && len == 1 && data[0] == '.')
        return 1;
    /* RFC 5321 §4.5.2: remove one leading dot. */
    if (at_start && len > 0 && data[0] == '.') {
        data++;
        len--;
    }
    if (memchr(data, 0, len))
        s->data_errors |= SMTPD_DATA_NUL;
    if (memchr(data, '\r', len) && var_smtpd_forbid_bare_newline)
        s->data_errors |= SMTPD_DATA_BARE_CR;
    if ((flags & STREAM_LINE_LF) && var_smtpd_forbid_bare_newline)
        s->data_errors |= SMTPD_DATA_BARE_LF;
    s->data_line_len += len;
    if (var_smtpd_max_line_length > 0 && s->data_line_len + (ended ? 2 : 0) > (size_t) var_smtpd_max_line_length)
        s->data_errors |= SMTPD_DATA_LONG_LINE;
    s->msg_size += (long long) len + (ended ? 2 : 0);
    if (var_message_size_limit > 0 && s->msg_size > var_message_size_limit)
        s->data_errors |= SMTPD_DATA_TOO_BIG;
    smtpd_content(s, data, len);
    if (ended)
        smtpd_content(s, "\r\n", 2); /* a tolerated bare LF becomes CRLF */
    s->data_prev_crlf = (flags & STREAM_LINE_CRLF) != 0;
    s->data_mid_line = (flags & STREAM_LINE_TOOLONG) != 0;
    if (ended)
        s->data_line_len = 0;
    return 0;
}

/* data_error_reply - the reply for the first (worst) content error */
static const char *data_error_reply(int errors)
{
    if (errors & SMTPD_DATA_WRITE_ERR)
        return "451 4.3.0 Error: queue file write error";
    if (errors & SMTPD_DATA_TOO_BIG)
        return "552 5.3.4 Message size exceeds fixed limit";
    if (errors & SMTPD_DATA_BARE_LF)
        return "550 5.5.2 Error: bare <LF> received";
    if (errors & SMTPD_DATA_BARE_CR)
        return "550 5.5.2 Error: bare <CR> received";
    if (errors & SMTPD_DATA_NUL)
        return "550 5.6.0 Error: message contains NUL characters";
    if (errors & SMTPD_DATA_LONG_LINE)
        return "500 5.5.2 Error: message line too long";
    return "451 4.3.0 Error: internal error";
}

/*
 * smtpd_data_finish - end of DATA or BDAT LAST: hand the message to cleanup.
 * The answer waits for cleanup's verdict, which comes only after the queue
 * file is safe on disk; meanwhile the event loop serves other sessions.
 */
void smtpd_data_finish(smtpd_session *s, const char *verb)
{
    s->finish_verb = verb;
    if (s->data_errors == 0 && s->content.len > 0) {
        if (smtpd_queue_content(s, s->content.data, s->content.len) < 0)
            s->data_errors |= SMTPD_DATA_WRITE_ERR;
        vbuf_reset(&s->content);
    }
    if (s->data_errors) {
        const char *reply = data_error_reply(s->data_errors);

        if (s->data_errors & (SMTPD_DATA_BARE_LF | SMTPD_DATA_BARE_CR))
            msg_warn("%s: %s from %s after %s", s->queue_id[0] ? s->queue_id : "NOQUEUE",
                     s->data_errors & SMTPD_DATA_BARE_LF ? "bare <LF> received" : "bare <CR> received", s->namaddr,
                     verb);
        smtpd_log_reject(s, "END-OF-MESSAGE", reply, NULL);
        smtpd_queue_abort(s);
        smtpd_reply(s, "%s", reply);
        smtpd_reset(s);
        s->mode = SMTPD_MODE_CMD;
        s->flush_now = 1;
        return;
    }
    s->queue_wait_fd = smtpd_queue_send_end(s);
    if (s->queue_wait_fd >= 0) {
        s->mode = SMTPD_MODE_QUEUE_WAIT;
        return;
    }
    smtpd_data_verdict(s);
}

/* smtpd_data_verdict - see smtpd.h */
void smtpd_data_verdict(smtpd_session *s)
{
    vbuf reason;
    int st;

    s->queue_wait_fd = -1;
    vbuf_init(&reason, 0);
    st = smtpd_queue_verdict(s, &reason);
    if (st == CLEANUP_OK) {
        if (s->queue_id[0])
            smtpd_reply(s, "250 2.0.0 Ok: queued as %s", s->queue_id);
        else
            smtpd_reply(s, "250 2.0.0 Ok: queued"); /* via kitedrop: pickup names it */
        s->error_count = 0;
    } else {
        const char *r = vbuf_str(&reason);
        const char *code = st == CLEANUP_REJECT ? (strncmp(r, "5.3.4", 5) == 0 ? "552" : "550") : "451";

        if (*r == 0)
            r = st == CLEANUP_REJECT ? "5.7.1 Error: message rejected" : "4.3.0 Error: queue file write error";
        msg_info("%s: reject: %s from %s: %s %s; from=<%s> proto=%s helo=<%s>",
                 s->queue_id[0] ? s->queue_id : "NOQUEUE", s->finish_verb ? s->finish_verb : "DATA", s->namaddr, code,
                 r, s->sender ? s->sender : "", s->esmtp ? "ESMTP" : "SMTP", vbuf_str(&s->helo));
        smtpd_reply(s, "%s %s", code, r);
    }
    vbuf_release(&reason);
    smtpd_reset(s);
    s->mode = SMTPD_MODE_CMD;
    s->flush_now = 1;
}

/* smtpd_data_input - read DATA lines while there are any; 0 or SMTPD_WANT_* */
int smtpd_data_input(smtpd_session *s)
{
    int flags, st;
    ssize_t n;

    if (stream_output_pending(s->out)) {
        st = stream_flush(s->out);
        if (st == STREAM_AGAIN)
            return SMTPD_WANT_WRITE;
        if (st < 0) {
            msg_info("lost connection after DATA from %s", s->namaddr);
            return SMTPD_WANT_CLOSE;
        }
    }
    for (;;) {
        n = stream_getline(s->in, &s->line, SMTPD_DATA_READ_MAX, &flags);
        if (n == STREAM_AGAIN)
            return SMTPD_WANT_READ;
        if (n < 0 || (flags & STREAM_LINE_NOEOL)) {
            /* A client that goes away mid-message leaves nothing queued. */
            msg_info("%s after DATA (%lld bytes) from %s", n == STREAM_TIMEOUT ? "timeout" : "lost connection",
                     s->msg_size, s->namaddr);
            smtpd_reset(s);
            return SMTPD_WANT_CLOSE;
        }
        if (smtpd_data_line(s, s->line.data, s->line.len, flags)) {
            smtpd_data_finish(s, "DATA");
            return 0;
        }
    }
}
