/*
 * message - one message in the active queue: loading it from its queue
 * file, recording per-recipient results, and finishing it (notices, then
 * removal or deferral with backoff).
 *
 * Trusts nothing in the queue file beyond what qfile_open validated; a file
 * that does not validate goes to corrupt/. Ordering rules that keep mail
 * safe: a status log record is appended (and synced) before the recipient
 * is marked done; recipients are marked done before the file is removed,
 * and the marks are made durable (one syncfs per batch, in remove.c's
 * worker thread) before it is retired; the file is removed only after
 * every notice owed was queued.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bounce_log.h"
#include "deliver.h"
#include "mail_queue.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "qfile.h"
#include "qmgr.h"
#include "resolve.h"
#include "strutil.h"
#include "vbuf.h"

static qmgr_message *qmgr_messages; /* the active queue in memory */

/* qmgr_message_find - an active message by ID */
qmgr_message *qmgr_message_find(const char *id)
{
    for (qmgr_message *m = qmgr_messages; m; m = m->next)
        if (strcmp(m->id, id) == 0)
            return m;
    return NULL;
}

/* log_exists - does LOGQUEUE/ID exist? */
static int log_exists(const char *log_queue, const char *id)
{
    vbuf path;
    struct stat st;
    int ret;

    vbuf_init(&path, 0);
    mail_queue_path(&path, log_queue, id);
    ret = lstat(vbuf_str(&path), &st) == 0;
    vbuf_release(&path);
    return ret;
}

/* parse_time - "sec" or "sec.usec" to seconds; -1 if malformed */
static double parse_time(const char *text)
{
    char *end;
    double v;

    if (text == NULL || *text == 0)
        return -1;
    errno = 0;
    v = strtod(text, &end);
    if (errno || *end || v < 0)
        return -1;
    return v;
}

/* move_corrupt - set a damaged file aside, with a log line */
static void move_corrupt(const char *queue, const char *id, const char *why)
{
    msg_warn("%s: corrupt queue file in %s: %s; moved to %s", id, queue, why, MAIL_QUEUE_CORRUPT);
    /* Durable: rare, and corrupt/ is where an administrator looks for it. */
    if (mail_queue_move(id, queue, MAIL_QUEUE_CORRUPT) < 0)
        msg_warn("%s: move to %s: %m", id, MAIL_QUEUE_CORRUPT);
}

/* message_free - forget a message (its file is someone else's business) */
static void message_free(qmgr_message *m)
{
    if (m->prev)
        m->prev->next = m->next;
    else if (qmgr_messages == m)
        qmgr_messages = m->next;
    if (m->next)
        m->next->prev = m->prev;
    for (size_t i = 0; i < m->nrcpt; i++) {
        xfree(m->rcpts[i].dr.address);
        xfree(m->rcpts[i].dr.orcpt);
        xfree(m->rcpts[i].dr.orig);
        xfree(m->rcpts[i].last_reason);
    }
    xfree(m->rcpts);
    xfree(m->req.sender);
    xfree(m->req.envid);
    xfree(m->req.client_name);
    xfree(m->req.client_addr);
    xfree(m);
    qmgr_active_count--;
}

/* qmgr_message_defer_rcpt - qmgr itself defers a recipient (logged, defer log) */
void qmgr_message_defer_rcpt(qmgr_message *m, size_t rcpt, const char *dsn, const char *reason, const char *relay)
{
    deliver_result res;

    memset(&res, 0, sizeof(res));
    res.index = (long) m->rcpts[rcpt].index;
    res.status = DELIVER_DEFER;
    (void) snprintf(res.dsn, sizeof(res.dsn), "%s", dsn);
    res.action = "delayed";
    res.reason = (char *) reason;
    res.relay = (char *) relay;
    deliver_log(&m->req, &m->rcpts[rcpt].dr, &res, 0, 0);
    qmgr_message_result(m, rcpt, &res);
}

/*
 * qmgr_message_result - record one recipient's outcome: the status log
 * record now; marking done is the caller's (all of a result frame's
 * recipients at once) via qmgr_message_mark_done() for OK and BOUNCE.
 */
