/*
 * local - the local delivery agent (master.cf: "local unix - n n - - local",
 * and the same program as "virtual").
 *
 * Speaks the delivery protocol (deliver.h): greets {protocol = "delivery"},
 * reads one request, delivers each recipient (aliases, .forward, mailboxes,
 * files, commands, virtual mailboxes), marks the delivered ones done in the
 * queue file (deliver_mark_done; qmgr syncs before removal), then writes
 * one result per recipient and "done". Stays root (keep_root) so each
 * delivery can run in a child with the recipient's uid and gid (privs.c).
 */
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "attr.h"
#include "deliver.h"
#include "local.h"
#include "mail_queue.h"
#include "mail_server.h"
#include "maps.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "qfile.h"
#include "stream.h"
#include "strutil.h"
#include "vbuf.h"

extern maps *local_alias_maps;
extern local_user *local_alias_owner;
void local_virtual_open(void);
void local_virtual_close(void);

/* local_now - the time with microseconds */
static double local_now(void)
{
    struct timeval tv;

    (void) gettimeofday(&tv, NULL);
    return (double) tv.tv_sec + tv.tv_usec / 1e6;
}

/* local_content_src - content chunks of the queue file */
static ssize_t local_content_src(void *ctx, const char **data)
{
    return qfile_content_next((qfile_content *) ctx, data);
}

/* local_one - deliver one recipient and fold the outcome into res */
static void local_one(local_msg *m, const deliver_rcpt *rcpt, deliver_result *res, vbuf *reason)
{
    local_acc acc;
    local_ctx c;

    memset(&acc, 0, sizeof(acc));
    vbuf_init(&acc.reason, 0);
    memset(&c, 0, sizeof(c));
    c.msg = m;
    c.rcpt = rcpt;
    c.address = rcpt->address;
    c.sender = m->req->sender;
    c.delivered_to = rcpt->address;
    c.owner = local_alias_owner;
    c.acc = &acc;
    m->start = local_now();
    local_recipient(&c);
    local_forward_flush(&c);
    if (acc.ntargets == 0) {
        /* Every item of the expansion was a duplicate of one already delivered. */
        local_status st;

        local_status_init(&st);
        local_status_set(&st, DELIVER_OK, "2.0.0", "delivered: no new destinations");
        local_result(&c, rcpt->address, &st);
        local_status_free(&st);
    }
    res->index = rcpt->index;
    res->status = acc.status;
    memcpy(res->dsn, acc.dsn, sizeof(res->dsn));
    res->action = acc.status == DELIVER_OK ? "delivered" : acc.status == DELIVER_DEFER ? "delayed" : "failed";
    (void) vbuf_set(reason, vbuf_str(&acc.reason));
    res->reason = (char *) vbuf_str(reason);
    res->relay = "local";
    vbuf_release(&acc.reason);
}

