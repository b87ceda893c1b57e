/*
 * smtpd - the Kite SMTP server (master.cf: smtp inet n - y - - smtpd).
 *
 * A thin main: it opens tables, password maps and the TLS context before
 * the chroot, then hands control to multi_server_main(), which runs many
 * sessions per process on the event loop. This file is the glue between
 * the event loop and the protocol engine in proto.c: it has lookup.c name
 * the client (address, port, forward-confirmed reverse name) without
 * blocking the other sessions, asks anvil about the per-client limits
 * (anvil_client.c), arms the idle timer, and maps what
 * smtpd_run() wants (read, write, sleep, close) onto events.
 *
 * With -S the skeleton hands over a socket relayed from stdin/stdout
 * (sendmail -bs); the session is then a local submission.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "events.h"
#include "lookup.h"
#include "mail_server.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "smtpd.h"
#include "strutil.h"

static void session_drive(smtpd_session *s);
static void on_timeout(void *ctx);
static void on_wake(void *ctx);
static void on_queue(int fd, int events, void *ctx);

/* client_names - printable address, port and forward-confirmed name, as lookup.c settled them */
static int client_names(int fd, char *name, size_t nlen, char *addr, size_t alen, char *port, size_t plen)
{
    const smtpd_peer *peer = smtpd_peer_current(fd);

    snprintf(name, nlen, "%s", peer->name);
    snprintf(addr, alen, "%s", peer->addr);
    snprintf(port, plen, "%s", peer->port);
    return peer->standalone;
}

/*
 * drain - read what the client already sent, so that closing sends FIN
 * rather than RST (an RST can destroy our last reply in flight).
 */
static void drain(int fd)
{
    char buf[4096];
    int i;

    (void) shutdown(fd, SHUT_WR);
    for (i = 0; i < 16 && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0; i++)
        ;
}

/* session_close - log the summary, free everything, tell the skeleton */
static void session_close(smtpd_session *s)
{
    vbuf counts;
    int fd = s->fd;

    vbuf_init(&counts, 0);
    smtpd_count_line(s, &counts);
    msg_info("disconnect from %s%s", s->namaddr, vbuf_str(&counts));
    vbuf_release(&counts);
    smtpd_anvil_disconnect(s);
    if (s->queue_wait_fd >= 0)
        event_remove(s->queue_wait_fd); /* the queue connection closes below */
    event_timer_cancel(on_timeout, s);
    event_timer_cancel(on_wake, s);
    smtpd_session_free(s);
    drain(fd);
    multi_server_disconnect(fd);
}

/* on_timeout - RFC 5321 §4.5.3.2: the client said nothing for smtpd_timeout */
static void on_timeout(void *ctx)
{
    smtpd_session *s = ctx;

    smtpd_timeout(s);
    session_close(s);
}

/* on_io - the descriptor is ready */
static void on_io(int fd, int events, void *ctx)
{
    session_drive(ctx);
}

/* on_wake - a delay (greeting pause, error back-off, AUTH failure) is over */
static void on_wake(void *ctx)
{
    smtpd_session *s = ctx;

    s->sleep_ms = 0;
    session_drive(s);
}

/* on_queue - cleanup's verdict has arrived */
static void on_queue(int fd, int events, void *ctx)
{
    smtpd_session *s = ctx;

    event_remove(fd);
    smtpd_data_verdict(s);
    session_drive(s);
}

/* session_drive - run the engine and wait for what it wants */
static void session_drive(smtpd_session *s)
{
    int fd = s->fd;

    switch (smtpd_run(s)) {
    case SMTPD_WANT_READ:
        event_disable_write(fd);
        event_enable_read(fd, on_io, s);
        break;
    case SMTPD_WANT_WRITE:
        event_disable_read(fd);
        event_enable_write(fd, on_io, s);
        break;
    case SMTPD_WANT_QUEUE:
        event_disable_read(fd);
        event_disable_write(fd);
        event_enable_read(s->queue_wait_fd, on_queue, s);
        break;
    case SMTPD_WANT_SLEEP:
        event_disable_read(fd);
        event_disable_write(fd);
        event_timer_set(on_wake, s, s->sleep_ms);
        break;
    default:
        session_close(s);
        return;
    }
    event_timer_set(on_timeout, s, var_smtpd_timeout * 1000L);
}

/* smtpd_service - a new client connection */
static void smtpd_service(int fd, const char *service, char **argv)
{
    char name[NI_MAXHOST], addr[NI_MAXHOST], port[NI_MAXSERV];
    int standalone = client_names(fd, name, sizeof(name), addr, sizeof(addr), port, sizeof(port));
    smtpd_session *s;

    msg_info("connect from %s[%s]", name, addr);
    s = smtpd_session_new(fd, standalone, name, addr, port);
    s->name_status = smtpd_peer_current(fd)->status;
    s->reverse_name_status = smtpd_peer_current(fd)->reverse_status;
    if (!standalone && smtpd_anvil_connect(s)) {
        s->sleep_ms = 0;
        s->mode = SMTPD_MODE_QUIT;
    }
    session_drive(s);
}

/* smtpd_accept - a new client connection: name it without blocking, then serve it */
static void smtpd_accept(int fd, const char *service, char **argv)
{
    smtpd_peer_lookup(fd, service, argv, smtpd_service);
}

/* pre_jail - open tables, password maps and TLS keys while still privileged */
static void pre_jail(const char *service, char **argv)
{
    smtpd_check_init();
    smtpd_sasl_init();
    smtpd_lookup_init();
    smtpd_anvil_init();
    if (smtpd_tls_init() < 0 && var_smtpd_tls_security_level &&
        strcasecmp(var_smtpd_tls_security_level, "encrypt") == 0)
        msg_warn("smtpd_tls_security_level = encrypt but TLS is unavailable: mail will be refused");
}

/* main - hand over to the multi-client skeleton */
int main(int argc, char **argv)
{
    static const mail_server_hooks hooks = {.pre_jail = pre_jail};

    multi_server_main(argc, argv, smtpd_accept, &hooks);
}
