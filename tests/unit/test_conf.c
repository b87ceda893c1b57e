/*
 * Unit tests for conf: main.cf syntax (continuation lines, comments),
 * $name expansion in all its forms, loop detection, typed values with
 * file:line errors, time units, unknown-parameter warnings and -o overrides.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "msg.h"
#include "params.h"
#include "vbuf.h"

static char confdir[256];
static char mainpath[300];
static vbuf captured; /* every message, "level:text\n" */

static void capture(enum msg_level level, const char *text)
{
    vbuf_printf(&captured, "%d:%s\n", (int) level, text);
}

static int setup(void **state)
{
    (void) state;
    snprintf(confdir, sizeof(confdir), "/tmp/test_conf.XXXXXX");
    if (mkdtemp(confdir) == NULL)
        return -1;
    snprintf(mainpath, sizeof(mainpath), "%s/main.cf", confdir);
    vbuf_init(&captured, 0);
    msg_stderr(0);
    msg_set_capture(capture);
    conf_reset();
    return 0;
}

static int teardown(void **state)
{
    (void) state;
    conf_reset();
    msg_set_capture(NULL);
    vbuf_release(&captured);
    (void) unlink(mainpath);
    return rmdir(confdir);
}

/* load - write text as main.cf and load it; returns conf_load's error count */
static int load(const char *text)
{
    FILE *fp = fopen(mainpath, "w");

    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
    conf_reset();
    vbuf_reset(&captured);
    return conf_load(confdir);
}

/* said - was a message containing all of the given words captured? */
static int said(const char *a, const char *b)
{
    const char *line = captured.data;

    while (line && *line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t) (end - line) : strlen(line);
        char buf[4096];

        snprintf(buf, sizeof(buf), "%.*s", (int) len, line);
        if (strstr(buf, a) && (b == NULL || strstr(buf, b)))
            return 1;
        line = end ? end + 1 : NULL;
    }
    return 0;
}

static void test_conf_continuation_lines_and_comments(void **state)
{
    (void) state;
    assert_int_equal(load("# a comment\n"
                          "   # an indented comment\n"
                          "\n"
                          "mydestination = one,\n"
                          "    two,\n"
                          "# a comment between continuation lines\n"
                          "\tthree\n"
                          "myhostname=mx.example.com\r\n"
                          "smtpd_banner = $myhostname # not a comment\n"
                          "empty_thing =\n"),
                     0);
    assert_string_equal(conf_lookup_raw("mydestination"), "one, two, three");
    assert_string_equal(var_mydestination, "one, two, three");
    assert_string_equal(var_myhostname, "mx.example.com");
    assert_string_equal(conf_lookup("smtpd_banner"), "mx.example.com # not a comment");
    assert_string_equal(conf_lookup("empty_thing"), "");
    assert_true(conf_is_set("empty_thing"));
    assert_false(conf_is_set("myorigin"));
    /* the source of each setting is FILE:LINE of its first line */
    {
        char want[400];

        snprintf(want, sizeof(want), "%s:4", mainpath);
        assert_string_equal(conf_source("mydestination"), want);
        snprintf(want, sizeof(want), "%s:8", mainpath);
        assert_string_equal(conf_source("myhostname"), want);
    }
    assert_null(conf_source("myorigin"));
}

static void test_conf_syntax_errors_report_file_and_line(void **state)
{
    static const struct {
        const char *text;
        const char *what;
        const char *line;
    } cases[] = {
        {"myhostname = a\n  continued\nno equals sign here\n", "missing '='", ":3:"},
        {"  leading continuation = 1\n", "continuation line without", ":1:"},
        {"bad name! = 1\n", "bad parameter name", ":1:"},
        {"= value\n", "bad parameter name", ":1:"},
    };

    (void) state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_true(load(cases[i].text) > 0);
        if (!said(cases[i].what, cases[i].line))
            fail_msg("case %zu: no \"%s\" at %s in:\n%s", i, cases[i].what, cases[i].line, captured.data);
    }
}

