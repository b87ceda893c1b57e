/*
 * Unit tests for ETRN (RFC 1985) in smtpd: the argument parser with
 * hostile inputs, Postfix's order of checks and reply codes, the
 * smtpd_etrn_restrictions (check_etrn_access with parent domains, generic
 * client restrictions, reject/defer), fast_flush_domains, the EHLO keyword
 * and HELP text, and the flush_site request itself, sent over a real
 * public/qmgr socket to a forked stand-in that records what it got. The
 * sessions run in-process over a socketpair, as in test_smtpd_proto.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../smtpd/smtpd.h"
#include "attr.h"
#include "conf.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "stream.h"
#include "vbuf.h"

/* ---- a session over a socketpair ---- */

typedef struct harness {
    int client;
    smtpd_session *s;
    vbuf out;
} harness;

/* h_open - a session for a client at addr, in command mode */
static void h_open(harness *h, const char *addr, int standalone)
{
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    h->client = sv[0];
    h->s = smtpd_session_new(sv[1], standalone, "client.example", addr, "4321");
    h->s->sleep_ms = 0;
    h->s->mode = SMTPD_MODE_CMD;
    vbuf_init(&h->out, 0);
}

/* h_talk - send text, run the engine until it waits, return the replies */
static const char *h_talk(harness *h, const char *text)
{
    char buf[4096];
    ssize_t n;
    int r, rounds = 0;

    vbuf_reset(&h->out);
    assert_int_equal(write(h->client, text, strlen(text)), (ssize_t) strlen(text));
    do {
        h->s->sleep_ms = 0;
        r = smtpd_run(h->s);
        while ((n = read(h->client, buf, sizeof(buf))) > 0)
            vbuf_append(&h->out, buf, (size_t) n);
    } while ((r == SMTPD_WANT_SLEEP || r == SMTPD_WANT_WRITE) && ++rounds < 100);
    return vbuf_str(&h->out);
}

/* h_close - end the session */
static void h_close(harness *h)
{
    smtpd_session_free(h->s);
    close(h->client);
    vbuf_release(&h->out);
}

/* expect_reply - the whole reply text */
static void expect_reply(const char *what, const char *got, const char *want)
{
    if (strcmp(got, want) != 0)
        fail_msg("%s: expected \"%s\", got \"%s\"", what, want, got);
}

/* configure - the base configuration plus name=value pairs (NULL-terminated) */
static void configure(const char *name, ...)
{
    va_list ap;

    conf_reset();
    conf_override("myhostname", "mx.kite.test");
    conf_override("mydestination", "kite.test localhost");
    conf_override("relay_domains", "relay.test");
    conf_override("mynetworks", "127.0.0.0/8");
    conf_override("smtpd_error_sleep_time", "0");
    conf_override("smtpd_peername_lookup", "no");
    conf_override("trigger_timeout", "1s");
    va_start(ap, name);
    while (name) {
        conf_override(name, va_arg(ap, const char *));
        name = va_arg(ap, const char *);
    }
    va_end(ap);
    assert_int_equal(conf_load("/nonexistent-kite-dir"), 0);
    msg_stderr(getenv("TEST_VERBOSE") != NULL);
    smtpd_check_init();
    smtpd_sasl_init();
}

/* ---- the argument ---- */

