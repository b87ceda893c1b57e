/*
 * base64 - RFC 4648 §4 base64 with the standard alphabet and padding
 * (SMTP AUTH, MIME).
 *
 * Offers encode and a strict decode. Trusts nothing in its input: decode
 * rejects characters outside the alphabet (white space included), input
 * whose length is not a multiple of four, misplaced or excess padding, and
 * non-zero pad bits (RFC 4648 §3.5), so each byte string has exactly one
 * accepted encoding. Encoding appends to out; decoding replaces its content.
 */
#include <string.h>

#include "base64.h"

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* b64_value - the 6-bit value of an alphabet character, or -1 */
static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* base64_encode - append len bytes to out as base64 (RFC 4648 §4, padded; nothing if it does not fit) */
void base64_encode(vbuf *out, const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t i, start = out->len;
    char q[4];

    for (i = 0; i + 3 <= len; i += 3) {
        q[0] = b64_alphabet[p[i] >> 2];
        q[1] = b64_alphabet[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
        q[2] = b64_alphabet[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
        q[3] = b64_alphabet[p[i + 2] & 63];
        if (vbuf_append(out, q, 4) < 0)
            goto full;
    }
    if (len - i == 1) {
        q[0] = b64_alphabet[p[i] >> 2];
        q[1] = b64_alphabet[(p[i] & 3) << 4];
        q[2] = q[3] = '=';
        if (vbuf_append(out, q, 4) < 0)
            goto full;
    } else if (len - i == 2) {
        q[0] = b64_alphabet[p[i] >> 2];
        q[1] = b64_alphabet[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
        q[2] = b64_alphabet[(p[i + 1] & 15) << 2];
        q[3] = '=';
        if (vbuf_append(out, q, 4) < 0)
            goto full;
    }
    return;
full:
    vbuf_truncate(out, start);
}

/* base64_decode - decode len characters of text into out; 0, or -1 (out emptied) */
int base64_decode(vbuf *out, const char *text, size_t len)
{
    const unsigned char *t = (const unsigned char *) text;

    vbuf_reset(out);
    if (len % 4 != 0)
        goto bad;
    for (size_t i = 0; i < len; i += 4) {
        int v0 = b64_value(t[i]), v1 = b64_value(t[i + 1]);
        int v2 = b64_value(t[i + 2]), v3 = b64_value(t[i + 3]);
        int last = (i + 4 == len);
        unsigned char bytes[3];
        size_t n;

        if (v0 < 0 || v1 < 0)
            goto bad;
        if (v2 >= 0 && v3 >= 0) {
            n = 3;
        } else if (last && v2 >= 0 && t[i + 3] == '=') {
            if (v2 & 3) /* §3.5: pad bits must be zero */
                goto bad;
            n = 2;
        } else if (last && t[i + 2] == '=' && t[i + 3] == '=') {
            if (v1 & 15)
                goto bad;
            n = 1;
        } else {
            goto bad;
        }
        bytes[0] = (unsigned char) ((v0 << 2) | (v1 >> 4));
        bytes[1] = (unsigned char) (((v1 & 15) << 4) | (v2 >= 0 ? v2 >> 2 : 0));
        bytes[2] = (unsigned char) (((v2 >= 0 ? v2 : 0) & 3) << 6 | (v3 >= 0 ? v3 : 0));
        if (vbuf_append(out, bytes, n) < 0)
            goto bad;
    }
    return 0;
bad:
    vbuf_reset(out);
    return -1;
}
