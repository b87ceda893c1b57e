/*
 * forward - ~/.forward files, the trusted-file check shared with
 * :include:, and forwarding: addresses that are not delivered here are
 * sent on as a new message through cleanup (one per envelope sender and
 * forwarding address), with a Delivered-To: header for loop detection.
 *
 * A .forward or :include: file is used only if it is a regular file (no
 * symlinks), owned by the user (or root), and not writable by group or
 * others; otherwise it is refused with a log line.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup_client.h"
#include "conf.h"
#include "deliver.h"
#include "local.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "qfile.h"
#include "strutil.h"
#include "vbuf.h"

#define FORWARD_FILE_MAX (1024 * 1024)

/* local_read_trusted_file - 1 read, 0 no such file, -1 refused or unreadable (why) */
int local_read_trusted_file(const char *path, const local_user *owner, vbuf *out, vbuf *why)
{
    struct stat sb;
    char buf[8192];
    ssize_t n;
    int fd;

    vbuf_reset(out);
    vbuf_reset(why);
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        (void) vbuf_printf(why, "open %s: %s", path, strerror(errno));
        msg_warn("refusing %s: %s", path, errno == ELOOP ? "symbolic link" : strerror(errno));
        if (errno == ELOOP)
            vbuf_reset(why), (void) vbuf_printf(why, "%s is a symbolic link", path);
        return -1;
    }
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        (void) vbuf_printf(why, "%s is not a regular file", path);
    } else if (owner && sb.st_uid != owner->uid && sb.st_uid != 0) {
        (void) vbuf_printf(why, "%s is owned by uid %ld, not by %s", path, (long) sb.st_uid, owner->name);
    } else if (sb.st_mode & (S_IWGRP | S_IWOTH)) {
        (void) vbuf_printf(why, "%s is group or world writable", path);
    } else if (sb.st_size > FORWARD_FILE_MAX) {
        (void) vbuf_printf(why, "%s is too large", path);
    }
    if (why->len) {
        msg_warn("refusing %s", vbuf_str(why));
        (void) close(fd);
        return -1;
    }
    out->limit = FORWARD_FILE_MAX;
    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || vbuf_append(out, buf, (size_t) n) != 0) {
            (void) vbuf_printf(why, "read %s: %s", path, n < 0 ? strerror(errno) : "file too large");
            (void) close(fd);
            return -1;
        }
    }
    (void) close(fd);
    if (memchr(out->data, 0, out->len)) {
        (void) vbuf_printf(why, "%s contains a NUL byte", path);
        msg_warn("refusing %s", vbuf_str(why));
        return -1;
    }
    return 1;
}

/* forward_path_expand - one forward_path entry with $home/$user/... filled in */
static void forward_path_expand(vbuf *out, const char *tmpl, const local_ctx *c, const local_user *u)
{
    const char *at = strrchr(c->address, '@');
    static const char *const names[] = {"home", "user", "extension", "recipient", "domain", "local"};

    vbuf_reset(out);
    for (const char *p = tmpl; *p;) {
        const char *val = NULL;
        size_t skip = 0;

        if (*p == '$') {
            int brace = p[1] == '{';

            for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                size_t len = strlen(names[i]);
                const char *name = p + 1 + brace;

                if (strncmp(name, names[i], len) == 0 && (!brace || name[len] == '}')) {
                    skip = 1 + (size_t) brace + len + (size_t) brace;
                    val = i == 0   ? u->home
                          : i == 1 ? u->name
                          : i == 2 ? (c->extension ? c->extension : "")
                          : i == 3 ? c->address
                          : i == 4 ? (at ? at + 1 : "")
                                   : u->name;
                    break;
                }
            }
        }
        if (val) {
            (void) vbuf_puts(out, val);
            p += skip;
        } else {
            (void) vbuf_putc(out, *p++);
        }
    }
}

/* local_forward - deliver through U's .forward if there is one; 1 handled, 0 none */
int local_forward(local_ctx *c, const local_user *u)
{
    /* forward_path's $home, $user... are ours to fill in: take it unexpanded. */
    const char *raw = conf_lookup_raw("forward_path");
    char *list = xstrdup(raw ? raw : "$home/.forward"), *cur = list, *tmpl;
    vbuf path, text, why;
    local_status st;
    int handled = 0;

    vbuf_init(&path, 0);
    vbuf_init(&text, 0);
    vbuf_init(&why, 0);
    local_status_init(&st);
    while (!handled && (tmpl = str_token(&cur, CHARS_COMMA_SPACE)) != NULL) {
        alias_item *items;
        size_t count;
        int rc;

        forward_path_expand(&path, tmpl, c, u);
        rc = local_read_trusted_file(vbuf_str(&path), u, &text, &why);
        if (rc == 0)
            continue;
        if (rc < 0) {
            /* A refused .forward is ignored, as if absent; the log line tells the user why. */
            continue;
        }
        if (alias_parse(vbuf_str(&text), 1, &items, &count, &why) != 0) {
            msg_warn("%s: %s", vbuf_str(&path), vbuf_str(&why));
            local_status_set(&st, DELIVER_DEFER, "4.3.5", "syntax error in %s", vbuf_str(&path));
            local_result(c, c->address, &st);
            handled = 1;
            continue;
        }
        if (count == 0)
            continue; /* an empty .forward: the mailbox */
        {
            local_ctx fc = *c;

            fc.user = u;
            local_expand(&fc, items, count, LOCAL_CLASS_FORWARD, u);
        }
        alias_free(items, count);
        handled = 1;
    }
    local_status_free(&st);
    vbuf_release(&path);
    vbuf_release(&text);
    vbuf_release(&why);
    xfree(list);
    return handled;
}

