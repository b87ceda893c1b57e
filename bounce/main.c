/*
 * bounce - the delivery status notification service (private/bounce).
 *
 * Greets with {protocol = "bounce"}, reads one request
 * {request = "bounce" | "delay" | "success" | "verify", queue_id, queue_name} and
 * answers {status = 0} once the notice is queued (or none was owed), or a
 * non-zero status when qmgr must ask again later. Runs as mail_owner in
 * queue_directory; trusts nothing in the request beyond its validation here.
 */
#include <string.h>

#include "attr.h"
#include "bounce.h"
#include "mail_server.h"
#include "msg.h"
#include "queue_id.h"
#include "stream.h"

/* bounce_queue_ok - queues a message can sit in while notices are owed */
static int bounce_queue_ok(const char *name)
{
    static const char *const ok[] = {"incoming", "active", "deferred", "hold"};

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (strcmp(name, ok[i]) == 0)
            return 1;
    return 0;
}

/* bounce_service - one client, one request, one reply */
static void bounce_service(stream *client, const char *service, char **argv)
{
    attr_list *req = attr_new(), *reply = attr_new();
    const char *kind = NULL, *queue_id = NULL, *queue_name = NULL;
    attr_spec specs[] = {
        ATTR_SPEC_STR("request", ATTR_REQUIRED, &kind),
        ATTR_SPEC_STR("queue_id", ATTR_REQUIRED, &queue_id),
        ATTR_SPEC_STR("queue_name", ATTR_REQUIRED, &queue_name),
        ATTR_SPEC_END,
    };
    int k, status;

    (void) service;
    (void) argv;
    if (attr_greet(client, "bounce") != 0 || attr_read(client, req, 4096) != 0)
        goto out;
    if (attr_scan(req, specs) != 0)
        goto out;
    if (strcmp(kind, "bounce") == 0)
        k = DSN_KIND_FAILURE;
    else if (strcmp(kind, "delay") == 0)
        k = DSN_KIND_DELAY;
    else if (strcmp(kind, "success") == 0)
        k = DSN_KIND_SUCCESS;
    else if (strcmp(kind, "verify") == 0)
        k = DSN_KIND_VERIFY;
    else {
        msg_warn("bounce: unknown request \"%.40s\"", kind);
        goto out;
    }
    if (!queue_id_valid(queue_id) || !bounce_queue_ok(queue_name)) {
        msg_warn("bounce: bad queue id or queue name in request");
        goto out;
    }
    status = bounce_notify(k, queue_name, queue_id);
    attr_put_int(reply, "status", status == 0 ? 0 : 1);
    if (attr_write(client, reply) != 0)
        msg_warn("%s: bounce: cannot send reply", queue_id);
out:
    attr_free(req);
    attr_free(reply);
}

int main(int argc, char **argv)
{
    static const mail_server_hooks hooks = {NULL, NULL, NULL, 0, 0};

    single_server_main(argc, argv, bounce_service, &hooks);
}