void qmgr_message_result(qmgr_message *m, size_t rcpt, const deliver_result *res)
{
    qmgr_rcpt *r = &m->rcpts[rcpt];

    if (r->state == QMGR_RCPT_QUEUED || r->state == QMGR_RCPT_BUSY)
        m->unfinished--;
    if (m->req.flags & DELIVER_FLAG_VERIFY) {
        /* A probe: every outcome goes to the trace log and the recipient is done (one attempt). */
        if (bounce_log_append(MAIL_QUEUE_TRACE, m->id, &r->dr, res) < 0) {
            msg_warn("%s: trace log append failed; recipient %s stays deferred", m->id, r->dr.address);
            r->state = QMGR_RCPT_DEFERRED;
            m->deferred = 1;
            return;
        }
        m->traced = 1;
        r->state = QMGR_RCPT_DONE;
        return;
    }
    switch (res->status) {
    case DELIVER_OK:
        if ((r->dr.notify & QF_NOTIFY_SUCCESS) || res->relayed_no_dsn) {
            if (bounce_log_append(MAIL_QUEUE_TRACE, m->id, &r->dr, res) < 0)
                msg_warn("%s: trace log append failed; no success notice for %s", m->id, r->dr.address);
            else
                m->traced = 1;
        }
        r->state = QMGR_RCPT_DONE;
        break;
    case DELIVER_BOUNCE:
        if (bounce_log_append(MAIL_QUEUE_BOUNCE, m->id, &r->dr, res) < 0) {
            /* Without the record no notice could be sent: try again later. */
            msg_warn("%s: bounce log append failed; recipient %s stays deferred", m->id, r->dr.address);
            r->state = QMGR_RCPT_DEFERRED;
            m->deferred = 1;
            break;
        }
        m->bounced = 1;
        r->state = QMGR_RCPT_DONE;
        break;
    default:
        if (bounce_log_append(MAIL_QUEUE_DEFER, m->id, &r->dr, res) < 0)
            msg_warn("%s: defer log append failed for %s", m->id, r->dr.address);
        r->state = QMGR_RCPT_DEFERRED;
        (void) snprintf(r->last_dsn, sizeof(r->last_dsn), "%s", res->dsn);
        xfree(r->last_reason);
        r->last_reason = xstrdup(res->reason ? res->reason : "");
        m->deferred = 1;
        break;
    }
}

/* qmgr_message_mark_done - mark recipients done in the file (synced with the removal batch); 0 or -1 */
int qmgr_message_mark_done(qmgr_message *m, const size_t *rcpts, size_t n)
{
    vbuf path, err;
    qfile *q;
    int ret = 0;

    if (n == 0)
        return 0;
    vbuf_init(&path, 0);
    vbuf_init(&err, 0);
    mail_queue_path(&path, MAIL_QUEUE_ACTIVE, m->id);
    if ((q = qfile_open(vbuf_str(&path), QFILE_RDWR, &err)) == NULL) {
        msg_warn("%s: cannot mark recipients done: %s", m->id, vbuf_str(&err));
        ret = -1;
    } else {
        for (size_t i = 0; i < n; i++) {
            size_t idx = m->rcpts[rcpts[i]].index;

            if (idx >= q->nrcpt || qfile_mark_done(q, idx, 0) < 0) {
                msg_warn("%s: mark recipient %zu done: %m", m->id, idx);
                ret = -1;
            }
        }
        /* No sync in the event loop: like the agents' marks, these are made durable by the removal batch. */
        qfile_close(q);
    }
    vbuf_release(&path);
    vbuf_release(&err);
    return ret;
}

/* request_notice - ask bounce for a notice; 0 done, -1 later (logged) */
static int request_notice(qmgr_message *m, const char *kind)
{
    if (bounce_request(kind, MAIL_QUEUE_ACTIVE, m->id) == 0)
        return 0;
    msg_warn("%s: %s notice request failed; will try again", m->id, kind);
    return -1;
}

