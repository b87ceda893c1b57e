/*
 * cleanup_client - hand a message to the cleanup service (cleanup_client.h).
 *
 * The conversation, one attribute frame each:
 *   cleanup -> client  {protocol = "cleanup", queue_id = ID}
 *   client -> cleanup  {request = "envelope", flags, attr* ("name=value"),
 *                       rcpt*, orcpt* ("" = none), notify*}   (parallel runs)
 *   client -> cleanup  {request = "content", data}   any number
 *   client -> cleanup  {request = "end"}
 *   cleanup -> client  {status = CLEANUP_*, reason}
 * The envelope goes out when the first content arrives (or at the end), so
 * callers may add attributes and recipients in any order before that.
 *
 * Trusts: nothing in cleanup's frames beyond their declared types; the
 * queue ID in the greeting is checked with queue_id_valid().
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "attr.h"
#include "cleanup_client.h"
#include "mail_server.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "stream.h"

#define CLEANUP_CLIENT_CHUNK (64 * 1024)
#define CLEANUP_REPLY_MAX (64 * 1024)

struct cleanup_client {
    stream *s;
    char id[QUEUE_ID_SIZE];
    int flags;
    char **attrs; /* "name=value" */
    size_t nattr;
    char **rcpt, **orcpt;
    int *notify;
    size_t nrcpt;
    int envelope_sent;
    int failed;
    vbuf chunk; /* content not yet sent */
};

/* cleanup_open - connect to cleanup and read its greeting */
cleanup_client *cleanup_open(const char *service_path, int flags, vbuf *err)
{
    cleanup_client *c;
    attr_list *g;
    const char *proto = NULL, *id = NULL;
    attr_spec spec[] = {ATTR_SPEC_STR("protocol", ATTR_REQUIRED, &proto), ATTR_SPEC_STR("queue_id", ATTR_REQUIRED, &id),
                        ATTR_SPEC_END};
    int fd, st;

    if ((fd = mail_server_connect(service_path, 30)) < 0 && errno == ENOENT &&
        strncmp(service_path, "private/", 8) == 0) {
        /* master.cf may publish cleanup as a public service (private = n). */
        vbuf pub;

        vbuf_init(&pub, 0);
        vbuf_printf(&pub, "public/%s", service_path + 8);
        fd = mail_server_connect(pub.data, 30);
        vbuf_release(&pub);
    }
    if (fd < 0) {
        vbuf_printf(err, "connect to %s: %s", service_path, strerror(errno));
        return NULL;
    }
    c = xcalloc(1, sizeof(*c));
    c->s = stream_open(fd);
    stream_set_timeout(c->s, var_ipc_timeout > 0 ? (int) var_ipc_timeout : 3600);
    c->flags = flags;
    g = attr_new();
    if ((st = attr_read(c->s, g, CLEANUP_REPLY_MAX)) < 0) {
        vbuf_printf(err, "%s: no greeting: %s", service_path, st == ATTR_BAD ? "malformed frame" : stream_strerror(st));
    } else if (attr_scan(g, spec) < 0 || strcmp(proto, "cleanup") != 0 || !queue_id_valid(id)) {
        vbuf_printf(err, "%s: bad greeting", service_path);
        st = -1;
    } else {
        memcpy(c->id, id, QUEUE_ID_SIZE);
    }
    attr_free(g);
    if (st < 0) {
        stream_close(c->s);
        xfree(c);
        return NULL;
    }
    vbuf_init(&c->chunk, 0);
    return c;
}

/* cleanup_queue_id - the queue ID cleanup assigned */
const char *cleanup_queue_id(const cleanup_client *c)
{
    return c->id;
}

/* cleanup_attr - add an envelope attribute (sender, client_name, ...) */
void cleanup_attr(cleanup_client *c, const char *name, const char *value)
{
    vbuf pair;

    if (c->envelope_sent) {
        msg_warn("cleanup_attr: %s after the content; ignored", name);
        return;
    }
    vbuf_init(&pair, 0);
    vbuf_printf(&pair, "%s=%s", name, value);
    c->attrs = xreallocarray(c->attrs, c->nattr + 1, sizeof(char *));
    c->attrs[c->nattr++] = vbuf_steal(&pair);
    vbuf_release(&pair);
}

/* cleanup_rcpt - add a recipient with its DSN ORCPT (or NULL) and NOTIFY */
void cleanup_rcpt(cleanup_client *c, const char *address, const char *orcpt, int notify)
{
    if (c->envelope_sent) {
        msg_warn("cleanup_rcpt: recipient after the content; ignored");
        return;
    }
    c->rcpt = xreallocarray(c->rcpt, c->nrcpt + 1, sizeof(char *));
    c->orcpt = xreallocarray(c->orcpt, c->nrcpt + 1, sizeof(char *));
    c->notify = xreallocarray(c->notify, c->nrcpt + 1, sizeof(int));
    c->rcpt[c->nrcpt] = xstrdup(address);
    c->orcpt[c->nrcpt] = xstrdup(orcpt ? orcpt : "");
    c->notify[c->nrcpt] = notify;
    c->nrcpt++;
}

/* cc_write - send one frame; remembers failure */
static int cc_write(cleanup_client *c, attr_list *f)
{
    int st;

    if (c->failed)
        return -1;
    if ((st = attr_write(c->s, f)) < 0) {
        msg_warn("cleanup %s: write: %s", c->id, stream_strerror(st));
        c->failed = 1;
        return -1;
    }
    return 0;
}

