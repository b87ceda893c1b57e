/*
 * Unit tests for reject_unknown_client_hostname (and its old name
 * reject_unknown_client) and reject_unknown_reverse_client_hostname in
 * smtpd/check.c: every naming state (OK, TEMP, PERM, FORGED) against both
 * restrictions, with unknown_client_reject_code at its default 450 and at
 * 550/554 (a temporary failure always 450), in every restriction list that
 * may hold them (client, HELO, sender, relay, recipient and data lists,
 * and the ETRN list), with smtpd_delay_reject on and off, plus whole SMTP
 * dialogues over a socketpair to see the reply reach the client. The
 * session's name states are set as smtpd_service sets them from lookup.c.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../smtpd/lookup.h"
#include "../../smtpd/smtpd.h"
#include "conf.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "vbuf.h"

#define CLIENT_ADDR "192.0.2.7"

/* configure - a base configuration plus name=value pairs (NULL-terminated) */
static void configure(const char *name, ...)
{
    va_list ap;

    conf_reset();
    conf_override("myhostname", "mx.kite.test");
    conf_override("mydestination", "kite.test localhost");
    conf_override("mynetworks", "127.0.0.0/8");
    conf_override("local_recipient_maps", "");
    conf_override("smtpd_error_sleep_time", "0");
    conf_override("smtpd_peername_lookup", "no");
    va_start(ap, name);
    while (name) {
        conf_override(name, va_arg(ap, const char *));
        name = va_arg(ap, const char *);
    }
    va_end(ap);
    assert_int_equal(conf_load("/nonexistent-kite-dir"), 0);
    msg_stderr(getenv("TEST_VERBOSE") != NULL);
    smtpd_check_init();
}

/* session - a session for CLIENT_ADDR with the given name states (name as smtpd_service would give it) */
static smtpd_session *session(int name_status, int reverse_status, int *peer)
{
    int sv[2];
    smtpd_session *s;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    s = smtpd_session_new(sv[1], 0, name_status == SMTPD_PEER_OK ? "mail.example.test" : "unknown", CLIENT_ADDR,
                          "4321");
    s->name_status = name_status;
    s->reverse_name_status = reverse_status;
    s->sleep_ms = 0;
    s->mode = SMTPD_MODE_CMD;
    *peer = sv[0];
    return s;
}

/* session_done - free a session and its peer end */
static void session_done(smtpd_session *s, int peer)
{
    smtpd_session_free(s);
    close(peer);
}

/* The naming states of lookup.c, as (name status, reverse name status) pairs it produces. */
static const struct {
    const char *label;
    int name, reverse;
} states[] = {
    {"OK", SMTPD_PEER_OK, SMTPD_PEER_OK},
    {"TEMP (no PTR answer)", SMTPD_PEER_TEMP, SMTPD_PEER_TEMP},
    {"PERM (no PTR)", SMTPD_PEER_PERM, SMTPD_PEER_PERM},
    {"FORGED (PTR, A does not match)", SMTPD_PEER_FORGED, SMTPD_PEER_OK},
    {"TEMP (PTR, A lookup failed)", SMTPD_PEER_TEMP, SMTPD_PEER_OK},
    {"PERM (PTR, numeric name)", SMTPD_PEER_PERM, SMTPD_PEER_OK},
};

/* expected - the reply one restriction gives for a status, or NULL when it passes */
static const char *expected(int status, int code, const char *what, char *buf, size_t len)
{
    if (status == SMTPD_PEER_OK)
        return NULL;
    if (status == SMTPD_PEER_TEMP)
        code = 450;
    snprintf(buf, len, "%d %c.7.25 Client host rejected: cannot find your %s, [" CLIENT_ADDR "]", code,
             code >= 500 ? '5' : '4', what);
    return buf;
}

/* check_reply - compare a verdict (NULL: passed) with the expectation */
static void check_reply(const char *ctx, const char *got, const char *want)
{
    if (want == NULL && got != NULL)
        fail_msg("%s: expected to pass, got \"%s\"", ctx, got);
    if (want != NULL && (got == NULL || strcmp(got, want) != 0))
        fail_msg("%s: expected \"%s\", got \"%s\"", ctx, want, got ? got : "(pass)");
}

static const char *restrictions[] = {"reject_unknown_client_hostname", "reject_unknown_client",
                                     "reject_unknown_reverse_client_hostname"};
