/*
 * Unit tests for dns: the answer parser with good and hostile packets
 * (truncation at every length, wrong ids and questions, compression loops
 * and forward pointers, oversized names and labels, unprintable names,
 * bad RDATA lengths, CNAME loops), reverse names, host name syntax, the
 * server address syntax, and dns_query() against a real UDP server on
 * loopback (a stray wrong-id reply is ignored; silence times out).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dns.h"

#define ID 0x1234

/* A packet under construction. */
typedef struct pkt {
    unsigned char b[4096];
    size_t n;
} pkt;

static void put8(pkt *p, unsigned v)
{
    assert_true(p->n < sizeof(p->b));
    p->b[p->n++] = (unsigned char) v;
}

static void put16(pkt *p, unsigned v)
{
    put8(p, v >> 8 & 0xff);
    put8(p, v & 0xff);
}

/* putname - a dotted name, uncompressed */
static void putname(pkt *p, const char *name)
{
    const char *s = name;

    while (*s) {
        const char *dot = strchr(s, '.');
        size_t l = dot ? (size_t) (dot - s) : strlen(s);

        put8(p, (unsigned) l);
        for (size_t i = 0; i < l; i++)
            put8(p, (unsigned char) s[i]);
        s += l;
        if (*s == '.')
            s++;
    }
    put8(p, 0);
}

/* start - header and question */
static void start(pkt *p, unsigned id, unsigned flags, unsigned an, const char *qname, unsigned qtype)
{
    p->n = 0;
    put16(p, id);
    put16(p, flags);
    put16(p, 1);
    put16(p, an);
    put16(p, 0);
    put16(p, 0);
    putname(p, qname);
    put16(p, qtype);
    put16(p, 1);
}

/* rr_at_question - a record whose owner is a pointer to the question name */
static void rr_head(pkt *p, unsigned type, unsigned rdlen)
{
    put16(p, 0xc00c);
    put16(p, type);
    put16(p, 1);
    put16(p, 0);
    put16(p, 60);
    put16(p, rdlen);
}

static void rr_ptr(pkt *p, const char *target)
{
    pkt tmp = {.n = 0};

    putname(&tmp, target);
    rr_head(p, DNS_TYPE_PTR, (unsigned) tmp.n);
    memcpy(p->b + p->n, tmp.b, tmp.n);
    p->n += tmp.n;
}

static void rr_a(pkt *p, const char *addr)
{
    struct in_addr a;

    assert_int_equal(inet_pton(AF_INET, addr, &a), 1);
    rr_head(p, DNS_TYPE_A, 4);
    memcpy(p->b + p->n, &a, 4);
    p->n += 4;
}

static int parse(const pkt *p, const char *qname, int qtype, dns_answer *a)
{
    return dns_parse_answer(p->b, p->n, ID, qname, qtype, a);
}

#define REV "2.0.0.127.in-addr.arpa"

static void test_dns_ptr_answer_with_compressed_owner_is_parsed(void **state)
{
    pkt p;
    dns_answer a;

    (void) state;
    start(&p, ID, 0x8180, 1, REV, DNS_TYPE_PTR);
    rr_ptr(&p, "mail.example.test");
    assert_int_equal(parse(&p, REV, DNS_TYPE_PTR, &a), DNS_OK);
    assert_int_equal(a.count, 1);
    assert_string_equal(a.names[0], "mail.example.test");
    /* the question's case and a final dot do not matter */
    assert_int_equal(parse(&p, "2.0.0.127.IN-ADDR.ARPA.", DNS_TYPE_PTR, &a), DNS_OK);
}

static void test_dns_a_and_aaaa_answers_give_addresses(void **state)
{
    pkt p;
    dns_answer a;
    unsigned char six[16];

    (void) state;
    start(&p, ID, 0x8180, 2, "mail.example.test", DNS_TYPE_A);
    rr_a(&p, "127.0.0.2");
    rr_a(&p, "192.0.2.7");
    assert_int_equal(parse(&p, "mail.example.test", DNS_TYPE_A, &a), DNS_OK);
    assert_int_equal(a.count, 2);
    assert_memory_equal(a.addrs[0], "\x7f\x00\x00\x02", 4);
    assert_memory_equal(a.addrs[1], "\xc0\x00\x02\x07", 4);

    start(&p, ID, 0x8180, 1, "mail.example.test", DNS_TYPE_AAAA);
    assert_int_equal(inet_pton(AF_INET6, "2001:db8::25", six), 1);
    rr_head(&p, DNS_TYPE_AAAA, 16);
    memcpy(p.b + p.n, six, 16);
    p.n += 16;
    assert_int_equal(parse(&p, "mail.example.test", DNS_TYPE_AAAA, &a), DNS_OK);
    assert_memory_equal(a.addrs[0], six, 16);
}

