/*
 * anvil_client - smtpd's side of the anvil service: per-client limits
 * that hold across every smtpd process of a service.
 *
 *   smtpd_client_connection_count_limit  concurrent sessions  (at connect)
 *   smtpd_client_connection_rate_limit   sessions per unit    (at connect)
 *   smtpd_client_message_rate_limit      MAIL commands        (at MAIL)
 *   smtpd_client_recipient_rate_limit    RCPT commands        (at RCPT)
 *
 * per anvil_rate_time_unit, for clients not listed in
 * smtpd_client_event_limit_exceptions. Replies and warnings are Postfix's,
 * so log watchers (fail2ban) work unchanged.
 *
 * One persistent connection per process, opened on first use; each
 * request is one short round trip. When anvil cannot be reached or stops
 * answering, smtpd logs a warning and goes on without limits (never
 * refusing mail for that reason), and tries again after a pause. Sessions
 * remember which connection registered them, so a disconnect never goes
 * to an anvil that does not know about the session (anvil releases what a
 * closed connection held on its own).
 *
 * Trusts: anvil's replies only through the strict attribute scanner.
 */
#include <string.h>
#include <time.h>

#include "attr.h"
#include "mail_server.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "smtpd.h"
#include "strutil.h"

#define ANVIL_SERVICE_PATH "private/anvil"
#define ANVIL_GREETING_TIMEOUT 5 /* master may have to start anvil first */
#define ANVIL_REQUEST_TIMEOUT 3  /* anvil answers from memory */
#define ANVIL_RETRY_DELAY 10     /* seconds before the first retry after a failure */
#define ANVIL_RETRY_MAX 160      /* the pause doubles per failure up to this */
#define ANVIL_REPLY_MAX 1024

static int anvil_enabled;
static stream *anvil_stream;
static unsigned anvil_generation; /* bumped per connection; 0 = never */
static time_t anvil_retry_after;
static int anvil_failures; /* in a row, for the back-off */

/* smtpd_anvil_init - use anvil when any limit is configured */
void smtpd_anvil_init(void)
{
    anvil_enabled = var_smtpd_client_connection_count_limit > 0 || var_smtpd_client_connection_rate_limit > 0 ||
                    var_smtpd_client_message_rate_limit > 0 || var_smtpd_client_recipient_rate_limit > 0;
}

/* anvil_close - drop the connection (anvil then releases what it registered) */
static void anvil_close(void)
{
    if (anvil_stream) {
        stream_close(anvil_stream);
        anvil_stream = NULL;
    }
}

/*
 * anvil_failed - no limits for a while. The pause grows while anvil stays
 * away, because a socket that master holds but no anvil serves costs a
 * greeting timeout on every attempt.
 */
static void anvil_failed(void)
{
    long delay = ANVIL_RETRY_DELAY;

    for (int i = 0; i < anvil_failures && delay < ANVIL_RETRY_MAX; i++)
        delay *= 2;
    if (delay > ANVIL_RETRY_MAX)
        delay = ANVIL_RETRY_MAX;
    anvil_failures++;
    anvil_retry_after = time(NULL) + delay;
}

/* anvil_open - connect and check the greeting; 0 or -1 (warned) */
static int anvil_open(void)
{
    int fd;

    if (anvil_stream)
        return 0;
    if (time(NULL) < anvil_retry_after)
        return -1;
    if ((fd = mail_server_connect(ANVIL_SERVICE_PATH, 1)) < 0) {
        msg_warn("connect to %s: %m; client connection and rate limits are not enforced", ANVIL_SERVICE_PATH);
        anvil_failed();
        return -1;
    }
    anvil_stream = stream_open(fd);
    stream_set_timeout(anvil_stream, ANVIL_GREETING_TIMEOUT);
    if (attr_expect_greeting(anvil_stream, "anvil") < 0) {
        msg_warn("%s does not answer; client connection and rate limits are not enforced", ANVIL_SERVICE_PATH);
        anvil_close();
        anvil_failed();
        return -1;
    }
    stream_set_timeout(anvil_stream, ANVIL_REQUEST_TIMEOUT);
    anvil_generation++;
    anvil_failures = 0;
    return 0;
}

/* anvil_try - one round trip on the open connection; 0, or -1 with the connection closed */
static int anvil_try(const attr_list *req, attr_list *reply, const attr_spec *spec, long long *status)
{
    int st;

    if ((st = attr_write(anvil_stream, req)) < 0 || (st = attr_read(anvil_stream, reply, ANVIL_REPLY_MAX)) < 0) {
        msg_warn("%s: %s", ANVIL_SERVICE_PATH, st == ATTR_BAD ? "malformed reply" : stream_strerror(st));
        anvil_close();
        return -1;
    }
    if (attr_scan(reply, spec) < 0) {
        msg_warn("%s: unexpected reply", ANVIL_SERVICE_PATH);
        anvil_close();
        return -1;
    }
    return *status == 0 ? 0 : -1;
}

/*
 * anvil_call - {request, ident} and its reply; 0 when anvil answered with
 * status 0. A connection that broke since the last call (anvil restarted)
 * is replaced at once when reconnect is set (not for a disconnect, which
 * only the old connection knew); after that, limits are off until the
 * retry pause is over.
 */
static int anvil_call(const char *request, const char *ident, const attr_spec *spec, long long *status, int reconnect)
{
    attr_list *req = attr_new(), *reply = attr_new();
    int had_stream = anvil_stream != NULL;
    int ret = -1;

    attr_put_str(req, "request", request);
    attr_put_str(req, "ident", ident);
    if (anvil_open() == 0) {
        ret = anvil_try(req, reply, spec, status);
        if (ret < 0 && anvil_stream == NULL && had_stream && reconnect) {
            if (anvil_open() < 0)
                goto out; /* warned, backing off */
            ret = anvil_try(req, reply, spec, status);
        }
        if (ret < 0 && anvil_stream == NULL) {
            msg_warn("client connection and rate limits are not enforced for now");
            anvil_failed();
        }
    }
out:
    attr_free(req);
    attr_free(reply);
    return ret;
}

