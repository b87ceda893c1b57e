/*
 * Unit tests for anvil's counting table and request protocol (anvil/table.c,
 * anvil/proto.c): counts owned per client, release on close, fixed-window
 * rates, expiry, the table limit, statistics lines, frame cutting and the
 * strict request scanner, with malformed, truncated and oversized input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../anvil/anvil.h"
#include "attr.h"
#include "msg.h"
#include "mymalloc.h"
#include "vbuf.h"

#define T0 ((time_t) 1700000000)

/* ---- captured log lines ---- */

static vbuf logged;

/* capture - keep every message, one per line */
static void capture(enum msg_level level, const char *text)
{
    (void) level;
    vbuf_puts(&logged, text);
    vbuf_putc(&logged, '\n');
}

static int setup(void **state)
{
    (void) state;
    vbuf_init(&logged, 0);
    msg_set_capture(capture);
    return 0;
}

static int teardown(void **state)
{
    (void) state;
    msg_set_capture(NULL);
    vbuf_release(&logged);
    return 0;
}

/* ---- counts ---- */

static void test_connect_counts_and_rate_grow(void **state)
{
    anvil_table *t = anvil_table_new(60);
    anvil_owner *o = anvil_owner_new(t);
    long count, rate;

    (void) state;
    for (long i = 1; i <= 5; i++) {
        assert_int_equal(anvil_connect(t, o, "smtp:192.0.2.1", T0 + i, &count, &rate), ANVIL_STAT_OK);
        assert_int_equal(count, i);
        assert_int_equal(rate, i);
    }
    assert_int_equal(anvil_owner_held(o), 5);
    assert_int_equal(anvil_table_size(t), 1);
    anvil_owner_free(t, o);
    anvil_table_free(t);
}

static void test_disconnect_lowers_count_but_not_rate(void **state)
{
    anvil_table *t = anvil_table_new(60);
    anvil_owner *o = anvil_owner_new(t);
    long count, rate;

    (void) state;
    anvil_connect(t, o, "smtp:192.0.2.1", T0, &count, &rate);
    anvil_connect(t, o, "smtp:192.0.2.1", T0, &count, &rate);
    assert_int_equal(anvil_disconnect(t, o, "smtp:192.0.2.1", T0), ANVIL_STAT_OK);
    assert_int_equal(anvil_owner_held(o), 1);
    assert_int_equal(anvil_connect(t, o, "smtp:192.0.2.1", T0, &count, &rate), ANVIL_STAT_OK);
    assert_int_equal(count, 2);
    assert_int_equal(rate, 3);
    anvil_owner_free(t, o);
    anvil_table_free(t);
}

static void test_disconnect_of_what_owner_does_not_hold_fails(void **state)
{
    anvil_table *t = anvil_table_new(60);
    anvil_owner *a = anvil_owner_new(t), *b = anvil_owner_new(t);
    long count, rate;

    (void) state;
    /* Unknown ident, another owner's ident, one release too many, a bad ident. */
    assert_int_equal(anvil_disconnect(t, a, "smtp:192.0.2.9", T0), ANVIL_STAT_FAIL);
    anvil_connect(t, a, "smtp:192.0.2.1", T0, &count, &rate);
    assert_int_equal(anvil_disconnect(t, b, "smtp:192.0.2.1", T0), ANVIL_STAT_FAIL);
    assert_int_equal(anvil_disconnect(t, a, "smtp:192.0.2.1", T0), ANVIL_STAT_OK);
    assert_int_equal(anvil_disconnect(t, a, "smtp:192.0.2.1", T0), ANVIL_STAT_FAIL);
    assert_int_equal(anvil_disconnect(t, a, "bad ident", T0), ANVIL_STAT_FAIL);
    /* Nothing went negative: the next connect counts 1. */
    anvil_connect(t, b, "smtp:192.0.2.1", T0, &count, &rate);
    assert_int_equal(count, 1);
    anvil_owner_free(t, a);
    anvil_owner_free(t, b);
    anvil_table_free(t);
}