/* local_service - one connection from qmgr: one request */
static void local_service(stream *client, const char *service, char **argv)
{
    deliver_request req;
    local_msg m;
    vbuf path, err;
    vbuf *reasons;
    deliver_result *results;
    qfile_content it;

    (void) service;
    (void) argv;
    if (attr_greet(client, "delivery") != 0)
        return;
    memset(&req, 0, sizeof(req));
    if (deliver_request_read(client, &req) != 0)
        return;
    vbuf_init(&path, 0);
    vbuf_init(&err, 0);
    results = xcalloc(req.nrcpt, sizeof(*results));
    reasons = xcalloc(req.nrcpt, sizeof(*reasons));
    memset(&m, 0, sizeof(m));
    m.req = &req;
    mail_queue_path(&path, req.queue_name, req.queue_id);
    m.q = qfile_open(vbuf_str(&path), 0, &err);
    if (m.q == NULL)
        msg_warn("%s: cannot open queue file %s: %s", req.queue_id, vbuf_str(&path), vbuf_str(&err));
    else {
        qfile_content_begin(m.q, &it);
        (void) local_scan_delivered_to(local_content_src, &it, &m.delivered_to, &m.ndelivered_to);
        qfile_content_end(&it);
    }
    for (size_t i = 0; i < req.nrcpt; i++) {
        deliver_result res;

        memset(&res, 0, sizeof(res));
        vbuf_init(&reasons[i], 0);
        if (m.q == NULL) {
            res.index = req.rcpts[i].index;
            res.status = DELIVER_DEFER;
            memcpy(res.dsn, "4.3.0", 6);
            res.action = "delayed";
            res.reason = "cannot read the queue file";
            res.relay = "local";
            deliver_log(&req, &req.rcpts[i], &res, local_now(), local_now());
        } else {
            /* A probe (DELIVER_FLAG_VERIFY) resolves the same way; the agents write nothing then. */
            local_one(&m, &req.rcpts[i], &res, &reasons[i]);
        }
        results[i] = res;
    }
    /*
     * Delivered recipients are marked done before qmgr hears of them (no
     * sync here: qmgr syncs once per batch before it removes files). The
     * file is opened for writing only here, as root again: no delivery
     * made with the recipient's ids (in this process or in a child) ever
     * held a writable descriptor of the queue file.
     */
    if (m.q)
        (void) deliver_mark_done(NULL, &req, results, req.nrcpt);
    for (size_t i = 0; i < req.nrcpt; i++) {
        if (deliver_result_write(client, &results[i]) != 0) {
            msg_warn("%s: lost connection to queue manager", req.queue_id);
            break;
        }
    }
    (void) deliver_done_write(client);
    for (size_t i = 0; i < req.nrcpt; i++)
        vbuf_release(&reasons[i]);
    xfree(reasons);
    xfree(results);
    for (size_t i = 0; i < m.ndelivered_to; i++)
        xfree(m.delivered_to[i]);
    xfree(m.delivered_to);
    if (m.q)
        qfile_close(m.q);
    deliver_request_free(&req);
    vbuf_release(&path);
    vbuf_release(&err);
}

/* local_alias_table_owner - who alias commands and files run as */
static local_user *local_alias_table_owner(void)
{
    char *copy = xstrdup(var_alias_maps), *cur = copy, *tok;
    local_user *u = NULL, *dflt;
    vbuf file, why;
    struct stat sb;

    vbuf_init(&file, 0);
    vbuf_init(&why, 0);
    if (!local_privileged()) {
        u = local_user_byuid(getuid(), getgid());
        goto out;
    }
    /* The owner of the first table file, unless root: then default_privs. */
    if ((tok = str_token(&cur, CHARS_COMMA_SPACE)) != NULL && strchr(tok, ':')) {
        const char *name = strchr(tok, ':') + 1;

        (void) vbuf_printf(&file, "%s%s", name,
                           strncmp(tok, "hash:", 5) == 0 || strncmp(tok, "btree:", 6) == 0 ? ".db" : "");
        if (stat(vbuf_str(&file), &sb) == 0 && sb.st_uid != 0)
            u = local_user_byuid(sb.st_uid, sb.st_gid);
    }
    if (u == NULL) {
        dflt = local_user_byname(var_default_privs, &why);
        if (dflt == NULL || dflt->uid == 0)
            msg_fatal("default_privs: unknown or privileged user \"%s\"", var_default_privs);
        u = dflt;
    }
out:
    vbuf_release(&file);
    vbuf_release(&why);
    xfree(copy);
    return u;
}

/* local_pre_jail - open tables while everything is readable */
static void local_pre_jail(const char *service, char **argv)
{
    (void) service;
    (void) argv;
    local_alias_maps = maps_open("alias_maps", var_alias_maps, 0);
    local_alias_owner = local_alias_table_owner();
    local_virtual_open();
}

/* local_pre_exit - close the tables */
static void local_pre_exit(void)
{
    if (local_alias_maps)
        maps_close(local_alias_maps);
    local_alias_maps = NULL;
    local_user_free(local_alias_owner);
    local_alias_owner = NULL;
    local_virtual_close();
}

int main(int argc, char **argv)
{
    static const mail_server_hooks hooks = {local_pre_jail, NULL, local_pre_exit, 1, 0};

    single_server_main(argc, argv, local_service, &hooks);
}
