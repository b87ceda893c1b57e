/*
 * Unit tests for qmgr's message handling with real queue files in a
 * temporary queue directory: loading (log line, done recipients skipped,
 * corrupt files set aside, delay warning time kept), routing, deferral with
 * backoff when the transport is unavailable, lifetime expiry (5.4.7 bounce
 * records), the "error" transport, and removal of finished messages.
 * No delivery agent or bounce service runs here, so connections fail the
 * way they do when a service is missing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bounce_log.h"
#include "conf.h"
#include "events.h"
#include "mail_queue.h"
#include "msg.h"
#include "params.h"
#include "qfile.h"
#include "resolve.h"
#include "vbuf.h"

#include "../../qmgr/qmgr.h"

/* The glue main.c provides in the daemon. */
int qmgr_stopped;
int qmgr_active_count;
static int kicks;

void qmgr_kick(void)
{
    kicks++;
}

void qmgr_scan_incoming_soon(void)
{
}

static vbuf logbuf;
static char topdir[] = "/tmp/kite-qmgr-unit-XXXXXX";

/* capture - keep every log line */
static void capture(enum msg_level level, const char *text)
{
    (void) level;
    vbuf_puts(&logbuf, text);
    vbuf_putc(&logbuf, '\n');
}

/* configure - a fresh configuration and an empty queue directory */
static int setup(void **state)
{
    static const char *const dirs[] = {"incoming", "active", "deferred", "hold",    "corrupt",
                                       "bounce",   "defer",  "trace",    "private", "public"};
    char path[256];

    (void) state;
    /* Whatever an earlier test left for removal goes in that test's directory. */
    qmgr_remove_flush();
    snprintf(path, sizeof(path), "%s/q%d", topdir, kicks + (int) time(NULL) % 1000 + rand() % 100000);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(chdir(path), 0);
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
        assert_int_equal(mkdir(dirs[i], 0700), 0);
    conf_reset();
    conf_override("myhostname", "kite.test");
    conf_override("mydestination", "kite.test");
    conf_override("inet_interfaces", "127.0.0.1");
    conf_override("default_transport", "testagent");
    conf_override("minimal_backoff_time", "10s");
    conf_override("maximal_backoff_time", "100s");
    conf_override("hash_queue_depth", "1");
    assert_int_equal(conf_load("/nonexistent/kite-test-confdir"), 0);
    resolve_init();
    vbuf_reset(&logbuf);
    qmgr_active_count = 0;
    return 0;
}

/* reconfigure - one more override on top of setup's */
static void reconfigure(const char *name, const char *value)
{
    conf_override(name, value);
    assert_int_equal(conf_load("/nonexistent/kite-test-confdir"), 0);
    resolve_init();
}

/* put_message - a real queue file in incoming/; returns its ID */
static char *put_message(const char *sender, const char *const *rcpts, double arrival)
{
    static char id[QUEUE_ID_SIZE];
    const char *body = "Subject: x\r\n\r\nhello\r\n";
    char buf[64];
    vbuf err;
    qfile_writer *w;

    vbuf_init(&err, 0);
    w = qfile_create("incoming", &err);
    assert_non_null(w);
    snprintf(buf, sizeof(buf), "%.6f", arrival);
    assert_int_equal(qfile_put_attr(w, "arrival", buf), 0);
    assert_int_equal(qfile_put_attr(w, "sender", sender), 0);
    for (size_t i = 0; rcpts[i]; i++)
        assert_int_equal(qfile_put_rcpt(w, rcpts[i], NULL, NULL, 0), 0);
    assert_int_equal(qfile_put_content(w, body, strlen(body)), 0);
    snprintf(id, sizeof(id), "%s", qfile_writer_id(w));
    assert_int_equal(qfile_finish(w, &err), 0);
    vbuf_release(&err);
    return id;
}

/* in_queue - does queue/ID exist? */
static int in_queue(const char *queue, const char *id)
{
    vbuf path;
    struct stat st;
    int ret;

    vbuf_init(&path, 0);
    mail_queue_path(&path, queue, id);
    ret = stat(vbuf_str(&path), &st) == 0;
    vbuf_release(&path);
    return ret;
}

