/*
 * smtp - the SMTP/LMTP delivery agent.
 *
 * A single_server: qmgr connects to private/smtp (or relay, lmtp, ...),
 * the agent greets {protocol = "delivery"}, reads one request, delivers it
 * (proto.c) and reports per recipient. Tables and TLS keys are opened
 * before the privilege drop.
 */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "attr.h"
#include "deliver.h"
#include "mail_server.h"
#include "msg.h"
#include "smtp.h"
#include "smtp_auth.h"
#include "smtp_tls.h"

/* smtp_service - one qmgr connection: one delivery request */
static void smtp_service(stream *client, const char *service, char **argv)
{
    deliver_request req;

    (void) service;
    (void) argv;
    if (attr_greet(client, "delivery") < 0)
        return;
    if (deliver_request_read(client, &req) < 0)
        return;
    smtp_deliver(&req, client);
    deliver_request_free(&req);
}

/* pre_jail - open what needs privileges */
static void smtp_pre_jail(const char *service, char **argv)
{
    (void) service;
    (void) argv;
    srandom((unsigned) time(NULL) ^ (unsigned) getpid());
    smtp_auth_init();
    smtp_tls_init();
}

static void smtp_pre_exit(void)
{
    smtp_cache_close();
}

int main(int argc, char **argv)
{
    static const mail_server_hooks hooks = {
        .pre_jail = smtp_pre_jail,
        .pre_exit = smtp_pre_exit,
    };

    single_server_main(argc, argv, smtp_service, &hooks);
}
