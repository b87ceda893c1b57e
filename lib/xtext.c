/*
 * xtext - RFC 3461 §4 xtext encoding, used for the ENVID and ORCPT
 * parameters of MAIL FROM / RCPT TO.
 *
 * Offers encode (any bytes -> xtext), strict decode and validation.
 * Trusts nothing in its input: decode and validate accept only the
 * grammar of RFC 3461 §4 (xchar, or '+' and two uppercase hex digits).
 * Encoding appends to the output buffer; decoding replaces its content.
 */
#include <string.h>

#include "xtext.h"

/* xtext_is_xchar - RFC 3461 §4: "!".."~" except '+' and '=' */
static int xtext_is_xchar(unsigned char c)
{
    return c >= 33 && c <= 126 && c != '+' && c != '=';
}

/* xtext_hexval - value of an uppercase hex digit, or -1 */
static int xtext_hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* xtext_encode - append len bytes of data as xtext to out (nothing if it does not fit) */
void xtext_encode(vbuf *out, const char *data, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t start = out->len;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) data[i];

        if (xtext_is_xchar(c)) {
            if (vbuf_putc(out, c) < 0)
                goto full;
        } else {
            char enc[3] = {'+', hex[c >> 4], hex[c & 15]};

            if (vbuf_append(out, enc, sizeof(enc)) < 0)
                goto full;
        }
    }
    return;
full:
    vbuf_truncate(out, start);
}

/* xtext_decode - decode xtext into out; 0, or -1 if malformed (out emptied) */
int xtext_decode(vbuf *out, const char *text)
{
    vbuf_reset(out);
    for (const unsigned char *p = (const unsigned char *) text; *p; p++) {
        int c;

        if (*p == '+') {
            int hi = xtext_hexval(p[1]);
            int lo = hi < 0 ? -1 : xtext_hexval(p[2]);

            if (hi < 0 || lo < 0) {
                vbuf_reset(out);
                return -1;
            }
            c = hi * 16 + lo;
            p += 2;
        } else if (xtext_is_xchar(*p)) {
            c = *p;
        } else {
            vbuf_reset(out);
            return -1;
        }
        if (vbuf_putc(out, c) < 0) {
            vbuf_reset(out);
            return -1;
        }
    }
    return 0;
}

/* xtext_valid - is text well-formed xtext? */
int xtext_valid(const char *text)
{
    for (const unsigned char *p = (const unsigned char *) text; *p; p++) {
        if (*p == '+') {
            if (xtext_hexval(p[1]) < 0 || xtext_hexval(p[2]) < 0)
                return 0;
            p += 2;
        } else if (!xtext_is_xchar(*p)) {
            return 0;
        }
    }
    return 1;
}