/* mtime_of - the file's mtime */
static time_t mtime_of(const char *queue, const char *id)
{
    vbuf path;
    struct stat st;

    vbuf_init(&path, 0);
    mail_queue_path(&path, queue, id);
    assert_int_equal(stat(vbuf_str(&path), &st), 0);
    vbuf_release(&path);
    return st.st_mtime;
}

/* log_has - a log line containing text */
static int log_has(const char *text)
{
    return strstr(vbuf_str(&logbuf), text) != NULL;
}

/* test_load_logs_and_routes - queue active line, recipients at their destination */
static void test_load_logs_and_routes(void **state)
{
    const char *rcpts[] = {"a@one.test", "b@one.test", "c@other.test", NULL};
    char *id = put_message("s@example.org", rcpts, (double) time(NULL));
    qmgr_message *m;
    char line[200];

    (void) state;
    m = qmgr_message_load("incoming", id);
    assert_non_null(m);
    snprintf(line, sizeof(line), "%s: from=<s@example.org>, size=21, nrcpt=3 (queue active)", id);
    assert_true(log_has(line));
    assert_true(in_queue("active", id));
    assert_false(in_queue("incoming", id));
    assert_int_equal(m->nrcpt, 3);
    assert_string_equal(m->rcpts[0].dest->transport, "testagent");
    assert_string_equal(m->rcpts[0].dest->nexthop, "one.test");
    assert_ptr_equal(m->rcpts[0].dest, m->rcpts[1].dest);
    assert_string_equal(m->rcpts[2].dest->nexthop, "other.test");
    assert_ptr_equal(qmgr_message_find(id), m);
    assert_int_equal(qmgr_active_count, 1);
    qmgr_schedule(); /* no agent: deferred, out of the way */
    assert_int_equal(qmgr_active_count, 0);
}

/* test_unavailable_transport_defers_with_backoff - no agent: deferred, mtime in the future */
static void test_unavailable_transport_defers_with_backoff(void **state)
{
    const char *rcpts[] = {"a@example.com", "b@example.com", NULL};
    char *id = put_message("s@example.org", rcpts, (double) time(NULL));
    bounce_log_entry *entries;
    time_t before = time(NULL);
    int n;

    (void) state;
    assert_non_null(qmgr_message_load("incoming", id));
    qmgr_schedule();
    assert_true(in_queue("deferred", id));
    assert_false(in_queue("active", id));
    assert_null(qmgr_message_find(id));
    assert_int_equal(qmgr_active_count, 0);
    /* minimal_backoff_time for a new message */
    assert_true(mtime_of("deferred", id) >= before + 10 && mtime_of("deferred", id) <= time(NULL) + 10);
    assert_true(log_has("to=<a@example.com>, relay=none"));
    assert_true(log_has("dsn=4.3.0, status=deferred (mail transport testagent unavailable)"));
    n = bounce_log_read("defer", id, &entries);
    assert_int_equal(n, 2);
    assert_string_equal(entries[0].result.dsn, "4.3.0");
    bounce_log_free(entries, (size_t) n);

    /* the destination is suspended: new mail for it waits without a connection attempt */
    vbuf_reset(&logbuf);
    id = put_message("s@example.org", rcpts, (double) time(NULL));
    assert_null(qmgr_message_load("incoming", id));
    assert_true(log_has("status=deferred (delivery temporarily suspended: mail transport testagent unavailable)"));
    assert_false(log_has("connect to transport"));
    assert_true(in_queue("deferred", id));
}

/* test_backoff_grows_with_age - an older message waits longer, up to the maximum */
static void test_backoff_grows_with_age(void **state)
{
    const char *rcpts[] = {"a@backoff.test", NULL};
    char *id = put_message("s@example.org", rcpts, (double) time(NULL) - 40);
    char *id2;

    (void) state;
    assert_non_null(qmgr_message_load("incoming", id));
    qmgr_schedule();
    assert_true(mtime_of("deferred", id) >= time(NULL) + 39 && mtime_of("deferred", id) <= time(NULL) + 41);
    id2 = put_message("s@example.org", rcpts, (double) time(NULL) - 4000);
    assert_null(qmgr_message_load("incoming", id2)); /* destination suspended meanwhile */
    assert_true(mtime_of("deferred", id2) >= time(NULL) + 99 && mtime_of("deferred", id2) <= time(NULL) + 100);
}

