/*
 * qmgr - the queue manager: one trigger_server process with its own timers.
 *
 * Requests on public/qmgr (one attr frame each; a reply {status, text} is
 * written for clients that wait for one):
 *   incoming      new mail in incoming/ (cleanup)
 *   wakeup        master's timer: scan incoming/
 *   flush         all deferred mail now (kitequeue -f)
 *   flush_site    site=DOMAIN: deferred mail for that destination now
 *                 (ETRN, kitequeue -s): a pending recipient in that domain
 *                 or with that next hop; with subdomains=1 (ETRN @DOMAIN,
 *                 RFC 1985 §5) also in its subdomains. Only a site in
 *                 fast_flush_domains (default $relay_domains, subdomains
 *                 included) is flushed, whoever asks; the answer's status
 *                 is a FLUSH_STAT_* code (domain_list.h): 2 for a site that
 *                 is not eligible, 3 when the list could not be read
 *   deliver       queue_id=ID: that message now (kitequeue -i)
 *   stop          start no new deliveries; continue: start them again
 * Timers scan incoming/ and deferred/ every queue_run_delay. At start,
 * whatever an earlier qmgr left in active/ goes back to incoming/ (also a
 * finished message whose batched removal a crash prevented: loaded again,
 * all its recipients are done, and it is removed without a delivery).
 * Finished messages are removed in batches after one syncfs that a worker
 * thread runs beside the event loop (remove.c); at exit qmgr waits for it
 * and removes what is pending.
 *
 * Trusts requests only as far as their strict scan: a queue ID must be a
 * plausible file name, a site a bounded domain-ish string.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "attr.h"
#include "deliver.h"
#include "domain_list.h"
#include "events.h"
#include "mail_queue.h"
#include "mail_server.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "qfile.h"
#include "qmgr.h"
#include "resolve.h"
#include "strutil.h"
#include "vbuf.h"

int qmgr_stopped;
int qmgr_active_count;

static int qmgr_incoming_more; /* incoming/ had more than we took */
static int qmgr_deferred_more; /* deferred/ had due mail we could not take */

/* kick_timer - run the scheduler outside of whatever called qmgr_kick */
static void kick_timer(void *ctx)
{
    (void) ctx;
    qmgr_schedule();
}

/* qmgr_kick - schedule soon (coalesced) */
void qmgr_kick(void)
{
    event_timer_set(kick_timer, NULL, 0);
}

/*
 * room - may another message become active? Finished files waiting for
 * their removal batch (or in its sync) still sit in active/ and count;
 * when they are in the way, their batch starts now instead of after the
 * interval, and its completion refills (qmgr_scan_incoming_soon). The
 * event loop never waits for that sync.
 */
static int room(void)
{
    if (qmgr_active_count + (long) qmgr_remove_pending() < var_qmgr_message_active_limit)
        return 1;
    if (qmgr_remove_pending() > 0)
        qmgr_remove_soon();
    /* Should the batch have been removed at once (no worker), there is room now. */
    return qmgr_active_count + (long) qmgr_remove_pending() < var_qmgr_message_active_limit;
}

/* scan_incoming_one - take one new message */
static void scan_incoming_one(const char *queue, const char *id, void *ctx)
{
    (void) ctx;
    if (!room()) {
        qmgr_incoming_more = 1;
        return;
    }
    (void) qmgr_message_load(queue, id);
}

/* scan_incoming - move what is in incoming/ to active/ */
static void scan_incoming(void *ctx)
{
    (void) ctx;
    qmgr_incoming_more = 0;
    if (mail_queue_scan(MAIL_QUEUE_INCOMING, scan_incoming_one, NULL) < 0)
        msg_warn("scan %s: %m", MAIL_QUEUE_INCOMING);
    qmgr_kick();
}

static void scan_deferred(int flush);

/* refill - capacity was freed: take what had to wait */
static void refill(void *ctx)
{
    (void) ctx;
    if (qmgr_deferred_more && room())
        scan_deferred(0);
    if (qmgr_incoming_more && room())
        scan_incoming(NULL);
}

/* qmgr_scan_incoming_soon - capacity freed: refill from the queues soon */
void qmgr_scan_incoming_soon(void)
{
    if (qmgr_incoming_more || qmgr_deferred_more)
        event_timer_set(refill, NULL, 0);
}

/* scan_deferred_one - take one deferred message whose time has come */
static void scan_deferred_one(const char *queue, const char *id, void *ctx)
{
    int flush = ctx != NULL;
    vbuf path;
    struct stat st;

    vbuf_init(&path, 0);
    mail_queue_path(&path, queue, id);
    if (lstat(vbuf_str(&path), &st) == 0 && (flush || st.st_mtime <= time(NULL))) {
        if (!room())
            qmgr_deferred_more = 1;
        else
            (void) qmgr_message_load(queue, id);
    }
    vbuf_release(&path);
}

