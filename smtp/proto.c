/*
 * proto.c - one delivery request: servers in order, the ESMTP/LMTP dialogue,
 * per-recipient results.
 *
 * RFC 5321 (the transaction), RFC 2920 (PIPELINING: MAIL, every RCPT and
 * DATA go in one flight and the replies are read in order), RFC 1870 (SIZE),
 * RFC 6152 (8BITMIME), RFC 3030 (CHUNKING/BINARYMIME), RFC 6531 (SMTPUTF8),
 * RFC 3461 (DSN parameters), RFC 3207 (STARTTLS), RFC 4954 (AUTH),
 * RFC 2033 (LMTP: one reply per recipient after the data).
 * The remote server is not trusted: replies are parsed strictly and
 * bounded; a server that misbehaves makes its recipients defer.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "mail_queue.h"
#include "mail_server.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "qfile.h"
#include "smtp.h"
#include "smtp_auth.h"
#include "smtp_tls.h"
#include "strutil.h"
#include "xtext.h"

/* Where a dialogue ended up for the recipients still open. */
#define SESS_DONE     0                 /* every recipient has a result */
#define SESS_TRY_NEXT 1                 /* try the next server */

typedef struct rcpt_state {
    deliver_rcpt *rcpt;
    int accepted;                       /* RCPT got 2xx */
    int done;                           /* result is final for this request */
    deliver_result res;
} rcpt_state;

typedef struct attempt {
    deliver_request *req;
    rcpt_state *rs;
    size_t nrcpt;
    const char *content;                /* the message, CRLF */
    size_t content_len;
    int lmtp;
    double conn_start, xfer_start;
    /* The last failure, for recipients still open when servers run out. */
    int last_status;
    char last_dsn[16];
    vbuf last_reason;
    vbuf last_diag;
    vbuf last_mta;
    int retry_plain;                    /* level may: the handshake failed */
} attempt;

static smtp_session *cached_session;

static double now_double(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (double) tv.tv_sec + tv.tv_usec / 1e6;
}

/* set_result - give one recipient its final result for this request */
static void set_result(rcpt_state *r, int status, const char *dsn, const char *reason, const char *relay,
                       const char *mta, const char *diag, int relayed_no_dsn)
{
    if (r->done)
        return;
    r->done = 1;
    r->res.index = r->rcpt->index;
    r->res.status = status;
    snprintf(r->res.dsn, sizeof(r->res.dsn), "%s", dsn);
    r->res.action = xstrdup(status == DELIVER_OK ? "relayed" : status == DELIVER_DEFER ? "delayed" : "failed");
    r->res.reason = xstrdup(reason);
    r->res.relay = xstrdup(relay ? relay : "none");
    r->res.remote_mta = mta ? xstrdup(mta) : NULL;
    r->res.diag = diag ? xstrdup(diag) : NULL;
    r->res.relayed_no_dsn = relayed_no_dsn;
}

/* remember_failure - the reason to use if no later server does better */
static void remember_failure(attempt *at, int status, const char *dsn, const char *reason, const char *mta,
                             const char *diag)
{
    at->last_status = status;
    snprintf(at->last_dsn, sizeof(at->last_dsn), "%s", dsn);
    vbuf_set(&at->last_reason, reason);
    vbuf_set(&at->last_mta, mta ? mta : "");
    vbuf_set(&at->last_diag, diag ? diag : "");
}

/* fail_open - every open recipient gets the same result */
static void fail_open(attempt *at, int status, const char *dsn, const char *reason, const char *relay,
                      const char *mta, const char *diag)
{
    for (size_t i = 0; i < at->nrcpt; i++)
        set_result(&at->rs[i], status, dsn, reason, relay, mta, diag, 0);
}

/* reply_dsn - the enhanced code of a reply, forced into its reply class */
static void reply_dsn(const smtp_reply *r, char *dsn, size_t len)
{
    if (r->dsn[0] == '0' + r->code / 100)
        snprintf(dsn, len, "%s", r->dsn);
    else
        snprintf(dsn, len, "%d.0.0", r->code / 100);
}

/* server_said - "host H[A] said: REPLY (in reply to CMD command)" */
static void server_said(vbuf *out, smtp_session *ss, const smtp_reply *r, const char *cmd)
{
    vbuf_reset(out);
    if (ss->lmtp && ss->port == 0)
        vbuf_printf(out, "host %s said: %s (in reply to %s command)", ss->host, vbuf_str(&r->text), cmd);
    else
        vbuf_printf(out, "host %s[%s] said: %s (in reply to %s command)", ss->host, ss->addr, vbuf_str(&r->text),
                    cmd);
}

/* session_free - close a session without saying goodbye */
static void session_free(smtp_session *ss)
{
    if (ss == NULL)
        return;
    smtp_tls_session_free(ss);
    if (ss->s)
        stream_close(ss->s);
    xfree(ss->host);
    xfree(ss->cache_key);
    vbuf_release(&ss->relay);
    xfree(ss);
}

/* session_quit - QUIT politely, then free */
static void session_quit(smtp_session *ss)
{
    smtp_reply r;

    if (ss == NULL)
        return;
    if (ss->s && !ss->broken) {
        smtp_reply_init(&r);
        stream_set_timeout(ss->s, (int) var_smtp_quit_timeout);
        if (stream_puts(ss->s, "QUIT\r\n") == 0 && stream_flush(ss->s) == 0)
            (void) smtp_reply_read(ss->s, &r, NULL);
        smtp_reply_free(&r);
    }
    session_free(ss);
}

/* smtp_cache_close - end the cached connection (at exit) */
void smtp_cache_close(void)
{
    session_quit(cached_session);
    cached_session = NULL;
}

/* send_command - write one command line and flush */
static int send_command(smtp_session *ss, const char *cmd, int timeout)
{
    stream_set_timeout(ss->s, timeout);
    if (msg_verbose)
        msg_info("> %s: %s", ss->host, cmd);
    if (stream_puts(ss->s, cmd) < 0 || stream_puts(ss->s, "\r\n") < 0 || stream_flush(ss->s) < 0)
        return -1;
    return 0;
}