/* test_done_recipients_are_skipped - recipients marked done stay done */
static void test_done_recipients_are_skipped(void **state)
{
    const char *rcpts[] = {"a@done.test", "b@done.test", NULL};
    char *id = put_message("s@example.org", rcpts, (double) time(NULL));
    qmgr_message *m;
    vbuf path, err;
    qfile *q;

    (void) state;
    vbuf_init(&path, 0);
    vbuf_init(&err, 0);
    mail_queue_path(&path, "incoming", id);
    q = qfile_open(vbuf_str(&path), QFILE_RDWR, &err);
    assert_non_null(q);
    assert_int_equal(qfile_mark_done(q, 0, 1), 0);
    qfile_close(q);
    m = qmgr_message_load("incoming", id);
    assert_non_null(m);
    assert_int_equal(m->nrcpt, 1);
    assert_string_equal(m->rcpts[0].dr.address, "b@done.test");
    assert_int_equal(m->rcpts[0].dr.index, 1);
    assert_true(log_has("nrcpt=2 (queue active)"));
    qmgr_schedule();
    assert_false(log_has("to=<a@done.test>"));
    assert_true(log_has("to=<b@done.test>"));
    vbuf_release(&path);
    vbuf_release(&err);
}

/* test_finished_message_is_removed - nothing left to do: removed with the next batch */
static void test_finished_message_is_removed(void **state)
{
    const char *rcpts[] = {"a@fin.test", NULL};
    char *id = put_message("s@example.org", rcpts, (double) time(NULL));
    vbuf path, err;
    qfile *q;
    char line[64];

    (void) state;
    vbuf_init(&path, 0);
    vbuf_init(&err, 0);
    mail_queue_path(&path, "incoming", id);
    q = qfile_open(vbuf_str(&path), QFILE_RDWR, &err);
    assert_int_equal(qfile_mark_done(q, 0, 1), 0);
    qfile_close(q);
    assert_null(qmgr_message_load("incoming", id));
    snprintf(line, sizeof(line), "%s: removed", id);
    /* Pending: still in active/ (nothing scans it), not yet logged. */
    assert_int_equal(qmgr_remove_pending(), 1);
    assert_false(log_has(line));
    assert_true(in_queue("active", id));
    qmgr_remove_flush();
    assert_int_equal(qmgr_remove_pending(), 0);
    assert_true(log_has(line));
    assert_false(in_queue("active", id));
    assert_false(in_queue("incoming", id));
    assert_int_equal(qmgr_active_count, 0);
    vbuf_release(&path);
    vbuf_release(&err);
}

/* finished_message - a message whose only recipient is done, in incoming/ */
static char *finished_message(void)
{
    const char *rcpts[] = {"a@fin.test", NULL};
    char *id = put_message("s@example.org", rcpts, (double) time(NULL));
    vbuf path, err;
    qfile *q;

    vbuf_init(&path, 0);
    vbuf_init(&err, 0);
    mail_queue_path(&path, "incoming", id);
    q = qfile_open(vbuf_str(&path), QFILE_RDWR, &err);
    assert_non_null(q);
    assert_int_equal(qfile_mark_done(q, 0, 0), 0);
    qfile_close(q);
    vbuf_release(&path);
    vbuf_release(&err);
    return id;
}

/* count_one - count a queue file */
static void count_one(const char *queue, const char *id, void *ctx)
{
    (void) queue;
    (void) id;
    ++*(size_t *) ctx;
}

/* now_s - a monotonic clock in seconds */
static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

/* loop_until_removed - run the event loop until nothing waits for removal; 0 after limit seconds */
static int loop_until_removed(double limit)
{
    double end = now_s() + limit;

    while (qmgr_remove_pending() > 0 && now_s() < end)
        event_loop(100);
    return qmgr_remove_pending() == 0 && !qmgr_remove_in_flight();
}

