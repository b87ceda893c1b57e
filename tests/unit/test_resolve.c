/*
 * Unit tests for resolve: each row is a configuration (main.cf overrides)
 * and an address with the class, transport and next hop it must resolve
 * to. Real tables (inline:, static:, a missing hash: file) are used for
 * transport_maps and domain lists.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conf.h"
#include "msg.h"
#include "params.h"
#include "resolve.h"
#include "vbuf.h"

/* quiet - keep table warnings out of the test output */
static void quiet(enum msg_level level, const char *text)
{
    (void) level;
    (void) text;
}

/* configure - a fresh configuration from "name=value" pairs */
static void configure(const char *const *settings)
{
    conf_reset();
    conf_override("myhostname", "kite.test");
    conf_override("mydomain", "kite.test");
    conf_override("mydestination", "kite.test, localhost");
    conf_override("inet_interfaces", "127.0.0.1");
    conf_override("virtual_mailbox_domains", "sandbox.test");
    for (size_t i = 0; settings && settings[i]; i++)
        assert_int_equal(conf_override_arg(settings[i]), 0);
    assert_int_equal(conf_load("/nonexistent/kite-test-confdir"), 0);
    resolve_init();
}

typedef struct resolve_case {
    const char *name;
    const char *settings[6];
    const char *addr;
    int ret;
    enum resolve_class class;
    const char *transport, *nexthop;
} resolve_case;

#define TMAPS                                                                                                          \
    "transport_maps=inline:{example.com=relay:[10.0.0.1]:2525, .example.net=lmtp:unix:/run/lmtp, "                     \
    "{ special@example.org = error:mailbox disabled }, only-transport.test=slow:, only-hop.test=:[192.0.2.5]}"

static const resolve_case cases[] = {
    {"local domain", {NULL}, "joe@kite.test", 0, RESOLVE_LOCAL, "local", "kite.test"},
    {"local domain, case and trailing dot", {NULL}, "joe@KITE.Test.", 0, RESOLVE_LOCAL, "local", "kite.test"},
    {"second mydestination entry", {NULL}, "joe@localhost", 0, RESOLVE_LOCAL, "local", "kite.test"},
    {"no domain is local", {NULL}, "joe", 0, RESOLVE_LOCAL, "local", "kite.test"},
    {"subdomain of a local domain is not local",
     {NULL},
     "joe@sub.kite.test",
     0,
     RESOLVE_DEFAULT,
     "smtp",
     "sub.kite.test"},
    {"address literal of our interface", {NULL}, "joe@[127.0.0.1]", 0, RESOLVE_LOCAL, "local", "kite.test"},
    {"foreign address literal", {NULL}, "joe@[192.0.2.7]", 0, RESOLVE_DEFAULT, "smtp", "[192.0.2.7]"},
    {"IPv6 literal of loopback-only",
     {"inet_interfaces=loopback-only"},
     "joe@[IPv6:::1]",
     0,
     RESOLVE_LOCAL,
     "local",
     "kite.test"},
    {"virtual mailbox domain", {NULL}, "joe@sandbox.test", 0, RESOLVE_VIRTUAL, "virtual", "sandbox.test"},
    {"relay domain", {"relay_domains=relay.test"}, "joe@relay.test", 0, RESOLVE_RELAY, "relay", "relay.test"},
    {"relay subdomain",
     {"relay_domains=relay.test"},
     "joe@a.b.relay.test",
     0,
     RESOLVE_RELAY,
     "relay",
     "a.b.relay.test"},
    {"relay via relayhost",
     {"relay_domains=relay.test", "relayhost=[mx.isp.test]:587"},
     "joe@relay.test",
     0,
     RESOLVE_RELAY,
     "relay",
     "[mx.isp.test]:587"},
    {"default class", {NULL}, "joe@example.com", 0, RESOLVE_DEFAULT, "smtp", "example.com"},
    {"default via relayhost",
     {"relayhost=[mx.isp.test]:587"},
     "joe@example.com",
     0,
     RESOLVE_DEFAULT,
     "smtp",
     "[mx.isp.test]:587"},
    {"relayhost does not touch local mail",
     {"relayhost=[mx.isp.test]"},
     "joe@kite.test",
     0,
     RESOLVE_LOCAL,
     "local",
     "kite.test"},
    {"other default_transport",
     {"default_transport=uucp"},
     "joe@example.com",
     0,
     RESOLVE_DEFAULT,
     "uucp",
     "example.com"},
    {"local_transport with its own next hop",
     {"local_transport=lmtp:unix:/run/dovecot"},
     "joe@kite.test",
     0,
     RESOLVE_LOCAL,
     "lmtp",
     "unix:/run/dovecot"},
    {"mydestination from a table",
     {"mydestination=inline:{dyn.test=yes, other.test=yes}"},
     "joe@other.test",
     0,
     RESOLVE_LOCAL,
     "local",
     "kite.test"},
    {"transport_maps domain", {TMAPS}, "joe@example.com", 0, RESOLVE_DEFAULT, "relay", "[10.0.0.1]:2525"},
    {"transport_maps .domain matches subdomains",
     {TMAPS},
     "joe@a.b.example.net",
     0,
     RESOLVE_DEFAULT,
     "lmtp",
     "unix:/run/lmtp"},
    {"transport_maps .domain not the domain itself",
     {TMAPS},
     "joe@example.net",
     0,
     RESOLVE_DEFAULT,
     "smtp",
     "example.net"},
    {"transport_maps full address", {TMAPS}, "special@example.org", 0, RESOLVE_DEFAULT, "error", "mailbox disabled"},
    {"transport_maps other address same domain", {TMAPS}, "joe@example.org", 0, RESOLVE_DEFAULT, "smtp", "example.org"},
    {"transport_maps transport only keeps next hop",
     {TMAPS},
     "joe@only-transport.test",
     0,
     RESOLVE_DEFAULT,
     "slow",
     "only-transport.test"},
    {"transport_maps next hop only keeps transport",
     {TMAPS},
     "joe@only-hop.test",
     0,
     RESOLVE_DEFAULT,
     "smtp",
     "[192.0.2.5]"},
    {"transport_maps wildcard",
     {"transport_maps=inline:{*=smtp:[fallback.test]}"},
     "joe@anything.test",
     0,
     RESOLVE_DEFAULT,
     "smtp",
     "[fallback.test]"},
    {"transport_maps wildcard covers local too",
     {"transport_maps=inline:{*=smtp:[fallback.test]}"},
     "joe@kite.test",
     0,
     RESOLVE_LOCAL,
     "smtp",
     "[fallback.test]"},
    {"transport_maps domain beats wildcard",
     {"transport_maps=inline:{*=smtp:[fb.test], x.test=local:}"},
     "joe@x.test",
     0,
     RESOLVE_DEFAULT,
     "local",
     "x.test"},
    {"static transport_maps",
     {"transport_maps=static:relay:[10.1.1.1]"},
     "joe@example.com",
     0,
     RESOLVE_DEFAULT,
     "relay",
     "[10.1.1.1]"},
    {"broken transport_maps defers",
     {"transport_maps=hash:/nonexistent/kite-transport"},
     "joe@example.com",
     -1,
     RESOLVE_DEFAULT,
     NULL,
     NULL},
    {"broken domain table defers",
     {"relay_domains=hash:/nonexistent/kite-relay"},
     "joe@example.com",
     -1,
     RESOLVE_DEFAULT,
     NULL,
     NULL},
};

