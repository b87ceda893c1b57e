/*
 * Unit tests for events: descriptor callbacks over socketpairs, timer order
 * and moves, signal delivery through the self-pipe, removal of descriptors
 * and timers from inside callbacks, event_stop, event_reset, and exclusive
 * read interest (one of several processes waiting on a listening socket
 * wakes per connection).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "events.h"

static int teardown(void **state)
{
    (void) state;
    event_reset();
    return 0;
}

static void pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- descriptors ---- */

struct rd {
    int calls;
    int last_events;
    char buf[64];
    size_t len;
};

static void on_read(int fd, int events, void *ctx)
{
    struct rd *r = ctx;
    ssize_t n = read(fd, r->buf + r->len, sizeof(r->buf) - r->len);

    r->calls++;
    r->last_events = events;
    if (n > 0)
        r->len += (size_t) n;
}

static void test_events_read_callback_gets_data(void **state)
{
    int sv[2];
    struct rd r = {0};

    (void) state;
    pair(sv);
    event_enable_read(sv[1], on_read, &r);
    event_loop(0);
    assert_int_equal(r.calls, 0); /* nothing to read yet */
    assert_int_equal(write(sv[0], "hello", 5), 5);
    event_loop(1000);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.last_events & EVENT_READ, EVENT_READ);
    assert_int_equal(r.len, 5);
    assert_memory_equal(r.buf, "hello", 5);
    /* hang-up shows as READ|ERROR */
    close(sv[0]);
    event_loop(1000);
    assert_int_equal(r.calls, 2);
    assert_true(r.last_events & EVENT_ERROR);
    event_remove(sv[1]);
    close(sv[1]);
}

static int write_calls;

static void on_write_once(int fd, int events, void *ctx)
{
    (void) ctx;
    assert_true(events & EVENT_WRITE);
    write_calls++;
    assert_int_equal(write(fd, "x", 1), 1);
    event_disable_write(fd);
}

static void test_events_write_interest_and_disable(void **state)
{
    int sv[2];
    struct rd r = {0};

    (void) state;
    pair(sv);
    write_calls = 0;
    event_enable_write(sv[0], on_write_once, NULL);
    event_enable_read(sv[1], on_read, &r);
    for (int i = 0; i < 5; i++)
        event_loop(100);
    assert_int_equal(write_calls, 1); /* disabled after the first */
    assert_int_equal(r.len, 1);
    /* read and write interest on the same descriptor coexist */
    event_enable_read(sv[0], on_read, &r);
    event_enable_write(sv[0], on_write_once, NULL);
    event_loop(100);
    assert_int_equal(write_calls, 2);
    event_remove(sv[0]);
    event_remove(sv[1]);
    close(sv[0]);
    close(sv[1]);
}

/* Two readable fds: the first callback removes and closes the second. */
static int victim_fd = -1, victim_calls, killer_calls;

static void on_victim(int fd, int events, void *ctx)
{
    (void) fd;
    (void) events;
    (void) ctx;
    victim_calls++;
}

static void on_killer(int fd, int events, void *ctx)
{
    char c;

    (void) events;
    (void) ctx;
    killer_calls++;
    (void) !read(fd, &c, 1);
    if (victim_fd >= 0) {
        event_remove(victim_fd);
        close(victim_fd);
        victim_fd = -1;
    }
    event_remove(fd); /* and itself */
}

static void test_events_removal_during_dispatch(void **state)
{
    int a[2], b[2];

    (void) state;
    pair(a);
    pair(b);
    victim_calls = killer_calls = 0;
    /* Both readable before the loop runs, so both are in one epoll batch. */
    assert_int_equal(write(a[0], "k", 1), 1);
    assert_int_equal(write(b[0], "v", 1), 1);
    victim_fd = b[1];
    /* epoll reports descriptors that are ready when added in the order added */
    event_enable_read(a[1], on_killer, NULL);
    event_enable_read(b[1], on_victim, NULL);
    event_loop(100);
    /* The victim's event was in the batch but it was removed: skipped. */
    assert_int_equal(killer_calls, 1);
    assert_int_equal(victim_calls, 0);
    {
        int v = victim_calls;

        assert_int_equal(write(a[0], "k", 1), 1);
        event_loop(100);
        assert_int_equal(killer_calls, 1);
        assert_int_equal(victim_calls, v);
    }
    close(a[0]);
    close(a[1]);
    close(b[0]);
}

