/*
 * events - the event loop: epoll for descriptors, a min-heap of timers,
 * and signals through a self-pipe (see events.h).
 *
 * Offers per-descriptor read/write callbacks, one-shot timers identified by
 * (fn, ctx) with millisecond delays, and signal callbacks run from the loop.
 * Callbacks may add or remove descriptors and timers, their own included,
 * while the loop dispatches: every epoll registration carries a generation
 * number, so an event for a descriptor that was removed (and perhaps
 * reused) in the same round is dropped, and timers set during a round run
 * in a later one.
 *
 * Trusts its callers (in-process); the signal handler only writes the
 * signal number to the pipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "events.h"
#include "msg.h"
#include "mymalloc.h"

#define EVENT_BATCH 64

typedef struct event_slot {
    event_fn read_fn, write_fn;
    void *read_ctx, *write_ctx;
    int mask;       /* EVENT_READ | EVENT_WRITE wanted */
    int registered; /* known to epoll */
    int exclusive;  /* EPOLLEXCLUSIVE: added afresh, never modified */
    uint32_t gen;   /* bumped whenever interest ends */
} event_slot;

typedef struct event_timer {
    event_timer_fn fn;
    void *ctx;
    long long when;         /* monotonic ms */
    unsigned long long seq; /* order among equal times; round cut-off */
} event_timer;

static int ev_epfd = -1;
static event_slot *ev_slots;
static int ev_nslots;

static event_timer *ev_timers; /* min-heap on (when, seq) */
static size_t ev_ntimers, ev_timer_cap;
static unsigned long long ev_seq;

static int ev_pipe[2] = {-1, -1};
static event_signal_fn ev_sigfn[NSIG];

static time_t ev_now;
static int ev_stop;
static unsigned ev_epoch; /* bumped by event_reset: stale batches are dropped */

