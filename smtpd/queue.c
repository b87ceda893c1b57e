/*
 * queue.c - smtpd's hand-off of a message to the queue.
 *
 * Offers the smtpd_queue_* calls the protocol code uses (the fuzz target
 * replaces this file with an in-memory stand-in). Normally the message
 * goes to cleanup (include/cleanup_client.h) over its public socket; these
 * calls block briefly (a local service), and cleanup answers only after
 * the queue file is fsync'd, so smtpd says 250 only then.
 *
 * A stand-alone session (smtpd -S, i.e. sendmail -bs) run by an ordinary
 * user can't reach cleanup; it then writes the message through the setgid
 * kitedrop program into maildrop/, as Postfix's smtpd uses postdrop. Only
 * the attributes kitedrop allows are passed; its exit status is the verdict.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clean_env.h"
#include "cleanup_client.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "smtpd.h"

/* master.cf's sample runs cleanup as a public service (private = n), as Postfix does. */
#define CLEANUP_PUBLIC "public/cleanup"
#define CLEANUP_PRIVATE "private/cleanup"

struct smtpd_queue {
    cleanup_client *client; /* to cleanup, or */
    int drop_fd;            /* a pipe to kitedrop (-1: none) */
    pid_t drop_pid;
    int content_started;
    int failed;
};

/* drop_record - one kitedrop input record: type, 4-byte length, data */
static void drop_record(smtpd_queue *q, int type, const void *data, size_t len)
{
    unsigned char hdr[5];
    const char *p = data;

    if (q->failed)
        return;
    hdr[0] = (unsigned char) type;
    hdr[1] = (unsigned char) (len >> 24);
    hdr[2] = (unsigned char) (len >> 16);
    hdr[3] = (unsigned char) (len >> 8);
    hdr[4] = (unsigned char) len;
    if (write(q->drop_fd, hdr, sizeof(hdr)) != (ssize_t) sizeof(hdr)) {
        q->failed = 1;
        return;
    }
    while (len > 0) {
        ssize_t n = write(q->drop_fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            q->failed = 1;
            return;
        }
        p += n;
        len -= (size_t) n;
    }
}

