/*
 * Unit tests for the bounce service's report composer (bounce/dsn.c):
 * whole notices against golden files, header-only returns split across
 * chunks, NOTIFY selection, and writer failures.
 * Set KITE_GOLDEN_UPDATE=1 to rewrite the golden files after a deliberate
 * format change (then review the diff).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "../../bounce/bounce.h"
#include "mymalloc.h"
#include "qfile.h"
#include "vbuf.h"

#define GOLDEN_DIR "tests/unit/golden/"

static const char original[] = "Received: from client.example (client.example [192.0.2.1])\r\n"
                               "\tby kite.test\r\n"
                               "From: Alice <alice@example.org>\r\n"
                               "To: bob@kite.test, carol@kite.test\r\n"
                               "Subject: caf\xc3\xa9\r\n"
                               "\r\n"
                               "From the start of a line\r\n"
                               "8-bit: \xe2\x82\xac\r\n"
                               "\r\n"
                               "last line\r\n";

/* Content source: the original in chunks of a fixed size. */
typedef struct chunker {
    const char *data;
    size_t len, pos, step;
} chunker;

static ssize_t chunk_next(void *ctx, const char **data)
{
    chunker *c = ctx;
    size_t n = c->len - c->pos;

    if (n > c->step)
        n = c->step;
    *data = c->data + c->pos;
    c->pos += n;
    return (ssize_t) n;
}

static int to_vbuf(void *ctx, const void *data, size_t len)
{
    return vbuf_append((vbuf *) ctx, data, len);
}

static int fail_writer(void *ctx, const void *data, size_t len)
{
    (void) ctx;
    (void) data;
    (void) len;
    return -1;
}

static bounce_log_entry entries[2];

/* fill - two recipients: a local unknown user and a remote rejection */
static void fill(int status, const char *dsn, const char *action)
{
    memset(entries, 0, sizeof(entries));
    entries[0].rcpt.index = 0;
    entries[0].rcpt.address = "bob@kite.test";
    entries[0].rcpt.orcpt = "rfc822;Bob@kite.test";
    entries[0].result.status = status;
    memcpy(entries[0].result.dsn, dsn, strlen(dsn) + 1);
    entries[0].result.action = (char *) action;
    entries[0].result.reason = "unknown user: \"bob\"";
    entries[0].when = 1800000100;
    entries[1].rcpt.index = 1;
    entries[1].rcpt.address = "carol@remote.example";
    entries[1].rcpt.orig = "carol@kite.test";
    entries[1].result.status = status;
    memcpy(entries[1].result.dsn, dsn, strlen(dsn) + 1);
    entries[1].result.action = (char *) action;
    entries[1].result.reason = "host mx.remote.example[192.0.2.9] said: 550 5.1.1 no such user";
    entries[1].result.remote_mta = "dns; mx.remote.example";
    entries[1].result.diag = "smtp; 550 5.1.1 no such user";
    entries[1].when = 1800000200;
}

/* notice - the fixed parts of every test notice */
static void notice(dsn_notice *n, int kind, chunker *c)
{
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    n->myhostname = "kite.test";
    n->from = "MAILER-DAEMON@kite.test";
    n->to = "alice@example.org";
    n->queue_id = "00000ABCDEFGHIJKLM";
    n->message_id = "00000NEWIDNEWIDNEW";
    n->boundary = "00000NEWIDNEWIDNEW.1800000300/kite.test";
    n->orig_sender = "alice@example.org";
    n->arrival = 1800000000.5;
    n->now = 1800000300;
    n->retry_until = 1800432000;
    n->body_8bit = 1;
    n->entries = entries;
    n->nentries = 2;
    n->content = chunk_next;
    n->content_ctx = c;
}

