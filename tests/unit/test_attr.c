/*
 * Unit tests for attr: round trips of every type, repeated names, strict
 * scanning, frames over streams, descriptors over a socketpair, and hostile
 * frames (truncated, oversized lengths, bad names, NUL in strings, wrong
 * integer size, bad descriptor indexes, garbage) that must be rejected.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attr.h"
#include "msg.h"
#include "stream.h"
#include "vbuf.h"

static int warn_count;
static char last_warn[512];

/* capture - count warnings and keep the last one */
static void capture(enum msg_level level, const char *text)
{
    if (level == MSG_WARN) {
        warn_count++;
        snprintf(last_warn, sizeof(last_warn), "%s", text);
    }
}

static int setup(void **state)
{
    (void) state;
    msg_set_capture(capture);
    msg_stderr(0);
    warn_count = 0;
    last_warn[0] = 0;
    return 0;
}

/* open_fd_count - descriptors open in this process */
static int open_fd_count(void)
{
    int n = 0;

    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            n++;
    return n;
}

/* frame builder helpers: raw attribute bytes */
static void raw_attr(vbuf *b, int type, const char *name, size_t nlen, const void *val, uint32_t vlen)
{
    unsigned char h[4];

    vbuf_putc(b, type);
    vbuf_putc(b, (int) ((nlen >> 8) & 0xff));
    vbuf_putc(b, (int) (nlen & 0xff));
    vbuf_append(b, name, nlen);
    h[0] = (unsigned char) (vlen >> 24);
    h[1] = (unsigned char) (vlen >> 16);
    h[2] = (unsigned char) (vlen >> 8);
    h[3] = (unsigned char) vlen;
    vbuf_append(b, h, 4);
    if (val)
        vbuf_append(b, val, vlen);
}

static void test_attr_round_trip_every_type(void **state)
{
    attr_list *a = attr_new(), *b = attr_new();
    vbuf enc;
    const char bin[] = {0, 1, 2, (char) 0xff, 0};
    const char *name;
    const void *val;
    size_t len;
    long long iv;

    (void) state;
    vbuf_init(&enc, 0);
    attr_put_str(a, "sender", "alice@example.org");
    attr_put_str(a, "empty", "");
    attr_put_int(a, "size", 1234567890123LL);
    attr_put_int(a, "neg", -42);
    attr_put_int(a, "min", INT64_MIN);
    attr_put_data(a, "blob", bin, sizeof(bin));
    attr_put_data(a, "nodata", "", 0);
    attr_encode(a, &enc);
    assert_int_equal(attr_decode(b, enc.data, enc.len), 0);
    assert_int_equal(attr_count(b), 7);
    assert_string_equal(attr_get_str(b, "sender"), "alice@example.org");
    assert_string_equal(attr_get_str(b, "empty"), "");
    assert_int_equal(attr_get_int(b, "size", &iv), 0);
    assert_true(iv == 1234567890123LL);
    assert_int_equal(attr_get_int(b, "neg", &iv), 0);
    assert_true(iv == -42);
    assert_int_equal(attr_get_int(b, "min", &iv), 0);
    assert_true(iv == INT64_MIN);
    val = attr_get_data(b, "blob", &len);
    assert_non_null(val);
    assert_int_equal(len, sizeof(bin));
    assert_memory_equal(val, bin, sizeof(bin));
    val = attr_get_data(b, "nodata", &len);
    assert_non_null(val);
    assert_int_equal(len, 0);
    /* lookups are typed */
    assert_null(attr_get_str(b, "size"));
    assert_int_equal(attr_get_int(b, "sender", &iv), -1);
    assert_null(attr_get_data(b, "missing", &len));
    assert_int_equal(attr_nth(b, 2, &name, &val, &len), ATTR_TYPE_INT);
    assert_string_equal(name, "size");
    assert_int_equal(len, 8);
    assert_true(*(const long long *) val == 1234567890123LL);
    assert_int_equal(attr_nth(b, 7, &name, &val, &len), 0);
    vbuf_release(&enc);
    attr_free(a);
    attr_free(b);
}

