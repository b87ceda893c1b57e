/* Unit tests for the smtp client's 8-bit to quoted-printable conversion and reply reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../smtp/smtp.h"

/* qp_decode - decode quoted-printable (test helper) */
static size_t qp_decode(const char *in, size_t len, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        if (in[i] == '=' && i + 2 < len && in[i + 1] == '\r' && in[i + 2] == '\n') {
            i += 2;
        } else if (in[i] == '=' && i + 2 < len) {
            char hex[3] = {in[i + 1], in[i + 2], 0};

            out[o++] = (char) strtol(hex, NULL, 16);
            i += 2;
        } else {
            out[o++] = in[i];
        }
    }
    return o;
}

static int all_7bit(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char) p[i] & 0x80)
            return 0;
    return 1;
}

/* max_line - longest line (without CRLF) */
static size_t max_line(const char *p, size_t n)
{
    size_t best = 0, cur = 0;

    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n') {
            if (cur > 0 && p[i - 1] == '\r')
                cur--;
            if (cur > best)
                best = cur;
            cur = 0;
        } else {
            cur++;
        }
    }
    return cur > best ? cur : best;
}

static void test_mime_plain_8bit_body_becomes_quoted_printable(void **state)
{
    const char *msg = "Subject: hi\r\nContent-Type: text/plain; charset=utf-8\r\n"
                      "Content-Transfer-Encoding: 8bit\r\n\r\n"
                      "Gr\xc3\xbc\xc3\x9f" "e = equals\r\ntrailing space \r\n.dot line\r\n";
    const char *body_in = strstr(msg, "\r\n\r\n") + 4;
    vbuf out;
    char *body, decoded[512];
    size_t n;

    (void) state;
    vbuf_init(&out, 0);
    assert_int_equal(smtp_mime_to_7bit(msg, strlen(msg), &out), 0);
    assert_true(all_7bit(out.data, out.len));
    assert_non_null(strstr(out.data, "Content-Transfer-Encoding: quoted-printable\r\n"));
    assert_null(strstr(out.data, "Content-Transfer-Encoding: 8bit"));
    assert_non_null(strstr(out.data, "MIME-Version: 1.0\r\n"));
    body = strstr(out.data, "\r\n\r\n") + 4;
    n = qp_decode(body, strlen(body), decoded);
    assert_int_equal(n, strlen(body_in));
    assert_memory_equal(decoded, body_in, n);
    vbuf_release(&out);
}

static void test_mime_long_line_gets_soft_breaks(void **state)
{
    char msg[600];
    vbuf out;
    char *body, decoded[1200];
    size_t n;

    (void) state;
    memcpy(msg, "Subject: x\r\n\r\n", 14);
    for (int i = 0; i < 300; i++)
        msg[14 + i] = (i % 3 == 0) ? (char) 0xe9 : 'a';
    memcpy(msg + 314, "\r\n", 3);
    vbuf_init(&out, 0);
    assert_int_equal(smtp_mime_to_7bit(msg, strlen(msg), &out), 0);
    assert_true(max_line(out.data, out.len) <= 76);
    body = strstr(out.data, "\r\n\r\n") + 4;
    n = qp_decode(body, strlen(body), decoded);
    assert_int_equal(n, 302);
    assert_memory_equal(decoded, msg + 14, 302);
    vbuf_release(&out);
}

static void test_mime_multipart_converts_only_8bit_parts(void **state)
{
    const char *msg = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BB\"\r\n\r\n"
                      "preamble\r\n--BB\r\nContent-Type: text/plain\r\n\r\nplain ascii\r\n"
                      "--BB\r\nContent-Type: text/plain; charset=latin1\r\n\r\ncaf\xe9\r\n"
                      "--BB\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                      "AAEC\r\n--BB--\r\nepilogue\r\n";
    vbuf out;

    (void) state;
    vbuf_init(&out, 0);
    assert_int_equal(smtp_mime_to_7bit(msg, strlen(msg), &out), 0);
    assert_true(all_7bit(out.data, out.len));
    assert_non_null(strstr(out.data, "\r\n\r\nplain ascii\r\n--BB\r\n"));
    assert_non_null(strstr(out.data, "Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9\r\n--BB\r\n"));
    assert_non_null(strstr(out.data, "base64\r\n\r\nAAEC\r\n--BB--\r\nepilogue\r\n"));
    /* Exactly one part converted. */
    assert_null(strstr(strstr(out.data, "quoted-printable") + 1, "quoted-printable"));
    vbuf_release(&out);
}