/* The removed descriptor number is reused in the same round by a new socket. */
static int reuse_new_calls, reuse_old_calls;
static int reuse_keep[2];

static void on_reuse_new(int fd, int events, void *ctx)
{
    (void) fd;
    (void) events;
    (void) ctx;
    reuse_new_calls++;
}

static void on_reuse_old(int fd, int events, void *ctx)
{
    (void) events;
    (void) ctx;
    (void) fd;
    reuse_old_calls++;
}

static void on_reuse_trigger(int fd, int events, void *ctx)
{
    int *victim = ctx;
    int sv[2];

    (void) events;
    event_remove(fd);
    event_remove(*victim);
    close(*victim);
    pair(sv); /* likely gets the same number */
    reuse_keep[0] = sv[0];
    reuse_keep[1] = sv[1];
    event_enable_read(sv[0], on_reuse_new, NULL); /* not readable */
}

static void test_events_fd_reused_in_same_round_gets_no_stale_event(void **state)
{
    int a[2], b[2];

    (void) state;
    pair(a);
    pair(b);
    reuse_new_calls = reuse_old_calls = 0;
    assert_int_equal(write(a[0], "t", 1), 1);
    assert_int_equal(write(b[0], "o", 1), 1);
    /* a[1] is registered first, so its callback runs first and replaces
     * b[1] by a new socket with (likely) the same number, which is never
     * readable: the stale event in the batch must reach no callback. */
    event_enable_read(a[1], on_reuse_trigger, &b[1]);
    event_enable_read(b[1], on_reuse_old, NULL);
    event_loop(100);
    event_loop(50);
    assert_int_equal(reuse_new_calls, 0);
    assert_int_equal(reuse_old_calls, 0);
    event_remove(reuse_keep[0]);
    close(reuse_keep[0]);
    close(reuse_keep[1]);
    close(a[0]);
    close(a[1]);
    close(b[0]);
}

static int werr_events, werr_calls;

static void on_write_err(int fd, int events, void *ctx)
{
    (void) ctx;
    werr_calls++;
    werr_events = events;
    event_remove(fd);
}

/* A peer that goes away shows up as WRITE|ERROR for a writer-only descriptor. */
static void test_events_write_interest_sees_peer_hangup(void **state)
{
    int sv[2];
    char fill[65536];

    (void) state;
    pair(sv);
    memset(fill, 'x', sizeof(fill));
    while (write(sv[0], fill, sizeof(fill)) > 0) /* fill the buffer: not writable */
        ;
    werr_calls = 0;
    event_enable_write(sv[0], on_write_err, NULL);
    event_loop(50);
    assert_int_equal(werr_calls, 0);
    close(sv[1]);
    event_loop(1000);
    assert_int_equal(werr_calls, 1);
    assert_true(werr_events & EVENT_WRITE);
    assert_true(werr_events & EVENT_ERROR);
    event_loop(50);
    assert_int_equal(werr_calls, 1); /* removed in its callback */
    close(sv[0]);
}

static int after_reset_calls;

static void on_reset(int fd, int events, void *ctx)
{
    (void) fd;
    (void) events;
    (void) ctx;
    event_reset(); /* as a child does after fork */
}

static void on_after_reset(int fd, int events, void *ctx)
{
    (void) fd;
    (void) events;
    (void) ctx;
    after_reset_calls++;
}

static void on_after_reset_timer(void *ctx)
{
    (void) ctx;
    after_reset_calls++;
}