/* read_reply - one reply with a timeout; <= 0 means the session broke */
static int read_reply(smtp_session *ss, smtp_reply *r, vbuf *lines, int timeout)
{
    int code;

    stream_set_timeout(ss->s, timeout);
    code = smtp_reply_read(ss->s, r, lines);
    if (code <= 0)
        ss->broken = 1;
    if (msg_verbose && code > 0)
        msg_info("< %s: %s", ss->host, vbuf_str(&r->text));
    return code;
}

/* lost_reason - text for a session that broke while waiting for a reply */
static void lost_reason(vbuf *out, smtp_session *ss, int code, const char *stage)
{
    vbuf_reset(out);
    if (code == STREAM_TIMEOUT)
        vbuf_printf(out, "conversation with %s[%s] timed out while %s", ss->host, ss->addr, stage);
    else if (code == 0)
        vbuf_printf(out, "host %s[%s] sent a malformed reply while %s", ss->host, ss->addr, stage);
    else
        vbuf_printf(out, "lost connection with %s[%s] while %s", ss->host, ss->addr, stage);
}

/* parse_ehlo - features from the EHLO/LHLO reply lines */
static void parse_ehlo(smtp_session *ss, const vbuf *lines)
{
    const char *p = lines->data, *end = lines->data + lines->len;
    int first = 1;
    char *discard = xstrdup(var_smtp_discard_ehlo_keywords);

    ss->features = SMTP_FEAT_ESMTP;
    ss->size_limit = 0;
    ss->auth_mechs = 0;
    for (; p < end; p += strlen(p) + 1) {
        const char *arg;
        int hidden = 0;
        char *copy, *cp, *tok;

        if (first) {                    /* the greeting line of the reply */
            first = 0;
            continue;
        }
        copy = xstrdup(discard);
        cp = copy;
        while ((tok = str_token(&cp, CHARS_COMMA_SPACE)) != NULL)
            if (smtp_reply_is_ehlo_keyword(p, tok, NULL))
                hidden = 1;
        xfree(copy);
        if (hidden)
            continue;
        if (smtp_reply_is_ehlo_keyword(p, "PIPELINING", NULL))
            ss->features |= SMTP_FEAT_PIPELINING;
        else if (smtp_reply_is_ehlo_keyword(p, "SIZE", &arg)) {
            long v;

            ss->features |= SMTP_FEAT_SIZE;
            if (*arg && str_to_long(arg, &v) == 0 && v > 0)
                ss->size_limit = v;
        } else if (smtp_reply_is_ehlo_keyword(p, "8BITMIME", NULL))
            ss->features |= SMTP_FEAT_8BITMIME;
        else if (smtp_reply_is_ehlo_keyword(p, "CHUNKING", NULL))
            ss->features |= SMTP_FEAT_CHUNKING;
        else if (smtp_reply_is_ehlo_keyword(p, "BINARYMIME", NULL))
            ss->features |= SMTP_FEAT_BINARYMIME;
        else if (smtp_reply_is_ehlo_keyword(p, "SMTPUTF8", NULL))
            ss->features |= SMTP_FEAT_SMTPUTF8;
        else if (smtp_reply_is_ehlo_keyword(p, "DSN", NULL))
            ss->features |= SMTP_FEAT_DSN;
        else if (smtp_reply_is_ehlo_keyword(p, "STARTTLS", NULL))
            ss->features |= SMTP_FEAT_STARTTLS;
        else if (smtp_reply_is_ehlo_keyword(p, "ENHANCEDSTATUSCODES", NULL))
            ss->features |= SMTP_FEAT_ENHANCED;
        else if (smtp_reply_is_ehlo_keyword(p, "AUTH", &arg)) {
            char *m = xstrdup(arg), *mp = m, *mech;

            ss->features |= SMTP_FEAT_AUTH;
            while ((mech = str_token(&mp, CHARS_SPACE)) != NULL) {
                if (str_case_eq(mech, "PLAIN"))
                    ss->auth_mechs |= SMTP_AUTH_PLAIN;
                else if (str_case_eq(mech, "LOGIN"))
                    ss->auth_mechs |= SMTP_AUTH_LOGIN;
            }
            xfree(m);
        }
    }
    xfree(discard);
}

/*
 * helo - EHLO (or LHLO), falling back to HELO for SMTP when EHLO is
 * refused. Returns the reply code, <= 0 for a broken session.
 */
static int helo(smtp_session *ss, smtp_reply *r)
{
    vbuf cmd, lines;
    int code;

    vbuf_init(&cmd, 0);
    vbuf_init(&lines, 0);
    if (ss->lmtp)
        vbuf_printf(&cmd, "LHLO %s", var_lmtp_lhlo_name);
    else if (!var_smtp_never_send_ehlo)
        vbuf_printf(&cmd, "EHLO %s", var_smtp_helo_name);
    if (cmd.len) {
        if (send_command(ss, cmd.data, (int) var_smtp_helo_timeout) < 0) {
            ss->broken = 1;
            code = STREAM_ERR;
            goto out;
        }
        code = read_reply(ss, r, &lines, (int) var_smtp_helo_timeout);
        if (code <= 0 || code / 100 == 2 || ss->lmtp) {
            if (code / 100 == 2)
                parse_ehlo(ss, &lines);
            goto out;
        }
    }
    /* RFC 5321 §3.2: a server that refuses EHLO may still take HELO. */
    vbuf_reset(&cmd);
    vbuf_printf(&cmd, "HELO %s", var_smtp_helo_name);
    ss->features = 0;
    if (send_command(ss, cmd.data, (int) var_smtp_helo_timeout) < 0) {
        ss->broken = 1;
        code = STREAM_ERR;
        goto out;
    }
    code = read_reply(ss, r, NULL, (int) var_smtp_helo_timeout);
out:
    vbuf_release(&cmd);
    vbuf_release(&lines);
    return code;
}