/* expire - a message past its lifetime: deferred recipients bounce (RFC 3463 5.4.7) */
static void expire(qmgr_message *m)
{
    size_t *done = xcalloc(m->nrcpt ? m->nrcpt : 1, sizeof(*done));
    size_t ndone = 0;

    for (size_t i = 0; i < m->nrcpt; i++) {
        qmgr_rcpt *r = &m->rcpts[i];
        deliver_result res;
        vbuf reason;

        if (r->state != QMGR_RCPT_DEFERRED)
            continue;
        vbuf_init(&reason, 0);
        vbuf_puts(&reason, "message expired");
        if (r->last_reason && *r->last_reason)
            vbuf_printf(&reason, ": %s", r->last_reason);
        memset(&res, 0, sizeof(res));
        res.index = (long) r->index;
        res.status = DELIVER_BOUNCE;
        memcpy(res.dsn, "5.4.7", 6);
        res.action = "failed";
        res.reason = reason.data;
        res.relay = "none";
        if (bounce_log_append(MAIL_QUEUE_BOUNCE, m->id, &r->dr, &res) == 0) {
            r->state = QMGR_RCPT_DONE;
            m->bounced = 1;
            done[ndone++] = i;
        } else {
            msg_warn("%s: bounce log append failed for expired recipient %s", m->id, r->dr.address);
        }
        vbuf_release(&reason);
    }
    if (ndone) {
        msg_info("%s: from=<%s>, status=expired, returned to sender", m->id, m->req.sender);
        (void) qmgr_message_mark_done(m, done, ndone);
    }
    xfree(done);
}

/*
 * set_next_attempt - a deferred file's mtime is its next attempt time; it
 * is set before the move (rename keeps it), so a scan of deferred/ never
 * sees the file with its old time.
 */
static void set_next_attempt(const char *queue, const char *id, time_t when)
{
    struct timespec ts[2];
    vbuf path;

    vbuf_init(&path, 0);
    mail_queue_path(&path, queue, id);
    ts[0].tv_sec = ts[1].tv_sec = when;
    ts[0].tv_nsec = ts[1].tv_nsec = 0;
    if (utimensat(AT_FDCWD, vbuf_str(&path), ts, AT_SYMLINK_NOFOLLOW) < 0)
        msg_warn("%s: set next attempt time: %m", id);
    vbuf_release(&path);
}

/* clear_warn_time - the delay notice went out: clear the 'W' slot */
static void clear_warn_time(qmgr_message *m)
{
    vbuf path, err;
    qfile *q;

    vbuf_init(&path, 0);
    vbuf_init(&err, 0);
    mail_queue_path(&path, MAIL_QUEUE_ACTIVE, m->id);
    if ((q = qfile_open(vbuf_str(&path), QFILE_RDWR, &err)) == NULL) {
        msg_warn("%s: clear delay warning time: %s", m->id, vbuf_str(&err));
    } else {
        if (qfile_set_warn_time(q, 0) < 0 || qfile_sync_data(q) < 0)
            msg_warn("%s: clear delay warning time: %m", m->id);
        qfile_close(q);
    }
    vbuf_release(&path);
    vbuf_release(&err);
}

/*
 * qmgr_message_check_done - when no recipient is waiting or in flight:
 * expire, request notices, then remove the message or defer it.
 */
