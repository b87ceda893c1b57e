/*
 * Unit tests for lib/bounce_log.c: append/read/remove round trips in a
 * real (temporary) queue directory, including hashed logs, and strict
 * refusal of damaged or hostile logs (truncated, bad lengths, unknown or
 * mistyped attributes, bad DSN codes, control characters, symlinks).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "attr.h"
#include "bounce_log.h"
#include "conf.h"
#include "mail_queue.h"
#include "mymalloc.h"
#include "vbuf.h"

#define ID "00000ABCDEFGHIJKLM"

static char tmpdir[] = "/tmp/kite-bounce-log-XXXXXX";

static int setup(void **state)
{
    (void) state;
    if (mkdtemp(tmpdir) == NULL || chdir(tmpdir) != 0)
        return -1;
    conf_reset();
    if (conf_load(tmpdir) != 0)
        return -1;
    if (mkdir("bounce", 0700) || mkdir("defer", 0700) || mkdir("trace", 0700))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    pid_t pid;

    (void) state;
    if (chdir("/") != 0)
        return -1;
    if ((pid = fork()) == 0) {
        char *argv[] = {"rm", "-rf", tmpdir, NULL};

        execv("/bin/rm", argv);
        _exit(1);
    }
    return waitpid(pid, NULL, 0) == pid ? 0 : -1;
}

static void test_bounce_log_round_trip(void **state)
{
    deliver_rcpt r1 = {3, "bob@kite.test", "rfc822;Bob@kite.test", "info@kite.test", 0x4};
    deliver_rcpt r2 = {7, "carol@remote.example", NULL, NULL, 0};
    deliver_result s1 = {3, 2, "5.1.1", "failed", "unknown user: \"bob\"", "local", NULL, NULL, 0, 0};
    deliver_result s2 = {7,
                         1,
                         "4.4.1",
                         "delayed",
                         "connect timed out",
                         "mx.remote.example[192.0.2.9]:25",
                         "dns; mx.remote.example",
                         "smtp; 451 4.4.1 later",
                         1,
                         0};
    bounce_log_entry *e;

    (void) state;
    for (int q = 0; q < 2; q++) {
        const char *queue = q ? "defer" : "bounce"; /* defer/ is hashed by default */

        assert_int_equal(bounce_log_read(queue, ID, &e), 0);
        assert_int_equal(bounce_log_append(queue, ID, &r1, &s1), 0);
        assert_int_equal(bounce_log_append(queue, ID, &r2, &s2), 0);
        assert_int_equal(bounce_log_read(queue, ID, &e), 2);
        assert_int_equal(e[0].rcpt.index, 3);
        assert_string_equal(e[0].rcpt.address, "bob@kite.test");
        assert_string_equal(e[0].rcpt.orcpt, "rfc822;Bob@kite.test");
        assert_string_equal(e[0].rcpt.orig, "info@kite.test");
        assert_int_equal(e[0].rcpt.notify, 4);
        assert_int_equal(e[0].result.status, 2);
        assert_string_equal(e[0].result.dsn, "5.1.1");
        assert_string_equal(e[0].result.action, "failed");
        assert_string_equal(e[0].result.reason, "unknown user: \"bob\"");
        assert_null(e[0].result.remote_mta);
        assert_true(e[0].when > 1700000000);
        assert_null(e[1].rcpt.orcpt);
        assert_string_equal(e[1].result.remote_mta, "dns; mx.remote.example");
        assert_string_equal(e[1].result.diag, "smtp; 451 4.4.1 later");
        assert_int_equal(e[1].result.relayed_no_dsn, 1);
        bounce_log_free(e, 2);
        assert_int_equal(bounce_log_remove(queue, ID), 0);
        assert_int_equal(bounce_log_read(queue, ID, &e), 0);
        assert_int_equal(bounce_log_remove(queue, ID), 0);
    }
}

/* record - one length-prefixed frame from an attr list */
static void record(vbuf *out, attr_list *l)
{
    vbuf p;
    unsigned char len[4];

    vbuf_init(&p, 0);
    attr_encode(l, &p);
    len[0] = (unsigned char) (p.len >> 24);
    len[1] = (unsigned char) (p.len >> 16);
    len[2] = (unsigned char) (p.len >> 8);
    len[3] = (unsigned char) p.len;
    (void) vbuf_append(out, len, 4);
    (void) vbuf_append(out, p.data, p.len);
    vbuf_release(&p);
    attr_free(l);
}

