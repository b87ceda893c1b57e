/*
 * remove - removal of finished messages in batches, with one file system
 * sync per batch instead of one per message, run beside the event loop.
 *
 * Rule: a recipient is marked done in the queue file, and the mark is
 * durable, before the file is removed. The delivery agents write their
 * marks without syncing; a finished message's ID waits here, its file still
 * in active/, for a batch: ONE syncfs(2) on the queue directory makes every
 * mark written so far in that file system durable (one journal commit, one
 * cache flush), and only then are the files retired (mail_queue_retire: to
 * recycle/ or unlinked), "ID: removed" logged and the logs removed.
 *
 * The syncfs runs in a worker thread, never in the event loop: on a file
 * system shared with heavy writers it can take seconds, and scheduling must
 * go on meanwhile. The loop hands the worker a batch (the IDs pending at
 * that moment) by writing one request to a pipe; the worker only sleeps
 * (the test delay), calls syncfs on a descriptor of active/ and writes the
 * result code to a second pipe, which the event loop watches. The worker
 * touches nothing else: no logging, no allocation, no lists. On completion
 * the loop retires the batch's files. While one sync is in flight, newly
 * finished IDs collect for the next batch, which starts when the sync
 * completes if the batch rules below say so by then (else when they do);
 * only one sync is in flight at a time.
 *
 * A batch starts QMGR_REMOVE_DELAY_MS after its oldest pending ID,
 * at once when QMGR_REMOVE_BATCH are pending or the active queue is full
 * (pending and in-flight files still sit in active/ and count against
 * qmgr_message_active_limit). qmgr_remove_flush(), from qmgr's exit hook,
 * waits for an in-flight sync and removes everything pending before the
 * process ends. If syncfs fails, or the worker cannot be started, each file
 * is fdatasync'd (in the event loop; a rare path) before it is retired: an
 * unsynced file is never removed.
 *
 * A qmgr killed with IDs pending or in flight leaves their files in active/
 * with their marks; the next qmgr moves them to incoming/, loads them, finds
 * every recipient done and removes them without delivering (a power loss
 * that drops an unsynced mark costs a duplicate delivery, never a loss).
 * Nothing else picks up an active/ file: scans, flushes and "deliver ID"
 * look at incoming/ and deferred/ only.
 *
 * For tests only (imported like KITE_FAULT_MARKS): KITE_REMOVE_DELAY_MS
 * replaces the batch interval; KITE_SYNC_DELAY_MS makes the worker sleep
 * that long before each syncfs (a slow file system), so that a test can
 * deliver, stop or kill qmgr while a sync is in flight; KITE_FAULT_SYNCFS=1
 * makes the worker report EIO instead of syncing (the fallback path).
 *
 * Trusts the IDs it is given (qmgr's own, validated when loaded), and the
 * test variables only as bounded numbers.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bounce_log.h"
#include "events.h"
#include "mail_queue.h"
#include "msg.h"
#include "mymalloc.h"
#include "qmgr.h"
#include "vbuf.h"

/* A list of queue IDs. */
typedef struct id_list {
    char **ids;
    size_t count;
    size_t alloc;
} id_list;

/* One request to the worker: sync now (after the test delay, or fail on purpose). */
typedef struct sync_request {
    long delay_ms;
    int fail;
} sync_request;

/* What the worker may touch: set before it starts, read-only afterwards. */
typedef struct sync_worker_fds {
    int dir_fd;  /* active/, for syncfs */
    int req_fd;  /* read end of the request pipe */
    int done_fd; /* write end of the completion pipe */
} sync_worker_fds;

static id_list rm_pending; /* finished, waiting for the next batch, oldest first */
static id_list rm_flight;  /* the batch whose sync is in flight */
static int rm_busy;        /* a sync is in flight */
static int rm_worker_up;   /* the worker runs */
static int rm_req_pipe[2] = {-1, -1};
static int rm_done_pipe[2] = {-1, -1};
static long rm_first_ms; /* when the oldest pending ID came (monotonic ms) */
static int rm_hurry;     /* the active queue filled up during a sync: next batch at once */
static sync_worker_fds rm_fds = {-1, -1, -1};

/* env_ms - a test variable in milliseconds (0..600000), or dflt; warns once per bad value */
static long env_ms(const char *name, long dflt, int *warned)
{
    const char *v = secure_getenv(name);
    char *end;
    long n;

    if (v == NULL || *v == 0)
        return dflt;
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno == 0 && *end == 0 && n >= 0 && n <= 600000)
        return n;
    if (!*warned)
        msg_warn("ignoring bad %s \"%.32s\"", name, v);
    *warned = 1;
    return dflt;
}

/* remove_delay - the batch interval in milliseconds */
static long remove_delay(void)
{
    static long delay = -1;
    static int warned;

    if (delay < 0)
        delay = env_ms("KITE_REMOVE_DELAY_MS", QMGR_REMOVE_DELAY_MS, &warned);
    return delay;
}

