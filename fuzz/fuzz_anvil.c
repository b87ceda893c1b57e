/*
 * fuzz_anvil - libFuzzer target for anvil's frame cutting and request
 * handling (anvil/proto.c) on top of its counting table (anvil/table.c).
 *
 * The input is a byte stream from three clients: each step takes a control
 * byte (which client, how many bytes it delivers next, how far the clock
 * moves), appends that many bytes to the client's input buffer, and serves
 * every whole frame in it, as the server does. A client whose frame is bad
 * is dropped, releasing what it held. Afterwards, with every client gone,
 * the table must forget everything once the rate windows are over: a count
 * that did not return to zero would keep its ident forever.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../anvil/proto.c"
#include "../anvil/table.c"

#define NCLIENT 3

/* quiet - swallow diagnostics */
static void quiet(enum msg_level level, const char *text)
{
    (void) level;
    (void) text;
}

/* LLVMFuzzerTestOneInput - one conversation */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    anvil_table *t;
    anvil_owner *owner[NCLIENT];
    vbuf in[NCLIENT], out;
    attr_list *req, *reply;
    time_t now = 1700000000;
    size_t pos = 0;

    if (!init) {
        msg_init("fuzz_anvil");
        msg_stderr(0);
        msg_set_capture(quiet);
        init = 1;
    }
    t = anvil_table_new(60);
    req = attr_new();
    reply = attr_new();
    vbuf_init(&out, 0);
    for (int i = 0; i < NCLIENT; i++) {
        owner[i] = anvil_owner_new(t);
        vbuf_init(&in[i], 0);
    }
    while (pos < size) {
        uint8_t ctl = data[pos++];
        int c = ctl % NCLIENT;
        size_t n = (size_t) ((ctl >> 2) & 0x3f) * 4 + 1;
        int got;

        if (n > size - pos)
            n = size - pos;
        now += ctl >> 7 ? 7 : 0;
        if (owner[c] == NULL)
            owner[c] = anvil_owner_new(t); /* a new process connects */
        vbuf_append(&in[c], data + pos, n);
        pos += n;
        while ((got = anvil_frame_take(&in[c], req)) > 0) {
            anvil_request(t, owner[c], req, reply, now);
            vbuf_reset(&out);
            anvil_frame_put(&out, reply);
            if (attr_get_int(reply, "status", &(long long){0}) != 0)
                abort(); /* every reply carries a status */
        }
        if (got < 0) {
            anvil_owner_free(t, owner[c]);
            owner[c] = NULL;
            vbuf_reset(&in[c]);
        }
        if (in[c].len > ANVIL_FRAME_MAX + 4)
            abort(); /* a whole frame would have been taken */
    }
    for (int i = 0; i < NCLIENT; i++) {
        if (owner[i])
            anvil_owner_free(t, owner[i]);
        vbuf_release(&in[i]);
    }
    anvil_expire(t, now + 61);
    if (anvil_table_size(t) != 0)
        abort();
    anvil_table_free(t);
    attr_free(req);
    attr_free(reply);
    vbuf_release(&out);
    return 0;
}
