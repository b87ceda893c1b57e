/*
 * Unit tests for smtpd's protocol engine, run in-process over a real
 * socketpair: command syntax and reply codes, EHLO keywords, pipelining
 * order, the DATA scanner (smuggling variants, dot-stuffing, long lines,
 * NUL, size), BDAT argument parsing, CIDR matching, and the SASL math
 * (RFC 2195 and RFC 7677 test vectors, crypt(3) and {PLAIN} secrets).
 * No cleanup daemon runs here, so recipients get 451 once accepted by
 * policy; the integration tests cover queuing.
 */
#include <crypt.h>
#include <stdio.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../smtpd/smtpd.h"
#include "base64.h"
#include "conf.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "strutil.h"
#include "vbuf.h"

/* ---- a session over a socketpair ---- */

typedef struct harness {
    int client;
    smtpd_session *s;
    vbuf out;
    int last;
} harness;

/* h_open - a session for a client at addr, past the greeting */
static void h_open(harness *h, const char *addr)
{
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    h->client = sv[0];
    h->s = smtpd_session_new(sv[1], 0, "client.example", addr, "4321");
    h->s->sleep_ms = 0;
    vbuf_init(&h->out, 0);
}

/* h_talk - send text, run the engine until it waits, return all replies */
static const char *h_talk(harness *h, const char *text, size_t len)
{
    char buf[4096];
    ssize_t n;
    int r, rounds = 0;

    vbuf_reset(&h->out);
    if (len)
        assert_int_equal(write(h->client, text, len), (ssize_t) len);
    do {
        h->s->sleep_ms = 0;
        r = smtpd_run(h->s);
        while ((n = read(h->client, buf, sizeof(buf))) > 0)
            vbuf_append(&h->out, buf, (size_t) n);
    } while ((r == SMTPD_WANT_SLEEP || r == SMTPD_WANT_WRITE) && ++rounds < 100);
    h->last = r;
    return vbuf_str(&h->out);
}

#define TALK(h, str) h_talk((h), (str), sizeof(str) - 1)

/* h_close - end the session */
static void h_close(harness *h)
{
    smtpd_session_free(h->s);
    close(h->client);
    vbuf_release(&h->out);
}

/* starts_with - reply check helper */
static void expect_prefix(const char *got, const char *want)
{
    if (strncmp(got, want, strlen(want)) != 0)
        fail_msg("expected \"%s\", got \"%s\"", want, got);
}

static int setup_conf(void **state)
{
    (void) state;
    conf_reset();
    conf_override("myhostname", "mx.kite.test");
    conf_override("mydestination", "kite.test localhost");
    conf_override("local_recipient_maps", "inline:{alice=x}");
    conf_override("virtual_mailbox_domains", "sandbox.test");
    conf_override("virtual_mailbox_maps", "inline:{bob@sandbox.test=x}");
    conf_override("mynetworks", "127.0.0.0/8");
    conf_override("message_size_limit", "2000");
    conf_override("smtpd_error_sleep_time", "0");
    conf_override("smtpd_sasl_failure_delay", "0");
    conf_override("smtpd_peername_lookup", "no");
    conf_override("smtpd_discard_ehlo_keywords", "");
    assert_int_equal(conf_load("/nonexistent-kite-dir"), 0);
    msg_stderr(getenv("TEST_VERBOSE") != NULL);
    smtpd_check_init();
    smtpd_sasl_init();
    return 0;
}

/* ---- command level ---- */

static void test_ehlo_lists_implemented_keywords_only(void **state)
{
    harness h;
    const char *r;

    (void) state;
    h_open(&h, "127.0.0.1");
    h.s->mode = SMTPD_MODE_CMD;
    r = TALK(&h, "EHLO client.example\r\n");
    expect_prefix(r, "250-mx.kite.test\r\n");
    assert_non_null(strstr(r, "250-PIPELINING\r\n"));
    assert_non_null(strstr(r, "250-SIZE 2000\r\n"));
    assert_non_null(strstr(r, "250-ENHANCEDSTATUSCODES\r\n"));
    assert_non_null(strstr(r, "250-8BITMIME\r\n"));
    assert_non_null(strstr(r, "250-DSN\r\n"));
    assert_non_null(strstr(r, "250-SMTPUTF8\r\n"));
    assert_non_null(strstr(r, "250-BINARYMIME\r\n"));
    assert_non_null(strstr(r, "250 CHUNKING\r\n"));
    assert_null(strstr(r, "STARTTLS")); /* no certificate configured */
    assert_null(strstr(r, "AUTH"));     /* AUTH not enabled */
    assert_non_null(strstr(r, "250-ETRN\r\n"));
    assert_null(strstr(r, "ATRN"));
    h_close(&h);
}

static void test_discarded_ehlo_keyword_is_hidden_and_refused(void **state)
{
    harness h;
    const char *r;

    (void) state;
    conf_override("smtpd_discard_ehlo_keywords", "chunking, dsn");
    assert_int_equal(conf_load("/nonexistent-kite-dir"), 0);
    h_open(&h, "127.0.0.1");
    h.s->mode = SMTPD_MODE_CMD;
    r = TALK(&h, "EHLO c.example\r\n");
    assert_null(strstr(r, "CHUNKING"));
    assert_null(strstr(r, "DSN"));
    r = TALK(&h, "BDAT 0 LAST\r\n");
    expect_prefix(r, "502 5.5.1");
    r = TALK(&h, "MAIL FROM:<a@b.example> RET=HDRS\r\n");
    expect_prefix(r, "555 5.5.4");
    h_close(&h);
    setup_conf(NULL);
}

