/*
 * Unit tests for deliver_mark_done (lib/deliver_mark.c): a delivery agent
 * marks the recipients it delivered for good done in the queue file, without
 * a sync (qmgr syncs before removal), before it reports. Pins down which
 * results are marked, that a request or result naming a recipient of
 * another message, an index outside the file or a queue other than active/
 * marks nothing, and the crash
 * points (KITE_FAULT_MARKS): a crash leaves every recipient either pending
 * or done, never a mark without its delivery.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "deliver.h"
#include "mail_queue.h"
#include "msg.h"
#include "mymalloc.h"
#include "qfile.h"
#include "vbuf.h"

static char test_dir[256];
static char qid[QUEUE_ID_SIZE];  /* the test message in active/ */
static char qid2[QUEUE_ID_SIZE]; /* another message in active/ */
static int warn_count;

/* capture - count warnings */
static void capture(enum msg_level level, const char *text)
{
    (void) text;
    if (level == MSG_WARN)
        warn_count++;
}

/* make_message - a message in active/ with recipients ann, bob (NOTIFY=SUCCESS), cat, dan */
static void make_message(char *id, const char *first)
{
    vbuf err;
    qfile_writer *w;

    vbuf_init(&err, 0);
    w = qfile_create("active", &err);
    assert_non_null(w);
    snprintf(id, QUEUE_ID_SIZE, "%s", qfile_writer_id(w));
    assert_int_equal(qfile_put_attr(w, "arrival", "1700000000.5"), 0);
    assert_int_equal(qfile_put_attr(w, "sender", "alice@example.com"), 0);
    assert_int_equal(qfile_put_rcpt(w, first, NULL, NULL, 0), 0);
    assert_int_equal(qfile_put_rcpt(w, "bob@example.com", NULL, NULL, QF_NOTIFY_SUCCESS), 0);
    assert_int_equal(qfile_put_content(w, "Subject: t\r\n\r\nbody\r\n", 21), 0);
    assert_int_equal(qfile_put_rcpt(w, "cat@example.com", NULL, NULL, 0), 0);
    assert_int_equal(qfile_put_rcpt(w, "dan@example.com", NULL, NULL, 0), 0);
    assert_int_equal(qfile_finish(w, &err), 0);
    vbuf_release(&err);
}

static int setup(void **state)
{
    (void) state;
    msg_set_capture(capture);
    msg_stderr(0);
    warn_count = 0;
    unsetenv("KITE_FAULT_MARKS");
    snprintf(test_dir, sizeof(test_dir), "/tmp/test_deliver_mark.XXXXXX");
    assert_non_null(mkdtemp(test_dir));
    assert_int_equal(chdir(test_dir), 0);
    assert_int_equal(mkdir("active", 0700), 0);
    assert_int_equal(mkdir("incoming", 0700), 0);
    make_message(qid, "ann@example.com");
    /* Unique IDs need distinct creation times or inodes: both differ here. */
    make_message(qid2, "zed@example.com");
    return 0;
}

/* remove_tree - rm -r dir */
static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512];

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        struct stat st;

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(path);
        else
            (void) unlink(path);
    }
    closedir(d);
    (void) rmdir(dir);
}

static int teardown(void **state)
{
    (void) state;
    assert_int_equal(chdir("/"), 0);
    remove_tree(test_dir);
    return 0;
}

/* done_mask - bit i set when recipient i of active/ID is done in the file */
static unsigned done_mask(const char *id)
{
    vbuf path, err;
    qfile *q;
    unsigned mask = 0;

    vbuf_init(&path, 0);
    vbuf_init(&err, 0);
    vbuf_printf(&path, "active/%s", id);
    q = qfile_open(path.data, 0, &err);
    assert_non_null(q);
    for (size_t i = 0; i < q->nrcpt; i++)
        if (q->rcpts[i].done)
            mask |= 1u << i;
    qfile_close(q);
    vbuf_release(&path);
    vbuf_release(&err);
    return mask;
}