static void test_dns_cname_chain_is_followed_rfc2317(void **state)
{
    pkt p;
    dns_answer a;
    size_t cname_owner;

    (void) state;
    start(&p, ID, 0x8180, 2, REV, DNS_TYPE_PTR);
    /* the PTR first, under the CNAME's target, to show order does not matter */
    cname_owner = p.n;
    putname(&p, "2.0/25.0.0.127.in-addr.arpa");
    put16(&p, DNS_TYPE_PTR);
    put16(&p, 1);
    put16(&p, 0);
    put16(&p, 60);
    {
        pkt t = {.n = 0};

        putname(&t, "classless.example.test");
        put16(&p, (unsigned) t.n);
        memcpy(p.b + p.n, t.b, t.n);
        p.n += t.n;
    }
    rr_head(&p, DNS_TYPE_CNAME, 2);
    put16(&p, 0xc000 | (unsigned) cname_owner);
    assert_int_equal(parse(&p, REV, DNS_TYPE_PTR, &a), DNS_OK);
    assert_string_equal(a.names[0], "classless.example.test");
}

static void test_dns_rcodes_and_empty_answers(void **state)
{
    static const struct {
        unsigned flags;
        int want;
    } rows[] = {
        {0x8183, DNS_NXDOMAIN}, {0x8180, DNS_NODATA}, {0x8182, DNS_TEMP},
        {0x8185, DNS_TEMP},     {0x8381, DNS_TEMP}, /* TC set */
    };
    pkt p;
    dns_answer a;

    (void) state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        start(&p, ID, rows[i].flags, 0, REV, DNS_TYPE_PTR);
        assert_int_equal(parse(&p, REV, DNS_TYPE_PTR, &a), rows[i].want);
        assert_int_equal(a.count, 0);
    }
}

static void test_dns_answer_to_another_question_is_refused(void **state)
{
    pkt p;
    dns_answer a;

    (void) state;
    start(&p, ID + 1, 0x8180, 1, REV, DNS_TYPE_PTR); /* wrong id */
    rr_ptr(&p, "mail.example.test");
    assert_int_equal(parse(&p, REV, DNS_TYPE_PTR, &a), DNS_MALFORMED);
    start(&p, ID, 0x0180, 1, REV, DNS_TYPE_PTR); /* a query, not a response */
    rr_ptr(&p, "mail.example.test");
    assert_int_equal(parse(&p, REV, DNS_TYPE_PTR, &a), DNS_MALFORMED);
    start(&p, ID, 0x8980, 1, REV, DNS_TYPE_PTR); /* opcode 1 */
    rr_ptr(&p, "mail.example.test");
    assert_int_equal(parse(&p, REV, DNS_TYPE_PTR, &a), DNS_MALFORMED);
    start(&p, ID, 0x8180, 1, REV, DNS_TYPE_PTR);
    rr_ptr(&p, "mail.example.test");
    assert_int_equal(parse(&p, "3.0.0.127.in-addr.arpa", DNS_TYPE_PTR, &a), DNS_MALFORMED);
    assert_int_equal(parse(&p, REV, DNS_TYPE_A, &a), DNS_MALFORMED);
    p.b[5] = 2; /* two questions */
    assert_int_equal(parse(&p, REV, DNS_TYPE_PTR, &a), DNS_MALFORMED);
}

static void test_dns_truncation_at_every_length_is_refused(void **state)
{
    pkt p;
    dns_answer a;

    (void) state;
    start(&p, ID, 0x8180, 2, "mail.example.test", DNS_TYPE_A);
    rr_a(&p, "127.0.0.2");
    rr_a(&p, "127.0.0.3");
    for (size_t cut = 0; cut < p.n; cut++) {
        unsigned char *copy = malloc(cut ? cut : 1);

        /* a heap copy of exactly cut bytes, so reading past it is caught under ASan */
        assert_non_null(copy);
        memcpy(copy, p.b, cut);
        assert_int_equal(dns_parse_answer(copy, cut, ID, "mail.example.test", DNS_TYPE_A, &a), DNS_MALFORMED);
        free(copy);
    }
    assert_int_equal(parse(&p, "mail.example.test", DNS_TYPE_A, &a), DNS_OK);
}