/* event_reset from inside a callback ends the round: nothing stale runs. */
static void test_events_reset_inside_callback_stops_dispatch(void **state)
{
    int a[2], b[2];

    (void) state;
    pair(a);
    pair(b);
    after_reset_calls = 0;
    assert_int_equal(write(a[0], "r", 1), 1);
    assert_int_equal(write(b[0], "x", 1), 1);
    event_enable_read(a[1], on_reset, NULL);
    event_enable_read(b[1], on_after_reset, NULL);
    event_timer_set(on_after_reset_timer, NULL, 0);
    event_loop(100);
    assert_int_equal(after_reset_calls, 0);
    event_loop(20);
    assert_int_equal(after_reset_calls, 0);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}

/* ---- timers ---- */

static char order[32];
static size_t norder;

static void tick(void *ctx)
{
    order[norder++] = *(const char *) ctx;
}

static void test_events_timers_fire_in_order(void **state)
{
    static const char a = 'a', b = 'b', c = 'c', d = 'd';
    long long start = now_ms();

    (void) state;
    norder = 0;
    event_timer_set(tick, (void *) &c, 60);
    event_timer_set(tick, (void *) &a, 10);
    event_timer_set(tick, (void *) &d, 60); /* same time as c: after it */
    event_timer_set(tick, (void *) &b, 30);
    while (norder < 4 && now_ms() - start < 2000)
        event_loop(-1);
    assert_int_equal(norder, 4);
    assert_memory_equal(order, "abcd", 4);
    assert_true(now_ms() - start >= 60);
}

static void test_events_timer_set_again_moves_and_cancel_removes(void **state)
{
    static const char a = 'a', b = 'b', c = 'c';
    long long start = now_ms();

    (void) state;
    norder = 0;
    event_timer_set(tick, (void *) &a, 10);
    event_timer_set(tick, (void *) &b, 20);
    event_timer_set(tick, (void *) &c, 30);
    event_timer_set(tick, (void *) &a, 50); /* moved: runs last, once */
    event_timer_cancel(tick, (void *) &b);
    event_timer_cancel(tick, (void *) &b); /* harmless twice */
    while (now_ms() - start < 150)
        event_loop(20);
    assert_int_equal(norder, 2);
    assert_memory_equal(order, "ca", 2);
}

/* A timer that re-arms itself with delay 0 must not starve the loop. */
static int rearm_count;

static void rearm(void *ctx)
{
    (void) ctx;
    rearm_count++;
    event_timer_set(rearm, NULL, 0);
}

static void test_events_timer_rearming_itself_runs_once_per_round(void **state)
{
    (void) state;
    rearm_count = 0;
    event_timer_set(rearm, NULL, 0);
    event_loop(0);
    assert_int_equal(rearm_count, 1);
    event_loop(0);
    assert_int_equal(rearm_count, 2);
    event_timer_cancel(rearm, NULL);
    event_loop(0);
    assert_int_equal(rearm_count, 2);
}

/* One timer callback cancels another one that is due in the same round. */
static int cancelled_ran;

static void cancelled(void *ctx)
{
    (void) ctx;
    cancelled_ran++;
}

static void canceller(void *ctx)
{
    (void) ctx;
    event_timer_cancel(cancelled, NULL);
}

static void test_events_timer_cancelled_by_earlier_timer(void **state)
{
    long long start = now_ms();

    (void) state;
    cancelled_ran = 0;
    event_timer_set(canceller, NULL, 5);
    event_timer_set(cancelled, NULL, 6);
    while (now_ms() - start < 60)
        event_loop(10);
    assert_int_equal(cancelled_ran, 0);
}

static void test_events_loop_timeout_returns(void **state)
{
    long long start = now_ms();

    (void) state;
    event_loop(50);
    assert_true(now_ms() - start >= 45);
    assert_true(now_ms() - start < 1000);
    assert_true(event_now() >= time(NULL) - 1);
}

/* ---- signals, stop, reset ---- */

static int got_sig[NSIG];

static void on_signal(int sig)
{
    got_sig[sig]++;
    if (sig == SIGUSR2)
        event_stop();
}

