/*
 * deliver - the delivery request between qmgr and the delivery agents, the
 * per-recipient results, and the Postfix-format delivery log line.
 *
 * Wire format (attr frames, see attr.h):
 *   request:  {request = "deliver", queue_name, queue_id, transport, nexthop,
 *              sender, [envid], ret, body, smtputf8, size, arrival_us,
 *              active_us, [client_name], [client_addr], flags, nrcpt,
 *              then per recipient, in this order: rcpt_index, rcpt_address,
 *              rcpt_orcpt, rcpt_orig, rcpt_notify}   (empty string = none)
 *   result:   {request = "result", index, status, dsn, action, reason,
 *              [relay], [remote_mta], [diag], relayed_no_dsn, [marked]}
 *             (marked = 1 only with status OK: the agent marked the
 *             recipient done in the queue file and synced it)
 *   done:     {request = "done"}
 *
 * Offers the stream functions of deliver.h plus encode/decode helpers for
 * callers that do their own non-blocking I/O (qmgr). Trusts nothing it
 * reads: every attribute is scanned strictly, names and texts are checked
 * (no control characters, bounded lengths, sane numbers); a frame that
 * fails any check is refused as a whole.
 */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "attr.h"
#include "deliver.h"
#include "msg.h"
#include "mymalloc.h"
#include "vbuf.h"

#define DELIVER_MAX_ADDR 4096
#define DELIVER_MAX_NAME 255

/* deliver_now - wall clock with sub-second precision */
double deliver_now(void)
{
    struct timeval tv;

    if (gettimeofday(&tv, NULL) < 0)
        return 0;
    return (double) tv.tv_sec + (double) tv.tv_usec / 1e6;
}

/* deliver_text_ok - bounded text without control characters (UTF-8 allowed) */
int deliver_text_ok(const char *s, size_t max)
{
    size_t n = 0;

    for (const unsigned char *p = (const unsigned char *) s; *p; p++, n++) {
        if (n >= max)
            return 0;
        if (*p < 0x20 || *p == 0x7f)
            return 0;
    }
    return 1;
}

/* deliver_name_ok - a queue name or transport: [A-Za-z0-9_.-]+, no leading dot */
static int deliver_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > DELIVER_MAX_NAME || s[0] == '.')
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '-' || *p == '.'))
            return 0;
    return 1;
}

/* deliver_dsn_ok - RFC 3463 status code "class.subject.detail" (class 2, 4 or 5) */
int deliver_dsn_ok(const char *dsn)
{
    const char *p = dsn;
    int digits;

    if (*p != '2' && *p != '4' && *p != '5')
        return 0;
    p++;
    for (int part = 0; part < 2; part++) {
        if (*p++ != '.')
            return 0;
        for (digits = 0; *p >= '0' && *p <= '9'; p++)
            digits++;
        if (digits < 1 || digits > 3)
            return 0;
    }
    return *p == 0;
}

/* deliver_action_ok - an RFC 3464 §2.3.3 action value */
static int deliver_action_ok(const char *a)
{
    static const char *const actions[] = {"delivered", "relayed", "expanded", "failed", "delayed", NULL};

    for (int i = 0; actions[i]; i++)
        if (strcmp(a, actions[i]) == 0)
            return 1;
    return 0;
}

/* deliver_default_action - the action implied by a status */
static const char *deliver_default_action(int status)
{
    return status == DELIVER_OK ? "delivered" : status == DELIVER_DEFER ? "delayed" : "failed";
}

/* deliver_us - seconds as whole microseconds (negative and NaN: 0) */
static long long deliver_us(double secs)
{
    if (!(secs > 0))
        return 0;
    return (long long) (secs * 1e6 + 0.5);
}

/* opt_str - NULL for "" (the wire's "none") */
static char *opt_str(const char *s)
{
    return s && *s ? xstrdup(s) : NULL;
}

