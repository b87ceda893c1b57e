/*
 * testd - a small daemon built on the mail_server skeleton, for master's
 * integration tests. The first master.cf argument picks its shape:
 *
 *   echo     single_server: greets "hello pid=P uid=U service=S", then
 *            echoes each line back until "quit" or EOF
 *   multi    multi_server: same protocol, many clients per process
 *   trigger  trigger_server: logs "testd: SERVICE request=NAME"
 *   fail     exits with an error before serving anybody (crash loop)
 *   root     like echo, but keeps root when master.cf says unpriv=n
 *   echo also understands "kick PATH" (mail_trigger(PATH, "kicked")),
 *   "env NAME" (the variable's value or "-") and "cwd" (the directory)
 *
 * Trusts nothing from clients: lines are bounded.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "attr.h"
#include "events.h"
#include "mail_server.h"
#include "msg.h"
#include "stream.h"
#include "vbuf.h"

#define LINE_MAX_LEN 1024

/* greeting - who serves this client */
static void greeting(vbuf *out, const char *service)
{
    vbuf_printf(out, "hello pid=%ld uid=%ld service=%s\r\n", (long) getpid(), (long) getuid(), service);
}

/* echo_service - single_server: greet, then echo lines */
static void echo_service(stream *client, const char *service, char **argv)
{
    vbuf line, hello;
    int flags;

    (void) argv;
    vbuf_init(&line, 0);
    vbuf_init(&hello, 0);
    greeting(&hello, service);
    stream_set_timeout(client, 60);
    if (stream_puts(client, vbuf_str(&hello)) < 0 || stream_flush(client) < 0)
        goto done;
    msg_info("testd: connect on %s", service);
    while (stream_getline(client, &line, LINE_MAX_LEN, &flags) >= 0) {
        if (strcmp(vbuf_str(&line), "quit") == 0)
            break;
        if (strcmp(vbuf_str(&line), "sleep") == 0) {
            sleep(2);
            continue;
        }
        if (strncmp(vbuf_str(&line), "kick ", 5) == 0) {
            int ok = mail_trigger(vbuf_str(&line) + 5, "kicked") == 0;

            if (stream_printf(client, "%s\r\n", ok ? "ok" : "failed") < 0 || stream_flush(client) < 0)
                break;
            continue;
        }
        if (strncmp(vbuf_str(&line), "env ", 4) == 0) {
            const char *v = getenv(vbuf_str(&line) + 4);

            if (stream_printf(client, "%s\r\n", v ? v : "-") < 0 || stream_flush(client) < 0)
                break;
            continue;
        }
        if (strcmp(vbuf_str(&line), "cwd") == 0) {
            char cwd[4096];

            if (getcwd(cwd, sizeof(cwd)) == NULL)
                snprintf(cwd, sizeof(cwd), "?");
            if (stream_printf(client, "%s\r\n", cwd) < 0 || stream_flush(client) < 0)
                break;
            continue;
        }
        if (stream_printf(client, "%s\r\n", vbuf_str(&line)) < 0 || stream_flush(client) < 0)
            break;
    }
done:
    vbuf_release(&line);
    vbuf_release(&hello);
}

/* multi_read - multi_server: echo what a client sent */
static void multi_read(int fd, int events, void *ctx)
{
    char buf[LINE_MAX_LEN];
    ssize_t n;

    (void) events;
    (void) ctx;
    n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0 || (n >= 4 && memcmp(buf, "quit", 4) == 0)) {
        multi_server_disconnect(fd);
        return;
    }
    if (send(fd, buf, (size_t) n, MSG_NOSIGNAL) != n)
        multi_server_disconnect(fd);
}

/* multi_service - multi_server: greet and watch the client */
static void multi_service(int fd, const char *service, char **argv)
{
    vbuf hello;

    (void) argv;
    vbuf_init(&hello, 0);
    greeting(&hello, service);
    if (send(fd, vbuf_str(&hello), hello.len, MSG_NOSIGNAL) != (ssize_t) hello.len) {
        vbuf_release(&hello);
        multi_server_disconnect(fd);
        return;
    }
    vbuf_release(&hello);
    event_enable_read(fd, multi_read, NULL);
}

/* trigger_service - log the request */
static void trigger_service(stream *client, attr_list *req, const char *service, char **argv)
{
    (void) client;
    (void) argv;
    msg_info("testd: %s request=%s", service, attr_get_str(req, "request"));
}

/* fail_post_jail - a command that cannot start */
static void fail_post_jail(const char *service, char **argv)
{
    (void) argv;
    msg_fatal("testd: %s: deliberate startup failure", service);
}

/* main - pick the skeleton by the first master.cf argument */
int main(int argc, char **argv)
{
    static const mail_server_hooks fail_hooks = {.post_jail = fail_post_jail};
    static const mail_server_hooks root_hooks = {.keep_root = 1};
    const char *mode = "echo";

    /* The mode is the first argument after the skeleton's options. */
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] != '-') {
            if (i > 1 &&
                (strcmp(argv[i - 1], "-n") == 0 || strcmp(argv[i - 1], "-t") == 0 || strcmp(argv[i - 1], "-c") == 0 ||
                 strcmp(argv[i - 1], "-o") == 0 || strcmp(argv[i - 1], "-s") == 0))
                continue;
            mode = argv[i];
            break;
        }
    }
    if (strcmp(mode, "multi") == 0)
        multi_server_main(argc, argv, multi_service, NULL);
    if (strcmp(mode, "trigger") == 0)
        trigger_server_main(argc, argv, trigger_service, NULL);
    if (strcmp(mode, "fail") == 0)
        single_server_main(argc, argv, echo_service, &fail_hooks);
    if (strcmp(mode, "root") == 0)
        single_server_main(argc, argv, echo_service, &root_hooks);
    single_server_main(argc, argv, echo_service, NULL);
}
