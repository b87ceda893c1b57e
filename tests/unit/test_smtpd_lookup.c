/*
 * Unit tests for smtpd's client naming (smtpd/lookup.c) on the real event
 * loop with real sockets and worker threads: a DNS server thread on
 * loopback answers (or stays silent), a TCP connection on 127.0.0.1 is the
 * client. Covered: forward-confirmed and forged names, server failure
 * (temporary) against NXDOMAIN (permanent), a timeout while the
 * worker is still busy (its late result must be dropped without touching
 * anything), a client that hangs up while waiting, lookups switched off,
 * the stand-alone (socketpair) session, and the system resolver naming
 * 127.0.0.1 from /etc/hosts.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
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

#include "../../smtpd/lookup.h"
#include "dns.h"
#include "events.h"
#include "params.h"

/* ---- a DNS server thread: PTR 127.0.0.1 -> ptr_name, A name -> a_addr ---- */

typedef struct dns_srv {
    int fd;
    int port;
    const char *ptr_name; /* NULL: stay silent */
    const char *a_addr;
    int rcode; /* nonzero: answer every question with this RCODE and no records */
    atomic_int stop;
    pthread_t thread;
} dns_srv;

static void put16(unsigned char *b, size_t *n, unsigned v)
{
    b[(*n)++] = (unsigned char) (v >> 8);
    b[(*n)++] = (unsigned char) v;
}

static void putname(unsigned char *b, size_t *n, const char *name)
{
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t l = dot ? (size_t) (dot - name) : strlen(name);

        b[(*n)++] = (unsigned char) l;
        memcpy(b + *n, name, l);
        *n += l;
        name += l + (dot != NULL);
    }
    b[(*n)++] = 0;
}

static void *dns_serve(void *arg)
{
    dns_srv *d = arg;

    while (!atomic_load(&d->stop)) {
        unsigned char q[512], r[512];
        struct sockaddr_in peer;
        socklen_t pl = sizeof(peer);
        ssize_t n = recvfrom(d->fd, q, sizeof(q), 0, (struct sockaddr *) &peer, &pl);
        char qname[DNS_NAME_SIZE];
        size_t next, rn = 0;
        unsigned qtype;

        if (n < 12 || d->ptr_name == NULL)
            continue;
        if (dns_name_unpack(q, (size_t) n, 12, qname, sizeof(qname), &next) != 0 || next + 4 > (size_t) n)
            continue;
        qtype = (unsigned) q[next] << 8 | q[next + 1];
        memcpy(r, q, next + 4);
        r[2] = 0x84;
        r[3] = (unsigned char) d->rcode;
        r[6] = 0;
        r[7] = d->rcode ? 0 : 1;
        r[8] = r[9] = r[10] = r[11] = 0;
        rn = next + 4;
        if (d->rcode) {
            (void) sendto(d->fd, r, rn, 0, (struct sockaddr *) &peer, pl);
            continue;
        }
        put16(r, &rn, 0xc00c);
        put16(r, &rn, qtype);
        put16(r, &rn, 1);
        put16(r, &rn, 0);
        put16(r, &rn, 60);
        if (qtype == DNS_TYPE_PTR) {
            size_t at = rn;

            rn += 2;
            putname(r, &rn, d->ptr_name);
            r[at] = 0;
            r[at + 1] = (unsigned char) (rn - at - 2);
        } else if (qtype == DNS_TYPE_A && strchr(d->a_addr, ':') == NULL) {
            put16(r, &rn, 4);
            if (inet_pton(AF_INET, d->a_addr, r + rn) != 1)
                continue;
            rn += 4;
        } else if (qtype == DNS_TYPE_AAAA && strchr(d->a_addr, ':') != NULL) {
            put16(r, &rn, 16);
            if (inet_pton(AF_INET6, d->a_addr, r + rn) != 1)
                continue;
            rn += 16;
        } else {
            continue;
        }
        (void) sendto(d->fd, r, rn, 0, (struct sockaddr *) &peer, pl);
    }
    return NULL;
}