/* sync_delay - the test delay before each syncfs, read for every batch */
static long sync_delay(void)
{
    static int warned;

    return env_ms("KITE_SYNC_DELAY_MS", 0, &warned);
}

/* sync_fault - KITE_FAULT_SYNCFS=1: the worker reports a failed syncfs */
static int sync_fault(void)
{
    const char *v = secure_getenv("KITE_FAULT_SYNCFS");

    return v != NULL && strcmp(v, "1") == 0;
}

/* mono_ms - a monotonic clock in milliseconds */
static long mono_ms(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
        msg_panic("clock_gettime: %m");
    return (long) ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* list_add - append a copy of id */
static void list_add(id_list *l, const char *id)
{
    if (l->count == l->alloc) {
        l->alloc = l->alloc ? l->alloc * 2 : 64;
        l->ids = xrealloc(l->ids, l->alloc * sizeof(*l->ids));
    }
    l->ids[l->count++] = xstrdup(id);
}

/* sync_worker - the thread: per request, sleep the test delay, syncfs, report errno (0: synced) */
static void *sync_worker(void *arg)
{
    const sync_worker_fds *fds = arg;
    sync_request req;
    ssize_t n;
    int rc;

    for (;;) {
        if ((n = read(fds->req_fd, &req, sizeof(req))) < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t) sizeof(req))
            return NULL; /* the request pipe is gone: nothing more to do */
        if (req.delay_ms > 0) {
            struct timespec ts = {req.delay_ms / 1000, (req.delay_ms % 1000) * 1000000L};

            while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
        }
        rc = req.fail ? EIO : syncfs(fds->dir_fd) < 0 ? errno : 0;
        while ((n = write(fds->done_fd, &rc, sizeof(rc))) < 0 && errno == EINTR)
            ;
        if (n != (ssize_t) sizeof(rc))
            return NULL; /* cannot happen with one result at a time in a pipe */
    }
}

static void sync_done(int fd, int events, void *ctx);