static void test_attr_repeated_names_keep_order(void **state)
{
    attr_list *a = attr_new(), *b = attr_new();
    vbuf enc;
    const char *rcpts[] = {"a@x", "b@y", "c@z"};
    const char *name;
    const void *val;
    size_t n = 0;
    const char *sender = NULL;
    attr_spec specs[] = {ATTR_SPEC_STR("sender", ATTR_REQUIRED, &sender), ATTR_SPEC_STR("rcpt", ATTR_REPEAT, NULL),
                         ATTR_SPEC_END};

    (void) state;
    vbuf_init(&enc, 0);
    attr_put_str(a, "sender", "s@x");
    for (int i = 0; i < 3; i++)
        attr_put_str(a, "rcpt", rcpts[i]);
    attr_encode(a, &enc);
    assert_int_equal(attr_decode(b, enc.data, enc.len), 0);
    assert_int_equal(attr_scan(b, specs), 0);
    assert_string_equal(sender, "s@x");
    for (size_t i = 0; i < attr_count(b); i++) {
        if (attr_nth(b, i, &name, &val, NULL) == ATTR_TYPE_STR && strcmp(name, "rcpt") == 0)
            assert_string_equal(val, rcpts[n++]);
    }
    assert_int_equal(n, 3);
    assert_string_equal(attr_get_str(b, "rcpt"), "a@x");
    vbuf_release(&enc);
    attr_free(a);
    attr_free(b);
}

/* One row per scan case: the list built, the verdict, a word in the warning. */
struct scan_case {
    const char *label;
    void (*build)(attr_list *);
    int expect;
    const char *warn_word;
};

static void build_ok(attr_list *l)
{
    attr_put_str(l, "name", "n");
    attr_put_int(l, "count", 3);
    attr_put_data(l, "blob", "xy", 2);
}
static void build_unexpected(attr_list *l)
{
    build_ok(l);
    attr_put_str(l, "intruder", "x");
}
static void build_wrong_type(attr_list *l)
{
    attr_put_int(l, "name", 1);
    attr_put_int(l, "count", 3);
}
static void build_duplicate(attr_list *l)
{
    build_ok(l);
    attr_put_int(l, "count", 4);
}
static void build_missing(attr_list *l)
{
    attr_put_int(l, "count", 3);
}
static void build_optional_absent(attr_list *l)
{
    attr_put_str(l, "name", "n");
    attr_put_int(l, "count", 3);
}

static void test_attr_scan_is_strict(void **state)
{
    static const struct scan_case cases[] = {
        {"all present", build_ok, 0, NULL},
        {"optional absent", build_optional_absent, 0, NULL},
        {"unexpected name", build_unexpected, -1, "intruder"},
        {"wrong type", build_wrong_type, -1, "name"},
        {"duplicate", build_duplicate, -1, "count"},
        {"required missing", build_missing, -1, "name"},
    };

    (void) state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        attr_list *l = attr_new(), *d = attr_new();
        vbuf enc;
        const char *name = NULL;
        long long count = 0;
        attr_data blob = {"preset", 6};
        attr_spec specs[] = {ATTR_SPEC_STR("name", ATTR_REQUIRED, &name), ATTR_SPEC_INT("count", ATTR_REQUIRED, &count),
                             ATTR_SPEC_DATA("blob", ATTR_OPTIONAL, &blob), ATTR_SPEC_END};

        vbuf_init(&enc, 0);
        cases[i].build(l);
        attr_encode(l, &enc);
        assert_int_equal(attr_decode(d, enc.data, enc.len), 0);
        warn_count = 0;
        last_warn[0] = 0;
        if (attr_scan(d, specs) != cases[i].expect)
            fail_msg("case '%s': wrong verdict", cases[i].label);
        if (cases[i].warn_word) {
            assert_int_equal(warn_count, 1);
            if (strstr(last_warn, cases[i].warn_word) == NULL)
                fail_msg("case '%s': warning '%s' lacks '%s'", cases[i].label, last_warn, cases[i].warn_word);
        } else {
            assert_int_equal(warn_count, 0);
            assert_string_equal(name, "n");
            assert_true(count == 3);
        }
        if (cases[i].build == build_ok)
            assert_memory_equal(blob.data, "xy", 2);
        if (cases[i].build == build_optional_absent)
            assert_int_equal(blob.len, 6); /* untouched */
        vbuf_release(&enc);
        attr_free(l);
        attr_free(d);
    }
}