/* check_golden - compare with (or, on request, write) a golden file */
static void check_golden(const char *name, const vbuf *got)
{
    char path[256];
    FILE *fp;
    char *want;
    long len;

    (void) snprintf(path, sizeof(path), GOLDEN_DIR "%s", name);
    if (getenv("KITE_GOLDEN_UPDATE")) {
        fp = fopen(path, "wb");
        assert_non_null(fp);
        assert_int_equal(fwrite(got->data, 1, got->len, fp), got->len);
        assert_int_equal(fclose(fp), 0);
    }
    fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    len = ftell(fp);
    rewind(fp);
    want = malloc((size_t) len + 1);
    assert_non_null(want);
    assert_int_equal(fread(want, 1, (size_t) len, fp), (size_t) len);
    fclose(fp);
    want[len] = 0;
    assert_string_equal(got->data, want);
    assert_int_equal(got->len, (size_t) len);
    free(want);
}

static void test_dsn_failure_full_matches_golden(void **state)
{
    chunker c = {original, sizeof(original) - 1, 0, 7};
    dsn_notice n;
    vbuf out;

    (void) state;
    fill(2, "5.1.1", "failed");
    notice(&n, DSN_KIND_FAILURE, &c);
    vbuf_init(&out, 0);
    assert_int_equal(dsn_write(&n, to_vbuf, &out), 0);
    check_golden("dsn_failure_full.eml", &out);
    /* The original rides along byte for byte, 8-bit included. */
    assert_non_null(memmem(out.data, out.len, original, sizeof(original) - 1));
    vbuf_release(&out);
}

static void test_dsn_failure_headers_only_matches_golden(void **state)
{
    dsn_notice n;
    vbuf out;

    (void) state;
    fill(2, "5.1.1", "failed");
    /* Every chunk size, so the empty line is split at every possible place. */
    for (size_t step = 1; step <= 20; step++) {
        chunker c = {original, sizeof(original) - 1, 0, step};

        notice(&n, DSN_KIND_FAILURE, &c);
        n.ret_hdrs = 1;
        vbuf_init(&out, 0);
        assert_int_equal(dsn_write(&n, to_vbuf, &out), 0);
        check_golden("dsn_failure_hdrs.eml", &out);
        assert_null(memmem(out.data, out.len, "From the start", 14));
        assert_non_null(strstr(out.data, "Subject: caf\xc3\xa9\r\n\r\n--00000NEWID"));
        vbuf_release(&out);
    }
}

static void test_dsn_delay_has_will_retry_until(void **state)
{
    chunker c = {original, sizeof(original) - 1, 0, 4096};
    dsn_notice n;
    vbuf out;

    (void) state;
    fill(1, "4.4.1", "delayed");
    notice(&n, DSN_KIND_DELAY, &c);
    n.ret_hdrs = 1;
    n.envid = "ENV-123";
    vbuf_init(&out, 0);
    assert_int_equal(dsn_write(&n, to_vbuf, &out), 0);
    check_golden("dsn_delay.eml", &out);
    assert_non_null(strstr(out.data, "Will-Retry-Until: Wed, 20 Jan 2027 08:00:00 +0000\r\n"));
    assert_non_null(strstr(out.data, "Original-Envelope-Id: ENV-123\r\n"));
    vbuf_release(&out);
}

static void test_dsn_double_bounce_goes_to_postmaster(void **state)
{
    chunker c = {original, sizeof(original) - 1, 0, 4096};
    dsn_notice n;
    vbuf out;

    (void) state;
    fill(2, "5.1.1", "failed");
    notice(&n, DSN_KIND_FAILURE, &c);
    n.postmaster_copy = 1;
    n.to = "postmaster";
    n.orig_sender = "";
    vbuf_init(&out, 0);
    assert_int_equal(dsn_write(&n, to_vbuf, &out), 0);
    check_golden("dsn_double_bounce.eml", &out);
    assert_non_null(strstr(out.data, "\r\nTo: postmaster\r\n"));
    assert_non_null(strstr(out.data, "\r\nX-Kite-Sender: rfc822; \r\n"));
    vbuf_release(&out);
}