void qmgr_message_check_done(qmgr_message *m)
{
    time_t now = time(NULL);
    long lifetime = *m->req.sender ? var_maximal_queue_lifetime : var_bounce_queue_lifetime;
    int all_done = 1, notices_ok = 1;
    long backoff;

    if (m->unfinished > 0)
        return;
    if (m->deferred && (double) now - m->req.arrival >= (double) lifetime)
        expire(m);
    for (size_t i = 0; i < m->nrcpt; i++)
        if (m->rcpts[i].state != QMGR_RCPT_DONE)
            all_done = 0;

    if (m->bounced) {
        if (request_notice(m, "bounce") == 0)
            m->bounced = 0;
        else
            notices_ok = 0;
    }
    if (all_done && notices_ok && m->traced) {
        if (request_notice(m, (m->req.flags & DELIVER_FLAG_VERIFY) ? "verify" : "success") == 0)
            m->traced = 0;
        else
            notices_ok = 0;
    }
    if (all_done && notices_ok) {
        /* The file goes with the next batch, after one syncfs (remove.c). */
        qmgr_remove_later(m->id);
        message_free(m);
        qmgr_scan_incoming_soon();
        return;
    }

    /* Delay notice (RFC 3464 "delayed") once the warning time has passed. */
    if (!all_done && m->warn_time > 0 && now >= m->warn_time) {
        if (request_notice(m, "delay") == 0) {
            clear_warn_time(m);
            m->warn_time = 0;
        }
    }
    /* Exponential backoff: wait as long as the message has waited, within bounds. */
    backoff = (long) ((double) now - m->req.arrival);
    if (backoff > var_maximal_backoff_time)
        backoff = var_maximal_backoff_time;
    if (backoff < var_minimal_backoff_time || !notices_ok)
        backoff = var_minimal_backoff_time;
    set_next_attempt(MAIL_QUEUE_ACTIVE, m->id, now + backoff);
    /*
     * No directory fsync: if a crash loses this rename the file is back in
     * active/, which the next qmgr returns to incoming/ and tries at once.
     */
    if (mail_queue_move_recoverable(m->id, MAIL_QUEUE_ACTIVE, MAIL_QUEUE_DEFERRED) < 0)
        msg_warn("%s: move to %s: %m", m->id, MAIL_QUEUE_DEFERRED);
    message_free(m);
    qmgr_scan_incoming_soon();
}

/* envelope - the request template from the file's envelope attributes */
static int envelope(qmgr_message *m, const qfile *q, vbuf *why)
{
    const char *v;

    m->req.queue_name = MAIL_QUEUE_ACTIVE;
    m->req.queue_id = m->id;
    if ((m->req.arrival = parse_time(qfile_attr(q, "arrival"))) < 0) {
        vbuf_set(why, "missing or bad arrival time");
        return -1;
    }
    if ((v = qfile_attr(q, "sender")) == NULL) {
        vbuf_set(why, "missing sender");
        return -1;
    }
    m->req.sender = xstrdup(v);
    if ((v = qfile_attr(q, "envid")) && *v)
        m->req.envid = xstrdup(v);
    v = qfile_attr(q, "ret");
    m->req.ret = v == NULL                ? 0
                 : str_case_eq(v, "full") ? DELIVER_RET_FULL
                 : str_case_eq(v, "hdrs") ? DELIVER_RET_HDRS
                                          : 0;
    v = qfile_attr(q, "body");
    m->req.body = v == NULL                      ? DELIVER_BODY_7BIT
                  : str_case_eq(v, "8bitmime")   ? DELIVER_BODY_8BITMIME
                  : str_case_eq(v, "binarymime") ? DELIVER_BODY_BINARYMIME
                                                 : DELIVER_BODY_7BIT;
    v = qfile_attr(q, "smtputf8");
    m->req.smtputf8 = v && strcmp(v, "1") == 0;
    if ((v = qfile_attr(q, "client_name")) && *v)
        m->req.client_name = xstrdup(v);
    if ((v = qfile_attr(q, "client_addr")) && *v)
        m->req.client_addr = xstrdup(v);
    v = qfile_attr(q, "origin");
    if (v && strcmp(v, "bounce") == 0)
        m->req.flags |= DELIVER_FLAG_BOUNCE;
    v = qfile_attr(q, "verify");
    if (v && strcmp(v, "1") == 0)
        m->req.flags |= DELIVER_FLAG_VERIFY;
    m->req.size = q->size;
    m->warn_time = q->warn_time;
    return 0;
}

