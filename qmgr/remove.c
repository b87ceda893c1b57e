/*
 * remove - removal of finished messages in batches, with one file system
 * sync per batch instead of one per message.
 *
 * Rule: a recipient is marked done in the queue file, and the mark is
 * durable, before the file is removed. The delivery agents write their
 * marks without syncing; a finished message's ID waits here, its file still
 * in active/, until the next flush: ONE syncfs(2) on the queue directory
 * makes every mark written so far in that file system durable (one journal
 * commit, one cache flush), and only then are the files unlinked and
 * "ID: removed" logged. The syncfs blocks the event loop once per batch
 * (about a millisecond); per-message fsyncs in this loop would cost that
 * for every message, which is why the agents used to sync instead. If
 * syncfs fails, each file is fdatasync'd before its unlink: an unsynced file
 * is never removed.
 *
 * A flush runs at most QMGR_REMOVE_DELAY_MS after the first pending ID, at
 * once when QMGR_REMOVE_BATCH are pending, and from qmgr's exit hook. A qmgr
 * killed with IDs pending leaves their files in active/ with their marks;
 * the next qmgr moves them to incoming/, loads them, finds every recipient
 * done and removes them without delivering (a power loss that drops an
 * unsynced mark costs a duplicate delivery, never a loss). Nothing else
 * picks up an active/ file: scans, flushes and "deliver ID" look at
 * incoming/ and deferred/ only.
 *
 * KITE_REMOVE_DELAY_MS (imported like KITE_FAULT_MARKS, for tests only)
 * replaces the batch interval, so that a test can stop or kill qmgr while
 * finished messages are known to be pending.
 *
 * Trusts the IDs it is given (qmgr's own, validated when loaded), and the
 * test variable only as a bounded number.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bounce_log.h"
#include "events.h"
#include "mail_queue.h"
#include "msg.h"
#include "mymalloc.h"
#include "qmgr.h"
#include "vbuf.h"

static char **rm_ids;    /* pending removal, oldest first */
static size_t rm_count;
static size_t rm_alloc;
static int rm_dir_fd = -1; /* active/, for syncfs */

/* remove_delay - the batch interval in milliseconds */
static long remove_delay(void)
{
    static long delay = -1;

    if (delay < 0) {
        const char *v = secure_getenv("KITE_REMOVE_DELAY_MS");
        char *end;
        long n;

        delay = QMGR_REMOVE_DELAY_MS;
        if (v != NULL && *v) {
            errno = 0;
            n = strtol(v, &end, 10);
            if (errno == 0 && *end == 0 && n >= 0 && n <= 600000)
                delay = n;
            else
                msg_warn("ignoring bad KITE_REMOVE_DELAY_MS \"%.32s\"", v);
        }
    }
    return delay;
}

/* remove_timer - the batch interval has passed */
static void remove_timer(void *ctx)
{
    (void) ctx;
    qmgr_remove_flush();
}

/* qmgr_remove_later - the message is finished: remove its file with the next batch */
void qmgr_remove_later(const char *id)
{
    if (rm_count == rm_alloc) {
        rm_alloc = rm_alloc ? rm_alloc * 2 : 64;
        rm_ids = xrealloc(rm_ids, rm_alloc * sizeof(*rm_ids));
    }
    rm_ids[rm_count++] = xstrdup(id);
    if (rm_count >= QMGR_REMOVE_BATCH)
        qmgr_remove_flush();
    else if (rm_count == 1)
        event_timer_set(remove_timer, NULL, remove_delay());
}

/* qmgr_remove_pending - how many finished messages wait for removal */
size_t qmgr_remove_pending(void)
{
    return rm_count;
}

/* sync_all - one syncfs for the queue file system; -1 if it failed */
static int sync_all(void)
{
    if (rm_dir_fd < 0 && (rm_dir_fd = open(MAIL_QUEUE_ACTIVE, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        msg_warn("open %s for syncfs: %m", MAIL_QUEUE_ACTIVE);
        return -1;
    }
    if (syncfs(rm_dir_fd) < 0) {
        msg_warn("syncfs %s: %m; syncing each finished file instead", MAIL_QUEUE_ACTIVE);
        return -1;
    }
    return 0;
}

/* sync_one - fdatasync one queue file (the fallback); 0 also when it is gone */
static int sync_one(const char *path)
{
    int fd, ret;

    if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
        return errno == ENOENT ? 0 : -1;
    ret = fdatasync(fd);
    if (close(fd) < 0)
        ret = -1;
    return ret;
}

/* qmgr_remove_flush - make the marks durable, then remove every pending file */
void qmgr_remove_flush(void)
{
    vbuf path;
    int synced;

    event_timer_cancel(remove_timer, NULL);
    if (rm_count == 0)
        return;
    synced = sync_all() == 0;
    vbuf_init(&path, 0);
    for (size_t i = 0; i < rm_count; i++) {
        const char *id = rm_ids[i];

        mail_queue_path(&path, MAIL_QUEUE_ACTIVE, id);
        if (!synced && sync_one(vbuf_str(&path)) < 0) {
            /* Left in active/: the next qmgr finds it done and removes it. */
            msg_warn("%s: sync %s: %m; not removed", id, vbuf_str(&path));
        } else if (mail_queue_retire(MAIL_QUEUE_ACTIVE, id) < 0 && errno != ENOENT) {
            msg_warn("%s: remove %s: %m", id, vbuf_str(&path));
        } else {
            (void) bounce_log_remove(MAIL_QUEUE_DEFER, id);
            (void) bounce_log_remove(MAIL_QUEUE_BOUNCE, id);
            (void) bounce_log_remove(MAIL_QUEUE_TRACE, id);
            msg_info("%s: removed", id);
        }
        xfree(rm_ids[i]);
    }
    rm_count = 0;
    vbuf_release(&path);
}
