/* Unit tests for master_cf: columns, defaults, arguments, and hostile input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "master_cf.h"
#include "mymalloc.h"
#include "vbuf.h"

/* parse - parse a string, return the error count */
static int parse(master_cf *cf, const char *text)
{
    master_cf_init(cf);
    return master_cf_parse(cf, "master.cf", text, strlen(text));
}

static void test_master_cf_defaults_per_column(void **state)
{
    master_cf cf;

    (void) state;
    assert_int_equal(parse(&cf, "smtp inet - - - - - smtpd\ncleanup unix - - - - - cleanup\n"), 0);
    assert_int_equal(cf.count, 2);
    assert_string_equal(cf.entries[0].name, "smtp");
    assert_int_equal(cf.entries[0].type, MASTER_CF_INET);
    assert_int_equal(cf.entries[0].private_, 0); /* inet is never private */
    assert_int_equal(cf.entries[0].unpriv, 1);
    assert_int_equal(cf.entries[0].chroot, 0);
    assert_int_equal(cf.entries[0].wakeup, 0);
    assert_int_equal(cf.entries[0].maxproc, -1);
    assert_null(cf.entries[0].host);
    assert_string_equal(cf.entries[0].port, "smtp");
    assert_string_equal(cf.entries[0].source, "master.cf:1");
    assert_int_equal(cf.entries[1].private_, 1); /* unix defaults to private */
    assert_string_equal(cf.entries[1].source, "master.cf:2");
    master_cf_free(&cf);
}

static void test_master_cf_explicit_columns(void **state)
{
    master_cf cf;

    (void) state;
    assert_int_equal(parse(&cf, "qmgr unix n y n 300 1 qmgr\nlocal unix - n y 60? 0 local\n"), 0);
    assert_int_equal(cf.entries[0].private_, 0);
    assert_int_equal(cf.entries[0].wakeup, 300);
    assert_int_equal(cf.entries[0].maxproc, 1);
    assert_int_equal(cf.entries[1].unpriv, 0);
    assert_int_equal(cf.entries[1].chroot, 1);
    assert_int_equal(cf.entries[1].wakeup, 60);
    assert_int_equal(cf.entries[1].maxproc, 0);
    master_cf_free(&cf);
}

static void test_master_cf_inet_address_forms(void **state)
{
    static const struct {
        const char *name;
        const char *host;
        const char *port;
    } rows[] = {
        {"2525", NULL, "2525"},      {"127.0.0.1:2525", "127.0.0.1", "2525"},
        {"[::1]:587", "::1", "587"}, {"mail.example.com:submission", "mail.example.com", "submission"},
        {"*:25", NULL, "25"},
    };

    (void) state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        master_cf cf;
        char line[256];

        snprintf(line, sizeof(line), "%s inet n - n - - smtpd\n", rows[i].name);
        assert_int_equal(parse(&cf, line), 0);
        if (rows[i].host)
            assert_string_equal(cf.entries[0].host, rows[i].host);
        else
            assert_null(cf.entries[0].host);
        assert_string_equal(cf.entries[0].port, rows[i].port);
        master_cf_free(&cf);
    }
}

static void test_master_cf_overrides_args_and_continuation(void **state)
{
    master_cf cf;
    const master_cf_entry *e;

    (void) state;
    assert_int_equal(parse(&cf, "# comment\n"
                                "submission inet n - n - - smtpd\n"
                                "  -o syslog_name=kite/submission\n"
                                "# a comment inside the entry\n"
                                "\t-o { smtpd_banner = $myhostname ESMTP ready } -v\n"
                                "  extra { one arg }\n"),
                     0);
    assert_int_equal(cf.count, 1);
    e = &cf.entries[0];
    assert_int_equal(e->noverrides, 2);
    assert_string_equal(e->overrides[0], "syslog_name=kite/submission");
    assert_string_equal(e->overrides[1], "smtpd_banner=$myhostname ESMTP ready");
    assert_int_equal(e->verbose, 1);
    assert_int_equal(e->nargs, 7);
    assert_string_equal(e->args[0], "-o");
    assert_string_equal(e->args[1], "syslog_name=kite/submission");
    assert_string_equal(e->args[3], "smtpd_banner=$myhostname ESMTP ready");
    assert_string_equal(e->args[4], "-v");
    assert_string_equal(e->args[5], "extra");
    assert_string_equal(e->args[6], "one arg");
    assert_null(e->args[7]);
    master_cf_free(&cf);
}