/* cc_send_envelope - the envelope frame, once */
static int cc_send_envelope(cleanup_client *c)
{
    attr_list *f;
    int ret;

    if (c->envelope_sent)
        return c->failed ? -1 : 0;
    c->envelope_sent = 1;
    f = attr_new();
    attr_put_str(f, "request", "envelope");
    attr_put_int(f, "flags", c->flags);
    for (size_t i = 0; i < c->nattr; i++)
        attr_put_str(f, "attr", c->attrs[i]);
    for (size_t i = 0; i < c->nrcpt; i++)
        attr_put_str(f, "rcpt", c->rcpt[i]);
    for (size_t i = 0; i < c->nrcpt; i++)
        attr_put_str(f, "orcpt", c->orcpt[i]);
    for (size_t i = 0; i < c->nrcpt; i++)
        attr_put_int(f, "notify", c->notify[i]);
    ret = cc_write(c, f);
    attr_free(f);
    return ret;
}

/* cc_send_chunk - send the buffered content */
static int cc_send_chunk(cleanup_client *c)
{
    attr_list *f;
    int ret;

    if (c->chunk.len == 0)
        return c->failed ? -1 : 0;
    f = attr_new();
    attr_put_str(f, "request", "content");
    attr_put_data(f, "data", c->chunk.data, c->chunk.len);
    ret = cc_write(c, f);
    attr_free(f);
    vbuf_reset(&c->chunk);
    return ret;
}

/* cleanup_content - content as received; buffered into frames */
int cleanup_content(cleanup_client *c, const void *data, size_t len)
{
    const char *p = data;

    if (cc_send_envelope(c) < 0)
        return -1;
    while (len > 0) {
        size_t room = CLEANUP_CLIENT_CHUNK - c->chunk.len;
        size_t n = len < room ? len : room;

        vbuf_append(&c->chunk, p, n);
        p += n;
        len -= n;
        if (c->chunk.len >= CLEANUP_CLIENT_CHUNK && cc_send_chunk(c) < 0)
            return -1;
    }
    return 0;
}

/* cc_free - release the client and close the connection */
static void cc_free(cleanup_client *c)
{
    for (size_t i = 0; i < c->nattr; i++)
        xfree(c->attrs[i]);
    for (size_t i = 0; i < c->nrcpt; i++) {
        xfree(c->rcpt[i]);
        xfree(c->orcpt[i]);
    }
    xfree(c->attrs);
    xfree(c->rcpt);
    xfree(c->orcpt);
    xfree(c->notify);
    vbuf_release(&c->chunk);
    stream_close(c->s);
    xfree(c);
}

/* cleanup_finish - end the message and wait for cleanup's verdict */
int cleanup_finish(cleanup_client *c, vbuf *reason)
{
    cleanup_send_end(c);
    return cleanup_verdict(c, reason);
}

/* cleanup_send_end - send what is left and "end" without waiting for the verdict */
int cleanup_send_end(cleanup_client *c)
{
    attr_list *f;

    if (c->failed || cc_send_envelope(c) < 0 || cc_send_chunk(c) < 0) {
        c->failed = 1;
        return -1;
    }
    f = attr_new();
    attr_put_str(f, "request", "end");
    if (cc_write(c, f) < 0)
        c->failed = 1;
    attr_free(f);
    return c->failed ? -1 : 0;
}

/* cleanup_verdict_fd - the descriptor the verdict arrives on */
int cleanup_verdict_fd(const cleanup_client *c)
{
    return stream_fd(c->s);
}

/* cleanup_verdict - read the verdict after cleanup_send_end; frees the client */
int cleanup_verdict(cleanup_client *c, vbuf *reason)
{
    attr_list *f;
    long long status = CLEANUP_DEFER;
    const char *text = NULL;
    attr_spec spec[] = {ATTR_SPEC_INT("status", ATTR_REQUIRED, &status), ATTR_SPEC_STR("reason", ATTR_REQUIRED, &text),
                        ATTR_SPEC_END};
    int st, ret = CLEANUP_DEFER;

    vbuf_reset(reason);
    if (c->failed) {
        vbuf_set(reason, "4.3.0 queue file write error (cleanup service unavailable)");
        cc_free(c);
        return CLEANUP_DEFER;
    }
    f = attr_new();
    if ((st = attr_read(c->s, f, CLEANUP_REPLY_MAX)) < 0) {
        msg_warn("cleanup %s: no reply: %s", c->id, st == ATTR_BAD ? "malformed frame" : stream_strerror(st));
        vbuf_set(reason, "4.3.0 queue file write error (no reply from cleanup)");
    } else if (attr_scan(f, spec) < 0 ||
               (status != CLEANUP_OK && status != CLEANUP_DEFER && status != CLEANUP_REJECT)) {
        vbuf_set(reason, "4.3.0 queue file write error (bad reply from cleanup)");
    } else {
        ret = (int) status;
        vbuf_set(reason, text);
    }
    attr_free(f);
    cc_free(c);
    return ret;
}

/* cleanup_abort - close without "end": cleanup removes its file */
void cleanup_abort(cleanup_client *c)
{
    cc_free(c);
}
