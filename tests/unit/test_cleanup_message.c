/*
 * Unit tests for cleanup's content processing and envelope rewriting
 * (cleanup/message.c, cleanup/rewrite.c) with real tables: header fixes,
 * -t extraction and Bcc removal, header_checks/body_checks actions and their
 * log lines, limits, canonical and virtual alias rewriting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <unistd.h>

#include "../../cleanup/cleanup.h"
#include "conf.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"

/* ---- harness ---- */

typedef struct result {
    int envelope_calls;
    char *body;
    char *sender;
    cleanup_rcpt_list rcpts;
    vbuf content;
} result;

static vbuf log_lines;
static char tmpdir[128];

static void capture(enum msg_level level, const char *text)
{
    (void) level;
    vbuf_puts(&log_lines, text);
    vbuf_putc(&log_lines, '\n');
}

static int out_envelope(cleanup_state *st, void *ctx)
{
    result *r = ctx;

    r->envelope_calls++;
    r->sender = xstrdup(st->sender);
    r->body = cleanup_get_attr(st, "body") ? xstrdup(cleanup_get_attr(st, "body")) : NULL;
    for (size_t i = 0; i < st->rcpts.n; i++)
        cleanup_rcpt_list_add(&r->rcpts, st->rcpts.v[i].addr, st->rcpts.v[i].orcpt, st->rcpts.v[i].orig,
                              st->rcpts.v[i].notify);
    return 0;
}

static int out_content(cleanup_state *st, const char *data, size_t len, void *ctx)
{
    result *r = ctx;

    (void) st;
    return vbuf_append(&r->content, data, len);
}

static void result_free(result *r)
{
    xfree(r->sender);
    xfree(r->body);
    cleanup_rcpt_list_free(&r->rcpts);
    vbuf_release(&r->content);
}

static cleanup_maps no_maps;

/* run - one message through cleanup; returns the final status */
static int run(const cleanup_maps *m, int flags, const char *sender, const char *const *rcpts, const char *msg,
               result *r, cleanup_state *keep)
{
    cleanup_output out = {out_envelope, out_content, r};
    cleanup_state st;
    int status;

    memset(r, 0, sizeof(*r));
    vbuf_init(&r->content, 0);
    cleanup_state_init(&st, "TESTQUEUEID0000001", flags, m ? m : &no_maps, &out);
    if (sender)
        cleanup_add_attr(&st, "sender", sender);
    for (size_t i = 0; rcpts && rcpts[i]; i++)
        cleanup_add_rcpt(&st, rcpts[i], NULL, 0);
    cleanup_feed(&st, msg, strlen(msg));
    cleanup_end(&st);
    status = st.status;
    if (keep)
        *keep = st;
    else
        cleanup_state_free(&st);
    return status;
}

static int has_rcpt(const result *r, const char *addr)
{
    for (size_t i = 0; i < r->rcpts.n; i++)
        if (strcmp(r->rcpts.v[i].addr, addr) == 0)
            return 1;
    return 0;
}

static const char *write_table(const char *name, const char *text)
{
    static char path[256];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    return path;
}

static maps *open_table(const char *type, const char *name, const char *text, int flags)
{
    char spec[512];

    snprintf(spec, sizeof(spec), "%s:%s", type, write_table(name, text));
    return maps_open(name, spec, flags);
}

static int group_setup(void **state)
{
    (void) state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_cleanup.XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    conf_override("myhostname", "kite.test");
    conf_override("mydestination", "kite.test, localhost");
    conf_override("myorigin", "kite.test");
    assert_int_equal(conf_load("/nonexistent-kite-config"), 0);
    vbuf_init(&log_lines, 0);
    msg_set_capture(capture);
    msg_stderr(0);
    return 0;
}

static int group_teardown(void **state)
{
    char cmd[256];

    (void) state;
    snprintf(cmd, sizeof(cmd), "%s", tmpdir);
    vbuf_release(&log_lines);
    /* the table files */
    {
        const char *names[] = {"hc", "bc", "canon", "scanon", "rcanon", "valias", NULL};

        for (int i = 0; names[i]; i++) {
            char p[300];

            snprintf(p, sizeof(p), "%s/%s", tmpdir, names[i]);
            (void) unlink(p);
        }
    }
    (void) rmdir(cmd);
    return 0;
}

static int reset_log(void **state)
{
    (void) state;
    vbuf_reset(&log_lines);
    var_message_size_limit = 10240000;
    var_header_size_limit = 102400;
    var_hopcount_limit = 50;
    var_virtual_alias_expansion_limit = 1000;
    var_virtual_alias_recursion_limit = 1000;
    return 0;
}

