/*
 * attr - the attribute protocol between Kite processes (see attr.h for the
 * wire format).
 *
 * Offers attribute lists, their encoding, strict decoding and scanning,
 * frames over a stream, and frames with descriptors (SCM_RIGHTS) straight on
 * a Unix stream socket.
 *
 * Trusts nothing it receives: every length is checked against what is left
 * of the frame before it is used, the frame length against the reader's
 * limit before anything is allocated, names and values against the format,
 * and descriptor indexes against the descriptors that actually arrived.
 * Descriptors that arrive without being handed out are closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "attr.h"
#include "msg.h"
#include "mymalloc.h"
#include "vbuf.h"

#define ATTR_NAME_MAX 255
#define ATTR_GREETING_MAX 4096

typedef struct attr_entry {
    int type;       /* enum attr_type */
    char *name;     /* NUL-terminated */
    char *value;    /* str/data: NUL-terminated copy */
    size_t len;     /* value length */
    long long ival; /* 'i' */
    int fd;         /* 'f': the descriptor, -1 when taken */
    int owned;      /* 'f': received, ours to close */
} attr_entry;

struct attr_list {
    attr_entry *v;
    size_t n, cap;
};

/* attr_new - an empty list */
attr_list *attr_new(void)
{
    return xcalloc(1, sizeof(attr_list));
}

/* attr_clear - drop every attribute, closing received descriptors not taken */
void attr_clear(attr_list *list)
{
    for (size_t i = 0; i < list->n; i++) {
        attr_entry *e = &list->v[i];

        if (e->type == ATTR_TYPE_FD && e->owned && e->fd >= 0)
            (void) close(e->fd);
        xfree(e->name);
        xfree(e->value);
    }
    list->n = 0;
}

/* attr_free - free the list */
void attr_free(attr_list *list)
{
    if (list == NULL)
        return;
    attr_clear(list);
    xfree(list->v);
    xfree(list);
}