/* finish_one - a finished message loaded: its ID, now waiting for removal */
static void finish_one(char *id, size_t size)
{
    snprintf(id, size, "%s", finished_message());
    assert_null(qmgr_message_load("incoming", id));
    assert_true(in_queue("active", id));
}

/* log_pos - where a line starts in the log, or -1 */
static long log_pos(const char *line)
{
    const char *p = strstr(vbuf_str(&logbuf), line);

    return p ? (long) (p - vbuf_str(&logbuf)) : -1;
}

static int ticks;

/* tick - a timer of the event loop */
static void tick(void *ctx)
{
    (void) ctx;
    ticks++;
}

/*
 * test_sync_in_flight_does_not_block_the_loop - while the worker's sync is
 * in flight (slowed down by KITE_SYNC_DELAY_MS), timers run and a newly
 * finished message waits for the next batch; the first batch is retired on
 * completion, then the next one starts.
 */
static void test_sync_in_flight_does_not_block_the_loop(void **state)
{
    char a[QUEUE_ID_SIZE], b[QUEUE_ID_SIZE], la[64], lb[64];
    double t0;

    (void) state;
    assert_int_equal(setenv("KITE_SYNC_DELAY_MS", "700", 1), 0);
    finish_one(a, sizeof(a));
    snprintf(la, sizeof(la), "%s: removed", a);
    qmgr_remove_soon();
    assert_true(qmgr_remove_in_flight());
    t0 = now_s();
    ticks = 0;
    event_timer_set(tick, NULL, 0);
    event_loop(1000);
    /* The loop came back for the timer long before the sync could finish. */
    assert_int_equal(ticks, 1);
    assert_true(now_s() - t0 < 0.5);
    assert_true(qmgr_remove_in_flight());
    finish_one(b, sizeof(b));
    snprintf(lb, sizeof(lb), "%s: removed", b);
    assert_int_equal(qmgr_remove_pending(), 2);
    /* One sync at a time: b does not start a second one. */
    qmgr_remove_soon();
    assert_false(log_has(la));
    assert_true(in_queue("active", a));
    assert_true(loop_until_removed(10.0));
    assert_true(now_s() - t0 >= 1.3); /* two syncs of 0.7 s, one after the other */
    assert_true(log_pos(la) >= 0 && log_pos(lb) > log_pos(la));
    assert_false(in_queue("active", a));
    assert_false(in_queue("active", b));
    assert_int_equal(unsetenv("KITE_SYNC_DELAY_MS"), 0);
}

/* test_flush_waits_for_the_sync_in_flight - the exit path: in flight and pending are all removed */
static void test_flush_waits_for_the_sync_in_flight(void **state)
{
    char a[QUEUE_ID_SIZE], b[QUEUE_ID_SIZE], line[64];
    double t0;

    (void) state;
    assert_int_equal(setenv("KITE_SYNC_DELAY_MS", "300", 1), 0);
    finish_one(a, sizeof(a));
    qmgr_remove_soon();
    assert_true(qmgr_remove_in_flight());
    finish_one(b, sizeof(b));
    t0 = now_s();
    qmgr_remove_flush();
    assert_true(now_s() - t0 >= 0.55);
    assert_false(qmgr_remove_in_flight());
    assert_int_equal(qmgr_remove_pending(), 0);
    snprintf(line, sizeof(line), "%s: removed", a);
    assert_true(log_has(line));
    snprintf(line, sizeof(line), "%s: removed", b);
    assert_true(log_has(line));
    assert_false(in_queue("active", a));
    assert_false(in_queue("active", b));
    assert_int_equal(unsetenv("KITE_SYNC_DELAY_MS"), 0);
}