static const struct {
    const char *name;
    const char *input;
    const char *reply;
} cmd_cases[] = {
    {"unknown verb", "FOO bar\r\n", "502 5.5.2 Error: command not recognized"},
    {"lower-case verbs work", "noop\r\n", "250 2.0.0 Ok"},
    {"EHLO needs a name", "EHLO\r\n", "501 5.5.4"},
    {"RSET takes no argument", "RSET x\r\n", "501 5.5.4"},
    {"RCPT before MAIL", "RCPT TO:<a@kite.test>\r\n", "503 5.5.1"},
    {"DATA before MAIL", "DATA\r\n", "503 5.5.1"},
    {"MAIL without colon", "MAIL FROM <a@b.example>\r\n", "501 5.5.4"},
    {"MAIL without brackets", "MAIL FROM:a@b.example\r\n", "501 5.1.7"},
    {"MAIL unknown parameter", "MAIL FROM:<a@b.example> FOO=1\r\n", "555 5.5.4"},
    {"MAIL SIZE above the limit", "MAIL FROM:<a@b.example> SIZE=2001\r\n", "552 5.3.4"},
    {"MAIL SIZE not a number", "MAIL FROM:<a@b.example> SIZE=12x\r\n", "501 5.5.4"},
    {"MAIL SIZE overflow", "MAIL FROM:<a@b.example> SIZE=99999999999999999999999\r\n", "501 5.5.4"},
    {"MAIL bad BODY", "MAIL FROM:<a@b.example> BODY=9BIT\r\n", "501 5.5.4"},
    {"MAIL bad RET", "MAIL FROM:<a@b.example> RET=ALL\r\n", "501 5.5.4"},
    {"MAIL bad ENVID xtext", "MAIL FROM:<a@b.example> ENVID=a+zz\r\n", "501 5.5.4"},
    {"MAIL UTF-8 sender without SMTPUTF8", "MAIL FROM:<j\xc3\xb6rg@b.example>\r\n", "553 5.6.7"},
    {"MAIL null sender", "MAIL FROM:<>\r\n", "250 2.1.0 Ok"},
    {"MAIL all parameters", "MAIL FROM:<a@b.example> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=x+2By AUTH=<> SMTPUTF8\r\n",
     "250 2.1.0 Ok"},
    {"NUL in a command", "NO\0OP\r\n", "500 5.5.2 Error: NUL character in command"},
    {"control character", "NOOP\x01\r\n", "500 5.5.2 Error: control character"},
    {"bare LF ends no command", "NOOP\n", "500 5.5.2 Error: bare <LF> received"},
    {"HELP lists commands", "HELP\r\n", "214-2.0.0"},
    {"HELP for a verb", "HELP bdat\r\n", "214 2.0.0 BDAT size [LAST]"},
    {"HELP unknown topic", "HELP frobnicate\r\n", "504 5.5.1"},
    {"STARTTLS without TLS configured", "STARTTLS\r\n", "502 5.5.1"},
    {"AUTH without SASL enabled", "AUTH PLAIN\r\n", "502 5.5.1"},
    {"ETRN for a domain that is not a fast flush domain", "ETRN kite.test\r\n",
     "459 4.7.1 <kite.test>: service unavailable"},
    {"VRFY a local user", "VRFY alice@kite.test\r\n", "252 2.0.0 <alice@kite.test>"},
    {"VRFY an unknown user", "VRFY nobody@kite.test\r\n", "550 5.1.1"},
    {"QUIT", "QUIT\r\n", "221 2.0.0 Bye"},
};

static void test_commands_get_the_right_reply_codes(void **state)
{
    size_t i;

    (void) state;
    for (i = 0; i < sizeof(cmd_cases) / sizeof(cmd_cases[0]); i++) {
        harness h;
        const char *r;

        h_open(&h, "127.0.0.1");
        h.s->mode = SMTPD_MODE_CMD;
        r = TALK(&h, "EHLO c.example\r\n");
        expect_prefix(r, "250-");
        /* The one case with an embedded NUL is sent whole. */
        r = h_talk(&h, cmd_cases[i].input,
                   strstr(cmd_cases[i].name, "NUL") ? sizeof("NO\0OP\r\n") - 1 : strlen(cmd_cases[i].input));
        if (strncmp(r, cmd_cases[i].reply, strlen(cmd_cases[i].reply)) != 0)
            fail_msg("%s: expected \"%s\", got \"%s\"", cmd_cases[i].name, cmd_cases[i].reply, r);
        h_close(&h);
    }
}

static void test_enhanced_codes_only_after_ehlo(void **state)
{
    harness h;
    const char *r;

    (void) state;
    h_open(&h, "127.0.0.1");
    h.s->mode = SMTPD_MODE_CMD;
    r = TALK(&h, "HELO c.example\r\nRSET\r\n");
    assert_string_equal(r, "250 mx.kite.test\r\n250 Ok\r\n");
    r = TALK(&h, "EHLO c.example\r\n");
    r = TALK(&h, "RSET\r\n");
    assert_string_equal(r, "250 2.0.0 Ok\r\n");
    h_close(&h);
}