static const char *codes[] = {NULL, "450", "550", "554"};
static const char *rcpt_lists[] = {"smtpd_client_restrictions", "smtpd_helo_restrictions", "smtpd_sender_restrictions",
                                   "smtpd_relay_restrictions", "smtpd_recipient_restrictions"};

/* run_matrix - every restriction x state x code through one check function */
static void run_matrix(const char *list, const char *(*check)(smtpd_session *s))
{
    for (size_t r = 0; r < sizeof(restrictions) / sizeof(restrictions[0]); r++) {
        int reverse = strstr(restrictions[r], "reverse") != NULL;

        for (size_t c = 0; c < sizeof(codes) / sizeof(codes[0]); c++) {
            vbuf value;

            vbuf_init(&value, 0);
            /* The relay list also needs to let local mail through. */
            vbuf_printf(&value, "%s%s", restrictions[r],
                        strcmp(list, "smtpd_relay_restrictions") == 0 ? ", reject_unauth_destination" : "");
            if (codes[c])
                configure(list, vbuf_str(&value), "unknown_client_reject_code", codes[c], NULL);
            else
                configure(list, vbuf_str(&value), NULL);
            vbuf_release(&value);
            for (size_t st = 0; st < sizeof(states) / sizeof(states[0]); st++) {
                char buf[256], ctx[256];
                int peer;
                smtpd_session *s = session(states[st].name, states[st].reverse, &peer);
                const char *want =
                    expected(reverse ? states[st].reverse : states[st].name, codes[c] ? atoi(codes[c]) : 450,
                             reverse ? "reverse hostname" : "hostname", buf, sizeof(buf));

                snprintf(ctx, sizeof(ctx), "%s = %s, code %s, state %s", list, restrictions[r],
                         codes[c] ? codes[c] : "default", states[st].label);
                check_reply(ctx, check(s), want);
                session_done(s, peer);
            }
        }
    }
}

/* at_rcpt - the delayed client, HELO and sender lists, then relay and recipient lists */
static const char *at_rcpt(smtpd_session *s)
{
    vbuf_set(&s->helo, "helo.example.test");
    xfree(s->sender);
    s->sender = xstrdup("a@b.example");
    return smtpd_check_rcpt(s, "alice@kite.test");
}

/* at_data - smtpd_data_restrictions */
static const char *at_data(smtpd_session *s)
{
    return smtpd_check_data(s);
}

/* at_etrn - smtpd_etrn_restrictions */
static const char *at_etrn(smtpd_session *s)
{
    return smtpd_check_etrn(s, "relay.example");
}

static void test_every_state_and_code_in_the_rcpt_time_lists(void **state)
{
    (void) state;
    for (size_t i = 0; i < sizeof(rcpt_lists) / sizeof(rcpt_lists[0]); i++)
        run_matrix(rcpt_lists[i], at_rcpt);
}

static void test_every_state_and_code_in_the_data_list(void **state)
{
    (void) state;
    run_matrix("smtpd_data_restrictions", at_data);
}

static void test_every_state_and_code_in_the_etrn_list(void **state)
{
    (void) state;
    run_matrix("smtpd_etrn_restrictions", at_etrn);
}

/* at_connect - smtpd_client_restrictions alone (smtpd_delay_reject = no) */
static const char *at_connect(smtpd_session *s)
{
    return smtpd_check_client(s);
}

/* at_helo - smtpd_helo_restrictions alone (smtpd_delay_reject = no) */
static const char *at_helo(smtpd_session *s)
{
    return smtpd_check_helo(s, "helo.example.test");
}

/* at_mail - smtpd_sender_restrictions alone (smtpd_delay_reject = no) */
static const char *at_mail(smtpd_session *s)
{
    return smtpd_check_mail(s, "a@b.example");
}

static void test_without_delay_reject_each_stage_rejects_itself(void **state)
{
    static const struct {
        const char *list;
        const char *(*check)(smtpd_session *s);
    } stages[] = {
        {"smtpd_client_restrictions", at_connect},
        {"smtpd_helo_restrictions", at_helo},
        {"smtpd_sender_restrictions", at_mail},
    };

    (void) state;
    for (size_t i = 0; i < sizeof(stages) / sizeof(stages[0]); i++) {
        char buf[256];
        int peer;
        smtpd_session *s;

        configure(stages[i].list, "reject_unknown_client_hostname", "smtpd_delay_reject", "no",
                  "unknown_client_reject_code", "550", NULL);
        s = session(SMTPD_PEER_FORGED, SMTPD_PEER_OK, &peer);
        check_reply(stages[i].list, stages[i].check(s), expected(SMTPD_PEER_FORGED, 550, "hostname", buf, sizeof(buf)));
        session_done(s, peer);
        s = session(SMTPD_PEER_OK, SMTPD_PEER_OK, &peer);
        check_reply(stages[i].list, stages[i].check(s), NULL);
        session_done(s, peer);
    }
}

