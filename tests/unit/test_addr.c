/* Unit tests for addr: RFC 5321 paths, quoting, domains, RFC 5322 address lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "addr.h"

#define E ADDR_ALLOW_EMPTY
#define U ADDR_ALLOW_UTF8
#define B ADDR_NO_BRACKETS

/* Good paths: input, flags, internal form, bytes consumed */
static const struct {
    const char *in;
    int flags;
    const char *internal;
    size_t used;
} good_paths[] = {
    {"<user@example.com>", 0, "user@example.com", 18},
    {"<user@example.com> SIZE=100", 0, "user@example.com", 18},
    {" <user@example.com>", 0, "user@example.com", 19},
    {"<>", E, "", 2},
    {"<> BODY=8BITMIME", E, "", 2},
    {"<first.last+tag@sub.example.org>", 0, "first.last+tag@sub.example.org", 32},
    {"<\"john doe\"@example.com>", 0, "john doe@example.com", 24},
    {"<\"a\\\"b\\\\c\"@example.com>", 0, "a\"b\\c@example.com", 23},
    {"<\"a@b\"@example.com>", 0, "a@b@example.com", 19},
    {"<\"\"@example.com>", 0, "@example.com", 16},
    {"<@relay1.example,@relay2.example:user@example.com>", 0, "user@example.com", 50},
    {"<@[10.0.0.1]:user@example.com>", 0, "user@example.com", 30},
    {"<user@[192.0.2.1]>", 0, "user@[192.0.2.1]", 18},
    {"<user@[IPv6:2001:db8::1]>", 0, "user@[IPv6:2001:db8::1]", 25},
    {"<user@[IPv6:::ffff:192.0.2.1]>", 0, "user@[IPv6:::ffff:192.0.2.1]", 30},
    {"<Postmaster>", 0, "Postmaster", 12},
    {"<a-b.c-d@x-y.z9>", 0, "a-b.c-d@x-y.z9", 16},
    {"<!#$%&'*+-/=?^_`{|}~@example.com>", 0, "!#$%&'*+-/=?^_`{|}~@example.com", 33},
    {"<j\xc3\xb6rg@m\xc3\xbcller.example>", U, "j\xc3\xb6rg@m\xc3\xbcller.example", 23},
    {"<\"\xe2\x82\xac uro\"@example.com>", U, "\xe2\x82\xac uro@example.com", 23},
    {"<\xf0\x9f\x98\x80@example.com>", U, "\xf0\x9f\x98\x80@example.com", 18},
    {"user@example.com", B, "user@example.com", 16},
    {"user@example.com SIZE=5", B, "user@example.com", 16},
    {"<user@example.com>", B, "user@example.com", 18},
};

static void test_addr_parse_path_accepts_rfc5321_forms(void **state)
{
    vbuf out;

    (void) state;
    vbuf_init(&out, 0);
    for (size_t i = 0; i < sizeof(good_paths) / sizeof(good_paths[0]); i++) {
        const char *why = NULL;
        size_t used = 999;

        if (addr_parse_path(good_paths[i].in, good_paths[i].flags, &out, &used, &why) != 0)
            fail_msg("refused \"%s\": %s", good_paths[i].in, why);
        assert_string_equal(vbuf_str(&out), good_paths[i].internal);
        if (used != good_paths[i].used)
            fail_msg("\"%s\": used %zu, want %zu", good_paths[i].in, used, good_paths[i].used);
    }
    vbuf_release(&out);
}