static void test_pipelined_commands_are_answered_in_order(void **state)
{
    harness h;
    const char *r;

    (void) state;
    h_open(&h, "127.0.0.1");
    h.s->mode = SMTPD_MODE_CMD;
    TALK(&h, "EHLO c.example\r\n");
    r = TALK(&h, "MAIL FROM:<a@b.example>\r\nRCPT TO:<x@remote.example>\r\nRCPT TO:<nobody@kite.test>\r\n"
                 "RSET\r\nNOOP\r\n");
    assert_string_equal(r, "250 2.1.0 Ok\r\n"
                           "451 4.3.0 Error: queue file write error\r\n" /* relay ok from mynetworks; no cleanup */
                           "550 5.1.1 <nobody@kite.test>: Recipient address rejected: User unknown in local "
                           "recipient table\r\n"
                           "250 2.0.0 Ok\r\n"
                           "250 2.0.0 Ok\r\n");
    h_close(&h);
}

static void test_relay_denied_outside_mynetworks(void **state)
{
    harness h;
    const char *r;

    (void) state;
    h_open(&h, "192.0.2.9");
    h.s->mode = SMTPD_MODE_CMD;
    TALK(&h, "EHLO c.example\r\nMAIL FROM:<a@b.example>\r\n");
    r = TALK(&h, "RCPT TO:<x@remote.example>\r\n");
    assert_string_equal(r, "554 5.7.1 <x@remote.example>: Relay access denied\r\n");
    r = TALK(&h, "RCPT TO:<bob@sandbox.test>\r\n");
    expect_prefix(r, "451 4.3.0"); /* accepted by policy; cleanup isn't running */
    r = TALK(&h, "RCPT TO:<carol@sandbox.test>\r\n");
    expect_prefix(r, "550 5.1.1 <carol@sandbox.test>: Recipient address rejected: User unknown in virtual mailbox");
    h_close(&h);
}

static void test_early_talker_is_refused(void **state)
{
    harness h;
    const char *r;

    (void) state;
    h_open(&h, "127.0.0.1");
    assert_int_equal(h.s->mode, SMTPD_MODE_GREET);
    r = TALK(&h, "EHLO c.example\r\n");
    expect_prefix(r, "554 Error: SMTP protocol synchronization"); /* no EHLO yet: no enhanced code */
    assert_int_equal(h.last, SMTPD_WANT_CLOSE);
    h_close(&h);
}

static void test_greeting_then_commands(void **state)
{
    harness h;
    const char *r;

    (void) state;
    h_open(&h, "127.0.0.1");
    r = TALK(&h, "");
    expect_prefix(r, "220 mx.kite.test ESMTP Kite\r\n");
    r = TALK(&h, "QUIT\r\n");
    expect_prefix(r, "221 ");
    assert_int_equal(h.last, SMTPD_WANT_CLOSE);
    h_close(&h);
}

static void test_overlong_command_line_is_refused_and_skipped(void **state)
{
    harness h;
    vbuf big;
    const char *r;

    (void) state;
    h_open(&h, "127.0.0.1");
    h.s->mode = SMTPD_MODE_CMD;
    vbuf_init(&big, 0);
    TALK(&h, "EHLO c.example\r\n");
    vbuf_puts(&big, "NOOP ");
    while (big.len < 20000)
        vbuf_putc(&big, 'x');
    vbuf_puts(&big, "\r\nNOOP\r\n");
    r = h_talk(&h, big.data, big.len);
    assert_string_equal(r, "500 5.5.2 Error: line too long\r\n250 2.0.0 Ok\r\n");
    /* 511 octets + CRLF: over RFC 5321's 512. */
    vbuf_set(&big, "NOOP ");
    while (big.len < 511)
        vbuf_putc(&big, 'y');
    vbuf_puts(&big, "\r\n");
    r = h_talk(&h, big.data, big.len);
    expect_prefix(r, "500 5.5.2");
    vbuf_release(&big);
    h_close(&h);
}

/* ---- the DATA scanner ---- */

static const struct {
    const char *name;
    const char *input;
    size_t len;
    int ended;
    int errors;
    const char *content; /* after the Received: header */
} data_cases[] = {
#define D(n, in, end, err, out)                                                                                        \
    {                                                                                                                  \
        n, in, sizeof(in) - 1, end, err, out                                                                           \
    }
    D("plain message", "Subject: x\r\n\r\nbody\r\n.\r\n", 1, 0, "Subject: x\r\n\r\nbody\r\n"),
    D("empty message", ".\r\n", 1, 0, ""),
    D("dot-stuffing removed", "..x\r\n...\r\n.\r\n", 1, 0, ".x\r\n..\r\n"),
    D("LF.LF does not end DATA", "a\n.\nMAIL FROM:<x>\r\n", 0, SMTPD_DATA_BARE_LF, NULL),
    D("CR.CR does not end DATA", "a\r.\rMAIL FROM:<x>\r\n", 0, SMTPD_DATA_BARE_CR, NULL),
    D("LF.CRLF does not end DATA", "a\n.\r\nRCPT TO:<x>\r\n", 0, SMTPD_DATA_BARE_LF, NULL),
    D("smuggled message is refused whole", "a\n.\r\nMAIL FROM:<e>\r\n.\r\n", 1, SMTPD_DATA_BARE_LF, NULL),
    D("CR.CR then real end", "a\r\n\r.\r\r\n.\r\n", 1, SMTPD_DATA_BARE_CR, NULL),
    D("NUL in the text", "a\0b\r\n.\r\n", 1, SMTPD_DATA_NUL, NULL),
    D("line of 998 octets is fine", "", 1, 0, NULL),
    D("too big", "", 1, SMTPD_DATA_TOO_BIG, NULL),
#undef D
};

