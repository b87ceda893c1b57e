/*
 * agent - deliveries in flight: one non-blocking connection per delivery
 * to private/<transport> on qmgr's event loop.
 *
 * qmgr sends the request at once, then reads frames: the agent's greeting
 * {protocol = "delivery"}, one result per recipient, and {request = "done"}.
 * Trusts nothing the agent sends: frames are bounded (DELIVER_RESULT_MAX)
 * and strictly scanned, a result must name a recipient of this request and
 * only once. Recipients the agent did not report (crash, garbage, timeout)
 * are deferred, never lost. A result with marked=1 says the agent already
 * marked the recipient done in the queue file (unsynced: qmgr syncs the
 * file system once per batch before removing finished files); qmgr takes
 * that only for a delivered recipient that needs no status record, and
 * marks (and syncs) everything else itself. A false claim can cost a
 * duplicate delivery, never a loss: it only ever spares a write.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "attr.h"
#include "deliver.h"
#include "events.h"
#include "mail_server.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "qmgr.h"
#include "vbuf.h"

typedef struct qmgr_conn {
    int fd;
    qmgr_dest *dest;
    qmgr_message *msg;
    size_t *rcpts; /* message recipient slots */
    size_t n;
    deliver_result *results; /* by request position */
    unsigned char *got;
    int greeted, finished;
    vbuf in, out;
    size_t out_off;
    struct qmgr_conn *next;
} qmgr_conn;

static qmgr_conn *qmgr_conns;
static int qmgr_nconns;

/* qmgr_agent_count - deliveries in flight */
int qmgr_agent_count(void)
{
    return qmgr_nconns;
}

static void agent_event(int fd, int events, void *ctx);
static void agent_timeout(void *ctx);

/* agent_mark_ok - may qmgr rely on the agent's own mark for this result? */
static int agent_mark_ok(const qmgr_message *m, size_t rcpt, const deliver_result *r)
{
    const qmgr_rcpt *qr = &m->rcpts[rcpt];

    /* The same conditions as deliver_mark_done's: nothing owed to the logs first. */
    return r->marked && r->status == DELIVER_OK && !r->relayed_no_dsn && !(m->req.flags & DELIVER_FLAG_VERIFY) &&
           !(qr->dr.notify & QF_NOTIFY_SUCCESS) && qr->state == QMGR_RCPT_DONE;
}

/* agent_finish - record what we got, defer the rest, free the connection */
static void agent_finish(qmgr_conn *c, const char *why)
{
    qmgr_message *m = c->msg;
    size_t *done = xcalloc(c->n ? c->n : 1, sizeof(*done));
    size_t ndone = 0, nres = 0, nconn = 0;
    const char *fail_dsn = NULL, *fail_reason = NULL;
    int conn_failed;
    qmgr_conn **pp;

    event_timer_cancel(agent_timeout, c);
    event_remove(c->fd);
    if (close(c->fd) < 0)
        msg_warn("close agent connection: %m");
    for (pp = &qmgr_conns; *pp && *pp != c; pp = &(*pp)->next)
        ;
    if (*pp)
        *pp = c->next;
    qmgr_nconns--;

    /* Results first (logs appended and synced), then one update of the file for the rest. */
    for (size_t i = 0; i < c->n; i++) {
        deliver_result *r = &c->results[i];

        if (!c->got[i])
            continue;
        nres++;
        if (r->status == DELIVER_DEFER && strncmp(r->dsn, "4.4.", 4) == 0) {
            nconn++;
            fail_dsn = r->dsn;
            fail_reason = r->reason;
        }
        qmgr_message_result(m, c->rcpts[i], r);
        if (m->rcpts[c->rcpts[i]].state != QMGR_RCPT_DONE)
            continue;
        if (agent_mark_ok(m, c->rcpts[i], r))
            continue; /* marked by the agent; synced with the removal batch */
        if (r->marked)
            msg_warn("%s: %s agent marked recipient %ld done unasked; marking it again", m->id, c->dest->transport,
                     r->index);
        done[ndone++] = c->rcpts[i];
    }
    (void) qmgr_message_mark_done(m, done, ndone);
    for (size_t i = 0; i < c->n; i++) {
        if (c->got[i])
            continue;
        qmgr_message_defer_rcpt(m, c->rcpts[i], "4.3.0", why ? why : "unknown mail transport error", "none");
    }
    /* Connection-level failure: the agent reached nobody, or never finished. */
    conn_failed = (!c->finished) || (nres > 0 && nconn == nres);
    if (!c->finished) {
        fail_dsn = "4.3.0";
        fail_reason = why ? why : "unknown mail transport error";
    }
    /*
     * The message first (it may be finished and freed here), then the
     * destination, whose death may defer and finish other messages.
     */
    qmgr_message_check_done(m);
    qmgr_dest_delivery_done(c->dest, conn_failed, fail_dsn, fail_reason);

    for (size_t i = 0; i < c->n; i++)
        if (c->got[i])
            deliver_result_free(&c->results[i]);
    xfree(c->results);
    xfree(c->got);
    xfree(c->rcpts);
    xfree(done);
    vbuf_release(&c->in);
    vbuf_release(&c->out);
    xfree(c);
    qmgr_kick();
}