/*
 * session_open - connect, greeting, EHLO, STARTTLS, AUTH. Returns the
 * session, or NULL with at's last failure set (and *fatal set when the
 * failure is permanent for all servers, e.g. a TLS policy violation that
 * no other server would change... only when configured so).
 */
static smtp_session *session_open(attempt *at, const smtp_addr *a, int port, const char *unix_path,
                                  const char *nexthop, int tls_level)
{
    smtp_session *ss = xcalloc(1, sizeof(*ss));
    smtp_reply r;
    vbuf why;
    int fd, code;

    vbuf_init(&why, 0);
    vbuf_init(&ss->relay, 0);
    smtp_reply_init(&r);
    ss->lmtp = at->lmtp;
    ss->port = port;
    if (unix_path) {
        ss->host = xstrdup(unix_path);
        snprintf(ss->addr, sizeof(ss->addr), "unix");
        ss->port = 0;
        vbuf_set(&ss->relay, unix_path);
        fd = smtp_connect_unix(unix_path, (int) var_smtp_connect_timeout, &why);
    } else {
        ss->host = xstrdup(a->host);
        smtp_addr_print(&a->sa, ss->addr, sizeof(ss->addr));
        vbuf_printf(&ss->relay, "%s[%s]:%d", ss->host, ss->addr, port);
        fd = smtp_connect_addr(a, port, (int) var_smtp_connect_timeout, &why);
    }
    if (fd < 0) {
        msg_info("%s", vbuf_str(&why));
        remember_failure(at, DELIVER_DEFER, "4.4.1", vbuf_str(&why), NULL, NULL);
        goto fail;
    }
    ss->s = stream_open(fd);
    ss->connected = time(NULL);
    code = read_reply(ss, &r, NULL, (int) var_smtp_helo_timeout);
    if (code <= 0) {
        lost_reason(&why, ss, code, "receiving the initial server greeting");
        remember_failure(at, DELIVER_DEFER, "4.4.2", vbuf_str(&why), NULL, NULL);
        goto fail;
    }
    if (code / 100 != 2) {
        char dsn[16];
        vbuf mta, diag;

        vbuf_init(&mta, 0);
        vbuf_init(&diag, 0);
        reply_dsn(&r, dsn, sizeof(dsn));
        vbuf_printf(&mta, "dns; %s", ss->host);
        vbuf_printf(&diag, "smtp; %s", vbuf_str(&r.text));
        server_said(&why, ss, &r, "initial greeting");
        vbuf_truncate(&why, why.len - strlen(" (in reply to initial greeting command)"));
        vbuf_puts(&why, " (in reply to initial greeting)");
        /* A 5xx greeting from one MX says nothing about the others. */
        remember_failure(at, code / 100 == 5 && !var_smtp_skip_5xx_greeting ? DELIVER_BOUNCE : DELIVER_DEFER,
                         code / 100 == 5 && !var_smtp_skip_5xx_greeting ? dsn : "4.0.0", vbuf_str(&why), mta.data,
                         diag.data);
        vbuf_release(&mta);
        vbuf_release(&diag);
        goto fail;
    }
    code = helo(ss, &r);
    if (code <= 0 || code / 100 != 2) {
        if (code <= 0)
            lost_reason(&why, ss, code, "performing the EHLO handshake");
        else
            server_said(&why, ss, &r, ss->lmtp ? "LHLO" : "HELO");
        remember_failure(at, DELIVER_DEFER, "4.0.0", vbuf_str(&why), NULL, NULL);
        goto fail;
    }
    /* STARTTLS per smtp_tls_security_level (RFC 3207). */
    if (tls_level > SMTP_TLS_NONE && !unix_path) {
        if (!(ss->features & SMTP_FEAT_STARTTLS)) {
            if (tls_level >= SMTP_TLS_ENCRYPT) {
                vbuf_reset(&why);
                vbuf_printf(&why, "TLS is required, but was not offered by host %s[%s]", ss->host, ss->addr);
                remember_failure(at, DELIVER_DEFER, "4.7.4", vbuf_str(&why), NULL, NULL);
                goto fail;
            }
        } else {
            int tls_rc = smtp_starttls(ss, nexthop, tls_level, &why);

            if (tls_rc < 0) {
                remember_failure(at, DELIVER_DEFER, "4.7.5", vbuf_str(&why), NULL, NULL);
                if (tls_rc == -2)
                    at->retry_plain = 1;
                goto fail;
            }
            code = helo(ss, &r);
            if (code <= 0 || code / 100 != 2) {
                if (code <= 0)
                    lost_reason(&why, ss, code, "performing the EHLO handshake after STARTTLS");
                else
                    server_said(&why, ss, &r, "EHLO");
                remember_failure(at, DELIVER_DEFER, "4.0.0", vbuf_str(&why), NULL, NULL);
                goto fail;
            }
        }
    }
    /* AUTH towards a relay (RFC 4954). */
    if (var_smtp_sasl_auth_enable) {
        int auth_rc = smtp_auth(ss, nexthop, &why);

        if (auth_rc < 0) {
            remember_failure(at, DELIVER_DEFER, "4.7.0", vbuf_str(&why), NULL, NULL);
            goto fail;
        }
    }
    smtp_reply_free(&r);
    vbuf_release(&why);
    return ss;
fail:
    smtp_reply_free(&r);
    vbuf_release(&why);
    if (ss->s && !ss->broken)
        session_quit(ss);
    else
        session_free(ss);
    return NULL;
}

/* append_xtext_param - " NAME=xtext(value)" */
static void append_xtext_param(vbuf *cmd, const char *name, const char *value)
{
    vbuf_printf(cmd, " %s=", name);
    xtext_encode(cmd, value, strlen(value));
}