/* ---- local submissions ---- */

static void test_local_bare_lf_becomes_crlf_and_headers_are_added(void **state)
{
    const char *rc[] = {"bob", NULL};
    result r;

    (void) state;
    assert_int_equal(
        run(NULL, CLEANUP_FLAG_LOCAL, "alice", rc, "Subject: hi\nTo: bob\n\nline one\nline two\n", &r, NULL),
        CLEANUP_OK);
    assert_int_equal(r.envelope_calls, 1);
    assert_string_equal(r.sender, "alice@kite.test");
    assert_int_equal(r.rcpts.n, 1);
    assert_string_equal(r.rcpts.v[0].addr, "bob@kite.test");
    assert_string_equal(r.rcpts.v[0].orig, "bob");
    assert_non_null(strstr(r.content.data, "Subject: hi\r\nTo: bob@kite.test\r\n")); /* qualified */
    assert_non_null(strstr(r.content.data, "\r\nFrom: alice@kite.test\r\n"));
    assert_non_null(strstr(r.content.data, "\r\nDate: "));
    assert_non_null(strstr(r.content.data, "\r\nMessage-Id: <"));
    assert_non_null(strstr(r.content.data, "TESTQUEUEID0000001@kite.test>\r\n"));
    assert_non_null(strstr(r.content.data, "\r\n\r\nline one\r\nline two\r\n"));
    assert_null(strstr(r.content.data, "two\r\n\r\n"));
    for (size_t i = 0; i < r.content.len; i++)
        if (r.content.data[i] == '\n')
            assert_true(i > 0 && r.content.data[i - 1] == '\r');
    assert_non_null(strstr(log_lines.data, "TESTQUEUEID0000001: message-id=<"));
    result_free(&r);
}

static void test_local_from_uses_full_name(void **state)
{
    const char *rc[] = {"bob@example.com", NULL};
    cleanup_output out = {out_envelope, out_content, NULL};
    cleanup_state st;
    result r;

    (void) state;
    memset(&r, 0, sizeof(r));
    vbuf_init(&r.content, 0);
    out.ctx = &r;
    cleanup_state_init(&st, "TESTQUEUEID0000001", CLEANUP_FLAG_LOCAL, &no_maps, &out);
    cleanup_add_attr(&st, "sender", "alice@kite.test");
    cleanup_add_attr(&st, "fullname", "Alice Q. Example");
    cleanup_add_attr(&st, "uid", "1000");
    cleanup_add_rcpt(&st, rc[0], NULL, 0);
    cleanup_feed(&st, "Subject: x\n\nhi\n", 15);
    cleanup_end(&st);
    assert_int_equal(st.status, CLEANUP_OK);
    assert_non_null(strstr(r.content.data, "From: \"Alice Q. Example\" <alice@kite.test>\r\n"));
    /* The trace header comes first. */
    assert_memory_equal(r.content.data, "Received: by kite.test (Kite, from userid 1000)\r\n\tid TESTQUEUEID0000001; ",
                        strlen("Received: by kite.test (Kite, from userid 1000)\r\n\tid TESTQUEUEID0000001; "));
    cleanup_state_free(&st);
    result_free(&r);
}

static void test_existing_message_id_and_date_are_kept(void **state)
{
    const char *rc[] = {"bob@example.com", NULL};
    result r;

    (void) state;
    assert_int_equal(run(NULL, 0, "a@example.org", rc,
                         "Message-ID: <abc@example.org>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nx\r\n", &r,
                         NULL),
                     CLEANUP_OK);
    assert_null(strstr(r.content.data, "Message-Id:"));
    assert_null(strstr(strstr(r.content.data, "Date: ") + 1, "Date: ")); /* no second Date */
    assert_null(strstr(r.content.data, "From:"));                        /* only local submissions get From */
    assert_non_null(strstr(log_lines.data, "TESTQUEUEID0000001: message-id=<abc@example.org>"));
    result_free(&r);
}

static void test_folded_header_is_kept_whole(void **state)
{
    const char *rc[] = {"bob@example.com", NULL};
    result r;

    (void) state;
    assert_int_equal(
        run(NULL, 0, "a@example.org", rc, "Subject: one\r\n two\r\n\tthree\r\nX: y\r\n\r\nb\r\n", &r, NULL),
        CLEANUP_OK);
    assert_non_null(strstr(r.content.data, "Subject: one\r\n two\r\n\tthree\r\nX: y\r\n"));
    result_free(&r);
}