/* agent_frame - one frame from the agent; 0 go on, 1 finished, -1 bad */
static int agent_frame(qmgr_conn *c, const void *payload, size_t len)
{
    attr_list *l = attr_new();
    deliver_result res;
    int ret = -1;

    if (attr_decode(l, payload, len) < 0) {
        msg_warn("%s: malformed frame from %s agent", c->msg->id, c->dest->transport);
        goto out;
    }
    if (!c->greeted) {
        const char *proto = NULL;
        attr_spec spec[] = {ATTR_SPEC_STR("protocol", ATTR_REQUIRED, &proto), ATTR_SPEC_END};

        if (attr_scan(l, spec) < 0 || strcmp(proto, "delivery") != 0) {
            msg_warn("%s: %s agent: bad greeting", c->msg->id, c->dest->transport);
            goto out;
        }
        c->greeted = 1;
        ret = 0;
        goto out;
    }
    switch (deliver_result_decode(l, &res)) {
    case 0:
        c->finished = 1;
        ret = 1;
        break;
    case 1: {
        size_t i;

        for (i = 0; i < c->n; i++)
            if (c->msg->rcpts[c->rcpts[i]].dr.index == res.index)
                break;
        if (i == c->n || c->got[i]) {
            msg_warn("%s: %s agent reported recipient %ld %s", c->msg->id, c->dest->transport, res.index,
                     i == c->n ? "not in the request" : "twice");
            deliver_result_free(&res);
            break;
        }
        c->results[i] = res;
        c->got[i] = 1;
        ret = 0;
        break;
    }
    default:
        msg_warn("%s: bad result frame from %s agent", c->msg->id, c->dest->transport);
        break;
    }
out:
    attr_free(l);
    return ret;
}

/* agent_read - take what arrived, act on complete frames */
static void agent_read(qmgr_conn *c)
{
    char buf[16384];
    ssize_t n;

    for (;;) {
        n = read(c->fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            agent_finish(c, n == 0 ? "lost connection with delivery agent" : "delivery agent connection error");
            return;
        }
        if (vbuf_append(&c->in, buf, (size_t) n) < 0) {
            msg_warn("%s: %s agent sent too much", c->msg->id, c->dest->transport);
            agent_finish(c, "delivery agent protocol error");
            return;
        }
        break;
    }
    while (VBUF_LEN(&c->in) >= 4) {
        const unsigned char *p = (const unsigned char *) c->in.data;
        size_t plen = ((size_t) p[0] << 24) | ((size_t) p[1] << 16) | ((size_t) p[2] << 8) | p[3];
        int st;

        if (plen > DELIVER_RESULT_MAX) {
            msg_warn("%s: %s agent: frame of %zu bytes refused", c->msg->id, c->dest->transport, plen);
            agent_finish(c, "delivery agent protocol error");
            return;
        }
        if (VBUF_LEN(&c->in) < 4 + plen)
            break;
        st = agent_frame(c, p + 4, plen);
        memmove(c->in.data, c->in.data + 4 + plen, VBUF_LEN(&c->in) - 4 - plen);
        vbuf_truncate(&c->in, VBUF_LEN(&c->in) - 4 - plen);
        if (st != 0) {
            agent_finish(c, st > 0 ? NULL : "delivery agent protocol error");
            return;
        }
    }
}

