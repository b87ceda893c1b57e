/*
 * stream - buffered I/O over a file descriptor, with deadlines and a
 * pluggable transport (plain fd by default; TLS slots in through
 * stream_set_transport).
 *
 * The descriptor is put in non-blocking mode; operations wait with poll()
 * up to the per-operation timeout and the absolute deadline, whichever comes
 * first. A timeout of 0 makes the stream non-blocking: operations that would
 * wait return STREAM_AGAIN (for event-driven servers).
 *
 * Line reading enforces a maximum length and reports how each line ended,
 * so protocol code can tell CRLF from a bare LF.
 */
#ifndef KITE_STREAM_H
#define KITE_STREAM_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "vbuf.h"

/* Status codes (negative); operations return >= 0 on success. */
#define STREAM_EOF     (-1)
#define STREAM_ERR     (-2)
#define STREAM_TIMEOUT (-3)
#define STREAM_AGAIN   (-4)
#define STREAM_TOOBIG  (-5)

/* How a line returned by stream_getline ended. */
#define STREAM_LINE_CRLF    (1 << 0)    /* "\r\n" */
#define STREAM_LINE_LF      (1 << 1)    /* bare "\n" (no CR before it) */
#define STREAM_LINE_NOEOL   (1 << 2)    /* EOF before any newline */
#define STREAM_LINE_TOOLONG (1 << 3)    /* maxlen reached; rest follows */

/*
 * A transport moves bytes for the stream. read/write return the byte count,
 * 0 for EOF (read), or -1 with errno set; with errno EAGAIN they store in
 * *want the poll events (POLLIN/POLLOUT) to wait for before trying again.
 * pending tells how many already-decrypted bytes the transport holds.
 */
typedef struct stream_transport {
    ssize_t (*read)(void *ctx, int fd, void *buf, size_t len, short *want);
    ssize_t (*write)(void *ctx, int fd, const void *buf, size_t len, short *want);
    size_t (*pending)(void *ctx);
} stream_transport;

typedef struct stream stream;

stream *stream_open(int fd);
void stream_close(stream *s);           /* free and close the fd */
void stream_free(stream *s);            /* free, leave the fd open */
int stream_fd(const stream *s);

void stream_set_timeout(stream *s, int seconds);    /* <0: wait forever */
void stream_set_deadline(stream *s, time_t when);   /* 0: none */
void stream_set_transport(stream *s, const stream_transport *t, void *ctx);
void *stream_transport_ctx(const stream *s);

/*
 * stream_getline - read one line into line (replacing its content), without
 * the terminator. At most maxlen bytes are stored; a longer line is returned
 * in pieces flagged STREAM_LINE_TOOLONG. Returns the stored length or a
 * negative status; *flags gets the STREAM_LINE_* bits.
 */
ssize_t stream_getline(stream *s, vbuf *line, size_t maxlen, int *flags);

ssize_t stream_read(stream *s, void *buf, size_t len);      /* >=1 byte, or status */
int stream_read_exact(stream *s, void *buf, size_t len);    /* 0 or status */
int stream_read_vbuf(stream *s, vbuf *b, size_t len);       /* append exactly len */
int stream_getc(stream *s);                                 /* byte or status */

int stream_write(stream *s, const void *data, size_t len);  /* buffered; 0 or status */
int stream_puts(stream *s, const char *str);
int stream_printf(stream *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int stream_flush(stream *s);                                /* 0 or status */
size_t stream_output_pending(const stream *s);

size_t stream_input_buffered(const stream *s);  /* includes transport's */
void stream_discard_input(stream *s);           /* drop buffered input */
int stream_wait_readable(stream *s);            /* 0 when input is there, or status */
const char *stream_strerror(int status);

#endif