/* local_forward_add - queue ADDR for forwarding with this branch's sender */
void local_forward_add(local_ctx *c, const char *addr)
{
    local_acc *acc = c->acc;
    const char *dt = c->parent ? c->parent->address : c->address;
    local_fwd *f = NULL;

    if (local_verify(c)) {
        /* A probe reports where the mail would go; nothing is forwarded. */
        local_status st;

        local_status_init(&st);
        local_status_set(&st, DELIVER_OK, "2.0.0", "deliverable via local (forwarded to %s)", addr);
        local_result(c, addr, &st);
        local_status_free(&st);
        return;
    }
    for (size_t i = 0; i < acc->nfwd; i++)
        if (strcmp(acc->fwd[i].sender, c->sender) == 0 && strcmp(acc->fwd[i].delivered_to, dt) == 0)
            f = &acc->fwd[i];
    if (f == NULL) {
        acc->fwd = xreallocarray(acc->fwd, acc->nfwd + 1, sizeof(*acc->fwd));
        f = &acc->fwd[acc->nfwd++];
        memset(f, 0, sizeof(*f));
        f->sender = xstrdup(c->sender);
        f->delivered_to = xstrdup(dt);
    }
    for (size_t i = 0; i < f->nrcpt; i++)
        if (str_case_eq(f->rcpts[i], addr))
            return; /* a duplicate */
    f->rcpts = xreallocarray(f->rcpts, f->nrcpt + 1, sizeof(*f->rcpts));
    f->rcpts[f->nrcpt++] = xstrdup(addr);
}

/* forward_to_cleanup - local_out_fn into a cleanup stream */
static int forward_to_cleanup(void *ctx, const void *data, size_t len)
{
    return cleanup_content((cleanup_client *) ctx, data, len);
}

/* forward_send - one new message for a group; outcome in st, new queue ID in id */
static void forward_send(local_ctx *c, const local_fwd *f, local_status *st)
{
    static const char *const copied[] = {"envid", "ret", "body", "smtputf8"};
    cleanup_client *cl;
    vbuf err, id;
    const char *v;
    int rc;

    vbuf_init(&err, 0);
    vbuf_init(&id, 0);
    cl = cleanup_open("public/cleanup", 0, &err);
    if (cl == NULL) {
        local_status_set(st, DELIVER_DEFER, "4.3.0", "cannot forward: %s", vbuf_str(&err));
        goto out;
    }
    (void) vbuf_set(&id, cleanup_queue_id(cl));
    cleanup_attr(cl, "sender", f->sender);
    for (size_t i = 0; i < sizeof(copied) / sizeof(copied[0]); i++)
        if ((v = qfile_attr(c->msg->q, copied[i])) != NULL)
            cleanup_attr(cl, copied[i], v);
    for (size_t i = 0; i < f->nrcpt; i++)
        cleanup_rcpt(cl, f->rcpts[i], c->rcpt->orcpt, c->rcpt->notify);
    /* Delivered-To on forwarded mail is what lets the next hop see a loop. */
    if (local_copy_msg(c->msg, f->sender, f->delivered_to,
                       local_prepend_delivered("forward") ? LOCAL_COPY_DELIVERED : 0, forward_to_cleanup, cl) != 0) {
        cleanup_abort(cl);
        local_status_set(st, DELIVER_DEFER, "4.3.0", "cannot forward: lost connection to cleanup");
        goto out;
    }
    rc = cleanup_finish(cl, &err);
    if (rc == CLEANUP_OK)
        local_status_set(st, DELIVER_OK, "2.0.0", "forwarded as %s", vbuf_str(&id));
    else
        local_status_set(st, rc == CLEANUP_REJECT ? DELIVER_BOUNCE : DELIVER_DEFER,
                         rc == CLEANUP_REJECT ? "5.3.0" : "4.3.0", "cannot forward: %s", vbuf_str(&err));
out:
    vbuf_release(&err);
    vbuf_release(&id);
}

/* local_forward_flush - send the queued forwards, one result per address */
void local_forward_flush(local_ctx *c)
{
    local_acc *acc = c->acc;

    for (size_t i = 0; i < acc->nfwd; i++) {
        local_fwd *f = &acc->fwd[i];
        local_status st;

        local_status_init(&st);
        forward_send(c, f, &st);
        for (size_t r = 0; r < f->nrcpt; r++) {
            local_result(c, f->rcpts[r], &st);
            xfree(f->rcpts[r]);
        }
        local_status_free(&st);
        xfree(f->rcpts);
        xfree(f->sender);
        xfree(f->delivered_to);
    }
    xfree(acc->fwd);
    acc->fwd = NULL;
    acc->nfwd = 0;
}