/* deliver_request_encode - the request as one attr list */
void deliver_request_encode(const deliver_request *req, attr_list *list)
{
    attr_clear(list);
    attr_put_str(list, "request", "deliver");
    attr_put_str(list, "queue_name", req->queue_name);
    attr_put_str(list, "queue_id", req->queue_id);
    attr_put_str(list, "transport", req->transport);
    attr_put_str(list, "nexthop", req->nexthop);
    attr_put_str(list, "sender", req->sender ? req->sender : "");
    if (req->envid && *req->envid)
        attr_put_str(list, "envid", req->envid);
    attr_put_int(list, "ret", req->ret);
    attr_put_int(list, "body", req->body);
    attr_put_int(list, "smtputf8", req->smtputf8 ? 1 : 0);
    attr_put_int(list, "size", req->size);
    attr_put_int(list, "arrival_us", deliver_us(req->arrival));
    attr_put_int(list, "active_us", deliver_us(req->active));
    if (req->client_name && *req->client_name)
        attr_put_str(list, "client_name", req->client_name);
    if (req->client_addr && *req->client_addr)
        attr_put_str(list, "client_addr", req->client_addr);
    attr_put_int(list, "flags", req->flags);
    attr_put_int(list, "nrcpt", (long long) req->nrcpt);
    for (size_t i = 0; i < req->nrcpt; i++) {
        const deliver_rcpt *r = &req->rcpts[i];

        attr_put_int(list, "rcpt_index", r->index);
        attr_put_str(list, "rcpt_address", r->address);
        attr_put_str(list, "rcpt_orcpt", r->orcpt ? r->orcpt : "");
        attr_put_str(list, "rcpt_orig", r->orig ? r->orig : "");
        attr_put_int(list, "rcpt_notify", r->notify);
    }
}