static void test_conf_expansion_forms(void **state)
{
    static const struct {
        const char *name;
        const char *want;
    } cases[] = {
        {"plain", "$a"}, /* raw: not expanded */
        {"e1", "A-value"},
        {"e2", "A-value.suffix"},
        {"e3", "A-valuetail"},
        {"e4", "A-valuetail"},
        {"e5", "[yes]"},
        {"e6", "[]"},
        {"e7", "[]"},
        {"e8", "[fallback]"},
        {"e9", "cost $5 and $a"},
        {"e10", "A-value-dash"},
        {"e11", "nested A-value here"},
        {"e12", ""},
        {"e13", "A-value@A-value"},
    };

    (void) state;
    assert_int_equal(load("a = A-value\n"
                          "empty =\n"
                          "plain = $a\n"
                          "e1 = $a\n"
                          "e2 = $a.suffix\n"
                          "e3 = ${a}tail\n"
                          "e4 = $(a)tail\n"
                          "e5 = [${a?yes}]\n"
                          "e6 = [${empty?yes}]\n"
                          "e7 = [${a:fallback}]\n"
                          "e8 = [${empty:fallback}]\n"
                          "e9 = cost $$5 and $$a\n"
                          "e10 = $a-dash\n"
                          "e11 = ${a?nested ${a} here}\n"
                          "e12 = $undefined_name\n"
                          "e13 = $a@$a\n"),
                     0);
    assert_string_equal(conf_lookup_raw("plain"), "$a");
    for (size_t i = 1; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *v = conf_lookup(cases[i].name);

        if (v == NULL || strcmp(v, cases[i].want) != 0)
            fail_msg("%s: got \"%s\", want \"%s\"", cases[i].name, v ? v : "(null)", cases[i].want);
    }
    {
        char *x = conf_expand("<$a|${e5}>");

        assert_string_equal(x, "<A-value|[yes]>");
        free(x);
    }
}

static void test_conf_defaults_expand_through_the_table(void **state)
{
    (void) state;
    assert_int_equal(load("myhostname = host.example.org\n"), 0);
    assert_string_equal(var_myorigin, "host.example.org");
    assert_string_equal(var_mydomain, "example.org");
    assert_string_equal(conf_lookup_raw("myorigin"), "$myhostname");
    assert_string_equal(var_mydestination, "host.example.org, localhost.example.org, localhost");
    /* a reload with another host name computes mydomain afresh */
    assert_int_equal(load("myhostname = mx.other.net\n"), 0);
    assert_string_equal(var_mydomain, "other.net");
    assert_string_equal(conf_lookup("mydomain"), "other.net");
}

static void test_conf_bad_expansion_syntax(void **state)
{
    static const char *const bad[] = {"${a", "$(a", "${}", "$", "x $ y", "${a?unterminated", "$(a}"};

    (void) state;
    assert_int_equal(load("a = 1\n"), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *x = conf_expand(bad[i]);

        if (x != NULL)
            fail_msg("\"%s\" expanded to \"%s\"", bad[i], x);
    }
}

static void test_conf_self_reference_loops_are_detected(void **state)
{
    (void) state;
    /* a string parameter whose expansion fails is never left NULL */
    free(var_myorigin);
    var_myorigin = NULL;
    assert_true(load("loop_a = x $loop_b\n"
                     "loop_b = ${loop_c?y}$loop_a\n"
                     "loop_c = 1\n"
                     "self = $self\n"
                     "myorigin = $myorigin.example\n"
                     "fine = $loop_c\n") > 0);
    /* myorigin is a table parameter: its loop is an error at load time */
    assert_true(said("myorigin", "refers to itself"));
    assert_non_null(var_myorigin);
    assert_null(conf_lookup("loop_a"));
    assert_true(said("refers to itself", ":1"));
    assert_null(conf_lookup("self"));
    assert_null(conf_expand("$self"));
    assert_string_equal(conf_lookup("fine"), "1");
    /* deep but finite chains are fine; too deep ones are refused */
    {
        vbuf text;

        vbuf_init(&text, 0);
        for (int i = 0; i < 30; i++)
            vbuf_printf(&text, "chain%d = $chain%d\n", i, i + 1);
        vbuf_puts(&text, "chain30 = end\n");
        assert_int_equal(load(text.data), 0);
        assert_string_equal(conf_lookup("chain0"), "end");
        vbuf_reset(&text);
        for (int i = 0; i < 200; i++)
            vbuf_printf(&text, "chain%d = $chain%d\n", i, i + 1);
        vbuf_puts(&text, "chain200 = end\n");
        assert_int_equal(load(text.data), 0);
        assert_null(conf_lookup("chain0"));
        assert_true(said("too deeply", NULL));
        vbuf_release(&text);
    }
}

static void test_conf_unknown_parameters_warned_with_file_line(void **state)
{
    char want[400];

    (void) state;
    assert_int_equal(load("myhostname = a.example\n"
                          "smtpd_bogus = 1\n"
                          "helper = x\n"
                          "relay_domains = $helper\n"
                          "smtp_destination_concurrency_limit = 4\n"
                          "typo_myhostname = b\n"),
                     0);
    vbuf_reset(&captured);
    assert_int_equal(conf_check_unknown(), 2);
    snprintf(want, sizeof(want), "%s:2: unknown parameter \"smtpd_bogus\"", mainpath);
    assert_true(said(want, NULL));
    snprintf(want, sizeof(want), "%s:6: unknown parameter \"typo_myhostname\"", mainpath);
    assert_true(said(want, NULL));
    assert_false(said("helper", NULL));      /* used by relay_domains */
    assert_false(said("concurrency", NULL)); /* per-transport form */
    assert_true(said("1:", NULL));           /* warnings, not errors */
}