static void test_data_scanner_only_crlf_dot_crlf_ends(void **state)
{
    size_t i;

    (void) state;
    for (i = 0; i < sizeof(data_cases) / sizeof(data_cases[0]); i++) {
        harness h;
        int flags, ended = 0;
        ssize_t n;
        vbuf in;

        vbuf_init(&in, 0);
        if (strcmp(data_cases[i].name, "line of 998 octets is fine") == 0) {
            while (in.len < 998)
                vbuf_putc(&in, 'a');
            vbuf_puts(&in, "\r\n.\r\n");
        } else if (strcmp(data_cases[i].name, "too big") == 0) {
            while (in.len < 3000)
                vbuf_puts(&in, "0123456789\r\n");
            vbuf_puts(&in, ".\r\n");
        } else {
            vbuf_setn(&in, data_cases[i].input, data_cases[i].len);
        }
        h_open(&h, "127.0.0.1");
        h.s->mode = SMTPD_MODE_CMD;
        smtpd_data_start(h.s);
        vbuf_reset(&h.s->content); /* drop the Received: header */
        assert_int_equal(write(h.client, in.data, in.len), (ssize_t) in.len);
        shutdown(h.client, SHUT_WR);
        while (!ended && (n = stream_getline(h.s->in, &h.s->line, 4096, &flags)) >= 0 && !(flags & STREAM_LINE_NOEOL))
            ended = smtpd_data_line(h.s, h.s->line.data, h.s->line.len, flags);
        if (ended != data_cases[i].ended || h.s->data_errors != data_cases[i].errors)
            fail_msg("%s: ended %d errors %d", data_cases[i].name, ended, h.s->data_errors);
        if (data_cases[i].content)
            assert_string_equal(vbuf_str(&h.s->content), data_cases[i].content);
        vbuf_release(&in);
        h_close(&h);
    }
}

static void test_data_line_of_1001_octets_is_refused(void **state)
{
    harness h;
    vbuf in;
    int flags, ended = 0;

    (void) state;
    vbuf_init(&in, 0);
    while (in.len < 999)
        vbuf_putc(&in, 'b');
    vbuf_puts(&in, "\r\n.\r\n"); /* 1001 octets with CRLF */
    h_open(&h, "127.0.0.1");
    smtpd_data_start(h.s);
    assert_int_equal(write(h.client, in.data, in.len), (ssize_t) in.len);
    while (!ended && stream_getline(h.s->in, &h.s->line, 100, &flags) >= 0)
        ended = smtpd_data_line(h.s, h.s->line.data, h.s->line.len, flags);
    assert_true(ended);
    assert_int_equal(h.s->data_errors, SMTPD_DATA_LONG_LINE);
    vbuf_release(&in);
    h_close(&h);
}

static void test_full_data_dialogue_without_cleanup_says_451(void **state)
{
    harness h;
    const char *r;

    (void) state;
    h_open(&h, "127.0.0.1");
    h.s->mode = SMTPD_MODE_CMD;
    r = TALK(&h, "EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<alice@kite.test>\r\nDATA\r\n");
    assert_string_equal(r, "250-mx.kite.test\r\n250-PIPELINING\r\n250-SIZE 2000\r\n250-VRFY\r\n250-ETRN\r\n"
                           "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n"
                           "250-BINARYMIME\r\n250 CHUNKING\r\n250 2.1.0 Ok\r\n"
                           "451 4.3.0 Error: queue file write error\r\n554 5.5.1 Error: no valid recipients\r\n");
    h_close(&h);
}

/* ---- BDAT ---- */

static const struct {
    const char *args;
    int ok;
    long long size;
    int last;
} bdat_cases[] = {
    {"10", 1, 10, 0},      {"0 LAST", 1, 0, 1},    {"7 last", 1, 7, 1},
    {"", 0, 0, 0},         {"-1", 0, 0, 0},        {"1x", 0, 0, 0},
    {"10 FIRST", 0, 0, 0}, {"10 LAST x", 0, 0, 0}, {"1234567890123456789", 0, 0, 0},
    {"+5", 0, 0, 0},
};

static void test_bdat_arguments_are_parsed_strictly(void **state)
{
    size_t i;

    (void) state;
    for (i = 0; i < sizeof(bdat_cases) / sizeof(bdat_cases[0]); i++) {
        char copy[64], *argv[4], *cursor = copy, *w;
        int argc = 0, last = -1;
        long long size = -1;

        snprintf(copy, sizeof(copy), "%s", bdat_cases[i].args);
        while (argc < 4 && (w = str_token(&cursor, " ")) != NULL)
            argv[argc++] = w;
        if (argc == 4 || (smtpd_bdat_parse(argc, argv, &size, &last) == 0) != bdat_cases[i].ok)
            fail_msg("BDAT %s: wrong verdict", bdat_cases[i].args);
        if (bdat_cases[i].ok) {
            assert_int_equal(size, bdat_cases[i].size);
            assert_int_equal(last, bdat_cases[i].last);
        }
    }
}