/* build_mail - the MAIL FROM command with its parameters */
static void build_mail(vbuf *cmd, smtp_session *ss, const deliver_request *req, int body, long long size)
{
    vbuf_reset(cmd);
    vbuf_puts(cmd, "MAIL FROM:<");
    addr_quote(cmd, req->sender);
    vbuf_putc(cmd, '>');
    if (ss->features & SMTP_FEAT_SIZE)
        vbuf_printf(cmd, " SIZE=%lld", size);
    if (body == DELIVER_BODY_8BITMIME && (ss->features & SMTP_FEAT_8BITMIME))
        vbuf_puts(cmd, " BODY=8BITMIME");
    else if (body == DELIVER_BODY_BINARYMIME)
        vbuf_puts(cmd, " BODY=BINARYMIME");
    if (req->smtputf8 && (ss->features & SMTP_FEAT_SMTPUTF8))
        vbuf_puts(cmd, " SMTPUTF8");
    if (ss->features & SMTP_FEAT_DSN) {
        if (req->ret == DELIVER_RET_FULL)
            vbuf_puts(cmd, " RET=FULL");
        else if (req->ret == DELIVER_RET_HDRS)
            vbuf_puts(cmd, " RET=HDRS");
        if (req->envid && *req->envid)
            append_xtext_param(cmd, "ENVID", req->envid);
    }
    if (ss->authenticated)
        vbuf_puts(cmd, " AUTH=<>");
}

/* build_rcpt - the RCPT TO command with DSN parameters */
static void build_rcpt(vbuf *cmd, smtp_session *ss, const deliver_rcpt *rc)
{
    vbuf_reset(cmd);
    vbuf_puts(cmd, "RCPT TO:<");
    addr_quote(cmd, rc->address);
    vbuf_putc(cmd, '>');
    if (ss->features & SMTP_FEAT_DSN) {
        if (rc->notify) {
            const char *sep = "";

            vbuf_puts(cmd, " NOTIFY=");
            if (rc->notify & QF_NOTIFY_NEVER) {
                vbuf_puts(cmd, "NEVER");
            } else {
                if (rc->notify & QF_NOTIFY_SUCCESS)
                    vbuf_printf(cmd, "%sSUCCESS", sep), sep = ",";
                if (rc->notify & QF_NOTIFY_FAILURE)
                    vbuf_printf(cmd, "%sFAILURE", sep), sep = ",";
                if (rc->notify & QF_NOTIFY_DELAY)
                    vbuf_printf(cmd, "%sDELAY", sep);
            }
        }
        if (rc->orcpt && *rc->orcpt) {
            /* Stored as "type;address" (decoded); RFC 3461 §4.2 wants xtext. */
            const char *semi = strchr(rc->orcpt, ';');

            if (semi && semi > rc->orcpt) {
                vbuf_puts(cmd, " ORCPT=");
                vbuf_append(cmd, rc->orcpt, (size_t) (semi - rc->orcpt) + 1);
                xtext_encode(cmd, semi + 1, strlen(semi + 1));
            }
        }
    }
}

/* write_dot_stuffed - the content for DATA: dot-stuffed, CRLF only */
static int write_dot_stuffed(smtp_session *ss, const char *data, size_t len)
{
    int bol = 1;
    size_t start = 0;

    for (size_t i = 0; i < len; i++) {
        if (bol && data[i] == '.') {
            if (stream_write(ss->s, data + start, i - start) < 0 || stream_write(ss->s, ".", 1) < 0)
                return -1;
            start = i;
        }
        bol = 0;
        if (data[i] == '\n') {
            /* A bare LF becomes CRLF: never let a lone LF reach the wire. */
            if (i == 0 || data[i - 1] != '\r') {
                if (stream_write(ss->s, data + start, i - start) < 0 || stream_write(ss->s, "\r\n", 2) < 0)
                    return -1;
                start = i + 1;
            }
            bol = 1;
        } else if (data[i] == '\r' && (i + 1 >= len || data[i + 1] != '\n')) {
            /* A bare CR likewise. */
            if (stream_write(ss->s, data + start, i - start) < 0 || stream_write(ss->s, "\r\n", 2) < 0)
                return -1;
            start = i + 1;
            bol = 1;
        }
    }
    if (stream_write(ss->s, data + start, len - start) < 0)
        return -1;
    if (len > 0 && !bol && stream_write(ss->s, "\r\n", 2) < 0)
        return -1;
    if (stream_write(ss->s, ".\r\n", 3) < 0)
        return -1;
    return stream_flush(ss->s) < 0 ? -1 : 0;
}

/* accepted_count - recipients with a 2xx to RCPT and no result yet */
static size_t accepted_count(const attempt *at)
{
    size_t n = 0;

    for (size_t i = 0; i < at->nrcpt; i++)
        if (at->rs[i].accepted && !at->rs[i].done)
            n++;
    return n;
}

/*
 * final_replies - the verdict after the content: one reply for SMTP, one
 * per accepted recipient for LMTP. Returns SESS_DONE or SESS_TRY_NEXT.
 */
static int final_replies(attempt *at, smtp_session *ss, const char *cmd_name)
{
    size_t n = ss->lmtp ? accepted_count(at) : 1;
    smtp_reply r;
    vbuf reason, mta, diag;
    int ret = SESS_DONE;
    size_t next = 0;

    smtp_reply_init(&r);
    vbuf_init(&reason, 0);
    vbuf_init(&mta, 0);
    vbuf_init(&diag, 0);
    vbuf_printf(&mta, "dns; %s", ss->host);
    for (size_t k = 0; k < n; k++) {
        int code = read_reply(ss, &r, NULL, (int) var_smtp_data_done_timeout);
        char dsn[16];

        if (code <= 0) {
            lost_reason(&reason, ss, code, "sending end of data -- message may be sent more than once");
            for (size_t i = 0; i < at->nrcpt; i++)
                if (at->rs[i].accepted && !at->rs[i].done)
                    set_result(&at->rs[i], DELIVER_DEFER, "4.4.2", reason.data, ss->relay.data, NULL, NULL, 0);
            break;
        }
        reply_dsn(&r, dsn, sizeof(dsn));
        vbuf_reset(&diag);
        vbuf_printf(&diag, "smtp; %s", vbuf_str(&r.text));
        if (code / 100 == 2) {
            vbuf_set(&reason, vbuf_str(&r.text));
        } else {
            server_said(&reason, ss, &r, cmd_name);
        }
        for (size_t i = next; i < at->nrcpt; i++) {
            rcpt_state *rs = &at->rs[i];

            if (!rs->accepted || rs->done)
                continue;
            if (code / 100 == 2) {
                int no_dsn = !(ss->features & SMTP_FEAT_DSN) && (rs->rcpt->notify & QF_NOTIFY_SUCCESS);

                set_result(rs, DELIVER_OK, dsn, reason.data, ss->relay.data, mta.data, diag.data, no_dsn);
                if (ss->lmtp) {
                    /* LMTP: the final recipient's server delivered it. */
                    xfree(rs->res.action);
                    rs->res.action = xstrdup("delivered");
                }
            } else {
                set_result(rs, code / 100 == 4 ? DELIVER_DEFER : DELIVER_BOUNCE, dsn, reason.data, ss->relay.data,
                           mta.data, diag.data, 0);
            }
            next = i + 1;
            if (ss->lmtp)
                break;
        }
    }
    smtp_reply_free(&r);
    vbuf_release(&reason);
    vbuf_release(&mta);
    vbuf_release(&diag);
    return ret;
}