static const struct {
    const char *name;
    const char *args;
    int code; /* 0, 500, 501 */
    int kind;
    const char *domain;
} parse_cases[] = {
    {"a domain", "relay.test", 0, SMTPD_ETRN_DOMAIN, "relay.test"},
    {"blanks around", "  relay.test \t", 0, SMTPD_ETRN_DOMAIN, "relay.test"},
    {"case is kept", "Relay.TEST", 0, SMTPD_ETRN_DOMAIN, "Relay.TEST"},
    {"@ takes subdomains", "@relay.test", 0, SMTPD_ETRN_SUBDOMAINS, "relay.test"},
    {"# names a queue", "#queue1", 0, SMTPD_ETRN_QUEUE, "queue1"},
    {"IPv4 literal", "[192.0.2.1]", 0, SMTPD_ETRN_DOMAIN, "[192.0.2.1]"},
    {"IPv6 literal", "[IPv6:2001:db8::1]", 0, SMTPD_ETRN_DOMAIN, "[IPv6:2001:db8::1]"},
    {"underscore and hyphen", "my_host-1.relay.test", 0, SMTPD_ETRN_DOMAIN, "my_host-1.relay.test"},
    {"one label", "localhost", 0, SMTPD_ETRN_DOMAIN, "localhost"},
    {"no argument", NULL, 500, 0, NULL},
    {"empty argument", "", 500, 0, NULL},
    {"only blanks", "   ", 500, 0, NULL},
    {"two arguments", "a.test b.test", 500, 0, NULL},
    {"tab separates arguments", "a.te\tst", 500, 0, NULL},
    {"lone @", "@", 501, 0, NULL},
    {"lone #", "#", 501, 0, NULL},
    {"lone dot", ".", 501, 0, NULL},
    {"leading dot", ".relay.test", 501, 0, NULL},
    {"trailing dot", "relay.test.", 501, 0, NULL},
    {"empty label", "relay..test", 501, 0, NULL},
    {"double option", "@@relay.test", 501, 0, NULL},
    {"mixed options", "#@relay.test", 501, 0, NULL},
    {"hyphen first", "-relay.test", 501, 0, NULL},
    {"hyphen last in label", "relay-.test", 501, 0, NULL},
    {"hyphen last", "relay.test-", 501, 0, NULL},
    {"bare IPv4 address", "192.0.2.1", 501, 0, NULL},
    {"all digits", "12345", 501, 0, NULL},
    {"bad IPv4 literal", "[192.0.2.256]", 501, 0, NULL},
    {"bad IPv6 literal", "[IPv6:2001:zz::1]", 501, 0, NULL},
    {"IPv6 without tag", "[2001:db8::1]", 501, 0, NULL},
    {"empty literal", "[]", 501, 0, NULL},
    {"unclosed literal", "[192.0.2.1", 501, 0, NULL},
    {"8-bit", "r\xc3\xa9lay.test", 501, 0, NULL},
    {"shell characters", "a;rm.test", 501, 0, NULL},
    {"path", "../relay.test", 501, 0, NULL},
    {"wildcard", "*.relay.test", 501, 0, NULL},
    {"percent", "a%b.test", 501, 0, NULL},
    {"address", "user@relay.test", 501, 0, NULL},
    {"angle brackets", "<relay.test>", 501, 0, NULL},
};

static void test_etrn_argument_is_parsed_strictly(void **state)
{
    vbuf name;

    (void) state;
    vbuf_init(&name, 0);
    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        int kind = -1;
        int code = smtpd_etrn_parse(parse_cases[i].args, &name, &kind);

        if (code != parse_cases[i].code)
            fail_msg("%s: code %d, wanted %d", parse_cases[i].name, code, parse_cases[i].code);
        if (code == 0 && (kind != parse_cases[i].kind || strcmp(vbuf_str(&name), parse_cases[i].domain) != 0))
            fail_msg("%s: kind %d name \"%s\"", parse_cases[i].name, kind, vbuf_str(&name));
    }
    vbuf_release(&name);
}

static void test_etrn_name_length_limits(void **state)
{
    vbuf args, name;
    int kind;

    (void) state;
    vbuf_init(&args, 0);
    vbuf_init(&name, 0);
    /* A label of 63 octets is fine, 64 is not (RFC 1035 §2.3.4). */
    while (args.len < 63)
        vbuf_putc(&args, 'a');
    vbuf_puts(&args, ".test");
    assert_int_equal(smtpd_etrn_parse(vbuf_str(&args), &name, &kind), 0);
    vbuf_set(&args, "b");
    while (args.len < 64)
        vbuf_putc(&args, 'a');
    vbuf_puts(&args, ".test");
    assert_int_equal(smtpd_etrn_parse(vbuf_str(&args), &name, &kind), 501);
    /* A name of 255 octets is fine, 256 is not. */
    vbuf_reset(&args);
    while (args.len < 251)
        vbuf_puts(&args, "abc.");
    vbuf_puts(&args, "test");
    vbuf_truncate(&args, 255);
    assert_int_equal(smtpd_etrn_parse(vbuf_str(&args), &name, &kind), 0);
    vbuf_puts(&args, "x");
    assert_int_equal(smtpd_etrn_parse(vbuf_str(&args), &name, &kind), 501);
    vbuf_release(&args);
    vbuf_release(&name);
}

