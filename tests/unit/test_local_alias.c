/*
 * Unit tests for the alias/.forward/:include: list syntax (local/alias_parse.c):
 * well-formed lists item by item, and hostile input (unterminated quotes,
 * control characters, oversized items, too many items, empty commands).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../local/local.h"
#include "mymalloc.h"
#include "vbuf.h"

typedef struct parse_row {
    const char *text;
    int file_syntax;
    int ok;
    const char *expect; /* "type:value|type:value..." */
} parse_row;

/* A=address C=command F=file I=include S=self */
static const parse_row rows[] = {
    {"bob", 0, 1, "A:bob"},
    {"bob, carol@example.org", 0, 1, "A:bob|A:carol@example.org"},
    {"bob carol", 0, 1, "A:bob|A:carol"},
    {"<bob@example.org>", 0, 1, "A:bob@example.org"},
    {"|/usr/bin/procmail -a x", 0, 1, "C:/usr/bin/procmail -a x"},
    {"\"|/bin/cat >> /tmp/out, with comma\", bob", 0, 1, "C:/bin/cat >> /tmp/out, with comma|A:bob"},
    {"/var/log/mail.copy, /srv/box/", 0, 1, "F:/var/log/mail.copy|F:/srv/box/"},
    {":include:/etc/mail/list", 0, 1, "I:/etc/mail/list"},
    {":INCLUDE: /etc/mail/list", 0, 1, "I:/etc/mail/list"},
    {"\\bob, |cmd", 0, 1, "S:bob|C:cmd"},
    {"\"john doe\"@example.org", 0, 1, "A:john doe@example.org"},
    {"", 0, 1, ""},
    {" , ,, ", 0, 1, ""},
    {"# comment\nbob\n  # indented comment\n|cmd arg\n", 1, 1, "A:bob|C:cmd arg"},
    {"bob\r\ncarol\r\n", 1, 1, "A:bob|A:carol"},
    {"#only a comment", 1, 1, ""},
    /* Hostile. */
    {"\"unterminated", 0, 0, NULL},
    {"\"|cmd\nmore\"", 1, 0, NULL},
    {"|", 0, 0, NULL},
    {"|   , bob", 0, 0, NULL},
    {":include:relative/path", 0, 0, NULL},
    {"bob\x01", 0, 0, NULL},
    {"\\", 0, 0, NULL},
    {"<>", 0, 0, NULL},
    {"a<b", 0, 0, NULL},
};

/* render - items as "T:value|..." */
static void render(vbuf *out, const alias_item *items, size_t n)
{
    static const char types[] = "?ACFIS";

    vbuf_reset(out);
    for (size_t i = 0; i < n; i++)
        (void) vbuf_printf(out, "%s%c:%s", i ? "|" : "", types[items[i].type], items[i].value);
}

static void test_alias_parse_table(void **state)
{
    vbuf why, got;

    (void) state;
    vbuf_init(&why, 0);
    vbuf_init(&got, 0);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        alias_item *items = NULL;
        size_t n = 99;
        int rc = alias_parse(rows[i].text, rows[i].file_syntax, &items, &n, &why);

        if (rows[i].ok) {
            if (rc != 0)
                fail_msg("row %zu \"%s\": %s", i, rows[i].text, vbuf_str(&why));
            render(&got, items, n);
            assert_string_equal(vbuf_str(&got), rows[i].expect);
        } else {
            if (rc == 0)
                fail_msg("row %zu \"%s\" parsed but must fail", i, rows[i].text);
            assert_true(why.len > 0);
            assert_null(items);
            assert_int_equal(n, 0);
        }
        alias_free(items, n);
    }
    vbuf_release(&why);
    vbuf_release(&got);
}

static void test_alias_parse_refuses_oversized_item(void **state)
{
    char *big = xmalloc(ALIAS_MAX_TOKEN + 10);
    alias_item *items;
    size_t n;
    vbuf why;

    (void) state;
    vbuf_init(&why, 0);
    memset(big, 'a', ALIAS_MAX_TOKEN + 9);
    big[ALIAS_MAX_TOKEN + 9] = 0;
    assert_int_equal(alias_parse(big, 0, &items, &n, &why), -1);
    assert_string_equal(vbuf_str(&why), "list item too long");
    big[ALIAS_MAX_TOKEN - 1] = 0;
    assert_int_equal(alias_parse(big, 0, &items, &n, &why), 0);
    assert_int_equal(n, 1);
    alias_free(items, n);
    xfree(big);
    vbuf_release(&why);
}

static void test_alias_parse_refuses_too_many_items(void **state)
{
    vbuf text, why;
    alias_item *items;
    size_t n;

    (void) state;
    vbuf_init(&text, 0);
    vbuf_init(&why, 0);
    for (int i = 0; i < ALIAS_MAX_ITEMS; i++)
        (void) vbuf_printf(&text, "u%d,", i);
    assert_int_equal(alias_parse(vbuf_str(&text), 0, &items, &n, &why), 0);
    assert_int_equal(n, ALIAS_MAX_ITEMS);
    alias_free(items, n);
    (void) vbuf_puts(&text, "onemore");
    assert_int_equal(alias_parse(vbuf_str(&text), 0, &items, &n, &why), -1);
    assert_string_equal(vbuf_str(&why), "too many list items");
    vbuf_release(&text);
    vbuf_release(&why);
}

static void test_alias_parse_every_prefix_is_safe(void **state)
{
    static const char list[] = "\"|/bin/cat, x\", \\bob, :include:/etc/l, /f/, <c@d>";
    char buf[sizeof(list)];
    vbuf why;

    (void) state;
    vbuf_init(&why, 0);
    /* Truncated input anywhere: parses or fails cleanly, never crashes or leaks. */
    for (size_t len = 0; len < sizeof(list); len++) {
        alias_item *items;
        size_t n;

        memcpy(buf, list, len);
        buf[len] = 0;
        if (alias_parse(buf, len % 2, &items, &n, &why) == 0)
            alias_free(items, n);
    }
    vbuf_release(&why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alias_parse_table),
        cmocka_unit_test(test_alias_parse_refuses_oversized_item),
        cmocka_unit_test(test_alias_parse_refuses_too_many_items),
        cmocka_unit_test(test_alias_parse_every_prefix_is_safe),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