static void test_dsn_unterminated_original_gets_line_end(void **state)
{
    static const char odd[] = "Subject: x\r\n\r\nno newline at the end";
    chunker c = {odd, sizeof(odd) - 1, 0, 5};
    dsn_notice n;
    vbuf out;

    (void) state;
    fill(2, "5.1.1", "failed");
    notice(&n, DSN_KIND_FAILURE, &c);
    n.body_8bit = 0;
    vbuf_init(&out, 0);
    assert_int_equal(dsn_write(&n, to_vbuf, &out), 0);
    assert_non_null(strstr(out.data, "no newline at the end\r\n\r\n--00000NEWIDNEWIDNEW.1800000300/kite.test--\r\n"));
    assert_non_null(strstr(out.data, "Content-Transfer-Encoding: 7bit\r\n"));
    vbuf_release(&out);
}

static void test_dsn_headerless_original_returns_nothing(void **state)
{
    static const char bodyonly[] = "\r\nbody only\r\n";
    chunker c = {bodyonly, sizeof(bodyonly) - 1, 0, 1};
    dsn_notice n;
    vbuf out;

    (void) state;
    fill(2, "5.1.1", "failed");
    notice(&n, DSN_KIND_FAILURE, &c);
    n.ret_hdrs = 1;
    vbuf_init(&out, 0);
    assert_int_equal(dsn_write(&n, to_vbuf, &out), 0);
    assert_null(strstr(out.data, "body only"));
    assert_non_null(strstr(out.data, "text/rfc822-headers\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\r\n--"));
    vbuf_release(&out);
}

static void test_dsn_control_characters_never_reach_fields(void **state)
{
    chunker c = {original, sizeof(original) - 1, 0, 4096};
    dsn_notice n;
    vbuf out;

    (void) state;
    fill(2, "5.1.1", "failed");
    entries[0].result.reason = "evil\r\nBcc: victim@example.org \x80";
    notice(&n, DSN_KIND_FAILURE, &c);
    vbuf_init(&out, 0);
    assert_int_equal(dsn_write(&n, to_vbuf, &out), 0);
    assert_null(strstr(out.data, "\r\nBcc:"));
    assert_non_null(strstr(out.data, "X-Kite; evil??Bcc: victim@example.org ?\r\n"));
    vbuf_release(&out);
}

static void test_dsn_writer_failure_is_reported(void **state)
{
    chunker c = {original, sizeof(original) - 1, 0, 4096};
    dsn_notice n;

    (void) state;
    fill(2, "5.1.1", "failed");
    notice(&n, DSN_KIND_FAILURE, &c);
    assert_int_equal(dsn_write(&n, fail_writer, NULL), -1);
}

/* heap_entry - an allocated entry as bounce_log_read returns it */
static void heap_entry(bounce_log_entry *e, long index, int status, int notify, const char *reason)
{
    memset(e, 0, sizeof(*e));
    e->rcpt.index = index;
    e->rcpt.address = xstrdup("x@kite.test");
    e->rcpt.notify = notify;
    e->result.status = status;
    memcpy(e->result.dsn, "5.0.0", 6);
    e->result.action = xstrdup("failed");
    e->result.reason = xstrdup(reason);
}

/* free_entries - release what dsn_select kept */
static void free_entries(bounce_log_entry *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dsn_entry_release(&list[i]);
    xfree(list);
}

/* A verify report: its own Subject, deliverable / undeliverable / delayed per recipient, a Diagnostic-Code each */
static void test_dsn_verify_report_names_each_outcome(void **state)
{
    static const struct {
        int status;
        const char *dsn, *action;
    } rows[] = {
        {0, "2.0.0", "Action: deliverable\r\n"},
        {1, "4.3.0", "Action: delayed\r\n"},
        {2, "5.1.1", "Action: undeliverable\r\n"},
    };

    (void) state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        chunker c = {original, sizeof(original) - 1, 0, 4096};
        dsn_notice n;
        vbuf out;

        fill(rows[i].status, rows[i].dsn, rows[i].status == 0 ? "delivered" : "failed");
        entries[1].result.diag = NULL; /* the local one: the reason is the diagnostic */
        notice(&n, DSN_KIND_VERIFY, &c);
        n.ret_hdrs = 1;
        n.nentries = 1;
        vbuf_init(&out, 0);
        assert_int_equal(dsn_write(&n, to_vbuf, &out), 0);
        assert_non_null(strstr(out.data, "Subject: Mail Delivery Status Report\r\n"));
        assert_non_null(strstr(out.data, "report-type=delivery-status"));
        assert_non_null(strstr(out.data, rows[i].action));
        assert_null(strstr(out.data, "Action: delivered"));
        assert_null(strstr(out.data, "Action: failed"));
        assert_non_null(strstr(out.data, "Diagnostic-Code: X-Kite; unknown user: \"bob\"\r\n"));
        assert_non_null(strstr(out.data, "No mail\r\nwas delivered"));
        vbuf_release(&out);
    }
}