/* Hostile and malformed paths, with a word the reason must contain */
static const struct {
    const char *in;
    int flags;
    const char *why;
} bad_paths[] = {
    {"", 0, "missing '<'"},
    {"user@example.com", 0, "missing '<'"},
    {"<>", 0, "empty"},
    {"<", E, ""},
    {"<user@example.com", 0, "missing '>'"},
    {"<user@>", 0, "domain"},
    {"<@example.com>", 0, ""},
    {"<user@@example.com>", 0, "domain"},
    {"<user@example..com>", 0, ""},
    {"<user@.example.com>", 0, "domain"},
    {"<user@example.com.>", 0, ""},
    {"<user@-example.com>", 0, "domain"},
    {"<user@example-.com>", 0, ""},
    {"<user@exa_mple.com>", 0, ""},
    {"<.user@example.com>", 0, "syntax"},
    {"<user.@example.com>", 0, "syntax"},
    {"<us..er@example.com>", 0, "syntax"},
    {"<us er@example.com>", 0, ""},
    {"<user@exa mple.com>", 0, ""},
    {"<\"unterminated@example.com>", 0, "unterminated"},
    {"<\"bad\\\x01escape\"@example.com>", 0, "escape"},
    {"<\"ctl\x01\"@example.com>", 0, "bad character"},
    {"<\"tab\t\"@example.com>", 0, "bad character"},
    {"<user\r\n@example.com>", 0, ""},
    {"<j\xc3\xb6rg@example.com>", 0, "SMTPUTF8"},
    {"<user@m\xc3\xbcller.example>", 0, "SMTPUTF8"},
    {"<\xc3@example.com>", U, "UTF-8"},             /* truncated sequence */
    {"<\xc0\xaf@example.com>", U, "UTF-8"},         /* overlong '/' */
    {"<\xe0\x80\xaf@example.com>", U, "UTF-8"},     /* overlong */
    {"<\xed\xa0\x80@example.com>", U, "UTF-8"},     /* surrogate */
    {"<\xf4\x90\x80\x80@example.com>", U, "UTF-8"}, /* past U+10FFFF */
    {"<\xff@example.com>", U, "UTF-8"},
    {"<\x80@example.com>", U, "UTF-8"},
    {"<user@[1.2.3]>", 0, "domain"},
    {"<user@[1.2.3.256]>", 0, "domain"},
    {"<user@[1.2.3.4.5]>", 0, "domain"},
    {"<user@[1.2.3.0004]>", 0, "domain"},
    {"<user@[IPv6:2001:db8::g]>", 0, "domain"},
    {"<user@[IPv6:1:2:3:4:5:6:7:8:9]>", 0, "domain"},
    {"<user@[IPv6:]>", 0, "domain"},
    {"<user@[tag:content]>", 0, "domain"},
    {"<user@[1.2.3.4>", 0, "domain"},
    {"<@relay:>", 0, ""},
    {"<@relay,user@example.com>", 0, "route"},
    {"<@:user@example.com>", 0, "route"},
    {"<user@example.com x>", 0, ""},
    {"user@example.com>", B, "syntax"},
    {"<\"a@b\">", 0, "syntax"}, /* no domain, '@' inside: ambiguous */
    {"<\"a@b c\">", 0, "syntax"},
};

static void test_addr_parse_path_rejects_malformed_paths(void **state)
{
    vbuf out;

    (void) state;
    vbuf_init(&out, 0);
    for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
        const char *why = NULL;
        size_t used = 0;

        vbuf_set(&out, "stale");
        if (addr_parse_path(bad_paths[i].in, bad_paths[i].flags, &out, &used, &why) != -1)
            fail_msg("accepted \"%s\" as \"%s\"", bad_paths[i].in, vbuf_str(&out));
        assert_non_null(why);
        if (strstr(why, bad_paths[i].why) == NULL)
            fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", bad_paths[i].in, why, bad_paths[i].why);
        assert_int_equal(out.len, 0);
    }
    vbuf_release(&out);
}

/* build - "<" + local + "@" + domain + ">" with given part lengths */
static void build(char *buf, size_t size, size_t local_len, size_t label_len, size_t labels)
{
    size_t n = 0;

    buf[n++] = '<';
    for (size_t i = 0; i < local_len; i++)
        buf[n++] = 'l';
    buf[n++] = '@';
    for (size_t l = 0; l < labels; l++) {
        if (l)
            buf[n++] = '.';
        for (size_t i = 0; i < label_len; i++)
            buf[n++] = 'd';
    }
    buf[n++] = '>';
    buf[n] = 0;
    assert_true(n < size);
}

