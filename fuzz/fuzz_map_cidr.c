/*
 * fuzz_map_cidr - libFuzzer target for the cidr: table parser.
 *
 * The input is a cidr table; whatever opens is queried with IPv4, IPv6 and
 * malformed keys, plus the input's own first word.
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

/* LLVMFuzzerTestOneInput - one cidr table */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const keys[] = {"0.0.0.0",        "10.1.2.3", "255.255.255.255", "::", "2001:db8::1",
                                       "::ffff:1.2.3.4", "[::1]",    "1.2.3",           "x"};
    static int init;
    vbuf err, key;
    map *m;

    if (!init) {
        msg_init("fuzz_map_cidr");
        msg_stderr(0);
        msg_set_capture(quiet);
        init = 1;
    }
    vbuf_init(&err, 0);
    m = map_open_text("cidr", "fuzz", (const char *) data, size, 0, &err);
    if (m == NULL) {
        if (err.len == 0)
            abort();
    } else {
        size_t n = 0;
        int status;

        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            const char *r = map_lookup(m, keys[i], &status);

            if ((status == MAP_FOUND) != (r != NULL))
                abort();
        }
        while (n < size && data[n] != ' ' && data[n] != '\n' && data[n] != '/' && data[n] != 0)
            n++;
        vbuf_init(&key, 0);
        vbuf_setn(&key, data, n);
        (void) map_lookup(m, vbuf_str(&key), &status);
        vbuf_release(&key);
        map_close(m);
    }
    vbuf_release(&err);
    return 0;
}