/* deliver_request_decode - validate a request list and copy it out; 0 or -1 (logged) */
int deliver_request_decode(const attr_list *list, deliver_request *req)
{
    const char *request = NULL, *qname = NULL, *qid = NULL, *transport = NULL, *nexthop = NULL;
    const char *sender = NULL, *envid = NULL, *cname = NULL, *caddr = NULL;
    long long ret = 0, body = 0, utf8 = 0, size = 0, arrival = 0, active = 0, flags = 0, nrcpt = 0;
    attr_spec spec[] = {
        ATTR_SPEC_STR("request", ATTR_REQUIRED, &request),
        ATTR_SPEC_STR("queue_name", ATTR_REQUIRED, &qname),
        ATTR_SPEC_STR("queue_id", ATTR_REQUIRED, &qid),
        ATTR_SPEC_STR("transport", ATTR_REQUIRED, &transport),
        ATTR_SPEC_STR("nexthop", ATTR_REQUIRED, &nexthop),
        ATTR_SPEC_STR("sender", ATTR_REQUIRED, &sender),
        ATTR_SPEC_STR("envid", ATTR_OPTIONAL, &envid),
        ATTR_SPEC_INT("ret", ATTR_REQUIRED, &ret),
        ATTR_SPEC_INT("body", ATTR_REQUIRED, &body),
        ATTR_SPEC_INT("smtputf8", ATTR_REQUIRED, &utf8),
        ATTR_SPEC_INT("size", ATTR_REQUIRED, &size),
        ATTR_SPEC_INT("arrival_us", ATTR_REQUIRED, &arrival),
        ATTR_SPEC_INT("active_us", ATTR_REQUIRED, &active),
        ATTR_SPEC_STR("client_name", ATTR_OPTIONAL, &cname),
        ATTR_SPEC_STR("client_addr", ATTR_OPTIONAL, &caddr),
        ATTR_SPEC_INT("flags", ATTR_REQUIRED, &flags),
        ATTR_SPEC_INT("nrcpt", ATTR_REQUIRED, &nrcpt),
        ATTR_SPEC_INT("rcpt_index", ATTR_OPTIONAL | ATTR_REPEAT, NULL),
        ATTR_SPEC_STR("rcpt_address", ATTR_OPTIONAL | ATTR_REPEAT, NULL),
        ATTR_SPEC_STR("rcpt_orcpt", ATTR_OPTIONAL | ATTR_REPEAT, NULL),
        ATTR_SPEC_STR("rcpt_orig", ATTR_OPTIONAL | ATTR_REPEAT, NULL),
        ATTR_SPEC_INT("rcpt_notify", ATTR_OPTIONAL | ATTR_REPEAT, NULL),
        ATTR_SPEC_END,
    };
    static const char *const rcpt_names[] = {"rcpt_index", "rcpt_address", "rcpt_orcpt", "rcpt_orig", "rcpt_notify"};
    size_t count, first = 0, n;

    memset(req, 0, sizeof(*req));
    if (attr_scan(list, spec) < 0)
        return -1;
    if (strcmp(request, "deliver") != 0) {
        msg_warn("deliver_request: unexpected request \"%.100s\"", request);
        return -1;
    }
    if (!deliver_name_ok(qname) || !deliver_name_ok(qid)) {
        msg_warn("deliver_request: bad queue name or queue ID");
        return -1;
    }
    if (!deliver_name_ok(transport) || !deliver_text_ok(nexthop, DELIVER_MAX_ADDR) || !*nexthop ||
        strchr(nexthop, ' ')) {
        msg_warn("deliver_request: %s: bad transport or next hop", qid);
        return -1;
    }
    if (!deliver_text_ok(sender, DELIVER_MAX_ADDR) || (envid && !deliver_text_ok(envid, 100)) ||
        (cname && !deliver_text_ok(cname, DELIVER_MAX_NAME)) || (caddr && !deliver_text_ok(caddr, DELIVER_MAX_NAME))) {
        msg_warn("deliver_request: %s: bad sender, envid or client", qid);
        return -1;
    }
    if (ret < 0 || ret > DELIVER_RET_HDRS || body < DELIVER_BODY_7BIT || body > DELIVER_BODY_BINARYMIME ||
        (utf8 != 0 && utf8 != 1) || size < 0 || arrival < 0 || active < 0 || flags < 0 ||
        flags > (DELIVER_FLAG_VERIFY | DELIVER_FLAG_BOUNCE)) {
        msg_warn("deliver_request: %s: bad envelope value", qid);
        return -1;
    }
    /* The recipients: exactly nrcpt groups of five, in order, after the envelope. */
    count = attr_count(list);
    for (first = 0; first < count; first++) {
        const char *name;
        const void *v;
        size_t len;

        (void) attr_nth(list, first, &name, &v, &len);
        if (strncmp(name, "rcpt_", 5) == 0)
            break;
    }
    n = count - first;
    if (nrcpt < 1 || nrcpt > 1000000 || n % 5 != 0 || (long long) (n / 5) != nrcpt) {
        msg_warn("deliver_request: %s: recipient count does not match", qid);
        return -1;
    }
    req->rcpts = xcalloc((size_t) nrcpt, sizeof(*req->rcpts));
    req->nrcpt = 0;
    for (size_t i = first; i < count; i += 5) {
        deliver_rcpt *r = &req->rcpts[req->nrcpt];
        const char *name;
        const void *v[5];
        size_t len;
        long long idx, notify;

        for (int k = 0; k < 5; k++) {
            (void) attr_nth(list, i + (size_t) k, &name, &v[k], &len);
            if (strcmp(name, rcpt_names[k]) != 0) {
                msg_warn("deliver_request: %s: recipient attributes out of order", qid);
                goto bad;
            }
        }
        memcpy(&idx, v[0], sizeof(idx));
        memcpy(&notify, v[4], sizeof(notify));
        if (idx < 0 || idx > 100000000 || notify < 0 || notify > 15 || !deliver_text_ok(v[1], DELIVER_MAX_ADDR) ||
            !deliver_text_ok(v[2], DELIVER_MAX_ADDR) || !deliver_text_ok(v[3], DELIVER_MAX_ADDR)) {
            msg_warn("deliver_request: %s: bad recipient", qid);
            goto bad;
        }
        for (size_t j = 0; j < req->nrcpt; j++)
            if (req->rcpts[j].index == idx) {
                msg_warn("deliver_request: %s: duplicate recipient index %lld", qid, idx);
                goto bad;
            }
        r->index = (long) idx;
        r->address = xstrdup(v[1]);
        r->orcpt = opt_str(v[2]);
        r->orig = opt_str(v[3]);
        r->notify = (int) notify;
        req->nrcpt++;
    }
    req->queue_name = xstrdup(qname);
    req->queue_id = xstrdup(qid);
    req->transport = xstrdup(transport);
    req->nexthop = xstrdup(nexthop);
    req->sender = xstrdup(sender);
    req->envid = opt_str(envid);
    req->ret = (int) ret;
    req->body = (int) body;
    req->smtputf8 = (int) utf8;
    req->size = size;
    req->arrival = (double) arrival / 1e6;
    req->active = (double) active / 1e6;
    req->client_name = opt_str(cname);
    req->client_addr = opt_str(caddr);
    req->flags = (int) flags;
    return 0;

bad:
    deliver_request_free(req);
    return -1;
}