static void test_addr_parse_path_enforces_length_limits(void **state)
{
    char buf[2048];
    vbuf out;
    const char *why;
    size_t used;

    (void) state;
    vbuf_init(&out, 0);
    build(buf, sizeof(buf), 64, 10, 2);
    assert_int_equal(addr_parse_path(buf, 0, &out, &used, &why), 0);
    build(buf, sizeof(buf), 65, 10, 2);
    assert_int_equal(addr_parse_path(buf, 0, &out, &used, &why), -1);
    assert_non_null(strstr(why, "local part too long"));
    build(buf, sizeof(buf), 5, 63, 1);
    assert_int_equal(addr_parse_path(buf, 0, &out, &used, &why), 0);
    build(buf, sizeof(buf), 5, 64, 1); /* label over 63 */
    assert_int_equal(addr_parse_path(buf, 0, &out, &used, &why), -1);
    /* domain of 63*4+3 = 255 octets is fine on its own... */
    build(buf, sizeof(buf), 1, 63, 4);
    assert_int_equal(addr_valid_domain(buf + 3, 0), 0); /* (buf ends in '>') */
    buf[strlen(buf) - 1] = 0;
    assert_int_equal(addr_valid_domain(buf + 3, 0), 1);
    /* ...but the path "<l@" + 255 + ">" is 259 > 256 octets */
    build(buf, sizeof(buf), 1, 63, 4);
    assert_int_equal(addr_parse_path(buf, 0, &out, &used, &why), -1);
    assert_non_null(strstr(why, "too long"));
    /* 256 octets exactly: 1 + 60 + 1 + 193 + 1 */
    build(buf, sizeof(buf), 60, 63, 3); /* 63*3+2 = 191 */
    assert_int_equal(strlen(buf), 1 + 60 + 1 + 191 + 1);
    assert_int_equal(addr_parse_path(buf, 0, &out, &used, &why), 0);
    /* domain over 255 octets */
    build(buf, sizeof(buf), 1, 63, 5);
    assert_int_equal(addr_parse_path(buf, 0, &out, &used, &why), -1);
    /* a huge local part is refused without trouble */
    {
        static char huge[100000];

        memset(huge, 'a', sizeof(huge) - 1);
        huge[0] = '<';
        assert_int_equal(addr_parse_path(huge, 0, &out, &used, &why), -1);
        huge[0] = '"';
        assert_int_equal(addr_parse_path(huge, B, &out, &used, &why), -1);
    }
    vbuf_release(&out);
}

static void test_addr_quote_quotes_only_when_needed(void **state)
{
    static const struct {
        const char *internal, *external;
    } cases[] = {
        {"user@example.com", "user@example.com"},
        {"first.last@example.com", "first.last@example.com"},
        {"john doe@example.com", "\"john doe\"@example.com"},
        {"a\"b\\c@example.com", "\"a\\\"b\\\\c\"@example.com"},
        {"a@b@example.com", "\"a@b\"@example.com"},
        {"@example.com", "\"\"@example.com"},
        {".user@example.com", "\".user\"@example.com"},
        {"us..er@example.com", "\"us..er\"@example.com"},
        {"user.@example.com", "\"user.\"@example.com"},
        {"postmaster", "postmaster"},
        {"with space", "\"with space\""},
        {"", ""},
        {"j\xc3\xb6rg@example.com", "j\xc3\xb6rg@example.com"},
        {"a(b)@example.com", "\"a(b)\"@example.com"},
    };
    vbuf out, back;

    (void) state;
    vbuf_init(&out, 0);
    vbuf_init(&back, 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        vbuf_set(&out, "<");
        addr_quote(&out, cases[i].internal);
        assert_string_equal(vbuf_str(&out) + 1, cases[i].external);
        assert_int_equal(out.data[0], '<'); /* appended */
        /* and the external form parses back to the same internal form */
        if (*cases[i].internal) {
            char path[256];
            const char *why;
            size_t used;

            snprintf(path, sizeof(path), "%s>", vbuf_str(&out));
            if (addr_parse_path(path, U, &back, &used, &why) != 0)
                fail_msg("%s: %s", path, why);
            assert_string_equal(vbuf_str(&back), cases[i].internal);
        }
    }
    vbuf_release(&out);
    vbuf_release(&back);
}