/* Hostile payloads: each must be rejected with ATTR_BAD and a warning. */
static void test_attr_decode_rejects_hostile_frames(void **state)
{
    vbuf good, b;
    attr_list *l = attr_new();

    (void) state;
    vbuf_init(&good, 0);
    vbuf_init(&b, 0);
    {
        attr_list *a = attr_new();

        attr_put_str(a, "sender", "alice@example.org");
        attr_put_int(a, "size", 99);
        attr_put_data(a, "blob", "\0\1\2", 3);
        attr_encode(a, &good);
        attr_free(a);
    }
    /* every truncation of a good frame, except at attribute boundaries */
    {
        size_t bounds[] = {0, 3 + 6 + 4 + 17, 3 + 6 + 4 + 17 + 3 + 4 + 4 + 8};
        for (size_t cut = 1; cut < good.len; cut++) {
            int boundary = 0;

            for (size_t k = 0; k < 3; k++)
                boundary |= cut == bounds[k];
            warn_count = 0;
            if (boundary)
                assert_int_equal(attr_decode(l, good.data, cut), 0);
            else {
                if (attr_decode(l, good.data, cut) != ATTR_BAD)
                    fail_msg("truncation at %zu accepted", cut);
                assert_int_equal(attr_count(l), 0);
                assert_int_equal(warn_count, 1);
            }
        }
    }
    /* table of hand-made hostile attributes */
    {
        char longname[300];
        struct {
            const char *label;
            int type;
            const char *name;
            size_t nlen;
            const void *val;
            uint32_t vlen;
            int bare; /* emit only type+name+vlen with no value */
        } rows[] = {
            {"empty name", 's', "", 0, "x", 1, 0},
            {"upper-case name", 's', "Sender", 6, "x", 1, 0},
            {"name with dash", 's', "a-b", 3, "x", 1, 0},
            {"name with NUL", 's', "a\0b", 3, "x", 1, 0},
            {"name of 256 chars", 's', longname, 256, "x", 1, 0},
            {"NUL in string", 's', "s", 1, "a\0b", 3, 0},
            {"int of 4 bytes", 'i', "n", 1, "\0\0\0\1", 4, 0},
            {"int of 9 bytes", 'i', "n", 1, "\0\0\0\0\0\0\0\0\1", 9, 0},
            {"int of 0 bytes", 'i', "n", 1, "", 0, 0},
            {"unknown type", 'x', "n", 1, "v", 1, 0},
            {"type zero", 0, "n", 1, "v", 1, 0},
            {"fd without descriptors", 'f', "fd", 2, "\0\0\0\0", 4, 0},
            {"fd of wrong size", 'f', "fd", 2, "\0\0", 2, 0},
            {"value length too large", 's', "s", 1, NULL, 0x7fffffff, 1},
            {"value length 0xffffffff", 'd', "d", 1, NULL, 0xffffffff, 1},
        };
        memset(longname, 'a', sizeof(longname));
        for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
            vbuf_reset(&b);
            vbuf_append(&b, good.data, good.len); /* a good prefix */
            raw_attr(&b, rows[i].type, rows[i].name, rows[i].nlen, rows[i].bare ? NULL : rows[i].val, rows[i].vlen);
            if (rows[i].bare)
                vbuf_puts(&b, "short");
            warn_count = 0;
            if (attr_decode(l, b.data, b.len) != ATTR_BAD)
                fail_msg("row '%s' accepted", rows[i].label);
            assert_int_equal(attr_count(l), 0);
            assert_int_equal(warn_count, 1);
        }
    }
    /* a name length beyond the frame */
    vbuf_reset(&b);
    vbuf_append(&b,
                "s\xff\xff"
                "abc",
                6);
    assert_int_equal(attr_decode(l, b.data, b.len), ATTR_BAD);
    /* pseudo-random garbage never crashes and leaves the list empty or valid */
    {
        unsigned int seed = 12345;

        for (int round = 0; round < 2000; round++) {
            size_t n = (size_t) (rand_r(&seed) % 64);

            vbuf_reset(&b);
            for (size_t k = 0; k < n; k++)
                vbuf_putc(&b, rand_r(&seed) & 0xff);
            if (attr_decode(l, b.data, b.len) == ATTR_BAD)
                assert_int_equal(attr_count(l), 0);
        }
    }
    /* the empty payload is a valid empty list */
    assert_int_equal(attr_decode(l, "", 0), 0);
    assert_int_equal(attr_count(l), 0);
    vbuf_release(&good);
    vbuf_release(&b);
    attr_free(l);
}