/* good - a valid record's attributes, with one field replaced or added */
static attr_list *good(const char *bad_name, const char *bad_value)
{
    attr_list *l = attr_new();
    static const char *const strs[][2] = {{"address", "a@b"}, {"dsn", "5.1.1"}, {"action", "failed"}, {"reason", "no"}};

    attr_put_int(l, "index", 0);
    for (size_t i = 0; i < 4; i++)
        attr_put_str(l, strs[i][0], bad_name && strcmp(bad_name, strs[i][0]) == 0 ? bad_value : strs[i][1]);
    attr_put_int(l, "notify", 0);
    attr_put_int(l, "status", 2);
    attr_put_int(l, "relayed_no_dsn", 0);
    attr_put_int(l, "when", 1800000000);
    if (bad_name && strcmp(bad_name, "extra") == 0)
        attr_put_str(l, "extra", bad_value);
    return l;
}

static void test_bounce_log_parse_refuses_hostile_logs(void **state)
{
    static const struct {
        const char *name, *value;
    } bad[] = {
        {"dsn", "9.1.1"}, {"dsn", "5.1"},         {"dsn", "5.1.1234"},          {"dsn", "5..1"},
        {"dsn", ""},      {"action", "exploded"}, {"reason", "line\r\nBcc: x"}, {"address", "a\x01"},
        {"extra", "x"},
    };
    bounce_log_entry *e;
    vbuf data;
    attr_list *l;

    (void) state;
    vbuf_init(&data, 0);
    record(&data, good(NULL, NULL));
    assert_int_equal(bounce_log_parse(data.data, data.len, &e), 1);
    bounce_log_free(e, 1);
    /* Every truncation of a valid log is refused. */
    for (size_t len = 1; len < data.len; len++)
        assert_int_equal(bounce_log_parse(data.data, len, &e), -1);
    /* A bad field in the second record spoils the whole log. */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        vbuf_truncate(&data, 0);
        record(&data, good(NULL, NULL));
        record(&data, good(bad[i].name, bad[i].value));
        assert_int_equal(bounce_log_parse(data.data, data.len, &e), -1);
        assert_null(e);
    }
    /* Mistyped, missing and out-of-range values. */
    l = attr_new();
    attr_put_str(l, "index", "0");
    vbuf_truncate(&data, 0);
    record(&data, l);
    assert_int_equal(bounce_log_parse(data.data, data.len, &e), -1);
    l = good(NULL, NULL);
    attr_put_int(l, "status", 9); /* a repeated name is refused too */
    vbuf_truncate(&data, 0);
    record(&data, l);
    assert_int_equal(bounce_log_parse(data.data, data.len, &e), -1);
    /* Zero and huge lengths. */
    assert_int_equal(bounce_log_parse("\0\0\0\0", 4, &e), -1);
    assert_int_equal(bounce_log_parse("\x7f\xff\xff\xff"
                                      "abc",
                                      7, &e),
                     -1);
    assert_int_equal(bounce_log_parse("", 0, &e), 0);
    vbuf_release(&data);
}

static void test_bounce_log_refuses_symlink_and_bad_id(void **state)
{
    bounce_log_entry *e;
    deliver_rcpt r = {0, "a@b", NULL, NULL, 0};
    deliver_result s = {0, 2, "5.0.0", "failed", "x", NULL, NULL, NULL, 0, 0};
    int fd;

    (void) state;
    fd = open("target", O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(symlink("../target", "bounce/" ID), 0);
    assert_int_equal(bounce_log_read("bounce", ID, &e), -1);
    assert_int_equal(bounce_log_append("bounce", ID, &r, &s), -1);
    assert_int_equal(unlink("bounce/" ID), 0);
    assert_int_equal(bounce_log_read("bounce", "../etc/passwd", &e), -1);
    assert_int_equal(bounce_log_append("bounce", "../x", &r, &s), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounce_log_round_trip),
        cmocka_unit_test(test_bounce_log_parse_refuses_hostile_logs),
        cmocka_unit_test(test_bounce_log_refuses_symlink_and_bad_id),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
