/*
 * Unit tests for stream over real socketpairs: line endings (CRLF, bare LF,
 * none), overlong lines in pieces, exact-length reads, timeouts and
 * deadlines, non-blocking mode without losing partial lines, buffered
 * writes, and a plugged-in transport.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "stream.h"
#include "vbuf.h"

static int peer;   /* the test's end of the socketpair */
static stream *st; /* the stream under test */

static int setup(void **state)
{
    int sv[2];

    (void) state;
    signal(SIGPIPE, SIG_IGN);
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return -1;
    peer = sv[0];
    st = stream_open(sv[1]);
    stream_set_timeout(st, 5);
    return 0;
}

static int teardown(void **state)
{
    (void) state;
    stream_close(st);
    if (peer >= 0)
        close(peer);
    return 0;
}

/* put - write all of text to the peer end */
static void put(const char *text, size_t len)
{
    while (len > 0) {
        ssize_t n = write(peer, text, len);

        assert_true(n > 0);
        text += n;
        len -= (size_t) n;
    }
}

static void puts_peer(const char *text)
{
    put(text, strlen(text));
}

static void close_peer(void)
{
    close(peer);
    peer = -1;
}

static double now(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return tv.tv_sec + tv.tv_usec / 1e6;
}

static void test_stream_getline_reports_line_endings(void **state)
{
    static const struct {
        const char *text;
        int flags;
    } want[] = {
        {"crlf line", STREAM_LINE_CRLF},
        {"bare lf", STREAM_LINE_LF},
        {"", STREAM_LINE_CRLF},
        {"", STREAM_LINE_LF},
        {"cr\rinside", STREAM_LINE_LF},
        {"nul\0byte", STREAM_LINE_CRLF},
        {"no newline at end", STREAM_LINE_NOEOL},
    };
    vbuf line;

    (void) state;
    vbuf_init(&line, 0);
    {
        static const char input[] = "crlf line\r\nbare lf\n\r\n\ncr\rinside\nnul\0byte\r\nno newline at end";

        put(input, sizeof(input) - 1);
    }
    close_peer();
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        int flags = -1;
        ssize_t n = stream_getline(st, &line, 100, &flags);
        size_t wlen = i == 5 ? 8 : strlen(want[i].text);

        assert_int_equal(n, (ssize_t) wlen);
        assert_int_equal(line.len, wlen);
        assert_memory_equal(line.data, want[i].text, wlen);
        if (flags != want[i].flags)
            fail_msg("line %zu: flags %d, want %d", i, flags, want[i].flags);
    }
    {
        int flags;

        assert_int_equal(stream_getline(st, &line, 100, &flags), STREAM_EOF);
        assert_int_equal(stream_getline(st, &line, 100, &flags), STREAM_EOF);
    }
    vbuf_release(&line);
}

static void test_stream_getline_exact_length_and_overlong_pieces(void **state)
{
    static const struct {
        const char *text;
        int flags;
    } want[] = {
        {"abcde", STREAM_LINE_CRLF},                                    /* exactly maxlen, CRLF */
        {"fghij", STREAM_LINE_LF},                                      /* exactly maxlen, LF */
        {"12345", STREAM_LINE_TOOLONG},                                 /* maxlen + 1 with CRLF */
        {"6", STREAM_LINE_CRLF},        {"ABCDE", STREAM_LINE_TOOLONG}, /* maxlen + 1 with LF */
        {"F", STREAM_LINE_LF},          {"long-", STREAM_LINE_TOOLONG}, /* several pieces */
        {"line-", STREAM_LINE_TOOLONG}, {"in-pi", STREAM_LINE_TOOLONG},
        {"eces", STREAM_LINE_CRLF},     {"vwxyz", STREAM_LINE_TOOLONG}, /* maxlen + CR: the CR is data */
        {"\r", STREAM_LINE_NOEOL},
    };
    vbuf line;

    (void) state;
    vbuf_init(&line, 0);
    puts_peer("abcde\r\nfghij\n123456\r\nABCDEF\nlong-line-in-pieces\r\nvwxyz\r");
    close_peer();
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        int flags = -1;
        ssize_t n = stream_getline(st, &line, 5, &flags);

        if (n != (ssize_t) strlen(want[i].text) || strcmp(line.data, want[i].text) != 0 || flags != want[i].flags)
            fail_msg("piece %zu: got \"%s\" (%zd) flags %d, want \"%s\" flags %d", i, line.data, n, flags, want[i].text,
                     want[i].flags);
    }
    vbuf_release(&line);
}