/* send_bdat - the content in BDAT chunks (RFC 3030 §2); pipelined when allowed */
static int send_bdat(attempt *at, smtp_session *ss, const char *data, size_t len)
{
    size_t chunk = (size_t) var_smtp_chunk_size;
    size_t pos = 0;
    int nchunks = 0;
    smtp_reply r;
    vbuf hdr, reason, mta, diag;
    int pipelined = (ss->features & SMTP_FEAT_PIPELINING) != 0;
    int failed = 0;

    vbuf_init(&hdr, 0);
    vbuf_init(&reason, 0);
    vbuf_init(&mta, 0);
    vbuf_init(&diag, 0);
    smtp_reply_init(&r);
    stream_set_timeout(ss->s, (int) var_smtp_data_xfer_timeout);
    do {
        size_t n = len - pos < chunk ? len - pos : chunk;
        int last = (pos + n == len);

        vbuf_reset(&hdr);
        vbuf_printf(&hdr, "BDAT %zu%s\r\n", n, last ? " LAST" : "");
        if (stream_write(ss->s, hdr.data, hdr.len) < 0 || stream_write(ss->s, data + pos, n) < 0 ||
            stream_flush(ss->s) < 0) {
            ss->broken = 1;
            failed = -1;
            break;
        }
        pos += n;
        nchunks++;
        /* Without PIPELINING, every chunk but the last waits for its 250. */
        if (!pipelined && !last) {
            int code = read_reply(ss, &r, NULL, (int) var_smtp_data_xfer_timeout);

            nchunks--;
            if (code / 100 != 2) {
                failed = code <= 0 ? -1 : code;
                break;
            }
        }
    } while (pos < len);
    if (failed == 0) {
        /* Replies to the pipelined non-final chunks come first. */
        for (int i = 0; i < nchunks - 1; i++) {
            int code = read_reply(ss, &r, NULL, (int) var_smtp_data_xfer_timeout);

            if (code / 100 != 2) {
                failed = code <= 0 ? -1 : code;
                /* Read (and ignore) the rest: each is a 503 after a failure. */
                for (int k = i + 1; k < nchunks && !ss->broken; k++) {
                    smtp_reply junk;

                    smtp_reply_init(&junk);
                    (void) read_reply(ss, &junk, NULL, (int) var_smtp_data_done_timeout);
                    smtp_reply_free(&junk);
                }
                break;
            }
        }
    }
    if (failed == 0) {
        final_replies(at, ss, "end of data");
    } else {
        char dsn[16];

        if (failed < 0) {
            lost_reason(&reason, ss, STREAM_EOF, "sending message body");
            for (size_t i = 0; i < at->nrcpt; i++)
                if (at->rs[i].accepted)
                    set_result(&at->rs[i], DELIVER_DEFER, "4.4.2", reason.data, ss->relay.data, NULL, NULL, 0);
        } else {
            reply_dsn(&r, dsn, sizeof(dsn));
            server_said(&reason, ss, &r, "BDAT");
            vbuf_printf(&mta, "dns; %s", ss->host);
            vbuf_printf(&diag, "smtp; %s", vbuf_str(&r.text));
            for (size_t i = 0; i < at->nrcpt; i++)
                if (at->rs[i].accepted)
                    set_result(&at->rs[i], failed / 100 == 4 ? DELIVER_DEFER : DELIVER_BOUNCE, dsn, reason.data,
                               ss->relay.data, mta.data, diag.data, 0);
            ss->broken = 1;             /* the transaction state is unclear */
        }
    }
    smtp_reply_free(&r);
    vbuf_release(&hdr);
    vbuf_release(&reason);
    vbuf_release(&mta);
    vbuf_release(&diag);
    return SESS_DONE;
}

/*
 * transaction - MAIL, RCPT..., DATA/BDAT on an open session. Returns
 * SESS_DONE when every recipient has its result for this request, or
 * SESS_TRY_NEXT when the next server should get the remaining ones.
 */