static void test_bdat_chunk_is_read_even_when_refused(void **state)
{
    harness h;
    const char *r;

    (void) state;
    h_open(&h, "127.0.0.1");
    h.s->mode = SMTPD_MODE_CMD;
    TALK(&h, "EHLO c.example\r\n");
    /* No MAIL: the 12 octets (which look like a command) must be skipped. */
    r = TALK(&h, "BDAT 12\r\nQUIT\r\nQUIT\r\nNOOP\r\n");
    assert_string_equal(r, "503 5.5.1 Error: need MAIL command\r\n250 2.0.0 Ok\r\n");
    r = TALK(&h, "BDAT 0 LAST\r\n");
    expect_prefix(r, "503 5.5.1");
    h_close(&h);
}

/* ---- policy helpers ---- */

static const struct {
    const char *pattern, *addr;
    int match;
} cidr_cases[] = {
    {"127.0.0.0/8", "127.1.2.3", 1},
    {"127.0.0.0/8", "128.0.0.1", 0},
    {"10.1.2.3", "10.1.2.3", 1},
    {"10.1.2.3", "10.1.2.4", 0},
    {"[::1]/128", "::1", 1},
    {"[2001:db8::]/32", "2001:db8:1::5", 1},
    {"[2001:db8::]/32", "2001:db9::5", 0},
    {"192.168.0.0/33", "192.168.0.1", 0},
    {"0.0.0.0/0", "8.8.8.8", 1},
    {"garbage", "1.2.3.4", 0},
    {"10.0.0.0/8", "::ffff:10.0.0.1", 1},
};

static void test_cidr_matching(void **state)
{
    size_t i;

    (void) state;
    for (i = 0; i < sizeof(cidr_cases) / sizeof(cidr_cases[0]); i++)
        if (smtpd_cidr_match(cidr_cases[i].pattern, cidr_cases[i].addr) != cidr_cases[i].match)
            fail_msg("%s vs %s", cidr_cases[i].pattern, cidr_cases[i].addr);
}

/* ---- SASL ---- */

static void test_cram_md5_rfc2195_vector(void **state)
{
    char hex[33];

    (void) state;
    smtpd_cram_md5_digest("tanstaaftanstaaf", "<1896.697170952@postoffice.reston.mci.net>", hex);
    assert_string_equal(hex, "b913a602c7eda7a495b4e6e7334d3890");
}