/* scan_deferred - periodic run over deferred/ */
static void scan_deferred(int flush)
{
    qmgr_deferred_more = 0;
    if (mail_queue_scan(MAIL_QUEUE_DEFERRED, scan_deferred_one, flush ? (void *) 1 : NULL) < 0 && errno != ENOENT)
        msg_warn("scan %s: %m", MAIL_QUEUE_DEFERRED);
    qmgr_kick();
}

/* scan_deferred_timer - queue_run_delay tick: deferred/ then incoming/ */
static void scan_deferred_timer(void *ctx)
{
    (void) ctx;
    scan_deferred(0);
    scan_incoming(NULL);
    event_timer_set(scan_deferred_timer, NULL, var_queue_run_delay * 1000L);
}

/* make_due - set a deferred file's next attempt to now (flush) */
static void make_due(const char *queue, const char *id)
{
    vbuf path;

    vbuf_init(&path, 0);
    mail_queue_path(&path, queue, id);
    if (utimensat(AT_FDCWD, vbuf_str(&path), NULL, AT_SYMLINK_NOFOLLOW) < 0 && errno != ENOENT)
        msg_warn("%s: utime: %m", id);
    vbuf_release(&path);
}

/* flush_all_one - every deferred message is due now */
static void flush_all_one(const char *queue, const char *id, void *ctx)
{
    (void) ctx;
    make_due(queue, id);
}

/* What a flush_site request asks for. */
typedef struct flush_site_req {
    char *site;
    int flags; /* QMGR_SITE_* */
} flush_site_req;

/* flush_site_one - deferred mail with a pending recipient for the site is due now */
static void flush_site_one(const char *queue, const char *id, void *ctx)
{
    const flush_site_req *fs = ctx;
    vbuf path, err;
    qfile *q;

    vbuf_init(&path, 0);
    vbuf_init(&err, 0);
    mail_queue_path(&path, queue, id);
    if ((q = qfile_open(vbuf_str(&path), 0, &err)) != NULL) {
        if (qmgr_message_has_site(q, fs->site, fs->flags | QMGR_SITE_REVIVE)) {
            make_due(queue, id);
            if (room())
                (void) qmgr_message_load(queue, id);
            else
                qmgr_deferred_more = 1;
        }
        qfile_close(q);
    }
    vbuf_release(&path);
    vbuf_release(&err);
}

/*
 * flush_site_scan - the deferred/ scan of a flush_site request. It runs
 * from a timer, after the answer went out: the client (smtpd's ETRN waits
 * for it) never waits for a scan as long as the deferred queue.
 */
static void flush_site_scan(void *ctx)
{
    flush_site_req *fs = ctx;

    if (mail_queue_scan(MAIL_QUEUE_DEFERRED, flush_site_one, fs) < 0 && errno != ENOENT)
        msg_warn("scan %s: %m", MAIL_QUEUE_DEFERRED);
    qmgr_kick();
    xfree(fs->site);
    xfree(fs);
}

/* site_ok - a flush_site argument: a domain or an address literal, bounded */
static int site_ok(const char *site)
{
    size_t n = strlen(site);

    if (n == 0 || n > 255)
        return 0;
    for (const char *p = site; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
              *p == '-' || *p == '_' || *p == '[' || *p == ']' || *p == ':'))
            return 0;
    return 1;
}

/* deliver_one - "deliver ID": from deferred/ or incoming/ now */
static int deliver_one(const char *id, vbuf *text)
{
    static const char *const queues[] = {MAIL_QUEUE_DEFERRED, MAIL_QUEUE_INCOMING};
    vbuf path;
    struct stat st;

    if (qmgr_message_find(id)) {
        vbuf_set(text, "message is already being delivered");
        return 0;
    }
    vbuf_init(&path, 0);
    for (size_t i = 0; i < 2; i++) {
        mail_queue_path(&path, queues[i], id);
        if (lstat(vbuf_str(&path), &st) == 0) {
            vbuf_release(&path);
            qmgr_dest_revive(NULL);
            (void) qmgr_message_load(queues[i], id);
            qmgr_kick();
            vbuf_printf(text, "%s: scheduled for delivery", id);
            return 0;
        }
    }
    vbuf_release(&path);
    vbuf_printf(text, "%s: no such message in the incoming or deferred queue", id);
    return 1;
}

/* reply - {status, text} to a client that may wait for it */
static void reply(stream *client, int status, const char *text)
{
    attr_list *r = attr_new();

    attr_put_int(r, "status", status);
    attr_put_str(r, "text", text);
    (void) attr_write(client, r); /* the client may not wait: ignore errors */
    attr_free(r);
}

