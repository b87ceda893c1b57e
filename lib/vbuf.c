/*
 * vbuf - growable bounded string buffers (see vbuf.h).
 * Trusts nothing about lengths: every size computation is overflow-checked,
 * and no append ever writes past the allocation or the buffer's limit.
 */
#include <stdio.h>
#include <stdint.h>
#include <string.h>

#include "mymalloc.h"
#include "vbuf.h"

#define VBUF_MIN_CAP 16

/* vbuf_init - set up an empty buffer with a content limit (0 = none) */
void vbuf_init(vbuf *b, size_t limit)
{
    b->cap = VBUF_MIN_CAP;
    b->data = xmalloc(b->cap);
    b->data[0] = 0;
    b->len = 0;
    b->limit = limit ? limit : SIZE_MAX / 2;
}

/* vbuf_new - allocate and initialize a buffer */
vbuf *vbuf_new(size_t limit)
{
    vbuf *b = xmalloc(sizeof(*b));

    vbuf_init(b, limit);
    return b;
}

/* vbuf_release - free a buffer's storage (vbuf_init counterpart) */
void vbuf_release(vbuf *b)
{
    xfree(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* vbuf_free - free a buffer made by vbuf_new */
void vbuf_free(vbuf *b)
{
    if (b) {
        vbuf_release(b);
        xfree(b);
    }
}

/* vbuf_reset - make the buffer empty, keeping its storage */
void vbuf_reset(vbuf *b)
{
    b->len = 0;
    b->data[0] = 0;
}

/* vbuf_truncate - shorten the content to len (no-op if already shorter) */
void vbuf_truncate(vbuf *b, size_t len)
{
    if (len < b->len) {
        b->len = len;
        b->data[len] = 0;
    }
}

/* vbuf_reserve - make room for extra bytes plus the terminator; -1 past limit */
int vbuf_reserve(vbuf *b, size_t extra)
{
    size_t need;

    if (extra > b->limit || b->len > b->limit - extra)
        return -1;
    need = b->len + extra + 1;
    if (need > b->cap) {
        size_t cap = b->cap;

        while (cap < need)
            cap = (cap > SIZE_MAX / 2) ? need : cap * 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    return 0;
}

/* vbuf_append - append len bytes; -1 (buffer unchanged) past the limit */
int vbuf_append(vbuf *b, const void *data, size_t len)
{
    if (vbuf_reserve(b, len) < 0)
        return -1;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = 0;
    return 0;
}

int vbuf_puts(vbuf *b, const char *str)
{
    return vbuf_append(b, str, strlen(str));
}

int vbuf_putc(vbuf *b, int ch)
{
    char c = (char) ch;

    return vbuf_append(b, &c, 1);
}

/* vbuf_set - replace the content with a string */
int vbuf_set(vbuf *b, const char *str)
{
    vbuf_reset(b);
    return vbuf_puts(b, str);
}

/* vbuf_setn - replace the content with len bytes */
int vbuf_setn(vbuf *b, const void *data, size_t len)
{
    vbuf_reset(b);
    return vbuf_append(b, data, len);
}

/* vbuf_vprintf - append formatted text; -1 (buffer unchanged) past the limit */
int vbuf_vprintf(vbuf *b, const char *fmt, va_list ap)
{
    va_list aq;
    int n;

    va_copy(aq, ap);
    n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, aq);
    va_end(aq);
    if (n < 0) {
        b->data[b->len] = 0;
        return -1;
    }
    if ((size_t) n >= b->cap - b->len) {
        if (vbuf_reserve(b, (size_t) n) < 0) {
            b->data[b->len] = 0;
            return -1;
        }
        va_copy(aq, ap);
        n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, aq);
        va_end(aq);
        if (n < 0) {
            b->data[b->len] = 0;
            return -1;
        }
    } else if ((size_t) n > b->limit - b->len) {
        b->data[b->len] = 0;
        return -1;
    }
    b->len += (size_t) n;
    return 0;
}

int vbuf_printf(vbuf *b, const char *fmt, ...)
{
    va_list ap;
    int ret;

    va_start(ap, fmt);
    ret = vbuf_vprintf(b, fmt, ap);
    va_end(ap);
    return ret;
}

/* vbuf_str - the content as a C string */
const char *vbuf_str(const vbuf *b)
{
    return b->data;
}

/* vbuf_steal - hand the content to the caller as a malloc'd string */
char *vbuf_steal(vbuf *b)
{
    char *s = xmemdup(b->data, b->len + 1);

    vbuf_reset(b);
    return s;
}

/* vbuf_lower - ASCII lowercase in place (locale-independent) */
void vbuf_lower(vbuf *b)
{
    for (size_t i = 0; i < b->len; i++)
        if (b->data[i] >= 'A' && b->data[i] <= 'Z')
            b->data[i] = (char) (b->data[i] + ('a' - 'A'));
}

/* vbuf_trim - remove leading and trailing spaces and tabs */
void vbuf_trim(vbuf *b)
{
    size_t start = 0, end = b->len;

    while (start < end && (b->data[start] == ' ' || b->data[start] == '\t'))
        start++;
    while (end > start && (b->data[end - 1] == ' ' || b->data[end - 1] == '\t'))
        end--;
    if (start)
        memmove(b->data, b->data + start, end - start);
    b->len = end - start;
    b->data[b->len] = 0;
}