static void test_master_cf_crlf_and_no_final_newline(void **state)
{
    master_cf cf;

    (void) state;
    assert_int_equal(parse(&cf, "a unix - - n - - x\r\nb unix - - n - - y"), 0);
    assert_int_equal(cf.count, 2);
    assert_string_equal(cf.entries[1].command, "y");
    master_cf_free(&cf);
}

/* Hostile and malformed lines: each gives one error naming its line. */
static void test_master_cf_rejects_bad_lines_with_file_line(void **state)
{
    static const struct {
        const char *text;
        const char *expect;
    } rows[] = {
        {"smtp inet n - n - -\n", "master.cf:1: too few fields"},
        {"x fifo n - n - 1 pickup\n", "master.cf:1: service type \"fifo\" is not supported"},
        {"x pass n - n - 1 smtpd\n", "not supported"},
        {"x tcp n - n - 1 smtpd\n", "unknown service type"},
        {"smtp inet y - n - - smtpd\n", "cannot be private"},
        {"x unix maybe - n - - cleanup\n", "bad private column"},
        {"x unix - yes n - - cleanup\n", "bad unpriv column"},
        {"x unix - - Y - - cleanup\n", "bad chroot column"},
        {"x unix - - n -5 - cleanup\n", "bad wakeup column"},
        {"x unix - - n 10x - cleanup\n", "bad wakeup column"},
        {"x unix - - n 99999999999 - cleanup\n", "bad wakeup column"},
        {"x unix - - n - many cleanup\n", "bad maxproc column"},
        {"x unix - - n - 100001 cleanup\n", "bad maxproc column"},
        {"x unix - - n - - ../../bin/sh\n", "bad command name"},
        {"x unix - - n - - /bin/sh\n", "bad command name"},
        {"x unix - - n - - .hidden\n", "bad command name"},
        {"../x unix - - n - - cleanup\n", "bad service name"},
        {"a/b unix - - n - - cleanup\n", "bad service name"},
        {"x unix - - n - - cleanup -o\n", "-o without name=value"},
        {"x unix - - n - - cleanup -o novalue\n", "bad -o argument"},
        {"x unix - - n - - cleanup -o =v\n", "bad -o argument"},
        {"x unix - - n - - cleanup -o bad/name=v\n", "bad -o argument"},
        {"x unix - - n - - cleanup { unclosed\n", "missing '}'"},
        {"x unix - - n - - cleanup {a}b\n", "text after '}'"},
        {"{x} unix - - n - - cleanup\n", "braces are allowed only"},
        {"x unix - - n - - cleanup -c /etc\n", "set by master"},
        {"x unix - - n - - cleanup -u\n", "set by master"},
        {"x inet n - n 10 - smtpd\n", "wakeup is supported only for unix"},
        {"99999 inet n - n - - smtpd\n", "bad inet service address"},
        {"0 inet n - n - - smtpd\n", "bad inet service address"},
        {"[::1 inet n - n - - smtpd\n", "bad inet service address"},
        {"[]:25 inet n - n - - smtpd\n", "bad inet service address"},
        {":25 inet n - n - - smtpd\n", "bad inet service address"},
        {"host:port!x inet n - n - - smtpd\n", "bad inet service address"},
        {"  -o x=y\n", "continuation line without a service"},
        {"x unix - - n - - a\nx unix - - n - - b\n",
         "master.cf:2: duplicate unix service \"x\" (first defined at master.cf:1)"},
    };

    (void) state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        master_cf cf;
        int n = parse(&cf, rows[i].text);

        if (n != 1 || strstr(cf.errors[0], rows[i].expect) == NULL)
            fail_msg("row %zu: \"%s\": %d errors, first \"%s\"", i, rows[i].text, n, n ? cf.errors[0] : "");
        master_cf_free(&cf);
    }
}

static void test_master_cf_control_characters_and_nul(void **state)
{
    static const char text[] = "x unix - - n - - cleanup \x01arg\nok unix - - n - - a\nb\0ad unix\n";
    master_cf cf;

    (void) state;
    master_cf_init(&cf);
    assert_int_equal(master_cf_parse(&cf, "m", text, sizeof(text) - 1), 2);
    assert_non_null(strstr(cf.errors[0], "m:1: control character"));
    assert_non_null(strstr(cf.errors[1], "m:3: NUL character"));
    assert_int_equal(cf.count, 1);
    assert_string_equal(cf.entries[0].name, "ok");
    master_cf_free(&cf);
}

