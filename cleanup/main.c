/*
 * cleanup - builds queue files: the service behind private/cleanup.
 *
 * For each client (smtpd, pickup, bounce) it creates the queue file at
 * once, greets with {protocol = "cleanup", queue_id = ID}, reads the
 * envelope frame, the content frames and "end" (cleanup_client.h), runs
 * the message through message.c and rewrite.c, and answers {status,
 * reason} only after the file is fsync'd and renamed into incoming/ (or
 * hold/). Then it nudges qmgr with {request = "incoming"} on public/qmgr;
 * qmgr scans incoming/ anyway, so a failed nudge loses nothing.
 *
 * Trusts: nothing the client sends. Frames are scanned strictly; envelope
 * attribute names and values, recipients and flags are checked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "attr.h"
#include "cleanup.h"
#include "conf.h"
#include "mail_queue.h"
#include "mail_server.h"
#include "msg.h"
#include "mymalloc.h"
#include "params.h"
#include "qfile.h"
#include "strutil.h"

#define CLEANUP_CONTENT_FRAME_MAX (2 * 1024 * 1024)
#define CLEANUP_KNOWN_FLAGS                                                                                            \
    (CLEANUP_FLAG_LOCAL | CLEANUP_FLAG_EXTRACT | CLEANUP_FLAG_BOUNCE | CLEANUP_FLAG_HOLD | CLEANUP_FLAG_NO_REWRITE)

static cleanup_maps cleanup_tables;
static qfile_writer *cleanup_current; /* removed if we die mid-message */

/* cleanup_remove_current - msg_fatal hook: no half-written file stays behind */
static void cleanup_remove_current(void)
{
    if (cleanup_current) {
        qfile_abort(cleanup_current);
        cleanup_current = NULL;
    }
}

/* cl_valid_text - no control characters that could break a record or a log line */
static int cl_valid_text(const char *s)
{
    for (; *s; s++)
        if (*s == '\r' || *s == '\n')
            return 0;
    return 1;
}

/* cl_valid_arrival - "sec" or "sec.usec" */
static int cl_valid_arrival(const char *s)
{
    size_t n = strspn(s, "0123456789");

    if (n == 0 || n > 15)
        return 0;
    if (s[n] == 0)
        return 1;
    return s[n] == '.' && strspn(s + n + 1, "0123456789") == strlen(s + n + 1) && strlen(s + n + 1) <= 6;
}

/* cl_envelope - write the envelope records (the output's first callback) */
static int cl_envelope(cleanup_state *st, void *ctx)
{
    qfile_writer *w = ctx;
    const char *arrival = cleanup_get_attr(st, "arrival");
    long dwt = conf_lookup_time("delay_warning_time", 0, 'h');
    struct timeval tv;
    char now[64];

    gettimeofday(&tv, NULL);
    snprintf(now, sizeof(now), "%lld.%06ld", (long long) tv.tv_sec, (long) tv.tv_usec);
    if (arrival == NULL || !cl_valid_arrival(arrival))
        arrival = now;
    if (qfile_put_attr(w, "arrival", arrival) < 0 || qfile_put_attr(w, "sender", st->sender ? st->sender : "") < 0)
        return -1;
    for (size_t i = 0; i < st->nattr; i++) {
        if (strcmp(st->attr_names[i], "arrival") == 0 || strcmp(st->attr_names[i], "sender") == 0)
            continue;
        if (qfile_put_attr(w, st->attr_names[i], st->attr_values[i]) < 0)
            return -1;
    }
    if (dwt > 0 && qfile_put_warn_time(w, (long long) strtoll(arrival, NULL, 10) + dwt) < 0)
        return -1;
    for (size_t i = 0; i < st->rcpts.n; i++) {
        const cleanup_recipient *r = st->rcpts.v + i;

        if (qfile_put_rcpt(w, r->addr, r->orcpt, r->orig, r->notify) < 0) {
            msg_warn("%s: cannot store recipient %.100s", st->queue_id, r->addr);
            return -1;
        }
    }
    return 0;
}

/* cl_content - write queued content (the output's second callback) */
static int cl_content(cleanup_state *st, const char *data, size_t len, void *ctx)
{
    (void) st;
    return qfile_put_content(ctx, data, len);
}

/* cl_reply - the verdict frame */
static void cl_reply(stream *client, int status, const char *reason)
{
    attr_list *r = attr_new();

    attr_put_int(r, "status", status);
    attr_put_str(r, "reason", reason);
    if (attr_write(client, r) < 0)
        msg_warn("cleanup: cannot send the reply: %s", reason);
    attr_free(r);
}