/* attr_name_ok - 1..255 characters of [a-z0-9_] */
static int attr_name_ok(const char *name, size_t len)
{
    if (len < 1 || len > ATTR_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

/* attr_add - append an entry with a copy of name and value */
static attr_entry *attr_add(attr_list *list, int type, const char *name, size_t nlen, const void *value, size_t vlen)
{
    attr_entry *e;

    if (list->n == list->cap) {
        list->cap = list->cap ? size_mul(list->cap, 2) : 8;
        list->v = xreallocarray(list->v, list->cap, sizeof(attr_entry));
    }
    e = &list->v[list->n++];
    memset(e, 0, sizeof(*e));
    e->type = type;
    e->name = xstrndup(name, nlen);
    e->fd = -1;
    if (type == ATTR_TYPE_STR || type == ATTR_TYPE_DATA) {
        e->value = xmalloc(size_add(vlen, 1));
        if (vlen)
            memcpy(e->value, value, vlen);
        e->value[vlen] = 0;
        e->len = vlen;
    }
    return e;
}

/* attr_check_name - a sender's own name must be valid: a bug otherwise */
static size_t attr_check_name(const char *name)
{
    size_t len = strlen(name);

    if (!attr_name_ok(name, len))
        msg_panic("attr_put: invalid attribute name \"%.300s\"", name);
    return len;
}

/* attr_put_str - append a string attribute */
void attr_put_str(attr_list *list, const char *name, const char *value)
{
    attr_add(list, ATTR_TYPE_STR, name, attr_check_name(name), value, strlen(value));
}

/* attr_put_int - append an integer attribute */
void attr_put_int(attr_list *list, const char *name, long long value)
{
    attr_add(list, ATTR_TYPE_INT, name, attr_check_name(name), NULL, 0)->ival = value;
}

/* attr_put_data - append a data attribute (binary) */
void attr_put_data(attr_list *list, const char *name, const void *data, size_t len)
{
    if (len > ATTR_FRAME_MAX)
        msg_panic("attr_put_data: %zu bytes for \"%s\" exceed the frame limit", len, name);
    attr_add(list, ATTR_TYPE_DATA, name, attr_check_name(name), data, len);
}

/* attr_put_fd - append a descriptor for attr_sendmsg; the caller keeps it */
void attr_put_fd(attr_list *list, const char *name, int fd)
{
    attr_entry *e = attr_add(list, ATTR_TYPE_FD, name, attr_check_name(name), NULL, 0);

    if (fd < 0)
        msg_panic("attr_put_fd: invalid descriptor %d for \"%s\"", fd, name);
    e->fd = fd;
    e->owned = 0;
}

/* attr_count - number of attributes */
size_t attr_count(const attr_list *list)
{
    return list->n;
}

/*
 * attr_nth - the i-th attribute. The value is the string, the data, a
 * pointer to the long long, or a pointer to the int descriptor (-1 once
 * taken); len is its size in bytes.
 */
int attr_nth(const attr_list *list, size_t i, const char **name, const void **value, size_t *len)
{
    const attr_entry *e;

    if (i >= list->n)
        return 0;
    e = &list->v[i];
    if (name)
        *name = e->name;
    switch (e->type) {
    case ATTR_TYPE_INT:
        if (value)
            *value = &e->ival;
        if (len)
            *len = sizeof(e->ival);
        break;
    case ATTR_TYPE_FD:
        if (value)
            *value = &e->fd;
        if (len)
            *len = sizeof(e->fd);
        break;
    default:
        if (value)
            *value = e->value;
        if (len)
            *len = e->len;
        break;
    }
    return e->type;
}

/* attr_find - first entry with this name and type */
static attr_entry *attr_find(const attr_list *list, const char *name, int type)
{
    for (size_t i = 0; i < list->n; i++)
        if (list->v[i].type == type && strcmp(list->v[i].name, name) == 0)
            return &list->v[i];
    return NULL;
}

/* attr_get_str - first string of this name, or NULL */
const char *attr_get_str(const attr_list *list, const char *name)
{
    attr_entry *e = attr_find(list, name, ATTR_TYPE_STR);

    return e ? e->value : NULL;
}

/* attr_get_int - first integer of this name; 0, or -1 when absent */
int attr_get_int(const attr_list *list, const char *name, long long *out)
{
    attr_entry *e = attr_find(list, name, ATTR_TYPE_INT);

    if (e == NULL)
        return -1;
    *out = e->ival;
    return 0;
}

/* attr_get_data - first data of this name, or NULL */
const void *attr_get_data(const attr_list *list, const char *name, size_t *len)
{
    attr_entry *e = attr_find(list, name, ATTR_TYPE_DATA);

    if (e == NULL)
        return NULL;
    if (len)
        *len = e->len;
    return e->value;
}

/* attr_take_fd - hand out a descriptor (once); -1 when absent or taken */
int attr_take_fd(attr_list *list, const char *name)
{
    for (size_t i = 0; i < list->n; i++) {
        attr_entry *e = &list->v[i];

        if (e->type == ATTR_TYPE_FD && e->fd >= 0 && strcmp(e->name, name) == 0) {
            int fd = e->fd;

            e->fd = -1;
            e->owned = 0;
            return fd;
        }
    }
    return -1;
}

/* put_be - append an unsigned big-endian number of n bytes */
static void put_be(vbuf *out, uint64_t v, int n)
{
    unsigned char b[8];

    for (int i = n - 1; i >= 0; i--) {
        b[i] = (unsigned char) (v & 0xff);
        v >>= 8;
    }
    if (vbuf_append(out, b, (size_t) n) < 0)
        msg_fatal("attr_encode: frame exceeds the buffer limit");
}

/* get_be - read an unsigned big-endian number of n bytes */
static uint64_t get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;

    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* attr_encode_fds - encode, numbering descriptors in order; returns their count */
static int attr_encode_fds(const attr_list *list, vbuf *out, int *fds)
{
    int nfds = 0;

    vbuf_reset(out);
    for (size_t i = 0; i < list->n; i++) {
        const attr_entry *e = &list->v[i];
        size_t nlen = strlen(e->name);

        put_be(out, (uint64_t) e->type, 1);
        put_be(out, nlen, 2);
        if (vbuf_append(out, e->name, nlen) < 0)
            msg_fatal("attr_encode: frame exceeds the buffer limit");
        switch (e->type) {
        case ATTR_TYPE_INT:
            put_be(out, 8, 4);
            put_be(out, (uint64_t) e->ival, 8);
            break;
        case ATTR_TYPE_FD:
            if (e->fd < 0)
                msg_panic("attr_encode: descriptor \"%s\" was taken", e->name);
            if (fds == NULL)
                msg_panic("attr_encode: descriptor \"%s\" needs attr_sendmsg", e->name);
            if (nfds >= ATTR_MAX_FDS)
                msg_panic("attr_encode: more than %d descriptors", ATTR_MAX_FDS);
            fds[nfds] = e->fd;
            put_be(out, 4, 4);
            put_be(out, (uint64_t) nfds, 4);
            nfds++;
            break;
        default:
            put_be(out, e->len, 4);
            if (vbuf_append(out, e->value, e->len) < 0)
                msg_fatal("attr_encode: frame exceeds the buffer limit");
            break;
        }
    }
    return nfds;
}

/* attr_encode - the payload of a frame without descriptors */
void attr_encode(const attr_list *list, vbuf *out)
{
    (void) attr_encode_fds(list, out, NULL);
}

/*
 * attr_decode_fds - parse a payload strictly into list (replacing its
 * content). fds/nfds are the descriptors received with it; on success the
 * list owns those referenced, and the rest are closed. On failure all of
 * them are closed and the list is left empty. 0 or ATTR_BAD.
 */
static int attr_decode_fds(attr_list *list, const void *payload, size_t len, int *fds, int nfds)
{
    const unsigned char *p = payload;
    size_t left = len;
    unsigned used = 0; /* bit per descriptor index */
    const char *why = NULL;

    attr_clear(list);
    while (left > 0) {
        int type;
        size_t nlen, vlen;
        const char *name;
        const unsigned char *val;
        attr_entry *e;

        if (left < 3) {
            why = "truncated attribute header";
            break;
        }
        type = p[0];
        nlen = (size_t) get_be(p + 1, 2);
        p += 3;
        left -= 3;
        if (type != ATTR_TYPE_STR && type != ATTR_TYPE_INT && type != ATTR_TYPE_DATA && type != ATTR_TYPE_FD) {
            why = "unknown attribute type";
            break;
        }
        if (nlen > left) {
            why = "name length beyond the frame";
            break;
        }
        name = (const char *) p;
        if (!attr_name_ok(name, nlen)) {
            why = "invalid attribute name";
            break;
        }
        p += nlen;
        left -= nlen;
        if (left < 4) {
            why = "truncated value length";
            break;
        }
        vlen = (size_t) get_be(p, 4);
        p += 4;
        left -= 4;
        if (vlen > left) {
            why = "value length beyond the frame";
            break;
        }
        val = p;
        p += vlen;
        left -= vlen;
        switch (type) {
        case ATTR_TYPE_STR:
            if (memchr(val, 0, vlen) != NULL) {
                why = "NUL byte in a string value";
                break;
            }
            attr_add(list, type, name, nlen, val, vlen);
            break;
        case ATTR_TYPE_DATA:
            attr_add(list, type, name, nlen, val, vlen);
            break;
        case ATTR_TYPE_INT:
            if (vlen != 8) {
                why = "integer value not 8 bytes";
                break;
            }
            attr_add(list, type, name, nlen, NULL, 0)->ival = (long long) get_be(val, 8);
            break;
        case ATTR_TYPE_FD: {
            uint64_t idx;

            if (vlen != 4) {
                why = "descriptor index not 4 bytes";
                break;
            }
            idx = get_be(val, 4);
            if (idx >= (uint64_t) nfds) {
                why = "descriptor index beyond the descriptors received";
                break;
            }
            if (used & (1u << idx)) {
                why = "descriptor index used twice";
                break;
            }
            used |= 1u << idx;
            e = attr_add(list, type, name, nlen, NULL, 0);
            e->fd = fds[idx];
            e->owned = 1;
            break;
        }
        }
        if (why)
            break;
    }
    if (why) {
        /* Entries own their fds now; release those, then the unreferenced. */
        attr_clear(list);
        for (int i = 0; i < nfds; i++)
            if (!(used & (1u << i)))
                (void) close(fds[i]);
        msg_warn("attr_decode: malformed frame: %s at offset %zu of %zu", why, len - left, len);
        return ATTR_BAD;
    }
    for (int i = 0; i < nfds; i++)
        if (!(used & (1u << i)))
            (void) close(fds[i]);
    return 0;
}

/* attr_decode - parse a payload without descriptors; 0 or ATTR_BAD */
int attr_decode(attr_list *list, const void *payload, size_t len)
{
    return attr_decode_fds(list, payload, len, NULL, 0);
}

/* attr_type_name - for diagnostics */
static const char *attr_type_name(int type)
{
    switch (type) {
    case ATTR_TYPE_STR:
        return "string";
    case ATTR_TYPE_INT:
        return "integer";
    case ATTR_TYPE_DATA:
        return "data";
    case ATTR_TYPE_FD:
        return "descriptor";
    default:
        return "unknown";
    }
}

/*
 * attr_scan - check a list against the reader's specs (see attr.h). Outputs
 * of optional attributes that are absent are left untouched, so callers can
 * preset defaults. A descriptor spec's out (int *) gets the descriptor
 * number; the list keeps owning it until attr_take_fd.
 */
int attr_scan(const attr_list *list, const attr_spec *specs)
{
    size_t nspec = 0;
    unsigned char seen_small[32];
    unsigned char *seen;
    int ret = 0;

    while (specs[nspec].name)
        nspec++;
    seen = nspec <= sizeof(seen_small) ? seen_small : xcalloc(nspec, 1);
    memset(seen, 0, nspec <= sizeof(seen_small) ? sizeof(seen_small) : nspec);

    for (size_t i = 0; i < list->n && ret == 0; i++) {
        const attr_entry *e = &list->v[i];
        size_t k;

        for (k = 0; k < nspec; k++)
            if (strcmp(specs[k].name, e->name) == 0)
                break;
        if (k == nspec) {
            msg_warn("attr_scan: unexpected attribute \"%s\"", e->name);
            ret = -1;
            break;
        }
        if (specs[k].type != e->type) {
            msg_warn("attr_scan: attribute \"%s\" is %s, expected %s", e->name, attr_type_name(e->type),
                     attr_type_name(specs[k].type));
            ret = -1;
            break;
        }
        if (seen[k] && !(specs[k].flags & ATTR_REPEAT)) {
            msg_warn("attr_scan: attribute \"%s\" given more than once", e->name);
            ret = -1;
            break;
        }
        seen[k] = 1;
        if (specs[k].out == NULL || (specs[k].flags & ATTR_REPEAT))
            continue;
        switch (e->type) {
        case ATTR_TYPE_STR:
            *(const char **) specs[k].out = e->value;
            break;
        case ATTR_TYPE_INT:
            *(long long *) specs[k].out = e->ival;
            break;
        case ATTR_TYPE_DATA:
            ((attr_data *) specs[k].out)->data = e->value;
            ((attr_data *) specs[k].out)->len = e->len;
            break;
        case ATTR_TYPE_FD:
            *(int *) specs[k].out = e->fd;
            break;
        }
    }
    for (size_t k = 0; k < nspec && ret == 0; k++) {
        if (!seen[k] && !(specs[k].flags & ATTR_OPTIONAL)) {
            msg_warn("attr_scan: missing attribute \"%s\"", specs[k].name);
            ret = -1;
        }
    }
    if (seen != seen_small)
        xfree(seen);
    return ret;
}

/* attr_limit - the effective frame limit */
static size_t attr_limit(size_t max_frame)
{
    return max_frame == 0 || max_frame > ATTR_FRAME_MAX ? ATTR_FRAME_MAX : max_frame;
}

/* attr_write - one frame on a stream, flushed; 0 or status */
int attr_write(stream *s, const attr_list *list)
{
    vbuf frame;
    unsigned char hdr[4];
    size_t plen = 0;
    int st;

    vbuf_init(&frame, 0);
    attr_encode(list, &frame);
    plen = frame.len;
    if (plen > ATTR_FRAME_MAX) {
        msg_warn("attr_write: frame of %zu bytes exceeds %d", plen, ATTR_FRAME_MAX);
        vbuf_release(&frame);
        return STREAM_TOOBIG;
    }
    for (int i = 3; i >= 0; i--) {
        hdr[i] = (unsigned char) (plen & 0xff);
        plen >>= 8;
    }
    if ((st = stream_write(s, hdr, 4)) == 0 && (st = stream_write(s, frame.data, frame.len)) == 0)
        st = stream_flush(s);
    vbuf_release(&frame);
    return st;
}

/*
 * attr_read - one frame from a stream into list; 0, a stream status, or
 * ATTR_BAD. The length is checked against max_frame (0: ATTR_FRAME_MAX)
 * before the payload is read or memory is reserved for it.
 */
int attr_read(stream *s, attr_list *list, size_t max_frame)
{
    unsigned char hdr[4];
    size_t plen = 0;
    vbuf payload;
    int st;

    attr_clear(list);
    if ((st = stream_read_exact(s, hdr, 4)) < 0)
        return st;
    plen = (size_t) get_be(hdr, 4);
    if (plen > attr_limit(max_frame)) {
        msg_warn("attr_read: frame of %zu bytes exceeds the limit of %zu", plen, attr_limit(max_frame));
        return ATTR_BAD;
    }
    vbuf_init(&payload, plen);
    if (plen > 0 && (st = stream_read_vbuf(s, &payload, plen)) < 0) {
        vbuf_release(&payload);
        return st == STREAM_EOF ? ATTR_BAD : st;
    }
    st = attr_decode(list, payload.data, payload.len);
    vbuf_release(&payload);
    return st;
}

/* attr_now_ms - the monotonic clock in milliseconds */
static long long attr_now_ms(void)
{
    struct timespec ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* attr_poll - wait for events on sock until deadline (0: forever); 0 or status */
static int attr_poll(int sock, short events, long long deadline)
{
    struct pollfd pfd;

    for (;;) {
        int ms = -1;

        if (deadline) {
            long long left = deadline - attr_now_ms();

            if (left <= 0)
                return STREAM_TIMEOUT;
            ms = left > 0x7fffffff ? 0x7fffffff : (int) left;
        }
        pfd.fd = sock;
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

/* attr_deadline - absolute deadline for a timeout in seconds (<=0: none) */
static long long attr_deadline(int timeout)
{
    return timeout > 0 ? attr_now_ms() + (long long) timeout * 1000 : 0;
}

/*
 * attr_sendmsg - one frame with its descriptors on a Unix stream socket.
 * The descriptors travel with the first byte. timeout is in seconds; <= 0
 * waits as long as it takes. 0 or status.
 */
int attr_sendmsg(int sock, const attr_list *list, int timeout)
{
    vbuf frame;
    int fds[ATTR_MAX_FDS];
    int nfds;
    size_t off = 0, plen;
    long long deadline = attr_deadline(timeout);
    union {
        struct cmsghdr hdr;
        char buf[CMSG_SPACE(sizeof(int) * ATTR_MAX_FDS)];
    } cbuf;
    int st = 0;

    vbuf_init(&frame, 0);
    put_be(&frame, 0, 4); /* length, filled in below */
    {
        vbuf payload;

        vbuf_init(&payload, 0);
        nfds = attr_encode_fds(list, &payload, fds);
        if (payload.len > ATTR_FRAME_MAX) {
            msg_warn("attr_sendmsg: frame of %zu bytes exceeds %d", payload.len, ATTR_FRAME_MAX);
            vbuf_release(&payload);
            vbuf_release(&frame);
            return STREAM_TOOBIG;
        }
        plen = payload.len;
        if (vbuf_append(&frame, payload.data, payload.len) < 0)
            msg_fatal("attr_sendmsg: out of buffer space");
        vbuf_release(&payload);
    }
    for (int i = 3; i >= 0; i--) {
        frame.data[i] = (char) (plen & 0xff);
        plen >>= 8;
    }
    while (off < frame.len) {
        struct iovec iov;
        struct msghdr mh;
        ssize_t n;

        memset(&mh, 0, sizeof(mh));
        iov.iov_base = frame.data + off;
        iov.iov_len = frame.len - off;
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        if (off == 0 && nfds > 0) {
            struct cmsghdr *c;

            memset(&cbuf, 0, sizeof(cbuf));
            mh.msg_control = cbuf.buf;
            mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t) nfds);
            c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t) nfds);
            memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t) nfds);
        }
        n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            off += (size_t) n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if ((st = attr_poll(sock, POLLOUT, deadline)) < 0)
                break;
            continue;
        }
        msg_warn("attr_sendmsg: send: %m");
        st = STREAM_ERR;
        break;
    }
    vbuf_release(&frame);
    return st;
}