static void test_non_header_line_starts_body_after_empty_line(void **state)
{
    const char *rc[] = {"bob@example.com", NULL};
    result r;

    (void) state;
    assert_int_equal(run(NULL, 0, "a@example.org", rc, "Subject: s\r\nthis is no header\r\nmore\r\n", &r, NULL),
                     CLEANUP_OK);
    assert_non_null(strstr(r.content.data, "\r\n\r\nthis is no header\r\nmore\r\n"));
    result_free(&r);
}

static void test_message_without_newline_at_end_gets_one(void **state)
{
    const char *rc[] = {"bob@example.com", NULL};
    result r;

    (void) state;
    assert_int_equal(run(NULL, CLEANUP_FLAG_LOCAL, "a", rc, "Subject: s\n\nlast", &r, NULL), CLEANUP_OK);
    assert_true(r.content.len > 6);
    assert_memory_equal(r.content.data + r.content.len - 6, "last\r\n", 6);
    result_free(&r);
}

static void test_chunking_does_not_change_the_result(void **state)
{
    const char *rc[] = {"bob@example.com", NULL};
    const char *msg = "Message-ID: <m@x>\r\nDate: d\r\nSubject: a\r\n b\r\n\r\nbody 1\r\nbody 2\r\n";
    cleanup_output out = {out_envelope, out_content, NULL};
    cleanup_state st;
    result whole, bytes;

    (void) state;
    assert_int_equal(run(NULL, 0, "s@x", rc, msg, &whole, NULL), CLEANUP_OK);
    memset(&bytes, 0, sizeof(bytes));
    vbuf_init(&bytes.content, 0);
    out.ctx = &bytes;
    cleanup_state_init(&st, "TESTQUEUEID0000001", 0, &no_maps, &out);
    cleanup_add_attr(&st, "sender", "s@x");
    cleanup_add_rcpt(&st, rc[0], NULL, 0);
    for (size_t i = 0; msg[i]; i++)
        cleanup_feed(&st, msg + i, 1);
    cleanup_end(&st);
    assert_int_equal(st.status, CLEANUP_OK);
    assert_int_equal(bytes.content.len, whole.content.len);
    assert_memory_equal(bytes.content.data, whole.content.data, whole.content.len);
    cleanup_state_free(&st);
    result_free(&whole);
    result_free(&bytes);
}

static void test_very_long_body_line_passes_intact(void **state)
{
    const char *rc[] = {"bob@example.com", NULL};
    size_t n = 200 * 1024;
    char *msg = xmalloc(n + 64);
    result r;

    (void) state;
    memcpy(msg, "Subject: s\r\n\r\n", 14);
    memset(msg + 14, 'x', n);
    memcpy(msg + 14 + n, "\r\nend\r\n", 8);
    assert_int_equal(run(NULL, 0, "s@x", rc, msg, &r, NULL), CLEANUP_OK);
    assert_non_null(strstr(r.content.data, "\r\n\r\nxxxx"));
    assert_int_equal(strspn(strstr(r.content.data, "\r\n\r\n") + 4, "x"), n);
    assert_non_null(strstr(r.content.data, "x\r\nend\r\n"));
    xfree(msg);
    result_free(&r);
}

static void test_binary_body_passes_verbatim(void **state)
{
    const char *rc[] = {"bob@example.com", NULL};
    const char body[] = "a\nb\r\rc\r\n";
    cleanup_output out = {out_envelope, out_content, NULL};
    cleanup_state st;
    result r;

    (void) state;
    memset(&r, 0, sizeof(r));
    vbuf_init(&r.content, 0);
    out.ctx = &r;
    cleanup_state_init(&st, "TESTQUEUEID0000001", 0, &no_maps, &out);
    cleanup_add_attr(&st, "sender", "s@x");
    cleanup_add_attr(&st, "body", "binarymime");
    cleanup_add_rcpt(&st, rc[0], NULL, 0);
    cleanup_feed(&st, "Subject: s\r\n\r\n", 14);
    cleanup_feed(&st, body, sizeof(body) - 1);
    cleanup_end(&st);
    assert_int_equal(st.status, CLEANUP_OK);
    assert_true(r.content.len >= sizeof(body) - 1);
    assert_memory_equal(r.content.data + r.content.len - (sizeof(body) - 1), body, sizeof(body) - 1);
    cleanup_state_free(&st);
    result_free(&r);
}