static char resolver_spec[64];

static void dns_start(dns_srv *d, const char *ptr_name, const char *a_addr, int rcode)
{
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    struct timeval tv = {.tv_usec = 100000};

    memset(d, 0, sizeof(*d));
    atomic_init(&d->stop, 0);
    d->ptr_name = ptr_name;
    d->a_addr = a_addr;
    d->rcode = rcode;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    d->fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(d->fd >= 0);
    assert_int_equal(bind(d->fd, (struct sockaddr *) &sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(d->fd, (struct sockaddr *) &sin, &sl), 0);
    assert_int_equal(setsockopt(d->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    d->port = ntohs(sin.sin_port);
    snprintf(resolver_spec, sizeof(resolver_spec), "127.0.0.1:%d", d->port);
    var_smtpd_dns_resolver_address = resolver_spec;
    assert_int_equal(pthread_create(&d->thread, NULL, dns_serve, d), 0);
}

static void dns_stop(dns_srv *d)
{
    atomic_store(&d->stop, 1);
    assert_int_equal(pthread_join(d->thread, NULL), 0);
    close(d->fd);
    var_smtpd_dns_resolver_address = (char *) "";
}

/* ---- a TCP client on loopback; the server side is what smtpd would get ---- */

static int client_fd = -1;

static int tcp_pair(void)
{
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    int lfd = socket(AF_INET, SOCK_STREAM, 0), sfd;

    assert_true(lfd >= 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lfd, (struct sockaddr *) &sin, sizeof(sin)), 0);
    assert_int_equal(listen(lfd, 1), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *) &sin, &sl), 0);
    client_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(client_fd >= 0);
    assert_int_equal(connect(client_fd, (struct sockaddr *) &sin, sizeof(sin)), 0);
    sfd = accept(lfd, NULL, NULL);
    assert_true(sfd >= 0);
    close(lfd);
    return sfd;
}

/* tcp6_pair - the same over [::1]; -1 when IPv6 loopback is unavailable */
static int tcp6_pair(void)
{
    struct sockaddr_in6 sin6;
    socklen_t sl = sizeof(sin6);
    int lfd = socket(AF_INET6, SOCK_STREAM, 0), sfd;

    if (lfd < 0)
        return -1;
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_addr = in6addr_loopback;
    if (bind(lfd, (struct sockaddr *) &sin6, sizeof(sin6)) < 0) {
        close(lfd);
        return -1;
    }
    assert_int_equal(listen(lfd, 1), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *) &sin6, &sl), 0);
    client_fd = socket(AF_INET6, SOCK_STREAM, 0);
    assert_true(client_fd >= 0);
    assert_int_equal(connect(client_fd, (struct sockaddr *) &sin6, sizeof(sin6)), 0);
    sfd = accept(lfd, NULL, NULL);
    assert_true(sfd >= 0);
    close(lfd);
    return sfd;
}

/* ---- what the service function saw ---- */

static int called;
static smtpd_peer seen;

