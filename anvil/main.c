/*
 * anvil - the connection and rate counter service (master.cf:
 * anvil unix - - n - 1 anvil), so that smtpd's per-client limits hold
 * across all smtpd processes.
 *
 * A multi_server on private/anvil: each smtpd process keeps one
 * connection and sends requests on it (proto.c); the counts live in one
 * table (table.c). When a client's connection closes - the smtpd process
 * exited or was killed - every connection it registered is released.
 * Every anvil_status_update_time the largest counts and rates are logged
 * as Postfix's "statistics: max ..." lines (and once more on exit); idle
 * idents are forgotten once their rate windows are over.
 *
 * I/O never blocks: input is collected per client until a whole frame is
 * there, replies are queued and written when the socket takes them, and a
 * client that stops reading its replies is not read from until it does.
 *
 * Trusts: its clients only as far as proto.c checks them; one process
 * (maxproc 1), so the table is the truth.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "anvil.h"
#include "events.h"
#include "mail_server.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"

#define ANVIL_READ_CHUNK 4096
#define ANVIL_OUTPUT_HIGH (64 * 1024) /* stop reading a client past this */

typedef struct anvil_client {
    int fd;
    anvil_owner *owner;
    vbuf in;
    vbuf out;
} anvil_client;

static anvil_table *table;

static void client_read(int fd, int events, void *ctx);

/* client_close - release what the client held and hand the fd back */
static void client_close(anvil_client *c)
{
    if (msg_verbose)
        msg_info("anvil: client %d gone, releasing %ld connections", c->fd, anvil_owner_held(c->owner));
    anvil_owner_free(table, c->owner);
    vbuf_release(&c->in);
    vbuf_release(&c->out);
    multi_server_disconnect(c->fd);
    xfree(c);
}

/* client_flush - write queued replies; -1 when the client is gone */
static int client_flush(anvil_client *c)
{
    ssize_t n;

    while (c->out.len > 0) {
        n = write(c->fd, c->out.data, c->out.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0)
            return -1;
        memmove(c->out.data, c->out.data + n, c->out.len - (size_t) n);
        vbuf_truncate(&c->out, c->out.len - (size_t) n);
    }
    return 0;
}

/* client_wait - read when there is room for replies, write when replies wait */
static void client_wait(anvil_client *c)
{
    if (c->out.len > 0)
        event_enable_write(c->fd, client_read, c);
    else
        event_disable_write(c->fd);
    if (c->out.len < ANVIL_OUTPUT_HIGH)
        event_enable_read(c->fd, client_read, c);
    else
        event_disable_read(c->fd);
}

/* client_read - new input, or room to write: serve every whole request */
static void client_read(int fd, int events, void *ctx)
{
    anvil_client *c = ctx;
    char buf[ANVIL_READ_CHUNK];
    attr_list *req, *reply;
    ssize_t n;
    int got;

    if (client_flush(c) < 0) {
        client_close(c);
        return;
    }
    if ((events & (EVENT_READ | EVENT_ERROR)) && c->out.len < ANVIL_OUTPUT_HIGH) {
        do
            n = read(fd, buf, sizeof(buf));
        while (n < 0 && errno == EINTR);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            client_close(c);
            return;
        }
        if (n > 0)
            vbuf_append(&c->in, buf, (size_t) n);
    }
    req = attr_new();
    reply = attr_new();
    while (c->out.len < ANVIL_OUTPUT_HIGH && (got = anvil_frame_take(&c->in, req)) != 0) {
        if (got < 0) {
            attr_free(req);
            attr_free(reply);
            client_close(c);
            return;
        }
        anvil_request(table, c->owner, req, reply, event_now());
        anvil_frame_put(&c->out, reply);
    }
    attr_free(req);
    attr_free(reply);
    if (client_flush(c) < 0) {
        client_close(c);
        return;
    }
    client_wait(c);
}

/* anvil_service - a new client: greet it and wait for requests */
static void anvil_service(int fd, const char *service, char **argv)
{
    anvil_client *c = xcalloc(1, sizeof(*c));
    attr_list *greeting = attr_new();
    int flags;

    (void) service;
    (void) argv;
    c->fd = fd;
    c->owner = anvil_owner_new(table);
    vbuf_init(&c->in, 0);
    vbuf_init(&c->out, 0);
    if ((flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        msg_warn("anvil: client %d: non-blocking mode: %m", fd);
        attr_free(greeting);
        client_close(c);
        return;
    }
    attr_put_str(greeting, "protocol", ANVIL_PROTOCOL);
    anvil_frame_put(&c->out, greeting);
    attr_free(greeting);
    if (client_flush(c) < 0) {
        client_close(c);
        return;
    }
    client_wait(c);
}

/* log_stats - the maxima since the last report */
static void log_stats(void)
{
    anvil_stats st;

    anvil_stats_take(table, &st);
    anvil_stats_log(&st, var_anvil_rate_time_unit);
}

/* status_timer - anvil_status_update_time: report and start over */
static void status_timer(void *ctx)
{
    log_stats();
    event_timer_set(status_timer, ctx, var_anvil_status_update_time * 1000L);
}

/* expire_timer - forget idents whose rate windows are over */
static void expire_timer(void *ctx)
{
    size_t gone = anvil_expire(table, event_now());

    if (msg_verbose && gone)
        msg_info("anvil: expired %zu idents, %zu left", gone, anvil_table_size(table));
    event_timer_set(expire_timer, ctx, var_anvil_rate_time_unit * 1000L);
}

/* pre_jail - read the time zone while /etc/localtime is still reachable (chroot) */
static void pre_jail(const char *service, char **argv)
{
    (void) service;
    (void) argv;
    tzset();
}

/* post_jail - the table and the periodic timers */
static void post_jail(const char *service, char **argv)
{
    (void) service;
    (void) argv;
    table = anvil_table_new(var_anvil_rate_time_unit);
    event_timer_set(status_timer, NULL, var_anvil_status_update_time * 1000L);
    event_timer_set(expire_timer, NULL, var_anvil_rate_time_unit * 1000L);
}

/* pre_exit - one last statistics report */
static void pre_exit(void)
{
    if (table)
        log_stats();
}

/* main - hand over to the multi-client skeleton; anvil never recycles itself */
int main(int argc, char **argv)
{
    static const mail_server_hooks hooks = {
        .pre_jail = pre_jail, .post_jail = post_jail, .pre_exit = pre_exit, .unlimited = 1};

    multi_server_main(argc, argv, anvil_service, &hooks);
}