static void test_addr_domain_and_8bit_helpers(void **state)
{
    (void) state;
    assert_string_equal(addr_domain("user@example.com"), "example.com");
    assert_string_equal(addr_domain("a@b@example.com"), "example.com");
    assert_null(addr_domain("postmaster"));
    assert_string_equal(addr_domain("user@"), "");
    assert_false(addr_has_8bit("user@example.com"));
    assert_true(addr_has_8bit("j\xc3\xb6rg@example.com"));
    assert_true(addr_valid_utf8_text("j\xc3\xb6rg"));
    assert_false(addr_valid_utf8_text("j\xc3"));
    assert_false(addr_valid_utf8_text("\xed\xbf\xbf"));
}

static void test_addr_valid_domain_table(void **state)
{
    static const struct {
        const char *domain;
        int utf8;
        int ok;
    } cases[] = {
        {"example.com", 0, 1},
        {"a", 0, 1},
        {"xn--mller-kva.example", 0, 1},
        {"1.2.3.4", 0, 1}, /* digits-only labels are legal names */
        {"[1.2.3.4]", 0, 1},
        {"[IPv6:::1]", 0, 1},
        {"[IPv6:fe80::1%eth0]", 0, 0},
        {"[ipv6:::1]", 0, 1},
        {"", 0, 0},
        {".", 0, 0},
        {"example.com.", 0, 0},
        {"-a.com", 0, 0},
        {"a-.com", 0, 0},
        {"a..com", 0, 0},
        {"a_b.com", 0, 0},
        {"m\xc3\xbcller.example", 0, 0},
        {"m\xc3\xbcller.example", 1, 1},
        {"m\xc3.example", 1, 0},
        {"[1.2.3.4]x", 0, 0},
        {"exa mple.com", 0, 0},
    };

    (void) state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (addr_valid_domain(cases[i].domain, cases[i].utf8) != cases[i].ok)
            fail_msg("addr_valid_domain(\"%s\", %d) != %d", cases[i].domain, cases[i].utf8, cases[i].ok);
}

/* Address lists: the callback joins results with '|' */
static void collect(const char *addr, void *ctx)
{
    vbuf *all = ctx;

    if (all->len)
        vbuf_putc(all, '|');
    vbuf_puts(all, addr);
}

static const struct {
    const char *in;
    int count;
    const char *addrs;
} lists[] = {
    {"user@example.com", 1, "user@example.com"},
    {"a@x.org, b@y.org", 2, "a@x.org|b@y.org"},
    {"John Doe <john@example.com>", 1, "john@example.com"},
    {"\"Doe, John\" <john@example.com>, jane@example.com", 2, "john@example.com|jane@example.com"},
    {"<john@example.com>", 1, "john@example.com"},
    {"john@example.com (John Doe)", 1, "john@example.com"},
    {"john(comment)@example(another (nested) one).com", 1, "john@example.com"},
    {"(a \\) escaped paren) x@y.z", 1, "x@y.z"},
    {"undisclosed-recipients:;", 0, ""},
    {"undisclosed-recipients: ;", 0, ""},
    {"Team: a@x.org, B <b@y.org>; , c@z.org", 3, "a@x.org|b@y.org|c@z.org"},
    {"\"john doe\"@example.com", 1, "john doe@example.com"},
    {"\"a\\\"b\"@example.com", 1, "a\"b@example.com"},
    {"John Q. Public <jqp@example.com>", 1, "jqp@example.com"},
    {"<@route.example:user@example.com>", 1, "user@example.com"},
    {"a@x.org,,b@y.org,", 2, "a@x.org|b@y.org"},
    {"user@[192.0.2.1]", 1, "user@[192.0.2.1]"},
    {"user @ example . com", 1, "user@example.com"},
    {"root", 1, "root"},
    {"\r\n a@x.org,\r\n\tb@y.org", 2, "a@x.org|b@y.org"},
    {"\"folded\r\n name\" <f@x.org>", 1, "f@x.org"},
    {"=?UTF-8?Q?J=C3=B6rg?= <j@x.org>", 1, "j@x.org"},
    {"J\xc3\xb6rg <j\xc3\xb6rg@m\xc3\xbcller.example>", 1, "j\xc3\xb6rg@m\xc3\xbcller.example"},
    {"<>", 0, ""},
    {"", 0, ""},
    {"   ", 0, ""},
    {"\"a\".\"b\"@x.org", 1, "a.b@x.org"},
    {"john@example.com <john@example.com>", 1, "john@example.com"},
};

