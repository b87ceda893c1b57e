/* Unit tests for strutil: tokens, ASCII case handling, trimming, strict numbers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "strutil.h"
#include "vbuf.h"

static void test_str_token_skips_empty_fields(void **state)
{
    static const struct {
        const char *in;
        const char *delims;
        const char *want; /* tokens joined with '|' */
    } cases[] = {
        {"a b c", CHARS_SPACE, "a|b|c"}, {"  a,, b ,c  ", CHARS_COMMA_SPACE, "a|b|c"},
        {"", CHARS_SPACE, ""},           {"   ", CHARS_SPACE, ""},
        {"one", CHARS_SPACE, "one"},     {"\ta\r\nb\n", CHARS_SPACE, "a|b"},
        {"x:y::z", ":", "x|y|z"},
    };

    (void) state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *copy = strdup(cases[i].in), *cursor = copy, *tok;
        vbuf got;

        vbuf_init(&got, 0);
        while ((tok = str_token(&cursor, cases[i].delims)) != NULL) {
            if (got.len)
                vbuf_putc(&got, '|');
            vbuf_puts(&got, tok);
        }
        assert_string_equal(vbuf_str(&got), cases[i].want);
        assert_null(str_token(&cursor, cases[i].delims)); /* stays at the end */
        vbuf_release(&got);
        free(copy);
    }
    {
        char *cursor = NULL;

        assert_null(str_token(&cursor, CHARS_SPACE));
    }
}

static void test_str_case_functions_are_ascii_only(void **state)
{
    char s[] = "MiXeD \xc3\x84 Case 123";

    (void) state;
    assert_true(str_case_eq("Example.COM", "example.com"));
    assert_true(str_case_eq("", ""));
    assert_false(str_case_eq("abc", "abcd"));
    assert_false(str_case_eq("abcd", "abc"));
    assert_false(str_case_eq("\xc3\x84", "\xc3\xa4")); /* no UTF-8 folding */
    assert_false(str_case_eq("[", "{"));               /* not a 0x20 trick */
    assert_true(str_case_prefix("MAIL FROM:<a>", "mail from:"));
    assert_true(str_case_prefix("abc", ""));
    assert_false(str_case_prefix("MAI", "mail"));
    assert_false(str_case_prefix("", "m"));
    str_lower(s);
    assert_string_equal(s, "mixed \xc3\x84 case 123");
}

static void test_str_trim_in_place(void **state)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"  a b  ", "a b"}, {"\t\r\nx\r\n", "x"}, {"", ""}, {"   ", ""}, {"x", "x"},
    };

    (void) state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[64];

        snprintf(buf, sizeof(buf), "%s", cases[i].in);
        assert_string_equal(str_trim(buf), cases[i].want);
    }
}

static void test_str_to_long_is_strict(void **state)
{
    static const struct {
        const char *in;
        int ok;
        long want;
    } cases[] = {
        {"0", 1, 0},
        {"42", 1, 42},
        {"-7", 1, -7},
        {"9223372036854775807", 1, LONG_MAX},
        {"-9223372036854775808", 1, LONG_MIN},
        {"9223372036854775808", 0, 0},
        {"-9223372036854775809", 0, 0},
        {"", 0, 0},
        {" 1", 0, 0},
        {"\t1", 0, 0},
        {"\n1", 0, 0},
        {"\v1", 0, 0},
        {"1 ", 0, 0},
        {"1x", 0, 0},
        {"0x10", 0, 0},
        {"1e3", 0, 0},
        {"-", 0, 0},
        {"+", 0, 0},
    };

    (void) state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        long out = 12345;
        int ret = str_to_long(cases[i].in, &out);

        if ((ret == 0) != cases[i].ok)
            fail_msg("str_to_long(\"%s\") returned %d", cases[i].in, ret);
        if (cases[i].ok)
            assert_int_equal(out, cases[i].want);
        else
            assert_int_equal(out, 12345); /* untouched on failure */
    }
}

static void test_str_is_ascii_printable(void **state)
{
    (void) state;
    assert_true(str_is_ascii_printable("Hello, World!~", 14));
    assert_true(str_is_ascii_printable("", 0));
    assert_false(str_is_ascii_printable("a\tb", 3));
    assert_false(str_is_ascii_printable("a\x7f", 2));
    assert_false(str_is_ascii_printable("\xc3\xa4", 2));
    assert_false(str_is_ascii_printable("a\0b", 3)); /* the length rules, not NUL */
    assert_true(str_is_ascii_printable("ab\x01", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_str_token_skips_empty_fields),
        cmocka_unit_test(test_str_case_functions_are_ascii_only),
        cmocka_unit_test(test_str_trim_in_place),
        cmocka_unit_test(test_str_to_long_is_strict),
        cmocka_unit_test(test_str_is_ascii_printable),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
