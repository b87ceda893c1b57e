/*
 * base64 - RFC 4648 base64 (the standard alphabet, with padding).
 * Encoding appends to out; decoding replaces the content of out (empty on
 * failure).
 */
#ifndef KITE_BASE64_H
#define KITE_BASE64_H

#include <stddef.h>

#include "vbuf.h"

void base64_encode(vbuf *out, const void *data, size_t len);
int base64_decode(vbuf *out, const char *text, size_t len);  /* 0, or -1 */

#endif