static void test_dns_compression_loops_and_forward_pointers_are_refused(void **state)
{
    pkt p;
    dns_answer a;
    char out[DNS_NAME_SIZE];
    size_t next, at;

    (void) state;
    /* question name that points at itself */
    p.n = 0;
    put16(&p, ID);
    put16(&p, 0x8180);
    put16(&p, 1);
    put16(&p, 0);
    put16(&p, 0);
    put16(&p, 0);
    put16(&p, 0xc00c);
    put16(&p, DNS_TYPE_PTR);
    put16(&p, 1);
    assert_int_equal(dns_name_unpack(p.b, p.n, 12, out, sizeof(out), &next), -1);
    assert_int_equal(parse(&p, REV, DNS_TYPE_PTR, &a), DNS_MALFORMED);

    /* PTR data: a label, then a pointer back to that label (a loop) */
    start(&p, ID, 0x8180, 1, REV, DNS_TYPE_PTR);
    rr_head(&p, DNS_TYPE_PTR, 4);
    at = p.n;
    put8(&p, 1);
    put8(&p, 'x');
    put16(&p, 0xc000 | (unsigned) at);
    assert_int_equal(dns_name_unpack(p.b, p.n, at, out, sizeof(out), &next), -1);
    assert_int_equal(parse(&p, REV, DNS_TYPE_PTR, &a), DNS_MALFORMED);

    /* a pointer forward, beyond itself */
    start(&p, ID, 0x8180, 1, REV, DNS_TYPE_PTR);
    rr_head(&p, DNS_TYPE_PTR, 2);
    put16(&p, 0xc000 | (unsigned) (p.n + 2));
    putname(&p, "later.example.test");
    assert_int_equal(parse(&p, REV, DNS_TYPE_PTR, &a), DNS_MALFORMED);

    /* a pointer with its second byte missing */
    p.n = 0;
    put8(&p, 0xc0);
    assert_int_equal(dns_name_unpack(p.b, p.n, 0, out, sizeof(out), &next), -1);
}

static void test_dns_oversized_names_and_labels_are_refused(void **state)
{
    pkt p;
    char out[DNS_NAME_SIZE], name[400];
    size_t next;

    (void) state;
    /* labels of 63, 63, 63 and 61 octets: 255 on the wire, the largest legal name */
    p.n = 0;
    for (int l = 0; l < 4; l++) {
        put8(&p, l < 3 ? 63 : 61);
        for (int i = 0; i < (l < 3 ? 63 : 61); i++)
            put8(&p, 'a');
    }
    put8(&p, 0);
    assert_int_equal(p.n, 255);
    assert_int_equal(dns_name_unpack(p.b, p.n, 0, out, sizeof(out), &next), 0);
    assert_int_equal(strlen(out), 253);
    assert_int_equal(next, 255);
    /* one octet more is too many */
    p.n = 0;
    for (int l = 0; l < 4; l++) {
        put8(&p, l < 3 ? 63 : 62);
        for (int i = 0; i < (l < 3 ? 63 : 62); i++)
            put8(&p, 'a');
    }
    put8(&p, 0);
    assert_int_equal(dns_name_unpack(p.b, p.n, 0, out, sizeof(out), &next), -1);
    /* 64 (0x40) and 128 (0x80) are extended label types, not lengths */
    for (unsigned bad = 0x40; bad <= 0x80; bad += 0x40) {
        p.n = 0;
        put8(&p, bad);
        for (int i = 0; i < 70; i++)
            put8(&p, 'a');
        put8(&p, 0);
        assert_int_equal(dns_name_unpack(p.b, p.n, 0, out, sizeof(out), &next), -1);
    }
    /* a small output buffer is never overrun */
    p.n = 0;
    putname(&p, "mail.example.test");
    assert_int_equal(dns_name_unpack(p.b, p.n, 0, out, 17, &next), -1);
    assert_int_equal(dns_name_unpack(p.b, p.n, 0, out, 18, &next), 0);
    /* a long name whose pieces are reached through pointers still counts in full */
    p.n = 0;
    for (int l = 0; l < 3; l++) {
        put8(&p, 63);
        for (int i = 0; i < 63; i++)
            put8(&p, 'b');
    }
    put8(&p, 0);
    {
        size_t tail = p.n;

        put8(&p, 63);
        for (int i = 0; i < 63; i++)
            put8(&p, 'c');
        put16(&p, 0xc000); /* + 193 octets from the front: 257 */
        assert_int_equal(dns_name_unpack(p.b, p.n, tail, out, sizeof(out), &next), -1);
    }
    memset(name, 'a', sizeof(name) - 1);
    name[sizeof(name) - 1] = 0;
    assert_false(dns_valid_hostname(name));
}

