/*
 * attr - the attribute protocol between Kite processes.
 *
 * A message is one frame: a 4-byte big-endian payload length (at most the
 * reader's limit, never more than ATTR_FRAME_MAX), then the payload, a
 * sequence of attributes:
 *
 *     type (1 byte: 's' string, 'i' 64-bit integer, 'd' data, 'f' fd)
 *     name length (2 bytes, big-endian, 1..255), name bytes ([a-z0-9_])
 *     value length (4 bytes, big-endian), value bytes
 *
 * Strings hold no NUL bytes; integers are 8 bytes, big-endian, signed; an
 * 'f' value is the 4-byte index of a descriptor passed with SCM_RIGHTS.
 * Names may repeat (a list of recipients is a run of "rcpt" attributes).
 * The reader checks every length against what is left of the frame and
 * rejects the whole frame on any inconsistency.
 *
 * Descriptors can only travel with attr_sendmsg()/attr_recvmsg(), which talk
 * to the socket directly; every other frame goes through a stream.
 *
 * A service greets each client with a frame {protocol = NAME}; clients check
 * it with attr_expect_greeting() before sending requests.
 */
#ifndef KITE_ATTR_H
#define KITE_ATTR_H

#include <stddef.h>

#include "stream.h"

#define ATTR_FRAME_MAX   (16 * 1024 * 1024)
#define ATTR_MAX_FDS     4

/* Status beyond stream.h's: a malformed frame. */
#define ATTR_BAD         (-20)

enum attr_type { ATTR_TYPE_STR = 's', ATTR_TYPE_INT = 'i', ATTR_TYPE_DATA = 'd', ATTR_TYPE_FD = 'f' };

typedef struct attr_list attr_list;

attr_list *attr_new(void);
void attr_free(attr_list *list);        /* closes received fds not taken */
void attr_clear(attr_list *list);

void attr_put_str(attr_list *list, const char *name, const char *value);
void attr_put_int(attr_list *list, const char *name, long long value);
void attr_put_data(attr_list *list, const char *name, const void *data, size_t len);
void attr_put_fd(attr_list *list, const char *name, int fd);    /* not owned */

size_t attr_count(const attr_list *list);
/* attr_nth - the i-th attribute; returns its type, or 0 past the end */
int attr_nth(const attr_list *list, size_t i, const char **name, const void **value, size_t *len);

/* First attribute with this name and type; NULL / -1 when absent. */
const char *attr_get_str(const attr_list *list, const char *name);
int attr_get_int(const attr_list *list, const char *name, long long *out);
const void *attr_get_data(const attr_list *list, const char *name, size_t *len);
int attr_take_fd(attr_list *list, const char *name);    /* caller owns it */

/*
 * Strict scanning: the reader lists what it expects. Every attribute in
 * the frame must match a spec by name and type; required ones must be
 * present; a name not flagged ATTR_REPEAT may appear once. On a mismatch
 * attr_scan logs a warning naming the attribute and returns -1.
 */
#define ATTR_REQUIRED 0
#define ATTR_OPTIONAL (1 << 0)
#define ATTR_REPEAT   (1 << 1)          /* no output pointer; use attr_nth */

typedef struct attr_spec {
    const char *name;
    int type;                           /* enum attr_type */
    int flags;
    void *out;                          /* const char **, long long *, attr_data * */
} attr_spec;

typedef struct attr_data {
    const void *data;
    size_t len;
} attr_data;

#define ATTR_SPEC_STR(n, f, p)  {(n), ATTR_TYPE_STR, (f), (p)}
#define ATTR_SPEC_INT(n, f, p)  {(n), ATTR_TYPE_INT, (f), (p)}
#define ATTR_SPEC_DATA(n, f, p) {(n), ATTR_TYPE_DATA, (f), (p)}
#define ATTR_SPEC_END           {NULL, 0, 0, NULL}
/* A descriptor: out (int *) gets its number; the list owns it until attr_take_fd. */
#define ATTR_SPEC_FD(n, f, p)   {(n), ATTR_TYPE_FD, (f), (p)}

int attr_scan(const attr_list *list, const attr_spec *specs);

/*
 * Frames over a stream (no descriptors). attr_write flushes. 0 or status.
 * attr_read replaces the list's content and reads a frame whole: use it on
 * a stream with a timeout (not 0), or bytes of a half-read frame are lost.
 */
int attr_write(stream *s, const attr_list *list);
int attr_read(stream *s, attr_list *list, size_t max_frame);

/*
 * Frames with descriptors, straight on a Unix stream socket. 0 or status.
 * timeout is in seconds; <= 0 waits as long as it takes.
 */
int attr_sendmsg(int sock, const attr_list *list, int timeout);
int attr_recvmsg(int sock, attr_list *list, size_t max_frame, int timeout);

/* Encode/decode a payload (no length prefix); for tests and fuzzing. attr_decode replaces the content. */
void attr_encode(const attr_list *list, vbuf *out);
int attr_decode(attr_list *list, const void *payload, size_t len);

/* Greeting. */
int attr_greet(stream *s, const char *protocol);
int attr_expect_greeting(stream *s, const char *protocol);

#endif