static void test_master_cf_reports_every_error_and_keeps_good_entries(void **state)
{
    master_cf cf;

    (void) state;
    assert_int_equal(parse(&cf, "a unix - - n - - x\nbad\nb unix - - n - - y\nworse fifo\n"), 2);
    assert_int_equal(cf.count, 2);
    assert_non_null(strstr(cf.errors[0], ":2:"));
    assert_non_null(strstr(cf.errors[1], ":4:"));
    master_cf_free(&cf);
}

static void test_master_cf_oversized_entry_and_too_many_errors(void **state)
{
    size_t big = MASTER_CF_LINE_MAX + 100;
    char *text = xmalloc(big + 64);
    master_cf cf;
    vbuf many;

    (void) state;
    memcpy(text, "x unix - - n - - cleanup ", 25);
    memset(text + 25, 'a', big - 25);
    memcpy(text + big, "\n", 2);
    master_cf_init(&cf);
    assert_int_equal(master_cf_parse(&cf, "m", text, strlen(text)), 1);
    assert_non_null(strstr(cf.errors[0], "entry too long"));
    assert_int_equal(cf.count, 0);
    master_cf_free(&cf);
    xfree(text);

    /* Too many arguments. */
    vbuf_init(&many, 0);
    vbuf_puts(&many, "x unix - - n - - cleanup");
    for (int i = 0; i < MASTER_CF_MAX_ARGS + 10; i++)
        vbuf_puts(&many, " a");
    assert_int_equal(parse(&cf, vbuf_str(&many)), 1);
    assert_non_null(strstr(cf.errors[0], "too many arguments"));
    master_cf_free(&cf);

    /* Error flood: capped, with a final note. */
    vbuf_reset(&many);
    for (int i = 0; i < MASTER_CF_MAX_ERRORS * 3; i++)
        vbuf_puts(&many, "bad\n");
    master_cf_init(&cf);
    master_cf_parse(&cf, "m", vbuf_str(&many), many.len);
    assert_int_equal(cf.nerrors, MASTER_CF_MAX_ERRORS + 1);
    assert_non_null(strstr(cf.errors[MASTER_CF_MAX_ERRORS], "too many errors"));
    master_cf_free(&cf);
    vbuf_release(&many);
}

static void test_master_cf_same_and_find(void **state)
{
    master_cf a, b;

    (void) state;
    assert_int_equal(parse(&a, "s inet n - n - - smtpd -o x=1\nc unix - - n - - cleanup\n"), 0);
    assert_int_equal(parse(&b, "s inet n - n - - smtpd -o x=2\nc unix - - n - - cleanup\n"), 0);
    assert_non_null(master_cf_find(&a, "c", MASTER_CF_UNIX));
    assert_null(master_cf_find(&a, "c", MASTER_CF_INET));
    assert_false(master_cf_same(&a.entries[0], &b.entries[0]));
    assert_true(master_cf_same(&a.entries[1], &b.entries[1]));
    master_cf_free(&a);
    master_cf_free(&b);
}

static void test_master_cf_read_missing_file_is_an_error(void **state)
{
    master_cf cf;
    char path[] = "/tmp/test_master_cf_XXXXXX";
    int fd;

    (void) state;
    master_cf_init(&cf);
    assert_int_equal(master_cf_read(&cf, "/nonexistent/master.cf"), 1);
    assert_non_null(strstr(cf.errors[0], "cannot open"));
    master_cf_free(&cf);

    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "p unix n - n 60 1 pickup\n", 25), 25);
    close(fd);
    master_cf_init(&cf);
    assert_int_equal(master_cf_read(&cf, path), 0);
    assert_int_equal(cf.count, 1);
    assert_int_equal(cf.entries[0].wakeup, 60);
    master_cf_free(&cf);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_master_cf_defaults_per_column),
        cmocka_unit_test(test_master_cf_explicit_columns),
        cmocka_unit_test(test_master_cf_inet_address_forms),
        cmocka_unit_test(test_master_cf_overrides_args_and_continuation),
        cmocka_unit_test(test_master_cf_crlf_and_no_final_newline),
        cmocka_unit_test(test_master_cf_rejects_bad_lines_with_file_line),
        cmocka_unit_test(test_master_cf_control_characters_and_nul),
        cmocka_unit_test(test_master_cf_reports_every_error_and_keeps_good_entries),
        cmocka_unit_test(test_master_cf_oversized_entry_and_too_many_errors),
        cmocka_unit_test(test_master_cf_same_and_find),
        cmocka_unit_test(test_master_cf_read_missing_file_is_an_error),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