/* test_failed_syncfs_syncs_each_file - the fallback: each file synced on its own, then removed */
static void test_failed_syncfs_syncs_each_file(void **state)
{
    char a[QUEUE_ID_SIZE], line[64];

    (void) state;
    assert_int_equal(setenv("KITE_FAULT_SYNCFS", "1", 1), 0);
    finish_one(a, sizeof(a));
    qmgr_remove_soon();
    assert_true(loop_until_removed(10.0));
    assert_true(log_has("syncfs active: Input/output error; syncing each finished file instead"));
    snprintf(line, sizeof(line), "%s: removed", a);
    assert_true(log_has(line));
    assert_false(in_queue("active", a));
    assert_int_equal(unsetenv("KITE_FAULT_SYNCFS"), 0);
}

/* test_full_batch_is_removed_at_once - the batch bound flushes without waiting for the timer */
static void test_full_batch_is_removed_at_once(void **state)
{
    char first[QUEUE_ID_SIZE], line[64];
    size_t left = 0;
    deliver_rcpt dr = {.index = 0, .address = "a@fin.test"};
    deliver_result res = {.index = 0,
                          .status = DELIVER_DEFER,
                          .dsn = "4.0.0",
                          .action = "delayed",
                          .reason = "earlier round",
                          .relay = "none"};

    (void) state;
    snprintf(first, sizeof(first), "%s", finished_message());
    /* A defer log from an earlier round goes with the file, as before. */
    assert_int_equal(bounce_log_append("defer", first, &dr, &res), 0);
    assert_true(in_queue("defer", first));
    assert_null(qmgr_message_load("incoming", first));
    for (size_t i = 1; i < QMGR_REMOVE_BATCH; i++) {
        assert_int_equal(qmgr_remove_pending(), i);
        assert_false(qmgr_remove_in_flight());
        assert_null(qmgr_message_load("incoming", finished_message()));
    }
    /* The full batch went to the sync thread at once; the loop retires it on completion. */
    assert_true(qmgr_remove_in_flight());
    assert_int_equal(qmgr_remove_pending(), QMGR_REMOVE_BATCH);
    snprintf(line, sizeof(line), "%s: removed", first);
    assert_false(log_has(line));
    assert_true(loop_until_removed(10.0));
    assert_true(log_has(line));
    assert_false(in_queue("active", first));
    assert_false(in_queue("defer", first));
    assert_int_equal(mail_queue_scan("active", count_one, &left), 0);
    assert_int_equal(left, 0);
}

/* test_corrupt_file_moved_aside - garbage goes to corrupt/ with a warning */
static void test_corrupt_file_moved_aside(void **state)
{
    const char *id = "0TP8ZNX783B0055KK1";
    FILE *fp = fopen("incoming/0TP8ZNX783B0055KK1", "w");

    (void) state;
    assert_non_null(fp);
    fputs("not a queue file", fp);
    fclose(fp);
    assert_null(qmgr_message_load("incoming", id));
    assert_true(in_queue("corrupt", id));
    assert_true(log_has("0TP8ZNX783B0055KK1: corrupt queue file"));
    assert_int_equal(qmgr_active_count, 0);
}

/* test_vanished_file_is_ignored - a file gone before the move is no error */
static void test_vanished_file_is_ignored(void **state)
{
    (void) state;
    assert_null(qmgr_message_load("incoming", "0TP8ZNX783B0055ZZZ"));
    assert_int_equal(qmgr_active_count, 0);
    assert_int_equal(VBUF_LEN(&logbuf), 0);
}

/* test_expired_message_bounces_with_5_4_7 - past maximal_queue_lifetime */
static void test_expired_message_bounces_with_5_4_7(void **state)
{
    const char *rcpts[] = {"a@expire.test", NULL};
    char *id;
    bounce_log_entry *entries;
    int n;

    (void) state;
    reconfigure("maximal_queue_lifetime", "100s");
    id = put_message("s@example.org", rcpts, (double) time(NULL) - 1000);
    assert_non_null(qmgr_message_load("incoming", id));
    qmgr_schedule();
    n = bounce_log_read("bounce", id, &entries);
    assert_int_equal(n, 1);
    assert_string_equal(entries[0].result.dsn, "5.4.7");
    assert_non_null(strstr(entries[0].result.reason, "message expired"));
    bounce_log_free(entries, (size_t) n);
    assert_true(log_has("from=<s@example.org>, status=expired, returned to sender"));
    /* no bounce service here: the notice is owed, so the message is kept */
    assert_true(in_queue("deferred", id));
    assert_true(log_has("bounce notice request failed"));
}