/* deliver_request_free - release what deliver_request_read allocated */
void deliver_request_free(deliver_request *req)
{
    for (size_t i = 0; i < req->nrcpt; i++) {
        xfree(req->rcpts[i].address);
        xfree(req->rcpts[i].orcpt);
        xfree(req->rcpts[i].orig);
    }
    xfree(req->rcpts);
    xfree(req->queue_name);
    xfree(req->queue_id);
    xfree(req->transport);
    xfree(req->nexthop);
    xfree(req->sender);
    xfree(req->envid);
    xfree(req->client_name);
    xfree(req->client_addr);
    memset(req, 0, sizeof(*req));
}

/* deliver_request_read - agent side: one request frame from qmgr; 0 or -1 */
int deliver_request_read(stream *s, deliver_request *req)
{
    attr_list *list = attr_new();
    int st, ret;

    memset(req, 0, sizeof(*req));
    if ((st = attr_read(s, list, ATTR_FRAME_MAX)) < 0) {
        msg_warn("deliver_request_read: %s", st == ATTR_BAD ? "malformed frame" : stream_strerror(st));
        attr_free(list);
        return -1;
    }
    ret = deliver_request_decode(list, req);
    attr_free(list);
    return ret;
}

/* deliver_request_write - qmgr side: send one request; 0 or -1 */
int deliver_request_write(stream *s, const deliver_request *req)
{
    attr_list *list = attr_new();
    int st;

    deliver_request_encode(req, list);
    st = attr_write(s, list);
    attr_free(list);
    return st < 0 ? -1 : 0;
}

/* deliver_result_encode - one result as an attr list */
void deliver_result_encode(const deliver_result *res, attr_list *list)
{
    attr_clear(list);
    attr_put_str(list, "request", "result");
    attr_put_int(list, "index", res->index);
    attr_put_int(list, "status", res->status);
    attr_put_str(list, "dsn", res->dsn);
    attr_put_str(list, "action", res->action && *res->action ? res->action : deliver_default_action(res->status));
    attr_put_str(list, "reason", res->reason ? res->reason : "");
    if (res->relay && *res->relay)
        attr_put_str(list, "relay", res->relay);
    if (res->remote_mta && *res->remote_mta)
        attr_put_str(list, "remote_mta", res->remote_mta);
    if (res->diag && *res->diag)
        attr_put_str(list, "diag", res->diag);
    attr_put_int(list, "relayed_no_dsn", res->relayed_no_dsn ? 1 : 0);
    if (res->marked)
        attr_put_int(list, "marked", 1);
}