/* drop_open - start kitedrop with a pipe on its stdin; 0 or -1 */
static int drop_open(smtpd_queue *q, vbuf *err)
{
    int fds[2];
    vbuf path;
    pid_t pid;

    if (pipe2(fds, O_CLOEXEC) < 0) {
        vbuf_printf(err, "pipe: %s", strerror(errno));
        return -1;
    }
    vbuf_init(&path, 0);
    vbuf_printf(&path, "%s/kitedrop", var_command_directory);
    if ((pid = fork()) < 0) {
        vbuf_printf(err, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        vbuf_release(&path);
        return -1;
    }
    if (pid == 0) {
        /* stdout is the SMTP client's channel: kitedrop gets /dev/null. */
        char *argv[] = {(char *) "kitedrop", (char *) "-c", var_config_directory, NULL};
        char **env = clean_env_build(var_import_environment, NULL);
        int null = open("/dev/null", O_WRONLY);

        if (dup2(fds[0], 0) < 0 || null < 0 || dup2(null, 1) < 0)
            _exit(75);
        execve(vbuf_str(&path), argv, env);
        _exit(75);
    }
    close(fds[0]);
    vbuf_release(&path);
    q->drop_fd = fds[1];
    q->drop_pid = pid;
    return 0;
}

/* drop_wait - close the pipe and collect kitedrop's exit status */
static int drop_wait(smtpd_queue *q)
{
    int status = 0;

    if (q->drop_fd >= 0)
        close(q->drop_fd);
    q->drop_fd = -1;
    while (waitpid(q->drop_pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* smtpd_queue_open - connect to cleanup (learn the queue ID), or start kitedrop */
int smtpd_queue_open(smtpd_session *s, vbuf *err)
{
    smtpd_queue *q = xcalloc(1, sizeof(*q));

    q->drop_fd = -1;
    q->client = cleanup_open(CLEANUP_PUBLIC, 0, err);
    if (q->client == NULL && access(CLEANUP_PUBLIC, F_OK) < 0) {
        vbuf_reset(err);
        q->client = cleanup_open(CLEANUP_PRIVATE, 0, err);
    }
    if (q->client == NULL && s->standalone && drop_open(q, err) == 0) {
        s->queue = q;
        s->queue_id[0] = 0; /* known only to kitedrop and pickup */
        return 0;
    }
    if (q->client == NULL) {
        xfree(q);
        return -1;
    }
    s->queue = q;
    snprintf(s->queue_id, sizeof(s->queue_id), "%s", cleanup_queue_id(q->client));
    return 0;
}

/* smtpd_queue_attr - one envelope attribute */
void smtpd_queue_attr(smtpd_session *s, const char *name, const char *value)
{
    static const char *const drop_allowed[] = {"sender", "envid", "ret", "body", "smtputf8", NULL};
    smtpd_queue *q = s->queue;

    if (q->client) {
        cleanup_attr(q->client, name, value);
        return;
    }
    for (const char *const *a = drop_allowed; *a; a++) {
        if (strcmp(*a, name) == 0) {
            vbuf rec;

            vbuf_init(&rec, 0);
            vbuf_printf(&rec, "%s=%s", name, value);
            drop_record(q, 'A', rec.data, rec.len);
            vbuf_release(&rec);
        }
    }
}

/* smtpd_queue_rcpt - one recipient with its DSN data */
void smtpd_queue_rcpt(smtpd_session *s, const char *addr, const char *orcpt, int notify)
{
    smtpd_queue *q = s->queue;
    vbuf rec;

    if (q->client) {
        cleanup_rcpt(q->client, addr, orcpt, notify);
        return;
    }
    vbuf_init(&rec, 0);
    if (orcpt)
        drop_record(q, 'O', orcpt, strlen(orcpt));
    if (notify) {
        vbuf_printf(&rec, "%d", notify);
        drop_record(q, 'N', rec.data, rec.len);
    }
    vbuf_set(&rec, "-");
    vbuf_puts(&rec, addr);
    drop_record(q, 'R', rec.data, rec.len);
    vbuf_release(&rec);
}

/* smtpd_queue_content - a piece of the message as received */
int smtpd_queue_content(smtpd_session *s, const void *data, size_t len)
{
    smtpd_queue *q = s->queue;

    if (q == NULL)
        return -1;
    if (q->client)
        return cleanup_content(q->client, data, len);
    if (!q->content_started) {
        drop_record(q, 'M', "", 0);
        q->content_started = 1;
    }
    if (len > 0)
        drop_record(q, 'C', data, len);
    return q->failed ? -1 : 0;
}

/* smtpd_queue_send_end - see smtpd.h: cleanup answers on its socket once the file is safe */
int smtpd_queue_send_end(smtpd_session *s)
{
    smtpd_queue *q = s->queue;

    if (q == NULL || q->client == NULL)
        return -1; /* kitedrop: all done in smtpd_queue_verdict */
    if (cleanup_send_end(q->client) < 0)
        return -1; /* the verdict (a deferral) is known now */
    return cleanup_verdict_fd(q->client);
}

/* smtpd_queue_verdict - see smtpd.h */
int smtpd_queue_verdict(smtpd_session *s, vbuf *reason)
{
    smtpd_queue *q = s->queue;
    int st;

    s->queue = NULL;
    if (q == NULL)
        return CLEANUP_DEFER;
    if (q->client) {
        st = cleanup_verdict(q->client, reason);
    } else {
        if (!q->content_started)
            drop_record(q, 'M', "", 0);
        drop_record(q, 'E', "", 0);
        {
            int failed = q->failed;
            int code = drop_wait(q); /* always reaps kitedrop */

            st = !failed && code == 0 ? CLEANUP_OK : CLEANUP_DEFER;
        }
        vbuf_set(reason, st == CLEANUP_OK ? "" : "4.3.0 Error: queue file write error");
        if (st != CLEANUP_OK)
            msg_warn("%s: kitedrop could not queue the message", s->namaddr);
    }
    xfree(q);
    return st;
}

/* smtpd_queue_abort - drop the message; nothing is queued */
void smtpd_queue_abort(smtpd_session *s)
{
    smtpd_queue *q = s->queue;

    s->queue = NULL;
    if (q == NULL)
        return;
    if (q->client)
        cleanup_abort(q->client);
    else
        (void) drop_wait(q); /* no end marker: kitedrop leaves nothing */
    xfree(q);
}
