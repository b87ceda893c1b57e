/*
 * records.c - kitedrop's parser for the record stream on its input.
 *
 * The stream uses the queue file's record framing (qfile.h) without the
 * version and slot records: 'A' attributes, recipient groups ('O', 'N',
 * 'R'), 'M', 'C' chunks, 'E'. Only allow-listed attributes pass, with sane
 * values; recipient groups carry no original-recipient record and no done
 * marks; the writer re-encodes everything, so what reaches maildrop/ is
 * well-formed by construction.
 *
 * Trusts: nothing in the stream (it comes from an unprivileged user).
 */
#include <string.h>
#include <sysexits.h>

#include "mymalloc.h"
#include "records.h"
#include "strutil.h"

/* The attributes a local user may set. */
static const char *const kd_allowed_attrs[] = {
    "sender", "fullname", "envid", "ret", "body", "smtputf8", "extract", "verify", NULL,
};

/* kd_attr_allowed - an attribute a user may give, with a sane value */
static int kd_attr_allowed(const char *name, const char *value)
{
    int known = 0;

    for (int i = 0; kd_allowed_attrs[i]; i++)
        if (strcmp(name, kd_allowed_attrs[i]) == 0)
            known = 1;
    if (!known)
        return 0;
    if (strcmp(name, "ret") == 0)
        return strcmp(value, "full") == 0 || strcmp(value, "hdrs") == 0;
    if (strcmp(name, "body") == 0)
        return strcmp(value, "7bit") == 0 || strcmp(value, "8bitmime") == 0;
    if (strcmp(name, "smtputf8") == 0 || strcmp(name, "extract") == 0 || strcmp(name, "verify") == 0)
        return strcmp(value, "0") == 0 || strcmp(value, "1") == 0;
    if (strcmp(name, "envid") == 0)
        return strlen(value) <= 100 && str_is_ascii_printable(value, strlen(value));
    return strlen(value) <= 1000;
}

/* kd_copy_records - see records.h */
int kd_copy_records(kd_read_fn read_fn, void *ctx, qfile_writer *w, long size_limit, vbuf *why)
{
    char *orcpt = NULL;
    int notify = 0, seen_content = 0, seen_end = 0, ret = 0;
    long long content = 0;
    vbuf data;

#define KD_FAIL(code, text)                                                                                            \
    do {                                                                                                               \
        vbuf_set(why, (text));                                                                                         \
        ret = (code);                                                                                                  \
        goto out;                                                                                                      \
    } while (0)

    vbuf_init(&data, QFILE_MAX_RECORD);
    while (!seen_end) {
        unsigned char hdr[5];
        size_t len;
        int type;

        if (read_fn(ctx, hdr, sizeof(hdr)) < 0)
            KD_FAIL(EX_DATAERR, "unexpected end of input: message not queued");
        type = hdr[0];
        len = ((size_t) hdr[1] << 24) | ((size_t) hdr[2] << 16) | ((size_t) hdr[3] << 8) | hdr[4];
        if (len > QFILE_MAX_RECORD)
            KD_FAIL(EX_DATAERR, "record too long");
        vbuf_reset(&data);
        if (vbuf_reserve(&data, len) < 0 || (len > 0 && read_fn(ctx, data.data, len) < 0))
            KD_FAIL(EX_DATAERR, "unexpected end of input: message not queued");
        data.len = len;
        data.data[len] = 0;
        if (type != 'C' && memchr(data.data, 0, len) != NULL)
            KD_FAIL(EX_DATAERR, "NUL byte in an envelope record");
        switch (type) {
        case 'A': {
            char *eq = strchr(data.data, '=');

            if (seen_content || eq == NULL)
                KD_FAIL(EX_DATAERR, "malformed attribute record");
            *eq = 0;
            if (!kd_attr_allowed(data.data, eq + 1))
                KD_FAIL(EX_DATAERR, "attribute not allowed");
            if (qfile_put_attr(w, data.data, eq + 1) < 0)
                KD_FAIL(EX_DATAERR, "bad attribute value");
            break;
        }
        case 'O':
            if (seen_content || orcpt || len == 0)
                KD_FAIL(EX_DATAERR, "malformed recipient record");
            orcpt = xstrdup(data.data);
            break;
        case 'N': {
            long n;

            if (seen_content || notify || str_to_long(data.data, &n) < 0 || n < 1 || n > 15)
                KD_FAIL(EX_DATAERR, "malformed notify record");
            notify = (int) n;
            break;
        }
        case 'R':
            if (seen_content || len < 2 || data.data[0] != '-')
                KD_FAIL(EX_DATAERR, "malformed recipient record");
            if (qfile_put_rcpt(w, data.data + 1, orcpt, NULL, notify) < 0)
                KD_FAIL(EX_DATAERR, "bad recipient address");
            xfree(orcpt);
            orcpt = NULL;
            notify = 0;
            break;
        case 'M':
            if (seen_content || orcpt || notify || len != 0)
                KD_FAIL(EX_DATAERR, "malformed content marker");
            seen_content = 1;
            break;
        case 'C':
            if (!seen_content || len == 0)
                KD_FAIL(EX_DATAERR, "content out of place");
            content += (long long) len;
            if (size_limit > 0 && content > size_limit)
                KD_FAIL(EX_DATAERR, "message file too big");
            if (qfile_put_content(w, data.data, len) < 0)
                KD_FAIL(EX_IOERR, "write error");
            break;
        case 'E':
            if (!seen_content || orcpt || notify || len != 0)
                KD_FAIL(EX_DATAERR, "malformed end marker");
            seen_end = 1;
            break;
        default:
            KD_FAIL(EX_DATAERR, "unknown record type");
        }
    }
    {
        char extra;

        /* Anything after the end marker means the input is not what we think. */
        if (read_fn(ctx, &extra, 1) == 0)
            KD_FAIL(EX_DATAERR, "data after the end marker");
    }
out:
#undef KD_FAIL
    xfree(orcpt);
    vbuf_release(&data);
    return ret;
}
