/*
 * copy - the message as a delivery writes it: Return-Path and
 * Delivered-To prepended, CRLF turned into LF for files and commands, and
 * for mbox a "From " line, >From quoting of body lines and an empty line
 * after the message. Also finds the Delivered-To: headers already present
 * (mail loop detection) and offers a buffered, size-limited file writer.
 *
 * Trusts: nothing in the content; lines of any length and bare CRs pass
 * through unchanged.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "local.h"
#include "mymalloc.h"
#include "qfile.h"
#include "strutil.h"
#include "vbuf.h"

/* Copy state: output and the part of a line seen so far. */
typedef struct copy_state {
    local_out_fn out;
    void *ctx;
    int flags;
    vbuf line;
    int err;
} copy_state;

/* copy_emit - one complete line (with its LF, or CRLF when not converting) */
static void copy_emit(copy_state *cs, const char *data, size_t len, int has_lf)
{
    const char *eol = (cs->flags & LOCAL_COPY_LF) ? "\n" : "\r\n";

    if (cs->err)
        return;
    if (has_lf) {
        /* Drop the line terminator; it is written back in the wanted form. */
        len--;
        if (len > 0 && data[len - 1] == '\r')
            len--;
    }
    /* mbox: a body line starting with "From " would start a new message. */
    if ((cs->flags & LOCAL_COPY_FROM_LINE) && len >= 5 && memcmp(data, "From ", 5) == 0 &&
        cs->out(cs->ctx, ">", 1) != 0)
        cs->err = 1;
    if (!cs->err && len > 0 && cs->out(cs->ctx, data, len) != 0)
        cs->err = 1;
    if (!cs->err && cs->out(cs->ctx, eol, strlen(eol)) != 0)
        cs->err = 1;
}

/* local_copy - write the message from SRC to OUT in the form FLAGS ask for; 0 or -1 */
int local_copy(local_src_fn src, void *src_ctx, const char *sender, const char *delivered_to, time_t when, int flags,
               local_out_fn out, void *out_ctx)
{
    copy_state cs = {out, out_ctx, flags, {0}, 0};
    const char *eol = (flags & LOCAL_COPY_LF) ? "\n" : "\r\n";
    const char *data;
    ssize_t n = 0;
    vbuf hdr;

    vbuf_init(&cs.line, 0);
    vbuf_init(&hdr, 0);
    if (flags & LOCAL_COPY_FROM_LINE) {
        char date[32];
        struct tm tm;

        /* The traditional mbox separator: "From sender  ctime-date". */
        if (localtime_r(&when, &tm) == NULL || strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm) == 0)
            (void) snprintf(date, sizeof(date), "Thu Jan  1 00:00:00 1970");
        (void) vbuf_printf(&hdr, "From %s  %s%s", *sender ? sender : "MAILER-DAEMON", date, eol);
    }
    /* RFC 5321 §4.4: the final delivery records the envelope sender. */
    if (flags & LOCAL_COPY_RETURN_PATH)
        (void) vbuf_printf(&hdr, "Return-Path: <%s>%s", sender, eol);
    if ((flags & LOCAL_COPY_DELIVERED) && delivered_to)
        (void) vbuf_printf(&hdr, "Delivered-To: %s%s", delivered_to, eol);
    if (hdr.len && out(out_ctx, hdr.data, hdr.len) != 0)
        cs.err = 1;
    while (!cs.err && (n = src(src_ctx, &data)) > 0) {
        size_t pos = 0;

        while (pos < (size_t) n) {
            const char *nl = memchr(data + pos, '\n', (size_t) n - pos);
            size_t take = nl ? (size_t) (nl - (data + pos)) + 1 : (size_t) n - pos;

            if (nl && cs.line.len == 0) {
                copy_emit(&cs, data + pos, take, 1); /* fast path: whole line in the chunk */
            } else {
                (void) vbuf_append(&cs.line, data + pos, take);
                if (nl) {
                    copy_emit(&cs, cs.line.data, cs.line.len, 1);
                    vbuf_reset(&cs.line);
                }
            }
            pos += take;
        }
    }
    if (n < 0)
        cs.err = 1;
    if (!cs.err && cs.line.len > 0)
        copy_emit(&cs, cs.line.data, cs.line.len, 0);
    if (!cs.err && (flags & LOCAL_COPY_FROM_LINE) && out(out_ctx, eol, strlen(eol)) != 0)
        cs.err = 1;
    vbuf_release(&cs.line);
    vbuf_release(&hdr);
    return cs.err ? -1 : 0;
}

/* copy_qfile_next - content chunks straight from the queue file */
static ssize_t copy_qfile_next(void *ctx, const char **data)
{
    return qfile_content_next((qfile_content *) ctx, data);
}