static void test_owner_free_releases_only_its_own_connections(void **state)
{
    anvil_table *t = anvil_table_new(60);
    anvil_owner *a = anvil_owner_new(t), *b = anvil_owner_new(t);
    long count, rate;

    (void) state;
    for (int i = 0; i < 3; i++)
        anvil_connect(t, a, "smtp:192.0.2.1", T0, &count, &rate);
    anvil_connect(t, a, "smtp:192.0.2.2", T0, &count, &rate);
    anvil_connect(t, b, "smtp:192.0.2.1", T0, &count, &rate);
    assert_int_equal(count, 4);
    anvil_owner_free(t, a); /* the smtpd process died */
    anvil_connect(t, b, "smtp:192.0.2.1", T0, &count, &rate);
    assert_int_equal(count, 2);
    anvil_connect(t, b, "smtp:192.0.2.2", T0, &count, &rate);
    assert_int_equal(count, 1);
    anvil_owner_free(t, b);
    anvil_table_free(t);
}

static void test_many_idents_per_owner_grow_the_table(void **state)
{
    anvil_table *t = anvil_table_new(60);
    anvil_owner *o = anvil_owner_new(t);
    char ident[64];
    long count, rate;

    (void) state;
    for (int i = 0; i < 5000; i++) {
        snprintf(ident, sizeof(ident), "smtp:10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        assert_int_equal(anvil_connect(t, o, ident, T0, &count, &rate), ANVIL_STAT_OK);
        assert_int_equal(count, 1);
    }
    assert_int_equal(anvil_table_size(t), 5000);
    /* Every ident is found again after the buckets grew. */
    for (int i = 0; i < 5000; i += 7) {
        snprintf(ident, sizeof(ident), "smtp:10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        assert_int_equal(anvil_disconnect(t, o, ident, T0), ANVIL_STAT_OK);
    }
    assert_int_equal(anvil_expire(t, T0 + 3600), 715);
    anvil_owner_free(t, o);
    assert_int_equal(anvil_expire(t, T0 + 3600), 5000 - 715);
    assert_int_equal(anvil_table_size(t), 0);
    anvil_table_free(t);
}

/* ---- rates ---- */

typedef struct rate_case {
    long offset; /* seconds after T0 */
    long want;   /* rate after this event */
} rate_case;

static void test_rate_window_is_fixed_and_restarts(void **state)
{
    static const rate_case cases[] = {
        {0, 1},   {1, 2},  {59, 3}, /* one 60s window */
        {60, 1},  {61, 2},          /* the next starts with the first event after it */
        {500, 1},                   /* long quiet: fresh */
        {400, 1},                   /* the clock went back: fresh */
        {400, 2},
    };
    anvil_table *t = anvil_table_new(60);
    anvil_owner *o = anvil_owner_new(t);
    long count, rate;

    (void) state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(anvil_connect(t, o, "smtp:192.0.2.1", T0 + cases[i].offset, &count, &rate), 0);
        assert_int_equal(rate, cases[i].want);
    }
    anvil_owner_free(t, o);
    anvil_table_free(t);
}

static void test_message_and_recipient_rates_are_separate(void **state)
{
    anvil_table *t = anvil_table_new(60);
    anvil_owner *o = anvil_owner_new(t);
    long count, rate;

    (void) state;
    anvil_connect(t, o, "smtp:192.0.2.1", T0, &count, &rate);
    for (long i = 1; i <= 3; i++) {
        assert_int_equal(anvil_event(t, "smtp:192.0.2.1", ANVIL_RATE_MSG, T0, &rate), ANVIL_STAT_OK);
        assert_int_equal(rate, i);
    }
    assert_int_equal(anvil_event(t, "smtp:192.0.2.1", ANVIL_RATE_RCPT, T0, &rate), ANVIL_STAT_OK);
    assert_int_equal(rate, 1);
    /* Messages from an ident with no connection are counted too. */
    assert_int_equal(anvil_event(t, "smtp:192.0.2.2", ANVIL_RATE_MSG, T0, &rate), ANVIL_STAT_OK);
    assert_int_equal(rate, 1);
    /* The connection rate is not an event; bad idents are refused. */
    assert_int_equal(anvil_event(t, "smtp:192.0.2.1", ANVIL_RATE_CONN, T0, &rate), ANVIL_STAT_FAIL);
    assert_int_equal(anvil_event(t, "", ANVIL_RATE_MSG, T0, &rate), ANVIL_STAT_FAIL);
    anvil_connect(t, o, "smtp:192.0.2.1", T0, &count, &rate);
    assert_int_equal(rate, 2);
    anvil_owner_free(t, o);
    anvil_table_free(t);
}

/* ---- expiry and limits ---- */

static void test_expire_keeps_held_and_recent_idents(void **state)
{
    anvil_table *t = anvil_table_new(60);
    anvil_owner *o = anvil_owner_new(t);
    long count, rate;

    (void) state;
    anvil_connect(t, o, "smtp:192.0.2.1", T0, &count, &rate); /* held */
    anvil_connect(t, o, "smtp:192.0.2.2", T0, &count, &rate); /* released below */
    anvil_disconnect(t, o, "smtp:192.0.2.2", T0);
    anvil_event(t, "smtp:192.0.2.3", ANVIL_RATE_RCPT, T0 + 30, &rate); /* a later window */
    assert_int_equal(anvil_expire(t, T0 + 59), 0);
    assert_int_equal(anvil_expire(t, T0 + 60), 1);     /* .2 */
    assert_int_equal(anvil_expire(t, T0 + 90), 1);     /* .3 */
    assert_int_equal(anvil_expire(t, T0 + 100000), 0); /* .1 is held */
    assert_int_equal(anvil_table_size(t), 1);
    anvil_connect(t, o, "smtp:192.0.2.1", T0 + 100000, &count, &rate);
    assert_int_equal(count, 2);
    assert_int_equal(rate, 1);
    anvil_owner_free(t, o);
    anvil_table_free(t);
}

static void test_full_table_refuses_new_idents_until_some_expire(void **state)
{
    anvil_table *t = anvil_table_new(60);
    anvil_owner *o = anvil_owner_new(t);
    char ident[64];
    long count, rate;

    (void) state;
    for (int i = 0; i < ANVIL_MAX_ENTRIES; i++) {
        snprintf(ident, sizeof(ident), "smtp:10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        assert_int_equal(anvil_event(t, ident, ANVIL_RATE_MSG, T0, &rate), ANVIL_STAT_OK);
    }
    assert_int_equal(anvil_table_size(t), ANVIL_MAX_ENTRIES);
    assert_int_equal(anvil_connect(t, o, "smtp:192.0.2.1", T0 + 1, &count, &rate), ANVIL_STAT_FAIL);
    assert_non_null(strstr(vbuf_str(&logged), "table full"));
    /* Known idents still count. */
    assert_int_equal(anvil_event(t, "smtp:10.0.0.5", ANVIL_RATE_MSG, T0 + 1, &rate), ANVIL_STAT_OK);
    assert_int_equal(rate, 2);
    /* Once the windows are over a new ident makes room for itself. */
    assert_int_equal(anvil_connect(t, o, "smtp:192.0.2.1", T0 + 61, &count, &rate), ANVIL_STAT_OK);
    assert_int_equal(anvil_table_size(t), 1);
    anvil_owner_free(t, o);
    anvil_table_free(t);
}

typedef struct ident_case {
    const char *ident;
    int ok;
} ident_case;

static void test_ident_validation(void **state)
{
    static char longest[ANVIL_IDENT_MAX + 1], too_long[ANVIL_IDENT_MAX + 2];
    const ident_case cases[] = {
        {"smtp:192.0.2.1", 1},
        {"127.0.0.1:2525:2001:db8::1", 1},
        {longest, 1},
        {too_long, 0},
        {"", 0},
        {NULL, 0},
        {"smtp 192.0.2.1", 0},
        {"smtp:\t1", 0},
        {"smtp:\r\n", 0},
        {"smtp:\x7f", 0},
        {"smtp:\xc3\xa4", 0},
    };
    anvil_table *t = anvil_table_new(60);
    anvil_owner *o = anvil_owner_new(t);
    long count, rate;

    (void) state;
    memset(longest, 'a', ANVIL_IDENT_MAX);
    memset(too_long, 'a', ANVIL_IDENT_MAX + 1);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(anvil_ident_ok(cases[i].ident), cases[i].ok);
        if (cases[i].ident)
            assert_int_equal(anvil_connect(t, o, cases[i].ident, T0, &count, &rate) == ANVIL_STAT_OK, cases[i].ok);
    }
    anvil_owner_free(t, o);
    anvil_table_free(t);
}

/* ---- statistics ---- */

static void test_statistics_report_the_maxima_once(void **state)
{
    anvil_table *t = anvil_table_new(60);
    anvil_owner *o = anvil_owner_new(t);
    anvil_stats st;
    long count, rate;

    (void) state;
    for (int i = 0; i < 3; i++)
        anvil_connect(t, o, "smtp:192.0.2.1", T0, &count, &rate);
    anvil_connect(t, o, "smtp:192.0.2.2", T0, &count, &rate);
    anvil_event(t, "smtp:192.0.2.2", ANVIL_RATE_MSG, T0, &rate);
    anvil_event(t, "smtp:192.0.2.2", ANVIL_RATE_MSG, T0, &rate);
    anvil_stats_take(t, &st);
    assert_int_equal(st.count.value, 3);
    assert_string_equal(st.count.ident, "smtp:192.0.2.1");
    assert_int_equal(st.rate[ANVIL_RATE_CONN].value, 3);
    assert_int_equal(st.rate[ANVIL_RATE_MSG].value, 2);
    assert_string_equal(st.rate[ANVIL_RATE_MSG].ident, "smtp:192.0.2.2");
    assert_int_equal(st.rate[ANVIL_RATE_RCPT].value, 0);
    assert_int_equal(st.size.value, 2);
    vbuf_reset(&logged);
    anvil_stats_log(&st, 60);
    assert_non_null(strstr(vbuf_str(&logged), "statistics: max connection rate 3/60s for (smtp:192.0.2.1) at "));
    assert_non_null(strstr(vbuf_str(&logged), "statistics: max connection count 3 for (smtp:192.0.2.1) at "));
    assert_non_null(strstr(vbuf_str(&logged), "statistics: max message rate 2/60s for (smtp:192.0.2.2) at "));
    assert_non_null(strstr(vbuf_str(&logged), "statistics: max cache size 2 at "));
    assert_null(strstr(vbuf_str(&logged), "recipient rate"));
    /* Taken: the next report is empty. */
    anvil_stats_take(t, &st);
    vbuf_reset(&logged);
    anvil_stats_log(&st, 60);
    assert_int_equal(logged.len, 0);
    anvil_owner_free(t, o);
    anvil_table_free(t);
}

/* ---- frames ---- */

/* put_frame - a request frame with the given attributes, appended to out */
static void put_frame(vbuf *out, const char *request, const char *ident)
{
    attr_list *l = attr_new();

    if (request)
        attr_put_str(l, "request", request);
    if (ident)
        attr_put_str(l, "ident", ident);
    anvil_frame_put(out, l);
    attr_free(l);
}

static void test_frame_take_waits_for_whole_frames(void **state)
{
    vbuf all, in;
    attr_list *req = attr_new();

    (void) state;
    vbuf_init(&all, 0);
    vbuf_init(&in, 0);
    put_frame(&all, "connect", "smtp:192.0.2.1");
    put_frame(&all, "disconnect", "smtp:192.0.2.1");
    /* Byte by byte: nothing until the first frame is complete. */
    for (size_t i = 0; i < all.len; i++) {
        vbuf_append(&in, all.data + i, 1);
        int got = anvil_frame_take(&in, req);

        assert_true(got == 0 || got == 1);
        if (got == 1) {
            const char *r = attr_get_str(req, "request");

            assert_non_null(r);
            assert_true(strcmp(r, "connect") == 0 || (strcmp(r, "disconnect") == 0 && i == all.len - 1));
            assert_int_equal(in.len, 0);
        }
    }
    /* Both at once: two frames, then nothing. */
    vbuf_reset(&in);
    vbuf_append(&in, all.data, all.len);
    assert_int_equal(anvil_frame_take(&in, req), 1);
    assert_string_equal(attr_get_str(req, "request"), "connect");
    assert_int_equal(anvil_frame_take(&in, req), 1);
    assert_string_equal(attr_get_str(req, "request"), "disconnect");
    assert_int_equal(anvil_frame_take(&in, req), 0);
    attr_free(req);
    vbuf_release(&all);
    vbuf_release(&in);
}

typedef struct bad_frame {
    const char *what;
    const char *bytes;
    size_t len;
} bad_frame;

static void test_frame_take_refuses_hostile_frames(void **state)
{
    static const bad_frame cases[] = {
        {"oversized length", "\x00\x00\x04\x01", 4},
        {"huge length", "\xff\xff\xff\xff", 4},
        {"unknown type", "\x00\x00\x00\x03zzz", 7},
        {"name length past the end",
         "\x00\x00\x00\x05s\x00\x09"
         "ab",
         9},
        {"value length past the end",
         "\x00\x00\x00\x0bs\x00\x01"
         "a\x00\x00\x00\x09xyz",
         15},
        {"descriptor without a descriptor",
         "\x00\x00\x00\x0c"
         "f\x00\x01"
         "a\x00\x00\x00\x04\x00\x00\x00\x00",
         16},
        {"NUL in a string",
         "\x00\x00\x00\x0as\x00\x01"
         "a\x00\x00\x00\x02x\x00",
         14},
        {"bad name",
         "\x00\x00\x00\x09s\x00\x01"
         "A\x00\x00\x00\x01x",
         13},
    };
    attr_list *req = attr_new();
    vbuf in;

    (void) state;
    vbuf_init(&in, 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        vbuf_reset(&in);
        vbuf_append(&in, cases[i].bytes, cases[i].len);
        if (anvil_frame_take(&in, req) != -1)
            fail_msg("accepted: %s", cases[i].what);
    }
    /* A short frame is only incomplete, not bad. */
    vbuf_reset(&in);
    vbuf_append(&in, "\x00\x00\x00\x10s\x00", 7);
    assert_int_equal(anvil_frame_take(&in, req), 0);
    vbuf_release(&in);
    attr_free(req);
}

/* ---- requests ---- */

typedef struct req_case {
    const char *request; /* NULL: left out */
    const char *ident;   /* NULL: left out */
    long long status;
    long long count; /* -1: must be absent */
    long long rate;  /* -1: must be absent */
} req_case;

static void test_requests_are_scanned_strictly(void **state)
{
    static const req_case cases[] = {
        {"connect", "smtp:192.0.2.1", 0, 1, 1},
        {"connect", "smtp:192.0.2.1", 0, 2, 2},
        {"disconnect", "smtp:192.0.2.1", 0, -1, -1},
        {"disconnect", "smtp:192.0.2.7", -1, -1, -1},
        {"message", "smtp:192.0.2.1", 0, -1, 1},
        {"recipient", "smtp:192.0.2.1", 0, -1, 1},
        {"recipient", "smtp:192.0.2.1", 0, -1, 2},
        {"lookup", "smtp:192.0.2.1", -1, -1, -1},
        {"CONNECT", "smtp:192.0.2.1", -1, -1, -1},
        {"connect", "smtp 192.0.2.1", -1, -1, -1},
        {"connect", NULL, -1, -1, -1},
        {NULL, "smtp:192.0.2.1", -1, -1, -1},
        {NULL, NULL, -1, -1, -1},
    };
    anvil_table *t = anvil_table_new(60);
    anvil_owner *o = anvil_owner_new(t);
    attr_list *req = attr_new(), *reply = attr_new();
    long long v;

    (void) state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        attr_clear(req);
        if (cases[i].request)
            attr_put_str(req, "request", cases[i].request);
        if (cases[i].ident)
            attr_put_str(req, "ident", cases[i].ident);
        anvil_request(t, o, req, reply, T0);
        assert_int_equal(attr_get_int(reply, "status", &v), 0);
        assert_int_equal(v, cases[i].status);
        if (cases[i].count < 0)
            assert_int_not_equal(attr_get_int(reply, "count", &v), 0);
        else
            assert_true(attr_get_int(reply, "count", &v) == 0 && v == cases[i].count);
        if (cases[i].rate < 0)
            assert_int_not_equal(attr_get_int(reply, "rate", &v), 0);
        else
            assert_true(attr_get_int(reply, "rate", &v) == 0 && v == cases[i].rate);
    }
    attr_free(req);
    attr_free(reply);
    anvil_owner_free(t, o);
    anvil_table_free(t);
}