static void test_undeclared_body_type_is_detected(void **state)
{
    const char *rc[] = {"bob@example.com", NULL};
    size_t big = 1100 * 1024;
    char *msg = xmalloc(big + 64);
    result r;

    (void) state;
    assert_int_equal(run(NULL, 0, "a@x", rc, "Subject: s\r\n\r\nplain ascii\r\n", &r, NULL), CLEANUP_OK);
    assert_string_equal(r.body, "7bit");
    result_free(&r);
    assert_int_equal(run(NULL, CLEANUP_FLAG_LOCAL, "a", rc, "Subject: s\n\ncaf\xc3\xa9\n", &r, NULL), CLEANUP_OK);
    assert_string_equal(r.body, "8bitmime");
    assert_non_null(strstr(r.content.data, "caf\xc3\xa9\r\n"));
    result_free(&r);
    /* Too much to hold back: undecided counts as 8-bit, and nothing is lost. */
    memcpy(msg, "Subject: s\r\n\r\n", 14);
    for (size_t i = 0; i < big; i++)
        msg[14 + i] = (i % 80 == 79) ? '\n' : 'a';
    msg[14 + big] = 0;
    assert_int_equal(run(NULL, 0, "a@x", rc, msg, &r, NULL), CLEANUP_OK);
    assert_string_equal(r.body, "8bitmime");
    assert_int_equal(r.envelope_calls, 1);
    assert_true(r.content.len > big);
    result_free(&r);
    xfree(msg);
}

/* ---- -t ---- */

static void test_extract_takes_to_cc_bcc_and_drops_bcc(void **state)
{
    const char *rc[] = {"extra@example.net", NULL};
    result r;

    (void) state;
    assert_int_equal(run(NULL, CLEANUP_FLAG_LOCAL | CLEANUP_FLAG_EXTRACT, "alice", rc,
                         "To: Bob <bob@example.com>, carol@example.com\nCc: \"Dan D.\" <dan@example.com>\n"
                         "Bcc: secret@example.com,\n hidden@example.com\nSubject: s\n\nbody\n",
                         &r, NULL),
                     CLEANUP_OK);
    assert_int_equal(r.rcpts.n, 6);
    assert_true(has_rcpt(&r, "extra@example.net"));
    assert_true(has_rcpt(&r, "bob@example.com"));
    assert_true(has_rcpt(&r, "carol@example.com"));
    assert_true(has_rcpt(&r, "dan@example.com"));
    assert_true(has_rcpt(&r, "secret@example.com"));
    assert_true(has_rcpt(&r, "hidden@example.com"));
    assert_null(strstr(r.content.data, "Bcc"));
    assert_null(strstr(r.content.data, "secret"));
    assert_null(strstr(r.content.data, "hidden"));
    assert_non_null(strstr(r.content.data, "To: Bob <bob@example.com>, carol@example.com\r\n"));
    result_free(&r);
}

static void test_extract_prefers_resent_headers(void **state)
{
    result r;

    (void) state;
    assert_int_equal(run(NULL, CLEANUP_FLAG_EXTRACT, "a@x", NULL,
                         "To: old@example.com\r\nResent-To: new@example.com\r\nResent-Bcc: b@example.com\r\n\r\nx\r\n",
                         &r, NULL),
                     CLEANUP_OK);
    assert_int_equal(r.rcpts.n, 2);
    assert_true(has_rcpt(&r, "new@example.com"));
    assert_true(has_rcpt(&r, "b@example.com"));
    assert_null(strstr(r.content.data, "Resent-Bcc"));
    result_free(&r);
}

static void test_extract_without_recipients_is_rejected(void **state)
{
    cleanup_state st;
    result r;

    (void) state;
    assert_int_equal(run(NULL, CLEANUP_FLAG_EXTRACT, "a@x", NULL, "Subject: nobody\r\n\r\nx\r\n", &r, &st),
                     CLEANUP_REJECT);
    assert_non_null(strstr(st.reason.data, "5.1.3"));
    assert_int_equal(r.envelope_calls, 0);
    cleanup_state_free(&st);
    result_free(&r);
}

/* ---- header_checks / body_checks ---- */

static cleanup_maps checks_maps(void)
{
    cleanup_maps m;

    memset(&m, 0, sizeof(m));
    m.header_checks = open_table("pcre", "hc",
                                 "/^Subject: .*viagra/ REJECT no spam here\n"
                                 "/^Subject: discard me/ DISCARD\n"
                                 "/^Subject: hold me/ HOLD held for review\n"
                                 "/^Subject: warn me/ WARN suspicious\n"
                                 "/^X-Secret:/ IGNORE\n"
                                 "/^X-Mailer: (.*)/ REPLACE X-Mailer: hidden\n"
                                 "/^Subject: tag me/ PREPEND X-Tag: tagged\n"
                                 "/^Subject: fold.*\\n.*second/ REJECT folded match\n"
                                 "/^Subject: code/ REJECT 5.7.9 with code\n",
                                 MAP_KEEP_CASE);
    m.body_checks = open_table("pcre", "bc",
                               "/^forbidden body/ REJECT body says no\n"
                               "/^secret line/ REPLACE [redacted]\n"
                               "/^drop this/ IGNORE\n",
                               MAP_KEEP_CASE);
    return m;
}