static deliver_rcpt rcpts[] = {
    {0, "ann@example.com", NULL, NULL, 0},
    {1, "bob@example.com", NULL, NULL, QF_NOTIFY_SUCCESS},
    {2, "cat@example.com", NULL, NULL, 0},
    {3, "dan@example.com", NULL, NULL, 0},
};

/* request - a request for active/ID with the sample recipients */
static deliver_request request(const char *id)
{
    deliver_request r;

    memset(&r, 0, sizeof(r));
    r.queue_name = "active";
    r.queue_id = (char *) id;
    r.transport = "local";
    r.nexthop = "example.com";
    r.sender = "alice@example.com";
    r.rcpts = rcpts;
    r.nrcpt = 4;
    return r;
}

/* result - a result for recipient index with a status */
static deliver_result result(long index, int status)
{
    deliver_result r;

    memset(&r, 0, sizeof(r));
    r.index = index;
    r.status = status;
    snprintf(r.dsn, sizeof(r.dsn), "%s", status == DELIVER_OK ? "2.0.0" : status == DELIVER_DEFER ? "4.0.0" : "5.0.0");
    r.marked = 1; /* must be cleared where nothing was marked */
    return r;
}

static void test_mark_done_marks_only_delivered_recipients(void **state)
{
    deliver_request req = request(qid);
    deliver_result res[3] = {result(0, DELIVER_OK), result(2, DELIVER_DEFER), result(3, DELIVER_BOUNCE)};

    (void) state;
    assert_int_equal(deliver_mark_done(NULL, &req, res, 3), 1);
    assert_int_equal(res[0].marked, 1);
    assert_int_equal(res[1].marked, 0);
    assert_int_equal(res[2].marked, 0);
    assert_int_equal(done_mask(qid), 1u << 0);
    assert_int_equal(done_mask(qid2), 0);
}