static void test_stream_getline_huge_line_stays_bounded(void **state)
{
    static char big[300000];
    vbuf line;
    size_t total = 0;
    int flags, pieces = 0;
    pid_t pid;

    (void) state;
    vbuf_init(&line, 0);
    memset(big, 'x', sizeof(big));
    big[sizeof(big) - 1] = '\n';
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* the writer: more than a socket buffer holds */
        put(big, sizeof(big));
        _exit(0);
    }
    for (;;) {
        ssize_t n = stream_getline(st, &line, 1000, &flags);

        assert_true(n >= 0);
        assert_true(line.len <= 1000);
        total += (size_t) n;
        pieces++;
        if (!(flags & STREAM_LINE_TOOLONG)) {
            assert_int_equal(flags, STREAM_LINE_LF);
            break;
        }
    }
    {
        int status;

        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    assert_int_equal(total, sizeof(big) - 1);
    assert_int_equal(pieces, 300);
    assert_true(stream_input_buffered(st) == 0);
    vbuf_release(&line);
}

static void test_stream_read_exact_across_writes(void **state)
{
    char buf[16];
    vbuf b;
    int flags;
    vbuf line;

    (void) state;
    vbuf_init(&b, 0);
    vbuf_init(&line, 0);
    puts_peer("HEAD\r\n01234");
    assert_int_equal(stream_getline(st, &line, 100, &flags), 4);
    puts_peer("56789abcdefXYZ");
    assert_int_equal(stream_read_exact(st, buf, 16), 0);
    assert_memory_equal(buf, "0123456789abcdef", 16);
    assert_int_equal(stream_read_vbuf(st, &b, 3), 0);
    assert_string_equal(b.data, "XYZ");
    /* a short read at EOF is an error, not partial success */
    puts_peer("abc");
    close_peer();
    assert_int_equal(stream_read_exact(st, buf, 10), STREAM_EOF);
    vbuf_release(&b);
    vbuf_release(&line);
}

static void test_stream_read_returns_rest_of_split_line(void **state)
{
    vbuf line;
    char buf[32];
    int flags;

    (void) state;
    vbuf_init(&line, 0);
    puts_peer("0123456789\r\n");
    assert_int_equal(stream_getline(st, &line, 4, &flags), 4);
    assert_int_equal(flags, STREAM_LINE_TOOLONG);
    /* the byte held back for CR detection is not lost to a raw read */
    assert_int_equal(stream_read_exact(st, buf, 8), 0);
    assert_memory_equal(buf, "456789\r\n", 8);
    stream_set_timeout(st, 0);
    assert_int_equal(stream_getc(st), STREAM_AGAIN); /* nothing more */
    vbuf_release(&line);
}

static void test_stream_timeout_and_deadline(void **state)
{
    vbuf line;
    int flags;
    double t0;

    (void) state;
    vbuf_init(&line, 0);
    stream_set_timeout(st, 1);
    t0 = now();
    assert_int_equal(stream_getline(st, &line, 100, &flags), STREAM_TIMEOUT);
    assert_true(now() - t0 >= 0.9);
    assert_true(now() - t0 < 3);
    /* a deadline in the past wins over a long timeout */
    stream_set_timeout(st, 60);
    stream_set_deadline(st, time(NULL) - 1);
    t0 = now();
    assert_int_equal(stream_read(st, (char[4]){0}, 4), STREAM_TIMEOUT);
    assert_true(now() - t0 < 1);
    /* data that arrived is still returned after a timeout */
    stream_set_deadline(st, 0);
    puts_peer("late\n");
    assert_int_equal(stream_getline(st, &line, 100, &flags), 4);
    assert_string_equal(line.data, "late");
    assert_string_equal(stream_strerror(STREAM_TIMEOUT), "timeout");
    vbuf_release(&line);
}

static void test_stream_nonblocking_keeps_partial_line(void **state)
{
    vbuf line;
    int flags;

    (void) state;
    vbuf_init(&line, 0);
    stream_set_timeout(st, 0);
    assert_int_equal(stream_getline(st, &line, 100, &flags), STREAM_AGAIN);
    puts_peer("MAIL FROM:<a@");
    assert_int_equal(stream_getline(st, &line, 100, &flags), STREAM_AGAIN);
    assert_int_equal(stream_input_buffered(st), 13);
    puts_peer("example.com>");
    assert_int_equal(stream_getline(st, &line, 100, &flags), STREAM_AGAIN);
    puts_peer("\r\nRCPT");
    assert_int_equal(stream_getline(st, &line, 100, &flags), 25);
    assert_string_equal(line.data, "MAIL FROM:<a@example.com>");
    assert_int_equal(flags, STREAM_LINE_CRLF);
    assert_int_equal(stream_getline(st, &line, 100, &flags), STREAM_AGAIN);
    assert_int_equal(stream_wait_readable(st), 0); /* "RCPT" is buffered */
    stream_discard_input(st);
    assert_int_equal(stream_input_buffered(st), 0);
    assert_int_equal(stream_wait_readable(st), STREAM_AGAIN);
    vbuf_release(&line);
}

