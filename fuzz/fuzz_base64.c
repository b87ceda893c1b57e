/*
 * fuzz_base64 - libFuzzer target for base64 (RFC 4648).
 *
 * Arbitrary bytes as base64 text: whatever decodes must encode back to
 * exactly the input (the decoder accepts only canonical encodings); and
 * any bytes must survive an encode/decode round trip.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "vbuf.h"

/* LLVMFuzzerTestOneInput - one input */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vbuf dec, enc;

    vbuf_init(&dec, 0);
    vbuf_init(&enc, 0);
    if (base64_decode(&dec, (const char *) data, size) == 0) {
        vbuf_reset(&enc);
        base64_encode(&enc, dec.data, dec.len);
        if (enc.len != size || (size && memcmp(enc.data, data, size) != 0))
            abort();
    } else if (dec.len != 0) {
        abort();
    }
    vbuf_reset(&enc);
    base64_encode(&enc, data, size);
    if (base64_decode(&dec, enc.data, enc.len) != 0 || dec.len != size || (size && memcmp(dec.data, data, size) != 0))
        abort();
    vbuf_release(&dec);
    vbuf_release(&enc);
    return 0;
}
