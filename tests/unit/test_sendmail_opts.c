/*
 * Unit tests for sendmail's command line (cmd/sendmail/opts.c): modes,
 * values attached or separate, the names mailq/newaliases, legacy options,
 * DSN option values, and the sysexits codes of bad input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../cmd/sendmail/opts.c"

#define MAXARGS 64

/* parse - split a command line at spaces and parse it */
static int parse(const char *line, sendmail_opts *o, vbuf *err)
{
    static char buf[512];
    static char *argv[MAXARGS];
    int argc = 0;
    char *cursor = buf, *tok;

    snprintf(buf, sizeof(buf), "%s", line);
    while ((tok = str_token(&cursor, " ")) != NULL && argc < MAXARGS - 1)
        argv[argc++] = tok;
    argv[argc] = NULL;
    vbuf_reset(err);
    return sendmail_parse(argc, argv, o, err);
}

typedef struct mode_case {
    const char *line;
    enum sendmail_mode mode;
} mode_case;

static void test_sendmail_modes(void **state)
{
    static const mode_case cases[] = {
        {"sendmail bob", SM_MODE_DELIVER},    {"sendmail -bm bob", SM_MODE_DELIVER},
        {"sendmail -bs", SM_MODE_SMTP},       {"sendmail -bp", SM_MODE_MAILQ},
        {"/usr/bin/mailq", SM_MODE_MAILQ},    {"sendmail -bi", SM_MODE_NEWALIASES},
        {"sendmail -I", SM_MODE_NEWALIASES},  {"/usr/bin/newaliases", SM_MODE_NEWALIASES},
        {"sendmail -bv bob", SM_MODE_VERIFY}, {"sendmail -q", SM_MODE_FLUSH},
        {"sendmail -q30m", SM_MODE_FLUSH},
    };
    sendmail_opts o;
    vbuf err;

    (void) state;
    vbuf_init(&err, 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = parse(cases[i].line, &o, &err);

        if (rc != 0)
            fail_msg("%s: %s", cases[i].line, err.data);
        if (o.mode != cases[i].mode)
            fail_msg("%s: mode %d, expected %d", cases[i].line, o.mode, cases[i].mode);
    }
    vbuf_release(&err);
}

static void test_sendmail_values_attached_and_separate(void **state)
{
    sendmail_opts o;
    vbuf err;

    (void) state;
    vbuf_init(&err, 0);
    assert_int_equal(parse("sendmail -t -i -falice@example.com -F Alice -N success,delay -R hdrs -V env1 -B 8BITMIME "
                           "-C /etc/kite bob carol",
                           &o, &err),
                     0);
    assert_true(o.extract);
    assert_true(o.ignore_dots);
    assert_string_equal(o.sender, "alice@example.com");
    assert_string_equal(o.fullname, "Alice");
    assert_int_equal(o.notify, QF_NOTIFY_SUCCESS | QF_NOTIFY_DELAY);
    assert_string_equal(o.ret, "hdrs");
    assert_string_equal(o.envid, "env1");
    assert_string_equal(o.body, "8bitmime");
    assert_string_equal(o.confdir, "/etc/kite");
    assert_int_equal(o.nrcpt, 2);
    assert_string_equal(o.rcpts[0], "bob");
    assert_string_equal(o.rcpts[1], "carol");

    assert_int_equal(parse("sendmail -f alice -oi -r bob@x -Nnever x", &o, &err), 0);
    assert_string_equal(o.sender, "bob@x"); /* the last -f/-r wins */
    assert_true(o.ignore_dots);
    assert_int_equal(o.notify, QF_NOTIFY_NEVER);

    assert_int_equal(parse("sendmail -f <> x", &o, &err), 0);
    assert_string_equal(o.sender, "");
    assert_int_equal(parse("sendmail -f <a@b> x", &o, &err), 0);
    assert_string_equal(o.sender, "a@b");

    assert_int_equal(parse("sendmail -qRexample.com", &o, &err), 0);
    assert_int_equal(o.mode, SM_MODE_FLUSH);
    assert_string_equal(o.flush_site, "example.com");
    assert_int_equal(parse("sendmail -qI ABC", &o, &err), 0);
    assert_string_equal(o.flush_id, "ABC");
    vbuf_release(&err);
}