/* deliver_result_decode - 1 result, 0 "done", -1 bad frame (logged) */
int deliver_result_decode(const attr_list *list, deliver_result *res)
{
    const char *request = NULL, *dsn = NULL, *action = NULL, *reason = NULL;
    const char *relay = NULL, *remote_mta = NULL, *diag = NULL;
    long long index = 0, status = 0, no_dsn = 0, marked = 0;
    attr_spec done_spec[] = {ATTR_SPEC_STR("request", ATTR_REQUIRED, &request), ATTR_SPEC_END};
    attr_spec spec[] = {
        ATTR_SPEC_STR("request", ATTR_REQUIRED, &request), ATTR_SPEC_INT("index", ATTR_REQUIRED, &index),
        ATTR_SPEC_INT("status", ATTR_REQUIRED, &status),   ATTR_SPEC_STR("dsn", ATTR_REQUIRED, &dsn),
        ATTR_SPEC_STR("action", ATTR_REQUIRED, &action),   ATTR_SPEC_STR("reason", ATTR_REQUIRED, &reason),
        ATTR_SPEC_STR("relay", ATTR_OPTIONAL, &relay),     ATTR_SPEC_STR("remote_mta", ATTR_OPTIONAL, &remote_mta),
        ATTR_SPEC_STR("diag", ATTR_OPTIONAL, &diag),       ATTR_SPEC_INT("relayed_no_dsn", ATTR_REQUIRED, &no_dsn),
        ATTR_SPEC_INT("marked", ATTR_OPTIONAL, &marked),   ATTR_SPEC_END,
    };
    const char *first = attr_get_str(list, "request");

    memset(res, 0, sizeof(*res));
    if (first && strcmp(first, "done") == 0)
        return attr_scan(list, done_spec) < 0 ? -1 : 0;
    if (attr_scan(list, spec) < 0)
        return -1;
    if (strcmp(request, "result") != 0) {
        msg_warn("deliver_result: unexpected request \"%.100s\"", request);
        return -1;
    }
    if (index < 0 || index > 100000000 || status < DELIVER_OK || status > DELIVER_BOUNCE ||
        (no_dsn != 0 && no_dsn != 1) || (marked != 0 && marked != 1)) {
        msg_warn("deliver_result: bad index, status or flag");
        return -1;
    }
    /* Only a delivered recipient may have been marked done by the agent. */
    if (marked && status != DELIVER_OK) {
        msg_warn("deliver_result: recipient %lld marked done with status %lld", index, status);
        return -1;
    }
    if (!deliver_dsn_ok(dsn) || strlen(dsn) >= sizeof(res->dsn) || !deliver_action_ok(action)) {
        msg_warn("deliver_result: bad dsn or action");
        return -1;
    }
    if (!deliver_text_ok(reason, DELIVER_MAX_TEXT) || (relay && !deliver_text_ok(relay, DELIVER_MAX_ADDR)) ||
        (remote_mta && !deliver_text_ok(remote_mta, DELIVER_MAX_ADDR)) ||
        (diag && !deliver_text_ok(diag, DELIVER_MAX_TEXT))) {
        msg_warn("deliver_result: bad text in reason, relay or diagnostic");
        return -1;
    }
    res->index = (long) index;
    res->status = (int) status;
    memcpy(res->dsn, dsn, strlen(dsn) + 1);
    res->action = xstrdup(action);
    res->reason = xstrdup(reason);
    res->relay = opt_str(relay);
    res->remote_mta = opt_str(remote_mta);
    res->diag = opt_str(diag);
    res->relayed_no_dsn = (int) no_dsn;
    res->marked = (int) marked;
    return 1;
}

/* deliver_result_write - agent side: report one recipient; 0 or -1 */
int deliver_result_write(stream *s, const deliver_result *res)
{
    attr_list *list = attr_new();
    int st;

    if (!deliver_dsn_ok(res->dsn)) {
        msg_warn("deliver_result_write: bad dsn \"%.20s\"", res->dsn);
        attr_free(list);
        return -1;
    }
    deliver_result_encode(res, list);
    st = attr_write(s, list);
    attr_free(list);
    return st < 0 ? -1 : 0;
}

/* deliver_done_write - agent side: the final frame */
int deliver_done_write(stream *s)
{
    attr_list *list = attr_new();
    int st;

    attr_put_str(list, "request", "done");
    st = attr_write(s, list);
    attr_free(list);
    return st < 0 ? -1 : 0;
}

/* deliver_result_read - qmgr side: 1 result, 0 "done", -1 error */
int deliver_result_read(stream *s, deliver_result *res)
{
    attr_list *list = attr_new();
    int st, ret;

    memset(res, 0, sizeof(*res));
    if ((st = attr_read(s, list, DELIVER_RESULT_MAX)) < 0) {
        if (st != STREAM_EOF)
            msg_warn("deliver_result_read: %s", st == ATTR_BAD ? "malformed frame" : stream_strerror(st));
        attr_free(list);
        return -1;
    }
    ret = deliver_result_decode(list, res);
    attr_free(list);
    return ret;
}

