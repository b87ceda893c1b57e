/*
 * pickup - moves locally submitted mail from maildrop/ into cleanup.
 *
 * A trigger service (public/pickup): every request (kitedrop's nudge,
 * master's periodic wakeup) scans maildrop/; so does the start, which is
 * how mail submitted while the system was down goes out. Each file is
 * validated strictly - it was written for an unprivileged user - and fed
 * to cleanup as a local submission; the maildrop file is removed only
 * after cleanup said the message is queued (or refused it for good).
 * Log lines as Postfix's: "ID: uid=1000 from=<user>".
 *
 * Trusts: nothing in maildrop/. Files must be regular, singly linked,
 * complete queue files whose attributes are on the allow list and whose
 * recorded uid is the file's owner; anything else goes to corrupt/.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup_client.h"
#include "mail_queue.h"
#include "mail_server.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "qfile.h"
#include "strutil.h"

/* Attributes kitedrop may write, and what cleanup gets of them. */
static const char *const pickup_attrs[] = {
    "uid", "arrival", "sender", "fullname", "envid", "ret", "body", "smtputf8", "extract", "verify", NULL,
};

/* pickup_corrupt - a file we will not process: out of the way, with a log line */
static void pickup_corrupt(const char *path, const char *id, const char *why)
{
    msg_warn("%s: %s; moved to %s", path, why, MAIL_QUEUE_CORRUPT);
    if (mail_queue_move(id, MAIL_QUEUE_MAILDROP, MAIL_QUEUE_CORRUPT) < 0) {
        msg_warn("%s: cannot move to %s: %m; removing it", path, MAIL_QUEUE_CORRUPT);
        (void) unlink(path);
    }
}

/* pickup_validate - the allow list and the owner check; NULL if fine, else why */
static const char *pickup_validate(const qfile *q, const struct stat *st)
{
    const char *uid = qfile_attr(q, "uid");
    long n;

    for (size_t i = 0; i < q->nattr; i++) {
        int ok = 0;

        for (int k = 0; pickup_attrs[k]; k++)
            if (strcmp(q->attr_names[i], pickup_attrs[k]) == 0)
                ok = 1;
        if (!ok)
            return "attribute not allowed in maildrop";
    }
    if (uid == NULL || str_to_long(uid, &n) < 0 || n < 0 || (uid_t) n != st->st_uid)
        return "recorded uid is not the file owner";
    for (size_t i = 0; i < q->nrcpt; i++)
        if (q->rcpts[i].orig != NULL || q->rcpts[i].done)
            return "recipient records not allowed in maildrop";
    if (qfile_attr(q, "sender") == NULL)
        return "no sender";
    return NULL;
}

/* pickup_bounce - tell the local sender that cleanup refused the message; 0 or -1 */
static int pickup_bounce(qfile *q, const char *reason)
{
    const char *sender = qfile_attr(q, "sender");
    cleanup_client *c;
    qfile_content it;
    const char *data;
    ssize_t n;
    vbuf path, err, text, why;
    int status, in_headers = 1;
    size_t copied = 0;

    if (sender == NULL || *sender == 0)
        return 0; /* nobody to tell */
    vbuf_init(&path, 0);
    vbuf_init(&err, 0);
    vbuf_init(&text, 0);
    vbuf_init(&why, 0);
    vbuf_printf(&path, "private/%s", var_cleanup_service_name);
    if ((c = cleanup_open(path.data, CLEANUP_FLAG_BOUNCE, &err)) == NULL) {
        msg_warn("cannot return a notice to %s: %s", sender, err.data);
        vbuf_release(&path);
        vbuf_release(&err);
        vbuf_release(&text);
        vbuf_release(&why);
        return -1;
    }
    cleanup_attr(c, "sender", "");
    cleanup_attr(c, "origin", "bounce");
    cleanup_rcpt(c, sender, NULL, QF_NOTIFY_NEVER);
    vbuf_printf(&text,
                "From: MAILER-DAEMON@%s (Mail Delivery System)\r\n"
                "To: %s\r\n"
                "Subject: Undeliverable: message refused\r\n"
                "Auto-Submitted: auto-replied\r\n"
                "\r\n"
                "This is the mail system at host %s.\r\n\r\n"
                "The message you submitted locally was not accepted:\r\n\r\n"
                "    %s\r\n\r\n"
                "Its headers follow.\r\n\r\n",
                var_myhostname, sender, var_myhostname, reason);
    (void) cleanup_content(c, text.data, text.len);
    /* The original headers (up to the empty line), bounded. */
    qfile_content_begin(q, &it);
    while (in_headers && copied < 64 * 1024 && (n = qfile_content_next(&it, &data)) > 0) {
        const char *end = NULL;

        for (ssize_t i = 0; i + 3 < n; i++)
            if (memcmp(data + i, "\r\n\r\n", 4) == 0 || memcmp(data + i, "\n\n", 2) == 0) {
                end = data + i + 2;
                break;
            }
        if (end) {
            n = end - data;
            in_headers = 0;
        }
        (void) cleanup_content(c, data, (size_t) n);
        copied += (size_t) n;
    }
    qfile_content_end(&it);
    status = cleanup_finish(c, &why);
    if (status != CLEANUP_OK)
        msg_warn("cannot return a notice to %s: %s", sender, why.data);
    else
        msg_info("%s: sender non-delivery notification: %s", why.data, sender);
    vbuf_release(&path);
    vbuf_release(&err);
    vbuf_release(&text);
    vbuf_release(&why);
    return status == CLEANUP_OK ? 0 : -1;
}