static void test_stream_writes_are_buffered_until_flush(void **state)
{
    char buf[64];
    ssize_t n;

    (void) state;
    assert_int_equal(stream_printf(st, "250-%s\r\n", "kite.test"), 0);
    assert_int_equal(stream_puts(st, "250 OK\r\n"), 0);
    assert_int_equal(stream_output_pending(st), 23);
    assert_int_equal(recv(peer, buf, sizeof(buf), MSG_DONTWAIT), -1);
    assert_int_equal(stream_flush(st), 0);
    assert_int_equal(stream_output_pending(st), 0);
    n = read(peer, buf, sizeof(buf));
    assert_int_equal(n, 23);
    assert_memory_equal(buf, "250-kite.test\r\n250 OK\r\n", 23);
}

static void test_stream_nonblocking_write_keeps_pending_output(void **state)
{
    static char chunk[65536];
    size_t written = 0, drained = 0;
    int ret;

    (void) state;
    memset(chunk, 'w', sizeof(chunk));
    stream_set_timeout(st, 0);
    /* fill the socket until the stream has to keep output back */
    do {
        ret = stream_write(st, chunk, sizeof(chunk));
        written += sizeof(chunk);
    } while (ret == 0 && written < 64 * sizeof(chunk));
    assert_int_equal(ret, STREAM_AGAIN);
    assert_true(stream_output_pending(st) > 0);
    /* the peer drains; each flush moves more until nothing is pending */
    while (stream_output_pending(st) > 0) {
        char buf[65536];
        ssize_t n = recv(peer, buf, sizeof(buf), 0); /* the socket is full: no wait */

        assert_true(n > 0);
        drained += (size_t) n;
        ret = stream_flush(st);
        assert_true(ret == 0 || ret == STREAM_AGAIN);
    }
    {
        char buf[65536];
        ssize_t n;

        while ((n = recv(peer, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
            drained += (size_t) n;
    }
    assert_int_equal(drained, written);
}

static void test_stream_write_to_closed_peer_is_an_error(void **state)
{
    (void) state;
    close_peer();
    assert_int_equal(stream_puts(st, "data\r\n"), 0);
    assert_int_equal(stream_flush(st), STREAM_ERR);
}

/* A transport that swaps letter case both ways, to show the hook is used. */
static int xform_reads, xform_writes;

static ssize_t xform_read(void *ctx, int fd, void *buf, size_t len, short *want)
{
    ssize_t n = read(fd, buf, len);

    (void) ctx;
    if (n < 0 && errno == EAGAIN)
        *want = POLLIN;
    for (ssize_t i = 0; i < n; i++) {
        char *c = (char *) buf + i;

        if (*c >= 'a' && *c <= 'z')
            *c = (char) (*c - 32);
    }
    xform_reads++;
    return n;
}

static ssize_t xform_write(void *ctx, int fd, const void *buf, size_t len, short *want)
{
    char tmp[256];
    size_t n = len < sizeof(tmp) ? len : sizeof(tmp);

    (void) ctx;
    for (size_t i = 0; i < n; i++) {
        char c = ((const char *) buf)[i];

        tmp[i] = (c >= 'A' && c <= 'Z') ? (char) (c + 32) : c;
    }
    xform_writes++;
    (void) want;
    return write(fd, tmp, n);
}

static size_t xform_pending(void *ctx)
{
    return *(size_t *) ctx;
}

static void test_stream_uses_plugged_transport(void **state)
{
    static const stream_transport xform = {xform_read, xform_write, xform_pending};
    static size_t pending = 7;
    vbuf line;
    char buf[16];
    int flags;

    (void) state;
    vbuf_init(&line, 0);
    stream_set_transport(st, &xform, &pending);
    assert_ptr_equal(stream_transport_ctx(st), &pending);
    puts_peer("hello\r\n");
    assert_int_equal(stream_getline(st, &line, 100, &flags), 5);
    assert_string_equal(line.data, "HELLO");
    assert_true(xform_reads > 0);
    assert_int_equal(stream_input_buffered(st), 7); /* the transport's own bytes count */
    assert_int_equal(stream_puts(st, "QUIT\r\n"), 0);
    assert_int_equal(stream_flush(st), 0);
    assert_true(xform_writes > 0);
    assert_int_equal(read(peer, buf, sizeof(buf)), 6);
    assert_memory_equal(buf, "quit\r\n", 6);
    stream_set_transport(st, NULL, NULL); /* back to plain */
    puts_peer("plain\n");
    assert_int_equal(stream_getline(st, &line, 100, &flags), 5);
    assert_string_equal(line.data, "plain");
    vbuf_release(&line);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stream_getline_reports_line_endings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_getline_exact_length_and_overlong_pieces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_getline_huge_line_stays_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_read_exact_across_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_read_returns_rest_of_split_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_timeout_and_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_nonblocking_keeps_partial_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_writes_are_buffered_until_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_nonblocking_write_keeps_pending_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_write_to_closed_peer_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_uses_plugged_transport, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