/* worker_start - pipes, the active/ descriptor and the thread, once; 0 or -1 */
static int worker_start(void)
{
    sigset_t all, old;
    pthread_attr_t attr;
    pthread_t t;
    int rc;

    if (rm_worker_up)
        return 0;
    if (rm_fds.dir_fd < 0 && (rm_fds.dir_fd = open(MAIL_QUEUE_ACTIVE, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        msg_warn("open %s for syncfs: %m; syncing each finished file instead", MAIL_QUEUE_ACTIVE);
        return -1;
    }
    if (rm_req_pipe[0] < 0 && pipe2(rm_req_pipe, O_CLOEXEC) < 0) {
        msg_warn("removal sync: pipe: %m; syncing each finished file instead");
        return -1;
    }
    if (rm_done_pipe[0] < 0) {
        if (pipe2(rm_done_pipe, O_CLOEXEC) < 0) {
            msg_warn("removal sync: pipe: %m; syncing each finished file instead");
            return -1;
        }
        /* The loop's end never blocks; the worker's end may (one result at a time). */
        if (fcntl(rm_done_pipe[0], F_SETFL, O_NONBLOCK) < 0) {
            msg_warn("removal sync: pipe: %m; syncing each finished file instead");
            (void) close(rm_done_pipe[0]);
            (void) close(rm_done_pipe[1]);
            rm_done_pipe[0] = rm_done_pipe[1] = -1;
            return -1;
        }
    }
    rm_fds.req_fd = rm_req_pipe[0];
    rm_fds.done_fd = rm_done_pipe[1];
    if ((rc = pthread_attr_init(&attr)) != 0) {
        errno = rc;
        msg_warn("removal sync: thread attributes: %m; syncing each finished file instead");
        return -1;
    }
    (void) pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* Every signal blocked in the worker: they reach the loop's self-pipe. */
    (void) sigfillset(&all);
    (void) pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&t, &attr, sync_worker, &rm_fds);
    (void) pthread_sigmask(SIG_SETMASK, &old, NULL);
    (void) pthread_attr_destroy(&attr);
    if (rc != 0) {
        errno = rc;
        msg_warn("removal sync: start thread: %m; syncing each finished file instead");
        return -1;
    }
    event_enable_read(rm_done_pipe[0], sync_done, NULL);
    rm_worker_up = 1;
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

/* finish_batch - retire the in-flight batch's files; synced: the file system sync succeeded */
static void finish_batch(int synced)
{
    vbuf path;

    vbuf_init(&path, 0);
    for (size_t i = 0; i < rm_flight.count; i++) {
        const char *id = rm_flight.ids[i];

        mail_queue_path(&path, MAIL_QUEUE_ACTIVE, id);
        if (!synced && sync_one(vbuf_str(&path)) < 0) {
            /* Left in active/: the next qmgr finds it done and removes it. */
            msg_warn("%s: sync %s: %m; not removed", id, vbuf_str(&path));
        } else if (mail_queue_retire(MAIL_QUEUE_ACTIVE, id) < 0 && errno != ENOENT) {
            /* Removed from the queue; the file itself may live on in recycle/. */
            msg_warn("%s: remove %s: %m", id, vbuf_str(&path));
        } else {
            (void) bounce_log_remove(MAIL_QUEUE_DEFER, id);
            (void) bounce_log_remove(MAIL_QUEUE_BOUNCE, id);
            (void) bounce_log_remove(MAIL_QUEUE_TRACE, id);
            msg_info("%s: removed", id);
        }
        xfree(rm_flight.ids[i]);
    }
    rm_flight.count = 0;
    vbuf_release(&path);
    qmgr_scan_incoming_soon(); /* active/ has room again */
}

static void remove_timer(void *ctx);

/* start_batch - hand what is pending to the worker (unless a sync is in flight) */
static void start_batch(void)
{
    id_list swap;
    sync_request req;

    if (rm_busy || rm_pending.count == 0)
        return;
    event_timer_cancel(remove_timer, NULL);
    rm_hurry = 0;
    /* The in-flight list is empty here: swap so both keep their storage. */
    swap = rm_flight;
    rm_flight = rm_pending;
    rm_pending = swap;
    if (worker_start() == 0) {
        memset(&req, 0, sizeof(req));
        req.delay_ms = sync_delay();
        req.fail = sync_fault();
        if (write(rm_req_pipe[1], &req, sizeof(req)) == (ssize_t) sizeof(req)) {
            rm_busy = 1;
            return;
        }
        msg_warn("removal sync: hand over a batch: %m; syncing each finished file instead");
    }
    finish_batch(0);
}

/* next_batch - after a sync: what collected meanwhile goes by the batch rules (full: now; else the interval) */
static void next_batch(void)
{
    long wait;

    if (rm_pending.count == 0)
        return;
    if (rm_pending.count >= QMGR_REMOVE_BATCH || rm_hurry) {
        start_batch();
        return;
    }
    /* The interval counts from the oldest pending ID, which may be past it already. */
    wait = rm_first_ms + remove_delay() - mono_ms();
    event_timer_set(remove_timer, NULL, wait > 0 ? wait : 0);
}

/* sync_done - the worker reported: retire the batch, start the next one if IDs wait */
static void sync_done(int fd, int events, void *ctx)
{
    ssize_t n;
    int rc;

    (void) events;
    (void) ctx;
    if ((n = read(fd, &rc, sizeof(rc))) < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n != (ssize_t) sizeof(rc))
        msg_panic("removal sync: bad completion read (%zd bytes): %m", n);
    if (!rm_busy)
        msg_panic("removal sync: a completion with no sync in flight");
    rm_busy = 0;
    if (rc != 0) {
        errno = rc;
        msg_warn("syncfs %s: %m; syncing each finished file instead", MAIL_QUEUE_ACTIVE);
    }
    finish_batch(rc == 0);
    next_batch();
}

/* remove_timer - the batch interval has passed */
static void remove_timer(void *ctx)
{
    (void) ctx;
    start_batch();
}

/* qmgr_remove_later - the message is finished: remove its file with a batch */
void qmgr_remove_later(const char *id)
{
    list_add(&rm_pending, id);
    if (rm_pending.count == 1)
        rm_first_ms = mono_ms();
    if (rm_busy)
        return; /* the next batch is set up when the sync in flight completes */
    if (rm_pending.count >= QMGR_REMOVE_BATCH)
        start_batch();
    else if (rm_pending.count == 1)
        event_timer_set(remove_timer, NULL, remove_delay());
}

/* qmgr_remove_pending - finished files still in active/: waiting or in flight */
size_t qmgr_remove_pending(void)
{
    return rm_pending.count + rm_flight.count;
}

/* qmgr_remove_in_flight - is a sync running? */
int qmgr_remove_in_flight(void)
{
    return rm_busy;
}

/* qmgr_remove_soon - start a batch now instead of after the interval (the active queue is full) */
void qmgr_remove_soon(void)
{
    if (rm_busy)
        rm_hurry = 1; /* when the sync in flight completes */
    else
        start_batch();
}

/* wait_done - block until the in-flight sync reports, then handle it; -1 if waiting failed */
static int wait_done(void)
{
    struct pollfd p = {.fd = rm_done_pipe[0], .events = POLLIN};

    if (poll(&p, 1, -1) < 0) {
        if (errno == EINTR)
            return 0;
        msg_warn("removal sync: wait for completion: %m");
        return -1;
    }
    sync_done(rm_done_pipe[0], EVENT_READ, NULL);
    return 0;
}

/* qmgr_remove_flush - wait for the sync in flight, then sync and remove everything pending */
void qmgr_remove_flush(void)
{
    event_timer_cancel(remove_timer, NULL);
    while (rm_busy || rm_pending.count > 0) {
        if (!rm_busy)
            start_batch(); /* in flight now, or done at once by the fallback */
        if (rm_busy && wait_done() < 0)
            return; /* the files stay in active/ for the next qmgr */
    }
}