static void close_checks(cleanup_maps *m)
{
    maps_close(m->header_checks);
    maps_close(m->body_checks);
}

static void test_header_checks_reject_logs_like_postfix(void **state)
{
    const char *rc[] = {"bob@example.com", NULL};
    cleanup_maps m = checks_maps();
    cleanup_output out = {out_envelope, out_content, NULL};
    cleanup_state st;
    result r;

    (void) state;
    memset(&r, 0, sizeof(r));
    vbuf_init(&r.content, 0);
    out.ctx = &r;
    cleanup_state_init(&st, "TESTQUEUEID0000001", 0, &m, &out);
    cleanup_add_attr(&st, "sender", "a@example.org");
    cleanup_add_attr(&st, "client_name", "mail.example.org");
    cleanup_add_attr(&st, "client_addr", "192.0.2.1");
    cleanup_add_attr(&st, "protocol", "ESMTP");
    cleanup_add_attr(&st, "helo", "mail.example.org");
    cleanup_add_rcpt(&st, rc[0], NULL, 0);
    cleanup_feed(&st, "Subject: cheap viagra\r\n\r\nx\r\n", 27);
    cleanup_end(&st);
    assert_int_equal(st.status, CLEANUP_REJECT);
    assert_string_equal(st.reason.data, "5.7.1 no spam here");
    assert_non_null(strstr(log_lines.data,
                           "TESTQUEUEID0000001: reject: header Subject: cheap viagra from "
                           "mail.example.org[192.0.2.1]; from=<a@example.org> to=<bob@example.com> proto=ESMTP "
                           "helo=<mail.example.org>: 5.7.1 no spam here"));
    assert_int_equal(r.envelope_calls, 0);
    cleanup_state_free(&st);
    result_free(&r);
    close_checks(&m);
}

static void test_header_checks_actions(void **state)
{
    const char *rc[] = {"bob@example.com", NULL};
    cleanup_maps m = checks_maps();
    cleanup_state st;
    result r;

    (void) state;
    /* DISCARD: accepted, nothing written. */
    assert_int_equal(run(&m, 0, "a@x", rc, "Subject: discard me\r\n\r\nx\r\n", &r, &st), CLEANUP_OK);
    assert_true(st.discard);
    assert_int_equal(r.envelope_calls, 0);
    assert_non_null(strstr(log_lines.data, "TESTQUEUEID0000001: discard: header Subject: discard me from local;"));
    cleanup_state_free(&st);
    result_free(&r);

    /* HOLD: written, marked for hold/. */
    assert_int_equal(run(&m, 0, "a@x", rc, "Subject: hold me\r\n\r\nx\r\n", &r, &st), CLEANUP_OK);
    assert_true(st.hold);
    assert_int_equal(r.envelope_calls, 1);
    assert_non_null(strstr(log_lines.data, "TESTQUEUEID0000001: hold: header Subject: hold me from local;"));
    assert_non_null(strstr(log_lines.data, ": held for review"));
    cleanup_state_free(&st);
    result_free(&r);

    /* WARN: logged, delivered unchanged. */
    assert_int_equal(run(&m, 0, "a@x", rc, "Subject: warn me\r\n\r\nx\r\n", &r, &st), CLEANUP_OK);
    assert_false(st.hold);
    assert_non_null(strstr(log_lines.data, "TESTQUEUEID0000001: warning: header Subject: warn me from local;"));
    assert_non_null(strstr(r.content.data, "Subject: warn me\r\n"));
    cleanup_state_free(&st);
    result_free(&r);

    /* IGNORE, REPLACE, PREPEND. */
    assert_int_equal(
        run(&m, 0, "a@x", rc, "X-Secret: 42\r\nX-Mailer: Foo 1.0\r\nSubject: tag me\r\n\r\nx\r\n", &r, NULL),
        CLEANUP_OK);
    assert_null(strstr(r.content.data, "X-Secret"));
    assert_null(strstr(r.content.data, "Foo 1.0"));
    assert_non_null(strstr(r.content.data, "X-Mailer: hidden\r\n"));
    assert_non_null(strstr(r.content.data, "X-Tag: tagged\r\nSubject: tag me\r\n"));
    result_free(&r);

    /* A folded header is matched as one logical header. */
    assert_int_equal(run(&m, 0, "a@x", rc, "Subject: fold\r\n second\r\n\r\nx\r\n", &r, &st), CLEANUP_REJECT);
    assert_string_equal(st.reason.data, "5.7.1 folded match");
    cleanup_state_free(&st);
    result_free(&r);

    /* REJECT text with its own status code. */
    assert_int_equal(run(&m, 0, "a@x", rc, "Subject: code\r\n\r\nx\r\n", &r, &st), CLEANUP_REJECT);
    assert_string_equal(st.reason.data, "5.7.9 with code");
    cleanup_state_free(&st);
    result_free(&r);
    close_checks(&m);
}

