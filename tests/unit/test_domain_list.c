/*
 * Unit tests for lib/domain_list.c: domain list parameters (names, ".name"
 * for subdomains only, inline: tables, parent_domain_matches_subdomains on
 * and off), lookup errors from an unreadable table, hostile domains
 * (empty, NULL, a lone dot, overlong, control and 8-bit bytes, table-ish
 * syntax) and the fast_flush_domains list that ETRN and qmgr's flush_site
 * share (default $relay_domains, subdomains included).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "conf.h"
#include "domain_list.h"
#include "msg.h"
#include "mymalloc.h"

/* quiet - msg output (the unreadable table warns) goes nowhere */
static void quiet(enum msg_level level, const char *text)
{
    (void) level;
    (void) text;
}

static const struct match_case {
    const char *what;
    const char *list;
    int subdomains;
    const char *domain;
    int expect;
} match_cases[] = {
    {"exact name", "relay.test", 1, "relay.test", 1},
    {"exact name, other case and trailing dot", "Relay.TEST", 0, "rElAy.test.", 1},
    {"subdomain with parent_domain_matches_subdomains", "relay.test", 1, "mx.relay.test", 1},
    {"deep subdomain with parent_domain_matches_subdomains", "relay.test", 1, "a.b.c.relay.test", 1},
    {"subdomain without parent_domain_matches_subdomains", "relay.test", 0, "mx.relay.test", 0},
    {"suffix that is not a label boundary", "relay.test", 1, "evilrelay.test", 0},
    {"parent of a listed name", "mx.relay.test", 1, "relay.test", 0},
    {"dot name: subdomain", ".relay.test", 0, "mx.relay.test", 1},
    {"dot name: not the domain itself", ".relay.test", 0, "relay.test", 0},
    {"second of several, commas and blanks", "one.test, two.test\tthree.test", 0, "two.test", 1},
    {"none of several", "one.test, two.test", 1, "four.test", 0},
    {"empty list", "", 1, "relay.test", 0},
    {"inline table: exact key", "inline:{relay.test=yes}", 0, "relay.test", 1},
    {"inline table: parent key with subdomains", "inline:{relay.test=yes}", 1, "mx.relay.test", 1},
    {"inline table: parent key without subdomains", "inline:{relay.test=yes}", 0, "mx.relay.test", 0},
    {"name and table together", "one.test inline:{two.test=ok}", 1, "x.two.test", 1},
    {"address literal listed", "[192.0.2.1]", 1, "[192.0.2.1]", 1},
    {"address literal not a subdomain", "192.0.2.1", 1, "[192.0.2.1]", 0},
    /* Hostile input. */
    {"NULL domain", "relay.test", 1, NULL, 0},
    {"empty domain", "relay.test", 1, "", 0},
    {"a lone dot", "relay.test", 1, ".", 0},
    {"dots only", "relay.test", 1, "...", 0},
    {"leading dot before a listed name", "relay.test", 1, ".relay.test", 1},
    {"control characters", "relay.test", 1, "relay.test\r\nRCPT", 0},
    {"8-bit bytes", "relay.test", 1, "\xc3\xa9.relay.test\xff", 0},
    {"table-ish domain is not looked up as a table", "relay.test", 1, "inline:{relay.test=x}", 0},
    {"blanks inside", "relay.test", 1, "x relay.test", 0},
};

/* test_domain_list_match_table - names, dot names, tables, subdomains on and off, hostile input */
static void test_domain_list_match_table(void **state)
{
    (void) state;
    for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
        const struct match_case *c = &match_cases[i];
        domain_list dl;
        int got;

        domain_list_parse(&dl, "test_domains", c->list, c->subdomains);
        got = domain_list_match(&dl, c->domain);
        if (got != c->expect)
            fail_msg("%s: got %d, expected %d", c->what, got, c->expect);
        domain_list_free(&dl);
    }
}

