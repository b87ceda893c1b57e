/*
 * xtext - RFC 3461 §4 xtext ("+" followed by two uppercase hex digits for
 * '+', '=', and bytes outside "!".."~").
 * Encoding appends to out; decoding replaces the content of out (empty on
 * failure).
 */
#ifndef KITE_XTEXT_H
#define KITE_XTEXT_H

#include <stddef.h>

#include "vbuf.h"

void xtext_encode(vbuf *out, const char *data, size_t len);
int xtext_decode(vbuf *out, const char *text);     /* 0, or -1 if malformed */
int xtext_valid(const char *text);

#endif