/* local_copy_msg - local_copy with the request's queue file as the source */
int local_copy_msg(local_msg *m, const char *sender, const char *delivered_to, int flags, local_out_fn out,
                   void *out_ctx)
{
    qfile_content it;
    int ret;

    qfile_content_begin(m->q, &it);
    ret = local_copy(copy_qfile_next, &it, sender, delivered_to, time(NULL), flags, out, out_ctx);
    qfile_content_end(&it);
    return ret;
}

/* copy_add_delivered - one Delivered-To: value, trimmed and lowercased */
static void copy_add_delivered(const char *value, size_t len, char ***list, size_t *count)
{
    char *v = xstrndup(value, len);
    char *t = str_trim(v);

    for (char *p = t; *p; p++)
        if (*p == '\r' || *p == '\n' || *p == '\t')
            *p = ' ';
    t = str_trim(t);
    str_lower(t);
    if (*t) {
        *list = xreallocarray(*list, *count + 1, sizeof(**list));
        (*list)[(*count)++] = xstrdup(t);
    }
    xfree(v);
}

/* local_scan_delivered_to - collect the Delivered-To: header values (lowercased); count */
int local_scan_delivered_to(local_src_fn src, void *src_ctx, char ***list, size_t *count)
{
    vbuf hdr; /* the header, up to its empty line, max 1 MB */
    const char *data;
    ssize_t n;
    size_t start;
    int done = 0;

    *list = NULL;
    *count = 0;
    vbuf_init(&hdr, 1024 * 1024);
    while (!done && (n = src(src_ctx, &data)) > 0) {
        if (vbuf_append(&hdr, data, (size_t) n) != 0)
            break;
        if (strstr(hdr.data, "\n\r\n") || strstr(hdr.data, "\n\n") || hdr.data[0] == '\n' ||
            (hdr.data[0] == '\r' && hdr.data[1] == '\n'))
            done = 1;
    }
    /* Walk logical header lines (RFC 5322 §2.2.3: folding lines start with WSP). */
    start = 0;
    while (start < hdr.len) {
        size_t end = start;

        if (hdr.data[start] == '\n' || (hdr.data[start] == '\r' && start + 1 < hdr.len && hdr.data[start + 1] == '\n'))
            break; /* the empty line */
        for (;;) {
            char *nl = memchr(hdr.data + end, '\n', hdr.len - end);

            if (nl == NULL) {
                end = hdr.len;
                break;
            }
            end = (size_t) (nl - hdr.data) + 1;
            if (end >= hdr.len || (hdr.data[end] != ' ' && hdr.data[end] != '\t'))
                break;
        }
        if (end - start > 13 && strncasecmp(hdr.data + start, "Delivered-To:", 13) == 0)
            copy_add_delivered(hdr.data + start + 13, end - start - 13, list, count);
        start = end;
    }
    vbuf_release(&hdr);
    return (int) *count;
}

/* local_delivered_to_seen - the message already passed through ADDR (a loop) */
int local_delivered_to_seen(const local_msg *m, const char *addr)
{
    for (size_t i = 0; i < m->ndelivered_to; i++)
        if (str_case_eq(m->delivered_to[i], addr))
            return 1;
    return 0;
}

/* local_fdout_init - a buffered writer on FD that refuses to grow past LIMIT bytes */
void local_fdout_init(local_fdout *o, int fd, long long limit)
{
    o->fd = fd;
    vbuf_init(&o->buf, 0);
    o->written = 0;
    o->limit = limit;
    o->err = 0;
}

/* local_fdout_flush - write out what is buffered; 0 or -1 (errno in err) */
int local_fdout_flush(local_fdout *o)
{
    size_t off = 0;

    while (!o->err && off < o->buf.len) {
        ssize_t n = write(o->fd, o->buf.data + off, o->buf.len - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            o->err = n < 0 ? errno : EIO;
        else
            off += (size_t) n;
    }
    vbuf_reset(&o->buf);
    return o->err ? -1 : 0;
}

/* local_fdout_write - local_out_fn for a local_fdout */
int local_fdout_write(void *ctx, const void *data, size_t len)
{
    local_fdout *o = ctx;

    if (o->err)
        return -1;
    if (o->limit > 0 && o->written + (long long) len > o->limit) {
        o->err = EFBIG;
        return -1;
    }
    o->written += (long long) len;
    (void) vbuf_append(&o->buf, data, len);
    if (o->buf.len >= 65536)
        return local_fdout_flush(o);
    return 0;
}

/* local_fdout_release - free the writer's buffer (the descriptor stays open) */
void local_fdout_release(local_fdout *o)
{
    vbuf_release(&o->buf);
}