/* test_domain_list_overlong_domain_is_harmless - 64 KiB names match by their last labels only */
static void test_domain_list_overlong_domain_is_harmless(void **state)
{
    size_t n = 65536;
    char *big = xmalloc(n + 16);
    domain_list dl;

    (void) state;
    memset(big, 'a', n);
    memcpy(big + n, ".relay.test", 12);
    domain_list_parse(&dl, "test_domains", "relay.test inline:{other.test=1}", 1);
    assert_int_equal(domain_list_match(&dl, big), 1);
    big[n] = 'x'; /* "aaa…xrelay.test": no label boundary */
    assert_int_equal(domain_list_match(&dl, big), 0);
    memset(big, '.', n); /* all dots, then the broken name */
    assert_int_equal(domain_list_match(&dl, big), 0);
    domain_list_free(&dl);
    xfree(big);
}

/* test_domain_list_unreadable_table_is_a_lookup_error - never a silent "not listed" */
static void test_domain_list_unreadable_table_is_a_lookup_error(void **state)
{
    domain_list dl;

    (void) state;
    msg_set_capture(quiet);
    domain_list_parse(&dl, "test_domains", "hash:/nonexistent/kite/domains", 1);
    assert_int_equal(domain_list_match(&dl, "relay.test"), -1);
    domain_list_free(&dl);
    /* A literal name that matches wins before the table is asked. */
    domain_list_parse(&dl, "test_domains", "relay.test hash:/nonexistent/kite/domains", 1);
    assert_int_equal(domain_list_match(&dl, "relay.test"), 1);
    assert_int_equal(domain_list_match(&dl, "other.test"), -1);
    domain_list_free(&dl);
    msg_set_capture(NULL);
}

/* test_domain_list_free_twice_and_reparse - a freed list is empty and can be parsed again */
static void test_domain_list_free_twice_and_reparse(void **state)
{
    domain_list dl;

    (void) state;
    domain_list_parse(&dl, "test_domains", "a.test", 0);
    domain_list_free(&dl);
    assert_int_equal(domain_list_match(&dl, "a.test"), 0);
    domain_list_free(&dl);
    domain_list_parse(&dl, "test_domains", "b.test", 0);
    assert_int_equal(domain_list_match(&dl, "b.test"), 1);
    assert_int_equal(domain_list_match(&dl, "a.test"), 0);
    domain_list_free(&dl);
}

static const struct flush_case {
    const char *what;
    const char *relay_domains;
    const char *fast_flush_domains; /* NULL: not set (default $relay_domains) */
    const char *site;
    int expect;
} flush_cases[] = {
    {"default follows relay_domains", "relay.test", NULL, "relay.test", 1},
    {"default: subdomain of relay_domains", "relay.test", NULL, "mx.relay.test", 1},
    {"default: outside relay_domains", "relay.test", NULL, "other.test", 0},
    {"default with empty relay_domains: nothing", "", NULL, "relay.test", 0},
    {"set explicitly, relay_domains ignored", "relay.test", "flush.test", "relay.test", 0},
    {"set explicitly: listed", "relay.test", "flush.test", "FLUSH.test", 1},
    {"set explicitly: subdomain", "relay.test", "flush.test", "a.flush.test", 1},
    {"set empty: nothing is eligible", "relay.test", "", "relay.test", 0},
    {"table", "", "inline:{table.test=1}", "x.table.test", 1},
    {"hostile: empty site", "relay.test", NULL, "", 0},
    {"hostile: control bytes", "relay.test", NULL, "relay.test\n", 0},
};

/* test_fast_flush_eligible_table - fast_flush_domains, default $relay_domains, subdomains included */
static void test_fast_flush_eligible_table(void **state)
{
    (void) state;
    for (size_t i = 0; i < sizeof(flush_cases) / sizeof(flush_cases[0]); i++) {
        const struct flush_case *c = &flush_cases[i];
        int got;

        conf_reset();
        conf_override("relay_domains", c->relay_domains);
        if (c->fast_flush_domains)
            conf_override("fast_flush_domains", c->fast_flush_domains);
        assert_int_equal(conf_load("/nonexistent-kite-dir"), 0);
        fast_flush_init();
        got = fast_flush_eligible(c->site);
        if (got != c->expect)
            fail_msg("%s: got %d, expected %d", c->what, got, c->expect);
    }
    conf_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_domain_list_match_table),
        cmocka_unit_test(test_domain_list_overlong_domain_is_harmless),
        cmocka_unit_test(test_domain_list_unreadable_table_is_a_lookup_error),
        cmocka_unit_test(test_domain_list_free_twice_and_reparse),
        cmocka_unit_test(test_fast_flush_eligible_table),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