static void test_body_checks_actions(void **state)
{
    const char *rc[] = {"bob@example.com", NULL};
    cleanup_maps m = checks_maps();
    cleanup_state st;
    result r;

    (void) state;
    assert_int_equal(run(&m, 0, "a@x", rc, "Subject: s\r\n\r\nok\r\nforbidden body here\r\n", &r, &st), CLEANUP_REJECT);
    assert_string_equal(st.reason.data, "5.7.1 body says no");
    assert_non_null(strstr(log_lines.data, "TESTQUEUEID0000001: reject: body forbidden body here from local;"));
    cleanup_state_free(&st);
    result_free(&r);

    assert_int_equal(run(&m, 0, "a@x", rc, "Subject: s\r\n\r\nsecret line 1\r\ndrop this\r\nkeep\r\n", &r, NULL),
                     CLEANUP_OK);
    assert_non_null(strstr(r.content.data, "\r\n\r\n[redacted]\r\nkeep\r\n"));
    result_free(&r);

    /* Notices from bounce are not inspected. */
    assert_int_equal(run(&m, CLEANUP_FLAG_BOUNCE, "", rc, "Subject: cheap viagra\r\n\r\nforbidden body\r\n", &r, NULL),
                     CLEANUP_OK);
    result_free(&r);
    close_checks(&m);
}

/* ---- limits ---- */

static void test_message_size_limit_rejects(void **state)
{
    const char *rc[] = {"bob@example.com", NULL};
    cleanup_state st;
    result r;

    (void) state;
    var_message_size_limit = 100;
    assert_int_equal(run(NULL, 0, "a@x", rc,
                         "Message-ID: <a@b>\r\nDate: x\r\n\r\n"
                         "0123456789012345678901234567890123456789012345678901234567890123456789\r\n"
                         "0123456789012345678901234567890123456789012345678901234567890123456789\r\n",
                         &r, &st),
                     CLEANUP_REJECT);
    assert_string_equal(st.reason.data, "5.3.4 message file too big");
    cleanup_state_free(&st);
    result_free(&r);
}

