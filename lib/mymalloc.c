/*
 * mymalloc - allocation that never returns NULL (see mymalloc.h).
 * Trusts nothing about sizes: every multiplication and addition is checked.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "mymalloc.h"

/* size_add - a + b, fatal on overflow */
size_t size_add(size_t a, size_t b)
{
    if (a > SIZE_MAX - b)
        msg_fatal("size_add: size overflow (%zu + %zu)", a, b);
    return a + b;
}

/* size_mul - a * b, fatal on overflow */
size_t size_mul(size_t a, size_t b)
{
    if (a != 0 && b > SIZE_MAX / a)
        msg_fatal("size_mul: size overflow (%zu * %zu)", a, b);
    return a * b;
}

/*
 * size_check - no object may be larger than PTRDIFF_MAX (pointer differences
 * inside it would overflow); such sizes are refused before they reach the
 * allocator, which under the sanitizers aborts instead of returning NULL.
 */
static void size_check(const char *fn, size_t size)
{
    if (size > (size_t) PTRDIFF_MAX)
        msg_fatal("%s: insufficient memory for %zu bytes", fn, size);
}

/* xmalloc - allocate or exit */
void *xmalloc(size_t size)
{
    void *p;

    size_check("xmalloc", size);
    p = malloc(size ? size : 1);

    if (p == NULL)
        msg_fatal("xmalloc: insufficient memory for %zu bytes", size);
    return p;
}

/* xcalloc - allocate zeroed memory or exit */
void *xcalloc(size_t nmemb, size_t size)
{
    size_t total = size_mul(nmemb, size);
    void *p;

    size_check("xcalloc", total);
    p = calloc(1, total ? total : 1);

    if (p == NULL)
        msg_fatal("xcalloc: insufficient memory for %zu x %zu bytes", nmemb, size);
    return p;
}

/* xrealloc - resize or exit */
void *xrealloc(void *ptr, size_t size)
{
    void *p;

    size_check("xrealloc", size);
    p = realloc(ptr, size ? size : 1);

    if (p == NULL)
        msg_fatal("xrealloc: insufficient memory for %zu bytes", size);
    return p;
}

/* xreallocarray - resize an array, checking nmemb * size */
void *xreallocarray(void *ptr, size_t nmemb, size_t size)
{
    return xrealloc(ptr, size_mul(nmemb, size));
}

/* xstrdup - copy a string or exit */
char *xstrdup(const char *str)
{
    return xmemdup(str, strlen(str) + 1);
}

/* xstrndup - copy at most len bytes of a string, always terminated */
char *xstrndup(const char *str, size_t len)
{
    size_t n = strnlen(str, len);
    char *p = xmalloc(size_add(n, 1));

    memcpy(p, str, n);
    p[n] = 0;
    return p;
}

/* xmemdup - copy a block of memory or exit */
void *xmemdup(const void *data, size_t len)
{
    void *p = xmalloc(len);

    if (len)
        memcpy(p, data, len);
    return p;
}

/* xfree - free(), kept for symmetry and for a future debugging hook */
void xfree(void *ptr)
{
    free(ptr);
}
