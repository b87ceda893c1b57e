/*
 * stream - buffered I/O over a descriptor with deadlines and pluggable
 * transports (see stream.h). Trusts nothing about the peer: every read is
 * bounded by the caller's maximum and by the buffer size.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mymalloc.h"
#include "stream.h"

#define STREAM_IBUF 16384

struct stream {
    int fd;
    int timeout;                        /* seconds; <0 forever; 0 non-blocking */
    time_t deadline;                    /* absolute; 0 none */
    const stream_transport *tp;
    void *tp_ctx;
    char ibuf[STREAM_IBUF];
    size_t ipos, iend;
    vbuf obuf;
    vbuf pline;                         /* partial input line */
    size_t opos;                        /* bytes of obuf already written */
    int eof;
};

static ssize_t plain_read(void *ctx, int fd, void *buf, size_t len, short *want)
{
    ssize_t n;

    (void) ctx;
    do
        n = read(fd, buf, len);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        *want = POLLIN;
    return n;
}

static ssize_t plain_write(void *ctx, int fd, const void *buf, size_t len, short *want)
{
    ssize_t n;

    (void) ctx;
    do
        n = send(fd, buf, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == ENOTSOCK) {
        do
            n = write(fd, buf, len);
        while (n < 0 && errno == EINTR);
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        *want = POLLOUT;
    return n;
}

static const stream_transport plain_transport = {plain_read, plain_write, NULL};

/* stream_open - wrap a descriptor; it is made non-blocking */
stream *stream_open(int fd)
{
    stream *s = xcalloc(1, sizeof(*s));
    int fl = fcntl(fd, F_GETFL);

    if (fl >= 0 && !(fl & O_NONBLOCK))
        (void) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    s->fd = fd;
    s->timeout = 300;
    s->tp = &plain_transport;
    vbuf_init(&s->obuf, 0);
    vbuf_init(&s->pline, 0);
    return s;
}

void stream_free(stream *s)
{
    if (s) {
        vbuf_release(&s->obuf);
        vbuf_release(&s->pline);
        xfree(s);
    }
}

void stream_close(stream *s)
{
    if (s) {
        (void) close(s->fd);
        stream_free(s);
    }
}

int stream_fd(const stream *s)
{
    return s->fd;
}

void stream_set_timeout(stream *s, int seconds)
{
    s->timeout = seconds;
}

void stream_set_deadline(stream *s, time_t when)
{
    s->deadline = when;
}

void stream_set_transport(stream *s, const stream_transport *t, void *ctx)
{
    s->tp = t ? t : &plain_transport;
    s->tp_ctx = ctx;
}

void *stream_transport_ctx(const stream *s)
{
    return s->tp_ctx;
}

/* stream_wait - wait for events; 0, STREAM_TIMEOUT, STREAM_AGAIN or STREAM_ERR */
static int stream_wait(stream *s, short events)
{
    struct pollfd pfd;
    int ms;

    if (s->timeout == 0)
        return STREAM_AGAIN;
    for (;;) {
        ms = s->timeout < 0 ? -1 : s->timeout * 1000;
        if (s->deadline) {
            time_t now = time(NULL);
            long left = (long) (s->deadline - now);

            if (left <= 0)
                return STREAM_TIMEOUT;
            if (left > INT_MAX / 1000)
                left = INT_MAX / 1000;          /* poll's int milliseconds */
            if (ms < 0 || left * 1000 < ms)
                ms = (int) (left * 1000);
        }
        pfd.fd = s->fd;
        pfd.events = events;
        pfd.revents = 0;
        switch (poll(&pfd, 1, ms)) {
        case -1:
            if (errno == EINTR)
                continue;
            return STREAM_ERR;
        case 0:
            return STREAM_TIMEOUT;
        default:
            return 0;
        }
    }
}

/* stream_fill - read more input into the buffer; >0, or a status */
static ssize_t stream_fill(stream *s)
{
    ssize_t n;
    short want;
    int st;

    if (s->ipos == s->iend)
        s->ipos = s->iend = 0;
    else if (s->iend == sizeof(s->ibuf) && s->ipos > 0) {
        memmove(s->ibuf, s->ibuf + s->ipos, s->iend - s->ipos);
        s->iend -= s->ipos;
        s->ipos = 0;
    }
    if (s->iend == sizeof(s->ibuf))
        return STREAM_TOOBIG;
    if (s->eof)
        return STREAM_EOF;
    for (;;) {
        want = POLLIN;
        n = s->tp->read(s->tp_ctx, s->fd, s->ibuf + s->iend, sizeof(s->ibuf) - s->iend, &want);
        if (n > 0) {
            s->iend += (size_t) n;
            return n;
        }
        if (n == 0) {
            s->eof = 1;
            return STREAM_EOF;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return STREAM_ERR;
        if ((st = stream_wait(s, want)) < 0)
            return st;
    }
}

/*
 * stream_getline - see stream.h. The partial line lives in the stream (pline)
 * until its terminator arrives, so a non-blocking caller loses nothing when
 * the read returns STREAM_AGAIN half-way through a line. One byte beyond
 * maxlen is held back so that a CR right before the LF is recognised.
 */
ssize_t stream_getline(stream *s, vbuf *line, size_t maxlen, int *flags)
{
    ssize_t n;

    *flags = 0;
    for (;;) {
        char *start = s->ibuf + s->ipos;
        size_t avail = s->iend - s->ipos;
        char *nl = memchr(start, '\n', avail);
        size_t take = nl ? (size_t) (nl - start) : avail;
        size_t room = s->pline.len <= maxlen ? maxlen + 1 - s->pline.len : 0;

        if (take > room) {
            take = room;
            nl = NULL;
        }
        if (take && vbuf_append(&s->pline, start, take) < 0)
            return STREAM_TOOBIG;
        s->ipos += take;
        if (nl) {
            s->ipos++;                          /* the LF */
            if (s->pline.len > 0 && s->pline.data[s->pline.len - 1] == '\r') {
                vbuf_truncate(&s->pline, s->pline.len - 1);
                *flags |= STREAM_LINE_CRLF;
            } else {
                *flags |= STREAM_LINE_LF;
            }
            if (s->pline.len <= maxlen) {
                vbuf_setn(line, s->pline.data, s->pline.len);
                vbuf_reset(&s->pline);
                return (ssize_t) line->len;
            }
            /* maxlen + 1 bytes and no CR: give back the LF, split below. */
            s->ipos--;
            *flags = 0;
        }
        if (s->pline.len > maxlen) {
            *flags |= STREAM_LINE_TOOLONG;
            vbuf_setn(line, s->pline.data, maxlen);
            memmove(s->pline.data, s->pline.data + maxlen, s->pline.len - maxlen);
            vbuf_truncate(&s->pline, s->pline.len - maxlen);
            return (ssize_t) line->len;
        }
        n = stream_fill(s);
        if (n == STREAM_EOF) {
            if (s->pline.len == 0)
                return STREAM_EOF;
            *flags |= STREAM_LINE_NOEOL;
            vbuf_setn(line, s->pline.data, s->pline.len);
            vbuf_reset(&s->pline);
            return (ssize_t) line->len;
        }
        if (n < 0)
            return n;
    }
}

ssize_t stream_read(stream *s, void *buf, size_t len)
{
    size_t avail;
    ssize_t n;

    if (len == 0)
        return 0;
    if (s->pline.len > 0) {             /* left over from a split line */
        avail = s->pline.len < len ? s->pline.len : len;
        memcpy(buf, s->pline.data, avail);
        memmove(s->pline.data, s->pline.data + avail, s->pline.len - avail);
        vbuf_truncate(&s->pline, s->pline.len - avail);
        return (ssize_t) avail;
    }
    if (s->ipos == s->iend && (n = stream_fill(s)) < 0)
        return n;
    avail = s->iend - s->ipos;
    if (avail > len)
        avail = len;
    memcpy(buf, s->ibuf + s->ipos, avail);
    s->ipos += avail;
    return (ssize_t) avail;
}

int stream_read_exact(stream *s, void *buf, size_t len)
{
    char *p = buf;

    while (len > 0) {
        ssize_t n = stream_read(s, p, len);

        if (n < 0)
            return (int) n;
        p += n;
        len -= (size_t) n;
    }
    return 0;
}

int stream_read_vbuf(stream *s, vbuf *b, size_t len)
{
    while (len > 0) {
        ssize_t n;
        size_t avail;

        if (s->pline.len > 0) {
            char tmp[256];

            n = stream_read(s, tmp, len < sizeof(tmp) ? len : sizeof(tmp));
            if (vbuf_append(b, tmp, (size_t) n) < 0)
                return STREAM_TOOBIG;
            len -= (size_t) n;
            continue;
        }
        if (s->ipos == s->iend && (n = stream_fill(s)) < 0)
            return (int) n;
        avail = s->iend - s->ipos;
        if (avail > len)
            avail = len;
        if (vbuf_append(b, s->ibuf + s->ipos, avail) < 0)
            return STREAM_TOOBIG;
        s->ipos += avail;
        len -= avail;
    }
    return 0;
}

int stream_getc(stream *s)
{
    unsigned char c;
    ssize_t n = stream_read(s, &c, 1);

    return n < 0 ? (int) n : c;
}

int stream_write(stream *s, const void *data, size_t len)
{
    if (vbuf_append(&s->obuf, data, len) < 0)
        return STREAM_TOOBIG;
    if (s->obuf.len - s->opos >= 65536)
        return stream_flush(s);
    return 0;
}

int stream_puts(stream *s, const char *str)
{
    return stream_write(s, str, strlen(str));
}

int stream_printf(stream *s, const char *fmt, ...)
{
    va_list ap;
    int ret;

    va_start(ap, fmt);
    ret = vbuf_vprintf(&s->obuf, fmt, ap);
    va_end(ap);
    if (ret < 0)
        return STREAM_TOOBIG;
    if (s->obuf.len - s->opos >= 65536)
        return stream_flush(s);
    return 0;
}

int stream_flush(stream *s)
{
    while (s->opos < s->obuf.len) {
        short want = POLLOUT;
        ssize_t n = s->tp->write(s->tp_ctx, s->fd, s->obuf.data + s->opos, s->obuf.len - s->opos, &want);
        int st;

        if (n > 0) {
            s->opos += (size_t) n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if ((st = stream_wait(s, want)) < 0)
                return st;
            continue;
        }
        return STREAM_ERR;
    }
    vbuf_reset(&s->obuf);
    s->opos = 0;
    return 0;
}

size_t stream_output_pending(const stream *s)
{
    return s->obuf.len - s->opos;
}

size_t stream_input_buffered(const stream *s)
{
    size_t n = s->iend - s->ipos + s->pline.len;

    if (s->tp->pending)
        n += s->tp->pending(s->tp_ctx);
    return n;
}

void stream_discard_input(stream *s)
{
    s->ipos = s->iend = 0;
    vbuf_reset(&s->pline);
}

int stream_wait_readable(stream *s)
{
    if (stream_input_buffered(s) > 0)
        return 0;
    return stream_wait(s, POLLIN);
}

const char *stream_strerror(int status)
{
    switch (status) {
    case STREAM_EOF:
        return "lost connection";
    case STREAM_ERR:
        return "I/O error";
    case STREAM_TIMEOUT:
        return "timeout";
    case STREAM_AGAIN:
        return "would block";
    case STREAM_TOOBIG:
        return "too much data";
    default:
        return status >= 0 ? "success" : "unknown error";
    }
}