static void test_header_size_limit_truncates(void **state)
{
    const char *rc[] = {"bob@example.com", NULL};
    char msg[2000];
    result r;

    (void) state;
    var_header_size_limit = 50;
    snprintf(msg, sizeof(msg), "Subject: %s\r\n continued %s\r\nX: y\r\n\r\nb\r\n",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbb");
    assert_int_equal(run(NULL, 0, "a@x", rc, msg, &r, NULL), CLEANUP_OK);
    assert_null(strstr(r.content.data, "continued"));
    assert_non_null(strstr(r.content.data, "Subject: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\nX: y\r\n"));
    assert_non_null(strstr(log_lines.data, "header too long"));
    result_free(&r);
}

static void test_hopcount_limit_rejects(void **state)
{
    const char *rc[] = {"bob@example.com", NULL};
    cleanup_state st;
    result r;

    (void) state;
    var_hopcount_limit = 2;
    assert_int_equal(run(NULL, 0, "a@x", rc, "Received: a\r\nReceived: b\r\nDelivered-To: c\r\n\r\nx\r\n", &r, &st),
                     CLEANUP_REJECT);
    assert_string_equal(st.reason.data, "5.4.0 too many hops");
    cleanup_state_free(&st);
    result_free(&r);
    assert_int_equal(run(NULL, 0, "a@x", rc, "Received: a\r\nReceived: b\r\n\r\nx\r\n", &r, NULL), CLEANUP_OK);
    result_free(&r);
}

/* ---- rewriting ---- */

static void test_canonical_maps_rewrite_sender_and_recipients(void **state)
{
    const char *rc[] = {"joe@kite.test", "x@old.example", "keep@example.com", NULL};
    cleanup_maps m;
    result r;

    (void) state;
    memset(&m, 0, sizeof(m));
    m.sender_canonical = open_table("texthash", "scanon", "alice@kite.test alice.smith@example.com\n", 0);
    m.recipient_canonical = open_table("texthash", "rcanon", "joe joseph@example.com\n", 0);
    m.canonical = open_table("texthash", "canon", "@old.example @new.example\n", 0);
    assert_int_equal(run(&m, 0, "alice@kite.test", rc, "Subject: s\r\n\r\nx\r\n", &r, NULL), CLEANUP_OK);
    assert_string_equal(r.sender, "alice.smith@example.com");
    assert_int_equal(r.rcpts.n, 3);
    assert_string_equal(r.rcpts.v[0].addr, "joseph@example.com");
    assert_string_equal(r.rcpts.v[0].orig, "joe@kite.test");
    assert_string_equal(r.rcpts.v[1].addr, "x@new.example");
    assert_string_equal(r.rcpts.v[2].addr, "keep@example.com");
    result_free(&r);

    /* NO_REWRITE skips the tables. */
    assert_int_equal(run(&m, CLEANUP_FLAG_NO_REWRITE, "alice@kite.test", rc, "Subject: s\r\n\r\nx\r\n", &r, NULL),
                     CLEANUP_OK);
    assert_string_equal(r.sender, "alice@kite.test");
    assert_string_equal(r.rcpts.v[0].addr, "joe@kite.test");
    result_free(&r);
    maps_close(m.sender_canonical);
    maps_close(m.recipient_canonical);
    maps_close(m.canonical);
}

static void test_local_header_addresses_are_rewritten(void **state)
{
    const char *rc[] = {"x@example.com", NULL};
    cleanup_maps m;
    result r;

    (void) state;
    memset(&m, 0, sizeof(m));
    m.sender_canonical = open_table("texthash", "scanon", "alice@kite.test alice.smith@example.com\n", 0);
    m.canonical = open_table("texthash", "canon", "@old.example @new.example\n", 0);
    assert_int_equal(run(&m, CLEANUP_FLAG_LOCAL, "alice", rc,
                         "From: Alice <alice>\n"
                         "To: Bob <bob>, carol@old.example (Carol),\n \"Q, R\" <q@old.example>\n"
                         "Cc: friends: a@old.example, b@x.example;, undisclosed-recipients:;\n"
                         "Reply-To: \"odd local\"@old.example\n"
                         "Subject: carol@old.example stays\n\nbody carol@old.example\n",
                         &r, NULL),
                     CLEANUP_OK);
    assert_non_null(strstr(r.content.data, "From: Alice <alice.smith@example.com>\r\n"));
    assert_non_null(strstr(r.content.data, "To: Bob <bob@kite.test>, carol@new.example (Carol),\r\n "
                                           "\"Q, R\" <q@new.example>\r\n"));
    assert_non_null(strstr(r.content.data, "Cc: friends: a@new.example, b@x.example;, undisclosed-recipients:;\r\n"));
    assert_non_null(strstr(r.content.data, "Reply-To: \"odd local\"@old.example\r\n"));
    assert_non_null(strstr(r.content.data, "Subject: carol@old.example stays\r\n"));
    assert_non_null(strstr(r.content.data, "body carol@old.example\r\n"));
    result_free(&r);
    /* Mail from the network keeps its headers as written. */
    assert_int_equal(run(&m, 0, "a@x", rc, "From: alice@kite.test\r\nTo: c@old.example\r\n\r\nb\r\n", &r, NULL),
                     CLEANUP_OK);
    assert_non_null(strstr(r.content.data, "From: alice@kite.test\r\nTo: c@old.example\r\n"));
    result_free(&r);
    maps_close(m.sender_canonical);
    maps_close(m.canonical);
}

static void test_virtual_alias_expansion_loops_and_duplicates(void **state)
{
    const char *rc[] = {"team@example.com", "self@example.com", "loop1@example.com", "ann@example.com", NULL};
    cleanup_maps m;
    result r;

    (void) state;
    memset(&m, 0, sizeof(m));
    m.virtual_alias = open_table("texthash", "valias",
                                 "team@example.com ann@example.com, sub@example.com\n"
                                 "sub@example.com bo@example.com, cy@example.com\n"
                                 "self@example.com self@example.com, copy@example.com\n"
                                 "loop1@example.com loop2@example.com\n"
                                 "loop2@example.com loop1@example.com\n",
                                 0);
    assert_int_equal(run(&m, 0, "s@x", rc, "Subject: s\r\n\r\nx\r\n", &r, NULL), CLEANUP_OK);
    assert_true(has_rcpt(&r, "ann@example.com"));
    assert_true(has_rcpt(&r, "bo@example.com"));
    assert_true(has_rcpt(&r, "cy@example.com"));
    assert_true(has_rcpt(&r, "self@example.com"));
    assert_true(has_rcpt(&r, "copy@example.com"));
    assert_true(has_rcpt(&r, "loop1@example.com"));
    assert_false(has_rcpt(&r, "team@example.com"));
    assert_false(has_rcpt(&r, "sub@example.com"));
    /* ann comes twice (team and directly): once only, the first one's orig wins. */
    assert_int_equal(r.rcpts.n, 6);
    for (size_t i = 0; i < r.rcpts.n; i++)
        if (strcmp(r.rcpts.v[i].addr, "bo@example.com") == 0)
            assert_string_equal(r.rcpts.v[i].orig, "team@example.com");
    result_free(&r);
    maps_close(m.virtual_alias);
}

static void test_virtual_alias_limits_defer(void **state)
{
    const char *rc[] = {"team@example.com", NULL};
    cleanup_maps m;
    cleanup_state st;
    result r;

    (void) state;
    memset(&m, 0, sizeof(m));
    m.virtual_alias = open_table("texthash", "valias",
                                 "team@example.com a@example.com, b@example.com, c@example.com\n"
                                 "a@example.com a2@example.com\n"
                                 "a2@example.com a3@example.com\n",
                                 0);
    var_virtual_alias_expansion_limit = 2;
    assert_int_equal(run(&m, 0, "s@x", rc, "Subject: s\r\n\r\nx\r\n", &r, &st), CLEANUP_DEFER);
    assert_non_null(strstr(st.reason.data, "4."));
    assert_non_null(strstr(log_lines.data, "unreasonable virtual_alias_maps map expansion size"));
    cleanup_state_free(&st);
    result_free(&r);
    var_virtual_alias_expansion_limit = 1000;
    var_virtual_alias_recursion_limit = 2;
    assert_int_equal(run(&m, 0, "s@x", rc, "Subject: s\r\n\r\nx\r\n", &r, &st), CLEANUP_DEFER);
    assert_non_null(strstr(log_lines.data, "unreasonable virtual_alias_maps map nesting"));
    cleanup_state_free(&st);
    result_free(&r);
    maps_close(m.virtual_alias);
}

static void test_unreadable_table_defers(void **state)
{
    const char *rc[] = {"x@example.com", NULL};
    cleanup_maps m;
    cleanup_state st;
    result r;

    (void) state;
    memset(&m, 0, sizeof(m));
    m.virtual_alias = maps_open("virtual_alias_maps", "hash:/nonexistent/kite/table", 0);
    assert_int_equal(run(&m, 0, "s@x", rc, "Subject: s\r\n\r\nx\r\n", &r, &st), CLEANUP_DEFER);
    assert_int_equal(r.envelope_calls, 0);
    cleanup_state_free(&st);
    result_free(&r);
    maps_close(m.virtual_alias);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup(f, reset_log)
    const struct CMUnitTest tests[] = {
        T(test_local_bare_lf_becomes_crlf_and_headers_are_added),
        T(test_local_from_uses_full_name),
        T(test_existing_message_id_and_date_are_kept),
        T(test_folded_header_is_kept_whole),
        T(test_non_header_line_starts_body_after_empty_line),
        T(test_message_without_newline_at_end_gets_one),
        T(test_chunking_does_not_change_the_result),
        T(test_very_long_body_line_passes_intact),
        T(test_binary_body_passes_verbatim),
        T(test_undeclared_body_type_is_detected),
        T(test_extract_takes_to_cc_bcc_and_drops_bcc),
        T(test_extract_prefers_resent_headers),
        T(test_extract_without_recipients_is_rejected),
        T(test_header_checks_reject_logs_like_postfix),
        T(test_header_checks_actions),
        T(test_body_checks_actions),
        T(test_message_size_limit_rejects),
        T(test_header_size_limit_truncates),
        T(test_hopcount_limit_rejects),
        T(test_canonical_maps_rewrite_sender_and_recipients),
        T(test_local_header_addresses_are_rewritten),
        T(test_virtual_alias_expansion_loops_and_duplicates),
        T(test_virtual_alias_limits_defer),
        T(test_unreadable_table_defers),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
