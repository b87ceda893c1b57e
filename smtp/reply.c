/*
 * reply.c - reading SMTP server replies (RFC 5321 §4.2) strictly.
 *
 * A reply is one or more lines "NNN-text" ending with "NNN text" (or a bare
 * "NNN"). All lines must carry the same code. Lines are bounded, the number
 * of lines is bounded, and the enhanced status code (RFC 2034/3463) is
 * taken from the last line when present, else derived from the reply code.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "smtp.h"
#include "strutil.h"

#define SMTP_REPLY_LINE_MAX  2048
#define SMTP_REPLY_LINES_MAX 1000
#define SMTP_REPLY_TEXT_MAX  (64 * 1024)

void smtp_reply_init(smtp_reply *r)
{
    r->code = 0;
    r->dsn[0] = 0;
    vbuf_init(&r->text, SMTP_REPLY_TEXT_MAX);
}

void smtp_reply_free(smtp_reply *r)
{
    vbuf_release(&r->text);
}

/* parse_dsn - "X.Y.Z " at the start of text; length consumed or 0 */
static size_t parse_dsn(const char *text, char *dsn, size_t dsnlen)
{
    const char *p = text;
    int parts = 0;

    if (*p != '2' && *p != '4' && *p != '5')
        return 0;
    for (;;) {
        int digits = 0;

        while (isdigit((unsigned char) *p) && digits < 3)
            p++, digits++;
        if (digits == 0)
            return 0;
        parts++;
        if (parts == 3)
            break;
        if (*p != '.')
            return 0;
        p++;
    }
    if (*p != ' ' && *p != 0)
        return 0;
    if ((size_t) (p - text) >= dsnlen)
        return 0;
    memcpy(dsn, text, (size_t) (p - text));
    dsn[p - text] = 0;
    return (size_t) (p - text) + (*p == ' ');
}

/*
 * smtp_reply_read - read one reply. Returns the code (>= 200), or a
 * stream status (< 0), or 0 for a malformed reply. When lines is not NULL
 * each line's text (after "NNN-") is appended to it, NUL-separated, for
 * EHLO keyword parsing.
 */
int smtp_reply_read(stream *s, smtp_reply *r, vbuf *lines)
{
    vbuf line;
    int nlines = 0;
    int code = 0;

    vbuf_init(&line, 0);
    vbuf_reset(&r->text);
    r->code = 0;
    r->dsn[0] = 0;
    if (lines)
        vbuf_reset(lines);
    for (;;) {
        int flags;
        ssize_t n = stream_getline(s, &line, SMTP_REPLY_LINE_MAX, &flags);
        int this_code;
        int last;
        const char *text;

        if (n < 0) {
            vbuf_release(&line);
            return (int) n;
        }
        if (flags & STREAM_LINE_TOOLONG) {
            /* Skip the rest of an overlong line; keep what we have. */
            int f2;
            vbuf junk;

            vbuf_init(&junk, 0);
            do {
                if (stream_getline(s, &junk, SMTP_REPLY_LINE_MAX, &f2) < 0)
                    break;
            } while (f2 & STREAM_LINE_TOOLONG);
            vbuf_release(&junk);
        }
        if (line.len < 3 || !isdigit((unsigned char) line.data[0]) || !isdigit((unsigned char) line.data[1]) ||
            !isdigit((unsigned char) line.data[2]) || (line.len > 3 && line.data[3] != ' ' && line.data[3] != '-')) {
            vbuf_release(&line);
            vbuf_set(&r->text, "malformed reply");
            return 0;
        }
        this_code = (line.data[0] - '0') * 100 + (line.data[1] - '0') * 10 + (line.data[2] - '0');
        if (this_code < 200 || this_code > 599 || (code && this_code != code)) {
            vbuf_release(&line);
            vbuf_set(&r->text, "malformed reply");
            return 0;
        }
        code = this_code;
        last = line.len == 3 || line.data[3] == ' ';
        text = line.len > 4 ? line.data + 4 : "";
        if (lines) {
            vbuf_puts(lines, text);
            vbuf_putc(lines, 0);
        }
        if (r->text.len)
            (void) vbuf_putc(&r->text, ' ');
        (void) vbuf_append(&r->text, line.data, line.len);
        if (last) {
            char dsn[16];

            if (parse_dsn(text, dsn, sizeof(dsn)) && dsn[0] == line.data[0])
                snprintf(r->dsn, sizeof(r->dsn), "%s", dsn);
            break;
        }
        if (++nlines >= SMTP_REPLY_LINES_MAX) {
            vbuf_release(&line);
            vbuf_set(&r->text, "reply has too many lines");
            return 0;
        }
    }
    vbuf_release(&line);
    r->code = code;
    if (r->dsn[0] == 0)
        snprintf(r->dsn, sizeof(r->dsn), "%d.0.0", code / 100);
    return code;
}

/* smtp_reply_is_ehlo_keyword - does an EHLO line name kw? *arg gets its rest */
int smtp_reply_is_ehlo_keyword(const char *line, const char *kw, const char **arg)
{
    size_t n = strlen(kw);

    if (!str_case_prefix(line, kw))
        return 0;
    if (line[n] != 0 && line[n] != ' ' && line[n] != '=')
        return 0;
    if (arg)
        *arg = line[n] ? line + n + 1 : "";
    return 1;
}