static void test_requests_with_surprises_fail(void **state)
{
    anvil_table *t = anvil_table_new(60);
    anvil_owner *o = anvil_owner_new(t);
    attr_list *req = attr_new(), *reply = attr_new();
    long long v;

    (void) state;
    /* An extra attribute, a repeated one, a wrong type. */
    attr_put_str(req, "request", "connect");
    attr_put_str(req, "ident", "smtp:192.0.2.1");
    attr_put_int(req, "count", 5);
    anvil_request(t, o, req, reply, T0);
    assert_true(attr_get_int(reply, "status", &v) == 0 && v == -1);
    attr_clear(req);
    attr_put_str(req, "request", "connect");
    attr_put_str(req, "ident", "smtp:192.0.2.1");
    attr_put_str(req, "ident", "smtp:192.0.2.2");
    anvil_request(t, o, req, reply, T0);
    assert_true(attr_get_int(reply, "status", &v) == 0 && v == -1);
    attr_clear(req);
    attr_put_str(req, "request", "connect");
    attr_put_int(req, "ident", 7);
    anvil_request(t, o, req, reply, T0);
    assert_true(attr_get_int(reply, "status", &v) == 0 && v == -1);
    /* None of them counted anything. */
    assert_int_equal(anvil_owner_held(o), 0);
    assert_int_equal(anvil_table_size(t), 0);
    attr_free(req);
    attr_free(reply);
    anvil_owner_free(t, o);
    anvil_table_free(t);
}

static void test_reply_frame_round_trips(void **state)
{
    attr_list *reply = attr_new(), *back = attr_new();
    vbuf out;
    long long v;

    (void) state;
    vbuf_init(&out, 0);
    attr_put_int(reply, "status", 0);
    attr_put_int(reply, "count", 42);
    anvil_frame_put(&out, reply);
    assert_int_equal(anvil_frame_take(&out, back), 1);
    assert_true(attr_get_int(back, "count", &v) == 0 && v == 42);
    assert_int_equal(out.len, 0);
    vbuf_release(&out);
    attr_free(reply);
    attr_free(back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_connect_counts_and_rate_grow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disconnect_lowers_count_but_not_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disconnect_of_what_owner_does_not_hold_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner_free_releases_only_its_own_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_idents_per_owner_grow_the_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_window_is_fixed_and_restarts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_message_and_recipient_rates_are_separate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expire_keeps_held_and_recent_idents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_table_refuses_new_idents_until_some_expire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ident_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_statistics_report_the_maxima_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frame_take_waits_for_whole_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frame_take_refuses_hostile_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests_are_scanned_strictly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests_with_surprises_fail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_frame_round_trips, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