/* deliver_result_free - release a result's strings */
void deliver_result_free(deliver_result *res)
{
    xfree(res->action);
    xfree(res->reason);
    xfree(res->relay);
    xfree(res->remote_mta);
    xfree(res->diag);
    res->action = res->reason = res->relay = res->remote_mta = res->diag = NULL;
}

/*
 * deliver_format_delay - a delay as Postfix prints it: whole seconds from
 * 10 on, otherwise rounded to two decimals without trailing zeros ("0.05",
 * "1.2", "0").
 */
void deliver_format_delay(vbuf *out, double secs)
{
    char buf[64];
    long long hundredths;
    size_t n;

    if (!(secs > 0)) /* also catches NaN */
        secs = 0;
    if (secs >= 10) {
        (void) vbuf_printf(out, "%lld", (long long) secs);
        return;
    }
    hundredths = (long long) (secs * 100 + 0.5);
    (void) snprintf(buf, sizeof(buf), "%lld.%02lld", hundredths / 100, hundredths % 100);
    n = strlen(buf);
    while (n > 0 && buf[n - 1] == '0')
        buf[--n] = 0;
    if (n > 0 && buf[n - 1] == '.')
        buf[--n] = 0;
    (void) vbuf_puts(out, buf);
}

/* deliver_status_word - "sent", "deferred", "bounced" (verify: "deliverable"...) */
static const char *deliver_status_word(const deliver_request *req, int status)
{
    if (req->flags & DELIVER_FLAG_VERIFY)
        return status == DELIVER_OK ? "deliverable" : status == DELIVER_DEFER ? "deferred" : "undeliverable";
    return status == DELIVER_OK ? "sent" : status == DELIVER_DEFER ? "deferred" : "bounced";
}

/* deliver_log_format - the delivery status line without logging it */
void deliver_log_format(vbuf *out, const deliver_request *req, const deliver_rcpt *rcpt, const deliver_result *res,
                        double conn_start, double xfer_start, double now)
{
    double active = req->active > 0 ? req->active : now;
    double arrival = req->arrival > 0 ? req->arrival : active;
    double cs = conn_start > 0 ? conn_start : now;
    double xs = xfer_start > 0 ? xfer_start : cs;

    if (cs < active)
        cs = active;
    if (xs < cs)
        xs = cs;
    vbuf_reset(out);
    (void) vbuf_printf(out, "%s: to=<%s>, ", req->queue_id, rcpt->address);
    if (rcpt->orig && *rcpt->orig && strcmp(rcpt->orig, rcpt->address) != 0)
        (void) vbuf_printf(out, "orig_to=<%s>, ", rcpt->orig);
    (void) vbuf_printf(out, "relay=%s, delay=", res->relay && *res->relay ? res->relay : "none");
    deliver_format_delay(out, now - arrival);
    (void) vbuf_puts(out, ", delays=");
    deliver_format_delay(out, active - arrival);
    (void) vbuf_putc(out, '/');
    deliver_format_delay(out, cs - active);
    (void) vbuf_putc(out, '/');
    deliver_format_delay(out, xs - cs);
    (void) vbuf_putc(out, '/');
    deliver_format_delay(out, now - xs);
    (void) vbuf_printf(out, ", dsn=%s, status=%s (%s)", res->dsn, deliver_status_word(req, res->status),
                       res->reason ? res->reason : "");
}

/* deliver_log - log the Postfix-format status line for one recipient */
void deliver_log(const deliver_request *req, const deliver_rcpt *rcpt, const deliver_result *res, double conn_start,
                 double xfer_start)
{
    vbuf line;

    vbuf_init(&line, 0);
    deliver_log_format(&line, req, rcpt, res, conn_start, xfer_start, deliver_now());
    msg_info("%s", vbuf_str(&line));
    vbuf_release(&line);
}