/* qmgr_service - one trigger request */
static void qmgr_service(stream *client, attr_list *request, const char *service, char **argv)
{
    const char *req = NULL, *site = NULL, *id = NULL;
    long long subdomains = 0;
    attr_spec spec[] = {ATTR_SPEC_STR("request", ATTR_REQUIRED, &req), ATTR_SPEC_STR("site", ATTR_OPTIONAL, &site),
                        ATTR_SPEC_INT("subdomains", ATTR_OPTIONAL, &subdomains),
                        ATTR_SPEC_STR("queue_id", ATTR_OPTIONAL, &id), ATTR_SPEC_END};
    vbuf text;
    int status = 0, elig;

    (void) service;
    (void) argv;
    if (attr_scan(request, spec) < 0) {
        reply(client, 1, "malformed request");
        return;
    }
    vbuf_init(&text, 0);
    if (strcmp(req, "incoming") == 0 || strcmp(req, "wakeup") == 0) {
        event_timer_set(scan_incoming, NULL, 0);
        vbuf_set(&text, "ok");
    } else if (strcmp(req, "flush") == 0) {
        qmgr_dest_revive(NULL);
        (void) mail_queue_scan(MAIL_QUEUE_DEFERRED, flush_all_one, NULL);
        scan_deferred(1);
        event_timer_set(scan_incoming, NULL, 0);
        vbuf_set(&text, "queue flush started");
    } else if (strcmp(req, "flush_site") == 0) {
        if (site == NULL || !site_ok(site) || subdomains < 0 || subdomains > 1) {
            status = FLUSH_STAT_BAD;
            vbuf_set(&text, "bad or missing site");
        } else if ((elig = fast_flush_eligible(site)) == 0) {
            /* As Postfix's flush(8): only fast_flush_domains, for every client alike. */
            msg_warn("flush request for %s%.255s refused: not in fast_flush_domains", subdomains ? "@" : "", site);
            status = FLUSH_STAT_DENY;
            vbuf_printf(&text, "fast flush service is not enabled for %s (see fast_flush_domains)", site);
        } else if (elig < 0) {
            msg_warn("flush request for %s%.255s: fast_flush_domains lookup error", subdomains ? "@" : "", site);
            status = FLUSH_STAT_FAIL;
            vbuf_printf(&text, "fast_flush_domains lookup error for %s, try again later", site);
        } else {
            flush_site_req *fs = xcalloc(1, sizeof(*fs));

            fs->site = xstrdup(site);
            fs->flags = subdomains ? QMGR_SITE_SUBDOMAINS : 0;
            msg_info("flush request for %s%s", subdomains ? "@" : "", site);
            qmgr_dest_revive(site);
            event_timer_set(flush_site_scan, fs, 0);
            vbuf_printf(&text, "queuing started for %s%s", subdomains ? "@" : "", site);
        }
    } else if (strcmp(req, "deliver") == 0) {
        if (id == NULL || !mail_queue_id_ok(id)) {
            status = 1;
            vbuf_set(&text, "bad or missing queue_id");
        } else {
            status = deliver_one(id, &text);
        }
    } else if (strcmp(req, "stop") == 0) {
        qmgr_stopped = 1;
        msg_info("deliveries stopped by request");
        vbuf_set(&text, "stopped");
    } else if (strcmp(req, "continue") == 0) {
        qmgr_stopped = 0;
        msg_info("deliveries continued by request");
        qmgr_kick();
        vbuf_set(&text, "continued");
    } else {
        msg_warn("unknown request \"%.64s\"", req);
        status = 1;
        vbuf_set(&text, "unknown request");
    }
    reply(client, status, vbuf_str(&text));
    vbuf_release(&text);
}

/* recover_one - an active/ file left by an earlier qmgr goes back to incoming/ */
static void recover_one(const char *queue, const char *id, void *ctx)
{
    (void) ctx;
    /* No directory fsync: a lost rename leaves it in active/, recovered again next start. */
    if (mail_queue_move_recoverable(id, queue, MAIL_QUEUE_INCOMING) < 0)
        msg_warn("%s: move from %s to %s: %m", id, queue, MAIL_QUEUE_INCOMING);
}

/* qmgr_pre_jail - open the tables that need the privileges and paths outside a chroot */
static void qmgr_pre_jail(const char *service, char **argv)
{
    (void) service;
    (void) argv;
    fast_flush_init();
}

/* qmgr_post_jail - open tables, recover active/, start the timers */
static void qmgr_post_jail(const char *service, char **argv)
{
    (void) service;
    (void) argv;
    resolve_init();
    if (mail_queue_scan(MAIL_QUEUE_ACTIVE, recover_one, NULL) < 0 && errno != ENOENT)
        msg_warn("scan %s: %m", MAIL_QUEUE_ACTIVE);
    event_timer_set(scan_incoming, NULL, 0);
    event_timer_set(scan_deferred_timer, NULL, 1000L);
}

/* qmgr_pre_exit - normal exit (stop, reload, master gone): remove what is finished */
static void qmgr_pre_exit(void)
{
    qmgr_remove_flush();
}

int main(int argc, char **argv)
{
    static const mail_server_hooks hooks = {
        .pre_jail = qmgr_pre_jail,
        .post_jail = qmgr_post_jail,
        .pre_exit = qmgr_pre_exit,
        .unlimited = 1,
    };

    trigger_server_main(argc, argv, qmgr_service, &hooks);
}
