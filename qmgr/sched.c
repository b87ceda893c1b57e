/*
 * sched - destinations and the scheduler.
 *
 * A destination is a (transport, next hop) pair holding the recipients
 * waiting for it in arrival order. The scheduler walks the destinations
 * round-robin from where it stopped last time and starts at most one
 * delivery per destination per pass, so a destination with a long backlog
 * or slow agents never starves the others; each destination is held to
 * its concurrency limit (<transport>_destination_concurrency_limit) and
 * each transport to the process limit. A delivery carries up to
 * <transport>_destination_recipient_limit recipients of one message.
 *
 * Dead destinations: after default_destination_concurrency_failed_cohort_limit
 * consecutive connection-level failures the destination is suspended for
 * minimal_backoff_time; its waiting mail and new mail for it is deferred
 * without opening connections.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "conf.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "qmgr.h"
#include "strutil.h"
#include "vbuf.h"

static qmgr_dest *qmgr_dests;
static qmgr_dest *qmgr_cursor; /* round-robin position */

/* transport_limit - <transport>_<suffix>, else the default */
static int transport_limit(const char *transport, const char *suffix, long def)
{
    vbuf name;
    long v;

    vbuf_init(&name, 0);
    vbuf_printf(&name, "%s_%s", transport, suffix);
    v = conf_lookup_int(vbuf_str(&name), def);
    vbuf_release(&name);
    if (v < 1)
        v = 1;
    if (v > 1000000)
        v = 1000000;
    return (int) v;
}

/* qmgr_dest_get - find or create the destination */
qmgr_dest *qmgr_dest_get(const char *transport, const char *nexthop)
{
    qmgr_dest *d;

    for (d = qmgr_dests; d; d = d->next)
        if (strcmp(d->transport, transport) == 0 && str_case_eq(d->nexthop, nexthop))
            return d;
    d = xcalloc(1, sizeof(*d));
    d->transport = xstrdup(transport);
    d->nexthop = xstrdup(nexthop);
    d->limit = transport_limit(transport, "destination_concurrency_limit", var_default_destination_concurrency_limit);
    d->rcpt_limit = transport_limit(transport, "destination_recipient_limit", var_default_destination_recipient_limit);
    d->next = qmgr_dests;
    qmgr_dests = d;
    return d;
}

/* dest_free_if_idle - drop a destination nobody needs any more */
static void dest_free_if_idle(qmgr_dest *d)
{
    qmgr_dest **pp;

    if (d->ntodo || d->active || d->dead_until || d->failures)
        return;
    for (pp = &qmgr_dests; *pp && *pp != d; pp = &(*pp)->next)
        ;
    if (*pp == NULL)
        return;
    *pp = d->next;
    if (qmgr_cursor == d)
        qmgr_cursor = d->next;
    xfree(d->transport);
    xfree(d->nexthop);
    xfree(d->dead_reason);
    xfree(d);
}

/* qmgr_dest_add - queue one recipient at its destination */
void qmgr_dest_add(qmgr_dest *d, qmgr_message *m, size_t rcpt)
{
    qmgr_pending *t = xmalloc(sizeof(*t));

    t->msg = m;
    t->rcpt = rcpt;
    t->next = NULL;
    if (d->tail)
        d->tail->next = t;
    else
        d->head = t;
    d->tail = t;
    d->ntodo++;
    m->rcpts[rcpt].dest = d;
    qmgr_kick();
}

/* qmgr_dest_is_dead - suspended? (the suspension ends by itself) */
int qmgr_dest_is_dead(qmgr_dest *d)
{
    if (d->dead_until == 0)
        return 0;
    if (time(NULL) < d->dead_until)
        return 1;
    d->dead_until = 0;
    d->failures = 0;
    return 0;
}

/* defer_waiting - a dead destination's waiting recipients are deferred */
static void defer_waiting(qmgr_dest *d)
{
    qmgr_message **msgs = NULL;
    size_t nmsgs = 0;
    vbuf reason;

    vbuf_init(&reason, 0);
    vbuf_printf(&reason, "delivery temporarily suspended: %s",
                d->dead_reason ? d->dead_reason : "destination unreachable");
    while (d->head) {
        qmgr_pending *t = d->head;
        size_t i;

        d->head = t->next;
        d->ntodo--;
        qmgr_message_defer_rcpt(t->msg, t->rcpt, d->dead_dsn[0] ? d->dead_dsn : "4.4.1", vbuf_str(&reason), "none");
        for (i = 0; i < nmsgs && msgs[i] != t->msg; i++)
            ;
        if (i == nmsgs) {
            msgs = xrealloc(msgs, (nmsgs + 1) * sizeof(*msgs));
            msgs[nmsgs++] = t->msg;
        }
        xfree(t);
    }
    d->tail = NULL;
    for (size_t i = 0; i < nmsgs; i++)
        qmgr_message_check_done(msgs[i]);
    xfree(msgs);
    vbuf_release(&reason);
}