static int transaction(attempt *at, smtp_session *ss)
{
    deliver_request *req = at->req;
    vbuf cmd, reason, mta, diag, converted;
    smtp_reply r;
    const char *content = at->content;
    size_t content_len = at->content_len;
    int body = req->body;
    int use_bdat;
    int pipelined = (ss->features & SMTP_FEAT_PIPELINING) != 0;
    int verify = (req->flags & DELIVER_FLAG_VERIFY) != 0; /* sendmail -bv: RCPT decides, no DATA */
    int code, ret = SESS_DONE;
    char dsn[16];
    size_t sent_rcpts = 0;

    vbuf_init(&cmd, 0);
    vbuf_init(&reason, 0);
    vbuf_init(&mta, 0);
    vbuf_init(&diag, 0);
    vbuf_init(&converted, 0);
    smtp_reply_init(&r);
    vbuf_printf(&mta, "dns; %s", ss->host);

    /* What the server must support for this message. */
    if ((ss->features & SMTP_FEAT_SIZE) && ss->size_limit > 0 && req->size > ss->size_limit) {
        vbuf_printf(&reason, "message size %lld exceeds size limit %ld of server %s[%s]", req->size,
                    ss->size_limit, ss->host, ss->addr);
        fail_open(at, DELIVER_BOUNCE, "5.3.4", reason.data, ss->relay.data, mta.data, NULL);
        goto out;
    }
    if (body == DELIVER_BODY_BINARYMIME &&
        (ss->features & (SMTP_FEAT_CHUNKING | SMTP_FEAT_BINARYMIME)) != (SMTP_FEAT_CHUNKING | SMTP_FEAT_BINARYMIME)) {
        vbuf_printf(&reason, "BINARYMIME is required, but was not offered by host %s[%s]", ss->host, ss->addr);
        fail_open(at, DELIVER_BOUNCE, "5.6.3", reason.data, ss->relay.data, mta.data, NULL);
        goto out;
    }
    if (req->smtputf8 && !(ss->features & SMTP_FEAT_SMTPUTF8)) {
        vbuf_printf(&reason, "SMTPUTF8 is required, but was not offered by host %s[%s]", ss->host, ss->addr);
        fail_open(at, DELIVER_BOUNCE, "5.6.7", reason.data, ss->relay.data, mta.data, NULL);
        goto out;
    }
    if (body != DELIVER_BODY_BINARYMIME && !(ss->features & SMTP_FEAT_8BITMIME) &&
        smtp_mime_needs_8bit(content, content_len)) {
        /* RFC 6152 §3: convert rather than send 8-bit data to a 7-bit server. */
        if (smtp_mime_to_7bit(content, content_len, &converted) < 0) {
            vbuf_printf(&reason, "cannot convert 8-bit message for 7-bit host %s[%s]", ss->host, ss->addr);
            fail_open(at, DELIVER_BOUNCE, "5.6.3", reason.data, ss->relay.data, mta.data, NULL);
            goto out;
        }
        content = converted.data;
        content_len = converted.len;
        body = DELIVER_BODY_7BIT;
    }
    use_bdat = var_smtp_use_bdat && (ss->features & SMTP_FEAT_CHUNKING);

    /* MAIL, RCPT... and DATA: one flight with PIPELINING (RFC 2920 §3.1). */
    stream_set_timeout(ss->s, (int) var_smtp_mail_timeout);
    build_mail(&cmd, ss, req, body, (long long) content_len);
    if (msg_verbose)
        msg_info("> %s: %s", ss->host, cmd.data);
    if (stream_write(ss->s, cmd.data, cmd.len) < 0 || stream_write(ss->s, "\r\n", 2) < 0)
        goto broken_write;
    if (!pipelined && stream_flush(ss->s) < 0)
        goto broken_write;
    if (pipelined) {
        for (size_t i = 0; i < at->nrcpt; i++) {
            if (at->rs[i].done)
                continue;
            build_rcpt(&cmd, ss, at->rs[i].rcpt);
            if (stream_write(ss->s, cmd.data, cmd.len) < 0 || stream_write(ss->s, "\r\n", 2) < 0)
                goto broken_write;
            sent_rcpts++;
        }
        if (!use_bdat && !verify && stream_write(ss->s, "DATA\r\n", 6) < 0)
            goto broken_write;
        if (stream_flush(ss->s) < 0)
            goto broken_write;
    }
    code = read_reply(ss, &r, NULL, (int) var_smtp_mail_timeout);
    if (code <= 0) {
        lost_reason(&reason, ss, code, "sending MAIL FROM");
        remember_failure(at, DELIVER_DEFER, "4.4.2", reason.data, NULL, NULL);
        ret = SESS_TRY_NEXT;
        goto out;
    }
    if (code / 100 != 2) {
        reply_dsn(&r, dsn, sizeof(dsn));
        server_said(&reason, ss, &r, "MAIL FROM");
        vbuf_printf(&diag, "smtp; %s", vbuf_str(&r.text));
        /* Drain the pipelined replies; they are 5xx/503 now. */
        for (size_t i = 0; pipelined && i < sent_rcpts + (use_bdat || verify ? 0 : 1) && !ss->broken; i++) {
            smtp_reply junk;

            smtp_reply_init(&junk);
            (void) read_reply(ss, &junk, NULL, (int) var_smtp_rcpt_timeout);
            smtp_reply_free(&junk);
        }
        if (code / 100 == 4) {
            /* 4xx to MAIL: another server may do better. */
            remember_failure(at, DELIVER_DEFER, dsn, reason.data, mta.data, diag.data);
            ret = SESS_TRY_NEXT;
        } else {
            fail_open(at, DELIVER_BOUNCE, dsn, reason.data, ss->relay.data, mta.data, diag.data);
        }
        goto reset;
    }
    for (size_t i = 0; i < at->nrcpt; i++) {
        rcpt_state *rs = &at->rs[i];

        if (rs->done)
            continue;
        if (!pipelined) {
            build_rcpt(&cmd, ss, rs->rcpt);
            if (send_command(ss, cmd.data, (int) var_smtp_rcpt_timeout) < 0)
                goto broken_write;
        }
        code = read_reply(ss, &r, NULL, (int) var_smtp_rcpt_timeout);
        if (code <= 0) {
            lost_reason(&reason, ss, code, "sending RCPT TO");
            remember_failure(at, DELIVER_DEFER, "4.4.2", reason.data, NULL, NULL);
            for (size_t k = 0; k < at->nrcpt; k++)
                at->rs[k].accepted = 0;
            ret = SESS_TRY_NEXT;
            goto out;
        }
        if (code / 100 == 2) {
            rs->accepted = 1;
        } else {
            reply_dsn(&r, dsn, sizeof(dsn));
            server_said(&reason, ss, &r, "RCPT TO");
            vbuf_reset(&diag);
            vbuf_printf(&diag, "smtp; %s", vbuf_str(&r.text));
            set_result(rs, code / 100 == 4 ? DELIVER_DEFER : DELIVER_BOUNCE, dsn, reason.data, ss->relay.data,
                       mta.data, diag.data, 0);
        }
    }
    if (verify) {
        /* A probe: the RCPT reply is the answer; RSET ends the transaction (RFC 5321 §4.1.1.5). */
        vbuf_reset(&reason);
        vbuf_printf(&reason, "deliverable via %s[%s]", ss->host, ss->addr);
        for (size_t i = 0; i < at->nrcpt; i++) {
            rcpt_state *rs = &at->rs[i];

            if (!rs->accepted || rs->done)
                continue;
            /* The report's "deliverable" comes from the status; the protocol carries RFC 3464 actions. */
            set_result(rs, DELIVER_OK, "2.0.0", reason.data, ss->relay.data, mta.data, NULL, 0);
        }
        goto reset;
    }
    if (use_bdat) {
        if (accepted_count(at) == 0)
            goto reset;
        ret = send_bdat(at, ss, content, content_len);
        goto out;
    }
    if (!pipelined) {
        if (accepted_count(at) == 0)
            goto reset;
        if (send_command(ss, "DATA", (int) var_smtp_data_init_timeout) < 0)
            goto broken_write;
    }
    code = read_reply(ss, &r, NULL, (int) var_smtp_data_init_timeout);
    if (code <= 0) {
        lost_reason(&reason, ss, code, "sending DATA command");
        for (size_t i = 0; i < at->nrcpt; i++)
            if (at->rs[i].accepted)
                set_result(&at->rs[i], DELIVER_DEFER, "4.4.2", reason.data, ss->relay.data, NULL, NULL, 0);
        goto out;
    }
    if (accepted_count(at) == 0)
        goto reset;                     /* DATA got its 503/554; nothing to send */
    if (code != 354) {
        reply_dsn(&r, dsn, sizeof(dsn));
        server_said(&reason, ss, &r, "DATA");
        vbuf_reset(&diag);
        vbuf_printf(&diag, "smtp; %s", vbuf_str(&r.text));
        for (size_t i = 0; i < at->nrcpt; i++)
            if (at->rs[i].accepted)
                set_result(&at->rs[i], code / 100 == 4 ? DELIVER_DEFER : DELIVER_BOUNCE, dsn, reason.data,
                           ss->relay.data, mta.data, diag.data, 0);
        goto reset;
    }
    at->xfer_start = now_double();
    stream_set_timeout(ss->s, (int) var_smtp_data_xfer_timeout);
    if (write_dot_stuffed(ss, content, content_len) < 0) {
        ss->broken = 1;
        lost_reason(&reason, ss, STREAM_EOF, "sending message body");
        for (size_t i = 0; i < at->nrcpt; i++)
            if (at->rs[i].accepted)
                set_result(&at->rs[i], DELIVER_DEFER, "4.4.2", reason.data, ss->relay.data, NULL, NULL, 0);
        goto out;
    }
    ret = final_replies(at, ss, "end of DATA");
    goto out;

reset:
    /* Leave the session clean for reuse (RFC 5321 §4.1.1.5). */
    if (!ss->broken) {
        if (send_command(ss, "RSET", (int) var_smtp_rset_timeout) < 0 ||
            read_reply(ss, &r, NULL, (int) var_smtp_rset_timeout) / 100 != 2)
            ss->broken = 1;
    }
    goto out;

broken_write:
    ss->broken = 1;
    vbuf_reset(&reason);
    vbuf_printf(&reason, "lost connection with %s[%s] while sending the envelope", ss->host, ss->addr);
    remember_failure(at, DELIVER_DEFER, "4.4.2", reason.data, NULL, NULL);
    for (size_t k = 0; k < at->nrcpt; k++)
        at->rs[k].accepted = 0;
    ret = SESS_TRY_NEXT;

out:
    smtp_reply_free(&r);
    vbuf_release(&cmd);
    vbuf_release(&reason);
    vbuf_release(&mta);
    vbuf_release(&diag);
    vbuf_release(&converted);
    return ret;
}