static void test_conf_bad_typed_values_report_file_line(void **state)
{
    static const struct {
        const char *text;
        const char *words;
    } cases[] = {
        {"smtputf8_enable = maybe\n", "bad boolean value for parameter smtputf8_enable"},
        {"default_process_limit = many\n", "bad numerical value for parameter default_process_limit"},
        {"default_process_limit = 10x\n", "bad numerical value"},
        {"default_process_limit = \n", "bad numerical value"},
        {"default_process_limit = 99999999999999999999999\n", "bad numerical value"},
        {"default_process_limit = 0\n", "below the minimum 1"},
        {"hash_queue_depth = 5\n", "out of range [1..4]"},
        {"max_idle = 10y\n", "bad time value for parameter max_idle"},
        {"max_idle = -5s\n", "bad time value"},
        {"max_idle = 5ss\n", "bad time value"},
        {"max_idle = s\n", "bad time value"},
        {"max_idle = 99999999999999999w\n", "bad time value"},
        {"message_size_limit = 1e6\n", "bad numerical value"},
    };

    (void) state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (load(cases[i].text) != 1)
            fail_msg("case %zu (%s): not one error:\n%s", i, cases[i].text, captured.data);
        if (!said(cases[i].words, ":1:"))
            fail_msg("case %zu: no \"%s\" with file:line in:\n%s", i, cases[i].words, captured.data);
        assert_true(said(mainpath, NULL));
    }
    /* after an error the variable holds the default, not garbage */
    load("default_process_limit = many\nsmtputf8_enable = maybe\n");
    assert_int_equal(var_default_process_limit, 100);
    assert_int_equal(var_smtputf8_enable, 1);
}

static void test_conf_good_typed_values(void **state)
{
    (void) state;
    assert_int_equal(load("smtputf8_enable = no\n"
                          "strict_rfc821_envelopes = YES\n"
                          "append_dot_mydomain = true\n"
                          "allow_percent_hack = 0\n"
                          "default_process_limit = 7\n"
                          "message_size_limit = 0\n"),
                     0);
    assert_int_equal(var_smtputf8_enable, 0);
    assert_int_equal(var_strict_rfc821_envelopes, 1);
    assert_int_equal(var_append_dot_mydomain, 1);
    assert_int_equal(var_allow_percent_hack, 0);
    assert_int_equal(var_default_process_limit, 7);
    assert_int_equal(var_message_size_limit, 0);
}

static void test_conf_time_units_and_default_unit(void **state)
{
    static const struct {
        const char *text;
        long *var;
        long want;
    } cases[] = {
        {"max_idle = 30\n", &var_max_idle, 30}, /* default "100s": seconds */
        {"max_idle = 30s\n", &var_max_idle, 30},
        {"max_idle = 2m\n", &var_max_idle, 120},
        {"max_idle = 2h\n", &var_max_idle, 7200},
        {"max_idle = 2d\n", &var_max_idle, 172800},
        {"max_idle = 2w\n", &var_max_idle, 1209600},
        {"maximal_queue_lifetime = 3\n", &var_maximal_queue_lifetime, 3 * 86400}, /* default "5d" */
        {"maximal_queue_lifetime = 3h\n", &var_maximal_queue_lifetime, 3 * 3600},
        {"maximal_queue_lifetime = 0\n", &var_maximal_queue_lifetime, 0},
        {"delay_warning_time = 4\n", &var_delay_warning_time, 4 * 3600}, /* default "0h" */
        {"", &var_maximal_queue_lifetime, 5 * 86400},
    };
    long out;

    (void) state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(load(cases[i].text), 0);
        if (*cases[i].var != cases[i].want)
            fail_msg("\"%s\": %ld, want %ld", cases[i].text, *cases[i].var, cases[i].want);
    }
    assert_int_equal(conf_parse_time("10", 'm', &out), 0);
    assert_int_equal(out, 600);
    assert_int_equal(conf_parse_time("10", 'x', &out), -1);
    assert_int_equal(conf_parse_time("", 's', &out), -1);
    assert_int_equal(conf_parse_time(" 10", 's', &out), -1);
    assert_int_equal(conf_parse_time("10 s", 's', &out), -1);
    assert_int_equal(conf_lookup_time("unset_time_param", 42, 's'), 42);
    load("per_transport_time = 3m\nper_transport_int = 12\nper_transport_bool = no\nbad_int = x\n");
    assert_int_equal(conf_lookup_time("per_transport_time", 1, 's'), 180);
    assert_int_equal(conf_lookup_int("per_transport_int", 1), 12);
    assert_int_equal(conf_lookup_bool("per_transport_bool", 1), 0);
    assert_int_equal(conf_lookup_int("bad_int", 77), 77);
    assert_true(said("bad numerical value for parameter bad_int", ":4"));
}