static void test_events_signal_runs_as_callback(void **state)
{
    (void) state;
    memset(got_sig, 0, sizeof(got_sig));
    event_signal(SIGUSR1, on_signal);
    event_signal(SIGUSR2, on_signal);
    assert_int_equal(kill(getpid(), SIGUSR1), 0);
    /* the handler only wrote to the pipe; the callback runs in the loop */
    assert_int_equal(got_sig[SIGUSR1], 0);
    event_loop(1000);
    assert_int_equal(got_sig[SIGUSR1], 1);
    /* event_run returns after a callback calls event_stop */
    assert_int_equal(kill(getpid(), SIGUSR1), 0);
    assert_int_equal(kill(getpid(), SIGUSR2), 0);
    event_run();
    assert_int_equal(got_sig[SIGUSR1], 2);
    assert_int_equal(got_sig[SIGUSR2], 1);
}

static void test_events_signal_from_child_process(void **state)
{
    pid_t pid;
    int status;
    long long start = now_ms();

    (void) state;
    memset(got_sig, 0, sizeof(got_sig));
    event_signal(SIGUSR1, on_signal);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        event_reset(); /* child drops loop state */
        kill(getppid(), SIGUSR1);
        _exit(0);
    }
    while (got_sig[SIGUSR1] == 0 && now_ms() - start < 3000)
        event_loop(100);
    assert_int_equal(got_sig[SIGUSR1], 1);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_events_reset_drops_everything(void **state)
{
    int sv[2];
    struct rd r = {0};
    struct sigaction sa;

    (void) state;
    pair(sv);
    norder = 0;
    event_enable_read(sv[1], on_read, &r);
    event_timer_set(tick, (void *) "z", 0);
    event_signal(SIGUSR1, on_signal);
    event_reset();
    assert_int_equal(sigaction(SIGUSR1, NULL, &sa), 0);
    assert_true(sa.sa_handler == SIG_DFL);
    assert_int_equal(write(sv[0], "x", 1), 1);
    event_loop(50);
    assert_int_equal(r.calls, 0);
    assert_int_equal(norder, 0);
    /* usable again after the reset */
    event_enable_read(sv[1], on_read, &r);
    event_loop(100);
    assert_int_equal(r.calls, 1);
    event_remove(sv[1]);
    close(sv[0]);
    close(sv[1]);
}

/* ---- several processes on one listening socket ---- */

typedef struct waiter_counts {
    int wakeups, accepted, failed;
} waiter_counts;

/* on_listen_ready - a woken waiter: dawdle (so a second waiter, if woken, sees the client), then accept */
static void on_listen_ready(int fd, int events, void *ctx)
{
    waiter_counts *c = ctx;
    struct timespec pause = {0, 200 * 1000000L};
    int cfd;

    (void) events;
    c->wakeups++;
    (void) nanosleep(&pause, NULL);
    if ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        c->accepted++;
        close(cfd);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        c->failed++;
    }
}

/*
 * run_waiters - nwait processes wait on one listening socket (exclusive or
 * not), one client connects; the counts summed over the waiters.
 */
static waiter_counts run_waiters(int nwait, int exclusive)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    waiter_counts total = {0, 0, 0};
    int lfd, cfd, pipes[8][2];
    pid_t pids[8];

    assert_true(nwait <= 8);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(lfd >= 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lfd, (struct sockaddr *) &sin, sizeof(sin)), 0);
    assert_int_equal(listen(lfd, 16), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *) &sin, &len), 0);
    for (int i = 0; i < nwait; i++) {
        assert_int_equal(pipe(pipes[i]), 0);
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            waiter_counts c = {0, 0, 0};
            long long end = now_ms() + 1500;

            event_reset(); /* an epoll instance of its own, as in a daemon */
            if (exclusive)
                event_enable_read_exclusive(lfd, on_listen_ready, &c);
            else
                event_enable_read(lfd, on_listen_ready, &c);
            while (now_ms() < end)
                event_loop(50);
            _exit(write(pipes[i][1], &c, sizeof(c)) == (ssize_t) sizeof(c) ? 0 : 1);
        }
        close(pipes[i][1]);
    }
    {
        struct timespec settle = {0, 400 * 1000000L}; /* every waiter asleep in epoll_wait */

        (void) nanosleep(&settle, NULL);
    }
    cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(cfd >= 0);
    assert_int_equal(connect(cfd, (struct sockaddr *) &sin, sizeof(sin)), 0);
    for (int i = 0; i < nwait; i++) {
        waiter_counts c;
        int status;

        assert_int_equal(read(pipes[i][0], &c, sizeof(c)), (ssize_t) sizeof(c));
        close(pipes[i][0]);
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        total.wakeups += c.wakeups;
        total.accepted += c.accepted;
        total.failed += c.failed;
    }
    close(cfd);
    close(lfd);
    return total;
}