/* route - resolve one recipient and queue it at its destination (or fail it) */
static void route(qmgr_message *m, size_t i)
{
    qmgr_rcpt *r = &m->rcpts[i];
    resolve_reply rr;

    resolve_reply_init(&rr);
    if (resolve_addr(r->dr.address, &rr) < 0) {
        qmgr_message_defer_rcpt(m, i, "4.3.0", "address resolver failure", "none");
    } else if (strcmp(vbuf_str(&rr.transport), "error") == 0 || strcmp(vbuf_str(&rr.transport), "retry") == 0) {
        /* Postfix's pseudo transports: the next hop is the reason. */
        int bounce = strcmp(vbuf_str(&rr.transport), "error") == 0;
        deliver_result res;

        memset(&res, 0, sizeof(res));
        res.index = (long) r->index;
        res.status = bounce ? DELIVER_BOUNCE : DELIVER_DEFER;
        memcpy(res.dsn, bounce ? "5.0.0" : "4.0.0", 6);
        res.action = bounce ? "failed" : "delayed";
        res.reason = VBUF_LEN(&rr.nexthop) ? rr.nexthop.data
                                           : (char *) (bounce ? "mail delivery disabled" : "mail delivery deferred");
        res.relay = "none";
        deliver_log(&m->req, &r->dr, &res, 0, 0);
        qmgr_message_result(m, i, &res);
        if (r->state == QMGR_RCPT_DONE)
            (void) qmgr_message_mark_done(m, &i, 1);
    } else {
        qmgr_dest *d = qmgr_dest_get(vbuf_str(&rr.transport), vbuf_str(&rr.nexthop));

        if (qmgr_dest_is_dead(d)) {
            vbuf reason;

            vbuf_init(&reason, 0);
            vbuf_printf(&reason, "delivery temporarily suspended: %s",
                        d->dead_reason ? d->dead_reason : "destination unreachable");
            qmgr_message_defer_rcpt(m, i, d->dead_dsn[0] ? d->dead_dsn : "4.4.1", vbuf_str(&reason), "none");
            vbuf_release(&reason);
        } else {
            qmgr_dest_add(d, m, i);
        }
    }
    resolve_reply_free(&rr);
}

/*
 * qmgr_message_load - move ID from queue (incoming or deferred) to active,
 * read it, route its pending recipients. Returns the message while it
 * stays active, NULL when it is gone, corrupt, or already finished.
 */
qmgr_message *qmgr_message_load(const char *queue, const char *id)
{
    qmgr_message *m;
    vbuf path, err;
    qfile *q;
    struct stat st;
    size_t nrcpt_total;

    if (qmgr_message_find(id))
        return NULL;
    /*
     * No directory fsync: the file is durable in incoming/ or deferred/
     * already; a crash that loses the rename leaves it there, where the
     * next scan finds it again (and active/ is recovered at start).
     */
    if (mail_queue_move_recoverable(id, queue, MAIL_QUEUE_ACTIVE) < 0) {
        if (errno != ENOENT)
            msg_warn("%s: move from %s to %s: %m", id, queue, MAIL_QUEUE_ACTIVE);
        return NULL;
    }
    vbuf_init(&path, 0);
    vbuf_init(&err, 0);
    mail_queue_path(&path, MAIL_QUEUE_ACTIVE, id);
    if ((q = qfile_open(vbuf_str(&path), QFILE_RDWR, &err)) == NULL) {
        /* Damaged content is corrupt; a file we may not open is a setup problem. */
        if (lstat(vbuf_str(&path), &st) == 0 && access(vbuf_str(&path), R_OK | W_OK) == 0)
            move_corrupt(MAIL_QUEUE_ACTIVE, id, vbuf_str(&err));
        else
            msg_warn("%s: %s", id, vbuf_str(&err));
        vbuf_release(&path);
        vbuf_release(&err);
        return NULL;
    }
    m = xcalloc(1, sizeof(*m));
    (void) snprintf(m->id, sizeof(m->id), "%s", id);
    qmgr_active_count++;
    m->next = qmgr_messages;
    if (qmgr_messages)
        qmgr_messages->prev = m;
    qmgr_messages = m;
    if (envelope(m, q, &err) < 0) {
        qfile_close(q);
        move_corrupt(MAIL_QUEUE_ACTIVE, id, vbuf_str(&err));
        message_free(m);
        vbuf_release(&path);
        vbuf_release(&err);
        return NULL;
    }
    m->req.active = deliver_now();

    /* Keep the delay warning time in the file (0 = none or already sent). */
    if (var_delay_warning_time > 0 && m->warn_time == 0 && strcmp(queue, MAIL_QUEUE_INCOMING) == 0 &&
        m->req.arrival + (double) var_delay_warning_time > (double) time(NULL)) {
        m->warn_time = (long long) m->req.arrival + var_delay_warning_time;
        if (qfile_set_warn_time(q, m->warn_time) < 0 || qfile_sync_data(q) < 0)
            msg_warn("%s: set delay warning time: %m", id);
    }

    nrcpt_total = q->nrcpt;
    m->rcpts = xcalloc(q->nrcpt ? q->nrcpt : 1, sizeof(*m->rcpts));
    for (size_t i = 0; i < q->nrcpt; i++) {
        const qfile_rcpt *qr = &q->rcpts[i];
        qmgr_rcpt *r;

        if (qr->done)
            continue; /* finished in an earlier round */
        r = &m->rcpts[m->nrcpt++];
        r->index = i;
        r->state = QMGR_RCPT_QUEUED;
        r->dr.index = (long) i;
        r->dr.address = xstrdup(qr->address);
        r->dr.orcpt = qr->orcpt ? xstrdup(qr->orcpt) : NULL;
        r->dr.orig = qr->orig ? xstrdup(qr->orig) : NULL;
        r->dr.notify = qr->notify;
    }
    qfile_close(q);
    vbuf_release(&path);
    vbuf_release(&err);
    m->unfinished = m->nrcpt;
    m->bounced = log_exists(MAIL_QUEUE_BOUNCE, id);
    m->traced = log_exists(MAIL_QUEUE_TRACE, id);
    /* The defer log is rewritten by this attempt (as Postfix does). */
    if (strcmp(queue, MAIL_QUEUE_DEFERRED) == 0)
        (void) bounce_log_remove(MAIL_QUEUE_DEFER, id);

    msg_info("%s: from=<%s>, size=%lld, nrcpt=%zu (queue active)", id, m->req.sender, m->req.size, nrcpt_total);
    for (size_t i = 0; i < m->nrcpt; i++)
        route(m, i);
    if (m->unfinished == 0) {
        qmgr_message_check_done(m);
        return NULL;
    }
    return m;
}