/* test_resolve_table - every row */
static void test_resolve_table(void **state)
{
    (void) state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const resolve_case *c = &cases[i];
        resolve_reply r;
        int ret;

        configure(c->settings);
        resolve_reply_init(&r);
        ret = resolve_addr(c->addr, &r);
        if (ret != c->ret)
            fail_msg("%s: returned %d, want %d", c->name, ret, c->ret);
        if (ret == 0) {
            if (r.class != c->class || strcmp(vbuf_str(&r.transport), c->transport) != 0 ||
                strcmp(vbuf_str(&r.nexthop), c->nexthop) != 0)
                fail_msg("%s: got %s %s:%s, want %s %s:%s", c->name, resolve_class_name(r.class),
                         vbuf_str(&r.transport), vbuf_str(&r.nexthop), resolve_class_name(c->class), c->transport,
                         c->nexthop);
        }
        resolve_reply_free(&r);
    }
}

/* test_split_transport - the halves of "transport:nexthop" */
static void test_split_transport(void **state)
{
    static const struct {
        const char *in, *t, *n;
    } rows[] = {
        {"smtp:[mx.test]:25", "smtp", "[mx.test]:25"},
        {"local", "local", ""},
        {"relay:", "relay", ""},
        {":[192.0.2.1]", "", "[192.0.2.1]"},
        {" lmtp : unix:/run/x ", "lmtp", "unix:/run/x"},
        {"", "", ""},
    };
    vbuf t, n;

    (void) state;
    vbuf_init(&t, 0);
    vbuf_init(&n, 0);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        resolve_split_transport(rows[i].in, &t, &n);
        assert_string_equal(vbuf_str(&t), rows[i].t);
        assert_string_equal(vbuf_str(&n), rows[i].n);
    }
    vbuf_release(&t);
    vbuf_release(&n);
}

/* test_local_literal_rejects_malformed - hostile literals are never local */
static void test_local_literal_rejects_malformed(void **state)
{
    static const char *const bad[] = {"[127.0.0.1",
                                      "127.0.0.1]",
                                      "[]",
                                      "[127.0.0.1.5]",
                                      "[IPv6:127.0.0.1]",
                                      "[127.0.0.1 ]",
                                      "[999.0.0.1]",
                                      "[11111111111111111111111111111111111111111111111111111111111111111111111]"};

    (void) state;
    configure(NULL);
    assert_true(resolve_is_local_literal("[127.0.0.1]"));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (resolve_is_local_literal(bad[i]))
            fail_msg("accepted %s", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolve_table),
        cmocka_unit_test(test_split_transport),
        cmocka_unit_test(test_local_literal_rejects_malformed),
    };

    msg_set_capture(quiet);
    msg_stderr(0);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