/* pickup_file - one maildrop file into cleanup */
static void pickup_file(const char *queue, const char *id, void *ctx)
{
    static const char *const passed[] = {"sender",   "fullname", "envid", "ret", "body",
                                         "smtputf8", "arrival",  "uid",   NULL};
    cleanup_client *c;
    qfile_content it;
    const char *data, *why, *v;
    struct stat st;
    ssize_t n;
    vbuf path, err, reason;
    qfile *q;
    int flags = CLEANUP_FLAG_LOCAL, status;

    (void) ctx;
    vbuf_init(&path, 0);
    vbuf_init(&err, 0);
    vbuf_init(&reason, 0);
    mail_queue_path(&path, queue, id);
    if (lstat(path.data, &st) < 0) {
        if (errno != ENOENT)
            msg_warn("%s: %m", path.data);
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
        pickup_corrupt(path.data, id, "not a regular file with one link");
        goto out;
    }
    if ((q = qfile_open(path.data, 0, &err)) == NULL) {
        pickup_corrupt(path.data, id, err.data);
        goto out;
    }
    {
        struct stat fst;

        /* The file we validated must be the one we looked at. */
        if (fstat(q->fd, &fst) < 0 || fst.st_ino != st.st_ino || fst.st_dev != st.st_dev) {
            qfile_close(q);
            goto out;
        }
    }
    if ((why = pickup_validate(q, &st)) != NULL) {
        qfile_close(q);
        pickup_corrupt(path.data, id, why);
        goto out;
    }
    if ((v = qfile_attr(q, "extract")) && strcmp(v, "1") == 0)
        flags |= CLEANUP_FLAG_EXTRACT;
    vbuf_reset(&reason);
    vbuf_printf(&reason, "private/%s", var_cleanup_service_name);
    c = cleanup_open(reason.data, flags, &err);
    vbuf_reset(&reason);
    if (c == NULL) {
        msg_warn("%s: cannot queue now: %s", path.data, err.data);
        qfile_close(q);
        goto out;
    }
    for (int i = 0; passed[i]; i++)
        if ((v = qfile_attr(q, passed[i])) != NULL)
            cleanup_attr(c, passed[i], v);
    if ((v = qfile_attr(q, "verify")) && strcmp(v, "1") == 0)
        cleanup_attr(c, "verify", "1");
    cleanup_attr(c, "origin", "local");
    for (size_t i = 0; i < q->nrcpt; i++)
        cleanup_rcpt(c, q->rcpts[i].address, q->rcpts[i].orcpt, q->rcpts[i].notify);
    qfile_content_begin(q, &it);
    while ((n = qfile_content_next(&it, &data)) > 0)
        if (cleanup_content(c, data, (size_t) n) < 0)
            break;
    qfile_content_end(&it);
    if (n < 0) {
        msg_warn("%s: read error: %m", path.data);
        cleanup_abort(c);
        qfile_close(q);
        goto out;
    }
    msg_info("%s: uid=%s from=<%s>", cleanup_queue_id(c), qfile_attr(q, "uid"), qfile_attr(q, "sender"));
    status = cleanup_finish(c, &reason);
    if (status == CLEANUP_DEFER) {
        qfile_close(q);
        msg_warn("%s: not queued, will try again: %s", path.data, reason.data);
        goto out;
    }
    if (status == CLEANUP_REJECT) {
        msg_warn("%s: uid=%ld: message refused: %s", path.data, (long) st.st_uid, reason.data);
        /* The submitter has gone: the refusal reaches them as a notice. */
        if (pickup_bounce(q, reason.data) < 0) {
            qfile_close(q);
            goto out; /* keep the file; try again later */
        }
    }
    qfile_close(q);
    if (unlink(path.data) < 0)
        msg_warn("remove %s: %m", path.data);
out:
    vbuf_release(&path);
    vbuf_release(&err);
    vbuf_release(&reason);
}

/* pickup_scan - everything in maildrop/ */
static void pickup_scan(void)
{
    if (mail_queue_scan(MAIL_QUEUE_MAILDROP, pickup_file, NULL) < 0)
        msg_warn("scan %s: %m", MAIL_QUEUE_MAILDROP);
}

/* pickup_service - any request (wakeup, kitedrop's nudge) means: scan */
static void pickup_service(stream *client, attr_list *request, const char *service, char **argv)
{
    (void) client;
    (void) request;
    (void) service;
    (void) argv;
    pickup_scan();
}

/* pickup_post_jail - mail that waited while we were down goes now */
static void pickup_post_jail(const char *service, char **argv)
{
    (void) service;
    (void) argv;
    pickup_scan();
}

int main(int argc, char **argv)
{
    static const mail_server_hooks hooks = {
        .post_jail = pickup_post_jail,
    };

    trigger_server_main(argc, argv, pickup_service, &hooks);
}