/* qmgr_dest_delivery_done - account for a finished delivery (dead rule) */
void qmgr_dest_delivery_done(qmgr_dest *d, int conn_failed, const char *dsn, const char *reason)
{
    if (d->active > 0)
        d->active--;
    if (!conn_failed) {
        d->failures = 0;
        return;
    }
    d->failures++;
    if (d->failures >= var_default_destination_concurrency_failed_cohort_limit && d->dead_until == 0) {
        d->dead_until = time(NULL) + var_minimal_backoff_time;
        xfree(d->dead_reason);
        d->dead_reason = xstrdup(reason && *reason ? reason : "destination unreachable");
        (void) snprintf(d->dead_dsn, sizeof(d->dead_dsn), "%s", dsn && *dsn == '4' ? dsn : "4.4.1");
        msg_info("%s:%s: destination unreachable after %d failed attempt%s; delivery suspended for %lds", d->transport,
                 d->nexthop, d->failures, d->failures == 1 ? "" : "s", (long) var_minimal_backoff_time);
        defer_waiting(d);
    }
}

/* qmgr_dest_revive - end suspensions (flush, flush_site); site NULL = all */
void qmgr_dest_revive(const char *site)
{
    for (qmgr_dest *d = qmgr_dests; d; d = d->next) {
        if (site && !str_case_eq(d->nexthop, site))
            continue;
        d->dead_until = 0;
        d->failures = 0;
    }
}

/* qmgr_dest_revive_dest - end the suspension of one (transport, next hop), if known */
void qmgr_dest_revive_dest(const char *transport, const char *nexthop)
{
    for (qmgr_dest *d = qmgr_dests; d; d = d->next) {
        if (strcmp(d->transport, transport) == 0 && str_case_eq(d->nexthop, nexthop)) {
            d->dead_until = 0;
            d->failures = 0;
        }
    }
}

/* transport_active - deliveries in flight for a transport */
static int transport_active(const char *transport)
{
    int n = 0;

    for (qmgr_dest *d = qmgr_dests; d; d = d->next)
        if (strcmp(d->transport, transport) == 0)
            n += d->active;
    return n;
}

/* start_one - one delivery for d: the head message's next recipients */
static int start_one(qmgr_dest *d)
{
    qmgr_message *m = d->head->msg;
    size_t *rcpts = xcalloc((size_t) d->rcpt_limit, sizeof(*rcpts));
    size_t n = 0;
    qmgr_pending **pp = &d->head, *t;

    /* Recipients of one message were queued together: take them from the head. */
    while ((t = *pp) != NULL && n < (size_t) d->rcpt_limit) {
        if (t->msg != m) {
            pp = &t->next;
            continue;
        }
        rcpts[n++] = t->rcpt;
        *pp = t->next;
        d->ntodo--;
        xfree(t);
    }
    d->tail = NULL;
    for (t = d->head; t; t = t->next)
        d->tail = t;
    for (size_t i = 0; i < n; i++)
        m->rcpts[rcpts[i]].state = QMGR_RCPT_BUSY;
    d->active++;
    if (qmgr_agent_start(d, m, rcpts, n) < 0) {
        xfree(rcpts);
        return -1;
    }
    xfree(rcpts);
    return 0;
}

/* qmgr_schedule - start deliveries round-robin while limits allow */
void qmgr_schedule(void)
{
    int progress = 1;

    if (qmgr_stopped)
        return;
    while (progress) {
        qmgr_dest *d, *start, *next;

        progress = 0;
        if (qmgr_dests == NULL)
            return;
        start = qmgr_cursor ? qmgr_cursor : qmgr_dests;
        d = start;
        do {
            next = d->next ? d->next : qmgr_dests;
            if (d->ntodo > 0 && qmgr_dest_is_dead(d)) {
                defer_waiting(d);
            } else if (d->ntodo > 0 && d->active < d->limit &&
                       transport_active(d->transport) < var_default_process_limit) {
                qmgr_cursor = next;
                (void) start_one(d);
                progress = 1;
                break; /* the list may have changed: restart from the cursor */
            }
            d = next;
        } while (d != start);
        if (!progress) {
            /* Drop destinations nobody waits for any more. */
            for (d = qmgr_dests; d; d = next) {
                next = d->next;
                dest_free_if_idle(d);
            }
        }
    }
}