/* event_ms - the monotonic clock in milliseconds */
static long long event_ms(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
        msg_fatal("event: clock_gettime: %m");
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* event_init - create the epoll instance on first use */
static void event_init(void)
{
    if (ev_epfd >= 0)
        return;
    if ((ev_epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
        msg_fatal("event: epoll_create1: %m");
}

/* event_slot_get - the slot of fd, growing the table */
static event_slot *event_slot_get(int fd)
{
    if (fd < 0)
        msg_panic("event: invalid descriptor %d", fd);
    if (fd >= ev_nslots) {
        int n = ev_nslots ? ev_nslots : 64;

        while (n <= fd)
            n *= 2;
        ev_slots = xreallocarray(ev_slots, (size_t) n, sizeof(event_slot));
        memset(ev_slots + ev_nslots, 0, (size_t) (n - ev_nslots) * sizeof(event_slot));
        ev_nslots = n;
    }
    return &ev_slots[fd];
}

/* event_update - tell epoll the slot's current interest */
static void event_update(int fd, event_slot *sl)
{
    struct epoll_event ev;

    event_init();
    memset(&ev, 0, sizeof(ev));
    if (sl->mask & EVENT_READ)
        ev.events |= EPOLLIN;
    if (sl->mask & EVENT_WRITE)
        ev.events |= EPOLLOUT;
    ev.data.u64 = (uint64_t) (uint32_t) fd | ((uint64_t) sl->gen << 32);
    if (sl->mask == 0) {
        if (sl->registered && epoll_ctl(ev_epfd, EPOLL_CTL_DEL, fd, NULL) < 0 && errno != EBADF && errno != ENOENT)
            msg_fatal("event: epoll_ctl DEL fd %d: %m", fd);
        sl->registered = 0;
        sl->exclusive = 0;
        return;
    }
    if (sl->exclusive) {
        /* EPOLL_CTL_MOD refuses EPOLLEXCLUSIVE: remove and add again. */
        if (sl->registered && epoll_ctl(ev_epfd, EPOLL_CTL_DEL, fd, NULL) < 0 && errno != EBADF && errno != ENOENT)
            msg_fatal("event: epoll_ctl DEL fd %d: %m", fd);
        sl->registered = 0;
        ev.events |= EPOLLEXCLUSIVE;
        if (epoll_ctl(ev_epfd, EPOLL_CTL_ADD, fd, &ev) == 0) {
            sl->registered = 1;
            return;
        }
        if (errno != EINVAL)
            msg_fatal("event: epoll_ctl ADD fd %d: %m", fd);
        /* A kernel without EPOLLEXCLUSIVE (before Linux 4.5): every waiter wakes. */
        sl->exclusive = 0;
        ev.events &= ~(uint32_t) EPOLLEXCLUSIVE;
    }
    if (sl->registered) {
        if (epoll_ctl(ev_epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
            return;
        if (errno != ENOENT)
            msg_fatal("event: epoll_ctl MOD fd %d: %m", fd);
        /* closed and reopened without event_remove: register afresh */
    }
    if (epoll_ctl(ev_epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        msg_fatal("event: epoll_ctl ADD fd %d: %m", fd);
    sl->registered = 1;
}

/* event_enable_read - call fn when fd is readable (or has hung up) */
void event_enable_read(int fd, event_fn fn, void *ctx)
{
    event_slot *sl = event_slot_get(fd);

    sl->read_fn = fn;
    sl->read_ctx = ctx;
    if (!(sl->mask & EVENT_READ)) {
        sl->mask |= EVENT_READ;
        event_update(fd, sl);
    }
}

/* event_enable_read_exclusive - read interest shared with other processes: one waiter wakes */
void event_enable_read_exclusive(int fd, event_fn fn, void *ctx)
{
    event_slot *sl = event_slot_get(fd);

    sl->read_fn = fn;
    sl->read_ctx = ctx;
    if (!(sl->mask & EVENT_READ) || !sl->exclusive) {
        sl->mask |= EVENT_READ;
        sl->exclusive = 1;
        event_update(fd, sl);
    }
}

/* event_enable_write - call fn when fd is writable */
void event_enable_write(int fd, event_fn fn, void *ctx)
{
    event_slot *sl = event_slot_get(fd);

    sl->write_fn = fn;
    sl->write_ctx = ctx;
    if (!(sl->mask & EVENT_WRITE)) {
        sl->mask |= EVENT_WRITE;
        event_update(fd, sl);
    }
}

/* event_disable_read - drop read interest */
void event_disable_read(int fd)
{
    event_slot *sl;

    if (fd < 0 || fd >= ev_nslots || !(ev_slots[fd].mask & EVENT_READ))
        return;
    sl = &ev_slots[fd];
    sl->mask &= ~EVENT_READ;
    sl->read_fn = NULL;
    sl->read_ctx = NULL;
    if (sl->mask == 0)
        sl->gen++;
    event_update(fd, sl);
}

/* event_disable_write - drop write interest */
void event_disable_write(int fd)
{
    event_slot *sl;

    if (fd < 0 || fd >= ev_nslots || !(ev_slots[fd].mask & EVENT_WRITE))
        return;
    sl = &ev_slots[fd];
    sl->mask &= ~EVENT_WRITE;
    sl->write_fn = NULL;
    sl->write_ctx = NULL;
    if (sl->mask == 0)
        sl->gen++;
    event_update(fd, sl);
}

/* event_remove - forget fd entirely; call before closing it */
void event_remove(int fd)
{
    event_slot *sl;

    if (fd < 0 || fd >= ev_nslots)
        return;
    sl = &ev_slots[fd];
    if (sl->mask == 0 && !sl->registered)
        return;
    sl->mask = 0;
    sl->read_fn = sl->write_fn = NULL;
    sl->read_ctx = sl->write_ctx = NULL;
    sl->gen++;
    event_update(fd, sl);
}

/* heap_less - heap order: earlier time first, then earlier set */
static int heap_less(const event_timer *a, const event_timer *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

/* heap_swap - exchange two heap entries */
static void heap_swap(size_t i, size_t j)
{
    event_timer t = ev_timers[i];

    ev_timers[i] = ev_timers[j];
    ev_timers[j] = t;
}

/* heap_up - restore the heap above i */
static void heap_up(size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;

        if (!heap_less(&ev_timers[i], &ev_timers[p]))
            break;
        heap_swap(i, p);
        i = p;
    }
}

/* heap_down - restore the heap below i */
static void heap_down(size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;

        if (l < ev_ntimers && heap_less(&ev_timers[l], &ev_timers[m]))
            m = l;
        if (r < ev_ntimers && heap_less(&ev_timers[r], &ev_timers[m]))
            m = r;
        if (m == i)
            break;
        heap_swap(i, m);
        i = m;
    }
}

/* heap_delete - remove heap entry i */
static void heap_delete(size_t i)
{
    ev_ntimers--;
    if (i == ev_ntimers)
        return;
    ev_timers[i] = ev_timers[ev_ntimers];
    heap_up(i);
    heap_down(i);
}

/* heap_find - index of the (fn, ctx) timer, or -1 */
static long heap_find(event_timer_fn fn, void *ctx)
{
    for (size_t i = 0; i < ev_ntimers; i++)
        if (ev_timers[i].fn == fn && ev_timers[i].ctx == ctx)
            return (long) i;
    return -1;
}

/* event_timer_set - run fn(ctx) once after delay_ms; setting it again moves it */
void event_timer_set(event_timer_fn fn, void *ctx, long delay_ms)
{
    long i = heap_find(fn, ctx);

    if (delay_ms < 0)
        delay_ms = 0;
    if (i >= 0)
        heap_delete((size_t) i);
    if (ev_ntimers == ev_timer_cap) {
        ev_timer_cap = ev_timer_cap ? size_mul(ev_timer_cap, 2) : 16;
        ev_timers = xreallocarray(ev_timers, ev_timer_cap, sizeof(event_timer));
    }
    ev_timers[ev_ntimers].fn = fn;
    ev_timers[ev_ntimers].ctx = ctx;
    ev_timers[ev_ntimers].when = event_ms() + delay_ms;
    ev_timers[ev_ntimers].seq = ++ev_seq;
    ev_ntimers++;
    heap_up(ev_ntimers - 1);
}

/* event_timer_cancel - forget the (fn, ctx) timer, if set */
void event_timer_cancel(event_timer_fn fn, void *ctx)
{
    long i = heap_find(fn, ctx);

    if (i >= 0)
        heap_delete((size_t) i);
}

/* event_sig_handler - async-signal-safe: write the number to the pipe */
static void event_sig_handler(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char) sig;

    if (ev_pipe[1] >= 0)
        (void) !write(ev_pipe[1], &b, 1);
    errno = saved;
}

/* event_sig_read - drain the self-pipe and run the signal callbacks */
static void event_sig_read(int fd, int events, void *ctx)
{
    unsigned char buf[64];
    ssize_t n;

    (void) events;
    (void) ctx;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            int sig = buf[i];

            if (sig > 0 && sig < NSIG && ev_sigfn[sig])
                ev_sigfn[sig](sig);
        }
    }
}

/* event_signal - run fn(sig) from the loop when sig arrives; NULL restores the default */
void event_signal(int sig, event_signal_fn fn)
{
    struct sigaction sa;

    if (sig <= 0 || sig >= NSIG || sig > 255)
        msg_panic("event_signal: bad signal %d", sig);
    if (fn && ev_pipe[0] < 0) {
        if (pipe2(ev_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
            msg_fatal("event_signal: pipe: %m");
        event_enable_read(ev_pipe[0], event_sig_read, NULL);
    }
    ev_sigfn[sig] = fn;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sa.sa_handler = fn ? event_sig_handler : SIG_DFL;
    if (sigaction(sig, &sa, NULL) < 0)
        msg_fatal("event_signal: sigaction %d: %m", sig);
}

/* event_run_timers - run timers that are due and were set before this round */
static void event_run_timers(void)
{
    unsigned long long cutoff = ev_seq;
    long long now = event_ms();

    while (ev_ntimers > 0 && ev_timers[0].when <= now) {
        event_timer t = ev_timers[0];

        if (t.seq > cutoff) {
            /* Set during this round: find an older due one, if any. */
            size_t k, best = ev_ntimers;

            for (k = 0; k < ev_ntimers; k++)
                if (ev_timers[k].when <= now && ev_timers[k].seq <= cutoff &&
                    (best == ev_ntimers || heap_less(&ev_timers[k], &ev_timers[best])))
                    best = k;
            if (best == ev_ntimers)
                break;
            t = ev_timers[best];
            heap_delete(best);
        } else {
            heap_delete(0);
        }
        t.fn(t.ctx);
    }
}

/* event_wait_ms - how long epoll may sleep given timeout_ms and the timers */
static int event_wait_ms(long timeout_ms)
{
    long long wait = timeout_ms < 0 ? -1 : timeout_ms;

    if (ev_ntimers > 0) {
        long long due = ev_timers[0].when - event_ms();

        if (due < 0)
            due = 0;
        if (wait < 0 || due < wait)
            wait = due;
    }
    if (wait > 0x7fffffff)
        wait = 0x7fffffff;
    return (int) wait;
}

/* event_loop - wait up to timeout_ms for events, run the callbacks once */
void event_loop(long timeout_ms)
{
    struct epoll_event evs[EVENT_BATCH];
    unsigned epoch;
    int n;

    event_init();
    ev_now = time(NULL);
    n = epoll_wait(ev_epfd, evs, EVENT_BATCH, event_wait_ms(timeout_ms));
    if (n < 0) {
        if (errno != EINTR)
            msg_fatal("event_loop: epoll_wait: %m");
        n = 0;
    }
    ev_now = time(NULL);
    epoch = ev_epoch;
    for (int i = 0; i < n && epoch == ev_epoch; i++) {
        int fd = (int) (uint32_t) (evs[i].data.u64 & 0xffffffffu);
        uint32_t gen = (uint32_t) (evs[i].data.u64 >> 32);
        uint32_t e = evs[i].events;
        int err = (e & (EPOLLERR | EPOLLHUP)) ? EVENT_ERROR : 0;
        event_slot *sl;

        if (fd >= ev_nslots)
            continue;
        sl = &ev_slots[fd];
        if (sl->gen != gen)
            continue; /* removed during this round */
        if ((sl->mask & EVENT_READ) && (e & (EPOLLIN | EPOLLERR | EPOLLHUP)))
            sl->read_fn(fd, EVENT_READ | err, sl->read_ctx);
        if (epoch != ev_epoch || fd >= ev_nslots)
            break;          /* a callback called event_reset */
        sl = &ev_slots[fd]; /* the table may have grown */
        if (sl->gen != gen)
            continue;
        if ((sl->mask & EVENT_WRITE) && (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            sl->write_fn(fd, EVENT_WRITE | err, sl->write_ctx);
    }
    if (epoch == ev_epoch)
        event_run_timers();
}

/* event_run - loop until event_stop() */
void event_run(void)
{
    ev_stop = 0;
    while (!ev_stop)
        event_loop(-1);
    ev_stop = 0;
}

/* event_stop - make event_run return after the current round */
void event_stop(void)
{
    ev_stop = 1;
}

/* event_now - time() as of the current loop round */
time_t event_now(void)
{
    if (ev_now == 0)
        ev_now = time(NULL);
    return ev_now;
}

/* event_reset - drop all state: descriptors, timers, signal handlers */
void event_reset(void)
{
    for (int sig = 1; sig < NSIG; sig++) {
        if (ev_sigfn[sig]) {
            struct sigaction sa;

            memset(&sa, 0, sizeof(sa));
            sigemptyset(&sa.sa_mask);
            sa.sa_handler = SIG_DFL;
            (void) sigaction(sig, &sa, NULL);
            ev_sigfn[sig] = NULL;
        }
    }
    if (ev_pipe[0] >= 0) {
        (void) close(ev_pipe[0]);
        (void) close(ev_pipe[1]);
        ev_pipe[0] = ev_pipe[1] = -1;
    }
    if (ev_epfd >= 0) {
        (void) close(ev_epfd);
        ev_epfd = -1;
    }
    xfree(ev_slots);
    ev_slots = NULL;
    ev_nslots = 0;
    xfree(ev_timers);
    ev_timers = NULL;
    ev_ntimers = ev_timer_cap = 0;
    ev_stop = 0;
    ev_now = 0;
    ev_epoch++;
}
