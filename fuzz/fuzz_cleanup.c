/*
 * fuzz_cleanup - libFuzzer target for cleanup's content processing
 * (cleanup/message.c, cleanup/rewrite.c): arbitrary message bytes, fed in
 * arbitrary chunks with the flags taken from the first input byte, must
 * give a verdict and well-formed output (every line ending in CRLF unless
 * the body is binary), never a crash.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../cleanup/message.c"
#include "../cleanup/rewrite.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fz_out {
    vbuf content;
    int envelopes;
} fz_out;

/* fz_envelope - count envelope writes */
static int fz_envelope(cleanup_state *st, void *ctx)
{
    (void) st;
    ((fz_out *) ctx)->envelopes++;
    return 0;
}

/* fz_content - collect the queued content */
static int fz_content(cleanup_state *st, const char *d, size_t len, void *ctx)
{
    (void) st;
    return vbuf_append(&((fz_out *) ctx)->content, d, len);
}

/* LLVMFuzzerTestOneInput - one message */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cleanup_maps none;
    static int inited;
    fz_out out;
    cleanup_output o = {fz_envelope, fz_content, &out};
    cleanup_state st;
    int flags;
    size_t pos = 1, step;

    if (!inited) {
        msg_stderr(0);
        conf_override("myhostname", "kite.test");
        (void) conf_load("/nonexistent-kite-config");
        inited = 1;
    }
    if (size < 2)
        return 0;
    flags = data[0] & (CLEANUP_FLAG_LOCAL | CLEANUP_FLAG_EXTRACT | CLEANUP_FLAG_BOUNCE);
    step = (size_t) (data[1] % 17) + 1;
    memset(&out, 0, sizeof(out));
    vbuf_init(&out.content, 0);
    cleanup_state_init(&st, "FUZZQUEUEID0000001", flags, &none, &o);
    cleanup_add_attr(&st, "sender", "fuzz");
    if (data[0] & 0x80)
        cleanup_add_attr(&st, "body", "binarymime");
    cleanup_add_rcpt(&st, "rcpt@example.com", NULL, 0);
    while (pos < size) {
        size_t n = size - pos < step ? size - pos : step;

        cleanup_feed(&st, (const char *) data + pos, n);
        pos += n;
    }
    cleanup_end(&st);
    if (st.status == CLEANUP_OK && !st.discard && out.envelopes != 1)
        abort();
    if (out.envelopes && !st.binary_body) {
        for (size_t i = 0; i < out.content.len; i++)
            if (out.content.data[i] == '\n' && (i == 0 || out.content.data[i - 1] != '\r'))
                abort();
    }
    cleanup_state_free(&st);
    vbuf_release(&out.content);
    return 0;
}