/* all_done - does every recipient have a result? */
static int all_done(const attempt *at)
{
    for (size_t i = 0; i < at->nrcpt; i++)
        if (!at->rs[i].done)
            return 0;
    return 1;
}

/* load_content - the whole message from the queue file */
static int load_content(const deliver_request *req, vbuf *content, vbuf *why)
{
    vbuf path;
    qfile *q;
    qfile_content it;
    const char *data;
    ssize_t n;
    int ret = 0;

    vbuf_init(&path, 0);
    mail_queue_path(&path, req->queue_name, req->queue_id);
    q = qfile_open(path.data, 0, why);
    vbuf_release(&path);
    if (q == NULL)
        return -1;
    qfile_content_begin(q, &it);
    while ((n = qfile_content_next(&it, &data)) > 0) {
        if (vbuf_append(content, data, (size_t) n) < 0) {
            vbuf_set(why, "message too large");
            ret = -1;
            break;
        }
    }
    if (n < 0) {
        vbuf_set(why, "error reading queue file content");
        ret = -1;
    }
    qfile_content_end(&it);
    qfile_close(q);
    return ret;
}

/* cache_take - the cached session for this destination, after a good RSET */
static smtp_session *cache_take(const char *key)
{
    smtp_session *ss = cached_session;
    time_t now = time(NULL);
    smtp_reply r;
    int ok;

    if (ss == NULL)
        return NULL;
    cached_session = NULL;
    if (strcmp(ss->cache_key, key) != 0 || ss->broken || now - ss->connected > var_smtp_connection_reuse_time_limit ||
        (var_smtp_connection_reuse_count_limit > 0 && ss->reuse_count >= var_smtp_connection_reuse_count_limit)) {
        session_quit(ss);
        return NULL;
    }
    smtp_reply_init(&r);
    ok = send_command(ss, "RSET", (int) var_smtp_rset_timeout) == 0 &&
         read_reply(ss, &r, NULL, (int) var_smtp_rset_timeout) / 100 == 2;
    smtp_reply_free(&r);
    if (!ok) {
        session_free(ss);
        return NULL;
    }
    ss->reuse_count++;
    return ss;
}