/* qmgr_site_match - domain is site, or with subdomains one of its subdomains (ETRN @site) */
int qmgr_site_match(const char *domain, const char *site, int subdomains)
{
    size_t dl = strlen(domain), sl = strlen(site);

    if (str_case_eq(domain, site))
        return 1;
    if (domain[0] == '[' || site[0] == '[')
        return 0; /* an address literal has no subdomains */
    return subdomains && sl > 0 && dl > sl && domain[dl - sl - 1] == '.' && str_case_eq(domain + dl - sl, site);
}

/*
 * qmgr_message_has_site - a pending recipient whose domain or next hop is
 * site (with QMGR_SITE_SUBDOMAINS also a subdomain of it). With
 * QMGR_SITE_REVIVE every matching recipient's destination is revived, so
 * that a flush is not answered with "delivery temporarily suspended".
 */
int qmgr_message_has_site(const qfile *q, const char *site, int flags)
{
    int subdomains = (flags & QMGR_SITE_SUBDOMAINS) != 0;
    resolve_reply rr;
    int found = 0;

    resolve_reply_init(&rr);
    for (size_t i = 0; i < q->nrcpt && (!found || (flags & QMGR_SITE_REVIVE)); i++) {
        const char *at;
        int resolved, hit;

        if (q->rcpts[i].done)
            continue;
        at = strrchr(q->rcpts[i].address, '@');
        hit = at && qmgr_site_match(at + 1, site, subdomains);
        resolved = (hit && !(flags & QMGR_SITE_REVIVE)) ? 0 : resolve_addr(q->rcpts[i].address, &rr) == 0;
        if (!hit && resolved && qmgr_site_match(vbuf_str(&rr.nexthop), site, subdomains))
            hit = 1;
        if (!hit)
            continue;
        found = 1;
        if ((flags & QMGR_SITE_REVIVE) && resolved)
            qmgr_dest_revive_dest(vbuf_str(&rr.transport), vbuf_str(&rr.nexthop));
    }
    resolve_reply_free(&rr);
    return found;
}