/* stream_pair - two streams on a socketpair */
static void stream_pair(stream **a, stream **b)
{
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    *a = stream_open(sv[0]);
    *b = stream_open(sv[1]);
    stream_set_timeout(*a, 5);
    stream_set_timeout(*b, 5);
}

static void test_attr_stream_round_trip_and_greeting(void **state)
{
    stream *a, *b;
    attr_list *out = attr_new(), *in = attr_new();
    long long v;

    (void) state;
    stream_pair(&a, &b);
    assert_int_equal(attr_greet(a, "cleanup"), 0);
    assert_int_equal(attr_expect_greeting(b, "cleanup"), 0);
    assert_int_equal(attr_greet(a, "qmgr"), 0);
    warn_count = 0;
    assert_int_equal(attr_expect_greeting(b, "cleanup"), ATTR_BAD);
    assert_int_equal(warn_count, 1);
    assert_non_null(strstr(last_warn, "qmgr"));

    attr_put_str(out, "queue_id", "4ABCDEF");
    attr_put_int(out, "flags", 7);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(attr_write(a, out), 0);
        assert_int_equal(attr_read(b, in, 1024), 0);
        assert_string_equal(attr_get_str(in, "queue_id"), "4ABCDEF");
        assert_int_equal(attr_get_int(in, "flags", &v), 0);
        assert_true(v == 7);
    }
    /* a frame larger than the reader's limit is refused before reading it */
    attr_clear(out);
    {
        char big[2000];

        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        attr_put_str(out, "big", big);
    }
    assert_int_equal(attr_write(a, out), 0);
    warn_count = 0;
    assert_int_equal(attr_read(b, in, 1024), ATTR_BAD);
    assert_int_equal(warn_count, 1);
    assert_non_null(strstr(last_warn, "exceeds"));
    /* EOF: clean before a frame, malformed in the middle of one */
    stream_close(a);
    {
        stream *c, *d;

        stream_pair(&c, &d);
        assert_int_equal(stream_write(c,
                                      "\0\0\0\x10"
                                      "s\0\1a",
                                      8),
                         0);
        assert_int_equal(stream_flush(c), 0);
        stream_close(c);
        assert_int_equal(attr_read(d, in, 0), ATTR_BAD);
        stream_close(d);
    }
    attr_free(out);
    attr_free(in);
    stream_close(b);
}

static void test_attr_stream_rejects_oversized_length_without_allocating(void **state)
{
    stream *a, *b;
    attr_list *in = attr_new();

    (void) state;
    stream_pair(&a, &b);
    /* a 4 GB length: must be refused from the header alone */
    assert_int_equal(stream_write(a, "\xff\xff\xff\xff", 4), 0);
    assert_int_equal(stream_flush(a), 0);
    assert_int_equal(attr_read(b, in, 0), ATTR_BAD);
    /* just over ATTR_FRAME_MAX with no explicit limit */
    assert_int_equal(stream_write(a, "\x01\x00\x00\x01", 4), 0);
    assert_int_equal(stream_flush(a), 0);
    assert_int_equal(attr_read(b, in, 0), ATTR_BAD);
    stream_close(a);
    assert_int_equal(attr_read(b, in, 0), STREAM_EOF);
    stream_close(b);
    attr_free(in);
}