static void test_an_earlier_permit_ends_the_list(void **state)
{
    int peer;
    smtpd_session *s;

    (void) state;
    configure("smtpd_client_restrictions",
              "check_client_access inline:{" CLIENT_ADDR "=OK}, reject_unknown_reverse_client_hostname", NULL);
    s = session(SMTPD_PEER_PERM, SMTPD_PEER_PERM, &peer);
    check_reply("permitted by address", at_rcpt(s), NULL);
    session_done(s, peer);

    /* mynetworks clients are ordinarily let through first. */
    configure("smtpd_client_restrictions", "permit_mynetworks, reject_unknown_client_hostname", NULL);
    s = session(SMTPD_PEER_PERM, SMTPD_PEER_PERM, &peer);
    check_reply("outside mynetworks", at_rcpt(s),
                "450 4.7.25 Client host rejected: cannot find your hostname, [" CLIENT_ADDR "]");
    session_done(s, peer);
}

/* talk - send text, run the engine until it waits, return what came back */
static const char *talk(smtpd_session *s, int peer, vbuf *out, const char *text)
{
    char buf[4096];
    ssize_t n;
    int r, rounds = 0;

    vbuf_reset(out);
    assert_int_equal(write(peer, text, strlen(text)), (ssize_t) strlen(text));
    do {
        s->sleep_ms = 0;
        r = smtpd_run(s);
        while ((n = read(peer, buf, sizeof(buf))) > 0)
            vbuf_append(out, buf, (size_t) n);
    } while ((r == SMTPD_WANT_SLEEP || r == SMTPD_WANT_WRITE) && ++rounds < 100);
    return vbuf_str(out);
}

static void test_the_client_gets_the_reply_at_rcpt_and_after_connect(void **state)
{
    char ehlo_reply[1024];
    vbuf out;
    int peer;
    smtpd_session *s;

    (void) state;
    vbuf_init(&out, 0);
    configure("smtpd_client_restrictions", "reject_unknown_reverse_client_hostname", "unknown_client_reject_code",
              "550", NULL);
    s = session(SMTPD_PEER_PERM, SMTPD_PEER_PERM, &peer);
    assert_string_equal(talk(s, peer, &out,
                             "HELO helo.example.test\r\nMAIL FROM:<a@b.example>\r\n"
                             "RCPT TO:<alice@kite.test>\r\n"),
                        "250 mx.kite.test\r\n250 Ok\r\n"
                        "550 Client host rejected: cannot find your reverse hostname, [" CLIENT_ADDR "]\r\n");
    session_done(s, peer);

    /* smtpd_delay_reject = no: decided at the greeting, told at MAIL. */
    configure("smtpd_client_restrictions", "reject_unknown_client_hostname", "smtpd_delay_reject", "no", NULL);
    s = session(SMTPD_PEER_FORGED, SMTPD_PEER_OK, &peer);
    s->mode = SMTPD_MODE_GREET;
    assert_non_null(strstr(talk(s, peer, &out, ""), "220 "));
    snprintf(ehlo_reply, sizeof(ehlo_reply), "%s", talk(s, peer, &out, "EHLO helo.example.test\r\n"));
    assert_non_null(strstr(ehlo_reply, "250 "));
    assert_string_equal(talk(s, peer, &out, "MAIL FROM:<a@b.example>\r\n"),
                        "450 4.7.25 Client host rejected: cannot find your hostname, [" CLIENT_ADDR "]\r\n");
    session_done(s, peer);
    vbuf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_state_and_code_in_the_rcpt_time_lists),
        cmocka_unit_test(test_every_state_and_code_in_the_data_list),
        cmocka_unit_test(test_every_state_and_code_in_the_etrn_list),
        cmocka_unit_test(test_without_delay_reject_each_stage_rejects_itself),
        cmocka_unit_test(test_an_earlier_permit_ends_the_list),
        cmocka_unit_test(test_the_client_gets_the_reply_at_rcpt_and_after_connect),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
