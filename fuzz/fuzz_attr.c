/*
 * fuzz_attr - libFuzzer target for the attribute decoder and strict scanner.
 *
 * Feeds arbitrary bytes to attr_decode() as a frame payload; whatever
 * decodes is scanned against a typical request spec, re-encoded, and must
 * decode again to the same encoding.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attr.h"
#include "msg.h"
#include "vbuf.h"

/* quiet - swallow diagnostics */
static void quiet(enum msg_level level, const char *text)
{
    (void) level;
    (void) text;
}

/* LLVMFuzzerTestOneInput - one payload */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    attr_list *l, *again;
    vbuf enc, enc2;
    const char *sender = NULL;
    long long n = 0;
    attr_data blob = {NULL, 0};
    attr_spec specs[] = {
        ATTR_SPEC_STR("sender", ATTR_REQUIRED, &sender), ATTR_SPEC_STR("rcpt", ATTR_REPEAT | ATTR_OPTIONAL, NULL),
        ATTR_SPEC_INT("size", ATTR_OPTIONAL, &n), ATTR_SPEC_DATA("blob", ATTR_OPTIONAL, &blob), ATTR_SPEC_END};

    if (!init) {
        msg_init("fuzz_attr");
        msg_stderr(0);
        msg_set_capture(quiet);
        init = 1;
    }
    l = attr_new();
    if (attr_decode(l, data, size) == 0) {
        if (attr_scan(l, specs) == 0 && strlen(sender) > size)
            abort();
        vbuf_init(&enc, 0);
        vbuf_init(&enc2, 0);
        attr_encode(l, &enc);
        again = attr_new();
        if (attr_decode(again, enc.data, enc.len) != 0)
            abort();
        attr_encode(again, &enc2);
        if (enc.len != enc2.len || memcmp(enc.data, enc2.data, enc.len) != 0)
            abort();
        if (enc.len != size || memcmp(enc.data, data, size) != 0)
            abort();
        attr_free(again);
        vbuf_release(&enc);
        vbuf_release(&enc2);
    }
    attr_free(l);
    return 0;
}
