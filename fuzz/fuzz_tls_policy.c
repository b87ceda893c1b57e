/*
 * fuzz_tls_policy - libFuzzer target for the TLS text parsers: policy
 * table values (tls_policy_parse), Postfix protocol lists
 * (tls_protocol_mask) and match lists (tls_match_names).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "mymalloc.h"
#include "tls.h"

/* quiet - swallow diagnostics */
static void quiet(enum msg_level level, const char *text)
{
    (void) level;
    (void) text;
}

/* LLVMFuzzerTestOneInput - one text */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    char *text = xmalloc(size + 1);
    tls_policy p;
    int mask = 0;
    char **names;

    if (!init) {
        msg_init("fuzz_tls_policy");
        msg_stderr(0);
        msg_set_capture(quiet);
        init = 1;
    }
    memcpy(text, data, size);
    text[size] = 0;
    if (tls_policy_parse(text, &p) == 0) {
        if (p.level < TLS_LEV_NONE || p.level > TLS_LEV_SECURE)
            abort();
        tls_policy_free(&p);
    } else if (p.match || p.protocols || p.ciphers || p.exclude || p.servername) {
        abort(); /* a rejected policy leaves nothing */
    }
    if (tls_protocol_mask(text, &mask) == 0 && (mask == 0 || (mask & ~TLS_PROTO_ALL)))
        abort();
    names = tls_match_names(text, "mx.example.org", "example.org");
    for (char **n = names; *n; n++)
        if (**n == 0)
            abort();
    tls_names_free(names);
    xfree(text);
    return 0;
}
