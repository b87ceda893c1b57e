/*
 * fuzz_xtext - libFuzzer target for xtext (RFC 3461 §4).
 *
 * Arbitrary bytes: decode and validate must agree; whatever decodes must
 * encode to xtext no longer than the input that decodes to the same bytes;
 * and any bytes must encode to valid xtext that decodes back.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "mymalloc.h"
#include "vbuf.h"
#include "xtext.h"

/* LLVMFuzzerTestOneInput - one input */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = xmalloc(size + 1);
    vbuf dec, enc;
    int ok;

    memcpy(text, data, size);
    text[size] = 0;
    vbuf_init(&dec, 0);
    vbuf_init(&enc, 0);
    ok = xtext_decode(&dec, text) == 0;
    if (ok != xtext_valid(text))
        abort();
    if (ok) {
        /* "+33" is valid xtext for '3': compare decoded forms, not text */
        vbuf again;

        vbuf_init(&again, 0);
        vbuf_reset(&enc);
        xtext_encode(&enc, dec.data, dec.len);
        if (enc.len > strlen(text) || xtext_decode(&again, enc.data) != 0 || again.len != dec.len ||
            memcmp(again.data, dec.data, dec.len) != 0)
            abort();
        vbuf_release(&again);
    }
    vbuf_reset(&enc);
    xtext_encode(&enc, (const char *) data, size);
    if (!xtext_valid(enc.data) || xtext_decode(&dec, enc.data) != 0 || dec.len != size ||
        (size && memcmp(dec.data, data, size) != 0))
        abort();
    vbuf_release(&dec);
    vbuf_release(&enc);
    xfree(text);
    return 0;
}