static void test_mark_done_several_at_once_with_an_open_file(void **state)
{
    deliver_request req = request(qid);
    deliver_result res[3] = {result(3, DELIVER_OK), result(0, DELIVER_OK), result(2, DELIVER_OK)};
    vbuf path, err;
    qfile *q;

    (void) state;
    vbuf_init(&path, 0);
    vbuf_init(&err, 0);
    vbuf_printf(&path, "active/%s", qid);
    q = qfile_open(path.data, QFILE_RDWR, &err);
    assert_non_null(q);
    assert_int_equal(deliver_mark_done(q, &req, res, 3), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(res[i].marked, 1);
    assert_int_equal(done_mask(qid), (1u << 0) | (1u << 2) | (1u << 3));
    /* Again: already done, nothing written, nothing claimed. */
    assert_int_equal(deliver_mark_done(q, &req, res, 3), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(res[i].marked, 0);
    qfile_close(q);
    vbuf_release(&path);
    vbuf_release(&err);
}

/* Results that need a record from qmgr first are left to qmgr. */
static void test_mark_done_leaves_records_owed_to_qmgr(void **state)
{
    deliver_request req = request(qid);
    deliver_result res[2] = {result(1, DELIVER_OK), result(2, DELIVER_OK)};

    (void) state;
    res[1].relayed_no_dsn = 1;                                  /* needs a trace record */
    assert_int_equal(deliver_mark_done(NULL, &req, res, 2), 0); /* bob: NOTIFY=SUCCESS */
    assert_int_equal(res[0].marked, 0);
    assert_int_equal(res[1].marked, 0);
    /* A verify probe marks nothing at all. */
    req.flags = DELIVER_FLAG_VERIFY;
    res[1] = result(2, DELIVER_OK);
    assert_int_equal(deliver_mark_done(NULL, &req, &res[1], 1), 0);
    assert_int_equal(res[1].marked, 0);
    assert_int_equal(done_mask(qid), 0);
}

typedef struct hostile_case {
    const char *name;
    const char *queue_name;
    int which_id;            /* 0: qid, 1: qid2, 2: bad text, 3: missing */
    long req_index;          /* the request's index for rcpt 0 */
    const char *req_address; /* the request's address for rcpt 0 */
    long res_index;          /* the result's index */
    int ret;                 /* expected return */
} hostile_case;

static const hostile_case hostile[] = {
    {"result for a recipient not in the request", "active", 0, 0, "ann@example.com", 2, 0},
    {"index past the file's recipients", "active", 0, 4, "ann@example.com", 4, 0},
    {"index far outside the file", "active", 0, 99999999, "ann@example.com", 99999999, 0},
    {"recipient of another message (address differs)", "active", 0, 0, "zed@example.com", 0, 0},
    {"another message's ID with this one's recipients", "active", 1, 0, "ann@example.com", 0, 0},
    {"queue other than active", "incoming", 0, 0, "ann@example.com", 0, -1},
    {"queue ID with a path", "active", 2, 0, "ann@example.com", 0, -1},
    {"queue file that does not exist", "active", 3, 0, "ann@example.com", 0, -1},
};

static void test_mark_done_refuses_what_is_not_this_requests(void **state)
{
    (void) state;
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        const hostile_case *c = &hostile[i];
        deliver_rcpt r[1] = {{c->req_index, (char *) c->req_address, NULL, NULL, 0}};
        deliver_request req = request(qid);
        deliver_result res = result(c->res_index, DELIVER_OK);

        req.queue_name = (char *) c->queue_name;
        req.queue_id = c->which_id == 0   ? qid
                       : c->which_id == 1 ? qid2
                       : c->which_id == 2 ? "../active/x"
                                          : "AAAAAAAAAAAAAAAAAA";
        req.rcpts = r;
        req.nrcpt = 1;
        if (deliver_mark_done(NULL, &req, &res, 1) != c->ret)
            fail_msg("unexpected return: %s", c->name);
        if (res.marked)
            fail_msg("claimed a mark: %s", c->name);
        if (done_mask(qid) != 0 || done_mask(qid2) != 0)
            fail_msg("file changed: %s", c->name);
    }
}

/* The queue file handed in must be the request's. */
static void test_mark_done_refuses_a_file_of_another_message(void **state)
{
    deliver_request req = request(qid);
    deliver_result res = result(0, DELIVER_OK);
    vbuf path, err;
    qfile *q;

    (void) state;
    vbuf_init(&path, 0);
    vbuf_init(&err, 0);
    vbuf_printf(&path, "active/%s", qid2);
    q = qfile_open(path.data, QFILE_RDWR, &err);
    assert_non_null(q);
    warn_count = 0;
    assert_int_equal(deliver_mark_done(q, &req, &res, 1), -1);
    assert_int_equal(res.marked, 0);
    assert_true(warn_count > 0);
    qfile_close(q);
    assert_int_equal(done_mask(qid), 0);
    assert_int_equal(done_mask(qid2), 0);
    vbuf_release(&path);
    vbuf_release(&err);
}

/* mark_in_child - deliver_mark_done for ann and dan with KITE_FAULT_MARKS=spec; 1 if it aborted */
static int mark_in_child(const char *spec)
{
    pid_t pid = fork();
    int status;

    assert_true(pid >= 0);
    if (pid == 0) {
        deliver_request req = request(qid);
        deliver_result res[2] = {result(0, DELIVER_OK), result(3, DELIVER_OK)};

        msg_init("kite/local");
        msg_stderr(0);
        setenv("KITE_FAULT_MARKS", spec, 1);
        _exit(deliver_mark_done(NULL, &req, res, 2) == 2 && res[0].marked && res[1].marked ? 0 : 3);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status)) {
        assert_int_equal(WTERMSIG(status), SIGABRT);
        return 1;
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    return 0;
}

/* reset_marks - put ann and dan back to pending (a fresh copy of the message) */
static void reset_marks(void)
{
    vbuf path, err;
    qfile *q;

    vbuf_init(&path, 0);
    vbuf_init(&err, 0);
    vbuf_printf(&path, "active/%s", qid);
    q = qfile_open(path.data, QFILE_RDWR, &err);
    assert_non_null(q);
    for (size_t i = 0; i < q->nrcpt; i++)
        assert_int_equal(pwrite(q->fd, "-", 1, q->rcpts[i].slot), 1);
    qfile_close(q);
    vbuf_release(&path);
    vbuf_release(&err);
}

static void test_mark_done_crash_points(void **state)
{
    /* Steps: write ann, write dan; no sync step (qmgr syncs); then the process finishes. */
    static const struct {
        const char *spec;
        int aborts;
        unsigned mask;
    } rows[] = {
        {"0", 1, 0},
        {"1", 1, 1u << 0},
        {"2", 0, (1u << 0) | (1u << 3)}, /* past the last step: no sync to crash in */
        {"3", 0, (1u << 0) | (1u << 3)},
        {"local:0", 1, 0},                    /* the program named: on */
        {"smtp:0", 0, (1u << 0) | (1u << 3)}, /* another program: off */
        {"junk", 0, (1u << 0) | (1u << 3)},
    };

    (void) state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        reset_marks();
        if (mark_in_child(rows[i].spec) != rows[i].aborts)
            fail_msg("KITE_FAULT_MARKS=%s: abort expected %d", rows[i].spec, rows[i].aborts);
        if (done_mask(qid) != rows[i].mask)
            fail_msg("KITE_FAULT_MARKS=%s: marks %x, expected %x", rows[i].spec, done_mask(qid), rows[i].mask);
    }
}

