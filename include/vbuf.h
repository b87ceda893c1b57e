/*
 * vbuf - the growable, bounded string buffer used for all text.
 *
 * A vbuf carries its length, is always NUL-terminated (so vbuf_str() is a
 * valid C string even for binary data, which may itself contain NULs), and
 * grows on demand with overflow-checked arithmetic. Each buffer has a limit:
 * an append that would take the content past it fails with -1 and leaves
 * the buffer unchanged. A limit of 0 means "no limit beyond memory".
 */
#ifndef KITE_VBUF_H
#define KITE_VBUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct vbuf {
    char *data;                         /* always NUL-terminated */
    size_t len;                         /* content length */
    size_t cap;                         /* allocated size, > len */
    size_t limit;                       /* max content length; 0 = none */
} vbuf;

#define VBUF_STR(b) ((b)->data)
#define VBUF_LEN(b) ((b)->len)

void vbuf_init(vbuf *b, size_t limit);
vbuf *vbuf_new(size_t limit);
void vbuf_free(vbuf *b);                /* vbuf_new's counterpart */
void vbuf_release(vbuf *b);             /* vbuf_init's counterpart */

void vbuf_reset(vbuf *b);
void vbuf_truncate(vbuf *b, size_t len);
int vbuf_reserve(vbuf *b, size_t extra);

int vbuf_append(vbuf *b, const void *data, size_t len);
int vbuf_puts(vbuf *b, const char *str);
int vbuf_putc(vbuf *b, int ch);
int vbuf_set(vbuf *b, const char *str);
int vbuf_setn(vbuf *b, const void *data, size_t len);
int vbuf_printf(vbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int vbuf_vprintf(vbuf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

const char *vbuf_str(const vbuf *b);
char *vbuf_steal(vbuf *b);              /* malloc'd copy of content; b emptied */

void vbuf_lower(vbuf *b);               /* ASCII lowercase in place */
void vbuf_trim(vbuf *b);                /* strip leading/trailing blanks */

#endif