/* anvil_ident - "service:address" */
static void anvil_ident(const smtpd_session *s, vbuf *out)
{
    vbuf_printf(out, "%s:%s", mail_server_service(), s->addr);
}

/* anvil_exempt - is the client in smtpd_client_event_limit_exceptions */
static int anvil_exempt(const smtpd_session *s)
{
    char *copy = xstrdup(var_smtpd_client_event_limit_exceptions ? var_smtpd_client_event_limit_exceptions : "");
    char *cursor = copy, *w;
    int hit = 0;

    while (!hit && (w = str_token(&cursor, CHARS_COMMA_SPACE)) != NULL)
        hit = smtpd_cidr_match(w, s->addr);
    xfree(copy);
    return hit;
}

/* anvil_applies - are limits checked for this session at all */
static int anvil_applies(smtpd_session *s)
{
    if (!anvil_enabled || s->standalone)
        return 0;
    if (s->anvil_exempt == 0)
        s->anvil_exempt = anvil_exempt(s) ? 1 : -1;
    return s->anvil_exempt < 0;
}

/* smtpd_anvil_connect - register the session; 1 when it must be refused (421 written) */
int smtpd_anvil_connect(smtpd_session *s)
{
    long long status = -1, count = 0, rate = 0;
    attr_spec spec[] = {ATTR_SPEC_INT("status", ATTR_REQUIRED, &status), ATTR_SPEC_INT("count", ATTR_OPTIONAL, &count),
                        ATTR_SPEC_INT("rate", ATTR_OPTIONAL, &rate), ATTR_SPEC_END};
    const char *service = mail_server_service();
    vbuf ident;
    int refuse = 0;

    if (!anvil_applies(s))
        return 0;
    vbuf_init(&ident, 0);
    anvil_ident(s, &ident);
    if (anvil_call("connect", vbuf_str(&ident), spec, &status, 1) == 0) {
        s->anvil_gen = anvil_generation;
        if (var_smtpd_client_connection_count_limit > 0 && count > var_smtpd_client_connection_count_limit) {
            msg_warn("Connection concurrency limit exceeded: %lld from %s for service %s", count, s->namaddr, service);
            refuse = 1;
        } else if (var_smtpd_client_connection_rate_limit > 0 && rate > var_smtpd_client_connection_rate_limit) {
            msg_warn("Connection rate limit exceeded: %lld from %s for service %s", rate, s->namaddr, service);
            refuse = 1;
        }
    }
    vbuf_release(&ident);
    if (refuse) {
        stream_printf(s->out, "421 4.7.0 %s Error: too many connections from %s\r\n", var_myhostname, s->addr);
        (void) stream_flush(s->out);
    }
    return refuse;
}

/* smtpd_anvil_disconnect - the session ends: give its slot back */
void smtpd_anvil_disconnect(smtpd_session *s)
{
    long long status = -1;
    attr_spec spec[] = {ATTR_SPEC_INT("status", ATTR_REQUIRED, &status), ATTR_SPEC_END};
    vbuf ident;

    /* Only on the connection that registered it: a new anvil never knew it. */
    if (s->anvil_gen == 0 || s->anvil_gen != anvil_generation || anvil_stream == NULL)
        return;
    s->anvil_gen = 0;
    vbuf_init(&ident, 0);
    anvil_ident(s, &ident);
    (void) anvil_call("disconnect", vbuf_str(&ident), spec, &status, 0);
    vbuf_release(&ident);
}

/* anvil_rate - count a message or recipient; its rate, or 0 when unknown */
static long long anvil_rate(smtpd_session *s, const char *request)
{
    long long status = -1, rate = 0;
    attr_spec spec[] = {ATTR_SPEC_INT("status", ATTR_REQUIRED, &status), ATTR_SPEC_INT("rate", ATTR_OPTIONAL, &rate),
                        ATTR_SPEC_END};
    vbuf ident;

    vbuf_init(&ident, 0);
    anvil_ident(s, &ident);
    if (anvil_call(request, vbuf_str(&ident), spec, &status, 1) < 0)
        rate = 0;
    vbuf_release(&ident);
    return rate;
}

/* smtpd_anvil_mail - MAIL: 1 when the message rate limit refuses it (reply given) */
int smtpd_anvil_mail(smtpd_session *s)
{
    long long rate;

    if (var_smtpd_client_message_rate_limit <= 0 || !anvil_applies(s))
        return 0;
    if ((rate = anvil_rate(s, "message")) <= var_smtpd_client_message_rate_limit)
        return 0;
    smtpd_reply(s, "450 4.7.1 Error: too much mail from %s", s->addr);
    msg_warn("Message delivery request rate limit exceeded: %lld from %s for service %s", rate, s->namaddr,
             mail_server_service());
    return 1;
}

/* smtpd_anvil_rcpt - RCPT: 1 when the recipient rate limit refuses it (reply given) */
int smtpd_anvil_rcpt(smtpd_session *s)
{
    long long rate;

    if (var_smtpd_client_recipient_rate_limit <= 0 || !anvil_applies(s))
        return 0;
    if ((rate = anvil_rate(s, "recipient")) <= var_smtpd_client_recipient_rate_limit)
        return 0;
    msg_warn("Recipient address rate limit exceeded: %lld from %s for service %s", rate, s->namaddr,
             mail_server_service());
    smtpd_reply(s, "450 4.7.1 Error: too many recipients from %s", s->addr);
    return 1;
}