static void test_attr_fds_travel_over_socketpair(void **state)
{
    int sv[2], p1[2], p2[2];
    attr_list *out = attr_new(), *in = attr_new();
    int fd_a, fd_b, fdnum = -1;
    char buf[8];
    const char *note = NULL;
    attr_spec specs[] = {ATTR_SPEC_STR("note", ATTR_REQUIRED, &note), ATTR_SPEC_FD("first", ATTR_REQUIRED, &fdnum),
                         ATTR_SPEC_FD("second", ATTR_REQUIRED, NULL), ATTR_SPEC_END};

    (void) state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(pipe(p1), 0);
    assert_int_equal(pipe(p2), 0);
    attr_put_str(out, "note", "two pipes");
    attr_put_fd(out, "first", p1[1]);
    attr_put_fd(out, "second", p2[1]);
    assert_int_equal(attr_sendmsg(sv[0], out, 5), 0);
    assert_int_equal(attr_recvmsg(sv[1], in, 4096, 5), 0);
    assert_int_equal(attr_scan(in, specs), 0);
    assert_string_equal(note, "two pipes");
    assert_true(fdnum >= 0);
    fd_a = attr_take_fd(in, "first");
    assert_int_equal(fd_a, fdnum);
    assert_int_equal(attr_take_fd(in, "first"), -1); /* only once */
    assert_true(fcntl(fd_a, F_GETFD) & FD_CLOEXEC);
    /* the received descriptor is the pipe's write end */
    assert_int_equal(write(fd_a, "hi", 2), 2);
    assert_int_equal(read(p1[0], buf, sizeof(buf)), 2);
    assert_memory_equal(buf, "hi", 2);
    /* the second, not taken, is closed by attr_free: its pipe sees EOF */
    fd_b = -1;
    {
        const void *v;
        const char *name;

        assert_int_equal(attr_nth(in, 2, &name, &v, NULL), ATTR_TYPE_FD);
        fd_b = *(const int *) v;
    }
    assert_true(fd_b >= 0);
    close(p2[1]);
    attr_free(in);
    assert_int_equal(fcntl(fd_b, F_GETFD), -1);
    assert_int_equal(read(p2[0], buf, sizeof(buf)), 0);
    close(fd_a);
    close(p1[1]);
    close(p1[0]);
    close(p2[0]);
    close(sv[0]);
    close(sv[1]);
    attr_free(out);
}

/* A frame whose descriptor index is bad: the descriptors are all closed. */
static void test_attr_recvmsg_closes_fds_of_rejected_frame(void **state)
{
    int sv[2], p[2];
    int before;
    attr_list *in = attr_new();
    vbuf frame;
    struct msghdr mh;
    struct iovec iov;
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int) * 2)];
    } cb;
    struct cmsghdr *c;
    int fds[2];

    (void) state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(pipe(p), 0);
    before = open_fd_count();
    /* rows: payload referencing index 5 of 2 fds; unreferenced extra fd; bad name */
    for (int row = 0; row < 3; row++) {
        vbuf payload;
        int expect = row == 1 ? 0 : ATTR_BAD;

        vbuf_init(&payload, 0);
        vbuf_init(&frame, 0);
        if (row == 0)
            raw_attr(&payload, 'f', "fd", 2, "\0\0\0\5", 4);
        else if (row == 1)
            raw_attr(&payload, 'f', "fd", 2, "\0\0\0\1", 4);
        else
            raw_attr(&payload, 'f', "BAD", 3, "\0\0\0\0", 4);
        vbuf_putc(&frame, 0);
        vbuf_putc(&frame, 0);
        vbuf_putc(&frame, 0);
        vbuf_putc(&frame, (int) payload.len);
        vbuf_append(&frame, payload.data, payload.len);
        memset(&mh, 0, sizeof(mh));
        memset(&cb, 0, sizeof(cb));
        iov.iov_base = frame.data;
        iov.iov_len = frame.len;
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = cb.b;
        mh.msg_controllen = sizeof(cb.b);
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * 2);
        fds[0] = p[0];
        fds[1] = p[1];
        memcpy(CMSG_DATA(c), fds, sizeof(fds));
        assert_int_equal(sendmsg(sv[0], &mh, 0), (ssize_t) frame.len);
        if (attr_recvmsg(sv[1], in, 4096, 5) != expect)
            fail_msg("row %d: wrong verdict", row);
        if (row == 1) {
            int fd = attr_take_fd(in, "fd");

            assert_true(fd >= 0);
            close(fd);
        }
        attr_clear(in);
        assert_int_equal(open_fd_count(), before);
        vbuf_release(&payload);
        vbuf_release(&frame);
    }
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
    attr_free(in);
}