static void test_addr_parse_list_accepts_rfc5322_lists(void **state)
{
    vbuf all;

    (void) state;
    vbuf_init(&all, 0);
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        int n;

        vbuf_reset(&all);
        n = addr_parse_list(lists[i].in, collect, &all);
        if (n != lists[i].count)
            fail_msg("\"%s\": count %d, want %d", lists[i].in, n, lists[i].count);
        assert_string_equal(vbuf_str(&all), lists[i].addrs);
    }
    vbuf_release(&all);
}

static const char *const bad_lists[] = {
    "a@x.org b@y.org",
    "John Doe",
    "<a@x.org",
    "a@x.org>",
    "John <a@x.org> trailing",
    "\"unterminated@x.org",
    "(unterminated comment a@x.org",
    "a@x.org)",
    "group: a@x.org",    /* no ';' */
    "g1: g2: a@x.org;;", /* nested group */
    ": a@x.org;",        /* group without a name */
    "a@",
    "@x.org",
    "a@x..org",
    "a@.x.org",
    "a.@x.org",
    "a@x.org;",
    "a@[1.2\\.3.4]",
    "a@[1.2.3.4",
    "a\x01@x.org",
    "\"a\x01\"@x.org",
    "\"a\\\r\n\"@x.org",
    "j\xc3@x.org", /* truncated UTF-8 */
    "\"\xff\"@x.org",
    "<@route.example user@example.com>",
    "Name <a@x.org> <b@y.org>",
    "a@x.org, <",
};

static void test_addr_parse_list_rejects_bad_syntax_without_callbacks(void **state)
{
    vbuf all;

    (void) state;
    vbuf_init(&all, 0);
    for (size_t i = 0; i < sizeof(bad_lists) / sizeof(bad_lists[0]); i++) {
        vbuf_reset(&all);
        if (addr_parse_list(bad_lists[i], collect, &all) != -1)
            fail_msg("accepted \"%s\" as \"%s\"", bad_lists[i], vbuf_str(&all));
        assert_int_equal(all.len, 0);
    }
    vbuf_release(&all);
}

static void test_addr_parse_list_survives_deep_and_huge_input(void **state)
{
    static char buf[200000];
    size_t n = 0;

    (void) state;
    /* deeply nested comments are refused, not recursed into */
    for (int i = 0; i < 5000; i++)
        buf[n++] = '(';
    buf[n] = 0;
    assert_int_equal(addr_parse_list(buf, collect, NULL), -1);
    n = 0;
    for (int i = 0; i < 20; i++)
        buf[n++] = '(';
    for (int i = 0; i < 20; i++)
        buf[n++] = ')';
    memcpy(buf + n, "a@b.c", 6);
    assert_int_equal(addr_parse_list(buf, NULL, NULL), 1);
    /* an oversized single address */
    memset(buf, 'a', 100000);
    memcpy(buf + 100000, "@x.org", 7);
    assert_int_equal(addr_parse_list(buf, NULL, NULL), -1);
    /* many addresses */
    n = 0;
    for (int i = 0; i < 5000 && n + 16 < sizeof(buf); i++) {
        memcpy(buf + n, "a@b.c, ", 7);
        n += 7;
    }
    buf[n] = 0;
    assert_int_equal(addr_parse_list(buf, NULL, NULL), 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_parse_path_accepts_rfc5321_forms),
        cmocka_unit_test(test_addr_parse_path_rejects_malformed_paths),
        cmocka_unit_test(test_addr_parse_path_enforces_length_limits),
        cmocka_unit_test(test_addr_quote_quotes_only_when_needed),
        cmocka_unit_test(test_addr_domain_and_8bit_helpers),
        cmocka_unit_test(test_addr_valid_domain_table),
        cmocka_unit_test(test_addr_parse_list_accepts_rfc5322_lists),
        cmocka_unit_test(test_addr_parse_list_rejects_bad_syntax_without_callbacks),
        cmocka_unit_test(test_addr_parse_list_survives_deep_and_huge_input),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