static void test_dns_unprintable_names_are_unusable(void **state)
{
    static const char *const bad[] = {"a b", "a\001b", "a\\b", "caf\xc3\xa9", "a\x7f", "nul\0x"};
    dns_answer a;

    (void) state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pkt p;
        size_t len = strcmp(bad[i], "nul") == 0 ? 5 : strlen(bad[i]);

        start(&p, ID, 0x8180, 1, REV, DNS_TYPE_PTR);
        rr_head(&p, DNS_TYPE_PTR, (unsigned) (len + 2 + 5));
        put8(&p, (unsigned) len);
        for (size_t k = 0; k < len; k++)
            put8(&p, (unsigned char) bad[i][k]);
        putname(&p, "test");
        assert_int_equal(parse(&p, REV, DNS_TYPE_PTR, &a), DNS_NODATA);
    }
    {
        /* a dot inside a label would change the name's meaning */
        pkt p;

        start(&p, ID, 0x8180, 1, REV, DNS_TYPE_PTR);
        rr_head(&p, DNS_TYPE_PTR, 9);
        put8(&p, 7);
        for (const char *c = "evil.co"; *c; c++)
            put8(&p, (unsigned char) *c);
        put8(&p, 0);
        assert_int_equal(parse(&p, REV, DNS_TYPE_PTR, &a), DNS_NODATA);
    }
}

static void test_dns_bad_rdata_lengths_are_refused(void **state)
{
    pkt p;
    dns_answer a;

    (void) state;
    /* A record with 5 octets */
    start(&p, ID, 0x8180, 1, "h.test", DNS_TYPE_A);
    rr_head(&p, DNS_TYPE_A, 5);
    for (int i = 0; i < 5; i++)
        put8(&p, 1);
    assert_int_equal(parse(&p, "h.test", DNS_TYPE_A, &a), DNS_MALFORMED);
    /* RDLENGTH beyond the end of the message */
    start(&p, ID, 0x8180, 1, "h.test", DNS_TYPE_A);
    rr_head(&p, DNS_TYPE_A, 400);
    put16(&p, 0);
    assert_int_equal(parse(&p, "h.test", DNS_TYPE_A, &a), DNS_MALFORMED);
    /* PTR whose name ends before its RDATA does */
    start(&p, ID, 0x8180, 1, REV, DNS_TYPE_PTR);
    rr_head(&p, DNS_TYPE_PTR, 9);
    putname(&p, "a.test");
    put8(&p, 0);
    assert_int_equal(parse(&p, REV, DNS_TYPE_PTR, &a), DNS_MALFORMED);
    /* a good A record, then a bad one: nothing of the answer is kept */
    start(&p, ID, 0x8180, 2, "h.test", DNS_TYPE_A);
    rr_a(&p, "127.0.0.2");
    rr_head(&p, DNS_TYPE_A, 3);
    put16(&p, 0);
    put8(&p, 0);
    assert_int_equal(parse(&p, "h.test", DNS_TYPE_A, &a), DNS_MALFORMED);
    assert_int_equal(a.count, 0);
    /* more answers announced than present */
    start(&p, ID, 0x8180, 3, "h.test", DNS_TYPE_A);
    rr_a(&p, "127.0.0.2");
    assert_int_equal(parse(&p, "h.test", DNS_TYPE_A, &a), DNS_MALFORMED);
}