/* ---- the dialogue, without a queue manager ---- */

/* A step: from a client at addr with these parameters, these lines get this reply. */
static const struct {
    const char *name;
    const char *addr;
    const char *param, *value; /* one extra main.cf parameter, or NULL */
    const char *input;
    const char *reply; /* for the last command */
} dialogue_cases[] = {
    {"no qmgr socket: 458", "127.0.0.1", NULL, NULL, "EHLO c.test\r\nETRN relay.test\r\n",
     "458 4.3.0 Unable to queue messages\r\n"},
    {"HELO suffices; replies without enhanced codes", "127.0.0.1", NULL, NULL, "HELO c.test\r\nETRN other.test\r\n",
     "459 <other.test>: service unavailable\r\n"},
    {"no HELO needed by default (Postfix)", "127.0.0.1", NULL, NULL, "ETRN other.test\r\n",
     "459 <other.test>: service unavailable\r\n"},
    {"smtpd_helo_required: HELO first", "127.0.0.1", "smtpd_helo_required", "yes", "ETRN relay.test\r\n",
     "503 Error: send HELO/EHLO first\r\n"},
    {"not in a transaction", "127.0.0.1", NULL, NULL, "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nETRN relay.test\r\n",
     "250 2.1.0 Ok\r\n503 5.5.1 Error: MAIL transaction in progress\r\n"},
    {"RSET ends the transaction", "127.0.0.1", NULL, NULL,
     "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRSET\r\nETRN other.test\r\n",
     "250 2.1.0 Ok\r\n250 2.0.0 Ok\r\n459 4.7.1 <other.test>: service unavailable\r\n"},
    {"no argument", "127.0.0.1", NULL, NULL, "EHLO c.test\r\nETRN\r\n", "500 5.5.4 Syntax: ETRN domain\r\n"},
    {"two arguments", "127.0.0.1", NULL, NULL, "EHLO c.test\r\nETRN a.test b.test\r\n",
     "500 5.5.4 Syntax: ETRN domain\r\n"},
    {"bad syntax", "127.0.0.1", NULL, NULL, "EHLO c.test\r\nETRN @\r\n",
     "501 5.5.4 Error: invalid parameter syntax\r\n"},
    {"syntax before restrictions", "127.0.0.1", "smtpd_etrn_restrictions", "reject", "EHLO c.test\r\nETRN .\r\n",
     "501 5.5.4 Error: invalid parameter syntax\r\n"},
    {"not a fast flush domain", "127.0.0.1", NULL, NULL, "EHLO c.test\r\nETRN other.test\r\n",
     "459 4.7.1 <other.test>: service unavailable\r\n"},
    {"address literal not eligible", "127.0.0.1", NULL, NULL, "EHLO c.test\r\nETRN [192.0.2.1]\r\n",
     "459 4.7.1 <[192.0.2.1]>: service unavailable\r\n"},
    {"#queue is not supported", "127.0.0.1", NULL, NULL, "EHLO c.test\r\nETRN #relay.test\r\n",
     "459 4.7.1 <relay.test>: service unavailable\r\n"},
    {"subdomain of a relay domain is eligible", "127.0.0.1", NULL, NULL, "EHLO c.test\r\nETRN sub.relay.test\r\n",
     "458 4.3.0 Unable to queue messages\r\n"},
    {"fast_flush_domains empty: nothing is eligible", "127.0.0.1", "fast_flush_domains", "",
     "EHLO c.test\r\nETRN relay.test\r\n", "459 4.7.1 <relay.test>: service unavailable\r\n"},
    {"fast_flush_domains names another domain", "127.0.0.1", "fast_flush_domains", "other.test",
     "EHLO c.test\r\nETRN other.test\r\n", "458 4.3.0 Unable to queue messages\r\n"},
    {"default restrictions: any client may ETRN", "192.0.2.9", NULL, NULL, "EHLO c.test\r\nETRN relay.test\r\n",
     "458 4.3.0 Unable to queue messages\r\n"},
    {"permit_mynetworks, reject: outsider refused", "192.0.2.9", "smtpd_etrn_restrictions", "permit_mynetworks, reject",
     "EHLO c.test\r\nETRN relay.test\r\n", "554 5.7.1 <relay.test>: Etrn command rejected: Access denied\r\n"},
    {"permit_mynetworks, reject: mynetworks allowed", "127.0.0.1", "smtpd_etrn_restrictions",
     "permit_mynetworks, reject", "EHLO c.test\r\nETRN relay.test\r\n", "458 4.3.0 Unable to queue messages\r\n"},
    {"reject after HELO: the code stays, the DSN goes", "127.0.0.1", "smtpd_etrn_restrictions", "reject",
     "HELO c.test\r\nETRN relay.test\r\n", "554 <relay.test>: Etrn command rejected: Access denied\r\n"},
    {"defer", "127.0.0.1", "smtpd_etrn_restrictions", "defer", "EHLO c.test\r\nETRN relay.test\r\n",
     "450 4.3.2 <relay.test>: Etrn command rejected: Try again later\r\n"},
    {"check_etrn_access REJECT", "127.0.0.1", "smtpd_etrn_restrictions",
     "check_etrn_access inline:{blocked.relay.test=REJECT}", "EHLO c.test\r\nETRN blocked.relay.test\r\n",
     "554 5.7.1 <blocked.relay.test>: Etrn command rejected: Access denied\r\n"},
    {"check_etrn_access parent domain", "127.0.0.1", "smtpd_etrn_restrictions",
     "check_etrn_access inline:{blocked.relay.test=REJECT}", "EHLO c.test\r\nETRN @a.b.blocked.relay.test\r\n",
     "554 5.7.1 <a.b.blocked.relay.test>: Etrn command rejected: Access denied\r\n"},
    {"check_etrn_access no match", "127.0.0.1", "smtpd_etrn_restrictions",
     "check_etrn_access inline:{blocked.relay.test=REJECT}", "EHLO c.test\r\nETRN relay.test\r\n",
     "458 4.3.0 Unable to queue messages\r\n"},
    {"check_etrn_access DEFER", "127.0.0.1", "smtpd_etrn_restrictions", "check_etrn_access inline:{relay.test=DEFER}",
     "EHLO c.test\r\nETRN relay.test\r\n", "450 4.7.1 <relay.test>: Etrn command rejected: Access denied\r\n"},
    {"check_etrn_access OK then reject", "192.0.2.9", "smtpd_etrn_restrictions",
     "check_etrn_access inline:{relay.test=OK}, reject", "EHLO c.test\r\nETRN relay.test\r\n",
     "458 4.3.0 Unable to queue messages\r\n"},
    {"check_etrn_access numeric reply", "127.0.0.1", "smtpd_etrn_restrictions",
     "check_etrn_access inline:{relay.test=550}", "EHLO c.test\r\nETRN relay.test\r\n",
     "550 5.7.1 <relay.test>: Etrn command rejected: Access denied\r\n"},
    {"check_client_access in the ETRN list", "192.0.2.9", "smtpd_etrn_restrictions",
     "check_client_access inline:{192.0.2.9=REJECT}", "EHLO c.test\r\nETRN relay.test\r\n",
     "554 5.7.1 <client.example[192.0.2.9]>: Client host rejected: Access denied\r\n"},
    {"delayed client restrictions apply", "192.0.2.9", "smtpd_client_restrictions",
     "check_client_access inline:{192.0.2.9=REJECT}", "EHLO c.test\r\nETRN relay.test\r\n",
     "554 5.7.1 <client.example[192.0.2.9]>: Client host rejected: Access denied\r\n"},
    {"delayed HELO restrictions apply", "127.0.0.1", "smtpd_helo_restrictions",
     "check_helo_access inline:{bad.test=REJECT}", "EHLO bad.test\r\nETRN relay.test\r\n",
     "554 5.7.1 <bad.test>: Helo command rejected: Access denied\r\n"},
    {"restrictions before eligibility", "127.0.0.1", "smtpd_etrn_restrictions", "reject",
     "EHLO c.test\r\nETRN other.test\r\n", "554 5.7.1 <other.test>: Etrn command rejected: Access denied\r\n"},
    {"unknown restriction", "127.0.0.1", "smtpd_etrn_restrictions", "frobnicate", "EHLO c.test\r\nETRN relay.test\r\n",
     "451 4.3.5 Server configuration error\r\n"},
};

