/*
 * Unit tests for deliver: request and result round trips over a real
 * socketpair, the final "done" frame, hostile frames (every kind of
 * malformed, truncated or oversized input must be refused), and the exact
 * Postfix-format log line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sys/socket.h>
#include <unistd.h>

#include "attr.h"
#include "deliver.h"
#include "msg.h"
#include "stream.h"
#include "vbuf.h"

static int warn_count;
static char last_info[1024];

/* capture - count warnings, keep the last info line */
static void capture(enum msg_level level, const char *text)
{
    if (level == MSG_WARN)
        warn_count++;
    if (level == MSG_INFO)
        snprintf(last_info, sizeof(last_info), "%s", text);
}

static int setup(void **state)
{
    (void) state;
    msg_set_capture(capture);
    msg_stderr(0);
    warn_count = 0;
    last_info[0] = 0;
    return 0;
}

/* pair - a connected pair of streams */
static void pair(stream **a, stream **b)
{
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    *a = stream_open(sv[0]);
    *b = stream_open(sv[1]);
    stream_set_timeout(*a, 5);
    stream_set_timeout(*b, 5);
}

static deliver_rcpt sample_rcpts[] = {
    {3, "alice@example.com", "rfc822;alice@example.com", "Alice@Example.com", 6},
    {7, "bob@example.com", NULL, NULL, 0},
};

/* sample_request - a request with every field set */
static deliver_request sample_request(void)
{
    deliver_request r = {
        .queue_name = "active",
        .queue_id = "ABCDEF0123456789AB",
        .transport = "smtp",
        .nexthop = "[192.0.2.1]:2525",
        .sender = "sender@example.org",
        .envid = "env-1",
        .ret = DELIVER_RET_HDRS,
        .body = DELIVER_BODY_8BITMIME,
        .smtputf8 = 1,
        .size = 12345,
        .arrival = 1700000000.25,
        .active = 1700000001.5,
        .client_name = "client.example",
        .client_addr = "192.0.2.9",
        .flags = 0,
        .rcpts = sample_rcpts,
        .nrcpt = 2,
    };
    return r;
}

/* test_request_round_trip_keeps_every_field - write then read back */
static void test_request_round_trip_keeps_every_field(void **state)
{
    stream *a, *b;
    deliver_request in = sample_request(), out;

    (void) state;
    pair(&a, &b);
    assert_int_equal(deliver_request_write(a, &in), 0);
    assert_int_equal(deliver_request_read(b, &out), 0);
    assert_string_equal(out.queue_name, "active");
    assert_string_equal(out.queue_id, in.queue_id);
    assert_string_equal(out.transport, "smtp");
    assert_string_equal(out.nexthop, "[192.0.2.1]:2525");
    assert_string_equal(out.sender, "sender@example.org");
    assert_string_equal(out.envid, "env-1");
    assert_int_equal(out.ret, DELIVER_RET_HDRS);
    assert_int_equal(out.body, DELIVER_BODY_8BITMIME);
    assert_int_equal(out.smtputf8, 1);
    assert_int_equal(out.size, 12345);
    assert_true(out.arrival > 1700000000.24 && out.arrival < 1700000000.26);
    assert_true(out.active > 1700000001.49 && out.active < 1700000001.51);
    assert_string_equal(out.client_name, "client.example");
    assert_string_equal(out.client_addr, "192.0.2.9");
    assert_int_equal(out.nrcpt, 2);
    assert_int_equal(out.rcpts[0].index, 3);
    assert_string_equal(out.rcpts[0].address, "alice@example.com");
    assert_string_equal(out.rcpts[0].orcpt, "rfc822;alice@example.com");
    assert_string_equal(out.rcpts[0].orig, "Alice@Example.com");
    assert_int_equal(out.rcpts[0].notify, 6);
    assert_int_equal(out.rcpts[1].index, 7);
    assert_null(out.rcpts[1].orcpt);
    assert_null(out.rcpts[1].orig);
    deliver_request_free(&out);
    stream_close(a);
    stream_close(b);
}