static void test_dns_cname_loop_and_foreign_records(void **state)
{
    pkt p;
    dns_answer a;
    size_t b_at;

    (void) state;
    /* q -> b, b -> q */
    start(&p, ID, 0x8180, 2, "q.test", DNS_TYPE_A);
    rr_head(&p, DNS_TYPE_CNAME, 8);
    b_at = p.n;
    putname(&p, "b.test");
    put16(&p, 0xc000 | (unsigned) b_at);
    put16(&p, DNS_TYPE_CNAME);
    put16(&p, 1);
    put16(&p, 0);
    put16(&p, 60);
    put16(&p, 2);
    put16(&p, 0xc00c);
    assert_int_equal(parse(&p, "q.test", DNS_TYPE_A, &a), DNS_MALFORMED);
    /* an address for some other name is not an answer; neither is class CH */
    start(&p, ID, 0x8180, 2, "q.test", DNS_TYPE_A);
    putname(&p, "other.test");
    put16(&p, DNS_TYPE_A);
    put16(&p, 1);
    put16(&p, 0);
    put16(&p, 60);
    put16(&p, 4);
    put16(&p, 0x7f00);
    put16(&p, 0x0002);
    put16(&p, 0xc00c);
    put16(&p, DNS_TYPE_A);
    put16(&p, 3);
    put16(&p, 0);
    put16(&p, 60);
    put16(&p, 4);
    put16(&p, 0x7f00);
    put16(&p, 0x0002);
    assert_int_equal(parse(&p, "q.test", DNS_TYPE_A, &a), DNS_NODATA);
    /* more records than kept: the first DNS_MAX_RECORDS */
    start(&p, ID, 0x8180, 40, "q.test", DNS_TYPE_A);
    for (int i = 0; i < 40; i++)
        rr_a(&p, "127.0.0.9");
    assert_int_equal(parse(&p, "q.test", DNS_TYPE_A, &a), DNS_OK);
    assert_int_equal(a.count, DNS_MAX_RECORDS);
}

static void test_dns_reverse_names(void **state)
{
    char out[DNS_NAME_SIZE];

    (void) state;
    assert_int_equal(dns_reverse_name("192.0.2.10", out, sizeof(out)), 0);
    assert_string_equal(out, "10.2.0.192.in-addr.arpa");
    assert_int_equal(dns_reverse_name("2001:db8::567:89ab", out, sizeof(out)), 0);
    assert_string_equal(out, "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
    assert_int_equal(dns_reverse_name("example.test", out, sizeof(out)), -1);
    assert_int_equal(dns_reverse_name("1.2.3.4.5", out, sizeof(out)), -1);
    assert_int_equal(dns_reverse_name("192.0.2.10", out, 10), -1);
    assert_int_equal(dns_reverse_name("::1", out, 40), -1);
}

static void test_dns_valid_hostname_table(void **state)
{
    static const struct {
        const char *name;
        int ok;
    } rows[] = {
        {"mail.example.test", 1},
        {"localhost", 1},
        {"a-b.c_d.test", 1},
        {"x1.test", 1},
        {"", 0},
        {".test", 0},
        {"a..test", 0},
        {"-a.test", 0},
        {"a-.test", 0},
        {"a.test-", 0},
        {"127.0.0.1", 0},
        {"::1", 0},
        {"123.456", 0},
        {"bad[x].test", 0},
        {"sp ace.test", 0},
        {"a/b.test", 0},
        {"caf\xc3\xa9.test", 0},
        {"a.test.", 1},
        {"a\r\nb.test", 0},
    };

    (void) state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        assert_int_equal(dns_valid_hostname(rows[i].name), rows[i].ok);
    {
        char label[80];

        memset(label, 'a', 63);
        memcpy(label + 63, ".test", 6);
        assert_true(dns_valid_hostname(label));
        memset(label, 'a', 64);
        memcpy(label + 64, ".test", 6);
        assert_false(dns_valid_hostname(label));
    }
}

static void test_dns_server_parse_table(void **state)
{
    static const struct {
        const char *spec;
        int ok;
        unsigned port;
    } rows[] = {
        {"127.0.0.1", 0, 53},
        {"127.0.0.1:5353", 0, 5353},
        {"127.0.0.1:0", -1, 0},
        {"127.0.0.1:65536", -1, 0},
        {"127.0.0.1:", -1, 0},
        {"127.0.0.1:5x", -1, 0},
        {"example.test", -1, 0},
        {":53", -1, 0},
        {"", -1, 0},
        {"::1", -1, 0},
    };
    struct sockaddr_in sin;

    (void) state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        assert_int_equal(dns_server_parse(rows[i].spec, &sin), rows[i].ok);
        if (rows[i].ok == 0)
            assert_int_equal(ntohs(sin.sin_port), rows[i].port);
    }
}