/* agent_write - push the request out */
static int agent_write(qmgr_conn *c)
{
    while (c->out_off < VBUF_LEN(&c->out)) {
        ssize_t n = write(c->fd, c->out.data + c->out_off, VBUF_LEN(&c->out) - c->out_off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n < 0)
            return -1;
        c->out_off += (size_t) n;
    }
    event_disable_write(c->fd);
    return 0;
}

/* agent_event - readiness on an agent connection */
static void agent_event(int fd, int events, void *ctx)
{
    qmgr_conn *c = ctx;

    (void) fd;
    if ((events & EVENT_WRITE) && agent_write(c) < 0) {
        agent_finish(c, "lost connection with delivery agent");
        return;
    }
    if (events & (EVENT_READ | EVENT_ERROR))
        agent_read(c);
}

/* agent_timeout - the agent took longer than daemon_timeout */
static void agent_timeout(void *ctx)
{
    qmgr_conn *c = ctx;

    msg_warn("%s: %s agent timed out", c->msg->id, c->dest->transport);
    agent_finish(c, "delivery agent timed out");
}

/*
 * qmgr_agent_start - connect to private/<transport> and send the request
 * for these recipients of m. On failure the recipients are deferred and
 * the transport is suspended for transport_retry_time; returns -1.
 */
int qmgr_agent_start(qmgr_dest *d, qmgr_message *m, const size_t *rcpts, size_t n)
{
    deliver_request req = m->req;
    attr_list *l;
    qmgr_conn *c;
    vbuf path, payload;
    unsigned char hdr[4];
    int fd;

    vbuf_init(&path, 0);
    vbuf_printf(&path, "private/%s", d->transport);
    /* A full listen queue says EAGAIN: mail_server_connect retries briefly. The fd is non-blocking. */
    fd = mail_server_connect(vbuf_str(&path), 2);
    if (fd < 0) {
        vbuf reason;

        msg_warn("connect to transport %s: %m", vbuf_str(&path));
        vbuf_release(&path);
        vbuf_init(&reason, 0);
        vbuf_printf(&reason, "mail transport %s unavailable", d->transport);
        for (size_t i = 0; i < n; i++)
            qmgr_message_defer_rcpt(m, rcpts[i], "4.3.0", vbuf_str(&reason), "none");
        /* Give the transport transport_retry_time before the next attempt. */
        d->failures = var_default_destination_concurrency_failed_cohort_limit;
        if (d->active > 0)
            d->active--;
        d->dead_until = time(NULL) + var_transport_retry_time;
        xfree(d->dead_reason);
        d->dead_reason = vbuf_steal(&reason);
        memcpy(d->dead_dsn, "4.3.0", 6);
        vbuf_release(&reason);
        qmgr_message_check_done(m);
        return -1;
    }
    vbuf_release(&path);

    c = xcalloc(1, sizeof(*c));
    c->fd = fd;
    c->dest = d;
    c->msg = m;
    c->n = n;
    c->rcpts = xcalloc(n, sizeof(*c->rcpts));
    memcpy(c->rcpts, rcpts, n * sizeof(*rcpts));
    c->results = xcalloc(n, sizeof(*c->results));
    c->got = xcalloc(n, 1);
    vbuf_init(&c->in, DELIVER_RESULT_MAX + 32768);
    vbuf_init(&c->out, 0);

    req.transport = d->transport;
    req.nexthop = d->nexthop;
    req.nrcpt = n;
    req.rcpts = xcalloc(n, sizeof(*req.rcpts));
    for (size_t i = 0; i < n; i++)
        req.rcpts[i] = m->rcpts[rcpts[i]].dr;
    l = attr_new();
    deliver_request_encode(&req, l);
    vbuf_init(&payload, 0);
    attr_encode(l, &payload);
    attr_free(l);
    xfree(req.rcpts);
    for (int i = 3; i >= 0; i--)
        hdr[3 - i] = (unsigned char) ((VBUF_LEN(&payload) >> (8 * i)) & 0xff);
    vbuf_append(&c->out, hdr, 4);
    vbuf_append(&c->out, payload.data, VBUF_LEN(&payload));
    vbuf_release(&payload);

    c->next = qmgr_conns;
    qmgr_conns = c;
    qmgr_nconns++;
    event_enable_read(fd, agent_event, c);
    event_enable_write(fd, agent_event, c);
    event_timer_set(agent_timeout, c, var_daemon_timeout * 1000L);
    return 0;
}
