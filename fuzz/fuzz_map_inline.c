/*
 * fuzz_map_inline - libFuzzer target for inline:{...} and static: specs
 * and for splitting a parameter value into table specs (maps_open).
 *
 * The input (up to its first NUL) follows "inline:" and "static:"; tables
 * that open are queried, and listing must agree with lookups.
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

/* check_entry - every listed key must look up to its listed value */
static int check_entry(void *ctx, const char *key, const char *value)
{
    map *m = ctx;
    int status;
    const char *r;
    vbuf k, v;

    vbuf_init(&k, 0);
    vbuf_init(&v, 0);
    vbuf_set(&k, key);
    vbuf_set(&v, value);
    r = map_lookup(m, vbuf_str(&k), &status);
    /* Duplicates keep the first value, which is also listed first. */
    if (status != MAP_FOUND || r == NULL)
        abort();
    vbuf_release(&k);
    vbuf_release(&v);
    return 0;
}

/* LLVMFuzzerTestOneInput - one inline body */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    vbuf spec, err;
    maps *ms;
    map *m;
    int status;

    if (!init) {
        msg_init("fuzz_map_inline");
        msg_stderr(0);
        msg_set_capture(quiet);
        init = 1;
    }
    vbuf_init(&spec, 0);
    vbuf_init(&err, 0);
    vbuf_set(&spec, "inline:");
    vbuf_append(&spec, data, size);
    spec.len = strlen(spec.data);
    if ((m = map_open(vbuf_str(&spec), 0, &err)) != NULL) {
        (void) map_lookup(m, "a", &status);
        if (map_iterate(m, check_entry, m, &err) != 0)
            abort();
        map_close(m);
    } else if (err.len == 0) {
        abort();
    }
    vbuf_set(&spec, "static:");
    vbuf_append(&spec, data, size);
    spec.len = strlen(spec.data);
    if ((m = map_open(vbuf_str(&spec), 0, &err)) != NULL) {
        if (map_lookup(m, "x", &status) == NULL || status != MAP_FOUND)
            abort();
        map_close(m);
    }
    /* The same text as a parameter value: split into specs, each opened. */
    ms = maps_open("fuzz_maps", vbuf_str(&spec) + strlen("static:"), 0);
    (void) maps_find(ms, "a", &status);
    (void) maps_find_addr(ms, "u+e@d", MAPS_ADDR_LOCAL, &status);
    maps_close(ms);
    vbuf_release(&spec);
    vbuf_release(&err);
    return 0;
}