/* has_attr - does the list carry an attribute of that name? */
static int has_attr(const attr_list *l, const char *want)
{
    for (size_t i = 0; i < attr_count(l); i++) {
        const char *name;
        const void *v;
        size_t len;

        (void) attr_nth(l, i, &name, &v, &len);
        if (strcmp(name, want) == 0)
            return 1;
    }
    return 0;
}

/* The wire: marked travels with a delivered result only. */
static void test_marked_result_round_trip_and_refusals(void **state)
{
    static const struct {
        long long status, marked;
        int ok;
    } rows[] = {
        {DELIVER_OK, 1, 1},     {DELIVER_OK, 0, 1}, {DELIVER_DEFER, 1, 0},
        {DELIVER_BOUNCE, 1, 0}, {DELIVER_OK, 2, 0}, {DELIVER_OK, -1, 0},
    };

    (void) state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        attr_list *l = attr_new();
        deliver_result out;

        attr_put_str(l, "request", "result");
        attr_put_int(l, "index", 1);
        attr_put_int(l, "status", rows[i].status);
        attr_put_str(l, "dsn", rows[i].status == DELIVER_OK ? "2.0.0" : "4.0.0");
        attr_put_str(l, "action", rows[i].status == DELIVER_OK ? "delivered" : "delayed");
        attr_put_str(l, "reason", "r");
        attr_put_int(l, "relayed_no_dsn", 0);
        attr_put_int(l, "marked", rows[i].marked);
        if (rows[i].ok) {
            assert_int_equal(deliver_result_decode(l, &out), 1);
            assert_int_equal(out.marked, rows[i].marked);
            deliver_result_free(&out);
        } else {
            assert_int_equal(deliver_result_decode(l, &out), -1);
        }
        attr_free(l);
    }
    /* Encoding: present only when set; decoding without it means not marked. */
    {
        deliver_result in = result(5, DELIVER_OK), out;
        attr_list *l = attr_new();

        in.marked = 0;
        deliver_result_encode(&in, l);
        assert_false(has_attr(l, "marked"));
        assert_int_equal(deliver_result_decode(l, &out), 1);
        assert_int_equal(out.marked, 0);
        deliver_result_free(&out);
        in.marked = 1;
        deliver_result_encode(&in, l);
        assert_int_equal(deliver_result_decode(l, &out), 1);
        assert_int_equal(out.marked, 1);
        deliver_result_free(&out);
        attr_free(l);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mark_done_marks_only_delivered_recipients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mark_done_several_at_once_with_an_open_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mark_done_leaves_records_owed_to_qmgr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mark_done_refuses_what_is_not_this_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mark_done_refuses_a_file_of_another_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mark_done_crash_points, setup, teardown),
        cmocka_unit_test_setup_teardown(test_marked_result_round_trip_and_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