/* mark_done - delivered recipients are marked done in the queue file (qmgr syncs) before qmgr hears of them */
static void mark_done(const deliver_request *req, attempt *at)
{
    deliver_result *res = xcalloc(at->nrcpt ? at->nrcpt : 1, sizeof(*res));

    for (size_t i = 0; i < at->nrcpt; i++)
        res[i] = at->rs[i].res;
    (void) deliver_mark_done(NULL, req, res, at->nrcpt);
    for (size_t i = 0; i < at->nrcpt; i++)
        at->rs[i].res.marked = res[i].marked;
    xfree(res);
}

/* smtp_deliver - carry out one delivery request and report to qmgr */
void smtp_deliver(deliver_request *req, stream *qmgr)
{
    attempt at;
    vbuf content, why, key;
    const char *service = mail_server_service();
    int lmtp = (service && strncmp(service, "lmtp", 4) == 0) || strncmp(req->nexthop, "unix:", 5) == 0;
    const char *unix_path = strncmp(req->nexthop, "unix:", 5) == 0 ? req->nexthop + 5 : NULL;
    int tls_level = lmtp ? SMTP_TLS_NONE : smtp_tls_level_for(req->nexthop);
    smtp_session *ss;

    memset(&at, 0, sizeof(at));
    at.req = req;
    at.lmtp = lmtp;
    at.nrcpt = req->nrcpt;
    at.rs = xcalloc(req->nrcpt ? req->nrcpt : 1, sizeof(*at.rs));
    at.conn_start = now_double();
    at.last_status = DELIVER_DEFER;
    snprintf(at.last_dsn, sizeof(at.last_dsn), "4.4.1");
    vbuf_init(&at.last_reason, 0);
    vbuf_init(&at.last_diag, 0);
    vbuf_init(&at.last_mta, 0);
    vbuf_set(&at.last_reason, "no server to deliver to");
    for (size_t i = 0; i < req->nrcpt; i++)
        at.rs[i].rcpt = &req->rcpts[i];
    vbuf_init(&content, 0);
    vbuf_init(&why, 0);
    vbuf_init(&key, 0);
    vbuf_printf(&key, "%s:%s", service ? service : "smtp", req->nexthop);

    if (load_content(req, &content, &why) < 0) {
        vbuf_printf(&at.last_reason, ": %s", why.data);
        msg_warn("%s: cannot read queue file: %s", req->queue_id, why.data);
        fail_open(&at, DELIVER_DEFER, "4.3.0", "mail system error: cannot read queue file", "none", NULL, NULL);
        goto report;
    }
    at.content = content.data;
    at.content_len = content.len;

    /* A cached connection to the same place comes first. */
    ss = var_smtp_connection_cache_on_demand ? cache_take(key.data) : NULL;
    if (ss) {
        int ret = transaction(&at, ss);

        if (ret == SESS_DONE || all_done(&at)) {
            if (!ss->broken)
                cached_session = ss;
            else
                session_free(ss);
            goto finish;
        }
        session_quit(ss);
    }
    if (unix_path) {
        ss = session_open(&at, NULL, 0, unix_path, req->nexthop, SMTP_TLS_NONE);
        if (ss) {
            ss->cache_key = xstrdup(key.data);
            (void) transaction(&at, ss);
            if (!ss->broken && var_smtp_connection_cache_on_demand)
                cached_session = ss;
            else
                session_quit(ss);
        }
    } else {
        smtp_addr_list list;
        smtp_dest_error err;
        int port;
        long sessions = 0;

        vbuf_init(&err.reason, 0);
        if (smtp_resolve(req->nexthop, lmtp, &list, &port, &err) < 0) {
            fail_open(&at, err.status, err.dsn, err.reason.data, "none", NULL, NULL);
            vbuf_release(&err.reason);
            goto report;
        }
        vbuf_release(&err.reason);
        for (size_t i = 0; i < list.count && !all_done(&at); i++) {
            if (var_smtp_mx_session_limit > 0 && sessions >= var_smtp_mx_session_limit)
                break;
            at.retry_plain = 0;
            ss = session_open(&at, &list.addrs[i], port, NULL, req->nexthop, tls_level);
            if (ss == NULL && at.retry_plain) {
                /* Opportunistic TLS that fails falls back to plaintext. */
                msg_info("%s: TLS handshake failed with %s; trying again without TLS", req->queue_id,
                         list.addrs[i].host);
                ss = session_open(&at, &list.addrs[i], port, NULL, req->nexthop, SMTP_TLS_NONE);
            }
            if (ss == NULL)
                continue;
            sessions++;
            ss->cache_key = xstrdup(key.data);
            if (transaction(&at, ss) == SESS_DONE || all_done(&at)) {
                if (!ss->broken && var_smtp_connection_cache_on_demand && cached_session == NULL)
                    cached_session = ss;
                else
                    session_quit(ss);
                break;
            }
            session_quit(ss);
        }
        smtp_addr_list_free(&list);
    }
finish:
    /* Recipients no server took: the last failure we saw. */
    fail_open(&at, at.last_status, at.last_dsn, at.last_reason.data, "none",
              at.last_mta.len ? at.last_mta.data : NULL, at.last_diag.len ? at.last_diag.data : NULL);
report:
    mark_done(req, &at);
    for (size_t i = 0; i < at.nrcpt; i++) {
        deliver_log(req, at.rs[i].rcpt, &at.rs[i].res, at.conn_start, at.xfer_start);
        if (deliver_result_write(qmgr, &at.rs[i].res) < 0)
            msg_warn("%s: lost connection to qmgr while reporting", req->queue_id);
        deliver_result_free(&at.rs[i].res);
    }
    if (deliver_done_write(qmgr) < 0)
        msg_warn("%s: lost connection to qmgr", req->queue_id);
    xfree(at.rs);
    vbuf_release(&content);
    vbuf_release(&why);
    vbuf_release(&key);
    vbuf_release(&at.last_reason);
    vbuf_release(&at.last_diag);
    vbuf_release(&at.last_mta);
}
