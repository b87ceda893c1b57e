/*
 * mailbox - a user's mailbox: mail_spool_directory/USER (mbox), or
 * $HOME/home_mailbox (mbox, or Maildir when it ends in '/').
 *
 * mbox delivery appends under an fcntl lock and a dotlock (FILE.lock,
 * O_EXCL; stale ones are broken after 10 minutes), with a "From " line,
 * >From quoting and LF line ends; a failed append is cut back off so the
 * mailbox is never left with half a message. A spool mailbox is created,
 * opened and locked as root (the spool directory is root's; root also
 * holds the dotlock there), handed to the user, and written after the
 * process took the user's identity (privs.c local_as_user). Everything
 * else - a Maildir, an mbox in $HOME - is opened and written only as the
 * user.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "deliver.h"
#include "local.h"
#include "msg.h"
#include "params.h"
#include "safe_open.h"
#include "vbuf.h"

#define MBOX_LOCK_TRIES 30 /* seconds of waiting for a lock */
#define MBOX_STALE_LOCK 600

/* local_mbox_fcntl_lock - an exclusive fcntl lock on the whole file; 0 or -1 (why) */
int local_mbox_fcntl_lock(int fd, const char *path, vbuf *why)
{
    struct flock fl;

    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    for (int i = 0; fcntl(fd, F_SETLK, &fl) < 0; i++) {
        if ((errno != EACCES && errno != EAGAIN) || i >= MBOX_LOCK_TRIES) {
            (void) vbuf_printf(why, "cannot lock %s: %s", path, strerror(errno));
            return -1;
        }
        (void) sleep(1);
    }
    return 0;
}

