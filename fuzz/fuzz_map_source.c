/*
 * fuzz_map_source - libFuzzer target for the postmap and aliases(5) source
 * parsers (logical lines, comments, continuation, quoted alias names) and
 * texthash: tables built from them.
 *
 * The first input byte picks the flags; the rest is the source text.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maps.h"
#include "msg.h"
#include "vbuf.h"

/* quiet - swallow diagnostics */
static void quiet(enum msg_level level, const char *text)
{
    (void) level;
    (void) text;
}

/* check - entries are non-empty keys without blanks (postmap) or NULs */
static int check(void *ctx, const char *key, const char *value, int line, vbuf *err)
{
    int aliases = *(int *) ctx;

    (void) err;
    if (line < 1 || *key == 0 || value == NULL)
        abort();
    if (!aliases && (strchr(key, ' ') || strchr(key, '\t') || *value == 0))
        abort();
    if (aliases && *value == 0)
        abort();
    return 0;
}

/* LLVMFuzzerTestOneInput - one source file */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    int flags, aliases;
    vbuf err;
    map *m;

    if (!init) {
        msg_init("fuzz_map_source");
        msg_stderr(0);
        msg_set_capture(quiet);
        init = 1;
    }
    if (size == 0)
        return 0;
    flags = (data[0] & 1 ? MAP_BUILD_ALIASES : 0) | (data[0] & 2 ? MAP_KEEP_CASE : 0);
    aliases = (flags & MAP_BUILD_ALIASES) != 0;
    data++;
    size--;
    vbuf_init(&err, 0);
    if (map_source_parse("fuzz", (const char *) data, size, flags, check, &aliases, &err) < 0 && err.len == 0)
        abort();
    if ((m = map_open_text("texthash", "fuzz", (const char *) data, size, flags & MAP_KEEP_CASE, &err)) != NULL) {
        int status;

        (void) map_lookup(m, "root", &status);
        map_close(m);
    }
    vbuf_release(&err);
    return 0;
}