static void service(int fd, const char *svc, char **argv)
{
    (void) svc;
    (void) argv;
    called++;
    seen = *smtpd_peer_current(fd);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* run_until - run the event loop until the service was called (or secs pass); the elapsed time */
static double run_until(double secs)
{
    double t0 = now_s();

    while (!called && now_s() - t0 < secs)
        event_loop(100);
    return now_s() - t0;
}

static void run_for(double secs)
{
    double t0 = now_s();

    while (now_s() - t0 < secs)
        event_loop(100);
}

static int setup(void **state)
{
    (void) state;
    called = 0;
    memset(&seen, 0, sizeof(seen));
    var_smtpd_peername_lookup = 1;
    var_smtpd_peername_lookup_timeout = 1;
    var_smtpd_dns_resolver_address = (char *) "";
    return 0;
}

static int teardown(void **state)
{
    (void) state;
    if (client_fd >= 0)
        close(client_fd);
    client_fd = -1;
    return 0;
}

static void test_lookup_forward_confirmed_name(void **state)
{
    dns_srv d;
    int fd;

    (void) state;
    dns_start(&d, "mail.example.test", "127.0.0.1", 0);
    fd = tcp_pair();
    smtpd_peer_lookup(fd, "smtp", NULL, service);
    assert_int_equal(smtpd_peer_pending(), 1);
    run_until(5);
    assert_int_equal(called, 1);
    assert_int_equal(smtpd_peer_pending(), 0);
    assert_string_equal(seen.name, "mail.example.test");
    assert_string_equal(seen.addr, "127.0.0.1");
    assert_int_equal(seen.status, SMTPD_PEER_OK);
    assert_int_equal(seen.reverse_status, SMTPD_PEER_OK);
    assert_false(seen.standalone);
    assert_int_equal(smtpd_lookup_jobs(), 0);
    close(fd);
    dns_stop(&d);
}

static void test_lookup_ipv6_client_uses_ip6_arpa_and_aaaa(void **state)
{
    dns_srv d;
    int fd;

    (void) state;
    dns_start(&d, "six.example.test", "::1", 0);
    if ((fd = tcp6_pair()) < 0) {
        dns_stop(&d);
        skip();
    }
    smtpd_peer_lookup(fd, "smtp", NULL, service);
    run_until(5);
    assert_int_equal(called, 1);
    assert_string_equal(seen.addr, "::1");
    assert_string_equal(seen.name, "six.example.test");
    assert_int_equal(seen.status, SMTPD_PEER_OK);
    close(fd);
    dns_stop(&d);
}

static void test_lookup_forged_name_is_unknown(void **state)
{
    dns_srv d;
    int fd;

    (void) state;
    dns_start(&d, "forged.example.test", "192.0.2.1", 0);
    fd = tcp_pair();
    smtpd_peer_lookup(fd, "smtp", NULL, service);
    run_until(5);
    assert_int_equal(called, 1);
    assert_string_equal(seen.name, "unknown");
    assert_int_equal(seen.status, SMTPD_PEER_FORGED);
    assert_int_equal(seen.reverse_status, SMTPD_PEER_OK); /* the PTR name exists; only the A record differs */
    close(fd);
    dns_stop(&d);
}

static void test_lookup_server_failure_is_temporary_nxdomain_permanent(void **state)
{
    static const struct {
        int rcode;
        int status;
    } rows[] = {{2, SMTPD_PEER_TEMP}, {5, SMTPD_PEER_TEMP}, {3, SMTPD_PEER_PERM}};

    (void) state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        dns_srv d;
        int fd;

        called = 0;
        dns_start(&d, "mail.example.test", "127.0.0.1", rows[i].rcode);
        fd = tcp_pair();
        smtpd_peer_lookup(fd, "smtp", NULL, service);
        run_until(5);
        assert_int_equal(called, 1);
        assert_string_equal(seen.name, "unknown");
        assert_int_equal(seen.status, rows[i].status);
        assert_int_equal(seen.reverse_status, rows[i].status);
        close(fd);
        close(client_fd);
        client_fd = -1;
        dns_stop(&d);
    }
}

static void test_lookup_timeout_then_late_result_is_dropped(void **state)
{
    dns_srv d;
    double took;
    int fd;

    (void) state;
    dns_start(&d, NULL, NULL, 0); /* silent */
    fd = tcp_pair();
    smtpd_peer_lookup(fd, "smtp", NULL, service);
    took = run_until(5);
    assert_int_equal(called, 1);
    assert_true(took >= 0.9 && took < 3);
    assert_string_equal(seen.name, "unknown");
    assert_int_equal(seen.status, SMTPD_PEER_TEMP);
    assert_int_equal(seen.reverse_status, SMTPD_PEER_TEMP);
    assert_int_equal(smtpd_lookup_jobs(), 1); /* still with its worker */
    /* the worker gives up about 3 s in (two tries: 1 s, then 2 s) and hands the job back */
    run_for(3.5);
    assert_int_equal(called, 1);
    assert_int_equal(smtpd_lookup_jobs(), 0);
    close(fd);
    dns_stop(&d);
}