static void test_events_exclusive_read_wakes_one_of_several_processes(void **state)
{
    waiter_counts t;

    (void) state;
    t = run_waiters(3, 1);
    assert_int_equal(t.accepted, 1);
    assert_int_equal(t.wakeups, 1);
    assert_int_equal(t.failed, 0);
}

/* The same with ordinary interest: every waiter wakes, all but one accept in vain. */
static void test_events_plain_read_wakes_every_waiting_process(void **state)
{
    waiter_counts t;

    (void) state;
    t = run_waiters(3, 0);
    assert_int_equal(t.accepted, 1);
    assert_int_equal(t.wakeups, 3);
    assert_int_equal(t.failed, 2);
}

/* on_write_ignore - write interest that is dropped before the loop runs */
static void on_write_ignore(int fd, int events, void *ctx)
{
    (void) fd;
    (void) events;
    (void) ctx;
    fail_msg("write callback after disable");
}

/* Exclusive interest survives other changes of interest and can be dropped. */
static void test_events_exclusive_read_with_write_interest_and_disable(void **state)
{
    int sv[2];
    struct rd r = {0};

    (void) state;
    pair(sv);
    event_enable_read_exclusive(sv[1], on_read, &r);
    event_enable_write(sv[1], on_write_ignore, NULL);
    event_disable_write(sv[1]); /* re-registered, still exclusive */
    assert_int_equal(write(sv[0], "x", 1), 1);
    event_loop(100);
    assert_int_equal(r.calls, 1);
    event_disable_read(sv[1]);
    assert_int_equal(write(sv[0], "y", 1), 1);
    event_loop(50);
    assert_int_equal(r.calls, 1);
    event_remove(sv[1]);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_events_read_callback_gets_data, teardown),
        cmocka_unit_test_teardown(test_events_write_interest_and_disable, teardown),
        cmocka_unit_test_teardown(test_events_removal_during_dispatch, teardown),
        cmocka_unit_test_teardown(test_events_fd_reused_in_same_round_gets_no_stale_event, teardown),
        cmocka_unit_test_teardown(test_events_write_interest_sees_peer_hangup, teardown),
        cmocka_unit_test_teardown(test_events_reset_inside_callback_stops_dispatch, teardown),
        cmocka_unit_test_teardown(test_events_timers_fire_in_order, teardown),
        cmocka_unit_test_teardown(test_events_timer_set_again_moves_and_cancel_removes, teardown),
        cmocka_unit_test_teardown(test_events_timer_rearming_itself_runs_once_per_round, teardown),
        cmocka_unit_test_teardown(test_events_timer_cancelled_by_earlier_timer, teardown),
        cmocka_unit_test_teardown(test_events_loop_timeout_returns, teardown),
        cmocka_unit_test_teardown(test_events_signal_runs_as_callback, teardown),
        cmocka_unit_test_teardown(test_events_signal_from_child_process, teardown),
        cmocka_unit_test_teardown(test_events_reset_drops_everything, teardown),
        cmocka_unit_test_teardown(test_events_exclusive_read_wakes_one_of_several_processes, teardown),
        cmocka_unit_test_teardown(test_events_plain_read_wakes_every_waiting_process, teardown),
        cmocka_unit_test_teardown(test_events_exclusive_read_with_write_interest_and_disable, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