static void test_sendmail_legacy_options_are_harmless(void **state)
{
    sendmail_opts o;
    vbuf err;

    (void) state;
    vbuf_init(&err, 0);
    assert_int_equal(parse("sendmail -oem -odb -odi -oQ/var/spool -oee -v -n -U -G -c -m -h 17 -L tag -X /dev/null "
                           "-Otimeout=5 -e -bm -- -dash-rcpt",
                           &o, &err),
                     0);
    assert_int_equal(o.mode, SM_MODE_DELIVER);
    assert_int_equal(o.verbose, 1);
    assert_int_equal(o.nrcpt, 1);
    assert_string_equal(o.rcpts[0], "-dash-rcpt");
    vbuf_release(&err);
}

typedef struct bad_case {
    const char *line;
    int code;
    const char *text;
} bad_case;

static void test_sendmail_bad_input_exit_codes(void **state)
{
    static const bad_case cases[] = {
        {"sendmail", EX_USAGE, "Recipient addresses must be specified"},
        {"sendmail -bd", EX_USAGE, "not supported"},
        {"sendmail -bz x", EX_USAGE, "unsupported mode"},
        {"sendmail -Z x", EX_USAGE, "unknown option"},
        {"sendmail -N sometimes x", EX_USAGE, "bad -N"},
        {"sendmail -N never,success x", EX_USAGE, "bad -N"},
        {"sendmail -R body x", EX_USAGE, "bad -R"},
        {"sendmail -B binarymime x", EX_USAGE, "bad -B"},
        {"sendmail -f", EX_USAGE, "requires an argument"},
        {"sendmail -qR", EX_USAGE, "requires an argument"},
        {"sendmail -tx", EX_USAGE, "unknown option"},
        {"sendmail -o", EX_USAGE, "needs a letter"},
    };
    sendmail_opts o;
    vbuf err;

    (void) state;
    vbuf_init(&err, 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = parse(cases[i].line, &o, &err);

        if (rc != cases[i].code)
            fail_msg("%s: code %d, expected %d", cases[i].line, rc, cases[i].code);
        if (strstr(err.data, cases[i].text) == NULL)
            fail_msg("%s: message \"%s\" lacks \"%s\"", cases[i].line, err.data, cases[i].text);
    }
    /* -t without recipients on the command line is fine (they come from headers). */
    assert_int_equal(parse("sendmail -t", &o, &err), 0);
    vbuf_release(&err);
}

static void test_sendmail_envid_limits(void **state)
{
    char line[300];
    char big[120];
    sendmail_opts o;
    vbuf err;

    (void) state;
    vbuf_init(&err, 0);
    memset(big, 'e', 101);
    big[101] = 0;
    snprintf(line, sizeof(line), "sendmail -V %s x", big);
    assert_int_equal(parse(line, &o, &err), EX_USAGE);
    big[100] = 0;
    snprintf(line, sizeof(line), "sendmail -V %s x", big);
    assert_int_equal(parse(line, &o, &err), 0);
    vbuf_release(&err);
}

static void test_sendmail_notify_parser(void **state)
{
    (void) state;
    assert_int_equal(sendmail_parse_notify("never"), QF_NOTIFY_NEVER);
    assert_int_equal(sendmail_parse_notify("NEVER"), QF_NOTIFY_NEVER);
    assert_int_equal(sendmail_parse_notify("failure"), QF_NOTIFY_FAILURE);
    assert_int_equal(sendmail_parse_notify("success,failure,delay"),
                     QF_NOTIFY_SUCCESS | QF_NOTIFY_FAILURE | QF_NOTIFY_DELAY);
    assert_int_equal(sendmail_parse_notify(""), -1);
    assert_int_equal(sendmail_parse_notify("succes"), -1);
    assert_int_equal(sendmail_parse_notify("success,"), QF_NOTIFY_SUCCESS);
    assert_int_equal(sendmail_parse_notify(",,"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sendmail_modes),
        cmocka_unit_test(test_sendmail_values_attached_and_separate),
        cmocka_unit_test(test_sendmail_legacy_options_are_harmless),
        cmocka_unit_test(test_sendmail_bad_input_exit_codes),
        cmocka_unit_test(test_sendmail_envid_limits),
        cmocka_unit_test(test_sendmail_notify_parser),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