static void test_etrn_checks_in_postfix_order(void **state)
{
    (void) state;
    for (size_t i = 0; i < sizeof(dialogue_cases) / sizeof(dialogue_cases[0]); i++) {
        harness h;
        const char *r, *last;

        if (dialogue_cases[i].param)
            configure(dialogue_cases[i].param, dialogue_cases[i].value, NULL);
        else
            configure(NULL);
        h_open(&h, dialogue_cases[i].addr, 0);
        r = h_talk(&h, dialogue_cases[i].input);
        /* Skip the EHLO/HELO answer; compare the rest. */
        last = r;
        if (strncmp(dialogue_cases[i].input, "EHLO", 4) == 0 || strncmp(dialogue_cases[i].input, "HELO", 4) == 0) {
            while (strncmp(last, "250-", 4) == 0)
                last = strstr(last, "\r\n") + 2;
            last = strstr(last, "\r\n");
            assert_non_null(last);
            last += 2;
        }
        expect_reply(dialogue_cases[i].name, last, dialogue_cases[i].reply);
        h_close(&h);
    }
}

static void test_etrn_in_ehlo_and_help(void **state)
{
    harness h;
    const char *r;

    (void) state;
    configure(NULL);
    h_open(&h, "127.0.0.1", 0);
    r = h_talk(&h, "EHLO c.test\r\n");
    assert_non_null(strstr(r, "250-VRFY\r\n250-ETRN\r\n"));
    r = h_talk(&h, "HELP ETRN\r\n");
    expect_reply("HELP ETRN", r, "214 2.0.0 ETRN [@]domain - deliver the mail queued for domain now (RFC 1985)\r\n");
    r = h_talk(&h, "HELP\r\n");
    assert_non_null(strstr(r, "214-  ETRN [@]domain"));
    h_close(&h);

    configure("smtpd_discard_ehlo_keywords", "etrn", NULL);
    h_open(&h, "127.0.0.1", 0);
    r = h_talk(&h, "EHLO c.test\r\n");
    assert_null(strstr(r, "ETRN"));
    r = h_talk(&h, "ETRN relay.test\r\n");
    expect_reply("discarded ETRN", r, "502 5.5.1 Error: command not implemented\r\n");
    r = h_talk(&h, "HELP ETRN\r\n");
    assert_non_null(strstr(r, "504 5.5.1"));
    h_close(&h);
}

