/*
 * mymalloc - allocation that never returns NULL.
 *
 * Every size is checked for overflow before it reaches the allocator; on
 * exhaustion the process logs a fatal error and exits, so callers never test
 * for NULL.
 */
#ifndef KITE_MYMALLOC_H
#define KITE_MYMALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *str);
char *xstrndup(const char *str, size_t len);
void *xmemdup(const void *data, size_t len);
void xfree(void *ptr);

/* Overflow-checked arithmetic for sizes; fatal on overflow. */
size_t size_add(size_t a, size_t b);
size_t size_mul(size_t a, size_t b);

#endif
