/*
 * proto - anvil's request protocol on the attribute frames of attr.h.
 *
 * After the greeting {protocol = "anvil"} a client sends any number of
 * requests on its connection, each answered in order:
 *
 *   {request = "connect", ident}    -> {status, count, rate}
 *   {request = "disconnect", ident} -> {status}
 *   {request = "message", ident}    -> {status, rate}
 *   {request = "recipient", ident}  -> {status, rate}
 *
 * status is ANVIL_STAT_OK (0) or ANVIL_STAT_FAIL (-1). Frames are cut out
 * of a client's input buffer here, so the server never blocks on a client
 * that sent half a frame.
 *
 * Trusts: nothing. A frame longer than ANVIL_FRAME_MAX or one that does not
 * decode ends the client's connection; a request with unexpected or
 * missing attributes, an unknown request name or a bad ident is answered
 * with status -1.
 */
#include <string.h>

#include "anvil.h"
#include "msg.h"

/* anvil_frame_take - one whole request frame from the front of in */
int anvil_frame_take(vbuf *in, attr_list *req)
{
    const unsigned char *p = (const unsigned char *) in->data;
    size_t plen;

    if (in->len < 4)
        return 0;
    plen = ((size_t) p[0] << 24) | ((size_t) p[1] << 16) | ((size_t) p[2] << 8) | (size_t) p[3];
    if (plen > ANVIL_FRAME_MAX) {
        msg_warn("anvil: request frame of %zu bytes exceeds %d", plen, ANVIL_FRAME_MAX);
        return -1;
    }
    if (in->len - 4 < plen)
        return 0;
    if (attr_decode(req, in->data + 4, plen) < 0) {
        msg_warn("anvil: malformed request frame");
        return -1;
    }
    memmove(in->data, in->data + 4 + plen, in->len - 4 - plen);
    vbuf_truncate(in, in->len - 4 - plen);
    return 1;
}

/* anvil_frame_put - a reply frame: 4-byte big-endian length, then the payload */
void anvil_frame_put(vbuf *out, const attr_list *reply)
{
    vbuf payload;
    unsigned char hdr[4];

    vbuf_init(&payload, 0);
    attr_encode(reply, &payload);
    hdr[0] = (unsigned char) (payload.len >> 24);
    hdr[1] = (unsigned char) (payload.len >> 16);
    hdr[2] = (unsigned char) (payload.len >> 8);
    hdr[3] = (unsigned char) payload.len;
    vbuf_append(out, hdr, 4);
    vbuf_append(out, payload.data, payload.len);
    vbuf_release(&payload);
}

/* printable - the request name for a log line, or "(unprintable)" */
static const char *printable(const char *s)
{
    return anvil_ident_ok(s) ? s : "(unprintable)";
}

/* anvil_request - serve one request; the reply always carries a status */
void anvil_request(anvil_table *t, anvil_owner *o, const attr_list *req, attr_list *reply, time_t now)
{
    const char *request = NULL, *ident = NULL;
    attr_spec spec[] = {ATTR_SPEC_STR("request", ATTR_REQUIRED, &request),
                        ATTR_SPEC_STR("ident", ATTR_REQUIRED, &ident), ATTR_SPEC_END};
    long count = 0, rate = 0;
    int status;

    attr_clear(reply);
    if (attr_scan(req, spec) < 0) {
        attr_put_int(reply, "status", ANVIL_STAT_FAIL);
        return;
    }
    if (!anvil_ident_ok(ident)) {
        msg_warn("anvil: %.100s request with a bad ident", printable(request));
        attr_put_int(reply, "status", ANVIL_STAT_FAIL);
        return;
    }
    if (strcmp(request, "connect") == 0) {
        status = anvil_connect(t, o, ident, now, &count, &rate);
        attr_put_int(reply, "status", status);
        if (status == ANVIL_STAT_OK) {
            attr_put_int(reply, "count", count);
            attr_put_int(reply, "rate", rate);
        }
    } else if (strcmp(request, "disconnect") == 0) {
        if ((status = anvil_disconnect(t, o, ident, now)) != ANVIL_STAT_OK)
            msg_warn("anvil: disconnect for %s, which this client did not connect", ident);
        attr_put_int(reply, "status", status);
    } else if (strcmp(request, "message") == 0 || strcmp(request, "recipient") == 0) {
        status = anvil_event(t, ident, request[0] == 'm' ? ANVIL_RATE_MSG : ANVIL_RATE_RCPT, now, &rate);
        attr_put_int(reply, "status", status);
        if (status == ANVIL_STAT_OK)
            attr_put_int(reply, "rate", rate);
    } else {
        msg_warn("anvil: unknown request \"%.100s\"", printable(request));
        attr_put_int(reply, "status", ANVIL_STAT_FAIL);
    }
}
