/*
 * Unit tests for kitedrop's input parser (cmd/kitedrop/records.c): a good
 * stream becomes a valid queue file; every hostile stream (truncated,
 * oversized, out of order, forbidden attributes or records, bad values,
 * trailing data) is refused with EX_DATAERR and a reason.
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
#include <unistd.h>

#include "../../cmd/kitedrop/records.c"

typedef struct mem_in {
    const char *data;
    size_t len, pos;
} mem_in;

/* mem_read - the test's reader over a buffer */
static int mem_read(void *ctx, void *buf, size_t len)
{
    mem_in *in = ctx;

    if (in->len - in->pos < len)
        return -1;
    memcpy(buf, in->data + in->pos, len);
    in->pos += len;
    return 0;
}

static void rec(vbuf *b, int type, const char *data, size_t len)
{
    unsigned char h[5] = {(unsigned char) type, (unsigned char) (len >> 24), (unsigned char) (len >> 16),
                          (unsigned char) (len >> 8), (unsigned char) len};

    vbuf_append(b, h, 5);
    vbuf_append(b, data, len);
}

#define REC(b, t, s) rec((b), (t), (s), sizeof(s) - 1)

static char dir[64];

static int setup(void **state)
{
    (void) state;
    snprintf(dir, sizeof(dir), "/tmp/test_kitedrop.XXXXXX");
    assert_non_null(mkdtemp(dir));
    assert_int_equal(chdir(dir), 0);
    assert_int_equal(mkdir("maildrop", 0700), 0);
    return 0;
}

static int teardown(void **state)
{
    char path[128];

    (void) state;
    snprintf(path, sizeof(path), "%s/maildrop", dir);
    (void) rmdir(path);
    (void) rmdir(dir);
    return 0;
}

/* run - parse a stream into a fresh writer; the code, the writer aborted or finished */
static int run(const vbuf *stream, long limit, vbuf *why, char *id_out)
{
    mem_in in = {stream->data, stream->len, 0};
    vbuf err;
    qfile_writer *w;
    int code;

    vbuf_init(&err, 0);
    w = qfile_create("maildrop", &err);
    assert_non_null(w);
    vbuf_reset(why);
    code = kd_copy_records(mem_read, &in, w, limit, why);
    if (code == 0) {
        snprintf(id_out, QUEUE_ID_SIZE, "%s", qfile_writer_id(w));
        assert_int_equal(qfile_finish(w, &err), 0);
    } else {
        qfile_abort(w);
    }
    vbuf_release(&err);
    return code;
}

static void good_tail(vbuf *b)
{
    REC(b, 'R', "-x@example.com");
    REC(b, 'M', "");
    REC(b, 'C', "Subject: s\n\nx\n");
    REC(b, 'E', "");
}

static void test_good_stream_becomes_a_valid_queue_file(void **state)
{
    char id[QUEUE_ID_SIZE], path[128];
    vbuf b, why, err;
    qfile *q;

    (void) state;
    vbuf_init(&b, 0);
    vbuf_init(&why, 0);
    vbuf_init(&err, 0);
    REC(&b, 'A', "sender=alice");
    REC(&b, 'A', "ret=hdrs");
    REC(&b, 'O', "rfc822;Bob@example.com");
    REC(&b, 'N', "6");
    REC(&b, 'R', "-bob@example.com");
    good_tail(&b);
    assert_int_equal(run(&b, 0, &why, id), 0);
    snprintf(path, sizeof(path), "maildrop/%s", id);
    q = qfile_open(path, 0, &err);
    assert_non_null(q);
    assert_string_equal(qfile_attr(q, "sender"), "alice");
    assert_string_equal(qfile_attr(q, "ret"), "hdrs");
    assert_int_equal(q->nrcpt, 2);
    assert_string_equal(q->rcpts[0].orcpt, "rfc822;Bob@example.com");
    assert_int_equal(q->rcpts[0].notify, 6);
    assert_int_equal(q->size, 14);
    qfile_close(q);
    assert_int_equal(unlink(path), 0);
    vbuf_release(&b);
    vbuf_release(&why);
    vbuf_release(&err);
}

typedef struct hostile {
    const char *name;
    void (*build)(vbuf *b);
    const char *reason;
} hostile;