/* More descriptors than ATTR_MAX_FDS: control data truncated, all closed. */
static void test_attr_recvmsg_rejects_too_many_fds(void **state)
{
    int sv[2], p[2];
    int before;
    attr_list *in = attr_new();
    struct msghdr mh;
    struct iovec iov;
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int) * 16)];
    } cb;
    struct cmsghdr *c;
    int fds[16];
    char frame[4] = {0, 0, 0, 0};

    (void) state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(pipe(p), 0);
    before = open_fd_count();
    for (int i = 0; i < 16; i++)
        fds[i] = p[i % 2];
    memset(&mh, 0, sizeof(mh));
    memset(&cb, 0, sizeof(cb));
    iov.iov_base = frame;
    iov.iov_len = sizeof(frame);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cb.b;
    mh.msg_controllen = sizeof(cb.b);
    c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(fds));
    memcpy(CMSG_DATA(c), fds, sizeof(fds));
    assert_int_equal(sendmsg(sv[0], &mh, 0), 4);
    warn_count = 0;
    assert_int_equal(attr_recvmsg(sv[1], in, 4096, 5), ATTR_BAD);
    assert_true(warn_count >= 1);
    assert_int_equal(open_fd_count(), before);
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
    attr_free(in);
}

static void test_attr_recvmsg_times_out_and_sees_eof(void **state)
{
    int sv[2];
    attr_list *in = attr_new();

    (void) state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(attr_recvmsg(sv[1], in, 0, 1), STREAM_TIMEOUT);
    assert_int_equal(write(sv[0], "\0\0", 2), 2);
    close(sv[0]);
    assert_int_equal(attr_recvmsg(sv[1], in, 0, 1), STREAM_EOF);
    close(sv[1]);
    attr_free(in);
}

/* A frame far larger than the socket buffer, with a descriptor, between processes. */
static void test_attr_large_frame_with_fd_between_processes(void **state)
{
    int sv[2], p[2], status;
    size_t big = 3 * 1024 * 1024;
    char *data = malloc(big);
    pid_t pid;

    (void) state;
    assert_non_null(data);
    for (size_t i = 0; i < big; i++)
        data[i] = (char) (i * 7);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(pipe(p), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        attr_list *in = attr_new();
        const void *got;
        size_t len = 0;
        int fd, ok;

        close(sv[0]);
        ok = attr_recvmsg(sv[1], in, 4 * 1024 * 1024, 10) == 0 && (got = attr_get_data(in, "body", &len)) != NULL &&
             len == big && memcmp(got, data, big) == 0 && (fd = attr_take_fd(in, "pipe")) >= 0 &&
             write(fd, "k", 1) == 1;
        attr_free(in);
        _exit(ok ? 0 : 1);
    }
    close(sv[1]);
    {
        attr_list *out = attr_new();
        char c;

        attr_put_data(out, "body", data, big);
        attr_put_fd(out, "pipe", p[1]);
        assert_int_equal(attr_sendmsg(sv[0], out, 10), 0);
        close(p[1]);
        assert_int_equal(read(p[0], &c, 1), 1); /* the child wrote through the passed fd */
        assert_int_equal(c, 'k');
        attr_free(out);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(p[0]);
    close(sv[0]);
    /* a limit smaller than the frame: refused from the header alone */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        attr_list *out = attr_new();

        close(sv[1]);
        attr_put_data(out, "body", data, big);
        (void) attr_sendmsg(sv[0], out, 10); /* the reader gives up: EPIPE */
        _exit(0);
    }
    close(sv[0]);
    {
        attr_list *in = attr_new();

        warn_count = 0;
        assert_int_equal(attr_recvmsg(sv[1], in, 1024 * 1024, 10), ATTR_BAD);
        assert_non_null(strstr(last_warn, "exceeds the limit"));
        assert_int_equal(attr_count(in), 0);
        attr_free(in);
    }
    close(sv[1]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_attr_round_trip_every_type, setup),
        cmocka_unit_test_setup(test_attr_repeated_names_keep_order, setup),
        cmocka_unit_test_setup(test_attr_scan_is_strict, setup),
        cmocka_unit_test_setup(test_attr_decode_rejects_hostile_frames, setup),
        cmocka_unit_test_setup(test_attr_stream_round_trip_and_greeting, setup),
        cmocka_unit_test_setup(test_attr_stream_rejects_oversized_length_without_allocating, setup),
        cmocka_unit_test_setup(test_attr_fds_travel_over_socketpair, setup),
        cmocka_unit_test_setup(test_attr_recvmsg_closes_fds_of_rejected_frame, setup),
        cmocka_unit_test_setup(test_attr_recvmsg_rejects_too_many_fds, setup),
        cmocka_unit_test_setup(test_attr_recvmsg_times_out_and_sees_eof, setup),
        cmocka_unit_test_setup(test_attr_large_frame_with_fd_between_processes, setup),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