/* test_error_transport_bounces_and_marks_done - Postfix's error: pseudo transport */
static void test_error_transport_bounces_and_marks_done(void **state)
{
    const char *rcpts[] = {"a@example.com", NULL};
    char *id;
    vbuf path, err;
    qfile *q;

    (void) state;
    reconfigure("default_transport", "error:remote mail disabled");
    id = put_message("s@example.org", rcpts, (double) time(NULL));
    assert_null(qmgr_message_load("incoming", id));
    assert_true(log_has("dsn=5.0.0, status=bounced (remote mail disabled)"));
    assert_true(in_queue("bounce", id));
    assert_true(in_queue("deferred", id)); /* notice still owed */
    vbuf_init(&path, 0);
    vbuf_init(&err, 0);
    mail_queue_path(&path, "deferred", id);
    q = qfile_open(vbuf_str(&path), 0, &err);
    assert_non_null(q);
    assert_int_equal(q->rcpts[0].done, 1);
    qfile_close(q);
    vbuf_release(&path);
    vbuf_release(&err);
}

/* test_delay_warning_time_kept_in_file - the 'W' slot gets arrival + delay_warning_time */
static void test_delay_warning_time_kept_in_file(void **state)
{
    const char *rcpts[] = {"a@warn.test", NULL};
    time_t now = time(NULL);
    char *id;
    vbuf path, err;
    qfile *q;

    (void) state;
    reconfigure("delay_warning_time", "4h");
    id = put_message("s@example.org", rcpts, (double) now);
    assert_non_null(qmgr_message_load("incoming", id));
    vbuf_init(&path, 0);
    vbuf_init(&err, 0);
    mail_queue_path(&path, "active", id);
    q = qfile_open(vbuf_str(&path), 0, &err);
    assert_non_null(q);
    assert_int_equal(q->warn_time, (long long) now + 4 * 3600);
    qfile_close(q);
    vbuf_release(&path);
    vbuf_release(&err);
    qmgr_schedule();
}

/* test_flush_site_matching - pending recipients by domain or next hop */
static void test_flush_site_matching(void **state)
{
    const char *rcpts[] = {"a@example.com", "b@Other.Test", NULL};
    char *id = put_message("s@example.org", rcpts, (double) time(NULL));
    vbuf path, err;
    qfile *q;

    (void) state;
    vbuf_init(&path, 0);
    vbuf_init(&err, 0);
    mail_queue_path(&path, "incoming", id);
    q = qfile_open(vbuf_str(&path), QFILE_RDWR, &err);
    assert_non_null(q);
    assert_true(qmgr_message_has_site(q, "example.com", 0));
    assert_true(qmgr_message_has_site(q, "other.test", 0));
    assert_false(qmgr_message_has_site(q, "example.org", 0));
    assert_int_equal(qfile_mark_done(q, 0, 1), 0);
    assert_false(qmgr_message_has_site(q, "example.com", 0)); /* done recipients don't count */
    qfile_close(q);
    vbuf_release(&path);
    vbuf_release(&err);
}

/* Plain ETRN domain vs @domain (RFC 1985 §5): one destination, or its subdomains too. */
static const struct {
    const char *domain, *site;
    int subdomains, want;
} site_cases[] = {
    {"example.com", "example.com", 0, 1},
    {"EXAMPLE.com", "example.COM", 0, 1},
    {"sub.example.com", "example.com", 0, 0},
    {"sub.example.com", "example.com", 1, 1},
    {"a.b.example.com", "example.com", 1, 1},
    {"example.com", "example.com", 1, 1},
    {"badexample.com", "example.com", 1, 0},
    {"example.com", "sub.example.com", 1, 0},
    {"example.com.evil.test", "example.com", 1, 0},
    {"", "example.com", 1, 0},
    {"x.example.com", "", 1, 0},
    {"[192.0.2.1]", "[192.0.2.1]", 0, 1},
    {"[192.0.2.1]", "2.1]", 1, 0},
};

