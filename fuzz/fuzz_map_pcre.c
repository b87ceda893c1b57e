/*
 * fuzz_map_pcre - libFuzzer target for the pcre: pattern-file parser.
 *
 * The input is a pattern file; whatever opens is matched against a few
 * fixed keys and against the input's own first line, so result expansion
 * ($1, ${1}) and if/endif skipping run too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maps.h"
#include "msg.h"
#include "mymalloc.h"
#include "vbuf.h"

/* quiet - swallow diagnostics */
static void quiet(enum msg_level level, const char *text)
{
    (void) level;
    (void) text;
}

/* LLVMFuzzerTestOneInput - one pattern file */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const keys[] = {"", "a", "user@example.com", "Subject: hello world", "aaaaaaaaaaaaaaaaaaaab"};
    static int init;
    vbuf err, key;
    map *m;

    if (!init) {
        msg_init("fuzz_map_pcre");
        msg_stderr(0);
        msg_set_capture(quiet);
        init = 1;
    }
    vbuf_init(&err, 0);
    m = map_open_text("pcre", "fuzz", (const char *) data, size, 0, &err);
    if (m == NULL) {
        if (err.len == 0)
            abort(); /* every failure says why */
    } else {
        const uint8_t *nl = memchr(data, '\n', size);
        int status;

        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            const char *r = map_lookup(m, keys[i], &status);

            if ((status == MAP_FOUND) != (r != NULL))
                abort();
        }
        vbuf_init(&key, 0);
        vbuf_setn(&key, data, nl ? (size_t) (nl - data) : size);
        key.len = strlen(key.data); /* a key is a C string */
        (void) map_lookup(m, vbuf_str(&key), &status);
        vbuf_release(&key);
        map_close(m);
    }
    vbuf_release(&err);
    return 0;
}