static void test_mime_deep_nesting_refused(void **state)
{
    vbuf msg, out;

    (void) state;
    vbuf_init(&msg, 0);
    vbuf_init(&out, 0);
    for (int i = 0; i < 40; i++)
        vbuf_puts(&msg, "Content-Type: message/rfc822\r\n\r\n");
    vbuf_puts(&msg, "Subject: deep\r\n\r\n\xff\r\n");
    assert_int_equal(smtp_mime_to_7bit(msg.data, msg.len, &out), -1);
    vbuf_release(&msg);
    vbuf_release(&out);
}

static void test_mime_needs_8bit(void **state)
{
    (void) state;
    assert_false(smtp_mime_needs_8bit("abc\r\n", 5));
    assert_true(smtp_mime_needs_8bit("ab\x80", 3));
}

/* read_reply_from - feed text to smtp_reply_read through a socketpair */
static int read_reply_from(const char *text, smtp_reply *r, vbuf *lines)
{
    int sv[2];
    stream *s;
    int code;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(write(sv[1], text, strlen(text)), (ssize_t) strlen(text));
    close(sv[1]);
    s = stream_open(sv[0]);
    stream_set_timeout(s, 5);
    code = smtp_reply_read(s, r, lines);
    stream_close(s);
    return code;
}

static void test_reply_multiline_with_enhanced_code(void **state)
{
    smtp_reply r;
    vbuf lines;

    (void) state;
    smtp_reply_init(&r);
    vbuf_init(&lines, 0);
    assert_int_equal(read_reply_from("250-mx.example\r\n250-SIZE 1000\r\n250 PIPELINING\r\n", &r, &lines), 250);
    assert_string_equal(r.dsn, "2.0.0");
    assert_string_equal(lines.data, "mx.example");
    assert_string_equal(lines.data + strlen("mx.example") + 1, "SIZE 1000");
    assert_int_equal(read_reply_from("550 5.1.1 <x@y>: no such user\r\n", &r, NULL), 550);
    assert_string_equal(r.dsn, "5.1.1");
    assert_string_equal(r.text.data, "550 5.1.1 <x@y>: no such user");
    vbuf_release(&lines);
    smtp_reply_free(&r);
}

static void test_reply_hostile_inputs_rejected(void **state)
{
    static const char *const bad[] = {
        "25\r\n",                       /* too short */
        "abc hello\r\n",                /* not digits */
        "250-first\r\n251 second\r\n",  /* code changes */
        "250xmissing separator\r\n",
        "199 too small\r\n",
        "600 too big\r\n",
    };
    smtp_reply r;

    (void) state;
    smtp_reply_init(&r);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_true(read_reply_from(bad[i], &r, NULL) <= 0);
    /* EOF in the middle of a multi-line reply. */
    assert_true(read_reply_from("250-first\r\n", &r, NULL) < 0);
    /* Mismatched enhanced class is not trusted. */
    assert_int_equal(read_reply_from("550 2.0.0 odd\r\n", &r, NULL), 550);
    assert_string_equal(r.dsn, "5.0.0");
    smtp_reply_free(&r);
}

static void test_reply_overlong_line_is_cut_not_fatal(void **state)
{
    vbuf text;
    smtp_reply r;

    (void) state;
    vbuf_init(&text, 0);
    vbuf_puts(&text, "250 ");
    for (int i = 0; i < 5000; i++)
        vbuf_putc(&text, 'x');
    vbuf_puts(&text, "\r\n");
    smtp_reply_init(&r);
    assert_int_equal(read_reply_from(text.data, &r, NULL), 250);
    assert_true(r.text.len <= 2048);
    smtp_reply_free(&r);
    vbuf_release(&text);
}

static void test_ehlo_keyword_matching(void **state)
{
    const char *arg;

    (void) state;
    assert_true(smtp_reply_is_ehlo_keyword("SIZE 1000", "SIZE", &arg));
    assert_string_equal(arg, "1000");
    assert_true(smtp_reply_is_ehlo_keyword("pipelining", "PIPELINING", NULL));
    assert_false(smtp_reply_is_ehlo_keyword("SIZEX", "SIZE", NULL));
    assert_true(smtp_reply_is_ehlo_keyword("AUTH=PLAIN LOGIN", "AUTH", &arg));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mime_plain_8bit_body_becomes_quoted_printable),
        cmocka_unit_test(test_mime_long_line_gets_soft_breaks),
        cmocka_unit_test(test_mime_multipart_converts_only_8bit_parts),
        cmocka_unit_test(test_mime_deep_nesting_refused),
        cmocka_unit_test(test_mime_needs_8bit),
        cmocka_unit_test(test_reply_multiline_with_enhanced_code),
        cmocka_unit_test(test_reply_hostile_inputs_rejected),
        cmocka_unit_test(test_reply_overlong_line_is_cut_not_fatal),
        cmocka_unit_test(test_ehlo_keyword_matching),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