static void test_etrn_counts_as_junk_and_in_the_disconnect_line(void **state)
{
    harness h;
    vbuf line;

    (void) state;
    configure("smtpd_junk_command_limit", "1", NULL);
    h_open(&h, "127.0.0.1", 0);
    h_talk(&h, "EHLO c.test\r\nETRN other.test\r\nETRN other.test\r\nETRN relay.test\r\n");
    vbuf_init(&line, 0);
    smtpd_count_line(h.s, &line);
    assert_string_equal(vbuf_str(&line), " ehlo=1 etrn=0/3 commands=1/4");
    /* Three 4xx replies, and the second and third ETRN are past the junk limit. */
    assert_int_equal(h.s->error_count, 5);
    vbuf_release(&line);
    h_close(&h);
}

static void test_etrn_in_standalone_session_is_refused(void **state)
{
    harness h;
    const char *r;

    (void) state;
    configure(NULL);
    h_open(&h, "127.0.0.1", 1);
    r = h_talk(&h, "EHLO c.test\r\n");
    r = h_talk(&h, "ETRN relay.test\r\n");
    expect_reply("sendmail -bs", r, "458 4.3.0 Unable to queue messages\r\n");
    h_close(&h);
}

/* ---- the request to qmgr, over a real socket ---- */

static char qdir[64];
static char olddir[4096];