/* test_site_match_plain_and_subdomains - the table above */
static void test_site_match_plain_and_subdomains(void **state)
{
    (void) state;
    for (size_t i = 0; i < sizeof(site_cases) / sizeof(site_cases[0]); i++) {
        int got = qmgr_site_match(site_cases[i].domain, site_cases[i].site, site_cases[i].subdomains);

        if (got != site_cases[i].want)
            fail_msg("case %zu: %s vs %s%s: got %d", i, site_cases[i].domain, site_cases[i].subdomains ? "@" : "",
                     site_cases[i].site, got);
    }
}

/* test_flush_site_subdomains_only_with_the_flag - a message for sub.example.com */
static void test_flush_site_subdomains_only_with_the_flag(void **state)
{
    const char *rcpts[] = {"a@mx.sub.example.com", NULL};
    char *id = put_message("s@example.org", rcpts, (double) time(NULL));
    vbuf path, err;
    qfile *q;

    (void) state;
    vbuf_init(&path, 0);
    vbuf_init(&err, 0);
    mail_queue_path(&path, "incoming", id);
    q = qfile_open(vbuf_str(&path), QFILE_RDWR, &err);
    assert_non_null(q);
    assert_false(qmgr_message_has_site(q, "example.com", 0));
    assert_false(qmgr_message_has_site(q, "sub.example.com", 0));
    assert_true(qmgr_message_has_site(q, "mx.sub.example.com", 0));
    assert_true(qmgr_message_has_site(q, "example.com", QMGR_SITE_SUBDOMAINS));
    assert_true(qmgr_message_has_site(q, "sub.example.com", QMGR_SITE_SUBDOMAINS | QMGR_SITE_REVIVE));
    assert_false(qmgr_message_has_site(q, "ample.com", QMGR_SITE_SUBDOMAINS));
    assert_false(qmgr_message_has_site(q, "other.example.com", QMGR_SITE_SUBDOMAINS));
    qfile_close(q);
    vbuf_release(&path);
    vbuf_release(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_load_logs_and_routes, setup),
        cmocka_unit_test_setup(test_unavailable_transport_defers_with_backoff, setup),
        cmocka_unit_test_setup(test_backoff_grows_with_age, setup),
        cmocka_unit_test_setup(test_done_recipients_are_skipped, setup),
        cmocka_unit_test_setup(test_finished_message_is_removed, setup),
        cmocka_unit_test_setup(test_full_batch_is_removed_at_once, setup),
        cmocka_unit_test_setup(test_sync_in_flight_does_not_block_the_loop, setup),
        cmocka_unit_test_setup(test_flush_waits_for_the_sync_in_flight, setup),
        cmocka_unit_test_setup(test_failed_syncfs_syncs_each_file, setup),
        cmocka_unit_test_setup(test_corrupt_file_moved_aside, setup),
        cmocka_unit_test_setup(test_vanished_file_is_ignored, setup),
        cmocka_unit_test_setup(test_expired_message_bounces_with_5_4_7, setup),
        cmocka_unit_test_setup(test_error_transport_bounces_and_marks_done, setup),
        cmocka_unit_test_setup(test_delay_warning_time_kept_in_file, setup),
        cmocka_unit_test_setup(test_flush_site_matching, setup),
        cmocka_unit_test(test_site_match_plain_and_subdomains),
        cmocka_unit_test_setup(test_flush_site_subdomains_only_with_the_flag, setup),
    };
    int ret;

    vbuf_init(&logbuf, 0);
    msg_set_capture(capture);
    msg_stderr(0);
    if (mkdtemp(topdir) == NULL)
        return 1;
    ret = cmocka_run_group_tests(tests, NULL, NULL);
    if (chdir("/") == 0) {
        char *argv[] = {"rm", "-rf", topdir, NULL};
        pid_t pid = fork();

        if (pid == 0) {
            execve("/bin/rm", argv, (char *[]){NULL});
            _exit(127);
        }
        if (pid > 0)
            (void) waitpid(pid, NULL, 0);
    }
    return ret;
}