static void h_empty(vbuf *b)
{
    (void) b;
}
static void h_trunc_header(vbuf *b)
{
    vbuf_append(b, "A\0\0", 3);
}
static void h_trunc_data(vbuf *b)
{
    REC(b, 'A', "sender=alice");
    vbuf_truncate(b, b->len - 3);
}
static void h_no_end(vbuf *b)
{
    REC(b, 'R', "-x@y");
    REC(b, 'M', "");
    REC(b, 'C', "x\n");
}
static void h_forbidden_attr(vbuf *b)
{
    REC(b, 'A', "client_addr=192.0.2.1");
    good_tail(b);
}
static void h_forged_uid(vbuf *b)
{
    REC(b, 'A', "uid=0");
    good_tail(b);
}
static void h_attr_no_eq(vbuf *b)
{
    REC(b, 'A', "sender");
    good_tail(b);
}
static void h_attr_nul(vbuf *b)
{
    rec(b, 'A', "sender=a\0b", 10);
    good_tail(b);
}
static void h_attr_newline(vbuf *b)
{
    REC(b, 'A', "fullname=a\nX-Evil: 1");
    good_tail(b);
}
static void h_bad_ret(vbuf *b)
{
    REC(b, 'A', "ret=all");
    good_tail(b);
}
static void h_long_envid(vbuf *b)
{
    char v[200];

    memset(v, 'e', sizeof(v));
    memcpy(v, "envid=", 6);
    rec(b, 'A', v, sizeof(v));
    good_tail(b);
}
static void h_rcpt_newline(vbuf *b)
{
    REC(b, 'R', "-x@exa\nmple.com");
    REC(b, 'M', "");
    REC(b, 'E', "");
}
static void h_rcpt_done(vbuf *b)
{
    REC(b, 'R', "Dx@example.com");
    REC(b, 'M', "");
    REC(b, 'E', "");
}
static void h_rcpt_empty(vbuf *b)
{
    REC(b, 'R', "-");
    REC(b, 'M', "");
    REC(b, 'E', "");
}
static void h_orig_record(vbuf *b)
{
    REC(b, 'F', "y@example.com");
    good_tail(b);
}
static void h_two_orcpt(vbuf *b)
{
    REC(b, 'O', "rfc822;a@b");
    REC(b, 'O', "rfc822;a@b");
    good_tail(b);
}
static void h_bad_notify(vbuf *b)
{
    REC(b, 'N', "16");
    good_tail(b);
}
static void h_never_combined(vbuf *b)
{
    REC(b, 'N', "3");
    good_tail(b);
}
static void h_unknown_type(vbuf *b)
{
    REC(b, 'X', "zz");
    good_tail(b);
}
static void h_too_long(vbuf *b)
{
    vbuf_append(b, "C\0\x10\0\x01", 5);
}
static void h_content_first(vbuf *b)
{
    REC(b, 'C', "x");
    good_tail(b);
}
static void h_marker_data(vbuf *b)
{
    REC(b, 'M', "x");
    REC(b, 'E', "");
}
static void h_rcpt_after_content(vbuf *b)
{
    REC(b, 'M', "");
    REC(b, 'R', "-x@y");
    REC(b, 'E', "");
}
static void h_end_without_content(vbuf *b)
{
    REC(b, 'R', "-x@y");
    REC(b, 'E', "");
}
static void h_trailing(vbuf *b)
{
    good_tail(b);
    vbuf_puts(b, "junk");
}
static void h_too_big(vbuf *b)
{
    char big[2000];

    memset(big, 'x', sizeof(big));
    REC(b, 'R', "-x@y");
    REC(b, 'M', "");
    rec(b, 'C', big, sizeof(big));
    REC(b, 'E', "");
}

static const hostile hostile_cases[] = {
    {"empty", h_empty, "unexpected end"},
    {"truncated header", h_trunc_header, "unexpected end"},
    {"truncated data", h_trunc_data, "unexpected end"},
    {"no end marker", h_no_end, "unexpected end"},
    {"forbidden attribute", h_forbidden_attr, "not allowed"},
    {"forged uid", h_forged_uid, "not allowed"},
    {"attribute without =", h_attr_no_eq, "malformed attribute"},
    {"NUL in attribute", h_attr_nul, "NUL byte"},
    {"newline in attribute", h_attr_newline, "bad attribute value"},
    {"bad ret", h_bad_ret, "not allowed"},
    {"long envid", h_long_envid, "not allowed"},
    {"newline in recipient", h_rcpt_newline, "bad recipient"},
    {"recipient marked done", h_rcpt_done, "malformed recipient"},
    {"empty recipient", h_rcpt_empty, "malformed recipient"},
    {"original recipient record", h_orig_record, "unknown record"},
    {"two orcpt records", h_two_orcpt, "malformed recipient"},
    {"notify out of range", h_bad_notify, "malformed notify"},
    {"NEVER combined", h_never_combined, "bad recipient"},
    {"unknown type", h_unknown_type, "unknown record"},
    {"length over the limit", h_too_long, "too long"},
    {"content before marker", h_content_first, "out of place"},
    {"marker with data", h_marker_data, "malformed content marker"},
    {"recipient after content", h_rcpt_after_content, "malformed recipient"},
    {"end without content", h_end_without_content, "malformed end marker"},
    {"data after the end", h_trailing, "data after the end marker"},
    {"over the size limit", h_too_big, "too big"},
};

static void test_hostile_streams_are_refused(void **state)
{
    char id[QUEUE_ID_SIZE];
    vbuf b, why;

    (void) state;
    vbuf_init(&b, 0);
    vbuf_init(&why, 0);
    for (size_t i = 0; i < sizeof(hostile_cases) / sizeof(hostile_cases[0]); i++) {
        const hostile *h = hostile_cases + i;
        int code;

        vbuf_reset(&b);
        h->build(&b);
        code = run(&b, 1000, &why, id);
        if (code != EX_DATAERR)
            fail_msg("%s: code %d (%s)", h->name, code, why.data);
        if (strstr(why.data, h->reason) == NULL)
            fail_msg("%s: reason \"%s\" lacks \"%s\"", h->name, why.data, h->reason);
        assert_int_equal(rmdir("maildrop"), 0); /* nothing was left behind */
        assert_int_equal(mkdir("maildrop", 0700), 0);
    }
    vbuf_release(&b);
    vbuf_release(&why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good_stream_becomes_a_valid_queue_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_streams_are_refused, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