static void test_conf_overrides_win_over_the_file(void **state)
{
    static const char *const bad_args[] = {"noequals", "=value", " =value", ""};

    (void) state;
    for (size_t i = 0; i < sizeof(bad_args) / sizeof(bad_args[0]); i++)
        assert_int_equal(conf_override_arg(bad_args[i]), -1);
    {
        FILE *fp = fopen(mainpath, "w");

        assert_non_null(fp);
        fputs("myhostname = from.file\ndefault_process_limit = 5\nmyorigin = $mydomain\n", fp);
        fclose(fp);
    }
    conf_reset();
    assert_int_equal(conf_override_arg("myhostname=from.override"), 0);
    assert_int_equal(conf_override_arg(" default_process_limit = 9"), 0);
    assert_int_equal(conf_override_arg("new_thing=a=b"), 0);
    assert_int_equal(conf_load(confdir), 0);
    assert_string_equal(var_myhostname, "from.override");
    assert_int_equal(var_default_process_limit, 9);
    assert_string_equal(conf_lookup("new_thing"), "a=b");
    assert_string_equal(conf_source("myhostname"), "-o");
    /* expansion happens after all input is in: the file's myorigin sees the override */
    assert_string_equal(var_myorigin, "override");
    assert_string_equal(var_config_directory, confdir);
}

static void test_conf_missing_file_means_defaults(void **state)
{
    (void) state;
    (void) unlink(mainpath);
    conf_reset();
    assert_int_equal(conf_load(confdir), 0);
    assert_int_equal(var_default_process_limit, 100);
    assert_string_equal(var_mail_owner, "kite");
}

static void test_conf_hostile_file_content(void **state)
{
    FILE *fp;

    (void) state;
    /* a NUL byte in a line is an error with its line number */
    fp = fopen(mainpath, "w");
    assert_non_null(fp);
    fwrite("myhostname = a\0b\nmydomain = ok.example\n", 1, 39, fp);
    fclose(fp);
    conf_reset();
    vbuf_reset(&captured);
    assert_int_equal(conf_load(confdir), 1);
    assert_true(said("NUL", ":1:"));
    assert_string_equal(var_mydomain, "ok.example");
    /* an enormous logical line is refused, not stored */
    {
        vbuf text;

        vbuf_init(&text, 0);
        vbuf_puts(&text, "mydestination = a");
        for (int i = 0; i < 20000; i++)
            vbuf_puts(&text, "\n    continuation");
        vbuf_puts(&text, "\nmyhostname = after.example\n");
        assert_true(load(text.data) > 0);
        assert_true(said("too long", NULL));
        assert_string_equal(var_myhostname, "after.example");
        vbuf_release(&text);
    }
    /* a main.cf that is a directory cannot be read */
    (void) unlink(mainpath);
    assert_int_equal(mkdir(mainpath, 0700), 0);
    conf_reset();
    vbuf_reset(&captured);
    assert_true(conf_load(confdir) > 0);
    assert_int_equal(rmdir(mainpath), 0);
}

static void test_conf_format_value_and_raw_names(void **state)
{
    char *s;

    (void) state;
    assert_int_equal(load("max_idle = 2m\nsmtputf8_enable = no\nzeta = 1\nalpha = 2\n"), 0);
    s = conf_format_value(conf_param_find("max_idle"));
    assert_string_equal(s, "120s");
    free(s);
    s = conf_format_value(conf_param_find("smtputf8_enable"));
    assert_string_equal(s, "no");
    free(s);
    assert_int_equal(conf_raw_count(), 5); /* four from the file, config_directory */
    assert_string_equal(conf_raw_name(2), "zeta");
    assert_string_equal(conf_raw_name(3), "alpha");
    assert_null(conf_raw_name(99));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_conf_continuation_lines_and_comments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf_syntax_errors_report_file_and_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf_expansion_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf_defaults_expand_through_the_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf_bad_expansion_syntax, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf_self_reference_loops_are_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf_unknown_parameters_warned_with_file_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf_bad_typed_values_report_file_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf_good_typed_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf_time_units_and_default_unit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf_overrides_win_over_the_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf_missing_file_means_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf_hostile_file_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf_format_value_and_raw_names, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