static void test_scram_sha256_rfc7677_vector(void **state)
{
    smtpd_sasl *x = smtpd_sasl_new("SCRAM-SHA-256");
    vbuf out, salt;

    (void) state;
    vbuf_init(&out, 0);
    vbuf_init(&salt, 0);
    assert_int_equal(base64_decode(&salt, "W22ZaJ0SNY7soEsUEjb6gQ==", 24), 0);
    assert_int_equal(smtpd_scram_server_first(x, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
                                              (const unsigned char *) salt.data, salt.len, &out),
                     0);
    assert_string_equal(vbuf_str(&out),
                        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
    assert_string_equal(smtpd_sasl_user(x), "user");
    assert_int_equal(smtpd_scram_server_final(x, "pencil",
                                              "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                                              "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                                              &out),
                     0);
    assert_string_equal(vbuf_str(&out), "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    /* The wrong password fails. */
    assert_int_equal(smtpd_scram_server_final(x, "pencils",
                                              "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                                              "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                                              &out),
                     -1);
    smtpd_sasl_destroy(x);
    vbuf_release(&out);
    vbuf_release(&salt);
}

static const char *scram_bad_first[] = {
    "",
    "n",
    "p=tls-unique,,n=user,r=abc",
    "n,,m=ext,n=user,r=abc",
    "n,,n=,r=abc",
    "n,,n=us=er,r=abc",
    "n,,n=user",
    "n,,n=user,r=",
    "x,,n=user,r=abc",
};

static void test_scram_rejects_malformed_client_first(void **state)
{
    size_t i;
    vbuf out;

    (void) state;
    vbuf_init(&out, 0);
    for (i = 0; i < sizeof(scram_bad_first) / sizeof(scram_bad_first[0]); i++) {
        smtpd_sasl *x = smtpd_sasl_new("SCRAM-SHA-256");

        if (smtpd_scram_server_first(x, scram_bad_first[i], "sn", (const unsigned char *) "salt", 4, &out) != -1)
            fail_msg("accepted \"%s\"", scram_bad_first[i]);
        smtpd_sasl_destroy(x);
    }
    vbuf_release(&out);
}

static void test_secrets_plain_and_crypt(void **state)
{
    struct crypt_data cd;
    const char *hash;

    (void) state;
    memset(&cd, 0, sizeof(cd));
    hash = crypt_r("s3cret", "$6$abcdefgh$", &cd);
    assert_non_null(hash);
    assert_int_equal(smtpd_sasl_check_secret(hash, "s3cret"), 1);
    assert_int_equal(smtpd_sasl_check_secret(hash, "s3cret "), 0);
    assert_int_equal(smtpd_sasl_check_secret("{PLAIN}pw", "pw"), 1);
    assert_int_equal(smtpd_sasl_check_secret("{PLAIN}pw", "pW"), 0);
    assert_int_equal(smtpd_sasl_check_secret("{PLAIN}", ""), 1);
    assert_int_equal(smtpd_sasl_check_secret("", ""), 0);
    assert_int_equal(smtpd_sasl_check_secret("*", "*"), 0);
}

/* ---- AUTH dialogues, including hostile responses ---- */

typedef struct auth_step {
    const char *prefix; /* command or response text before the base64 part */
    const char *raw;    /* bytes to base64-encode, or NULL */
    size_t rawlen;
    const char *reply; /* expected reply prefix */
} auth_step;

#define RAW(s) s, sizeof(s) - 1
static const struct {
    const char *name;
    auth_step steps[4];
} auth_cases[] = {
    {"PLAIN with initial response", {{"AUTH PLAIN ", RAW("\0alice\0pw"), "235 2.7.0"}}},
    {"PLAIN wrong password", {{"AUTH PLAIN ", RAW("\0alice\0px"), "535 5.7.8"}}},
    {"PLAIN after a 334", {{"AUTH PLAIN", NULL, 0, "334 "}, {"", RAW("alice\0alice\0pw"), "235 2.7.0"}}},
    {"PLAIN without NULs", {{"AUTH PLAIN ", RAW("alicepw"), "535 5.7.8"}}},
    {"PLAIN with three NULs", {{"AUTH PLAIN ", RAW("\0alice\0pw\0"), "535 5.7.8"}}},
    {"PLAIN other authzid", {{"AUTH PLAIN ", RAW("bob\0alice\0pw"), "535 5.7.8"}}},
    {"PLAIN empty initial response", {{"AUTH PLAIN =", NULL, 0, "535 5.7.8"}}},
    {"PLAIN bad base64", {{"AUTH PLAIN !!!!", NULL, 0, "501 5.5.2"}}},
    {"LOGIN dialogue",
     {{"AUTH LOGIN", NULL, 0, "334 VXNlcm5hbWU6"},
      {"", RAW("alice"), "334 UGFzc3dvcmQ6"},
      {"", RAW("pw"), "235 2.7.0"}}},
    {"LOGIN with the user up front", {{"AUTH LOGIN ", RAW("alice"), "334 UGFzc3dvcmQ6"}, {"", RAW("pw"), "235"}}},
    {"LOGIN aborted", {{"AUTH LOGIN", NULL, 0, "334 "}, {"*", NULL, 0, "501 5.7.0"}}},
    {"LOGIN bad base64 response", {{"AUTH LOGIN", NULL, 0, "334 "}, {"@@@", NULL, 0, "501 5.5.2"}}},
    {"CRAM-MD5 refuses an initial response", {{"AUTH CRAM-MD5 ", RAW("x"), "501 5.5.2"}}},
    {"CRAM-MD5 malformed response", {{"AUTH CRAM-MD5", NULL, 0, "334 "}, {"", RAW("alice"), "535 5.7.8"}}},
    {"SCRAM malformed client-first", {{"AUTH SCRAM-SHA-256 ", RAW("x,,n=a,r=b"), "535 5.7.8"}}},
    {"SCRAM wrong nonce in client-final",
     {{"AUTH SCRAM-SHA-256 ", RAW("n,,n=alice,r=abc"), "334 "},
      {"", RAW("c=biws,r=xyz,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="), "535 5.7.8"}}},
    {"unknown mechanism", {{"AUTH DIGEST-MD5", NULL, 0, "504 5.5.4"}}},
    {"too many arguments", {{"AUTH PLAIN a b", NULL, 0, "501 5.5.4"}}},
    {"no mechanism", {{"AUTH", NULL, 0, "501 5.5.4"}}},
};

static void test_auth_dialogues(void **state)
{
    size_t i, j;
    vbuf line;

    (void) state;
    conf_override("smtpd_sasl_auth_enable", "yes");
    conf_override("smtpd_tls_auth_only", "no");
    conf_override("smtpd_sasl_password_maps", "static:{{PLAIN}pw}");
    assert_int_equal(conf_load("/nonexistent-kite-dir"), 0);
    smtpd_sasl_init();
    vbuf_init(&line, 0);
    for (i = 0; i < sizeof(auth_cases) / sizeof(auth_cases[0]); i++) {
        harness h;
        const char *r;

        h_open(&h, "192.0.2.1");
        h.s->mode = SMTPD_MODE_CMD;
        r = TALK(&h, "EHLO c.example\r\n");
        assert_non_null(strstr(r, "250-AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256\r\n"));
        for (j = 0; j < 4 && auth_cases[i].steps[j].prefix; j++) {
            const auth_step *st = &auth_cases[i].steps[j];

            vbuf_reset(&line);
            if (st->raw)
                base64_encode(&line, st->raw, st->rawlen); /* replaces the content */
            {
                char *b64 = xstrdup(vbuf_str(&line));

                vbuf_set(&line, st->prefix);
                vbuf_puts(&line, b64);
                xfree(b64);
            }
            vbuf_puts(&line, "\r\n");
            r = h_talk(&h, line.data, line.len);
            if (strncmp(r, st->reply, strlen(st->reply)) != 0)
                fail_msg("%s, step %zu: expected \"%s\", got \"%s\"", auth_cases[i].name, j, st->reply, r);
        }
        if (strncmp(r, "235", 3) == 0) {
            /* Authenticated: relaying is allowed, a second AUTH is not. */
            r = TALK(&h, "AUTH PLAIN\r\n");
            expect_prefix(r, "503 5.5.1");
            r = TALK(&h, "MAIL FROM:<a@b.example> AUTH=<>\r\nRCPT TO:<x@remote.example>\r\n");
            assert_string_equal(r, "250 2.1.0 Ok\r\n451 4.3.0 Error: queue file write error\r\n");
        }
        h_close(&h);
    }
    vbuf_release(&line);
    conf_override("smtpd_sasl_auth_enable", "no");
    setup_conf(NULL);
}

static void test_auth_refused_in_a_transaction_and_before_ehlo(void **state)
{
    harness h;
    const char *r;

    (void) state;
    conf_override("smtpd_sasl_auth_enable", "yes");
    conf_override("smtpd_tls_auth_only", "no");
    conf_override("smtpd_sasl_password_maps", "static:{{PLAIN}pw}");
    assert_int_equal(conf_load("/nonexistent-kite-dir"), 0);
    smtpd_sasl_init();
    h_open(&h, "192.0.2.1");
    h.s->mode = SMTPD_MODE_CMD;
    r = TALK(&h, "HELO c.example\r\nAUTH PLAIN\r\n");
    assert_string_equal(r, "250 mx.kite.test\r\n503 Error: send HELO/EHLO first\r\n");
    r = TALK(&h, "EHLO c.example\r\n");
    r = TALK(&h, "MAIL FROM:<a@b.example>\r\nAUTH PLAIN\r\n");
    assert_string_equal(r, "250 2.1.0 Ok\r\n503 5.5.1 Error: MAIL transaction in progress\r\n");
    h_close(&h);
    conf_override("smtpd_sasl_auth_enable", "no");
    setup_conf(NULL);
}

/* ---- restrictions, one row per case ---- */

static const struct {
    const char *param, *value; /* one restriction list */
    const char *client, *helo, *sender, *rcpt;
    const char *reply; /* the RCPT reply, prefix */
} policy_cases[] = {
    {"smtpd_client_restrictions", "reject", "127.0.0.1", "c.example", "a@b.example", "alice@kite.test", "554 5.7.1"},
    {"smtpd_client_restrictions", "permit_mynetworks, reject", "127.0.0.1", "c.example", "a@b.example",
     "alice@kite.test", "451 4.3.0 Error: queue"},
    {"smtpd_client_restrictions", "permit_mynetworks, reject", "192.0.2.1", "c.example", "a@b.example",
     "alice@kite.test", "554 5.7.1"},
    {"smtpd_client_restrictions", "defer", "127.0.0.1", "c.example", "a@b.example", "alice@kite.test", "450 4.3.2"},
    {"smtpd_client_restrictions", "check_client_access inline:{192.0.2.1=REJECT}", "192.0.2.1", "c.example",
     "a@b.example", "alice@kite.test", "554 5.7.1 <client.example[192.0.2.1]>: Client host rejected: Access denied"},
    {"smtpd_client_restrictions", "check_client_access inline:{192.0.2=DEFER}", "192.0.2.1", "c.example", "a@b.example",
     "alice@kite.test", "450 4.7.1"},
    {"smtpd_client_restrictions", "check_client_access inline:{client.example=OK}, reject", "192.0.2.1", "c.example",
     "a@b.example", "alice@kite.test", "451 4.3.0 Error: queue"},
    {"smtpd_helo_restrictions", "reject_invalid_helo_hostname", "127.0.0.1", "bad..name", "a@b.example",
     "alice@kite.test", "501 5.5.2 <bad..name>: Helo command rejected: Invalid name"},
    {"smtpd_helo_restrictions", "reject_invalid_helo_hostname", "127.0.0.1", "[192.0.2.1]", "a@b.example",
     "alice@kite.test", "451 4.3.0 Error: queue"},
    {"smtpd_helo_restrictions", "reject_non_fqdn_helo_hostname", "127.0.0.1", "localhost", "a@b.example",
     "alice@kite.test", "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname"},
    {"smtpd_helo_restrictions", "check_helo_access inline:{{example=REJECT bad}}", "127.0.0.1", "x.example",
     "a@b.example", "alice@kite.test", "554 5.7.1 <x.example>: Helo command rejected: bad"},
    {"smtpd_sender_restrictions", "reject_non_fqdn_sender", "127.0.0.1", "c.example", "user", "alice@kite.test",
     "504 5.5.2 <user>: Sender address rejected: need fully-qualified address"},
    {"smtpd_sender_restrictions", "reject_non_fqdn_sender", "127.0.0.1", "c.example", "", "alice@kite.test",
     "451 4.3.0 Error: queue"},
    {"smtpd_sender_restrictions", "check_sender_access inline:{{b.example=550 5.7.0 go away}}", "127.0.0.1",
     "c.example", "a@sub.b.example", "alice@kite.test",
     "550 5.7.0 <a@sub.b.example>: Sender address rejected: go away"},
    {"smtpd_sender_restrictions", "check_sender_access inline:{<>=REJECT}", "127.0.0.1", "c.example", "",
     "alice@kite.test", "554 5.7.1 <>"},
    {"smtpd_sender_restrictions", "check_sender_access inline:{a@=REJECT}", "127.0.0.1", "c.example", "a@x.example",
     "alice@kite.test", "554 5.7.1"},
    {"smtpd_recipient_restrictions", "reject_non_fqdn_recipient", "127.0.0.1", "c.example", "a@b.example", "alice@kite",
     "504 5.5.2 <alice@kite>: Recipient address rejected"},
    {"smtpd_recipient_restrictions", "check_recipient_access inline:{alice@kite.test=DUNNO}, reject", "127.0.0.1",
     "c.example", "a@b.example", "alice@kite.test", "554 5.7.1"},
    {"smtpd_recipient_restrictions", "check_recipient_access inline:{alice@kite.test=OK}, reject", "127.0.0.1",
     "c.example", "a@b.example", "alice@kite.test", "451 4.3.0 Error: queue"},
    {"smtpd_recipient_restrictions", "no_such_restriction", "127.0.0.1", "c.example", "a@b.example", "alice@kite.test",
     "451 4.3.5 Server configuration error"},
    {"smtpd_relay_restrictions", "permit_mynetworks, reject_unauth_destination", "192.0.2.1", "c.example",
     "a@b.example", "x@elsewhere.example", "554 5.7.1 <x@elsewhere.example>: Relay access denied"},
    {"smtpd_relay_restrictions", "permit_mynetworks, defer_unauth_destination", "192.0.2.1", "c.example", "a@b.example",
     "x@elsewhere.example", "450 4.7.1"},
    {"smtpd_relay_restrictions", "reject_unauth_destination", "192.0.2.1", "c.example", "a@b.example", "postmaster",
     "451 4.3.0 Error: queue"},
    {"relay_domains", "relay.example", "192.0.2.1", "c.example", "a@b.example", "x@sub.relay.example",
     "451 4.3.0 Error: queue"},
    {"smtpd_reject_unlisted_recipient", "no", "192.0.2.1", "c.example", "a@b.example", "nobody@kite.test",
     "451 4.3.0 Error: queue"},
};

static void test_restrictions_table(void **state)
{
    size_t i;

    (void) state;
    for (i = 0; i < sizeof(policy_cases) / sizeof(policy_cases[0]); i++) {
        harness h;
        vbuf cmd;
        const char *r;

        conf_override(policy_cases[i].param, policy_cases[i].value);
        assert_int_equal(conf_load("/nonexistent-kite-dir"), 0);
        smtpd_check_init();
        h_open(&h, policy_cases[i].client);
        h.s->mode = SMTPD_MODE_CMD;
        vbuf_init(&cmd, 0);
        vbuf_printf(&cmd, "EHLO %s\r\nMAIL FROM:<%s>\r\n", policy_cases[i].helo, policy_cases[i].sender);
        h_talk(&h, cmd.data, cmd.len);
        vbuf_set(&cmd, "");
        vbuf_printf(&cmd, "RCPT TO:<%s>\r\n", policy_cases[i].rcpt);
        r = h_talk(&h, cmd.data, cmd.len);
        if (strncmp(r, policy_cases[i].reply, strlen(policy_cases[i].reply)) != 0)
            fail_msg("%s = %s: expected \"%s\", got \"%s\"", policy_cases[i].param, policy_cases[i].value,
                     policy_cases[i].reply, r);
        vbuf_release(&cmd);
        h_close(&h);
        setup_conf(NULL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ehlo_lists_implemented_keywords_only),
        cmocka_unit_test(test_discarded_ehlo_keyword_is_hidden_and_refused),
        cmocka_unit_test(test_commands_get_the_right_reply_codes),
        cmocka_unit_test(test_enhanced_codes_only_after_ehlo),
        cmocka_unit_test(test_pipelined_commands_are_answered_in_order),
        cmocka_unit_test(test_relay_denied_outside_mynetworks),
        cmocka_unit_test(test_early_talker_is_refused),
        cmocka_unit_test(test_greeting_then_commands),
        cmocka_unit_test(test_overlong_command_line_is_refused_and_skipped),
        cmocka_unit_test(test_data_scanner_only_crlf_dot_crlf_ends),
        cmocka_unit_test(test_data_line_of_1001_octets_is_refused),
        cmocka_unit_test(test_full_data_dialogue_without_cleanup_says_451),
        cmocka_unit_test(test_bdat_arguments_are_parsed_strictly),
        cmocka_unit_test(test_bdat_chunk_is_read_even_when_refused),
        cmocka_unit_test(test_cidr_matching),
        cmocka_unit_test(test_cram_md5_rfc2195_vector),
        cmocka_unit_test(test_scram_sha256_rfc7677_vector),
        cmocka_unit_test(test_scram_rejects_malformed_client_first),
        cmocka_unit_test(test_secrets_plain_and_crypt),
        cmocka_unit_test(test_auth_dialogues),
        cmocka_unit_test(test_restrictions_table),
        cmocka_unit_test(test_auth_refused_in_a_transaction_and_before_ehlo),
    };

    return cmocka_run_group_tests(tests, setup_conf, NULL);
}