/* test_request_with_empty_sender_and_no_options - the null sender survives */
static void test_request_with_empty_sender_and_no_options(void **state)
{
    stream *a, *b;
    deliver_request in = sample_request(), out;

    (void) state;
    in.sender = "";
    in.envid = NULL;
    in.client_name = in.client_addr = NULL;
    pair(&a, &b);
    assert_int_equal(deliver_request_write(a, &in), 0);
    assert_int_equal(deliver_request_read(b, &out), 0);
    assert_string_equal(out.sender, "");
    assert_null(out.envid);
    assert_null(out.client_name);
    deliver_request_free(&out);
    stream_close(a);
    stream_close(b);
}

/* test_results_then_done - results in order, then the final frame */
static void test_results_then_done(void **state)
{
    stream *a, *b;
    deliver_result r1 = {
        .index = 3, .status = DELIVER_OK, .dsn = "2.0.0", .reason = "delivered to maildir", .relay = "local"};
    deliver_result r2 = {.index = 7,
                         .status = DELIVER_BOUNCE,
                         .dsn = "5.1.1",
                         .action = "failed",
                         .reason = "host said: 550 no such user",
                         .relay = "mx.example.com[192.0.2.1]:25",
                         .remote_mta = "dns; mx.example.com",
                         .diag = "smtp; 550 5.1.1 no such user",
                         .relayed_no_dsn = 1};
    deliver_result got;

    (void) state;
    pair(&a, &b);
    assert_int_equal(deliver_result_write(a, &r1), 0);
    assert_int_equal(deliver_result_write(a, &r2), 0);
    assert_int_equal(deliver_done_write(a), 0);

    assert_int_equal(deliver_result_read(b, &got), 1);
    assert_int_equal(got.index, 3);
    assert_int_equal(got.status, DELIVER_OK);
    assert_string_equal(got.dsn, "2.0.0");
    assert_string_equal(got.action, "delivered"); /* implied by the status */
    assert_string_equal(got.reason, "delivered to maildir");
    assert_string_equal(got.relay, "local");
    assert_null(got.remote_mta);
    assert_null(got.diag);
    deliver_result_free(&got);

    assert_int_equal(deliver_result_read(b, &got), 1);
    assert_int_equal(got.index, 7);
    assert_int_equal(got.status, DELIVER_BOUNCE);
    assert_string_equal(got.dsn, "5.1.1");
    assert_string_equal(got.action, "failed");
    assert_string_equal(got.remote_mta, "dns; mx.example.com");
    assert_string_equal(got.diag, "smtp; 550 5.1.1 no such user");
    assert_int_equal(got.relayed_no_dsn, 1);
    deliver_result_free(&got);

    assert_int_equal(deliver_result_read(b, &got), 0);
    stream_close(a);
    assert_int_equal(deliver_result_read(b, &got), -1); /* EOF after done */
    stream_close(b);
}

/* test_result_write_refuses_bad_dsn - an agent can't send a malformed code */
static void test_result_write_refuses_bad_dsn(void **state)
{
    stream *a, *b;
    deliver_result r = {.index = 1, .status = DELIVER_OK, .dsn = "250", .reason = "x"};

    (void) state;
    pair(&a, &b);
    assert_int_equal(deliver_result_write(a, &r), -1);
    stream_close(a);
    stream_close(b);
}

/* A hostile request: a mutation of the good frame. */
typedef struct bad_request_case {
    const char *name;
    void (*mutate)(attr_list *l);
} bad_request_case;