/* A UDP server thread: sends a wrong-id reply first, then the right one. */
typedef struct udp_server {
    int fd;
    int silent;
} udp_server;

static void *udp_serve(void *arg)
{
    udp_server *u = arg;
    unsigned char q[512];
    struct sockaddr_storage peer;
    socklen_t pl = sizeof(peer);
    ssize_t n = recvfrom(u->fd, q, sizeof(q), 0, (struct sockaddr *) &peer, &pl);
    pkt p;
    char qname[DNS_NAME_SIZE];
    size_t next;

    if (n < 12 || u->silent)
        return NULL;
    if (dns_name_unpack(q, (size_t) n, 12, qname, sizeof(qname), &next) < 0)
        return NULL;
    start(&p, ((unsigned) q[0] << 8 | q[1]) ^ 0x5555, 0x8180, 1, qname, DNS_TYPE_A);
    rr_a(&p, "192.0.2.99");
    (void) sendto(u->fd, p.b, p.n, 0, (struct sockaddr *) &peer, pl);
    start(&p, (unsigned) q[0] << 8 | q[1], 0x8180, 1, qname, DNS_TYPE_A);
    rr_a(&p, "127.0.0.2");
    (void) sendto(u->fd, p.b, p.n, 0, (struct sockaddr *) &peer, pl);
    return NULL;
}

static void run_query(int silent, int *status, dns_answer *a, double *secs)
{
    udp_server u = {.silent = silent};
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    pthread_t t;
    struct timespec t0, t1;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    u.fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(u.fd >= 0);
    assert_int_equal(bind(u.fd, (struct sockaddr *) &sin, sizeof(sin)), 0);
    {
        struct timeval tv = {.tv_sec = 10};

        assert_int_equal(setsockopt(u.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    }
    assert_int_equal(getsockname(u.fd, (struct sockaddr *) &sin, &sl), 0);
    assert_int_equal(pthread_create(&t, NULL, udp_serve, &u), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    *status = dns_query(&sin, 2, "mail.example.test", DNS_TYPE_A, a);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *secs = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_int_equal(pthread_join(t, NULL), 0);
    close(u.fd);
}

static void test_dns_query_ignores_wrong_id_reply_and_times_out_on_silence(void **state)
{
    dns_answer a;
    int st;
    double secs;

    (void) state;
    run_query(0, &st, &a, &secs);
    assert_int_equal(st, DNS_OK);
    assert_int_equal(a.count, 1);
    assert_memory_equal(a.addrs[0], "\x7f\x00\x00\x02", 4);
    run_query(1, &st, &a, &secs);
    assert_int_equal(st, DNS_TEMP);
    assert_true(secs >= 1.5 && secs < 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dns_ptr_answer_with_compressed_owner_is_parsed),
        cmocka_unit_test(test_dns_a_and_aaaa_answers_give_addresses),
        cmocka_unit_test(test_dns_cname_chain_is_followed_rfc2317),
        cmocka_unit_test(test_dns_rcodes_and_empty_answers),
        cmocka_unit_test(test_dns_answer_to_another_question_is_refused),
        cmocka_unit_test(test_dns_truncation_at_every_length_is_refused),
        cmocka_unit_test(test_dns_compression_loops_and_forward_pointers_are_refused),
        cmocka_unit_test(test_dns_oversized_names_and_labels_are_refused),
        cmocka_unit_test(test_dns_unprintable_names_are_unusable),
        cmocka_unit_test(test_dns_bad_rdata_lengths_are_refused),
        cmocka_unit_test(test_dns_cname_loop_and_foreign_records),
        cmocka_unit_test(test_dns_reverse_names),
        cmocka_unit_test(test_dns_valid_hostname_table),
        cmocka_unit_test(test_dns_server_parse_table),
        cmocka_unit_test(test_dns_query_ignores_wrong_id_reply_and_times_out_on_silence),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
