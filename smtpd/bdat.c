/*
 * bdat.c - CHUNKING and BINARYMIME (RFC 3030).
 *
 * Offers the BDAT command: "BDAT size [LAST]" followed by exactly size
 * octets, read by count with no dot-stuffing and no line scanning. The
 * reply for a chunk goes out once the chunk has been read, so pipelined
 * chunks stay in step. A chunk that can't be accepted is still read and
 * dropped; after a failed chunk the rest of the transaction's chunks are
 * read and refused (RFC 3030 §4.2), and the message is never queued.
 *
 * Trusts nothing: the size is parsed strictly and never allocated up front.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "msg.h"
#include "params.h"
#include "smtpd.h"

#define BDAT_READ_MAX 16384

/* smtpd_bdat_parse - "size [LAST]"; 0 or -1 */
int smtpd_bdat_parse(int argc, char **argv, long long *size, int *last)
{
    const char *p;
    long long v = 0;

    if (argc < 1 || argc > 2)
        return -1;
    for (p = argv[0]; *p; p++) {
        if (!isdigit((unsigned char) *p) || p - argv[0] >= 18)
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (p == argv[0])
        return -1;
    if (argc == 2 && strcasecmp(argv[1], "LAST") != 0)
        return -1;
    *size = v;
    *last = argc == 2;
    return 0;
}

/* bdat_refuse - read and drop this chunk, then answer with reply */
static void bdat_refuse(smtpd_session *s, const char *reply)
{
    s->bdat_discard = 1;
    vbuf_set(&s->bdat_reply, reply);
}

/* smtpd_bdat_cmd - RFC 3030 §2: start reading one chunk */
void smtpd_bdat_cmd(smtpd_session *s, int argc, char **argv)
{
    long long size;
    int last;
    const char *reply;

    if (smtpd_bdat_parse(argc, argv, &size, &last) < 0) {
        /* Without a size the chunk can't be skipped; the client is confused anyway. */
        smtpd_reply(s, "501 5.5.4 Syntax: BDAT count [LAST]");
        if (s->bdat_active)
            s->bdat_failed = 1;
        return;
    }
    s->bdat_left = size;
    s->bdat_last = last;
    s->bdat_discard = 0;
    vbuf_reset(&s->bdat_reply);
    s->mode = SMTPD_MODE_BDAT;
    if (s->sender == NULL) {
        bdat_refuse(s, "503 5.5.1 Error: need MAIL command");
    } else if (s->rcpt_count == 0) {
        bdat_refuse(s, "554 5.5.1 Error: no valid recipients");
    } else if (s->bdat_failed) {
        bdat_refuse(s, "503 5.5.1 Error: earlier BDAT failed; transaction aborted");
    } else if (s->queue == NULL) {
        bdat_refuse(s, "451 4.3.0 Error: queue file write error");
        s->bdat_failed = 1;
    } else if (!s->bdat_active) {
        if ((reply = smtpd_check_data(s)) != NULL) {
            smtpd_log_reject(s, "BDAT", reply, NULL);
            bdat_refuse(s, reply);
            s->bdat_failed = 1;
            s->bdat_active = 1;
            return;
        }
        s->bdat_active = 1;
        s->data_errors = 0;
        s->msg_size = 0;
        vbuf_reset(&s->content);
        smtpd_received_header(s);
    }
}

/* bdat_done - the whole chunk is in: answer it */
static void bdat_done(smtpd_session *s)
{
    s->mode = SMTPD_MODE_CMD;
    if (s->bdat_discard) {
        smtpd_reply(s, "%s", vbuf_str(&s->bdat_reply));
        if (s->bdat_last && s->bdat_active)
            smtpd_reset(s);
        return;
    }
    if (s->data_errors && !s->bdat_last) {
        const char *reply = s->data_errors & SMTPD_DATA_TOO_BIG ? "552 5.3.4 Message size exceeds fixed limit"
                                                                : "451 4.3.0 Error: queue file write error";

        smtpd_log_reject(s, "BDAT", reply, NULL);
        smtpd_queue_abort(s);
        s->bdat_failed = 1;
        smtpd_reply(s, "%s", reply);
        return;
    }
    if (s->bdat_last) {
        smtpd_data_finish(s, "BDAT");
        return;
    }
    smtpd_reply(s, "250 2.0.0 Ok: %lld bytes", s->msg_size);
}

/* smtpd_bdat_input - read chunk octets while there are any; 0 or SMTPD_WANT_* */
int smtpd_bdat_input(smtpd_session *s)
{
    char buf[BDAT_READ_MAX];
    ssize_t n;
    int st;

    while (s->bdat_left > 0) {
        size_t want = s->bdat_left < (long long) sizeof(buf) ? (size_t) s->bdat_left : sizeof(buf);

        n = stream_read(s->in, buf, want);
        if (n == STREAM_AGAIN) {
            /* RFC 2920: replies to earlier commands go out while we wait. */
            if (stream_output_pending(s->out)) {
                st = stream_flush(s->out);
                if (st == STREAM_AGAIN)
                    return SMTPD_WANT_WRITE;
                if (st < 0)
                    n = STREAM_ERR;
            }
            if (n == STREAM_AGAIN)
                return SMTPD_WANT_READ;
        }
        if (n < 0) {
            msg_info("%s after BDAT (%lld bytes) from %s", n == STREAM_TIMEOUT ? "timeout" : "lost connection",
                     s->msg_size, s->namaddr);
            smtpd_reset(s);
            return SMTPD_WANT_CLOSE;
        }
        s->bdat_left -= n;
        if (s->bdat_discard)
            continue;
        s->msg_size += n;
        if (var_message_size_limit > 0 && s->msg_size > var_message_size_limit)
            s->data_errors |= SMTPD_DATA_TOO_BIG;
        smtpd_content(s, buf, (size_t) n);
    }
    bdat_done(s);
    return 0;
}