/* rebuild - the good frame, less drop, with replace_name's value(s) replaced, plus extras */
static void rebuild(attr_list *l, const char *drop, const char *replace_name, const char *str_value,
                    long long int_value, int extra)
{
    attr_list *src = attr_new();
    deliver_request in = sample_request();

    deliver_request_encode(&in, src);
    attr_clear(l);
    for (size_t i = 0; i < attr_count(src); i++) {
        const char *name;
        const void *v;
        size_t len;
        int type = attr_nth(src, i, &name, &v, &len);

        if (drop && strcmp(name, drop) == 0)
            continue;
        if (replace_name && strcmp(name, replace_name) == 0) {
            if (str_value)
                attr_put_str(l, name, str_value);
            else
                attr_put_int(l, name, int_value);
            continue;
        }
        if (type == ATTR_TYPE_STR)
            attr_put_str(l, name, v);
        else
            attr_put_int(l, name, *(const long long *) v);
    }
    if (extra == 1)
        attr_put_str(l, "surprise", "x");
    if (extra == 2)
        attr_put_int(l, "rcpt_index", 9);
    attr_free(src);
}

static void m_wrong_request(attr_list *l)
{
    rebuild(l, NULL, "request", "result", 0, 0);
}
static void m_missing_sender(attr_list *l)
{
    rebuild(l, "sender", NULL, NULL, 0, 0);
}
static void m_unknown_attr(attr_list *l)
{
    rebuild(l, NULL, NULL, NULL, 0, 1);
}
static void m_queue_id_slash(attr_list *l)
{
    rebuild(l, NULL, "queue_id", "../../etc/passwd", 0, 0);
}
static void m_queue_name_dot(attr_list *l)
{
    rebuild(l, NULL, "queue_name", ".hidden", 0, 0);
}
static void m_transport_space(attr_list *l)
{
    rebuild(l, NULL, "transport", "sm tp", 0, 0);
}
static void m_nexthop_ctrl(attr_list *l)
{
    rebuild(l, NULL, "nexthop", "a\rb", 0, 0);
}
static void m_nexthop_empty(attr_list *l)
{
    rebuild(l, NULL, "nexthop", "", 0, 0);
}
static void m_sender_ctrl(attr_list *l)
{
    rebuild(l, NULL, "sender", "a\nRCPT TO:<x>", 0, 0);
}
static void m_ret_range(attr_list *l)
{
    rebuild(l, NULL, "ret", NULL, 9, 0);
}
static void m_body_range(attr_list *l)
{
    rebuild(l, NULL, "body", NULL, -1, 0);
}
static void m_size_negative(attr_list *l)
{
    rebuild(l, NULL, "size", NULL, -5, 0);
}
static void m_flags_unknown(attr_list *l)
{
    rebuild(l, NULL, "flags", NULL, 1 << 20, 0);
}
static void m_nrcpt_more(attr_list *l)
{
    rebuild(l, NULL, "nrcpt", NULL, 3, 0);
}
static void m_nrcpt_zero(attr_list *l)
{
    rebuild(l, NULL, "nrcpt", NULL, 0, 0);
}
static void m_rcpt_truncated(attr_list *l)
{
    rebuild(l, NULL, NULL, NULL, 0, 2);
}
static void m_rcpt_notify_range(attr_list *l)
{
    rebuild(l, NULL, "rcpt_notify", NULL, 99, 0);
}
static void m_rcpt_index_negative(attr_list *l)
{
    rebuild(l, NULL, "rcpt_index", NULL, -1, 0);
}
static void m_rcpt_index_duplicate(attr_list *l)
{
    rebuild(l, NULL, "rcpt_index", NULL, 5, 0);
}
static void m_sender_wrong_type(attr_list *l)
{
    rebuild(l, "sender", NULL, NULL, 0, 0);
    attr_put_int(l, "sender", 1);
}
static void m_rcpt_out_of_order(attr_list *l)
{
    /* move one rcpt_address to the end, after the other group */
    rebuild(l, NULL, "nrcpt", NULL, 3, 0);
    attr_put_str(l, "rcpt_address", "x@example.com");
    attr_put_str(l, "rcpt_orcpt", "");
    attr_put_str(l, "rcpt_orig", "");
    attr_put_int(l, "rcpt_index", 11);
    attr_put_int(l, "rcpt_notify", 0);
}

