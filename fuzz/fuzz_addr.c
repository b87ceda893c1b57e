/*
 * fuzz_addr - libFuzzer target for RFC 5321 paths and RFC 5322 address lists.
 *
 * The first byte picks the path flags; the rest is parsed as a MAIL FROM /
 * RCPT TO argument and as a header address list. Checked properties: a
 * parsed path never exceeds the RFC 5321 limits, never consumes more than
 * it was given, has 8-bit bytes only with ADDR_ALLOW_UTF8, and quoting it
 * and parsing it again gives the same internal form.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "mymalloc.h"
#include "vbuf.h"

static void count_addr(const char *addr, void *ctx)
{
    (void) addr;
    (*(int *) ctx)++;
}

/* LLVMFuzzerTestOneInput - one input */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int flags, calls = 0, n;
    char *text;
    vbuf out, quoted, again;
    const char *why = NULL;
    size_t used = 0;

    if (size == 0)
        return 0;
    flags = data[0] & (ADDR_ALLOW_EMPTY | ADDR_ALLOW_UTF8 | ADDR_NO_BRACKETS);
    text = xmalloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    vbuf_init(&out, 0);
    vbuf_init(&quoted, 0);
    vbuf_init(&again, 0);
    if (addr_parse_path(text, flags, &out, &used, &why) == 0) {
        if (used > strlen(text) || out.len > 256)
            abort();
        if (!(flags & ADDR_ALLOW_UTF8) && addr_has_8bit(out.data))
            abort();
        if (out.len > 0) {
            vbuf_puts(&quoted, "<");
            addr_quote(&quoted, out.data);
            vbuf_puts(&quoted, ">");
            if (addr_parse_path(quoted.data, flags | ADDR_ALLOW_UTF8, &again, &used, &why) != 0 ||
                strcmp(again.data, out.data) != 0)
                abort();
        }
    } else if (why == NULL || out.len != 0) {
        abort();
    }
    n = addr_parse_list(text, count_addr, &calls);
    if (n >= 0 ? n != calls : calls != 0)
        abort();
    (void) addr_valid_domain(text, flags & ADDR_ALLOW_UTF8);
    vbuf_release(&out);
    vbuf_release(&quoted);
    vbuf_release(&again);
    xfree(text);
    return 0;
}
