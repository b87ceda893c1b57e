/*
 * mime.c - 8-bit MIME to 7-bit for next hops without 8BITMIME.
 *
 * RFC 6152 §3 leaves a client with 8-bit content and a 7-bit server two
 * choices: convert or bounce. Like Postfix we convert: every leaf body part
 * that holds 8-bit octets and has no encoding (or 7bit/8bit) gets
 * Content-Transfer-Encoding: quoted-printable (RFC 2045 §6.7) and its body
 * encoded; multipart parts (RFC 2046 §5.1) and message/rfc822 bodies are
 * walked recursively (bounded depth). Headers are left as they are.
 * The input is the message as stored: CRLF line ends.
 */
#include <ctype.h>
#include <string.h>

#include "msg.h"
#include "mymalloc.h"
#include "smtp.h"
#include "strutil.h"

#define MIME_MAX_DEPTH 20
#define QP_LINE_MAX    76

/* smtp_mime_needs_8bit - any octet >= 0x80? */
int smtp_mime_needs_8bit(const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) data[i] & 0x80)
            return 1;
    return 0;
}

/* next_line - [start, end) of the line at pos, *next after its terminator */
static size_t next_line(const char *in, size_t len, size_t pos, size_t *next)
{
    const char *nl = memchr(in + pos, '\n', len - pos);
    size_t end;

    if (nl == NULL) {
        *next = len;
        return len;
    }
    end = (size_t) (nl - in);
    *next = end + 1;
    if (end > pos && in[end - 1] == '\r')
        end--;
    return end;
}

/* header_value - unfolded value of header name in [hdr, hdr+len), or NULL */
static char *header_value(const char *hdr, size_t len, const char *name)
{
    size_t pos = 0, next, nlen = strlen(name);
    vbuf v;
    int found = 0;

    vbuf_init(&v, 64 * 1024);
    while (pos < len) {
        size_t end = next_line(hdr, len, pos, &next);

        if (found) {
            if (end > pos && (hdr[pos] == ' ' || hdr[pos] == '\t')) {
                (void) vbuf_append(&v, hdr + pos, end - pos);
                pos = next;
                continue;
            }
            break;
        }
        if (end - pos > nlen && hdr[pos + nlen] == ':' && strncasecmp(hdr + pos, name, nlen) == 0) {
            found = 1;
            (void) vbuf_append(&v, hdr + pos + nlen + 1, end - pos - nlen - 1);
        }
        pos = next;
    }
    if (!found) {
        vbuf_release(&v);
        return NULL;
    }
    vbuf_trim(&v);
    {
        char *s = vbuf_steal(&v);

        vbuf_release(&v);
        return s;
    }
}

/* content_param - a parameter (e.g. boundary) of a Content-Type value */
static char *content_param(const char *ctype, const char *param)
{
    const char *p = ctype;
    size_t plen = strlen(param);

    while ((p = strchr(p, ';')) != NULL) {
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncasecmp(p, param, plen) == 0) {
            const char *q = p + plen;

            while (*q == ' ' || *q == '\t')
                q++;
            if (*q != '=')
                continue;
            q++;
            while (*q == ' ' || *q == '\t')
                q++;
            if (*q == '"') {
                const char *end = strchr(q + 1, '"');

                return end ? xstrndup(q + 1, (size_t) (end - q - 1)) : NULL;
            }
            return xstrndup(q, strcspn(q, "; \t"));
        }
    }
    return NULL;
}

/* qp_encode - RFC 2045 §6.7 quoted-printable of a body with CRLF hard breaks */
static void qp_encode(const char *in, size_t len, vbuf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t pos = 0, next;

    while (pos < len) {
        size_t end = next_line(in, len, pos, &next);
        size_t col = 0;
        int had_break = next > end;

        for (size_t i = pos; i < end; i++) {
            unsigned char c = (unsigned char) in[i];
            int last = (i + 1 == end);
            int encode = (c == '=' || c >= 0x7f || (c < 0x20 && c != '\t') || ((c == ' ' || c == '\t') && last));
            size_t need = encode ? 3 : 1;

            /* Soft line break: keep room for "=" at the end. */
            if (col + need > QP_LINE_MAX - 1 && !(last && col + need <= QP_LINE_MAX)) {
                vbuf_puts(out, "=\r\n");
                col = 0;
            }
            if (encode) {
                vbuf_putc(out, '=');
                vbuf_putc(out, hex[c >> 4]);
                vbuf_putc(out, hex[c & 15]);
            } else {
                vbuf_putc(out, c);
            }
            col += need;
        }
        if (had_break)
            vbuf_puts(out, "\r\n");
        pos = next;
    }
}

/* is_delimiter - "--boundary" or "--boundary--" line? 1 delim, 2 close */
static int is_delimiter(const char *line, size_t len, const char *boundary)
{
    size_t blen = strlen(boundary);

    if (len < blen + 2 || line[0] != '-' || line[1] != '-' || memcmp(line + 2, boundary, blen) != 0)
        return 0;
    if (len >= blen + 4 && line[blen + 2] == '-' && line[blen + 3] == '-')
        return 2;
    for (size_t i = blen + 2; i < len; i++)
        if (line[i] != ' ' && line[i] != '\t')
            return 0;
    return 1;
}