static const bad_request_case bad_requests[] = {
    {"wrong request name", m_wrong_request},
    {"missing sender", m_missing_sender},
    {"unknown attribute", m_unknown_attr},
    {"queue id with a slash", m_queue_id_slash},
    {"queue name with a leading dot", m_queue_name_dot},
    {"transport with a space", m_transport_space},
    {"next hop with a control character", m_nexthop_ctrl},
    {"empty next hop", m_nexthop_empty},
    {"sender with a newline", m_sender_ctrl},
    {"ret out of range", m_ret_range},
    {"body out of range", m_body_range},
    {"negative size", m_size_negative},
    {"unknown flag", m_flags_unknown},
    {"nrcpt larger than the recipients", m_nrcpt_more},
    {"nrcpt zero", m_nrcpt_zero},
    {"truncated recipient group", m_rcpt_truncated},
    {"notify out of range", m_rcpt_notify_range},
    {"negative recipient index", m_rcpt_index_negative},
    {"duplicate recipient index", m_rcpt_index_duplicate},
    {"sender of the wrong type", m_sender_wrong_type},
    {"recipient attributes out of order", m_rcpt_out_of_order},
};

/* test_hostile_requests_are_refused - every mutation is rejected and logged */
static void test_hostile_requests_are_refused(void **state)
{
    (void) state;
    for (size_t i = 0; i < sizeof(bad_requests) / sizeof(bad_requests[0]); i++) {
        attr_list *l = attr_new();
        deliver_request out;

        bad_requests[i].mutate(l);
        warn_count = 0;
        if (deliver_request_decode(l, &out) != -1)
            fail_msg("accepted: %s", bad_requests[i].name);
        if (warn_count == 0)
            fail_msg("no warning for: %s", bad_requests[i].name);
        assert_null(out.rcpts);
        attr_free(l);
    }
}

/* test_good_request_decodes - the unmutated frame passes (the table can fail) */
static void test_good_request_decodes(void **state)
{
    attr_list *l = attr_new();
    deliver_request out;

    (void) state;
    rebuild(l, NULL, NULL, NULL, 0, 0);
    assert_int_equal(deliver_request_decode(l, &out), 0);
    assert_int_equal(out.nrcpt, 2);
    deliver_request_free(&out);
    attr_free(l);
}

/* A hostile result frame. */
typedef struct bad_result_case {
    const char *name;
    const char *dsn, *action, *reason, *relay;
    long long index, status, no_dsn;
    int extra;
} bad_result_case;

static const bad_result_case bad_results[] = {
    {"dsn without dots", "250", "delivered", "ok", NULL, 1, 0, 0, 0},
    {"dsn with class 3", "3.0.0", "delivered", "ok", NULL, 1, 0, 0, 0},
    {"dsn with a long part", "2.0.0000", "delivered", "ok", NULL, 1, 0, 0, 0},
    {"dsn with trailing junk", "2.0.0 ok", "delivered", "ok", NULL, 1, 0, 0, 0},
    {"unknown action", "2.0.0", "teleported", "ok", NULL, 1, 0, 0, 0},
    {"status out of range", "2.0.0", "delivered", "ok", NULL, 1, 3, 0, 0},
    {"negative index", "2.0.0", "delivered", "ok", NULL, -1, 0, 0, 0},
    {"reason with a newline", "2.0.0", "delivered", "ok\nstatus=sent", NULL, 1, 0, 0, 0},
    {"relay with a control char", "2.0.0", "delivered", "ok", "a\x01", 1, 0, 0, 0},
    {"relayed flag out of range", "2.0.0", "delivered", "ok", NULL, 1, 0, 2, 0},
    {"unknown attribute", "2.0.0", "delivered", "ok", NULL, 1, 0, 0, 1},
    {"wrong request", "2.0.0", "delivered", "ok", NULL, 1, 0, 0, 2},
    {"done with extra attributes", "2.0.0", "delivered", "ok", NULL, 1, 0, 0, 3},
};