static void test_lookup_client_hangup_ends_the_wait(void **state)
{
    dns_srv d;
    double took;
    int fd;

    (void) state;
    var_smtpd_peername_lookup_timeout = 2; /* the worker's resolver gives up after 1 + 2 s */
    dns_start(&d, NULL, NULL, 0);
    fd = tcp_pair();
    smtpd_peer_lookup(fd, "smtp", NULL, service);
    event_loop(50);
    assert_int_equal(called, 0);
    close(client_fd);
    client_fd = -1;
    took = run_until(5);
    assert_int_equal(called, 1);
    assert_true(took < 1);
    assert_string_equal(seen.name, "unknown");
    assert_int_equal(smtpd_peer_pending(), 0);
    assert_int_equal(smtpd_lookup_jobs(), 1);
    run_for(3.5); /* the abandoned job comes back and is freed */
    assert_int_equal(called, 1);
    assert_int_equal(smtpd_lookup_jobs(), 0);
    close(fd);
    dns_stop(&d);
}

static void test_lookup_early_talker_still_waits_for_its_name(void **state)
{
    dns_srv d;
    int fd;

    (void) state;
    dns_start(&d, "mail.example.test", "127.0.0.1", 0);
    fd = tcp_pair();
    assert_int_equal(write(client_fd, "EHLO x\r\n", 8), 8);
    smtpd_peer_lookup(fd, "smtp", NULL, service);
    run_until(5);
    assert_int_equal(called, 1);
    assert_string_equal(seen.name, "mail.example.test");
    close(fd);
    dns_stop(&d);
}

static void test_lookup_off_and_standalone_are_immediate(void **state)
{
    int sv[2], fd;

    (void) state;
    var_smtpd_peername_lookup = 0;
    fd = tcp_pair();
    smtpd_peer_lookup(fd, "smtp", NULL, service);
    assert_int_equal(called, 1);
    assert_string_equal(seen.name, "unknown");
    assert_string_equal(seen.addr, "127.0.0.1");
    assert_int_equal(seen.status, SMTPD_PEER_PERM);
    assert_int_equal(seen.reverse_status, SMTPD_PEER_PERM);
    close(fd);

    var_smtpd_peername_lookup = 1;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    smtpd_peer_lookup(sv[0], "smtp", NULL, service);
    assert_int_equal(called, 2);
    assert_true(seen.standalone);
    assert_string_equal(seen.name, "localhost");
    assert_int_equal(seen.status, SMTPD_PEER_OK);
    assert_int_equal(seen.reverse_status, SMTPD_PEER_OK);
    close(sv[0]);
    close(sv[1]);
}

static void test_lookup_system_resolver_uses_hosts_file(void **state)
{
    FILE *fp = fopen("/etc/hosts", "r");
    char line[512];
    int listed = 0, fd;

    (void) state;
    if (fp) {
        while (fgets(line, sizeof(line), fp))
            if (strncmp(line, "127.0.0.1", 9) == 0 && strstr(line, "localhost") != NULL)
                listed = 1;
        fclose(fp);
    }
    if (!listed)
        skip();
    var_smtpd_peername_lookup_timeout = 10;
    fd = tcp_pair();
    smtpd_peer_lookup(fd, "smtp", NULL, service);
    run_until(10);
    assert_int_equal(called, 1);
    assert_string_equal(seen.name, "localhost");
    assert_int_equal(seen.status, SMTPD_PEER_OK);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lookup_forward_confirmed_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lookup_ipv6_client_uses_ip6_arpa_and_aaaa, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lookup_forged_name_is_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lookup_server_failure_is_temporary_nxdomain_permanent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lookup_timeout_then_late_result_is_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lookup_client_hangup_ends_the_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lookup_early_talker_still_waits_for_its_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lookup_off_and_standalone_are_immediate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lookup_system_resolver_uses_hosts_file, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