static void test_dsn_select_honours_notify_and_keeps_latest(void **state)
{
    static const struct {
        int kind, status, notify, wanted;
    } rows[] = {
        {DSN_KIND_FAILURE, 2, 0, 1},
        {DSN_KIND_FAILURE, 2, QF_NOTIFY_FAILURE, 1},
        {DSN_KIND_FAILURE, 2, QF_NOTIFY_SUCCESS, 0},
        {DSN_KIND_FAILURE, 2, QF_NOTIFY_NEVER, 0},
        {DSN_KIND_DELAY, 1, 0, 1},
        {DSN_KIND_DELAY, 1, QF_NOTIFY_DELAY | QF_NOTIFY_FAILURE, 1},
        {DSN_KIND_DELAY, 1, QF_NOTIFY_FAILURE, 0},
        {DSN_KIND_SUCCESS, 0, 0, 0},
        {DSN_KIND_SUCCESS, 0, QF_NOTIFY_SUCCESS, 1},
        {DSN_KIND_SUCCESS, 0, QF_NOTIFY_NEVER | QF_NOTIFY_SUCCESS, 0},
        {DSN_KIND_FAILURE, 1, 0, 1}, /* expired while deferred: still a failure */
        {DSN_KIND_DELAY, 0, QF_NOTIFY_DELAY, 0},
        {DSN_KIND_VERIFY, 0, 0, 1}, /* a probe's report lists every recipient */
        {DSN_KIND_VERIFY, 1, QF_NOTIFY_FAILURE, 1},
        {DSN_KIND_VERIFY, 2, QF_NOTIFY_NEVER, 1},
    };
    bounce_log_entry *list;

    (void) state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        list = xcalloc(1, sizeof(*list));
        heap_entry(&list[0], 0, rows[i].status, rows[i].notify, "r");
        assert_int_equal(dsn_select(rows[i].kind, list, 1), rows[i].wanted);
        free_entries(list, rows[i].wanted);
    }
    /* Three attempts for recipient 3, one for 4: the last of each stays. */
    list = xcalloc(4, sizeof(*list));
    heap_entry(&list[0], 3, 1, 0, "first");
    heap_entry(&list[1], 4, 1, 0, "only");
    heap_entry(&list[2], 3, 1, 0, "second");
    heap_entry(&list[3], 3, 1, 0, "third");
    assert_int_equal(dsn_select(DSN_KIND_DELAY, list, 4), 2);
    assert_string_equal(list[0].result.reason, "only");
    assert_string_equal(list[1].result.reason, "third");
    free_entries(list, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dsn_failure_full_matches_golden),
        cmocka_unit_test(test_dsn_failure_headers_only_matches_golden),
        cmocka_unit_test(test_dsn_delay_has_will_retry_until),
        cmocka_unit_test(test_dsn_double_bounce_goes_to_postmaster),
        cmocka_unit_test(test_dsn_unterminated_original_gets_line_end),
        cmocka_unit_test(test_dsn_headerless_original_returns_nothing),
        cmocka_unit_test(test_dsn_control_characters_never_reach_fields),
        cmocka_unit_test(test_dsn_writer_failure_is_reported),
        cmocka_unit_test(test_dsn_select_honours_notify_and_keeps_latest),
        cmocka_unit_test(test_dsn_verify_report_names_each_outcome),
    };

    (void) setenv("TZ", "UTC", 1);
    tzset();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