/* test_hostile_results_are_refused - each bad result frame decodes to -1 */
static void test_hostile_results_are_refused(void **state)
{
    (void) state;
    for (size_t i = 0; i < sizeof(bad_results) / sizeof(bad_results[0]); i++) {
        const bad_result_case *c = &bad_results[i];
        attr_list *l = attr_new();
        deliver_result out;

        attr_put_str(l, "request", c->extra == 2 ? "deliver" : c->extra == 3 ? "done" : "result");
        attr_put_int(l, "index", c->index);
        attr_put_int(l, "status", c->status);
        attr_put_str(l, "dsn", c->dsn);
        attr_put_str(l, "action", c->action);
        attr_put_str(l, "reason", c->reason);
        if (c->relay)
            attr_put_str(l, "relay", c->relay);
        attr_put_int(l, "relayed_no_dsn", c->no_dsn);
        if (c->extra == 1)
            attr_put_str(l, "surprise", "x");
        warn_count = 0;
        if (deliver_result_decode(l, &out) != -1)
            fail_msg("accepted: %s", c->name);
        assert_true(warn_count > 0);
        assert_null(out.reason);
        attr_free(l);
    }
}

/* test_oversized_and_truncated_result_frames - refused before allocation / at EOF */
static void test_oversized_and_truncated_result_frames(void **state)
{
    int sv[2];
    stream *b;
    deliver_result out;
    unsigned char big[4] = {0x01, 0x00, 0x00, 0x00}; /* 16 MiB > result limit */
    unsigned char cut[6] = {0x00, 0x00, 0x00, 0x40, 's', 0x00};

    (void) state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    b = stream_open(sv[1]);
    stream_set_timeout(b, 5);
    assert_int_equal(write(sv[0], big, sizeof(big)), (ssize_t) sizeof(big));
    assert_int_equal(deliver_result_read(b, &out), -1);
    stream_close(b);
    close(sv[0]);

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    b = stream_open(sv[1]);
    stream_set_timeout(b, 5);
    assert_int_equal(write(sv[0], cut, sizeof(cut)), (ssize_t) sizeof(cut));
    close(sv[0]);
    assert_int_equal(deliver_result_read(b, &out), -1);
    stream_close(b);
}

/* test_garbage_request_frame - random bytes are not a request */
static void test_garbage_request_frame(void **state)
{
    int sv[2];
    stream *b;
    deliver_request out;
    unsigned char junk[] = {0x00, 0x00, 0x00, 0x08, 'x', 'y', 'z', 0xff, 0, 1, 2, 3};

    (void) state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    b = stream_open(sv[1]);
    stream_set_timeout(b, 5);
    assert_int_equal(write(sv[0], junk, sizeof(junk)), (ssize_t) sizeof(junk));
    assert_int_equal(deliver_request_read(b, &out), -1);
    assert_null(out.queue_id);
    close(sv[0]);
    stream_close(b);
}

/* Log line cases: times relative to arrival. */
typedef struct log_case {
    const char *name;
    int status, flags;
    const char *orig, *relay, *dsn, *reason;
    double active, conn, xfer, now; /* offsets from arrival; conn/xfer < 0: unknown */
    const char *expect;
} log_case;

static const log_case log_cases[] = {
    {"sent with all delays", DELIVER_OK, 0, NULL, "local", "2.0.0", "delivered to maildir", 0.05, 0.06, 0.06, 0.12,
     "Q1: to=<alice@example.com>, relay=local, delay=0.12, delays=0.05/0.01/0/0.06, dsn=2.0.0, "
     "status=sent (delivered to maildir)"},
    {"orig_to when the original differs", DELIVER_OK, 0, "postmaster@example.com", "local", "2.0.0", "ok", 0, -1, -1,
     0.5,
     "Q1: to=<alice@example.com>, orig_to=<postmaster@example.com>, relay=local, delay=0.5, delays=0/0.5/0/0, "
     "dsn=2.0.0, status=sent (ok)"},
    {"no orig_to when the same", DELIVER_OK, 0, "alice@example.com", "local", "2.0.0", "ok", 0, -1, -1, 0,
     "Q1: to=<alice@example.com>, relay=local, delay=0, delays=0/0/0/0, dsn=2.0.0, status=sent (ok)"},
    {"long delays are whole seconds", DELIVER_DEFER, 0, NULL, NULL, "4.4.1", "connect refused", 3605.4, 3605.41,
     3605.42, 3605.44,
     "Q1: to=<alice@example.com>, relay=none, delay=3605, delays=3605/0.01/0.01/0.02, dsn=4.4.1, "
     "status=deferred (connect refused)"},
    {"bounced", DELIVER_BOUNCE, 0, NULL, "mx[192.0.2.1]:25", "5.1.1", "host said 550", 1.234, 1.5, 2, 9.999,
     "Q1: to=<alice@example.com>, relay=mx[192.0.2.1]:25, delay=10, delays=1.23/0.27/0.5/8, dsn=5.1.1, "
     "status=bounced (host said 550)"},
    {"verify probe", DELIVER_BOUNCE, DELIVER_FLAG_VERIFY, NULL, "local", "5.1.1", "unknown user", 0, -1, -1, 0,
     "Q1: to=<alice@example.com>, relay=local, delay=0, delays=0/0/0/0, dsn=5.1.1, status=undeliverable (unknown "
     "user)"},
};