/* cl_read_envelope - the envelope frame into st; 0, or -1 (protocol error) */
static int cl_read_envelope(stream *client, cleanup_state *st, const char *id)
{
    attr_list *f = attr_new();
    const char *request = NULL;
    long long flags = 0;
    attr_spec spec[] = {ATTR_SPEC_STR("request", ATTR_REQUIRED, &request),
                        ATTR_SPEC_INT("flags", ATTR_REQUIRED, &flags),
                        ATTR_SPEC_STR("attr", ATTR_OPTIONAL | ATTR_REPEAT, NULL),
                        ATTR_SPEC_STR("rcpt", ATTR_OPTIONAL | ATTR_REPEAT, NULL),
                        ATTR_SPEC_STR("orcpt", ATTR_OPTIONAL | ATTR_REPEAT, NULL),
                        ATTR_SPEC_INT("notify", ATTR_OPTIONAL | ATTR_REPEAT, NULL),
                        ATTR_SPEC_END};
    const char **rcpt = NULL, **orcpt = NULL;
    long long *notify = NULL;
    size_t nr = 0, no = 0, nn = 0, n = attr_count(f);
    int st_read, ret = -1;

    if ((st_read = attr_read(client, f, ATTR_FRAME_MAX)) < 0) {
        if (st_read != STREAM_EOF)
            msg_warn("%s: bad envelope frame: %s", id, st_read == ATTR_BAD ? "malformed" : stream_strerror(st_read));
        goto out;
    }
    if (attr_scan(f, spec) < 0 || strcmp(request, "envelope") != 0) {
        msg_warn("%s: protocol error: expected the envelope", id);
        goto out;
    }
    if (flags & ~(long long) CLEANUP_KNOWN_FLAGS) {
        msg_warn("%s: unknown flags 0x%llx", id, flags);
        goto out;
    }
    st->flags = (int) flags;
    if (flags & CLEANUP_FLAG_HOLD)
        st->hold = 1;
    n = attr_count(f);
    rcpt = xcalloc(n + 1, sizeof(char *));
    orcpt = xcalloc(n + 1, sizeof(char *));
    notify = xcalloc(n + 1, sizeof(long long));
    for (size_t i = 0; i < n; i++) {
        const char *name;
        const void *value;
        size_t len;
        int type = attr_nth(f, i, &name, &value, &len);

        if (strcmp(name, "attr") == 0) {
            const char *eq = strchr(value, '=');
            char *an;

            if (eq == NULL || eq == (const char *) value || !cl_valid_text(value)) {
                msg_warn("%s: malformed envelope attribute ignored", id);
                continue;
            }
            an = xstrndup(value, (size_t) (eq - (const char *) value));
            if (strspn(an, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(an))
                msg_warn("%s: bad envelope attribute name \"%.50s\" ignored", id, an);
            else
                cleanup_add_attr(st, an, eq + 1);
            xfree(an);
        } else if (strcmp(name, "rcpt") == 0) {
            rcpt[nr++] = value;
        } else if (strcmp(name, "orcpt") == 0) {
            orcpt[no++] = value;
        } else if (strcmp(name, "notify") == 0 && type == ATTR_TYPE_INT) {
            long long v;

            memcpy(&v, value, sizeof(v)); /* attr_nth: a pointer to the long long */
            notify[nn++] = v;
        }
    }
    if (nr != no || nr != nn) {
        msg_warn("%s: protocol error: %zu recipients, %zu orcpts, %zu notify values", id, nr, no, nn);
        goto out;
    }
    for (size_t i = 0; i < nr; i++) {
        if (!cl_valid_text(rcpt[i]) || !cl_valid_text(orcpt[i]) || *rcpt[i] == 0 || notify[i] < 0 || notify[i] > 15) {
            msg_warn("%s: malformed recipient record", id);
            cleanup_set_status(st, CLEANUP_REJECT, "5.1.3 bad recipient address syntax");
            continue;
        }
        cleanup_add_rcpt(st, rcpt[i], orcpt[i], (int) notify[i]);
    }
    if (st->sender && !cl_valid_text(st->sender))
        cleanup_set_status(st, CLEANUP_REJECT, "5.1.7 bad sender address syntax");
    ret = 0;
out:
    xfree(rcpt);
    xfree(orcpt);
    xfree(notify);
    attr_free(f);
    return ret;
}

/* cleanup_service - one message from one client */
static void cleanup_service(stream *client, const char *service, char **argv)
{
    cleanup_output out = {cl_envelope, cl_content, NULL};
    cleanup_state st;
    qfile_writer *w;
    attr_list *f;
    vbuf err;
    char id[QUEUE_ID_SIZE];
    int ended = 0, queued = 0;

    (void) service;
    (void) argv;
    vbuf_init(&err, 0);
    stream_set_timeout(client, var_ipc_timeout > 0 ? (int) var_ipc_timeout : 3600);
    if ((w = qfile_create_reuse(MAIL_QUEUE_INCOMING, &err)) == NULL) {
        msg_warn("cannot create a queue file: %s", err.data);
        vbuf_release(&err);
        return; /* the client sees no greeting and defers */
    }
    cleanup_current = w;
    snprintf(id, sizeof(id), "%s", qfile_writer_id(w));
    f = attr_new();
    attr_put_str(f, "protocol", "cleanup");
    attr_put_str(f, "queue_id", id);
    if (attr_write(client, f) < 0) {
        attr_free(f);
        cleanup_remove_current();
        vbuf_release(&err);
        return;
    }
    out.ctx = w;
    cleanup_state_init(&st, id, 0, &cleanup_tables, &out);
    if (cl_read_envelope(client, &st, id) < 0) {
        attr_free(f);
        cleanup_state_free(&st);
        cleanup_remove_current();
        vbuf_release(&err);
        return;
    }
    for (;;) {
        const char *request = NULL;
        attr_data data = {NULL, 0};
        attr_spec spec[] = {ATTR_SPEC_STR("request", ATTR_REQUIRED, &request),
                            ATTR_SPEC_DATA("data", ATTR_OPTIONAL, &data), ATTR_SPEC_END};
        int rd;

        if ((rd = attr_read(client, f, CLEANUP_CONTENT_FRAME_MAX)) < 0) {
            if (rd != STREAM_EOF)
                msg_warn("%s: bad content frame: %s", id, rd == ATTR_BAD ? "malformed" : stream_strerror(rd));
            break;
        }
        if (attr_scan(f, spec) < 0) {
            msg_warn("%s: protocol error in content", id);
            break;
        }
        if (strcmp(request, "end") == 0) {
            ended = 1;
            break;
        }
        if (strcmp(request, "content") != 0 || data.data == NULL) {
            msg_warn("%s: protocol error: unexpected request \"%.50s\"", id, request);
            break;
        }
        cleanup_feed(&st, data.data, data.len);
    }
    attr_free(f);
    if (!ended) {
        /* The client went away or misbehaved: nothing is queued. */
        cleanup_state_free(&st);
        cleanup_remove_current();
        vbuf_release(&err);
        return;
    }
    cleanup_end(&st);
    if (st.status == CLEANUP_OK && st.discard) {
        cleanup_remove_current();
        cl_reply(client, CLEANUP_OK, id);
    } else if (st.status == CLEANUP_OK) {
        if (st.hold)
            qfile_writer_set_queue(w, MAIL_QUEUE_HOLD);
        cleanup_current = NULL;
        vbuf_reset(&err);
        if (qfile_finish(w, &err) < 0) {
            msg_warn("%s", err.data);
            cl_reply(client, CLEANUP_DEFER, "4.3.0 queue file write error");
        } else {
            queued = 1;
            cl_reply(client, CLEANUP_OK, id);
        }
    } else {
        cleanup_remove_current();
        cl_reply(client, st.status, st.reason.len ? st.reason.data : "4.3.0 internal error");
    }
    if (queued && !st.hold && mail_trigger("public/qmgr", "incoming") < 0 && msg_verbose)
        msg_info("%s: qmgr not reachable; it will find the message on its next scan", id);
    cleanup_state_free(&st);
    vbuf_release(&err);
}

/* cleanup_pre_jail - open the tables while files are still reachable */
static void cleanup_pre_jail(const char *service, char **argv)
{
    (void) service;
    (void) argv;
    cleanup_maps_open(&cleanup_tables);
    msg_set_cleanup(cleanup_remove_current);
}

/* cleanup_pre_exit - close the tables */
static void cleanup_pre_exit(void)
{
    cleanup_maps_close(&cleanup_tables);
}

int main(int argc, char **argv)
{
    static const mail_server_hooks hooks = {
        .pre_jail = cleanup_pre_jail,
        .pre_exit = cleanup_pre_exit,
    };

    single_server_main(argc, argv, cleanup_service, &hooks);
}