/* local_mbox_dotlock - create PATH.lock exclusively; 0 or -1 (why) */
int local_mbox_dotlock(const char *path, int *dotlocked, vbuf *why)
{
    vbuf lock;
    int lfd, ret = 0;

    *dotlocked = 0;
    vbuf_init(&lock, 0);
    (void) vbuf_printf(&lock, "%s.lock", path);
    for (int i = 0;; i++) {
        struct stat st;

        lfd = open(vbuf_str(&lock), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (lfd >= 0) {
            (void) close(lfd);
            *dotlocked = 1;
            break;
        }
        /* No permission for a lock file in this directory: the fcntl lock must do. */
        if (errno == EACCES || errno == EROFS)
            break;
        if (errno != EEXIST || i >= MBOX_LOCK_TRIES) {
            (void) vbuf_printf(why, "cannot create %s: %s", vbuf_str(&lock), strerror(errno));
            ret = -1;
            break;
        }
        if (lstat(vbuf_str(&lock), &st) == 0 && time(NULL) - st.st_mtime > MBOX_STALE_LOCK) {
            msg_warn("removing stale lock file %s", vbuf_str(&lock));
            (void) unlink(vbuf_str(&lock));
            continue;
        }
        (void) sleep(1);
    }
    vbuf_release(&lock);
    return ret;
}

/* local_mbox_lock - fcntl lock, then dotlock; 0 or -1 (why) */
int local_mbox_lock(int fd, const char *path, int *dotlocked, vbuf *why)
{
    *dotlocked = 0;
    if (local_mbox_fcntl_lock(fd, path, why) < 0)
        return -1;
    return local_mbox_dotlock(path, dotlocked, why);
}

/* local_mbox_unlock - remove the dotlock (the fcntl lock goes with the descriptor) */
void local_mbox_unlock(const char *path, int dotlocked)
{
    vbuf lock;

    if (!dotlocked)
        return;
    vbuf_init(&lock, 0);
    (void) vbuf_printf(&lock, "%s.lock", path);
    if (unlink(vbuf_str(&lock)) < 0 && errno != ENOENT)
        msg_warn("remove %s: %m", vbuf_str(&lock));
    vbuf_release(&lock);
}

/* mbox_append - write the message at the end of an open, locked mbox */
static void mbox_append(local_msg *m, int fd, const char *path, const char *sender, const char *delivered_to,
                        long long limit, const char *what, local_status *st)
{
    local_fdout out;
    struct stat sb;
    off_t end;

    if (fstat(fd, &sb) < 0 || (end = lseek(fd, 0, SEEK_END)) < 0) {
        local_status_set(st, DELIVER_DEFER, "4.2.0", "cannot update %s %s: %s", what, path, strerror(errno));
        return;
    }
    local_fdout_init(&out, fd, limit > 0 ? (limit > sb.st_size ? limit - sb.st_size : 1) : 0);
    if (local_copy_msg(m, sender, delivered_to,
                       LOCAL_COPY_LF | LOCAL_COPY_FROM_LINE | LOCAL_COPY_RETURN_PATH |
                           (strcmp(what, "file") != 0 || local_prepend_delivered("file") ? LOCAL_COPY_DELIVERED : 0),
                       local_fdout_write, &out) != 0 ||
        local_fdout_flush(&out) != 0 || fsync(fd) != 0) {
        int err = out.err ? out.err : errno;

        /* Never leave half a message behind. */
        if (ftruncate(fd, end) < 0)
            msg_warn("cannot truncate %s back to %lld bytes: %m", path, (long long) end);
        if (err == EFBIG)
            local_status_set(st, DELIVER_BOUNCE, "5.2.2", "cannot update %s %s: %s", what, path,
                             "mailbox size limit exceeded");
        else
            local_status_set(st, DELIVER_DEFER, err == ENOSPC || err == EDQUOT ? "4.2.2" : "4.2.0",
                             "cannot update %s %s: %s", what, path, strerror(err));
    } else {
        local_status_set(st, DELIVER_OK, "2.0.0", "delivered to %s", what);
    }
    local_fdout_release(&out);
}

/* Context of an mbox delivery. */
typedef struct mbox_job {
    local_msg *m;
    const char *path, *sender, *delivered_to, *what;
    long long limit;
    uid_t uid;
    gid_t gid;
    int fd, dotlocked, opened_as_root;
    int fcntl_only; /* the parent holds the dotlock */
} mbox_job;

/* mbox_open_locked - open (creating 0600 if missing) and lock; fd or -1 */
static int mbox_open_locked(mbox_job *j, uid_t owner, local_status *st)
{
    vbuf why;
    struct stat sb;
    int fd;

    vbuf_init(&why, 0);
    fd = safe_open(j->path, O_WRONLY | O_APPEND | O_CLOEXEC, SAFE_OPEN_CREATE, 0600, owner, j->gid, &sb, &why);
    if (fd < 0) {
        local_status_set(st, DELIVER_DEFER, "4.2.0", "cannot open %s %s: %s", j->what, j->path, vbuf_str(&why));
    } else if ((j->fcntl_only ? local_mbox_fcntl_lock(fd, j->path, &why)
                              : local_mbox_lock(fd, j->path, &j->dotlocked, &why)) < 0) {
        local_status_set(st, DELIVER_DEFER, "4.2.0", "cannot lock %s %s: %s", j->what, j->path, vbuf_str(&why));
        (void) close(fd);
        fd = -1;
    }
    vbuf_release(&why);
    return fd;
}

/* mbox_pre_root - spool mailbox: create/open and lock it while still root */
static void mbox_pre_root(void *ctx, local_status *st)
{
    mbox_job *j = ctx;

    j->fd = mbox_open_locked(j, j->uid, st);
    if (j->fd >= 0 && local_privileged() && fchown(j->fd, j->uid, j->gid) < 0) {
        local_status_set(st, DELIVER_DEFER, "4.2.0", "cannot set owner of %s: %s", j->path, strerror(errno));
        (void) close(j->fd);
        j->fd = -1;
    }
    j->opened_as_root = 1;
}

/* mbox_child - the user's side: open (unless done as root) and append */
static void mbox_child(void *ctx, local_status *st)
{
    mbox_job *j = ctx;

    if (!j->opened_as_root)
        j->fd = mbox_open_locked(j, j->uid, st);
    if (j->fd < 0)
        return;
    mbox_append(j->m, j->fd, j->path, j->sender, j->delivered_to, j->limit, j->what, st);
    local_mbox_unlock(j->path, j->dotlocked);
    (void) close(j->fd);
    j->fd = -1;
}

/* local_mbox_deliver - append to an mbox as the calling process (files, tests) */
void local_mbox_deliver(local_msg *m, const char *path, const char *sender, const char *delivered_to, long long limit,
                        local_status *st)
{
    mbox_job j = {m, path, sender, delivered_to, "file", limit, (uid_t) -1, (gid_t) -1, -1, 0, 0, 0};

    j.uid = geteuid();
    j.gid = getegid();
    mbox_child(&j, st);
}

/* Context of a Maildir delivery. */
typedef struct maildir_job {
    local_msg *m;
    const char *dir, *sender, *delivered_to;
    long long limit;
} maildir_job;

/* maildir_child - the user's side of a Maildir delivery */
static void maildir_child(void *ctx, local_status *st)
{
    maildir_job *j = ctx;

    local_maildir_deliver(j->m, j->dir, j->sender, j->delivered_to, j->limit, st);
}

/* local_mailbox_at - deliver to mailbox PATH (Maildir if it ends in '/') as U */
void local_mailbox_at(local_ctx *c, const local_user *u, const char *path, int spool, long long limit, local_status *st)
{
    size_t len = strlen(path);

    if (local_verify(c)) {
        local_status_set(st, DELIVER_OK, "2.0.0", "deliverable via local");
        return;
    }
    if (len > 0 && path[len - 1] == '/') {
        maildir_job mj = {c->msg, path, c->sender, c->delivered_to, limit};

        local_as_user(u, NULL, maildir_child, &mj, LOCAL_CHILD_TIMEOUT, st);
    } else {
        mbox_job j;
        vbuf why;
        int dotlocked = 0;

        memset(&j, 0, sizeof(j));
        j.m = c->msg;
        j.path = path;
        j.sender = c->sender;
        j.delivered_to = c->delivered_to;
        j.what = "mailbox";
        j.limit = limit;
        j.uid = u->uid;
        j.gid = u->gid;
        j.fd = -1;
        vbuf_init(&why, 0);
        if (spool) {
            /* The spool directory is root's: root takes the dotlock and opens the file. */
            j.fcntl_only = 1;
            if (local_mbox_dotlock(path, &dotlocked, &why) < 0)
                local_status_set(st, DELIVER_DEFER, "4.2.0", "cannot lock mailbox %s: %s", path, vbuf_str(&why));
            else
                local_as_user(u, mbox_pre_root, mbox_child, &j, LOCAL_CHILD_TIMEOUT, st);
            /* Opened as root, but the user's side never ran (no identity switch): close it here. */
            if (j.fd >= 0)
                (void) close(j.fd);
            local_mbox_unlock(path, dotlocked);
        } else {
            local_as_user(u, NULL, mbox_child, &j, LOCAL_CHILD_TIMEOUT, st);
        }
        vbuf_release(&why);
    }
}

/* local_mailbox - deliver to user U's mailbox (home_mailbox or the spool) */
void local_mailbox(local_ctx *c, const local_user *u)
{
    local_status st;
    vbuf path;

    local_status_init(&st);
    vbuf_init(&path, 0);
    if (*var_home_mailbox)
        (void) vbuf_printf(&path, "%s/%s", u->home, var_home_mailbox);
    else
        (void) vbuf_printf(&path, "%s/%s", var_mail_spool_directory, u->name);
    local_mailbox_at(c, u, vbuf_str(&path), *var_home_mailbox == 0, var_mailbox_size_limit, &st);
    local_result(c, c->address, &st);
    vbuf_release(&path);
    local_status_free(&st);
}
