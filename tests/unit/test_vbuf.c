/* Unit tests for vbuf: growth, limits, formatting, binary content. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vbuf.h"

static void test_vbuf_append_grows_and_terminates(void **state)
{
    vbuf b;

    (void) state;
    vbuf_init(&b, 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(vbuf_puts(&b, "abc"), 0);
    assert_int_equal(b.len, 3000);
    assert_int_equal(strlen(vbuf_str(&b)), 3000);
    assert_true(b.cap > b.len);
    vbuf_release(&b);
}

static void test_vbuf_limit_refuses_and_leaves_content(void **state)
{
    vbuf b;

    (void) state;
    vbuf_init(&b, 5);
    assert_int_equal(vbuf_puts(&b, "abcd"), 0);
    assert_int_equal(vbuf_puts(&b, "ef"), -1);
    assert_string_equal(vbuf_str(&b), "abcd");
    assert_int_equal(vbuf_putc(&b, 'e'), 0);
    assert_int_equal(vbuf_putc(&b, 'f'), -1);
    assert_int_equal(vbuf_printf(&b, "%d", 7), -1);
    assert_string_equal(vbuf_str(&b), "abcde");
    vbuf_release(&b);
}

static void test_vbuf_printf_long_output(void **state)
{
    vbuf b;
    char big[5000];

    (void) state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    vbuf_init(&b, 0);
    assert_int_equal(vbuf_printf(&b, "<%s>%d", big, 42), 0);
    assert_int_equal(b.len, 4999 + 4);
    assert_memory_equal(b.data + b.len - 3, ">42", 3);
    vbuf_release(&b);
}

static void test_vbuf_printf_limit(void **state)
{
    vbuf b;

    (void) state;
    vbuf_init(&b, 8);
    assert_int_equal(vbuf_printf(&b, "%s", "123456789"), -1);
    assert_int_equal(b.len, 0);
    assert_string_equal(vbuf_str(&b), "");
    assert_int_equal(vbuf_printf(&b, "%s", "12345678"), 0);
    vbuf_release(&b);
}

static void test_vbuf_binary_with_nul(void **state)
{
    vbuf b;

    (void) state;
    vbuf_init(&b, 0);
    assert_int_equal(vbuf_append(&b, "a\0b", 3), 0);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "a\0b", 3);
    vbuf_release(&b);
}

static void test_vbuf_trim_lower_truncate_steal(void **state)
{
    vbuf b;
    char *s;

    (void) state;
    vbuf_init(&b, 0);
    vbuf_set(&b, "  \tHeLLo World \t");
    vbuf_trim(&b);
    assert_string_equal(vbuf_str(&b), "HeLLo World");
    vbuf_lower(&b);
    assert_string_equal(vbuf_str(&b), "hello world");
    vbuf_truncate(&b, 5);
    assert_string_equal(vbuf_str(&b), "hello");
    vbuf_truncate(&b, 50);
    assert_string_equal(vbuf_str(&b), "hello");
    s = vbuf_steal(&b);
    assert_string_equal(s, "hello");
    assert_int_equal(b.len, 0);
    free(s);
    vbuf_set(&b, "   ");
    vbuf_trim(&b);
    assert_int_equal(b.len, 0);
    vbuf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vbuf_append_grows_and_terminates),
        cmocka_unit_test(test_vbuf_limit_refuses_and_leaves_content),
        cmocka_unit_test(test_vbuf_printf_long_output),
        cmocka_unit_test(test_vbuf_printf_limit),
        cmocka_unit_test(test_vbuf_binary_with_nul),
        cmocka_unit_test(test_vbuf_trim_lower_truncate_steal),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
