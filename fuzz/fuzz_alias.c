/* libFuzzer target: the alias/.forward/:include: list parser (local/alias_parse.c). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../local/alias_parse.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text;
    alias_item *items;
    size_t n;
    vbuf why;

    if (size < 1)
        return 0;
    text = xmalloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    vbuf_init(&why, 0);
    if (alias_parse(text, data[0] & 1, &items, &n, &why) == 0) {
        for (size_t i = 0; i < n; i++)
            if (items[i].type < ALIAS_ADDR || items[i].type > ALIAS_SELF || items[i].value == NULL)
                __builtin_trap();
        alias_free(items, n);
    }
    vbuf_release(&why);
    xfree(text);
    return 0;
}