/* fake_qmgr_socket - public/qmgr under qdir, listening; the fd */
static int fake_qmgr_socket(void)
{
    struct sockaddr_un sun;
    int fd;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "public/qmgr");
    (void) unlink(sun.sun_path);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *) &sun, sizeof(sun)), 0);
    assert_int_equal(listen(fd, 8), 0);
    return fd;
}

/*
 * fake_qmgr - a child that serves n requests on lfd: each one's request,
 * site and subdomains go down the pipe as a line, and the answer is
 * {status, text}. Returns the child's pid.
 */
static pid_t fake_qmgr(int lfd, int n, long long status, int report)
{
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid > 0)
        return pid;
    for (int i = 0; i < n; i++) {
        int fd = accept(lfd, NULL, NULL);
        attr_list *f = attr_new();
        stream *s;
        long long sub = 0;
        char line[600];

        if (fd < 0)
            _exit(2);
        s = stream_open(fd);
        stream_set_timeout(s, 10);
        if (attr_read(s, f, 4096) < 0)
            _exit(3);
        (void) attr_get_int(f, "subdomains", &sub);
        snprintf(line, sizeof(line), "%s %s %lld %zu\n", attr_get_str(f, "request") ? attr_get_str(f, "request") : "-",
                 attr_get_str(f, "site") ? attr_get_str(f, "site") : "-", sub, attr_count(f));
        if (write(report, line, strlen(line)) != (ssize_t) strlen(line))
            _exit(4);
        attr_clear(f);
        attr_put_int(f, "status", status);
        attr_put_str(f, "text", status ? "bad or missing site" : "queuing started");
        if (attr_write(s, f) < 0)
            _exit(5);
        attr_free(f);
        stream_close(s);
    }
    _exit(0);
}

/* read_report - one line from the stand-in */
static void read_report(int fd, char *buf, size_t len)
{
    size_t n = 0;

    while (n + 1 < len) {
        ssize_t r = read(fd, buf + n, 1);

        assert_true(r == 1);
        if (buf[n++] == '\n')
            break;
    }
    buf[n] = 0;
}

static int qmgr_setup(void **state)
{
    (void) state;
    assert_non_null(getcwd(olddir, sizeof(olddir)));
    snprintf(qdir, sizeof(qdir), "/tmp/kite-etrn-XXXXXX");
    assert_non_null(mkdtemp(qdir));
    assert_int_equal(chdir(qdir), 0);
    assert_int_equal(mkdir("public", 0700), 0);
    return 0;
}

static int qmgr_teardown(void **state)
{
    (void) state;
    (void) unlink("public/qmgr");
    (void) rmdir("public");
    assert_int_equal(chdir(olddir), 0);
    (void) rmdir(qdir);
    return 0;
}

static void test_etrn_sends_flush_site_to_qmgr(void **state)
{
    harness h;
    const char *r;
    char report[700];
    int lfd, pfd[2], status;
    pid_t pid;

    (void) state;
    configure(NULL);
    lfd = fake_qmgr_socket();
    assert_int_equal(pipe(pfd), 0);
    pid = fake_qmgr(lfd, 2, 0, pfd[1]);
    h_open(&h, "192.0.2.9", 0);
    h_talk(&h, "EHLO c.test\r\n");
    r = h_talk(&h, "ETRN relay.test\r\n");
    expect_reply("ETRN domain", r, "250 2.0.0 Queuing started\r\n");
    read_report(pfd[0], report, sizeof(report));
    assert_string_equal(report, "flush_site relay.test 0 2\n");
    r = h_talk(&h, "ETRN @Relay.Test\r\n");
    expect_reply("ETRN @domain", r, "250 2.0.0 Queuing started\r\n");
    read_report(pfd[0], report, sizeof(report));
    assert_string_equal(report, "flush_site Relay.Test 1 3\n");
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    h_close(&h);
    close(lfd);
    close(pfd[0]);
    close(pfd[1]);
}