static int convert_entity(const char *in, size_t len, vbuf *out, int depth, int top);

/* convert_multipart - walk the parts of a multipart body */
static int convert_multipart(const char *body, size_t len, const char *boundary, vbuf *out, int depth)
{
    size_t pos = 0, next, part_start = 0;
    int in_part = 0;

    while (pos < len) {
        size_t end = next_line(body, len, pos, &next);
        int kind = is_delimiter(body + pos, end - pos, boundary);

        if (kind) {
            if (in_part) {
                /* The CRLF before the delimiter belongs to the delimiter. */
                size_t part_end = pos;

                if (part_end >= part_start + 2 && body[part_end - 2] == '\r' && body[part_end - 1] == '\n')
                    part_end -= 2;
                else if (part_end > part_start && body[part_end - 1] == '\n')
                    part_end -= 1;
                if (convert_entity(body + part_start, part_end - part_start, out, depth + 1, 0) < 0)
                    return -1;
                vbuf_puts(out, "\r\n");
            } else {
                vbuf_append(out, body + part_start, pos - part_start);
            }
            vbuf_append(out, body + pos, next - pos);
            if (kind == 2) {
                vbuf_append(out, body + next, len - next);   /* epilogue */
                return 0;
            }
            in_part = 1;
            part_start = next;
        }
        pos = next;
    }
    /* No closing delimiter: convert what there is of the last part. */
    if (in_part)
        return convert_entity(body + part_start, len - part_start, out, depth + 1, 0);
    vbuf_append(out, body + part_start, len - part_start);
    return 0;
}

/* convert_entity - headers + body of one MIME entity */
static int convert_entity(const char *in, size_t len, vbuf *out, int depth, int top)
{
    size_t pos = 0, next, hdr_len, body_start;
    char *ctype, *cte;
    int rc = 0;

    if (depth > MIME_MAX_DEPTH) {
        msg_warn("MIME nesting too deep for 8-bit conversion");
        return -1;
    }
    /* Find the end of the header block (an empty line). */
    for (;;) {
        size_t end;

        if (pos >= len) {
            hdr_len = len;
            body_start = len;
            break;
        }
        end = next_line(in, len, pos, &next);
        if (end == pos) {
            hdr_len = pos;
            body_start = next;
            break;
        }
        pos = next;
    }
    ctype = header_value(in, hdr_len, "Content-Type");
    cte = header_value(in, hdr_len, "Content-Transfer-Encoding");

    if (ctype && str_case_prefix(ctype, "multipart/")) {
        char *boundary = content_param(ctype, "boundary");

        vbuf_append(out, in, body_start);
        if (boundary && *boundary)
            rc = convert_multipart(in + body_start, len - body_start, boundary, out, depth);
        else
            vbuf_append(out, in + body_start, len - body_start);
        xfree(boundary);
    } else if (ctype && str_case_prefix(ctype, "message/rfc822") &&
               (cte == NULL || str_case_eq(cte, "7bit") || str_case_eq(cte, "8bit"))) {
        vbuf_append(out, in, body_start);
        rc = convert_entity(in + body_start, len - body_start, out, depth + 1, 0);
    } else if (smtp_mime_needs_8bit(in + body_start, len - body_start) &&
               (cte == NULL || str_case_eq(cte, "7bit") || str_case_eq(cte, "8bit"))) {
        char *mv = top ? header_value(in, hdr_len, "MIME-Version") : NULL;
        int have_mime_version = mv != NULL;
        size_t hpos = 0, hnext;
        int skipping = 0;

        /* Copy the headers without Content-Transfer-Encoding. */
        while (hpos < hdr_len) {
            size_t end = next_line(in, hdr_len, hpos, &hnext);

            if (skipping && end > hpos && (in[hpos] == ' ' || in[hpos] == '\t')) {
                hpos = hnext;
                continue;
            }
            skipping = (end - hpos > 26 && strncasecmp(in + hpos, "Content-Transfer-Encoding:", 26) == 0);
            if (!skipping)
                vbuf_append(out, in + hpos, hnext - hpos);
            hpos = hnext;
        }
        if (top && !have_mime_version)
            vbuf_puts(out, "MIME-Version: 1.0\r\n");
        vbuf_puts(out, "Content-Transfer-Encoding: quoted-printable\r\n");
        if (body_start > hdr_len)
            vbuf_append(out, in + hdr_len, body_start - hdr_len);
        else
            vbuf_puts(out, "\r\n");
        qp_encode(in + body_start, len - body_start, out);
        xfree(mv);
    } else {
        vbuf_append(out, in, len);
    }
    xfree(ctype);
    xfree(cte);
    return rc;
}

/* smtp_mime_to_7bit - convert a whole message; 0, or -1 if it can't be done */
int smtp_mime_to_7bit(const char *in, size_t len, vbuf *out)
{
    vbuf_reset(out);
    return convert_entity(in, len, out, 0, 1);
}