/*
 * attr_recv_some - receive up to len bytes, collecting descriptors into
 * fds and nfds. Returns bytes (>0), or a status: STREAM_EOF, STREAM_ERR,
 * STREAM_TIMEOUT, or ATTR_BAD for truncated or unexpected control data.
 */
static ssize_t attr_recv_some(int sock, void *buf, size_t len, int *fds, int *nfds, long long deadline)
{
    union {
        struct cmsghdr hdr;
        char buf[CMSG_SPACE(sizeof(int) * ATTR_MAX_FDS)];
    } cbuf;

    for (;;) {
        struct iovec iov;
        struct msghdr mh;
        ssize_t n;
        int bad = 0;

        memset(&mh, 0, sizeof(mh));
        iov.iov_base = buf;
        iov.iov_len = len;
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = cbuf.buf;
        mh.msg_controllen = sizeof(cbuf.buf);
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0) {
            int st;

            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if ((st = attr_poll(sock, POLLIN, deadline)) < 0)
                    return st;
                continue;
            }
            msg_warn("attr_recvmsg: recvmsg: %m");
            return STREAM_ERR;
        }
        /* Take every descriptor that arrived, so none can leak. */
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len >= CMSG_LEN(0)) {
                size_t cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                int tmp[ATTR_MAX_FDS];

                if (cnt > ATTR_MAX_FDS) /* cannot happen with our buffer */
                    cnt = ATTR_MAX_FDS;
                memcpy(tmp, CMSG_DATA(c), cnt * sizeof(int));
                for (size_t i = 0; i < cnt; i++) {
                    if (*nfds < ATTR_MAX_FDS)
                        fds[(*nfds)++] = tmp[i];
                    else {
                        (void) close(tmp[i]);
                        bad = 1;
                    }
                }
            } else {
                bad = 1;
            }
        }
        if (mh.msg_flags & MSG_CTRUNC) {
            msg_warn("attr_recvmsg: control data truncated (too many descriptors)");
            return ATTR_BAD;
        }
        if (bad) {
            msg_warn("attr_recvmsg: unexpected control data");
            return ATTR_BAD;
        }
        if (n == 0)
            return STREAM_EOF;
        return n;
    }
}