/* test_log_line_matches_postfix - exact text for each case */
static void test_log_line_matches_postfix(void **state)
{
    const double t0 = 1700000000.0;

    (void) state;
    for (size_t i = 0; i < sizeof(log_cases) / sizeof(log_cases[0]); i++) {
        const log_case *c = &log_cases[i];
        deliver_rcpt rc = {1, "alice@example.com", NULL, (char *) c->orig, 0};
        deliver_request rq = {.queue_id = "Q1", .arrival = t0, .active = t0 + c->active, .flags = c->flags};
        deliver_result rs = {.index = 1, .status = c->status, .reason = (char *) c->reason, .relay = (char *) c->relay};
        vbuf out;

        snprintf(rs.dsn, sizeof(rs.dsn), "%s", c->dsn);
        vbuf_init(&out, 0);
        /* +0.0001: offsets are not exact in binary floating point */
        deliver_log_format(&out, &rq, &rc, &rs, c->conn < 0 ? 0 : t0 + c->conn + 0.0001,
                           c->xfer < 0 ? 0 : t0 + c->xfer + 0.0002, t0 + c->now + 0.0003);
        if (strcmp(vbuf_str(&out), c->expect) != 0)
            fail_msg("%s:\n got  %s\n want %s", c->name, vbuf_str(&out), c->expect);
        vbuf_release(&out);
    }
}

/* test_deliver_log_writes_one_info_line - deliver_log goes through msg_info */
static void test_deliver_log_writes_one_info_line(void **state)
{
    deliver_rcpt rc = {1, "bob@example.com", NULL, NULL, 0};
    deliver_request rq = {.queue_id = "Q2", .arrival = deliver_now() - 1, .active = deliver_now()};
    deliver_result rs = {.index = 1, .status = DELIVER_OK, .dsn = "2.0.0", .reason = "ok", .relay = "local"};

    (void) state;
    deliver_log(&rq, &rc, &rs, 0, 0);
    assert_non_null(strstr(last_info, "Q2: to=<bob@example.com>, relay=local, delay=1"));
    assert_non_null(strstr(last_info, "dsn=2.0.0, status=sent (ok)"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_request_round_trip_keeps_every_field, setup),
        cmocka_unit_test_setup(test_request_with_empty_sender_and_no_options, setup),
        cmocka_unit_test_setup(test_results_then_done, setup),
        cmocka_unit_test_setup(test_result_write_refuses_bad_dsn, setup),
        cmocka_unit_test_setup(test_hostile_requests_are_refused, setup),
        cmocka_unit_test_setup(test_good_request_decodes, setup),
        cmocka_unit_test_setup(test_hostile_results_are_refused, setup),
        cmocka_unit_test_setup(test_oversized_and_truncated_result_frames, setup),
        cmocka_unit_test_setup(test_garbage_request_frame, setup),
        cmocka_unit_test_setup(test_log_line_matches_postfix, setup),
        cmocka_unit_test_setup(test_deliver_log_writes_one_info_line, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