static void test_etrn_refused_by_qmgr_says_458(void **state)
{
    harness h;
    const char *r;
    char report[700];
    int lfd, pfd[2], status;
    pid_t pid;

    (void) state;
    configure(NULL);
    lfd = fake_qmgr_socket();
    assert_int_equal(pipe(pfd), 0);
    pid = fake_qmgr(lfd, 1, 1, pfd[1]);
    h_open(&h, "127.0.0.1", 0);
    h_talk(&h, "EHLO c.test\r\n");
    r = h_talk(&h, "ETRN relay.test\r\n");
    expect_reply("qmgr says no", r, "458 4.3.0 Unable to queue messages\r\n");
    read_report(pfd[0], report, sizeof(report));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    h_close(&h);
    close(lfd);
    close(pfd[0]);
    close(pfd[1]);
}

/* test_etrn_site_qmgr_finds_ineligible_says_459 - qmgr's own fast_flush_domains (status 2) gives smtpd's 459 */
static void test_etrn_site_qmgr_finds_ineligible_says_459(void **state)
{
    harness h;
    const char *r;
    char report[700];
    int lfd, pfd[2], status;
    pid_t pid;

    (void) state;
    configure(NULL);
    lfd = fake_qmgr_socket();
    assert_int_equal(pipe(pfd), 0);
    pid = fake_qmgr(lfd, 1, 2, pfd[1]);
    h_open(&h, "127.0.0.1", 0);
    h_talk(&h, "EHLO c.test\r\n");
    r = h_talk(&h, "ETRN relay.test\r\n");
    expect_reply("qmgr: not eligible", r, "459 4.7.1 <relay.test>: service unavailable\r\n");
    read_report(pfd[0], report, sizeof(report));
    assert_string_equal(report, "flush_site relay.test 0 2\n");
    assert_int_equal(waitpid(pid, &status, 0), pid);
    h_close(&h);
    close(lfd);
    close(pfd[0]);
    close(pfd[1]);
}

static void test_etrn_silent_qmgr_times_out_with_458(void **state)
{
    harness h;
    const char *r;
    time_t start;
    int lfd;

    (void) state;
    configure(NULL);          /* trigger_timeout = 1s */
    lfd = fake_qmgr_socket(); /* listening; nobody answers */
    h_open(&h, "127.0.0.1", 0);
    h_talk(&h, "EHLO c.test\r\n");
    start = time(NULL);
    r = h_talk(&h, "ETRN relay.test\r\n");
    expect_reply("silent qmgr", r, "458 4.3.0 Unable to queue messages\r\n");
    assert_true(time(NULL) - start <= 3);
    h_close(&h);
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_etrn_argument_is_parsed_strictly),
        cmocka_unit_test(test_etrn_name_length_limits),
        cmocka_unit_test(test_etrn_checks_in_postfix_order),
        cmocka_unit_test(test_etrn_in_ehlo_and_help),
        cmocka_unit_test(test_etrn_counts_as_junk_and_in_the_disconnect_line),
        cmocka_unit_test(test_etrn_in_standalone_session_is_refused),
        cmocka_unit_test_setup_teardown(test_etrn_sends_flush_site_to_qmgr, qmgr_setup, qmgr_teardown),
        cmocka_unit_test_setup_teardown(test_etrn_refused_by_qmgr_says_458, qmgr_setup, qmgr_teardown),
        cmocka_unit_test_setup_teardown(test_etrn_site_qmgr_finds_ineligible_says_459, qmgr_setup, qmgr_teardown),
        cmocka_unit_test_setup_teardown(test_etrn_silent_qmgr_times_out_with_458, qmgr_setup, qmgr_teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