/* attr_recv_exact - receive exactly len bytes; 0 or status */
static int attr_recv_exact(int sock, void *buf, size_t len, int *fds, int *nfds, long long deadline)
{
    char *p = buf;

    while (len > 0) {
        ssize_t n = attr_recv_some(sock, p, len, fds, nfds, deadline);

        if (n < 0)
            return (int) n;
        p += n;
        len -= (size_t) n;
    }
    return 0;
}

/*
 * attr_recvmsg - one frame with descriptors from a Unix stream socket. The
 * descriptors arrive close-on-exec; any not referenced by an attribute, and
 * all of them when the frame is rejected, are closed. 0 or status.
 */
int attr_recvmsg(int sock, attr_list *list, size_t max_frame, int timeout)
{
    unsigned char hdr[4];
    int fds[ATTR_MAX_FDS];
    int nfds = 0;
    size_t plen = 0;
    char *payload;
    long long deadline = attr_deadline(timeout);
    int st;

    attr_clear(list);
    st = attr_recv_exact(sock, hdr, 4, fds, &nfds, deadline);
    if (st == 0) {
        plen = (size_t) get_be(hdr, 4);
        if (plen > attr_limit(max_frame)) {
            msg_warn("attr_recvmsg: frame of %zu bytes exceeds the limit of %zu", plen, attr_limit(max_frame));
            st = ATTR_BAD;
        }
    }
    if (st < 0) {
        for (int i = 0; i < nfds; i++)
            (void) close(fds[i]);
        return st;
    }
    payload = xmalloc(plen ? plen : 1);
    st = attr_recv_exact(sock, payload, plen, fds, &nfds, deadline);
    if (st < 0) {
        for (int i = 0; i < nfds; i++)
            (void) close(fds[i]);
        xfree(payload);
        return st == STREAM_EOF ? ATTR_BAD : st;
    }
    st = attr_decode_fds(list, payload, plen, fds, nfds);
    xfree(payload);
    return st;
}

/* attr_greet - a service's greeting {protocol = NAME} */
int attr_greet(stream *s, const char *protocol)
{
    attr_list *g = attr_new();
    int st;

    attr_put_str(g, "protocol", protocol);
    st = attr_write(s, g);
    attr_free(g);
    return st;
}

/* attr_expect_greeting - read the greeting and check the protocol name */
int attr_expect_greeting(stream *s, const char *protocol)
{
    attr_list *g = attr_new();
    const char *got = NULL;
    attr_spec spec[] = {ATTR_SPEC_STR("protocol", ATTR_REQUIRED, &got), ATTR_SPEC_END};
    int st;

    if ((st = attr_read(s, g, ATTR_GREETING_MAX)) < 0) {
        msg_warn("attr_expect_greeting: no %s greeting: %s", protocol,
                 st == ATTR_BAD ? "malformed frame" : stream_strerror(st));
    } else if (attr_scan(g, spec) < 0) {
        st = ATTR_BAD;
    } else if (strcmp(got, protocol) != 0) {
        msg_warn("attr_expect_greeting: expected protocol \"%s\", got \"%.100s\"", protocol, got);
        st = ATTR_BAD;
    }
    attr_free(g);
    return st;
}
